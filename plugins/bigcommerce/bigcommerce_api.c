/* SPDX-License-Identifier: MIT */
/*
 * BigCommerce REST v3 customer reads: builds each request (URL under
 * <api_base>/stores/<store_hash>/v3, X-Auth-Token), sends it through
 * host->http, classifies failures by status with the vendor's own reason
 * (bigcommerce-api-facts.md section 2), and reshapes the v3 envelope
 * {"data": ..., "meta": ...} into what plugin.h asks of fetch and
 * list_changes. Secrets are only ever handed to host->http, which redacts
 * its audit rows; they never reach a message or a log line from here.
 */
#include "bigcommerce_api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Used when a 429 carries no usable rate headers (facts 3: a platform-wide 429 has none). */
#define BC_RATELIMIT_FALLBACK_MS 3000

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

static int64_t ratelimit_wait_ms(const struct ferry_host_api *host,
                                 const struct ferry_http_resp *resp)
{
    long long v = parse_uint(host->http_header(resp, "X-Rate-Limit-Time-Reset-Ms"));
    if (v > 0) {
        return (int64_t)v;
    }
    /* Older clients' header, in seconds (facts 3). */
    v = parse_uint(host->http_header(resp, "X-Retry-After"));
    if (v > 0 && v < INT64_MAX / 1000) {
        return (int64_t)v * 1000;
    }
    return BC_RATELIMIT_FALLBACK_MS;
}

int ferry__bc_classify(const struct ferry_host_api *host, const struct ferry_http_resp *resp,
                       struct ferry_err *err)
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
        err->retry_after_ms = ratelimit_wait_ms(host, resp);
    }
    return code;
}

/* <api_base>/stores/<store_hash>/v3/customers */
static void customers_url(const struct ferry_bc_state *st, struct ferry_bc_buf *url)
{
    ferry__bc_buf_puts(url, st->api_base);
    ferry__bc_buf_puts(url, "/stores/");
    ferry__bc_buf_puts(url, st->store_hash);
    ferry__bc_buf_puts(url, "/v3/customers");
}

/*
 * GET `url`; on a 2xx, *out is the parsed body, which must be a v3 envelope
 * (an object with `data`). Transport failures come back as host->http
 * reported them.
 */
static int get_envelope(const struct ferry_bc_state *st, struct ferry_call *call, const char *url,
                        json_t **out, struct ferry_err *err)
{
    const struct ferry_http_header headers[] = {
        {"Accept", "application/json"},
        {"X-Auth-Token", st->access_token},
        {"User-Agent", st->user_agent},
    };
    struct ferry_http_req req = {
        .method = "GET",
        .url = url,
        .headers = headers,
        .nheaders = sizeof(headers) / sizeof(headers[0]),
        .timeout_ms = st->timeout_ms,
        .object = FERRY_BC_OBJECT_CUSTOMER,
    };
    struct ferry_http_resp resp;
    json_error_t jerr;
    json_t *root = NULL;
    int rc;

    memset(&resp, 0, sizeof(resp));
    rc = st->host->http(call, &req, &resp, err);
    if (rc < 0) {
        /* The host already classified it (ENETWORK, ETIMEDOUT, ...); keep its detail. */
        return rc;
    }
    if (resp.status < 200 || resp.status > 299) {
        rc = ferry__bc_classify(st->host, &resp, err);
        goto cleanup;
    }
    root = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, &jerr);
    if (!root) {
        rc = ferry__bc_err(err, FERRY_EPROTO,
                           "BigCommerce sent malformed JSON (HTTP %ld): %s at line %d", resp.status,
                           jerr.text, jerr.line);
        goto cleanup;
    }
    if (!json_is_object(root) || !json_object_get(root, "data")) {
        rc = ferry__bc_err(err, FERRY_EPROTO,
                           "BigCommerce response (HTTP %ld) is not a v3 envelope with `data`",
                           resp.status);
        goto cleanup;
    }
    *out = root;
    root = NULL;
    rc = 0;
cleanup:
    json_decref(root);
    st->host->http_resp_free(&resp);
    return rc;
}

int ferry__bc_customer_fetch(const struct ferry_bc_state *st, struct ferry_call *call,
                             const char *id, json_t **record, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL;
    json_t *data;
    json_t *found = NULL;
    long long want = parse_uint(id);
    size_t i;
    json_t *el;
    int rc;

    /* Customer ids are integers; anything else would also inject query text. */
    if (want <= 0 || strlen(id) > 19) {
        return ferry__bc_err(err, FERRY_EINVAL,
                             "customer id must be a positive integer, got '%.40s'",
                             id ? id : "(null)");
    }
    customers_url(st, &url);
    ferry__bc_buf_puts(&url, "?id:in=");
    ferry__bc_buf_puts(&url, id);
    /* Sub-resources are only returned when asked for (facts 4.4). */
    ferry__bc_buf_puts(&url, "&include=addresses,attributes,formfields");
    if (url.oom) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory building the request URL");
        goto cleanup;
    }
    rc = get_envelope(st, call, url.p, &root, err);
    if (rc < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_array(data)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce customer list `data` is not an array");
        goto cleanup;
    }
    if (json_array_size(data) == 0) {
        rc = ferry__bc_err(err, FERRY_ENOTFOUND, "BigCommerce has no customer %s", id);
        goto cleanup;
    }
    /* Pick by id rather than trusting the filter, so an ignored filter cannot return a stranger. */
    json_array_foreach(data, i, el)
    {
        if (json_integer_value(json_object_get(el, "id")) == want) {
            found = el;
            break;
        }
    }
    if (!found) {
        rc = ferry__bc_err(err, FERRY_EPROTO,
                           "BigCommerce answered the lookup of customer %s with other customers",
                           id);
        goto cleanup;
    }
    *record = json_incref(found);
    rc = 0;
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/* {"id": "<id>", "modified": "<date_modified>", "record": <customer>} for one list element. */
static int page_item(json_t *customer, long page_no, json_t **item, struct ferry_err *err)
{
    char idbuf[32];
    json_t *id = json_object_get(customer, "id");
    const char *modified = json_string_value(json_object_get(customer, "date_modified"));
    json_t *it = NULL;

    if (!json_is_integer(id) || !modified) {
        return ferry__bc_err(err, FERRY_EPROTO,
                             "BigCommerce customer page %ld has an element without an integer "
                             "`id` and a string `date_modified`",
                             page_no);
    }
    snprintf(idbuf, sizeof(idbuf), "%" JSON_INTEGER_FORMAT, json_integer_value(id));
    it = json_object();
    if (!it || json_object_set_new(it, "id", json_string(idbuf)) < 0 ||
        /* Verbatim: ISO 8601 UTC "...Z" compares as a string in time order (facts 4.4). */
        json_object_set_new(it, "modified", json_string(modified)) < 0 ||
        json_object_set(it, "record", customer) < 0) {
        json_decref(it);
        return ferry__bc_err(err, FERRY_ENOMEM, "out of memory building a page item");
    }
    *item = it;
    return 0;
}

int ferry__bc_customer_page(const struct ferry_bc_state *st, struct ferry_call *call,
                            const char *since, long page_no, json_t **page, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    char num[32];
    json_t *root = NULL;
    json_t *out = NULL;
    json_t *items = NULL;
    json_t *next = NULL;
    json_t *data;
    json_t *pagination;
    json_t *el;
    json_int_t current, total;
    size_t i;
    int rc;

    customers_url(st, &url);
    ferry__bc_buf_puts(&url, "?");
    if (since) {
        /* Inclusive bound: the host's watermark record comes again and is deduplicated there. */
        ferry__bc_buf_puts(&url, "date_modified:min=");
        ferry__bc_buf_put_query(&url, since);
        ferry__bc_buf_puts(&url, "&");
    }
    ferry__bc_buf_puts(&url, "sort=date_modified:asc&limit=");
    snprintf(num, sizeof(num), "%d", st->page_limit);
    ferry__bc_buf_puts(&url, num);
    ferry__bc_buf_puts(&url, "&page=");
    snprintf(num, sizeof(num), "%ld", page_no);
    ferry__bc_buf_puts(&url, num);
    ferry__bc_buf_puts(&url, "&include=addresses");
    if (url.oom) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory building the request URL");
        goto cleanup;
    }
    rc = get_envelope(st, call, url.p, &root, err);
    if (rc < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    pagination = json_object_get(json_object_get(root, "meta"), "pagination");
    if (!json_is_array(data)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce customer list `data` is not an array");
        goto cleanup;
    }
    if (!json_is_integer(json_object_get(pagination, "current_page")) ||
        !json_is_integer(json_object_get(pagination, "total_pages"))) {
        rc = ferry__bc_err(err, FERRY_EPROTO,
                           "BigCommerce customer page %ld lacks meta.pagination current_page and "
                           "total_pages",
                           page_no);
        goto cleanup;
    }
    current = json_integer_value(json_object_get(pagination, "current_page"));
    total = json_integer_value(json_object_get(pagination, "total_pages"));

    items = json_array();
    out = json_object();
    if (!items || !out) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory building a page");
        goto cleanup;
    }
    json_array_foreach(data, i, el)
    {
        json_t *item = NULL;
        rc = page_item(el, page_no, &item, err);
        if (rc < 0) {
            goto cleanup;
        }
        if (json_array_append_new(items, item) < 0) {
            rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory building a page");
            goto cleanup;
        }
    }
    /*
     * links.next is not a reliable end marker (facts 4.3), so the page
     * numbers decide; an empty page ends the walk too, so that a total that
     * shrank while we paged cannot loop forever.
     */
    next = json_null();
    if (json_array_size(data) > 0 && current < total) {
        snprintf(num, sizeof(num), "%ld", page_no + 1);
        next = json_string(num);
    }
    if (json_object_set_new(out, "items", items) < 0) {
        items = NULL;
        json_decref(next);
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory building a page");
        goto cleanup;
    }
    items = NULL;
    if (!next || json_object_set_new(out, "next", next) < 0) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory building a page");
        goto cleanup;
    }
    *page = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(items);
    json_decref(out);
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}
