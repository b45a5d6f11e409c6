build-dbg/obj/service/mapworker.o: core/service/mapworker.c \
 core/service/mapworker.h core/script/mapper.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h core/json/json.h core/script/klaviyo_endpoints.h \
 core/script/klaviyo_limits.h core/base/log.h \
 core/script/mapworker_proto.h core/script/map_limits.h \
 core/service/mapworker_record.h core/base/utf8.h
core/service/mapworker.h:
core/script/mapper.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/json/json.h:
core/script/klaviyo_endpoints.h:
core/script/klaviyo_limits.h:
core/base/log.h:
core/script/mapworker_proto.h:
core/script/map_limits.h:
core/service/mapworker_record.h:
core/base/utf8.h:
