/* SPDX-License-Identifier: MIT */
/*
 * Runtime tests: the host vtable as a connector sees it (worker slots, HTTP
 * only on workers and outside state transactions, an audit row per request),
 * instance lookup, and the all-or-nothing mapping reload.
 */
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

#include "runtime.h"
#include "util.h"

static const struct ferry_host_api *seen_host;

static int c_open(const struct ferry_host_api *host, struct ferry_call *call, const json_t *config,
                  void **state, struct ferry_err *err)
{
    seen_host = host;
    if (json_is_true(json_object_get(config, "fail"))) {
        snprintf(err->msg, sizeof(err->msg), "refusing to open");
        return FERRY_ECONFIG;
    }
    *state = (void *)0x1;
    return 0;
}

static void c_close(void *state)
{
}

static int freed_slots;
static void c_worker_free(void *state, void *slot)
{
    freed_slots++;
    free(slot);
}

static const struct ferry_connector conn = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "c",
    .version = "1",
    .open = c_open,
    .close = c_close,
    .worker_free = c_worker_free,
};

struct fx {
    char dir[64];
    char db[128];
    char mapping[160];
    char *names[1];
    struct ferry_config cfg;
    struct ferry_runtime *rt;
};

static void write_mapping(struct fx *fx, const char *text)
{
    FILE *f = fopen(fx->mapping, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct ferry_err err = {0};
    char path[128];
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/ferry-runtime-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->db, sizeof(fx->db), "%s/state.db", fx->dir);
    snprintf(path, sizeof(path), "%s/m", fx->dir);
    mkdir(path, 0700);
    snprintf(fx->mapping, sizeof(fx->mapping), "%s/m/mapping.lua", fx->dir);
    write_mapping(fx, "return { source = { \"c\", \"x\" }, target = { \"c\", \"Y\" }, "
                      "fields = { A = \"a\" } }\n");
    fx->names[0] = "m";
    fx->cfg = (struct ferry_config){
        .state_path = fx->db,
        .workers = 2,
        .mapping_dir = fx->dir,
        .lua_dir = FERRY_SOURCE_DIR "/lua",
        .mappings = fx->names,
        .nmappings = 1,
        .http_timeout_ms = 2000,
        .retry_max_attempts = 3,
    };
    assert_int_equal(ferry_runtime_new_empty(&fx->rt, &fx->cfg, &err), 0);
    assert_int_equal(ferry_runtime_add_connector(fx->rt, "c", &conn, NULL, &err), 0);
    if (ferry_runtime_start_workers(fx->rt, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[128];
    ferry_runtime_free(fx->rt);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void test_runtime_instances_and_open_failure(void **state)
{
    struct fx *fx = *state;
    struct ferry_err err = {0};
    assert_int_equal(ferry_runtime_instance(fx->rt, "c"), 0);
    assert_int_equal(ferry_runtime_instance(fx->rt, "nope"), -1);
    assert_non_null(seen_host);
    assert_int_equal(seen_host->abi, FERRY_PLUGIN_ABI);
    assert_true(FERRY_HOST_HAS(seen_host, correlation_id));

    json_t *bad = json_pack("{s:b}", "fail", 1);
    struct ferry_runtime *rt2 = NULL;
    assert_int_equal(ferry_runtime_new_empty(&rt2, &fx->cfg, &err), 0);
    assert_int_equal(ferry_runtime_add_connector(rt2, "broken", &conn, bad, &err), FERRY_ECONFIG);
    assert_non_null(strstr(err.msg, "broken"));
    assert_non_null(strstr(err.msg, "refusing to open"));
    ferry_runtime_free(rt2);
    json_decref(bad);
}

static void test_runtime_worker_slots_are_private(void **state)
{
    struct fx *fx = *state;
    struct ferry_call loop, w0, w1;
    ferry_call_init(&loop, fx->rt, NULL, 0, "corr-1", 0);
    ferry_call_init(&w0, fx->rt, &fx->rt->workers[0], 0, "corr-2", 5);
    ferry_call_init(&w1, fx->rt, &fx->rt->workers[1], 0, "corr-3", 6);
    const struct ferry_host_api *h = &fx->rt->host;
    assert_null(h->worker_slot(&loop));
    void **s0 = h->worker_slot(&w0);
    void **s1 = h->worker_slot(&w1);
    assert_non_null(s0);
    assert_non_null(s1);
    assert_ptr_not_equal(s0, s1);
    assert_ptr_equal(s0, h->worker_slot(&w0));
    *s0 = malloc(8);
    *s1 = malloc(8);
    assert_string_equal(h->correlation_id(&w1), "corr-3");
    freed_slots = 0;
    ferry_runtime_free(fx->rt);
    fx->rt = NULL;
    assert_int_equal(freed_slots, 2);
}

static void test_runtime_http_needs_worker_and_is_audited(void **state)
{
    struct fx *fx = *state;
    struct ferry_call loop, w0;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_req req = {.method = "GET", .url = "http://127.0.0.1:1/x", .object = "T"};
    ferry_call_init(&loop, fx->rt, NULL, 0, "corr", 0);
    ferry_call_init(&w0, fx->rt, &fx->rt->workers[0], 0, "corr", 9);
    const struct ferry_host_api *h = &fx->rt->host;

    assert_int_equal(h->http(&loop, &req, &resp, &err), FERRY_EUNSUPPORTED);
    int rc = h->http(&w0, &req, &resp, &err);
    assert_true(rc == FERRY_ENETWORK || rc == FERRY_ETIMEDOUT);
    int64_t n = 0;
    assert_int_equal(ferry_store_audit_count(fx->rt->workers[0].store, "http", "GET", &n, &err), 0);
    assert_int_equal(n, 1);
}

static void test_runtime_http_waits_outside_transactions(void **state)
{
    struct fx *fx = *state;
    struct ferry_call w0;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_req req = {.method = "GET", .url = "http://127.0.0.1:1/x", .object = "T"};
    struct ferry_store *s = fx->rt->workers[0].store;
    struct ferry_store *other = NULL;
    int64_t n = 0;
    ferry_call_init(&w0, fx->rt, &fx->rt->workers[0], 0, "corr", 9);
    const struct ferry_host_api *h = &fx->rt->host;
    assert_int_equal(ferry_store_open(&other, fx->db, &err), 0);

    /* A request would keep the write lock for as long as the remote takes. */
    assert_int_equal(ferry_store_begin(s, &err), 0);
    assert_int_equal(h->http(&w0, &req, &resp, &err), FERRY_EINVAL);
    assert_non_null(strstr(err.msg, "transaction"));
    ferry_store_rollback(s);

    /* A held request row is written by the commit that ends the job. */
    assert_int_equal(ferry_store_audit_hold(s, true, &err), 0);
    int rc = h->http(&w0, &req, &resp, &err);
    assert_true(rc == FERRY_ENETWORK || rc == FERRY_ETIMEDOUT);
    assert_int_equal(ferry_store_audit_count(other, "http", "GET", &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ferry_store_begin(s, &err), 0);
    assert_int_equal(ferry_store_commit(s, &err), 0);
    assert_int_equal(ferry_store_audit_count(other, "http", "GET", &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ferry_store_audit_hold(s, false, &err), 0);
    ferry_store_close(other);
}

static void test_runtime_payload_handoff(void **state)
{
    struct fx *fx = *state;
    json_t *p = json_pack("{s:s}", "id", "1");
    ferry_runtime_payload_put(fx->rt, 7, 12, json_incref(p));
    /* Another job, or the text changed since (length differs): nothing. */
    assert_null(ferry_runtime_payload_take(fx->rt, 8, 12));
    assert_null(ferry_runtime_payload_take(fx->rt, 7, 13));
    assert_null(ferry_runtime_payload_take(fx->rt, 7, 12)); /* dropped by the mismatch */
    ferry_runtime_payload_put(fx->rt, 7, 12, json_incref(p));
    json_t *got = ferry_runtime_payload_take(fx->rt, 7, 12);
    assert_ptr_equal(got, p);
    json_decref(got);
    assert_null(ferry_runtime_payload_take(fx->rt, 7, 12));

    /* Bounded: past the count the newest are not kept (the oldest run first). */
    for (int64_t id = 100; id < 100 + 600; id++) {
        ferry_runtime_payload_put(fx->rt, id, 10, json_incref(p));
    }
    got = ferry_runtime_payload_take(fx->rt, 100, 10);
    assert_ptr_equal(got, p);
    json_decref(got);
    assert_null(ferry_runtime_payload_take(fx->rt, 699, 10));
    /* ... and in text bytes. */
    ferry_runtime_payload_put(fx->rt, 1000, (size_t)64 << 20, json_incref(p));
    assert_null(ferry_runtime_payload_take(fx->rt, 1000, (size_t)64 << 20));
    json_decref(p);
    /* What nobody took is freed with the runtime (the sanitizer build checks). */
}

static void test_runtime_quota_reports_wait_for_the_task_end(void **state)
{
    struct fx *fx = *state;
    struct ferry_call w0;
    struct ferry_err err = {0};
    struct ferry_store *other = NULL;
    char *v = NULL;
    struct ferry_worker *w = &fx->rt->workers[0];
    const struct ferry_host_api *h = &fx->rt->host;
    ferry_call_init(&w0, fx->rt, w, 0, "corr", 9);
    assert_int_equal(ferry_store_open(&other, fx->db, &err), 0);

    /* Held: each report replaces the last; nothing is written yet. */
    ferry_worker_hold_quota(w, true);
    h->quota(&w0, "store", 100, 150, 1000);
    h->quota(&w0, "store", 99, 150, 1000);
    h->quota(&w0, "b2b", 7, 10, 1000);
    assert_int_equal(ferry_store_kv_get(other, "c", "quota:store", &v, NULL, &err),
                     FERRY_ENOTFOUND);
    /* Written in the transaction that ends the task. */
    assert_int_equal(ferry_store_begin(w->store, &err), 0);
    ferry_worker_flush_quota(w);
    assert_int_equal(ferry_store_kv_get(other, "c", "quota:store", &v, NULL, &err),
                     FERRY_ENOTFOUND);
    assert_int_equal(ferry_store_commit(w->store, &err), 0);
    assert_int_equal(ferry_store_kv_get(other, "c", "quota:store", &v, NULL, &err), 0);
    assert_non_null(strstr(v, "\"remaining\":99,"));
    free(v);
    assert_int_equal(ferry_store_kv_get(other, "c", "quota:b2b", &v, NULL, &err), 0);
    free(v);

    /* Turning holding off writes what is held; then each report is written at once. */
    h->quota(&w0, "store", 98, 150, 1000);
    ferry_worker_hold_quota(w, false);
    assert_int_equal(ferry_store_kv_get(other, "c", "quota:store", &v, NULL, &err), 0);
    assert_non_null(strstr(v, "\"remaining\":98,"));
    free(v);
    h->quota(&w0, "store", 97, 150, 1000);
    assert_int_equal(ferry_store_kv_get(other, "c", "quota:store", &v, NULL, &err), 0);
    assert_non_null(strstr(v, "\"remaining\":97,"));
    free(v);
    ferry_store_close(other);
}

static void test_runtime_reload_is_all_or_nothing(void **state)
{
    struct fx *fx = *state;
    struct ferry_err err = {0};
    uint64_t gen = atomic_load(&fx->rt->mapping_gen);
    write_mapping(fx, "return { source = ");
    assert_int_equal(ferry_runtime_reload_mappings(fx->rt, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "mapping.lua"));
    assert_int_equal(atomic_load(&fx->rt->mapping_gen), gen);
    /* The workers keep their compiled set. */
    assert_int_equal(ferry_worker_refresh_mappings(&fx->rt->workers[0], &err), 0);
    assert_non_null(fx->rt->workers[0].mappings);

    write_mapping(fx, "return { source = { \"c\", \"x\" }, target = { \"c\", \"Z\" }, "
                      "fields = { B = \"b\" } }\n");
    assert_int_equal(ferry_runtime_reload_mappings(fx->rt, &err), 0);
    assert_int_equal(atomic_load(&fx->rt->mapping_gen), gen + 1);
    const char *old_hash = ferry_mapping_set_hash(fx->rt->workers[0].mappings);
    char before[80];
    snprintf(before, sizeof(before), "%s", old_hash);
    assert_int_equal(ferry_worker_refresh_mappings(&fx->rt->workers[0], &err), 0);
    assert_string_not_equal(before, ferry_mapping_set_hash(fx->rt->workers[0].mappings));
}

static int d_describe(void *state, struct ferry_call *call, json_t **objects, struct ferry_err *err)
{
    *objects = json_loads("{\"Y\": {\"key\": \"ObjectID\", \"properties\": {"
                          "\"A\": {\"creatable\": true, \"updatable\": true},"
                          "\"RO\": {\"creatable\": false, \"updatable\": false}}}}",
                          0, NULL);
    return *objects ? 0 : FERRY_ENOMEM;
}

static const struct ferry_connector described = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "c",
    .version = "1",
    .open = c_open,
    .close = c_close,
    .describe = d_describe,
};

static void test_runtime_describe_rejects_read_only_targets(void **state)
{
    struct fx *fx = *state;
    struct ferry_err err = {0};
    struct ferry_runtime *rt = NULL;
    assert_int_equal(ferry_runtime_new_empty(&rt, &fx->cfg, &err), 0);
    assert_int_equal(ferry_runtime_add_connector(rt, "c", &described, NULL, &err), 0);
    assert_int_equal(ferry_runtime_describe(rt, true, &err), 0);
    assert_non_null(rt->instances[0].schema);
    /* The fixture's mapping writes A: fine. */
    write_mapping(fx, "return { source = { \"c\", \"x\" }, target = { \"c\", \"Y\" },\n"
                      "  fields = {\n"
                      "    A = \"a\",\n"
                      "    RO = \"b\",\n"
                      "  } }\n");
    assert_int_equal(ferry_runtime_start_workers(rt, &err), 0);
    assert_int_equal(ferry_runtime_check_mappings(rt, rt->workers[0].mappings, &err),
                     FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "mapping.lua:4: RO of Y is read-only"));
    /* A reload that still writes RO is refused; one that does not is taken. */
    assert_int_equal(ferry_runtime_reload_mappings(rt, &err), FERRY_EMAPPING);
    write_mapping(fx, "return { source = { \"c\", \"x\" }, target = { \"c\", \"Y\" }, "
                      "fields = { A = \"a\" } }\n");
    assert_int_equal(ferry_runtime_reload_mappings(rt, &err), 0);
    ferry_runtime_free(rt);
}

static void test_runtime_kv_on_setup_and_worker_calls(void **state)
{
    struct fx *fx = *state;
    struct ferry_call setup, w0, loop;
    struct ferry_err err = {0};
    char *v = NULL;
    int64_t at = 0;
    const struct ferry_host_api *h = &fx->rt->host;
    ferry_call_init(&setup, fx->rt, NULL, 0, "s", 0);
    setup.setup = true;
    ferry_call_init(&w0, fx->rt, &fx->rt->workers[0], 0, "w", 1);
    ferry_call_init(&loop, fx->rt, NULL, 0, "l", 0);
    assert_int_equal(h->kv_put(&setup, "metadata", "<doc/>", &err), 0);
    assert_int_equal(h->kv_get(&w0, "metadata", &v, &at, &err), 0);
    assert_string_equal(v, "<doc/>");
    assert_true(at > 0);
    h->kv_free(v);
    /* The event loop may not touch the database through a connector. */
    assert_int_equal(h->kv_get(&loop, "metadata", &v, &at, &err), FERRY_EUNSUPPORTED);
    assert_int_equal(h->kv_get(&w0, "nothing", &v, &at, &err), FERRY_ENOTFOUND);
}

/* The host's JSON services answer exactly as jansson's own functions, whatever the flags. */
static void test_runtime_json_services_match_jansson(void **state)
{
    struct fx *fx = *state;
    const struct ferry_host_api *h = &fx->rt->host;
    const char *text = "{\"b\": [1, 2.5, \"x\\u00e9\", null, true], \"a\": {\"k\": \"v\"}}";
    const size_t flags[] = {
        JSON_COMPACT,   JSON_COMPACT | JSON_SORT_KEYS,   JSON_COMPACT | JSON_ENCODE_ANY, 0,
        JSON_INDENT(2), JSON_COMPACT | JSON_ENSURE_ASCII};
    assert_true(FERRY_HOST_HAS(h, json_dumps));
    json_t *mine = h->json_loadb(text, strlen(text), 0, NULL);
    json_t *theirs = json_loads(text, 0, NULL);
    assert_non_null(mine);
    assert_true(json_equal(mine, theirs));
    json_t *scalar = json_string("s");
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        const json_t *vals[] = {mine, scalar};
        for (size_t k = 0; k < 2; k++) {
            char *a = h->json_dumps(vals[k], flags[i]);
            char *b = json_dumps(vals[k], flags[i]);
            if (!b) {
                assert_null(a);
            } else {
                assert_non_null(a);
                assert_string_equal(a, b);
            }
            free(a);
            free(b);
        }
    }
    json_decref(scalar);
    json_decref(mine);
    json_decref(theirs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runtime_instances_and_open_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_worker_slots_are_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_http_needs_worker_and_is_audited, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_runtime_http_waits_outside_transactions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_runtime_payload_handoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_quota_reports_wait_for_the_task_end, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_runtime_reload_is_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_describe_rejects_read_only_targets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_runtime_kv_on_setup_and_worker_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_json_services_match_jansson, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
