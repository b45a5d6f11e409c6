build-dbg/obj/base/log.o: core/base/log.c core/base/log.h core/json/json.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h core/base/strbuf.h
core/base/log.h:
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/base/strbuf.h:
