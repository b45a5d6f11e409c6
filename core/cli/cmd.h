/*
 * cmd.h: the subcommands of the one `returnflow` binary. Each returns the
 * process exit status: 0 success, 1 the work found problems, 2 bad usage.
 */
#ifndef RF_CMD_H
#define RF_CMD_H

int cmd_map(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_post(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_test(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_templates(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_test_integration(int argc, char **argv);

/* Prints the help of one command (or the overview for NULL) to stdout. */
int cmd_help(const char *command);

#endif
