/* SPDX-License-Identifier: MIT */
/*
 * The SQL text of the state store, kept apart from store.c so that the schema
 * and every statement can be reviewed in one place. Only store.c includes
 * this file. Times are integer milliseconds since the epoch throughout.
 *
 * Migrations are append-only: a released step is never edited, because a
 * database that already ran it would silently diverge from a new one.
 */
#ifndef FERRY_STORE_SQL_H
#define FERRY_STORE_SQL_H

/*
 * Migration 1: the walking-skeleton schema.
 *
 * jobs.dedupe_key is deliberately not UNIQUE: a key is only a duplicate
 * within the dedupe window, and the same event may legitimately arrive again
 * later, so the check lives in ferry_store_job_enqueue() under a write lock.
 * audit has no foreign key to jobs so that the trail outlives pruned jobs.
 */
#define FERRY_SQL_MIGRATION_1                                                                      \
    "CREATE TABLE jobs ("                                                                          \
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"                                                       \
    " dedupe_key TEXT,"                                                                            \
    " job_key TEXT NOT NULL,"                                                                      \
    " kind TEXT NOT NULL,"                                                                         \
    " payload TEXT NOT NULL,"                                                                      \
    " correlation_id TEXT NOT NULL,"                                                               \
    " state INTEGER NOT NULL,"                                                                     \
    " attempts INTEGER NOT NULL DEFAULT 0,"                                                        \
    " next_attempt_at INTEGER NOT NULL,"                                                           \
    " lease_until INTEGER,"                                                                        \
    " last_error TEXT,"                                                                            \
    " created_at INTEGER NOT NULL,"                                                                \
    " updated_at INTEGER NOT NULL);"                                                               \
    "CREATE INDEX jobs_state_id ON jobs (state, id);"                                              \
    "CREATE INDEX jobs_dedupe ON jobs (dedupe_key, created_at);"                                   \
    "CREATE INDEX jobs_key_state ON jobs (job_key, state);"                                        \
    "CREATE TABLE links ("                                                                         \
    " src_system TEXT NOT NULL,"                                                                   \
    " src_object TEXT NOT NULL,"                                                                   \
    " src_id TEXT NOT NULL,"                                                                       \
    " dst_system TEXT NOT NULL,"                                                                   \
    " dst_object TEXT NOT NULL,"                                                                   \
    " dst_id TEXT NOT NULL,"                                                                       \
    " etag TEXT,"                                                                                  \
    " content_hash TEXT,"                                                                          \
    " fields TEXT,"                                                                                \
    " updated_at INTEGER NOT NULL,"                                                                \
    " PRIMARY KEY (src_system, src_object, src_id, dst_system, dst_object));"                      \
    "CREATE INDEX links_dst ON links (dst_system, dst_object, dst_id);"                            \
    "CREATE TABLE cursors ("                                                                       \
    " system TEXT NOT NULL,"                                                                       \
    " object TEXT NOT NULL,"                                                                       \
    " value TEXT NOT NULL,"                                                                        \
    " updated_at INTEGER NOT NULL,"                                                                \
    " PRIMARY KEY (system, object));"                                                              \
    "CREATE TABLE audit ("                                                                         \
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"                                                       \
    " job_id INTEGER,"                                                                             \
    " correlation_id TEXT NOT NULL,"                                                               \
    " connector TEXT,"                                                                             \
    " step TEXT NOT NULL,"                                                                         \
    " method TEXT,"                                                                                \
    " url TEXT,"                                                                                   \
    " status INTEGER NOT NULL DEFAULT 0,"                                                          \
    " request TEXT,"                                                                               \
    " response TEXT,"                                                                              \
    " detail TEXT,"                                                                                \
    " duration_ms INTEGER NOT NULL DEFAULT 0,"                                                     \
    " at INTEGER NOT NULL);"                                                                       \
    "CREATE INDEX audit_correlation ON audit (correlation_id);"                                    \
    "CREATE INDEX audit_job ON audit (job_id);"

/*
 * Migration 2: priority lanes, the connectors' key/value store, counters and
 * the last delivery seen per webhook scope.
 *
 * `lane` is the job's current priority (real-time, retry, backfill) and
 * changes when a job is retried; `origin` is where it came from and never
 * changes, so that a poll can tell whether a webhook announced a change.
 */
#define FERRY_SQL_MIGRATION_2                                                                      \
    "ALTER TABLE jobs ADD COLUMN lane INTEGER NOT NULL DEFAULT 0;"                                 \
    "ALTER TABLE jobs ADD COLUMN origin INTEGER NOT NULL DEFAULT 0;"                               \
    "CREATE INDEX jobs_lane ON jobs (state, lane, id);"                                            \
    "CREATE INDEX jobs_due ON jobs (state, next_attempt_at);"                                      \
    "CREATE INDEX jobs_key_origin ON jobs (job_key, origin, created_at);"                          \
    "CREATE TABLE plugin_kv ("                                                                     \
    " instance TEXT NOT NULL,"                                                                     \
    " key TEXT NOT NULL,"                                                                          \
    " value TEXT NOT NULL,"                                                                        \
    " updated_at INTEGER NOT NULL,"                                                                \
    " PRIMARY KEY (instance, key));"                                                               \
    "CREATE TABLE counters ("                                                                      \
    " name TEXT PRIMARY KEY,"                                                                      \
    " value INTEGER NOT NULL,"                                                                     \
    " updated_at INTEGER NOT NULL);"                                                               \
    "CREATE TABLE webhook_seen ("                                                                  \
    " instance TEXT NOT NULL,"                                                                     \
    " scope TEXT NOT NULL,"                                                                        \
    " last_at INTEGER NOT NULL,"                                                                   \
    " count INTEGER NOT NULL,"                                                                     \
    " PRIMARY KEY (instance, scope));"

/*
 * Migration 3: dead letters get a resolution (superseded by a later job of
 * the same record, retried, or dropped by an operator), and every job
 * records the hash of the mapping set that processed it.
 */
#define FERRY_SQL_MIGRATION_3                                                                      \
    "ALTER TABLE jobs ADD COLUMN mapping_hash TEXT;"                                               \
    "ALTER TABLE jobs ADD COLUMN resolution TEXT;"                                                 \
    "ALTER TABLE jobs ADD COLUMN resolved_by INTEGER;"

/*
 * Migration 4: retention. Pruning walks audit rows by time (audit_at) and
 * done jobs whose payload was not stubbed yet by age (jobs_prunable, a
 * partial index that only holds what is still to prune, so a step never
 * rescans what earlier steps finished).
 */
#define FERRY_SQL_MIGRATION_4                                                                      \
    "CREATE INDEX audit_at ON audit (at);"                                                         \
    "ALTER TABLE jobs ADD COLUMN pruned INTEGER NOT NULL DEFAULT 0;"                               \
    "CREATE INDEX jobs_prunable ON jobs (updated_at) WHERE state = 2 AND pruned = 0;"

/*
 * Migration 5: two-way sync. The echo ledger remembers what ferry itself
 * wrote to a record (per field, a hash of each value) until it expires, so
 * that the change event the write causes in that system is recognised as
 * ferry's own and not sent back. Every recent value of a field is kept, not
 * only the last: a polled snapshot can show an older write of ferry's. Conflicts keep one row per field where
 * both systems changed a value since the last sync, with the policy that
 * decided it.
 */
#define FERRY_SQL_MIGRATION_5                                                                      \
    "CREATE TABLE echo_ledger ("                                                                   \
    " system TEXT NOT NULL,"                                                                       \
    " object TEXT NOT NULL,"                                                                       \
    " id TEXT NOT NULL,"                                                                           \
    " field TEXT NOT NULL,"                                                                        \
    " value_hash TEXT NOT NULL,"                                                                   \
    " origin TEXT NOT NULL,"                                                                       \
    " written_at INTEGER NOT NULL,"                                                                \
    " expires_at INTEGER NOT NULL,"                                                                \
    " UNIQUE (system, object, id, field, value_hash));"                                                        \
    "CREATE INDEX echo_expiry ON echo_ledger (expires_at);"                                        \
    "CREATE TABLE conflicts ("                                                                     \
    " id INTEGER PRIMARY KEY,"                                                                     \
    " at INTEGER NOT NULL,"                                                                        \
    " job_id INTEGER,"                                                                             \
    " correlation_id TEXT,"                                                                        \
    " mapping TEXT,"                                                                               \
    " source_key TEXT NOT NULL,"                                                                   \
    " target_system TEXT NOT NULL,"                                                                \
    " target_object TEXT NOT NULL,"                                                                \
    " target_id TEXT,"                                                                             \
    " field TEXT NOT NULL,"                                                                        \
    " synced_value TEXT,"                                                                          \
    " source_value TEXT,"                                                                          \
    " target_value TEXT,"                                                                          \
    " policy TEXT NOT NULL,"                                                                       \
    " resolution TEXT NOT NULL);"                                                                  \
    "CREATE INDEX conflicts_at ON conflicts (at);"                                                 \
    "CREATE INDEX conflicts_source ON conflicts (source_key, id);"

/*
 * Migration 6: events of one business entity (e.g. an order's refund and the
 * status change the store sends for it) carry a group key; a job sees the
 * other events of its group within the coalescing window.
 */
#define FERRY_SQL_MIGRATION_6                                                                      \
    "ALTER TABLE jobs ADD COLUMN grp TEXT;"                                                        \
    "CREATE INDEX jobs_group ON jobs (grp, created_at) WHERE grp IS NOT NULL;"

/*
 * Migration 7: jobs_key_origin duplicated jobs_key_state for its two readers
 * (which plan on job_key alone just as well) and cost every insert one more
 * B-tree in the WAL.
 */
#define FERRY_SQL_MIGRATION_7 "DROP INDEX IF EXISTS jobs_key_origin;"

/*
 * Migration 8: jobs_state_id cost every change of a job's state (enqueue,
 * lease, end) two more B-tree writes, for readers that do without it: the
 * oldest pending job is the lowest of the lanes' first ids (jobs_lane);
 * open dead letters and the pending list (tests) sort the rows they read.
 */
#define FERRY_SQL_MIGRATION_8 "DROP INDEX IF EXISTS jobs_state_id;"

/*
 * Migration 9: jobs_due answers one question, the next time a pending job
 * falls due, so it holds pending jobs only. Keyed by state as well, it was
 * rewritten by every lease and every end (two B-tree writes each, ~6 k
 * instructions per synced event); now a job enters it when queued or
 * retried and leaves it when leased. The readers by state that used it
 * (dead letters, the running jobs at start, the counts) plan on jobs_lane,
 * which has the same leading column.
 */
#define FERRY_SQL_MIGRATION_9                                                                      \
    "DROP INDEX IF EXISTS jobs_due;"                                                               \
    "CREATE INDEX jobs_due ON jobs (next_attempt_at) WHERE state = 0;"

/*
 * The intake step of webhook job j (origin 0, the real-time lane), as the
 * audit columns connector .. response: the instance it came to, its scope
 * (or event) and when. FERRY_SQL_INTAKE_MISSING: only for webhook jobs
 * without an intake row of their own (databases from before).
 */
#define FERRY_SQL_INTAKE_COLUMNS                                                                   \
    "CASE WHEN json_valid(j.payload) THEN json_extract(j.payload, '$.source') END AS connector,"   \
    " NULL AS method, NULL AS url, NULL AS status, CASE WHEN json_valid(j.payload) THEN"          \
    " COALESCE(json_extract(j.payload, '$.scope'), json_extract(j.payload, '$.event')) END"       \
    " AS detail, NULL AS duration_ms, j.created_at AS at, NULL AS request, NULL AS response"
#define FERRY_SQL_INTAKE_MISSING                                                                   \
    "j.origin = 0 AND NOT EXISTS (SELECT 1 FROM audit a WHERE a.job_id = j.id"                    \
    " AND a.step = 'intake')"

/* The jobs a JOBS_COALESCE covers: ?1 job key, ?2 the job, ?3 its read time, ?5 its event. */
#define FERRY_SQL_COALESCIBLE                                                                      \
    "job_key = ?1 AND state = 0 AND id > ?2 AND created_at <= ?3 AND attempts = 0"                 \
    " AND json_extract(payload, '$.event') = ?5 AND json_extract(payload, '$.event_data') IS NULL"

/*
 * An audit row's insert; AUDIT_ADD_MANY has FERRY_SQL_AUDIT_MANY rows, their
 * parameters numbered on (row k: 12k + 1 .. 12k + 12), inserted in order.
 */
#define FERRY_SQL_AUDIT_INSERT                                                                     \
    "INSERT INTO audit (job_id, correlation_id, connector, step, method, url, status, request,"    \
    " response, detail, duration_ms, at) VALUES "
#define FERRY_SQL_AUDIT_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define FERRY_SQL_AUDIT_MANY 8

/* Column list shared by every query that fills a struct ferry_job. */
#define FERRY_SQL_JOB_COLUMNS                                                                      \
    "id, dedupe_key, job_key, kind, payload, correlation_id, state, attempts,"                     \
    " next_attempt_at, last_error, created_at, updated_at, lane"

/*
 * Every prepared statement: XX(name, sql). The enum of statement slots and
 * the table of texts are generated from this one list so they cannot drift.
 */
#define FERRY_STORE_STATEMENTS(XX)                                                                 \
    /* IMMEDIATE: take the write lock up front, so that a read-then-write                          \
     * transaction waits in the busy handler instead of failing with                               \
     * SQLITE_BUSY when another connection committed in between. */                                \
    XX(BEGIN, "BEGIN IMMEDIATE")                                                                   \
    XX(COMMIT, "COMMIT")                                                                           \
    XX(ROLLBACK, "ROLLBACK")                                                                       \
    /* A transaction begun inside another: its own rollback undoes only its                        \
     * part (savepoints of one name nest; RELEASE takes the innermost). */                         \
    XX(SAVEPOINT, "SAVEPOINT ferry_nested")                                                        \
    XX(RELEASE, "RELEASE ferry_nested")                                                            \
    XX(ROLLBACK_TO, "ROLLBACK TO ferry_nested")                                                    \
    XX(USER_VERSION, "PRAGMA user_version")                                                        \
    /* MAX rather than ORDER BY id DESC LIMIT 1: the same row without a                            \
     * sorter, which cost a third of an enqueue. NULL: no duplicate. */                             \
    XX(JOB_FIND_DUP, "SELECT MAX(id) FROM jobs WHERE dedupe_key = ?1 AND created_at >= ?2")        \
    XX(JOB_INSERT, "INSERT INTO jobs (dedupe_key, job_key, kind, payload, correlation_id,"         \
                   " state, attempts, next_attempt_at, created_at, updated_at, lane, origin, grp)" \
                   " VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, max(?6, ?9), ?6, ?6, ?7, ?7, ?8)")          \
    XX(GROUP_EVENTS, "SELECT id, payload, created_at FROM jobs WHERE grp = ?1"                     \
                     " AND created_at BETWEEN ?2 AND ?3 AND id != ?4 ORDER BY id LIMIT 50")        \
    XX(JOB_GET, "SELECT " FERRY_SQL_JOB_COLUMNS " FROM jobs WHERE id = ?1")                        \
    XX(JOB_STATE, "SELECT state FROM jobs WHERE id = ?1")                                          \
    XX(JOBS_PENDING, "SELECT " FERRY_SQL_JOB_COLUMNS " FROM jobs"                                  \
                     " WHERE state = 0 AND id > ?1 ORDER BY id LIMIT ?2")                          \
    XX(JOB_LEASE, "UPDATE jobs SET state = 1, attempts = attempts + 1, lease_until = ?3,"          \
                  " updated_at = ?2 WHERE id = ?1 AND state = 0")                                  \
    /* The three ends of a run also record which mapping set decided it                            \
     * (?5; NULL keeps what is there): the same row, so the same UPDATE. */                        \
    XX(JOB_FINISH, "UPDATE jobs SET state = 2, lease_until = NULL, updated_at = ?2,"               \
                   " mapping_hash = COALESCE(?5, mapping_hash) WHERE id = ?1 AND state = 1")       \
    XX(JOB_RETRY, "UPDATE jobs SET state = 0, lease_until = NULL, next_attempt_at = ?3,"           \
                  " last_error = ?4, updated_at = ?2, lane = 1,"                                   \
                  " mapping_hash = COALESCE(?5, mapping_hash) WHERE id = ?1 AND state = 1")        \
    /* Due jobs of one lane that are the oldest unfinished job of their key.                       \
     * The unary + keeps SQLite on jobs_lane (walk in id order, stop at the                        \
     * limit) instead of jobs_due, which sorts every pending job first.                            \
     * A later job never overtakes an earlier one of the same key, whatever                        \
     * the lanes. */                                                                               \
    XX(JOBS_RUNNABLE, "SELECT " FERRY_SQL_JOB_COLUMNS " FROM jobs j"                               \
                      " WHERE j.state = 0 AND j.lane = ?1 AND +j.next_attempt_at <= ?2"            \
                      " AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.job_key = j.job_key"          \
                      " AND e.state IN (0, 1) AND e.id < j.id)"                                    \
                      " ORDER BY j.id LIMIT ?3")                                                   \
    /* Without statistics SQLite prefers jobs_lane's equality on state to the                      \
     * partial jobs_due's range, and would read every pending row. */                              \
    XX(JOBS_NEXT_DUE, "SELECT MIN(next_attempt_at) FROM jobs INDEXED BY jobs_due"                  \
                      " WHERE state = 0 AND next_attempt_at > ?1")                                 \
    XX(JOB_ORIGIN_SINCE, "SELECT 1 FROM jobs WHERE job_key = ?1 AND origin = ?2"                   \
                         " AND created_at >= ?3 LIMIT 1")                                          \
    XX(JOB_BURY, "UPDATE jobs SET state = 3, lease_until = NULL, last_error = ?3,"                 \
                 " updated_at = ?2, mapping_hash = COALESCE(?5, mapping_hash)"                     \
                 " WHERE id = ?1 AND state IN (0, 1)")                                             \
    XX(JOBS_REQUEUE, "UPDATE jobs SET state = 0, lease_until = NULL, updated_at = ?1"              \
                     " WHERE state = 1")                                                           \
    XX(JOB_COUNTS, "SELECT state, COUNT(*) FROM jobs GROUP BY state")                              \
    XX(JOBS_DEAD_SINCE, "SELECT COUNT(*) FROM jobs WHERE state = 3 AND updated_at >= ?1"           \
                        " AND resolution IS NULL")                                                 \
    XX(JOB_NOTE_MAPPING, "UPDATE jobs SET mapping_hash = ?2 WHERE id = ?1")                        \
    XX(JOBS_SUPERSEDE, "UPDATE jobs SET resolution = 'superseded', resolved_by = ?2,"              \
                       " updated_at = ?3 WHERE job_key = ?1 AND state = 3"                         \
                       " AND resolution IS NULL AND id < ?2")                                      \
    XX(JOBS_DEAD_OPEN, "SELECT " FERRY_SQL_JOB_COLUMNS " FROM jobs"                                \
                       " WHERE state = 3 AND resolution IS NULL ORDER BY id LIMIT ?1")             \
    XX(JOB_REQUEUE_DEAD, "UPDATE jobs SET state = 0, attempts = 0, next_attempt_at = ?2,"          \
                         " lane = 1, resolution = NULL, updated_at = ?2"                           \
                         " WHERE id = ?1 AND state = 3")                                           \
    XX(JOB_DROP_DEAD, "UPDATE jobs SET resolution = 'dropped', updated_at = ?2"                    \
                      " WHERE id = ?1 AND state = 3 AND resolution IS NULL")                       \
    XX(JOBS_SELECT, "SELECT " FERRY_SQL_JOB_COLUMNS " FROM jobs WHERE (?1 = 0 OR id = ?1)"         \
                    " AND (?2 < 0 OR created_at >= ?2) AND (?3 IS NULL OR correlation_id = ?3)"    \
                    " ORDER BY id LIMIT ?4")                                                       \
    /* Later pending jobs of the same record and event, queued before this                         \
     * job read the record: its result already covers them. */                                     \
    XX(JOBS_COALESCE, "UPDATE jobs SET state = 2, resolution = 'coalesced', resolved_by = ?2,"     \
                      " updated_at = ?4 WHERE " FERRY_SQL_COALESCIBLE)                             \
    /* Whether JOBS_COALESCE has anything to do (?4 unused). Mostly not, and                       \
     * the UPDATE costs much more than this probe even then: it changes the                        \
     * state it searches by, so SQLite collects the rows in a temporary table                      \
     * first. */                                                                                   \
    XX(JOBS_COALESCIBLE, "SELECT 1 FROM jobs WHERE " FERRY_SQL_COALESCIBLE " LIMIT 1")             \
    /* After a success, whether JOBS_SUPERSEDE (?1 key, ?2 job) and                                \
     * JOBS_COALESCE have anything to do: one read for both (?4 unused). */                        \
    XX(JOB_FOLLOWUPS, "SELECT EXISTS (SELECT 1 FROM jobs WHERE job_key = ?1 AND state = 3"         \
                      " AND resolution IS NULL AND id < ?2), ?5 IS NOT NULL AND EXISTS"            \
                      " (SELECT 1 FROM jobs WHERE " FERRY_SQL_COALESCIBLE ")")                     \
    /* A webhook job's intake step is its own row (how it came, when): the                       \
     * readers show it as the first step, so intake writes no audit row for                        \
     * it. Rows an older ferry wrote are shown instead. */                                          \
    XX(AUDIT_FOR_JOB, "SELECT id, step, connector, method, url, status, detail, duration_ms, at,"  \
                      " request, response FROM (SELECT 0 AS k, NULL AS id, 'intake' AS step,"      \
                      FERRY_SQL_INTAKE_COLUMNS " FROM jobs j WHERE j.id = ?1"                      \
                      " AND " FERRY_SQL_INTAKE_MISSING " UNION ALL SELECT 1, id, step,"            \
                      " connector, method, url, status, detail, duration_ms, at, request,"         \
                      " response FROM audit WHERE job_id = ?1) ORDER BY k, id")                    \
    XX(LINK_GET, "SELECT dst_id, etag, content_hash, fields, updated_at FROM links"                \
                 " WHERE src_system = ?1 AND src_object = ?2 AND src_id = ?3"                      \
                 " AND dst_system = ?4 AND dst_object = ?5")                                       \
    XX(LINK_PUT, "INSERT INTO links (src_system, src_object, src_id, dst_system, dst_object,"      \
                 " dst_id, etag, content_hash, fields, updated_at)"                                \
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"                               \
                 " ON CONFLICT (src_system, src_object, src_id, dst_system, dst_object)"           \
                 " DO UPDATE SET dst_id = excluded.dst_id, etag = excluded.etag,"                  \
                 " content_hash = excluded.content_hash, fields = excluded.fields,"                \
                 " updated_at = excluded.updated_at")                                              \
    /* The most recently updated one; MAX's bare column is its row (SQLite                         \
     * documents this), without the sorter an ORDER BY ... LIMIT 1 opens.                         \
     * src_id NULL: none. */                                                                       \
    XX(LINK_FIND_BY_DST, "SELECT src_id, MAX(updated_at) FROM links WHERE dst_system = ?1"         \
                         " AND dst_object = ?2 AND dst_id = ?3 AND src_system = ?4"                \
                         " AND src_object = ?5")                                                   \
    XX(CURSOR_GET, "SELECT value FROM cursors WHERE system = ?1 AND object = ?2")                  \
    XX(CURSOR_PUT, "INSERT INTO cursors (system, object, value, updated_at)"                       \
                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (system, object)"                         \
                   " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")      \
    XX(AUDIT_ADD, FERRY_SQL_AUDIT_INSERT FERRY_SQL_AUDIT_ROW)                                       \
    XX(AUDIT_ADD_MANY, FERRY_SQL_AUDIT_INSERT FERRY_SQL_AUDIT_ROW "," FERRY_SQL_AUDIT_ROW          \
                       "," FERRY_SQL_AUDIT_ROW "," FERRY_SQL_AUDIT_ROW "," FERRY_SQL_AUDIT_ROW     \
                       "," FERRY_SQL_AUDIT_ROW "," FERRY_SQL_AUDIT_ROW "," FERRY_SQL_AUDIT_ROW)    \
    XX(AUDIT_COUNT, "SELECT COUNT(*) FROM audit WHERE step = ?1"                                   \
                    " AND (?2 IS NULL OR method = ?2)")                                            \
    XX(KV_GET, "SELECT value, updated_at FROM plugin_kv WHERE instance = ?1 AND key = ?2")         \
    XX(KV_PREFIX, "SELECT instance, key, value, updated_at FROM plugin_kv WHERE key LIKE ?1"       \
                  " ORDER BY instance, key")                                                       \
    XX(KV_PUT, "INSERT INTO plugin_kv (instance, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)"  \
               " ON CONFLICT (instance, key) DO UPDATE SET value = excluded.value,"                \
               " updated_at = excluded.updated_at")                                                \
    XX(COUNTER_ADD, "INSERT INTO counters (name, value, updated_at) VALUES (?1, ?2, ?3)"           \
                    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value,"            \
                    " updated_at = excluded.updated_at")                                           \
    XX(COUNTERS_ALL, "SELECT name, value FROM counters ORDER BY name")                             \
    XX(WEBHOOK_SEEN, "INSERT INTO webhook_seen (instance, scope, last_at, count)"                  \
                     " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (instance, scope)"                      \
                     " DO UPDATE SET last_at = MAX(last_at, excluded.last_at),"                    \
                     " count = count + excluded.count")                                            \
    XX(WEBHOOKS_SEEN_ALL, "SELECT instance, scope, last_at, count FROM webhook_seen"               \
                          " ORDER BY instance, scope")                                             \
    /* ---- issue 8: operations (status, metrics, explain, log, retention) ---- */                 \
    XX(OPS_LANES, "SELECT lane, COUNT(*) FROM jobs WHERE state = 0 GROUP BY lane")                 \
    /* Ids grow with arrival, so the lowest pending id is the oldest one;                          \
     * per lane (enum ferry_lane) it is one step on jobs_lane. */                                  \
    XX(OPS_OLDEST_PENDING, "SELECT created_at FROM jobs WHERE id = (SELECT MIN(id) FROM"           \
                           " (SELECT MIN(id) AS id FROM jobs WHERE state = 0 AND lane = 0"         \
                           " UNION ALL SELECT MIN(id) FROM jobs WHERE state = 0 AND lane = 1"      \
                           " UNION ALL SELECT MIN(id) FROM jobs WHERE state = 0 AND lane = 2))")   \
    XX(OPS_DEAD_OPEN, "SELECT COUNT(*) FROM jobs WHERE state = 3 AND resolution IS NULL")          \
    XX(OPS_CURSORS, "SELECT system, object, value, updated_at FROM cursors"                        \
                    " ORDER BY system, object")                                                    \
    XX(EXPLAIN_JOBS, "SELECT id, job_key, kind, state, attempts, lane, origin, created_at,"        \
                     " updated_at, correlation_id, mapping_hash, resolution, resolved_by,"         \
                     " last_error, payload, dedupe_key FROM jobs WHERE job_key = ?1"               \
                     " ORDER BY id LIMIT ?2")                                                      \
    XX(LINKS_FOR_RECORD, "SELECT src_system, src_object, src_id, dst_system, dst_object, dst_id,"  \
                         " etag, content_hash, fields, updated_at FROM links"                      \
                         " WHERE (src_system = ?1 AND src_object = ?2 AND src_id = ?3)"            \
                         " OR (dst_system = ?1 AND dst_object = ?2 AND dst_id = ?3)"               \
                         " ORDER BY updated_at")                                                   \
    XX(AUDIT_BY_CORRELATION, "SELECT id, job_id, correlation_id, step, connector, method, url,"    \
                             " status, detail, duration_ms, at, request, response FROM"            \
                             " (SELECT 0 AS k, NULL AS id, j.id AS job_id, j.correlation_id,"      \
                             " 'intake' AS step, " FERRY_SQL_INTAKE_COLUMNS " FROM jobs j"         \
                             " WHERE j.id IN (SELECT job_id FROM audit WHERE correlation_id = ?1)" \
                             " AND j.created_at >= ?2 AND " FERRY_SQL_INTAKE_MISSING               \
                             " UNION ALL SELECT 1, id, job_id, correlation_id, step, connector,"   \
                             " method, url, status, detail, duration_ms, at, request, response"    \
                             " FROM audit WHERE correlation_id = ?1 AND at >= ?2)"                 \
                             " ORDER BY at, k, id LIMIT ?3")                                       \
    XX(AUDIT_SINCE, "SELECT id, job_id, correlation_id, step, connector, method, url, status,"     \
                    " detail, duration_ms, at, request, response FROM"                             \
                    " (SELECT 0 AS k, NULL AS id, j.id AS job_id, j.correlation_id,"               \
                    " 'intake' AS step, " FERRY_SQL_INTAKE_COLUMNS " FROM jobs j"                  \
                    " WHERE j.created_at >= ?1 AND " FERRY_SQL_INTAKE_MISSING                      \
                    " UNION ALL SELECT 1, id, job_id, correlation_id, step, connector, method,"    \
                    " url, status, detail, duration_ms, at, request, response FROM audit"          \
                    " WHERE at >= ?1) ORDER BY at, k, id LIMIT ?2")                                \
    XX(ECHO_PUT, "INSERT INTO echo_ledger (system, object, id, field, value_hash, origin,"        \
                 " written_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"             \
                 " ON CONFLICT (system, object, id, field, value_hash) DO UPDATE SET"           \
                 " origin = excluded.origin, written_at = excluded.written_at,"                 \
                 " expires_at = excluded.expires_at")                                           \
    XX(ECHO_GET, "SELECT field, value_hash, origin, written_at FROM echo_ledger"                   \
                 " WHERE system = ?1 AND object = ?2 AND id = ?3 AND expires_at > ?4")          \
    XX(PRUNE_ECHOES, "DELETE FROM echo_ledger WHERE rowid IN (SELECT rowid FROM echo_ledger"        \
                     " WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2)")                    \
    XX(CONFLICT_ADD, "INSERT INTO conflicts (at, job_id, correlation_id, mapping, source_key,"    \
                     " target_system, target_object, target_id, field, synced_value,"          \
                     " source_value, target_value, policy, resolution)"                         \
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)")   \
    XX(CONFLICTS_SINCE, "SELECT id, at, job_id, correlation_id, mapping, source_key,"             \
                        " target_system, target_object, target_id, field, synced_value,"        \
                        " source_value, target_value, policy, resolution FROM conflicts"        \
                        " WHERE at >= ?1 ORDER BY id DESC LIMIT ?2")                            \
    XX(CONFLICTS_OF, "SELECT id, at, job_id, correlation_id, mapping, source_key,"                \
                     " target_system, target_object, target_id, field, synced_value,"           \
                     " source_value, target_value, policy, resolution FROM conflicts"           \
                     " WHERE source_key = ?1 ORDER BY id LIMIT ?2")                             \
    XX(PRUNE_CONFLICTS, "DELETE FROM conflicts WHERE id IN"                                       \
                        " (SELECT id FROM conflicts WHERE at < ?1 ORDER BY at LIMIT ?2)")       \
    XX(PRUNE_AUDIT, "DELETE FROM audit WHERE id IN"                                                \
                    " (SELECT id FROM audit WHERE at < ?1 ORDER BY at LIMIT ?2)")                  \
    /* What a replay needs (source, object, id, event) stays; the record and                       \
     * event data, which hold the personal data, go. */                                            \
    XX(PRUNE_JOBS, "UPDATE jobs SET pruned = 1, payload = CASE WHEN json_valid(payload) THEN"      \
                   " json_object('source', json_extract(payload, '$.source'),"                     \
                   " 'object', json_extract(payload, '$.object'),"                                 \
                   " 'id', json_extract(payload, '$.id'),"                                         \
                   " 'event', json_extract(payload, '$.event'), 'pruned', json('true'))"           \
                   " ELSE '{\"pruned\":true}' END WHERE id IN (SELECT id FROM jobs"                \
                   " INDEXED BY jobs_prunable WHERE state = 2 AND pruned = 0 AND updated_at < ?1"  \
                   " ORDER BY updated_at LIMIT ?2)")

#endif
