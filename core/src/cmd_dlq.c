/* SPDX-License-Identifier: MIT */
/*
 * `ferry dlq` (inspect, retry and drop dead letters) and `ferry replay`
 * (queue a job's source event again). Both work on the state database
 * directly, so they can be used while the daemon runs: its scheduler looks
 * at the store at least once a second and picks the jobs up.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "pipeline.h"
#include "redact.h"
#include "store.h"
#include "util.h"

static const char dlq_usage[] =
    "usage: ferry dlq -c CONFIG list [--json]\n"
    "       ferry dlq -c CONFIG show JOB [--json]\n"
    "       ferry dlq -c CONFIG retry (JOB... | --all)\n"
    "       ferry dlq -c CONFIG drop JOB...\n\n"
    "Dead letters are jobs that failed for good: a permanent error (validation,\n"
    "permission, mapping) or a transient one that outlasted retry.max_attempts.\n"
    "A later successful job for the same record marks them superseded on its own.\n\n"
    "  list    open dead letters: id, record, attempts, reason\n"
    "  show    one job with its payload and every audit row (requests, decisions)\n"
    "  retry   queue again, due now, attempts reset (the running daemon picks it up)\n"
    "  drop    close without running\n";

static const char replay_usage[] =
    "usage: ferry replay -c CONFIG (--id JOB | --since DATE | --correlation ID) [--dry-run]\n\n"
    "Queue the source events of earlier jobs again, as new jobs that run with\n"
    "the current mappings: the record is read afresh from the source, so a replay\n"
    "never writes stale data, and unchanged records produce no writes.\n\n"
    "  --id JOB            one job\n"
    "  --since DATE        every job created since DATE (2024-05-01[T10:00:00Z])\n"
    "  --correlation ID    every job with this correlation ID\n"
    "  --dry-run           list what would be queued\n";

static int open_store(const char *config, struct ferry_config **cfg, struct ferry_store **st)
{
    struct ferry_err err = {0};
    struct stat sb;
    if (ferry_config_load(cfg, config, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        return FERRY_EXIT_FAILURE;
    }
    if (stat((*cfg)->state_path, &sb) != 0) {
        fprintf(stderr, "ferry: state database %s does not exist\n", (*cfg)->state_path);
        return FERRY_EXIT_FAILURE;
    }
    if (ferry_store_open(st, (*cfg)->state_path, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        return FERRY_EXIT_FAILURE;
    }
    return FERRY_EXIT_OK;
}

static bool parse_id(const char *text, int64_t *id)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (!text[0] || *end || v <= 0) {
        return false;
    }
    *id = v;
    return true;
}

static json_t *job_json(const struct ferry_job *j)
{
    json_t *payload = json_loads(j->payload, 0, NULL);
    return json_pack("{s:I, s:s, s:s, s:i, s:I, s:I, s:s?, s:s, s:o?}", "id", (json_int_t)j->id,
                     "job_key", j->job_key, "state", ferry_job_state_name(j->state), "attempts",
                     j->attempts, "created_at", (json_int_t)j->created_at_ms, "updated_at",
                     (json_int_t)j->updated_at_ms, "last_error", j->last_error, "correlation_id",
                     j->correlation_id, "payload", payload);
}

static void print_json(FILE *out, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (text) {
        fprintf(out, "%s\n", text);
    }
    free(text);
}

static int dlq_list(FILE *out, struct ferry_store *st, bool json)
{
    struct ferry_err err = {0};
    struct ferry_job **jobs = NULL;
    size_t n = 0;
    if (ferry_store_jobs_dead(st, 10000, &jobs, &n, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        return FERRY_EXIT_FAILURE;
    }
    json_t *arr = json ? json_array() : NULL;
    if (!json) {
        fprintf(out, "%-8s %-36s %-8s %s\n", "job", "record", "attempts", "reason");
    }
    for (size_t i = 0; i < n; i++) {
        if (json) {
            json_array_append_new(arr, job_json(jobs[i]));
        } else {
            fprintf(out, "%-8lld %-36s %-8d %s\n", (long long)jobs[i]->id, jobs[i]->job_key,
                    jobs[i]->attempts, jobs[i]->last_error ? jobs[i]->last_error : "");
        }
        ferry_job_free(jobs[i]);
    }
    free(jobs);
    if (json) {
        json_t *doc = json_pack("{s:o}", "dead_letters", arr);
        print_json(out, doc);
        json_decref(doc);
    } else if (n == 0) {
        fprintf(out, "(no open dead letters)\n");
    }
    return FERRY_EXIT_OK;
}

static int dlq_show(FILE *out, struct ferry_store *st, int64_t id, bool json)
{
    struct ferry_err err = {0};
    struct ferry_job *job = NULL;
    json_t *audit = NULL;
    if (ferry_store_job_get(st, id, &job, &err) < 0 ||
        ferry_store_audit_for_job(st, id, &audit, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        ferry_job_free(job);
        return FERRY_EXIT_FAILURE;
    }
    json_t *doc = job_json(job);
    json_object_set_new(doc, "audit", audit);
    if (json) {
        print_json(out, doc);
    } else {
        fprintf(out, "job %lld  %s  %s  attempts %d\n", (long long)job->id, job->job_key,
                ferry_job_state_name(job->state), job->attempts);
        fprintf(out, "correlation %s\n", job->correlation_id);
        fprintf(out, "reason      %s\n", job->last_error ? job->last_error : "-");
        fprintf(out, "payload     %.400s\n", job->payload);
        size_t i;
        json_t *row;
        json_array_foreach(audit, i, row)
        {
            fprintf(out, "  %-6s %-10s %-6s %3lld %s %s\n",
                    json_string_value(json_object_get(row, "step")),
                    json_string_value(json_object_get(row, "connector"))
                        ? json_string_value(json_object_get(row, "connector"))
                        : "",
                    json_string_value(json_object_get(row, "method"))
                        ? json_string_value(json_object_get(row, "method"))
                        : "",
                    (long long)json_integer_value(json_object_get(row, "status")),
                    json_string_value(json_object_get(row, "url"))
                        ? json_string_value(json_object_get(row, "url"))
                        : "",
                    json_string_value(json_object_get(row, "detail"))
                        ? json_string_value(json_object_get(row, "detail"))
                        : "");
        }
    }
    json_decref(doc);
    ferry_job_free(job);
    return FERRY_EXIT_OK;
}

int ferry_cmd_dlq(int argc, char **argv)
{
    const char *config = NULL, *verb = NULL;
    bool json = false, all = false;
    int64_t ids[256];
    size_t nids = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(dlq_usage, stdout);
            return FERRY_EXIT_OK;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--all") == 0) {
            all = true;
        } else if (!verb) {
            verb = a;
        } else if (nids < sizeof(ids) / sizeof(ids[0]) && parse_id(a, &ids[nids])) {
            nids++;
        } else {
            fprintf(stderr, "ferry dlq: unexpected argument '%s'\n", a);
            fputs(dlq_usage, stderr);
            return FERRY_EXIT_USAGE;
        }
    }
    bool ok = config && verb &&
              ((strcmp(verb, "list") == 0 && nids == 0 && !all) ||
               (strcmp(verb, "show") == 0 && nids == 1 && !all) ||
               (strcmp(verb, "retry") == 0 && (nids > 0) != all) ||
               (strcmp(verb, "drop") == 0 && nids > 0 && !all));
    if (!ok) {
        fputs(dlq_usage, stderr);
        return FERRY_EXIT_USAGE;
    }
    struct ferry_config *cfg = NULL;
    struct ferry_store *st = NULL;
    int status = open_store(config, &cfg, &st);
    if (status != FERRY_EXIT_OK) {
        goto out;
    }
    if (strcmp(verb, "list") == 0 || strcmp(verb, "show") == 0) {
        /* Written to memory first, so that one redaction pass covers it all. */
        char *text = NULL, *safe = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        if (!out || ferry_redact_configure_from(cfg) < 0) {
            fprintf(stderr, "ferry: out of memory\n");
            if (out) {
                fclose(out);
            }
            free(text);
            status = FERRY_EXIT_FAILURE;
            goto out;
        }
        status =
            strcmp(verb, "list") == 0 ? dlq_list(out, st, json) : dlq_show(out, st, ids[0], json);
        fclose(out);
        safe = ferry_redact_text(text ? text : "");
        fputs(safe ? safe : "", stdout);
        free(safe);
        free(text);
        (void)!ferry_redact_configure(NULL);
    } else {
        bool retry = strcmp(verb, "retry") == 0;
        struct ferry_err err = {0};
        if (all) {
            struct ferry_job **jobs = NULL;
            size_t n = 0;
            if (ferry_store_jobs_dead(st, sizeof(ids) / sizeof(ids[0]), &jobs, &n, &err) < 0) {
                fprintf(stderr, "ferry: %s\n", err.msg);
                status = FERRY_EXIT_FAILURE;
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                ids[nids++] = jobs[i]->id;
                ferry_job_free(jobs[i]);
            }
            free(jobs);
        }
        for (size_t i = 0; i < nids; i++) {
            int rc = retry ? ferry_store_job_requeue_dead(st, ids[i], ferry_now_ms(), &err)
                           : ferry_store_job_drop_dead(st, ids[i], ferry_now_ms(), &err);
            if (rc < 0) {
                fprintf(stderr, "ferry: %s\n", err.msg);
                status = FERRY_EXIT_FAILURE;
            } else {
                printf("%s job %lld\n", retry ? "queued again:" : "dropped:", (long long)ids[i]);
            }
        }
    }
out:
    ferry_store_close(st);
    ferry_config_free(cfg);
    return status;
}

/* ---- replay ---- */

int ferry_cmd_replay(int argc, char **argv)
{
    const char *config = NULL, *correlation = NULL;
    int64_t id = 0, since_ms = -1;
    bool dry = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(replay_usage, stdout);
            return FERRY_EXIT_OK;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && v) {
            config = v;
            i++;
        } else if (strcmp(a, "--id") == 0 && v && parse_id(v, &id)) {
            i++;
        } else if (strcmp(a, "--since") == 0 && v && ferry_iso8601_parse(v, &since_ms) == 0) {
            i++;
        } else if (strcmp(a, "--correlation") == 0 && v) {
            correlation = v;
            i++;
        } else if (strcmp(a, "--dry-run") == 0) {
            dry = true;
        } else {
            fprintf(stderr, "ferry replay: unexpected or malformed argument '%s'\n", a);
            fputs(replay_usage, stderr);
            return FERRY_EXIT_USAGE;
        }
    }
    int selectors = (id > 0) + (since_ms >= 0) + (correlation != NULL);
    if (!config || selectors != 1) {
        fputs(replay_usage, stderr);
        return FERRY_EXIT_USAGE;
    }
    struct ferry_config *cfg = NULL;
    struct ferry_store *st = NULL;
    struct ferry_err err = {0};
    struct ferry_job **jobs = NULL;
    size_t n = 0;
    int status = open_store(config, &cfg, &st);
    if (status != FERRY_EXIT_OK) {
        goto out;
    }
    if (ferry_store_jobs_select(st, id, since_ms, correlation, 100000, &jobs, &n, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        status = FERRY_EXIT_FAILURE;
        goto out;
    }
    if (n == 0) {
        fprintf(stderr, "ferry replay: no job matches\n");
        status = FERRY_EXIT_FAILURE;
        goto out;
    }
    if (!dry && ferry_store_begin(st, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        status = FERRY_EXIT_FAILURE;
        goto out;
    }
    int64_t queued = 0;
    for (size_t i = 0; i < n; i++) {
        /* The source event only: the record is read again, never replayed stale. */
        json_t *payload = json_loads(jobs[i]->payload, 0, NULL);
        json_object_del(payload, "record");
        json_object_set_new(payload, "replay_of", json_integer(jobs[i]->id));
        char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
        json_decref(payload);
        printf("%s job %lld (%s)\n", dry ? "would replay" : "replaying", (long long)jobs[i]->id,
               jobs[i]->job_key);
        if (!dry && text) {
            char seed[128], corr[33];
            snprintf(seed, sizeof(seed), "replay:%lld:%lld", (long long)jobs[i]->id,
                     (long long)ferry_now_ms());
            ferry_correlation_from(seed, corr);
            struct ferry_job_new jn = {
                .job_key = jobs[i]->job_key,
                .kind = jobs[i]->kind,
                .payload = text,
                .correlation_id = corr,
                .now_ms = ferry_now_ms(),
                .lane = FERRY_LANE_BACKFILL,
            };
            if (ferry_store_job_enqueue(st, &jn, NULL, NULL, &err) < 0) {
                free(text);
                ferry_store_rollback(st);
                fprintf(stderr, "ferry: %s\n", err.msg);
                status = FERRY_EXIT_FAILURE;
                goto out;
            }
            queued++;
        }
        free(text);
    }
    if (!dry && ferry_store_commit(st, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        status = FERRY_EXIT_FAILURE;
        goto out;
    }
    if (!dry) {
        printf("%lld job(s) queued\n", (long long)queued);
    }
out:
    for (size_t i = 0; i < n; i++) {
        ferry_job_free(jobs[i]);
    }
    free(jobs);
    ferry_store_close(st);
    ferry_config_free(cfg);
    return status;
}
