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

/* Column list shared by every query that fills a struct ferry_job. */
#define FERRY_SQL_JOB_COLUMNS                                                                      \
    "id, dedupe_key, job_key, kind, payload, correlation_id, state, attempts,"                     \
    " next_attempt_at, last_error, created_at, updated_at"

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
    XX(USER_VERSION, "PRAGMA user_version")                                                        \
    XX(JOB_FIND_DUP, "SELECT id FROM jobs WHERE dedupe_key = ?1 AND created_at >= ?2"              \
                     " ORDER BY id DESC LIMIT 1")                                                  \
    XX(JOB_INSERT, "INSERT INTO jobs (dedupe_key, job_key, kind, payload, correlation_id,"         \
                   " state, attempts, next_attempt_at, created_at, updated_at)"                    \
                   " VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6, ?6, ?6)")                               \
    XX(JOB_GET, "SELECT " FERRY_SQL_JOB_COLUMNS " FROM jobs WHERE id = ?1")                        \
    XX(JOB_STATE, "SELECT state FROM jobs WHERE id = ?1")                                          \
    XX(JOBS_PENDING, "SELECT " FERRY_SQL_JOB_COLUMNS " FROM jobs"                                  \
                     " WHERE state = 0 AND id > ?1 ORDER BY id LIMIT ?2")                          \
    XX(JOB_LEASE, "UPDATE jobs SET state = 1, attempts = attempts + 1, lease_until = ?3,"          \
                  " updated_at = ?2 WHERE id = ?1 AND state = 0")                                  \
    XX(JOB_FINISH, "UPDATE jobs SET state = 2, lease_until = NULL, updated_at = ?2"                \
                   " WHERE id = ?1 AND state = 1")                                                 \
    XX(JOB_RETRY, "UPDATE jobs SET state = 0, lease_until = NULL, next_attempt_at = ?3,"           \
                  " last_error = ?4, updated_at = ?2 WHERE id = ?1 AND state = 1")                 \
    XX(JOB_BURY, "UPDATE jobs SET state = 3, lease_until = NULL, last_error = ?3,"                 \
                 " updated_at = ?2 WHERE id = ?1 AND state IN (0, 1)")                             \
    XX(JOBS_REQUEUE, "UPDATE jobs SET state = 0, lease_until = NULL, updated_at = ?1"              \
                     " WHERE state = 1")                                                           \
    XX(JOB_COUNTS, "SELECT state, COUNT(*) FROM jobs GROUP BY state")                              \
    XX(JOBS_DEAD_SINCE, "SELECT COUNT(*) FROM jobs WHERE state = 3 AND updated_at >= ?1")          \
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
    XX(LINK_FIND_BY_DST, "SELECT src_id FROM links WHERE dst_system = ?1 AND dst_object = ?2"      \
                         " AND dst_id = ?3 AND src_system = ?4 AND src_object = ?5"                \
                         " ORDER BY updated_at DESC LIMIT 1")                                      \
    XX(CURSOR_GET, "SELECT value FROM cursors WHERE system = ?1 AND object = ?2")                  \
    XX(CURSOR_PUT, "INSERT INTO cursors (system, object, value, updated_at)"                       \
                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (system, object)"                         \
                   " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")      \
    XX(AUDIT_ADD, "INSERT INTO audit (job_id, correlation_id, connector, step, method, url,"       \
                  " status, request, response, detail, duration_ms, at)"                           \
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")                   \
    XX(AUDIT_COUNT, "SELECT COUNT(*) FROM audit WHERE step = ?1"                                   \
                    " AND (?2 IS NULL OR method = ?2)")

#endif
