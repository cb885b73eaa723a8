/* SPDX-License-Identifier: MIT */
/*
 * One job, end to end, on one worker: fetch the full record from the source
 * connector (webhooks are thin; a polled job carries its record), run the
 * mappings, and apply each intent to its target: resolve the record's link
 * (link table, then the mapping's lookup rules, never a blind create), drop
 * what did not change since the last sync, respect per-field systems of
 * record, write, and record the link, hash and audit rows.
 *
 * Also the delta poll of one source object, which turns changed records into
 * jobs and advances the cursor.
 *
 * Threads: runs on a worker thread with that worker's context.
 */
#ifndef FERRY_PIPELINE_H
#define FERRY_PIPELINE_H

#include <stdint.h>

#include "runtime.h"
#include "store.h"

enum ferry_outcome_kind {
    FERRY_OUTCOME_DONE = 0,  /* finished (written, or nothing to do) */
    FERRY_OUTCOME_RETRY = 1, /* transient failure: try again at retry_at_ms */
    FERRY_OUTCOME_DEAD = 2,  /* permanent failure, or attempts exhausted */
};

struct ferry_outcome {
    int kind;            /* enum ferry_outcome_kind */
    int64_t retry_at_ms; /* RETRY only */
    int writes;          /* remote create/update calls made */
    char error[512];     /* why, for RETRY and DEAD */
    /* Read from the payload while the job ran, so that recording the
     * outcome need not parse it again. */
    char event[64];    /* the job's event; "" when the payload was unreadable */
    bool has_snapshot; /* the payload carried the record (a poll's snapshot) */
};

/*
 * Lease the job, run it, and record the outcome in the store (finish, retry
 * with backoff, or bury). `job` is as read from the pending list. Returns 0
 * when the outcome was recorded; a negative code only when the store itself
 * failed (the job is then taken back by the next start's requeue).
 */
int ferry_pipeline_run_job(struct ferry_worker *w, const struct ferry_job *job,
                           struct ferry_outcome *out);

/*
 * Run several jobs (distinct keys) on one worker, sending their writes to a
 * connector that supports write_many in one round trip per target (e.g. one
 * OData $batch), then record each job's outcome. Jobs whose work is not a
 * single upsert, or whose target cannot batch, run as usual. outs[i] gets
 * job i's outcome. Returns 0, or FERRY_EDB when an outcome was not recorded.
 */
int ferry_pipeline_run_batch(struct ferry_worker *w, struct ferry_job *const *jobs, size_t n,
                             struct ferry_outcome *outs);

/*
 * `ferry plan` for one source record: map it (fetching it unless given) and
 * decide every intent as a job would (links, lookups, systems of record),
 * reading the target where needed but writing nothing, not even audit rows or
 * links. Appends one object per intent to `out`:
 *   {"mapping", "rule"?, "target": {...}, "action": "create" | "update" |
 *    "no change" | "conflict" | "skip (no record to update)" | "error",
 *    "target_id"?, "matched_by"?, "fields": [{"field", "action": "set" |
 *    "change" | "no change" | "conflict" | "kept (target owns it)", "old", "new"}]}
 */
int ferry_pipeline_plan_record(struct ferry_worker *w, const char *system, const char *object,
                               const char *id, const char *event, const json_t *record, json_t *out,
                               struct ferry_err *err);

/* The delay before attempt `attempts + 1`: exponential from base, capped, with jitter. */
int64_t ferry_pipeline_backoff_ms(const struct ferry_config *cfg, int attempts, int64_t hint_ms,
                                  uint32_t jitter_seed);

struct ferry_poll_result {
    int64_t records;  /* records listed */
    int64_t enqueued; /* new jobs */
    int64_t missed;   /* changes no webhook announced (see webhook_missed_total) */
    int pages;
};

/* A change is counted as missed by webhooks only once it is this old. */
#define FERRY_WEBHOOK_GRACE_MS (2 * 60 * 1000)

/*
 * Delta poll of (system, object) from the stored cursor, or from `since`
 * (an ISO 8601 UTC timestamp: a backfill) when non-NULL. Every page is
 * committed as jobs together with the cursor advanced to the newest change
 * seen, so a crash never skips records (the cursor is inclusive; overlap is
 * absorbed by dedupe keys and content hashes) and memory holds one page.
 *
 * In a regular poll, a changed record for which no webhook job was created
 * since its change counts towards the `webhook_missed_total:<system>:<object>`
 * counter: that is how lost webhooks are noticed (and repaired by the poll).
 * Changes younger than FERRY_WEBHOOK_GRACE_MS are not judged yet.
 */
int ferry_pipeline_poll(struct ferry_worker *w, const char *system, const char *object,
                        const char *since, struct ferry_poll_result *res, struct ferry_err *err);

/* Correlation ID derived from a stable delivery key (32 hex chars). */
void ferry_correlation_from(const char *key, char out[33]);

#endif
