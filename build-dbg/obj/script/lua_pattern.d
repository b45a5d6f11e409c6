build-dbg/obj/script/lua_pattern.o: core/script/lua_pattern.c \
 core/script/lua_pattern.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h /usr/include/lua5.4/lauxlib.h \
 /usr/include/lua5.4/lua.h core/script/sandbox_lib.h
core/script/lua_pattern.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
core/script/sandbox_lib.h:
