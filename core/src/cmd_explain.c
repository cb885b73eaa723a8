/* SPDX-License-Identifier: MIT */
/*
 * `ferry explain` (one record's story across jobs) and `ferry log` (audit
 * rows by correlation ID or time). Both read the state database while the
 * daemon runs and print through the redaction layer, so that an operator
 * can paste their output into a ticket.
 *
 * explain answers "what happened to shop:customer:42?": the links
 * the record has, then every job of it in order with how it arrived, which
 * mapping set ran (jobs.mapping_hash), each audit step (requests with their
 * status, match rules, system-of-record skips, echoes not sent back,
 * conflicts and their policy, writes) and the outcome, then the record's
 * conflict rows. Given a target record instead (crm:Contact:<id>), it
 * explains the source records linked to it.
 *
 * `ferry conflicts` lists the conflict log: fields both systems changed
 * since the last sync, and what the mapping's policy decided.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "redact.h"
#include "store.h"
#include "util.h"

#define DEFAULT_LIMIT 1000

static const char explain_usage[] =
    "usage: ferry explain -c CONFIG CONNECTOR:OBJECT:ID [--json] [--bodies] [--limit N]\n\n"
    "The story of one record across jobs, e.g. 'ferry explain -c ferry.lua\n"
    "shop:customer:42': its links to target records, then every job of\n"
    "it, oldest first, with how it arrived (webhook scope or poll), the mapping\n"
    "set that ran (hash), every audit step (requests with status and duration,\n"
    "match rules, system-of-record decisions, writes) and the outcome. A target\n"
    "record (e.g. crm:Contact:ID) explains the sources linked to it.\n"
    "Output is redacted (secrets, and personal data as configured under privacy).\n"
    "Exit status 0, 1 when nothing is known about the record, 2 usage.\n\n"
    "  -c, --config FILE   configuration file (Lua)\n"
    "      --json          one JSON object instead of text\n"
    "      --bodies        include request and response bodies of HTTP steps\n"
    "      --limit N       at most N jobs (default 1000)\n"
    "  -h, --help          this text\n";

static const char log_usage[] =
    "usage: ferry log -c CONFIG (--correlation ID | --since DATE) [--json] [--bodies]\n"
    "                 [--limit N]\n\n"
    "Audit rows, oldest first: every step of every job (intake, requests with\n"
    "status, match rules, writes, skips), of one correlation ID (it is in every\n"
    "log line of a job and in the X-Correlation-ID of every request) or since a\n"
    "date (2024-05-01 or 2024-05-01T10:00:00Z); both together narrow each other.\n"
    "Output is redacted (secrets, and personal data as configured under privacy).\n\n"
    "  -c, --config FILE     configuration file (Lua)\n"
    "      --correlation ID  rows of this correlation ID\n"
    "      --since DATE      rows at or after DATE\n"
    "      --json            one JSON object {\"audit\": [...]} instead of text\n"
    "      --bodies          include request and response bodies\n"
    "      --limit N         at most N rows (default 1000)\n"
    "  -h, --help            this text\n";

static const char conflicts_usage[] =
    "usage: ferry conflicts -c CONFIG [--since DATE] [--json] [--limit N]\n\n"
    "The conflict log, newest first: each field that both systems changed since\n"
    "the last sync, with the value last synced, the source's and the target's,\n"
    "the policy of the mapping (source, target, newer, park) and what it\n"
    "decided. A parked job is in `ferry dlq list`; fix the record, then retry\n"
    "or drop it. Output is redacted like the audit.\n\n"
    "  -c, --config FILE   configuration file (Lua)\n"
    "      --since DATE    rows at or after DATE (2024-05-01 or 2024-05-01T10:00:00Z)\n"
    "      --json          one JSON object {\"conflicts\": [...]} instead of text\n"
    "      --limit N       at most N rows (default 1000)\n"
    "  -h, --help          this text\n";

enum cmd_kind { CMD_EXPLAIN, CMD_LOG, CMD_CONFLICTS };

struct args {
    const char *config;
    const char *correlation;
    int64_t since_ms;
    bool json;
    bool bodies;
    size_t limit;
    const char *key;
};

static int parse(int argc, char **argv, const char *usage, enum cmd_kind kind, struct args *a)
{
    bool is_log = kind == CMD_LOG;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"correlation", required_argument, NULL, 'r'},
        {"since", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
        {"bodies", no_argument, NULL, 'b'},       {"limit", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int c;
    memset(a, 0, sizeof(*a));
    a->since_ms = -1;
    a->limit = DEFAULT_LIMIT;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'r':
            if (!is_log) {
                goto usage;
            }
            a->correlation = optarg;
            break;
        case 's':
            if (kind == CMD_EXPLAIN || ferry_iso8601_parse(optarg, &a->since_ms) < 0) {
                fprintf(stderr, "ferry: --since takes a date such as 2024-05-01 or "
                                "2024-05-01T10:00:00Z\n");
                goto usage;
            }
            break;
        case 'j':
            a->json = true;
            break;
        case 'b':
            a->bodies = true;
            break;
        case 'l': {
            char *end = NULL;
            long long v = strtoll(optarg, &end, 10);
            if (!optarg[0] || *end || v <= 0) {
                goto usage;
            }
            a->limit = (size_t)v;
            break;
        }
        case 'h':
            fputs(usage, stdout);
            return FERRY_EXIT_OK;
        default:
            goto usage;
        }
    }
    if (!a->config) {
        goto usage;
    }
    if (is_log) {
        if (optind != argc || (!a->correlation && a->since_ms < 0)) {
            goto usage;
        }
    } else if (kind == CMD_CONFLICTS) {
        if (optind != argc) {
            goto usage;
        }
    } else {
        if (optind + 1 != argc) {
            goto usage;
        }
        a->key = argv[optind];
    }
    return -1; /* go on */
usage:
    fputs(usage, stderr);
    return FERRY_EXIT_USAGE;
}

static int open_db(const char *config, struct ferry_config **cfg, struct ferry_store **st)
{
    struct ferry_err err = {0};
    struct stat sb;
    if (ferry_config_load(cfg, config, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        return FERRY_EXIT_FAILURE;
    }
    if (stat((*cfg)->state_path, &sb) != 0) {
        fprintf(stderr, "ferry: state database %s does not exist (has the daemon run?)\n",
                (*cfg)->state_path);
        return FERRY_EXIT_FAILURE;
    }
    if (ferry_redact_configure_from(*cfg) < 0) {
        fprintf(stderr, "ferry: out of memory\n");
        return FERRY_EXIT_FAILURE;
    }
    if (ferry_store_open(st, (*cfg)->state_path, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        return FERRY_EXIT_FAILURE;
    }
    return FERRY_EXIT_OK;
}

/* "2024-05-01T10:00:00.123Z" */
static void format_ts(int64_t ms, char *buf, size_t n)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03dZ", (int)(ms % 1000));
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static json_int_t num(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* A few words on what an audit step means in the record's story. */
static const char *step_role(const json_t *row)
{
    const char *step = str(row, "step");
    const char *detail = str(row, "detail");
    if (strcmp(step, "match") == 0) {
        return "match rule";
    }
    if (strcmp(step, "skip") == 0 && strstr(detail, "source owns")) {
        return "system of record";
    }
    if (strcmp(step, "skip") == 0) {
        return "no write";
    }
    if (strcmp(step, "http") == 0) {
        return "request";
    }
    if (strcmp(step, "owner") == 0) {
        return "system of record";
    }
    if (strcmp(step, "echo") == 0) {
        return "echo not sent back";
    }
    if (strcmp(step, "conflict") == 0) {
        return "conflict";
    }
    if (strcmp(step, "decision") == 0) {
        return "mapping decision";
    }
    return NULL;
}

static void print_body(FILE *out, const char *label, const char *text)
{
    if (!text || !*text) {
        return;
    }
    fprintf(out, "      %s:\n", label);
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len && p[len - 1] == '\r') {
            len--;
        }
        fprintf(out, "        %.*s\n", (int)len, p);
        p = nl ? nl + 1 : p + strlen(p);
    }
}

static void print_audit_row(FILE *out, const json_t *row, bool with_job, bool bodies,
                            const char *indent)
{
    char ts[40];
    format_ts(num(row, "at"), ts, sizeof(ts));
    fprintf(out, "%s%s", indent, ts);
    if (with_job) {
        if (json_object_get(row, "job_id")) {
            fprintf(out, "  job %lld", (long long)num(row, "job_id"));
        } else {
            fprintf(out, "  no job");
        }
    }
    fprintf(out, "  %-6s %-12s", str(row, "step"), str(row, "connector"));
    if (json_object_get(row, "method") || json_object_get(row, "url")) {
        fprintf(out, " %s %s", str(row, "method"), str(row, "url"));
    }
    if (num(row, "status")) {
        fprintf(out, "  %lld", (long long)num(row, "status"));
    }
    if (num(row, "duration_ms")) {
        fprintf(out, "  %lld ms", (long long)num(row, "duration_ms"));
    }
    const char *detail = str(row, "detail");
    if (*detail) {
        fprintf(out, "  %s", detail);
    }
    const char *role = step_role(row);
    if (role && strcmp(role, "request") != 0) {
        fprintf(out, "  [%s]", role);
    }
    fprintf(out, "\n");
    if (bodies) {
        print_body(out, "request", str(row, "request"));
        print_body(out, "response", str(row, "response"));
    }
}

static const char *origin_name(json_int_t origin)
{
    switch (origin) {
    case FERRY_LANE_REALTIME:
        return "webhook";
    case FERRY_LANE_RETRY:
        return "retry";
    default:
        return "poll";
    }
}

static void print_outcome(FILE *out, const json_t *job)
{
    json_int_t state = num(job, "state");
    const char *resolution = str(job, "resolution");
    fprintf(out, "    outcome: %s", ferry_job_state_name((int)state));
    if (*resolution) {
        fprintf(out, ", %s", resolution);
        if (json_object_get(job, "resolved_by")) {
            fprintf(out, " by job %lld", (long long)num(job, "resolved_by"));
        }
    }
    if (state != FERRY_JOB_DONE && json_object_get(job, "last_error")) {
        fprintf(out, " (%s)", str(job, "last_error"));
    }
    fprintf(out, "\n");
}

static void print_links(FILE *out, const json_t *links)
{
    size_t i;
    json_t *l;
    if (json_array_size(links) == 0) {
        fprintf(out, "links: none\n");
        return;
    }
    fprintf(out, "links\n");
    json_array_foreach(links, i, l)
    {
        char ts[40];
        format_ts(num(l, "updated_at"), ts, sizeof(ts));
        const char *dst_id = str(l, "dst_id");
        fprintf(out, "  %s:%s:%s -> %s:%s:%s", str(l, "src_system"), str(l, "src_object"),
                str(l, "src_id"), str(l, "dst_system"), str(l, "dst_object"),
                *dst_id ? dst_id : "(create of unknown outcome)");
        if (json_object_get(l, "etag")) {
            fprintf(out, "  version %s", str(l, "etag"));
        }
        fprintf(out, "  last written %s\n", ts);
        if (json_object_get(l, "fields")) {
            fprintf(out, "    fields last written: %s\n", str(l, "fields"));
        }
    }
}

static void print_conflict(FILE *out, const json_t *c, bool with_record)
{
    char ts[40];
    format_ts(num(c, "at"), ts, sizeof(ts));
    fprintf(out, "%s  ", ts);
    if (with_record) {
        fprintf(out, "%s  ", str(c, "source_key"));
    }
    fprintf(out, "%s:%s:%s %s  policy %s: %s  (job %lld, mapping %s)\n", str(c, "target_system"),
            str(c, "target_object"), str(c, "target_id"), str(c, "field"), str(c, "policy"),
            str(c, "resolution"), (long long)num(c, "job_id"), str(c, "mapping"));
    fprintf(out, "    last synced %s  source %s  target %s\n", str(c, "synced_value"),
            str(c, "source_value"), str(c, "target_value"));
}

/* Every job of `key`, oldest first, each with its audit rows and its payload parsed. */
static int load_story(struct ferry_store *st, const char *key, size_t limit, json_t **jobs,
                      struct ferry_err *err)
{
    size_t i;
    json_t *job;
    int rc = ferry_store_jobs_for_key(st, key, limit, jobs, err);
    if (rc < 0) {
        return rc;
    }
    json_array_foreach(*jobs, i, job)
    {
        json_t *audit = NULL;
        rc = ferry_store_audit_for_job(st, num(job, "id"), &audit, err);
        if (rc < 0) {
            return rc;
        }
        json_object_set_new(job, "audit", audit);
        json_t *payload = json_loads(str(job, "payload"), 0, NULL);
        if (payload) {
            json_object_set_new(job, "payload", payload);
        }
    }
    return 0;
}

static void print_story(FILE *out, const char *key, const json_t *links, const json_t *jobs,
                        const json_t *conflicts, bool bodies)
{
    size_t i;
    json_t *job;
    fprintf(out, "%s\n", key);
    print_links(out, links);
    if (json_array_size(jobs) == 0) {
        fprintf(out, "jobs: none\n");
    }
    json_array_foreach(jobs, i, job)
    {
        char ts[40];
        json_t *payload = json_object_get(job, "payload");
        format_ts(num(job, "created_at"), ts, sizeof(ts));
        fprintf(out, "job %lld  %s  %s", (long long)num(job, "id"), ts,
                origin_name(num(job, "origin")));
        const char *event = json_string_value(json_object_get(payload, "event"));
        const char *scope = json_string_value(json_object_get(payload, "scope"));
        if (event) {
            fprintf(out, " %s", event);
        }
        if (scope) {
            fprintf(out, " (%s)", scope);
        }
        fprintf(out, "  %lld attempt(s)", (long long)num(job, "attempts"));
        const char *hash = str(job, "mapping_hash");
        if (*hash) {
            fprintf(out, "  mapping %.12s", hash);
        }
        fprintf(out, "\n    correlation %s\n", str(job, "correlation_id"));
        if (json_is_true(json_object_get(payload, "pruned"))) {
            fprintf(out, "    (payload pruned by retention)\n");
        }
        size_t k;
        json_t *row;
        json_array_foreach(json_object_get(job, "audit"), k, row)
        {
            print_audit_row(out, row, false, bodies, "    ");
        }
        print_outcome(out, job);
    }
    if (json_array_size(conflicts) > 0) {
        fprintf(out, "conflicts\n");
        json_array_foreach(conflicts, i, job)
        {
            fprintf(out, "  ");
            print_conflict(out, job, false);
        }
    }
}

/* Writes the memory stream's text to stdout through the redaction layer. */
static int emit(FILE *mem, char **text)
{
    if (fclose(mem) != 0) {
        fprintf(stderr, "ferry: out of memory\n");
        return FERRY_EXIT_FAILURE;
    }
    char *safe = ferry_redact_text(*text ? *text : "");
    int rc = FERRY_EXIT_OK;
    if (!safe || fputs(safe, stdout) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "ferry: cannot write the output\n");
        rc = FERRY_EXIT_FAILURE;
    }
    free(safe);
    return rc;
}

/* Keys are "<connector>:<object>:<id>"; the id may itself contain ':'. */
static bool split_key(const char *key, char *sys, size_t sn, char *obj, size_t on, const char **id)
{
    const char *a = strchr(key, ':');
    const char *b = a ? strchr(a + 1, ':') : NULL;
    if (!a || !b || a == key || b == a + 1 || !b[1] || (size_t)(a - key) >= sn ||
        (size_t)(b - a - 1) >= on) {
        return false;
    }
    memcpy(sys, key, (size_t)(a - key));
    sys[a - key] = '\0';
    memcpy(obj, a + 1, (size_t)(b - a - 1));
    obj[b - a - 1] = '\0';
    *id = b + 1;
    return true;
}

int ferry_cmd_explain(int argc, char **argv)
{
    struct args a;
    struct ferry_config *cfg = NULL;
    struct ferry_store *st = NULL;
    struct ferry_err err = {0};
    json_t *stories = NULL;
    char *text = NULL;
    size_t text_len = 0;
    FILE *mem = NULL;
    char sys[128], obj[128];
    const char *id = NULL;
    int status = parse(argc, argv, explain_usage, CMD_EXPLAIN, &a);
    if (status >= 0) {
        return status;
    }
    if (!split_key(a.key, sys, sizeof(sys), obj, sizeof(obj), &id)) {
        fprintf(stderr,
                "ferry explain: '%s' is not CONNECTOR:OBJECT:ID (e.g. "
                "shop:customer:42)\n",
                a.key);
        return FERRY_EXIT_USAGE;
    }
    status = open_db(a.config, &cfg, &st);
    if (status != FERRY_EXIT_OK) {
        goto cleanup;
    }
    status = FERRY_EXIT_FAILURE;
    stories = json_array();
    json_t *links = NULL, *jobs = NULL, *conflicts = NULL;
    if (!stories || ferry_store_links_for_record(st, sys, obj, id, &links, &err) < 0 ||
        load_story(st, a.key, a.limit, &jobs, &err) < 0 ||
        ferry_store_conflicts_list(st, a.key, 0, a.limit, &conflicts, &err) < 0) {
        fprintf(stderr, "ferry explain: %s\n", err.msg[0] ? err.msg : "out of memory");
        json_decref(links);
        json_decref(jobs);
        json_decref(conflicts);
        goto cleanup;
    }
    if (json_array_size(jobs) > 0 || json_array_size(links) == 0) {
        json_array_append_new(stories, json_pack("{s:s, s:o, s:o, s:o}", "record", a.key, "links",
                                                 links, "jobs", jobs, "conflicts", conflicts));
    } else {
        json_decref(conflicts);
        /* A target record: its story is that of each source linked to it. */
        size_t i;
        json_t *l;
        json_decref(jobs);
        json_array_foreach(links, i, l)
        {
            char src[512];
            json_t *sl = NULL, *sj = NULL, *sc = NULL;
            snprintf(src, sizeof(src), "%s:%s:%s", str(l, "src_system"), str(l, "src_object"),
                     str(l, "src_id"));
            if (ferry_store_links_for_record(st, str(l, "src_system"), str(l, "src_object"),
                                             str(l, "src_id"), &sl, &err) < 0 ||
                load_story(st, src, a.limit, &sj, &err) < 0 ||
                ferry_store_conflicts_list(st, src, 0, a.limit, &sc, &err) < 0) {
                fprintf(stderr, "ferry explain: %s\n", err.msg);
                json_decref(sl);
                json_decref(sj);
                json_decref(sc);
                json_decref(links);
                goto cleanup;
            }
            json_array_append_new(stories, json_pack("{s:s, s:s, s:o, s:o, s:o}", "record", src,
                                                     "linked_from", a.key, "links", sl, "jobs", sj,
                                                     "conflicts", sc));
        }
        json_decref(links);
    }
    json_t *first = json_array_get(stories, 0);
    if (json_array_size(stories) == 1 && json_array_size(json_object_get(first, "jobs")) == 0 &&
        json_array_size(json_object_get(first, "links")) == 0) {
        fprintf(stderr, "ferry explain: no jobs and no links for %s\n", a.key);
        goto cleanup;
    }
    mem = open_memstream(&text, &text_len);
    if (!mem) {
        fprintf(stderr, "ferry explain: out of memory\n");
        goto cleanup;
    }
    if (a.json) {
        json_t *doc = json_pack("{s:s, s:O}", "record", a.key, "stories", stories);
        size_t i;
        json_t *s;
        json_array_foreach(stories, i, s)
        {
            size_t k;
            json_t *job;
            json_array_foreach(json_object_get(s, "jobs"), k, job)
            {
                size_t r;
                json_t *row;
                json_array_foreach(json_object_get(job, "audit"), r, row)
                {
                    if (!a.bodies) {
                        json_object_del(row, "request");
                        json_object_del(row, "response");
                    }
                }
                json_object_set_new(job, "state_name",
                                    json_string(ferry_job_state_name((int)num(job, "state"))));
            }
        }
        char *t = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        fprintf(mem, "%s\n", t ? t : "{}");
        free(t);
        json_decref(doc);
    } else {
        size_t i;
        json_t *s;
        json_array_foreach(stories, i, s)
        {
            if (json_object_get(s, "linked_from")) {
                fprintf(mem, "%s%s is linked from:\n", i ? "\n" : "", a.key);
            }
            print_story(mem, str(s, "record"), json_object_get(s, "links"),
                        json_object_get(s, "jobs"), json_object_get(s, "conflicts"), a.bodies);
        }
    }
    status = emit(mem, &text);
    mem = NULL;
cleanup:
    if (mem) {
        fclose(mem);
    }
    free(text);
    json_decref(stories);
    ferry_store_close(st);
    ferry_config_free(cfg);
    (void)!ferry_redact_configure(NULL);
    return status;
}

/* How one listing command reads and prints its rows. */
struct listing {
    const char *name;  /* "log", "conflicts": for messages */
    const char *usage; /* its --help text */
    enum cmd_kind kind;
    const char *key;   /* the JSON document's key */
    const char *empty; /* text when there are no rows */
    int (*load)(struct ferry_store *st, const struct args *a, json_t **rows, struct ferry_err *err);
    void (*print)(FILE *out, const json_t *row, bool bodies);
};

/*
 * `ferry log` and `ferry conflicts`: parse, open the database, read the rows,
 * print them as text or as one JSON document, through the redaction layer.
 */
static int run_listing(const struct listing *l, int argc, char **argv)
{
    struct args a;
    struct ferry_config *cfg = NULL;
    struct ferry_store *st = NULL;
    struct ferry_err err = {0};
    json_t *rows = NULL;
    char *text = NULL;
    size_t text_len = 0;
    FILE *mem = NULL;
    int status = parse(argc, argv, l->usage, l->kind, &a);
    if (status >= 0) {
        return status;
    }
    status = open_db(a.config, &cfg, &st);
    if (status != FERRY_EXIT_OK) {
        goto cleanup;
    }
    status = FERRY_EXIT_FAILURE;
    if (l->load(st, &a, &rows, &err) < 0) {
        fprintf(stderr, "ferry %s: %s\n", l->name, err.msg);
        goto cleanup;
    }
    mem = open_memstream(&text, &text_len);
    if (!mem) {
        fprintf(stderr, "ferry %s: out of memory\n", l->name);
        goto cleanup;
    }
    size_t i;
    json_t *row;
    if (a.json) {
        if (!a.bodies) {
            json_array_foreach(rows, i, row)
            {
                json_object_del(row, "request");
                json_object_del(row, "response");
            }
        }
        json_t *doc = json_pack("{s:O}", l->key, rows);
        char *t = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        fprintf(mem, "%s\n", t ? t : "{}");
        free(t);
        json_decref(doc);
    } else {
        json_array_foreach(rows, i, row)
        {
            l->print(mem, row, a.bodies);
        }
        if (json_array_size(rows) == 0) {
            fprintf(mem, "%s\n", l->empty);
        } else if (json_array_size(rows) == a.limit) {
            fprintf(mem, "(stopped at --limit %zu)\n", a.limit);
        }
    }
    status = emit(mem, &text);
    mem = NULL;
cleanup:
    if (mem) {
        fclose(mem);
    }
    free(text);
    json_decref(rows);
    ferry_store_close(st);
    ferry_config_free(cfg);
    (void)!ferry_redact_configure(NULL);
    return status;
}

static int load_audit(struct ferry_store *st, const struct args *a, json_t **rows,
                      struct ferry_err *err)
{
    return ferry_store_audit_select(st, a->correlation, a->since_ms < 0 ? 0 : a->since_ms, a->limit,
                                    rows, err);
}

static void print_log_row(FILE *out, const json_t *row, bool bodies)
{
    print_audit_row(out, row, true, bodies, "");
}

static int load_conflicts(struct ferry_store *st, const struct args *a, json_t **rows,
                          struct ferry_err *err)
{
    return ferry_store_conflicts_list(st, NULL, a->since_ms < 0 ? 0 : a->since_ms, a->limit, rows,
                                      err);
}

static void print_conflict_row(FILE *out, const json_t *row, bool bodies)
{
    (void)bodies;
    print_conflict(out, row, true);
}

int ferry_cmd_log(int argc, char **argv)
{
    static const struct listing l = {"log",      log_usage,    CMD_LOG, "audit", "(no audit rows)",
                                     load_audit, print_log_row};
    return run_listing(&l, argc, argv);
}

int ferry_cmd_conflicts(int argc, char **argv)
{
    static const struct listing l = {"conflicts",       conflicts_usage,  CMD_CONFLICTS,
                                     "conflicts",       "(no conflicts)", load_conflicts,
                                     print_conflict_row};
    return run_listing(&l, argc, argv);
}
