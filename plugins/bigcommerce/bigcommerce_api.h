/* SPDX-License-Identifier: MIT */
/*
 * BigCommerce HTTP plumbing shared by the connector's modules: a growable
 * string for URLs and bodies, URL prefixes of the two APIs, one request
 * function that goes through the quota governor and retries a 429 once,
 * and the HTTP status to FERRY_E* classification. All request functions
 * block on host->http and run on a worker.
 */
#ifndef FERRY_BIGCOMMERCE_API_H
#define FERRY_BIGCOMMERCE_API_H

#include <stddef.h>
#include <stdint.h>

#include "bigcommerce.h"

/* A growable string; an allocation failure sets `oom` and turns later appends into no-ops. */
struct ferry_bc_buf {
    char *p; /* NUL-terminated once anything was appended; caller frees with ferry__bc_buf_free */
    size_t len;
    size_t cap;
    int oom;
};

void ferry__bc_buf_puts(struct ferry_bc_buf *b, const char *s);
/* Appends s percent-encoded for a query value (RFC 3986 unreserved and ':' stay as they are). */
void ferry__bc_buf_put_query(struct ferry_bc_buf *b, const char *s);
/* Appends formatted text (at most 255 bytes per call; for numbers and short names). */
void ferry__bc_buf_printf(struct ferry_bc_buf *b, const char *fmt, ...) FERRY_PRINTF(2, 3);
void ferry__bc_buf_free(struct ferry_bc_buf *b);

/*
 * Appends the API prefix: <api_base>/stores/<hash>/<version> for the store
 * API ("v2" or "v3"), <api_b2b_base>/api/v3/io for B2B (version ignored).
 */
void ferry__bc_url(const struct ferry_bc_state *st, int api, const char *version,
                   struct ferry_bc_buf *url);

/*
 * One request to `api` (enum ferry_bc_api) under its quota governor. A 429
 * waits for the announced reset and is retried once. On a 2xx returns 0,
 * *status, and *json (new reference; NULL for 204 or an empty body). Other
 * statuses are classified (ferry__bc_classify); transport errors come back
 * as host->http reported them. `body` (JSON text) may be NULL.
 */
FERRY_BC_NODISCARD int ferry__bc_request(const struct ferry_bc_state *st, struct ferry_call *call,
                                         int api, const char *method, const char *url,
                                         const char *body, const char *object, long *status,
                                         json_t **json, struct ferry_err *err);

/*
 * json_loadb through the host's reader when it has one (the same tree and
 * errors, several times cheaper: list pages are most of a poll's work).
 */
json_t *ferry__bc_json_loadb(const struct ferry_bc_state *st, const char *buf, size_t len,
                             size_t flags, json_error_t *error);

/* As ferry__bc_request, with enum ferry_http_flags (e.g. a body that carries a secret). */
FERRY_BC_NODISCARD int ferry__bc_request_flags(const struct ferry_bc_state *st,
                                               struct ferry_call *call, int api, const char *method,
                                               const char *url, const char *body,
                                               const char *object, uint32_t flags, long *status,
                                               json_t **json, struct ferry_err *err);

/* GET returning a v3 envelope (an object with `data`); *out: new reference. */
FERRY_BC_NODISCARD int ferry__bc_get_v3(const struct ferry_bc_state *st, struct ferry_call *call,
                                        const char *url, const char *object, json_t **out,
                                        struct ferry_err *err);
/*
 * ferry__bc_get_v3 for a list: *texts (new reference, or NULL when the host
 * cannot give them) has the compact text of each element of `data`, in
 * order, for the page items of records handed on unchanged.
 */
FERRY_BC_NODISCARD int ferry__bc_list_v3(const struct ferry_bc_state *st, struct ferry_call *call,
                                         const char *url, const char *object, json_t **out,
                                         json_t **texts, struct ferry_err *err);
/* GET returning a B2B envelope ({"code", "data", "meta"}); *out: new reference. */
FERRY_BC_NODISCARD int ferry__bc_get_b2b(const struct ferry_bc_state *st, struct ferry_call *call,
                                         const char *url, const char *object, json_t **out,
                                         struct ferry_err *err);

/*
 * Map a non-2xx response to a FERRY_E* code with the remote reason in err
 * (and err->retry_after_ms for 429, `fallback_ms` when no header says).
 * Returns the code; never 0.
 */
int ferry__bc_classify(const struct ferry_host_api *host, const struct ferry_http_resp *resp,
                       int64_t fallback_ms, struct ferry_err *err);

#endif
