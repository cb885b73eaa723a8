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
static int queued_of[NITEMS + 2];
static int duplicates_of[NITEMS + 2];
static int64_t committed_jobs;
static int stopped;

static void on_reply(void *ctx, const struct ferry_intake_reply *r)
{
    int i = (int)(intptr_t)ctx;
    replies[i]++;
    statuses[i] = r->status;
    queued_of[i] = r->queued;
    duplicates_of[i] = r->duplicates;
    if (r->status != 200) {
        assert_non_null(r->error);
        assert_non_null(r->message);
    }
}

static void on_committed(void *ud, int64_t queued)
{
    committed_jobs += queued;
}

static void on_stopped(void *ud)
{
    stopped++;
}

/*
 * Submits one webhook with one job from stack buffers, which are scribbled
 * over afterwards: intake must have copied everything it keeps.
 */
static void submit_one(struct ferry_intake *in, int i, const char *dedupe, const char *scope,
                       int ctx)
{
    char key[32], payload[160], dkey[32], inst[16], sc[64];
    snprintf(key, sizeof(key), "shop:customer:%d", i);
    snprintf(payload, sizeof(payload),
             "{\"source\":\"shop\",\"id\":\"%d\",\"event\":\"updated\","
             "\"scope\":\"store/customer/updated\"}",
             i);
    snprintf(dkey, sizeof(dkey), "%s", dedupe ? dedupe : "");
    snprintf(inst, sizeof(inst), "shop");
    snprintf(sc, sizeof(sc), "%s", scope ? scope : "");
    struct ferry_intake_job job = {
        .dedupe_key = dedupe ? dkey : NULL,
        .job_key = key,
        .kind = "sync",
        .payload = payload,
        .correlation_id = "c",
    };
    ferry_intake_submit(in, &job, 1, inst, scope ? sc : NULL, 1000, on_reply,
                        (void *)(intptr_t)ctx);
    memset(key, 'x', sizeof(key));
    memset(payload, 'x', sizeof(payload));
    memset(dkey, 'x', sizeof(dkey));
    memset(inst, 'x', sizeof(inst));
    memset(sc, 'x', sizeof(sc));
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
        submit_one(in, i, NULL, "store/customer/updated", i);
    }
    /* The same delivery twice in one batch: acknowledged both times, queued once. */
    submit_one(in, NITEMS, "shop:h1", "store/customer/updated", NITEMS);
    submit_one(in, NITEMS, "shop:h1", "store/customer/updated", NITEMS + 1);
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
    assert_int_equal(queued_of[0], 1);
    assert_int_equal(duplicates_of[0], 0);
    assert_int_equal(queued_of[NITEMS] + queued_of[NITEMS + 1], 1);
    assert_int_equal(duplicates_of[NITEMS] + duplicates_of[NITEMS + 1], 1);
    const struct ferry_intake_stats *s = ferry_intake_stats(in);
    assert_int_equal(s->items, NITEMS + 2);
    assert_int_equal(s->queued, NITEMS + 1);
    assert_int_equal(s->duplicates, 1);
    /* The first item went alone; everything that arrived meanwhile shared one commit. */
    assert_int_equal(s->batches, 2);
    assert_int_equal(s->max_batch, NITEMS + 1);
    assert_int_equal(committed_jobs, NITEMS + 1);
    /* After stop, submissions are refused with 503, not lost silently. */
    submit_one(in, 0, NULL, NULL, 0);
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
    /* Ids grow with arrival: job 1 is the first webhook, copied intact. */
    struct ferry_job *job = NULL;
    assert_int_equal(ferry_store_job_get(st, 1, &job, &err), 0);
    assert_string_equal(job->job_key, "shop:customer:0");
    assert_string_equal(job->payload, "{\"source\":\"shop\",\"id\":\"0\",\"event\":\"updated\","
                                      "\"scope\":\"store/customer/updated\"}");
    assert_string_equal(job->kind, "sync");
    assert_null(job->dedupe_key);
    ferry_job_free(job);
    assert_int_equal(ferry_store_job_get(st, NITEMS + 1, &job, &err), 0);
    assert_string_equal(job->dedupe_key, "shop:h1");
    ferry_job_free(job);
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen, 0), "instance")),
                        "shop");
    json_decref(seen);
    /* No audit row per webhook: the job row is its intake step, which the
     * audit readers show first. */
    int64_t n = 0;
    assert_int_equal(ferry_store_audit_count(st, "intake", NULL, &n, &err), 0);
    assert_int_equal(n, 0);
    json_t *steps = NULL;
    assert_int_equal(ferry_store_audit_for_job(st, 1, &steps, &err), 0);
    assert_int_equal(json_array_size(steps), 1);
    json_t *intake = json_array_get(steps, 0);
    assert_string_equal(json_string_value(json_object_get(intake, "step")), "intake");
    assert_string_equal(json_string_value(json_object_get(intake, "connector")), "shop");
    assert_string_equal(json_string_value(json_object_get(intake, "detail")),
                        "store/customer/updated");
    assert_int_equal(json_integer_value(json_object_get(intake, "at")), 1000);
    json_decref(steps);
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
