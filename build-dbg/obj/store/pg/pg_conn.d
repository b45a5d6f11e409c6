build-dbg/obj/store/pg/pg_conn.o: core/store/pg/pg_conn.c \
 core/store/pg/pg_store.h /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h core/store/store_backend.h \
 core/store/outbox.h core/script/mapper.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h core/store/store_db.h core/store/states.h \
 core/store/store_db.h core/json/json.h core/base/log.h core/base/utf8.h
core/store/pg/pg_store.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
core/store/store_backend.h:
core/store/outbox.h:
core/script/mapper.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/store/store_db.h:
core/store/states.h:
core/store/store_db.h:
core/json/json.h:
core/base/log.h:
core/base/utf8.h:
