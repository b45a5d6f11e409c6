build-dbg/obj/json/json_encode.o: core/json/json_encode.c core/json/json.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h /usr/include/lua5.4/lauxlib.h \
 /usr/include/lua5.4/lua.h core/base/utf8.h
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
core/base/utf8.h:
