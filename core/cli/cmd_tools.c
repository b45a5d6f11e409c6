/*
 * cmd_tools.c: the commands written in Lua (see tool.c).
 */
#include "cmd.h"
#include "tool.h"

int cmd_init(int argc, char **argv) { return tool_run("returnflow.cli.starter", argc, argv); }
int cmd_templates(int argc, char **argv) { return tool_run("returnflow.cli.templates", argc, argv); }
