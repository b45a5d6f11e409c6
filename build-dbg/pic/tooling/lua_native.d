build-dbg/pic/tooling/lua_native.o: core/tooling/lua_native.c \
 core/json/json.h /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h /usr/include/lua5.4/lauxlib.h \
 /usr/include/lua5.4/lua.h core/tooling/lua_native.h core/base/share.h \
 core/script/mapper.h core/script/sandbox.h core/base/signature.h \
 core/base/version.h
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
core/tooling/lua_native.h:
core/base/share.h:
core/script/mapper.h:
core/script/sandbox.h:
core/base/signature.h:
core/base/version.h:
