/* SPDX-License-Identifier: MIT */
/*
 * The host's HTTP client (http.h) on one libcurl easy handle per client.
 * Keeping the handle across requests keeps its connection and its cookie jar,
 * which is what makes a client one server session; every per-request option
 * is set again on each call so that nothing from the previous request (a
 * body, a custom method) leaks into the next one. Traces are built from what
 * curl actually put on the wire (its debug callback), then masked, so an
 * audit row shows the real request without its credentials.
 */
#include "http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>

#include "util.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0"
#endif

#define DEFAULT_TIMEOUT_MS         30000L
#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_MAX_RESPONSE       (16u * 1024u * 1024u)
#define DEFAULT_TRACE_BODY_MAX     4096u
#define TRACE_HEADERS_MAX          (16u * 1024u)
#define REDACTED                   "[REDACTED]"

struct ferry_http_client {
    CURL *h;
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_response;
    size_t trace_body_max;
    char **insecure_hosts;
    size_t ninsecure_hosts;
    char **secrets;
    size_t nsecrets;
    char errbuf[CURL_ERROR_SIZE];
};

struct buf {
    char *p;
    size_t len;
    size_t cap;
};

/* State of one transfer, shared with curl's callbacks. */
struct xfer {
    struct buf body;
    size_t max_body;
    bool toobig;
    bool oom;
    struct ferry_http_header *headers;
    size_t nheaders;
    size_t cap_headers;
    struct buf resp_head; /* status line + headers of the final response, for the trace */
    struct buf req_head;  /* request line + headers as sent, for the trace */
};

static int buf_append(struct buf *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            return FERRY_ENOMEM;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static void free_headers(struct ferry_http_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)h[i].name);
        free((char *)h[i].value);
    }
    free(h);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static int copy_strv(char ***dst, const char *const *src, size_t n)
{
    *dst = NULL;
    if (n == 0 || !src) {
        return 0;
    }
    char **v = calloc(n, sizeof(*v));
    if (!v) {
        return FERRY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup(src[i] ? src[i] : "");
        if (!v[i]) {
            free_strv(v, i);
            return FERRY_ENOMEM;
        }
    }
    *dst = v;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ferry_http_global_init(struct ferry_err *err)
{
    CURLcode cr = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cr != CURLE_OK) {
        return ferry_err_set(err, FERRY_EIO, "curl_global_init: %s", curl_easy_strerror(cr));
    }
    return 0;
}

void ferry_http_global_cleanup(void)
{
    curl_global_cleanup();
}

int ferry_http_client_new(struct ferry_http_client **out, const struct ferry_http_options *opt,
                          struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    struct ferry_http_client *c = calloc(1, sizeof(*c));
    struct ferry_http_options none = {0};

    if (!opt) {
        opt = &none;
    }
    if (!c) {
        goto cleanup;
    }
    c->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->connect_timeout_ms =
        opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    c->max_response = opt->max_response > 0 ? opt->max_response : DEFAULT_MAX_RESPONSE;
    c->trace_body_max = opt->trace_body_max > 0 ? opt->trace_body_max : DEFAULT_TRACE_BODY_MAX;
    /* Copies: a reloaded configuration must not pull strings from under a live client. */
    if (copy_strv(&c->insecure_hosts, opt->insecure_hosts, opt->ninsecure_hosts) < 0) {
        goto cleanup;
    }
    c->ninsecure_hosts = c->insecure_hosts ? opt->ninsecure_hosts : 0;
    if (copy_strv(&c->secrets, opt->secrets, opt->nsecrets) < 0) {
        goto cleanup;
    }
    c->nsecrets = c->secrets ? opt->nsecrets : 0;
    c->h = curl_easy_init();
    if (!c->h) {
        goto cleanup;
    }
    /* Worker threads: curl must not use signals for its timeouts. */
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    /* An empty file name turns the cookie engine on without reading any file. */
    curl_easy_setopt(c->h, CURLOPT_COOKIEFILE, "");
    curl_easy_setopt(c->h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
    *out = c;
    c = NULL;
    rc = 0;
cleanup:
    if (rc < 0) {
        ferry_err_set(err, rc, "http client: out of memory");
    }
    ferry_http_client_free(c);
    return rc;
}

void ferry_http_client_free(struct ferry_http_client *c)
{
    if (!c) {
        return;
    }
    if (c->h) {
        curl_easy_cleanup(c->h);
    }
    free_strv(c->insecure_hosts, c->ninsecure_hosts);
    free_strv(c->secrets, c->nsecrets);
    free(c);
}

void ferry_http_trace_clear(struct ferry_http_trace *t)
{
    if (!t) {
        return;
    }
    free(t->method);
    free(t->url);
    free(t->request);
    free(t->response);
    memset(t, 0, sizeof(*t));
}

void ferry_http_resp_free(struct ferry_http_resp *resp)
{
    if (!resp) {
        return;
    }
    free(resp->body);
    free_headers(resp->headers, resp->nheaders);
    memset(resp, 0, sizeof(*resp));
}

const char *ferry_http_resp_header(const struct ferry_http_resp *resp, const char *name)
{
    if (!resp || !name) {
        return NULL;
    }
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (strcasecmp(resp->headers[i].name, name) == 0) {
            return resp->headers[i].value;
        }
    }
    return NULL;
}

char *ferry_redact(const char *text, const char *const *secrets, size_t nsecrets)
{
    if (!text) {
        return NULL;
    }
    char *cur = strdup(text);
    bool *done = nsecrets ? calloc(nsecrets, sizeof(*done)) : NULL;
    if (!cur || (nsecrets && !done)) {
        free(cur);
        free(done);
        return NULL;
    }
    /* Longest first: a secret that contains another must be masked whole. */
    for (size_t round = 0; round < nsecrets; round++) {
        size_t best = nsecrets;
        size_t best_len = 0;
        for (size_t i = 0; i < nsecrets; i++) {
            size_t l = secrets[i] ? strlen(secrets[i]) : 0;
            if (!done[i] && (best == nsecrets || l > best_len)) {
                best = i;
                best_len = l;
            }
        }
        done[best] = true;
        if (best_len == 0) {
            continue;
        }
        const char *s = secrets[best];
        size_t count = 0;
        for (const char *p = strstr(cur, s); p; p = strstr(p + best_len, s)) {
            count++;
        }
        if (count == 0) {
            continue;
        }
        size_t len = strlen(cur) - count * best_len + count * strlen(REDACTED);
        char *next = malloc(len + 1);
        if (!next) {
            free(cur);
            free(done);
            return NULL;
        }
        char *o = next;
        const char *in = cur;
        for (const char *p = strstr(in, s); p; p = strstr(in, s)) {
            memcpy(o, in, (size_t)(p - in));
            o += p - in;
            memcpy(o, REDACTED, strlen(REDACTED));
            o += strlen(REDACTED);
            in = p + best_len;
        }
        strcpy(o, in);
        free(cur);
        cur = next;
    }
    free(done);
    return cur;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (x->body.len + n > x->max_body) {
        /* Returning short aborts the transfer with CURLE_WRITE_ERROR. */
        x->toobig = true;
        return 0;
    }
    if (buf_append(&x->body, data, n) < 0) {
        x->oom = true;
        return 0;
    }
    return n;
}

static char *trim_dup(const char *s, size_t n)
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) {
        n--;
    }
    return strndup(s, n);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;

    /* Each status line starts a new response (1xx, or one after auth); keep only the last. */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        free_headers(x->headers, x->nheaders);
        x->headers = NULL;
        x->nheaders = 0;
        x->cap_headers = 0;
        x->resp_head.len = 0;
    }
    if (x->resp_head.len + n <= TRACE_HEADERS_MAX && buf_append(&x->resp_head, data, n) < 0) {
        x->oom = true;
        return 0;
    }
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon) {
        return n; /* the blank line that ends the headers */
    }
    if (x->nheaders == x->cap_headers) {
        size_t cap = x->cap_headers ? x->cap_headers * 2 : 16;
        struct ferry_http_header *h = realloc(x->headers, cap * sizeof(*h));
        if (!h) {
            x->oom = true;
            return 0;
        }
        x->headers = h;
        x->cap_headers = cap;
    }
    char *name = trim_dup(data, (size_t)(colon - data));
    char *value = trim_dup(colon + 1, n - (size_t)(colon - data) - 1);
    if (!name || !value) {
        free(name);
        free(value);
        x->oom = true;
        return 0;
    }
    x->headers[x->nheaders].name = name;
    x->headers[x->nheaders].value = value;
    x->nheaders++;
    return n;
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    struct xfer *x = ud;
    if (type == CURLINFO_HEADER_OUT) {
        /* A retry on a fresh connection sends the headers again: keep the last. */
        x->req_head.len = 0;
        if (buf_append(&x->req_head, data, size < TRACE_HEADERS_MAX ? size : TRACE_HEADERS_MAX) <
            0) {
            x->oom = true;
        }
    }
    return 0;
}

static bool credential_header(const char *name, size_t len)
{
    static const char *const words[] = {"authorization", "cookie",   "token",     "secret",
                                        "key",           "password", "signature", NULL};
    char lower[128];
    if (len >= sizeof(lower)) {
        len = sizeof(lower) - 1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    lower[len] = '\0';
    for (size_t i = 0; words[i]; i++) {
        if (strstr(lower, words[i])) {
            return true;
        }
    }
    return false;
}

/* Append one header line, its value masked when the name suggests a credential. */
static int append_masked_line(struct buf *out, const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (colon && credential_header(line, (size_t)(colon - line))) {
        size_t end = n;
        while (end > 0 && (line[end - 1] == '\r' || line[end - 1] == '\n')) {
            end--;
        }
        int rc = buf_append(out, line, (size_t)(colon - line));
        if (rc == 0) {
            rc = buf_append(out, ": " REDACTED, strlen(": " REDACTED));
        }
        return rc < 0 ? rc : buf_append(out, line + end, n - end);
    }
    return buf_append(out, line, n);
}

/* Append a header block; its first line (request or status line) is not a header. */
static int append_masked(struct buf *out, const char *text, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) + 1 : len - pos;
        int rc = pos == 0 ? buf_append(out, line, n) : append_masked_line(out, line, n);
        if (rc < 0) {
            return rc;
        }
        pos += n;
    }
    return 0;
}

/* Append at most `max` bytes of a body, masked before it is cut so a cut cannot expose a secret. */
static int append_body(struct buf *out, const struct ferry_http_client *c, const char *body,
                       size_t len, size_t max)
{
    size_t longest = 0;
    for (size_t i = 0; i < c->nsecrets; i++) {
        size_t l = strlen(c->secrets[i]);
        longest = l > longest ? l : longest;
    }
    size_t take = len < max + longest ? len : max + longest;
    char *part = strndup(body, take);
    if (!part) {
        return FERRY_ENOMEM;
    }
    char *masked = ferry_redact(part, (const char *const *)c->secrets, c->nsecrets);
    free(part);
    if (!masked) {
        return FERRY_ENOMEM;
    }
    size_t mlen = strlen(masked);
    int rc = buf_append(out, masked, mlen < max ? mlen : max);
    free(masked);
    if (rc == 0 && (len > max || mlen > max)) {
        char note[64];
        snprintf(note, sizeof(note), "\n[truncated, %zu bytes in all]", len);
        rc = buf_append(out, note, strlen(note));
    }
    return rc;
}

/* Append `n` bytes of text with every configured secret masked. */
static int append_redacted(struct buf *out, const struct ferry_http_client *c, const char *text,
                           size_t n)
{
    char *part = strndup(text, n);
    if (!part) {
        return FERRY_ENOMEM;
    }
    char *masked = ferry_redact(part, (const char *const *)c->secrets, c->nsecrets);
    free(part);
    if (!masked) {
        return FERRY_ENOMEM;
    }
    int rc = buf_append(out, masked, strlen(masked));
    free(masked);
    return rc;
}

/*
 * The last pass over a trace: secrets are masked everywhere except in header
 * names, so that a short secret which happens to be part of a name such as
 * "X-Auth-Token" cannot garble the trace an operator has to read.
 */
static char *finish_trace_text(const struct ferry_http_client *c, struct buf *b)
{
    struct buf out = {0};
    const char *p = b->p ? b->p : "";
    size_t len = b->p ? b->len : 0, pos = 0;
    bool first = true;
    int rc = 0;

    while (rc == 0 && pos < len) {
        const char *line = p + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) + 1 : len - pos;
        bool blank = n <= 2 && (line[0] == '\r' || line[0] == '\n');
        const char *colon = memchr(line, ':', n);
        if (blank) {
            rc = buf_append(&out, line, n);
            pos += n;
            break; /* the body follows */
        }
        if (!first && colon) {
            rc = buf_append(&out, line, (size_t)(colon - line) + 1);
            if (rc == 0) {
                rc = append_redacted(&out, c, colon + 1, n - (size_t)(colon - line) - 1);
            }
        } else {
            rc = append_redacted(&out, c, line, n);
        }
        first = false;
        pos += n;
    }
    if (rc == 0 && pos < len) {
        rc = append_redacted(&out, c, p + pos, len - pos);
    }
    buf_free(b);
    if (rc < 0) {
        buf_free(&out);
        return NULL;
    }
    return out.p ? out.p : strdup("");
}

static void fill_trace(struct ferry_http_client *c, const struct ferry_http_req *req,
                       const struct xfer *x, const struct curl_slist *sent, long status,
                       int64_t duration, struct ferry_http_trace *t)
{
    struct buf rq = {0};
    struct buf rs = {0};
    int rc = 0;
    bool no_body = (req->flags & FERRY_HTTP_NO_AUDIT_BODY) != 0;

    t->method = strdup(req->method);
    t->url = ferry_redact(req->url, (const char *const *)c->secrets, c->nsecrets);
    t->status = (int)status;
    t->duration_ms = duration;

    if (x->req_head.len > 0) {
        rc = append_masked(&rq, x->req_head.p, x->req_head.len);
    } else {
        /* Nothing reached the wire (e.g. connect failed): show what we meant to send. */
        char line[512];
        snprintf(line, sizeof(line), "%s %s\r\n", req->method, req->url);
        rc = buf_append(&rq, line, strlen(line));
        for (const struct curl_slist *s = sent; rc == 0 && s; s = s->next) {
            rc = append_masked_line(&rq, s->data, strlen(s->data));
            if (rc == 0) {
                rc = buf_append(&rq, "\r\n", 2);
            }
        }
        if (rc == 0) {
            rc = buf_append(&rq, "\r\n", 2);
        }
    }
    if (rc == 0 && req->body && req->body_len > 0) {
        if (no_body) {
            char note[64];
            snprintf(note, sizeof(note), "[body not recorded, %zu bytes]", req->body_len);
            rc = buf_append(&rq, note, strlen(note));
        } else {
            rc = append_body(&rq, c, req->body, req->body_len, c->trace_body_max);
        }
    }
    if (status > 0 || x->resp_head.len > 0) {
        if (rc == 0) {
            rc = append_masked(&rs, x->resp_head.p ? x->resp_head.p : "", x->resp_head.len);
        }
        if (rc == 0 && x->body.len > 0) {
            if (no_body) {
                char note[64];
                snprintf(note, sizeof(note), "[body not recorded, %zu bytes]", x->body.len);
                rc = buf_append(&rs, note, strlen(note));
            } else {
                rc = append_body(&rs, c, x->body.p, x->body.len, c->trace_body_max);
            }
        }
    }
    t->request = finish_trace_text(c, &rq);
    t->response = status > 0 || x->resp_head.len > 0 ? finish_trace_text(c, &rs) : NULL;
    buf_free(&rs);
}

static bool insecure_host(const struct ferry_http_client *c, const char *host)
{
    size_t hl = strlen(host);
    for (size_t i = 0; i < c->ninsecure_hosts; i++) {
        const char *h = c->insecure_hosts[i];
        if (strcasecmp(h, host) == 0) {
            return true;
        }
        /* curl reports IPv6 literals bracketed; accept the bare form from the config. */
        if (hl > 2 && host[0] == '[' && strlen(h) == hl - 2 &&
            strncasecmp(h, host + 1, hl - 2) == 0) {
            return true;
        }
    }
    return false;
}

static bool header_safe(const char *s)
{
    return s && !strpbrk(s, "\r\n");
}

/*
 * W3C Trace Context header: the trace is the correlation ID (32 hex chars
 * already for job work; other IDs are hashed into that form), and every
 * request is a new span, so a remote system's traces line up with ours.
 */
static void traceparent(const char *correlation_id, char out[80])
{
    static const char hex[] = "0123456789abcdef";
    char trace[FERRY_SHA256_HEX_LEN + 1];
    char tr32[33];
    size_t n = strlen(correlation_id);
    bool is_hex = n == 32;
    for (size_t i = 0; is_hex && i < n; i++) {
        is_hex = strchr(hex, correlation_id[i]) != NULL;
    }
    if (is_hex) {
        memcpy(trace, correlation_id, 32);
    } else {
        ferry_sha256_hex(correlation_id, n, trace);
    }
    memcpy(tr32, trace, 32);
    tr32[32] = '\0';
    unsigned char span[8];
    /* The kernel's generator: OpenSSL's RAND_bytes set up a generator on each
     * worker's first request, which cost more than all else a request does. */
    if (getrandom(span, sizeof(span), GRND_NONBLOCK) != (ssize_t)sizeof(span)) {
        /* Unique enough for a span id when the random source is unavailable. */
        uint64_t t = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)out;
        memcpy(span, &t, sizeof(span));
    }
    char sp[17];
    for (size_t i = 0; i < sizeof(span); i++) {
        sp[2 * i] = hex[span[i] >> 4];
        sp[2 * i + 1] = hex[span[i] & 0xf];
    }
    sp[16] = '\0';
    snprintf(out, 80, "traceparent: 00-%.32s-%.16s-01", tr32, sp);
}

static int build_headers(const struct ferry_http_req *req, const char *correlation_id,
                         struct curl_slist **out, struct ferry_err *err)
{
    struct curl_slist *list = NULL;
    bool have_corr = false;
    bool have_trace = false;
    bool have_ua = false;
    bool have_expect = false;
    char *line = NULL;
    int rc = FERRY_ENOMEM;

    for (size_t i = 0; i < req->nheaders; i++) {
        const char *name = req->headers[i].name;
        const char *value = req->headers[i].value ? req->headers[i].value : "";
        /* A CR or LF would let a value inject further headers. */
        if (!header_safe(name) || !*name || strchr(name, ':') || !header_safe(value)) {
            rc = ferry_err_set(err, FERRY_EINVAL, "http: invalid request header %s",
                               name ? name : "(null)");
            goto cleanup;
        }
        have_corr = have_corr || strcasecmp(name, "X-Correlation-ID") == 0;
        have_trace = have_trace || strcasecmp(name, "traceparent") == 0;
        have_ua = have_ua || strcasecmp(name, "User-Agent") == 0;
        have_expect = have_expect || strcasecmp(name, "Expect") == 0;
        size_t n = strlen(name) + strlen(value) + 3;
        line = malloc(n);
        if (!line) {
            goto cleanup;
        }
        /* curl drops "Name:" with an empty value; "Name;" sends it empty. */
        if (*value) {
            snprintf(line, n, "%s: %s", name, value);
        } else {
            snprintf(line, n, "%s;", name);
        }
        struct curl_slist *l = curl_slist_append(list, line);
        free(line);
        line = NULL;
        if (!l) {
            goto cleanup;
        }
        list = l;
    }
    if (!have_corr && correlation_id && *correlation_id) {
        if (!header_safe(correlation_id)) {
            rc = ferry_err_set(err, FERRY_EINVAL, "invalid correlation ID");
            goto cleanup;
        }
        size_t n = strlen(correlation_id) + sizeof("X-Correlation-ID: ");
        line = malloc(n);
        if (!line) {
            goto cleanup;
        }
        snprintf(line, n, "X-Correlation-ID: %s", correlation_id);
        struct curl_slist *l = curl_slist_append(list, line);
        free(line);
        line = NULL;
        if (!l) {
            goto cleanup;
        }
        list = l;
    }
    if (!have_trace && correlation_id && *correlation_id) {
        char tp[80];
        traceparent(correlation_id, tp);
        struct curl_slist *l = curl_slist_append(list, tp);
        if (!l) {
            goto cleanup;
        }
        list = l;
    }
    if (!have_ua) {
        struct curl_slist *l = curl_slist_append(list, "User-Agent: ferry/" FERRY_VERSION);
        if (!l) {
            goto cleanup;
        }
        list = l;
    }
    if (!have_expect) {
        /* "Expect: 100-continue" costs a round trip and some servers never answer it. */
        struct curl_slist *l = curl_slist_append(list, "Expect:");
        if (!l) {
            goto cleanup;
        }
        list = l;
    }
    *out = list;
    list = NULL;
    rc = 0;
cleanup:
    if (rc == FERRY_ENOMEM) {
        ferry_err_set(err, rc, "%s: out of memory building headers", req->method);
    }
    curl_slist_free_all(list);
    return rc;
}

static int set_method(CURL *h, const struct ferry_http_req *req, struct ferry_err *err)
{
    const char *m = req->method;
    bool has_body = req->body && req->body_len > 0;
    const char *body = req->body ? req->body : "";

    /* libcurl silently re-sends a request whose reused connection died before
     * any answer arrived. For a write that already took effect that is a
     * second create, or a PATCH whose If-Match the first one made stale (a
     * 412 that looks like someone else's edit). Writes never reuse a
     * connection, so a lost answer is an error the caller sees (an unknown
     * outcome), not a retry it does not. */
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, strcmp(m, "GET") != 0 ? 1L : 0L);
    if (strcmp(m, "GET") == 0 || (strcmp(m, "DELETE") == 0 && !has_body)) {
        if (has_body) {
            return ferry_err_set(err, FERRY_EINVAL, "http: a GET request cannot carry a body");
        }
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(m, "GET") == 0 ? NULL : m);
        return 0;
    }
    if (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0 ||
        strcmp(m, "DELETE") == 0) {
        /* POSTFIELDS does not copy: req->body outlives the perform call. */
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(has_body ? req->body_len : 0));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(m, "POST") == 0 ? NULL : m);
        return 0;
    }
    return ferry_err_set(err, FERRY_EINVAL, "unsupported HTTP method %s", m);
}

int ferry_http_perform(struct ferry_http_client *c, const struct ferry_http_req *req,
                       const char *correlation_id, struct ferry_http_resp *resp,
                       struct ferry_http_trace *trace, struct ferry_err *err)
{
    int rc = FERRY_EINVAL;
    struct xfer x = {0};
    struct curl_slist *headers = NULL;
    CURLU *u = NULL;
    char *host = NULL;
    char *safe_url = NULL;
    long status = 0;
    int64_t t0 = now_ms();
    bool performed = false;

    ferry_err_clear(err);
    memset(resp, 0, sizeof(*resp));
    if (trace) {
        memset(trace, 0, sizeof(*trace));
    }
    if (!c || !req || !req->method || !req->url) {
        return ferry_err_set(err, FERRY_EINVAL, "http: missing client, method or URL");
    }
    safe_url = ferry_redact(req->url, (const char *const *)c->secrets, c->nsecrets);
    if (!safe_url) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "http: out of memory");
        goto cleanup;
    }
    u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, req->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = ferry_err_set(err, FERRY_EINVAL, "%s %s: invalid URL", req->method, safe_url);
        goto cleanup;
    }
    rc = build_headers(req, correlation_id, &headers, err);
    if (rc < 0) {
        goto cleanup;
    }
    rc = set_method(c->h, req, err);
    if (rc < 0) {
        goto cleanup;
    }
    x.max_body = c->max_response;
    bool verify = !insecure_host(c, host);
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : c->timeout_ms;
    curl_easy_setopt(c->h, CURLOPT_URL, req->url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
                     c->connect_timeout_ms < timeout ? c->connect_timeout_ms : timeout);
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    curl_easy_setopt(c->h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c->h, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(c->h, CURLOPT_DEBUGDATA, &x);
    curl_easy_setopt(c->h, CURLOPT_VERBOSE, 1L);
    if (req->flags & FERRY_HTTP_RESET_SESSION) {
        curl_easy_setopt(c->h, CURLOPT_COOKIELIST, "ALL");
    }
    c->errbuf[0] = '\0';

    CURLcode cr = curl_easy_perform(c->h);
    performed = true;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    if (x.oom) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "%s %s: out of memory", req->method, safe_url);
    } else if (cr == CURLE_OK) {
        rc = 0;
    } else if (cr == CURLE_OPERATION_TIMEDOUT) {
        rc = ferry_err_set(err, FERRY_ETIMEDOUT, "%s %s: timed out after %ld ms", req->method,
                           safe_url, timeout);
    } else if ((cr == CURLE_WRITE_ERROR && x.toobig) || cr == CURLE_FILESIZE_EXCEEDED) {
        rc = ferry_err_set(err, FERRY_ETOOBIG, "%s %s: response larger than %zu bytes", req->method,
                           safe_url, c->max_response);
    } else {
        const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cr);
        char *safe_why = ferry_redact(why, (const char *const *)c->secrets, c->nsecrets);
        rc = ferry_err_set(err, FERRY_ENETWORK, "%s %s: %s", req->method, safe_url,
                           safe_why ? safe_why : curl_easy_strerror(cr));
        free(safe_why);
    }
    if (rc == 0) {
        if (!x.body.p && buf_append(&x.body, "", 0) < 0) {
            rc = ferry_err_set(err, FERRY_ENOMEM, "%s %s: out of memory", req->method, safe_url);
            goto cleanup;
        }
        resp->status = status;
        resp->body = x.body.p;
        resp->body_len = x.body.len;
        resp->headers = x.headers;
        resp->nheaders = x.nheaders;
    }

cleanup:
    if (trace && req && req->method && req->url) {
        fill_trace(c, req, &x, headers, performed ? status : 0, now_ms() - t0, trace);
    }
    if (rc == 0) {
        /* Ownership moved to resp. */
        memset(&x.body, 0, sizeof(x.body));
        x.headers = NULL;
        x.nheaders = 0;
    }
    if (c && c->h && performed) {
        /* These point at this call's stack and lists. */
        curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(c->h, CURLOPT_WRITEDATA, NULL);
        curl_easy_setopt(c->h, CURLOPT_HEADERDATA, NULL);
        curl_easy_setopt(c->h, CURLOPT_DEBUGDATA, NULL);
        curl_easy_setopt(c->h, CURLOPT_VERBOSE, 0L);
    }
    buf_free(&x.body);
    buf_free(&x.resp_head);
    buf_free(&x.req_head);
    free_headers(x.headers, x.nheaders);
    curl_slist_free_all(headers);
    curl_free(host);
    curl_url_cleanup(u);
    free(safe_url);
    return rc;
}
