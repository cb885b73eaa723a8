/* SPDX-License-Identifier: MIT */
/*
 * BigCommerce webhook deliveries (bigcommerce-api-facts.md 8.2 and 8.4).
 * Authentication is two layers: the custom header given at hook creation,
 * which every BigCommerce era sends and so is always required, and the
 * Standard Webhooks signature (webhook-id / webhook-timestamp /
 * webhook-signature, HMAC-SHA256 keyed by the raw client secret), whose
 * coverage BigCommerce does not document, hence the off / if-present /
 * required setting. Payloads are thin ({"scope", "data": {"id"}, "hash"}):
 * decode only names the record, and the worker fetches it later.
 */
#include "bigcommerce_webhook.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* Generous bounds for text copied into the dedupe key (scopes are ~50 bytes, hashes 40). */
#define BC_MAX_SCOPE 200
#define BC_MAX_HASH  128

#define BC_B64_SHA256_LEN 44 /* base64 of 32 bytes, with one '=' of padding */

static const char *webhook_header(const struct ferry_webhook *wh, const char *name)
{
    for (size_t i = 0; i < wh->nheaders; i++) {
        if (wh->headers[i].name && strcasecmp(wh->headers[i].name, name) == 0) {
            return wh->headers[i].value ? wh->headers[i].value : "";
        }
    }
    return NULL;
}

static int check_secret_header(const struct ferry_bc_state *st, const struct ferry_webhook *wh,
                               struct ferry_err *err)
{
    unsigned char got[EVP_MAX_MD_SIZE];
    unsigned int got_len = 0;
    const char *value = webhook_header(wh, st->webhook_secret_header);

    if (!value) {
        return ferry__bc_err(err, FERRY_ESIGNATURE, "webhook lacks the %s header",
                             st->webhook_secret_header);
    }
    /*
     * Comparing fixed-size digests keeps the time independent of where the
     * values differ and of their lengths, so a probe learns neither the
     * secret's prefix nor its size.
     */
    if (EVP_Digest(value, strlen(value), got, &got_len, EVP_sha256(), NULL) != 1 ||
        got_len != sizeof(st->webhook_secret_sha256)) {
        return ferry__bc_err(err, FERRY_EPLUGIN, "SHA-256 failed while checking %s",
                             st->webhook_secret_header);
    }
    if (CRYPTO_memcmp(got, st->webhook_secret_sha256, sizeof(st->webhook_secret_sha256)) != 0) {
        return ferry__bc_err(err, FERRY_ESIGNATURE,
                             "webhook %s header does not match the configured webhook_secret",
                             st->webhook_secret_header);
    }
    return 0;
}

/* Unix seconds as sent in webhook-timestamp: digits only, or -1. */
static long long parse_timestamp(const char *s)
{
    char *end = NULL;
    long long v;
    if (*s < '0' || *s > '9' || strlen(s) > 18) {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    return (errno || *end != '\0') ? -1 : v;
}

/* Whether any space-separated `v1,<base64>` entry of `list` equals `expected` (44 chars). */
static int signature_listed(const char *list, const char *expected)
{
    int match = 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        /* Other versions (e.g. v1a, asymmetric) are not ours to check; skip them. */
        if (len == 3 + BC_B64_SHA256_LEN && memcmp(p, "v1,", 3) == 0 &&
            CRYPTO_memcmp(p + 3, expected, BC_B64_SHA256_LEN) == 0) {
            match = 1;
        }
        p += len;
        while (*p == ' ') {
            p++;
        }
    }
    return match;
}

static int check_signature(const struct ferry_bc_state *st, struct ferry_call *call,
                           const struct ferry_webhook *wh, struct ferry_err *err)
{
    const char *id = webhook_header(wh, "webhook-id");
    const char *ts = webhook_header(wh, "webhook-timestamp");
    const char *sig = webhook_header(wh, "webhook-signature");
    const char *body = wh->body ? wh->body : "";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char expected[BC_B64_SHA256_LEN + 1];
    char *signed_bytes = NULL;
    size_t id_len, ts_len, n;
    long long t, now_s;
    int rc;

    if (st->sig_mode == FERRY_BC_SIG_OFF) {
        return 0;
    }
    if (!id && !ts && !sig) {
        if (st->sig_mode == FERRY_BC_SIG_REQUIRED) {
            return ferry__bc_err(err, FERRY_ESIGNATURE,
                                 "webhook lacks the webhook-id, webhook-timestamp and "
                                 "webhook-signature headers (signature = required)");
        }
        return 0;
    }
    if (!st->client_secret) {
        /* if-present without a key: the custom header above is the authentication. */
        st->host->log(call, FERRY_LOG_DEBUG,
                      "webhook carries a signature but no client_secret is configured; "
                      "relying on %s",
                      st->webhook_secret_header);
        return 0;
    }
    if (!id || !ts || !sig) {
        return ferry__bc_err(err, FERRY_ESIGNATURE, "webhook lacks the %s header",
                             !id   ? "webhook-id"
                             : !ts ? "webhook-timestamp"
                                   : "webhook-signature");
    }
    t = parse_timestamp(ts);
    if (t < 0) {
        return ferry__bc_err(err, FERRY_ESIGNATURE, "webhook-timestamp is not a Unix time");
    }
    now_s = (long long)(st->host->now_ms(call) / 1000);
    if (t > now_s + FERRY_BC_SIG_TOLERANCE_S || t < now_s - FERRY_BC_SIG_TOLERANCE_S) {
        return ferry__bc_err(err, FERRY_ESIGNATURE,
                             "webhook-timestamp is more than %d s away from now (replay?)",
                             FERRY_BC_SIG_TOLERANCE_S);
    }

    /* Signed content per Standard Webhooks: "<id>.<timestamp>.<raw body>". */
    id_len = strlen(id);
    ts_len = strlen(ts);
    n = id_len + 1 + ts_len + 1 + wh->body_len;
    signed_bytes = malloc(n ? n : 1);
    if (!signed_bytes) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory verifying the webhook signature");
        goto cleanup;
    }
    memcpy(signed_bytes, id, id_len);
    signed_bytes[id_len] = '.';
    memcpy(signed_bytes + id_len + 1, ts, ts_len);
    signed_bytes[id_len + 1 + ts_len] = '.';
    memcpy(signed_bytes + id_len + 1 + ts_len + 1, body, wh->body_len);
    if (!HMAC(EVP_sha256(), st->client_secret, (int)st->client_secret_len,
              (const unsigned char *)signed_bytes, n, mac, &mac_len) ||
        mac_len != 32) {
        rc = ferry__bc_err(err, FERRY_EPLUGIN, "HMAC-SHA256 failed verifying the webhook");
        goto cleanup;
    }
    EVP_EncodeBlock((unsigned char *)expected, mac, (int)mac_len);
    if (!signature_listed(sig, expected)) {
        rc = ferry__bc_err(err, FERRY_ESIGNATURE,
                           "webhook-signature has no v1 signature matching client_secret");
        goto cleanup;
    }
    rc = 0;
cleanup:
    free(signed_bytes);
    return rc;
}

int ferry__bc_webhook_verify(const struct ferry_bc_state *st, struct ferry_call *call,
                             const struct ferry_webhook *wh, struct ferry_err *err)
{
    int rc = check_secret_header(st, wh, err);
    if (rc < 0) {
        return rc;
    }
    return check_signature(st, call, wh, err);
}

/* The ferry event kind for a customer scope this connector handles, or NULL. */
static const char *customer_event(const char *scope)
{
    if (strcmp(scope, "store/customer/created") == 0) {
        return "created";
    }
    if (strcmp(scope, "store/customer/updated") == 0) {
        return "updated";
    }
    return NULL;
}

int ferry__bc_webhook_decode(const struct ferry_bc_state *st, struct ferry_call *call,
                             const struct ferry_webhook *wh, json_t **events, struct ferry_err *err)
{
    json_error_t jerr;
    json_t *root = NULL;
    json_t *out = NULL;
    json_t *ev = NULL;
    json_t *data;
    json_t *data_id;
    json_t *store_id;
    const char *scope;
    const char *hash;
    const char *kind;
    char idbuf[32];
    char dedupe[BC_MAX_SCOPE + 1 + BC_MAX_HASH + 1];
    int rc;

    root = json_loadb(wh->body ? wh->body : "", wh->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        rc = ferry__bc_err(err, FERRY_EBADINPUT, "webhook body is not valid JSON: %s", jerr.text);
        goto cleanup;
    }
    if (!json_is_object(root)) {
        rc = ferry__bc_err(err, FERRY_EBADINPUT, "webhook body is not a JSON object");
        goto cleanup;
    }
    scope = json_string_value(json_object_get(root, "scope"));
    if (!scope || !scope[0] || strlen(scope) > BC_MAX_SCOPE) {
        rc = ferry__bc_err(err, FERRY_EBADINPUT,
                           "webhook payload lacks a string `scope` of at most %d bytes",
                           BC_MAX_SCOPE);
        goto cleanup;
    }
    hash = json_string_value(json_object_get(root, "hash"));
    if (!hash || !hash[0] || strlen(hash) > BC_MAX_HASH) {
        rc =
            ferry__bc_err(err, FERRY_EBADINPUT,
                          "webhook payload lacks a string `hash` of at most %d bytes", BC_MAX_HASH);
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_object(data)) {
        rc = ferry__bc_err(err, FERRY_EBADINPUT, "webhook payload `data` is not an object");
        goto cleanup;
    }
    /* Current docs send store_id as a string, older ones as a number (facts 8.2). */
    store_id = json_object_get(root, "store_id");
    if (store_id && !json_is_string(store_id) && !json_is_integer(store_id)) {
        rc = ferry__bc_err(err, FERRY_EBADINPUT,
                           "webhook payload `store_id` is neither a string nor an integer");
        goto cleanup;
    }

    out = json_array();
    if (!out) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory decoding a webhook");
        goto cleanup;
    }
    kind = customer_event(scope);
    if (!kind) {
        /* Understood but not ours (yet): the host acks it so BigCommerce does not retry. */
        st->host->log(call, FERRY_LOG_INFO, "ignoring scope %s", scope);
        *events = out;
        out = NULL;
        rc = 0;
        goto cleanup;
    }
    data_id = json_object_get(data, "id");
    if (!json_is_integer(data_id) || json_integer_value(data_id) <= 0) {
        rc = ferry__bc_err(err, FERRY_EBADINPUT,
                           "webhook payload `data.id` of %s is not a positive integer", scope);
        goto cleanup;
    }
    snprintf(idbuf, sizeof(idbuf), "%" JSON_INTEGER_FORMAT, json_integer_value(data_id));
    /*
     * A redelivery repeats the hash (facts 8.2); the scope keeps a created
     * and an updated with equal hashes apart.
     */
    snprintf(dedupe, sizeof(dedupe), "%s:%s", scope, hash);
    ev = json_object();
    if (!ev || json_object_set_new(ev, "object", json_string(FERRY_BC_OBJECT_CUSTOMER)) < 0 ||
        json_object_set_new(ev, "id", json_string(idbuf)) < 0 ||
        json_object_set_new(ev, "event", json_string(kind)) < 0 ||
        json_object_set_new(ev, "dedupe", json_string(dedupe)) < 0 ||
        json_object_set_new(ev, "scope", json_string(scope)) < 0 ||
        json_array_append(out, ev) < 0) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory decoding a webhook");
        goto cleanup;
    }
    *events = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(ev);
    json_decref(out);
    json_decref(root);
    return rc;
}
