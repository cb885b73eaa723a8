/* SPDX-License-Identifier: MIT */
/*
 * The scheduler: on the loop thread, it picks pending jobs and hands each to
 * a free worker context on libuv's threadpool. Jobs with the same key never
 * run at once and run in arrival order: a key is blocked while one of its
 * jobs runs, and a job waiting for its retry time holds back the later jobs
 * of its key. Different keys run in parallel. Poll tasks (a delta poll of
 * one source object) take a worker too, ahead of jobs.
 *
 * Threads: every function here runs on the loop thread; workers report back
 * through libuv's after_work callback.
 */
#ifndef FERRY_SCHEDULER_H
#define FERRY_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "runtime.h"
#include "store.h"

/*
 * The ordering rule as a pure function, for the scheduler and its tests:
 * from `pending` (arrival order), choose up to `max_pick` jobs that may start
 * now, given the keys already running. Writes their indexes to `picked` and
 * returns how many. *next_due_ms receives the earliest retry time among
 * jobs that were not due (INT64_MAX when none).
 */
size_t ferry_sched_select(struct ferry_job *const *pending, size_t n,
                          const char *const *running_keys, size_t nrunning, int64_t now_ms,
                          size_t max_pick, size_t *picked, int64_t *next_due_ms);

/*
 * Which runnable jobs the scheduler can start, row by row as the store reads
 * them (a ferry_job_take_fn; `ud` is this struct), so that it neither builds
 * nor reads jobs it would drop: none of a running key, and no more than the
 * free workers take. A real-time or retry job takes a worker; backfill jobs
 * take one per batch_size of them, as the scheduler groups them.
 */
struct ferry_sched_take {
    const char *const *running_keys;
    size_t nrunning;
    size_t nfree;      /* workers to fill, at least 1 */
    size_t batch_size; /* backfill jobs per worker, at least 1 */
    size_t workers;    /* taken so far, both start at 0 */
    size_t backfill;
};
enum ferry_job_take ferry_sched_take(void *ud, const char *job_key, int lane);

/* Longest the scheduler waits before looking at the store again. */
#define FERRY_SCHED_RESCAN_MS 1000

struct ferry_scheduler;

struct ferry_sched_stats {
    int64_t jobs_done;
    int64_t jobs_retried;
    int64_t jobs_dead;
    int64_t writes;
    int64_t polls_done;
    int64_t polls_failed;
    int64_t batches; /* worker tasks that carried several backfill jobs */
};

/* Called on the loop when the scheduler has nothing running and nothing due. */
typedef void (*ferry_sched_idle_cb)(void *ud);
/* Called on the loop once after ferry_scheduler_stop when the last worker returned. */
typedef void (*ferry_sched_drained_cb)(void *ud);

/*
 * `store` is the loop thread's connection (borrowed). Caller frees with
 * ferry_scheduler_free() after the loop has closed the scheduler's handles
 * (ferry_scheduler_stop + running the loop).
 */
FERRY_NODISCARD int ferry_scheduler_new(struct ferry_scheduler **out, uv_loop_t *loop,
                                        struct ferry_runtime *rt, struct ferry_store *store,
                                        struct ferry_err *err);
void ferry_scheduler_free(struct ferry_scheduler *s); /* accepts NULL */

void ferry_scheduler_set_idle_cb(struct ferry_scheduler *s, ferry_sched_idle_cb cb, void *ud);
/*
 * Queue a delta poll of (system, object) from its cursor, or from `since`
 * (ISO 8601, a backfill) when non-NULL; polls take a worker before jobs do.
 */
FERRY_NODISCARD int ferry_scheduler_add_poll(struct ferry_scheduler *s, const char *system,
                                             const char *object, const char *since);
/* Look for work now (after an enqueue, a finished job, a timer). */
void ferry_scheduler_kick(struct ferry_scheduler *s);
/* Stop dispatching; `drained` runs once every running job has returned and handles are closed. */
void ferry_scheduler_stop(struct ferry_scheduler *s, ferry_sched_drained_cb drained, void *ud);
size_t ferry_scheduler_inflight(const struct ferry_scheduler *s);
const struct ferry_sched_stats *ferry_scheduler_stats(const struct ferry_scheduler *s);

#endif
