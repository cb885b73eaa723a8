/* SPDX-License-Identifier: MIT */
/*
 * Mapping throughput (issue 7, benchmark 6): how many source records per
 * second one Lua state turns into intents. Every mapping given on the
 * command line is compiled into ONE mapping set in ONE state, as a worker
 * holds them; each case then runs ferry_mapping_set_run on its fixture
 * record in a loop for a fixed wall time, and a last "mixed" case alternates
 * the records, so the state's caches see what a worker sees.
 *
 * Two figures per case: "map" is ferry_mapping_set_run alone (record as a
 * json_t in, intents as a json_t out), "job" adds what the pipeline does
 * around it for every job: parse the stored payload text, build the context
 * and serialise the intents. The output is one JSON object on stdout;
 * bench/bench_mapping.py prints the table.
 *
 * usage: bench_mapping LUA_DIR SECONDS MAPPING_DIR FIXTURE [MAPPING_DIR FIXTURE ...]
 * SECONDS may also be xN: exactly N records per measurement instead of a
 * wall time, which is what a run under callgrind wants (instructions per
 * record = the measured function's inclusive count / N).
 * Exit status 1 when a mapping fails to load or run, or yields no intent:
 * a broken run, not a slow one.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "errors.h"
#include "mapping.h"

#define MAX_CASES 8

struct bench_case {
    const char *dir;
    const char *fixture;
    char system[64], object[64], event[64];
    json_t *record;          /* the fixture, parsed */
    char *text;              /* the fixture as the job payload would hold it */
    json_t *context;         /* what the pipeline passes as ctx */
    json_t *fixture_context; /* the fixture's own ctx, merged into each job's */
    double map_rate, job_rate;
    int64_t map_n, job_n;
    size_t intents;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The mapping's source (system, object, first event), from a set of its own. */
static int read_source(struct ferry_lua *L, struct bench_case *c, struct ferry_err *err)
{
    struct ferry_mapping_set *one = NULL;
    json_t *sources = NULL;
    const char *paths[1] = {c->dir};
    int rc = ferry_mapping_set_load(L, paths, 1, &one, err);
    if (rc < 0) {
        goto cleanup;
    }
    sources = ferry_mapping_set_sources(one);
    json_t *src = json_array_get(sources, 0);
    const char *sys = json_string_value(json_object_get(src, "system"));
    const char *obj = json_string_value(json_object_get(src, "object"));
    const char *ev = json_string_value(json_array_get(json_object_get(src, "events"), 0));
    if (json_array_size(sources) != 1 || !sys || !obj) {
        rc = ferry_err_set(err, FERRY_EINVAL, "%s: cannot read the mapping's source", c->dir);
        goto cleanup;
    }
    snprintf(c->system, sizeof(c->system), "%s", sys);
    snprintf(c->object, sizeof(c->object), "%s", obj);
    /* A mapping without an `on` list reacts to every event. */
    snprintf(c->event, sizeof(c->event), "%s", ev ? ev : "created");
cleanup:
    json_decref(sources);
    ferry_mapping_set_free(one);
    return rc;
}

static json_t *make_context(const struct bench_case *c, const char *id)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "event", c->event, "system", c->system, "object",
                     c->object, "id", id);
}

/* One record through the mapping set; *n_intents tells whether it produced anything. */
static int run_once(struct ferry_mapping_set *set, struct bench_case *c, bool as_job,
                    size_t *n_intents, struct ferry_err *err)
{
    json_t *record = c->record, *context = c->context, *intents = NULL, *parsed = NULL;
    char *out = NULL;
    int rc;
    if (as_job) {
        parsed = json_loads(c->text, 0, NULL);
        if (!parsed) {
            rc = ferry_err_set(err, FERRY_EINVAL, "%s: fixture does not parse", c->fixture);
            goto cleanup;
        }
        record = parsed;
        json_t *id = json_object_get(parsed, "id");
        char idbuf[32];
        snprintf(idbuf, sizeof(idbuf), "%" JSON_INTEGER_FORMAT,
                 json_is_integer(id) ? json_integer_value(id) : (json_int_t)0);
        context = make_context(c, idbuf);
        if (context && c->fixture_context) {
            /* A new object per job holding the fixture's settings by
             * reference, as the pipeline's job context holds the
             * configuration's (job_context). */
            json_t *merged = json_copy(c->fixture_context);
            if (merged) {
                json_object_update(merged, context);
            }
            json_decref(context);
            context = merged;
        }
    }
    rc = ferry_mapping_set_run(set, c->system, c->object, c->event, record, context, &intents, err);
    if (rc < 0) {
        goto cleanup;
    }
    *n_intents = json_array_size(intents);
    if (as_job) {
        /* The pipeline hands intents on as JSON (audit rows, link fields). */
        out = json_dumps(intents, JSON_COMPACT);
        if (!out) {
            rc = ferry_err_set(err, FERRY_ENOMEM, "intents not serialised");
        }
    }
cleanup:
    free(out);
    json_decref(intents);
    if (as_job) {
        json_decref(context);
    }
    json_decref(parsed);
    return rc;
}

/* How long each measurement runs: a wall time, or an exact record count. */
struct budget {
    double seconds;
    int64_t records; /* > 0: exactly this many, whatever the time */
};

/* Runs `cases` (all when which < 0, alternating) within `b`; returns records/s. */
static int measure(struct ferry_mapping_set *set, struct bench_case *cases, size_t ncases,
                   int which, bool as_job, struct budget b, double *rate, int64_t *count,
                   struct ferry_err *err)
{
    int64_t n = 0;
    double t0 = now_s(), t = t0;
    int rc = 0;
    while (b.records > 0 ? n < b.records : t - t0 < b.seconds) {
        /* Read the clock every 64 records: clock_gettime is cheap, not free. */
        for (int k = 0; k < 64 && (b.records <= 0 || n < b.records); k++, n++) {
            struct bench_case *c = which < 0 ? &cases[(size_t)n % ncases] : &cases[which];
            size_t got = 0;
            rc = run_once(set, c, as_job, &got, err);
            if (rc < 0) {
                goto cleanup;
            }
            if (got == 0) {
                rc = ferry_err_set(err, FERRY_EINVAL, "%s produced no intent for %s", c->dir,
                                   c->fixture);
                goto cleanup;
            }
            c->intents = got;
        }
        t = now_s();
    }
    *rate = t > t0 ? (double)n / (t - t0) : 0;
    *count = n;
cleanup:
    return rc;
}

int main(int argc, char **argv)
{
    struct ferry_err err = {0};
    struct ferry_lua *L = NULL;
    struct ferry_mapping_set *set = NULL;
    struct bench_case cases[MAX_CASES];
    const char *paths[MAX_CASES];
    size_t ncases = 0;
    int status = 1;

    memset(cases, 0, sizeof(cases));
    if (argc < 5 || (argc - 3) % 2 != 0 || (size_t)(argc - 3) / 2 > MAX_CASES) {
        fprintf(stderr, "usage: %s LUA_DIR SECONDS MAPPING_DIR FIXTURE [MAPPING_DIR FIXTURE ...]\n",
                argv[0]);
        return 2;
    }
    const char *lua_dir = argv[1];
    struct budget b = {0}, warm = {0};
    if (argv[2][0] == 'x') {
        b.records = strtoll(argv[2] + 1, NULL, 10);
        warm.records = b.records / 10 + 1;
    } else {
        b.seconds = strtod(argv[2], NULL);
        warm.seconds = b.seconds / 10;
    }
    if (!(b.seconds > 0) && b.records <= 0) {
        fprintf(stderr, "bench_mapping: SECONDS must be positive (or xN, N > 0)\n");
        return 2;
    }
    if (ferry_lua_new(&L, lua_dir, NULL, &err) < 0) {
        fprintf(stderr, "bench_mapping: %s\n", err.msg);
        goto cleanup;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        struct bench_case *c = &cases[ncases];
        json_error_t jerr;
        c->dir = argv[i];
        c->fixture = argv[i + 1];
        json_t *doc = json_load_file(c->fixture, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(doc)) {
            fprintf(stderr, "bench_mapping: %s:%d: %s\n", c->fixture, jerr.line, jerr.text);
            json_decref(doc);
            goto cleanup;
        }
        /* Fixtures are a record, or {"record", "context", "event"} as `ferry map test` reads. */
        json_t *wrapped = json_object_get(doc, "record");
        c->record = json_is_object(wrapped) ? json_incref(wrapped) : json_incref(doc);
        c->text = json_dumps(c->record, JSON_COMPACT);
        if (!c->text || read_source(L, c, &err) < 0) {
            fprintf(stderr, "bench_mapping: %s\n", err.msg[0] ? err.msg : "out of memory");
            json_decref(doc);
            goto cleanup;
        }
        if (json_is_object(wrapped) && json_is_string(json_object_get(doc, "event"))) {
            snprintf(c->event, sizeof(c->event), "%s",
                     json_string_value(json_object_get(doc, "event")));
        }
        json_t *id = json_object_get(c->record, "id");
        char idbuf[32];
        snprintf(idbuf, sizeof(idbuf), "%" JSON_INTEGER_FORMAT,
                 json_is_integer(id) ? json_integer_value(id) : (json_int_t)0);
        c->context = make_context(c, idbuf);
        json_t *fctx = json_is_object(wrapped) ? json_object_get(doc, "context") : NULL;
        if (c->context && json_is_object(fctx)) {
            /* The fixture's own context (settings, links) under what the pipeline sets. */
            json_t *merged = json_deep_copy(fctx);
            if (merged) {
                json_object_update(merged, c->context);
                json_decref(c->context);
                c->context = merged;
                c->fixture_context = json_incref(fctx);
            }
        }
        json_decref(doc);
        paths[ncases++] = c->dir;
    }
    /* One set, one state: a worker holds every enabled mapping together. */
    if (ferry_mapping_set_load(L, paths, ncases, &set, &err) < 0) {
        fprintf(stderr, "bench_mapping: %s\n", err.msg);
        goto cleanup;
    }
    /* Warm up: the first calls fill Lua's string table and the allocator. */
    for (size_t i = 0; i < ncases; i++) {
        double r;
        int64_t n;
        if (measure(set, cases, ncases, (int)i, true, warm, &r, &n, &err) < 0) {
            fprintf(stderr, "bench_mapping: %s\n", err.msg);
            goto cleanup;
        }
    }
    double mixed_map = 0, mixed_job = 0;
    int64_t mixed_map_n = 0, mixed_job_n = 0;
    for (size_t i = 0; i < ncases; i++) {
        if (measure(set, cases, ncases, (int)i, false, b, &cases[i].map_rate, &cases[i].map_n,
                    &err) < 0 ||
            measure(set, cases, ncases, (int)i, true, b, &cases[i].job_rate, &cases[i].job_n,
                    &err) < 0) {
            fprintf(stderr, "bench_mapping: %s\n", err.msg);
            goto cleanup;
        }
    }
    if (ncases > 1 &&
        (measure(set, cases, ncases, -1, false, b, &mixed_map, &mixed_map_n, &err) < 0 ||
         measure(set, cases, ncases, -1, true, b, &mixed_job, &mixed_job_n, &err) < 0)) {
        fprintf(stderr, "bench_mapping: %s\n", err.msg);
        goto cleanup;
    }

    printf("{\"seconds\": %.3f, \"records\": %" PRId64 ", \"cases\": [", b.seconds, b.records);
    for (size_t i = 0; i < ncases; i++) {
        const struct bench_case *c = &cases[i];
        printf("%s{\"mapping\": \"%s\", \"fixture\": \"%s\", \"object\": \"%s\", \"event\": "
               "\"%s\", \"intents\": %zu, \"record_bytes\": %zu, \"map_per_s\": %.1f, "
               "\"map_n\": %" PRId64 ", \"job_per_s\": %.1f, \"job_n\": %" PRId64 "}",
               i ? ", " : "", c->dir, c->fixture, c->object, c->event, c->intents, strlen(c->text),
               c->map_rate, c->map_n, c->job_rate, c->job_n);
    }
    printf("], \"mixed\": {\"map_per_s\": %.1f, \"map_n\": %" PRId64 ", \"job_per_s\": %.1f, "
           "\"job_n\": %" PRId64 "}}\n",
           mixed_map, mixed_map_n, mixed_job, mixed_job_n);
    status = 0;
cleanup:
    ferry_mapping_set_free(set);
    for (size_t i = 0; i < MAX_CASES; i++) {
        json_decref(cases[i].record);
        json_decref(cases[i].context);
        json_decref(cases[i].fixture_context);
        free(cases[i].text);
    }
    ferry_lua_free(L);
    return status;
}
