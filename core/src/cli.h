/* SPDX-License-Identifier: MIT */
/*
 * Subcommands of the ferry executable. Each takes the arguments after its
 * own name (argv[0] is the subcommand) and returns the process exit status.
 * Exit statuses: 0 success, 1 failure, 2 usage error, 3 (sync) finished
 * but something was dead-lettered.
 */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#define FERRY_EXIT_OK          0
#define FERRY_EXIT_FAILURE     1
#define FERRY_EXIT_USAGE       2
#define FERRY_EXIT_DEADLETTERS 3

int ferry_cmd_run(int argc, char **argv);       /* cmd_run.c */
int ferry_cmd_sync(int argc, char **argv);      /* cmd_run.c */
int ferry_cmd_map(int argc, char **argv);       /* cmd_map.c */
int ferry_cmd_status(int argc, char **argv);    /* cmd_status.c */
int ferry_cmd_plugins(int argc, char **argv);   /* cmd_plugins.c */
int ferry_cmd_check(int argc, char **argv);     /* cmd_admin.c */
int ferry_cmd_webhooks(int argc, char **argv);  /* cmd_admin.c */
int ferry_cmd_dlq(int argc, char **argv);       /* cmd_dlq.c */
int ferry_cmd_replay(int argc, char **argv);    /* cmd_dlq.c */
int ferry_cmd_plan(int argc, char **argv);      /* cmd_plan.c */
int ferry_cmd_init(int argc, char **argv);      /* cmd_init.c */
int ferry_cmd_explain(int argc, char **argv);   /* cmd_explain.c */
int ferry_cmd_log(int argc, char **argv);       /* cmd_explain.c */
int ferry_cmd_conflicts(int argc, char **argv); /* cmd_explain.c */

#endif
