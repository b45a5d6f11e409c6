build-dbg/obj/script/sandbox.o: core/script/sandbox.c core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/script/embedded.h core/json/json.h core/base/strbuf.h \
 /usr/include/lua5.4/lauxlib.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/lualib.h core/script/sandbox_internal.h \
 core/script/sandbox_lib.h
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/script/embedded.h:
core/json/json.h:
core/base/strbuf.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/lualib.h:
core/script/sandbox_internal.h:
core/script/sandbox_lib.h:
