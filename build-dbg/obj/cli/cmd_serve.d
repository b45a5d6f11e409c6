build-dbg/obj/cli/cmd_serve.o: core/cli/cmd_serve.c core/cli/cmd.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/service/deliver/deliver.h \
 core/base/strbuf.h core/service/ingest.h core/store/store.h \
 core/json/json.h core/base/log.h core/script/mapper.h \
 core/script/sandbox.h core/script/mapper_settings.h core/script/mapper.h \
 core/service/mapworker.h core/service/reload.h core/store/store_db.h \
 core/store/states.h core/store/store_health.h core/store/store_db.h \
 core/service/worker.h
core/cli/cmd.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/service/deliver/deliver.h:
core/base/strbuf.h:
core/service/ingest.h:
core/store/store.h:
core/json/json.h:
core/base/log.h:
core/script/mapper.h:
core/script/sandbox.h:
core/script/mapper_settings.h:
core/script/mapper.h:
core/service/mapworker.h:
core/service/reload.h:
core/store/store_db.h:
core/store/states.h:
core/store/store_health.h:
core/store/store_db.h:
core/service/worker.h:
