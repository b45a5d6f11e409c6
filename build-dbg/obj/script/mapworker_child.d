build-dbg/obj/script/mapworker_child.o: core/script/mapworker_child.c \
 core/script/mapworker_child.h core/script/mapper.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/strbuf.h core/script/mapworker_proto.h \
 core/script/map_limits.h
core/script/mapworker_child.h:
core/script/mapper.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/script/mapworker_proto.h:
core/script/map_limits.h:
