/* SPDX-License-Identifier: MIT */
/*
 * The SQLite state store behind store.h: one connection per struct
 * ferry_store, statements prepared lazily once per connection and reused,
 * migrations applied in order on open, and every SQLite result code
 * translated into a FERRY_E* code here so that no other module sees one.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "redact.h"
#include "store_sql.h"

/* How long a writer waits for another connection's write lock (design.md). */
#define STORE_BUSY_TIMEOUT_MS 10000

enum store_stmt {
#define STORE_STMT_ENUM(name, sql) STMT_##name,
    FERRY_STORE_STATEMENTS(STORE_STMT_ENUM)
#undef STORE_STMT_ENUM
        STMT_COUNT
};

static const char *const stmt_sql[STMT_COUNT] = {
#define STORE_STMT_SQL(name, sql) [STMT_##name] = sql,
    FERRY_STORE_STATEMENTS(STORE_STMT_SQL)
#undef STORE_STMT_SQL
};

/*
 * Schema steps; index i brings user_version from i to i + 1. Later issues
 * append here and never edit a released step.
 */
static const char *const migrations[] = {
    FERRY_SQL_MIGRATION_1, FERRY_SQL_MIGRATION_2, FERRY_SQL_MIGRATION_3,
    FERRY_SQL_MIGRATION_4, FERRY_SQL_MIGRATION_5, FERRY_SQL_MIGRATION_6,
    FERRY_SQL_MIGRATION_7, FERRY_SQL_MIGRATION_8, FERRY_SQL_MIGRATION_9,
};
#define STORE_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/*
 * Bounds of the audit rows a connection holds back (ferry_store_audit_hold):
 * past either, what is held is written at once, so that a job with very
 * many steps or large traces costs a commit more, not unbounded memory.
 */
#define STORE_AUDIT_HOLD_ROWS  256
#define STORE_AUDIT_HOLD_BYTES (1024 * 1024)

/* A held audit row; its strings point into text. */
struct held_audit {
    struct ferry_audit_row row;
    char text[];
};

struct ferry_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];
    int depth; /* ferry_store_begin() nesting; > 0: enqueue must not open its own */
    bool hold; /* ferry_store_audit_hold() */
    struct held_audit **held;
    size_t nheld, held_cap, held_bytes;
};

static int audit_write_held(struct ferry_store *s, struct ferry_err *err);
static int audit_flush_held(struct ferry_store *s, struct ferry_err *err);
static void held_free(struct ferry_store *s);

const char *ferry_job_state_name(int state)
{
    switch (state) {
    case FERRY_JOB_PENDING:
        return "pending";
    case FERRY_JOB_RUNNING:
        return "running";
    case FERRY_JOB_DONE:
        return "done";
    case FERRY_JOB_DEAD:
        return "dead";
    default:
        return "unknown";
    }
}

/* Translates a SQLite result code; the connection's message gives the detail. */
static int db_error(struct ferry_store *s, int src, const char *what, struct ferry_err *err)
{
    int code = FERRY_EDB;
    int prim = src & 0xff;
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) {
        code = FERRY_EBUSY;
    } else if (prim == SQLITE_NOMEM) {
        code = FERRY_ENOMEM;
    }
    return ferry_err_set(err, code, "%s: %s", what,
                         s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
}

/* The statement for `id`, prepared on first use and kept for the connection's life. */
static int stmt_get(struct ferry_store *s, enum store_stmt id, sqlite3_stmt **out,
                    struct ferry_err *err)
{
    if (!s->stmt[id]) {
        int src = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                     &s->stmt[id], NULL);
        if (src != SQLITE_OK) {
            return db_error(s, src, "prepare", err);
        }
    }
    *out = s->stmt[id];
    return 0;
}

/* Returns a statement to its idle state so that it holds no read snapshot or bound text. */
static void stmt_done(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

static int bind_text(struct ferry_store *s, sqlite3_stmt *st, int i, const char *v,
                     struct ferry_err *err)
{
    int src = v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
    return src == SQLITE_OK ? 0 : db_error(s, src, "bind", err);
}

/* Binds vals[0..n) to parameters first, first + 1, ... (NULL binds NULL). */
static int bind_texts(struct ferry_store *s, sqlite3_stmt *st, int first, const char *const *vals,
                      size_t n, struct ferry_err *err)
{
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        rc = bind_text(s, st, first + (int)k, vals[k], err);
    }
    return rc;
}

static int bind_int64(struct ferry_store *s, sqlite3_stmt *st, int i, int64_t v,
                      struct ferry_err *err)
{
    int src = sqlite3_bind_int64(st, i, (sqlite3_int64)v);
    return src == SQLITE_OK ? 0 : db_error(s, src, "bind", err);
}

/* Runs a statement that returns no rows (or whose rows are ignored) to completion. */
/* Binds vals[0..n) to parameters first, first + 1, ... */
static int bind_int64s(struct ferry_store *s, sqlite3_stmt *st, int first, const int64_t *vals,
                       size_t n, struct ferry_err *err)
{
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        rc = bind_int64(s, st, first + (int)k, vals[k], err);
    }
    return rc;
}

static int step_done(struct ferry_store *s, sqlite3_stmt *st, const char *what,
                     struct ferry_err *err)
{
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    }
    return src == SQLITE_DONE ? 0 : db_error(s, src, what, err);
}

/*
 * Copies a text column; *out stays NULL for SQL NULL so that optional fields
 * round-trip. Returns FERRY_ENOMEM only when a non-NULL value could not be copied.
 */
static int column_dup(sqlite3_stmt *st, int col, char **out, struct ferry_err *err)
{
    *out = NULL;
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        return 0;
    }
    const unsigned char *v = sqlite3_column_text(st, col);
    if (!v) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory reading a column");
    }
    *out = strdup((const char *)v);
    if (!*out) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory copying a column");
    }
    return 0;
}

static int exec_stmt(struct ferry_store *s, enum store_stmt id, const char *what,
                     struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, id, &st, err);
    if (rc == 0) {
        rc = step_done(s, st, what, err);
    }
    stmt_done(st);
    return rc;
}

static int read_user_version(struct ferry_store *s, int *version, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, STMT_USER_VERSION, &st, err);
    if (rc < 0) {
        goto cleanup;
    }
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = db_error(s, src, "read schema version", err);
        goto cleanup;
    }
    *version = sqlite3_column_int(st, 0);
cleanup:
    stmt_done(st);
    return rc;
}

static int check_version(int version, const char *path, struct ferry_err *err)
{
    if (version > STORE_SCHEMA_VERSION) {
        return ferry_err_set(err, FERRY_EDB,
                             "%s: database schema version %d is newer than this ferry (%d)", path,
                             version, STORE_SCHEMA_VERSION);
    }
    return 0;
}

/*
 * Applies each missing step in its own transaction. The version is read again
 * under the write lock because another process may have migrated the file
 * between our first look and the lock.
 */
static int migrate(struct ferry_store *s, const char *path, struct ferry_err *err)
{
    int version = 0;
    int rc = read_user_version(s, &version, err);
    if (rc < 0) {
        return rc;
    }
    rc = check_version(version, path, err);
    while (rc == 0 && version < STORE_SCHEMA_VERSION) {
        char *emsg = NULL;
        char pragma[64];
        rc = exec_stmt(s, STMT_BEGIN, "begin migration", err);
        if (rc < 0) {
            break;
        }
        rc = read_user_version(s, &version, err);
        if (rc == 0) {
            rc = check_version(version, path, err);
        }
        if (rc == 0 && version < STORE_SCHEMA_VERSION) {
            int src = sqlite3_exec(s->db, migrations[version], NULL, NULL, &emsg);
            if (src == SQLITE_OK) {
                /* PRAGMA takes no parameters, so the (trusted, integer) version is formatted in. */
                snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version + 1);
                src = sqlite3_exec(s->db, pragma, NULL, NULL, &emsg);
            }
            if (src != SQLITE_OK) {
                rc = ferry_err_set(err, (src & 0xff) == SQLITE_BUSY ? FERRY_EBUSY : FERRY_EDB,
                                   "%s: migration %d failed: %s", path, version + 1,
                                   emsg ? emsg : sqlite3_errstr(src));
            }
            sqlite3_free(emsg);
        }
        if (rc < 0) {
            (void)exec_stmt(s, STMT_ROLLBACK, "rollback migration", NULL);
            break;
        }
        rc = exec_stmt(s, STMT_COMMIT, "commit migration", err);
        if (rc < 0) {
            (void)exec_stmt(s, STMT_ROLLBACK, "rollback migration", NULL);
            break;
        }
        rc = read_user_version(s, &version, err);
    }
    return rc;
}

/*
 * Creates the file with mode 0600 before SQLite does, because SQLite would
 * use 0644 (less the umask) and the store holds payloads and link data. An
 * existing file is left as the operator set it. SQLite gives the -wal and
 * -shm files the main file's mode.
 */
static int create_private(const char *path, struct ferry_err *err)
{
    if (strcmp(path, ":memory:") == 0 || path[0] == '\0') {
        return 0;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            return 0;
        }
        int e = errno;
        return ferry_err_set(err, FERRY_EIO, "%s: cannot create state database: %s", path,
                             strerror(e));
    }
    close(fd);
    return 0;
}

/* Runs a pragma and, when `want` is non-NULL, checks the text it answers with. */
static int pragma(struct ferry_store *s, const char *sql, const char *want, const char *path,
                  struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    int src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = db_error(s, src, sql, err);
        goto cleanup;
    }
    src = sqlite3_step(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE) {
        rc = db_error(s, src, sql, err);
        goto cleanup;
    }
    if (want) {
        const unsigned char *got = src == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
        if (!got || strcmp((const char *)got, want) != 0) {
            rc = ferry_err_set(err, FERRY_EDB, "%s: '%s' answered '%s', expected '%s'", path, sql,
                               got ? (const char *)got : "", want);
            goto cleanup;
        }
    }
cleanup:
    sqlite3_finalize(st);
    return rc;
}

/*
 * SQLite keeps allocation statistics by default, behind a global mutex taken
 * on every malloc and free of every connection; ferry never reads them, and
 * with a worker per connection that lock is only cost. It can only be
 * switched off before the library initialises, i.e. before the first open.
 */
static pthread_once_t sqlite_setup_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int ferry_store_open(struct ferry_store **out, const char *path, struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    struct ferry_store *s = NULL;
    bool memory = strcmp(path, ":memory:") == 0;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (!s) {
        ferry_err_set(err, rc, "out of memory");
        goto cleanup;
    }
    rc = create_private(path, err);
    if (rc < 0) {
        goto cleanup;
    }
    pthread_once(&sqlite_setup_once, sqlite_setup);
    int src = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = ferry_err_set(err, FERRY_EDB, "%s: cannot open state database: %s", path,
                           s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
        goto cleanup;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* Set first: switching to WAL itself needs a lock another opener may hold. */
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    rc = pragma(s, "PRAGMA journal_mode = WAL", memory ? "memory" : "wal", path, err);
    if (rc < 0) {
        goto cleanup;
    }
    /* FULL: an acknowledged webhook must survive power loss (design.md, State). */
    rc = pragma(s, "PRAGMA synchronous = FULL", NULL, path, err);
    if (rc < 0) {
        goto cleanup;
    }
    rc = pragma(s, "PRAGMA foreign_keys = ON", NULL, path, err);
    if (rc < 0) {
        goto cleanup;
    }
    rc = migrate(s, path, err);
    if (rc < 0) {
        goto cleanup;
    }
    *out = s; /* ownership moves to the caller */
    s = NULL;
cleanup:
    ferry_store_close(s);
    return rc;
}

void ferry_store_close(struct ferry_store *s)
{
    if (!s) {
        return;
    }
    /* Held rows are a job's trail; a close between a job's steps and its
     * end (shutdown) keeps them if it can. */
    if (s->db && s->nheld > 0) {
        if (s->depth > 0 && !sqlite3_get_autocommit(s->db)) {
            (void)exec_stmt(s, STMT_ROLLBACK, "rollback", NULL);
        }
        s->depth = 0;
        (void)audit_flush_held(s, NULL);
    }
    held_free(s);
    free(s->held);
    for (int i = 0; i < STMT_COUNT; i++) {
        sqlite3_finalize(s->stmt[i]);
    }
    /* Never leave a batch half-applied behind a close: SQLite rolls it back. */
    sqlite3_close_v2(s->db);
    free(s);
}

int ferry_store_schema_version(struct ferry_store *s)
{
    int version = 0;
    int rc = read_user_version(s, &version, NULL);
    return rc < 0 ? rc : version;
}

int ferry_store_begin(struct ferry_store *s, struct ferry_err *err)
{
    int rc = s->depth == 0 ? exec_stmt(s, STMT_BEGIN, "begin", err)
                           : exec_stmt(s, STMT_SAVEPOINT, "begin nested", err);
    if (rc == 0) {
        s->depth++;
    }
    return rc;
}

int ferry_store_commit(struct ferry_store *s, struct ferry_err *err)
{
    int rc;
    if (s->depth == 0) {
        return ferry_err_set(err, FERRY_EINVAL, "no store transaction open");
    }
    if (s->depth > 1) {
        s->depth--;
        rc = exec_stmt(s, STMT_RELEASE, "commit nested", err);
        if (rc < 0 && !sqlite3_get_autocommit(s->db)) {
            /* Leave the outer transaction as it was before this one began. */
            (void)exec_stmt(s, STMT_ROLLBACK_TO, "rollback nested", NULL);
            (void)exec_stmt(s, STMT_RELEASE, "release nested", NULL);
        }
        return rc;
    }
    if (sqlite3_get_autocommit(s->db)) {
        /* SQLite ended the transaction itself after an error inside it. */
        s->depth = 0;
        return ferry_err_set(err, FERRY_EDB, "commit: the transaction was rolled back by an error");
    }
    /* Held audit rows go out with the first commit that follows them: a
     * job's trail and its outcome become visible together. */
    rc = audit_write_held(s, err);
    if (rc == 0) {
        rc = exec_stmt(s, STMT_COMMIT, "commit", err);
    }
    if (rc < 0) {
        /* A failed COMMIT may leave the transaction open; end it so the
         * connection is usable and the caller's view ("not committed") is true. */
        if (!sqlite3_get_autocommit(s->db)) {
            (void)exec_stmt(s, STMT_ROLLBACK, "rollback", NULL);
        }
    }
    s->depth = 0;
    return rc;
}

void ferry_store_rollback(struct ferry_store *s)
{
    if (!s) {
        return;
    }
    if (s->depth > 1) {
        s->depth--;
        /* SQLite may have rolled the whole transaction back by itself (I/O or
         * full errors); then there is no savepoint left, and the outer
         * commit reports the failure. */
        if (!sqlite3_get_autocommit(s->db)) {
            (void)exec_stmt(s, STMT_ROLLBACK_TO, "rollback nested", NULL);
            (void)exec_stmt(s, STMT_RELEASE, "release nested", NULL);
        }
        return;
    }
    /* SQLite may already have rolled back by itself after an I/O or full error. */
    if (!sqlite3_get_autocommit(s->db)) {
        (void)exec_stmt(s, STMT_ROLLBACK, "rollback", NULL);
    }
    s->depth = 0;
}

bool ferry_store_in_transaction(const struct ferry_store *s)
{
    return s && s->depth > 0;
}

int ferry_store_set_synchronous(struct ferry_store *s, bool full, struct ferry_err *err)
{
    /* SQLite refuses a change of safety level inside a transaction; fail before asking it. */
    if (s->depth > 0) {
        return ferry_err_set(err, FERRY_EINVAL, "cannot change durability inside a transaction");
    }
    return pragma(s, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", NULL,
                  "state database", err);
}

/* ---- jobs ---- */

int ferry_store_job_enqueue(struct ferry_store *s, const struct ferry_job_new *j, int64_t *id,
                            bool *inserted, struct ferry_err *err)
{
    int rc = 0;
    bool own_tx = false;
    sqlite3_stmt *st = NULL;
    int64_t new_id = 0;
    bool added = false;

    if (!j->job_key || !j->kind || !j->payload || !j->correlation_id) {
        return ferry_err_set(err, FERRY_EINVAL,
                             "job_key, kind, payload and correlation_id are required");
    }
    /* Check and insert under one write lock, or two concurrent intakes of the
     * same event could both see "no duplicate". */
    if (s->depth == 0) {
        rc = exec_stmt(s, STMT_BEGIN, "begin enqueue", err);
        if (rc < 0) {
            goto cleanup;
        }
        own_tx = true;
    }
    if (j->dedupe_key) {
        rc = stmt_get(s, STMT_JOB_FIND_DUP, &st, err);
        if (rc < 0) {
            goto cleanup;
        }
        rc = bind_text(s, st, 1, j->dedupe_key, err);
        if (rc == 0) {
            rc = bind_int64(s, st, 2, j->now_ms - j->dedupe_window_ms, err);
        }
        if (rc < 0) {
            goto cleanup;
        }
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            new_id = sqlite3_column_int64(st, 0);
            goto cleanup; /* a duplicate: nothing to write */
        }
        if (src != SQLITE_DONE && src != SQLITE_ROW) {
            rc = db_error(s, src, "look up duplicate job", err);
            goto cleanup;
        }
        stmt_done(st);
        st = NULL;
    }
    rc = stmt_get(s, STMT_JOB_INSERT, &st, err);
    if (rc < 0) {
        goto cleanup;
    }
    rc = bind_text(s, st, 1, j->dedupe_key, err);
    if (rc == 0) {
        rc = bind_texts(s, st, 2,
                        (const char *const[]){j->job_key, j->kind, j->payload, j->correlation_id},
                        4, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 6, j->now_ms, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 7, j->lane, err);
    }
    if (rc == 0) {
        rc = bind_text(s, st, 8, j->group, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 9, j->not_before_ms, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "insert job", err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    new_id = sqlite3_last_insert_rowid(s->db);
    added = true;
cleanup:
    stmt_done(st);
    if (own_tx) {
        if (rc == 0) {
            rc = exec_stmt(s, STMT_COMMIT, "commit enqueue", err);
        }
        if (rc < 0 && !sqlite3_get_autocommit(s->db)) {
            (void)exec_stmt(s, STMT_ROLLBACK, "rollback enqueue", NULL);
        }
    }
    if (rc == 0) {
        if (id) {
            *id = new_id;
        }
        if (inserted) {
            *inserted = added;
        }
    }
    return rc;
}

void ferry_job_free(struct ferry_job *j)
{
    if (!j) {
        return;
    }
    free(j->dedupe_key);
    free(j->job_key);
    free(j->kind);
    free(j->payload);
    free(j->correlation_id);
    free(j->last_error);
    free(j);
}

/* Builds a job from a row of FERRY_SQL_JOB_COLUMNS. */
static int job_from_row(sqlite3_stmt *st, struct ferry_job **out, struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    struct ferry_job *j = calloc(1, sizeof(*j));
    if (!j) {
        ferry_err_set(err, rc, "out of memory");
        goto cleanup;
    }
    j->id = sqlite3_column_int64(st, 0);
    rc = column_dup(st, 1, &j->dedupe_key, err);
    if (rc == 0) {
        rc = column_dup(st, 2, &j->job_key, err);
    }
    if (rc == 0) {
        rc = column_dup(st, 3, &j->kind, err);
    }
    if (rc == 0) {
        rc = column_dup(st, 4, &j->payload, err);
    }
    if (rc == 0) {
        rc = column_dup(st, 5, &j->correlation_id, err);
    }
    if (rc == 0) {
        rc = column_dup(st, 9, &j->last_error, err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    j->state = sqlite3_column_int(st, 6);
    j->attempts = sqlite3_column_int(st, 7);
    j->next_attempt_at_ms = sqlite3_column_int64(st, 8);
    j->created_at_ms = sqlite3_column_int64(st, 10);
    j->updated_at_ms = sqlite3_column_int64(st, 11);
    j->lane = sqlite3_column_int(st, 12);
    *out = j;
    j = NULL;
cleanup:
    ferry_job_free(j);
    return rc;
}

/* Appends the job of the current row of a job query to *arr (grown by doubling). */
static int append_job(sqlite3_stmt *st, struct ferry_job ***arr, size_t *count, size_t *cap,
                      struct ferry_err *err)
{
    /* Grow by doubling rather than preallocating the limit, which may be huge. */
    if (*count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct ferry_job **grown = realloc(*arr, ncap * sizeof(**arr));
        if (!grown) {
            return ferry_err_set(err, FERRY_ENOMEM, "out of memory listing jobs");
        }
        *arr = grown;
        *cap = ncap;
    }
    int rc = job_from_row(st, &(*arr)[*count], err);
    if (rc == 0) {
        (*count)++;
    }
    return rc;
}

/* Appends every row of a job query to *arr, up to `limit` in all. */
static int collect_jobs(struct ferry_store *s, sqlite3_stmt *st, struct ferry_job ***arr,
                        size_t *count, size_t *cap, size_t limit, struct ferry_err *err)
{
    while (*count < limit) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            return 0;
        }
        if (src != SQLITE_ROW) {
            return db_error(s, src, "list jobs", err);
        }
        int rc = append_job(st, arr, count, cap, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int64_t limit_arg(size_t limit)
{
    return limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
}

int ferry_store_jobs_pending(struct ferry_store *s, int64_t after_id, size_t limit,
                             struct ferry_job ***jobs, size_t *n, struct ferry_err *err)
{
    int rc = 0;
    sqlite3_stmt *st = NULL;
    struct ferry_job **arr = NULL;
    size_t count = 0, cap = 0;

    *jobs = NULL;
    *n = 0;
    if (limit == 0) {
        goto cleanup;
    }
    rc = stmt_get(s, STMT_JOBS_PENDING, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, after_id, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, limit_arg(limit), err);
    }
    if (rc == 0) {
        rc = collect_jobs(s, st, &arr, &count, &cap, limit, err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    *jobs = arr;
    *n = count;
    arr = NULL;
    count = 0;
cleanup:
    stmt_done(st);
    for (size_t i = 0; i < count; i++) {
        ferry_job_free(arr[i]);
    }
    free(arr);
    return rc;
}

int ferry_store_jobs_runnable(struct ferry_store *s, int64_t now_ms, size_t limit,
                              struct ferry_job ***jobs, size_t *n, struct ferry_err *err)
{
    return ferry_store_jobs_runnable_take(s, now_ms, limit, NULL, NULL, jobs, n, err);
}

/*
 * Reads one lane's runnable rows, `take` choosing; *nread counts the rows
 * read, *last tells that `take` wants no more.
 */
static int runnable_lane(struct ferry_store *s, int lane, int64_t now_ms, size_t limit,
                         ferry_job_take_fn take, void *ud, struct ferry_job ***arr, size_t *count,
                         size_t *cap, size_t *nread, bool *last, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, STMT_JOBS_RUNNABLE, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, lane, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, now_ms, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 3, limit_arg(limit - *nread), err);
    }
    while (rc == 0 && !*last) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            break;
        }
        if (src != SQLITE_ROW) {
            rc = db_error(s, src, "list runnable jobs", err);
            break;
        }
        (*nread)++;
        enum ferry_job_take verdict = FERRY_JOB_TAKE;
        if (take) {
            const char *key = (const char *)sqlite3_column_text(st, 2);
            if (!key) { /* NOT NULL in the schema: out of memory */
                rc = db_error(s, sqlite3_errcode(s->db), "list runnable jobs", err);
                break;
            }
            verdict = take(ud, key, sqlite3_column_int(st, 12));
        }
        if (verdict != FERRY_JOB_SKIP) {
            *last = verdict == FERRY_JOB_TAKE_LAST;
            rc = append_job(st, arr, count, cap, err);
        }
    }
    stmt_done(st);
    return rc;
}

int ferry_store_jobs_runnable_take(struct ferry_store *s, int64_t now_ms, size_t limit,
                                   ferry_job_take_fn take, void *ud, struct ferry_job ***jobs,
                                   size_t *n, struct ferry_err *err)
{
    int rc = 0;
    struct ferry_job **arr = NULL;
    size_t count = 0, cap = 0, nread = 0;
    bool last = false;

    *jobs = NULL;
    *n = 0;
    for (int lane = FERRY_LANE_REALTIME; lane <= FERRY_LANE_BACKFILL && nread < limit && !last;
         lane++) {
        rc =
            runnable_lane(s, lane, now_ms, limit, take, ud, &arr, &count, &cap, &nread, &last, err);
        if (rc < 0) {
            goto cleanup;
        }
    }
    *jobs = arr;
    *n = count;
    arr = NULL;
    count = 0;
cleanup:
    for (size_t i = 0; i < count; i++) {
        ferry_job_free(arr[i]);
    }
    free(arr);
    return rc;
}

int ferry_store_jobs_next_due(struct ferry_store *s, int64_t now_ms, int64_t *at_ms,
                              struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    *at_ms = INT64_MAX;
    int rc = stmt_get(s, STMT_JOBS_NEXT_DUE, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, now_ms, err);
    }
    if (rc == 0) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            *at_ms = sqlite3_column_int64(st, 0);
        } else if (src != SQLITE_ROW && src != SQLITE_DONE) {
            rc = db_error(s, src, "next due job", err);
        }
    }
    stmt_done(st);
    return rc;
}

int ferry_store_job_origin_since(struct ferry_store *s, const char *job_key, int origin,
                                 int64_t since_ms, bool *found, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    *found = false;
    int rc = stmt_get(s, STMT_JOB_ORIGIN_SINCE, &st, err);
    if (rc == 0) {
        rc = bind_text(s, st, 1, job_key, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, origin, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 3, since_ms, err);
    }
    if (rc == 0) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *found = true;
        } else if (src != SQLITE_DONE) {
            rc = db_error(s, src, "look up job origin", err);
        }
    }
    stmt_done(st);
    return rc;
}

int ferry_store_job_get(struct ferry_store *s, int64_t id, struct ferry_job **job,
                        struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    *job = NULL;
    int rc = stmt_get(s, STMT_JOB_GET, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, id, err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = ferry_err_set(err, FERRY_ENOTFOUND, "job %lld not found", (long long)id);
    } else if (src != SQLITE_ROW) {
        rc = db_error(s, src, "get job", err);
    } else {
        rc = job_from_row(st, job, err);
    }
cleanup:
    stmt_done(st);
    return rc;
}

/*
 * After a state-guarded UPDATE changed nothing: tells a missing job
 * (FERRY_ENOTFOUND) from one in the wrong state (FERRY_EBUSY).
 */
static int transition_refused(struct ferry_store *s, int64_t id, const char *op,
                              struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, STMT_JOB_STATE, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, id, err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = ferry_err_set(err, FERRY_ENOTFOUND, "%s: job %lld not found", op, (long long)id);
    } else if (src == SQLITE_ROW) {
        rc = ferry_err_set(err, FERRY_EBUSY, "%s: job %lld is %s", op, (long long)id,
                           ferry_job_state_name(sqlite3_column_int(st, 0)));
    } else {
        rc = db_error(s, src, op, err);
    }
cleanup:
    stmt_done(st);
    return rc;
}

/*
 * Runs one of the state-guarded job UPDATEs: ?1 id, ?2 now, then an optional
 * integer ?3 and an optional text at `text_idx`.
 */
static int job_transition(struct ferry_store *s, enum store_stmt which, const char *op, int64_t id,
                          int64_t now_ms, bool has_int, int64_t v3, int text_idx, const char *text,
                          const char *mapping_hash, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, which, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, id, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, now_ms, err);
    }
    if (rc == 0 && has_int) {
        rc = bind_int64(s, st, 3, v3, err);
    }
    if (rc == 0 && text_idx > 0) {
        rc = bind_text(s, st, text_idx, text, err);
    }
    if (rc == 0 && mapping_hash) {
        rc = bind_text(s, st, 5, mapping_hash, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, op, err);
    }
    stmt_done(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0) {
        rc = transition_refused(s, id, op, err);
    }
    return rc;
}

int ferry_store_job_lease(struct ferry_store *s, int64_t id, int64_t now_ms, int64_t lease_until_ms,
                          struct ferry_err *err)
{
    return job_transition(s, STMT_JOB_LEASE, "lease", id, now_ms, true, lease_until_ms, 0, NULL,
                          NULL, err);
}

int ferry_store_job_finish(struct ferry_store *s, int64_t id, int64_t now_ms, struct ferry_err *err)
{
    return job_transition(s, STMT_JOB_FINISH, "finish", id, now_ms, false, 0, 0, NULL, NULL, err);
}

/*
 * A failure reason quotes the remote system's answer, which may quote the
 * record: it passes the redaction layer (redact.h) before it is stored.
 * NULL stays NULL; when redaction itself runs out of memory the reason is
 * withheld rather than stored unredacted.
 */
static const char *safe_reason(const char *text, char **owned)
{
    *owned = ferry_redact_active() ? ferry_redact_text(text) : NULL;
    if (*owned || !text || !ferry_redact_active()) {
        return *owned ? *owned : text;
    }
    return "(reason withheld: out of memory while redacting it)";
}

int ferry_store_job_retry(struct ferry_store *s, int64_t id, int64_t now_ms,
                          int64_t next_attempt_at_ms, const char *error, struct ferry_err *err)
{
    struct ferry_job_end end = {
        .state = FERRY_JOB_PENDING, .next_attempt_at_ms = next_attempt_at_ms, .error = error};
    return ferry_store_job_end(s, id, now_ms, &end, err);
}

int ferry_store_job_bury(struct ferry_store *s, int64_t id, int64_t now_ms, const char *error,
                         struct ferry_err *err)
{
    struct ferry_job_end end = {.state = FERRY_JOB_DEAD, .error = error};
    return ferry_store_job_end(s, id, now_ms, &end, err);
}

int ferry_store_job_end(struct ferry_store *s, int64_t id, int64_t now_ms,
                        const struct ferry_job_end *end, struct ferry_err *err)
{
    char *owned = NULL;
    int rc;
    switch (end->state) {
    case FERRY_JOB_DONE:
        rc = job_transition(s, STMT_JOB_FINISH, "finish", id, now_ms, false, 0, 0, NULL,
                            end->mapping_hash, err);
        break;
    case FERRY_JOB_PENDING:
        rc = job_transition(s, STMT_JOB_RETRY, "retry", id, now_ms, true, end->next_attempt_at_ms,
                            4, safe_reason(end->error, &owned), end->mapping_hash, err);
        break;
    case FERRY_JOB_DEAD:
        rc = job_transition(s, STMT_JOB_BURY, "bury", id, now_ms, false, 0, 3,
                            safe_reason(end->error, &owned), end->mapping_hash, err);
        break;
    default:
        rc = ferry_err_set(err, FERRY_EINVAL, "a job cannot end as %s",
                           ferry_job_state_name(end->state));
        break;
    }
    free(owned);
    return rc;
}

int ferry_store_jobs_requeue_running(struct ferry_store *s, int64_t now_ms, int64_t *n,
                                     struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, STMT_JOBS_REQUEUE, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, now_ms, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "requeue running jobs", err);
    }
    stmt_done(st);
    if (rc == 0 && n) {
        *n = sqlite3_changes(s->db);
    }
    return rc;
}

int ferry_store_job_counts(struct ferry_store *s, int64_t counts[FERRY_JOB_NSTATES],
                           struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    for (int i = 0; i < FERRY_JOB_NSTATES; i++) {
        counts[i] = 0;
    }
    int rc = stmt_get(s, STMT_JOB_COUNTS, &st, err);
    if (rc < 0) {
        goto cleanup;
    }
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            break;
        }
        if (src != SQLITE_ROW) {
            rc = db_error(s, src, "count jobs", err);
            goto cleanup;
        }
        int state = sqlite3_column_int(st, 0);
        if (state >= 0 && state < FERRY_JOB_NSTATES) {
            counts[state] = sqlite3_column_int64(st, 1);
        }
    }
cleanup:
    stmt_done(st);
    return rc;
}

/* Runs a single-row COUNT(*) statement whose parameters are already bound. */
static int count_query(struct ferry_store *s, sqlite3_stmt *st, const char *what, int64_t *n,
                       struct ferry_err *err)
{
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        return db_error(s, src, what, err);
    }
    *n = sqlite3_column_int64(st, 0);
    return 0;
}

int ferry_store_jobs_dead_since(struct ferry_store *s, int64_t since_ms, int64_t *n,
                                struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, STMT_JOBS_DEAD_SINCE, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, since_ms, err);
    }
    if (rc == 0) {
        rc = count_query(s, st, "count dead jobs", n, err);
    }
    stmt_done(st);
    return rc;
}

/* ---- links ---- */

void ferry_link_clear(struct ferry_link *l)
{
    if (!l) {
        return;
    }
    free(l->dst_id);
    free(l->etag);
    free(l->content_hash);
    free(l->fields);
    memset(l, 0, sizeof(*l));
}

static int bind_link_key(struct ferry_store *s, sqlite3_stmt *st, const struct ferry_link_key *k,
                         struct ferry_err *err)
{
    if (!k->src_system || !k->src_object || !k->src_id || !k->dst_system || !k->dst_object) {
        return ferry_err_set(err, FERRY_EINVAL, "incomplete link key");
    }
    int rc = bind_text(s, st, 1, k->src_system, err);
    if (rc == 0) {
        rc = bind_texts(
            s, st, 2, (const char *const[]){k->src_object, k->src_id, k->dst_system, k->dst_object},
            4, err);
    }
    return rc;
}

int ferry_store_link_get(struct ferry_store *s, const struct ferry_link_key *key,
                         struct ferry_link *out, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    struct ferry_link l = {0};
    memset(out, 0, sizeof(*out));
    int rc = stmt_get(s, STMT_LINK_GET, &st, err);
    if (rc == 0) {
        rc = bind_link_key(s, st, key, err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        /* Planning a record asks for links that are mostly absent. */
        const char *const msg[] = {
            "no link for ", key->src_system, "/", key->src_object, "/", key->src_id,
            " -> ",         key->dst_system, "/", key->dst_object};
        rc = ferry_err_join(err, FERRY_ENOTFOUND, msg, sizeof(msg) / sizeof(msg[0]));
        goto cleanup;
    }
    if (src != SQLITE_ROW) {
        rc = db_error(s, src, "get link", err);
        goto cleanup;
    }
    rc = column_dup(st, 0, &l.dst_id, err);
    if (rc == 0) {
        rc = column_dup(st, 1, &l.etag, err);
    }
    if (rc == 0) {
        rc = column_dup(st, 2, &l.content_hash, err);
    }
    if (rc == 0) {
        rc = column_dup(st, 3, &l.fields, err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    l.updated_at_ms = sqlite3_column_int64(st, 4);
    *out = l;
    memset(&l, 0, sizeof(l));
cleanup:
    stmt_done(st);
    ferry_link_clear(&l);
    return rc;
}

int ferry_store_link_put(struct ferry_store *s, const struct ferry_link_key *key,
                         const struct ferry_link *link, int64_t now_ms, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    if (!link->dst_id) {
        return ferry_err_set(err, FERRY_EINVAL, "link without a destination id");
    }
    int rc = stmt_get(s, STMT_LINK_PUT, &st, err);
    if (rc == 0) {
        rc = bind_link_key(s, st, key, err);
    }
    if (rc == 0) {
        rc = bind_texts(
            s, st, 6,
            (const char *const[]){link->dst_id, link->etag, link->content_hash, link->fields}, 4,
            err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 10, now_ms, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "put link", err);
    }
    stmt_done(st);
    return rc;
}

int ferry_store_link_find_by_dst(struct ferry_store *s, const char *dst_system,
                                 const char *dst_object, const char *dst_id, const char *src_system,
                                 const char *src_object, char **src_id, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    *src_id = NULL;
    if (!dst_system || !dst_object || !dst_id || !src_system || !src_object) {
        return ferry_err_set(err, FERRY_EINVAL, "incomplete link lookup");
    }
    int rc = stmt_get(s, STMT_LINK_FIND_BY_DST, &st, err);
    if (rc == 0) {
        rc = bind_texts(
            s, st, 1, (const char *const[]){dst_system, dst_object, dst_id, src_system, src_object},
            5, err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE || (src == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_NULL)) {
        const char *const msg[] = {"no ",      src_system, "/",        src_object, " linked to ",
                                   dst_system, "/",        dst_object, "/",        dst_id};
        rc = ferry_err_join(err, FERRY_ENOTFOUND, msg, sizeof(msg) / sizeof(msg[0]));
    } else if (src != SQLITE_ROW) {
        rc = db_error(s, src, "find link by destination", err);
    } else {
        rc = column_dup(st, 0, src_id, err);
    }
cleanup:
    stmt_done(st);
    return rc;
}

/* ---- cursors ---- */

int ferry_store_cursor_get(struct ferry_store *s, const char *system, const char *object,
                           char **value, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    *value = NULL;
    int rc = stmt_get(s, STMT_CURSOR_GET, &st, err);
    if (rc == 0) {
        rc = bind_texts(s, st, 1, (const char *const[]){system, object}, 2, err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        rc = column_dup(st, 0, value, err);
    } else if (src != SQLITE_DONE) {
        rc = db_error(s, src, "get cursor", err);
    }
cleanup:
    stmt_done(st);
    return rc;
}

/* Runs a statement whose parameters are n texts and then a time in ms (the
 * upserts of cursors, key/values and webhook scopes). */
static int exec_texts_at(struct ferry_store *s, enum store_stmt stmt, const char *const *texts,
                         int n, int64_t at_ms, const char *what, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, stmt, &st, err);
    if (rc == 0) {
        rc = bind_texts(s, st, 1, texts, n, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, n + 1, at_ms, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, what, err);
    }
    stmt_done(st);
    return rc;
}

int ferry_store_cursor_put(struct ferry_store *s, const char *system, const char *object,
                           const char *value, int64_t now_ms, struct ferry_err *err)
{
    if (!system || !object || !value) {
        return ferry_err_set(err, FERRY_EINVAL, "cursor needs system, object and value");
    }
    return exec_texts_at(s, STMT_CURSOR_PUT, (const char *const[]){system, object, value}, 3,
                         now_ms, "put cursor", err);
}

/* ---- audit ---- */

/*
 * Binds one audit row to parameters base + 1 .. base + 12. Every text a row
 * carries passes the redaction layer (secrets, personal data); owned[0..3]
 * get the redacted copies, for the caller to free after the step.
 */
static int audit_bind(struct ferry_store *s, sqlite3_stmt *st, int base,
                      const struct ferry_audit_row *in, char *owned[4], struct ferry_err *err)
{
    struct ferry_audit_row safe;
    const struct ferry_audit_row *row = in;
    if (ferry_redact_active()) {
        safe = *in;
        safe.url = safe_reason(in->url, &owned[0]);
        safe.request = safe_reason(in->request, &owned[1]);
        safe.response = safe_reason(in->response, &owned[2]);
        safe.detail = safe_reason(in->detail, &owned[3]);
        row = &safe;
    }
    /* 0 means "no job": stored as NULL so a join on jobs never matches it. */
    int src = row->job_id > 0 ? sqlite3_bind_int64(st, base + 1, row->job_id)
                              : sqlite3_bind_null(st, base + 1);
    int rc = src == SQLITE_OK ? 0 : db_error(s, src, "bind", err);
    if (rc == 0) {
        rc = bind_texts(s, st, base + 2,
                        (const char *const[]){row->correlation_id, row->connector, row->step,
                                              row->method, row->url},
                        5, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, base + 7, row->status, err);
    }
    if (rc == 0) {
        rc = bind_texts(s, st, base + 8,
                        (const char *const[]){row->request, row->response, row->detail}, 3, err);
    }
    if (rc == 0) {
        rc = bind_int64s(s, st, base + 11, (const int64_t[]){row->duration_ms, row->at_ms}, 2, err);
    }
    return rc;
}

/*
 * Inserts rows[0..n) with one statement: FERRY_SQL_AUDIT_MANY rows at once,
 * or one. A statement costs about as much again as the rows it inserts (the
 * AUTOINCREMENT counter is read and written once per statement), so a
 * batch's end writes its rows in eights.
 */
static int audit_insert_rows(struct ferry_store *s, const struct ferry_audit_row *const *rows,
                             size_t n, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    char *owned[FERRY_SQL_AUDIT_MANY][4] = {{NULL}};
    int rc = stmt_get(s, n == 1 ? STMT_AUDIT_ADD : STMT_AUDIT_ADD_MANY, &st, err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = audit_bind(s, st, (int)i * 12, rows[i], owned[i], err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "add audit row", err);
    }
    stmt_done(st);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < 4; k++) {
            free(owned[i][k]);
        }
    }
    return rc;
}

static int audit_insert(struct ferry_store *s, const struct ferry_audit_row *in,
                        struct ferry_err *err)
{
    return audit_insert_rows(s, (const struct ferry_audit_row *const[]){in}, 1, err);
}

static void held_free(struct ferry_store *s)
{
    for (size_t i = 0; i < s->nheld; i++) {
        free(s->held[i]);
    }
    s->nheld = 0;
    s->held_bytes = 0;
}

/*
 * Inserts the held rows in the order they were added, so that ids (which
 * order a job's steps) come out as if each had been written at once. Rows
 * that could not be written are dropped either way: the trail of a job is
 * not worth more than the failure the caller is told about.
 */
static int audit_write_held(struct ferry_store *s, struct ferry_err *err)
{
    int rc = 0;
    size_t i = 0;
    while (i < s->nheld && rc == 0) {
        const struct ferry_audit_row *rows[FERRY_SQL_AUDIT_MANY];
        size_t n = s->nheld - i >= FERRY_SQL_AUDIT_MANY ? FERRY_SQL_AUDIT_MANY : 1;
        for (size_t k = 0; k < n; k++) {
            rows[k] = &s->held[i + k]->row;
        }
        rc = audit_insert_rows(s, rows, n, err);
        if (rc == 0) {
            i += n;
        }
    }
    if (rc < 0 && err) {
        size_t lost = s->nheld - i;
        char msg[sizeof(err->msg)];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        ferry_err_set(err, rc, "%zu audit row(s) not written: %s", lost, msg);
    }
    held_free(s);
    return rc;
}

/* Writes what is held in a transaction of its own, or in the open one. */
static int audit_flush_held(struct ferry_store *s, struct ferry_err *err)
{
    if (s->nheld == 0) {
        return 0;
    }
    if (s->depth > 0) {
        return audit_write_held(s, err);
    }
    int rc = ferry_store_begin(s, err);
    if (rc < 0) {
        held_free(s);
        return rc;
    }
    return ferry_store_commit(s, err);
}

static size_t opt_len(const char *v)
{
    return v ? strlen(v) + 1 : 0;
}

/* Copies v into *at (advancing it); NULL stays NULL. */
static const char *opt_copy(char **at, const char *v)
{
    if (!v) {
        return NULL;
    }
    size_t n = strlen(v) + 1;
    char *dst = *at;
    memcpy(dst, v, n);
    *at += n;
    return dst;
}

/* Keeps a copy of the row (one allocation for the row and its texts). */
static int audit_hold_row(struct ferry_store *s, const struct ferry_audit_row *in,
                          struct ferry_err *err)
{
    const char *texts[] = {in->correlation_id, in->connector, in->step,  in->method, in->url,
                           in->request,        in->response,  in->detail};
    size_t len = 0;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        len += opt_len(texts[i]);
    }
    if (s->nheld == s->held_cap) {
        size_t ncap = s->held_cap ? s->held_cap * 2 : 16;
        struct held_audit **grown = realloc(s->held, ncap * sizeof(*grown));
        if (!grown) {
            return ferry_err_set(err, FERRY_ENOMEM, "out of memory holding an audit row");
        }
        s->held = grown;
        s->held_cap = ncap;
    }
    struct held_audit *h = malloc(sizeof(*h) + len);
    if (!h) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory holding an audit row");
    }
    char *at = h->text;
    h->row = *in;
    h->row.correlation_id = opt_copy(&at, in->correlation_id);
    h->row.connector = opt_copy(&at, in->connector);
    h->row.step = opt_copy(&at, in->step);
    h->row.method = opt_copy(&at, in->method);
    h->row.url = opt_copy(&at, in->url);
    h->row.request = opt_copy(&at, in->request);
    h->row.response = opt_copy(&at, in->response);
    h->row.detail = opt_copy(&at, in->detail);
    s->held[s->nheld++] = h;
    s->held_bytes += sizeof(*h) + len;
    if (s->nheld >= STORE_AUDIT_HOLD_ROWS || s->held_bytes >= STORE_AUDIT_HOLD_BYTES) {
        return audit_flush_held(s, err);
    }
    return 0;
}

int ferry_store_audit_add(struct ferry_store *s, const struct ferry_audit_row *in,
                          struct ferry_err *err)
{
    if (!in->correlation_id || !in->step) {
        return ferry_err_set(err, FERRY_EINVAL, "audit row needs correlation_id and step");
    }
    return s->hold ? audit_hold_row(s, in, err) : audit_insert(s, in, err);
}

int ferry_store_audit_hold(struct ferry_store *s, bool on, struct ferry_err *err)
{
    s->hold = on;
    return on ? 0 : audit_flush_held(s, err);
}

int ferry_store_audit_count(struct ferry_store *s, const char *step, const char *method, int64_t *n,
                            struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    if (!step) {
        return ferry_err_set(err, FERRY_EINVAL, "audit count needs a step");
    }
    int rc = stmt_get(s, STMT_AUDIT_COUNT, &st, err);
    if (rc == 0) {
        rc = bind_texts(s, st, 1, (const char *const[]){step, method}, 2, err);
    }
    if (rc == 0) {
        rc = count_query(s, st, "count audit rows", n, err);
    }
    stmt_done(st);
    return rc;
}

/* ---- connector key/value store ---- */

int ferry_store_kv_get(struct ferry_store *s, const char *instance, const char *key, char **value,
                       int64_t *updated_at_ms, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    *value = NULL;
    int rc = stmt_get(s, STMT_KV_GET, &st, err);
    if (rc == 0) {
        rc = bind_texts(s, st, 1, (const char *const[]){instance, key}, 2, err);
    }
    if (rc == 0) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            rc = column_dup(st, 0, value, err);
            if (updated_at_ms) {
                *updated_at_ms = sqlite3_column_int64(st, 1);
            }
        } else if (src == SQLITE_DONE) {
            rc = ferry_err_set(err, FERRY_ENOTFOUND, "no value stored under %s", key);
        } else {
            rc = db_error(s, src, "read key/value", err);
        }
    }
    stmt_done(st);
    return rc;
}

int ferry_store_kv_put(struct ferry_store *s, const char *instance, const char *key,
                       const char *value, int64_t now_ms, struct ferry_err *err)
{
    if (!instance || !key || !value) {
        return ferry_err_set(err, FERRY_EINVAL, "key/value needs instance, key and value");
    }
    return exec_texts_at(s, STMT_KV_PUT, (const char *const[]){instance, key, value}, 3, now_ms,
                         "write key/value", err);
}

/* ---- counters ---- */

int ferry_store_counter_add(struct ferry_store *s, const char *name, int64_t delta, int64_t now_ms,
                            struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, STMT_COUNTER_ADD, &st, err);
    if (rc == 0) {
        rc = bind_text(s, st, 1, name, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, delta, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 3, now_ms, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "add to counter", err);
    }
    stmt_done(st);
    return rc;
}

/*
 * Runs a prepared statement (already bound) to the end, adding each row to
 * `acc` with `add`; *out gets `acc` on success, which is freed otherwise.
 * The listings ferry status shows are all this shape.
 */
static int collect_rows(struct ferry_store *s, sqlite3_stmt *st, const char *what,
                        void (*add)(sqlite3_stmt *st, json_t *acc), json_t *acc, json_t **out,
                        struct ferry_err *err)
{
    int rc = 0;
    *out = NULL;
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            break;
        }
        if (src != SQLITE_ROW) {
            rc = db_error(s, src, what, err);
            break;
        }
        add(st, acc);
    }
    stmt_done(st);
    if (rc < 0) {
        json_decref(acc);
        return rc;
    }
    *out = acc;
    return 0;
}

static void add_counter(sqlite3_stmt *st, json_t *acc)
{
    json_object_set_new(acc, (const char *)sqlite3_column_text(st, 0),
                        json_integer(sqlite3_column_int64(st, 1)));
}

int ferry_store_counters(struct ferry_store *s, json_t **out, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    json_t *o = json_object();
    *out = NULL;
    if (!o) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    int rc = stmt_get(s, STMT_COUNTERS_ALL, &st, err);
    if (rc < 0) {
        json_decref(o);
        return rc;
    }
    return collect_rows(s, st, "read counters", add_counter, o, out, err);
}

/* ---- webhook deliveries seen ---- */

int ferry_store_webhook_seen(struct ferry_store *s, const char *instance, const char *scope,
                             int64_t at_ms, int64_t count, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, STMT_WEBHOOK_SEEN, &st, err);
    if (rc == 0) {
        rc = bind_texts(s, st, 1, (const char *const[]){instance, scope}, 2, err);
    }
    if (rc == 0) {
        rc = bind_int64s(s, st, 3, (const int64_t[]){at_ms, count}, 2, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "record webhook scope", err);
    }
    stmt_done(st);
    return rc;
}

static void add_webhook_seen(sqlite3_stmt *st, json_t *acc)
{
    json_array_append_new(acc, json_pack("{s:s, s:s, s:I, s:I}", "instance",
                                         (const char *)sqlite3_column_text(st, 0), "scope",
                                         (const char *)sqlite3_column_text(st, 1), "last_at",
                                         (json_int_t)sqlite3_column_int64(st, 2), "count",
                                         (json_int_t)sqlite3_column_int64(st, 3)));
}

int ferry_store_webhooks_seen(struct ferry_store *s, json_t **out, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    *out = NULL;
    if (!arr) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    int rc = stmt_get(s, STMT_WEBHOOKS_SEEN_ALL, &st, err);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    return collect_rows(s, st, "read webhook scopes", add_webhook_seen, arr, out, err);
}

/* ---- dead letters ---- */

/* Runs an UPDATE keyed on one job id and a time; *changed gets the row count. */
static int update_job(struct ferry_store *s, int stmt, const char *what, int64_t id, int64_t now_ms,
                      int *changed, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, stmt, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, id, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, now_ms, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, what, err);
    }
    stmt_done(st);
    if (rc == 0) {
        *changed = sqlite3_changes(s->db);
    }
    return rc;
}

int ferry_store_job_note_mapping(struct ferry_store *s, int64_t id, const char *hash,
                                 struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, STMT_JOB_NOTE_MAPPING, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, id, err);
    }
    if (rc == 0) {
        rc = bind_text(s, st, 2, hash, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "note mapping hash", err);
    }
    stmt_done(st);
    return rc;
}

int ferry_store_jobs_supersede(struct ferry_store *s, const char *job_key, int64_t by_id,
                               int64_t now_ms, int64_t *n, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, STMT_JOBS_SUPERSEDE, &st, err);
    if (rc == 0) {
        rc = bind_text(s, st, 1, job_key, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, by_id, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 3, now_ms, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "supersede dead letters", err);
    }
    stmt_done(st);
    if (rc == 0 && n) {
        *n = sqlite3_changes(s->db);
    }
    return rc;
}

int ferry_store_jobs_dead(struct ferry_store *s, size_t limit, struct ferry_job ***jobs, size_t *n,
                          struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    struct ferry_job **arr = NULL;
    size_t count = 0, cap = 0;
    *jobs = NULL;
    *n = 0;
    int rc = stmt_get(s, STMT_JOBS_DEAD_OPEN, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, limit_arg(limit), err);
    }
    if (rc == 0) {
        rc = collect_jobs(s, st, &arr, &count, &cap, limit, err);
    }
    stmt_done(st);
    if (rc < 0) {
        for (size_t i = 0; i < count; i++) {
            ferry_job_free(arr[i]);
        }
        free(arr);
        return rc;
    }
    *jobs = arr;
    *n = count;
    return 0;
}

int ferry_store_job_requeue_dead(struct ferry_store *s, int64_t id, int64_t now_ms,
                                 struct ferry_err *err)
{
    int changed = 0;
    int rc = update_job(s, STMT_JOB_REQUEUE_DEAD, "retry dead letter", id, now_ms, &changed, err);
    if (rc == 0 && changed == 0) {
        rc = ferry_err_set(err, FERRY_ENOTFOUND, "job %lld is not a dead letter", (long long)id);
    }
    return rc;
}

int ferry_store_job_drop_dead(struct ferry_store *s, int64_t id, int64_t now_ms,
                              struct ferry_err *err)
{
    int changed = 0;
    int rc = update_job(s, STMT_JOB_DROP_DEAD, "drop dead letter", id, now_ms, &changed, err);
    if (rc == 0 && changed == 0) {
        rc = ferry_err_set(err, FERRY_ENOTFOUND, "job %lld is not an open dead letter",
                           (long long)id);
    }
    return rc;
}

static int rows_json(struct ferry_store *s, sqlite3_stmt *st, const char *const *names, int ncols,
                     const char *what, json_t **out, struct ferry_err *err);

int ferry_store_audit_for_job(struct ferry_store *s, int64_t job_id, json_t **rows,
                              struct ferry_err *err)
{
    static const char *const names[] = {"id",  "step",    "connector", "method",
                                        "url", "status",  "detail",    "duration_ms",
                                        "at",  "request", "response"};
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    int rc = stmt_get(s, STMT_AUDIT_FOR_JOB, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, job_id, err);
    }
    if (rc == 0) {
        rc = rows_json(s, st, names, 11, "read audit rows", rows, err);
    }
    stmt_done(st);
    return rc;
}

int ferry_store_jobs_select(struct ferry_store *s, int64_t id, int64_t since_ms,
                            const char *correlation_id, size_t limit, struct ferry_job ***jobs,
                            size_t *n, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    struct ferry_job **arr = NULL;
    size_t count = 0, cap = 0;
    *jobs = NULL;
    *n = 0;
    int rc = stmt_get(s, STMT_JOBS_SELECT, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, id, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, since_ms, err);
    }
    if (rc == 0) {
        rc = bind_text(s, st, 3, correlation_id, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 4, limit_arg(limit), err);
    }
    if (rc == 0) {
        rc = collect_jobs(s, st, &arr, &count, &cap, limit, err);
    }
    stmt_done(st);
    if (rc < 0) {
        for (size_t i = 0; i < count; i++) {
            ferry_job_free(arr[i]);
        }
        free(arr);
        return rc;
    }
    *jobs = arr;
    *n = count;
    return 0;
}

int ferry_store_jobs_coalesce(struct ferry_store *s, const char *job_key, const char *event,
                              int64_t by_id, int64_t read_at_ms, int64_t now_ms, int64_t *n,
                              struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    bool any = false;
    if (n) {
        *n = 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        int rc = stmt_get(s, pass == 0 ? STMT_JOBS_COALESCIBLE : STMT_JOBS_COALESCE, &st, err);
        if (rc == 0) {
            rc = bind_text(s, st, 1, job_key, err);
        }
        if (rc == 0) {
            rc = bind_int64s(s, st, 2, (const int64_t[]){by_id, read_at_ms, now_ms}, 3, err);
        }
        if (rc == 0) {
            rc = bind_text(s, st, 5, event, err);
        }
        if (rc == 0 && pass == 0) {
            int src = sqlite3_step(st);
            any = src == SQLITE_ROW;
            if (src != SQLITE_ROW && src != SQLITE_DONE) {
                rc = db_error(s, src, "look for jobs to coalesce", err);
            }
        } else if (rc == 0) {
            rc = step_done(s, st, "coalesce jobs", err);
        }
        stmt_done(st);
        if (rc < 0 || !any) {
            return rc;
        }
    }
    if (n) {
        *n = sqlite3_changes(s->db);
    }
    return 0;
}

int ferry_store_job_followups(struct ferry_store *s, const char *job_key, int64_t by_id,
                              const char *event, int64_t read_at_ms, bool *supersede,
                              bool *coalesce, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    *supersede = *coalesce = false;
    int rc = stmt_get(s, STMT_JOB_FOLLOWUPS, &st, err);
    if (rc == 0) {
        rc = bind_text(s, st, 1, job_key, err);
    }
    if (rc == 0) {
        rc = bind_int64s(s, st, 2, (const int64_t[]){by_id, read_at_ms}, 2, err);
    }
    if (rc == 0) {
        rc = bind_text(s, st, 5, event, err);
    }
    if (rc == 0) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *supersede = sqlite3_column_int(st, 0) != 0;
            *coalesce = sqlite3_column_int(st, 1) != 0;
        } else {
            rc = db_error(s, src, "look for jobs a success covers", err);
        }
    }
    stmt_done(st);
    return rc;
}

/* ---- operations: status, metrics, explain, log, retention (issue 8) ---- */

/*
 * The rows of a prepared, bound SELECT as a new array of objects whose keys
 * are `names` (one per column). SQL NULL leaves the key out; text that is not
 * valid UTF-8 (a remote body) is kept as a marker instead of losing the row.
 */
static int rows_json(struct ferry_store *s, sqlite3_stmt *st, const char *const *names, int ncols,
                     const char *what, json_t **out, struct ferry_err *err)
{
    json_t *arr = json_array();
    int rc = 0;
    *out = NULL;
    if (!arr) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            break;
        }
        if (src != SQLITE_ROW) {
            rc = db_error(s, src, what, err);
            break;
        }
        json_t *row = json_object();
        for (int c = 0; row && c < ncols; c++) {
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER:
                json_object_set_new(row, names[c], json_integer(sqlite3_column_int64(st, c)));
                break;
            case SQLITE_TEXT: {
                json_t *t = json_string((const char *)sqlite3_column_text(st, c));
                json_object_set_new(row, names[c], t ? t : json_string("(not UTF-8)"));
                break;
            }
            default:
                break;
            }
        }
        if (!row || json_array_append_new(arr, row) < 0) {
            rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
            break;
        }
    }
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int ferry_store_ops_snapshot(struct ferry_store *s, json_t **out, struct ferry_err *err)
{
    static const char *const lane_names[] = {"realtime", "retry", "backfill"};
    static const char *const cursor_cols[] = {"system", "object", "value", "updated_at"};
    sqlite3_stmt *st = NULL;
    json_t *doc = json_object(), *lanes = json_object(), *cursors = NULL;
    int64_t dead = 0;
    int rc = 0;
    *out = NULL;
    if (!doc || !lanes) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (int i = 0; i < 3; i++) {
        json_object_set_new(lanes, lane_names[i], json_integer(0));
    }
    rc = stmt_get(s, STMT_OPS_LANES, &st, err);
    while (rc == 0) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            break;
        }
        if (src != SQLITE_ROW) {
            rc = db_error(s, src, "count pending jobs by lane", err);
            break;
        }
        int lane = sqlite3_column_int(st, 0);
        if (lane >= 0 && lane < 3) {
            json_object_set_new(lanes, lane_names[lane], json_integer(sqlite3_column_int64(st, 1)));
        }
    }
    stmt_done(st);
    st = NULL;
    if (rc < 0) {
        goto cleanup;
    }
    rc = stmt_get(s, STMT_OPS_OLDEST_PENDING, &st, err);
    if (rc == 0) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            json_object_set_new(doc, "oldest_pending_at",
                                json_integer(sqlite3_column_int64(st, 0)));
        } else if (src != SQLITE_DONE) {
            rc = db_error(s, src, "find the oldest pending job", err);
        }
    }
    stmt_done(st);
    st = NULL;
    if (rc < 0) {
        goto cleanup;
    }
    rc = stmt_get(s, STMT_OPS_DEAD_OPEN, &st, err);
    if (rc == 0) {
        rc = count_query(s, st, "count open dead letters", &dead, err);
    }
    stmt_done(st);
    st = NULL;
    if (rc < 0) {
        goto cleanup;
    }
    rc = stmt_get(s, STMT_OPS_CURSORS, &st, err);
    if (rc == 0) {
        rc = rows_json(s, st, cursor_cols, 4, "read cursors", &cursors, err);
    }
    stmt_done(st);
    if (rc < 0) {
        goto cleanup;
    }
    json_object_set_new(doc, "lanes", lanes);
    lanes = NULL;
    json_object_set_new(doc, "dead_open", json_integer(dead));
    json_object_set_new(doc, "cursors", cursors);
    cursors = NULL;
    *out = doc;
    doc = NULL;
cleanup:
    json_decref(doc);
    json_decref(lanes);
    json_decref(cursors);
    return rc;
}

int ferry_store_jobs_for_key(struct ferry_store *s, const char *job_key, size_t limit,
                             json_t **rows, struct ferry_err *err)
{
    static const char *const cols[] = {
        "id",          "job_key",    "kind",       "state",          "attempts",     "lane",
        "origin",      "created_at", "updated_at", "correlation_id", "mapping_hash", "resolution",
        "resolved_by", "last_error", "payload",    "dedupe_key"};
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    int rc = stmt_get(s, STMT_EXPLAIN_JOBS, &st, err);
    if (rc == 0) {
        rc = bind_text(s, st, 1, job_key, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, limit_arg(limit), err);
    }
    if (rc == 0) {
        rc = rows_json(s, st, cols, 16, "read jobs of a record", rows, err);
    }
    stmt_done(st);
    return rc;
}

int ferry_store_links_for_record(struct ferry_store *s, const char *system, const char *object,
                                 const char *id, json_t **rows, struct ferry_err *err)
{
    static const char *const cols[] = {"src_system", "src_object", "src_id", "dst_system",
                                       "dst_object", "dst_id",     "etag",   "content_hash",
                                       "fields",     "updated_at"};
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    int rc = stmt_get(s, STMT_LINKS_FOR_RECORD, &st, err);
    if (rc == 0) {
        rc = bind_texts(s, st, 1, (const char *const[]){system, object, id}, 3, err);
    }
    if (rc == 0) {
        rc = rows_json(s, st, cols, 10, "read links of a record", rows, err);
    }
    stmt_done(st);
    return rc;
}

int ferry_store_audit_select(struct ferry_store *s, const char *correlation_id, int64_t since_ms,
                             size_t limit, json_t **rows, struct ferry_err *err)
{
    static const char *const cols[] = {
        "id",     "job_id", "correlation_id", "step", "connector", "method",  "url",
        "status", "detail", "duration_ms",    "at",   "request",   "response"};
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    int rc;
    if (correlation_id) {
        rc = stmt_get(s, STMT_AUDIT_BY_CORRELATION, &st, err);
        if (rc == 0) {
            rc = bind_text(s, st, 1, correlation_id, err);
        }
        if (rc == 0) {
            rc = bind_int64(s, st, 2, since_ms, err);
        }
        if (rc == 0) {
            rc = bind_int64(s, st, 3, limit_arg(limit), err);
        }
    } else {
        rc = stmt_get(s, STMT_AUDIT_SINCE, &st, err);
        if (rc == 0) {
            rc = bind_int64(s, st, 1, since_ms, err);
        }
        if (rc == 0) {
            rc = bind_int64(s, st, 2, limit_arg(limit), err);
        }
    }
    if (rc == 0) {
        rc = rows_json(s, st, cols, 13, "read audit rows", rows, err);
    }
    stmt_done(st);
    return rc;
}

/* One bounded pruning statement: ?1 cutoff, ?2 limit; *n gets the rows changed. */
static int prune_step(struct ferry_store *s, enum store_stmt which, const char *what,
                      int64_t before_ms, size_t limit, int64_t *n, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    *n = 0;
    int rc = stmt_get(s, which, &st, err);
    if (rc == 0) {
        rc = bind_int64(s, st, 1, before_ms, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, limit_arg(limit), err);
    }
    if (rc == 0) {
        rc = step_done(s, st, what, err);
    }
    stmt_done(st);
    if (rc == 0) {
        *n = sqlite3_changes(s->db);
    }
    return rc;
}

int ferry_store_prune_audit(struct ferry_store *s, int64_t before_ms, size_t limit, int64_t *n,
                            struct ferry_err *err)
{
    return prune_step(s, STMT_PRUNE_AUDIT, "prune audit rows", before_ms, limit, n, err);
}

int ferry_store_prune_job_payloads(struct ferry_store *s, int64_t before_ms, size_t limit,
                                   int64_t *n, struct ferry_err *err)
{
    return prune_step(s, STMT_PRUNE_JOBS, "prune job payloads", before_ms, limit, n, err);
}

static void add_kv(sqlite3_stmt *st, json_t *acc)
{
    const char *text = (const char *)sqlite3_column_text(st, 2);
    json_t *value = text ? json_loads(text, 0, NULL) : NULL;
    json_array_append_new(acc, json_pack("{s:s, s:s, s:o, s:I}", "instance",
                                         (const char *)sqlite3_column_text(st, 0), "key",
                                         (const char *)sqlite3_column_text(st, 1), "value",
                                         value ? value : json_string(text ? text : ""),
                                         "updated_at", (json_int_t)sqlite3_column_int64(st, 3)));
}

int ferry_store_kv_list(struct ferry_store *s, const char *prefix, json_t **out,
                        struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    char like[256];
    json_t *arr = json_array();
    *out = NULL;
    if (!arr) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    snprintf(like, sizeof(like), "%s%%", prefix);
    int rc = stmt_get(s, STMT_KV_PREFIX, &st, err);
    if (rc == 0) {
        rc = bind_text(s, st, 1, like, err);
    }
    if (rc < 0) {
        stmt_done(st);
        json_decref(arr);
        return rc;
    }
    return collect_rows(s, st, "list key/values", add_kv, arr, out, err);
}

/* ---- two-way sync: echo ledger and conflict log ---- */

int ferry_store_echo_put(struct ferry_store *s, const char *system, const char *object,
                         const char *id, const char *field, const char *value_hash,
                         const char *origin, int64_t now_ms, int64_t expires_ms,
                         struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    if (!system || !object || !id || !field || !value_hash || !origin) {
        return ferry_err_set(err, FERRY_EINVAL, "echo ledger row needs every key");
    }
    int rc = stmt_get(s, STMT_ECHO_PUT, &st, err);
    if (rc == 0) {
        rc = bind_texts(
            s, st, 1, (const char *const[]){system, object, id, field, value_hash, origin}, 6, err);
    }
    if (rc == 0) {
        rc = bind_int64s(s, st, 7, (const int64_t[]){now_ms, expires_ms}, 2, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "put echo ledger row", err);
    }
    stmt_done(st);
    return rc;
}

static void add_echo(sqlite3_stmt *st, json_t *acc)
{
    json_array_append_new(acc, json_pack("{s:s, s:s, s:s, s:I}", "field",
                                         (const char *)sqlite3_column_text(st, 0), "hash",
                                         (const char *)sqlite3_column_text(st, 1), "origin",
                                         (const char *)sqlite3_column_text(st, 2), "at",
                                         (json_int_t)sqlite3_column_int64(st, 3)));
}

int ferry_store_echo_get(struct ferry_store *s, const char *system, const char *object,
                         const char *id, int64_t now_ms, json_t **out, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    json_t *acc = json_array();
    *out = NULL;
    if (!acc) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    int rc = stmt_get(s, STMT_ECHO_GET, &st, err);
    if (rc == 0) {
        rc = bind_texts(s, st, 1, (const char *const[]){system, object, id}, 3, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 4, now_ms, err);
    }
    if (rc < 0) {
        stmt_done(st);
        json_decref(acc);
        return rc;
    }
    return collect_rows(s, st, "read echo ledger", add_echo, acc, out, err);
}

int ferry_store_prune_echoes(struct ferry_store *s, int64_t before_ms, size_t limit, int64_t *n,
                             struct ferry_err *err)
{
    return prune_step(s, STMT_PRUNE_ECHOES, "prune echo ledger", before_ms, limit, n, err);
}

int ferry_store_conflict_add(struct ferry_store *s, const struct ferry_conflict *c, int64_t now_ms,
                             struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    if (!c->source_key || !c->target_system || !c->target_object || !c->field || !c->policy ||
        !c->resolution) {
        return ferry_err_set(err, FERRY_EINVAL, "conflict row lacks a key, field or policy");
    }
    int rc = stmt_get(s, STMT_CONFLICT_ADD, &st, err);
    if (rc == 0) {
        rc = bind_int64s(s, st, 1, (const int64_t[]){now_ms, c->job_id}, 2, err);
    }
    if (rc == 0) {
        rc = bind_texts(s, st, 3,
                        (const char *const[]){c->correlation_id, c->mapping, c->source_key,
                                              c->target_system, c->target_object, c->target_id,
                                              c->field, c->synced_value, c->source_value,
                                              c->target_value, c->policy, c->resolution},
                        12, err);
    }
    if (rc == 0) {
        rc = step_done(s, st, "add conflict row", err);
    }
    stmt_done(st);
    return rc;
}

int ferry_store_conflicts_list(struct ferry_store *s, const char *source_key, int64_t since_ms,
                               size_t limit, json_t **out, struct ferry_err *err)
{
    static const char *const cols[] = {
        "id",           "at",         "job_id",        "correlation_id",
        "mapping",      "source_key", "target_system", "target_object",
        "target_id",    "field",      "synced_value",  "source_value",
        "target_value", "policy",     "resolution"};
    sqlite3_stmt *st = NULL;
    *out = NULL;
    int rc = stmt_get(s, source_key ? STMT_CONFLICTS_OF : STMT_CONFLICTS_SINCE, &st, err);
    if (rc == 0) {
        rc =
            source_key ? bind_text(s, st, 1, source_key, err) : bind_int64(s, st, 1, since_ms, err);
    }
    if (rc == 0) {
        rc = bind_int64(s, st, 2, limit_arg(limit), err);
    }
    if (rc == 0) {
        rc = rows_json(s, st, cols, 15, "read conflict rows", out, err);
    }
    stmt_done(st);
    return rc;
}

int ferry_store_prune_conflicts(struct ferry_store *s, int64_t before_ms, size_t limit, int64_t *n,
                                struct ferry_err *err)
{
    return prune_step(s, STMT_PRUNE_CONFLICTS, "prune conflict rows", before_ms, limit, n, err);
}

static void add_group_event(sqlite3_stmt *st, json_t *acc)
{
    const char *text = (const char *)sqlite3_column_text(st, 1);
    json_t *payload = text ? json_loads(text, 0, NULL) : NULL;
    if (!payload) {
        return;
    }
    json_array_append_new(acc, json_pack("{s:I, s:O?, s:O?, s:O?, s:O?, s:I}", "job_id",
                                         (json_int_t)sqlite3_column_int64(st, 0), "object",
                                         json_object_get(payload, "object"), "id",
                                         json_object_get(payload, "id"), "event",
                                         json_object_get(payload, "event"), "event_data",
                                         json_object_get(payload, "event_data"), "at",
                                         (json_int_t)sqlite3_column_int64(st, 2)));
    json_decref(payload);
}

int ferry_store_group_events(struct ferry_store *s, const char *group, int64_t from_ms,
                             int64_t to_ms, int64_t except_id, json_t **out, struct ferry_err *err)
{
    sqlite3_stmt *st = NULL;
    json_t *acc = json_array();
    *out = NULL;
    if (!acc) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    int rc = stmt_get(s, STMT_GROUP_EVENTS, &st, err);
    if (rc == 0) {
        rc = bind_text(s, st, 1, group, err);
    }
    if (rc == 0) {
        rc = bind_int64s(s, st, 2, (const int64_t[]){from_ms, to_ms, except_id}, 3, err);
    }
    if (rc < 0) {
        stmt_done(st);
        json_decref(acc);
        return rc;
    }
    return collect_rows(s, st, "read group events", add_group_event, acc, out, err);
}
