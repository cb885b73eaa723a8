/* SPDX-License-Identifier: MIT */
/*
 * Durable intake with group commit. Each accepted webhook becomes an item
 * (its jobs, and how to answer the sender); items are committed to the
 * inbox in batches, with synchronous=FULL, on a threadpool thread, and each
 * item is answered only once its batch is durable. While one batch commits,
 * the next collects, so under load one fsync acknowledges many webhooks and
 * the event loop never waits for the disk.
 *
 * Threads: submit/stop and the reply callbacks run on the loop thread; the
 * commit runs on libuv's threadpool with the intake's own connection.
 */
#ifndef FERRY_INTAKE_H
#define FERRY_INTAKE_H

#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "errors.h"

struct ferry_intake;

/* Answer one item: 200 with counts, or 503 when its batch failed (body owned by the callee). */
typedef void (*ferry_intake_reply_cb)(void *ctx, int status, json_t *body);
/* After each batch, on the loop: how many new jobs it queued. */
typedef void (*ferry_intake_committed_cb)(void *ud, int64_t queued);

struct ferry_intake_stats {
    int64_t batches;    /* commits (each one fsync of the inbox) */
    int64_t items;      /* webhooks acknowledged */
    int64_t queued;     /* new jobs */
    int64_t duplicates; /* deliveries recognised as duplicates */
    int64_t failed;     /* webhooks answered 503 */
    int64_t max_batch;  /* most items in one commit */
};

FERRY_NODISCARD int ferry_intake_new(struct ferry_intake **out, uv_loop_t *loop,
                                     const char *state_path, int64_t dedupe_window_ms,
                                     ferry_intake_committed_cb committed, void *ud,
                                     struct ferry_err *err);

/*
 * Queue one webhook for the next commit. `jobs` (ownership taken) is an array
 * of {"dedupe_key": "..." | null, "job_key", "kind", "payload" (text),
 * "correlation_id", "detail"}; `instance` and `scope` are recorded as the last
 * delivery seen (scope may be NULL). `reply` is called exactly once.
 */
void ferry_intake_submit(struct ferry_intake *in, json_t *jobs, const char *instance,
                         const char *scope, int64_t now_ms, ferry_intake_reply_cb reply,
                         void *reply_ctx);

/* Items submitted and not answered yet. */
size_t ferry_intake_pending(const struct ferry_intake *in);
const struct ferry_intake_stats *ferry_intake_stats(const struct ferry_intake *in);

/*
 * Commit what is queued, then call `done` on the loop (nothing more may be
 * submitted). Free with ferry_intake_free after `done`.
 */
void ferry_intake_stop(struct ferry_intake *in, void (*done)(void *ud), void *ud);
void ferry_intake_free(struct ferry_intake *in); /* accepts NULL */

#endif
