build-dbg/obj/service/deliver/rate.o: core/service/deliver/rate.c \
 core/service/deliver/rate.h
core/service/deliver/rate.h:
