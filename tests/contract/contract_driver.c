/* SPDX-License-Identifier: MIT */
/*
 * Contract-tier driver: loads a connector plugin exactly as the daemon does
 * (dlopen + ferry_connector_entry) behind a minimal host whose HTTP is real
 * libcurl, then runs a script of connector calls and prints one JSON line
 * per call. run_contract.py points the connector at a routing front that
 * checks every request against the vendor's OpenAPI files (Prism) before the
 * simulator answers it, so the driver's only job is to make the connector
 * send each request it can send; the verdict is the front's.
 *
 * Usage: contract_driver PLUGIN.so CONFIG.json SCRIPT.json
 * CONFIG.json is the connector configuration with defaults already filled
 * (the loader's job in the daemon). SCRIPT.json is an array of
 *   {"op": "fetch", "object": "customer", "id": "1"}
 *   {"op": "list", "object": "order", "since": "2024-01-01T00:00:00Z" | null,
 *    "max_pages": 5}
 *   {"op": "hooks", "needs": [...], "url": "https://...", "apply": 0 | 1}
 *   {"op": "lookup", "object": "customer", "field": "email", "value": "..."}
 *   {"op": "write", "object": "customer", "write": "create" | "update",
 *    "id": "32" (update), "fields": {...}}
 * Output per op: {"op", "object", "rc", "error", "pages", "items", "report",
 * "found", "result"}.
 * Exit status 0 when every op ran (whatever its rc), 1 on a setup failure.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ferry/plugin.h"

struct ferry_call {
    void *slot; /* one worker: the driver is single-threaded */
    CURL *curl;
};

struct grow {
    char *p;
    size_t len;
};

static int grow_add(struct grow *g, const char *data, size_t n)
{
    char *p = realloc(g->p, g->len + n + 1);
    if (!p) {
        return -1;
    }
    memcpy(p + g->len, data, n);
    g->p = p;
    g->len += n;
    g->p[g->len] = '\0';
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    return grow_add(ud, data, size * n) == 0 ? size * n : 0;
}

/* Headers arrive one line at a time; kept as "Name: value\n" lines until parsed. */
static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    struct grow *g = ud;
    /* A new status line (after a 100 Continue or a redirect) starts a new set. */
    if (size * n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        g->len = 0;
        if (g->p) {
            g->p[0] = '\0';
        }
    }
    return grow_add(g, data, size * n) == 0 ? size * n : 0;
}

FERRY_PRINTF(3, 4)
static void host_log(struct ferry_call *call, int level, const char *fmt, ...)
{
    va_list ap;
    (void)call;
    fprintf(stderr, "[plugin %d] ", level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void host_resp_free(struct ferry_http_resp *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        free((char *)resp->headers[i].name);
        free((char *)resp->headers[i].value);
    }
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

static int parse_headers(char *text, struct ferry_http_resp *resp)
{
    size_t cap = 0;
    for (char *line = strtok(text, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        char *colon = strchr(line, ':');
        if (!colon || strncmp(line, "HTTP/", 5) == 0) {
            continue;
        }
        *colon = '\0';
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        if (resp->nheaders == cap) {
            cap = cap ? cap * 2 : 16;
            struct ferry_http_header *h = realloc(resp->headers, cap * sizeof(*h));
            if (!h) {
                return -1;
            }
            resp->headers = h;
        }
        resp->headers[resp->nheaders].name = strdup(line);
        resp->headers[resp->nheaders].value = strdup(v);
        resp->nheaders++;
    }
    return 0;
}

static int host_http(struct ferry_call *call, const struct ferry_http_req *req,
                     struct ferry_http_resp *resp, struct ferry_err *err)
{
    struct grow body = {0}, head = {0};
    struct curl_slist *hl = NULL;
    int rc = 0;
    CURL *c = call->curl;

    memset(resp, 0, sizeof(*resp));
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &head);
    if (req->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        char line[4096];
        snprintf(line, sizeof(line), "%s: %s", req->headers[i].name, req->headers[i].value);
        hl = curl_slist_append(hl, line);
    }
    /* The daemon's host adds these; Prism and the simulator see what the real API would. */
    hl = curl_slist_append(hl, "X-Correlation-ID: contract0000000000000000000000000");
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(err->msg, sizeof(err->msg), "%s %s: %s", req->method, req->url,
                 curl_easy_strerror(cc));
        err->code = cc == CURLE_OPERATION_TIMEDOUT ? FERRY_ETIMEDOUT : FERRY_ENETWORK;
        rc = err->code;
        goto cleanup;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    if (head.p && parse_headers(head.p, resp) < 0) {
        rc = err->code = FERRY_ENOMEM;
        goto cleanup;
    }
    resp->body = body.p ? body.p : strdup("");
    resp->body_len = body.len;
    body.p = NULL;
cleanup:
    if (rc < 0) {
        host_resp_free(resp);
    }
    curl_slist_free_all(hl);
    free(body.p);
    free(head.p);
    return rc;
}

static const char *host_header(const struct ferry_http_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (strcasecmp(resp->headers[i].name, name) == 0) {
            return resp->headers[i].value;
        }
    }
    return NULL;
}

static int64_t host_now(struct ferry_call *call)
{
    struct timespec ts;
    (void)call;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void **host_slot(struct ferry_call *call)
{
    return &call->slot;
}

static const char *host_corr(struct ferry_call *call)
{
    (void)call;
    return "contract0000000000000000000000000";
}

/* Nothing is cached between runs: every key is absent and puts are dropped. */
static int host_kv_get(struct ferry_call *call, const char *key, char **value,
                       int64_t *updated_at_ms, struct ferry_err *err)
{
    (void)call;
    (void)value;
    (void)updated_at_ms;
    snprintf(err->msg, sizeof(err->msg), "no value for %s", key);
    return err->code = FERRY_ENOTFOUND;
}

static int host_kv_put(struct ferry_call *call, const char *key, const char *value,
                       struct ferry_err *err)
{
    (void)call;
    (void)key;
    (void)value;
    (void)err;
    return 0;
}

static void host_kv_free(char *value)
{
    free(value);
}

static const struct ferry_host_api host = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_host_api),
    .log = host_log,
    .http = host_http,
    .http_resp_free = host_resp_free,
    .http_header = host_header,
    .now_ms = host_now,
    .worker_slot = host_slot,
    .correlation_id = host_corr,
    .kv_get = host_kv_get,
    .kv_put = host_kv_put,
    .kv_free = host_kv_free,
};

static json_t *run_list(const struct ferry_connector *conn, void *state, struct ferry_call *call,
                        json_t *op)
{
    const char *object = json_string_value(json_object_get(op, "object"));
    const char *since = json_string_value(json_object_get(op, "since"));
    json_int_t max_pages = json_integer_value(json_object_get(op, "max_pages"));
    char *token = NULL;
    json_int_t pages = 0, items = 0;
    struct ferry_err err = {0};
    int rc = 0;

    for (;;) {
        json_t *page = NULL;
        rc = conn->list_changes(state, call, object, since, token, &page, &err);
        if (rc < 0) {
            break;
        }
        pages++;
        items += (json_int_t)json_array_size(json_object_get(page, "items"));
        const char *next = json_string_value(json_object_get(page, "next"));
        free(token);
        token = next ? strdup(next) : NULL;
        json_decref(page);
        if (!token || (max_pages > 0 && pages >= max_pages)) {
            break;
        }
    }
    free(token);
    return json_pack("{s:s, s:s, s:i, s:s, s:I, s:I}", "op", "list", "object", object, "rc", rc,
                     "error", rc < 0 ? err.msg : "", "pages", pages, "items", items);
}

static json_t *run_op(const struct ferry_connector *conn, void *state, struct ferry_call *call,
                      json_t *op)
{
    const char *kind = json_string_value(json_object_get(op, "op"));
    struct ferry_err err = {0};
    int rc;

    if (kind && strcmp(kind, "fetch") == 0) {
        const char *object = json_string_value(json_object_get(op, "object"));
        const char *id = json_string_value(json_object_get(op, "id"));
        json_t *record = NULL;
        rc = conn->fetch(state, call, object, id, &record, &err);
        json_t *out =
            json_pack("{s:s, s:s, s:s, s:i, s:s, s:O?}", "op", "fetch", "object", object, "id", id,
                      "rc", rc, "error", rc < 0 ? err.msg : "", "record", record);
        json_decref(record);
        return out;
    }
    if (kind && strcmp(kind, "list") == 0) {
        return run_list(conn, state, call, op);
    }
    if (kind && strcmp(kind, "hooks") == 0) {
        json_t *report = NULL;
        int apply = (int)json_integer_value(json_object_get(op, "apply"));
        if (!FERRY_CONNECTOR_HAS(conn, sync_webhooks) || !conn->sync_webhooks) {
            return json_pack("{s:s, s:i, s:s}", "op", "hooks", "rc", FERRY_EUNSUPPORTED, "error",
                             "connector has no sync_webhooks");
        }
        rc = conn->sync_webhooks(state, call, json_object_get(op, "needs"),
                                 json_string_value(json_object_get(op, "url")), apply, &report,
                                 &err);
        json_t *out = json_pack("{s:s, s:i, s:i, s:s, s:O?}", "op", "hooks", "apply", apply, "rc",
                                rc, "error", rc < 0 ? err.msg : "", "report", report);
        json_decref(report);
        return out;
    }
    if (kind && strcmp(kind, "lookup") == 0) {
        const char *object = json_string_value(json_object_get(op, "object"));
        json_t *found = NULL;
        rc = conn->lookup(state, call, object, json_string_value(json_object_get(op, "field")),
                          json_string_value(json_object_get(op, "value")), &found, &err);
        json_t *out = json_pack("{s:s, s:s, s:i, s:s, s:O?}", "op", "lookup", "object", object,
                                "rc", rc, "error", rc < 0 ? err.msg : "", "found", found);
        json_decref(found);
        return out;
    }
    if (kind && strcmp(kind, "write") == 0) {
        const char *how = json_string_value(json_object_get(op, "write"));
        struct ferry_write w = {
            .op = how && strcmp(how, "create") == 0 ? FERRY_WRITE_CREATE : FERRY_WRITE_UPDATE,
            .object = json_string_value(json_object_get(op, "object")),
            .id = json_string_value(json_object_get(op, "id")),
            .fields = json_object_get(op, "fields"),
        };
        json_t *result = NULL;
        rc = conn->write(state, call, &w, &result, &err);
        json_t *out = json_pack("{s:s, s:s, s:i, s:s, s:O?}", "op", "write", "object", w.object,
                                "rc", rc, "error", rc < 0 ? err.msg : "", "result", result);
        json_decref(result);
        return out;
    }
    return json_pack("{s:s, s:i, s:s}", "op", kind ? kind : "?", "rc", FERRY_EINVAL, "error",
                     "unknown op");
}

int main(int argc, char **argv)
{
    void *dl = NULL, *state = NULL;
    json_t *config = NULL, *script = NULL;
    const struct ferry_connector *conn = NULL;
    struct ferry_call call = {0};
    struct ferry_err err = {0};
    json_error_t jerr;
    int status = 1;

    if (argc != 4) {
        fprintf(stderr, "usage: %s PLUGIN.so CONFIG.json SCRIPT.json\n", argv[0]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!(config = json_load_file(argv[2], 0, &jerr)) ||
        !(script = json_load_file(argv[3], 0, &jerr)) || !json_is_array(script)) {
        fprintf(stderr, "contract_driver: %s: %s\n", jerr.source, jerr.text);
        goto cleanup;
    }
    if (!(dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL))) {
        fprintf(stderr, "contract_driver: %s\n", dlerror());
        goto cleanup;
    }
    ferry_connector_entry_fn entry;
    /* POSIX allows this conversion for dlsym results. */
    *(void **)&entry = dlsym(dl, FERRY_PLUGIN_ENTRY_SYMBOL);
    if (!entry || entry(&host, &conn) < 0 || !conn) {
        fprintf(stderr, "contract_driver: %s has no usable %s\n", argv[1],
                FERRY_PLUGIN_ENTRY_SYMBOL);
        goto cleanup;
    }
    if (!(call.curl = curl_easy_init())) {
        fprintf(stderr, "contract_driver: curl_easy_init failed\n");
        goto cleanup;
    }
    if (conn->open(&host, &call, config, &state, &err) < 0) {
        fprintf(stderr, "contract_driver: open: %s\n", err.msg);
        goto cleanup;
    }
    size_t i;
    json_t *op;
    json_array_foreach(script, i, op)
    {
        json_t *res = run_op(conn, state, &call, op);
        char *line = res ? json_dumps(res, JSON_COMPACT) : NULL;
        printf("%s\n", line ? line : "{\"rc\": -1002, \"error\": \"out of memory\"}");
        fflush(stdout);
        free(line);
        json_decref(res);
    }
    status = 0;
cleanup:
    if (conn && call.slot && conn->worker_free) {
        conn->worker_free(state, call.slot);
    }
    if (conn && state) {
        conn->close(state);
    }
    if (call.curl) {
        curl_easy_cleanup(call.curl);
    }
    if (dl) {
        dlclose(dl);
    }
    json_decref(config);
    json_decref(script);
    curl_global_cleanup();
    return status;
}
