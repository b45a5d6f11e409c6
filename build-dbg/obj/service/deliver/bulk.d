build-dbg/obj/service/deliver/bulk.o: core/service/deliver/bulk.c \
 core/service/deliver/bulk.h core/json/json.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h
core/service/deliver/bulk.h:
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
