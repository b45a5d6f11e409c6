build-dbg/obj/service/reload.o: core/service/reload.c core/service/reload.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h core/json/json.h \
 core/base/log.h core/script/mapper.h core/script/sandbox.h \
 core/script/mapper_settings.h core/script/mapper.h \
 core/service/mapworker.h core/service/snapshot.h
core/service/reload.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/json/json.h:
core/base/log.h:
core/script/mapper.h:
core/script/sandbox.h:
core/script/mapper_settings.h:
core/script/mapper.h:
core/service/mapworker.h:
core/service/snapshot.h:
