/* SPDX-License-Identifier: MIT */
/*
 * Intake tests: webhooks submitted while a commit is under way share the
 * next commit (group commit), every item is answered exactly once and only
 * after its batch committed, duplicates within a batch are recognised, and
 * stop commits what is queued before it reports done.
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

#include "intake.h"
#include "store.h"

#define NITEMS 200

static int replies[NITEMS + 2];
static int statuses[NITEMS + 2];
static int64_t committed_jobs;
static int stopped;

static void on_reply(void *ctx, int status, json_t *body)
{
    int i = (int)(intptr_t)ctx;
    replies[i]++;
    statuses[i] = status;
    json_decref(body);
}

static void on_committed(void *ud, int64_t queued)
{
    committed_jobs += queued;
}

static void on_stopped(void *ud)
{
    stopped++;
}

static json_t *one_job(int i, const char *dedupe)
{
    char key[32], payload[64];
    snprintf(key, sizeof(key), "shop:customer:%d", i);
    snprintf(payload, sizeof(payload), "{\"id\":\"%d\"}", i);
    return json_pack("[{s:s?, s:s, s:s, s:s, s:s, s:s}]", "dedupe_key", dedupe, "job_key", key,
                     "kind", "sync", "payload", payload, "correlation_id", "c", "detail",
                     "store/customer/updated");
}

static void test_intake_group_commit_answers_every_item_once(void **state)
{
    char dir[] = "/tmp/ferry-intake-XXXXXX", db[128], cmd[128];
    struct ferry_err err = {0};
    struct ferry_intake *in = NULL;
    struct ferry_store *st = NULL;
    uv_loop_t loop;
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/state.db", dir);
    memset(replies, 0, sizeof(replies));
    committed_jobs = 0;
    stopped = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ferry_intake_new(&in, &loop, db, 600000, on_committed, NULL, &err), 0);

    for (int i = 0; i < NITEMS; i++) {
        ferry_intake_submit(in, one_job(i, NULL), "shop", "store/customer/updated", 1000, on_reply,
                            (void *)(intptr_t)i);
    }
    /* The same delivery twice in one batch: acknowledged both times, queued once. */
    ferry_intake_submit(in, one_job(NITEMS, "shop:h1"), "shop", "store/customer/updated", 1000,
                        on_reply, (void *)(intptr_t)NITEMS);
    ferry_intake_submit(in, one_job(NITEMS, "shop:h1"), "shop", "store/customer/updated", 1000,
                        on_reply, (void *)(intptr_t)(NITEMS + 1));
    /* Nothing is answered before the loop has run the commit. */
    assert_int_equal(replies[0], 0);
    assert_int_equal(ferry_intake_pending(in), NITEMS + 2);
    ferry_intake_stop(in, on_stopped, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);

    assert_int_equal(stopped, 1);
    for (int i = 0; i < NITEMS + 2; i++) {
        assert_int_equal(replies[i], 1);
        assert_int_equal(statuses[i], 200);
    }
    const struct ferry_intake_stats *s = ferry_intake_stats(in);
    assert_int_equal(s->items, NITEMS + 2);
    assert_int_equal(s->queued, NITEMS + 1);
    assert_int_equal(s->duplicates, 1);
    /* The first item went alone; everything that arrived meanwhile shared one commit. */
    assert_int_equal(s->batches, 2);
    assert_int_equal(s->max_batch, NITEMS + 1);
    assert_int_equal(committed_jobs, NITEMS + 1);
    /* After stop, submissions are refused with 503, not lost silently. */
    ferry_intake_submit(in, one_job(0, NULL), "shop", NULL, 1000, on_reply, (void *)(intptr_t)0);
    assert_int_equal(statuses[0], 503);
    ferry_intake_free(in);
    assert_int_equal(uv_loop_close(&loop), 0);

    int64_t counts[FERRY_JOB_NSTATES];
    json_t *seen = NULL;
    assert_int_equal(ferry_store_open(&st, db, &err), 0);
    assert_int_equal(ferry_store_job_counts(st, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], NITEMS + 1);
    assert_int_equal(ferry_store_webhooks_seen(st, &seen, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(seen, 0), "count")),
                     NITEMS + 2);
    json_decref(seen);
    int64_t n = 0;
    assert_int_equal(ferry_store_audit_count(st, "intake", NULL, &n, &err), 0);
    assert_int_equal(n, NITEMS + 1);
    ferry_store_close(st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intake_group_commit_answers_every_item_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
