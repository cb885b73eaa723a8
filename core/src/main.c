/* SPDX-License-Identifier: MIT */
/*
 * The ferry executable: one binary for the daemon and the operator's and
 * integrator's tools, dispatching on the first argument.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"run", ferry_cmd_run, "run the daemon in the foreground"},
    {"sync", ferry_cmd_sync, "poll every source for changes, drain the queue, exit"},
    {"map", ferry_cmd_map, "test a mapping offline: ferry map test MAPPING FIXTURE.json"},
    {"status", ferry_cmd_status, "jobs by state, queue lanes, dead letters, cursors, webhooks"},
    {"plugins", ferry_cmd_plugins, "list the loaded connectors with their versions"},
    {"check", ferry_cmd_check, "check config, plugins, mappings and their targets offline"},
    {"webhooks", ferry_cmd_webhooks, "compare (and --apply) the webhook registrations needed"},
    {"dlq", ferry_cmd_dlq, "list, show, retry or drop dead letters"},
    {"replay", ferry_cmd_replay, "queue the source events of earlier jobs again"},
    {"plan", ferry_cmd_plan, "what the mappings would do with real records, writing nothing"},
    {"init", ferry_cmd_init, "write a starter config, the shipped mappings and a systemd unit"},
    {"explain", ferry_cmd_explain, "one record's story across jobs: links, requests, outcomes"},
    {"log", ferry_cmd_log, "audit rows by correlation ID or since a date, redacted"},
    {"conflicts", ferry_cmd_conflicts, "fields both systems changed, and what the policy decided"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ferry <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "\n'ferry <command> --help' describes each command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return FERRY_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return FERRY_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ferry %s\n", FERRY_VERSION);
        return FERRY_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "ferry: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return FERRY_EXIT_USAGE;
}
