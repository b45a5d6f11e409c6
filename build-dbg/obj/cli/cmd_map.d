build-dbg/obj/cli/cmd_map.o: core/cli/cmd_map.c core/cli/cmd.h \
 core/batch/input.h core/json/json.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/base/strbuf.h core/script/mapper.h \
 core/script/sandbox.h
core/cli/cmd.h:
core/batch/input.h:
core/json/json.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/strbuf.h:
core/script/mapper.h:
core/script/sandbox.h:
