build-dbg/pic/script/klaviyo_endpoints.o: core/script/klaviyo_endpoints.c \
 core/script/klaviyo_endpoints.h
core/script/klaviyo_endpoints.h:
