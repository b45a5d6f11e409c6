build-dbg/pic/script/sandbox_realm.o: core/script/sandbox_realm.c \
 core/script/embedded.h core/json/json.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h \
 /usr/include/lua5.4/lauxlib.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/lualib.h core/script/sandbox.h \
 core/script/sandbox_internal.h core/script/sandbox_lib.h
core/script/embedded.h:
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/lualib.h:
core/script/sandbox.h:
core/script/sandbox_internal.h:
core/script/sandbox_lib.h:
