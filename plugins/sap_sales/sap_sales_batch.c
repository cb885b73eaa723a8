/* SPDX-License-Identifier: MIT */
/*
 * $batch request building and response parsing (see sap_sales_batch.h).
 * Pure functions over strings; the request itself goes out through
 * ferry__sap_write_batch in sap_sales.c.
 */
#include "sap_sales_batch.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ferry/text.h"

struct buf {
    char *data;
    size_t len, cap;
    bool failed;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *d;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/*
 * The body is a few fixed lines per request around the caller's texts; it is
 * joined by hand, since vsnprintf cost more than the rest of the building.
 */
static void buf_size(struct buf *b, size_t v)
{
    char digits[FERRY_DIGITS_MAX];
    size_t n = ferry_digits(digits, v);
    buf_add(b, digits + FERRY_DIGITS_MAX - n, n);
}

/* The changeset's own boundary "<boundary>_cs<cs>", as a delimiter line starts it ("--") or not. */
static void buf_changeset(struct buf *b, const char *boundary, size_t cs, bool dashes)
{
    if (dashes) {
        buf_str(b, "--");
    }
    buf_str(b, boundary);
    buf_str(b, "_cs");
    buf_size(b, cs);
}

/* One application/http part: MIME headers, blank line, request line, headers, blank, body. */
static void add_request(struct buf *b, const struct ferry_sap_batch_op *op, size_t index)
{
    size_t blen = op->body ? strlen(op->body) : 0;
    buf_str(b, "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
               "Content-ID: ");
    buf_size(b, index + 1);
    buf_str(b, "\r\n\r\n");
    buf_str(b, op->method);
    buf_str(b, " ");
    buf_str(b, op->path);
    buf_str(b, " HTTP/1.1\r\nAccept: application/json\r\n");
    if (op->no_response_payload) {
        buf_str(b, "odata-no-response-payload: true\r\n");
    }
    if (op->if_match) {
        buf_str(b, "If-Match: ");
        buf_str(b, op->if_match);
        buf_str(b, "\r\n");
    }
    if (op->body) {
        buf_str(b, "Content-Type: application/json\r\nContent-Length: ");
        buf_size(b, blen);
        buf_str(b, "\r\n\r\n");
        buf_add(b, op->body, blen);
        buf_add(b, "\r\n", 2);
    } else {
        /* A GET line needs a blank line after its headers and one more before the delimiter. */
        buf_add(b, "\r\n\r\n", 4);
    }
}

char *ferry__sap_batch_build(const char *boundary, const struct ferry_sap_batch_op *ops,
                             size_t nops, size_t *len)
{
    struct buf b = {0};
    size_t i = 0, cs = 0;

    *len = 0;
    while (i < nops) {
        if (strcmp(ops[i].method, "GET") == 0) {
            buf_str(&b, "--");
            buf_str(&b, boundary);
            buf_str(&b, "\r\n");
            add_request(&b, &ops[i], i);
            i++;
            continue;
        }
        buf_str(&b, "--");
        buf_str(&b, boundary);
        buf_str(&b, "\r\nContent-Type: multipart/mixed; boundary=");
        buf_changeset(&b, boundary, cs, false);
        buf_str(&b, "\r\n\r\n");
        for (size_t g = ops[i].group;
             i < nops && ops[i].group == g && strcmp(ops[i].method, "GET") != 0; i++) {
            buf_changeset(&b, boundary, cs, true);
            buf_str(&b, "\r\n");
            add_request(&b, &ops[i], i);
        }
        buf_changeset(&b, boundary, cs, true);
        buf_str(&b, "--\r\n");
        cs++;
    }
    buf_str(&b, "--");
    buf_str(&b, boundary);
    buf_str(&b, "--\r\n");
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

/* The boundary parameter of a multipart Content-Type, copied into out. */
static int boundary_of(const char *ctype, char *out, size_t outlen)
{
    const char *p = ctype;
    size_t n = 0;

    if (!ctype) {
        return -1;
    }
    for (; *p; p++) {
        if ((*p == 'b' || *p == 'B') && strncasecmp(p, "boundary=", 9) == 0 &&
            (p == ctype || p[-1] == ';' || p[-1] == ' ')) {
            break;
        }
    }
    if (!*p) {
        return -1;
    }
    p += 9;
    if (*p == '"') {
        p++;
        while (p[n] && p[n] != '"') {
            n++;
        }
    } else {
        while (p[n] && p[n] != ';' && !isspace((unsigned char)p[n])) {
            n++;
        }
    }
    if (n == 0 || n >= outlen) {
        return -1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* Next line of [p, end): *line_len excludes the CR/LF; returns the start of the following line. */
static const char *next_line(const char *p, const char *end, size_t *line_len)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    *line_len = (size_t)(stop - p);
    if (*line_len && p[*line_len - 1] == '\r') {
        (*line_len)--;
    }
    return nl ? nl + 1 : end;
}

/*
 * Header lines until a blank one into hdrs (names lower-cased); returns the
 * start of what follows the blank line.
 */
static const char *read_headers(const char *p, const char *end, json_t *hdrs)
{
    while (p < end) {
        size_t n;
        const char *line = p;
        const char *colon;
        p = next_line(p, end, &n);
        if (n == 0) {
            break;
        }
        colon = memchr(line, ':', n);
        if (colon) {
            char name[64];
            size_t nl = (size_t)(colon - line);
            const char *v = colon + 1;
            size_t vl;
            if (nl >= sizeof(name)) {
                continue;
            }
            for (size_t i = 0; i < nl; i++) {
                name[i] = (char)tolower((unsigned char)line[i]);
            }
            name[nl] = '\0';
            while (v < line + n && *v == ' ') {
                v++;
            }
            vl = (size_t)(line + n - v);
            json_object_set_new(hdrs, name, json_stringn(v, vl));
        }
    }
    return p;
}

/*
 * read_headers for a part's MIME headers, of which only Content-Type is
 * used: *ctype (caller frees; NULL when none) is the value read_headers
 * would keep under "content-type", without an object of every header (a
 * $batch answer has a few per record). Returns what follows the blank line.
 */
static const char *mime_content_type(const char *p, const char *end, char **ctype)
{
    *ctype = NULL;
    while (p < end) {
        size_t n;
        const char *line = p;
        p = next_line(p, end, &n);
        if (n == 0) {
            break;
        }
        const char *colon = memchr(line, ':', n);
        /* A NUL ends the name read_headers keeps, as it ends any C string. */
        if (!colon || strnlen(line, (size_t)(colon - line)) != 12 ||
            strncasecmp(line, "content-type", 12) != 0) {
            continue;
        }
        const char *v = colon + 1;
        while (v < line + n && *v == ' ') {
            v++;
        }
        size_t vl = (size_t)(line + n - v);
        bool ascii = true;
        for (size_t i = 0; i < vl && ascii; i++) {
            ascii = (unsigned char)v[i] < 0x80;
        }
        if (!ascii) {
            /* json_stringn refuses invalid UTF-8, and then read_headers keeps the earlier value. */
            json_t *check = json_stringn(v, vl);
            if (!check) {
                continue;
            }
            json_decref(check);
        }
        char *c = strndup(v, vl);
        if (c) {
            free(*ctype);
            *ctype = c;
        }
    }
    return p;
}

static int parse_multipart(const char *body, size_t len, const char *boundary, json_t *out,
                           int depth, struct ferry_err *err);

/*
 * An object of n members, as json_pack would build it from literal ASCII keys
 * and these values (steals each; a NULL value, e.g. a string json_string
 * refused as invalid UTF-8, fails the whole object). json_pack parses its
 * format again for every part of every $batch answer.
 */
static json_t *object_of(const char *const *keys, json_t **vals, size_t n)
{
    json_t *out = json_object();
    bool ok = out != NULL;
    for (size_t i = 0; i < n; i++) {
        if (!vals[i]) {
            ok = false;
        } else if (!ok) {
            json_decref(vals[i]);
        } else if (json_object_set_new_nocheck(out, keys[i], vals[i]) < 0) {
            ok = false;
        }
    }
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* One part: a nested multipart (a changeset) or application/http with a response. */
static int parse_part(const char *p, const char *end, json_t *out, int depth, struct ferry_err *err)
{
    json_t *hdrs = NULL, *inner_parts = NULL;
    char *ctype = NULL;
    char inner[128];
    size_t n;
    const char *line;
    long status;
    char *stop = NULL;
    int rc = FERRY_EPROTO;

    p = mime_content_type(p, end, &ctype);
    if (ctype && strncasecmp(ctype, "multipart/mixed", 15) == 0) {
        /* Changesets do not nest in OData v2; a deeper multipart is not ours to guess at. */
        if (boundary_of(ctype, inner, sizeof(inner)) < 0 || depth > 0) {
            ferry__sap_err_set(err, FERRY_EPROTO, "$batch: changeset without a usable boundary");
            goto cleanup;
        }
        inner_parts = json_array();
        rc = parse_multipart(p, (size_t)(end - p), inner, inner_parts, depth + 1, err);
        if (rc == 0 && json_array_append_new(out, json_pack("{s:O}", "changeset", inner_parts))) {
            rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        }
        goto cleanup;
    }
    line = p;
    p = next_line(p, end, &n);
    if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0) {
        ferry__sap_err_set(err, FERRY_EPROTO, "$batch: a part has no HTTP status line");
        goto cleanup;
    }
    status = strtol(line + 9, &stop, 10);
    if (stop == line + 9 || status < 100 || status > 599) {
        ferry__sap_err_set(err, FERRY_EPROTO, "$batch: a part has a malformed status line");
        goto cleanup;
    }
    hdrs = json_object();
    p = read_headers(p, end, hdrs);
    /* The part's own trailing line break belongs to the delimiter, not the body. */
    while (end > p && (end[-1] == '\n' || end[-1] == '\r')) {
        end--;
    }
    static const char *const part_keys[] = {"status", "headers", "body"};
    json_t *part_vals[] = {json_integer((int)status), json_incref(hdrs),
                           json_stringn(p, (size_t)(end - p))};
    if (json_array_append_new(out, object_of(part_keys, part_vals, 3)) < 0) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    rc = 0;
cleanup:
    free(ctype);
    json_decref(hdrs);
    json_decref(inner_parts);
    return rc;
}

/* Whether a delimiter line "--<boundary>" (2: its closing form) starts at p. */
static int delimiter_at(const char *p, const char *end, const char *boundary, size_t blen)
{
    if ((size_t)(end - p) < blen + 2 || p[0] != '-' || p[1] != '-' ||
        memcmp(p + 2, boundary, blen) != 0) {
        return 0;
    }
    p += blen + 2;
    if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
        return 2;
    }
    return 1;
}

static int parse_multipart(const char *body, size_t len, const char *boundary, json_t *out,
                           int depth, struct ferry_err *err)
{
    const char *p = body, *end = body + len;
    const char *part = NULL;
    size_t blen = strlen(boundary);

    /* Delimiters only count at the start of a line. */
    while (p < end) {
        size_t n;
        const char *line = p;
        int d = delimiter_at(line, end, boundary, blen);
        p = next_line(p, end, &n);
        if (!d) {
            continue;
        }
        if (part) {
            int rc = parse_part(part, line, out, depth, err);
            if (rc < 0) {
                return rc;
            }
        }
        if (d == 2) {
            return 0;
        }
        part = p;
    }
    return ferry__sap_err_set(err, FERRY_EPROTO,
                              "$batch: multipart body without closing delimiter --%s--", boundary);
}

int ferry__sap_batch_parse(const char *content_type, const char *body, size_t len, json_t **parts,
                           struct ferry_err *err)
{
    char boundary[128];
    json_t *out;
    int rc;

    *parts = NULL;
    if (boundary_of(content_type, boundary, sizeof(boundary)) < 0) {
        return ferry__sap_err_set(err, FERRY_EPROTO,
                                  "$batch response is not multipart/mixed with a boundary");
    }
    out = json_array();
    if (!out) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    rc = parse_multipart(body, len, boundary, out, 0, err);
    if (rc < 0) {
        json_decref(out);
        return rc;
    }
    *parts = out;
    return 0;
}

/* One op's outcome from its response part. */
static json_t *op_result(const json_t *part)
{
    long status = (long)json_integer_value(json_object_get(part, "status"));
    const json_t *hdrs = json_object_get(part, "headers");
    const char *body = json_string_value(json_object_get(part, "body"));
    size_t blen = json_string_length(json_object_get(part, "body"));
    const char *etag = json_string_value(json_object_get(hdrs, "etag"));
    json_t *entity = NULL, *out;

    if (status >= 200 && status <= 299) {
        char *key = ferry__sap_location_key(json_string_value(json_object_get(hdrs, "location")));
        const char *id = key;
        if (etag && !*etag) {
            etag = NULL;
        }
        /* Parsing the entity costs more than the rest of the part: only when a header is missing.
         */
        if ((!id || !etag) && blen && ferry__sap_parse_entity(body, blen, &entity, NULL) == 0) {
            if (!id) {
                id = json_string_value(json_object_get(entity, "ObjectID"));
            }
            if (!etag) {
                etag = ferry__sap_entity_etag(entity);
            }
        }
        static const char *const ok_keys[] = {"ok", "status", "id", "etag", "body"};
        json_t *ok_vals[] = {
            json_true(), json_integer((int)status), id ? json_string(id) : json_null(),
            etag ? json_string(etag) : json_null(), entity ? json_incref(entity) : json_null()};
        out = object_of(ok_keys, ok_vals, 5);
        json_decref(entity);
        free(key);
        return out;
    }
    {
        struct ferry_err e = {0};
        char what[32];
        snprintf(what, sizeof(what), "$batch part");
        ferry__sap_status_error(status, body, blen,
                                json_string_value(json_object_get(hdrs, "retry-after")), what, &e);
        return json_pack("{s:b, s:i, s:i, s:s}", "ok", 0, "status", (int)status, "code", e.code,
                         "error", e.msg);
    }
}

static json_t *no_answer(const char *why)
{
    return json_pack("{s:b, s:i, s:i, s:s}", "ok", 0, "status", 0, "code", FERRY_EPROTO, "error",
                     why);
}

int ferry__sap_batch_match(const struct ferry_sap_batch_op *ops, size_t nops, const json_t *parts,
                           json_t **results, struct ferry_err *err)
{
    json_t *out = json_array();
    size_t unit = 0, i = 0;

    *results = NULL;
    if (!out) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    /* Request units (a GET, or one changeset) and response items correspond one to one. */
    while (i < nops) {
        const json_t *item = json_array_get(parts, unit++);
        const json_t *cs = json_object_get(item, "changeset");
        size_t first = i, count = 1;

        if (strcmp(ops[i].method, "GET") != 0) {
            while (first + count < nops && ops[first + count].group == ops[first].group &&
                   strcmp(ops[first + count].method, "GET") != 0) {
                count++;
            }
        }
        for (size_t k = 0; k < count; k++) {
            json_t *r;
            if (!item) {
                r = no_answer("$batch: no response for this operation");
            } else if (cs) {
                const json_t *p = json_array_get(cs, k);
                r = p ? op_result(p) : no_answer("$batch: changeset answer is missing a part");
            } else if (count == 1 || !(json_integer_value(json_object_get(item, "status")) >= 200 &&
                                       json_integer_value(json_object_get(item, "status")) < 300)) {
                /* A changeset that failed is answered by one error response in its place. */
                r = op_result(item);
            } else {
                r = no_answer("$batch: changeset answered by a single success part");
            }
            if (!r || json_array_append_new(out, r) < 0) {
                json_decref(out);
                return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
            }
        }
        i = first + count;
    }
    *results = out;
    return 0;
}
