/* SPDX-License-Identifier: MIT */
/*
 * The request quota governor: one per API (the store's REST quota and the
 * B2B Edition quota are counted separately by BigCommerce), shared by every
 * worker of the connector instance. It learns the quota from the response
 * headers and makes a worker wait, on a condition variable, when the window
 * is used up, so that a backfill spends the quota instead of collecting 429s.
 */
#ifndef FERRY_BIGCOMMERCE_QUOTA_H
#define FERRY_BIGCOMMERCE_QUOTA_H

#include <stdint.h>

#include "bigcommerce.h"

/* NULL when out of memory. `name` appears in log lines ("store", "b2b"). */
struct ferry_bc_quota *ferry__bc_quota_new(const char *name);
void ferry__bc_quota_free(struct ferry_bc_quota *q); /* accepts NULL */

/*
 * Blocks until a request may be sent under the known quota and counts it as
 * in flight. Waits are timed on the real clock for (reset time - host now),
 * so a test's frozen host clock still ends every wait.
 */
void ferry__bc_quota_acquire(struct ferry_bc_quota *q, const struct ferry_host_api *host,
                             struct ferry_call *call);

/*
 * Ends one in-flight request. With have_limits, `left` requests remain and
 * the window refills in `reset_ms`; without, nothing was learnt (a transport
 * error, or a response without the headers).
 */
void ferry__bc_quota_release(struct ferry_bc_quota *q, const struct ferry_host_api *host,
                             struct ferry_call *call, int have_limits, long left, int64_t reset_ms);

/* A 429: nothing more may be sent for `wait_ms`. Call instead of release. */
void ferry__bc_quota_exhausted(struct ferry_bc_quota *q, const struct ferry_host_api *host,
                               struct ferry_call *call, int64_t wait_ms);

struct ferry_bc_quota_stats {
    uint64_t requests; /* acquired */
    uint64_t waits;    /* acquisitions that had to wait for a reset */
    uint64_t limited;  /* 429 answers */
};
void ferry__bc_quota_stats(struct ferry_bc_quota *q, struct ferry_bc_quota_stats *out);

#endif
