build-dbg/obj/store/outbox.o: core/store/outbox.c core/store/outbox.h \
 core/script/mapper.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h core/store/store_db.h \
 core/store/states.h core/service/deliver/bulk.h core/base/clock.h \
 core/json/json.h core/store/store_sqlite.h core/store/store_backend.h
core/store/outbox.h:
core/script/mapper.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/store/store_db.h:
core/store/states.h:
core/service/deliver/bulk.h:
core/base/clock.h:
core/json/json.h:
core/store/store_sqlite.h:
core/store/store_backend.h:
