/* SPDX-License-Identifier: MIT */
/*
 * Tests for core/src/http.c against the loopback server in tests/support:
 * what arrives on the wire, what comes back, the error classes, the cookie
 * session and the redaction of traces. No sleeps: the server thread answers
 * as soon as a request is complete, and the "never answers" case is bounded
 * by the client's own short timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "test_http_server.h"

#define SECRET "s3cr3t-Value-42"

static char big_body[100 * 1024];

static void on_request(const struct test_http_request *req, struct test_http_response *resp,
                       void *ud)
{
    static _Thread_local char headers[256];
    const char *t = req->target;

    if (strcmp(t, "/echo") == 0) {
        snprintf(headers, sizeof(headers), "Content-Type: text/plain\r\nX-Echo-Method: %s\r\n",
                 req->method);
        resp->headers = headers;
        resp->body = req->body;
        resp->body_len = req->body_len;
    } else if (strncmp(t, "/status/", 8) == 0) {
        resp->status = atoi(t + 8);
        resp->body = "status body";
    } else if (strcmp(t, "/big") == 0) {
        resp->body = big_body;
        resp->body_len = sizeof(big_body);
    } else if (strcmp(t, "/bigstream") == 0) {
        resp->body = big_body;
        resp->body_len = sizeof(big_body);
        resp->no_length = true;
    } else if (strcmp(t, "/hang") == 0) {
        resp->hang = true;
    } else if (strcmp(t, "/login") == 0) {
        resp->headers = "Set-Cookie: sid=abc123; Path=/\r\n";
        resp->body = "welcome";
    } else if (strcmp(t, "/interim") == 0) {
        resp->interim = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n";
        resp->headers = "X-Final: yes\r\n";
        resp->body = "final";
    } else if (strcmp(t, "/leak") == 0) {
        resp->headers = "Set-Cookie: session=" SECRET "\r\n";
        resp->body = "{\"token\":\"" SECRET "\"}";
    } else {
        resp->status = 404;
    }
}

struct fixture {
    struct test_http_server *srv;
    struct ferry_http_client *client;
};

static int setup(void **state)
{
    static const char *const secrets[] = {SECRET};
    struct fixture *f = calloc(1, sizeof(*f));
    struct ferry_http_options opt = {
        .timeout_ms = 5000,
        .connect_timeout_ms = 5000,
        .max_response = 1024 * 1024,
        .secrets = secrets,
        .nsecrets = 1,
    };
    struct ferry_err err = {0};

    memset(big_body, 'a', sizeof(big_body));
    if (!f) {
        return -1;
    }
    f->srv = test_http_server_start(on_request, NULL);
    if (!f->srv || ferry_http_client_new(&f->client, &opt, &err) != 0) {
        test_http_server_stop(f->srv);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ferry_http_client_free(f->client);
    test_http_server_stop(f->srv);
    free(f);
    return 0;
}

static int group_setup(void **state)
{
    struct ferry_err err = {0};
    return ferry_http_global_init(&err) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    ferry_http_global_cleanup();
    return 0;
}

static int do_request(struct fixture *f, const char *method, const char *path, const char *body,
                      const struct ferry_http_header *headers, size_t nheaders, uint32_t flags,
                      struct ferry_http_resp *resp, struct ferry_err *err)
{
    char url[128];
    test_http_server_url(f->srv, path, url, sizeof(url));
    struct ferry_http_req req = {
        .method = method,
        .url = url,
        .headers = headers,
        .nheaders = nheaders,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .flags = flags,
    };
    return ferry_http_perform(f->client, &req, "corr-1", resp, NULL, err);
}

static void test_http_get_headers_arrive(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_header h[] = {{"Accept", "application/json"}, {"X-Empty", ""}};

    assert_int_equal(do_request(f, "GET", "/echo", NULL, h, 2, 0, &resp, &err), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 0);
    assert_non_null(resp.body);
    assert_string_equal(ferry_http_resp_header(&resp, "x-echo-method"), "GET");
    assert_string_equal(ferry_http_resp_header(&resp, "CONTENT-TYPE"), "text/plain");
    assert_null(ferry_http_resp_header(&resp, "X-Missing"));
    ferry_http_resp_free(&resp);

    struct test_http_request *r = test_http_server_request(f->srv, 0);
    assert_non_null(r);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->target, "/echo");
    assert_string_equal(test_http_request_header(r, "X-Correlation-ID"), "corr-1");
    assert_string_equal(test_http_request_header(r, "Accept"), "application/json");
    assert_string_equal(test_http_request_header(r, "X-Empty"), "");
    assert_string_equal(test_http_request_header(r, "User-Agent"), "ferry/" FERRY_VERSION);
    assert_null(test_http_request_header(r, "Expect"));
    /* W3C trace context: version, 32-hex trace id (hashed from "corr-1"), 16-hex span, flags. */
    const char *tp = test_http_request_header(r, "traceparent");
    assert_non_null(tp);
    assert_int_equal(strlen(tp), 55);
    assert_memory_equal(tp, "00-", 3);
    assert_int_equal(tp[35], '-');
    assert_string_equal(tp + 52, "-01");
    char span[17];
    memcpy(span, tp + 36, 16);
    span[16] = '\0';
    assert_int_equal(strspn(span, "0123456789abcdef"), 16);
    test_http_request_free(r);

    /* A job's correlation ID (32 hex chars) is the trace id itself. */
    char url[128];
    test_http_server_url(f->srv, "/echo", url, sizeof(url));
    struct ferry_http_req req = {.method = "GET", .url = url};
    assert_int_equal(
        ferry_http_perform(f->client, &req, "0123456789abcdef0123456789abcdef", &resp, NULL, &err),
        0);
    ferry_http_resp_free(&resp);
    r = test_http_server_request(f->srv, 1);
    assert_non_null(r);
    tp = test_http_request_header(r, "traceparent");
    assert_non_null(tp);
    assert_memory_equal(tp, "00-0123456789abcdef0123456789abcdef-", 36);
    /* Every request is a new span. */
    assert_memory_not_equal(tp + 36, span, 16);
    test_http_request_free(r);
}

static void test_http_post_and_patch_bodies_arrive(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_header h[] = {{"Content-Type", "application/json"},
                                    {"User-Agent", "custom/1"}};

    assert_int_equal(do_request(f, "POST", "/echo", "{\"a\":1}", h, 2, 0, &resp, &err), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body, "{\"a\":1}");
    assert_string_equal(ferry_http_resp_header(&resp, "X-Echo-Method"), "POST");
    ferry_http_resp_free(&resp);

    assert_int_equal(do_request(f, "PATCH", "/echo", "{\"b\":2}", h, 2, 0, &resp, &err), 0);
    assert_string_equal(resp.body, "{\"b\":2}");
    assert_string_equal(ferry_http_resp_header(&resp, "X-Echo-Method"), "PATCH");
    ferry_http_resp_free(&resp);

    /* A GET after a POST on the same handle must not carry the old body. */
    assert_int_equal(do_request(f, "GET", "/echo", NULL, NULL, 0, 0, &resp, &err), 0);
    assert_string_equal(ferry_http_resp_header(&resp, "X-Echo-Method"), "GET");
    assert_int_equal(resp.body_len, 0);
    ferry_http_resp_free(&resp);

    assert_int_equal(test_http_server_nrequests(f->srv), 3);
    struct test_http_request *r = test_http_server_request(f->srv, 1);
    assert_string_equal(r->method, "PATCH");
    assert_string_equal(r->body, "{\"b\":2}");
    assert_string_equal(test_http_request_header(r, "Content-Type"), "application/json");
    assert_string_equal(test_http_request_header(r, "User-Agent"), "custom/1");
    test_http_request_free(r);
    r = test_http_server_request(f->srv, 2);
    assert_string_equal(r->method, "GET");
    assert_int_equal(r->body_len, 0);
    test_http_request_free(r);
}

static void test_http_status_codes_pass_through(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    static const int codes[] = {201, 404, 409, 500, 503};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char path[32];
        snprintf(path, sizeof(path), "/status/%d", codes[i]);
        assert_int_equal(do_request(f, "DELETE", path, NULL, NULL, 0, 0, &resp, &err), 0);
        assert_int_equal(resp.status, codes[i]);
        assert_string_equal(resp.body, "status body");
        ferry_http_resp_free(&resp);
    }
    struct test_http_request *r = test_http_server_request(f->srv, 0);
    assert_string_equal(r->method, "DELETE");
    test_http_request_free(r);
}

static void test_http_interim_headers_dropped(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};

    assert_int_equal(do_request(f, "GET", "/interim", NULL, NULL, 0, 0, &resp, &err), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(ferry_http_resp_header(&resp, "X-Final"), "yes");
    assert_null(ferry_http_resp_header(&resp, "Link"));
    assert_string_equal(resp.body, "final");
    ferry_http_resp_free(&resp);
}

static void test_http_max_response_too_big(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_client *small = NULL;
    struct ferry_http_options opt = {.timeout_ms = 5000, .max_response = 1024};
    char url[128];

    assert_int_equal(ferry_http_client_new(&small, &opt, &err), 0);
    /* With Content-Length (refused up front) and without (cut while streaming). */
    const char *paths[] = {"/big", "/bigstream"};
    for (size_t i = 0; i < 2; i++) {
        test_http_server_url(f->srv, paths[i], url, sizeof(url));
        struct ferry_http_req req = {.method = "GET", .url = url};
        int rc = ferry_http_perform(small, &req, "corr-big", &resp, NULL, &err);
        assert_int_equal(rc, FERRY_ETOOBIG);
        assert_int_equal(err.code, FERRY_ETOOBIG);
        assert_null(resp.body);
        assert_int_equal(resp.nheaders, 0);
    }
    /* The same body fits the fixture's 1 MiB cap. */
    assert_int_equal(do_request(f, "GET", "/bigstream", NULL, NULL, 0, 0, &resp, &err), 0);
    assert_int_equal(resp.body_len, sizeof(big_body));
    ferry_http_resp_free(&resp);
    ferry_http_client_free(small);
}

static void test_http_timeout(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    char url[128];

    test_http_server_url(f->srv, "/hang", url, sizeof(url));
    struct ferry_http_req req = {.method = "GET", .url = url, .timeout_ms = 200};
    assert_int_equal(ferry_http_perform(f->client, &req, "corr-t", &resp, NULL, &err),
                     FERRY_ETIMEDOUT);
    assert_int_equal(err.code, FERRY_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "timed out"));
    assert_null(resp.body);
}

static void test_http_connection_refused(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_trace trace;
    int fd = -1;
    int port = test_closed_port_reserve(&fd);
    char url[128];

    assert_true(port > 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x?key=" SECRET, port);
    struct ferry_http_req req = {.method = "GET", .url = url};
    assert_int_equal(ferry_http_perform(f->client, &req, "corr-r", &resp, &trace, &err),
                     FERRY_ENETWORK);
    test_closed_port_release(fd);
    assert_int_equal(err.code, FERRY_ENETWORK);
    assert_true(strlen(err.msg) > 0);
    assert_null(strstr(err.msg, SECRET));
    assert_int_equal(trace.status, 0);
    assert_null(trace.response);
    assert_non_null(trace.request);
    assert_null(strstr(trace.url, SECRET));
    assert_null(strstr(trace.request, SECRET));
    ferry_http_trace_clear(&trace);
}

static void test_http_cookie_session_and_reset(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};

    assert_int_equal(do_request(f, "GET", "/login", NULL, NULL, 0, 0, &resp, &err), 0);
    ferry_http_resp_free(&resp);
    assert_int_equal(do_request(f, "GET", "/echo", NULL, NULL, 0, 0, &resp, &err), 0);
    ferry_http_resp_free(&resp);
    assert_int_equal(
        do_request(f, "GET", "/echo", NULL, NULL, 0, FERRY_HTTP_RESET_SESSION, &resp, &err), 0);
    ferry_http_resp_free(&resp);

    struct test_http_request *r = test_http_server_request(f->srv, 0);
    assert_null(test_http_request_header(r, "Cookie"));
    test_http_request_free(r);
    r = test_http_server_request(f->srv, 1);
    assert_non_null(test_http_request_header(r, "Cookie"));
    assert_string_equal(test_http_request_header(r, "Cookie"), "sid=abc123");
    test_http_request_free(r);
    r = test_http_server_request(f->srv, 2);
    assert_null(test_http_request_header(r, "Cookie"));
    test_http_request_free(r);

    /* Another client is another session. */
    struct ferry_http_client *other = NULL;
    assert_int_equal(ferry_http_client_new(&other, NULL, &err), 0);
    ferry_http_client_free(other);
}

static void test_http_trace_redacts(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_trace trace;
    char url[128];
    struct ferry_http_header h[] = {{"Authorization", "Bearer tok-xyz-987"},
                                    {"X-Api-Key", "k-555"},
                                    {"Content-Type", "application/json"}};
    const char *body = "{\"password\":\"" SECRET "\",\"name\":\"Ann\"}";

    test_http_server_url(f->srv, "/leak", url, sizeof(url));
    struct ferry_http_req req = {.method = "POST",
                                 .url = url,
                                 .headers = h,
                                 .nheaders = 3,
                                 .body = body,
                                 .body_len = strlen(body)};
    assert_int_equal(ferry_http_perform(f->client, &req, "corr-trace", &resp, &trace, &err), 0);
    /* The response itself is not redacted: the connector needs the real data. */
    assert_non_null(strstr(resp.body, SECRET));
    ferry_http_resp_free(&resp);

    assert_string_equal(trace.method, "POST");
    assert_string_equal(trace.url, url);
    assert_int_equal(trace.status, 200);
    assert_true(trace.duration_ms >= 0);
    assert_non_null(trace.request);
    assert_non_null(trace.response);
    assert_non_null(strstr(trace.request, "Authorization: [REDACTED]"));
    assert_non_null(strstr(trace.request, "X-Api-Key: [REDACTED]"));
    assert_non_null(strstr(trace.request, "X-Correlation-ID: corr-trace"));
    assert_non_null(strstr(trace.request, "\"name\":\"Ann\""));
    assert_non_null(strstr(trace.request, "[REDACTED]\",\"name\""));
    assert_null(strstr(trace.request, "tok-xyz-987"));
    assert_null(strstr(trace.request, "k-555"));
    assert_null(strstr(trace.request, SECRET));
    assert_non_null(strstr(trace.response, "HTTP/1.1 200"));
    assert_non_null(strstr(trace.response, "Set-Cookie: [REDACTED]"));
    assert_non_null(strstr(trace.response, "{\"token\":\"[REDACTED]\"}"));
    assert_null(strstr(trace.response, SECRET));
    ferry_http_trace_clear(&trace);
    assert_null(trace.request);
}

static void test_http_trace_body_capped(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_trace trace;

    char url[128];
    test_http_server_url(f->srv, "/big", url, sizeof(url));
    struct ferry_http_req req = {.method = "GET", .url = url};
    assert_int_equal(ferry_http_perform(f->client, &req, "c", &resp, &trace, &err), 0);
    assert_int_equal(resp.body_len, sizeof(big_body));
    ferry_http_resp_free(&resp);
    assert_true(strlen(trace.response) < 4096 + 1024);
    assert_non_null(strstr(trace.response, "[truncated, 102400 bytes in all]"));
    ferry_http_trace_clear(&trace);
}

static void test_http_rejects_header_injection(void **state)
{
    struct fixture *f = *state;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_header h[] = {{"X-Bad", "a\r\nX-Injected: 1"}};

    assert_int_equal(do_request(f, "GET", "/echo", NULL, h, 1, 0, &resp, &err), FERRY_EINVAL);
    assert_int_equal(do_request(f, "TRACE", "/echo", NULL, NULL, 0, 0, &resp, &err), FERRY_EINVAL);
    assert_int_equal(test_http_server_nrequests(f->srv), 0);
}

/* A short secret that is part of a header name must not garble the name. */
static void test_http_trace_keeps_header_names(void **state)
{
    static const char *const secrets[] = {"Tok"};
    struct ferry_http_options opt = {.timeout_ms = 5000, .secrets = secrets, .nsecrets = 1};
    struct fixture *f = *state;
    struct ferry_http_client *client = NULL;
    struct ferry_http_resp resp;
    struct ferry_err err = {0};
    struct ferry_http_trace trace;
    char url[128];
    struct ferry_http_header h[] = {{"X-Request-Token", "Tok"}, {"X-Note", "a Tok here"}};

    assert_int_equal(ferry_http_client_new(&client, &opt, &err), 0);
    test_http_server_url(f->srv, "/leak", url, sizeof(url));
    struct ferry_http_req req = {.method = "GET", .url = url, .headers = h, .nheaders = 2};
    assert_int_equal(ferry_http_perform(client, &req, "c", &resp, &trace, &err), 0);
    ferry_http_resp_free(&resp);
    assert_non_null(strstr(trace.request, "X-Request-Token: [REDACTED]"));
    assert_non_null(strstr(trace.request, "X-Note: a [REDACTED] here"));
    ferry_http_trace_clear(&trace);
    ferry_http_client_free(client);
}

static void test_http_redact_longest_first(void **state)
{
    const char *const secrets[] = {"abc", "abcdef", ""};
    char *out = ferry_redact("x abcdef y abc z abcdefabc", secrets, 3);
    assert_string_equal(out, "x [REDACTED] y [REDACTED] z [REDACTED][REDACTED]");
    free(out);
    out = ferry_redact("nothing here", secrets, 3);
    assert_string_equal(out, "nothing here");
    free(out);
    out = ferry_redact("plain", NULL, 0);
    assert_string_equal(out, "plain");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_get_headers_arrive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_post_and_patch_bodies_arrive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_status_codes_pass_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_interim_headers_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_max_response_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_cookie_session_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_trace_redacts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_trace_body_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_rejects_header_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_trace_keeps_header_names, setup, teardown),
        cmocka_unit_test(test_http_redact_longest_first),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
