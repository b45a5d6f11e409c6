build-dbg/obj/script/mapper.o: core/script/mapper.c core/script/mapper.h \
 core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h core/json/json.h \
 /usr/include/lua5.4/lauxlib.h /usr/include/lua5.4/lua.h \
 core/script/klaviyo_body.h core/script/klaviyo_endpoints.h \
 core/script/klaviyo_limits.h core/script/map_limits.h core/base/strmap.h \
 core/base/utf8.h core/base/version.h core/script/sandbox_lib.h
core/script/mapper.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/json/json.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
core/script/klaviyo_body.h:
core/script/klaviyo_endpoints.h:
core/script/klaviyo_limits.h:
core/script/map_limits.h:
core/base/strmap.h:
core/base/utf8.h:
core/base/version.h:
core/script/sandbox_lib.h:
