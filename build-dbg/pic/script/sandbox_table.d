build-dbg/pic/script/sandbox_table.o: core/script/sandbox_table.c \
 core/script/sandbox_table.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h /usr/include/lua5.4/lauxlib.h \
 /usr/include/lua5.4/lua.h core/script/sandbox_lib.h
core/script/sandbox_table.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
core/script/sandbox_lib.h:
