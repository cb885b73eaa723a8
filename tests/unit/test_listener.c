/* SPDX-License-Identifier: MIT */
/*
 * Tests for the webhook listener (core/src/listener.c) against real sockets.
 * The server runs on a fresh loop per test; each client is a plain blocking
 * socket on its own thread, which wakes the loop through a uv_async_t when it
 * has what it came for, so the test drives uv_run(UV_RUN_ONCE) without
 * sleeping, bounded by a watchdog timer.
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
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "listener.h"
#include "log.h"
#include "util.h"

#define WATCHDOG_MS 5000
#define MAX_HEADERS 32
#define SMALL_MAX   1024
#define MIB         ((size_t)1024 * 1024)

struct capture {
    int calls;
    char instance[80];
    char *path;
    char *body;
    size_t body_len;
    bool body_nul_terminated;
    size_t nheaders;
    char *hname[MAX_HEADERS];
    char *hvalue[MAX_HEADERS];
    int64_t received_at_ms;
};

struct fixture {
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t watchdog;
    bool timed_out;
    struct ferry_listener *l;
    int port;
    int reply_status;
    bool reply_null; /* the callback leaves reply->body NULL */
    bool defer;      /* the callback defers; a 0 ms timer completes the reply */
    bool defer_text; /* ... with ferry_listener_complete_json_text */
    uv_timer_t later;
    struct ferry_deferred *pending;
    int done_calls;
    struct capture cap;
};

enum client_mode {
    CLIENT_READ_TO_EOF = 0, /* the request says Connection: close */
    CLIENT_KEEP_ALIVE = 1,  /* read one response by Content-Length, report, then wait for EOF */
};

struct client {
    const char *host;
    int family;
    int port;
    const char *req;
    size_t req_len;
    int mode;
    int connect_errno;
    char *resp;
    size_t resp_len;
    bool eof;
    atomic_int stage; /* 1: one response read; 2: finished */
    uv_async_t *wake;
    pthread_t thread;
};

struct response {
    int status;
    char content_type[128];
    char allow[64];
    const char *body;
    size_t body_len;
};

/* Helpers ------------------------------------------------------------- */

static void on_wake(uv_async_t *h)
{
    (void)h; /* only here to make uv_run(UV_RUN_ONCE) return */
}

static void on_watchdog(uv_timer_t *t)
{
    struct fixture *fx = t->data;
    fx->timed_out = true;
}

static void on_done(void *ud)
{
    struct fixture *fx = ud;
    fx->done_calls++;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    assert_non_null(p);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void on_later(uv_timer_t *t)
{
    struct fixture *fx = t->data;
    if (fx->defer_text) {
        /* The text is borrowed: it must be copied before the call returns. */
        char text[] = "{\"status\":\"accepted\",\"queued\":1}";
        ferry_listener_complete_json_text(fx->pending, 200, text, strlen(text));
        memset(text, 'x', sizeof(text) - 1);
    } else {
        ferry_listener_complete(fx->pending, 207, json_pack("{s:b}", "later", 1));
    }
    fx->pending = NULL;
}

static void on_webhook(void *ud, const char *instance, const struct ferry_webhook *wh,
                       struct ferry_webhook_reply *reply)
{
    struct fixture *fx = ud;
    struct capture *c = &fx->cap;
    c->calls++;
    snprintf(c->instance, sizeof(c->instance), "%s", instance);
    free(c->path);
    c->path = dupn(wh->path, strlen(wh->path));
    free(c->body);
    c->body = dupn(wh->body, wh->body_len);
    c->body_len = wh->body_len;
    c->body_nul_terminated = wh->body[wh->body_len] == '\0';
    for (size_t i = 0; i < c->nheaders; i++) {
        free(c->hname[i]);
        free(c->hvalue[i]);
    }
    c->nheaders = 0;
    for (size_t i = 0; i < wh->nheaders && i < MAX_HEADERS; i++) {
        c->hname[i] = dupn(wh->headers[i].name, strlen(wh->headers[i].name));
        c->hvalue[i] = dupn(wh->headers[i].value, strlen(wh->headers[i].value));
        c->nheaders++;
    }
    c->received_at_ms = wh->received_at_ms;
    if (fx->defer) {
        fx->pending = ferry_listener_defer(reply);
        assert_non_null(fx->pending);
        uv_timer_start(&fx->later, on_later, 0, 0);
        return;
    }
    reply->status = fx->reply_status;
    if (fx->reply_null) {
        return;
    }
    reply->body = json_pack("{s:b,s:s,s:I}", "accepted", 1, "instance", instance, "bytes",
                            (json_int_t)wh->body_len);
}

static int setup(void **state)
{
    /* (on_later is defined above on_webhook) */
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_async_init(&fx->loop, &fx->wake, on_wake), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->watchdog), 0);
    fx->watchdog.data = fx;
    assert_int_equal(uv_timer_init(&fx->loop, &fx->later), 0);
    fx->later.data = fx;
    fx->reply_status = 202;
    ferry_log_set_level(FERRY_LOG_ERROR);
    *state = fx;
    return 0;
}

static void close_test_handles(struct fixture *fx)
{
    if (!uv_is_closing((uv_handle_t *)&fx->wake)) {
        uv_close((uv_handle_t *)&fx->wake, NULL);
    }
    if (!uv_is_closing((uv_handle_t *)&fx->watchdog)) {
        uv_close((uv_handle_t *)&fx->watchdog, NULL);
    }
    if (!uv_is_closing((uv_handle_t *)&fx->later)) {
        uv_close((uv_handle_t *)&fx->later, NULL);
    }
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    if (fx->l) {
        ferry_listener_stop(fx->l, on_done, fx);
        fx->l = NULL;
    }
    close_test_handles(fx);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    free(fx->cap.path);
    free(fx->cap.body);
    for (size_t i = 0; i < fx->cap.nheaders; i++) {
        free(fx->cap.hname[i]);
        free(fx->cap.hvalue[i]);
    }
    free(fx);
    assert_int_equal(rc, 0);
    return 0;
}

static void start_listener(struct fixture *fx, const char *address, size_t max_body)
{
    struct ferry_listener_options opt = {.address = address, .port = 0, .max_body = max_body};
    struct ferry_err err = {0};
    int rc = ferry_listener_start(&fx->l, &fx->loop, &opt, on_webhook, fx, &err);
    if (rc != 0) {
        fail_msg("ferry_listener_start: %d %s", rc, err.msg);
    }
    fx->port = ferry_listener_port(fx->l);
    assert_true(fx->port > 0 && fx->port < 65536);
}

static void append(struct client *c, const char *buf, size_t n)
{
    char *p = realloc(c->resp, c->resp_len + n + 1);
    if (!p) {
        abort(); /* cmocka's asserts cannot fail from another thread */
    }
    memcpy(p + c->resp_len, buf, n);
    c->resp = p;
    c->resp_len += n;
    c->resp[c->resp_len] = '\0';
}

/* True once resp holds a complete response framed by Content-Length. */
static bool have_full_response(const struct client *c)
{
    if (!c->resp) {
        return false;
    }
    const char *end = strstr(c->resp, "\r\n\r\n");
    if (!end) {
        return false;
    }
    size_t clen = 0;
    for (const char *p = c->resp; p < end; p = strstr(p, "\r\n") + 2) {
        if (strncasecmp(p, "content-length:", 15) == 0) {
            clen = strtoul(p + 15, NULL, 10);
        }
    }
    return c->resp_len >= (size_t)(end + 4 - c->resp) + clen;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    if (c->family == AF_INET6) {
        uv_ip6_addr(c->host, c->port, (struct sockaddr_in6 *)&ss);
        sslen = sizeof(struct sockaddr_in6);
    } else {
        uv_ip4_addr(c->host, c->port, (struct sockaddr_in *)&ss);
        sslen = sizeof(struct sockaddr_in);
    }
    int fd = socket(c->family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sslen) != 0) {
        c->connect_errno = errno;
        goto out;
    }
    /* Bounds a broken server: the thread always ends, and the watchdog reports it. */
    struct timeval tv = {.tv_sec = 8, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t off = 0;
    while (off < c->req_len) {
        ssize_t n = send(fd, c->req + off, c->req_len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* the server may refuse early (413) and close; read what it said */
        }
        off += (size_t)n;
    }
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0) {
            c->eof = true;
            break;
        }
        if (n < 0) {
            break;
        }
        append(c, buf, (size_t)n);
        if (c->mode == CLIENT_KEEP_ALIVE && atomic_load(&c->stage) == 0 && have_full_response(c)) {
            atomic_store(&c->stage, 1);
            uv_async_send(c->wake);
        }
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    atomic_store(&c->stage, 2);
    uv_async_send(c->wake);
    return NULL;
}

static void client_start(struct fixture *fx, struct client *c, const char *req, size_t len)
{
    memset(c, 0, sizeof(*c));
    c->host = "127.0.0.1";
    c->family = AF_INET;
    c->port = fx->port;
    c->req = req;
    c->req_len = len;
    c->wake = &fx->wake;
    atomic_init(&c->stage, 0);
}

static void client_run(struct client *c)
{
    assert_int_equal(pthread_create(&c->thread, NULL, client_main, c), 0);
}

/* Drives the loop until the client reaches `stage`; false on the watchdog. */
static bool drive_until(struct fixture *fx, struct client *c, int stage)
{
    fx->timed_out = false;
    uv_timer_start(&fx->watchdog, on_watchdog, WATCHDOG_MS, 0);
    while (atomic_load(&c->stage) < stage && !fx->timed_out) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&fx->watchdog);
    return atomic_load(&c->stage) >= stage;
}

static void client_finish(struct fixture *fx, struct client *c)
{
    bool ok = drive_until(fx, c, 2);
    pthread_join(c->thread, NULL);
    assert_true(ok);
}

static void parse_response(const struct client *c, struct response *r)
{
    memset(r, 0, sizeof(*r));
    assert_non_null(c->resp);
    assert_true(sscanf(c->resp, "HTTP/1.%*d %d", &r->status) == 1);
    const char *end = strstr(c->resp, "\r\n\r\n");
    assert_non_null(end);
    for (const char *p = strstr(c->resp, "\r\n") + 2; p < end; p = strstr(p, "\r\n") + 2) {
        const char *eol = strstr(p, "\r\n");
        if (strncasecmp(p, "content-type:", 13) == 0) {
            const char *v = p + 13 + strspn(p + 13, " ");
            snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)(eol - v), v);
        } else if (strncasecmp(p, "allow:", 6) == 0) {
            const char *v = p + 6 + strspn(p + 6, " ");
            snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(eol - v), v);
        }
    }
    r->body = end + 4;
    r->body_len = c->resp_len - (size_t)(r->body - c->resp);
}

/* One request on its own connection; r points into c->resp, which the caller frees. */
static void roundtrip(struct fixture *fx, const char *req, size_t len, struct client *c,
                      struct response *r)
{
    client_start(fx, c, req, len);
    client_run(c);
    client_finish(fx, c);
    assert_int_equal(c->connect_errno, 0);
    parse_response(c, r);
}

static char *make_post(const char *path, const char *extra_headers, const char *body,
                       size_t body_len, size_t *out_len)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     path, extra_headers ? extra_headers : "", body_len);
    assert_true(n > 0 && (size_t)n < sizeof(head));
    char *req = malloc((size_t)n + body_len + 1);
    assert_non_null(req);
    memcpy(req, head, (size_t)n);
    if (body_len) {
        memcpy(req + n, body, body_len);
    }
    *out_len = (size_t)n + body_len;
    return req;
}

static void expect_json_error(const struct response *r, int status, const char *code,
                              const char *message)
{
    assert_int_equal(r->status, status);
    assert_string_equal(r->content_type, "application/json");
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->body_len, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "error")), code);
    if (message) {
        assert_string_equal(json_string_value(json_object_get(j, "message")), message);
    }
    json_decref(j);
}

static void expect_post_status(struct fixture *fx, const char *path, const char *body,
                               size_t body_len, int status)
{
    size_t len;
    char *req = make_post(path, NULL, body, body_len, &len);
    struct client c;
    struct response r;
    roundtrip(fx, req, len, &c, &r);
    assert_int_equal(r.status, status);
    free(c.resp);
    free(req);
}

/* Tests ------------------------------------------------------------- */

static void test_listener_post_reaches_callback(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    static const char body[] =
        "{\"scope\":\"store/customer/created\",\"data\":{\"id\":7}}\0tail\xc3\xa9";
    size_t body_len = sizeof(body) - 1;
    size_t len;
    char *req = make_post("/webhooks/shop",
                          "Content-Type: application/json\r\nX-Dup: one\r\n"
                          "X-MiXeD-Case: Value With Spaces\r\nX-Dup: two\r\n",
                          body, body_len, &len);
    int64_t before = ferry_now_ms();
    struct client c;
    struct response r;
    roundtrip(fx, req, len, &c, &r);

    assert_int_equal(fx->cap.calls, 1);
    assert_string_equal(fx->cap.instance, "shop");
    assert_string_equal(fx->cap.path, "");
    assert_int_equal(fx->cap.body_len, body_len);
    assert_memory_equal(fx->cap.body, body, body_len);
    assert_true(fx->cap.body_nul_terminated);
    /*
     * Wall-clock milliseconds since the epoch: seconds would be 1000 times
     * too small, a monotonic clock decades off. A minute of slack either way,
     * because the machine's clock may be stepped while the test runs (a VM
     * synchronising with its host made a one-second margin fail).
     */
    assert_true(fx->cap.received_at_ms >= before - 60000);
    assert_true(fx->cap.received_at_ms <= ferry_now_ms() + 60000);

    /* Arrival order, duplicates kept, original name case. */
    const char *want[][2] = {
        {"Content-Type", "application/json"},
        {"X-Dup", "one"},
        {"X-MiXeD-Case", "Value With Spaces"},
        {"X-Dup", "two"},
        {"Connection", "close"},
    };
    size_t nwant = sizeof(want) / sizeof(want[0]);
    assert_int_equal(fx->cap.nheaders, nwant);
    for (size_t i = 0; i < nwant; i++) {
        assert_string_equal(fx->cap.hname[i], want[i][0]);
        assert_string_equal(fx->cap.hvalue[i], want[i][1]);
    }

    assert_int_equal(r.status, 202);
    assert_string_equal(r.content_type, "application/json");
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "accepted")));
    assert_string_equal(json_string_value(json_object_get(j, "instance")), "shop");
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), (json_int_t)body_len);
    json_decref(j);
    free(c.resp);
    free(req);
}

static void test_listener_subpath_and_query(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    fx->reply_status = 200;
    expect_post_status(fx, "/webhooks/shop-2_x/extra", "{}", 2, 200);
    assert_int_equal(fx->cap.calls, 1);
    assert_string_equal(fx->cap.instance, "shop-2_x");
    assert_string_equal(fx->cap.path, "/extra");

    expect_post_status(fx, "/webhooks/shop/a/b?token=1", "{}", 2, 200);
    assert_int_equal(fx->cap.calls, 2);
    assert_string_equal(fx->cap.path, "/a/b");
}

static void test_listener_empty_body_and_null_reply(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    fx->reply_status = 401;
    fx->reply_null = true;
    size_t len;
    char *req = make_post("/webhooks/shop", NULL, "", 0, &len);
    struct client c;
    struct response r;
    roundtrip(fx, req, len, &c, &r);
    /* An empty body reaches the callback: the connector decides what it means. */
    assert_int_equal(fx->cap.calls, 1);
    assert_int_equal(fx->cap.body_len, 0);
    assert_true(fx->cap.body_nul_terminated);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.body_len, 2);
    assert_memory_equal(r.body, "{}", 2);
    free(c.resp);
    free(req);
}

static void test_listener_deferred_reply_sent_later(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    fx->defer = true;
    size_t len;
    char *req = make_post("/webhooks/shop", NULL, "{}", 2, &len);
    struct client c;
    struct response r;
    roundtrip(fx, req, len, &c, &r);
    assert_int_equal(fx->cap.calls, 1);
    assert_null(fx->pending);
    assert_int_equal(r.status, 207);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.body_len, strlen("{\"later\":true}"));
    assert_memory_equal(r.body, "{\"later\":true}", r.body_len);
    free(c.resp);
    free(req);
}

static void test_listener_deferred_json_text_reply(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    fx->defer = true;
    fx->defer_text = true;
    size_t len;
    char *req = make_post("/webhooks/shop", NULL, "{}", 2, &len);
    struct client c;
    struct response r;
    roundtrip(fx, req, len, &c, &r);
    assert_int_equal(fx->cap.calls, 1);
    assert_null(fx->pending);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.body_len, strlen("{\"status\":\"accepted\",\"queued\":1}"));
    assert_memory_equal(r.body, "{\"status\":\"accepted\",\"queued\":1}", r.body_len);
    free(c.resp);
    free(req);
}

static void test_listener_unknown_path_404(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    static const char req[] = "GET /nope/here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct client c;
    struct response r;
    roundtrip(fx, req, sizeof(req) - 1, &c, &r);
    expect_json_error(&r, 404, "not_found", "no route for /nope/here");
    assert_int_equal(fx->cap.calls, 0);
    free(c.resp);
}

static void test_listener_wrong_method_405(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    static const char req[] = "GET /webhooks/shop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct client c;
    struct response r;
    roundtrip(fx, req, sizeof(req) - 1, &c, &r);
    expect_json_error(&r, 405, "method_not_allowed", NULL);
    assert_string_equal(r.allow, "POST");
    assert_int_equal(fx->cap.calls, 0);
    free(c.resp);
}

static void test_listener_body_at_limit_accepted(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    char *body = malloc(SMALL_MAX);
    assert_non_null(body);
    memset(body, 'a', SMALL_MAX);
    expect_post_status(fx, "/webhooks/shop", body, SMALL_MAX, 202);
    assert_int_equal(fx->cap.calls, 1);
    assert_int_equal(fx->cap.body_len, SMALL_MAX);
    free(body);
}

static void test_listener_body_over_limit_413(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    char *body = malloc(SMALL_MAX + 1);
    assert_non_null(body);
    memset(body, 'a', SMALL_MAX + 1);
    size_t len;
    char *req = make_post("/webhooks/shop", NULL, body, SMALL_MAX + 1, &len);
    struct client c;
    struct response r;
    roundtrip(fx, req, len, &c, &r);
    expect_json_error(&r, 413, "too_large", "body exceeds 1024 bytes");
    assert_int_equal(fx->cap.calls, 0);
    free(c.resp);
    free(req);
    free(body);
}

static void test_listener_chunked_over_limit_413(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, 16);
    static const char req[] = "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n";
    struct client c;
    struct response r;
    roundtrip(fx, req, sizeof(req) - 1, &c, &r);
    expect_json_error(&r, 413, "too_large", "body exceeds 16 bytes");
    assert_int_equal(fx->cap.calls, 0);
    free(c.resp);
}

static void test_listener_chunked_body_reassembled(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, 16);
    static const char req[] = "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    struct client c;
    struct response r;
    roundtrip(fx, req, sizeof(req) - 1, &c, &r);
    assert_int_equal(r.status, 202);
    assert_int_equal(fx->cap.calls, 1);
    assert_string_equal(fx->cap.body, "hello world");
    assert_int_equal(fx->cap.body_len, 11);
    free(c.resp);
}

static void test_listener_two_mib_body_rejected(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, MIB);
    size_t n = 2 * MIB;
    char *body = malloc(n);
    assert_non_null(body);
    memset(body, 'z', n);
    size_t len;
    char *req = make_post("/webhooks/shop", NULL, body, n, &len);
    struct client c;
    struct response r;
    roundtrip(fx, req, len, &c, &r);
    assert_true(r.status >= 400 && r.status < 500);
    assert_int_equal(fx->cap.calls, 0);
    free(c.resp);
    free(req);
    free(body);
}

static void test_listener_declared_length_beyond_h2o_limit(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    /* Far past h2o's own limit: refused from the header alone, before any body is read. */
    static const char req[] = "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 104857600\r\n\r\n";
    struct client c;
    struct response r;
    roundtrip(fx, req, sizeof(req) - 1, &c, &r);
    assert_int_equal(r.status, 413);
    assert_int_equal(fx->cap.calls, 0);
    assert_true(c.eof);
    free(c.resp);
}

static void test_listener_bad_instance_404(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    char longname[sizeof("/webhooks/") + 65];
    snprintf(longname, sizeof(longname), "/webhooks/%065d", 0);
    const char *paths[] = {"/webhooks/bad.name", "/webhooks/sh%20op", "/webhooks/",
                           "/webhooks",          "/webhooks//x",      longname};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        size_t len;
        char *req = make_post(paths[i], NULL, "{}", 2, &len);
        struct client c;
        struct response r;
        roundtrip(fx, req, len, &c, &r);
        expect_json_error(&r, 404, "not_found", NULL);
        free(c.resp);
        free(req);
    }
    assert_int_equal(fx->cap.calls, 0);

    /* 64 characters is still a name. */
    char maxname[sizeof("/webhooks/") + 64];
    snprintf(maxname, sizeof(maxname), "/webhooks/%064d", 0);
    expect_post_status(fx, maxname, "{}", 2, 202);
    assert_int_equal(fx->cap.calls, 1);
    assert_int_equal(strlen(fx->cap.instance), 64);
}

static void test_listener_healthz(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct client c;
    struct response r;
    roundtrip(fx, req, sizeof(req) - 1, &c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.body_len, strlen("{\"status\":\"ok\"}"));
    assert_memory_equal(r.body, "{\"status\":\"ok\"}", r.body_len);
    free(c.resp);
}

static void test_listener_port_zero_gets_real_port(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, "127.0.0.1", SMALL_MAX);
    assert_int_not_equal(ferry_listener_port(fx->l), 0);
    /* The reported port is the one actually listening. */
    static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
    struct client c;
    struct response r;
    roundtrip(fx, req, sizeof(req) - 1, &c, &r);
    assert_int_equal(r.status, 200);
    free(c.resp);
}

static void test_listener_ipv6_loopback(void **state)
{
    struct fixture *fx = *state;
    struct ferry_listener_options opt = {.address = "::1", .port = 0, .max_body = SMALL_MAX};
    struct ferry_err err = {0};
    int rc = ferry_listener_start(&fx->l, &fx->loop, &opt, on_webhook, fx, &err);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        skip(); /* no IPv6 loopback in this sandbox */
    }
    assert_int_equal(rc, 0);
    fx->port = ferry_listener_port(fx->l);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct client c;
    client_start(fx, &c, req, sizeof(req) - 1);
    c.host = "::1";
    c.family = AF_INET6;
    client_run(&c);
    client_finish(fx, &c);
    assert_int_equal(c.connect_errno, 0);
    struct response r;
    parse_response(&c, &r);
    assert_int_equal(r.status, 200);
    free(c.resp);
}

static void test_listener_bad_address_and_port_in_use(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    struct ferry_listener *other = NULL;
    struct ferry_err err = {0};
    struct ferry_listener_options opt = {.address = "127.0.0.1", .port = fx->port, .max_body = 1};
    int rc = ferry_listener_start(&other, &fx->loop, &opt, on_webhook, fx, &err);
    assert_int_equal(rc, -EADDRINUSE);
    assert_null(other);
    assert_int_equal(err.code, -EADDRINUSE);

    struct ferry_listener_options bad = {.address = "localhost", .port = 0, .max_body = 1};
    rc = ferry_listener_start(&other, &fx->loop, &bad, on_webhook, fx, &err);
    assert_int_equal(rc, FERRY_EINVAL);
    assert_null(other);
    /* Teardown's uv_loop_close() == 0 shows the failures left no handle behind. */
}

static void test_listener_stop_closes_everything(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    int port = fx->port;
    expect_post_status(fx, "/webhooks/shop", "{}", 2, 202);

    close_test_handles(fx);
    ferry_listener_stop(fx->l, on_done, fx);
    fx->l = NULL;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->done_calls, 1);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    /* Re-initialised so that teardown can run its own checks on an empty loop. */
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_async_init(&fx->loop, &fx->wake, on_wake), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->watchdog), 0);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", port, &sin);
    int rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
    int e = errno;
    close(fd);
    assert_int_equal(rc, -1);
    assert_int_equal(e, ECONNREFUSED);
}

static void test_listener_stop_closes_idle_keepalive(void **state)
{
    struct fixture *fx = *state;
    start_listener(fx, NULL, SMALL_MAX);
    /* HTTP/1.1 without Connection: close stays open after the reply. */
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    struct client c;
    client_start(fx, &c, req, sizeof(req) - 1);
    c.mode = CLIENT_KEEP_ALIVE;
    client_run(&c);
    bool got = drive_until(fx, &c, 1);
    if (!got) {
        pthread_join(c.thread, NULL);
        fail_msg("no keep-alive response");
    }
    ferry_listener_stop(fx->l, on_done, fx);
    fx->l = NULL;
    /*
     * The server's request timeout is 10 s and the watchdog 5 s: an EOF
     * before the watchdog means stop closed the idle connection itself.
     */
    client_finish(fx, &c);
    assert_true(c.eof);
    fx->timed_out = false;
    uv_timer_start(&fx->watchdog, on_watchdog, WATCHDOG_MS, 0);
    while (fx->done_calls == 0 && !fx->timed_out) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&fx->watchdog);
    assert_int_equal(fx->done_calls, 1);
    struct response r;
    parse_response(&c, &r);
    assert_int_equal(r.status, 200);
    free(c.resp);
}

/* ---- issue 8: header limits, GET routes, TLS set-up ---- */

static void start_with(struct fixture *fx, struct ferry_listener_options *opt, bool webhooks)
{
    struct ferry_err err = {0};
    opt->port = 0;
    int rc = ferry_listener_start(&fx->l, &fx->loop, opt, webhooks ? on_webhook : NULL, fx, &err);
    if (rc != 0) {
        fail_msg("ferry_listener_start: %d %s", rc, err.msg);
    }
    fx->port = ferry_listener_port(fx->l);
}

static void test_listener_header_limits_431(void **state)
{
    struct fixture *fx = *state;
    struct ferry_listener_options opt = {.max_headers = 3, .max_header_bytes = 64};
    start_with(fx, &opt, true);
    struct client c;
    struct response r;
    size_t len;
    /* h2o consumes Host and Content-Length; these four and Connection count. */
    char *req = make_post("/webhooks/shop", "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n", "{}", 2, &len);
    roundtrip(fx, req, len, &c, &r);
    expect_json_error(&r, 431, "headers_too_large", "request has 5 header fields (limit 3)");
    free(c.resp);
    free(req);
    char big[200];
    snprintf(big, sizeof(big), "X-Big: %0100d\r\n", 7);
    req = make_post("/webhooks/shop", big, "{}", 2, &len);
    roundtrip(fx, req, len, &c, &r);
    expect_json_error(&r, 431, "headers_too_large", NULL);
    assert_non_null(strstr(r.body, "bytes of headers (limit 64)"));
    free(c.resp);
    free(req);
    assert_int_equal(fx->cap.calls, 0);
    expect_post_status(fx, "/webhooks/shop", "{}", 2, 202);
    assert_int_equal(fx->cap.calls, 1);
}

static struct ferry_deferred *g_get_pending;

static void on_get_later(uv_timer_t *t)
{
    (void)t;
    char *body = strdup("late text\n");
    assert_non_null(body);
    ferry_listener_complete_text(g_get_pending, 200, "text/plain; charset=utf-8", body,
                                 strlen(body));
    g_get_pending = NULL;
}

static void on_get(void *ud, const char *path, struct ferry_get_reply *reply)
{
    struct fixture *fx = ud;
    if (strcmp(path, "/now") == 0) {
        reply->content_type = "text/plain; version=0.0.4";
        reply->body = strdup("now 1\n");
        reply->len = reply->body ? strlen(reply->body) : 0;
    } else if (strcmp(path, "/later") == 0) {
        g_get_pending = ferry_listener_defer_get(reply);
        assert_non_null(g_get_pending);
        uv_timer_start(&fx->later, on_get_later, 0, 0);
    } else {
        reply->status = 404;
    }
}

static void get_roundtrip(struct fixture *fx, const char *path, struct client *c,
                          struct response *r)
{
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    roundtrip(fx, req, strlen(req), c, r);
}

/* A listener without webhooks (the admin one): GET routes, deferred text, 404s. */
static void test_listener_get_routes_without_webhooks(void **state)
{
    struct fixture *fx = *state;
    struct ferry_listener_options opt = {.get = on_get, .get_ud = fx, .name = "admin listener"};
    start_with(fx, &opt, false);
    struct client c;
    struct response r;
    get_roundtrip(fx, "/now?x=1", &c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4");
    assert_int_equal(r.body_len, 6);
    assert_memory_equal(r.body, "now 1\n", 6);
    free(c.resp);
    get_roundtrip(fx, "/later", &c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");
    assert_memory_equal(r.body, "late text\n", 10);
    free(c.resp);
    get_roundtrip(fx, "/healthz", &c, &r);
    assert_int_equal(r.status, 200);
    free(c.resp);
    get_roundtrip(fx, "/nowhere", &c, &r);
    expect_json_error(&r, 404, "not_found", "no route for /nowhere");
    free(c.resp);
    /* No webhook callback: a POST to a webhook path is not a route here. */
    expect_post_status(fx, "/webhooks/shop", "{}", 2, 404);
    assert_int_equal(fx->cap.calls, 0);
}

/* TLS set-up errors fail the start with the file named, and leave nothing on the loop. */
static void test_listener_tls_setup_errors(void **state)
{
    struct fixture *fx = *state;
    struct ferry_err err = {0};
    struct ferry_listener_options opt = {.tls_cert = "/nonexistent/cert.pem",
                                         .tls_key = "/nonexistent/key.pem"};
    assert_int_equal(ferry_listener_start(&fx->l, &fx->loop, &opt, on_webhook, fx, &err),
                     FERRY_ECONFIG);
    assert_null(fx->l);
    assert_non_null(strstr(err.msg, "/nonexistent/cert.pem"));
    opt.tls_key = NULL;
    assert_int_equal(ferry_listener_start(&fx->l, &fx->loop, &opt, on_webhook, fx, &err),
                     FERRY_ECONFIG);
    assert_non_null(strstr(err.msg, "both a certificate and a key"));
    /* A certificate file that holds no certificate. */
    char path[] = "/tmp/ferry-test-tls-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not pem\n", 8), 8);
    close(fd);
    opt.tls_cert = path;
    opt.tls_key = path;
    assert_int_equal(ferry_listener_start(&fx->l, &fx->loop, &opt, on_webhook, fx, &err),
                     FERRY_ECONFIG);
    assert_non_null(strstr(err.msg, "certificate chain"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_listener_deferred_reply_sent_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_deferred_json_text_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_post_reaches_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_subpath_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_empty_body_and_null_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_unknown_path_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_wrong_method_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_body_at_limit_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_body_over_limit_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_chunked_over_limit_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_chunked_body_reassembled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_two_mib_body_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_declared_length_beyond_h2o_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_listener_bad_instance_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_port_zero_gets_real_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_ipv6_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_bad_address_and_port_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_stop_closes_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_stop_closes_idle_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_header_limits_431, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_get_routes_without_webhooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_tls_setup_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
