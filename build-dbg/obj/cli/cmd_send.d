build-dbg/obj/cli/cmd_send.o: core/cli/cmd_send.c core/cli/cmd.h \
 core/base/clock.h core/base/config.h core/script/sandbox.h \
 /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
 core/batch/input.h core/json/json.h core/base/strbuf.h core/batch/job.h \
 core/base/share.h core/store/store_db.h core/store/states.h
core/cli/cmd.h:
core/base/clock.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/batch/input.h:
core/json/json.h:
core/base/strbuf.h:
core/batch/job.h:
core/base/share.h:
core/store/store_db.h:
core/store/states.h:
