build-dbg/obj/batch/job.o: core/batch/job.c core/batch/job.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/service/deliver/bulk.h \
 core/base/clock.h core/service/deliver/deliver.h core/base/strbuf.h \
 core/service/deliver/dry.h core/store/store_db.h core/store/states.h \
 core/json/json.h core/script/mapper.h core/script/sandbox.h \
 core/script/mapper_settings.h core/script/mapper.h \
 core/service/mapworker.h core/store/outbox.h core/store/store_db.h \
 core/service/snapshot.h
core/batch/job.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/service/deliver/bulk.h:
core/base/clock.h:
core/service/deliver/deliver.h:
core/base/strbuf.h:
core/service/deliver/dry.h:
core/store/store_db.h:
core/store/states.h:
core/json/json.h:
core/script/mapper.h:
core/script/sandbox.h:
core/script/mapper_settings.h:
core/script/mapper.h:
core/service/mapworker.h:
core/store/outbox.h:
core/store/store_db.h:
core/service/snapshot.h:
