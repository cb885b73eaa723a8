/* SPDX-License-Identifier: MIT */
/*
 * Scheduler tests: the ordering rule (same key never concurrent, arrival
 * order kept, a waiting retry holds back its key only) as a pure function,
 * and the loop-driven scheduler dispatching real jobs on libuv's threadpool
 * against an in-process connector, until its idle callback fires.
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

#include "scheduler.h"
#include "util.h"

static struct ferry_job mk(int64_t id, const char *key, int64_t due)
{
    struct ferry_job j;
    memset(&j, 0, sizeof(j));
    j.id = id;
    j.job_key = (char *)key;
    j.next_attempt_at_ms = due;
    return j;
}

static void test_scheduler_select_keeps_key_order(void **state)
{
    struct ferry_job a = mk(1, "k1", 0), b = mk(2, "k1", 0), c = mk(3, "k2", 0);
    struct ferry_job *pending[] = {&a, &b, &c};
    size_t picked[3];
    int64_t next;
    size_t n = ferry_sched_select(pending, 3, NULL, 0, 100, 3, picked, &next);
    assert_int_equal(n, 2);
    assert_int_equal(picked[0], 0); /* k1's first job */
    assert_int_equal(picked[1], 2); /* k2 runs in parallel; k1's second waits */
    assert_true(next == INT64_MAX);
}

static void test_scheduler_select_running_key_blocks(void **state)
{
    struct ferry_job a = mk(5, "k1", 0), c = mk(6, "k2", 0);
    struct ferry_job *pending[] = {&a, &c};
    const char *running[] = {"k1"};
    size_t picked[2];
    int64_t next;
    size_t n = ferry_sched_select(pending, 2, running, 1, 100, 2, picked, &next);
    assert_int_equal(n, 1);
    assert_int_equal(picked[0], 1);
}

static void test_scheduler_select_waiting_retry_holds_its_key_only(void **state)
{
    struct ferry_job a = mk(1, "k1", 500), b = mk(2, "k1", 0), c = mk(3, "k2", 0);
    struct ferry_job *pending[] = {&a, &b, &c};
    size_t picked[3];
    int64_t next;
    size_t n = ferry_sched_select(pending, 3, NULL, 0, 100, 3, picked, &next);
    assert_int_equal(n, 1);
    assert_int_equal(picked[0], 2);
    assert_int_equal(next, 500);
}

static void test_scheduler_select_respects_free_workers(void **state)
{
    struct ferry_job a = mk(1, "a", 0), b = mk(2, "b", 0), c = mk(3, "c", 0);
    struct ferry_job *pending[] = {&a, &b, &c};
    size_t picked[3];
    int64_t next;
    assert_int_equal(ferry_sched_select(pending, 3, NULL, 0, 100, 1, picked, &next), 1);
    assert_int_equal(picked[0], 0);
    assert_int_equal(ferry_sched_select(pending, 3, NULL, 0, 100, 0, picked, &next), 0);
}

/* Free workers are filled one real-time or retry job each, backfill jobs a batch each. */
static void test_scheduler_take_stops_at_free_workers(void **state)
{
    const char *running[] = {"busy"};
    struct ferry_sched_take t = {
        .running_keys = running, .nrunning = 1, .nfree = 2, .batch_size = 3};
    assert_int_equal(ferry_sched_take(&t, "busy", FERRY_LANE_REALTIME), FERRY_JOB_SKIP);
    assert_int_equal(ferry_sched_take(&t, "w1", FERRY_LANE_REALTIME), FERRY_JOB_TAKE);
    /* The second worker takes up to three backfill jobs. */
    assert_int_equal(ferry_sched_take(&t, "b1", FERRY_LANE_BACKFILL), FERRY_JOB_TAKE);
    assert_int_equal(ferry_sched_take(&t, "busy", FERRY_LANE_BACKFILL), FERRY_JOB_SKIP);
    assert_int_equal(ferry_sched_take(&t, "b2", FERRY_LANE_BACKFILL), FERRY_JOB_TAKE);
    assert_int_equal(ferry_sched_take(&t, "b3", FERRY_LANE_BACKFILL), FERRY_JOB_TAKE_LAST);

    struct ferry_sched_take r = {.nfree = 2, .batch_size = 3};
    assert_int_equal(ferry_sched_take(&r, "w1", FERRY_LANE_REALTIME), FERRY_JOB_TAKE);
    assert_int_equal(ferry_sched_take(&r, "w2", FERRY_LANE_RETRY), FERRY_JOB_TAKE_LAST);

    struct ferry_sched_take one = {.nfree = 1, .batch_size = 1};
    assert_int_equal(ferry_sched_take(&one, "b1", FERRY_LANE_BACKFILL), FERRY_JOB_TAKE_LAST);
}

/* ---- the scheduler on a loop ---- */

static int writes;
static char order[64][16];
static int norder;
static uv_mutex_t order_lock;

static int c_open(const struct ferry_host_api *host, struct ferry_call *call, const json_t *config,
                  void **state, struct ferry_err *err)
{
    *state = NULL;
    return 0;
}

static void c_close(void *state)
{
}

static int c_fetch(void *state, struct ferry_call *call, const char *object, const char *id,
                   json_t **record, struct ferry_err *err)
{
    *record = json_pack("{s:s, s:s}", "id", id, "email", id);
    return 0;
}

static int c_lookup(void *state, struct ferry_call *call, const char *object, const char *field,
                    const char *value, json_t **found, struct ferry_err *err)
{
    *found = NULL;
    return 0;
}

static int c_write(void *state, struct ferry_call *call, const struct ferry_write *w,
                   json_t **result, struct ferry_err *err)
{
    uv_mutex_lock(&order_lock);
    const char *name = json_string_value(json_object_get(w->fields, "Name"));
    if (norder < 64) {
        snprintf(order[norder++], sizeof(order[0]), "%s", name ? name : "?");
    }
    writes++;
    uv_mutex_unlock(&order_lock);
    *result = json_pack("{s:s}", "id", name ? name : "x");
    return 0;
}

static const struct ferry_connector conn = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "c",
    .version = "1",
    .open = c_open,
    .close = c_close,
    .fetch = c_fetch,
    .lookup = c_lookup,
    .write = c_write,
};

static int idle_calls;
static void on_idle(void *ud)
{
    idle_calls++;
    ferry_scheduler_stop(ud, NULL, NULL);
}

/* A runtime with one connector "c" and one mapping (c thing -> c T), a
 * store and a scheduler on a private loop, in a temporary directory. */
struct env {
    char dir[64];
    char db[256];
    char *names[1];
    struct ferry_config cfg;
    struct ferry_runtime *rt;
    struct ferry_store *store;
    struct ferry_scheduler *s;
    uv_loop_t loop;
};

static void env_open(struct env *e, const struct ferry_connector *c, int workers)
{
    char path[256];
    struct ferry_err err = {0};
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/ferry-sched-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(path, sizeof(path), "%s/m", e->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/m/mapping.lua", e->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("return { source = { \"c\", \"thing\" }, target = { \"c\", \"T\" },\n"
          "  fields = { Name = \"id\" } }\n",
          f);
    fclose(f);
    snprintf(e->db, sizeof(e->db), "%s/state.db", e->dir);
    e->names[0] = "m";
    e->cfg = (struct ferry_config){
        .state_path = e->db,
        .workers = workers,
        .mapping_dir = e->dir,
        .lua_dir = FERRY_SOURCE_DIR "/lua",
        .mappings = e->names,
        .nmappings = 1,
        .retry_max_attempts = 3,
        .retry_base_ms = 10,
        .retry_max_ms = 100,
        .http_timeout_ms = 1000,
    };
    uv_mutex_init(&order_lock);
    writes = norder = idle_calls = 0;
    assert_int_equal(ferry_runtime_new_empty(&e->rt, &e->cfg, &err), 0);
    assert_int_equal(ferry_runtime_add_connector(e->rt, "c", c, NULL, &err), 0);
    if (ferry_runtime_start_workers(e->rt, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(ferry_store_open(&e->store, e->db, &err), 0);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(ferry_scheduler_new(&e->s, &e->loop, e->rt, e->store, &err), 0);
    ferry_scheduler_set_idle_cb(e->s, on_idle, e->s);
}

static void env_close(struct env *e)
{
    char cmd[128];
    assert_int_equal(uv_loop_close(&e->loop), 0);
    ferry_scheduler_free(e->s);
    ferry_store_close(e->store);
    ferry_runtime_free(e->rt);
    uv_mutex_destroy(&order_lock);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
}

static void test_scheduler_runs_all_jobs_then_idles(void **state)
{
    struct ferry_err err = {0};
    struct env e;
    env_open(&e, &conn, 2);
    /* 20 jobs over 4 keys: every job runs, and within a key in arrival order.
     * Each carries event detail, so none is coalesced into another. */
    for (int i = 0; i < 20; i++) {
        char payload[128], key[32];
        snprintf(payload, sizeof(payload),
                 "{\"source\":\"c\",\"object\":\"thing\",\"id\":\"%d-%02d\",\"event\":\"x\","
                 "\"event_data\":{\"n\":1}}",
                 i % 4, i);
        snprintf(key, sizeof(key), "c:thing:%d", i % 4);
        struct ferry_job_new jn = {.job_key = key,
                                   .kind = "sync",
                                   .payload = payload,
                                   .correlation_id = "c",
                                   .now_ms = ferry_now_ms()};
        assert_int_equal(ferry_store_job_enqueue(e.store, &jn, NULL, NULL, &err), 0);
    }
    ferry_scheduler_kick(e.s);
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(idle_calls, 1);
    assert_int_equal(writes, 20);
    assert_int_equal(ferry_scheduler_stats(e.s)->jobs_done, 20);
    for (int k = 0; k < 4; k++) {
        int last = -1;
        for (int i = 0; i < norder; i++) {
            int key, seq;
            assert_int_equal(sscanf(order[i], "%d-%d", &key, &seq), 2);
            if (key == k) {
                assert_true(seq > last);
                last = seq;
            }
        }
    }
    env_close(&e);
}

/* ---- polls that fail ---- */

static int list_calls;
static int list_fail_first; /* fail this many calls, then succeed */
static int list_fail_code;

static int c_list(void *state, struct ferry_call *call, const char *object, const char *since,
                  const char *page_token, json_t **page, struct ferry_err *err)
{
    if (list_calls++ < list_fail_first) {
        return ferry_err_set(err, list_fail_code, "simulated failure %d", list_calls);
    }
    *page = json_pack("{s:[{s:s, s:s, s:{s:s}}], s:n}", "items", "id", "p1", "modified",
                      "2026-01-01T00:00:00Z", "record", "id", "p1", "next");
    return 0;
}

static const struct ferry_connector poll_conn = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "c",
    .version = "1",
    .open = c_open,
    .close = c_close,
    .fetch = c_fetch,
    .list_changes = c_list,
    .lookup = c_lookup,
    .write = c_write,
};

/* Runs one poll to the end; returns the scheduler's stats through *st. */
static void run_one_poll(struct ferry_sched_stats *st)
{
    struct env e;
    env_open(&e, &poll_conn, 1);
    list_calls = 0;
    assert_int_equal(ferry_scheduler_add_poll(e.s, "c", "thing", NULL), 0);
    ferry_scheduler_kick(e.s);
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    *st = *ferry_scheduler_stats(e.s);
    env_close(&e);
}

static void test_scheduler_poll_retries_transient_failures(void **state)
{
    struct ferry_sched_stats st;
    list_fail_first = 2;
    list_fail_code = FERRY_ERATELIMIT;
    run_one_poll(&st);
    assert_int_equal(list_calls, 3);
    assert_int_equal(st.polls_done, 1);
    assert_int_equal(st.polls_failed, 0);
    assert_int_equal(writes, 1); /* the record the third run listed was synced */
}

static void test_scheduler_poll_gives_up_after_three_runs(void **state)
{
    struct ferry_sched_stats st;
    list_fail_first = 100;
    list_fail_code = FERRY_ETIMEDOUT;
    run_one_poll(&st);
    assert_int_equal(list_calls, 3);
    assert_int_equal(st.polls_done, 0);
    assert_int_equal(st.polls_failed, 1);
}

static void test_scheduler_poll_permanent_failure_not_repeated(void **state)
{
    struct ferry_sched_stats st;
    list_fail_first = 100;
    list_fail_code = FERRY_EAUTH;
    run_one_poll(&st);
    assert_int_equal(list_calls, 1);
    assert_int_equal(st.polls_failed, 1);
    assert_int_equal(writes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheduler_select_keeps_key_order),
        cmocka_unit_test(test_scheduler_select_running_key_blocks),
        cmocka_unit_test(test_scheduler_select_waiting_retry_holds_its_key_only),
        cmocka_unit_test(test_scheduler_select_respects_free_workers),
        cmocka_unit_test(test_scheduler_take_stops_at_free_workers),
        cmocka_unit_test(test_scheduler_runs_all_jobs_then_idles),
        cmocka_unit_test(test_scheduler_poll_retries_transient_failures),
        cmocka_unit_test(test_scheduler_poll_gives_up_after_three_runs),
        cmocka_unit_test(test_scheduler_poll_permanent_failure_not_repeated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
