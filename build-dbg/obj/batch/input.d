build-dbg/obj/batch/input.o: core/batch/input.c core/batch/input.h \
 core/json/json.h /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h
core/batch/input.h:
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
