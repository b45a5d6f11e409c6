build-dbg/pic/tooling/lua_http.o: core/tooling/lua_http.c \
 /usr/include/lua5.4/lauxlib.h /usr/include/lua5.4/luaconf.h \
 /usr/include/lua5.4/lua.h core/tooling/lua_native.h \
 /usr/include/lua5.4/lua.h core/base/strbuf.h
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/luaconf.h:
/usr/include/lua5.4/lua.h:
core/tooling/lua_native.h:
/usr/include/lua5.4/lua.h:
core/base/strbuf.h:
