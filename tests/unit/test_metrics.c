/* SPDX-License-Identifier: MIT */
/*
 * Tests for the metrics registry (core/src/metrics.c): the exact exposition
 * text of counters, gauges and histograms, label escaping, lookups, updates
 * from several threads at once, and the engine's one-line calls (HTTP calls
 * by class, 429s, the last call per connector for readiness, job outcomes
 * from job keys, webhooks, poll pages).
 */
/* cmocka 1.1.5 needs these four first, in this order, so keep the formatter off them. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "metrics.h"

static int setup(void **state)
{
    struct ferry_metrics *m = NULL;
    if (ferry_metrics_new(&m) != 0) {
        return -1;
    }
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    ferry_metrics_free(*state);
    return 0;
}

/* Labels that do not fit the label text (1 KiB) are dropped, never cut: a cut
 * label would merge two series. */
static void test_metrics_labels_that_do_not_fit(void **state)
{
    struct ferry_metrics *m = *state;
    char key[1100], value[1100];
    assert_int_equal(ferry_metrics_declare(m, "c_total", FERRY_METRIC_COUNTER, "C.", NULL, 0), 0);
    /* k="v" of 1,022 bytes is the longest that fits (the escaper keeps room for a pair). */
    memset(key, 'k', 10);
    key[10] = '\0';
    memset(value, 'v', 1022 - 10 - 3);
    value[1022 - 10 - 3] = '\0';
    ferry_metrics_add(m, "c_total", 1, key, value, NULL);
    assert_true(ferry_metrics_value(m, "c_total", key, value, NULL) == 1);
    /* One byte more in the value, then in the key alone: dropped. */
    value[1022 - 10 - 3] = 'v';
    value[1022 - 10 - 2] = '\0';
    ferry_metrics_add(m, "c_total", 1, key, value, NULL);
    assert_true(ferry_metrics_value(m, "c_total", key, value, NULL) == 0);
    memset(key, 'k', 1022);
    key[1022] = '\0';
    ferry_metrics_add(m, "c_total", 1, key, "", NULL);
    assert_true(ferry_metrics_value(m, "c_total", key, "", NULL) == 0);
    /* A second label after a first that fills the text: dropped too. */
    memset(key, 'k', 1018);
    key[1018] = '\0';
    ferry_metrics_add(m, "c_total", 1, key, "", "b", "", NULL);
    assert_true(ferry_metrics_value(m, "c_total", key, "", "b", "", NULL) == 0);
    ferry_metrics_add(m, "c_total", 1, key, "", NULL);
    assert_true(ferry_metrics_value(m, "c_total", key, "", NULL) == 1);
}

static void test_metrics_exposition_text(void **state)
{
    struct ferry_metrics *m = *state;
    static const double b[] = {0.5, 1, 2.5};
    assert_int_equal(
        ferry_metrics_declare(m, "req_total", FERRY_METRIC_COUNTER, "Requests.", NULL, 0), 0);
    assert_int_equal(ferry_metrics_declare(m, "depth", FERRY_METRIC_GAUGE, "Depth.", NULL, 0), 0);
    assert_int_equal(
        ferry_metrics_declare(m, "lat_seconds", FERRY_METRIC_HISTOGRAM, "Latency.", b, 3), 0);
    /* Declaring again changes nothing. */
    assert_int_equal(ferry_metrics_declare(m, "depth", FERRY_METRIC_COUNTER, "x", NULL, 0), 0);
    ferry_metrics_add(m, "req_total", 2, "conn", "b", "class", "2xx", NULL);
    ferry_metrics_add(m, "req_total", 1, "conn", "a", "class", "5xx", NULL);
    ferry_metrics_add(m, "req_total", 3, "conn", "b", "class", "2xx", NULL);
    ferry_metrics_set(m, "depth", 7, NULL);
    ferry_metrics_set(m, "depth", 4.25, NULL);
    ferry_metrics_observe(m, "lat_seconds", 0.2, "o", "x", NULL);
    ferry_metrics_observe(m, "lat_seconds", 0.7, "o", "x", NULL);
    ferry_metrics_observe(m, "lat_seconds", 9, "o", "x", NULL);
    ferry_metrics_add(m, "undeclared_total", 1, NULL); /* dropped, not fatal */
    char *text = ferry_metrics_render(m);
    assert_non_null(text);
    assert_string_equal(text, "# HELP req_total Requests.\n"
                              "# TYPE req_total counter\n"
                              "req_total{conn=\"a\",class=\"5xx\"} 1\n"
                              "req_total{conn=\"b\",class=\"2xx\"} 5\n"
                              "# HELP depth Depth.\n"
                              "# TYPE depth gauge\n"
                              "depth 4.25\n"
                              "# HELP lat_seconds Latency.\n"
                              "# TYPE lat_seconds histogram\n"
                              "lat_seconds_bucket{o=\"x\",le=\"0.5\"} 1\n"
                              "lat_seconds_bucket{o=\"x\",le=\"1\"} 2\n"
                              "lat_seconds_bucket{o=\"x\",le=\"2.5\"} 2\n"
                              "lat_seconds_bucket{o=\"x\",le=\"+Inf\"} 3\n"
                              "lat_seconds_sum{o=\"x\"} 9.9\n"
                              "lat_seconds_count{o=\"x\"} 3\n");
    free(text);
    assert_true(ferry_metrics_value(m, "req_total", "conn", "b", "class", "2xx", NULL) == 5);
    assert_true(ferry_metrics_value(m, "req_total", "conn", "c", "class", "2xx", NULL) == 0);
    assert_true(ferry_metrics_value(m, "lat_seconds", "o", "x", NULL) == 3);
    assert_true(ferry_metrics_sum(m, "req_total", NULL) == 6);
    assert_true(ferry_metrics_sum(m, "req_total", "class", "2xx", NULL) == 5);
    ferry_metrics_clear(m, "req_total");
    assert_true(ferry_metrics_sum(m, "req_total", NULL) == 0);
}

