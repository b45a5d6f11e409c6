build-dbg/obj/cli/cmd_post.o: core/cli/cmd_post.c core/cli/cmd.h \
 core/base/config.h core/script/sandbox.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h core/batch/input.h core/base/signature.h \
 core/base/strbuf.h core/base/version.h
core/cli/cmd.h:
core/base/config.h:
core/script/sandbox.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
core/batch/input.h:
core/base/signature.h:
core/base/strbuf.h:
core/base/version.h:
