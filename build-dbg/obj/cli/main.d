build-dbg/obj/cli/main.o: core/cli/main.c core/cli/cmd.h \
 core/script/mapworker_child.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/base/version.h
core/cli/cmd.h:
core/script/mapworker_child.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/base/version.h:
