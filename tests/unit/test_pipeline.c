/* SPDX-License-Identifier: MIT */
/*
 * Pipeline tests: real store, real Lua mappings, and two in-process
 * connectors registered through the same descriptor the plugins export, so
 * that the link / lookup / create / skip decisions are checked without any
 * network.
 */
#define _GNU_SOURCE /* fopencookie, memmem */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "pipeline.h"
#include "runtime.h"
#include "store.h"
#include "util.h"

/* ---- fake source: records by id ---- */

static json_t *src_records; /* {"1": {...}, ...} */
static int src_fetches;

static int src_open(const struct ferry_host_api *host, struct ferry_call *call,
                    const json_t *config, void **state, struct ferry_err *err)
{
    *state = (void *)1;
    return 0;
}

static void src_close(void *state)
{
}

/* A copy of the record (or of member `inner` of the entry) under id, or ENOTFOUND. */
static int fetch_from(const json_t *records, const char *id, const char *inner, json_t **record,
                      struct ferry_err *err)
{
    json_t *r = json_object_get(records, id);
    if (r && inner) {
        r = json_object_get(r, inner);
    }
    if (!r) {
        err->code = FERRY_ENOTFOUND;
        return FERRY_ENOTFOUND;
    }
    *record = json_deep_copy(r);
    return 0;
}

static int src_fetch(void *state, struct ferry_call *call, const char *object, const char *id,
                     json_t **record, struct ferry_err *err)
{
    src_fetches++;
    return fetch_from(src_records, id, NULL, record, err);
}

static int src_loop; /* 1: the same token again; 2: the same records under new tokens */
static int src_loop_calls;

/* Two pages: ids 1,2 then 3, modified strings ascending. */
static int src_list(void *state, struct ferry_call *call, const char *object, const char *since,
                    const char *token, json_t **page, struct ferry_err *err)
{
    const char *ids[] = {"1", "2", "3"};
    const char *mods[] = {"2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z", "2024-01-01T00:00:03Z"};
    if (src_loop) {
        char next[32];
        snprintf(next, sizeof(next), "p%d", src_loop == 1 ? 1 : ++src_loop_calls);
        *page = json_pack("{s:[{s:s, s:s, s:O}], s:s}", "items", "id", "1", "modified",
                          "2024-01-01T00:00:01Z", "record", json_object_get(src_records, "1"),
                          "next", next);
        return 0;
    }
    json_t *items = json_array();
    size_t from = token ? 2 : 0, to = token ? 3 : 2;
    for (size_t i = from; i < to; i++) {
        json_t *rec = json_object_get(src_records, ids[i]);
        if (rec && (!since || strcmp(mods[i], since) >= 0)) {
            /* A copy, as a real connector's page holds records of its own. */
            json_array_append_new(items, json_pack("{s:s, s:s, s:o}", "id", ids[i], "modified",
                                                   mods[i], "record", json_deep_copy(rec)));
        }
    }
    *page = json_pack("{s:o, s:s?}", "items", items, "next", token ? NULL : "2");
    return 0;
}

static json_t *src_last_write;

/* Writes back into the source (two-way sync): fields merged into the record. */
static int src_write(void *state, struct ferry_call *call, const struct ferry_write *w,
                     json_t **result, struct ferry_err *err)
{
    json_t *rec = w->id ? json_object_get(src_records, w->id) : NULL;
    if (w->op != FERRY_WRITE_UPDATE || !rec) {
        err->code = FERRY_ENOTFOUND;
        return FERRY_ENOTFOUND;
    }
    json_object_update(rec, (json_t *)w->fields);
    json_decref(src_last_write);
    src_last_write = json_deep_copy(w->fields);
    *result = json_pack("{s:s, s:n}", "id", w->id, "etag");
    return 0;
}

static const struct ferry_connector src_conn = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "src",
    .version = "1",
    .open = src_open,
    .close = src_close,
    .fetch = src_fetch,
    .list_changes = src_list,
    .write = src_write,
};

/* ---- fake target: an in-memory CRM ---- */

static json_t *dst_records; /* {"T1": {"etag": "e1", "record": {...}}} */
static int dst_creates, dst_updates, dst_lookups, dst_next_id;
static json_t *dst_last_update; /* fields of the last update */
static char dst_last_if_match[64];
static int dst_fail_code;      /* injected failure for writes */
static int dst_refuse_updates; /* updates answer FERRY_EFORBIDDEN (e.g. in approval) */
static int dst_create_unknown; /* creates take effect but report an unknown outcome */
static int64_t dst_fail_retry_after;

static int dst_lookup(void *state, struct ferry_call *call, const char *object, const char *field,
                      const char *value, json_t **found, struct ferry_err *err)
{
    const char *id;
    json_t *entry;
    dst_lookups++;
    *found = NULL;
    json_object_foreach(dst_records, id, entry)
    {
        json_t *rec = json_object_get(entry, "record");
        const char *have = json_string_value(json_object_get(rec, field));
        if (have && strcmp(have, value) == 0) {
            *found = json_pack("{s:s, s:O, s:O}", "id", id, "etag", json_object_get(entry, "etag"),
                               "record", rec);
            return 0;
        }
    }
    return 0;
}

static int dst_write(void *state, struct ferry_call *call, const struct ferry_write *w,
                     json_t **result, struct ferry_err *err)
{
    char id[16], etag[16];
    if (dst_fail_code) {
        err->code = dst_fail_code;
        err->retry_after_ms = dst_fail_retry_after;
        snprintf(err->msg, sizeof(err->msg), "injected failure");
        return dst_fail_code;
    }
    if (w->op == FERRY_WRITE_CREATE) {
        snprintf(id, sizeof(id), "T%d", ++dst_next_id);
        json_object_set_new(dst_records, id,
                            json_pack("{s:s, s:O}", "etag", "e1", "record", w->fields));
        dst_creates++;
        if (dst_create_unknown) {
            dst_create_unknown = 0;
            src_loop = 0;
            src_loop_calls = 0;
            err->code = FERRY_EUNKNOWN_OUTCOME;
            snprintf(err->msg, sizeof(err->msg), "connection reset after sending");
            return FERRY_EUNKNOWN_OUTCOME;
        }
        *result = json_pack("{s:s, s:s}", "id", id, "etag", "e1");
        return 0;
    }
    json_t *entry = json_object_get(dst_records, w->id);
    if (!entry) {
        err->code = FERRY_ENOTFOUND;
        return FERRY_ENOTFOUND;
    }
    if (dst_refuse_updates) {
        err->code = FERRY_EFORBIDDEN;
        snprintf(err->msg, sizeof(err->msg), "in approval: Things('%s') is not modified", w->id);
        return FERRY_EFORBIDDEN;
    }
    snprintf(dst_last_if_match, sizeof(dst_last_if_match), "%s", w->etag ? w->etag : "");
    if (w->etag && strcmp(w->etag, json_string_value(json_object_get(entry, "etag"))) != 0) {
        err->code = FERRY_ECONFLICT;
        return FERRY_ECONFLICT;
    }
    json_object_update(json_object_get(entry, "record"), (json_t *)w->fields);
    snprintf(etag, sizeof(etag), "e%d", ++dst_updates + 1);
    json_object_set_new(entry, "etag", json_string(etag));
    json_decref(dst_last_update);
    dst_last_update = json_deep_copy(w->fields);
    *result = json_pack("{s:s, s:s}", "id", w->id, "etag", etag);
    return 0;
}

static int dst_fetches;
static json_t *dst_last_where; /* conditions of the last lookup_where */

/* Finds a record matching every condition (a string, or one of a list). */
static int dst_lookup_where(void *state, struct ferry_call *call, const char *object,
                            const json_t *where, json_t **found, struct ferry_err *err)
{
    const char *id;
    json_t *entry;
    json_decref(dst_last_where);
    dst_last_where = json_deep_copy(where);
    dst_lookups++;
    *found = NULL;
    json_object_foreach(dst_records, id, entry)
    {
        json_t *rec = json_object_get(entry, "record");
        const char *k;
        json_t *want;
        bool all = true;
        json_object_foreach((json_t *)where, k, want)
        {
            json_t *have = json_object_get(rec, k);
            bool one = json_equal(have, want);
            size_t i;
            json_t *alt;
            json_array_foreach(json_is_array(want) ? want : NULL, i, alt)
            {
                one = one || json_equal(have, alt);
            }
            all = all && one;
        }
        if (all) {
            *found = json_pack("{s:s, s:O, s:O}", "id", id, "etag", json_object_get(entry, "etag"),
                               "record", rec);
            return 0;
        }
    }
    return 0;
}

static int dst_fetch(void *state, struct ferry_call *call, const char *object, const char *id,
                     json_t **record, struct ferry_err *err)
{
    dst_fetches++;
    return fetch_from(dst_records, id, "record", record, err);
}

static int dst_lookup_many_calls;
static size_t dst_lookup_many_values;

/* All values in one call: null, or the record, per value in order. */
static int dst_lookup_many(void *state, struct ferry_call *call, const char *object,
                           const char *field, const char *const *values, size_t n, json_t **found,
                           struct ferry_err *err)
{
    dst_lookup_many_calls++;
    dst_lookup_many_values += n;
    *found = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *one = NULL;
        int rc = dst_lookup(state, call, object, field, values[i], &one, err);
        dst_lookups--; /* counted as the one call above */
        if (rc < 0) {
            return rc;
        }
        json_array_append_new(*found, one ? one : json_null());
    }
    return 0;
}

static const struct ferry_connector dst_conn = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "dst",
    .version = "1",
    .open = src_open,
    .close = src_close,
    .fetch = dst_fetch,
    .lookup = dst_lookup,
    .write = dst_write,
    .lookup_where = dst_lookup_where,
    .lookup_many = dst_lookup_many,
};

/*
 * The target with a batch write (one round trip for several writes), and a
 * look at the state database from another connection while that round trip
 * is under way, which is what another worker or a crash would see.
 */
static const char *peek_db; /* set by setup_batching */
static json_t *peeked;      /* {"running", "links", "steps"} seen inside write_many */
static int crash_in_write_many;

static size_t peek_steps(struct ferry_store *s, int64_t job_id)
{
    struct ferry_err err = {0};
    json_t *rows = NULL;
    size_t i, n = 0;
    json_t *row;
    assert_int_equal(ferry_store_audit_for_job(s, job_id, &rows, &err), 0);
    json_array_foreach(rows, i, row)
    {
        /* A webhook job's intake step is its job row, there from the start. */
        n += strcmp(json_string_value(json_object_get(row, "step")), "intake") != 0;
    }
    json_decref(rows);
    return n;
}

static void peek(void)
{
    struct ferry_store *s = NULL;
    struct ferry_err err = {0};
    int64_t counts[FERRY_JOB_NSTATES];
    json_t *links = NULL;
    assert_int_equal(ferry_store_open(&s, peek_db, &err), 0);
    assert_int_equal(ferry_store_job_counts(s, counts, &err), 0);
    assert_int_equal(ferry_store_links_for_record(s, "src", "thing", "1", &links, &err), 0);
    peeked = json_pack("{s:I, s:I, s:I}", "running", (json_int_t)counts[FERRY_JOB_RUNNING], "links",
                       (json_int_t)json_array_size(links), "steps",
                       (json_int_t)(peek_steps(s, 1) + peek_steps(s, 2)));
    json_decref(links);
    ferry_store_close(s);
}

static int dst_write_many(void *state, struct ferry_call *call, const struct ferry_write *writes,
                          size_t n, json_t **results, struct ferry_err *err)
{
    *results = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *one = NULL;
        struct ferry_err e = {0};
        if (dst_write(state, call, &writes[i], &one, &e) == 0) {
            json_object_set_new(one, "ok", json_true());
        } else {
            json_decref(one);
            one = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", e.code, "error", e.msg);
        }
        json_array_append_new(*results, one);
    }
    if (crash_in_write_many) {
        /* The writes took effect remotely; the process dies before it
         * records anything of them. */
        _exit(3);
    }
    peek();
    return 0;
}

static const struct ferry_connector dst_batch_conn = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "dst",
    .version = "1",
    .open = src_open,
    .close = src_close,
    .fetch = dst_fetch,
    .lookup = dst_lookup,
    .write = dst_write,
    .lookup_many = dst_lookup_many,
    .write_many = dst_write_many,
};

/* ---- fixture ---- */

struct fx {
    char dir[64];
    char db[128];
    char mapdir[128];
    struct ferry_config cfg;
    char *mappings[2];
    struct ferry_runtime *rt;
};

/* The start of every test mapping: src things to dst Things. */
#define MAPPING_HEAD                                                                               \
    "local map = require \"ferry.map\"\n"                                                          \
    "return {\n"                                                                                   \
    "  source = { \"src\", \"thing\", on = { \"created\", \"updated\" } },\n"                      \
    "  target = { \"dst\", \"Things\" },\n"

static const char *mapping_text =
    MAPPING_HEAD "  match  = { \"link\", map.lookup(\"Email\", map.lower \"email\") },\n"
                 "  fields = { Name = \"name\", Email = map.lower \"email\", Phone = \"phone\" },\n"
                 "  owner  = { Phone = \"dst\" },\n"
                 "}\n";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *reverse_mapping;
static int64_t fake_now; /* 0: the real clock */
static const struct ferry_connector *dst_desc = &dst_conn;

static int64_t test_clock(void)
{
    return fake_now ? fake_now : ferry_now_ms();
}

static int setup_with(void **state, const char *second)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct ferry_err err = {0};
    char path[256];
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/ferry-pipeline-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->db, sizeof(fx->db), "%s/state.db", fx->dir);
    snprintf(fx->mapdir, sizeof(fx->mapdir), "%s/m", fx->dir);
    mkdir(fx->mapdir, 0700);
    snprintf(path, sizeof(path), "%s/mapping.lua", fx->mapdir);
    write_file(path, mapping_text);

    fx->mappings[0] = "m";
    fx->cfg.path = "test.lua";
    fx->cfg.dir = fx->dir;
    fx->cfg.state_path = fx->db;
    fx->cfg.workers = 1;
    fx->cfg.mapping_dir = fx->dir;
    fx->cfg.lua_dir = FERRY_SOURCE_DIR "/lua";
    fx->cfg.mappings = fx->mappings;
    fx->cfg.nmappings = 1;
    if (second) {
        snprintf(path, sizeof(path), "%s/r", fx->dir);
        mkdir(path, 0700);
        snprintf(path, sizeof(path), "%s/r/mapping.lua", fx->dir);
        write_file(path, second);
        fx->mappings[1] = "r";
        fx->cfg.nmappings = 2;
    }
    fx->cfg.dedupe_window_ms = 600000;
    fx->cfg.retry_max_attempts = 3;
    fx->cfg.retry_base_ms = 1000;
    fx->cfg.retry_max_ms = 60000;
    fx->cfg.http_timeout_ms = 1000;
    fx->cfg.echo_ttl_ms = 60000;

    src_records = json_object();
    dst_records = json_object();
    src_fetches = dst_creates = dst_updates = dst_lookups = dst_next_id = dst_fetches = 0;
    dst_lookup_many_calls = 0;
    dst_lookup_many_values = 0;
    dst_fail_code = 0;
    dst_refuse_updates = 0;
    fake_now = 0;
    dst_fail_retry_after = 0;
    dst_create_unknown = 0;
    dst_last_update = NULL;
    json_object_set_new(src_records, "1",
                        json_pack("{s:i, s:s, s:s, s:s}", "id", 1, "name", "Jane", "email",
                                  "Jane@Example.com", "phone", "555"));

    assert_int_equal(ferry_runtime_new_empty(&fx->rt, &fx->cfg, &err), 0);
    assert_int_equal(ferry_runtime_add_connector(fx->rt, "src", &src_conn, NULL, &err), 0);
    assert_int_equal(ferry_runtime_add_connector(fx->rt, "dst", dst_desc, NULL, &err), 0);
    dst_desc = &dst_conn;
    peek_db = fx->db;
    crash_in_write_many = 0;
    fx->rt->clock = test_clock;
    if (ferry_runtime_start_workers(fx->rt, &err) != 0) {
        fail_msg("workers: %s", err.msg);
    }
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, NULL);
}

/* The target writes in batches (write_many). */
static int setup_batching(void **state)
{
    dst_desc = &dst_batch_conn;
    return setup_with(state, NULL);
}

/* Both ways: the mapping, and one that reads dst Things back into src. */
static int setup_two_way(void **state)
{
    return setup_with(state, reverse_mapping);
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[256];
    ferry_runtime_free(fx->rt);
    json_decref(src_records);
    json_decref(dst_records);
    json_decref(dst_last_update);
    json_decref(src_last_write);
    src_last_write = NULL;
    json_decref(dst_last_where);
    dst_last_where = NULL;
    json_decref(peeked);
    peeked = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static int64_t enqueue(struct fx *fx, const char *id, const char *event)
{
    struct ferry_err err = {0};
    char payload[256], key[64];
    int64_t job_id = 0;
    snprintf(payload, sizeof(payload),
             "{\"source\":\"src\",\"object\":\"thing\",\"id\":\"%s\",\"event\":\"%s\"}", id, event);
    snprintf(key, sizeof(key), "src:thing:%s", id);
    struct ferry_job_new jn = {
        .job_key = key,
        .kind = "sync",
        .payload = payload,
        .correlation_id = "corr",
        .now_ms = ferry_now_ms(),
    };
    assert_int_equal(ferry_store_job_enqueue(fx->rt->workers[0].store, &jn, &job_id, NULL, &err),
                     0);
    return job_id;
}

/* Replace the main mapping and reload. */
static void use_mapping(struct fx *fx, const char *text)
{
    struct ferry_err err = {0};
    char path[256];
    snprintf(path, sizeof(path), "%s/mapping.lua", fx->mapdir);
    write_file(path, text);
    if (ferry_runtime_reload_mappings(fx->rt, &err) != 0) {
        fail_msg("reload: %s", err.msg);
    }
}

/* Run the oldest pending job; returns its outcome kind. */
static int run_next(struct fx *fx, struct ferry_outcome *out)
{
    struct ferry_err err = {0};
    struct ferry_job **jobs = NULL;
    size_t n = 0;
    assert_int_equal(ferry_store_jobs_pending(fx->rt->workers[0].store, 0, 10, &jobs, &n, &err), 0);
    assert_true(n >= 1);
    assert_int_equal(ferry_pipeline_run_job(&fx->rt->workers[0], jobs[0], out), 0);
    for (size_t i = 0; i < n; i++) {
        ferry_job_free(jobs[i]);
    }
    free(jobs);
    return out->kind;
}

static void test_pipeline_creates_then_skips_unchanged(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    enqueue(fx, "1", "created");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 1);
    assert_int_equal(dst_lookups, 1); /* looked up by e-mail before creating */
    json_t *rec = json_object_get(json_object_get(dst_records, "T1"), "record");
    assert_string_equal(json_string_value(json_object_get(rec, "Email")), "jane@example.com");
    assert_string_equal(json_string_value(json_object_get(rec, "Phone")), "555");

    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(out.writes, 0);
    assert_int_equal(dst_creates, 1);
    assert_int_equal(dst_updates, 0);
}

static void test_pipeline_update_sends_only_changed_fields(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    enqueue(fx, "1", "created");
    run_next(fx, &out);
    json_object_set_new(json_object_get(src_records, "1"), "name", json_string("Janet"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_updates, 1);
    assert_int_equal(json_object_size(dst_last_update), 1);
    assert_string_equal(json_string_value(json_object_get(dst_last_update, "Name")), "Janet");
    assert_string_equal(dst_last_if_match, "e1");
}

static void test_pipeline_target_owned_field_not_overwritten(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    enqueue(fx, "1", "created");
    run_next(fx, &out);
    json_object_set_new(json_object_get(src_records, "1"), "phone", json_string("999"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(out.writes, 0);
    json_t *rec = json_object_get(json_object_get(dst_records, "T1"), "record");
    assert_string_equal(json_string_value(json_object_get(rec, "Phone")), "555");
}

static void test_pipeline_lost_link_matches_by_lookup(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    json_object_set_new(dst_records, "X9",
                        json_pack("{s:s, s:{s:s, s:s}}", "etag", "e7", "record", "Email",
                                  "jane@example.com", "Name", "Old"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 0);
    assert_int_equal(dst_updates, 1);
    assert_string_equal(dst_last_if_match, "e7");
    assert_string_equal(json_string_value(json_object_get(dst_last_update, "Name")), "Jane");
    /* The link is kept: the next change goes straight to X9 without a lookup. */
    json_object_set_new(json_object_get(src_records, "1"), "name", json_string("J"));
    enqueue(fx, "1", "updated");
    run_next(fx, &out);
    assert_int_equal(dst_lookups, 1);
    assert_int_equal(dst_updates, 2);
}

static void test_pipeline_linked_record_gone_is_matched_again(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    enqueue(fx, "1", "created");
    run_next(fx, &out);
    json_object_del(dst_records, "T1");
    json_object_set_new(json_object_get(src_records, "1"), "name", json_string("Janet"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 2);
    assert_non_null(json_object_get(dst_records, "T2"));
}

static void test_pipeline_transient_error_retries_then_dead(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    dst_fail_code = FERRY_ERATELIMIT;
    dst_fail_retry_after = 30000;
    enqueue(fx, "1", "created");
    int64_t before = ferry_now_ms();
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    assert_true(out.retry_at_ms >= before + 30000);
    assert_non_null(strstr(out.error, "injected failure"));
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DEAD); /* retry.max_attempts = 3 */
    int64_t counts[FERRY_JOB_NSTATES];
    struct ferry_err err = {0};
    assert_int_equal(ferry_store_job_counts(fx->rt->workers[0].store, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_DEAD], 1);
}

static void test_pipeline_permanent_error_dead_at_once(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    dst_fail_code = FERRY_EVALIDATION;
    enqueue(fx, "1", "created");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DEAD);
    assert_non_null(strstr(out.error, "EVALIDATION"));
}

static void test_pipeline_conflict_is_parked(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    dst_fail_code = FERRY_ECONFLICT;
    enqueue(fx, "1", "created");
    /* Two more attempts from a fresh plan, then a person decides. */
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DEAD);
    assert_non_null(strstr(out.error, "parked: ECONFLICT"));
}

/* Attempts the target was unavailable for do not count against the conflicting ones. */
static void test_pipeline_conflicts_counted_apart(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    fx->cfg.retry_max_attempts = 10;
    enqueue(fx, "1", "created");
    dst_fail_code = FERRY_EUNAVAILABLE;
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    dst_fail_code = FERRY_ECONFLICT;
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    assert_non_null(strstr(out.error, "(conflicting attempt 1 of 3)"));
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    assert_non_null(strstr(out.error, "(conflicting attempt 2 of 3)"));
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DEAD);
    assert_non_null(strstr(out.error, "parked: ECONFLICT"));
}

static void test_pipeline_source_gone_is_done(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    enqueue(fx, "404", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(out.writes, 0);
    assert_int_equal(dst_lookups, 0);
}

static void test_pipeline_poll_enqueues_and_advances_cursor(void **state)
{
    struct fx *fx = *state;
    struct ferry_poll_result res;
    struct ferry_err err = {0};
    char *cursor = NULL;
    for (int i = 2; i <= 3; i++) {
        char id[4];
        snprintf(id, sizeof(id), "%d", i);
        json_object_set_new(src_records, id,
                            json_pack("{s:i, s:s, s:s}", "id", i, "name", "N", "email", id));
    }
    assert_int_equal(ferry_pipeline_poll(&fx->rt->workers[0], "src", "thing", NULL, &res, &err), 0);
    assert_int_equal(res.pages, 2);
    assert_int_equal(res.records, 3);
    assert_int_equal(res.enqueued, 3);
    /* The first poll of a store has nothing to compare with webhooks. */
    assert_int_equal(res.missed, 0);
    assert_int_equal(
        ferry_store_cursor_get(fx->rt->workers[0].store, "src", "thing", &cursor, &err), 0);
    assert_string_equal(cursor, "2024-01-01T00:00:03Z");
    free(cursor);
    /* Inclusive cursor: record 3 is listed again but is not queued twice. */
    assert_int_equal(ferry_pipeline_poll(&fx->rt->workers[0], "src", "thing", NULL, &res, &err), 0);
    assert_int_equal(res.records, 1);
    assert_int_equal(res.enqueued, 0);
    /* Polled jobs carry their record: no fetch needed. */
    struct ferry_outcome out;
    run_next(fx, &out);
    assert_int_equal(src_fetches, 0);
    assert_int_equal(dst_creates, 1);
}

/* Rewrites a stored payload in place (the same length, or not). */
static void rewrite_payload(struct fx *fx, int64_t id, const char *from, const char *to)
{
    sqlite3 *db = NULL;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE jobs SET payload = replace(payload, '%s', '%s') WHERE id = %lld", from, to,
             (long long)id);
    assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_pipeline_polled_record_is_handed_to_its_job(void **state)
{
    struct fx *fx = *state;
    struct ferry_poll_result res;
    struct ferry_err err = {0};
    struct ferry_outcome out;
    json_object_set_new(src_records, "2",
                        json_pack("{s:i, s:s, s:s}", "id", 2, "name", "Joe", "email", "j@x"));
    assert_int_equal(ferry_pipeline_poll(&fx->rt->workers[0], "src", "thing", NULL, &res, &err), 0);
    assert_int_equal(res.enqueued, 2);
    /* The job takes the record the poll parsed, not its stored text again:
     * an edit of the text that keeps its length goes unseen... */
    rewrite_payload(fx, 1, "Jane", "Jone");
    /* ... and one that does not is what the job reads (the handoff is
     * checked against the stored text). */
    rewrite_payload(fx, 2, "Joe", "Joseph");
    run_next(fx, &out);
    run_next(fx, &out);
    assert_int_equal(dst_creates, 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(dst_records, "T1"), "record"), "Name")),
                        "Jane");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(dst_records, "T2"), "record"), "Name")),
                        "Joseph");
    /* Taken once: a retry of the job reads its text. */
    assert_null(ferry_runtime_payload_take(fx->rt, 1, 0));
}

static void test_pipeline_poll_counts_changes_webhooks_missed(void **state)
{
    struct fx *fx = *state;
    struct ferry_poll_result res;
    struct ferry_err err = {0};
    json_t *counters = NULL;
    struct ferry_store *st = fx->rt->workers[0].store;
    char payload[] = "{\"source\":\"src\",\"object\":\"thing\",\"id\":\"1\",\"event\":\"x\"}";
    /* Record 1 was announced by a webhook (a real-time job after its change
     * at 00:00:01); records 2 and 3 were not. */
    for (int i = 2; i <= 3; i++) {
        char id[4];
        snprintf(id, sizeof(id), "%d", i);
        json_object_set_new(src_records, id, json_pack("{s:i, s:s}", "id", i, "name", "N"));
    }
    struct ferry_job_new jn = {.job_key = "src:thing:1",
                               .kind = "sync",
                               .payload = payload,
                               .correlation_id = "c",
                               .now_ms = 1704067202000LL,
                               .lane = FERRY_LANE_REALTIME};
    assert_int_equal(ferry_store_job_enqueue(st, &jn, NULL, NULL, &err), 0);
    /* An earlier poll left a cursor: from now on, changes are judged. */
    assert_int_equal(ferry_store_cursor_put(st, "src", "thing", "2023-12-31T00:00:00Z", 1, &err),
                     0);
    assert_int_equal(ferry_pipeline_poll(&fx->rt->workers[0], "src", "thing", NULL, &res, &err), 0);
    assert_int_equal(res.enqueued, 3);
    assert_int_equal(res.missed, 2);
    assert_int_equal(ferry_store_counters(st, &counters, &err), 0);
    assert_int_equal(
        json_integer_value(json_object_get(counters, "webhook_missed_total:src:thing")), 2);
    json_decref(counters);
}

static void test_pipeline_backfill_since_keeps_cursor(void **state)
{
    struct fx *fx = *state;
    struct ferry_poll_result res;
    struct ferry_err err = {0};
    struct ferry_store *st = fx->rt->workers[0].store;
    char *cursor = NULL;
    json_object_set_new(src_records, "2", json_pack("{s:i, s:s}", "id", 2, "name", "N"));
    assert_int_equal(ferry_store_cursor_put(st, "src", "thing", "2030-01-01T00:00:00Z", 1, &err),
                     0);
    /* From an explicit date: every record since then, no missed-webhook judgement. */
    assert_int_equal(ferry_pipeline_poll(&fx->rt->workers[0], "src", "thing",
                                         "2024-01-01T00:00:00Z", &res, &err),
                     0);
    assert_int_equal(res.records, 2);
    assert_int_equal(res.missed, 0);
    assert_int_equal(ferry_store_cursor_get(st, "src", "thing", &cursor, &err), 0);
    assert_string_equal(cursor, "2030-01-01T00:00:00Z");
    free(cursor);
}

static void test_pipeline_unknown_create_is_looked_up_not_reposted(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    dst_create_unknown = 1;
    enqueue(fx, "1", "created");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    assert_non_null(strstr(out.error, "EUNKNOWN_OUTCOME"));
    assert_int_equal(dst_creates, 1);
    /* The retry finds the record the first attempt created, and links it. */
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 1);
    assert_int_equal(json_object_size(dst_records), 1);
    json_object_set_new(json_object_get(src_records, "1"), "name", json_string("Janet"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_updates, 1);
    assert_int_equal(dst_creates, 1);
}

static void test_pipeline_poll_stops_on_repeated_pages(void **state)
{
    struct fx *fx = *state;
    struct ferry_poll_result res;
    struct ferry_err err = {0};
    for (int mode = 1; mode <= 2; mode++) {
        src_loop = mode;
        int rc = ferry_pipeline_poll(&fx->rt->workers[0], "src", "thing", NULL, &res, &err);
        assert_int_equal(rc, FERRY_EPROTO);
        assert_non_null(strstr(err.msg, mode == 1 ? "twice" : "same"));
        assert_true(res.pages <= 3);
    }
    /* What the first page brought is kept. */
    int64_t counts[FERRY_JOB_NSTATES];
    assert_int_equal(ferry_store_job_counts(fx->rt->workers[0].store, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 1);
}

static void test_pipeline_rule_intents_activity_and_update(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    use_mapping(fx, MAPPING_HEAD
                "  match = { \"link\", map.lookup(\"Email\", map.lower \"email\") },\n"
                "  fields = { Name = \"name\", Email = map.lower \"email\" },\n"
                "  rules = {\n"
                "    task = function(r) return map.activity{ target = { \"dst\", \"Tasks\" },\n"
                "      key = \"welcome\", fields = { Subject = \"Welcome \" .. r.name } } end,\n"
                "    opp = function(r) return map.update{ target = { \"dst\", \"Opps\" },\n"
                "      match = { map.lookup(\"Owner\", map.lower \"email\") },\n"
                "      fields = { Stage = \"won\" } } end,\n"
                "  },\n"
                "}\n");
    enqueue(fx, "1", "created");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    /* The contact and the task; no opportunity exists, so none is created. */
    assert_int_equal(dst_creates, 2);
    assert_int_equal(dst_updates, 0);

    /* Run again: the task is found by its own link, not created twice; an
     * opportunity now exists and is updated. */
    json_object_set_new(dst_records, "O1",
                        json_pack("{s:s, s:{s:s, s:s}}", "etag", "e1", "record", "Owner",
                                  "jane@example.com", "Stage", "open"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 2);
    assert_int_equal(dst_updates, 1);
    assert_string_equal(json_string_value(json_object_get(dst_last_update, "Stage")), "won");
}

static void test_pipeline_ref_waits_for_the_related_record(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    struct ferry_err err = {0};
    use_mapping(fx,
                MAPPING_HEAD "  fields = { Name = \"name\",\n"
                             "    Account = map.ref{ source = { \"src\", \"org\" }, id = \"org\",\n"
                             "                       target = { \"dst\", \"Accounts\" } } },\n"
                             "}\n");
    json_object_set_new(json_object_get(src_records, "1"), "org", json_integer(9));
    enqueue(fx, "1", "created");
    /* The organisation is not synced yet: the job waits (retry), nothing written. */
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_RETRY);
    assert_non_null(strstr(out.error, "not in dst yet"));
    assert_int_equal(dst_creates, 0);

    struct ferry_link_key key = {.src_system = "src",
                                 .src_object = "org",
                                 .src_id = "9",
                                 .dst_system = "dst",
                                 .dst_object = "Accounts"};
    struct ferry_link link = {.dst_id = "ACC-9"};
    assert_int_equal(ferry_store_link_put(fx->rt->workers[0].store, &key, &link, 1, &err), 0);
    /* Due now: retry at once. */
    struct ferry_job **jobs = NULL;
    size_t n = 0;
    assert_int_equal(ferry_store_jobs_pending(fx->rt->workers[0].store, 0, 1, &jobs, &n, &err), 0);
    jobs[0]->next_attempt_at_ms = 0;
    assert_int_equal(ferry_pipeline_run_job(&fx->rt->workers[0], jobs[0], &out), 0);
    ferry_job_free(jobs[0]);
    free(jobs);
    assert_int_equal(out.kind, FERRY_OUTCOME_DONE);
    json_t *rec = json_object_get(json_object_get(dst_records, "T1"), "record");
    assert_string_equal(json_string_value(json_object_get(rec, "Account")), "ACC-9");
}

static void test_pipeline_rules_see_the_previous_version(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    use_mapping(fx, MAPPING_HEAD
                "  fields = { Name = \"name\" },\n"
                "  rules = { renamed = function(r, ctx)\n"
                "    local before = ctx.previous[\"dst/Things\"]\n"
                "    if not before or before.Name == r.name then return nil end\n"
                "    return map.activity{ target = { \"dst\", \"Tasks\" }, key = \"renamed\",\n"
                "      fields = { Subject = before.Name .. \" is now \" .. r.name } }\n"
                "  end },\n"
                "}\n");
    enqueue(fx, "1", "created");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 1); /* no previous version: no task */
    json_object_set_new(json_object_get(src_records, "1"), "name", json_string("Janet"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 2);
    json_t *task = json_object_get(json_object_get(dst_records, "T2"), "record");
    assert_string_equal(json_string_value(json_object_get(task, "Subject")), "Jane is now Janet");
}

static void test_pipeline_burst_of_updates_is_coalesced(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    struct ferry_err err = {0};
    int64_t counts[FERRY_JOB_NSTATES];
    enqueue(fx, "1", "updated");
    enqueue(fx, "1", "updated");
    enqueue(fx, "1", "updated");
    /* One queued after the first job reads the record: it must still run. */
    char payload[] = "{\"source\":\"src\",\"object\":\"thing\",\"id\":\"1\",\"event\":\"updated\"}";
    struct ferry_job_new late = {.job_key = "src:thing:1",
                                 .kind = "sync",
                                 .payload = payload,
                                 .correlation_id = "c",
                                 .now_ms = ferry_now_ms() + 60000};
    assert_int_equal(ferry_store_job_enqueue(fx->rt->workers[0].store, &late, NULL, NULL, &err), 0);
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(ferry_store_job_counts(fx->rt->workers[0].store, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_DONE], 3); /* the job and the two it covered */
    assert_int_equal(counts[FERRY_JOB_PENDING], 1);
    assert_int_equal(src_fetches, 1);
    json_t *c = NULL;
    assert_int_equal(ferry_store_counters(fx->rt->workers[0].store, &c, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "coalesced_total")), 2);
    json_decref(c);
}

/* The main mapping with a conflict policy (the file's, or a setting's). */
static const char *conflict_mapping_head =
    MAPPING_HEAD "  match  = { \"link\", map.lookup(\"Email\", map.lower \"email\") },\n"
                 "  fields = { Name = \"name\", Email = map.lower \"email\", Phone = \"phone\" },\n"
                 "  owner  = { Phone = \"dst\" },\n";

/* Sync record 1, then change Name on both sides: in the CRM to "CrmName"
 * (with a change time), at the source to "Janet". */
static void both_sides_change_name(struct fx *fx, const char *policy, const char *src_time,
                                   const char *dst_time)
{
    char text[1024];
    struct ferry_outcome out;
    snprintf(text, sizeof(text),
             "%s  conflict = { policy = \"%s\", source_time = \"changed\","
             " target_time = \"Changed\" },\n}\n",
             conflict_mapping_head, policy);
    use_mapping(fx, text);
    enqueue(fx, "1", "created");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    json_t *crm = json_object_get(json_object_get(dst_records, "T1"), "record");
    json_object_set_new(crm, "Name", json_string("CrmName"));
    json_object_set_new(crm, "Changed", json_string(dst_time));
    json_t *rec = json_object_get(src_records, "1");
    json_object_set_new(rec, "name", json_string("Janet"));
    json_object_set_new(rec, "email", json_string("janet@example.com"));
    json_object_set_new(rec, "changed", json_string(src_time));
    enqueue(fx, "1", "updated");
}

static json_t *conflict_rows(struct fx *fx)
{
    json_t *rows = NULL;
    struct ferry_err err = {0};
    assert_int_equal(
        ferry_store_conflicts_list(fx->rt->workers[0].store, "src:thing:1", 0, 100, &rows, &err),
        0);
    return rows;
}

static void test_pipeline_conflict_policy_park_stops_the_job(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    both_sides_change_name(fx, "park", "2024-05-01T10:00:00Z", "2024-05-01T09:00:00Z");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DEAD);
    assert_non_null(strstr(out.error, "parked"));
    assert_non_null(strstr(out.error, "Name"));
    assert_int_equal(dst_updates, 0); /* nothing written, not even the e-mail */
    json_t *rows = conflict_rows(fx);
    assert_int_equal(json_array_size(rows), 1);
    json_t *row = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_object_get(row, "field")), "Name");
    assert_string_equal(json_string_value(json_object_get(row, "policy")), "park");
    assert_string_equal(json_string_value(json_object_get(row, "resolution")), "parked");
    assert_string_equal(json_string_value(json_object_get(row, "target_value")),
                        "{\"Name\":\"CrmName\"}");
    assert_string_equal(json_string_value(json_object_get(row, "source_value")),
                        "{\"Name\":\"Janet\"}");
    assert_string_equal(json_string_value(json_object_get(row, "synced_value")),
                        "{\"Name\":\"Jane\"}");
    json_decref(rows);
}

static void test_pipeline_conflict_policy_target_keeps_the_crm_value(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    both_sides_change_name(fx, "target", "2024-05-01T10:00:00Z", "2024-05-01T09:00:00Z");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    /* The e-mail, changed at the source only, is written; the name is not. */
    assert_int_equal(dst_updates, 1);
    assert_null(json_object_get(dst_last_update, "Name"));
    assert_string_equal(json_string_value(json_object_get(dst_last_update, "Email")),
                        "janet@example.com");
    json_t *crm = json_object_get(json_object_get(dst_records, "T1"), "record");
    assert_string_equal(json_string_value(json_object_get(crm, "Name")), "CrmName");
    json_t *rows = conflict_rows(fx);
    assert_int_equal(json_array_size(rows), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "resolution")),
                        "target kept");
    json_decref(rows);
}

static void test_pipeline_conflict_policy_newer_compares_change_times(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    /* The source changed later: its value wins. */
    both_sides_change_name(fx, "newer", "2024-05-01T10:00:00Z", "/Date(1714550400000)/");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_string_equal(json_string_value(json_object_get(dst_last_update, "Name")), "Janet");
    json_t *rows = conflict_rows(fx);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "resolution")),
                        "source written (newer)");
    json_decref(rows);

    /* Now the CRM changes later than the source: the CRM's value stays. */
    json_t *crm = json_object_get(json_object_get(dst_records, "T1"), "record");
    json_object_set_new(crm, "Name", json_string("CrmAgain"));
    json_object_set_new(crm, "Changed", json_string("2024-05-02T12:00:00Z"));
    json_t *rec = json_object_get(src_records, "1");
    json_object_set_new(rec, "name", json_string("SourceAgain"));
    json_object_set_new(rec, "changed", json_string("2024-05-02T11:00:00Z"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_string_equal(json_string_value(json_object_get(crm, "Name")), "CrmAgain");
    rows = conflict_rows(fx);
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "resolution")),
                        "target kept (newer)");
    json_decref(rows);
}

static void test_pipeline_conflict_setting_overrides_the_policy(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    fx->cfg.mapping_settings = json_pack("{s:{s:s}}", "m", "conflict", "park");
    both_sides_change_name(fx, "source", "2024-05-01T10:00:00Z", "2024-05-01T09:00:00Z");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DEAD);
    assert_non_null(strstr(out.error, "parked"));
    json_decref(fx->cfg.mapping_settings);
    fx->cfg.mapping_settings = NULL;
}

static void test_pipeline_no_policy_means_no_extra_read(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    enqueue(fx, "1", "created");
    run_next(fx, &out);
    json_object_set_new(json_object_get(src_records, "1"), "name", json_string("Janet"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_fetches, 0);
    json_t *rows = conflict_rows(fx);
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);
    /* One way only: no mapping reads Things back, so no write is remembered. */
    struct ferry_err err = {0};
    assert_int_equal(ferry_store_echo_get(fx->rt->workers[0].store, "dst", "Things", "T1",
                                          ferry_now_ms(), &rows, &err),
                     0);
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);
}

/* The way back: the CRM record (dst Things) to the source's thing. */
static const char *reverse_mapping = "return {\n"
                                     "  source = { \"dst\", \"Things\" },\n"
                                     "  target = { \"src\", \"thing\" },\n"
                                     "  op = \"update\",\n"
                                     "  key = \"Key\",\n"
                                     "  fields = { name = \"Name\", phone = \"Phone\" },\n"
                                     "}\n";

static void test_pipeline_write_is_remembered_when_read_back(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    json_t *rows = NULL;
    struct ferry_err err = {0};
    struct ferry_store *st = fx->rt->workers[0].store;
    enqueue(fx, "1", "created");
    run_next(fx, &out);
    json_object_set_new(json_object_get(src_records, "1"), "name", json_string("Janet"));
    enqueue(fx, "1", "updated");
    run_next(fx, &out);
    assert_int_equal(ferry_store_echo_get(st, "dst", "Things", "T1", ferry_now_ms(), &rows, &err),
                     0);
    /* Created with Name, Email and Phone, then Name updated: every value
     * written is known, the name's old value too. */
    assert_int_equal(json_array_size(rows), 4);
    size_t i;
    json_t *row;
    int names = 0;
    json_array_foreach(rows, i, row)
    {
        assert_string_equal(json_string_value(json_object_get(row, "origin")), "src");
        names += strcmp(json_string_value(json_object_get(row, "field")), "Name") == 0;
    }
    assert_int_equal(names, 2);
    json_decref(rows);
}

static void test_pipeline_echo_of_own_write_is_not_sent_back(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    struct ferry_err err = {0};
    struct ferry_store *st = fx->rt->workers[0].store;
    char h[FERRY_SHA256_HEX_LEN + 1];
    enqueue(fx, "1", "created");
    run_next(fx, &out);
    /* Ferry wrote name "Jane-from-crm" into src thing 1 for the dst system;
     * since then someone at the source also changed the e-mail. */
    json_t *v = json_string("Jane-from-crm");
    assert_int_equal(ferry_json_hash(v, h), 0);
    json_decref(v);
    int64_t now = ferry_now_ms();
    assert_int_equal(
        ferry_store_echo_put(st, "src", "thing", "1", "name", h, "dst", now, now + 60000, &err), 0);
    json_t *rec = json_object_get(src_records, "1");
    json_object_set_new(rec, "name", json_string("Jane-from-crm"));
    json_object_set_new(rec, "email", json_string("new@example.com"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_updates, 1);
    assert_null(json_object_get(dst_last_update, "Name")); /* the echo stays home */
    assert_string_equal(json_string_value(json_object_get(dst_last_update, "Email")),
                        "new@example.com");

    /* A later real change of the same field (no longer the ledger's value) is sent. */
    json_object_set_new(rec, "name", json_string("Jane Doe"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_string_equal(json_string_value(json_object_get(dst_last_update, "Name")), "Jane Doe");

    /* Only an echo: the job ends without a write, audited as an echo. */
    json_object_set_new(rec, "name", json_string("Jane-from-crm"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(out.writes, 0);
    int64_t n = 0;
    assert_int_equal(ferry_store_audit_count(st, "echo", NULL, &n, &err), 0);
    assert_int_equal(n, 2);
}

static void test_pipeline_reverse_link_finds_the_counterpart(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    struct ferry_err err = {0};
    /* src thing 1 -> dst T1 exists; now a change of T1 comes from the CRM. */
    enqueue(fx, "1", "created");
    run_next(fx, &out);
    json_t *crm = json_object_get(json_object_get(dst_records, "T1"), "record");
    json_object_set_new(crm, "Key", json_string("T1"));
    json_object_set_new(crm, "Phone", json_string("777"));
    char payload[512];
    char *rec = json_dumps(crm, JSON_COMPACT);
    snprintf(payload, sizeof(payload),
             "{\"source\":\"dst\",\"object\":\"Things\",\"id\":\"T1\",\"event\":\"updated\","
             "\"record\":%s}",
             rec);
    free(rec);
    struct ferry_job_new jn = {.job_key = "dst:Things:T1",
                               .kind = "sync",
                               .payload = payload,
                               .correlation_id = "corr2",
                               .now_ms = ferry_now_ms()};
    assert_int_equal(ferry_store_job_enqueue(fx->rt->workers[0].store, &jn, NULL, NULL, &err), 0);
    int before = src_fetches;
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    /* The source record was read (to compare), not looked up or created. */
    assert_int_equal(src_fetches, before + 1);
    assert_int_equal(out.writes, 1);
    assert_int_equal(dst_lookups, 1); /* only the first sync's, before the create */
    /* Only what differs is written back: the name is the same on both sides. */
    assert_int_equal(json_object_size(src_last_write), 1);
    assert_string_equal(json_string_value(json_object_get(src_last_write, "phone")), "777");
}

/* An update the target refuses as not allowed becomes the rule's task. */
static const char *instead_mapping = MAPPING_HEAD
    "  op     = \"update\",\n"
    "  match  = { map.lookup(\"Email\", map.lower \"email\") },\n"
    "  fields = { Name = \"name\" },\n"
    "  instead = function(r, ctx)\n"
    "    return map.activity { target = { \"dst\", \"Tasks\" }, key = \"blocked\",\n"
    "                          fields = { Subject = \"move \" .. r.name .. \" by hand\" } }\n"
    "  end,\n"
    "}\n";

static void test_pipeline_refused_update_makes_the_task_instead(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    use_mapping(fx, instead_mapping);
    json_object_set_new(dst_records, "X1",
                        json_pack("{s:s, s:{s:s, s:s}}", "etag", "e1", "record", "Email",
                                  "jane@example.com", "Name", "Old"));
    dst_refuse_updates = 1;
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 1);
    json_t *task = json_object_get(json_object_get(dst_records, "T1"), "record");
    assert_string_equal(json_string_value(json_object_get(task, "Subject")), "move Jane by hand");
    /* Again: the task is found by its link and not made twice. */
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 1);
    /* Other failures are not turned into tasks. */
    dst_refuse_updates = 0;
    dst_fail_code = FERRY_EVALIDATION;
    json_object_set_new(json_object_get(src_records, "1"), "name", json_string("Janet"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DEAD);
}

/* A rule that closes the task another record (a cart) made, if it is recent. */
static const char *linked_mapping =
    MAPPING_HEAD "  fields = { Name = \"name\" },\n"
                 "  rules = { close = function(r, ctx)\n"
                 "    return map.update { target = { \"dst\", \"Tasks\" }, key = \"close\",\n"
                 "      match = { map.linked(\"cart\", r.cart, { within_hours = 2 }) },\n"
                 "      fields = { Status = \"done\" } }\n"
                 "  end },\n"
                 "}\n";

static void test_pipeline_linked_match_finds_another_records_target(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    struct ferry_err err = {0};
    use_mapping(fx, linked_mapping);
    json_object_set_new(dst_records, "K7",
                        json_pack("{s:s, s:{s:s}}", "etag", "e1", "record", "Status", "open"));
    json_object_set_new(dst_records, "K8",
                        json_pack("{s:s, s:{s:s}}", "etag", "e1", "record", "Status", "open"));
    int64_t t0 = ferry_now_ms();
    struct ferry_link_key k7 = {.src_system = "src",
                                .src_object = "cart",
                                .src_id = "c-7",
                                .dst_system = "dst",
                                .dst_object = "Tasks"};
    struct ferry_link link = {.dst_id = "K7", .etag = "e1", .fields = "{\"Status\":\"open\"}"};
    assert_int_equal(ferry_store_link_put(fx->rt->workers[0].store, &k7, &link, t0, &err), 0);
    struct ferry_link_key k8 = k7;
    k8.src_id = "c-8";
    link.dst_id = "K8";
    /* Written three hours ago: too old for "within 2 hours". */
    assert_int_equal(
        ferry_store_link_put(fx->rt->workers[0].store, &k8, &link, t0 - 3 * 3600 * 1000, &err), 0);

    json_object_set_new(json_object_get(src_records, "1"), "cart", json_string("c-7"));
    enqueue(fx, "1", "created");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    json_t *k7rec = json_object_get(json_object_get(dst_records, "K7"), "record");
    assert_string_equal(json_string_value(json_object_get(k7rec, "Status")), "done");

    json_object_set_new(src_records, "2",
                        json_pack("{s:i, s:s, s:s, s:s}", "id", 2, "name", "Joe", "email",
                                  "joe@example.com", "cart", "c-8"));
    enqueue(fx, "2", "created");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    json_t *k8rec = json_object_get(json_object_get(dst_records, "K8"), "record");
    assert_string_equal(json_string_value(json_object_get(k8rec, "Status")), "open");
    /* Unless the clock says the order came soon after. */
    fake_now = t0 - 3 * 3600 * 1000 + 60 * 1000;
    json_object_set_new(json_object_get(src_records, "2"), "name", json_string("Joseph"));
    enqueue(fx, "2", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_string_equal(json_string_value(json_object_get(k8rec, "Status")), "done");
}

/* A lookup with conditions finds only the record that meets all of them. */
static const char *where_mapping = MAPPING_HEAD
    "  op     = \"update\",\n"
    "  match  = { map.lookup(\"Email\", map.lower \"email\", { Status = { \"1\", \"2\" },\n"
    "             Kind = function(r, ctx) return \"deal\" end }) },\n"
    "  fields = { Name = \"name\" },\n"
    "}\n";

static void test_pipeline_lookup_with_conditions(void **state)
{
    struct fx *fx = *state;
    struct ferry_outcome out;
    use_mapping(fx, where_mapping);
    json_object_set_new(dst_records, "W1",
                        json_pack("{s:s, s:{s:s, s:s, s:s}}", "etag", "e1", "record", "Email",
                                  "jane@example.com", "Status", "3", "Kind", "deal"));
    json_object_set_new(dst_records, "W2",
                        json_pack("{s:s, s:{s:s, s:s, s:s}}", "etag", "e1", "record", "Email",
                                  "jane@example.com", "Status", "2", "Kind", "deal"));
    enqueue(fx, "1", "updated");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_updates, 1);
    json_t *w2 = json_object_get(json_object_get(dst_records, "W2"), "record");
    assert_string_equal(json_string_value(json_object_get(w2, "Name")), "Jane");
    json_t *w1 = json_object_get(json_object_get(dst_records, "W1"), "record");
    assert_null(json_object_get(w1, "Name"));
    /* The field's own value joined the conditions. */
    assert_string_equal(json_string_value(json_object_get(dst_last_where, "Email")),
                        "jane@example.com");
    assert_string_equal(json_string_value(json_object_get(dst_last_where, "Kind")), "deal");
    assert_int_equal(json_array_size(json_object_get(dst_last_where, "Status")), 2);
}

/* A batch asks for the lookups of its new records in one round trip. */
static void test_pipeline_batch_shares_one_lookup_request(void **state)
{
    struct fx *fx = *state;
    struct ferry_err err = {0};
    struct ferry_job **jobs = NULL;
    size_t n = 0;
    struct ferry_outcome outs[3];
    json_object_set_new(
        src_records, "2",
        json_pack("{s:i, s:s, s:s}", "id", 2, "name", "Joe", "email", "joe@example.com"));
    json_object_set_new(
        src_records, "3",
        json_pack("{s:i, s:s, s:s}", "id", 3, "name", "Ann", "email", "ann@example.com"));
    /* Ann is in the target already: matched, not created. */
    json_object_set_new(dst_records, "A1",
                        json_pack("{s:s, s:{s:s, s:s}}", "etag", "e1", "record", "Email",
                                  "ann@example.com", "Name", "Ann"));
    enqueue(fx, "1", "created");
    enqueue(fx, "2", "created");
    enqueue(fx, "3", "created");
    assert_int_equal(ferry_store_jobs_pending(fx->rt->workers[0].store, 0, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ferry_pipeline_run_batch(&fx->rt->workers[0], jobs, n, outs), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(outs[i].kind, FERRY_OUTCOME_DONE);
        ferry_job_free(jobs[i]);
    }
    free(jobs);
    assert_int_equal(dst_lookup_many_calls, 1);
    assert_int_equal(dst_lookups, 0); /* none one by one */
    assert_int_equal(dst_creates, 2);
    assert_int_equal(json_object_size(dst_records), 3);
}

/*
 * Two things queued and listed for a batch: 1 is new in the target, 2 is
 * there (A1) under an older name, so it is matched and updated. *jobs is
 * freed by the caller.
 */
static void two_things(struct fx *fx, struct ferry_job ***jobs, size_t *n)
{
    struct ferry_err err = {0};
    json_object_set_new(
        src_records, "2",
        json_pack("{s:i, s:s, s:s}", "id", 2, "name", "Joe", "email", "joe@example.com"));
    json_object_set_new(dst_records, "A1",
                        json_pack("{s:s, s:{s:s, s:s}}", "etag", "e1", "record", "Email",
                                  "joe@example.com", "Name", "Joseph"));
    enqueue(fx, "1", "created");
    enqueue(fx, "2", "created");
    assert_int_equal(ferry_store_jobs_pending(fx->rt->workers[0].store, 0, 10, jobs, n, &err), 0);
    assert_int_equal(*n, 2);
}

static void free_jobs(struct ferry_job **jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ferry_job_free(jobs[i]);
    }
    free(jobs);
}

static void test_pipeline_batch_records_its_end_in_one_transaction(void **state)
{
    struct fx *fx = *state;
    struct ferry_err err = {0};
    struct ferry_job **jobs = NULL;
    size_t n = 0;
    struct ferry_outcome outs[2];
    json_t *rows = NULL;
    two_things(fx, &jobs, &n);
    assert_int_equal(ferry_pipeline_run_batch(&fx->rt->workers[0], jobs, n, outs), 0);
    free_jobs(jobs, n);
    assert_int_equal(outs[0].kind, FERRY_OUTCOME_DONE);
    assert_int_equal(outs[1].kind, FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 1);
    assert_int_equal(dst_updates, 1);

    /* During the round trip, others saw the leases and nothing else (not
     * even the match found before it). */
    assert_non_null(peeked);
    assert_int_equal(json_integer_value(json_object_get(peeked, "running")), 2);
    assert_int_equal(json_integer_value(json_object_get(peeked, "links")), 0);
    assert_int_equal(json_integer_value(json_object_get(peeked, "steps")), 0);

    /* After it: outcomes, links, the mapping that decided, and each job's
     * steps in the order they happened. */
    struct ferry_store *s = fx->rt->workers[0].store;
    int64_t counts[FERRY_JOB_NSTATES];
    assert_int_equal(ferry_store_job_counts(s, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_DONE], 2);
    struct ferry_link link = {0};
    struct ferry_link_key key = {.src_system = "src",
                                 .src_object = "thing",
                                 .src_id = "2",
                                 .dst_system = "dst",
                                 .dst_object = "Things"};
    assert_int_equal(ferry_store_link_get(s, &key, &link, &err), 0);
    assert_string_equal(link.dst_id, "A1");
    ferry_link_clear(&link);
    key.src_id = "1";
    assert_int_equal(ferry_store_link_get(s, &key, &link, &err), 0);
    assert_string_equal(link.dst_id, "T1");
    ferry_link_clear(&link);
    assert_int_equal(ferry_store_jobs_for_key(s, "src:thing:2", 10, &rows, &err), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "mapping_hash")),
                        ferry_mapping_set_hash(fx->rt->workers[0].mappings));
    json_decref(rows);
    assert_int_equal(ferry_store_audit_for_job(s, 2, &rows, &err), 0);
    const char *want[][2] = {{"intake", NULL},
                             {"match", "A1: matched by Email"},
                             {"write", "written in a batch of 2"},
                             {"write", "A1: updated 1 field(s)"}};
    assert_int_equal(json_array_size(rows), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *row = json_array_get(rows, i);
        assert_string_equal(json_string_value(json_object_get(row, "step")), want[i][0]);
        if (want[i][1]) {
            assert_non_null(strstr(json_string_value(json_object_get(row, "detail")), want[i][1]));
        }
    }
    json_decref(rows);
}

static void test_pipeline_crash_mid_batch_leaves_jobs_to_run_again(void **state)
{
    struct fx *fx = *state;
    struct ferry_err err = {0};
    struct ferry_job **jobs = NULL;
    size_t n = 0;
    struct ferry_outcome outs[2];
    int status = 0;
    two_things(fx, &jobs, &n);

    crash_in_write_many = 1;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)ferry_pipeline_run_batch(&fx->rt->workers[0], jobs, n, outs);
        _exit(0); /* not reached: write_many ends the process */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    crash_in_write_many = 0;

    /* The crash left the leases and nothing half-written: no links, no steps. */
    struct ferry_store *s = NULL;
    int64_t counts[FERRY_JOB_NSTATES], requeued = 0;
    json_t *links = NULL;
    assert_int_equal(ferry_store_open(&s, fx->db, &err), 0);
    assert_int_equal(ferry_store_job_counts(s, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_RUNNING], 2);
    assert_int_equal(ferry_store_links_for_record(s, "src", "thing", "1", &links, &err), 0);
    assert_int_equal(json_array_size(links), 0);
    json_decref(links);
    assert_int_equal(peek_steps(s, 1) + peek_steps(s, 2), 0);

    /* The next start takes them back; the creates did happen remotely, and
     * the match rules find them instead of creating them again. */
    assert_int_equal(ferry_store_jobs_requeue_running(s, ferry_now_ms(), &requeued, &err), 0);
    assert_int_equal(requeued, 2);
    ferry_store_close(s);
    json_object_set_new(dst_records, "T1",
                        json_pack("{s:s, s:{s:s, s:s}}", "etag", "e1", "record", "Email",
                                  "jane@example.com", "Name", "Jane"));
    free_jobs(jobs, n);
    assert_int_equal(ferry_store_jobs_pending(fx->rt->workers[0].store, 0, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ferry_pipeline_run_batch(&fx->rt->workers[0], jobs, n, outs), 0);
    free_jobs(jobs, n);
    assert_int_equal(outs[0].kind, FERRY_OUTCOME_DONE);
    assert_int_equal(outs[1].kind, FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 0);
    assert_int_equal(json_object_size(dst_records), 2);
    assert_int_equal(
        ferry_store_links_for_record(fx->rt->workers[0].store, "src", "thing", "1", &links, &err),
        0);
    assert_int_equal(json_array_size(links), 1);
    json_decref(links);
}

/* A log sink that ends the process at the line a job's end writes before its commit. */
static ssize_t die_at_job_done(void *cookie, const char *buf, size_t n)
{
    (void)cookie;
    if (memmem(buf, n, "job done", 8)) {
        _exit(4);
    }
    return (ssize_t)n;
}

static void test_pipeline_job_alone_records_its_write_with_its_end(void **state)
{
    struct fx *fx = *state;
    struct ferry_err err = {0};
    struct ferry_outcome out;
    int status = 0;
    enqueue(fx, "1", "created");

    /* The process dies after the create was answered, inside the job's end. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *sink = fopencookie(NULL, "w", (cookie_io_functions_t){.write = die_at_job_done});
        setvbuf(sink, NULL, _IONBF, 0);
        ferry_log_set_sink(sink);
        ferry_log_set_level(FERRY_LOG_DEBUG);
        run_next(fx, &out);
        _exit(0); /* not reached */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 4);

    /* Nothing of the job's end is stored, the link included: the write and
     * the outcome share one commit. */
    struct ferry_store *s = NULL;
    json_t *links = NULL;
    int64_t counts[FERRY_JOB_NSTATES], requeued = 0;
    assert_int_equal(ferry_store_open(&s, fx->db, &err), 0);
    assert_int_equal(ferry_store_links_for_record(s, "src", "thing", "1", &links, &err), 0);
    assert_int_equal(json_array_size(links), 0);
    json_decref(links);
    assert_int_equal(ferry_store_job_counts(s, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_RUNNING], 1);
    assert_int_equal(peek_steps(s, 1), 0);
    assert_int_equal(ferry_store_jobs_requeue_running(s, ferry_now_ms(), &requeued, &err), 0);
    ferry_store_close(s);

    /* The create took effect remotely; the job's next run finds it. */
    json_object_set_new(dst_records, "T1",
                        json_pack("{s:s, s:{s:s, s:s}}", "etag", "e1", "record", "Email",
                                  "jane@example.com", "Name", "Jane"));
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE);
    assert_int_equal(dst_creates, 0);
    assert_int_equal(json_object_size(dst_records), 1);
    assert_int_equal(
        ferry_store_links_for_record(fx->rt->workers[0].store, "src", "thing", "1", &links, &err),
        0);
    assert_int_equal(json_array_size(links), 1);
    json_decref(links);
}

static void test_pipeline_batch_asks_only_for_unlinked_records(void **state)
{
    struct fx *fx = *state;
    struct ferry_err err = {0};
    struct ferry_job **jobs = NULL;
    size_t n = 0;
    struct ferry_outcome outs[2], out;
    enqueue(fx, "1", "created");
    assert_int_equal(run_next(fx, &out), FERRY_OUTCOME_DONE); /* 1 is linked from now on */
    json_object_set_new(src_records, "2",
                        json_pack("{s:i, s:s, s:s}", "id", 2, "name", "Joe", "email", "j@x"));
    json_object_set_new(json_object_get(src_records, "1"), "name", json_string("Janet"));
    enqueue(fx, "1", "updated");
    enqueue(fx, "2", "created");
    assert_int_equal(ferry_store_jobs_pending(fx->rt->workers[0].store, 0, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 2);
    dst_lookup_many_calls = 0;
    dst_lookup_many_values = 0;
    assert_int_equal(ferry_pipeline_run_batch(&fx->rt->workers[0], jobs, n, outs), 0);
    free_jobs(jobs, n);
    assert_int_equal(outs[0].kind, FERRY_OUTCOME_DONE);
    assert_int_equal(outs[1].kind, FERRY_OUTCOME_DONE);
    /* The linked record is updated through its link, not looked up. */
    assert_int_equal(dst_lookup_many_calls, 1);
    assert_int_equal(dst_lookup_many_values, 1);
    assert_int_equal(dst_updates, 1);
    assert_int_equal(dst_creates, 2);
}

static void test_pipeline_backoff_grows_and_caps(void **state)
{
    struct fx *fx = *state;
    int64_t a1 = ferry_pipeline_backoff_ms(&fx->cfg, 1, 0, 1);
    int64_t a3 = ferry_pipeline_backoff_ms(&fx->cfg, 3, 0, 1);
    int64_t a20 = ferry_pipeline_backoff_ms(&fx->cfg, 20, 0, 1);
    assert_true(a1 >= 1000 && a1 <= 1250);
    assert_true(a3 >= 4000 && a3 <= 5000);
    assert_true(a20 >= 60000 && a20 <= 75000);
    assert_int_equal(ferry_pipeline_backoff_ms(&fx->cfg, 1, 90000, 1), 90000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipeline_creates_then_skips_unchanged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_update_sends_only_changed_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_target_owned_field_not_overwritten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_lost_link_matches_by_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_linked_record_gone_is_matched_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_transient_error_retries_then_dead, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_permanent_error_dead_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_conflict_is_parked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_conflicts_counted_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_source_gone_is_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_poll_enqueues_and_advances_cursor, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_polled_record_is_handed_to_its_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_poll_counts_changes_webhooks_missed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_backfill_since_keeps_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_unknown_create_is_looked_up_not_reposted,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_poll_stops_on_repeated_pages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_rule_intents_activity_and_update, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_ref_waits_for_the_related_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_rules_see_the_previous_version, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_burst_of_updates_is_coalesced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_backoff_grows_and_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_batch_shares_one_lookup_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_lookup_with_conditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_batch_records_its_end_in_one_transaction,
                                        setup_batching, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_batch_asks_only_for_unlinked_records, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_crash_mid_batch_leaves_jobs_to_run_again,
                                        setup_batching, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_job_alone_records_its_write_with_its_end,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_refused_update_makes_the_task_instead, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_linked_match_finds_another_records_target,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_conflict_policy_park_stops_the_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_conflict_policy_target_keeps_the_crm_value,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_conflict_policy_newer_compares_change_times,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_conflict_setting_overrides_the_policy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_no_policy_means_no_extra_read, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_write_is_remembered_when_read_back,
                                        setup_two_way, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_echo_of_own_write_is_not_sent_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_reverse_link_finds_the_counterpart,
                                        setup_two_way, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
