build-dbg/obj/service/ingest.o: core/service/ingest.c core/service/ingest.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/store/store.h core/base/strbuf.h \
 core/json/json.h core/base/log.h core/base/signature.h \
 core/store/store_health.h core/store/store_db.h core/store/states.h
core/service/ingest.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/store/store.h:
core/base/strbuf.h:
core/json/json.h:
core/base/log.h:
core/base/signature.h:
core/store/store_health.h:
core/store/store_db.h:
core/store/states.h:
