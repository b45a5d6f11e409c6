build-dbg/pic/script/klaviyo_body.o: core/script/klaviyo_body.c \
 core/script/klaviyo_body.h core/json/json.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h \
 core/script/klaviyo_limits.h
core/script/klaviyo_body.h:
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/script/klaviyo_limits.h:
