/* SPDX-License-Identifier: MIT */
/*
 * Tests for the admin listener (core/src/admin.c): the metrics text built
 * from a state database with known content (jobs by state, lanes, oldest
 * pending age, dead letters, cursors and their lag, webhook silence, missed
 * webhooks), readiness with and without a drain, and the listener itself on
 * a real loop: /metrics, /readyz, /healthz, 404, answered from the
 * threadpool, then a clean stop with every handle closed.
 */
/* cmocka 1.1.5 needs these four first, in this order, so keep the formatter off them. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "admin.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

struct fixture {
    char dir[64];
    char db[128];
    int64_t now;
};

static void rm(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    unlink(p);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/ferry-test-admin-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/state.db", f->dir);
    f->now = ferry_now_ms();
    ferry_log_set_level(FERRY_LOG_ERROR);
    ferry_metrics_global_reset();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rm(f->dir, "state.db");
    rm(f->dir, "state.db-wal");
    rm(f->dir, "state.db-shm");
    rmdir(f->dir);
    free(f);
    return 0;
}

/*
 * 2 realtime pending (oldest 30 s old), 1 backfill pending, 1 done, 1 open
 * dead letter; a cursor 5 minutes behind; a webhook scope silent for 90 s;
 * 3 missed webhooks.
 */
static void fill(struct fixture *f)
{
    struct ferry_store *s = NULL;
    struct ferry_err err = {0};
    int64_t id = 0;
    char when[21];
    assert_int_equal(ferry_store_open(&s, f->db, &err), 0);
    struct ferry_job_new j = {.kind = "sync", .payload = "{}", .correlation_id = "c"};
    const char *keys[] = {"shop:customer:1", "shop:customer:2", "shop:customer:3",
                          "shop:customer:4", "shop:order:5"};
    int lanes[] = {FERRY_LANE_REALTIME, FERRY_LANE_REALTIME, FERRY_LANE_BACKFILL,
                   FERRY_LANE_REALTIME, FERRY_LANE_REALTIME};
    int64_t ages[] = {30000, 10000, 5000, 1000, 1000};
    for (int i = 0; i < 5; i++) {
        j.job_key = keys[i];
        j.lane = lanes[i];
        j.now_ms = f->now - ages[i];
        assert_int_equal(ferry_store_job_enqueue(s, &j, &id, NULL, &err), 0);
        if (i == 3) {
            assert_int_equal(ferry_store_job_lease(s, id, f->now, f->now + 1000, &err), 0);
            assert_int_equal(ferry_store_job_finish(s, id, f->now, &err), 0);
        } else if (i == 4) {
            assert_int_equal(ferry_store_job_bury(s, id, f->now, "bad", &err), 0);
        }
    }
    ferry_iso8601_format(f->now - 300000, when);
    assert_int_equal(ferry_store_cursor_put(s, "shop", "customer", when, f->now, &err), 0);
    assert_int_equal(
        ferry_store_webhook_seen(s, "shop", "store/customer/created", f->now - 90000, 1, &err), 0);
    assert_int_equal(
        ferry_store_counter_add(s, "webhook_missed_total:shop:customer", 3, f->now, &err), 0);
    ferry_store_close(s);
}

/* The value of the first line starting with `prefix` (a series), or -1. */
static double sample(const char *text, const char *prefix)
{
    char pat[256];
    snprintf(pat, sizeof(pat), "\n%s ", prefix);
    const char *p = strstr(text, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

static void test_admin_metrics_from_database(void **state)
{
    struct fixture *f = *state;
    struct ferry_store *s = NULL;
    struct ferry_err err = {0};
    char *text = NULL;
    fill(f);
    assert_int_equal(ferry_store_open(&s, f->db, &err), 0);
    assert_int_equal(ferry_admin_metrics_text(s, NULL, f->now, &text, &err), 0);
    ferry_store_close(s);
    assert_true(sample(text, "ferry_jobs{state=\"pending\"}") == 3);
    assert_true(sample(text, "ferry_jobs{state=\"done\"}") == 1);
    assert_true(sample(text, "ferry_jobs{state=\"dead\"}") == 1);
    assert_true(sample(text, "ferry_jobs{state=\"running\"}") == 0);
    assert_true(sample(text, "ferry_queue_depth{lane=\"realtime\"}") == 2);
    assert_true(sample(text, "ferry_queue_depth{lane=\"retry\"}") == 0);
    assert_true(sample(text, "ferry_queue_depth{lane=\"backfill\"}") == 1);
    assert_true(sample(text, "ferry_oldest_pending_age_seconds") == 30);
    assert_true(sample(text, "ferry_dead_letters_open") == 1);
    /* The cursor has whole seconds: 300 s and the milliseconds it lost. */
    double lag = sample(text, "ferry_poll_lag_seconds{connector=\"shop\",object=\"customer\"}");
    assert_true(lag >= 300 && lag < 301);
    assert_true(sample(text, "ferry_webhook_silence_seconds{connector=\"shop\","
                             "scope=\"store/customer/created\"}") == 90);
    assert_true(sample(text, "ferry_webhook_missed_total{connector=\"shop\","
                             "object=\"customer\"}") == 3);
    assert_non_null(strstr(text, "# TYPE ferry_job_latency_seconds histogram\n"));
    free(text);
}

static void test_admin_readiness(void **state)
{
    struct fixture *f = *state;
    struct ferry_store *s = NULL;
    struct ferry_err err = {0};
    json_t *doc = NULL;
    bool ready = false;
    assert_int_equal(ferry_store_open(&s, f->db, &err), 0);
    assert_int_equal(ferry_admin_readiness(s, NULL, false, &doc, &ready, &err), 0);
    assert_true(ready);
    assert_true(json_is_true(json_object_get(doc, "ready")));
    assert_true(json_is_true(
        json_object_get(json_object_get(json_object_get(doc, "checks"), "database"), "ok")));
    json_decref(doc);
    assert_int_equal(ferry_admin_readiness(s, NULL, true, &doc, &ready, &err), 0);
    assert_false(ready);
    assert_false(json_is_true(
        json_object_get(json_object_get(json_object_get(doc, "checks"), "draining"), "ok")));
    json_decref(doc);
    ferry_store_close(s);
    /* No database at all. */
    assert_int_equal(ferry_admin_readiness(NULL, NULL, false, &doc, &ready, &err), 0);
    assert_false(ready);
    json_decref(doc);
}

/* ---- the listener on a loop ---- */

struct client {
    int port;
    char path[64];
    char *resp;
    size_t len;
    atomic_int done;
    uv_async_t *wake;
    pthread_t thread;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct sockaddr_in sa;
    char req[256];
    uv_ip4_addr("127.0.0.1", c->port, &sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        struct timeval tv = {.tv_sec = 8};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        int n = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", c->path);
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
            char buf[8192];
            ssize_t got;
            while ((got = recv(fd, buf, sizeof(buf), 0)) > 0) {
                char *p = realloc(c->resp, c->len + (size_t)got + 1);
                if (!p) {
                    abort();
                }
                memcpy(p + c->len, buf, (size_t)got);
                c->resp = p;
                c->len += (size_t)got;
                c->resp[c->len] = '\0';
            }
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    atomic_store(&c->done, 1);
    uv_async_send(c->wake);
    return NULL;
}

static void on_wake(uv_async_t *h)
{
    (void)h;
}

static bool g_timed_out;

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    g_timed_out = true;
}

/* GET path on the admin port while the loop runs; the response text (caller frees). */
static char *get(uv_loop_t *loop, uv_async_t *wake, uv_timer_t *dog, int port, const char *path)
{
    struct client c = {.port = port, .wake = wake};
    snprintf(c.path, sizeof(c.path), "%s", path);
    atomic_init(&c.done, 0);
    assert_int_equal(pthread_create(&c.thread, NULL, client_main, &c), 0);
    g_timed_out = false;
    uv_timer_start(dog, on_watchdog, 8000, 0);
    while (!atomic_load(&c.done) && !g_timed_out) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_timer_stop(dog);
    pthread_join(c.thread, NULL);
    assert_false(g_timed_out);
    assert_non_null(c.resp);
    return c.resp;
}

static void on_stopped(void *ud)
{
    *(int *)ud += 1;
}

static void test_admin_listener_serves_and_stops(void **state)
{
    struct fixture *f = *state;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t dog;
    struct ferry_admin *a = NULL;
    struct ferry_err err = {0};
    int stopped = 0;
    fill(f);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_async_init(&loop, &wake, on_wake), 0);
    assert_int_equal(uv_timer_init(&loop, &dog), 0);
    struct ferry_admin_options opt = {.address = "127.0.0.1", .port = 0, .state_path = f->db};
    assert_int_equal(ferry_admin_start(&a, &loop, &opt, &err), 0);
    int port = ferry_admin_port(a);
    assert_true(port > 0);

    char *r = get(&loop, &wake, &dog, port, "/metrics");
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r, "\r\n\r\n# HELP ferry_build_info"));
    assert_non_null(strstr(r, "\nferry_jobs{state=\"pending\"} 3\n"));
    assert_non_null(strstr(r, "\nferry_ready 1\n"));
    free(r);
    r = get(&loop, &wake, &dog, port, "/readyz");
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "\"ready\":true"));
    free(r);
    ferry_admin_set_draining(a);
    r = get(&loop, &wake, &dog, port, "/readyz");
    assert_non_null(strstr(r, "HTTP/1.1 503"));
    assert_non_null(strstr(r, "\"ready\":false"));
    free(r);
    r = get(&loop, &wake, &dog, port, "/healthz");
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    r = get(&loop, &wake, &dog, port, "/secret");
    assert_non_null(strstr(r, "HTTP/1.1 404"));
    free(r);

    ferry_admin_stop(a, on_stopped, &stopped);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_close((uv_handle_t *)&dog, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(stopped, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admin_metrics_from_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_listener_serves_and_stops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
