build-dbg/obj/spec/test_store.o: spec/c/test_store.c \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h core/base/clock.h \
 core/store/outbox.h core/script/mapper.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h core/store/store_db.h core/store/states.h \
 core/store/store.h core/store/store_db.h
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
core/base/clock.h:
core/store/outbox.h:
core/script/mapper.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/store/store_db.h:
core/store/states.h:
core/store/store.h:
core/store/store_db.h:
