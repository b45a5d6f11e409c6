build-dbg/obj/service/deliver/dry.o: core/service/deliver/dry.c \
 core/service/deliver/dry.h core/base/config.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/store/store_db.h core/store/states.h core/base/strbuf.h \
 core/json/json.h core/base/log.h
core/service/deliver/dry.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/store/store_db.h:
core/store/states.h:
core/base/strbuf.h:
core/json/json.h:
core/base/log.h:
