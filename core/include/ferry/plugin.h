/* SPDX-License-Identifier: MIT */
/*
 * The connector plugin ABI. A connector is a shared object that exports one
 * symbol, ferry_connector_entry, which hands the host a constant descriptor.
 * The host passes its services in as a vtable (struct ferry_host_api), so a
 * connector never links against the core and can be built out of tree against
 * this header alone. Records cross the boundary as jansson json_t; no other
 * third-party type does.
 *
 * Both structs are append-only: new members go last, and each side reports the
 * size it was built with, so an older peer's missing members read as absent
 * (FERRY_HOST_HAS / FERRY_CONNECTOR_HAS). An incompatible change bumps
 * FERRY_PLUGIN_ABI, and the loader refuses a plugin built for another value.
 *
 * Threads: every connector callback except open/close may be called from
 * several worker threads at once, for different jobs. A connector's state is
 * read-only after open, or guarded by the connector's own lock; per-worker
 * mutable data (sessions, tokens) lives in the slot from host->worker_slot.
 * Callbacks are plain blocking functions: the host owns the event loop.
 */
#ifndef FERRY_PLUGIN_H
#define FERRY_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ferry/error.h"

#define FERRY_PLUGIN_ABI 1u

#if defined(__GNUC__)
#define FERRY_PLUGIN_EXPORT __attribute__((visibility("default")))
#define FERRY_PRINTF(f, a)  __attribute__((format(printf, f, a)))
#else
#define FERRY_PLUGIN_EXPORT
#define FERRY_PRINTF(f, a)
#endif

#define FERRY_PLUGIN_ENTRY_SYMBOL "ferry_connector_entry"

enum ferry_log_level {
    FERRY_LOG_ERROR = 0,
    FERRY_LOG_WARN = 1,
    FERRY_LOG_INFO = 2,
    FERRY_LOG_DEBUG = 3,
    FERRY_LOG_TRACE = 4,
};

/*
 * One unit of work as the host sees it: the worker it runs on, the job, its
 * correlation ID and the connector instance. Opaque to connectors; they only
 * hand it back to host functions.
 */
struct ferry_call;

struct ferry_http_header {
    const char *name;
    const char *value;
};

enum ferry_http_flags {
    /* Drop the session's cookies before this request (a fresh server session). */
    FERRY_HTTP_RESET_SESSION = 1u << 0,
    /* Do not store request or response bodies in the audit row. */
    FERRY_HTTP_NO_AUDIT_BODY = 1u << 1,
};

struct ferry_http_req {
    const char *method;                      /* "GET", "POST", "PATCH", ... */
    const char *url;                         /* absolute URL */
    const struct ferry_http_header *headers; /* borrowed; may be NULL */
    size_t nheaders;
    const char *body; /* borrowed; may be NULL */
    size_t body_len;
    long timeout_ms;    /* 0: the host's default */
    uint32_t flags;     /* enum ferry_http_flags */
    const char *object; /* object name for the audit row and logs; may be NULL */
};

/* Filled by host->http; the connector releases it with host->http_resp_free. */
struct ferry_http_resp {
    long status; /* HTTP status of the final response */
    char *body;  /* NUL-terminated (the NUL is not counted) */
    size_t body_len;
    struct ferry_http_header *headers; /* names as received; compare case-insensitively */
    size_t nheaders;
};

struct ferry_host_api {
    uint32_t abi;  /* FERRY_PLUGIN_ABI of the host */
    uint32_t size; /* sizeof(struct ferry_host_api) as the host was built */

    /* Log a line tagged with the connector, the call's correlation ID and job. */
    void (*log)(struct ferry_call *call, int level, const char *fmt, ...) FERRY_PRINTF(3, 4);

    /*
     * Blocking HTTP on the calling worker's connection (kept alive per worker
     * and connector instance, with a cookie jar per session). The host applies
     * its timeouts and TLS verification, adds X-Correlation-ID, and writes one
     * redacted audit row per request. Returns 0 once any HTTP response was
     * received, whatever its status; FERRY_ENETWORK / FERRY_ETIMEDOUT /
     * FERRY_ETOOBIG when none was; FERRY_EUNSUPPORTED when the call has no
     * worker (webhook verification runs on the event loop and must not do I/O).
     * On failure resp is left empty and needs no free.
     */
    int (*http)(struct ferry_call *call, const struct ferry_http_req *req,
                struct ferry_http_resp *resp, struct ferry_err *err);
    void (*http_resp_free)(struct ferry_http_resp *resp);
    /* First header named `name` (case-insensitive) or NULL; borrowed from resp. */
    const char *(*http_header)(const struct ferry_http_resp *resp, const char *name);

    /* Wall clock in milliseconds since the Unix epoch (injectable in tests). */
    int64_t (*now_ms)(struct ferry_call *call);

    /*
     * A pointer-sized slot private to this connector instance on the calling
     * worker, NULL-initialised; NULL when the call has no worker. The host
     * calls connector->worker_free on each non-NULL slot at shutdown.
     */
    void **(*worker_slot)(struct ferry_call *call);

    /* The call's correlation ID (never NULL). */
    const char *(*correlation_id)(struct ferry_call *call);

    /* ---- added after the first release of ABI 1; check with FERRY_HOST_HAS ---- */

    /*
     * A small persistent key/value store private to this connector instance
     * (e.g. a cached metadata document), kept in the host's state database.
     * kv_get sets *value to a new string (release with kv_free) and
     * *updated_at_ms to when it was stored, or returns FERRY_ENOTFOUND.
     * Works on any call that has a worker or is a start-up call.
     */
    int (*kv_get)(struct ferry_call *call, const char *key, char **value, int64_t *updated_at_ms,
                  struct ferry_err *err);
    int (*kv_put)(struct ferry_call *call, const char *key, const char *value,
                  struct ferry_err *err);
    void (*kv_free)(char *value);

    /*
     * Report a remote quota as last seen: `name` tells several apart (e.g.
     * "store", "b2b"), remaining requests, the window's limit (-1: unknown),
     * ms until it refills. Shown by /metrics and `ferry status`. Cheap; call
     * it after every response that carries quota headers.
     */
    void (*quota)(struct ferry_call *call, const char *name, int64_t remaining, int64_t limit,
                  int64_t reset_ms);

    /*
     * json_loadb with its contract and its result (the same tree, or NULL with
     * *error as jansson fills it), at a fraction of its cost: connectors parse
     * every response body. Thread-safe; needs no call.
     */
    json_t *(*json_loadb)(const char *buf, size_t len, size_t flags, json_error_t *error);
    /*
     * json_dumps(v, flags), byte for byte, several times cheaper for the
     * compact text connectors send (JSON_COMPACT, with or without
     * JSON_ENCODE_ANY and JSON_SORT_KEYS). The caller frees the text with
     * free(). Thread-safe; needs no call.
     */
    char *(*json_dumps)(const json_t *v, size_t flags);
    /*
     * json_loadb of a list page (flags as json_loadb takes them), and for the
     * array `member` of its top-level object, *texts: a new array with each
     * element's text exactly as json_dumps(element, JSON_COMPACT) writes it,
     * or NULL (then there are none: no such array, or an unusual text). A
     * connector hands an element it lists unchanged on with its text, as the
     * item's "record_text" (see list_changes), so that the host stores the
     * page's own bytes instead of writing the record again. Thread-safe.
     */
    json_t *(*json_loadb_items)(const char *buf, size_t len, size_t flags, const char *member,
                                json_t **texts, json_error_t *error);
};

#define FERRY_HOST_HAS(host, member)                                                               \
    ((host)->size >= offsetof(struct ferry_host_api, member) + sizeof((host)->member))

enum ferry_config_type {
    FERRY_CFG_STRING = 1,
    FERRY_CFG_INT = 2,
    FERRY_CFG_BOOL = 3,
    FERRY_CFG_SECRET = 4, /* only from env("NAME") or file("PATH") in the config */
    FERRY_CFG_TABLE = 5,  /* any Lua table, handed over as a JSON object or array */
};

/* Declarative connector configuration; the host validates it and fills defaults. */
struct ferry_config_field {
    const char *name;
    int type;         /* enum ferry_config_type */
    const char *def;  /* default as text (JSON text for tables); NULL: none */
    int required;     /* non-zero: a missing key is a configuration error */
    const char *desc; /* one line, shown by `ferry plugins --help-plugin` */
};

/* A received webhook request, borrowed for the duration of the callback. */
struct ferry_webhook {
    const char *path; /* request path after /webhooks/<instance>, "" when none */
    const struct ferry_http_header *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
    int64_t received_at_ms;
};

enum ferry_write_op {
    FERRY_WRITE_CREATE = 1,
    FERRY_WRITE_UPDATE = 2,
};

struct ferry_write {
    int op;               /* enum ferry_write_op */
    const char *object;   /* target object, e.g. an entity set name */
    const char *id;       /* UPDATE: the remote key */
    const char *etag;     /* UPDATE: the remote version to check, verbatim; may be NULL */
    const json_t *fields; /* object of field -> value; only what should change */
};

struct ferry_connector {
    uint32_t abi;  /* FERRY_PLUGIN_ABI the connector was built against */
    uint32_t size; /* sizeof(struct ferry_connector) as the connector was built */
    const char *name;
    const char *version;
    const char *description;
    const struct ferry_config_field *config; /* terminated by a {NULL} entry; may be NULL */

    /*
     * Create the instance state from its validated configuration (a JSON
     * object with defaults filled in; borrowed). Called once, before any
     * worker runs. `host` stays valid until close.
     */
    int (*open)(const struct ferry_host_api *host, struct ferry_call *call, const json_t *config,
                void **state, struct ferry_err *err);
    void (*close)(void *state); /* accepts NULL */
    /* Release one worker's slot (see host->worker_slot). May be NULL. */
    void (*worker_free)(void *state, void *slot);

    /*
     * Read one record. *record is a new reference owned by the caller.
     * FERRY_ENOTFOUND when the record does not exist; FERRY_EFILTERED when
     * the connector's configuration excludes it (the job ends, audited).
     */
    int (*fetch)(void *state, struct ferry_call *call, const char *object, const char *id,
                 json_t **record, struct ferry_err *err);

    /*
     * One page of records changed at or after `since` (a watermark the
     * connector produced earlier, an ISO 8601 UTC timestamp such as
     * "2024-05-01T00:00:00Z" given by an operator's `ferry sync --since`, or
     * NULL for everything); connectors therefore produce ISO 8601 UTC
     * watermarks. `page_token` is NULL for the first page. *page is a new
     * object:
     *   {"items": [{"id": "42", "modified": "<watermark>", "record": {...}}, ...],
     *    "next": "<page token>" | null}
     * where `modified` values compare as strings in the order of change. An
     * item may also carry "record_text": the record's text exactly as
     * host->json_dumps(record, JSON_COMPACT) writes it (from
     * host->json_loadb_items), which the host then stores as it is.
     */
    int (*list_changes)(void *state, struct ferry_call *call, const char *object, const char *since,
                        const char *page_token, json_t **page, struct ferry_err *err);

    /*
     * Find a record whose `field` equals `value`. *found is NULL when none, or
     * a new object {"id": "...", "etag": "..." | null, "record": {...}}.
     * FERRY_EDUPLICATE when several match (the host never guesses).
     */
    int (*lookup)(void *state, struct ferry_call *call, const char *object, const char *field,
                  const char *value, json_t **found, struct ferry_err *err);

    /*
     * Create or update. *result is a new object {"id": "...", "etag": "..." | null}.
     * FERRY_ECONFLICT when the remote version moved on and could not be
     * reconciled; FERRY_EVALIDATION with the remote message when rejected.
     */
    int (*write)(void *state, struct ferry_call *call, const struct ferry_write *w, json_t **result,
                 struct ferry_err *err);

    /*
     * Webhooks, on the event loop thread: no I/O, no blocking. verify returns
     * 0, FERRY_ESIGNATURE (missing or wrong secret / signature) or
     * FERRY_EBADINPUT. decode returns a new array of events:
     *   [{"object": "customer", "id": "42", "event": "created",
     *     "dedupe": "<stable delivery key>", "scope": "<vendor scope>",
     *     "data": {...}}]
     * `data` (optional) is event detail the record itself does not carry
     * (e.g. a previous status); the host hands it to mappings as
     * ctx.event_data. `group` (optional) names the business entity several
     * events may describe together (e.g. "order:42" for a refund and the
     * order's status change it causes): the host holds grouped events for
     * its coalescing window and hands each job the others as
     * ctx.group_events.
     * An empty array means "understood, nothing to do" (e.g. an unknown scope,
     * which the connector logs); the host still answers 2xx.
     */
    int (*verify_webhook)(void *state, struct ferry_call *call, const struct ferry_webhook *wh,
                          struct ferry_err *err);
    int (*decode_webhook)(void *state, struct ferry_call *call, const struct ferry_webhook *wh,
                          json_t **events, struct ferry_err *err);

    /* ---- added after the first release of ABI 1; check with FERRY_CONNECTOR_HAS ---- */

    /*
     * The objects this connector can write, as a new object:
     *   {"<object>": {"key": "<key property>",
     *                 "properties": {"<name>": {"type": "Edm.String", "creatable": true,
     *                                           "updatable": true, "filterable": true,
     *                                           "max_length": 40}, ...}}, ...}
     * The host rejects a mapping that writes a property that is absent or
     * neither creatable nor updatable, naming the mapping file and line. May
     * read remote metadata: it is called once after open, on a call that may
     * do HTTP but has no job. NULL or FERRY_EUNSUPPORTED: nothing is checked.
     */
    int (*describe)(void *state, struct ferry_call *call, json_t **objects, struct ferry_err *err);

    /*
     * Reconcile the webhook registrations this instance needs with those the
     * remote system has. `needs` is an array of {"object": "...", "events":
     * [...]} (events absent: all) from the enabled mappings; `url` is where
     * the host receives webhooks for this instance. With apply == 0 nothing
     * is changed. *report is a new array, one element per registration:
     *   {"scope": "...", "id": "..." | null, "state": "ok" | "missing" |
     *    "inactive" | "created" | "reactivated" | "extra" | "failed",
     *    "detail": "..."}
     */
    int (*sync_webhooks)(void *state, struct ferry_call *call, const json_t *needs, const char *url,
                         int apply, json_t **report, struct ferry_err *err);

    /*
     * Several writes in one round trip (e.g. an OData $batch), used for
     * backfills. *results is a new array, one element per write, in order:
     *   {"ok": true, "id": "...", "etag": "..." | null} or
     *   {"ok": false, "code": <FERRY_E* code>, "error": "<remote message>"}
     * One write's failure never fails another's. The return value is an
     * error only when the batch as a whole could not be sent or read back;
     * the host then treats every write of it as of unknown outcome. May be
     * NULL: the host writes one by one.
     */
    int (*write_many)(void *state, struct ferry_call *call, const struct ferry_write *writes,
                      size_t n, json_t **results, struct ferry_err *err);

    /*
     * Like lookup, with several conditions: a record whose every field in
     * `where` (an object) equals the value given, a string, or one of the
     * values, an array of strings (e.g. an account's *open* opportunity:
     * {"ProspectPartyID": "1000017", "LifeCycleStatusCode": ["1", "2"]}).
     * Same answers as lookup. May be NULL: a mapping whose lookup carries
     * conditions then fails with FERRY_EUNSUPPORTED.
     */
    int (*lookup_where)(void *state, struct ferry_call *call, const char *object,
                        const json_t *where, json_t **found, struct ferry_err *err);

    /*
     * Several lookups of one field in one round trip, for a backfill's
     * batch. *found is a new array with one element per value, in order:
     * null (no record), {"id", "etag", "record"} as lookup gives, or
     * {"error": <FERRY_E* code>, "message": "..."} for that value alone
     * (e.g. FERRY_EDUPLICATE). Returns an error only when the answer as a
     * whole is unusable; the host then looks each value up on its own. May
     * be NULL.
     */
    int (*lookup_many)(void *state, struct ferry_call *call, const char *object, const char *field,
                       const char *const *values, size_t n, json_t **found, struct ferry_err *err);
};

#define FERRY_CONNECTOR_HAS(c, member)                                                             \
    ((c)->size >= offsetof(struct ferry_connector, member) + sizeof((c)->member))

/* The smallest descriptor an ABI-1 host accepts: everything up to decode_webhook. */
#define FERRY_CONNECTOR_MIN_SIZE                                                                   \
    (offsetof(struct ferry_connector, decode_webhook) + sizeof(void (*)(void)))

/*
 * The one exported symbol. Returns 0 and sets *out to a descriptor with static
 * storage, or a negative FERRY_E* code (e.g. when host->abi is unsupported).
 */
typedef int (*ferry_connector_entry_fn)(const struct ferry_host_api *host,
                                        const struct ferry_connector **out);

#endif
