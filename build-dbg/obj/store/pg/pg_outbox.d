build-dbg/obj/store/pg/pg_outbox.o: core/store/pg/pg_outbox.c \
 core/store/outbox.h core/script/mapper.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h core/store/store_db.h core/store/states.h \
 core/base/clock.h core/store/pg/pg_store.h \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h core/store/store_backend.h \
 core/store/outbox.h core/store/store_db.h
core/store/outbox.h:
core/script/mapper.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/store/store_db.h:
core/store/states.h:
core/base/clock.h:
core/store/pg/pg_store.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
core/store/store_backend.h:
core/store/outbox.h:
core/store/store_db.h:
