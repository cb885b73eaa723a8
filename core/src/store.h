/* SPDX-License-Identifier: MIT */
/*
 * The state store: the one module that issues SQL. Jobs (deduplicated inbox
 * and retry queue), links between records of two systems, delta cursors and
 * the audit trail, in one SQLite database (WAL, versioned migrations keyed on
 * PRAGMA user_version, file mode 0600).
 *
 * Threads: a struct ferry_store is one connection and belongs to one thread at
 * a time (SQLITE_OPEN_NOMUTEX); every worker and the loop thread open their
 * own. Statements are prepared once per connection. Writers on other
 * connections are waited for up to the busy timeout.
 */
#ifndef FERRY_STORE_H
#define FERRY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

struct ferry_store;

enum ferry_job_state {
    FERRY_JOB_PENDING = 0,
    FERRY_JOB_RUNNING = 1,
    FERRY_JOB_DONE = 2,
    FERRY_JOB_DEAD = 3,
};
#define FERRY_JOB_NSTATES 4

/* "pending", "running", "done", "dead"; "unknown" otherwise. */
const char *ferry_job_state_name(int state);

/*
 * Open (creating and migrating as needed) the database at `path`. A new file
 * is created with mode 0600. Returns 0 or FERRY_EDB / FERRY_EIO with detail
 * in err. Caller frees with ferry_store_close().
 */
FERRY_NODISCARD int ferry_store_open(struct ferry_store **out, const char *path,
                                     struct ferry_err *err);
void ferry_store_close(struct ferry_store *s); /* accepts NULL */
/* Schema version after migrations (PRAGMA user_version). */
int ferry_store_schema_version(struct ferry_store *s);

/*
 * Explicit transactions, for batching several writes into one commit. The
 * outermost begin takes the write lock (other connections' writers wait for
 * it), so never hold one across a network call. They nest: a begin inside
 * one is a savepoint, whose commit keeps its writes for the outer commit and
 * whose rollback undoes only them. A rollback of the outermost one undoes
 * everything since its begin.
 */
FERRY_NODISCARD int ferry_store_begin(struct ferry_store *s, struct ferry_err *err);
FERRY_NODISCARD int ferry_store_commit(struct ferry_store *s, struct ferry_err *err);
void ferry_store_rollback(struct ferry_store *s);
/* Whether a ferry_store_begin() is open on this connection. */
bool ferry_store_in_transaction(const struct ferry_store *s);
/*
 * Durability of this connection's commits: true = synchronous FULL (the
 * default, for intake: an acknowledged webhook survives power loss), false =
 * NORMAL (WAL stays consistent; the last commits may be lost to a power cut).
 * FERRY_EINVAL inside ferry_store_begin()/commit.
 */
FERRY_NODISCARD int ferry_store_set_synchronous(struct ferry_store *s, bool full,
                                                struct ferry_err *err);

/* ---- jobs ---- */

/*
 * Priority lanes: real-time work (webhooks) runs before retries, which run
 * before backfill (polls), so a long backfill never starves live events.
 * (A new lane also goes into OPS_OLDEST_PENDING, which asks each by name.)
 */
enum ferry_lane {
    FERRY_LANE_REALTIME = 0,
    FERRY_LANE_RETRY = 1,
    FERRY_LANE_BACKFILL = 2,
};

struct ferry_job_new {
    const char *dedupe_key;     /* NULL: never deduplicated */
    const char *job_key;        /* ordering key, e.g. "shop:customer:42" */
    const char *kind;           /* e.g. "sync" */
    const char *payload;        /* JSON text */
    const char *correlation_id; /* non-NULL */
    int64_t now_ms;
    int64_t dedupe_window_ms; /* a job with the same dedupe_key created within this window is a
                                 duplicate */
    int lane;                 /* enum ferry_lane; also recorded as the job's origin */
    /* Appended for event coalescing (issue 5). */
    const char *group;     /* the business entity's group key; NULL: none */
    int64_t not_before_ms; /* not run before this time (the coalescing window); 0: at once */
};

/*
 * Insert a pending job unless it is a duplicate (see dedupe_window_ms).
 * *id receives the new job's id, or the existing job's id for a duplicate;
 * *inserted says which. Either may be NULL.
 */
FERRY_NODISCARD int ferry_store_job_enqueue(struct ferry_store *s, const struct ferry_job_new *j,
                                            int64_t *id, bool *inserted, struct ferry_err *err);

struct ferry_job {
    int64_t id;
    char *dedupe_key; /* may be NULL */
    char *job_key;
    char *kind;
    char *payload;
    char *correlation_id;
    int state; /* enum ferry_job_state */
    int attempts;
    int64_t next_attempt_at_ms;
    char *last_error; /* may be NULL */
    int64_t created_at_ms;
    int64_t updated_at_ms;
    int lane; /* enum ferry_lane */
};
void ferry_job_free(struct ferry_job *j); /* frees the strings and j itself; accepts NULL */

/*
 * Pending jobs in arrival order (id ascending) with id > after_id, at most
 * `limit`, whatever their next_attempt_at. The scheduler decides which may run.
 * *jobs is an array of *n pointers; free each with ferry_job_free() and the
 * array with free().
 */
FERRY_NODISCARD int ferry_store_jobs_pending(struct ferry_store *s, int64_t after_id, size_t limit,
                                             struct ferry_job ***jobs, size_t *n,
                                             struct ferry_err *err);
/*
 * Jobs that may start now, in priority order (lane, then arrival): due, and
 * each the oldest unfinished job of its key. At most `limit`; freed like
 * ferry_store_jobs_pending's.
 */
FERRY_NODISCARD int ferry_store_jobs_runnable(struct ferry_store *s, int64_t now_ms, size_t limit,
                                              struct ferry_job ***jobs, size_t *n,
                                              struct ferry_err *err);
/* What ferry_store_jobs_runnable_take does with a row it read. */
enum ferry_job_take {
    FERRY_JOB_SKIP = 0,      /* not wanted: the job is not built */
    FERRY_JOB_TAKE = 1,      /* returned */
    FERRY_JOB_TAKE_LAST = 2, /* returned, and nothing more is read */
};
typedef enum ferry_job_take (*ferry_job_take_fn)(void *ud, const char *job_key, int lane);
/*
 * ferry_store_jobs_runnable for a caller that can use only some of the jobs
 * (the scheduler: as many as it has free workers for, none of a key it
 * runs): `take` sees each row's key and lane before the job is built, and
 * the reading ends once it took its last job or `limit` rows were read,
 * skipped ones included. The rows a caller cannot use are never built,
 * and those past its last are not even read.
 */
FERRY_NODISCARD int ferry_store_jobs_runnable_take(struct ferry_store *s, int64_t now_ms,
                                                   size_t limit, ferry_job_take_fn take, void *ud,
                                                   struct ferry_job ***jobs, size_t *n,
                                                   struct ferry_err *err);
/* Earliest next_attempt_at after now among pending jobs; INT64_MAX when none. */
FERRY_NODISCARD int ferry_store_jobs_next_due(struct ferry_store *s, int64_t now_ms, int64_t *at_ms,
                                              struct ferry_err *err);
/* Whether a job of `job_key` that came in through lane `origin` was created at or after since_ms.
 */
FERRY_NODISCARD int ferry_store_job_origin_since(struct ferry_store *s, const char *job_key,
                                                 int origin, int64_t since_ms, bool *found,
                                                 struct ferry_err *err);
FERRY_NODISCARD int ferry_store_job_get(struct ferry_store *s, int64_t id, struct ferry_job **job,
                                        struct ferry_err *err); /* FERRY_ENOTFOUND */

/* pending -> running, attempts += 1, lease until `lease_until_ms`. FERRY_EBUSY if not pending. */
FERRY_NODISCARD int ferry_store_job_lease(struct ferry_store *s, int64_t id, int64_t now_ms,
                                          int64_t lease_until_ms, struct ferry_err *err);
/* running -> done. */
FERRY_NODISCARD int ferry_store_job_finish(struct ferry_store *s, int64_t id, int64_t now_ms,
                                           struct ferry_err *err);
/* running -> pending with next_attempt_at and last_error. */
FERRY_NODISCARD int ferry_store_job_retry(struct ferry_store *s, int64_t id, int64_t now_ms,
                                          int64_t next_attempt_at_ms, const char *error,
                                          struct ferry_err *err);
/* running/pending -> dead with last_error (the dead letter). */
FERRY_NODISCARD int ferry_store_job_bury(struct ferry_store *s, int64_t id, int64_t now_ms,
                                         const char *error, struct ferry_err *err);

/* How a run ended, for ferry_store_job_end. */
struct ferry_job_end {
    int state;                  /* FERRY_JOB_DONE, FERRY_JOB_PENDING (a retry) or FERRY_JOB_DEAD */
    int64_t next_attempt_at_ms; /* a retry's */
    const char *error;          /* a retry's or a dead letter's reason */
    const char *mapping_hash;   /* the mapping set that decided it; NULL: left as it is */
};
/*
 * finish, retry or bury (same guards and errors), recording the mapping
 * set in the same UPDATE (what ferry_store_job_note_mapping does alone).
 */
FERRY_NODISCARD int ferry_store_job_end(struct ferry_store *s, int64_t id, int64_t now_ms,
                                        const struct ferry_job_end *end, struct ferry_err *err);
/* Every running job back to pending (after a crash or an unclean stop); *n gets the count. */
FERRY_NODISCARD int ferry_store_jobs_requeue_running(struct ferry_store *s, int64_t now_ms,
                                                     int64_t *n, struct ferry_err *err);
/* counts[state] for every enum ferry_job_state. */
FERRY_NODISCARD int ferry_store_job_counts(struct ferry_store *s, int64_t counts[FERRY_JOB_NSTATES],
                                           struct ferry_err *err);
/* Number of dead jobs whose updated_at >= since_ms. */
FERRY_NODISCARD int ferry_store_jobs_dead_since(struct ferry_store *s, int64_t since_ms, int64_t *n,
                                                struct ferry_err *err);

/* ---- links ---- */

struct ferry_link_key {
    const char *src_system; /* connector instance, e.g. "shop" */
    const char *src_object;
    const char *src_id;
    const char *dst_system;
    const char *dst_object;
};

struct ferry_link {
    char *dst_id;
    char *etag;         /* remote version as last seen; may be NULL */
    char *content_hash; /* hash of the last synced content (source -> target); may be NULL */
    char *fields;       /* JSON object of the field values last written; may be NULL */
    int64_t updated_at_ms;
};
void ferry_link_clear(struct ferry_link *l); /* frees the strings, zeroes l; accepts NULL */

/* FERRY_ENOTFOUND when there is no link for key. */
FERRY_NODISCARD int ferry_store_link_get(struct ferry_store *s, const struct ferry_link_key *key,
                                         struct ferry_link *out, struct ferry_err *err);
/* Insert or replace the link for key (dst_id, etag, content_hash, fields; NULLs stored as NULL). */
FERRY_NODISCARD int ferry_store_link_put(struct ferry_store *s, const struct ferry_link_key *key,
                                         const struct ferry_link *link, int64_t now_ms,
                                         struct ferry_err *err);
/* The source record linked to (dst_system, dst_object, dst_id); *src_id malloc'd. FERRY_ENOTFOUND.
 */
FERRY_NODISCARD int ferry_store_link_find_by_dst(struct ferry_store *s, const char *dst_system,
                                                 const char *dst_object, const char *dst_id,
                                                 const char *src_system, const char *src_object,
                                                 char **src_id, struct ferry_err *err);

/* ---- cursors ---- */

/* *value malloc'd, or NULL when the cursor was never set (returns 0 then). */
FERRY_NODISCARD int ferry_store_cursor_get(struct ferry_store *s, const char *system,
                                           const char *object, char **value, struct ferry_err *err);
FERRY_NODISCARD int ferry_store_cursor_put(struct ferry_store *s, const char *system,
                                           const char *object, const char *value, int64_t now_ms,
                                           struct ferry_err *err);

/* ---- audit ---- */

struct ferry_audit_row {
    int64_t job_id; /* 0 when not tied to a job */
    const char *correlation_id;
    const char *connector; /* may be NULL */
    const char *step;      /* "http", "map", "match", "write", "skip", "intake", ... */
    const char *method;    /* may be NULL */
    const char *url;       /* redacted by the caller; may be NULL */
    int status;            /* HTTP status or 0 */
    const char *request;   /* redacted and size-capped by the caller; may be NULL */
    const char *response;  /* likewise */
    const char *detail;    /* free text: decision, error message; may be NULL */
    int64_t duration_ms;
    int64_t at_ms;
};
FERRY_NODISCARD int ferry_store_audit_add(struct ferry_store *s, const struct ferry_audit_row *row,
                                          struct ferry_err *err);
/*
 * Hold audit rows back (on = true): ferry_store_audit_add() then keeps a copy
 * in memory, and the held rows are inserted, in the order they were added,
 * by the next commit of an outermost ferry_store_begin(), so that a job's
 * trail and its outcome land in one transaction. A rollback keeps them for
 * the next commit. Past a bound (rows or bytes) they are written at once.
 * Turning holding off writes what is held (in the open transaction, or in
 * one of its own). Rows not written because of an error are dropped and
 * the error is returned.
 */
FERRY_NODISCARD int ferry_store_audit_hold(struct ferry_store *s, bool on, struct ferry_err *err);
/* Number of audit rows with this step ("http", ...) and, if non-NULL, this method; for tests and
 * status. */
FERRY_NODISCARD int ferry_store_audit_count(struct ferry_store *s, const char *step,
                                            const char *method, int64_t *n, struct ferry_err *err);

/* ---- connector key/value store (host kv_get / kv_put) ---- */

/* *value malloc'd; FERRY_ENOTFOUND when absent. updated_at_ms may be NULL. */
FERRY_NODISCARD int ferry_store_kv_get(struct ferry_store *s, const char *instance, const char *key,
                                       char **value, int64_t *updated_at_ms, struct ferry_err *err);
/* Every connector key/value whose key starts with `prefix`: a new array of
 * {"instance", "key", "value" (parsed JSON when it is JSON), "updated_at"}. */
FERRY_NODISCARD int ferry_store_kv_list(struct ferry_store *s, const char *prefix, json_t **out,
                                        struct ferry_err *err);
FERRY_NODISCARD int ferry_store_kv_put(struct ferry_store *s, const char *instance, const char *key,
                                       const char *value, int64_t now_ms, struct ferry_err *err);

/* ---- counters (e.g. webhook_missed_total) ---- */

FERRY_NODISCARD int ferry_store_counter_add(struct ferry_store *s, const char *name, int64_t delta,
                                            int64_t now_ms, struct ferry_err *err);
/* *out: new object name -> value. */
FERRY_NODISCARD int ferry_store_counters(struct ferry_store *s, json_t **out,
                                         struct ferry_err *err);

/* ---- webhook deliveries seen, per instance and scope ---- */

/* `count` deliveries of (instance, scope), the latest at at_ms: intake records a batch's at once.
 */
FERRY_NODISCARD int ferry_store_webhook_seen(struct ferry_store *s, const char *instance,
                                             const char *scope, int64_t at_ms, int64_t count,
                                             struct ferry_err *err);
/* *out: new array of {"instance", "scope", "last_at", "count"}. */
FERRY_NODISCARD int ferry_store_webhooks_seen(struct ferry_store *s, json_t **out,
                                              struct ferry_err *err);

/* ---- dead letters ---- */

/* Record which mapping set (ferry_mapping_set_hash) processed the job. */
FERRY_NODISCARD int ferry_store_job_note_mapping(struct ferry_store *s, int64_t id,
                                                 const char *hash, struct ferry_err *err);
/*
 * A job of `job_key` succeeded: older open dead letters of the same key are
 * marked superseded by it (they describe a state of the record that is no
 * longer the latest). *n (may be NULL) gets how many.
 */
FERRY_NODISCARD int ferry_store_jobs_supersede(struct ferry_store *s, const char *job_key,
                                               int64_t by_id, int64_t now_ms, int64_t *n,
                                               struct ferry_err *err);
/* Open dead letters (dead, not superseded or dropped), oldest first; freed like pending. */
FERRY_NODISCARD int ferry_store_jobs_dead(struct ferry_store *s, size_t limit,
                                          struct ferry_job ***jobs, size_t *n,
                                          struct ferry_err *err);
/* A dead letter back to pending, due now, attempts reset. FERRY_ENOTFOUND if not dead. */
FERRY_NODISCARD int ferry_store_job_requeue_dead(struct ferry_store *s, int64_t id, int64_t now_ms,
                                                 struct ferry_err *err);
/* Close a dead letter without running it. FERRY_ENOTFOUND if not an open dead letter. */
FERRY_NODISCARD int ferry_store_job_drop_dead(struct ferry_store *s, int64_t id, int64_t now_ms,
                                              struct ferry_err *err);
/* Jobs by id (0: any), creation time (< 0: any) and correlation ID (NULL: any), by id. */
FERRY_NODISCARD int ferry_store_jobs_select(struct ferry_store *s, int64_t id, int64_t since_ms,
                                            const char *correlation_id, size_t limit,
                                            struct ferry_job ***jobs, size_t *n,
                                            struct ferry_err *err);
/*
 * Job `by_id` of `job_key` read its record at read_at_ms and succeeded: later
 * pending, never-tried jobs of the same key and `event` (without event detail)
 * that were queued by then are done too ("coalesced"): a burst of updates
 * costs one sync. *n (may be NULL) gets how many.
 */
FERRY_NODISCARD int ferry_store_jobs_coalesce(struct ferry_store *s, const char *job_key,
                                              const char *event, int64_t by_id, int64_t read_at_ms,
                                              int64_t now_ms, int64_t *n, struct ferry_err *err);
/*
 * Whether ferry_store_jobs_supersede (*supersede) and, for `event` (NULL:
 * none), ferry_store_jobs_coalesce (*coalesce) would change anything after
 * job by_id of job_key succeeded: one read for both, since mostly neither
 * has anything to do and each costs more than this.
 */
FERRY_NODISCARD int ferry_store_job_followups(struct ferry_store *s, const char *job_key,
                                              int64_t by_id, const char *event, int64_t read_at_ms,
                                              bool *supersede, bool *coalesce,
                                              struct ferry_err *err);
/* The audit rows of one job, oldest first, as a new array of objects. */
FERRY_NODISCARD int ferry_store_audit_for_job(struct ferry_store *s, int64_t job_id, json_t **rows,
                                              struct ferry_err *err);

/* ---- two-way sync: echo ledger and conflict log (issue 5) ---- */

/*
 * Remember that ferry wrote `field` of (system, object, id) with a value
 * whose hash is value_hash, on behalf of a job from `origin` (a connector
 * instance), until expires_ms. One row per field and value: writing the
 * same value again renews it; other values of the field stay until they
 * expire.
 */
FERRY_NODISCARD int ferry_store_echo_put(struct ferry_store *s, const char *system,
                                         const char *object, const char *id, const char *field,
                                         const char *value_hash, const char *origin, int64_t now_ms,
                                         int64_t expires_ms, struct ferry_err *err);
/*
 * The unexpired ledger rows of one record as a new array
 * [{"field": "...", "hash": "...", "origin": "...", "at": <ms>}] (empty when none).
 */
FERRY_NODISCARD int ferry_store_echo_get(struct ferry_store *s, const char *system,
                                         const char *object, const char *id, int64_t now_ms,
                                         json_t **out, struct ferry_err *err);
FERRY_NODISCARD int ferry_store_prune_echoes(struct ferry_store *s, int64_t before_ms, size_t limit,
                                             int64_t *n, struct ferry_err *err);

