build-dbg/obj/cli/cmd_status.o: core/cli/cmd_status.c core/cli/cmd.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/json/json.h core/base/strbuf.h \
 /usr/include/lua5.4/lauxlib.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/lualib.h core/store/store_db.h core/store/states.h \
 core/store/store_health.h core/store/store_db.h
core/cli/cmd.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/json/json.h:
core/base/strbuf.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/lualib.h:
core/store/store_db.h:
core/store/states.h:
core/store/store_health.h:
core/store/store_db.h:
