/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the SQLite state store (core/src/store.c): file creation and
 * migrations, the job life cycle with its deduplication window and state
 * guards, links, cursors, audit rows, and the behaviour of two connections on
 * one file. Each test gets a fresh database in its own temporary directory.
 */
/* cmocka 1.1.5 needs these four first, in this order, so keep the formatter off them. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

struct fixture {
    char dir[64];
    char path[128];
    struct ferry_store *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/ferry-test-store-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
    struct ferry_err err = {0};
    if (ferry_store_open(&f->s, f->path, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ferry_store_close(f->s);
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                char p[512];
                snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Enqueues a job with the given dedupe key at `now`; returns its id. */
static int64_t enqueue(struct ferry_store *s, const char *dedupe, int64_t now, bool *inserted)
{
    struct ferry_job_new j = {
        .dedupe_key = dedupe,
        .job_key = "shop:customer:42",
        .kind = "sync",
        .payload = "{\"id\":42}",
        .correlation_id = "corr-1",
        .now_ms = now,
        .dedupe_window_ms = 600000,
    };
    struct ferry_err err = {0};
    int64_t id = -1;
    bool ins = false;
    int rc = ferry_store_job_enqueue(s, &j, &id, &ins, &err);
    assert_int_equal(rc, 0);
    if (inserted) {
        *inserted = ins;
    }
    return id;
}

static int job_state(struct ferry_store *s, int64_t id)
{
    struct ferry_job *j = NULL;
    struct ferry_err err = {0};
    assert_int_equal(ferry_store_job_get(s, id, &j, &err), 0);
    int st = j->state;
    ferry_job_free(j);
    return st;
}

/* A single-row, single-column text answer from a raw connection (for pragmas). */
static void raw_query_text(const char *path, const char *sql, char *out, size_t outsz)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, outsz, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_store_open_creates_private_wal_file(void **state)
{
    struct fixture *f = *state;
    struct stat sb;
    char mode[32];

    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    raw_query_text(f->path, "PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "wal");

    /* A write creates the WAL file, which must be as private as the database. */
    enqueue(f->s, NULL, 1000, NULL);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_store_migrations_idempotent(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    char buf[32];

    int version = ferry_store_schema_version(f->s);
    assert_true(version >= 1);
    raw_query_text(f->path,
                   "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                   " ('jobs', 'links', 'cursors', 'audit')",
                   buf, sizeof(buf));
    assert_string_equal(buf, "4");

    int64_t id = enqueue(f->s, "k1", 1000, NULL);
    ferry_store_close(f->s);
    f->s = NULL;
    /* Reopening must not run a step again (it would fail on CREATE TABLE) nor lose data. */
    assert_int_equal(ferry_store_open(&f->s, f->path, &err), 0);
    assert_int_equal(ferry_store_schema_version(f->s), version);
    assert_int_equal(job_state(f->s, id), FERRY_JOB_PENDING);
    snprintf(buf, sizeof(buf), "%d", version);
    char got[32];
    raw_query_text(f->path, "PRAGMA user_version", got, sizeof(got));
    assert_string_equal(got, buf);
}

/*
 * Migration 9 on a database of version 8: jobs_due keeps pending jobs only,
 * and the next due time still comes from it (JOBS_NEXT_DUE names the index,
 * so a missing or different one fails the query instead of scanning).
 */
static void test_store_migration_9_narrows_jobs_due(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    char buf[160];
    int version = ferry_store_schema_version(f->s);
    assert_true(version >= 9);

    struct ferry_job_new j = {
        .job_key = "shop:customer:7",
        .kind = "sync",
        .payload = "{}",
        .correlation_id = "corr-9",
        .now_ms = 1000,
        .not_before_ms = 5000,
    };
    int64_t later = 0, now = 0;
    assert_int_equal(ferry_store_job_enqueue(f->s, &j, &later, NULL, &err), 0);
    j.job_key = "shop:customer:8";
    j.not_before_ms = 0;
    assert_int_equal(ferry_store_job_enqueue(f->s, &j, &now, NULL, &err), 0);
    ferry_store_close(f->s);
    f->s = NULL;
    raw_exec(f->path, "DROP INDEX jobs_due; CREATE INDEX jobs_due ON jobs (state, next_attempt_at);"
                      " PRAGMA user_version = 8;");

    assert_int_equal(ferry_store_open(&f->s, f->path, &err), 0);
    assert_int_equal(ferry_store_schema_version(f->s), version);
    raw_query_text(f->path, "SELECT sql FROM sqlite_master WHERE name = 'jobs_due'", buf,
                   sizeof(buf));
    assert_string_equal(buf, "CREATE INDEX jobs_due ON jobs (next_attempt_at) WHERE state = 0");
    raw_query_text(f->path, "SELECT COUNT(*) FROM jobs INDEXED BY jobs_due WHERE state = 0", buf,
                   sizeof(buf));
    assert_string_equal(buf, "2");

    int64_t due = 0;
    assert_int_equal(ferry_store_jobs_next_due(f->s, 1000, &due, &err), 0);
    assert_int_equal(due, 5000);
    /* A leased job leaves the index; a retry brings it back with its new time. */
    assert_int_equal(ferry_store_job_lease(f->s, later, 6000, 9000, &err), 0);
    assert_int_equal(ferry_store_jobs_next_due(f->s, 1000, &due, &err), 0);
    assert_int_equal(due, INT64_MAX);
    raw_query_text(f->path, "SELECT COUNT(*) FROM jobs INDEXED BY jobs_due WHERE state = 0", buf,
                   sizeof(buf));
    assert_string_equal(buf, "1");
    assert_int_equal(ferry_store_job_retry(f->s, later, 6000, 7000, "later", &err), 0);
    assert_int_equal(ferry_store_jobs_next_due(f->s, 6000, &due, &err), 0);
    assert_int_equal(due, 7000);
    assert_int_equal(ferry_store_job_lease(f->s, now, 6000, 9000, &err), 0);
    assert_int_equal(ferry_store_job_finish(f->s, now, 6500, &err), 0);
    raw_query_text(f->path, "SELECT COUNT(*) FROM jobs INDEXED BY jobs_due WHERE state = 0", buf,
                   sizeof(buf));
    assert_string_equal(buf, "1");
}

static void test_store_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    char sql[64];
    int version = ferry_store_schema_version(f->s);

    ferry_store_close(f->s);
    f->s = NULL;
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
    raw_exec(f->path, sql);

    struct ferry_store *s = NULL;
    assert_int_equal(ferry_store_open(&s, f->path, &err), FERRY_EDB);
    assert_null(s);
    assert_int_equal(err.code, FERRY_EDB);
    char want[128];
    snprintf(want, sizeof(want), "database schema version %d is newer than this ferry (%d)",
             version + 1, version);
    assert_non_null(strstr(err.msg, want));
}

static void test_store_enqueue_dedupe_window(void **state)
{
    struct fixture *f = *state;
    bool ins = false;

    int64_t a = enqueue(f->s, "evt-1", 1000000, &ins);
    assert_true(ins);
    assert_true(a > 0);

    /* Same key inside the 600 s window: the existing job, nothing inserted. */
    int64_t b = enqueue(f->s, "evt-1", 1000000 + 599999, &ins);
    assert_false(ins);
    assert_int_equal(b, a);

    /* Another key is independent. */
    int64_t c = enqueue(f->s, "evt-2", 1000000 + 1, &ins);
    assert_true(ins);
    assert_true(c > a);

    /* Past the window the same event is new work again. */
    int64_t d = enqueue(f->s, "evt-1", 1000000 + 600001, &ins);
    assert_true(ins);
    assert_true(d > c);
    /* ... and now the newest copy is the one a duplicate reports. */
    int64_t e = enqueue(f->s, "evt-1", 1000000 + 600002, &ins);
    assert_false(ins);
    assert_int_equal(e, d);

    /* No key: never deduplicated, even at the same instant. */
    int64_t g = enqueue(f->s, NULL, 5, &ins);
    assert_true(ins);
    int64_t h = enqueue(f->s, NULL, 5, &ins);
    assert_true(ins);
    assert_true(h > g);

    int64_t counts[FERRY_JOB_NSTATES];
    struct ferry_err err = {0};
    assert_int_equal(ferry_store_job_counts(f->s, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 5);

    struct ferry_job *j = NULL;
    assert_int_equal(ferry_store_job_get(f->s, a, &j, &err), 0);
    assert_string_equal(j->dedupe_key, "evt-1");
    assert_string_equal(j->job_key, "shop:customer:42");
    assert_string_equal(j->kind, "sync");
    assert_string_equal(j->payload, "{\"id\":42}");
    assert_string_equal(j->correlation_id, "corr-1");
    assert_int_equal(j->attempts, 0);
    assert_int_equal(j->created_at_ms, 1000000);
    assert_int_equal(j->next_attempt_at_ms, 1000000);
    assert_null(j->last_error);
    ferry_job_free(j);
    j = NULL;
    assert_int_equal(ferry_store_job_get(f->s, h, &j, &err), 0);
    assert_null(j->dedupe_key);
    ferry_job_free(j);

    assert_int_equal(ferry_store_job_get(f->s, 9999, &j, &err), FERRY_ENOTFOUND);
    assert_null(j);
}

static void test_store_pending_in_id_order(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        ids[i] = enqueue(f->s, NULL, 100 - i, NULL); /* later jobs with earlier clocks */
    }
    assert_int_equal(ferry_store_job_lease(f->s, ids[1], 200, 300, &err), 0);

    struct ferry_job **jobs = NULL;
    size_t n = 0;
    assert_int_equal(ferry_store_jobs_pending(f->s, 0, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(jobs[0]->id, ids[0]);
    assert_int_equal(jobs[1]->id, ids[2]);
    assert_int_equal(jobs[2]->id, ids[3]);
    assert_int_equal(jobs[3]->id, ids[4]);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(jobs[i]->state, FERRY_JOB_PENDING);
        ferry_job_free(jobs[i]);
    }
    free(jobs);

    assert_int_equal(ferry_store_jobs_pending(f->s, ids[2], 2, &jobs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(jobs[0]->id, ids[3]);
    assert_int_equal(jobs[1]->id, ids[4]);
    for (size_t i = 0; i < n; i++) {
        ferry_job_free(jobs[i]);
    }
    free(jobs);

    assert_int_equal(ferry_store_jobs_pending(f->s, ids[4], 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 0);
    free(jobs);

    /* More rows than the first allocation holds, still in order and complete. */
    for (int i = 0; i < 30; i++) {
        enqueue(f->s, NULL, 500, NULL);
    }
    assert_int_equal(ferry_store_jobs_pending(f->s, ids[4], 1000, &jobs, &n, &err), 0);
    assert_int_equal(n, 30);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(jobs[i]->id, ids[4] + 1 + (int64_t)i);
        ferry_job_free(jobs[i]);
    }
    free(jobs);
}

static void test_store_job_transitions(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct ferry_job *j = NULL;
    int64_t id = enqueue(f->s, NULL, 1000, NULL);

    /* Only a running job can finish or be retried. */
    assert_int_equal(ferry_store_job_finish(f->s, id, 1001, &err), FERRY_EBUSY);
    assert_non_null(strstr(err.msg, "pending"));
    assert_int_equal(ferry_store_job_retry(f->s, id, 1001, 2000, "x", &err), FERRY_EBUSY);

    assert_int_equal(ferry_store_job_lease(f->s, id, 1002, 31002, &err), 0);
    assert_int_equal(job_state(f->s, id), FERRY_JOB_RUNNING);
    assert_int_equal(ferry_store_job_lease(f->s, id, 1003, 31003, &err), FERRY_EBUSY);

    assert_int_equal(ferry_store_job_retry(f->s, id, 1004, 5000, "HTTP 503", &err), 0);
    assert_int_equal(ferry_store_job_get(f->s, id, &j, &err), 0);
    assert_int_equal(j->state, FERRY_JOB_PENDING);
    assert_int_equal(j->attempts, 1);
    assert_int_equal(j->next_attempt_at_ms, 5000);
    assert_string_equal(j->last_error, "HTTP 503");
    assert_int_equal(j->updated_at_ms, 1004);
    ferry_job_free(j);
    j = NULL;

    assert_int_equal(ferry_store_job_lease(f->s, id, 5001, 35001, &err), 0);
    assert_int_equal(ferry_store_job_finish(f->s, id, 5002, &err), 0);
    assert_int_equal(ferry_store_job_get(f->s, id, &j, &err), 0);
    assert_int_equal(j->state, FERRY_JOB_DONE);
    assert_int_equal(j->attempts, 2);
    ferry_job_free(j);
    j = NULL;

    /* A finished job is final. */
    assert_int_equal(ferry_store_job_finish(f->s, id, 5003, &err), FERRY_EBUSY);
    assert_int_equal(ferry_store_job_lease(f->s, id, 5003, 6000, &err), FERRY_EBUSY);
    assert_int_equal(ferry_store_job_bury(f->s, id, 5003, "late", &err), FERRY_EBUSY);
    assert_non_null(strstr(err.msg, "done"));

    /* Bury from pending and from running; a dead job stays dead. */
    int64_t p = enqueue(f->s, NULL, 6000, NULL);
    int64_t r = enqueue(f->s, NULL, 6000, NULL);
    assert_int_equal(ferry_store_job_bury(f->s, p, 6001, "bad payload", &err), 0);
    assert_int_equal(ferry_store_job_lease(f->s, r, 6001, 9000, &err), 0);
    assert_int_equal(ferry_store_job_bury(f->s, r, 6002, "HTTP 400", &err), 0);
    assert_int_equal(ferry_store_job_get(f->s, r, &j, &err), 0);
    assert_int_equal(j->state, FERRY_JOB_DEAD);
    assert_string_equal(j->last_error, "HTTP 400");
    ferry_job_free(j);
    assert_int_equal(ferry_store_job_bury(f->s, p, 6003, "again", &err), FERRY_EBUSY);
    assert_int_equal(ferry_store_job_lease(f->s, p, 6003, 9000, &err), FERRY_EBUSY);

    /* Unknown ids are not found, not busy. */
    assert_int_equal(ferry_store_job_lease(f->s, 9999, 1, 2, &err), FERRY_ENOTFOUND);
    assert_int_equal(ferry_store_job_finish(f->s, 9999, 1, &err), FERRY_ENOTFOUND);
    assert_int_equal(ferry_store_job_retry(f->s, 9999, 1, 2, "x", &err), FERRY_ENOTFOUND);
    assert_int_equal(ferry_store_job_bury(f->s, 9999, 1, "x", &err), FERRY_ENOTFOUND);
    assert_int_equal(err.code, FERRY_ENOTFOUND);
}

static void test_store_requeue_running(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    int64_t a = enqueue(f->s, NULL, 10, NULL);
    int64_t b = enqueue(f->s, NULL, 10, NULL);
    int64_t c = enqueue(f->s, NULL, 10, NULL);
    int64_t d = enqueue(f->s, NULL, 10, NULL);
    assert_int_equal(ferry_store_job_lease(f->s, a, 11, 100, &err), 0);
    assert_int_equal(ferry_store_job_lease(f->s, b, 11, 100, &err), 0);
    assert_int_equal(ferry_store_job_lease(f->s, c, 11, 100, &err), 0);
    assert_int_equal(ferry_store_job_finish(f->s, c, 12, &err), 0);

    int64_t n = -1;
    assert_int_equal(ferry_store_jobs_requeue_running(f->s, 50, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(job_state(f->s, a), FERRY_JOB_PENDING);
    assert_int_equal(job_state(f->s, b), FERRY_JOB_PENDING);
    assert_int_equal(job_state(f->s, c), FERRY_JOB_DONE);
    assert_int_equal(job_state(f->s, d), FERRY_JOB_PENDING);
    /* A requeued job can be leased again. */
    assert_int_equal(ferry_store_job_lease(f->s, a, 51, 100, &err), 0);

    assert_int_equal(ferry_store_jobs_requeue_running(f->s, 60, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ferry_store_jobs_requeue_running(f->s, 61, &n, &err), 0);
    assert_int_equal(n, 0);
}

static void test_store_counts_and_dead_since(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    int64_t counts[FERRY_JOB_NSTATES];
    int64_t ids[6];

    assert_int_equal(ferry_store_job_counts(f->s, counts, &err), 0);
    for (int i = 0; i < FERRY_JOB_NSTATES; i++) {
        assert_int_equal(counts[i], 0);
    }
    for (int i = 0; i < 6; i++) {
        ids[i] = enqueue(f->s, NULL, 100, NULL);
    }
    assert_int_equal(ferry_store_job_lease(f->s, ids[0], 101, 200, &err), 0);
    assert_int_equal(ferry_store_job_lease(f->s, ids[1], 101, 200, &err), 0);
    assert_int_equal(ferry_store_job_finish(f->s, ids[1], 102, &err), 0);
    assert_int_equal(ferry_store_job_bury(f->s, ids[2], 110, "old failure", &err), 0);
    assert_int_equal(ferry_store_job_bury(f->s, ids[3], 200, "new failure", &err), 0);

    assert_int_equal(ferry_store_job_counts(f->s, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 2);
    assert_int_equal(counts[FERRY_JOB_RUNNING], 1);
    assert_int_equal(counts[FERRY_JOB_DONE], 1);
    assert_int_equal(counts[FERRY_JOB_DEAD], 2);

    int64_t n = -1;
    assert_int_equal(ferry_store_jobs_dead_since(f->s, 0, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ferry_store_jobs_dead_since(f->s, 150, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ferry_store_jobs_dead_since(f->s, 201, &n, &err), 0);
    assert_int_equal(n, 0);

    assert_string_equal(ferry_job_state_name(FERRY_JOB_PENDING), "pending");
    assert_string_equal(ferry_job_state_name(FERRY_JOB_RUNNING), "running");
    assert_string_equal(ferry_job_state_name(FERRY_JOB_DONE), "done");
    assert_string_equal(ferry_job_state_name(FERRY_JOB_DEAD), "dead");
    assert_string_equal(ferry_job_state_name(42), "unknown");
}

static void test_store_links(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct ferry_link_key key = {"shop", "customer", "42", "crm", "contact"};
    struct ferry_link got = {0};

    assert_int_equal(ferry_store_link_get(f->s, &key, &got, &err), FERRY_ENOTFOUND);
    assert_null(got.dst_id);

    struct ferry_link put = {.dst_id = "C-1",
                             .etag = NULL,
                             .content_hash = "h1",
                             .fields = "{\"Email\":\"a@example.com\"}"};
    assert_int_equal(ferry_store_link_put(f->s, &key, &put, 1000, &err), 0);
    assert_int_equal(ferry_store_link_get(f->s, &key, &got, &err), 0);
    assert_string_equal(got.dst_id, "C-1");
    assert_null(got.etag);
    assert_string_equal(got.content_hash, "h1");
    assert_string_equal(got.fields, "{\"Email\":\"a@example.com\"}");
    assert_int_equal(got.updated_at_ms, 1000);
    ferry_link_clear(&got);
    assert_null(got.dst_id);

    /* Put on the same key replaces every value, NULLs included. */
    struct ferry_link put2 = {
        .dst_id = "C-2", .etag = "W/\"7\"", .content_hash = NULL, .fields = NULL};
    assert_int_equal(ferry_store_link_put(f->s, &key, &put2, 2000, &err), 0);
    assert_int_equal(ferry_store_link_get(f->s, &key, &got, &err), 0);
    assert_string_equal(got.dst_id, "C-2");
    assert_string_equal(got.etag, "W/\"7\"");
    assert_null(got.content_hash);
    assert_null(got.fields);
    assert_int_equal(got.updated_at_ms, 2000);
    ferry_link_clear(&got);

    /* A different destination object is a separate link. */
    struct ferry_link_key key2 = {"shop", "customer", "42", "crm", "account"};
    struct ferry_link put3 = {.dst_id = "A-9"};
    assert_int_equal(ferry_store_link_put(f->s, &key2, &put3, 3000, &err), 0);
    assert_int_equal(ferry_store_link_get(f->s, &key, &got, &err), 0);
    assert_string_equal(got.dst_id, "C-2");
    ferry_link_clear(&got);

    char *src = NULL;
    assert_int_equal(
        ferry_store_link_find_by_dst(f->s, "crm", "contact", "C-2", "shop", "customer", &src, &err),
        0);
    assert_string_equal(src, "42");
    free(src);
    src = NULL;
    /* The replaced destination id no longer points back. */
    assert_int_equal(
        ferry_store_link_find_by_dst(f->s, "crm", "contact", "C-1", "shop", "customer", &src, &err),
        FERRY_ENOTFOUND);
    assert_null(src);
    assert_int_equal(
        ferry_store_link_find_by_dst(f->s, "crm", "contact", "C-2", "shop", "order", &src, &err),
        FERRY_ENOTFOUND);
    assert_int_equal(
        ferry_store_link_find_by_dst(f->s, "crm", "account", "A-9", "shop", "customer", &src, &err),
        0);
    assert_string_equal(src, "42");
    free(src);

    /* Two records linked to one destination: the one linked last answers. */
    struct ferry_link_key key3 = {"shop", "customer", "43", "crm", "account"};
    assert_int_equal(ferry_store_link_put(f->s, &key3, &put3, 4000, &err), 0);
    assert_int_equal(
        ferry_store_link_find_by_dst(f->s, "crm", "account", "A-9", "shop", "customer", &src, &err),
        0);
    assert_string_equal(src, "43");
    free(src);
    assert_int_equal(ferry_store_link_put(f->s, &key2, &put3, 5000, &err), 0);
    assert_int_equal(
        ferry_store_link_find_by_dst(f->s, "crm", "account", "A-9", "shop", "customer", &src, &err),
        0);
    assert_string_equal(src, "42");
    free(src);
}

static int64_t enqueue_in(struct ferry_store *s, const char *job_key, const char *payload,
                          int64_t now, int lane)
{
    struct ferry_err err = {0};
    int64_t id = 0;
    struct ferry_job_new j = {.job_key = job_key,
                              .kind = "sync",
                              .payload = payload,
                              .correlation_id = "c",
                              .now_ms = now,
                              .lane = lane};
    assert_int_equal(ferry_store_job_enqueue(s, &j, &id, NULL, &err), 0);
    return id;
}

static int64_t enqueue_event(struct ferry_store *s, const char *job_key, const char *payload,
                             int64_t now)
{
    return enqueue_in(s, job_key, payload, now, FERRY_LANE_REALTIME);
}

static int64_t oldest_pending(struct ferry_store *s)
{
    struct ferry_err err = {0};
    json_t *doc = NULL;
    assert_int_equal(ferry_store_ops_snapshot(s, &doc, &err), 0);
    json_t *at = json_object_get(doc, "oldest_pending_at");
    int64_t v = at ? json_integer_value(at) : -1;
    json_decref(doc);
    return v;
}

static void test_store_oldest_pending_across_lanes(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    char buf[32];

    /* Without jobs_state_id (migration 8), which every state change paid for. */
    raw_query_text(f->path,
                   "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'"
                   " AND name = 'jobs_state_id'",
                   buf, sizeof(buf));
    assert_string_equal(buf, "0");

    assert_int_equal(oldest_pending(f->s), -1);
    int64_t first = enqueue_in(f->s, "k:1", "{}", 100, FERRY_LANE_REALTIME);
    enqueue_in(f->s, "k:2", "{}", 200, FERRY_LANE_BACKFILL);
    enqueue_in(f->s, "k:3", "{}", 300, FERRY_LANE_RETRY);
    enqueue_in(f->s, "k:4", "{}", 400, FERRY_LANE_REALTIME);
    assert_int_equal(oldest_pending(f->s), 100);
    /* A running job is not pending; the oldest is then in another lane. */
    assert_int_equal(ferry_store_job_lease(f->s, first, 500, 9000, &err), 0);
    assert_int_equal(oldest_pending(f->s), 200);
    assert_int_equal(ferry_store_job_finish(f->s, first, 600, &err), 0);
    assert_int_equal(oldest_pending(f->s), 200);
}

static void test_store_coalesce_takes_only_covered_jobs(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    const char *upd = "{\"event\":\"updated\"}";
    int64_t n = -1;

    int64_t by = enqueue_event(f->s, "shop:customer:1", upd, 1000);
    int64_t later = enqueue_event(f->s, "shop:customer:1", upd, 1001);
    int64_t too_late = enqueue_event(f->s, "shop:customer:1", upd, 3000);
    int64_t other_event = enqueue_event(f->s, "shop:customer:1", "{\"event\":\"deleted\"}", 1002);
    int64_t detail =
        enqueue_event(f->s, "shop:customer:1", "{\"event\":\"updated\",\"event_data\":{}}", 1003);
    int64_t other_key = enqueue_event(f->s, "shop:customer:2", upd, 1004);
    assert_int_equal(ferry_store_job_lease(f->s, by, 1500, 9000, &err), 0);
    assert_int_equal(ferry_store_job_finish(f->s, by, 2000, &err), 0);

    /* One read tells whether either follow-up of a success has work. */
    bool dead = true, queued = false;
    assert_int_equal(ferry_store_job_followups(f->s, "shop:customer:1", by, "updated", 2000, &dead,
                                               &queued, &err),
                     0);
    assert_false(dead);
    assert_true(queued);
    assert_int_equal(
        ferry_store_job_followups(f->s, "shop:customer:1", by, NULL, 2000, &dead, &queued, &err),
        0);
    assert_false(queued);
    assert_int_equal(ferry_store_job_followups(f->s, "shop:customer:1", by, "updated", 1000, &dead,
                                               &queued, &err),
                     0);
    assert_false(queued); /* queued after the job read its record */

    assert_int_equal(
        ferry_store_jobs_coalesce(f->s, "shop:customer:1", "updated", by, 2000, 2001, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(job_state(f->s, later), FERRY_JOB_DONE);
    assert_int_equal(job_state(f->s, too_late), FERRY_JOB_PENDING);
    assert_int_equal(job_state(f->s, other_event), FERRY_JOB_PENDING);
    assert_int_equal(job_state(f->s, detail), FERRY_JOB_PENDING);
    assert_int_equal(job_state(f->s, other_key), FERRY_JOB_PENDING);

    /* Nothing left to cover: none, whatever the last write changed. */
    assert_int_equal(ferry_store_job_lease(f->s, other_key, 2002, 9000, &err), 0);
    assert_int_equal(
        ferry_store_jobs_coalesce(f->s, "shop:customer:1", "updated", by, 2000, 2003, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ferry_store_job_followups(f->s, "shop:customer:1", by, "updated", 2000, &dead,
                                               &queued, &err),
                     0);
    assert_false(queued);

    /* An older dead letter of the record is for the supersede step. */
    assert_int_equal(ferry_store_job_bury(f->s, other_event, 2004, "bad", &err), 0);
    int64_t later_success = enqueue_event(f->s, "shop:customer:1", upd, 2005);
    assert_int_equal(ferry_store_job_followups(f->s, "shop:customer:1", later_success, "updated",
                                               2005, &dead, &queued, &err),
                     0);
    assert_true(dead);
    assert_int_equal(ferry_store_job_followups(f->s, "shop:customer:1", other_event, NULL, 2005,
                                               &dead, &queued, &err),
                     0);
    assert_false(dead); /* only dead letters older than the job */
}

static void test_store_cursors(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    char *v = (char *)"sentinel";

    assert_int_equal(ferry_store_cursor_get(f->s, "shop", "customer", &v, &err), 0);
    assert_null(v);
    assert_int_equal(
        ferry_store_cursor_put(f->s, "shop", "customer", "2024-01-01T00:00:00Z", 10, &err), 0);
    assert_int_equal(ferry_store_cursor_put(f->s, "shop", "order", "17", 10, &err), 0);
    assert_int_equal(ferry_store_cursor_get(f->s, "shop", "customer", &v, &err), 0);
    assert_string_equal(v, "2024-01-01T00:00:00Z");
    free(v);
    assert_int_equal(
        ferry_store_cursor_put(f->s, "shop", "customer", "2024-02-01T00:00:00Z", 20, &err), 0);
    assert_int_equal(ferry_store_cursor_get(f->s, "shop", "customer", &v, &err), 0);
    assert_string_equal(v, "2024-02-01T00:00:00Z");
    free(v);
    assert_int_equal(ferry_store_cursor_get(f->s, "shop", "order", &v, &err), 0);
    assert_string_equal(v, "17");
    free(v);
    assert_int_equal(ferry_store_cursor_get(f->s, "other", "customer", &v, &err), 0);
    assert_null(v);
}

static void test_store_audit(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    int64_t n = -1;

    assert_int_equal(ferry_store_audit_count(f->s, "http", NULL, &n, &err), 0);
    assert_int_equal(n, 0);

    struct ferry_audit_row row = {
        .job_id = 1,
        .correlation_id = "corr-1",
        .connector = "crm",
        .step = "http",
        .method = "POST",
        .url = "https://crm.example.com/contacts",
        .status = 201,
        .request = "{}",
        .response = "{}",
        .duration_ms = 12,
        .at_ms = 1000,
    };
    assert_int_equal(ferry_store_audit_add(f->s, &row, &err), 0);
    assert_int_equal(ferry_store_audit_add(f->s, &row, &err), 0);
    row.method = "GET";
    assert_int_equal(ferry_store_audit_add(f->s, &row, &err), 0);
    struct ferry_audit_row map = {.correlation_id = "corr-1", .step = "map", .detail = "ok"};
    assert_int_equal(ferry_store_audit_add(f->s, &map, &err), 0);

    assert_int_equal(ferry_store_audit_count(f->s, "http", NULL, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ferry_store_audit_count(f->s, "http", "POST", &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ferry_store_audit_count(f->s, "http", "PATCH", &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ferry_store_audit_count(f->s, "map", NULL, &n, &err), 0);
    assert_int_equal(n, 1);

    char buf[32];
    raw_query_text(f->path, "SELECT COUNT(*) FROM audit WHERE job_id IS NULL", buf, sizeof(buf));
    assert_string_equal(buf, "1");
}

static void test_store_two_connections(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct ferry_store *reader = NULL;
    int64_t counts[FERRY_JOB_NSTATES];
    bool ins = false;

    assert_int_equal(ferry_store_open(&reader, f->path, &err), 0);
    assert_int_equal(ferry_store_job_counts(reader, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 0);

    int64_t id = enqueue(f->s, "evt-9", 1000, NULL);
    assert_int_equal(ferry_store_job_counts(reader, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 1);

    /* Deduplication holds across connections. */
    int64_t dup = enqueue(reader, "evt-9", 1001, &ins);
    assert_false(ins);
    assert_int_equal(dup, id);

    /* A lease taken on one connection is seen by the other's state guard. */
    assert_int_equal(ferry_store_job_lease(reader, id, 1002, 2000, &err), 0);
    assert_int_equal(ferry_store_job_lease(f->s, id, 1002, 2000, &err), FERRY_EBUSY);
    ferry_store_close(reader);
}

static void test_store_batch_commit(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct ferry_store *other = NULL;
    int64_t counts[FERRY_JOB_NSTATES];
    bool ins = false;

    assert_int_equal(ferry_store_open(&other, f->path, &err), 0);

    assert_false(ferry_store_in_transaction(f->s));
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    assert_true(ferry_store_in_transaction(f->s));
    int64_t a = enqueue(f->s, "b-1", 1000, &ins);
    assert_true(ins);
    enqueue(f->s, "b-2", 1000, &ins);
    assert_true(ins);
    enqueue(f->s, NULL, 1000, &ins);
    assert_true(ins);
    /* The batch sees its own rows, duplicates included. */
    int64_t dup = enqueue(f->s, "b-1", 1001, &ins);
    assert_false(ins);
    assert_int_equal(dup, a);

    /* Nothing is visible elsewhere before the commit. */
    assert_int_equal(ferry_store_job_counts(other, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 0);
    assert_int_equal(ferry_store_commit(f->s, &err), 0);
    assert_int_equal(ferry_store_job_counts(other, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 3);
    assert_int_equal(ferry_store_commit(f->s, &err), FERRY_EINVAL);

    /* A rolled-back batch leaves no trace, and the connection works afterwards. */
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    enqueue(f->s, "b-3", 1002, &ins);
    assert_true(ins);
    ferry_store_rollback(f->s);
    assert_int_equal(ferry_store_job_counts(other, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 3);
    enqueue(f->s, "b-3", 1003, &ins);
    assert_true(ins);
    assert_int_equal(ferry_store_job_counts(other, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 4);
    ferry_store_close(other);
}

static void test_store_nested_transactions(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct ferry_store *other = NULL;
    int64_t counts[FERRY_JOB_NSTATES];
    bool ins = false;

    assert_int_equal(ferry_store_open(&other, f->path, &err), 0);
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    enqueue(f->s, "n-1", 1000, &ins);

    /* An inner transaction's rollback undoes only its own writes. */
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    enqueue(f->s, "n-2", 1000, &ins);
    ferry_store_rollback(f->s);
    assert_true(ferry_store_in_transaction(f->s));

    /* An inner commit keeps its writes for the outer one, unseen until then. */
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    enqueue(f->s, "n-3", 1000, &ins);
    assert_int_equal(ferry_store_commit(f->s, &err), 0);
    assert_int_equal(ferry_store_commit(f->s, &err), 0);
    assert_true(ferry_store_in_transaction(f->s));
    assert_int_equal(ferry_store_job_counts(other, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 0);
    /* The outer transaction sees its own inner work; n-2 was rolled back. */
    assert_int_equal(ferry_store_job_counts(f->s, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 2);

    assert_int_equal(ferry_store_commit(f->s, &err), 0);
    assert_false(ferry_store_in_transaction(f->s));
    assert_int_equal(ferry_store_job_counts(other, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 2);
    enqueue(other, "n-2", 1001, &ins);
    assert_true(ins);
    enqueue(other, "n-3", 1001, &ins);
    assert_false(ins);

    /* The outer rollback takes committed inner work with it. */
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    enqueue(f->s, "n-4", 1002, &ins);
    assert_int_equal(ferry_store_commit(f->s, &err), 0);
    ferry_store_rollback(f->s);
    assert_false(ferry_store_in_transaction(f->s));
    assert_int_equal(ferry_store_job_counts(other, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 3);
    ferry_store_close(other);
}

/* An audit row of job_id with the given detail, added at `at`. */
static void add_step(struct ferry_store *s, int64_t job_id, const char *detail, int64_t at)
{
    struct ferry_err err = {0};
    struct ferry_audit_row row = {.job_id = job_id,
                                  .correlation_id = "corr-h",
                                  .connector = "crm",
                                  .step = "write",
                                  .detail = detail,
                                  .at_ms = at};
    assert_int_equal(ferry_store_audit_add(s, &row, &err), 0);
}

static int64_t count_rows(const char *path, const char *sql)
{
    char buf[32];
    raw_query_text(path, sql, buf, sizeof(buf));
    return strtoll(buf, NULL, 10);
}

static void test_store_held_audit_lands_with_the_commit(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    char buf[256];
    const char *all = "SELECT COUNT(*) FROM audit WHERE correlation_id = 'corr-h'";

    int64_t id = enqueue(f->s, "h-1", 1000, NULL);
    assert_int_equal(ferry_store_job_lease(f->s, id, 1001, 5000, &err), 0);
    assert_int_equal(ferry_store_audit_hold(f->s, true, &err), 0);
    char detail[32];
    for (int i = 0; i < 13; i++) {
        snprintf(detail, sizeof(detail), "step %d", i);
        add_step(f->s, id, detail, 1002);
    }
    /* Held rows are on no connection's disk yet, this one's included. */
    assert_int_equal(count_rows(f->path, all), 0);
    int64_t n = -1;
    assert_int_equal(ferry_store_audit_count(f->s, "write", NULL, &n, &err), 0);
    assert_int_equal(n, 0);

    /* A rolled-back transaction keeps them for the next commit. */
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    ferry_store_rollback(f->s);
    assert_int_equal(count_rows(f->path, all), 0);

    /* The job's end: its outcome and its trail become visible in one commit. */
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    assert_int_equal(ferry_store_job_finish(f->s, id, 1003, &err), 0);
    raw_query_text(f->path, "SELECT state FROM jobs WHERE id = 1", buf, sizeof(buf));
    assert_string_equal(buf, "1");
    assert_int_equal(count_rows(f->path, all), 0);
    assert_int_equal(ferry_store_commit(f->s, &err), 0);
    raw_query_text(f->path, "SELECT state FROM jobs WHERE id = 1", buf, sizeof(buf));
    assert_string_equal(buf, "2");
    assert_int_equal(count_rows(f->path, all), 13);
    /* In the order they were added, every column as given. */
    raw_query_text(f->path,
                   "SELECT group_concat(detail, ',') FROM (SELECT detail FROM audit"
                   " WHERE correlation_id = 'corr-h' ORDER BY id)",
                   buf, sizeof(buf));
    assert_string_equal(buf, "step 0,step 1,step 2,step 3,step 4,step 5,step 6,step 7,step 8,"
                             "step 9,step 10,step 11,step 12");
    raw_query_text(f->path,
                   "SELECT COUNT(*) FROM audit WHERE job_id = 1 AND connector = 'crm'"
                   " AND step = 'write' AND at = 1002 AND method IS NULL AND status = 0",
                   buf, sizeof(buf));
    assert_string_equal(buf, "13");

    /* Turning holding off writes what is held; rows are then written at once. */
    add_step(f->s, id, "late", 1004);
    assert_int_equal(count_rows(f->path, all), 13);
    assert_int_equal(ferry_store_audit_hold(f->s, false, &err), 0);
    assert_int_equal(count_rows(f->path, all), 14);
    add_step(f->s, id, "direct", 1005);
    assert_int_equal(count_rows(f->path, all), 15);

    /* Holding is bounded: a job with very many steps writes them as it goes. */
    assert_int_equal(ferry_store_audit_hold(f->s, true, &err), 0);
    for (int i = 0; i < 300; i++) {
        add_step(f->s, id, "many", 1006);
    }
    int64_t written = count_rows(f->path, "SELECT COUNT(*) FROM audit WHERE detail = 'many'");
    assert_true(written > 0 && written < 300);
    assert_int_equal(ferry_store_audit_hold(f->s, false, &err), 0);
    assert_int_equal(count_rows(f->path, "SELECT COUNT(*) FROM audit WHERE detail = 'many'"), 300);

    /* A close with rows still held writes them. */
    assert_int_equal(ferry_store_audit_hold(f->s, true, &err), 0);
    add_step(f->s, id, "at close", 1007);
    ferry_store_close(f->s);
    f->s = NULL;
    assert_int_equal(count_rows(f->path, "SELECT COUNT(*) FROM audit WHERE detail = 'at close'"),
                     1);
}

static void test_store_job_end_records_the_mapping(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    char buf[128];

    int64_t a = enqueue(f->s, "e-1", 1000, NULL);
    int64_t b = enqueue(f->s, "e-2", 1000, NULL);
    assert_int_equal(ferry_store_job_lease(f->s, a, 1001, 5000, &err), 0);
    assert_int_equal(ferry_store_job_lease(f->s, b, 1001, 5000, &err), 0);

    struct ferry_job_end retry = {.state = FERRY_JOB_PENDING,
                                  .next_attempt_at_ms = 3000,
                                  .error = "HTTP 503",
                                  .mapping_hash = "hash-1"};
    assert_int_equal(ferry_store_job_end(f->s, a, 1002, &retry, &err), 0);
    raw_query_text(f->path,
                   "SELECT state || ' ' || next_attempt_at || ' ' || last_error || ' ' ||"
                   " mapping_hash FROM jobs WHERE id = 1",
                   buf, sizeof(buf));
    assert_string_equal(buf, "0 3000 HTTP 503 hash-1");
    /* The same guards as finish/retry/bury. */
    struct ferry_job_end done = {.state = FERRY_JOB_DONE, .mapping_hash = "hash-2"};
    assert_int_equal(ferry_store_job_end(f->s, a, 1003, &done, &err), FERRY_EBUSY);
    assert_int_equal(ferry_store_job_end(f->s, 99, 1003, &done, &err), FERRY_ENOTFOUND);
    struct ferry_job_end running = {.state = FERRY_JOB_RUNNING};
    assert_int_equal(ferry_store_job_end(f->s, a, 1003, &running, &err), FERRY_EINVAL);

    assert_int_equal(ferry_store_job_lease(f->s, a, 3001, 9000, &err), 0);
    assert_int_equal(ferry_store_job_end(f->s, a, 3002, &done, &err), 0);
    raw_query_text(f->path, "SELECT state || ' ' || mapping_hash FROM jobs WHERE id = 1", buf,
                   sizeof(buf));
    assert_string_equal(buf, "2 hash-2");

    /* Without a hash the one recorded stays. */
    assert_int_equal(ferry_store_job_note_mapping(f->s, b, "hash-3", &err), 0);
    struct ferry_job_end dead = {.state = FERRY_JOB_DEAD, .error = "HTTP 400"};
    assert_int_equal(ferry_store_job_end(f->s, b, 1004, &dead, &err), 0);
    raw_query_text(
        f->path, "SELECT state || ' ' || last_error || ' ' || mapping_hash FROM jobs WHERE id = 2",
        buf, sizeof(buf));
    assert_string_equal(buf, "3 HTTP 400 hash-3");
}

struct racer {
    const char *path;
    int inserted;
    int rc; /* first failure, 0 if none */
};

/* Enqueues the same dedupe keys as its twin on its own connection. */
static void *race_enqueue(void *arg)
{
    struct racer *r = arg;
    struct ferry_store *s = NULL;
    struct ferry_err err = {0};
    r->rc = ferry_store_open(&s, r->path, &err);
    for (int i = 0; r->rc == 0 && i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "race-%d", i);
        struct ferry_job_new j = {.dedupe_key = key,
                                  .job_key = "k",
                                  .kind = "sync",
                                  .payload = "{}",
                                  .correlation_id = "c",
                                  .now_ms = 1000,
                                  .dedupe_window_ms = 600000};
        bool ins = false;
        r->rc = ferry_store_job_enqueue(s, &j, NULL, &ins, &err);
        r->inserted += ins ? 1 : 0;
    }
    ferry_store_close(s);
    return NULL;
}

static void test_store_concurrent_enqueue_dedupes(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct racer a = {.path = f->path}, b = {.path = f->path};
    pthread_t ta, tb;

    /* The check and the insert share one write lock, so racing intakes of the
     * same events must insert each exactly once and never fail with busy. */
    assert_int_equal(pthread_create(&ta, NULL, race_enqueue, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, race_enqueue, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(a.inserted + b.inserted, 100);
    int64_t counts[FERRY_JOB_NSTATES];
    assert_int_equal(ferry_store_job_counts(f->s, counts, &err), 0);
    assert_int_equal(counts[FERRY_JOB_PENDING], 100);
}

static void test_store_set_synchronous(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};

    assert_int_equal(ferry_store_set_synchronous(f->s, false, &err), 0);
    enqueue(f->s, NULL, 1, NULL);
    assert_int_equal(ferry_store_set_synchronous(f->s, true, &err), 0);
    assert_int_equal(ferry_store_begin(f->s, &err), 0);
    assert_int_equal(ferry_store_set_synchronous(f->s, false, &err), FERRY_EINVAL);
    assert_int_equal(ferry_store_commit(f->s, &err), 0);
}

static void test_store_open_fails_cleanly(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct ferry_store *s = NULL;
    char path[192];
    snprintf(path, sizeof(path), "%s/missing-dir/state.db", f->dir);
    int rc = ferry_store_open(&s, path, &err);
    assert_true(rc < 0);
    assert_null(s);
    assert_non_null(strstr(err.msg, "missing-dir"));
}

static int64_t enqueue_lane(struct ferry_store *s, const char *key, int lane, int64_t now)
{
    struct ferry_job_new j = {.job_key = key,
                              .kind = "sync",
                              .payload = "{}",
                              .correlation_id = "c",
                              .now_ms = now,
                              .lane = lane};
    struct ferry_err err = {0};
    int64_t id = -1;
    assert_int_equal(ferry_store_job_enqueue(s, &j, &id, NULL, &err), 0);
    return id;
}

/* A take callback that records the keys it saw and answers from a script. */
struct take_script {
    const char *skip;
    const char *last;
    int seen;
};

static enum ferry_job_take take_scripted(void *ud, const char *job_key, int lane)
{
    struct take_script *t = ud;
    (void)lane;
    t->seen++;
    if (strcmp(job_key, t->skip) == 0) {
        return FERRY_JOB_SKIP;
    }
    return strcmp(job_key, t->last) == 0 ? FERRY_JOB_TAKE_LAST : FERRY_JOB_TAKE;
}

/* Skipped rows are not returned, and nothing is read after the last taken one. */
static void test_store_runnable_take_reads_only_what_it_needs(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct ferry_job **jobs = NULL;
    size_t n = 0;

    int64_t a = enqueue_in(f->s, "k:a", "{}", 100, FERRY_LANE_REALTIME);
    enqueue_in(f->s, "k:b", "{}", 100, FERRY_LANE_REALTIME);
    int64_t c = enqueue_in(f->s, "k:c", "{}", 100, FERRY_LANE_BACKFILL);
    enqueue_in(f->s, "k:d", "{}", 100, FERRY_LANE_BACKFILL);

    struct take_script t = {.skip = "k:b", .last = "k:c"};
    assert_int_equal(
        ferry_store_jobs_runnable_take(f->s, 200, 10, take_scripted, &t, &jobs, &n, &err), 0);
    assert_int_equal(t.seen, 3);
    assert_int_equal(n, 2);
    assert_int_equal(jobs[0]->id, a);
    assert_int_equal(jobs[1]->id, c);
    assert_string_equal(jobs[1]->payload, "{}");
    for (size_t i = 0; i < n; i++) {
        ferry_job_free(jobs[i]);
    }
    free(jobs);

    /* The limit counts the rows read, skipped ones too. */
    struct take_script u = {.skip = "k:b", .last = "none"};
    assert_int_equal(
        ferry_store_jobs_runnable_take(f->s, 200, 2, take_scripted, &u, &jobs, &n, &err), 0);
    assert_int_equal(u.seen, 2);
    assert_int_equal(n, 1);
    assert_int_equal(jobs[0]->id, a);
    ferry_job_free(jobs[0]);
    free(jobs);
}

static void test_store_runnable_lanes_and_key_order(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct ferry_job **jobs = NULL;
    size_t n = 0;
    /* A backfill of two keys, then a webhook for a third and one for a backfilled key. */
    int64_t b1 = enqueue_lane(f->s, "k1", FERRY_LANE_BACKFILL, 100);
    int64_t b2 = enqueue_lane(f->s, "k2", FERRY_LANE_BACKFILL, 100);
    int64_t w3 = enqueue_lane(f->s, "k3", FERRY_LANE_REALTIME, 100);
    int64_t w1 = enqueue_lane(f->s, "k1", FERRY_LANE_REALTIME, 100);

    assert_int_equal(ferry_store_jobs_runnable(f->s, 200, 10, &jobs, &n, &err), 0);
    /* Real-time first; k1's webhook waits behind k1's older backfill job. */
    assert_int_equal(n, 3);
    assert_int_equal(jobs[0]->id, w3);
    assert_int_equal(jobs[1]->id, b1);
    assert_int_equal(jobs[2]->id, b2);
    for (size_t i = 0; i < n; i++) {
        ferry_job_free(jobs[i]);
    }
    free(jobs);

    /* b1 fails and waits for its retry: k1 (and its webhook) stay held, the
     * retry lane is due later, and that time is reported. */
    assert_int_equal(ferry_store_job_lease(f->s, b1, 200, 10000, &err), 0);
    assert_int_equal(ferry_store_job_retry(f->s, b1, 200, 5000, "later", &err), 0);
    assert_int_equal(ferry_store_jobs_runnable(f->s, 300, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(jobs[0]->id, w3);
    assert_int_equal(jobs[1]->id, b2);
    for (size_t i = 0; i < n; i++) {
        ferry_job_free(jobs[i]);
    }
    free(jobs);
    int64_t due = 0;
    assert_int_equal(ferry_store_jobs_next_due(f->s, 300, &due, &err), 0);
    assert_int_equal(due, 5000);

    /* Once due, the retry comes before backfill; w1 still waits for it. */
    assert_int_equal(ferry_store_jobs_runnable(f->s, 6000, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(jobs[0]->id, w3);
    assert_int_equal(jobs[1]->id, b1);
    assert_int_equal(jobs[1]->lane, FERRY_LANE_RETRY);
    assert_int_equal(jobs[2]->id, b2);
    for (size_t i = 0; i < n; i++) {
        ferry_job_free(jobs[i]);
    }
    free(jobs);
    (void)w1;
}

static void test_store_kv_counters_and_webhook_scopes(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    char *v = NULL;
    int64_t at = 0;
    json_t *j = NULL;
    assert_int_equal(ferry_store_kv_get(f->s, "crm", "metadata", &v, &at, &err), FERRY_ENOTFOUND);
    assert_int_equal(ferry_store_kv_put(f->s, "crm", "metadata", "<edmx/>", 10, &err), 0);
    assert_int_equal(ferry_store_kv_put(f->s, "crm", "metadata", "<edmx v2/>", 20, &err), 0);
    assert_int_equal(ferry_store_kv_get(f->s, "crm", "metadata", &v, &at, &err), 0);
    assert_string_equal(v, "<edmx v2/>");
    assert_int_equal(at, 20);
    free(v);
    /* Instances do not see each other's values. */
    assert_int_equal(ferry_store_kv_get(f->s, "shop", "metadata", &v, NULL, &err), FERRY_ENOTFOUND);

    assert_int_equal(ferry_store_counter_add(f->s, "missed", 2, 1, &err), 0);
    assert_int_equal(ferry_store_counter_add(f->s, "missed", 3, 2, &err), 0);
    assert_int_equal(ferry_store_counters(f->s, &j, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "missed")), 5);
    json_decref(j);

    assert_int_equal(ferry_store_webhook_seen(f->s, "shop", "store/customer/created", 50, 1, &err),
                     0);
    assert_int_equal(ferry_store_webhook_seen(f->s, "shop", "store/customer/created", 40, 2, &err),
                     0);
    assert_int_equal(ferry_store_webhooks_seen(f->s, &j, &err), 0);
    assert_int_equal(json_array_size(j), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "last_at")), 50);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "count")), 3);
    json_decref(j);
}

/* ferry status lists the "quota:" values connectors stored; a prefix must not
 * match other keys, and a value that is not JSON is still shown as text. */
static void test_store_kv_list_by_prefix(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    json_t *j = NULL;
    assert_int_equal(ferry_store_kv_put(f->s, "shop", "quota:store", "{\"remaining\":7}", 30, &err),
                     0);
    assert_int_equal(ferry_store_kv_put(f->s, "crm", "quota:api", "not json", 31, &err), 0);
    assert_int_equal(ferry_store_kv_put(f->s, "crm", "metadata", "<edmx/>", 32, &err), 0);
    assert_int_equal(ferry_store_kv_list(f->s, "quota:", &j, &err), 0);
    assert_int_equal(json_array_size(j), 2);
    size_t i;
    json_t *row;
    int seen = 0;
    json_array_foreach(j, i, row)
    {
        const char *key = json_string_value(json_object_get(row, "key"));
        assert_non_null(key);
        if (strcmp(key, "quota:store") == 0) {
            assert_string_equal(json_string_value(json_object_get(row, "instance")), "shop");
            assert_int_equal(
                json_integer_value(json_object_get(json_object_get(row, "value"), "remaining")), 7);
            assert_int_equal(json_integer_value(json_object_get(row, "updated_at")), 30);
            seen |= 1;
        } else {
            assert_string_equal(key, "quota:api");
            assert_string_equal(json_string_value(json_object_get(row, "value")), "not json");
            seen |= 2;
        }
    }
    assert_int_equal(seen, 3);
    json_decref(j);
    assert_int_equal(ferry_store_kv_list(f->s, "nothing:", &j, &err), 0);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
}

static void test_store_echo_ledger_renews_expires_and_prunes(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    json_t *j = NULL;
    int64_t n = 0;
    assert_int_equal(
        ferry_store_echo_put(f->s, "crm", "Contacts", "C1", "Phone", "h1", "shop", 100, 200, &err),
        0);
    assert_int_equal(
        ferry_store_echo_put(f->s, "crm", "Contacts", "C1", "Email", "h2", "shop", 100, 500, &err),
        0);
    /* The same value again renews its row; another value of the field is a row of its own. */
    assert_int_equal(
        ferry_store_echo_put(f->s, "crm", "Contacts", "C1", "Phone", "h1", "shop", 150, 300, &err),
        0);
    assert_int_equal(
        ferry_store_echo_put(f->s, "crm", "Contacts", "C1", "Phone", "h3", "shop", 160, 220, &err),
        0);
    assert_int_equal(ferry_store_echo_get(f->s, "crm", "Contacts", "C1", 210, &j, &err), 0);
    assert_int_equal(json_array_size(j), 3);
    json_decref(j);
    /* Expired rows are not read, and pruning removes them. */
    assert_int_equal(ferry_store_echo_get(f->s, "crm", "Contacts", "C1", 250, &j, &err), 0);
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
    assert_int_equal(ferry_store_echo_get(f->s, "crm", "Contacts", "C1", 400, &j, &err), 0);
    assert_int_equal(json_array_size(j), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "field")), "Email");
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "origin")), "shop");
    json_decref(j);
    assert_int_equal(ferry_store_prune_echoes(f->s, 400, 100, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ferry_store_echo_get(f->s, "crm", "Contacts", "C2", 0, &j, &err), 0);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
}

static void test_store_conflict_rows_listed_and_pruned(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    json_t *j = NULL;
    int64_t n = 0;
    struct ferry_conflict c = {.job_id = 7,
                               .correlation_id = "c0ffee",
                               .mapping = "customer_to_contact",
                               .source_key = "shop:customer:42",
                               .target_system = "crm",
                               .target_object = "Contacts",
                               .target_id = "C1",
                               .field = "LastName",
                               .synced_value = "{\"LastName\":\"A\"}",
                               .source_value = "{\"LastName\":\"B\"}",
                               .target_value = "{\"LastName\":\"C\"}",
                               .policy = "park",
                               .resolution = "parked"};
    assert_int_equal(ferry_store_conflict_add(f->s, &c, 1000, &err), 0);
    c.source_key = "shop:customer:43";
    c.field = "Phone";
    assert_int_equal(ferry_store_conflict_add(f->s, &c, 2000, &err), 0);
    c.policy = NULL;
    assert_int_equal(ferry_store_conflict_add(f->s, &c, 2000, &err), FERRY_EINVAL);
    assert_int_equal(ferry_store_conflicts_list(f->s, "shop:customer:42", 0, 10, &j, &err), 0);
    assert_int_equal(json_array_size(j), 1);
    json_t *row = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(row, "field")), "LastName");
    assert_int_equal(json_integer_value(json_object_get(row, "job_id")), 7);
    assert_string_equal(json_string_value(json_object_get(row, "target_value")),
                        "{\"LastName\":\"C\"}");
    json_decref(j);
    /* All since a time, newest first. */
    assert_int_equal(ferry_store_conflicts_list(f->s, NULL, 0, 10, &j, &err), 0);
    assert_int_equal(json_array_size(j), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "field")), "Phone");
    json_decref(j);
    assert_int_equal(ferry_store_prune_conflicts(f->s, 1500, 10, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ferry_store_conflicts_list(f->s, NULL, 0, 10, &j, &err), 0);
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
}

/* A webhook job's intake step comes from its own row; a polled job has none,
 * and a row an older ferry stored is not shown twice. */
static void test_store_intake_step_from_the_job_row(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    json_t *rows = NULL;
    struct ferry_job_new hook = {.job_key = "shop:customer:1",
                                 .kind = "sync",
                                 .payload = "{\"source\":\"shop\",\"event\":\"created\","
                                            "\"scope\":\"store/customer/created\"}",
                                 .correlation_id = "corr-1",
                                 .now_ms = 100,
                                 .lane = FERRY_LANE_REALTIME};
    int64_t h = 0, p = enqueue_lane(f->s, "shop:customer:2", FERRY_LANE_BACKFILL, 110);
    assert_int_equal(ferry_store_job_enqueue(f->s, &hook, &h, NULL, &err), 0);
    struct ferry_audit_row fetch = {.job_id = h,
                                    .correlation_id = "corr-1",
                                    .connector = "shop",
                                    .step = "http",
                                    .method = "GET",
                                    .status = 200,
                                    .at_ms = 120};
    assert_int_equal(ferry_store_audit_add(f->s, &fetch, &err), 0);

    assert_int_equal(ferry_store_audit_for_job(f->s, h, &rows, &err), 0);
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "step")),
                        "intake");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "detail")),
                        "store/customer/created");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "step")),
                        "http");
    json_decref(rows);
    assert_int_equal(ferry_store_audit_for_job(f->s, p, &rows, &err), 0);
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);

    /* By correlation and since a time: the intake step first, with its job id. */
    assert_int_equal(ferry_store_audit_select(f->s, "corr-1", 0, 10, &rows, &err), 0);
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "step")),
                        "intake");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "job_id")), h);
    json_decref(rows);
    assert_int_equal(ferry_store_audit_select(f->s, NULL, 105, 10, &rows, &err), 0);
    assert_int_equal(json_array_size(rows), 1); /* the intake (at 100) is before 105 */
    json_decref(rows);

    /* An intake row stored by an older ferry stands alone. */
    struct ferry_audit_row old = {.job_id = h,
                                  .correlation_id = "corr-1",
                                  .connector = "shop",
                                  .step = "intake",
                                  .at_ms = 100};
    assert_int_equal(ferry_store_audit_add(f->s, &old, &err), 0);
    assert_int_equal(ferry_store_audit_for_job(f->s, h, &rows, &err), 0);
    assert_int_equal(json_array_size(rows), 2);
    json_decref(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_open_creates_private_wal_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_migrations_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_migration_9_narrows_jobs_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_enqueue_dedupe_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_pending_in_id_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_job_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_requeue_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_counts_and_dead_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_cursors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_coalesce_takes_only_covered_jobs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_oldest_pending_across_lanes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_two_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_batch_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_nested_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_held_audit_lands_with_the_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_job_end_records_the_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_concurrent_enqueue_dedupes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_set_synchronous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_open_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_runnable_lanes_and_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_runnable_take_reads_only_what_it_needs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_kv_counters_and_webhook_scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_kv_list_by_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_intake_step_from_the_job_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_echo_ledger_renews_expires_and_prunes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_conflict_rows_listed_and_pruned, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
