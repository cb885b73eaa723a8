/* SPDX-License-Identifier: MIT */
/*
 * A small loopback HTTP/1.1 server for tests: it listens on 127.0.0.1 with
 * port 0, runs in its own thread, records every request and answers each
 * with whatever a handler, run in the server thread, decides. One request
 * per connection (it always answers "Connection: close"), which keeps the
 * server simple and still exercises a client's session handling, since
 * cookies do not depend on the connection.
 *
 * Every blocking wait in the server is bounded (5 s), so a broken client
 * fails a test instead of hanging it.
 */
#ifndef FERRY_TEST_HTTP_SERVER_H
#define FERRY_TEST_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#define TEST_HTTP_MAX_HEADERS 64

struct test_http_request {
    char *method;
    char *target; /* path and query as sent */
    size_t nheaders;
    char *header_names[TEST_HTTP_MAX_HEADERS];
    char *header_values[TEST_HTTP_MAX_HEADERS];
    char *body; /* NUL-terminated; "" when none */
    size_t body_len;
};

struct test_http_response {
    int status;          /* default 200 */
    const char *headers; /* extra header lines, each ending in "\r\n"; may be NULL */
    const char *body;    /* may be NULL */
    size_t body_len;     /* 0 with a body: strlen(body) */
    bool no_length;      /* omit Content-Length: the body ends when the connection closes */
    bool hang;           /* never answer; wait until the client gives up or the server stops */
    const char *interim; /* raw bytes sent before the status line, e.g. a 1xx response */
};

/* Runs in the server thread; fills *resp (zeroed beforehand) for `req`. */
typedef void (*test_http_handler_fn)(const struct test_http_request *req,
                                     struct test_http_response *resp, void *ud);

struct test_http_server;

/* Start on 127.0.0.1:0. NULL on failure. `handler` NULL: 200 with an empty body. */
struct test_http_server *test_http_server_start(test_http_handler_fn handler, void *ud);
/* Stop the thread, close everything, free recorded requests. Accepts NULL. */
void test_http_server_stop(struct test_http_server *s);
int test_http_server_port(const struct test_http_server *s);
/* "http://127.0.0.1:<port><path>" into buf. */
void test_http_server_url(const struct test_http_server *s, const char *path, char *buf,
                          size_t len);

size_t test_http_server_nrequests(struct test_http_server *s);
/* Copy of request i (caller frees with test_http_request_free), or NULL. */
struct test_http_request *test_http_server_request(struct test_http_server *s, size_t i);
void test_http_request_free(struct test_http_request *r);
/* First header named `name` (case-insensitive), or NULL. */
const char *test_http_request_header(const struct test_http_request *r, const char *name);

/* A TCP port on 127.0.0.1 on which nothing listens, held until test_closed_port_release. */
int test_closed_port_reserve(int *fd);
void test_closed_port_release(int fd);

#endif
