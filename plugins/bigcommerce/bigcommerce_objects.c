/* SPDX-License-Identifier: MIT */
/*
 * Reads of every BigCommerce object the connector offers. Each object has a
 * fetch (one record, by the id its webhooks and pages use) and a list (one
 * page of records changed since a watermark). The APIs differ in everything
 * a delta poll cares about (facts 4, 5, 6, 7, 9): v3 has page numbers with
 * meta.pagination and ISO dates; v2 orders have bare arrays, RFC 2822 dates
 * and 204 at the end; refunds use RFC 3339 filters; B2B Edition pages by
 * offset with Unix seconds. This file turns them all into the one shape of
 * plugin.h with ISO 8601 UTC watermarks, so the host's cursor logic never
 * needs to know which API an object came from. Lists that can be filtered
 * and sorted by change time page by key, not by page number
 * (bigcommerce_keyset.h), so that records changing during a poll cannot
 * hide others; the rest say in their comment why page numbers are safe or
 * the best there is.
 */
#include "bigcommerce_objects.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ferry/text.h"

#include "bigcommerce_api.h"
#include "bigcommerce_keyset.h"
#include "bigcommerce_time.h"

/* Watermark for records that carry no date (customer addresses): sorts before any real one. */
#define BC_EPOCH_ISO "1970-01-01T00:00:00Z"
/* v2 sub-resources are read in pages of this size (the v2 maximum, facts 5.1). */
#define BC_V2_SUB_LIMIT 250
/* A v2 sub-resource longer than this many pages is a server that never ends its list. */
#define BC_V2_MAX_PAGES 400
#define BC_MAX_ID_LEN   19
#define BC_NOMEM(err)   ferry__bc_err(err, FERRY_ENOMEM, "bigcommerce: out of memory")

/* ---- small helpers --------------------------------------------------------------------- */

/* A positive decimal integer id of at most 19 digits; anything else would also inject a URL. */
static int parse_id(const char *object, const char *id, long long *out, struct ferry_err *err)
{
    char *end = NULL;
    long long v;
    if (!id || *id < '1' || *id > '9' || strlen(id) > BC_MAX_ID_LEN) {
        goto bad;
    }
    errno = 0;
    v = strtoll(id, &end, 10);
    if (errno || *end != '\0' || v <= 0) {
        goto bad;
    }
    *out = v;
    return 0;
bad:
    return ferry__bc_err(err, FERRY_EINVAL, "%s id must be a positive integer, got '%.40s'", object,
                         id ? id : "(null)");
}

/* Our own page tokens are decimal numbers (page numbers or offsets) >= min. */
static int parse_token(const char *token, long min, long *out, struct ferry_err *err)
{
    char *end = NULL;
    long v;
    if (!token) {
        *out = min;
        return 0;
    }
    errno = 0;
    v = strtol(token, &end, 10);
    if (errno || end == token || *end != '\0' || token[0] < '0' || token[0] > '9' || v < min ||
        v > 1000000000L) {
        return ferry__bc_err(err, FERRY_EINVAL, "bigcommerce: invalid page token '%.32s'", token);
    }
    *out = v;
    return 0;
}

/* `since` as Unix seconds; NULL since gives 0 and *have = 0. */
static int since_seconds(const char *since, int64_t *out, int *have, struct ferry_err *err)
{
    *have = 0;
    *out = 0;
    if (!since) {
        return 0;
    }
    if (ferry__bc_parse_iso(since, out) < 0) {
        return ferry__bc_err(err, FERRY_EINVAL,
                             "bigcommerce: `since` '%.40s' is not an ISO 8601 time such as "
                             "2024-05-01T00:00:00Z",
                             since);
    }
    *have = 1;
    return 0;
}

static int url_oom(struct ferry_bc_buf *url, struct ferry_err *err)
{
    return url->oom ? ferry__bc_err(err, FERRY_ENOMEM, "out of memory building the request URL")
                    : 0;
}

/* {"items": [], "next": null} */
static json_t *new_page(void)
{
    json_t *p = json_object();
    if (p && (json_object_set_new(p, "items", json_array()) < 0 ||
              !json_is_array(json_object_get(p, "items")) ||
              json_object_set_new(p, "next", json_null()) < 0)) {
        json_decref(p);
        return NULL;
    }
    return p;
}

/* `text`: the record's compact text when it is handed on as it was read; may be NULL. */
static int page_add(json_t *page, const char *id, const char *modified, json_t *record,
                    json_t *text, struct ferry_err *err)
{
    json_t *it = json_object();
    if (!it || json_object_set_new(it, "id", json_string(id)) < 0 ||
        json_object_set_new(it, "modified", json_string(modified)) < 0 ||
        json_object_set(it, "record", record) < 0 ||
        (json_is_string(text) && json_object_set(it, "record_text", text) < 0)) {
        json_decref(it);
        return BC_NOMEM(err);
    }
    /* Takes `it` even when it fails. */
    return json_array_append_new(json_object_get(page, "items"), it) < 0 ? BC_NOMEM(err) : 0;
}

static int page_next(json_t *page, long long next, struct ferry_err *err)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", next);
    if (json_object_set_new(page, "next", json_string(num)) < 0) {
        return BC_NOMEM(err);
    }
    return 0;
}

/* An integer member (or a decimal string, as B2B sometimes sends) as text; 0 on success. */
static int member_id(json_t *obj, const char *key, char *out, size_t n)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        /* Digits by hand: every record of a list page passes here. */
        char digits[FERRY_DIGITS_MAX];
        size_t len = ferry_digits(digits, (unsigned long long)json_integer_value(v));
        if (len >= n) {
            return -1;
        }
        memcpy(out, digits + FERRY_DIGITS_MAX - len, len);
        out[len] = '\0';
        return 0;
    }
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < n) {
        const char *s = json_string_value(v);
        for (const char *p = s; *p; p++) {
            if (*p < '0' || *p > '9') {
                return -1;
            }
        }
        memcpy(out, s, json_string_length(v) + 1);
        return 0;
    }
    return -1;
}

/* A keyset page token; NULL is the first page. */
static int parse_keyset(const char *token, struct ferry_bc_keyset *ks, struct ferry_err *err)
{
    if (ferry__bc_keyset_parse(token, ks) < 0) {
        return ferry__bc_err(err, FERRY_EINVAL, "bigcommerce: invalid page token '%.32s'", token);
    }
    return 0;
}

/* The walk's rows are a fixed array of one page: a longer page is refused before it is read. */
static int keyset_fits(const struct ferry_bc_state *st, size_t n, const char *what,
                       struct ferry_err *err)
{
    if (n > (size_t)st->page_limit) {
        return ferry__bc_err(err, FERRY_EPROTO, "BigCommerce sent %zu %s records for a page of %d",
                             n, what, st->page_limit);
    }
    return 0;
}

/* A record's id as a number for the walk and as text for the page (positive integers only). */
static int row_id(json_t *el, const char *key, int64_t *id, char *text, size_t n)
{
    char *end = NULL;
    long long v;
    if (member_id(el, key, text, n) < 0) {
        return -1;
    }
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno || *end != '\0' || v <= 0) {
        return -1;
    }
    *id = (int64_t)v;
    return 0;
}

/* Sets the page's `next` from the walk after its rows, or leaves null at the end. */
static int keyset_advance(const struct ferry_bc_state *st, struct ferry_call *call,
                          const char *what, const struct ferry_bc_keyset *ks, int instant,
                          const struct ferry_bc_keyset_row *rows, size_t n, int64_t total,
                          json_t *page, struct ferry_err *err)
{
    struct ferry_bc_keyset next;
    const char *why = NULL;
    char *token = NULL;
    int more = 0;
    int64_t now_s = st->host->now_ms(call) / 1000;
    int rc = ferry__bc_keyset_next(ks, instant, rows, n, st->page_limit, total, now_s, &next, &more,
                                   &why);
    if (rc < 0) {
        return ferry__bc_err(err, rc, "BigCommerce %s list: %s", what, why ? why : "bad page");
    }
    if (next.mode == FERRY_BC_KEYSET_INSTANT && ks->mode != FERRY_BC_KEYSET_INSTANT) {
        char iso[FERRY_BC_ISO_LEN];
        ferry__bc_format_iso(next.at, iso);
        st->host->log(call, FERRY_LOG_INFO,
                      more ? "bigcommerce: a full page of %s records changed at %s; reading that "
                             "second on its own"
                           : "bigcommerce: a full page of %s records changed at %s, too recently "
                             "to be complete; the next poll goes on from there",
                      what, iso);
    }
    if (!more) {
        return 0;
    }
    token = ferry__bc_keyset_format(&next);
    rc = token && json_object_set_new(page, "next", json_string(token)) == 0 ? 0 : BC_NOMEM(err);
    free(token);
    return rc;
}

/* The page a keyset request asks for: page numbers only move inside one instant. */
static long long keyset_page_no(const struct ferry_bc_keyset *ks)
{
    return ks->mode == FERRY_BC_KEYSET_INSTANT && ks->pos > 0 ? (long long)ks->pos : 1;
}

/*
 * meta.pagination.total of a v3 collection. Every v3 list carries it
 * (facts 4.3) and reading an instant by pages needs it, so a list without
 * it is not the API the walk was written for.
 */
static int v3_total(json_t *root, const char *what, int64_t *total, struct ferry_err *err)
{
    json_t *v =
        json_object_get(json_object_get(json_object_get(root, "meta"), "pagination"), "total");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return ferry__bc_err(err, FERRY_EPROTO, "BigCommerce %s list lacks meta.pagination.total",
                             what);
    }
    *total = (int64_t)json_integer_value(v);
    return 0;
}

/*
 * The element of a list answer whose integer id is `want` (borrowed), or
 * NULL. Fetches pick by id rather than trusting a filter, so an ignored
 * filter cannot hand back a stranger.
 */
static json_t *element_with_id(const json_t *data, long long want)
{
    size_t i;
    json_t *el;
    json_array_foreach(data, i, el)
    {
        if (json_integer_value(json_object_get(el, "id")) == want) {
            return el;
        }
    }
    return NULL;
}

/* ---- customers (v3) -------------------------------------------------------------------- */

static int customer_fetch(const struct ferry_bc_state *st, struct ferry_call *call, const char *id,
                          json_t **record, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *data, *found = NULL;
    long long want;
    int rc = parse_id("customer", id, &want, err);
    if (rc < 0) {
        return rc;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    /* Sub-resources are only returned when asked for (facts 4.4). */
    ferry__bc_buf_printf(&url, "/customers?id:in=%lld&include=addresses,attributes,formfields",
                         want);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_CUSTOMER, &root, err)) < 0) {
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
    found = element_with_id(data, want);
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

/*
 * The next page number of a v3 collection, or 0 at the end. links.next is
 * not a reliable end marker (facts 4.3), so page numbers decide; an empty
 * page ends the walk too, so a total that shrank while we paged cannot loop.
 */
static int v3_next_page(json_t *root, long page_no, const char *what, long *next,
                        struct ferry_err *err)
{
    json_t *pagination = json_object_get(json_object_get(root, "meta"), "pagination");
    json_t *data = json_object_get(root, "data");
    if (!json_is_integer(json_object_get(pagination, "current_page")) ||
        !json_is_integer(json_object_get(pagination, "total_pages"))) {
        return ferry__bc_err(err, FERRY_EPROTO,
                             "BigCommerce %s page %ld lacks meta.pagination current_page and "
                             "total_pages",
                             what, page_no);
    }
    *next = 0;
    if (json_array_size(data) > 0 &&
        json_integer_value(json_object_get(pagination, "current_page")) <
            json_integer_value(json_object_get(pagination, "total_pages"))) {
        *next = page_no + 1;
    }
    return 0;
}

/*
 * Keyset walk over date_modified (bigcommerce_keyset.h); an instant that
 * fills a page is read with date_modified:max too, by page number from its
 * last page. The spec's "modified after this date" leaves open whether the
 * bounds are inclusive; they are taken so, as the host's `since` is
 * [inferred: confirm on a sandbox store].
 */
static int customer_list(const struct ferry_bc_state *st, struct ferry_call *call,
                         const char *since, const char *token, json_t **page, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    struct ferry_bc_keyset ks;
    struct ferry_bc_keyset_row rows[FERRY_BC_KEYSET_MAX_SEEN];
    json_t *root = NULL, *out = NULL, *texts = NULL, *data, *el;
    int64_t since_s, total = -1;
    int have;
    size_t i, n = 0;
    int rc;

    if ((rc = parse_keyset(token, &ks, err)) < 0 ||
        (rc = since_seconds(since, &since_s, &have, err)) < 0) {
        return rc;
    }
    if (ks.mode == FERRY_BC_KEYSET_FIRST && have) {
        ks.at = since_s;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_puts(&url, "/customers?");
    if (ks.mode == FERRY_BC_KEYSET_FIRST) {
        if (since) {
            /* Verbatim (v3 takes ISO 8601); inclusive, so the watermark record comes again. */
            ferry__bc_buf_puts(&url, "date_modified:min=");
            ferry__bc_buf_put_query(&url, since);
            ferry__bc_buf_puts(&url, "&");
        }
    } else {
        char iso[FERRY_BC_ISO_LEN];
        ferry__bc_format_iso(ks.at, iso);
        ferry__bc_buf_printf(&url, "date_modified:min=%s&", iso);
        if (ks.mode == FERRY_BC_KEYSET_INSTANT) {
            ferry__bc_buf_printf(&url, "date_modified:max=%s&", iso);
        }
    }
    ferry__bc_buf_printf(&url, "sort=date_modified:asc&limit=%d&page=%lld", st->page_limit,
                         keyset_page_no(&ks));
    ferry__bc_buf_puts(&url, "&include=addresses,attributes,formfields");
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_list_v3(st, call, url.p, FERRY_BC_OBJECT_CUSTOMER, &root, &texts, err)) <
            0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_array(data)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce customer list `data` is not an array");
        goto cleanup;
    }
    if ((rc = keyset_fits(st, json_array_size(data), "customer", err)) < 0 ||
        (rc = v3_total(root, "customer", &total, err)) < 0) {
        goto cleanup;
    }
    if (!(out = new_page())) {
        rc = BC_NOMEM(err);
        goto cleanup;
    }
    json_array_foreach(data, i, el)
    {
        char id[32];
        const char *modified = json_string_value(json_object_get(el, "date_modified"));
        if (!json_is_integer(json_object_get(el, "id")) ||
            row_id(el, "id", &rows[n].id, id, sizeof(id)) < 0 || !modified ||
            ferry__bc_parse_iso(modified, &rows[n].t) < 0) {
            rc = ferry__bc_err(err, FERRY_EPROTO,
                               "BigCommerce customer list has an element without an integer "
                               "`id` and an ISO 8601 `date_modified`");
            goto cleanup;
        }
        /* Verbatim: ISO 8601 UTC "...Z" compares as a string in time order (facts 4.4). */
        if (ferry__bc_keyset_wanted(&ks, &rows[n]) &&
            (rc = page_add(out, id, modified, el, json_array_get(texts, i), err)) < 0) {
            goto cleanup;
        }
        n++;
    }
    if ((rc = keyset_advance(st, call, FERRY_BC_OBJECT_CUSTOMER, &ks, FERRY_BC_INSTANT_PAGES, rows,
                             n, total, out, err)) < 0) {
        goto cleanup;
    }
    *page = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(out);
    json_decref(texts);
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/* ---- customer addresses (v3) ----------------------------------------------------------- */

static int address_fetch(const struct ferry_bc_state *st, struct ferry_call *call, const char *id,
                         json_t **record, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *el;
    long long want;
    int rc = parse_id("customer_address", id, &want, err);
    if (rc < 0) {
        return rc;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_printf(&url, "/customers/addresses?id:in=%lld&include=formfields", want);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_CUSTOMER_ADDR, &root, err)) < 0) {
        goto cleanup;
    }
    el = element_with_id(json_object_get(root, "data"), want);
    rc = el ? 0 : ferry__bc_err(err, FERRY_ENOTFOUND, "BigCommerce has no customer address %s", id);
    *record = json_incref(el);
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/*
 * Addresses have no date and no date filter (facts 4.4), so every walk reads
 * them all; each carries the caller's `since` (or the epoch) as its
 * watermark, which leaves the cursor where it was, and the host's content
 * hash keeps unchanged addresses from causing writes. Page numbers stay: a
 * deleted address can hide the next one from this walk, but the cursor
 * does not move past it, so the next poll reads it.
 */
static int address_list(const struct ferry_bc_state *st, struct ferry_call *call, const char *since,
                        const char *token, json_t **page, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *out = NULL, *data, *el;
    long page_no, next = 0;
    int64_t unused;
    int have;
    size_t i;
    int rc;

    if ((rc = parse_token(token, 1, &page_no, err)) < 0 ||
        (rc = since_seconds(since, &unused, &have, err)) < 0) {
        return rc;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_printf(&url, "/customers/addresses?page=%ld&limit=%d&include=formfields", page_no,
                         st->page_limit);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_CUSTOMER_ADDR, &root, err)) < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_array(data)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce address list `data` is not an array");
        goto cleanup;
    }
    if ((rc = v3_next_page(root, page_no, "address", &next, err)) < 0) {
        goto cleanup;
    }
    if (!(out = new_page())) {
        rc = BC_NOMEM(err);
        goto cleanup;
    }
    json_array_foreach(data, i, el)
    {
        char id[32];
        if (member_id(el, "id", id, sizeof(id)) < 0) {
            rc = ferry__bc_err(err, FERRY_EPROTO,
                               "BigCommerce address page %ld has an element without an `id`",
                               page_no);
            goto cleanup;
        }
        if ((rc = page_add(out, id, since ? since : BC_EPOCH_ISO, el, NULL, err)) < 0) {
            goto cleanup;
        }
    }
    if (next && (rc = page_next(out, next, err)) < 0) {
        goto cleanup;
    }
    *page = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(out);
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/* ---- orders (v2) ----------------------------------------------------------------------- */

/*
 * Every element of a v2 list under `path` (e.g. /orders/250/products), page
 * by page until a short page or a 204 (facts 5.4). *out: new array.
 */
static int v2_collect(const struct ferry_bc_state *st, struct ferry_call *call, const char *path,
                      json_t **out, struct ferry_err *err)
{
    json_t *all = json_array();
    int rc = 0;
    if (!all) {
        return BC_NOMEM(err);
    }
    for (long page_no = 1; page_no <= BC_V2_MAX_PAGES; page_no++) {
        struct ferry_bc_buf url = {0};
        json_t *root = NULL;
        size_t n;
        ferry__bc_url(st, FERRY_BC_API_STORE, "v2", &url);
        ferry__bc_buf_puts(&url, path);
        ferry__bc_buf_printf(&url, "?page=%ld&limit=%d", page_no, BC_V2_SUB_LIMIT);
        rc = url_oom(&url, err);
        if (rc == 0) {
            rc = ferry__bc_request(st, call, FERRY_BC_API_STORE, "GET", url.p, NULL,
                                   FERRY_BC_OBJECT_ORDER, NULL, &root, err);
        }
        ferry__bc_buf_free(&url);
        if (rc < 0) {
            break;
        }
        if (!root) {
            break; /* 204: nothing (more) */
        }
        if (!json_is_array(root)) {
            json_decref(root);
            rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce %s is not a JSON array", path);
            break;
        }
        n = json_array_size(root);
        if (json_array_extend(all, root) < 0) {
            json_decref(root);
            rc = BC_NOMEM(err);
            break;
        }
        json_decref(root);
        if (n < BC_V2_SUB_LIMIT) {
            break;
        }
        if (page_no == BC_V2_MAX_PAGES) {
            rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce %s did not end after %d pages", path,
                               BC_V2_MAX_PAGES);
        }
    }
    if (rc < 0) {
        json_decref(all);
        return rc;
    }
    *out = all;
    return 0;
}

/* Replaces the order's sub-resource link objects with their contents (facts 5.2). */
static int order_details(const struct ferry_bc_state *st, struct ferry_call *call, json_t *order,
                         struct ferry_err *err)
{
    char path[96];
    json_t *products = NULL, *shipping = NULL;
    json_int_t id = json_integer_value(json_object_get(order, "id"));
    int rc;

    snprintf(path, sizeof(path), "/orders/%" JSON_INTEGER_FORMAT "/products", id);
    if ((rc = v2_collect(st, call, path, &products, err)) < 0) {
        return rc;
    }
    snprintf(path, sizeof(path), "/orders/%" JSON_INTEGER_FORMAT "/shipping_addresses", id);
    if ((rc = v2_collect(st, call, path, &shipping, err)) < 0) {
        json_decref(products);
        return rc;
    }
    if (json_object_set_new(order, "products", products) < 0 ||
        json_object_set_new(order, "shipping_addresses", shipping) < 0) {
        return BC_NOMEM(err);
    }
    return 0;
}

/* The order's date_modified (RFC 2822) as Unix seconds and an ISO watermark. */
static int order_modified(json_t *order, int64_t *t_out, char *iso, struct ferry_err *err)
{
    int64_t t;
    const char *dm = json_string_value(json_object_get(order, "date_modified"));
    if (!dm || ferry__bc_parse_rfc2822(dm, &t) < 0) {
        return ferry__bc_err(err, FERRY_EPROTO,
                             "BigCommerce order %" JSON_INTEGER_FORMAT
                             " has no RFC 2822 `date_modified` ('%.40s')",
                             json_integer_value(json_object_get(order, "id")), dm ? dm : "");
    }
    ferry__bc_format_iso(t, iso);
    *t_out = t;
    return 0;
}

static int order_is_incomplete(json_t *order)
{
    json_t *s = json_object_get(order, "status_id");
    return json_is_integer(s) && json_integer_value(s) == 0;
}

/*
 * How many orders the buyer placed before this one, for first-order versus
 * repeat-order rules: the order record does not say. Order ids grow, so the
 * count of the customer's orders with a smaller id is it (v2 orders/count,
 * customer_id + max_id). Guests (customer_id 0) have no history to count:
 * the field is left out and mappings treat the buyer as unknown.
 */
static int order_history(const struct ferry_bc_state *st, struct ferry_call *call, json_t *order,
                         struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL;
    json_int_t customer = json_integer_value(json_object_get(order, "customer_id"));
    json_int_t id = json_integer_value(json_object_get(order, "id"));
    int rc = 0;
    if (customer <= 0 || id <= 1) {
        if (customer > 0) {
            json_object_set_new(order, "buyer_orders_before", json_integer(0));
        }
        return 0;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v2", &url);
    ferry__bc_buf_printf(&url, "/orders/count?customer_id=%lld&max_id=%lld", (long long)customer,
                         (long long)id - 1);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_request(st, call, FERRY_BC_API_STORE, "GET", url.p, NULL,
                                FERRY_BC_OBJECT_ORDER, NULL, &root, err)) < 0) {
        goto cleanup;
    }
    json_t *count = json_object_get(root, "count");
    if (!json_is_number(count)) {
        rc = ferry__bc_err(err, FERRY_EPROTO,
                           "BigCommerce answered orders/count for customer %lld without a count",
                           (long long)customer);
        goto cleanup;
    }
    json_object_set_new(order, "buyer_orders_before",
                        json_integer((json_int_t)json_number_value(count)));
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

static int order_fetch(const struct ferry_bc_state *st, struct ferry_call *call, const char *id,
                       json_t **record, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL;
    long long want;
    int rc = parse_id("order", id, &want, err);
    if (rc < 0) {
        return rc;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v2", &url);
    ferry__bc_buf_printf(&url, "/orders/%lld", want);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_request(st, call, FERRY_BC_API_STORE, "GET", url.p, NULL,
                                FERRY_BC_OBJECT_ORDER, NULL, &root, err)) < 0) {
        goto cleanup;
    }
    if (!json_is_object(root) || json_integer_value(json_object_get(root, "id")) != want) {
        rc = ferry__bc_err(err, root ? FERRY_EPROTO : FERRY_ENOTFOUND,
                           "BigCommerce answered the read of order %s without that order", id);
        goto cleanup;
    }
    if (order_is_incomplete(root) && !st->include_incomplete_orders) {
        /* Incomplete = checkout not finished (facts 5.3); config decides, not chance. */
        rc = ferry__bc_err(err, FERRY_EFILTERED,
                           "order %s is Incomplete (status_id 0); set include_incomplete_orders "
                           "= true to sync such orders",
                           id);
        goto cleanup;
    }
    if ((rc = order_details(st, call, root, err)) < 0 ||
        (st->buyer_history && (rc = order_history(st, call, root, err)) < 0)) {
        goto cleanup;
    }
    *record = root;
    root = NULL;
    rc = 0;
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/*
 * Keyset walk over date_modified; an instant that fills a page is read by
 * ascending id (min_id, sort=id), which nothing can reorder. Incomplete
 * orders the configuration leaves out still count as rows of the walk:
 * they take their place on the page whether reported or not.
 */
static int order_list(const struct ferry_bc_state *st, struct ferry_call *call, const char *since,
                      const char *token, json_t **page, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    struct ferry_bc_keyset ks;
    struct ferry_bc_keyset_row rows[FERRY_BC_KEYSET_MAX_SEEN];
    json_t *root = NULL, *out = NULL, *el;
    char rfc[40] = "";
    int64_t since_s;
    int have;
    size_t i, n = 0;
    int rc;

    if ((rc = parse_keyset(token, &ks, err)) < 0 ||
        (rc = since_seconds(since, &since_s, &have, err)) < 0) {
        return rc;
    }
    if (ks.mode == FERRY_BC_KEYSET_FIRST && have) {
        ks.at = since_s;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v2", &url);
    ferry__bc_buf_puts(&url, "/orders?");
    if (ks.mode != FERRY_BC_KEYSET_FIRST || have) {
        /* v2's documented date form; '+' and spaces must be encoded (facts 5.1). */
        ferry__bc_format_rfc2822(ks.at, rfc, sizeof(rfc));
        ferry__bc_buf_puts(&url, "min_date_modified=");
        ferry__bc_buf_put_query(&url, rfc);
        ferry__bc_buf_puts(&url, "&");
    }
    if (ks.mode == FERRY_BC_KEYSET_INSTANT) {
        ferry__bc_buf_puts(&url, "max_date_modified=");
        ferry__bc_buf_put_query(&url, rfc);
        ferry__bc_buf_printf(&url, "&sort=id&limit=%d&page=1", st->page_limit);
        if (ks.pos > 0) {
            ferry__bc_buf_printf(&url, "&min_id=%lld", (long long)ks.pos + 1);
        }
    } else {
        /* The spec enumerates bare field names; the direction defaults to ascending. */
        ferry__bc_buf_printf(&url, "sort=date_modified&limit=%d&page=1", st->page_limit);
    }
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_request(st, call, FERRY_BC_API_STORE, "GET", url.p, NULL,
                                FERRY_BC_OBJECT_ORDER, NULL, &root, err)) < 0) {
        goto cleanup;
    }
    if (!(out = new_page())) {
        rc = BC_NOMEM(err);
        goto cleanup;
    }
    if (root && !json_is_array(root)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce order list is not a JSON array");
        goto cleanup;
    }
    if ((rc = keyset_fits(st, json_array_size(root), "order", err)) < 0) {
        goto cleanup;
    }
    /* root NULL: 204, past the end or nothing matched (facts 5.4). */
    json_array_foreach(root, i, el)
    {
        char id[32], iso[FERRY_BC_ISO_LEN];
        if (!json_is_object(el) || row_id(el, "id", &rows[n].id, id, sizeof(id)) < 0) {
            rc = ferry__bc_err(err, FERRY_EPROTO,
                               "BigCommerce order list has an element without an `id`");
            goto cleanup;
        }
        if ((rc = order_modified(el, &rows[n].t, iso, err)) < 0) {
            goto cleanup;
        }
        if (!ferry__bc_keyset_wanted(&ks, &rows[n++]) ||
            (order_is_incomplete(el) && !st->include_incomplete_orders)) {
            continue;
        }
        if (st->order_details_in_poll && (rc = order_details(st, call, el, err)) < 0) {
            goto cleanup;
        }
        if ((rc = page_add(out, id, iso, el, NULL, err)) < 0) {
            goto cleanup;
        }
    }
    /* No paging metadata in v2: a full page may have a successor, a short one does not. */
    if ((rc = keyset_advance(st, call, FERRY_BC_OBJECT_ORDER, &ks, FERRY_BC_INSTANT_IDS, rows, n,
                             -1, out, err)) < 0) {
        goto cleanup;
    }
    *page = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(out);
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/* ---- refunds (v3) ---------------------------------------------------------------------- */

/* "<order_id>:<refund_id>", both positive integers. */
static int parse_refund_id(const char *id, long long *order_id, long long *refund_id,
                           struct ferry_err *err)
{
    char part[BC_MAX_ID_LEN + 1];
    const char *colon = id ? strchr(id, ':') : NULL;
    size_t n = colon ? (size_t)(colon - id) : 0;
    if (!colon || n == 0 || n > BC_MAX_ID_LEN) {
        return ferry__bc_err(err, FERRY_EINVAL,
                             "refund id must be '<order_id>:<refund_id>', got '%.40s'",
                             id ? id : "(null)");
    }
    memcpy(part, id, n);
    part[n] = '\0';
    if (parse_id("refund order", part, order_id, err) < 0 ||
        parse_id("refund", colon + 1, refund_id, err) < 0) {
        return FERRY_EINVAL;
    }
    return 0;
}

static int refund_fetch(const struct ferry_bc_state *st, struct ferry_call *call, const char *id,
                        json_t **record, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *el;
    long long order_id, refund_id;
    int rc = parse_refund_id(id, &order_id, &refund_id, err);
    if (rc < 0) {
        return rc;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_printf(&url, "/orders/%lld/payment_actions/refunds", order_id);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_REFUND, &root, err)) < 0) {
        goto cleanup;
    }
    el = element_with_id(json_object_get(root, "data"), refund_id);
    rc = el ? 0
            : ferry__bc_err(err, FERRY_ENOTFOUND, "BigCommerce order %lld has no refund %lld",
                            order_id, refund_id);
    *record = json_incref(el);
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/*
 * By page number, and safely so: refunds are listed by ascending id
 * (orders.v3.yml) and never change once created, so a new refund is
 * appended at the end and nothing moves up under a walk. The API has no
 * sort for a keyset walk anyway.
 */
static int refund_list(const struct ferry_bc_state *st, struct ferry_call *call, const char *since,
                       const char *token, json_t **page, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *out = NULL, *data, *el, *pagination;
    long page_no;
    int64_t since_s;
    int have;
    size_t i;
    int rc;

    if ((rc = parse_token(token, 1, &page_no, err)) < 0 ||
        (rc = since_seconds(since, &since_s, &have, err)) < 0) {
        return rc;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_puts(&url, "/orders/payment_actions/refunds?");
    if (have) {
        char iso[FERRY_BC_ISO_LEN];
        ferry__bc_format_iso(since_s, iso);
        ferry__bc_buf_puts(&url, "created:min=");
        ferry__bc_buf_put_query(&url, iso);
        ferry__bc_buf_puts(&url, "&");
    }
    ferry__bc_buf_printf(&url, "page=%ld&limit=%d", page_no, st->page_limit);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_REFUND, &root, err)) < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_array(data)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce refund list `data` is not an array");
        goto cleanup;
    }
    if (!(out = new_page())) {
        rc = BC_NOMEM(err);
        goto cleanup;
    }
    json_array_foreach(data, i, el)
    {
        char oid[32], rid[32], id[72], iso[FERRY_BC_ISO_LEN];
        int64_t t;
        const char *created = json_string_value(json_object_get(el, "created"));
        if (member_id(el, "order_id", oid, sizeof(oid)) < 0 ||
            member_id(el, "id", rid, sizeof(rid)) < 0 || ferry__bc_parse_iso(created, &t) < 0) {
            rc = ferry__bc_err(err, FERRY_EPROTO,
                               "BigCommerce refund page %ld has an element without `id`, "
                               "`order_id` and an RFC 3339 `created`",
                               page_no);
            goto cleanup;
        }
        snprintf(id, sizeof(id), "%s:%s", oid, rid);
        ferry__bc_format_iso(t, iso);
        if ((rc = page_add(out, id, iso, el, NULL, err)) < 0) {
            goto cleanup;
        }
    }
    /* The spec shows no pagination block for refunds; use it when present. */
    pagination = json_object_get(json_object_get(root, "meta"), "pagination");
    if (json_is_integer(json_object_get(pagination, "total_pages"))
            ? (json_array_size(data) > 0 &&
               page_no < json_integer_value(json_object_get(pagination, "total_pages")))
            : json_array_size(data) >= (size_t)st->page_limit) {
        if ((rc = page_next(out, page_no + 1, err)) < 0) {
            goto cleanup;
        }
    }
    *page = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(out);
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/* ---- carts (v3) ------------------------------------------------------------------------ */

