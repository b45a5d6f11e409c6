build-dbg/obj/store/schema.o: core/store/schema.c core/store/store_sqlite.h \
 core/store/store_backend.h core/store/outbox.h core/script/mapper.h \
 core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h core/store/store_db.h \
 core/store/states.h core/json/json.h core/base/log.h
core/store/store_sqlite.h:
core/store/store_backend.h:
core/store/outbox.h:
core/script/mapper.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/store/store_db.h:
core/store/states.h:
core/json/json.h:
core/base/log.h:
