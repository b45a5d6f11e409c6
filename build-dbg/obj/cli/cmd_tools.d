build-dbg/obj/cli/cmd_tools.o: core/cli/cmd_tools.c core/cli/cmd.h \
 core/tooling/tool.h
core/cli/cmd.h:
core/tooling/tool.h:
