build-dbg/obj/service/mapworker_record.o: core/service/mapworker_record.c \
 core/service/mapworker.h core/script/mapper.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h core/service/mapworker_record.h core/json/json.h \
 core/base/log.h
core/service/mapworker.h:
core/script/mapper.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/service/mapworker_record.h:
core/json/json.h:
core/base/log.h:
