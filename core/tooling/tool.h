/*
 * tool.h: commands written in Lua (templates, init), run in a plain Lua state with the host's libraries.
 */
#ifndef RF_TOOL_H
#define RF_TOOL_H

/* Loads the embedded module (e.g. "returnflow.cli.templates") and returns main(args)'s exit status. */
int tool_run(const char *module, int argc, char **argv);

#endif
