build-dbg/obj/store/dead_letters.o: core/store/dead_letters.c \
 core/store/store_sqlite.h core/store/store_backend.h core/store/outbox.h \
 core/script/mapper.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h core/store/store_db.h \
 core/store/states.h
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
