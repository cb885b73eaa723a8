/* SPDX-License-Identifier: MIT */
/*
 * Scheduler (see scheduler.h). The pending list is re-read from the store on
 * every kick rather than mirrored in memory: the store is the only truth, so
 * a job enqueued by intake, by a poll on a worker, or before a restart is
 * seen the same way, and nothing can be lost between two copies.
 */
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "util.h"

size_t ferry_sched_select(struct ferry_job *const *pending, size_t n,
                          const char *const *running_keys, size_t nrunning, int64_t now_ms,
                          size_t max_pick, size_t *picked, int64_t *next_due_ms)
{
    size_t npicked = 0;
    *next_due_ms = INT64_MAX;
    for (size_t i = 0; i < n && npicked < max_pick; i++) {
        const char *key = pending[i]->job_key;
        bool blocked = false;
        for (size_t r = 0; r < nrunning && !blocked; r++) {
            blocked = strcmp(running_keys[r], key) == 0;
        }
        /* An earlier pending job of the same key, picked or not, comes first. */
        for (size_t e = 0; e < i && !blocked; e++) {
            blocked = strcmp(pending[e]->job_key, key) == 0;
        }
        if (blocked) {
            continue;
        }
        if (pending[i]->next_attempt_at_ms > now_ms) {
            if (pending[i]->next_attempt_at_ms < *next_due_ms) {
                *next_due_ms = pending[i]->next_attempt_at_ms;
            }
            continue;
        }
        picked[npicked++] = i;
    }
    return npicked;
}

enum ferry_job_take ferry_sched_take(void *ud, const char *job_key, int lane)
{
    struct ferry_sched_take *t = ud;
    for (size_t r = 0; r < t->nrunning; r++) {
        if (strcmp(t->running_keys[r], job_key) == 0) {
            return FERRY_JOB_SKIP;
        }
    }
    if (lane == FERRY_LANE_BACKFILL) {
        if (t->backfill++ % t->batch_size == 0) {
            t->workers++;
        }
        /* The last worker's batch is full, or another job would need one more. */
        return t->workers >= t->nfree && t->backfill % t->batch_size == 0 ? FERRY_JOB_TAKE_LAST
                                                                          : FERRY_JOB_TAKE;
    }
    t->workers++;
    return t->workers >= t->nfree ? FERRY_JOB_TAKE_LAST : FERRY_JOB_TAKE;
}

enum task_kind {
    TASK_JOB = 1,
    TASK_POLL = 2,
    TASK_BATCH = 3, /* several backfill jobs on one worker, their writes batched */
};

struct task {
    uv_work_t req; /* req.data points back at the task */
    struct ferry_scheduler *s;
    struct ferry_worker *worker;
    int kind;
    struct ferry_job *job;    /* TASK_JOB */
    char *key;                /* the job key while it runs */
    struct ferry_job **batch; /* TASK_BATCH: jobs, their keys in keys[] */
    char **keys;
    size_t nbatch;
    struct ferry_outcome *outs;
    char *system, *object; /* TASK_POLL */
    char *since;           /* TASK_POLL: backfill start, or NULL */
    int attempts;          /* TASK_POLL: earlier runs that failed transiently */
    char errmsg[256];      /* TASK_POLL: why it failed */
    struct ferry_outcome outcome;
    int rc;
};

struct poll_req {
    char *system;
    char *object;
    char *since;
    int attempts;
};

/* A poll that fails transiently (a 429 outlasting the connector's own
 * retry, a timeout) runs again from its cursor this many times in all
 * before it counts as failed: a one-off sync should not fail on one page. */
#define POLL_ATTEMPTS 3

struct ferry_scheduler {
    uv_loop_t *loop;
    struct ferry_runtime *rt;
    struct ferry_store *store;
    uv_timer_t timer; /* wakes the scheduler for the next due retry */
    bool timer_open;
    struct ferry_worker **free_workers;
    size_t nfree;
    char **running_keys; /* one per running job; at most nworkers * batch_size */
    size_t batch_size;   /* backfill jobs per worker task (1: no batching) */
    size_t nrunning;
    size_t inflight; /* jobs + polls on workers */
    struct poll_req *polls;
    size_t npolls;
    bool stopping;
    bool kicking;
    ferry_sched_idle_cb idle_cb;
    void *idle_ud;
    ferry_sched_drained_cb drained_cb;
    void *drained_ud;
    struct ferry_sched_stats stats;
};

int ferry_scheduler_new(struct ferry_scheduler **out, uv_loop_t *loop, struct ferry_runtime *rt,
                        struct ferry_store *store, struct ferry_err *err)
{
    struct ferry_scheduler *s = calloc(1, sizeof(*s));
    if (!s) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    s->loop = loop;
    s->rt = rt;
    s->store = store;
    s->batch_size = rt->cfg->batch_size > 1 ? (size_t)rt->cfg->batch_size : 1;
    s->free_workers = calloc(rt->nworkers ? rt->nworkers : 1, sizeof(*s->free_workers));
    s->running_keys =
        calloc((rt->nworkers ? rt->nworkers : 1) * s->batch_size, sizeof(*s->running_keys));
    if (!s->free_workers || !s->running_keys) {
        free(s->free_workers);
        free(s->running_keys);
        free(s);
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < rt->nworkers; i++) {
        s->free_workers[s->nfree++] = &rt->workers[rt->nworkers - 1 - i];
    }
    int rc = uv_timer_init(loop, &s->timer);
    if (rc < 0) {
        free(s->free_workers);
        free(s->running_keys);
        free(s);
        return ferry_err_set(err, FERRY_EIO, "timer: %s", uv_strerror(rc));
    }
    s->timer.data = s;
    s->timer_open = true;
    *out = s;
    return 0;
}

void ferry_scheduler_free(struct ferry_scheduler *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->npolls; i++) {
        free(s->polls[i].system);
        free(s->polls[i].object);
        free(s->polls[i].since);
    }
    free(s->polls);
    for (size_t i = 0; i < s->nrunning; i++) {
        free(s->running_keys[i]);
    }
    free(s->running_keys);
    free(s->free_workers);
    free(s);
}

void ferry_scheduler_set_idle_cb(struct ferry_scheduler *s, ferry_sched_idle_cb cb, void *ud)
{
    s->idle_cb = cb;
    s->idle_ud = ud;
}

static int add_poll(struct ferry_scheduler *s, const char *system, const char *object,
                    const char *since, int attempts)
{
    for (size_t i = 0; i < s->npolls; i++) {
        if (!since && !s->polls[i].since && strcmp(s->polls[i].system, system) == 0 &&
            strcmp(s->polls[i].object, object) == 0) {
            return 0; /* already queued: one poll covers every change since the cursor */
        }
    }
    struct poll_req *grown = realloc(s->polls, (s->npolls + 1) * sizeof(*s->polls));
    if (!grown) {
        return FERRY_ENOMEM;
    }
    s->polls = grown;
    s->polls[s->npolls].system = ferry_strdup(system);
    s->polls[s->npolls].object = ferry_strdup(object);
    s->polls[s->npolls].since = ferry_strdup(since);
    s->polls[s->npolls].attempts = attempts;
    if (!s->polls[s->npolls].system || !s->polls[s->npolls].object ||
        (since && !s->polls[s->npolls].since)) {
        free(s->polls[s->npolls].system);
        free(s->polls[s->npolls].object);
        free(s->polls[s->npolls].since);
        return FERRY_ENOMEM;
    }
    s->npolls++;
    return 0;
}

int ferry_scheduler_add_poll(struct ferry_scheduler *s, const char *system, const char *object,
                             const char *since)
{
    return add_poll(s, system, object, since, 0);
}

size_t ferry_scheduler_inflight(const struct ferry_scheduler *s)
{
    return s->inflight;
}

const struct ferry_sched_stats *ferry_scheduler_stats(const struct ferry_scheduler *s)
{
    return &s->stats;
}

static void on_work(uv_work_t *req)
{
    struct task *t = req->data;
    if (t->kind == TASK_JOB) {
        t->rc = ferry_pipeline_run_job(t->worker, t->job, &t->outcome);
    } else if (t->kind == TASK_BATCH) {
        t->rc = ferry_pipeline_run_batch(t->worker, t->batch, t->nbatch, t->outs);
    } else {
        struct ferry_poll_result res;
        struct ferry_err err = {0};
        t->rc = ferry_pipeline_poll(t->worker, t->system, t->object, t->since, &res, &err);
        if (t->rc < 0) {
            snprintf(t->errmsg, sizeof(t->errmsg), "%s",
                     err.msg[0] ? err.msg : ferry_strerror(t->rc));
        }
    }
}

static void maybe_finish(struct ferry_scheduler *s);

static void on_timer_closed(uv_handle_t *h)
{
    struct ferry_scheduler *s = h->data;
    s->timer_open = false;
    maybe_finish(s);
}

static void maybe_finish(struct ferry_scheduler *s)
{
    if (!s->stopping || s->inflight > 0) {
        return;
    }
    if (s->timer_open) {
        if (!uv_is_closing((uv_handle_t *)&s->timer)) {
            uv_close((uv_handle_t *)&s->timer, on_timer_closed);
        }
        return;
    }
    if (s->drained_cb) {
        ferry_sched_drained_cb cb = s->drained_cb;
        s->drained_cb = NULL;
        cb(s->drained_ud);
    }
}

static void forget_key(struct ferry_scheduler *s, const char *key)
{
    for (size_t i = 0; i < s->nrunning; i++) {
        if (s->running_keys[i] == key) {
            s->running_keys[i] = s->running_keys[--s->nrunning];
            return;
        }
    }
}

static void count_outcome(struct ferry_scheduler *s, const struct ferry_outcome *o)
{
    s->stats.writes += o->writes;
    if (o->kind == FERRY_OUTCOME_DONE) {
        s->stats.jobs_done++;
    } else if (o->kind == FERRY_OUTCOME_RETRY) {
        s->stats.jobs_retried++;
    } else {
        s->stats.jobs_dead++;
    }
}

static void on_after_work(uv_work_t *req, int status)
{
    struct task *t = req->data;
    struct ferry_scheduler *s = t->s;

    (void)status; /* UV_ECANCELED cannot happen: we never cancel work */
    s->free_workers[s->nfree++] = t->worker;
    s->inflight--;
    if (t->kind == TASK_JOB) {
        forget_key(s, t->key);
        if (t->rc == 0) {
            count_outcome(s, &t->outcome);
        }
        free(t->key);
        ferry_job_free(t->job);
    } else if (t->kind == TASK_BATCH) {
        for (size_t i = 0; i < t->nbatch; i++) {
            forget_key(s, t->keys[i]);
            count_outcome(s, &t->outs[i]);
            free(t->keys[i]);
            ferry_job_free(t->batch[i]);
        }
        s->stats.batches++;
        free(t->keys);
        free(t->batch);
        free(t->outs);
    } else {
        ferry_metrics_poll_done(t->system, t->object, t->rc);
        if (t->rc == 0) {
            s->stats.polls_done++;
        } else if (ferry_err_transient(t->rc) && t->attempts + 1 < POLL_ATTEMPTS && !s->stopping &&
                   add_poll(s, t->system, t->object, t->since, t->attempts + 1) == 0) {
            ferry_warn("poll of %s %s failed (attempt %d of %d), running it again: %s", t->system,
                       t->object, t->attempts + 1, POLL_ATTEMPTS, t->errmsg);
        } else {
            ferry_error("poll of %s %s failed: %s", t->system, t->object, t->errmsg);
            s->stats.polls_failed++;
        }
        free(t->system);
        free(t->object);
        free(t->since);
    }
    free(t);
    if (s->stopping) {
        maybe_finish(s);
        return;
    }
    ferry_scheduler_kick(s);
}

static int dispatch(struct ferry_scheduler *s, struct task *t)
{
    t->s = s;
    t->worker = s->free_workers[--s->nfree];
    t->req.data = t;
    int rc = uv_queue_work(s->loop, &t->req, on_work, on_after_work);
    if (rc < 0) {
        s->free_workers[s->nfree++] = t->worker;
        return rc;
    }
    s->inflight++;
    return 0;
}

static void on_timer(uv_timer_t *timer)
{
    ferry_scheduler_kick(timer->data);
}

void ferry_scheduler_kick(struct ferry_scheduler *s)
{
    struct ferry_job **jobs = NULL;
    size_t njobs = 0;
    struct ferry_err err = {0};
    size_t *picked = NULL;

    if (s->stopping || s->kicking) {
        return;
    }
    s->kicking = true;

    while (s->npolls > 0 && s->nfree > 0) {
        struct task *t = calloc(1, sizeof(*t));
        if (!t) {
            break;
        }
        t->kind = TASK_POLL;
        t->system = s->polls[0].system;
        t->object = s->polls[0].object;
        t->since = s->polls[0].since;
        t->attempts = s->polls[0].attempts;
        memmove(&s->polls[0], &s->polls[1], (s->npolls - 1) * sizeof(*s->polls));
        s->npolls--;
        if (dispatch(s, t) < 0) {
            free(t->system);
            free(t->object);
            free(t->since);
            free(t);
            break;
        }
    }

    if (s->nfree > 0) {
        int64_t now = s->rt->clock();
        int64_t next_due = INT64_MAX;
        /* The store applies the ordering rule (oldest unfinished job of each
         * key, lanes by priority), and ferry_sched_take stops its reading at
         * what the free workers can take, passing over running keys (which
         * the window allows for); select() below guards both again. */
        size_t window = s->nfree * s->batch_size + s->nrunning;
        struct ferry_sched_take take = {
            .running_keys = (const char *const *)s->running_keys,
            .nrunning = s->nrunning,
            .nfree = s->nfree,
            .batch_size = s->batch_size,
        };
        int rc = ferry_store_jobs_runnable_take(s->store, now, window, ferry_sched_take, &take,
                                                &jobs, &njobs, &err);
        if (rc == 0) {
            rc = ferry_store_jobs_next_due(s->store, now, &next_due, &err);
        }
        if (rc < 0) {
            ferry_error("scheduler: pending jobs not read: %s", err.msg);
            uv_timer_start(&s->timer, on_timer, 1000, 0);
            goto done;
        }
        picked = calloc(njobs ? njobs : 1, sizeof(*picked));
        if (!picked) {
            goto done;
        }
        int64_t unused_due;
        size_t n =
            ferry_sched_select(jobs, njobs, (const char *const *)s->running_keys, s->nrunning, now,
                               s->nfree * s->batch_size, picked, &unused_due);
        for (size_t i = 0; i < n && s->nfree > 0;) {
            struct ferry_job *head = jobs[picked[i]];
            size_t group = 1;
            /* Backfill jobs travel together so that their writes can share one
             * round trip; real-time and retry jobs keep their own worker. */
            if (head->lane == FERRY_LANE_BACKFILL && s->batch_size > 1) {
                while (i + group < n && group < s->batch_size &&
                       jobs[picked[i + group]]->lane == FERRY_LANE_BACKFILL) {
                    group++;
                }
            }
            struct task *t = calloc(1, sizeof(*t));
            if (!t) {
                break;
            }
            if (group == 1) {
                t->kind = TASK_JOB;
                t->key = ferry_strdup(head->job_key);
                t->job = head;
                if (!t->key || dispatch(s, t) < 0) {
                    free(t->key);
                    free(t);
                    break;
                }
                jobs[picked[i]] = NULL; /* the task owns it now */
                s->running_keys[s->nrunning++] = t->key;
                i++;
                continue;
            }
            t->kind = TASK_BATCH;
            t->batch = calloc(group, sizeof(*t->batch));
            t->keys = calloc(group, sizeof(*t->keys));
            t->outs = calloc(group, sizeof(*t->outs));
            bool ok = t->batch && t->keys && t->outs;
            for (size_t g = 0; ok && g < group; g++) {
                t->keys[g] = ferry_strdup(jobs[picked[i + g]]->job_key);
                ok = t->keys[g] != NULL;
                t->batch[g] = jobs[picked[i + g]];
            }
            t->nbatch = group;
            if (!ok || dispatch(s, t) < 0) {
                for (size_t g = 0; t->keys && g < group; g++) {
                    free(t->keys[g]);
                }
                free(t->keys);
                free(t->batch);
                free(t->outs);
                free(t);
                break;
            }
            for (size_t g = 0; g < group; g++) {
                jobs[picked[i + g]] = NULL;
                s->running_keys[s->nrunning++] = t->keys[g];
            }
            i += group;
        }
        /* Without a retry to wait for, look again after a while anyway: jobs can
         * also arrive from outside the loop (a poll on a worker, `ferry dlq
         * retry`, `ferry replay` from another process). */
        int64_t wait = next_due != INT64_MAX ? next_due - now : FERRY_SCHED_RESCAN_MS;
        if (wait > FERRY_SCHED_RESCAN_MS) {
            wait = FERRY_SCHED_RESCAN_MS;
        }
        uv_timer_start(&s->timer, on_timer, wait > 0 ? (uint64_t)wait : 0, 0);
        if (s->inflight == 0 && njobs == 0 && next_due == INT64_MAX && s->npolls == 0 &&
            s->idle_cb) {
            s->idle_cb(s->idle_ud);
        }
    }
done:
    for (size_t i = 0; i < njobs; i++) {
        ferry_job_free(jobs[i]);
    }
    free(jobs);
    free(picked);
    s->kicking = false;
}

void ferry_scheduler_stop(struct ferry_scheduler *s, ferry_sched_drained_cb drained, void *ud)
{
    s->stopping = true;
    s->drained_cb = drained;
    s->drained_ud = ud;
    if (s->timer_open) {
        uv_timer_stop(&s->timer);
    }
    maybe_finish(s);
}