static int all_of(const char *s, const char *set, size_t max)
{
    size_t n = strlen(s);
    return n > 0 && n <= max && strspn(s, set) == n;
}

#define BC_HEX "0123456789abcdefABCDEF"

/*
 * By cart id (the UUID of store/cart/abandoned's data.id), or by the
 * abandoned-cart token, which /v3/abandoned-carts/{token} turns into the
 * cart id first (facts 7). A converted or expired cart is gone: 404.
 */
static int cart_fetch(const struct ferry_bc_state *st, struct ferry_call *call, const char *id,
                      json_t **record, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *data;
    char cart_id[65];
    int rc;

    if (!id || !all_of(id, BC_HEX "-", 64)) {
        return ferry__bc_err(err, FERRY_EINVAL,
                             "cart id must be a cart UUID or an abandoned-cart token, got '%.40s'",
                             id ? id : "(null)");
    }
    snprintf(cart_id, sizeof(cart_id), "%s", id);
    if (strlen(id) == 32 && !strchr(id, '-')) {
        ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
        ferry__bc_buf_printf(&url, "/abandoned-carts/%s", id);
        if ((rc = url_oom(&url, err)) < 0 ||
            (rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_CART, &root, err)) < 0) {
            goto cleanup;
        }
        const char *cid =
            json_string_value(json_object_get(json_object_get(root, "data"), "cart_id"));
        if (!cid || !all_of(cid, BC_HEX "-", 64)) {
            rc = ferry__bc_err(err, FERRY_EPROTO,
                               "BigCommerce abandoned cart %s has no usable `cart_id`", id);
            goto cleanup;
        }
        snprintf(cart_id, sizeof(cart_id), "%s", cid);
        json_decref(root);
        root = NULL;
        ferry__bc_buf_free(&url);
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_printf(&url, "/carts/%s", cart_id);
    ferry__bc_buf_puts(
        &url, "?include=line_items.physical_items.options,line_items.digital_items.options");
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_CART, &root, err)) < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_object(data)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce cart %s `data` is not an object",
                           cart_id);
        goto cleanup;
    }
    *record = json_incref(data);
    rc = 0;
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/* ---- products (v3 catalog) ------------------------------------------------------------- */

/* A new reference to v, or `def` (stolen) when v is absent. */
static json_t *copy_or(json_t *v, json_t *def)
{
    if (v) {
        json_decref(def);
        return json_incref(v);
    }
    return def;
}

/*
 * The order-line reference: what a CRM line needs, not the catalog entry.
 * Catalog prices are in the store's default currency, which the catalog
 * does not repeat per product; `store_currency` names it.
 */
static int product_reference(const struct ferry_bc_state *st, json_t *p, json_t **out,
                             struct ferry_err *err)
{
    json_t *ref = json_object();
    if (!ref ||
        json_object_set_new(ref, "id", copy_or(json_object_get(p, "id"), json_null())) < 0 ||
        json_object_set_new(ref, "sku", copy_or(json_object_get(p, "sku"), json_string(""))) < 0 ||
        json_object_set_new(ref, "name", copy_or(json_object_get(p, "name"), json_string(""))) <
            0 ||
        json_object_set_new(ref, "price", copy_or(json_object_get(p, "price"), json_null())) < 0 ||
        json_object_set_new(ref, "currency", json_string(st->store_currency)) < 0 ||
        json_object_set_new(ref, "date_modified",
                            copy_or(json_object_get(p, "date_modified"), json_null())) < 0) {
        json_decref(ref);
        return BC_NOMEM(err);
    }
    *out = ref;
    return 0;
}

static int product_fetch(const struct ferry_bc_state *st, struct ferry_call *call, const char *id,
                         json_t **record, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *data;
    long long want;
    int rc = parse_id("product", id, &want, err);
    if (rc < 0) {
        return rc;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_printf(&url, "/catalog/products/%lld?include_fields=sku,name,price,date_modified",
                         want);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_PRODUCT, &root, err)) < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_object(data) || json_integer_value(json_object_get(data, "id")) != want) {
        rc = ferry__bc_err(err, FERRY_EPROTO,
                           "BigCommerce answered the read of product %s without that product", id);
        goto cleanup;
    }
    rc = product_reference(st, data, record, err);
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/* Keyset walk over date_modified, as customers (the catalog has the same filters). */
static int product_list(const struct ferry_bc_state *st, struct ferry_call *call, const char *since,
                        const char *token, json_t **page, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    struct ferry_bc_keyset ks;
    struct ferry_bc_keyset_row rows[FERRY_BC_KEYSET_MAX_SEEN];
    json_t *root = NULL, *out = NULL, *data, *el;
    int64_t since_s, total = -1;
    int have;
    size_t i, n = 0;
    int rc;

    if ((rc = parse_keyset(token, &ks, err)) < 0 ||
        (rc = since_seconds(since, &since_s, &have, err)) < 0) {
        return rc;
    }
    if (ks.mode == FERRY_BC_KEYSET_FIRST && have) {
        ks.at = since_s;
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_puts(&url, "/catalog/products?");
    if (ks.mode != FERRY_BC_KEYSET_FIRST || have) {
        char iso[FERRY_BC_ISO_LEN];
        ferry__bc_format_iso(ks.at, iso);
        ferry__bc_buf_printf(&url, "date_modified:min=%s&", iso);
        if (ks.mode == FERRY_BC_KEYSET_INSTANT) {
            ferry__bc_buf_printf(&url, "date_modified:max=%s&", iso);
        }
    }
    ferry__bc_buf_printf(&url,
                         "sort=date_modified&direction=asc&include_fields=sku,name,price,"
                         "date_modified&limit=%d&page=%lld",
                         st->page_limit, keyset_page_no(&ks));
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_PRODUCT, &root, err)) < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_array(data)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce product list `data` is not an array");
        goto cleanup;
    }
    if ((rc = keyset_fits(st, json_array_size(data), "product", err)) < 0 ||
        (rc = v3_total(root, "product", &total, err)) < 0) {
        goto cleanup;
    }
    if (!(out = new_page())) {
        rc = BC_NOMEM(err);
        goto cleanup;
    }
    json_array_foreach(data, i, el)
    {
        char id[32], iso[FERRY_BC_ISO_LEN];
        json_t *ref = NULL;
        if (row_id(el, "id", &rows[n].id, id, sizeof(id)) < 0 ||
            ferry__bc_parse_iso(json_string_value(json_object_get(el, "date_modified")),
                                &rows[n].t) < 0) {
            rc = ferry__bc_err(err, FERRY_EPROTO,
                               "BigCommerce product list has an element without `id` and "
                               "`date_modified`");
            goto cleanup;
        }
        if (!ferry__bc_keyset_wanted(&ks, &rows[n++])) {
            continue;
        }
        ferry__bc_format_iso(rows[n - 1].t, iso);
        if ((rc = product_reference(st, el, &ref, err)) < 0) {
            goto cleanup;
        }
        rc = page_add(out, id, iso, ref, NULL, err);
        json_decref(ref);
        if (rc < 0) {
            goto cleanup;
        }
    }
    if ((rc = keyset_advance(st, call, FERRY_BC_OBJECT_PRODUCT, &ks, FERRY_BC_INSTANT_PAGES, rows,
                             n, total, out, err)) < 0) {
        goto cleanup;
    }
    *page = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(out);
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/* ---- B2B Edition: companies, company users, company addresses -------------------------- */

struct b2b_kind {
    const char *object;
    const char *path;    /* collection path under /api/v3/io */
    const char *id_key;  /* the record's id member */
    const char *id_key2; /* fallback id member; may be NULL */
    const char *list_qs; /* fixed query of the list request */
    int keyset;          /* sortable by updatedAt: pages by key, else by offset */
};

/*
 * Only companies can be sorted by updatedAt (company.yaml sortBy); users
 * and addresses have the date filters but no sort, so their walk stays by
 * offset in the API's own order (README, "Paging").
 */
static const struct b2b_kind b2b_company = {FERRY_BC_OBJECT_COMPANY,
                                            "/companies",
                                            "companyId",
                                            "id",
                                            "sortBy=updatedAt&orderBy=ASC&isIncludeExtraFields=1",
                                            1};
static const struct b2b_kind b2b_user = {FERRY_BC_OBJECT_COMPANY_USER, "/users", "id", NULL,
                                         "isIncludeExtraFields=1",     0};
static const struct b2b_kind b2b_address = {
    FERRY_BC_OBJECT_COMPANY_ADDRESS, "/addresses", "addressId", "id", "isIncludeExtraFields=1", 0};

/* updatedAt: Unix seconds as a number or a decimal string (facts 9.2). */
static int b2b_modified(json_t *rec, int64_t *t_out, char *iso)
{
    json_t *v = json_object_get(rec, "updatedAt");
    int64_t t;
    char *end = NULL;
    if (json_is_integer(v)) {
        t = json_integer_value(v);
    } else if (json_is_real(v)) {
        t = (int64_t)json_real_value(v);
    } else if (json_is_string(v) && json_string_length(v) > 0) {
        errno = 0;
        t = strtoll(json_string_value(v), &end, 10);
        if (errno || *end != '\0') {
            return -1;
        }
    } else {
        return -1;
    }
    if (t < 0 || t > 253402300799LL) {
        return -1;
    }
    ferry__bc_format_iso(t, iso);
    *t_out = t;
    return 0;
}

static int b2b_fetch(const struct ferry_bc_state *st, struct ferry_call *call,
                     const struct b2b_kind *k, const char *id, json_t **record,
                     struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *data;
    long long want;
    int rc = parse_id(k->object, id, &want, err);
    if (rc < 0) {
        return rc;
    }
    ferry__bc_url(st, FERRY_BC_API_B2B, NULL, &url);
    ferry__bc_buf_printf(&url, "%s/%lld", k->path, want);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_b2b(st, call, url.p, k->object, &root, err)) < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_object(data)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "B2B Edition %s %s: `data` is not an object",
                           k->object, id);
        goto cleanup;
    }
    *record = json_incref(data);
    rc = 0;
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/*
 * Companies: keyset walk over updatedAt. minModified reads "later than" in
 * user.yaml but "the earliest that can be returned" in company.yaml, so the
 * bound goes out one second early until records of that second show it
 * inclusive (the walk remembers); maxModified likewise one second late. An
 * instant that fills a page is read by offset from its last page.
 * Users and addresses: by offset over minModified (see b2b_kind).
 */