/* One field both systems changed since the last sync, and what was decided. */
struct ferry_conflict {
    int64_t job_id;
    const char *correlation_id;
    const char *mapping;
    const char *source_key; /* "system:object:id" of the job's record */
    const char *target_system;
    const char *target_object;
    const char *target_id;
    const char *field;
    const char *synced_value; /* JSON text, redacted by the caller; may be NULL */
    const char *source_value;
    const char *target_value;
    const char *policy;     /* "source", "target", "newer", "park" */
    const char *resolution; /* "source written", "target kept", "parked", ... */
};
FERRY_NODISCARD int ferry_store_conflict_add(struct ferry_store *s, const struct ferry_conflict *c,
                                             int64_t now_ms, struct ferry_err *err);
/*
 * Conflict rows as a new array of objects (keys as in struct ferry_conflict
 * plus id and at): of one source record (source_key, oldest first), or all
 * since since_ms (newest first) when source_key is NULL.
 */
FERRY_NODISCARD int ferry_store_conflicts_list(struct ferry_store *s, const char *source_key,
                                               int64_t since_ms, size_t limit, json_t **out,
                                               struct ferry_err *err);
FERRY_NODISCARD int ferry_store_prune_conflicts(struct ferry_store *s, int64_t before_ms,
                                                size_t limit, int64_t *n, struct ferry_err *err);

/*
 * Other events of a group (jobs created between from_ms and to_ms, except
 * except_id), as a new array [{"job_id", "object", "id", "event",
 * "event_data", "at"}], oldest first, at most 50.
 */
FERRY_NODISCARD int ferry_store_group_events(struct ferry_store *s, const char *group,
                                             int64_t from_ms, int64_t to_ms, int64_t except_id,
                                             json_t **out, struct ferry_err *err);

/* ---- operations: status, metrics, explain, log, retention (issue 8) ---- */

/*
 * The queue as an operator sees it, as a new object:
 *   {"lanes": {"realtime": n, "retry": n, "backfill": n},   (pending jobs)
 *    "oldest_pending_at": ms (absent when nothing is pending),
 *    "dead_open": n, "cursors": [{"system", "object", "value", "updated_at"}]}
 */
FERRY_NODISCARD int ferry_store_ops_snapshot(struct ferry_store *s, json_t **out,
                                             struct ferry_err *err);
/*
 * Every job of one record (job key "<instance>:<object>:<id>"), oldest first,
 * at most `limit`, as a new array of objects with the job's columns (id,
 * kind, state, attempts, lane, origin, created_at, updated_at,
 * correlation_id, mapping_hash, resolution, resolved_by, last_error,
 * payload, dedupe_key; NULL columns absent).
 */
FERRY_NODISCARD int ferry_store_jobs_for_key(struct ferry_store *s, const char *job_key,
                                             size_t limit, json_t **rows, struct ferry_err *err);
/* Links whose source or target is (system, object, id), as a new array of objects. */
FERRY_NODISCARD int ferry_store_links_for_record(struct ferry_store *s, const char *system,
                                                 const char *object, const char *id, json_t **rows,
                                                 struct ferry_err *err);
/*
 * Audit rows at or after since_ms, of one correlation ID (NULL: any), at
 * most `limit`, oldest first, as a new array of objects.
 */
FERRY_NODISCARD int ferry_store_audit_select(struct ferry_store *s, const char *correlation_id,
                                             int64_t since_ms, size_t limit, json_t **rows,
                                             struct ferry_err *err);
/*
 * Retention, one bounded step each (so that a step holds the write lock
 * briefly): delete at most `limit` audit rows older than before_ms; replace
 * the payload of at most `limit` done jobs last updated before before_ms by a
 * stub that keeps source, object, id and event. *n gets the rows changed.
 */
FERRY_NODISCARD int ferry_store_prune_audit(struct ferry_store *s, int64_t before_ms, size_t limit,
                                            int64_t *n, struct ferry_err *err);
FERRY_NODISCARD int ferry_store_prune_job_payloads(struct ferry_store *s, int64_t before_ms,
                                                   size_t limit, int64_t *n, struct ferry_err *err);

#endif
