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

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "errors.h"

struct ferry_intake;

/*
 * One job of a webhook. Every string is borrowed for the call to
 * ferry_intake_submit, which copies them: the caller's buffers may be on
 * its stack.
 */
struct ferry_intake_job {
    const char *dedupe_key;     /* delivery key; NULL: never a duplicate */
    const char *job_key;        /* the record the job is about */
    const char *kind;           /* e.g. "sync" */
    const char *payload;        /* JSON text */
    const char *correlation_id; /* carried by the job and its audit rows */
    const char *group;          /* business entity the event belongs to; NULL: none */
    int64_t hold_ms;            /* a grouped job waits this long for the rest of its group */
};

/*
 * How an item was answered. The strings are static: a reply is plain data,
 * so the answer to the sender is formatted once, without building JSON.
 */
struct ferry_intake_reply {
    int status;          /* 200, or 503 when the item was not stored */
    int queued;          /* new jobs (200) */
    int duplicates;      /* jobs recognised as duplicate deliveries (200) */
    const char *error;   /* 503: error code such as "unavailable"; NULL on 200 */
    const char *message; /* 503: what the sender should do; NULL on 200 */
};

/* Answer one item; `r` is borrowed for the call. */
typedef void (*ferry_intake_reply_cb)(void *ctx, const struct ferry_intake_reply *r);
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
 * Queue one webhook (`njobs` jobs, copied) for the next commit; `instance`
 * and `scope` (may be NULL) are recorded as the last delivery seen and are
 * copied too. `reply` is called exactly once, possibly before this returns
 * (503 when stopping or out of memory).
 */
void ferry_intake_submit(struct ferry_intake *in, const struct ferry_intake_job *jobs, size_t njobs,
                         const char *instance, const char *scope, int64_t now_ms,
                         ferry_intake_reply_cb reply, void *reply_ctx);

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
