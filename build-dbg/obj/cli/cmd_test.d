build-dbg/obj/cli/cmd_test.o: core/cli/cmd_test.c core/cli/cmd.h
core/cli/cmd.h:
