build-dbg/obj/cli/cmd_store.o: core/cli/cmd_store.c core/cli/cmd.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/store/store_db.h core/store/states.h \
 core/base/strbuf.h
core/cli/cmd.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/store/store_db.h:
core/store/states.h:
core/base/strbuf.h:
