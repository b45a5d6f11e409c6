build-dbg/obj/store/store_location.o: core/store/store_location.c \
 core/store/store_db.h core/store/states.h core/base/strbuf.h \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h
core/store/store_db.h:
core/store/states.h:
core/base/strbuf.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
