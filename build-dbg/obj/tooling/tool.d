build-dbg/obj/tooling/tool.o: core/tooling/tool.c core/tooling/tool.h \
 core/script/embedded.h core/json/json.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h \
 /usr/include/lua5.4/lauxlib.h /usr/include/lua5.4/lua.h \
 core/tooling/lua_native.h /usr/include/lua5.4/lualib.h
core/tooling/tool.h:
core/script/embedded.h:
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
core/tooling/lua_native.h:
/usr/include/lua5.4/lualib.h:
