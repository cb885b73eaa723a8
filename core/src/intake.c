/* SPDX-License-Identifier: MIT */
/*
 * Group-committed intake (see intake.h). Two batches alternate: the loop
 * appends to `collecting` while `committing` is written on a pool thread;
 * when that commit returns, its items are answered and, if anything has
 * collected meanwhile, the next commit starts at once. No timer is needed:
 * the batch size follows the load by itself.
 */
#include "intake.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

struct item {
    struct ferry_intake_job *jobs; /* one allocation: the jobs, then every string of the item */
    size_t njobs;
    const char *instance; /* inside the jobs' allocation */
    const char *scope;    /* inside it too, or NULL */
    int64_t now_ms;
    ferry_intake_reply_cb reply;
    void *reply_ctx;
    int queued;
    int duplicates;
};

/* The refusals are constant, so answering one needs no allocation even when memory is short. */
static const struct ferry_intake_reply not_stored = {
    .status = 503,
    .error = "unavailable",
    .message = "the event could not be stored; deliver again",
};
static const struct ferry_intake_reply shutting_down = {
    .status = 503,
    .error = "shutting_down",
    .message = "ferry is stopping; deliver again later",
};
static const struct ferry_intake_reply out_of_memory = {
    .status = 503,
    .error = "unavailable",
    .message = "out of memory",
};

struct batch {
    struct item *items;
    size_t n, cap;
};

struct ferry_intake {
    uv_loop_t *loop;
    struct ferry_store *store; /* used only by the commit, one at a time */
    int64_t dedupe_window_ms;
    struct batch collecting;
    struct batch committing;
    bool busy; /* a commit is on the pool */
    int rc;    /* the last commit's result */
    struct ferry_err err;
    uv_work_t work;
    ferry_intake_committed_cb committed;
    void *ud;
    bool stopping;
    void (*stopped)(void *ud);
    void *stopped_ud;
    struct ferry_intake_stats stats;
};

int ferry_intake_new(struct ferry_intake **out, uv_loop_t *loop, const char *state_path,
                     int64_t dedupe_window_ms, ferry_intake_committed_cb committed, void *ud,
                     struct ferry_err *err)
{
    struct ferry_intake *in = calloc(1, sizeof(*in));
    if (!in) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    int rc = ferry_store_open(&in->store, state_path, err);
    if (rc < 0) {
        free(in);
        return rc;
    }
    /* An acknowledged webhook must survive a power cut: FULL on this connection. */
    rc = ferry_store_set_synchronous(in->store, true, err);
    if (rc < 0) {
        ferry_store_close(in->store);
        free(in);
        return rc;
    }
    in->loop = loop;
    in->dedupe_window_ms = dedupe_window_ms;
    in->committed = committed;
    in->ud = ud;
    in->work.data = in;
    *out = in;
    return 0;
}

static void item_clear(struct item *it)
{
    free(it->jobs);
    memset(it, 0, sizeof(*it));
}

static size_t text_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static const char *text_copy(char **cursor, const char *s)
{
    if (!s) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *d = *cursor;
    memcpy(d, s, n);
    *cursor += n;
    return d;
}

/*
 * Copies the item's jobs and strings into one allocation: a webhook is
 * answered within a commit or two, and one malloc/free per item keeps the
 * loop thread's share of intake small.
 */
static int item_fill(struct item *it, const struct ferry_intake_job *jobs, size_t njobs,
                     const char *instance, const char *scope)
{
    size_t bytes = njobs * sizeof(*jobs) + text_size(instance) + text_size(scope);
    for (size_t i = 0; i < njobs; i++) {
        bytes += text_size(jobs[i].dedupe_key) + text_size(jobs[i].job_key) +
                 text_size(jobs[i].kind) + text_size(jobs[i].payload) +
                 text_size(jobs[i].correlation_id) + text_size(jobs[i].group);
    }
    struct ferry_intake_job *copy = malloc(bytes ? bytes : 1);
    if (!copy) {
        return FERRY_ENOMEM;
    }
    char *cursor = (char *)(copy + njobs);
    for (size_t i = 0; i < njobs; i++) {
        copy[i] = (struct ferry_intake_job){
            .dedupe_key = text_copy(&cursor, jobs[i].dedupe_key),
            .job_key = text_copy(&cursor, jobs[i].job_key),
            .kind = text_copy(&cursor, jobs[i].kind),
            .payload = text_copy(&cursor, jobs[i].payload),
            .correlation_id = text_copy(&cursor, jobs[i].correlation_id),
            .group = text_copy(&cursor, jobs[i].group),
            .hold_ms = jobs[i].hold_ms,
        };
    }
    it->instance = text_copy(&cursor, instance);
    it->scope = text_copy(&cursor, scope);
    it->jobs = copy;
    it->njobs = njobs;
    return 0;
}

static void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        item_clear(&b->items[i]);
    }
    b->n = 0;
}

void ferry_intake_free(struct ferry_intake *in)
{
    if (!in) {
        return;
    }
    batch_clear(&in->collecting);
    batch_clear(&in->committing);
    free(in->collecting.items);
    free(in->committing.items);
    ferry_store_close(in->store);
    free(in);
}

/* One item's jobs and bookkeeping, inside the batch's transaction. */
static int write_item(struct ferry_intake *in, struct item *it, struct ferry_err *err)
{
    for (size_t i = 0; i < it->njobs; i++) {
        const struct ferry_intake_job *j = &it->jobs[i];
        struct ferry_job_new jn = {
            .dedupe_key = j->dedupe_key,
            .job_key = j->job_key,
            .kind = j->kind,
            .payload = j->payload,
            .correlation_id = j->correlation_id,
            .now_ms = it->now_ms,
            .dedupe_window_ms = in->dedupe_window_ms,
            .lane = FERRY_LANE_REALTIME,
            .group = j->group,
            .not_before_ms = j->group ? it->now_ms + j->hold_ms : 0,
        };
        bool inserted = false;
        int64_t id = 0;
        int rc = ferry_store_job_enqueue(in->store, &jn, &id, &inserted, err);
        if (rc < 0) {
            return rc;
        }
        if (!inserted) {
            it->duplicates++;
            continue;
        }
        /* No audit row: the job row says how and when it came, and the
         * audit readers show it as the job's intake step (store_sql.h). */
        it->queued++;
    }
    return 0;
}

/*
 * The deliveries of a batch per (instance, scope), one statement each: a
 * batch is mostly one scope, and an upsert per webhook was a measurable
 * share of the commit thread's work.
 */
static int record_scopes(struct ferry_intake *in, struct batch *b, struct ferry_err *err)
{
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        bool seen_before = false;
        int64_t count = 0, last = 0;
        if (!it->scope) {
            continue;
        }
        for (size_t k = 0; k < i && !seen_before; k++) {
            seen_before = b->items[k].scope && strcmp(b->items[k].scope, it->scope) == 0 &&
                          strcmp(b->items[k].instance, it->instance) == 0;
        }
        if (seen_before) {
            continue;
        }
        for (size_t k = i; k < b->n; k++) {
            struct item *o = &b->items[k];
            if (o->scope && strcmp(o->scope, it->scope) == 0 &&
                strcmp(o->instance, it->instance) == 0) {
                count++;
                last = o->now_ms > last ? o->now_ms : last;
            }
        }
        int rc = ferry_store_webhook_seen(in->store, it->instance, it->scope, last, count, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static void on_commit_work(uv_work_t *req)
{
    struct ferry_intake *in = req->data;
    struct batch *b = &in->committing;
    ferry_err_clear(&in->err);
    in->rc = ferry_store_begin(in->store, &in->err);
    for (size_t i = 0; in->rc == 0 && i < b->n; i++) {
        b->items[i].queued = b->items[i].duplicates = 0;
        in->rc = write_item(in, &b->items[i], &in->err);
    }
    if (in->rc == 0) {
        in->rc = record_scopes(in, b, &in->err);
    }
    if (in->rc == 0) {
        in->rc = ferry_store_commit(in->store, &in->err);
    } else {
        ferry_store_rollback(in->store);
    }
}

static void start_commit(struct ferry_intake *in);

static void on_commit_done(uv_work_t *req, int status)
{
    struct ferry_intake *in = req->data;
    struct batch *b = &in->committing;
    int64_t queued = 0;
    (void)status; /* never cancelled */
    in->busy = false;
    in->stats.batches++;
    if ((int64_t)b->n > in->stats.max_batch) {
        in->stats.max_batch = (int64_t)b->n;
    }
    if (in->rc < 0) {
        ferry_error("webhooks not stored (%zu answered 503): %s", b->n, in->err.msg);
    }
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        if (in->rc < 0) {
            in->stats.failed++;
            /* Not acknowledged, so the sender delivers it again: nothing is lost. */
            it->reply(it->reply_ctx, &not_stored);
            continue;
        }
        in->stats.items++;
        ferry_metrics_webhook(it->instance, it->queued, it->duplicates);
        in->stats.queued += it->queued;
        in->stats.duplicates += it->duplicates;
        queued += it->queued;
        struct ferry_intake_reply ok = {
            .status = 200, .queued = it->queued, .duplicates = it->duplicates};
        it->reply(it->reply_ctx, &ok);
    }
    batch_clear(b);
    if (in->committed && queued > 0) {
        in->committed(in->ud, queued);
    }
    if (in->collecting.n > 0) {
        start_commit(in);
    } else if (in->stopping && in->stopped) {
        void (*cb)(void *) = in->stopped;
        in->stopped = NULL;
        cb(in->stopped_ud);
    }
}

static void start_commit(struct ferry_intake *in)
{
    /* Swap: what collected is committed now; the emptied batch collects next. */
    struct batch t = in->committing;
    in->committing = in->collecting;
    in->collecting = t;
    in->busy = true;
    int rc = uv_queue_work(in->loop, &in->work, on_commit_work, on_commit_done);
    if (rc < 0) {
        in->rc =
            ferry_err_set(&in->err, FERRY_EIO, "cannot schedule the commit: %s", uv_strerror(rc));
        on_commit_done(&in->work, 0);
    }
}

void ferry_intake_submit(struct ferry_intake *in, const struct ferry_intake_job *jobs, size_t njobs,
                         const char *instance, const char *scope, int64_t now_ms,
                         ferry_intake_reply_cb reply, void *reply_ctx)
{
    struct batch *b = &in->collecting;
    if (in->stopping) {
        reply(reply_ctx, &shutting_down);
        return;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct item *grown = realloc(b->items, cap * sizeof(*grown));
        if (!grown) {
            reply(reply_ctx, &out_of_memory);
            return;
        }
        b->items = grown;
        b->cap = cap;
    }
    struct item *it = &b->items[b->n];
    memset(it, 0, sizeof(*it));
    if (!instance || item_fill(it, jobs, njobs, instance, scope) < 0) {
        reply(reply_ctx, &out_of_memory);
        return;
    }
    it->now_ms = now_ms;
    it->reply = reply;
    it->reply_ctx = reply_ctx;
    b->n++;
    if (!in->busy) {
        start_commit(in);
    }
}

size_t ferry_intake_pending(const struct ferry_intake *in)
{
    return in->collecting.n + (in->busy ? in->committing.n : 0);
}

const struct ferry_intake_stats *ferry_intake_stats(const struct ferry_intake *in)
{
    return &in->stats;
}

void ferry_intake_stop(struct ferry_intake *in, void (*done)(void *ud), void *ud)
{
    in->stopping = true;
    if (in->busy || in->collecting.n > 0) {
        in->stopped = done;
        in->stopped_ud = ud;
        if (!in->busy) {
            start_commit(in);
        }
        return;
    }
    if (done) {
        done(ud);
    }
}
