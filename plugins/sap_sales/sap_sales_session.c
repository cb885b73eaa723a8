/* SPDX-License-Identifier: MIT */
/*
 * Request plumbing for the SAP Sales Cloud connector: standard headers, the
 * per-worker CSRF token with its one-shot renewal on a CSRF 403 (facts
 * section 2), and the one-shot bearer renewal on a 401 under OAuth (see
 * sap_sales_session.h).
 */
#include "sap_sales_session.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 8

void ferry__sap_session_free(void *slot)
{
    struct ferry_sap_session *s = slot;
    if (!s) {
        return;
    }
    free(s->csrf_token);
    free(s);
}

void ferry__sap_free_secret(char *s)
{
    if (s) {
        memset(s, 0, strlen(s));
    }
    free(s);
}

static struct ferry_sap_session *session_get(const struct ferry_sap_instance *inst,
                                             struct ferry_call *call, struct ferry_err *err)
{
    void **slot = inst->host->worker_slot(call);
    if (!slot) {
        ferry__sap_err_set(err, FERRY_EUNSUPPORTED, "writes need a worker (no session slot)");
        return NULL;
    }
    if (!*slot) {
        *slot = calloc(1, sizeof(struct ferry_sap_session));
        if (!*slot) {
            ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
            return NULL;
        }
    }
    return *slot;
}

static size_t base_headers(const char *auth, struct ferry_http_header *h)
{
    size_t n = 0;
    h[n++] = (struct ferry_http_header){"Authorization", auth};
    h[n++] = (struct ferry_http_header){"Accept", "application/json"};
    return n;
}

/*
 * GET <root> with `x-csrf-token: fetch`. `fresh` drops the worker's cookies
 * first: a token is only valid with the session it was issued for, so a
 * rejected token is replaced together with its session.
 */
static int fetch_token(const struct ferry_sap_instance *inst, struct ferry_call *call,
                       const char *auth, struct ferry_sap_session *s, bool fresh,
                       struct ferry_err *err)
{
    struct ferry_http_header h[MAX_HEADERS];
    struct ferry_http_req req = {0};
    struct ferry_http_resp resp = {0};
    const char *token;
    char *copy = NULL;
    int rc;
    size_t n = base_headers(auth, h);

    h[n++] = (struct ferry_http_header){"x-csrf-token", "fetch"};
    req.method = "GET";
    req.url = inst->root;
    req.headers = h;
    req.nheaders = n;
    req.timeout_ms = inst->timeout_ms;
    /* The service document is large and says nothing the audit needs. */
    req.flags = FERRY_HTTP_NO_AUDIT_BODY | (fresh ? FERRY_HTTP_RESET_SESSION : 0u);
    req.object = "csrf-token";

    free(s->csrf_token);
    s->csrf_token = NULL;
    rc = inst->host->http(call, &req, &resp, err);
    if (rc < 0) {
        return rc;
    }
    if (resp.status < 200 || resp.status > 299) {
        rc = ferry__sap_status_error(resp.status, resp.body, resp.body_len,
                                     inst->host->http_header(&resp, "Retry-After"),
                                     "CSRF token fetch", err);
        goto cleanup;
    }
    token = inst->host->http_header(&resp, "x-csrf-token");
    if (!token || !*token || ferry__sap_contains_ci(token, strlen(token), "required")) {
        rc = ferry__sap_err_set(err, FERRY_EPROTO,
                                "CSRF token fetch: HTTP %ld without an x-csrf-token header",
                                resp.status);
        goto cleanup;
    }
    copy = malloc(strlen(token) + 1);
    if (!copy) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    strcpy(copy, token);
    s->csrf_token = copy;
    inst->host->log(call, FERRY_LOG_DEBUG, "CSRF token fetched%s",
                    fresh ? " with a fresh session" : "");
    rc = 0;
cleanup:
    inst->host->http_resp_free(&resp);
    return rc;
}

static int send_once(const struct ferry_sap_instance *inst, struct ferry_call *call,
                     const struct ferry_sap_req *r, const char *auth, const char *token,
                     struct ferry_http_resp *resp, struct ferry_err *err)
{
    struct ferry_http_header h[MAX_HEADERS];
    struct ferry_http_req req = {0};
    size_t n = base_headers(auth, h);

    if (r->body) {
        h[n++] = (struct ferry_http_header){"Content-Type",
                                            r->content_type ? r->content_type : "application/json"};
    }
    if (token) {
        h[n++] = (struct ferry_http_header){"x-csrf-token", token};
    }
    if (r->if_match) {
        h[n++] = (struct ferry_http_header){"If-Match", r->if_match};
    }
    if (r->no_response_payload) {
        h[n++] = (struct ferry_http_header){"odata-no-response-payload", "true"};
    }
    req.method = r->method;
    req.url = r->url;
    req.headers = h;
    req.nheaders = n;
    req.body = r->body;
    req.body_len = r->body ? (r->body_len ? r->body_len : strlen(r->body)) : 0;
    req.timeout_ms = inst->timeout_ms;
    req.flags = r->flags;
    req.object = r->object;
    if (r->sent) {
        *r->sent = true;
    }
    return inst->host->http(call, &req, resp, err);
}

static bool csrf_rejected(const struct ferry_sap_instance *inst, const struct ferry_http_resp *resp)
{
    return ferry__sap_is_csrf_failure(resp->status, inst->host->http_header(resp, "x-csrf-token"),
                                      resp->body, resp->body_len);
}

/* One request with the CSRF handling; the caller owns the bearer retry. */
static int send_csrf(struct ferry_sap_instance *inst, struct ferry_call *call,
                     const struct ferry_sap_req *r, const char *auth, struct ferry_http_resp *resp,
                     struct ferry_err *err)
{
    struct ferry_sap_session *s;
    const char *what = r->object ? r->object : "";
    int rc;

    if (strcmp(r->method, "GET") == 0) {
        return send_once(inst, call, r, auth, NULL, resp, err);
    }
    s = session_get(inst, call, err);
    if (!s) {
        return err ? err->code : FERRY_ENOMEM;
    }
    if (!s->csrf_token) {
        rc = fetch_token(inst, call, auth, s, false, err);
        if (rc < 0) {
            return rc;
        }
    }
    rc = send_once(inst, call, r, auth, s->csrf_token, resp, err);
    if (rc < 0 || !csrf_rejected(inst, resp)) {
        return rc;
    }
    /* The session expired or was never bound to the token: renew both, try once more. */
    inst->host->log(call, FERRY_LOG_INFO, "%s %s: CSRF token rejected, fetching a new one",
                    r->method, what);
    inst->host->http_resp_free(resp);
    rc = fetch_token(inst, call, auth, s, true, err);
    if (rc < 0) {
        return rc;
    }
    rc = send_once(inst, call, r, auth, s->csrf_token, resp, err);
    if (rc < 0 || !csrf_rejected(inst, resp)) {
        return rc;
    }
    inst->host->http_resp_free(resp);
    /* Keeping a token the tenant refuses would only fail the next job the same way. */
    free(s->csrf_token);
    s->csrf_token = NULL;
    return ferry__sap_err_set(err, FERRY_EUNAVAILABLE,
                              "%s %s: CSRF token rejected again after a fresh fetch", r->method,
                              what);
}

int ferry__sap_request(struct ferry_sap_instance *inst, struct ferry_call *call,
                       const struct ferry_sap_req *r, struct ferry_http_resp *resp,
                       struct ferry_err *err)
{
    char *auth = NULL;
    int rc;

    memset(resp, 0, sizeof(*resp));
    rc = ferry__sap_auth_header(inst, call, false, &auth, err);
    if (rc < 0) {
        return rc;
    }
    rc = send_csrf(inst, call, r, auth, resp, err);
    if (rc < 0 || resp->status != 401 || inst->auth_mode != FERRY_SAP_AUTH_OAUTH) {
        goto cleanup;
    }
    /* A bearer token can be revoked before its announced expiry: renew once. */
    inst->host->log(call, FERRY_LOG_INFO, "%s %s: 401 with a bearer token, renewing it", r->method,
                    r->object ? r->object : "");
    inst->host->http_resp_free(resp);
    ferry__sap_free_secret(auth);
    auth = NULL;
    rc = ferry__sap_auth_header(inst, call, true, &auth, err);
    if (rc < 0) {
        goto cleanup;
    }
    rc = send_csrf(inst, call, r, auth, resp, err);
cleanup:
    ferry__sap_free_secret(auth);
    return rc;
}

int ferry__sap_send(struct ferry_sap_instance *inst, struct ferry_call *call, const char *method,
                    const char *url, const char *if_match, const char *body, const char *object,
                    struct ferry_http_resp *resp, struct ferry_err *err)
{
    struct ferry_sap_req r = {
        .method = method, .url = url, .if_match = if_match, .body = body, .object = object};
    return ferry__sap_request(inst, call, &r, resp, err);
}
