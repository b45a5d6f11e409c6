build-dbg/obj/store/store_health.o: core/store/store_health.c \
 core/store/store_health.h core/store/store_db.h core/store/states.h \
 core/base/strbuf.h core/json/json.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/log.h
core/store/store_health.h:
core/store/store_db.h:
core/store/states.h:
core/base/strbuf.h:
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/log.h:
