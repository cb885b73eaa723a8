/* SPDX-License-Identifier: MIT */
/*
 * The webhook listener: H2O (HTTP/1.1, optionally over TLS) on the daemon's
 * libuv loop. It routes POST /webhooks/<instance>[/<rest>] to a callback and
 * knows nothing about any vendor: verification and decoding belong to the
 * connector the callback hands the request to. Limits (body size, header
 * count and size, idle time) are enforced here, before the callback runs;
 * every error reply is a JSON body {"error": "<code>", "message": "<text>"}.
 * The admin listener is another instance with GET routes and no webhooks.
 *
 * Threads: everything runs on the loop thread.
 */
#ifndef FERRY_LISTENER_H
#define FERRY_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "errors.h"
#include "ferry/plugin.h"

struct ferry_deferred;

struct ferry_webhook_reply {
    int status;   /* HTTP status to send */
    json_t *body; /* reply body, owned by the listener after the callback; NULL: {} */
    struct ferry_deferred *deferred; /* set by ferry_listener_defer */
    void *impl;                      /* the listener's own; do not touch */
};

/*
 * Called inside the callback: the reply will be sent later with
 * ferry_listener_complete (e.g. once a group commit is durable), and
 * status/body of `reply` are ignored. Returns NULL when out of memory; the
 * callback must then fill `reply` as usual.
 */
struct ferry_deferred *ferry_listener_defer(struct ferry_webhook_reply *reply);
/*
 * On the loop thread: send the deferred reply (takes ownership of body, may be
 * NULL) and free the handle. When the client has gone meanwhile, only frees.
 */
void ferry_listener_complete(struct ferry_deferred *d, int status, json_t *body);
/*
 * Like ferry_listener_complete with a body that is already JSON text
 * (borrowed, copied into the request before this returns), for answers
 * formatted without building a json_t.
 */
void ferry_listener_complete_json_text(struct ferry_deferred *d, int status, const char *body,
                                       size_t len);

/*
 * Called on the loop thread for each POST /webhooks/<instance>... whose body
 * is within limits. `wh` and `instance` are borrowed for the call. The
 * callback fills `reply` before returning, or defers it (ferry_listener_defer)
 * and completes it later on the loop thread.
 */
typedef void (*ferry_webhook_cb)(void *ud, const char *instance, const struct ferry_webhook *wh,
                                 struct ferry_webhook_reply *reply);

/* The reply to a GET (or HEAD) on a path other than /healthz. */
struct ferry_get_reply {
    int status;                      /* HTTP status; default 200 */
    const char *content_type;        /* static text; default "application/json" */
    char *body;                      /* malloc'd, owned by the listener after the callback */
    size_t len;                      /* bytes of body */
    struct ferry_deferred *deferred; /* set by ferry_listener_defer_get */
    void *impl;                      /* the listener's own; do not touch */
};

/*
 * Called on the loop thread for GET/HEAD requests to any path but /healthz
 * (normalised, without the query). Fills `reply` (no body and status 404
 * when it does not know the path), or defers it with ferry_listener_defer_get
 * and answers later with ferry_listener_complete_text.
 */
typedef void (*ferry_get_cb)(void *ud, const char *path, struct ferry_get_reply *reply);

/* Like ferry_listener_defer, for a GET reply. NULL when out of memory. */
struct ferry_deferred *ferry_listener_defer_get(struct ferry_get_reply *reply);
/*
 * On the loop thread: send a deferred reply with this body (malloc'd, owned
 * from now on; may be NULL) and content type (static), and free the handle.
 */
void ferry_listener_complete_text(struct ferry_deferred *d, int status, const char *content_type,
                                  char *body, size_t len);

struct ferry_listener_options {
    const char *address; /* IPv4/IPv6 literal; default "127.0.0.1" */
    int port;            /* 0: any free port (see ferry_listener_port) */
    size_t max_body;     /* bytes; larger bodies get 413 and never reach the callback */
    /* Appended for issue 8. Zero values mean the defaults. */
    size_t max_headers;      /* request header fields; default 64 (h2o itself parses 100 at most) */
    size_t max_header_bytes; /* header names + values; default 16 KiB; over either limit: 431 */
    int64_t idle_timeout_ms; /* request read deadline, keep-alive idle, TLS handshake; 10 s */
    const char *tls_cert;    /* PEM certificate chain; with tls_key the port speaks TLS only */
    const char *tls_key;     /* PEM private key */
    ferry_get_cb get;        /* GET routes beyond /healthz; NULL: 404 */
    void *get_ud;
    const char *name; /* for log lines and errors; default "webhook listener" */
};

struct ferry_listener;

/*
 * `cb` may be NULL when opt->get is set (a listener without webhooks, such as
 * the admin listener): POSTs then get 404. TLS set-up errors (unreadable
 * files, a key that does not match the certificate) fail the start.
 */
FERRY_NODISCARD int ferry_listener_start(struct ferry_listener **out, uv_loop_t *loop,
                                         const struct ferry_listener_options *opt,
                                         ferry_webhook_cb cb, void *ud, struct ferry_err *err);
/* The bound TCP port. */
int ferry_listener_port(const struct ferry_listener *l);
/*
 * Stop accepting, close open connections and free the listener; `done` runs
 * on the loop once every handle is closed (may be NULL). l is invalid after.
 */
void ferry_listener_stop(struct ferry_listener *l, void (*done)(void *ud), void *ud);

#endif