static void test_metrics_names_and_escaping(void **state)
{
    struct ferry_metrics *m = *state;
    assert_int_equal(ferry_metrics_declare(m, "9bad", FERRY_METRIC_GAUGE, "", NULL, 0),
                     FERRY_EINVAL);
    assert_int_equal(ferry_metrics_declare(m, "bad-name", FERRY_METRIC_GAUGE, "", NULL, 0),
                     FERRY_EINVAL);
    assert_int_equal(ferry_metrics_declare(m, "g", FERRY_METRIC_GAUGE, "G.", NULL, 0), 0);
    ferry_metrics_set(m, "g", 1, "v", "a\"b\\c\nd", NULL);
    char *text = ferry_metrics_render(m);
    assert_non_null(strstr(text, "g{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
    free(text);
    /* A value that is a prefix of another is a different series. */
    ferry_metrics_set(m, "g", 2, "v", "a", NULL);
    assert_true(ferry_metrics_sum(m, "g", "v", "a", NULL) == 2);
}

struct hammer {
    struct ferry_metrics *m;
    const char *label;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 20000; i++) {
        ferry_metrics_add(h->m, "n_total", 1, "t", h->label, NULL);
        ferry_metrics_add(h->m, "n_total", 1, "t", "shared", NULL);
        ferry_metrics_observe(h->m, "h", 0.001, NULL);
    }
    return NULL;
}

static void test_metrics_threads(void **state)
{
    struct ferry_metrics *m = *state;
    static const double b[] = {0.01};
    assert_int_equal(ferry_metrics_declare(m, "n_total", FERRY_METRIC_COUNTER, "N.", NULL, 0), 0);
    assert_int_equal(ferry_metrics_declare(m, "h", FERRY_METRIC_HISTOGRAM, "H.", b, 1), 0);
    pthread_t t[4];
    struct hammer h[4] = {{m, "0"}, {m, "1"}, {m, "2"}, {m, "3"}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    assert_true(ferry_metrics_value(m, "n_total", "t", "shared", NULL) == 80000);
    assert_true(ferry_metrics_value(m, "n_total", "t", "2", NULL) == 20000);
    assert_true(ferry_metrics_value(m, "h", NULL) == 80000);
}

static void test_metrics_engine_calls(void **state)
{
    (void)state;
    struct ferry_metrics *g = ferry_metrics_global();
    struct ferry_metrics_call_state st;
    ferry_metrics_global_reset();
    assert_false(ferry_metrics_last_call("crm", &st));
    ferry_metrics_connector_init("crm");
    assert_true(ferry_metrics_value(g, "ferry_conflicts_total", "connector", "crm", NULL) == 0);
    char *text = ferry_metrics_render(g);
    assert_non_null(strstr(text, "ferry_echo_suppressed_total{connector=\"crm\"} 0\n"));
    assert_non_null(strstr(text, "ferry_build_info{version=\"" FERRY_VERSION "\"} 1\n"));
    free(text);

    ferry_metrics_http_call("crm", 200, 0, 12);
    ferry_metrics_http_call("crm", 429, FERRY_ERATELIMIT, 3);
    assert_true(ferry_metrics_last_call("crm", &st));
    assert_false(st.failing); /* throttled is not broken */
    ferry_metrics_http_call("crm", 503, FERRY_EUNAVAILABLE, 5);
    assert_true(ferry_metrics_last_call("crm", &st));
    assert_true(st.failing);
    assert_int_equal(st.status, 503);
    assert_int_equal(st.calls, 3);
    ferry_metrics_http_call("crm", 0, FERRY_ENETWORK, 30000);
    ferry_metrics_http_call("crm", 404, FERRY_ENOTFOUND, 4);
    assert_true(ferry_metrics_last_call("crm", &st));
    assert_false(st.failing);
    assert_true(ferry_metrics_value(g, "ferry_http_requests_total", "connector", "crm", "class",
                                    "2xx", NULL) == 1);
    assert_true(ferry_metrics_value(g, "ferry_http_requests_total", "connector", "crm", "class",
                                    "4xx", NULL) == 2);
    assert_true(ferry_metrics_value(g, "ferry_http_requests_total", "connector", "crm", "class",
                                    "error", NULL) == 1);
    assert_true(ferry_metrics_value(g, "ferry_http_throttled_total", "connector", "crm", NULL) ==
                1);
    assert_true(ferry_metrics_value(g, "ferry_http_request_duration_seconds", "connector", "crm",
                                    NULL) == 5);

    ferry_metrics_job_outcome("shop:customer:4:2", 0, 1000, 3500);
    ferry_metrics_job_outcome("shop:customer:5", 1, 1000, 1200);
    ferry_metrics_job_outcome("shop:order:6", 2, 1000, 2000);
    ferry_metrics_job_outcome("malformed", 0, 0, 1); /* ignored */
    assert_true(ferry_metrics_value(g, "ferry_jobs_processed_total", "connector", "shop", "object",
                                    "customer", "outcome", "done", NULL) == 1);
    assert_true(ferry_metrics_value(g, "ferry_job_retries_total", "connector", "shop", "object",
                                    "customer", NULL) == 1);
    assert_true(ferry_metrics_value(g, "ferry_dead_letters_total", "connector", "shop", "object",
                                    "order", NULL) == 1);
    /* Latency is observed for final outcomes only: 2.5 s and 1 s. */
    assert_true(ferry_metrics_sum(g, "ferry_job_latency_seconds", NULL) == 2);
    text = ferry_metrics_render(g);
    assert_non_null(strstr(text, "ferry_job_latency_seconds_sum{connector=\"shop\","
                                 "object=\"customer\"} 2.5\n"));
    free(text);

    ferry_metrics_webhook("shop", 2, 1);
    ferry_metrics_webhook("shop", 1, 0);
    assert_true(
        ferry_metrics_value(g, "ferry_webhooks_received_total", "connector", "shop", NULL) == 2);
    assert_true(ferry_metrics_value(g, "ferry_webhook_events_total", "connector", "shop", "result",
                                    "queued", NULL) == 3);
    json_t *page = json_pack("{s:[{},{},{}], s:n}", "items", "next");
    ferry_metrics_poll_page("shop", "customer", page);
    ferry_metrics_poll_page("shop", "customer", page);
    json_decref(page);
    ferry_metrics_poll_done("shop", "customer", 0);
    ferry_metrics_poll_done("shop", "customer", FERRY_ENETWORK);
    assert_true(ferry_metrics_value(g, "ferry_poll_records_total", "connector", "shop", "object",
                                    "customer", NULL) == 6);
    assert_true(ferry_metrics_sum(g, "ferry_polls_total", "result", "failed", NULL) == 1);
    assert_true(ferry_metrics_value(g, "ferry_poll_last_success_timestamp_seconds", "connector",
                                    "shop", "object", "customer", NULL) > 1.7e9);
    ferry_metrics_quota("crm", 143, 150, 2500);
    ferry_metrics_quota("crm", 142, -1, -1);
    assert_true(ferry_metrics_value(g, "ferry_quota_remaining", "connector", "crm", NULL) == 142);
    assert_true(ferry_metrics_value(g, "ferry_quota_limit", "connector", "crm", NULL) == 150);
    assert_true(ferry_metrics_value(g, "ferry_quota_reset_seconds", "connector", "crm", NULL) ==
                2.5);
    ferry_metrics_echo_suppressed("crm");
    ferry_metrics_conflict("crm");
    assert_true(ferry_metrics_value(g, "ferry_echo_suppressed_total", "connector", "crm", NULL) ==
                1);
    ferry_metrics_global_reset();
    assert_true(ferry_metrics_sum(g, "ferry_http_requests_total", NULL) == 0);
    assert_false(ferry_metrics_last_call("crm", &st));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_exposition_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_labels_that_do_not_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_names_and_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_threads, setup, teardown),
        cmocka_unit_test(test_metrics_engine_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
