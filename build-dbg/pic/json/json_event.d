build-dbg/pic/json/json_event.o: core/json/json_event.c core/json/json.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h core/json/json_tape.h /usr/include/lua5.4/lauxlib.h \
 /usr/include/lua5.4/lua.h
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/json/json_tape.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
