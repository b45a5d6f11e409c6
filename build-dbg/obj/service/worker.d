build-dbg/obj/service/worker.o: core/service/worker.c core/service/worker.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/clock.h core/json/json.h \
 core/base/strbuf.h core/base/log.h core/script/mapper.h \
 core/script/sandbox.h core/script/mapper_settings.h core/script/mapper.h \
 core/service/mapworker.h core/store/outbox.h core/store/store_db.h \
 core/store/states.h core/store/store_db.h core/store/store_health.h
core/service/worker.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/clock.h:
core/json/json.h:
core/base/strbuf.h:
core/base/log.h:
core/script/mapper.h:
core/script/sandbox.h:
core/script/mapper_settings.h:
core/script/mapper.h:
core/service/mapworker.h:
core/store/outbox.h:
core/store/store_db.h:
core/store/states.h:
core/store/store_db.h:
core/store/store_health.h:
