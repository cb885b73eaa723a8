/* SPDX-License-Identifier: MIT */
/*
 * Fake host for connector tests (see fake_host.h). Test-only global state:
 * a connector test is one process driving one connector sequentially.
 */
#include "fake_host.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FAKE_MAX_QUEUE    64
#define FAKE_MAX_REQUESTS 256

struct ferry_call {
    int has_worker;
};

struct canned {
    int error;
    long status;
    char *headers;
    char *body;
};

static struct canned queue[FAKE_MAX_QUEUE];
static size_t qhead, qtail;
static struct fake_request requests[FAKE_MAX_REQUESTS];
static size_t nrequests;
static int64_t now_ms = 1700000000000;
static void *slot;
static size_t log_counts[5];
static char last_log[512];
static struct ferry_call worker_call = {1};

#define FAKE_MAX_KV 16
static struct {
    char *key;
    char *value;
    int64_t at;
} kv[FAKE_MAX_KV];
static size_t nkv, kv_puts;
static bool item_texts = true;
static struct ferry_call loop_call = {0};

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) {
        abort();
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *dup0(const char *s)
{
    return s ? dupn(s, strlen(s)) : NULL;
}

void fake_host_reset(void)
{
    for (size_t i = qhead; i < qtail; i++) {
        free(queue[i].headers);
        free(queue[i].body);
    }
    qhead = qtail = 0;
    for (size_t i = 0; i < nrequests; i++) {
        struct fake_request *r = &requests[i];
        free(r->method);
        free(r->url);
        free(r->body);
        for (size_t h = 0; h < r->nheaders; h++) {
            free(r->header_names[h]);
            free(r->header_values[h]);
        }
    }
    memset(requests, 0, sizeof(requests));
    nrequests = 0;
    slot = NULL;
    memset(log_counts, 0, sizeof(log_counts));
    last_log[0] = '\0';
    for (size_t i = 0; i < nkv; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    memset(kv, 0, sizeof(kv));
    nkv = kv_puts = 0;
    item_texts = true;
}

void fake_host_set_item_texts(bool on)
{
    item_texts = on;
}

void fake_host_push(long status, const char *headers, const char *body)
{
    if (qtail == FAKE_MAX_QUEUE) {
        abort();
    }
    queue[qtail].error = 0;
    queue[qtail].status = status;
    queue[qtail].headers = dup0(headers);
    queue[qtail].body = dup0(body ? body : "");
    qtail++;
}

void fake_host_push_error(int code)
{
    if (qtail == FAKE_MAX_QUEUE) {
        abort();
    }
    memset(&queue[qtail], 0, sizeof(queue[qtail]));
    queue[qtail].error = code;
    qtail++;
}

char *fake_host_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

size_t fake_host_nrequests(void)
{
    return nrequests;
}

const struct fake_request *fake_host_request(size_t i)
{
    return i < nrequests ? &requests[i] : NULL;
}

const char *fake_request_header(const struct fake_request *r, const char *name)
{
    for (size_t i = 0; r && i < r->nheaders; i++) {
        if (strcasecmp(r->header_names[i], name) == 0) {
            return r->header_values[i];
        }
    }
    return NULL;
}

size_t fake_host_pending(void)
{
    return qtail - qhead;
}

size_t fake_host_log_count(int max_level)
{
    size_t n = 0;
    for (int l = 0; l <= max_level && l < 5; l++) {
        n += log_counts[l];
    }
    return n;
}

const char *fake_host_last_log(void)
{
    return last_log;
}

FERRY_PRINTF(3, 4)
static void h_log(struct ferry_call *call, int level, const char *fmt, ...)
{
    va_list ap;
    (void)call;
    if (level >= 0 && level < 5) {
        log_counts[level]++;
    }
    va_start(ap, fmt);
    vsnprintf(last_log, sizeof(last_log), fmt, ap);
    va_end(ap);
    if (getenv("FAKE_HOST_VERBOSE")) {
        fprintf(stderr, "[plugin log %d] %s\n", level, last_log);
    }
}

/* Parse "Name: value\n" lines into a header array. */
static void parse_headers(const char *text, struct ferry_http_resp *resp)
{
    size_t cap = 0;
    const char *p = text;
    resp->headers = NULL;
    resp->nheaders = 0;
    if (!text) {
        return;
    }
    for (const char *q = text; *q; q++) {
        cap += (*q == '\n');
    }
    cap += 1;
    resp->headers = calloc(cap, sizeof(*resp->headers));
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (colon) {
            const char *v = colon + 1;
            while (v < p + len && *v == ' ') {
                v++;
            }
            size_t vlen = (size_t)(p + len - v);
            if (vlen && v[vlen - 1] == '\r') {
                vlen--;
            }
            resp->headers[resp->nheaders].name = dupn(p, (size_t)(colon - p));
            resp->headers[resp->nheaders].value = dupn(v, vlen);
            resp->nheaders++;
        }
        p = eol ? eol + 1 : NULL;
    }
}

static int h_http(struct ferry_call *call, const struct ferry_http_req *req,
                  struct ferry_http_resp *resp, struct ferry_err *err)
{
    memset(resp, 0, sizeof(*resp));
    if (!call || !call->has_worker) {
        if (err) {
            err->code = FERRY_EUNSUPPORTED;
            snprintf(err->msg, sizeof(err->msg), "http called without a worker");
        }
        return FERRY_EUNSUPPORTED;
    }
    if (nrequests < FAKE_MAX_REQUESTS) {
        struct fake_request *r = &requests[nrequests++];
        r->method = dup0(req->method);
        r->url = dup0(req->url);
        r->flags = req->flags;
        if (req->body) {
            r->body = dupn(req->body, req->body_len);
            r->body_len = req->body_len;
        }
        for (size_t i = 0; i < req->nheaders && i < FAKE_MAX_HEADERS; i++) {
            r->header_names[i] = dup0(req->headers[i].name);
            r->header_values[i] = dup0(req->headers[i].value);
            r->nheaders++;
        }
    }
    if (qhead == qtail) {
        if (err) {
            err->code = FERRY_ENETWORK;
            snprintf(err->msg, sizeof(err->msg), "fake host: no canned response for %s %s",
                     req->method, req->url);
        }
        return FERRY_ENETWORK;
    }
    struct canned *c = &queue[qhead++];
    if (c->error) {
        if (err) {
            err->code = c->error;
            snprintf(err->msg, sizeof(err->msg), "fake host: injected transport error");
        }
        return c->error;
    }
    resp->status = c->status;
    resp->body = c->body;
    resp->body_len = strlen(c->body);
    c->body = NULL;
    parse_headers(c->headers, resp);
    free(c->headers);
    c->headers = NULL;
    return 0;
}

static void h_http_resp_free(struct ferry_http_resp *resp)
{
    if (!resp) {
        return;
    }
    for (size_t i = 0; i < resp->nheaders; i++) {
        free((char *)resp->headers[i].name);
        free((char *)resp->headers[i].value);
    }
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

static const char *h_http_header(const struct ferry_http_resp *resp, const char *name)
{
    for (size_t i = 0; resp && i < resp->nheaders; i++) {
        if (strcasecmp(resp->headers[i].name, name) == 0) {
            return resp->headers[i].value;
        }
    }
    return NULL;
}

static int64_t h_now_ms(struct ferry_call *call)
{
    (void)call;
    return now_ms;
}

static void **h_worker_slot(struct ferry_call *call)
{
    return (call && call->has_worker) ? &slot : NULL;
}

static const char *h_correlation_id(struct ferry_call *call)
{
    (void)call;
    return "test-correlation-id";
}

void fake_host_kv_set(const char *key, const char *value, int64_t updated_at_ms)
{
    size_t i = 0;
    while (i < nkv && strcmp(kv[i].key, key) != 0) {
        i++;
    }
    if (i == nkv) {
        if (nkv == FAKE_MAX_KV) {
            abort();
        }
        kv[nkv++].key = dup0(key);
    }
    free(kv[i].value);
    kv[i].value = dup0(value);
    kv[i].at = updated_at_ms;
}

const char *fake_host_kv_value(const char *key)
{
    for (size_t i = 0; i < nkv; i++) {
        if (strcmp(kv[i].key, key) == 0) {
            return kv[i].value;
        }
    }
    return NULL;
}

size_t fake_host_kv_puts(void)
{
    return kv_puts;
}

static int h_kv_get(struct ferry_call *call, const char *key, char **value, int64_t *updated_at_ms,
                    struct ferry_err *err)
{
    (void)call;
    for (size_t i = 0; i < nkv; i++) {
        if (strcmp(kv[i].key, key) == 0) {
            *value = dup0(kv[i].value);
            *updated_at_ms = kv[i].at;
            return 0;
        }
    }
    if (err) {
        err->code = FERRY_ENOTFOUND;
        snprintf(err->msg, sizeof(err->msg), "no kv entry %s", key);
    }
    return FERRY_ENOTFOUND;
}

static int h_kv_put(struct ferry_call *call, const char *key, const char *value,
                    struct ferry_err *err)
{
    (void)err;
    kv_puts++;
    fake_host_kv_set(key, value, h_now_ms(call));
    return 0;
}

static void h_kv_free(char *value)
{
    free(value);
}

/* As the host's: jansson's tree, and each element's compact dump, which is what the host's are. */
static json_t *h_json_loadb_items(const char *buf, size_t len, size_t flags, const char *member,
                                  json_t **texts, json_error_t *error)
{
    json_t *v = json_loadb(buf, len, flags, error);
    json_t *arr = json_object_get(v, member);
    size_t i;
    json_t *el;
    *texts = NULL;
    if (!item_texts || !json_is_array(arr)) {
        return v;
    }
    *texts = json_array();
    json_array_foreach(arr, i, el)
    {
        char *t = json_dumps(el, JSON_COMPACT | JSON_ENCODE_ANY);
        json_array_append_new(*texts, json_string(t));
        free(t);
    }
    return v;
}

static const struct ferry_host_api fake_api = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_host_api),
    .log = h_log,
    .http = h_http,
    .http_resp_free = h_http_resp_free,
    .http_header = h_http_header,
    .now_ms = h_now_ms,
    .worker_slot = h_worker_slot,
    .correlation_id = h_correlation_id,
    .kv_get = h_kv_get,
    .kv_put = h_kv_put,
    .kv_free = h_kv_free,
    .json_loadb_items = h_json_loadb_items,
};

const struct ferry_host_api *fake_host_api(void)
{
    return &fake_api;
}

struct ferry_call *fake_host_call(void)
{
    return &worker_call;
}

struct ferry_call *fake_host_loop_call(void)
{
    return &loop_call;
}

void fake_host_set_now(int64_t ms)
{
    now_ms = ms;
}

void *fake_host_slot_value(void)
{
    return slot;
}

int fake_host_load_plugin(const char *name, void **dl, const struct ferry_connector **conn)
{
    char path[4096];
    const char *dir = getenv("FERRY_PLUGIN_DIR");
    ferry_connector_entry_fn entry;
    if (!dir) {
        fprintf(stderr, "FERRY_PLUGIN_DIR is not set (ctest sets it to the build's plugins)\n");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s.so", dir, name);
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*dl) {
        fprintf(stderr, "%s\n", dlerror());
        return -1;
    }
    /* POSIX allows this conversion for dlsym results. */
    *(void **)&entry = dlsym(*dl, FERRY_PLUGIN_ENTRY_SYMBOL);
    return entry && entry(fake_host_api(), conn) == 0 ? 0 : -1;
}
