/* SPDX-License-Identifier: MIT */
/*
 * Loopback HTTP server for unit tests (see test_http_server.h). Deliberately
 * minimal: HTTP/1.1, Content-Length bodies only (libcurl sends POSTFIELDS
 * that way), one request per connection. The stop pipe lets the test thread
 * wake the server from any wait, so stopping never depends on a timeout.
 */
#include "test_http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_DEADLINE_MS   5000
#define HANG_DEADLINE_MS 10000
#define HEAD_MAX         (64 * 1024)
#define BODY_MAX         (16 * 1024 * 1024)

struct test_http_server {
    int lfd;
    int port;
    int stop[2];
    pthread_t thread;
    bool started;
    test_http_handler_fn handler;
    void *ud;
    pthread_mutex_t mu;
    struct test_http_request **reqs;
    size_t nreqs;
    size_t cap;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until fd is readable, the stop pipe fires or the deadline passes.
 * 1 readable, 0 stop or timeout.
 */
static int wait_readable(struct test_http_server *s, int fd, long long deadline)
{
    for (;;) {
        long long left = deadline - mono_ms();
        if (left <= 0) {
            return 0;
        }
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->stop[0], .events = POLLIN}};
        int n = poll(p, 2, (int)left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || (p[1].revents & POLLIN)) {
            return 0;
        }
        if (p[0].revents) {
            return 1;
        }
    }
}

void test_http_request_free(struct test_http_request *r)
{
    if (!r) {
        return;
    }
    free(r->method);
    free(r->target);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->header_names[i]);
        free(r->header_values[i]);
    }
    free(r->body);
    free(r);
}

static struct test_http_request *request_copy(const struct test_http_request *r)
{
    struct test_http_request *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->method = strdup(r->method);
    c->target = strdup(r->target);
    c->body = malloc(r->body_len + 1);
    if (c->body) {
        memcpy(c->body, r->body, r->body_len + 1);
    }
    c->body_len = r->body_len;
    for (size_t i = 0; i < r->nheaders; i++) {
        c->header_names[i] = strdup(r->header_names[i]);
        c->header_values[i] = strdup(r->header_values[i]);
        c->nheaders++;
    }
    return c;
}

static char *trimmed(const char *s, size_t n)
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        n--;
    }
    return strndup(s, n);
}

/* Parse the head in buf[0..len) into r. 0 or -1. */
static int parse_head(const char *buf, size_t len, struct test_http_request *r)
{
    const char *end = buf + len;
    const char *eol = memchr(buf, '\n', len);
    if (!eol) {
        return -1;
    }
    const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2) {
        return -1;
    }
    r->method = strndup(buf, (size_t)(sp1 - buf));
    r->target = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    const char *line = eol + 1;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
        const char *colon = memchr(line, ':', n);
        if (colon && r->nheaders < TEST_HTTP_MAX_HEADERS) {
            r->header_names[r->nheaders] = trimmed(line, (size_t)(colon - line));
            r->header_values[r->nheaders] = trimmed(colon + 1, n - (size_t)(colon - line) - 1);
            r->nheaders++;
        }
        if (!nl) {
            break;
        }
        line = nl + 1;
    }
    return 0;
}

const char *test_http_request_header(const struct test_http_request *r, const char *name)
{
    for (size_t i = 0; r && i < r->nheaders; i++) {
        if (strcasecmp(r->header_names[i], name) == 0) {
            return r->header_values[i];
        }
    }
    return NULL;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        /* MSG_NOSIGNAL: a client that gave up must not kill the test with SIGPIPE. */
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        data += n;
        len -= (size_t)n;
    }
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 404:
        return "Not Found";
    case 500:
        return "Internal Server Error";
    default:
        return "Status";
    }
}

static void handle_conn(struct test_http_server *s, int fd)
{
    char *buf = malloc(HEAD_MAX + 1);
    size_t len = 0;
    char *head_end = NULL;
    long long deadline = mono_ms() + IO_DEADLINE_MS;
    struct test_http_request *r = calloc(1, sizeof(*r));
    struct test_http_response resp = {0};

    if (!buf || !r) {
        goto cleanup;
    }
    while (!head_end) {
        if (len >= HEAD_MAX || !wait_readable(s, fd, deadline)) {
            goto cleanup;
        }
        ssize_t n = recv(fd, buf + len, HEAD_MAX - len, 0);
        if (n <= 0) {
            goto cleanup;
        }
        len += (size_t)n;
        buf[len] = '\0';
        head_end = strstr(buf, "\r\n\r\n");
    }
    size_t head_len = (size_t)(head_end - buf) + 2;
    if (parse_head(buf, head_len, r) < 0 || !r->method || !r->target) {
        goto cleanup;
    }
    const char *cl = test_http_request_header(r, "Content-Length");
    size_t body_len = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
    if (body_len > BODY_MAX) {
        goto cleanup;
    }
    r->body = malloc(body_len + 1);
    if (!r->body) {
        goto cleanup;
    }
    size_t have = len - (head_len + 2);
    if (have > body_len) {
        have = body_len;
    }
    memcpy(r->body, head_end + 4, have);
    while (have < body_len) {
        if (!wait_readable(s, fd, deadline)) {
            goto cleanup;
        }
        ssize_t n = recv(fd, r->body + have, body_len - have, 0);
        if (n <= 0) {
            goto cleanup;
        }
        have += (size_t)n;
    }
    r->body[body_len] = '\0';
    r->body_len = body_len;

    pthread_mutex_lock(&s->mu);
    if (s->nreqs == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct test_http_request **v = realloc(s->reqs, cap * sizeof(*v));
        if (v) {
            s->reqs = v;
            s->cap = cap;
        }
    }
    if (s->nreqs < s->cap) {
        s->reqs[s->nreqs++] = r;
        r = NULL;
    }
    struct test_http_request *view = r ? r : s->reqs[s->nreqs - 1];
    pthread_mutex_unlock(&s->mu);

    resp.status = 200;
    if (s->handler) {
        s->handler(view, &resp, s->ud);
    }
    if (resp.hang) {
        /* Until the client closes its end (it timed out) or the test stops us. */
        long long hang_deadline = mono_ms() + HANG_DEADLINE_MS;
        char sink[256];
        while (wait_readable(s, fd, hang_deadline) && recv(fd, sink, sizeof(sink), 0) > 0) {
        }
        goto cleanup;
    }
    size_t blen = resp.body ? (resp.body_len ? resp.body_len : strlen(resp.body)) : 0;
    char head[4096];
    int hn;
    if (resp.no_length) {
        hn = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nConnection: close\r\n%s\r\n",
                      resp.status, reason(resp.status), resp.headers ? resp.headers : "");
    } else {
        hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: %zu\r\n%s\r\n",
                      resp.status, reason(resp.status), blen, resp.headers ? resp.headers : "");
    }
    if (resp.interim) {
        send_all(fd, resp.interim, strlen(resp.interim));
    }
    if (hn > 0 && (size_t)hn < sizeof(head)) {
        send_all(fd, head, (size_t)hn);
        if (blen > 0) {
            send_all(fd, resp.body, blen);
        }
    }
cleanup:
    free(buf);
    test_http_request_free(r);
}

static void *server_main(void *arg)
{
    struct test_http_server *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN},
                              {.fd = s->stop[0], .events = POLLIN}};
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || (p[1].revents & POLLIN)) {
            break;
        }
        if (p[0].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);
            if (fd >= 0) {
                handle_conn(s, fd);
                close(fd);
            }
        }
    }
    return NULL;
}

struct test_http_server *test_http_server_start(test_http_handler_fn handler, void *ud)
{
    struct test_http_server *s = calloc(1, sizeof(*s));
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);

    if (!s) {
        return NULL;
    }
    s->lfd = -1;
    s->stop[0] = s->stop[1] = -1;
    s->handler = handler;
    s->ud = ud;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(s->lfd, 16) != 0 || getsockname(s->lfd, (struct sockaddr *)&a, &alen) != 0 ||
        pipe(s->stop) != 0) {
        goto fail;
    }
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->thread, NULL, server_main, s) != 0) {
        goto fail;
    }
    s->started = true;
    return s;
fail:
    test_http_server_stop(s);
    return NULL;
}

void test_http_server_stop(struct test_http_server *s)
{
    if (!s) {
        return;
    }
    if (s->started) {
        ssize_t n = write(s->stop[1], "x", 1);
        (void)n;
        pthread_join(s->thread, NULL);
    }
    if (s->lfd >= 0) {
        close(s->lfd);
    }
    if (s->stop[0] >= 0) {
        close(s->stop[0]);
        close(s->stop[1]);
    }
    for (size_t i = 0; i < s->nreqs; i++) {
        test_http_request_free(s->reqs[i]);
    }
    free(s->reqs);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int test_http_server_port(const struct test_http_server *s)
{
    return s->port;
}

void test_http_server_url(const struct test_http_server *s, const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "http://127.0.0.1:%d%s", s->port, path);
}

size_t test_http_server_nrequests(struct test_http_server *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->nreqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

struct test_http_request *test_http_server_request(struct test_http_server *s, size_t i)
{
    struct test_http_request *c = NULL;
    pthread_mutex_lock(&s->mu);
    if (i < s->nreqs) {
        c = request_copy(s->reqs[i]);
    }
    pthread_mutex_unlock(&s->mu);
    return c;
}

int test_closed_port_reserve(int *fd)
{
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Bound but never listening: connecting is refused, and no one else can take the port. */
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &alen) != 0) {
        if (s >= 0) {
            close(s);
        }
        return -1;
    }
    *fd = s;
    return ntohs(a.sin_port);
}

void test_closed_port_release(int fd)
{
    if (fd >= 0) {
        close(fd);
    }
}
