/* SPDX-License-Identifier: MIT */
/*
 * BigCommerce HTTP plumbing for the connector: URL and header building for
 * the store API (<api_base>/stores/<store_hash>/v2|v3, X-Auth-Token) and the
 * B2B Edition API (<api_b2b_base>/api/v3/io, X-Auth-Token + X-Store-Hash),
 * every request through the quota governor of its API with one retry after
 * a 429, the HTTP status to FERRY_E* classification with the vendor's own
 * reason (bigcommerce-api-facts.md sections 2 and 3), and JSON parsing.
 * Secrets are only ever handed to host->http, which redacts its audit rows;
 * they never reach a message or a log line from here.
 */
#include "bigcommerce_api.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bigcommerce_quota.h"

static void buf_reserve(struct ferry_bc_buf *b, size_t extra)
{
    size_t need;
    char *p;
    if (b->oom) {
        return;
    }
    need = b->len + extra + 1;
    if (need <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 128;
    while (cap < need) {
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

void ferry__bc_buf_puts(struct ferry_bc_buf *b, const char *s)
{
    size_t n = strlen(s);
    buf_reserve(b, n);
    if (b->oom) {
        return;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

void ferry__bc_buf_put_query(struct ferry_bc_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    /* Worst case every byte becomes %XX. */
    buf_reserve(b, strlen(s) * 3);
    if (b->oom) {
        return;
    }
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        /*
         * ':' stays readable as BigCommerce's own examples send it; '+' must
         * not, since a query decoder reads it as a space and a timezone
         * offset such as +02:00 would silently change meaning (facts 5.1).
         */
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '.' || *c == '_' || *c == '~' || *c == ':') {
            b->p[b->len++] = (char)*c;
        } else {
            b->p[b->len++] = '%';
            b->p[b->len++] = hex[*c >> 4];
            b->p[b->len++] = hex[*c & 15];
        }
    }
    b->p[b->len] = '\0';
}

void ferry__bc_buf_free(struct ferry_bc_buf *b)
{
    if (b) {
        free(b->p);
        memset(b, 0, sizeof(*b));
    }
}

/* A non-negative decimal integer that is all digits, or -1. */
static long long parse_uint(const char *s)
{
    char *end = NULL;
    long long v;
    if (!s || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end != '\0') {
        return -1;
    }
    return v;
}

/* Appends `s` to dst (size n), keeping it NUL-terminated and truncating quietly. */
static void append(char *dst, size_t n, const char *s)
{
    size_t len = strlen(dst);
    if (len + 1 < n) {
        snprintf(dst + len, n - len, "%s", s);
    }
}

/*
 * The vendor's reason for a failure, from whichever error shape the body
 * has: v3 {"title", "errors": {field: message}}, the array-wrapped
 * {"data": [{"title"}]} of a few v3 endpoints, or v2 [{"message"}].
 */
static void describe_error_body(const struct ferry_http_resp *resp, char *out, size_t n)
{
    json_t *root = NULL;
    json_t *obj = NULL;
    json_t *errors;
    const char *text = NULL;
    out[0] = '\0';
    if (!resp->body || resp->body_len == 0) {
        return;
    }
    root = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (json_is_array(root)) {
        obj = json_array_get(root, 0);
    } else if (json_is_object(root)) {
        obj = root;
        if (!json_object_get(root, "title") && json_is_array(json_object_get(root, "data"))) {
            obj = json_array_get(json_object_get(root, "data"), 0);
        }
    }
    if (!json_is_object(obj)) {
        goto cleanup;
    }
    text = json_string_value(json_object_get(obj, "title"));
    if (!text) {
        text = json_string_value(json_object_get(obj, "message"));
    }
    if (!text) {
        /* B2B Edition: {"code", "data": {"errMsg"}, "meta": {"message"}} (facts 2). */
        text = json_string_value(json_object_get(json_object_get(obj, "data"), "errMsg"));
    }
    if (!text) {
        text = json_string_value(json_object_get(json_object_get(obj, "meta"), "message"));
    }
    if (text) {
        append(out, n, text);
    }
    errors = json_object_get(obj, "errors");
    if (json_is_object(errors) && json_object_size(errors) > 0) {
        const char *key;
        json_t *val;
        int first = 1;
        append(out, n, out[0] ? " (" : "(");
        json_object_foreach(errors, key, val)
        {
            char *dumped = NULL;
            const char *msg = json_string_value(val);
            if (!msg) {
                dumped = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
                msg = dumped ? dumped : "?";
            }
            append(out, n, first ? "" : "; ");
            append(out, n, key);
            append(out, n, ": ");
            append(out, n, msg);
            free(dumped);
            first = 0;
        }
        append(out, n, ")");
    }
cleanup:
    json_decref(root);
}

/* B2B "X-Request-Window-Resets-After": seconds, possibly fractional ("12.5"); -1 if unusable. */
static int64_t parse_seconds_ms(const char *s)
{
    int64_t ms = 0;
    int frac = 0;
    if (!s || *s < '0' || *s > '9') {
        return -1;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        if (ms > INT64_MAX / 10000) {
            return -1;
        }
        ms = ms * 10 + (*s - '0');
    }
    ms *= 1000;
    if (*s == '.') {
        int scale = 100;
        for (s++; *s >= '0' && *s <= '9'; s++) {
            frac += (*s - '0') * scale;
            scale /= 10;
        }
    }
    return *s == '\0' ? ms + frac : -1;
}

static int64_t ratelimit_wait_ms(const struct ferry_host_api *host,
                                 const struct ferry_http_resp *resp, int64_t fallback_ms)
{
    long long v = parse_uint(host->http_header(resp, "X-Rate-Limit-Time-Reset-Ms"));
    int64_t ms;
    if (v > 0) {
        return (int64_t)v;
    }
    ms = parse_seconds_ms(host->http_header(resp, "X-Request-Window-Resets-After"));
    if (ms > 0) {
        return ms;
    }
    /* Older clients' header, in seconds (facts 3). */
    v = parse_uint(host->http_header(resp, "X-Retry-After"));
    if (v > 0 && v < INT64_MAX / 1000) {
        return (int64_t)v * 1000;
    }
    return fallback_ms;
}

int ferry__bc_classify(const struct ferry_host_api *host, const struct ferry_http_resp *resp,
                       int64_t fallback_ms, struct ferry_err *err)
{
    char reason[200];
    const char *what;
    int code;
    long s = resp->status;

    describe_error_body(resp, reason, sizeof(reason));
    if (s == 400 || s == 422) {
        code = FERRY_EVALIDATION;
        what = "rejected the request";
    } else if (s == 401) {
        code = FERRY_EAUTH;
        what = "refused the access token";
    } else if (s == 403) {
        /* Missing OAuth scope or a wrong store hash (facts 2); retrying will not help. */
        code = FERRY_EFORBIDDEN;
        what = "denied access (check the API account scopes and store_hash)";
    } else if (s == 404) {
        code = FERRY_ENOTFOUND;
        what = "has no such resource";
    } else if (s == 408) {
        code = FERRY_ETIMEDOUT;
        what = "timed out";
    } else if (s == 409) {
        code = FERRY_ECONFLICT;
        what = "reported a conflict";
    } else if (s == 413) {
        /* Too many items or a `limit` above the cap: a request we built wrong, not transient. */
        code = FERRY_EVALIDATION;
        what = "found the request too large";
    } else if (s == 429) {
        code = FERRY_ERATELIMIT;
        what = "rate limited the request";
    } else if (s >= 500 && s <= 599) {
        /* 503 is maintenance or a suspended store, 507 a plan limit; all worth a later retry. */
        code = FERRY_EUNAVAILABLE;
        what = "is unavailable";
    } else {
        code = FERRY_EPROTO;
        what = "answered with an unexpected status";
    }
    ferry__bc_err(err, code, "BigCommerce %s: HTTP %ld%s%s", what, s, reason[0] ? ": " : "",
                  reason);
    if (err && code == FERRY_ERATELIMIT) {
        err->retry_after_ms = ratelimit_wait_ms(host, resp, fallback_ms);
    }
    return code;
}

void ferry__bc_buf_printf(struct ferry_bc_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    ferry__bc_buf_puts(b, tmp);
}

void ferry__bc_url(const struct ferry_bc_state *st, int api, const char *version,
                   struct ferry_bc_buf *url)
{
    if (api == FERRY_BC_API_B2B) {
        ferry__bc_buf_puts(url, st->api_b2b_base);
        ferry__bc_buf_puts(url, "/api/v3/io");
        return;
    }
    ferry__bc_buf_puts(url, st->api_base);
    ferry__bc_buf_puts(url, "/stores/");
    ferry__bc_buf_puts(url, st->store_hash);
    ferry__bc_buf_puts(url, "/");
    ferry__bc_buf_puts(url, version);
}

/* What the response says about the quota of `api`; 0 when it says nothing usable. */
static int read_limits(const struct ferry_host_api *host, int api,
                       const struct ferry_http_resp *resp, long *left, int64_t *reset_ms)
{
    long long l, r;
    int64_t rs;
    if (api == FERRY_BC_API_B2B) {
        l = parse_uint(host->http_header(resp, "X-Requests-Remaining"));
        rs = parse_seconds_ms(host->http_header(resp, "X-Request-Window-Resets-After"));
        if (l < 0 || rs < 0) {
            return 0;
        }
        *left = (long)l;
        *reset_ms = rs;
        return 1;
    }
    l = parse_uint(host->http_header(resp, "X-Rate-Limit-Requests-Left"));
    r = parse_uint(host->http_header(resp, "X-Rate-Limit-Time-Reset-Ms"));
    if (l < 0 || r < 0 || l > LONG_MAX) {
        return 0;
    }
    *left = (long)l;
    *reset_ms = (int64_t)r;
    return 1;
}

/* One exchange under the governor; the quota is updated from whatever came back. */
static int send_once(const struct ferry_bc_state *st, struct ferry_call *call, int api,
                     const struct ferry_http_req *req, struct ferry_http_resp *resp,
                     struct ferry_err *err)
{
    struct ferry_bc_quota *q = st->quota[api];
    long left = 0;
    int64_t reset_ms = 0;
    int rc;

    ferry__bc_quota_acquire(q, st->host, call);
    memset(resp, 0, sizeof(*resp));
    rc = st->host->http(call, req, resp, err);
    if (rc < 0) {
        ferry__bc_quota_release(q, st->host, call, 0, 0, 0);
        return rc;
    }
    if (resp->status == 429) {
        ferry__bc_quota_exhausted(q, st->host, call,
                                  ratelimit_wait_ms(st->host, resp, st->ratelimit_fallback_ms));
        return 0;
    }
    int have = read_limits(st->host, api, resp, &left, &reset_ms);
    ferry__bc_quota_release(q, st->host, call, have, left, reset_ms);
    if (have && FERRY_HOST_HAS(st->host, quota) && st->host->quota) {
        const char *limit = st->host->http_header(
            resp, api == FERRY_BC_API_B2B ? "X-Requests-Allocated" : "X-Rate-Limit-Requests-Quota");
        st->host->quota(call, api == FERRY_BC_API_B2B ? "b2b" : "store", left,
                        limit ? (int64_t)strtoll(limit, NULL, 10) : -1, reset_ms);
    }
    return 0;
}

json_t *ferry__bc_json_loadb(const struct ferry_bc_state *st, const char *buf, size_t len,
                             size_t flags, json_error_t *error)
{
    if (FERRY_HOST_HAS(st->host, json_loadb) && st->host->json_loadb) {
        return st->host->json_loadb(buf, len, flags, error);
    }
    return json_loadb(buf, len, flags, error);
}

int ferry__bc_request(const struct ferry_bc_state *st, struct ferry_call *call, int api,
                      const char *method, const char *url, const char *body, const char *object,
                      long *status, json_t **json, struct ferry_err *err)
{
    return ferry__bc_request_flags(st, call, api, method, url, body, object, 0, status, json, err);
}

/* A request whose JSON answer is read with the texts of its array `items` when that is not NULL. */
static int request_items(const struct ferry_bc_state *st, struct ferry_call *call, int api,
                         const char *method, const char *url, const char *body, const char *object,
                         uint32_t flags, long *status, json_t **json, const char *items,
                         json_t **texts, struct ferry_err *err)
{
    struct ferry_http_header headers[6] = {
        {"Accept", "application/json"},
        {"X-Auth-Token", st->access_token},
        {"User-Agent", st->user_agent},
    };
    size_t nheaders = 3;
    struct ferry_http_req req = {
        .method = method,
        .url = url,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .timeout_ms = st->timeout_ms,
        .flags = flags,
        .object = object,
    };
    struct ferry_http_resp resp;
    json_error_t jerr;
    json_t *root = NULL;
    int rc;

    *json = NULL;
    if (texts) {
        *texts = NULL;
    }
    if (api == FERRY_BC_API_B2B) {
        /* A store-level token needs the store named (facts 9.1). */
        headers[nheaders].name = "X-Store-Hash";
        headers[nheaders++].value = st->store_hash;
    }
    /* The v2 API description declares Content-Type on its GETs too
     * (orders.v2.oas2.yml); sending it always costs nothing. */
    if (body || (api == FERRY_BC_API_STORE && strstr(url, "/v2/"))) {
        headers[nheaders].name = "Content-Type";
        headers[nheaders++].value = "application/json";
    }
    req.headers = headers;
    req.nheaders = nheaders;

    rc = send_once(st, call, api, &req, &resp, err);
    if (rc < 0) {
        /* The host already classified it (ENETWORK, ETIMEDOUT, ...); keep its detail. */
        return rc;
    }
    if (resp.status == 429) {
        /*
         * The governor now holds every worker until the reset the 429
         * announced; this request waits for it too and tries once more
         * (facts 3: sleep Time-Reset-Ms, then retry). A second 429 goes
         * back to the host, which reschedules the job.
         */
        st->host->http_resp_free(&resp);
        st->host->log(call, FERRY_LOG_INFO, "bigcommerce: %s %s answered 429; retrying once",
                      method, object ? object : "request");
        rc = send_once(st, call, api, &req, &resp, err);
        if (rc < 0) {
            return rc;
        }
    }
    if (status) {
        *status = resp.status;
    }
    if (resp.status < 200 || resp.status > 299) {
        rc = ferry__bc_classify(st->host, &resp, st->ratelimit_fallback_ms, err);
        goto cleanup;
    }
    if (resp.body_len == 0 || resp.status == 204) {
        rc = 0;
        goto cleanup;
    }
    if (items && texts && FERRY_HOST_HAS(st->host, json_loadb_items) &&
        st->host->json_loadb_items) {
        root = st->host->json_loadb_items(resp.body ? resp.body : "", resp.body_len, 0, items,
                                          texts, &jerr);
    } else {
        root = ferry__bc_json_loadb(st, resp.body ? resp.body : "", resp.body_len, 0, &jerr);
    }
    if (!root) {
        rc = ferry__bc_err(err, FERRY_EPROTO,
                           "BigCommerce sent malformed JSON (HTTP %ld): %s at line %d", resp.status,
                           jerr.text, jerr.line);
        goto cleanup;
    }
    *json = root;
    rc = 0;
cleanup:
    st->host->http_resp_free(&resp);
    return rc;
}

int ferry__bc_request_flags(const struct ferry_bc_state *st, struct ferry_call *call, int api,
                            const char *method, const char *url, const char *body,
                            const char *object, uint32_t flags, long *status, json_t **json,
                            struct ferry_err *err)
{
    return request_items(st, call, api, method, url, body, object, flags, status, json, NULL, NULL,
                         err);
}

int ferry__bc_list_v3(const struct ferry_bc_state *st, struct ferry_call *call, const char *url,
                      const char *object, json_t **out, json_t **texts, struct ferry_err *err)
{
    json_t *root = NULL;
    long status = 0;
    int rc = request_items(st, call, FERRY_BC_API_STORE, "GET", url, NULL, object, 0, &status,
                           &root, texts ? "data" : NULL, texts, err);
    if (rc < 0) {
        return rc;
    }
    if (!json_is_object(root) || !json_object_get(root, "data")) {
        json_decref(root);
        if (texts) {
            json_decref(*texts);
            *texts = NULL;
        }
        return ferry__bc_err(err, FERRY_EPROTO,
                             "BigCommerce response (HTTP %ld) is not a v3 envelope with `data`",
                             status);
    }
    *out = root;
    return 0;
}

int ferry__bc_get_v3(const struct ferry_bc_state *st, struct ferry_call *call, const char *url,
                     const char *object, json_t **out, struct ferry_err *err)
{
    return ferry__bc_list_v3(st, call, url, object, out, NULL, err);
}

int ferry__bc_get_b2b(const struct ferry_bc_state *st, struct ferry_call *call, const char *url,
                      const char *object, json_t **out, struct ferry_err *err)
{
    json_t *root = NULL;
    long status = 0;
    int rc = ferry__bc_request(st, call, FERRY_BC_API_B2B, "GET", url, NULL, object, &status, &root,
                               err);
    if (rc < 0) {
        return rc;
    }
    if (!json_is_object(root) || !json_object_get(root, "data")) {
        json_decref(root);
        return ferry__bc_err(err, FERRY_EPROTO,
                             "B2B Edition response (HTTP %ld) is not an envelope with `data`",
                             status);
    }
    *out = root;
    return 0;
}
