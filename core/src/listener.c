/* SPDX-License-Identifier: MIT */
/*
 * The webhook listener: libh2o 2.2 (libuv build) serving HTTP/1.1 on the
 * daemon's loop, over TLS when given a certificate (h2o does the handshake
 * with OpenSSL before HTTP/1 starts; no ALPN, so never HTTP/2). One
 * catch-all h2o handler does the routing itself, so that every reply,
 * errors included, is a JSON body and the limits are ours, not h2o's
 * text/plain defaults. The same code serves the admin listener, which has
 * GET routes instead of webhooks. Shutdown is the delicate part: h2o 2.2 has no
 * API to close HTTP/1 connections, and its h2o_context_dispose() re-enters
 * uv_run(), which a loop callback must not do; both are handled below with
 * h2o's public API only and are explained where they happen.
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"

#define DEFAULT_ADDRESS  "127.0.0.1"
#define DEFAULT_MAX_BODY ((size_t)1024 * 1024)
#define DEFAULT_NAME     "webhook listener"
/* h2o 2.2 parses at most H2O_MAX_HEADERS (100) fields; ours is stricter by default. */
#define DEFAULT_MAX_HEADERS      64
#define DEFAULT_MAX_HEADER_BYTES ((size_t)16 * 1024)
#define GET_PATH_MAX             1024
#define LISTEN_BACKLOG           128
#define INSTANCE_MAX             64
#define WEBHOOK_PREFIX           "/webhooks/"
/*
 * Whole-request read deadline (headers and body together: h2o 2.2 arms it
 * once when it starts reading a request and disarms it only when the body is
 * complete), and the keep-alive idle limit between requests. It is what cuts
 * off a slowloris client.
 */
#define REQUEST_TIMEOUT_MS 10000 /* default for options.idle_timeout_ms */
/* How far h2o's own entity limit sits above ours; see entity_limit(). */
#define ENTITY_SLACK_MAX ((size_t)16 * 1024 * 1024)
#define ENTITY_SLACK_MIN ((size_t)64 * 1024)

struct listener_handler {
    h2o_handler_t super;
    struct ferry_listener *l;
};

/* One accepted TCP connection; h2o owns handle.data, so we find ourselves by offset. */
struct listener_conn {
    uv_tcp_t tcp;
    struct ferry_listener *l;
};

struct ferry_listener {
    uv_loop_t *loop;
    uv_tcp_t listen;
    /*
     * Two never-started handles whose chained closes tell us that the
     * handles h2o closed with a NULL callback have been released; see
     * finish_stop().
     */
    uv_idle_t fin_first;
    uv_idle_t fin_second;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    bool config_ready;  /* config needs h2o_config_dispose */
    bool ctx_ready;     /* ctx needs dispose_context */
    bool stopping;      /* ferry_listener_stop was called */
    bool listen_closed; /* the listening handle's close callback ran */
    bool finishing;     /* finish_stop ran; the fin_* closes are under way */
    size_t nconns;      /* accepted connections whose handle is not closed yet */
    size_t max_body;
    size_t max_headers;
    size_t max_header_bytes;
    int port;
    ferry_webhook_cb cb;
    void *ud;
    ferry_get_cb get;
    void *get_ud;
    SSL_CTX *ssl_ctx; /* NULL: plain HTTP */
    char name[48];
    void (*done)(void *ud);
    void *done_ud;
};

static void finish_stop(struct ferry_listener *l);

/*
 * A deferred reply. The handle is ours (malloc); a small link lives in the
 * request's memory pool, so that h2o tells us through the link's dispose
 * callback when the request is gone (client closed) before we answered.
 */
struct deferred_link {
    struct ferry_deferred *d; /* NULL once the reply was sent */
};

struct ferry_deferred {
    struct ferry_listener *l;
    h2o_req_t *req; /* NULL once the request is gone */
    struct deferred_link *link;
};

struct reply_impl {
    struct ferry_listener *l;
    h2o_req_t *req;
};

static void on_request_gone(void *p)
{
    struct deferred_link *link = p;
    if (link->d) {
        link->d->req = NULL;
        link->d->link = NULL;
    }
}

static int64_t wall_clock_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 431:
        return "Request Header Fields Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        break;
    }
    if (status < 300) {
        return "OK";
    }
    if (status < 500) {
        return "Client Error";
    }
    return "Server Error";
}

/*
 * h2o 2.2 buffers the whole body before any handler runs and answers a body
 * over globalconf.max_request_entity_size itself, with a text/plain 413. We
 * want the JSON 413, so h2o's limit sits above ours (twice max_body plus
 * 64 KiB, the extra part capped at 16 MiB + 64 KiB): a body up to that
 * size reaches on_req and gets our exact check; anything larger still gets
 * h2o's plain-text 413 (a declared Content-Length before the body is read,
 * a chunked body as soon as it crosses the limit) and the connection closes.
 * Either way the callback never sees it, and the memory a request can pin
 * stays bounded.
 */
static size_t entity_limit(size_t max_body)
{
    size_t slack = max_body < ENTITY_SLACK_MAX ? max_body : ENTITY_SLACK_MAX;
    slack += ENTITY_SLACK_MIN;
    if (max_body > SIZE_MAX - slack) {
        return SIZE_MAX;
    }
    return max_body + slack;
}

static bool instance_valid(const char *s, size_t len)
{
    if (len == 0 || len > INSTANCE_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static void send_typed(struct ferry_listener *l, h2o_req_t *req, int status, const char *allow,
                       const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    /* A draining listener must not leave a keep-alive connection behind it. */
    if (l->stopping) {
        req->http1_is_persistent = 0;
    }
    if (allow) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    }
    if (status == 204 || status == 304) {
        /* RFC 9110 forbids a body (and Content-Length on 204): send nothing. */
        h2o_send_inline(req, "", 0);
        return;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    /* Without a length h2o would chunk a 200 and close the connection after other statuses. */
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

static void send_body(struct ferry_listener *l, h2o_req_t *req, int status, const char *allow,
                      const char *body, size_t len)
{
    send_typed(l, req, status, allow, "application/json", body, len);
}

/* Takes ownership of `body` (may be NULL: "{}"). */
static void send_json_new(struct ferry_listener *l, h2o_req_t *req, int status, const char *allow,
                          json_t *body)
{
    char *text = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(body);
        if (!text) {
            static const char oom[] =
                "{\"error\":\"internal\",\"message\":\"cannot encode reply\"}";
            send_body(l, req, 500, NULL, oom, sizeof(oom) - 1);
            return;
        }
    }
    if (text) {
        send_body(l, req, status, allow, text, strlen(text));
    } else {
        send_body(l, req, status, allow, "{}", 2);
    }
    free(text);
}

/*
 * Request paths are attacker-chosen bytes and jansson refuses invalid UTF-8,
 * so the echo in an error message keeps printable ASCII only.
 */
static void send_error(struct ferry_listener *l, h2o_req_t *req, int status, const char *allow,
                       const char *code, const char *prefix, const char *detail, size_t detail_len)
{
    char msg[512];
    size_t n = (size_t)snprintf(msg, sizeof(msg), "%s", prefix);
    if (n >= sizeof(msg)) {
        n = sizeof(msg) - 1;
    }
    for (size_t i = 0; i < detail_len && n + 1 < sizeof(msg); i++) {
        unsigned char c = (unsigned char)detail[i];
        msg[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    msg[n] = '\0';
    json_t *body = json_pack("{s:s,s:s}", "error", code, "message", msg);
    if (!body) {
        static const char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
        send_body(l, req, 500, NULL, oom, sizeof(oom) - 1);
        return;
    }
    send_json_new(l, req, status, allow, body);
}

static void send_not_found(struct ferry_listener *l, h2o_req_t *req, h2o_iovec_t path)
{
    send_error(l, req, 404, NULL, "not_found", "no route for ", path.base, path.len);
}

/*
 * Copies the request headers into one allocation of NUL-terminated strings.
 * h2o 2.2 consumes Host, Content-Length, Transfer-Encoding, Expect and
 * Upgrade while parsing, so those are not in req->headers and not passed on;
 * everything else comes in arrival order with its original name case.
 */
static int copy_headers(const h2o_req_t *req, struct ferry_http_header **out, size_t *count)
{
    size_t n = req->headers.size;
    size_t bytes = n * sizeof(struct ferry_http_header);
    for (size_t i = 0; i < n; i++) {
        bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 2;
    }
    char *block = malloc(bytes ? bytes : 1);
    if (!block) {
        return FERRY_ENOMEM;
    }
    struct ferry_http_header *hdrs = (struct ferry_http_header *)(void *)block;
    char *p = block + n * sizeof(struct ferry_http_header);
    for (size_t i = 0; i < n; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        const char *name = h->orig_name ? h->orig_name : h->name->base;
        memcpy(p, name, h->name->len);
        p[h->name->len] = '\0';
        hdrs[i].name = p;
        p += h->name->len + 1;
        if (h->value.len) {
            memcpy(p, h->value.base, h->value.len);
        }
        p[h->value.len] = '\0';
        hdrs[i].value = p;
        p += h->value.len + 1;
    }
    *out = hdrs;
    *count = n;
    return 0;
}

static void handle_webhook(struct ferry_listener *l, h2o_req_t *req, const char *inst,
                           size_t inst_len, const char *rest, size_t rest_len)
{
    char instance[INSTANCE_MAX + 1];
    char *path = NULL;
    char *body = NULL;
    struct ferry_http_header *headers = NULL;
    size_t nheaders = 0;
    struct ferry_webhook_reply reply = {.status = 500, .body = NULL};
    struct reply_impl impl = {.l = l, .req = req};
    reply.impl = &impl;

    if (req->entity.len > l->max_body) {
        char msg[64];
        snprintf(msg, sizeof(msg), "%zu bytes", l->max_body);
        send_error(l, req, 413, NULL, "too_large", "body exceeds ", msg, strlen(msg));
        goto cleanup;
    }
    memcpy(instance, inst, inst_len);
    instance[inst_len] = '\0';
    path = malloc(rest_len + 1);
    body = malloc(req->entity.len + 1);
    if (!path || !body || copy_headers(req, &headers, &nheaders) < 0) {
        send_error(l, req, 503, NULL, "unavailable", "out of memory", "", 0);
        goto cleanup;
    }
    if (rest_len) {
        memcpy(path, rest, rest_len);
    }
    path[rest_len] = '\0';
    if (req->entity.len) {
        memcpy(body, req->entity.base, req->entity.len);
    }
    body[req->entity.len] = '\0';

    struct ferry_webhook wh = {
        .path = path,
        .headers = headers,
        .nheaders = nheaders,
        .body = body,
        .body_len = req->entity.len,
        .received_at_ms = wall_clock_ms(),
    };
    l->cb(l->ud, instance, &wh, &reply);

    if (reply.deferred) {
        json_decref(reply.body);
        goto cleanup; /* answered by ferry_listener_complete */
    }
    if (reply.status < 200 || reply.status > 599) {
        ferry_error("webhook callback for instance %s returned HTTP status %d", instance,
                    reply.status);
        json_decref(reply.body);
        send_error(l, req, 500, NULL, "internal", "invalid reply from the handler", "", 0);
        goto cleanup;
    }
    send_json_new(l, req, reply.status, NULL, reply.body);
cleanup:
    free(headers);
    free(body);
    free(path);
}

static struct ferry_deferred *defer_impl(struct reply_impl *impl)
{
    struct ferry_deferred *d = calloc(1, sizeof(*d));
    if (!d) {
        return NULL;
    }
    struct deferred_link *link =
        h2o_mem_alloc_shared(&impl->req->pool, sizeof(*link), on_request_gone);
    link->d = d;
    d->l = impl->l;
    d->req = impl->req;
    d->link = link;
    return d;
}

struct ferry_deferred *ferry_listener_defer(struct ferry_webhook_reply *reply)
{
    struct reply_impl *impl = reply ? reply->impl : NULL;
    if (!impl || reply->deferred) {
        return reply ? reply->deferred : NULL;
    }
    reply->deferred = defer_impl(impl);
    return reply->deferred;
}

struct ferry_deferred *ferry_listener_defer_get(struct ferry_get_reply *reply)
{
    struct reply_impl *impl = reply ? reply->impl : NULL;
    if (!impl || reply->deferred) {
        return reply ? reply->deferred : NULL;
    }
    reply->deferred = defer_impl(impl);
    return reply->deferred;
}

void ferry_listener_complete_text(struct ferry_deferred *d, int status, const char *content_type,
                                  char *body, size_t len)
{
    if (!d) {
        free(body);
        return;
    }
    if (d->req) {
        h2o_req_t *req = d->req;
        d->link->d = NULL; /* sending may dispose the request: forget us first */
        if (status < 200 || status > 599) {
            send_error(d->l, req, 500, NULL, "internal", "invalid reply from the handler", "", 0);
        } else {
            send_typed(d->l, req, status, NULL, content_type ? content_type : "application/json",
                       body ? body : "", body ? len : 0);
        }
    }
    free(body);
    free(d);
}

static void handle_get(struct ferry_listener *l, h2o_req_t *req, h2o_iovec_t path)
{
    char p[GET_PATH_MAX + 1];
    struct reply_impl impl = {.l = l, .req = req};
    struct ferry_get_reply reply = {.status = 200, .impl = &impl};
    if (path.len > GET_PATH_MAX) {
        send_not_found(l, req, path);
        return;
    }
    memcpy(p, path.base, path.len);
    p[path.len] = '\0';
    l->get(l->get_ud, p, &reply);
    if (reply.deferred) {
        free(reply.body);
        return; /* answered by ferry_listener_complete_text */
    }
    if (reply.status == 404 && !reply.body) {
        send_not_found(l, req, path);
        return;
    }
    if (reply.status < 200 || reply.status > 599) {
        ferry_error("%s: GET %s handler returned HTTP status %d", l->name, p, reply.status);
        free(reply.body);
        send_error(l, req, 500, NULL, "internal", "invalid reply from the handler", "", 0);
        return;
    }
    send_typed(l, req, reply.status, NULL,
               reply.content_type ? reply.content_type : "application/json",
               reply.body ? reply.body : "", reply.body ? reply.len : 0);
    free(reply.body);
}

/*
 * h2o has parsed the head already (bounded by its own compiled-in limits);
 * these are the operator's tighter ones, checked before any route.
 */
static bool headers_within_limits(const struct ferry_listener *l, const h2o_req_t *req, char *why,
                                  size_t whylen)
{
    size_t bytes = 0;
    if (req->headers.size > l->max_headers) {
        snprintf(why, whylen, "%zu header fields (limit %zu)", req->headers.size, l->max_headers);
        return false;
    }
    for (size_t i = 0; i < req->headers.size; i++) {
        bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    }
    if (bytes > l->max_header_bytes) {
        snprintf(why, whylen, "%zu bytes of headers (limit %zu)", bytes, l->max_header_bytes);
        return false;
    }
    return true;
}

void ferry_listener_complete(struct ferry_deferred *d, int status, json_t *body)
{
    if (!d) {
        json_decref(body);
        return;
    }
    if (d->req) {
        h2o_req_t *req = d->req;
        d->link->d = NULL; /* sending may dispose the request: forget us first */
        if (status < 200 || status > 599) {
            json_decref(body);
            send_error(d->l, req, 500, NULL, "internal", "invalid reply from the handler", "", 0);
        } else {
            send_json_new(d->l, req, status, NULL, body);
        }
    } else {
        json_decref(body);
    }
    free(d);
}

void ferry_listener_complete_json_text(struct ferry_deferred *d, int status, const char *body,
                                       size_t len)
{
    if (!d) {
        return;
    }
    if (d->req) {
        h2o_req_t *req = d->req;
        d->link->d = NULL; /* sending may dispose the request: forget us first */
        if (status < 200 || status > 599) {
            send_error(d->l, req, 500, NULL, "internal", "invalid reply from the handler", "", 0);
        } else {
            send_body(d->l, req, status, NULL, body ? body : "{}", body ? len : 2);
        }
    }
    free(d);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct ferry_listener *l = ((struct listener_handler *)self)->l;
    /* Normalized (dot segments resolved) and without the query string. */
    h2o_iovec_t path = req->path_normalized;
    bool is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
                  h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    char why[96];

    if (!headers_within_limits(l, req, why, sizeof(why))) {
        send_error(l, req, 431, NULL, "headers_too_large", "request has ", why, strlen(why));
        return 0;
    }

    if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        if (!is_get) {
            send_error(l, req, 405, "GET, HEAD", "method_not_allowed", "use GET on ", path.base,
                       path.len);
            return 0;
        }
        static const char ok[] = "{\"status\":\"ok\"}";
        send_body(l, req, 200, NULL, ok, sizeof(ok) - 1);
        return 0;
    }

    if (is_get && l->get) {
        handle_get(l, req, path);
        return 0;
    }
    size_t plen = sizeof(WEBHOOK_PREFIX) - 1;
    if (!l->cb || path.len <= plen || memcmp(path.base, WEBHOOK_PREFIX, plen) != 0) {
        send_not_found(l, req, path);
        return 0;
    }
    const char *inst = path.base + plen;
    const char *end = path.base + path.len;
    const char *slash = memchr(inst, '/', (size_t)(end - inst));
    size_t inst_len = (size_t)((slash ? slash : end) - inst);
    if (!instance_valid(inst, inst_len)) {
        send_not_found(l, req, path);
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        send_error(l, req, 405, "POST", "method_not_allowed", "use POST on ", path.base, path.len);
        return 0;
    }
    handle_webhook(l, req, inst, inst_len, slash, slash ? (size_t)(end - slash) : 0);
    return 0;
}

static void maybe_finish(struct ferry_listener *l)
{
    if (l->stopping && l->listen_closed && l->nconns == 0 && !l->finishing) {
        finish_stop(l);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    struct listener_conn *c = (struct listener_conn *)(void *)h;
    struct ferry_listener *l = c->l;
    free(c);
    l->nconns--;
    maybe_finish(l);
}

static void on_accept(uv_stream_t *server, int status)
{
    struct ferry_listener *l = server->data;
    if (status < 0) {
        /* EMFILE and friends: h2o keeps serving the open connections; try again on the next one. */
        ferry_warn("%s: accept failed: %s", l->name, uv_strerror(status));
        return;
    }
    struct listener_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        ferry_error("%s: out of memory accepting a connection", l->name);
        return;
    }
    c->l = l;
    uv_tcp_init(l->loop, &c->tcp);
    l->nconns++;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        ferry_warn("%s: accept failed: %s", l->name, uv_strerror(rc));
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&l->accept_ctx, sock);
}

static void free_listener(struct ferry_listener *l)
{
    if (l->config_ready) {
        h2o_config_dispose(&l->config);
    }
    SSL_CTX_free(l->ssl_ctx);
    free(l);
}

static void on_fin_second_closed(uv_handle_t *h)
{
    struct ferry_listener *l = h->data;
    void (*done)(void *) = l->done;
    void *done_ud = l->done_ud;
    char name[sizeof(l->name)];
    memcpy(name, l->name, sizeof(name));
    free_listener(l);
    ferry_info("%s stopped", name);
    if (done) {
        done(done_ud);
    }
}

static void on_fin_first_closed(uv_handle_t *h)
{
    struct ferry_listener *l = h->data;
    /*
     * libuv finishes every handle closed before this pass in the same pass,
     * but in an order of its own; a close issued now lands in the next pass,
     * after all of them, so only then is l->ctx (which embeds h2o's timers)
     * no longer referenced by the loop.
     */
    uv_close((uv_handle_t *)&l->fin_second, on_fin_second_closed);
}

static void dispose_timeout(h2o_loop_t *loop, h2o_timeout_t *t)
{
    /* h2o asserts on leftover entries; after the last connection there should be none. */
    while (!h2o_linklist_is_empty(&t->_entries)) {
        h2o_timeout_entry_t *e =
            H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, t->_entries.next);
        h2o_timeout_unlink(e);
    }
    h2o_timeout_dispose(loop, t);
}

/*
 * h2o_context_dispose() of libh2o 2.2.5 minus its final
 * uv_run(UV_RUN_NOWAIT): libuv forbids re-entering uv_run from a callback,
 * and we get here from close callbacks. The steps and their order are
 * h2o's; the NULL-callback closes it issues are waited for by the fin_*
 * handles instead.
 */
static void dispose_context(h2o_context_t *ctx)
{
    h2o_globalconf_t *config = ctx->globalconf;
    for (size_t i = 0; config->hosts[i] != NULL; ++i) {
        h2o_hostconf_t *hostconf = config->hosts[i];
        for (size_t j = 0; j != hostconf->paths.size; ++j) {
            h2o_context_dispose_pathconf_context(ctx, hostconf->paths.entries + j);
        }
        h2o_context_dispose_pathconf_context(ctx, &hostconf->fallback_path);
    }
    free(ctx->_pathconfs_inited.entries);
    free(ctx->_module_configs);
    dispose_timeout(ctx->loop, &ctx->zero_timeout);
    dispose_timeout(ctx->loop, &ctx->one_sec_timeout);
    dispose_timeout(ctx->loop, &ctx->hundred_ms_timeout);
    dispose_timeout(ctx->loop, &ctx->handshake_timeout);
    dispose_timeout(ctx->loop, &ctx->http1.req_timeout);
    dispose_timeout(ctx->loop, &ctx->http2.idle_timeout);
    dispose_timeout(ctx->loop, &ctx->http2.graceful_shutdown_timeout);
    dispose_timeout(ctx->loop, &ctx->proxy.io_timeout);
    h2o_filecache_destroy(ctx->filecache);
    ctx->filecache = NULL;
    for (size_t i = 0; i != ctx->storage.size; ++i) {
        h2o_context_storage_item_t *item = ctx->storage.entries + i;
        if (item->dispose != NULL) {
            item->dispose(item->data);
        }
    }
    free(ctx->storage.entries);
    h2o_multithread_unregister_receiver(ctx->queue, &ctx->receivers.hostinfo_getaddr);
    h2o_multithread_destroy_queue(ctx->queue);
    if (ctx->_timestamp_cache.value != NULL) {
        h2o_mem_release_shared(ctx->_timestamp_cache.value);
    }
}

static void finish_stop(struct ferry_listener *l)
{
    l->finishing = true;
    if (l->ctx_ready) {
        dispose_context(&l->ctx);
        l->ctx_ready = false;
    }
    uv_close((uv_handle_t *)&l->fin_first, on_fin_first_closed);
}

static void on_listen_closed(uv_handle_t *h)
{
    struct ferry_listener *l = h->data;
    l->listen_closed = true;
    maybe_finish(l);
}

static int mark_not_persistent(h2o_req_t *req, void *cbdata)
{
    (void)cbdata;
    req->http1_is_persistent = 0;
    return 0;
}

void ferry_listener_stop(struct ferry_listener *l, void (*done)(void *ud), void *ud)
{
    if (!l || l->stopping) {
        return;
    }
    l->stopping = true;
    l->done = done;
    l->done_ud = ud;
    uv_close((uv_handle_t *)&l->listen, on_listen_closed);
    /*
     * Not h2o_context_request_shutdown(): its HTTP/2 half arms a GOAWAY
     * resend on one_sec_timeout although HTTP/2 is off here. The flag alone
     * is all HTTP/1 looks at (keep-alive off for requests parsed from now).
     */
    l->ctx.shutdown_requested = 1;
    /*
     * h2o 2.2 has no call that closes HTTP/1 connections. A response being
     * written now would put its connection back into keep-alive when done,
     * so drop the flag: h2o then closes it after the write. Every other
     * connection is reading a request (idle keep-alive, or a request not yet
     * complete) and has an entry on the request timeout; running that
     * timeout as if its deadline had passed closes them through h2o's own
     * path, which frees its state and then our uv_tcp_t (on_conn_closed).
     * A request already handed to the callback has finished by now: the
     * callback is synchronous.
     */
    H2O_HTTP1_CALLBACKS.foreach_request(&l->ctx, mark_not_persistent, NULL);
    h2o_timeout_run(l->loop, &l->ctx.http1.req_timeout, UINT64_MAX);
    /* TLS connections still in their handshake are not HTTP/1 ones yet: they
     * sit on the handshake timeout, whose expiry closes them the same way. */
    h2o_timeout_run(l->loop, &l->ctx.handshake_timeout, UINT64_MAX);
}

int ferry_listener_port(const struct ferry_listener *l)
{
    return l ? l->port : -1;
}

/*
 * The socket is bound and listening before any uv handle exists, so that a
 * failure (address in use, bad address) leaves nothing on the loop that
 * would need a close callback before the caller can give up.
 */
static int open_socket(const struct ferry_listener_options *opt, const char *name,
                       const char *address, int *fd_out, struct ferry_err *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int fd = -1;
    int rc;
    memset(&ss, 0, sizeof(ss));
    if (opt->port < 0 || opt->port > 65535) {
        return ferry_err_set(err, FERRY_EINVAL, "%s: invalid port %d", name, opt->port);
    }
    if (uv_ip4_addr(address, opt->port, (struct sockaddr_in *)&ss) == 0) {
        sslen = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(address, opt->port, (struct sockaddr_in6 *)&ss) == 0) {
        sslen = sizeof(struct sockaddr_in6);
    } else {
        return ferry_err_set(err, FERRY_EINVAL, "%s: \"%s\" is not an IPv4 or IPv6 literal", name,
                             address);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        ferry_err_set(err, rc, "%s: socket: %s", name, strerror(errno));
        goto cleanup;
    }
    /* As libuv does on bind: a restart must not wait for TIME_WAIT. */
    int on = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        rc = -errno;
        ferry_err_set(err, rc, "%s: cannot listen on %s port %d: %s", name, address, opt->port,
                      strerror(errno));
        goto cleanup;
    }
    *fd_out = fd;
    fd = -1;
    rc = 0;
cleanup:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

static int read_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return -1;
}

/* A passphrase-protected key must fail the start, not prompt on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)ud;
    return 0;
}

static int tls_error(struct ferry_err *err, const char *name, const char *what, const char *file)
{
    char detail[200] = "";
    unsigned long e = ERR_get_error();
    if (e) {
        ERR_error_string_n(e, detail, sizeof(detail));
    }
    ERR_clear_error();
    return ferry_err_set(err, FERRY_ECONFIG, "%s: TLS: %s %s%s%s", name, what, file ? file : "",
                         detail[0] ? ": " : "", detail);
}

/* The server context h2o hands every accepted connection; TLS 1.2 or newer. */
static int setup_tls(struct ferry_listener *l, const struct ferry_listener_options *opt,
                     struct ferry_err *err)
{
    if (!opt->tls_cert && !opt->tls_key) {
        return 0;
    }
    if (!opt->tls_cert || !opt->tls_key) {
        return ferry_err_set(err, FERRY_ECONFIG, "%s: TLS needs both a certificate and a key",
                             l->name);
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        return tls_error(err, l->name, "cannot create a context", NULL);
    }
    l->ssl_ctx = ctx; /* freed with the listener from here on */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    /*
     * No close_notify on close. h2o 2.2 writes it with uv_write and ignores
     * the call's own result; after a reset from the peer (a client closing
     * with unread session tickets does that) libuv refuses the write at once
     * and never calls back, so the connection would never be freed and a
     * stop would wait for it forever. HTTP/1.1 frames every message with a
     * length, so a missing close_notify cannot truncate one unnoticed.
     */
    SSL_CTX_set_quiet_shutdown(ctx, 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, opt->tls_cert) != 1) {
        return tls_error(err, l->name, "cannot use the certificate chain in", opt->tls_cert);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, opt->tls_key, SSL_FILETYPE_PEM) != 1) {
        return tls_error(err, l->name, "cannot use the private key in", opt->tls_key);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return tls_error(err, l->name, "the key does not match the certificate:", opt->tls_key);
    }
    return 0;
}

int ferry_listener_start(struct ferry_listener **out, uv_loop_t *loop,
                         const struct ferry_listener_options *opt, ferry_webhook_cb cb, void *ud,
                         struct ferry_err *err)
{
    struct ferry_listener *l = NULL;
    int fd = -1;
    int rc;

    if (!out || !loop || !opt || (!cb && !opt->get)) {
        return ferry_err_set(err, FERRY_EINVAL, "listener: missing argument");
    }
    *out = NULL;
    const char *address = opt->address && opt->address[0] ? opt->address : DEFAULT_ADDRESS;
    l = calloc(1, sizeof(*l));
    if (!l) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "webhook listener: out of memory");
        goto cleanup;
    }
    l->loop = loop;
    l->cb = cb;
    l->ud = ud;
    l->get = opt->get;
    l->get_ud = opt->get_ud;
    snprintf(l->name, sizeof(l->name), "%s", opt->name ? opt->name : DEFAULT_NAME);
    /* A zeroed options struct means the documented default, not "empty bodies only". */
    l->max_body = opt->max_body ? opt->max_body : DEFAULT_MAX_BODY;
    l->max_headers = opt->max_headers ? opt->max_headers : DEFAULT_MAX_HEADERS;
    l->max_header_bytes = opt->max_header_bytes ? opt->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
    int64_t idle = opt->idle_timeout_ms > 0 ? opt->idle_timeout_ms : REQUEST_TIMEOUT_MS;

    h2o_config_init(&l->config);
    l->config_ready = true;
    l->config.server_name = h2o_iovec_init(H2O_STRLIT("ferry"));
    l->config.max_request_entity_size = entity_limit(l->max_body);
    l->config.http1.req_timeout = (uint64_t)idle;
    l->config.handshake_timeout = (uint64_t)idle;
    /* HTTP/1.1 only: shutdown below relies on knowing every connection is an HTTP/1 one. */
    l->config.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host =
        h2o_config_register_host(&l->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    struct listener_handler *handler =
        (struct listener_handler *)(void *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->l = l;

    rc = setup_tls(l, opt, err);
    if (rc < 0) {
        goto cleanup;
    }
    rc = open_socket(opt, l->name, address, &fd, err);
    if (rc < 0) {
        goto cleanup;
    }
    l->port = read_port(fd);

    /* From here on nothing fails: every handle below is closed by ferry_listener_stop. */
    uv_tcp_init(loop, &l->listen);
    l->listen.data = l;
    rc = uv_tcp_open(&l->listen, fd);
    if (rc == 0) {
        fd = -1;
        rc = uv_listen((uv_stream_t *)&l->listen, LISTEN_BACKLOG, on_accept);
    }
    uv_idle_init(loop, &l->fin_first);
    l->fin_first.data = l;
    uv_idle_init(loop, &l->fin_second);
    l->fin_second.data = l;
    h2o_context_init(&l->ctx, loop, &l->config);
    l->ctx_ready = true;
    l->accept_ctx.ctx = &l->ctx;
    l->accept_ctx.hosts = l->config.hosts;
    l->accept_ctx.ssl_ctx = l->ssl_ctx;
    if (rc < 0) {
        /*
         * Only on a broken fd; the handles exist now, so undo through the
         * normal asynchronous stop (the loop must run to release them).
         */
        ferry_err_set(err, rc, "%s: %s", l->name, uv_strerror(rc));
        ferry_listener_stop(l, NULL, NULL);
        l = NULL;
        goto cleanup;
    }
    ferry_debug("%s on %s port %d%s (max body %zu bytes)", l->name, address, l->port,
                l->ssl_ctx ? " with TLS" : "", l->max_body);
    *out = l;
    l = NULL;
    rc = 0;
cleanup:
    if (fd >= 0) {
        close(fd);
    }
    if (l) {
        free_listener(l);
    }
    return rc;
}
