/* SPDX-License-Identifier: MIT */
/*
 * Tests for `ferry status` (core/src/cmd_status.c): exit statuses for help,
 * usage errors and failures, and the exact table and JSON output for a
 * database filled through the store. The command runs in-process with its
 * stdout and stderr redirected to files in the test's temporary directory.
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
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "store.h"
#include "util.h"

struct fixture {
    char dir[64];
    char config[128];
    char db[128];
    char out[8192];
    char errout[8192];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/ferry-test-status-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->config, sizeof(f->config), "%s/ferry.lua", f->dir);
    snprintf(f->db, sizeof(f->db), "%s/state.db", f->dir);
    /* state.path is relative: the loader resolves it against the file's directory. */
    FILE *c = fopen(f->config, "w");
    if (!c) {
        rmdir(f->dir);
        free(f);
        return -1;
    }
    fputs("return {\n"
          "  state = { path = \"state.db\" },\n"
          "  connectors = { src = { plugin = \"none\" } },\n"
          "}\n",
          c);
    fclose(c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
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

static void slurp(const char *path, char *buf, size_t size)
{
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    size_t n = fread(buf, 1, size - 1, in);
    buf[n] = '\0';
    fclose(in);
    unlink(path);
}

/* Runs `ferry status ARGS...` (NULL-terminated) with its output captured into f. */
static int run_status(struct fixture *f, ...)
{
    char *argv[16];
    int argc = 0;
    va_list ap;
    argv[argc++] = (char *)"status";
    va_start(ap, f);
    for (char *a = va_arg(ap, char *); a && argc < 15; a = va_arg(ap, char *)) {
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;

    char outp[160], errp[160];
    snprintf(outp, sizeof(outp), "%s/stdout.txt", f->dir);
    snprintf(errp, sizeof(errp), "%s/stderr.txt", f->dir);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved_out >= 0 && saved_err >= 0 && fo >= 0 && fe >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = ferry_cmd_status(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(fo);
    close(fe);
    close(saved_out);
    close(saved_err);
    slurp(outp, f->out, sizeof(f->out));
    slurp(errp, f->errout, sizeof(f->errout));
    return rc;
}

/* 3 pending, 0 running, 10 done, 1 dead. */
static void fill_db(struct fixture *f)
{
    struct ferry_store *s = NULL;
    struct ferry_err err = {0};
    struct ferry_job_new j = {
        .job_key = "k", .kind = "sync", .payload = "{}", .correlation_id = "c", .now_ms = 1};
    int64_t id = 0;
    assert_int_equal(ferry_store_open(&s, f->db, &err), 0);
    for (int i = 0; i < 14; i++) {
        assert_int_equal(ferry_store_job_enqueue(s, &j, &id, NULL, &err), 0);
        if (i < 10) {
            assert_int_equal(ferry_store_job_lease(s, id, 2, 3, &err), 0);
            assert_int_equal(ferry_store_job_finish(s, id, 2, &err), 0);
        } else if (i == 10) {
            assert_int_equal(ferry_store_job_bury(s, id, 2, "bad", &err), 0);
        }
    }
    ferry_store_close(s);
}

static void test_cmd_status_help(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_status(f, "--help", NULL), FERRY_EXIT_OK);
    assert_non_null(strstr(f->out, "usage: ferry status"));
    assert_string_equal(f->errout, "");
}

static void test_cmd_status_usage_errors(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_status(f, NULL), FERRY_EXIT_USAGE);
    assert_non_null(strstr(f->errout, "-c CONFIG"));
    assert_int_equal(run_status(f, "-c", NULL), FERRY_EXIT_USAGE);
    assert_int_equal(run_status(f, "-c", f->config, "--bogus", NULL), FERRY_EXIT_USAGE);
    assert_non_null(strstr(f->errout, "--bogus"));
    assert_string_equal(f->out, "");
}

static void test_cmd_status_missing_config(void **state)
{
    struct fixture *f = *state;
    char path[160];
    snprintf(path, sizeof(path), "%s/absent.lua", f->dir);
    assert_int_equal(run_status(f, "-c", path, NULL), FERRY_EXIT_FAILURE);
    assert_non_null(strstr(f->errout, "ferry status: "));
    assert_string_equal(f->out, "");
}

static void test_cmd_status_missing_database(void **state)
{
    struct fixture *f = *state;
    struct stat sb;
    assert_int_equal(run_status(f, "-c", f->config, NULL), FERRY_EXIT_FAILURE);
    assert_non_null(strstr(f->errout, "does not exist"));
    /* One line only. */
    assert_ptr_equal(strchr(f->errout, '\n'), f->errout + strlen(f->errout) - 1);
    /* A status query must not leave an empty database behind. */
    assert_int_not_equal(stat(f->db, &sb), 0);
}

static void test_cmd_status_table(void **state)
{
    struct fixture *f = *state;
    fill_db(f);
    assert_int_equal(run_status(f, "-c", f->config, NULL), FERRY_EXIT_OK);
    static const char head[] = "jobs\n"
                               "  pending   3\n"
                               "  running   0\n"
                               "  done     10\n"
                               "  dead      1\n"
                               "queue (pending by lane)\n"
                               "  realtime   3\n"
                               "  retry      0\n"
                               "  backfill   0\n"
                               "  oldest pending job: ";
    assert_memory_equal(f->out, head, sizeof(head) - 1);
    /* The jobs were created at 1 ms after the epoch: days old. */
    assert_non_null(strstr(f->out, "d"));
    assert_non_null(strstr(f->out, " old\ndead letters (open): 1\n"));
}

static void test_cmd_status_json(void **state)
{
    struct fixture *f = *state;
    fill_db(f);
    char opt[160];
    snprintf(opt, sizeof(opt), "--config=%s", f->config);
    assert_int_equal(run_status(f, opt, "--json", NULL), FERRY_EXIT_OK);
    /* The long-standing key comes first and keeps its shape. */
    static const char head[] = "{\"jobs\":{\"pending\":3,\"running\":0,\"done\":10,\"dead\":1},";
    assert_memory_equal(f->out, head, sizeof(head) - 1);
    json_t *doc = json_loads(f->out, 0, NULL);
    assert_non_null(doc);
    json_t *lanes = json_object_get(doc, "lanes");
    assert_int_equal(json_integer_value(json_object_get(lanes, "realtime")), 3);
    assert_int_equal(json_integer_value(json_object_get(lanes, "retry")), 0);
    assert_int_equal(json_integer_value(json_object_get(lanes, "backfill")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "dead_letters_open")), 1);
    assert_true(json_integer_value(json_object_get(doc, "oldest_pending_age_s")) > 86400);
    assert_int_equal(json_array_size(json_object_get(doc, "cursors")), 0);
    assert_null(json_object_get(doc, "counters"));
    assert_null(json_object_get(doc, "webhooks"));
    json_decref(doc);
}

/* Cursors appear with their lag behind now, in the table and in JSON. */
static void test_cmd_status_cursors_and_lanes(void **state)
{
    struct fixture *f = *state;
    struct ferry_store *st = NULL;
    struct ferry_err err = {0};
    char when[21];
    fill_db(f);
    assert_int_equal(ferry_store_open(&st, f->db, &err), 0);
    ferry_iso8601_format(ferry_now_ms() - 90 * 1000, when);
    assert_int_equal(ferry_store_cursor_put(st, "shop", "customer", when, 1, &err), 0);
    struct ferry_job_new j = {.job_key = "shop:customer:9",
                              .kind = "sync",
                              .payload = "{}",
                              .correlation_id = "c9",
                              .now_ms = ferry_now_ms(),
                              .lane = FERRY_LANE_BACKFILL};
    assert_int_equal(ferry_store_job_enqueue(st, &j, NULL, NULL, &err), 0);
    ferry_store_close(st);
    assert_int_equal(run_status(f, "-c", f->config, "--json", NULL), FERRY_EXIT_OK);
    json_t *doc = json_loads(f->out, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "lanes"), "backfill")),
                     1);
    json_t *c = json_array_get(json_object_get(doc, "cursors"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "system")), "shop");
    assert_string_equal(json_string_value(json_object_get(c, "value")), when);
    json_int_t lag = json_integer_value(json_object_get(c, "lag_s"));
    assert_true(lag >= 89 && lag <= 120);
    json_decref(doc);
    assert_int_equal(run_status(f, "-c", f->config, NULL), FERRY_EXIT_OK);
    assert_non_null(strstr(f->out, "  backfill   1\n"));
    assert_non_null(strstr(f->out, "cursors (newest change seen, lag behind now)\n"));
    assert_non_null(strstr(f->out, "lag 1m3"));
}

static void test_cmd_status_counters_and_webhooks(void **state)
{
    struct fixture *f = *state;
    struct ferry_store *st = NULL;
    struct ferry_err err = {0};
    fill_db(f);
    assert_int_equal(ferry_store_open(&st, f->db, &err), 0);
    assert_int_equal(ferry_store_counter_add(st, "webhook_missed_total:shop:customer", 2, 1, &err),
                     0);
    assert_int_equal(ferry_store_webhook_seen(st, "shop", "store/customer/created", 1000, 1, &err),
                     0);
    ferry_store_close(st);
    assert_int_equal(run_status(f, "-c", f->config, "--json", NULL), FERRY_EXIT_OK);
    json_t *doc = json_loads(f->out, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "counters"),
                                                        "webhook_missed_total:shop:customer")),
                     2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(doc, "webhooks"), 0), "scope")),
                        "store/customer/created");
    json_decref(doc);
    assert_int_equal(run_status(f, "-c", f->config, NULL), FERRY_EXIT_OK);
    assert_non_null(strstr(f->out, "webhook_missed_total:shop:customer"));
    assert_non_null(strstr(f->out, "store/customer/created"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cmd_status_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_status_counters_and_webhooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_status_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_status_missing_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_status_missing_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_status_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_status_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_status_cursors_and_lanes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
