/* SPDX-License-Identifier: MIT */
/*
 * BigCommerce webhook deliveries (bigcommerce-api-facts.md 8.2 and 8.4).
 * Authentication is two layers: the custom header given at hook creation,
 * which every BigCommerce era sends and so is always required, and the
 * Standard Webhooks signature (webhook-id / webhook-timestamp /
 * webhook-signature, HMAC-SHA256 keyed by the raw client secret), whose
 * coverage BigCommerce does not document, hence the off / if-present /
 * required setting. Payloads are thin ({"scope", "data": {"id"}, "hash"}):
 * decode only names the record, and the worker fetches it later. The scope
 * table below is the one place that says which scope becomes which
 * (object, id, event, data); sync_webhooks reads it backwards.
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

#include "bigcommerce_api.h"

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
    size_t copies = 0;

    if (!value) {
        return ferry__bc_err(err, FERRY_ESIGNATURE, "webhook lacks the %s header",
                             st->webhook_secret_header);
    }
    /* Twice is ambiguous (RFC 9110 5.3): a proxy and we might read different copies. */
    for (size_t i = 0; i < wh->nheaders; i++) {
        copies +=
            wh->headers[i].name && strcasecmp(wh->headers[i].name, st->webhook_secret_header) == 0;
    }
    if (copies > 1) {
        return ferry__bc_err(err, FERRY_ESIGNATURE, "webhook carries the %s header %zu times",
                             st->webhook_secret_header, copies);
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

/* How a scope's `data` names the record (facts 8.2, 9.5). */
enum bc_id_rule {
    ID_DATA_ID = 1,      /* data.id, an integer */
    ID_ADDRESS_CUSTOMER, /* data.address.customer_id; data.id is the address */
    ID_STATUS,           /* data.id + data.status.{previous,new}_status_id */
    ID_REFUND,           /* "<data.id>:<data.refund.refund_id>" */
    ID_CART,             /* data.id, a UUID string; data.token */
    ID_CART_CONVERTED,   /* data.orderId; data.id is the cart */
    ID_COMPANY,          /* data.company_id */
    ID_COMPANY_USER,     /* data.user_id (B2B user id); data.company_id */
    ID_COMPANY_ADDRESS,  /* data.address_id; data.company_id */
};

static const struct ferry_bc_scope scopes[] = {
    {"store/customer/created", FERRY_BC_OBJECT_CUSTOMER, "created", ID_DATA_ID, 0},
    {"store/customer/updated", FERRY_BC_OBJECT_CUSTOMER, "updated", ID_DATA_ID, 0},
    {"store/customer/deleted", FERRY_BC_OBJECT_CUSTOMER, "deleted", ID_DATA_ID, 0},
    /* Address changes do not fire customer/updated (facts 8.2): re-read the customer. */
    {"store/customer/address/created", FERRY_BC_OBJECT_CUSTOMER, "updated", ID_ADDRESS_CUSTOMER, 0},
    {"store/customer/address/updated", FERRY_BC_OBJECT_CUSTOMER, "updated", ID_ADDRESS_CUSTOMER, 0},
    {"store/customer/address/deleted", FERRY_BC_OBJECT_CUSTOMER, "updated", ID_ADDRESS_CUSTOMER, 0},
    /* The vendor's own sample payload spells it so; accepted, never registered. */
    {"store/customer/address/update", FERRY_BC_OBJECT_CUSTOMER, "updated", ID_ADDRESS_CUSTOMER, 1},
    {"store/order/created", FERRY_BC_OBJECT_ORDER, "created", ID_DATA_ID, 0},
    {"store/order/updated", FERRY_BC_OBJECT_ORDER, "updated", ID_DATA_ID, 0},
    {"store/order/archived", FERRY_BC_OBJECT_ORDER, "archived", ID_DATA_ID, 0},
    {"store/order/statusUpdated", FERRY_BC_OBJECT_ORDER, "status_changed", ID_STATUS, 0},
    {"store/cart/converted", FERRY_BC_OBJECT_ORDER, "converted", ID_CART_CONVERTED, 0},
    {"store/order/refund/created", FERRY_BC_OBJECT_REFUND, "refund_created", ID_REFUND, 0},
    {"store/cart/abandoned", FERRY_BC_OBJECT_CART, "abandoned", ID_CART, 0},
    {"store/product/created", FERRY_BC_OBJECT_PRODUCT, "created", ID_DATA_ID, 0},
    {"store/product/updated", FERRY_BC_OBJECT_PRODUCT, "updated", ID_DATA_ID, 0},
    {"store/product/deleted", FERRY_BC_OBJECT_PRODUCT, "deleted", ID_DATA_ID, 0},
    {"store/company/created", FERRY_BC_OBJECT_COMPANY, "created", ID_COMPANY, 0},
    {"store/company/updated", FERRY_BC_OBJECT_COMPANY, "updated", ID_COMPANY, 0},
    {"store/company/deleted", FERRY_BC_OBJECT_COMPANY, "deleted", ID_COMPANY, 0},
    {"store/company/statusUpdated", FERRY_BC_OBJECT_COMPANY, "status_changed", ID_COMPANY, 0},
    /* Named in the B2B events page with its prefix elided; decoded, not registered. */
    {"store/company/superadmin/assignmentUpdated", FERRY_BC_OBJECT_COMPANY, "updated", ID_COMPANY,
     1},
    {"store/company/user/created", FERRY_BC_OBJECT_COMPANY_USER, "created", ID_COMPANY_USER, 0},
    {"store/company/user/updated", FERRY_BC_OBJECT_COMPANY_USER, "updated", ID_COMPANY_USER, 0},
    {"store/company/user/deleted", FERRY_BC_OBJECT_COMPANY_USER, "deleted", ID_COMPANY_USER, 0},
    {"store/company/address/created", FERRY_BC_OBJECT_COMPANY_ADDRESS, "created",
     ID_COMPANY_ADDRESS, 0},
    {"store/company/address/updated", FERRY_BC_OBJECT_COMPANY_ADDRESS, "updated",
     ID_COMPANY_ADDRESS, 0},
    {"store/company/address/deleted", FERRY_BC_OBJECT_COMPANY_ADDRESS, "deleted",
     ID_COMPANY_ADDRESS, 0},
};

const struct ferry_bc_scope *ferry__bc_scopes(size_t *n)
{
    *n = sizeof(scopes) / sizeof(scopes[0]);
    return scopes;
}

static const struct ferry_bc_scope *find_scope(const char *scope)
{
    for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        if (strcmp(scopes[i].scope, scope) == 0) {
            return &scopes[i];
        }
    }
    return NULL;
}

/* A positive integer member of obj (BigCommerce sends ids as numbers here); -1 when not. */
static json_int_t positive_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return (json_is_integer(v) && json_integer_value(v) > 0) ? json_integer_value(v) : -1;
}

/*
 * Fills id and *extra (a new object or NULL) from `data` per the rule;
 * FERRY_EBADINPUT naming the member when the payload lacks it.
 */
static int decode_ids(const struct ferry_bc_scope *sc, json_t *data, char *id, size_t n,
                      json_t **extra, struct ferry_err *err)
{
    json_int_t a, b;
    const char *s;
    *extra = NULL;
    switch (sc->rule) {
    case ID_DATA_ID:
        if ((a = positive_int(data, "id")) < 0) {
            goto missing_id;
        }
        snprintf(id, n, "%" JSON_INTEGER_FORMAT, a);
        return 0;
    case ID_ADDRESS_CUSTOMER:
        if ((a = positive_int(json_object_get(data, "address"), "customer_id")) < 0) {
            return ferry__bc_err(err, FERRY_EBADINPUT,
                                 "webhook payload `data.address.customer_id` of %s is not a "
                                 "positive integer",
                                 sc->scope);
        }
        if ((b = positive_int(data, "id")) < 0) {
            goto missing_id;
        }
        snprintf(id, n, "%" JSON_INTEGER_FORMAT, a);
        *extra = json_pack("{s:I}", "address_id", (json_int_t)b);
        break;
    case ID_STATUS: {
        json_t *st = json_object_get(data, "status");
        json_t *prev = json_object_get(st, "previous_status_id");
        json_t *next = json_object_get(st, "new_status_id");
        if ((a = positive_int(data, "id")) < 0) {
            goto missing_id;
        }
        if (!json_is_integer(prev) || !json_is_integer(next)) {
            return ferry__bc_err(err, FERRY_EBADINPUT,
                                 "webhook payload `data.status` of %s lacks integer "
                                 "previous_status_id and new_status_id",
                                 sc->scope);
        }
        snprintf(id, n, "%" JSON_INTEGER_FORMAT, a);
        *extra = json_pack("{s:O, s:O}", "previous_status_id", prev, "new_status_id", next);
        break;
    }
    case ID_REFUND:
        if ((a = positive_int(data, "id")) < 0) {
            goto missing_id;
        }
        if ((b = positive_int(json_object_get(data, "refund"), "refund_id")) < 0) {
            return ferry__bc_err(err, FERRY_EBADINPUT,
                                 "webhook payload `data.refund.refund_id` of %s is not a positive "
                                 "integer",
                                 sc->scope);
        }
        snprintf(id, n, "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT, a, b);
        *extra = json_pack("{s:I, s:I}", "refund_id", (json_int_t)b, "order_id", (json_int_t)a);
        break;
    case ID_CART:
        s = json_string_value(json_object_get(data, "id"));
        if (!s || !s[0] || strlen(s) >= n || strspn(s, "0123456789abcdefABCDEF-") != strlen(s)) {
            return ferry__bc_err(err, FERRY_EBADINPUT,
                                 "webhook payload `data.id` of %s is not a cart UUID", sc->scope);
        }
        snprintf(id, n, "%s", s);
        s = json_string_value(json_object_get(data, "token"));
        *extra = s ? json_pack("{s:s}", "token", s) : json_object();
        break;
    case ID_CART_CONVERTED:
        if ((a = positive_int(data, "orderId")) < 0) {
            return ferry__bc_err(err, FERRY_EBADINPUT,
                                 "webhook payload `data.orderId` of %s is not a positive integer",
                                 sc->scope);
        }
        snprintf(id, n, "%" JSON_INTEGER_FORMAT, a);
        s = json_string_value(json_object_get(data, "id"));
        *extra = s ? json_pack("{s:s}", "cart_id", s) : json_object();
        break;
    case ID_COMPANY:
    case ID_COMPANY_USER:
    case ID_COMPANY_ADDRESS: {
        const char *key = sc->rule == ID_COMPANY        ? "company_id"
                          : sc->rule == ID_COMPANY_USER ? "user_id"
                                                        : "address_id";
        if ((a = positive_int(data, key)) < 0) {
            return ferry__bc_err(err, FERRY_EBADINPUT,
                                 "webhook payload `data.%s` of %s is not a positive integer", key,
                                 sc->scope);
        }
        snprintf(id, n, "%" JSON_INTEGER_FORMAT, a);
        if (sc->rule != ID_COMPANY) {
            if ((b = positive_int(data, "company_id")) < 0) {
                return ferry__bc_err(err, FERRY_EBADINPUT,
                                     "webhook payload `data.company_id` of %s is not a positive "
                                     "integer",
                                     sc->scope);
            }
            *extra = json_pack("{s:I}", "company_id", (json_int_t)b);
        }
        break;
    }
    default:
        return ferry__bc_err(err, FERRY_EPLUGIN, "scope table entry for %s has no id rule",
                             sc->scope);
    }
    if (sc->rule != ID_COMPANY && !*extra) {
        return ferry__bc_err(err, FERRY_ENOMEM, "out of memory decoding a webhook");
    }
    return 0;
missing_id:
    return ferry__bc_err(err, FERRY_EBADINPUT,
                         "webhook payload `data.id` of %s is not a positive integer", sc->scope);
}

int ferry__bc_webhook_decode(const struct ferry_bc_state *st, struct ferry_call *call,
                             const struct ferry_webhook *wh, json_t **events, struct ferry_err *err)
{
    json_error_t jerr;
    json_t *root = NULL;
    json_t *out = NULL;
    json_t *ev = NULL;
    json_t *extra = NULL;
    json_t *data;
    json_t *store_id;
    const struct ferry_bc_scope *sc;
    const char *scope;
    const char *hash;
    char idbuf[96];
    char dedupe[BC_MAX_SCOPE + 1 + BC_MAX_HASH + 1];
    char group[96] = "";
    int rc;

    root = ferry__bc_json_loadb(st, wh->body ? wh->body : "", wh->body_len, JSON_REJECT_DUPLICATES,
                                &jerr);
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
    sc = find_scope(scope);
    if (!sc) {
        /* Understood but not ours: the host acks it so BigCommerce does not retry. */
        st->host->log(call, FERRY_LOG_INFO, "ignoring scope %s", scope);
        *events = out;
        out = NULL;
        rc = 0;
        goto cleanup;
    }
    if ((rc = decode_ids(sc, data, idbuf, sizeof(idbuf), &extra, err)) < 0) {
        goto cleanup;
    }
    /*
     * A redelivery repeats the hash (facts 8.2); the scope keeps a created
     * and an updated with equal hashes apart.
     */
    snprintf(dedupe, sizeof(dedupe), "%s:%s", scope, hash);
    /*
     * One refund arrives as refund/created plus a statusUpdated (4 or 14),
     * and one edit of an order as a burst of updated and statusUpdated:
     * every order event names the order as its group, so that the host can
     * hold them briefly and each sees the others (facts 8.2).
     */
    if (strcmp(sc->object, FERRY_BC_OBJECT_ORDER) == 0 ||
        strcmp(sc->object, FERRY_BC_OBJECT_REFUND) == 0) {
        size_t order_len = strcspn(idbuf, ":");
        snprintf(group, sizeof(group), "order:%.*s", (int)order_len, idbuf);
    }
    ev = json_object();
    if (!ev || json_object_set_new(ev, "object", json_string(sc->object)) < 0 ||
        json_object_set_new(ev, "id", json_string(idbuf)) < 0 ||
        json_object_set_new(ev, "event", json_string(sc->event)) < 0 ||
        json_object_set_new(ev, "dedupe", json_string(dedupe)) < 0 ||
        json_object_set_new(ev, "scope", json_string(scope)) < 0 ||
        (group[0] && json_object_set_new(ev, "group", json_string(group)) < 0) ||
        (extra && json_object_set(ev, "data", extra) < 0) || json_array_append(out, ev) < 0) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory decoding a webhook");
        goto cleanup;
    }
    *events = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(extra);
    json_decref(ev);
    json_decref(out);
    json_decref(root);
    return rc;
}
