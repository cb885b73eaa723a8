/* SPDX-License-Identifier: MIT */
/*
 * URL, credential and envelope handling for c4codataapi (see
 * sap_sales_odata.h). Pure functions over strings and jansson values; the
 * HTTP exchange and its retries live in sap_sales_session.c and sap_sales.c.
 */
#include "sap_sales_odata.h"

#include "sap_sales_atom.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ferry__sap_err_set(struct ferry_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (!err) {
        return code;
    }
    err->code = code;
    err->retry_after_ms = 0;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

bool ferry__sap_contains_ci(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (!hay || n == 0 || len < n) {
        return false;
    }
    for (size_t i = 0; i + n <= len; i++) {
        size_t j = 0;
        while (j < n && tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j])) {
            j++;
        }
        if (j == n) {
            return true;
        }
    }
    return false;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n + 1);
    }
    return d;
}

int ferry__sap_root_normalise(const char *in, char **out, struct ferry_err *err)
{
    const char *host = NULL;
    size_t len;
    char *copy = NULL;

    *out = NULL;
    if (!in || !*in) {
        return ferry__sap_err_set(err, FERRY_ECONFIG, "service_root is empty");
    }
    if (strncmp(in, "https://", 8) == 0) {
        host = in + 8;
    } else if (strncmp(in, "http://", 7) == 0) {
        /* Plain http is only sensible for the loopback simulator; the host decides TLS. */
        host = in + 7;
    } else {
        return ferry__sap_err_set(err, FERRY_ECONFIG,
                                  "service_root must start with https:// or http://");
    }
    if (*host == '\0' || *host == '/') {
        return ferry__sap_err_set(err, FERRY_ECONFIG, "service_root has no host");
    }
    for (const char *p = in; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#') {
            return ferry__sap_err_set(err, FERRY_ECONFIG,
                                      "service_root must be a plain URL without spaces, "
                                      "query or fragment");
        }
    }
    len = strlen(in);
    while (len > (size_t)(host - in) && in[len - 1] == '/') {
        len--;
    }
    copy = malloc(len + 2);
    if (!copy) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    memcpy(copy, in, len);
    copy[len] = '/';
    copy[len + 1] = '\0';
    *out = copy;
    return 0;
}

char *ferry__sap_base64(const unsigned char *data, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t olen = 4 * ((len + 2) / 3);
    char *out = malloc(olen + 1);
    char *o = out;
    size_t i = 0;

    if (!out) {
        return NULL;
    }
    for (; i + 2 < len; i += 3) {
        uint32_t v = ((uint32_t)data[i] << 16) | ((uint32_t)data[i + 1] << 8) | data[i + 2];
        *o++ = tbl[(v >> 18) & 63];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = tbl[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)data[i + 1] << 8;
        }
        *o++ = tbl[(v >> 18) & 63];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = (i + 1 < len) ? tbl[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

char *ferry__sap_basic_auth(const char *user, const char *password)
{
    size_t ul = strlen(user), pl = strlen(password);
    unsigned char *plain = malloc(ul + pl + 1);
    char *b64 = NULL;
    char *out = NULL;

    if (!plain) {
        goto cleanup;
    }
    memcpy(plain, user, ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, password, pl);
    b64 = ferry__sap_base64(plain, ul + pl + 1);
    if (!b64) {
        goto cleanup;
    }
    out = malloc(strlen(b64) + sizeof("Basic "));
    if (out) {
        strcpy(out, "Basic ");
        strcat(out, b64);
    }
cleanup:
    if (plain) {
        /* The password should not linger in freed heap memory. */
        memset(plain, 0, ul + pl + 1);
    }
    free(plain);
    free(b64);
    return out;
}

static bool unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

char *ferry__sap_pct_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    char *out, *o;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        n += unreserved(*p) ? 1 : 3;
    }
    out = malloc(n + 1);
    if (!out) {
        return NULL;
    }
    o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

char *ferry__sap_literal_encode(const char *s)
{
    size_t n = strlen(s), quotes = 0;
    char *doubled, *o, *out;

    for (const char *p = s; *p; p++) {
        quotes += (*p == '\'');
    }
    doubled = malloc(n + quotes + 1);
    if (!doubled) {
        return NULL;
    }
    o = doubled;
    for (const char *p = s; *p; p++) {
        *o++ = *p;
        if (*p == '\'') {
            *o++ = '\'';
        }
    }
    *o = '\0';
    out = ferry__sap_pct_encode(doubled);
    free(doubled);
    return out;
}

bool ferry__sap_is_name(const char *s)
{
    if (!s || !*s) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (!isalnum(*p) && *p != '_') {
            return false;
        }
    }
    return true;
}

/* Concatenates NULL-terminated parts into a new string. */
static char *join(const char *first, ...)
{
    va_list ap;
    size_t n = 0;
    char *out;

    va_start(ap, first);
    for (const char *p = first; p; p = va_arg(ap, const char *)) {
        n += strlen(p);
    }
    va_end(ap);
    out = malloc(n + 1);
    if (!out) {
        return NULL;
    }
    out[0] = '\0';
    va_start(ap, first);
    for (const char *p = first; p; p = va_arg(ap, const char *)) {
        strcat(out, p);
    }
    va_end(ap);
    return out;
}

char *ferry__sap_entity_url(const char *root, const char *object, const char *id, const char *query)
{
    char *lit = ferry__sap_literal_encode(id);
    char *out = NULL;
    if (lit) {
        out = join(root, object, "('", lit, "')", query ? query : "", (const char *)NULL);
    }
    free(lit);
    return out;
}

char *ferry__sap_lookup_url(const char *root, const char *object, const char *field,
                            const char *value, int top)
{
    /* One condition is the simplest case of several. */
    json_t *where = json_pack("{s:s}", field, value);
    char *out = where ? ferry__sap_where_url(root, object, where, top) : NULL;
    json_decref(where);
    return out;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "(F eq 'a' or F eq 'b')", or "F eq 'a'" for a single value; %-encoded. */
static char *where_term(const char *field, const json_t *v)
{
    size_t i, n = json_is_array(v) ? json_array_size(v) : 1;
    char *out = NULL;
    for (i = 0; i < n; i++) {
        const char *text = json_string_value(json_is_array(v) ? json_array_get(v, i) : v);
        char *lit = text ? ferry__sap_literal_encode(text) : NULL;
        char *next = lit ? join(out ? out : "", out ? "%20or%20" : "", field, "%20eq%20%27", lit,
                                "%27", (const char *)NULL)
                         : NULL;
        free(lit);
        free(out);
        out = next;
        if (!out) {
            return NULL;
        }
    }
    if (n > 1) {
        char *wrapped = join("(", out, ")", (const char *)NULL);
        free(out);
        out = wrapped;
    }
    return out;
}

char *ferry__sap_where_url(const char *root, const char *object, const json_t *where, int top)
{
    const char **keys;
    size_t n = json_object_size(where), k = 0;
    const char *key;
    json_t *v;
    char *filter = NULL, *out = NULL;
    char topbuf[32];

    if (n == 0 || !(keys = calloc(n, sizeof(*keys)))) {
        return NULL;
    }
    json_object_foreach((json_t *)where, key, v)
    {
        keys[k++] = key;
    }
    /* Sorted: the same conditions always make the same URL (audit, caches). */
    qsort(keys, n, sizeof(*keys), cmp_cstr);
    for (k = 0; k < n; k++) {
        char *term = where_term(keys[k], json_object_get(where, keys[k]));
        char *next =
            term ? join(filter ? filter : "", filter ? "%20and%20" : "", term, (const char *)NULL)
                 : NULL;
        free(term);
        free(filter);
        filter = next;
        if (!filter) {
            goto cleanup;
        }
    }
    snprintf(topbuf, sizeof(topbuf), "%d", top);
    out =
        join(root, object, "?$filter=", filter, "&$format=json&$top=", topbuf, (const char *)NULL);
cleanup:
    free(filter);
    free(keys);
    return out;
}

json_t *ferry__sap_load_body(const char *body, size_t len, struct ferry_err *err)
{
    json_error_t jerr;
    json_t *doc;
    if (!body || len == 0) {
        ferry__sap_err_set(err, FERRY_EPROTO, "empty response body where JSON was expected");
        return NULL;
    }
    if (ferry__sap_is_xml(body, len)) {
        /* A tenant or proxy that ignored Accept/$format: Atom is C4C's default. */
        return ferry__sap_atom_to_json(body, len, &doc, err) == 0 ? doc : NULL;
    }
    doc = json_loadb(body, len, 0, &jerr);
    if (!doc) {
        ferry__sap_err_set(err, FERRY_EPROTO, "response is not JSON: %s (line %d)", jerr.text,
                           jerr.line);
    }
    return doc;
}

int ferry__sap_parse_entity(const char *body, size_t len, json_t **entity, struct ferry_err *err)
{
    int rc = FERRY_EPROTO;
    json_t *doc = NULL, *d, *res, *ent;

    *entity = NULL;
    doc = ferry__sap_load_body(body, len, err);
    if (!doc) {
        goto cleanup;
    }
    d = json_object_get(doc, "d");
    if (!json_is_object(d)) {
        ferry__sap_err_set(err, FERRY_EPROTO, "response has no \"d\" object");
        goto cleanup;
    }
    res = json_object_get(d, "results");
    if (json_is_object(res)) {
        ent = res;
    } else if (!res) {
        ent = d;
    } else {
        ferry__sap_err_set(err, FERRY_EPROTO, "expected one entity, got a collection");
        goto cleanup;
    }
    *entity = json_incref(ent);
    rc = 0;
cleanup:
    json_decref(doc);
    return rc;
}

int ferry__sap_parse_collection(const char *body, size_t len, json_t **results, char **next,
                                struct ferry_err *err)
{
    int rc = FERRY_EPROTO;
    json_t *doc = NULL, *d, *res, *jnext, *count, *item;
    size_t i;

    *results = NULL;
    if (next) {
        *next = NULL;
    }
    doc = ferry__sap_load_body(body, len, err);
    if (!doc) {
        goto cleanup;
    }
    d = json_object_get(doc, "d");
    res = json_object_get(d, "results");
    if (!json_is_array(res)) {
        ferry__sap_err_set(err, FERRY_EPROTO, "collection response has no d.results array");
        goto cleanup;
    }
    /* __count is a string in v2 JSON; a number would mean another server dialect. */
    count = json_object_get(d, "__count");
    if (count && !json_is_string(count)) {
        ferry__sap_err_set(err, FERRY_EPROTO, "d.__count is not a string");
        goto cleanup;
    }
    jnext = json_object_get(d, "__next");
    if (jnext && !json_is_string(jnext) && !json_is_null(jnext)) {
        ferry__sap_err_set(err, FERRY_EPROTO, "d.__next is not a string");
        goto cleanup;
    }
    json_array_foreach(res, i, item)
    {
        if (!json_is_string(json_object_get(item, "ObjectID"))) {
            ferry__sap_err_set(err, FERRY_EPROTO, "collection entry %zu has no ObjectID", i);
            goto cleanup;
        }
    }
    if (next && json_is_string(jnext)) {
        *next = dup_str(json_string_value(jnext));
        if (!*next) {
            rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
    }
    *results = json_incref(res);
    rc = 0;
cleanup:
    json_decref(doc);
    return rc;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

char *ferry__sap_location_key(const char *location)
{
    const char *open = NULL, *end, *p;
    char *out, *o;

    if (!location) {
        return NULL;
    }
    end = location + strcspn(location, "?#");
    /* The entity segment is the last one; a quote inside the key is doubled, so "')" ends it. */
    if (end - location < 4 || end[-1] != ')' || end[-2] != '\'') {
        return NULL;
    }
    for (p = end - 2; p > location; p--) {
        if (p[-1] == '(' && p[0] == '\'') {
            open = p + 1;
            break;
        }
    }
    if (!open || open >= end - 2) {
        return NULL;
    }
    out = malloc((size_t)(end - 2 - open) + 1);
    if (!out) {
        return NULL;
    }
    o = out;
    for (p = open; p < end - 2; p++) {
        char c = *p;
        if (c == '%' && end - 2 - p > 2 && hex_digit(p[1]) >= 0 && hex_digit(p[2]) >= 0) {
            c = (char)(hex_digit(p[1]) * 16 + hex_digit(p[2]));
            p += 2;
        }
        if (c == '\'') {
            /* Only the doubled quote of the OData literal may appear inside it. */
            if (p + 1 < end - 2 && p[1] == '\'') {
                p++;
            } else if (p + 3 < end - 2 && p[1] == '%' && p[2] == '2' && p[3] == '7') {
                p += 3;
            } else {
                free(out);
                return NULL;
            }
        }
        *o++ = c;
    }
    *o = '\0';
    if (o == out || strlen(out) != (size_t)(o - out)) {
        free(out);
        return NULL;
    }
    return out;
}

const char *ferry__sap_entity_etag(const json_t *entity)
{
    json_t *meta = json_object_get(entity, "__metadata");
    return json_string_value(json_object_get(meta, "etag"));
}

void ferry__sap_error_text(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *doc = NULL;
    const char *text = NULL;
    size_t n, o = 0;

    if (outlen == 0) {
        return;
    }
    out[0] = '\0';
    if (!body || len == 0) {
        return;
    }
    doc = ferry__sap_is_xml(body, len)
              ? (ferry__sap_atom_to_json(body, len, &doc, NULL) == 0 ? doc : NULL)
              : json_loadb(body, len, 0, NULL);
    if (doc) {
        json_t *msg = json_object_get(json_object_get(doc, "error"), "message");
        text = json_is_string(msg) ? json_string_value(msg)
                                   : json_string_value(json_object_get(msg, "value"));
    }
    if (text) {
        snprintf(out, outlen, "%s", text);
        goto cleanup;
    }
    /* Not our JSON shape (an HTML gateway page, Atom XML): keep a bounded excerpt. */
    n = len < FERRY_SAP_ERROR_TEXT_MAX ? len : FERRY_SAP_ERROR_TEXT_MAX;
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)body[i];
        out[o++] = (c < ' ' || c == 127) ? ' ' : (char)c;
    }
    out[o] = '\0';
cleanup:
    json_decref(doc);
}

static int64_t retry_after_ms(const char *value)
{
    char *end = NULL;
    long secs;
    if (!value) {
        return FERRY_SAP_DEFAULT_RETRY_MS;
    }
    while (*value == ' ') {
        value++;
    }
    secs = strtol(value, &end, 10);
    /* The HTTP-date form is legal too; a fixed back-off is good enough for it. */
    if (end == value || secs < 0 || secs > 86400) {
        return FERRY_SAP_DEFAULT_RETRY_MS;
    }
    return (int64_t)secs * 1000;
}

int ferry__sap_status_error(long status, const char *body, size_t len, const char *retry_after,
                            const char *what, struct ferry_err *err)
{
    char text[FERRY_SAP_ERROR_TEXT_MAX + 1];
    int code;

    ferry__sap_error_text(body, len, text, sizeof(text));
    if (status == 400) {
        code = FERRY_EVALIDATION;
    } else if (status == 401) {
        code = FERRY_EAUTH;
    } else if (status == 403) {
        code = FERRY_EFORBIDDEN;
    } else if (status == 404) {
        code = FERRY_ENOTFOUND;
    } else if (status == 412) {
        code = FERRY_ECONFLICT;
    } else if (status == 429) {
        code = FERRY_ERATELIMIT;
    } else if (status >= 500 && status <= 599) {
        code = FERRY_EUNAVAILABLE;
    } else if (status >= 400 && status <= 499) {
        /* 405/409/415...: the request itself was refused; resending it cannot help. */
        code = FERRY_EVALIDATION;
    } else {
        code = FERRY_EPROTO;
    }
    ferry__sap_err_set(err, code, "%s: HTTP %ld%s%s", what, status, text[0] ? ": " : "", text);
    if (err && (status == 429 || status == 503)) {
        err->retry_after_ms = retry_after_ms(retry_after);
    }
    return code;
}

bool ferry__sap_is_csrf_failure(long status, const char *csrf_header, const char *body, size_t len)
{
    if (status != 403) {
        return false;
    }
    if (csrf_header && ferry__sap_contains_ci(csrf_header, strlen(csrf_header), "required")) {
        return true;
    }
    return ferry__sap_contains_ci(body, len, "csrf token");
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), Howard Hinnant's method. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int ferry__sap_iso_to_ms(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec = 0, frac_ms = 0, off = 0;
    const char *p;

    if (!s || strlen(s) < 16 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi)) {
        return FERRY_EINVAL;
    }
    p = s + 16;
    if (*p == ':') {
        if (digits(p + 1, 2, &sec)) {
            return FERRY_EINVAL;
        }
        p += 3;
        if (*p == '.') {
            int scale = 100;
            for (p++; isdigit((unsigned char)*p); p++) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
            }
        }
    }
    if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || p[6]) {
            return FERRY_EINVAL;
        }
        off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    } else if (*p == 'Z') {
        if (p[1]) {
            return FERRY_EINVAL;
        }
    } else if (*p) {
        return FERRY_EINVAL;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return FERRY_EINVAL;
    }
    *ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - (int64_t)off * 60) *
              1000 +
          frac_ms;
    return 0;
}

void ferry__sap_ms_to_iso(int64_t ms, char out[32])
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t msec = ms - secs * 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400;
    /* civil_from_days, the inverse of days_from_civil. */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp + (mp < 10 ? 3 : -9);
    y += m <= 2;
    char buf[96];
    size_t n;
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, (int)m, (int)d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)msec);
    /* Years beyond 9999 do not occur in watermarks; keep the fixed width regardless. */
    n = strlen(buf);
    n = n > 31 ? 31 : n;
    memcpy(out, buf, n);
    out[n] = '\0';
}

int ferry__sap_odata_date_ms(const char *s, int64_t *ms)
{
    char *end = NULL;
    long long v;
    if (!s || strncmp(s, "/Date(", 6) != 0) {
        return FERRY_EINVAL;
    }
    v = strtoll(s + 6, &end, 10);
    if (end == s + 6) {
        return FERRY_EINVAL;
    }
    if (*end == '+' || *end == '-') {
        /* The offset only says which zone the writer was in; the ms are UTC already. */
        end++;
        while (isdigit((unsigned char)*end)) {
            end++;
        }
    }
    if (strcmp(end, ")/") != 0) {
        return FERRY_EINVAL;
    }
    *ms = v;
    return 0;
}

bool ferry__sap_is_iso(const char *s)
{
    int64_t ms;
    return ferry__sap_iso_to_ms(s, &ms) == 0;
}
