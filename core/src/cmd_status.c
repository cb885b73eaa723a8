/* SPDX-License-Identifier: MIT */
/*
 * `ferry status`: what the queue looks like, from the state database named
 * in the configuration: jobs by state, pending jobs per priority lane and
 * the age of the oldest one, open dead letters, the delta cursors and how
 * far behind now they are, counters such as webhook_missed_total, and the
 * last webhook delivery per scope. As a table for an operator or as one
 * JSON line for scripts and monitoring. It reads the database the daemon
 * writes, through its own connection, so it can run while the daemon does
 * (WAL readers never block). What it prints passes the redaction layer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "redact.h"
#include "store.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ferry status -c CONFIG [--json]\n"
               "\n"
               "Print the state of the queue: jobs by state (pending, running, done,\n"
               "dead), pending jobs per lane (realtime, retry, backfill) and the age of\n"
               "the oldest, open dead letters, each delta cursor with its lag behind now,\n"
               "counters such as webhook_missed_total, and the last webhook delivery per\n"
               "scope. Quota state lives in the running daemon: see /metrics.\n"
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

/* "42s", "3m12s", "2h05m", "3d04h": an age an operator reads at a glance. */
static void format_age(int64_t ms, char *buf, size_t n)
{
    long long s = ms > 0 ? (long long)(ms / 1000) : 0;
    if (s < 60) {
        snprintf(buf, n, "%llds", s);
    } else if (s < 3600) {
        snprintf(buf, n, "%lldm%02llds", s / 60, s % 60);
    } else if (s < 86400) {
        snprintf(buf, n, "%lldh%02lldm", s / 3600, (s / 60) % 60);
    } else {
        snprintf(buf, n, "%lldd%02lldh", s / 86400, (s / 3600) % 24);
    }
}

/* Now minus a cursor's watermark, or -1 when it is no timestamp. */
static int64_t cursor_lag_ms(const json_t *c, int64_t now)
{
    int64_t at;
    const char *v = json_string_value(json_object_get(c, "value"));
    if (!v || ferry_iso8601_parse(v, &at) < 0) {
        return -1;
    }
    /* A source clock ahead of ours reads as no lag. */
    return now > at ? now - at : 0;
}

static void print_table(FILE *out, const int64_t counts[FERRY_JOB_NSTATES], json_t *snap,
                        int64_t now)
{
    static const char *const lanes[] = {"realtime", "retry", "backfill"};
    /* Right-align the numbers to the widest one so the column stays straight. */
    int width = 3;
    for (int i = 0; i < FERRY_JOB_NSTATES; i++) {
        int digits = snprintf(NULL, 0, "%lld", (long long)counts[i]);
        if (digits > width) {
            width = digits;
        }
    }
    fprintf(out, "jobs\n");
    for (int i = 0; i < FERRY_JOB_NSTATES; i++) {
        fprintf(out, "  %-7s %*lld\n", ferry_job_state_name(i), width, (long long)counts[i]);
    }
    json_t *l = json_object_get(snap, "lanes");
    fprintf(out, "queue (pending by lane)\n");
    for (int i = 0; i < 3; i++) {
        fprintf(out, "  %-8s %*lld\n", lanes[i], width,
                (long long)json_integer_value(json_object_get(l, lanes[i])));
    }
    json_t *oldest = json_object_get(snap, "oldest_pending_at");
    if (oldest) {
        char age[32];
        format_age(now - json_integer_value(oldest), age, sizeof(age));
        fprintf(out, "  oldest pending job: %s old\n", age);
    }
    fprintf(out, "dead letters (open): %lld\n",
            (long long)json_integer_value(json_object_get(snap, "dead_open")));
    json_t *cursors = json_object_get(snap, "cursors");
    if (json_array_size(cursors) > 0) {
        size_t i;
        json_t *c;
        fprintf(out, "cursors (newest change seen, lag behind now)\n");
        json_array_foreach(cursors, i, c)
        {
            char lag[32] = "?";
            int64_t ms = cursor_lag_ms(c, now);
            if (ms >= 0) {
                format_age(ms, lag, sizeof(lag));
            }
            fprintf(out, "  %-12s %-28s %-26s lag %s\n",
                    json_string_value(json_object_get(c, "system")),
                    json_string_value(json_object_get(c, "object")),
                    json_string_value(json_object_get(c, "value")), lag);
        }
    }
}

/*
 * The keys "jobs", "counters" and "webhooks" keep the shape they always
 * had (the last two only when they hold something); the queue keys follow.
 */
static void print_json(FILE *out, const int64_t counts[FERRY_JOB_NSTATES], json_t *snap,
                       json_t *counters, json_t *seen, int64_t now)
{
    fprintf(out, "{\"jobs\":{");
    for (int i = 0; i < FERRY_JOB_NSTATES; i++) {
        fprintf(out, "%s\"%s\":%lld", i ? "," : "", ferry_job_state_name(i), (long long)counts[i]);
    }
    fprintf(out, "}");
    if (json_object_size(counters) > 0) {
        char *t = json_dumps(counters, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(out, ",\"counters\":%s", t ? t : "{}");
        free(t);
    }
    if (json_array_size(seen) > 0) {
        char *t = json_dumps(seen, JSON_COMPACT);
        fprintf(out, ",\"webhooks\":%s", t ? t : "[]");
        free(t);
    }
    json_t *oldest = json_object_get(snap, "oldest_pending_at");
    json_t *cursors = json_object_get(snap, "cursors");
    size_t i;
    json_t *c;
    json_array_foreach(cursors, i, c)
    {
        int64_t ms = cursor_lag_ms(c, now);
        json_object_set_new(c, "lag_s", ms >= 0 ? json_integer(ms / 1000) : json_null());
    }
    json_t *extra =
        json_pack("{s:O, s:O, s:o, s:O, s:O*}", "lanes", json_object_get(snap, "lanes"),
                  "dead_letters_open", json_object_get(snap, "dead_open"), "oldest_pending_age_s",
                  oldest ? json_integer((now - json_integer_value(oldest)) / 1000) : json_null(),
                  "cursors", cursors, "quota", json_object_get(snap, "quota"));
    char *t = extra ? json_dumps(extra, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    /* Splice the object's members after the ones above: drop its braces. */
    if (t && strlen(t) > 2) {
        t[strlen(t) - 1] = '\0';
        fprintf(out, ",%s", t + 1);
    }
    free(t);
    json_decref(extra);
    fprintf(out, "}\n");
}

/* The remote quotas connectors reported last (host->quota). */
static void print_quota(FILE *out, const json_t *quota, int64_t now)
{
    size_t i;
    const json_t *q;
    if (json_array_size(quota) == 0) {
        return;
    }
    fprintf(out, "quota (as last reported)\n");
    json_array_foreach(quota, i, q)
    {
        const json_t *v = json_object_get(q, "value");
        int64_t reset = json_integer_value(json_object_get(v, "reset_at")) - now;
        int64_t limit = json_integer_value(json_object_get(v, "limit"));
        char of[32] = "?";
        if (limit > 0) {
            snprintf(of, sizeof(of), "%lld", (long long)limit);
        }
        fprintf(out, "  %-12s %-8s %6lld left of %-6s resets in %llds, seen %llds ago\n",
                json_string_value(json_object_get(q, "instance")),
                json_string_value(json_object_get(q, "key")) + 6,
                (long long)json_integer_value(json_object_get(v, "remaining")), of,
                (long long)(reset > 0 ? reset / 1000 : 0),
                (long long)((now - json_integer_value(json_object_get(q, "updated_at"))) / 1000));
    }
}

static void print_extras(FILE *out, json_t *counters, json_t *seen, int64_t now)
{
    const char *name;
    json_t *v;
    size_t i;
    if (json_object_size(counters) > 0) {
        fprintf(out, "counters\n");
        json_object_foreach(counters, name, v)
        {
            fprintf(out, "  %-40s %lld\n", name, (long long)json_integer_value(v));
        }
    }
    if (json_array_size(seen) > 0) {
        fprintf(out, "webhooks (last delivery per scope)\n");
        json_array_foreach(seen, i, v)
        {
            int64_t ago = (now - json_integer_value(json_object_get(v, "last_at"))) / 1000;
            fprintf(out, "  %-12s %-36s %6llds ago  %lld delivered\n",
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
    json_t *counters = NULL, *seen = NULL, *snap = NULL, *quota = NULL;
    char *text = NULL, *safe = NULL;
    size_t text_len = 0;
    FILE *out = NULL;

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
    if (ferry_redact_configure_from(cfg) < 0) {
        fprintf(stderr, "ferry status: out of memory\n");
        goto cleanup;
    }
    if (ferry_store_open(&store, cfg->state_path, &err) < 0 ||
        ferry_store_job_counts(store, counts, &err) < 0 ||
        ferry_store_ops_snapshot(store, &snap, &err) < 0 ||
        ferry_store_counters(store, &counters, &err) < 0 ||
        ferry_store_webhooks_seen(store, &seen, &err) < 0 ||
        ferry_store_kv_list(store, "quota:", &quota, &err) < 0) {
        fprintf(stderr, "ferry status: %s\n", err.msg);
        goto cleanup;
    }
    json_object_set_new(snap, "quota", quota);
    quota = NULL;
    /* Everything is written to memory first, so that one redaction pass covers it. */
    out = open_memstream(&text, &text_len);
    if (!out) {
        fprintf(stderr, "ferry status: out of memory\n");
        goto cleanup;
    }
    int64_t now = ferry_now_ms();
    if (json) {
        print_json(out, counts, snap, counters, seen, now);
    } else {
        print_table(out, counts, snap, now);
        print_extras(out, counters, seen, now);
        print_quota(out, json_object_get(snap, "quota"), now);
    }
    if (fclose(out) != 0) {
        out = NULL;
        fprintf(stderr, "ferry status: out of memory\n");
        goto cleanup;
    }
    out = NULL;
    safe = ferry_redact_text(text);
    if (!safe || fputs(safe, stdout) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "ferry status: cannot write the output\n");
        goto cleanup;
    }
    status = FERRY_EXIT_OK;
cleanup:
    if (out) {
        fclose(out);
    }
    free(text);
    free(safe);
    json_decref(counters);
    json_decref(seen);
    json_decref(quota);
    json_decref(snap);
    ferry_store_close(store);
    ferry_config_free(cfg);
    (void)!ferry_redact_configure(NULL);
    return status;
}
