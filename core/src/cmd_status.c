/* SPDX-License-Identifier: MIT */
/*
 * `ferry status`: job counts by state from the state database named in the
 * configuration, as a table for an operator or as one JSON line for scripts
 * and monitoring. It reads the database the daemon writes, through its own
 * connection, so it can run while the daemon does (WAL readers never block).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ferry status -c CONFIG [--json]\n"
               "\n"
               "Print the number of jobs in each state (pending, running, done, dead).\n"
               "\n"
               "options:\n"
               "  -c, --config FILE  the daemon's configuration file\n"
               "      --json         one JSON object on one line instead of a table\n"
               "  -h, --help         this text\n");
}

static int usage_error(const char *fmt, ...) FERRY_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("ferry status: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    return FERRY_EXIT_USAGE;
}

static void print_table(const int64_t counts[FERRY_JOB_NSTATES])
{
    /* Right-align the numbers to the widest one so the column stays straight. */
    int width = 3;
    for (int i = 0; i < FERRY_JOB_NSTATES; i++) {
        int digits = snprintf(NULL, 0, "%lld", (long long)counts[i]);
        if (digits > width) {
            width = digits;
        }
    }
    printf("jobs\n");
    for (int i = 0; i < FERRY_JOB_NSTATES; i++) {
        printf("  %-7s %*lld\n", ferry_job_state_name(i), width, (long long)counts[i]);
    }
}

static void print_json(const int64_t counts[FERRY_JOB_NSTATES])
{
    printf("{\"jobs\":{");
    for (int i = 0; i < FERRY_JOB_NSTATES; i++) {
        printf("%s\"%s\":%lld", i ? "," : "", ferry_job_state_name(i), (long long)counts[i]);
    }
    printf("}}\n");
}

int ferry_cmd_status(int argc, char **argv)
{
    int status = FERRY_EXIT_FAILURE;
    const char *config_path = NULL;
    bool json = false;
    struct ferry_config *cfg = NULL;
    struct ferry_store *store = NULL;
    struct ferry_err err = {0};
    int64_t counts[FERRY_JOB_NSTATES];
    struct stat sb;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return FERRY_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                return usage_error("%s needs a file name", a);
            }
            config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config_path = a + 9;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    if (!config_path || config_path[0] == '\0') {
        return usage_error("a configuration file is required (-c CONFIG)");
    }

    if (ferry_config_load(&cfg, config_path, &err) < 0) {
        fprintf(stderr, "ferry status: %s\n", err.msg);
        goto cleanup;
    }
    /* Opening would create an empty database; a wrong path must not look like an idle queue. */
    if (stat(cfg->state_path, &sb) != 0) {
        fprintf(stderr, "ferry status: state database %s does not exist (has the daemon run?)\n",
                cfg->state_path);
        goto cleanup;
    }
    if (ferry_store_open(&store, cfg->state_path, &err) < 0 ||
        ferry_store_job_counts(store, counts, &err) < 0) {
        fprintf(stderr, "ferry status: %s\n", err.msg);
        goto cleanup;
    }
    if (json) {
        print_json(counts);
    } else {
        print_table(counts);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ferry status: cannot write the output\n");
        goto cleanup;
    }
    status = FERRY_EXIT_OK;
cleanup:
    ferry_store_close(store);
    ferry_config_free(cfg);
    return status;
}
