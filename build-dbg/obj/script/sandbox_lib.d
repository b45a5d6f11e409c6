build-dbg/obj/script/sandbox_lib.o: core/script/sandbox_lib.c \
 core/script/sandbox_lib.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/json/json.h core/base/strbuf.h \
 /usr/include/lua5.4/lauxlib.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/lua-cjson.h core/script/lua_pattern.h \
 core/script/sandbox_table.h
core/script/sandbox_lib.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/json/json.h:
core/base/strbuf.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/lua-cjson.h:
core/script/lua_pattern.h:
core/script/sandbox_table.h:
