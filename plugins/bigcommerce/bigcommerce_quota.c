/* SPDX-License-Identifier: MIT */
/*
 * Quota governor (see bigcommerce_quota.h). BigCommerce reports on every
 * response how many requests are left in the window and when it refills
 * (facts 3). Workers share one governor per API: a request is sent while
 * the last report, minus requests still in flight, leaves room; otherwise
 * the worker waits for the reset. After a reset nobody knows the new
 * count, so exactly one request goes first and its answer re-arms the
 * others; that keeps a backfill against a 150/30 s quota to at most one
 * 429 (the window can also be consumed by other clients of the store).
 */
#include "bigcommerce_quota.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* While the count is unknown and a probe is out, re-check at least this often. */
#define BC_QUOTA_PROBE_WAIT_MS 1000
/* Two reports whose reset times differ by less than this describe the same window. */
#define BC_QUOTA_SAME_WINDOW_MS 1000

struct ferry_bc_quota {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char name[16];
    int known;        /* left/reset_at describe the current window */
    int ever_seen;    /* any report arrived since start */
    long left;        /* requests left as last reported */
    int64_t reset_at; /* host clock, ms: when the window refills */
    int64_t longest;  /* the longest reset time reported: about the window's length */
    int inflight;
    struct ferry_bc_quota_stats stats;
};

struct ferry_bc_quota *ferry__bc_quota_new(const char *name)
{
    pthread_condattr_t attr;
    struct ferry_bc_quota *q = calloc(1, sizeof(*q));
    if (!q) {
        return NULL;
    }
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        free(q);
        return NULL;
    }
    /* Waits must not stretch or shrink when someone sets the wall clock. */
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&q->cv, &attr) != 0) {
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    pthread_condattr_destroy(&attr);
    strncpy(q->name, name, sizeof(q->name) - 1);
    return q;
}

void ferry__bc_quota_free(struct ferry_bc_quota *q)
{
    if (!q) {
        return;
    }
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static void deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

void ferry__bc_quota_acquire(struct ferry_bc_quota *q, const struct ferry_host_api *host,
                             struct ferry_call *call)
{
    int counted_wait = 0;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        struct timespec ts;
        int64_t now = host->now_ms(call);
        if (!q->known) {
            /* Unknown count: the first request ever, or the probe after a reset. */
            if (!q->ever_seen || q->inflight == 0) {
                break;
            }
            deadline_after(&ts, BC_QUOTA_PROBE_WAIT_MS);
            if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT && !q->known) {
                /* The probe's answer is overdue (slow request): let one more go. */
                break;
            }
            continue;
        }
        if (q->left - q->inflight > 0) {
            break;
        }
        if (now >= q->reset_at) {
            q->known = 0;
            continue;
        }
        if (!counted_wait) {
            counted_wait = 1;
            q->stats.waits++;
            host->log(call, FERRY_LOG_INFO,
                      "bigcommerce: %s quota used up, waiting %lld ms for the window to reset",
                      q->name, (long long)(q->reset_at - now));
        }
        deadline_after(&ts, q->reset_at - now);
        if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT) {
            /*
             * The whole wait elapsed on the real clock: the window has
             * refilled, whatever an injected host clock says.
             */
            if (q->known && q->left - q->inflight <= 0) {
                q->known = 0;
            }
        }
    }
    q->inflight++;
    q->stats.requests++;
    pthread_mutex_unlock(&q->mu);
}

void ferry__bc_quota_release(struct ferry_bc_quota *q, const struct ferry_host_api *host,
                             struct ferry_call *call, int have_limits, long left, int64_t reset_ms)
{
    pthread_mutex_lock(&q->mu);
    if (q->inflight > 0) {
        q->inflight--;
    }
    if (have_limits) {
        int64_t reset_at = host->now_ms(call) + (reset_ms > 0 ? reset_ms : 0);
        /*
         * Answers overtake each other between workers: within one window the
         * smallest count is the newest; a later reset time is a new window.
         * A new window ends at least a window's length after the old one,
         * so the tolerance is at most half a window: with a window shorter
         * than the fixed tolerance, the first answers of a new window were
         * taken for the old one, its end stayed in the past, and the next
         * probe met the new window used up (a 429).
         */
        int64_t same = BC_QUOTA_SAME_WINDOW_MS;
        if (reset_ms > q->longest) {
            q->longest = reset_ms;
        }
        if (q->longest / 2 < same) {
            same = q->longest / 2;
        }
        if (q->known && reset_at < q->reset_at + same) {
            if (left < q->left) {
                q->left = left;
            }
        } else {
            q->left = left;
            q->reset_at = reset_at;
        }
        q->known = 1;
        q->ever_seen = 1;
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void ferry__bc_quota_exhausted(struct ferry_bc_quota *q, const struct ferry_host_api *host,
                               struct ferry_call *call, int64_t wait_ms)
{
    pthread_mutex_lock(&q->mu);
    if (q->inflight > 0) {
        q->inflight--;
    }
    q->stats.limited++;
    q->known = 1;
    q->ever_seen = 1;
    q->left = 0;
    q->reset_at = host->now_ms(call) + wait_ms;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void ferry__bc_quota_stats(struct ferry_bc_quota *q, struct ferry_bc_quota_stats *out)
{
    pthread_mutex_lock(&q->mu);
    *out = q->stats;
    pthread_mutex_unlock(&q->mu);
}