static int b2b_list(const struct ferry_bc_state *st, struct ferry_call *call,
                    const struct b2b_kind *k, const char *since, const char *token, json_t **page,
                    struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    struct ferry_bc_keyset ks;
    struct ferry_bc_keyset_row rows[FERRY_BC_KEYSET_MAX_SEEN];
    json_t *root = NULL, *out = NULL, *data, *el, *pagination;
    long offset = 0;
    int64_t since_s, slack;
    int have;
    size_t i, n = 0;
    int rc;

    if ((rc = k->keyset ? parse_keyset(token, &ks, err) : parse_token(token, 0, &offset, err)) <
            0 ||
        (rc = since_seconds(since, &since_s, &have, err)) < 0) {
        return rc;
    }
    if (!k->keyset) {
        memset(&ks, 0, sizeof(ks));
    } else if (ks.mode == FERRY_BC_KEYSET_FIRST && have) {
        ks.at = since_s;
    } else if (ks.mode == FERRY_BC_KEYSET_INSTANT && ks.pos > 1) {
        offset = (long)((ks.pos - 1) * st->page_limit);
    }
    slack = ks.inclusive ? 0 : 1;
    ferry__bc_url(st, FERRY_BC_API_B2B, NULL, &url);
    ferry__bc_buf_printf(&url, "%s?", k->path);
    if (ks.mode == FERRY_BC_KEYSET_FIRST && have) {
        ferry__bc_buf_printf(&url, "minModified=%lld&", (long long)(since_s > 0 ? since_s - 1 : 0));
    } else if (ks.mode != FERRY_BC_KEYSET_FIRST) {
        ferry__bc_buf_printf(&url, "minModified=%lld&",
                             (long long)(ks.at >= slack ? ks.at - slack : 0));
        if (ks.mode == FERRY_BC_KEYSET_INSTANT) {
            ferry__bc_buf_printf(&url, "maxModified=%lld&", (long long)(ks.at + slack));
        }
    }
    ferry__bc_buf_printf(&url, "%s&limit=%d&offset=%ld", k->list_qs, st->page_limit, offset);
    if ((rc = url_oom(&url, err)) < 0 ||
        (rc = ferry__bc_get_b2b(st, call, url.p, k->object, &root, err)) < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    pagination = json_object_get(json_object_get(root, "meta"), "pagination");
    if (!json_is_array(data) || !json_is_integer(json_object_get(pagination, "totalCount"))) {
        rc = ferry__bc_err(err, FERRY_EPROTO,
                           "B2B Edition %s list lacks a `data` array or meta.pagination.totalCount",
                           k->object);
        goto cleanup;
    }
    if (k->keyset && (rc = keyset_fits(st, json_array_size(data), k->object, err)) < 0) {
        goto cleanup;
    }
    if (!(out = new_page())) {
        rc = BC_NOMEM(err);
        goto cleanup;
    }
    json_array_foreach(data, i, el)
    {
        char id[32], iso[FERRY_BC_ISO_LEN];
        struct ferry_bc_keyset_row row;
        if ((row_id(el, k->id_key, &row.id, id, sizeof(id)) < 0 &&
             (!k->id_key2 || row_id(el, k->id_key2, &row.id, id, sizeof(id)) < 0)) ||
            b2b_modified(el, &row.t, iso) < 0) {
            rc = ferry__bc_err(err, FERRY_EPROTO,
                               "B2B Edition %s at offset %ld has no `%s` or no Unix `updatedAt`",
                               k->object, offset + (long)i, k->id_key);
            goto cleanup;
        }
        if (k->keyset) {
            rows[n++] = row;
            if (!ferry__bc_keyset_wanted(&ks, &row)) {
                continue;
            }
        }
        if ((rc = page_add(out, id, iso, el, NULL, err)) < 0) {
            goto cleanup;
        }
    }
    if (k->keyset) {
        rc = keyset_advance(st, call, k->object, &ks, FERRY_BC_INSTANT_PAGES, rows, n,
                            (int64_t)json_integer_value(json_object_get(pagination, "totalCount")),
                            out, err);
    } else if (json_array_size(data) > 0 &&
               offset + (long)json_array_size(data) <
                   json_integer_value(json_object_get(pagination, "totalCount"))) {
        rc = page_next(out, offset + (long)json_array_size(data), err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    *page = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(out);
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

/* ---- dispatch -------------------------------------------------------------------------- */

int ferry__bc_object_known(const char *object)
{
    static const char *const names[] = {
        FERRY_BC_OBJECT_CUSTOMER, FERRY_BC_OBJECT_CUSTOMER_ADDR, FERRY_BC_OBJECT_ORDER,
        FERRY_BC_OBJECT_REFUND,   FERRY_BC_OBJECT_CART,          FERRY_BC_OBJECT_PRODUCT,
        FERRY_BC_OBJECT_COMPANY,  FERRY_BC_OBJECT_COMPANY_USER,  FERRY_BC_OBJECT_COMPANY_ADDRESS,
    };
    for (size_t i = 0; object && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(object, names[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int unsupported(const char *object, struct ferry_err *err)
{
    return ferry__bc_err(err, FERRY_EUNSUPPORTED,
                         "bigcommerce: object '%.64s' is not supported (customer, "
                         "customer_address, order, refund, cart, product, company, company_user, "
                         "company_address)",
                         object ? object : "(null)");
}

int ferry__bc_fetch(const struct ferry_bc_state *st, struct ferry_call *call, const char *object,
                    const char *id, json_t **record, struct ferry_err *err)
{
    if (!object) {
        return unsupported(object, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_CUSTOMER) == 0) {
        return customer_fetch(st, call, id, record, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_CUSTOMER_ADDR) == 0) {
        return address_fetch(st, call, id, record, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_ORDER) == 0) {
        return order_fetch(st, call, id, record, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_REFUND) == 0) {
        return refund_fetch(st, call, id, record, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_CART) == 0) {
        return cart_fetch(st, call, id, record, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_PRODUCT) == 0) {
        return product_fetch(st, call, id, record, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_COMPANY) == 0) {
        return b2b_fetch(st, call, &b2b_company, id, record, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_COMPANY_USER) == 0) {
        return b2b_fetch(st, call, &b2b_user, id, record, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_COMPANY_ADDRESS) == 0) {
        return b2b_fetch(st, call, &b2b_address, id, record, err);
    }
    return unsupported(object, err);
}

int ferry__bc_list(const struct ferry_bc_state *st, struct ferry_call *call, const char *object,
                   const char *since, const char *page_token, json_t **page, struct ferry_err *err)
{
    if (!object) {
        return unsupported(object, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_CUSTOMER) == 0) {
        return customer_list(st, call, since, page_token, page, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_CUSTOMER_ADDR) == 0) {
        return address_list(st, call, since, page_token, page, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_ORDER) == 0) {
        return order_list(st, call, since, page_token, page, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_REFUND) == 0) {
        return refund_list(st, call, since, page_token, page, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_CART) == 0) {
        /* BigCommerce cannot list carts; abandoned carts arrive by webhook only (facts 7). */
        return ferry__bc_err(err, FERRY_EUNSUPPORTED,
                             "bigcommerce: carts cannot be listed; they arrive by the "
                             "store/cart/abandoned webhook only");
    }
    if (strcmp(object, FERRY_BC_OBJECT_PRODUCT) == 0) {
        return product_list(st, call, since, page_token, page, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_COMPANY) == 0) {
        return b2b_list(st, call, &b2b_company, since, page_token, page, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_COMPANY_USER) == 0) {
        return b2b_list(st, call, &b2b_user, since, page_token, page, err);
    }
    if (strcmp(object, FERRY_BC_OBJECT_COMPANY_ADDRESS) == 0) {
        return b2b_list(st, call, &b2b_address, since, page_token, page, err);
    }
    return unsupported(object, err);
}
