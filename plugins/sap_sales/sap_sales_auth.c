/* SPDX-License-Identifier: MIT */
/*
 * Authorization for c4codataapi: Basic (a technical user) or an OAuth 2.0
 * bearer token from the tenant's token endpoint (facts 1.2), obtained with
 * the SAML 2.0 bearer grant when an assertion file is configured, else with
 * client credentials. The token is shared by all workers under the
 * instance lock and renewed 60 s before it expires, or at once after a 401.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sap_sales_session.h"

#define EARLY_MS        60000
#define DEFAULT_TOKEN_S 3600
#define SAML_BEARER_PCT "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Asaml2-bearer"
#define MAX_ASSERTION   (256 * 1024)

static char *dup_str(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (d) {
        strcpy(d, s);
    }
    return d;
}

/* The assertion file's text without surrounding whitespace; caller frees. */
static char *read_assertion(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, a = 0;

    if (!f) {
        return NULL;
    }
    buf = malloc(MAX_ASSERTION + 1);
    if (buf) {
        n = fread(buf, 1, MAX_ASSERTION, f);
        buf[n] = '\0';
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) {
            buf[--n] = '\0';
        }
        while (buf[a] == ' ' || buf[a] == '\n' || buf[a] == '\r') {
            a++;
        }
        memmove(buf, buf + a, n - a + 1);
    }
    fclose(f);
    return buf;
}

/* application/x-www-form-urlencoded body of the token request; caller frees (a secret). */
static char *token_body(const struct ferry_sap_instance *inst, struct ferry_err *err)
{
    char *assertion = NULL, *enc_assertion = NULL, *enc_scope = NULL, *out = NULL;
    size_t n;

    if (inst->assertion_file) {
        assertion = read_assertion(inst->assertion_file);
        if (!assertion || !*assertion) {
            ferry__sap_err_set(err, FERRY_ECONFIG, "assertion_file %s cannot be read or is empty",
                               inst->assertion_file);
            goto cleanup;
        }
        enc_assertion = ferry__sap_pct_encode(assertion);
    }
    if (inst->scope) {
        enc_scope = ferry__sap_pct_encode(inst->scope);
    }
    n = 128 + (enc_assertion ? strlen(enc_assertion) : 0) + (enc_scope ? strlen(enc_scope) : 0);
    out = malloc(n);
    if (!out || (inst->assertion_file && !enc_assertion) || (inst->scope && !enc_scope)) {
        free(out);
        out = NULL;
        ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    snprintf(out, n, "grant_type=%s%s%s%s%s",
             inst->assertion_file ? SAML_BEARER_PCT : "client_credentials",
             enc_assertion ? "&assertion=" : "", enc_assertion ? enc_assertion : "",
             enc_scope ? "&scope=" : "", enc_scope ? enc_scope : "");
cleanup:
    ferry__sap_free_secret(assertion);
    ferry__sap_free_secret(enc_assertion);
    free(enc_scope);
    return out;
}

/* POST token_url; stores the new token in inst (lock held). */
static int fetch_bearer(struct ferry_sap_instance *inst, struct ferry_call *call,
                        struct ferry_err *err)
{
    struct ferry_http_header h[3] = {{"Authorization", inst->client_auth},
                                     {"Content-Type", "application/x-www-form-urlencoded"},
                                     {"Accept", "application/json"}};
    struct ferry_http_req req = {0};
    struct ferry_http_resp resp = {0};
    json_t *doc = NULL;
    const char *tok, *type;
    json_int_t expires;
    char *body = token_body(inst, err), *value = NULL;
    int rc;

    if (!body) {
        return err ? err->code : FERRY_ENOMEM;
    }
    req.method = "POST";
    req.url = inst->token_url;
    req.headers = h;
    req.nheaders = 3;
    req.body = body;
    req.body_len = strlen(body);
    req.timeout_ms = inst->timeout_ms;
    /* The request carries an assertion, the answer a token: neither belongs in the audit. */
    req.flags = FERRY_HTTP_NO_AUDIT_BODY;
    req.object = "oauth-token";
    rc = inst->host->http(call, &req, &resp, err);
    if (rc < 0) {
        goto cleanup;
    }
    if (resp.status == 400 || resp.status == 401 || resp.status == 403) {
        json_t *e = json_loadb(resp.body, resp.body_len, 0, NULL);
        const char *desc = json_string_value(json_object_get(e, "error_description"));
        const char *code = json_string_value(json_object_get(e, "error"));
        rc = ferry__sap_err_set(err, FERRY_EAUTH, "OAuth token request: HTTP %ld%s%s%s%s",
                                resp.status, code ? ": " : "", code ? code : "", desc ? ": " : "",
                                desc ? desc : "");
        json_decref(e);
        goto cleanup;
    }
    if (resp.status != 200) {
        rc = ferry__sap_status_error(resp.status, resp.body, resp.body_len,
                                     inst->host->http_header(&resp, "Retry-After"),
                                     "OAuth token request", err);
        goto cleanup;
    }
    doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    tok = json_string_value(json_object_get(doc, "access_token"));
    type = json_string_value(json_object_get(doc, "token_type"));
    if (!tok || !*tok || (type && strcasecmp(type, "bearer") != 0)) {
        rc = ferry__sap_err_set(err, FERRY_EAUTH,
                                "OAuth token request: no bearer access_token in the answer");
        goto cleanup;
    }
    expires = json_integer_value(json_object_get(doc, "expires_in"));
    if (expires <= 0 && json_is_string(json_object_get(doc, "expires_in"))) {
        expires = strtol(json_string_value(json_object_get(doc, "expires_in")), NULL, 10);
    }
    if (expires <= 0) {
        expires = DEFAULT_TOKEN_S;
    }
    value = malloc(strlen(tok) + sizeof("Bearer "));
    if (!value) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    strcpy(value, "Bearer ");
    strcat(value, tok);
    ferry__sap_free_secret(inst->token);
    inst->token = value;
    inst->token_expires_ms = inst->host->now_ms(call) + (int64_t)expires * 1000;
    inst->host->log(call, FERRY_LOG_INFO, "OAuth token obtained, valid for %lld s",
                    (long long)expires);
    rc = 0;
cleanup:
    json_decref(doc);
    ferry__sap_free_secret(body);
    inst->host->http_resp_free(&resp);
    return rc;
}

int ferry__sap_auth_header(struct ferry_sap_instance *inst, struct ferry_call *call, bool renew,
                           char **value, struct ferry_err *err)
{
    int rc = 0;

    *value = NULL;
    if (inst->auth_mode != FERRY_SAP_AUTH_OAUTH) {
        *value = dup_str(inst->auth);
        return *value ? 0 : ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&inst->lock);
    if (renew || !inst->token || inst->host->now_ms(call) >= inst->token_expires_ms - EARLY_MS) {
        rc = fetch_bearer(inst, call, err);
    }
    if (rc == 0) {
        *value = dup_str(inst->token);
        if (!*value) {
            rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        }
    }
    pthread_mutex_unlock(&inst->lock);
    return rc;
}
