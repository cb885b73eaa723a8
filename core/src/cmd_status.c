/* SPDX-License-Identifier: MIT */
/*
 * `ferry status`: job counts by state from the state database named in the
 * configuration, as a table for an operator or as one JSON line for scripts
 * and monitoring. It reads the database the daemon writes, through its own
 * connection, so it can run while the daemon does (WAL readers never block).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "store.h"
#include "util.h"

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

/* Sections beyond the job counts appear only when they hold something. */
static void print_json(const int64_t counts[FERRY_JOB_NSTATES], json_t *counters, json_t *seen)
{
    printf("{\"jobs\":{");
    for (int i = 0; i < FERRY_JOB_NSTATES; i++) {
        printf("%s\"%s\":%lld", i ? "," : "", ferry_job_state_name(i), (long long)counts[i]);
    }
    printf("}");
    if (json_object_size(counters) > 0) {
        char *t = json_dumps(counters, JSON_COMPACT | JSON_SORT_KEYS);
        printf(",\"counters\":%s", t ? t : "{}");
        free(t);
    }
    if (json_array_size(seen) > 0) {
        char *t = json_dumps(seen, JSON_COMPACT);
        printf(",\"webhooks\":%s", t ? t : "[]");
        free(t);
    }
    printf("}\n");
}

static void print_extras(json_t *counters, json_t *seen, int64_t now)
{
    const char *name;
    json_t *v;
    size_t i;
    if (json_object_size(counters) > 0) {
        printf("counters\n");
        json_object_foreach(counters, name, v)
        {
            printf("  %-40s %lld\n", name, (long long)json_integer_value(v));
        }
    }
    if (json_array_size(seen) > 0) {
        printf("webhooks (last delivery per scope)\n");
        json_array_foreach(seen, i, v)
        {
            int64_t ago = (now - json_integer_value(json_object_get(v, "last_at"))) / 1000;
            printf("  %-12s %-36s %6llds ago  %lld delivered\n",
                   json_string_value(json_object_get(v, "instance")),
                   json_string_value(json_object_get(v, "scope")), (long long)ago,
                   (long long)json_integer_value(json_object_get(v, "count")));
        }
    }
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
    json_t *counters = NULL, *seen = NULL;

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
        ferry_store_job_counts(store, counts, &err) < 0 ||
        ferry_store_counters(store, &counters, &err) < 0 ||
        ferry_store_webhooks_seen(store, &seen, &err) < 0) {
        fprintf(stderr, "ferry status: %s\n", err.msg);
        goto cleanup;
    }
    if (json) {
        print_json(counts, counters, seen);
    } else {
        print_table(counts);
        print_extras(counters, seen, ferry_now_ms());
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ferry status: cannot write the output\n");
        goto cleanup;
    }
    status = FERRY_EXIT_OK;
cleanup:
    json_decref(counters);
    json_decref(seen);
    ferry_store_close(store);
    ferry_config_free(cfg);
    return status;
}
