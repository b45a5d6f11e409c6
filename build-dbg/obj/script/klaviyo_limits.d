build-dbg/obj/script/klaviyo_limits.o: core/script/klaviyo_limits.c \
 core/script/klaviyo_limits.h core/json/json.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h
core/script/klaviyo_limits.h:
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
