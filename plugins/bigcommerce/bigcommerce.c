/* SPDX-License-Identifier: MIT */
/*
 * The bigcommerce connector: its descriptor, configuration table and the
 * plugin.h callbacks. Customers, addresses, orders, refunds, carts,
 * products and B2B Edition companies are read (fetch, list_changes) and
 * announced by webhooks, whose registrations sync_webhooks maintains.
 * Customers are also the target of two-way sync: lookup (by e-mail or id),
 * write (create and update) and describe serve them and answer
 * FERRY_EUNSUPPORTED for every other object, which stays read only.
 * Configuration is validated once in open() and is immutable afterwards,
 * which is what lets worker threads and the event loop share the state
 * without a lock; the quota governors are the one mutable part, and they
 * carry their own lock.
 */
#include "bigcommerce.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "bigcommerce_api.h"
#include "bigcommerce_hooks.h"
#include "bigcommerce_objects.h"
#include "bigcommerce_quota.h"
#include "bigcommerce_webhook.h"
#include "bigcommerce_write.h"

#define BC_DEFAULT_API_BASE   "https://api.bigcommerce.com"
#define BC_DEFAULT_B2B_BASE   "https://api-b2b.bigcommerce.com"
#define BC_DEFAULT_SECRET_HDR "X-Ferry-Secret"
#define BC_MAX_PAGE_LIMIT     250 /* platform-wide page cap; above it BigCommerce answers 413 */
#define BC_MAX_TIMEOUT_S      3600
#define BC_MAX_SECRET_LEN     4096

int ferry__bc_err(struct ferry_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        err->code = code;
        err->retry_after_ms = 0;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

static const struct ferry_config_field bc_config[] = {
    {"store_hash", FERRY_CFG_STRING, NULL, 1, "Store hash from the API path (stores/<hash>/v3)"},
    {"access_token", FERRY_CFG_SECRET, NULL, 1, "Store-level API account access token"},
    {"api_base", FERRY_CFG_STRING, BC_DEFAULT_API_BASE, 0,
     "REST API base URL, without /stores/<hash>"},
    {"webhook_secret", FERRY_CFG_SECRET, NULL, 1,
     "Value of the custom header set when creating the hooks"},
    {"webhook_secret_header", FERRY_CFG_STRING, BC_DEFAULT_SECRET_HDR, 0,
     "Name of the custom header that carries webhook_secret"},
    {"signature", FERRY_CFG_STRING, "if-present", 0,
     "Standard Webhooks signature check: off, if-present or required"},
    {"client_secret", FERRY_CFG_SECRET, NULL, 0,
     "API client secret, the key of webhook signatures"},
    {"page_limit", FERRY_CFG_INT, "250", 0, "Records per page when polling (1-250)"},
    {"timeout", FERRY_CFG_INT, "30", 0, "HTTP timeout per request, in seconds"},
    {"api_b2b_base", FERRY_CFG_STRING, BC_DEFAULT_B2B_BASE, 0,
     "B2B Edition API base URL, without /api/v3/io"},
    {"include_incomplete_orders", FERRY_CFG_BOOL, "false", 0,
     "Sync Incomplete (status 0) orders; otherwise polls skip them and fetch filters them"},
    {"buyer_history", FERRY_CFG_BOOL, "true", 0,
     "A fetched order carries buyer_orders_before, the buyer's earlier orders "
     "(1 request per order read)"},
    {"order_details_in_poll", FERRY_CFG_BOOL, "true", 0,
     "Read each polled order's products and shipping addresses (2 requests per order)"},
    {"ratelimit_fallback_ms", FERRY_CFG_INT, "3000", 0,
     "Wait after a 429 that carries no reset header, in ms"},
    {"store_currency", FERRY_CFG_STRING, "USD", 0,
     "ISO 4217 code of the store's default currency (catalog prices)"},
    {NULL, 0, NULL, 0, NULL},
};

static void free_secret(char *s, size_t len)
{
    if (s) {
        OPENSSL_cleanse(s, len);
        free(s);
    }
}

static void bc_close(void *state)
{
    struct ferry_bc_state *st = state;
    if (!st) {
        return;
    }
    free(st->store_hash);
    free_secret(st->access_token, strlen(st->access_token ? st->access_token : ""));
    free(st->api_base);
    free(st->api_b2b_base);
    free(st->store_currency);
    ferry__bc_quota_free(st->quota[FERRY_BC_API_STORE]);
    ferry__bc_quota_free(st->quota[FERRY_BC_API_B2B]);
    free_secret(st->webhook_secret, st->webhook_secret_len);
    OPENSSL_cleanse(st->webhook_secret_sha256, sizeof(st->webhook_secret_sha256));
    free(st->webhook_secret_header);
    free_secret(st->client_secret, st->client_secret_len);
    free(st);
}

/*
 * A string option: *out is borrowed from cfg, or `def` when absent (the host
 * fills defaults, but a missing key must not crash an older host's plugin).
 */
static int cfg_string(const json_t *cfg, const char *key, const char *def, int required,
                      const char **out, struct ferry_err *err)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (required) {
            return ferry__bc_err(err, FERRY_ECONFIG, "bigcommerce: `%s` is required", key);
        }
        *out = def;
        return 0;
    }
    if (!json_is_string(v)) {
        return ferry__bc_err(err, FERRY_ECONFIG, "bigcommerce: `%s` must be a string", key);
    }
    *out = json_string_value(v);
    if (required && !(*out)[0]) {
        return ferry__bc_err(err, FERRY_ECONFIG, "bigcommerce: `%s` must not be empty", key);
    }
    return 0;
}

static int cfg_bool(const json_t *cfg, const char *key, int def, int *out, struct ferry_err *err)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) {
        return ferry__bc_err(err, FERRY_ECONFIG, "bigcommerce: `%s` must be true or false", key);
    }
    *out = json_is_true(v);
    return 0;
}

static int cfg_int(const json_t *cfg, const char *key, long def, long min, long max, long *out,
                   struct ferry_err *err)
{
    json_t *v = json_object_get(cfg, key);
    json_int_t n;
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) {
        return ferry__bc_err(err, FERRY_ECONFIG, "bigcommerce: `%s` must be an integer", key);
    }
    n = json_integer_value(v);
    if (n < min || n > max) {
        return ferry__bc_err(
            err, FERRY_ECONFIG,
            "bigcommerce: `%s` must be between %ld and %ld, got %" JSON_INTEGER_FORMAT, key, min,
            max, n);
    }
    *out = (long)n;
    return 0;
}

/* Header values must not smuggle a second header in (CR/LF) or other control bytes. */
static int has_ctl(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 1;
        }
    }
    return 0;
}

/* RFC 9110 token characters, the only ones allowed in a header name. */
static int is_token(const char *s)
{
    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) {
            return 0;
        }
    }
    return 1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

static int bc_open(const struct ferry_host_api *host, struct ferry_call *call, const json_t *config,
                   void **state, struct ferry_err *err)
{
    struct ferry_bc_state *st = NULL;
    const char *store_hash = NULL, *token = NULL, *base = NULL, *secret = NULL;
    const char *secret_hdr = NULL, *sig = NULL, *client_secret = NULL;
    const char *b2b_base = NULL, *currency = NULL;
    long page_limit = 0, timeout_s = 0, fallback_ms = 0;
    int incomplete = 0, details = 1, history = 1;
    unsigned int md_len = 0;
    size_t base_len;
    int rc;

    if (!json_is_object(config)) {
        return ferry__bc_err(err, FERRY_ECONFIG, "bigcommerce: configuration is not an object");
    }
    if ((rc = cfg_string(config, "store_hash", NULL, 1, &store_hash, err)) < 0 ||
        (rc = cfg_string(config, "access_token", NULL, 1, &token, err)) < 0 ||
        (rc = cfg_string(config, "api_base", BC_DEFAULT_API_BASE, 0, &base, err)) < 0 ||
        (rc = cfg_string(config, "webhook_secret", NULL, 1, &secret, err)) < 0 ||
        (rc = cfg_string(config, "webhook_secret_header", BC_DEFAULT_SECRET_HDR, 0, &secret_hdr,
                         err)) < 0 ||
        (rc = cfg_string(config, "signature", "if-present", 0, &sig, err)) < 0 ||
        (rc = cfg_string(config, "client_secret", NULL, 0, &client_secret, err)) < 0 ||
        (rc = cfg_int(config, "page_limit", BC_MAX_PAGE_LIMIT, 1, BC_MAX_PAGE_LIMIT, &page_limit,
                      err)) < 0 ||
        (rc = cfg_int(config, "timeout", 30, 1, BC_MAX_TIMEOUT_S, &timeout_s, err)) < 0 ||
        (rc = cfg_string(config, "api_b2b_base", BC_DEFAULT_B2B_BASE, 0, &b2b_base, err)) < 0 ||
        (rc = cfg_bool(config, "include_incomplete_orders", 0, &incomplete, err)) < 0 ||
        (rc = cfg_bool(config, "order_details_in_poll", 1, &details, err)) < 0 ||
        (rc = cfg_bool(config, "buyer_history", 1, &history, err)) < 0 ||
        (rc = cfg_int(config, "ratelimit_fallback_ms", 3000, 1, 600000, &fallback_ms, err)) < 0 ||
        (rc = cfg_string(config, "store_currency", "USD", 0, &currency, err)) < 0) {
        return rc;
    }
    if (strlen(currency) != 3 || !isupper((unsigned char)currency[0]) ||
        !isupper((unsigned char)currency[1]) || !isupper((unsigned char)currency[2])) {
        return ferry__bc_err(err, FERRY_ECONFIG,
                             "bigcommerce: `store_currency` must be an ISO 4217 code such as USD");
    }
    /* The hash becomes a URL path segment; BigCommerce hashes are short alphanumerics. */
    for (const char *p = store_hash; *p; p++) {
        if (!isalnum((unsigned char)*p)) {
            return ferry__bc_err(err, FERRY_ECONFIG,
                                 "bigcommerce: `store_hash` must be letters and digits only");
        }
    }
    if (has_ctl(token)) {
        return ferry__bc_err(err, FERRY_ECONFIG,
                             "bigcommerce: `access_token` contains control characters");
    }
    if ((strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0) || has_ctl(base) ||
        strchr(base, ' ') || strchr(base, '?') || strchr(base, '#')) {
        return ferry__bc_err(err, FERRY_ECONFIG,
                             "bigcommerce: `api_base` must be an http(s) URL without query, "
                             "e.g. " BC_DEFAULT_API_BASE);
    }
    if ((strncmp(b2b_base, "https://", 8) != 0 && strncmp(b2b_base, "http://", 7) != 0) ||
        has_ctl(b2b_base) || strchr(b2b_base, ' ') || strchr(b2b_base, '?') ||
        strchr(b2b_base, '#')) {
        return ferry__bc_err(err, FERRY_ECONFIG,
                             "bigcommerce: `api_b2b_base` must be an http(s) URL without query, "
                             "e.g. " BC_DEFAULT_B2B_BASE);
    }
    if (!is_token(secret_hdr)) {
        return ferry__bc_err(err, FERRY_ECONFIG,
                             "bigcommerce: `webhook_secret_header` is not a valid header name");
    }
    if (strlen(secret) > BC_MAX_SECRET_LEN ||
        strlen(client_secret ? client_secret : "") > BC_MAX_SECRET_LEN) {
        return ferry__bc_err(err, FERRY_ECONFIG, "bigcommerce: secrets are limited to %d bytes",
                             BC_MAX_SECRET_LEN);
    }
    if (client_secret && !client_secret[0]) {
        client_secret = NULL; /* an empty env variable means "not configured" */
    }

    st = calloc(1, sizeof(*st));
    if (!st) {
        return ferry__bc_err(err, FERRY_ENOMEM, "bigcommerce: out of memory");
    }
    st->host = host;
    st->page_limit = (int)page_limit;
    st->timeout_ms = timeout_s * 1000;
    st->include_incomplete_orders = incomplete;
    st->order_details_in_poll = details;
    st->buyer_history = history;
    st->ratelimit_fallback_ms = fallback_ms;
    snprintf(st->user_agent, sizeof(st->user_agent), "ferry/" FERRY_BC_VERSION);
    if (strcmp(sig, "off") == 0) {
        st->sig_mode = FERRY_BC_SIG_OFF;
    } else if (strcmp(sig, "if-present") == 0) {
        st->sig_mode = FERRY_BC_SIG_IF_PRESENT;
    } else if (strcmp(sig, "required") == 0) {
        st->sig_mode = FERRY_BC_SIG_REQUIRED;
    } else {
        rc = ferry__bc_err(
            err, FERRY_ECONFIG,
            "bigcommerce: `signature` must be off, if-present or required, got '%.32s'", sig);
        goto cleanup;
    }
    if (st->sig_mode == FERRY_BC_SIG_REQUIRED && !client_secret) {
        rc = ferry__bc_err(err, FERRY_ECONFIG,
                           "bigcommerce: `signature = required` needs `client_secret`");
        goto cleanup;
    }

    st->store_hash = dup_str(store_hash);
    st->access_token = dup_str(token);
    st->api_base = dup_str(base);
    st->api_b2b_base = dup_str(b2b_base);
    st->store_currency = dup_str(currency);
    st->quota[FERRY_BC_API_STORE] = ferry__bc_quota_new("store");
    st->quota[FERRY_BC_API_B2B] = ferry__bc_quota_new("b2b");
    st->webhook_secret = dup_str(secret);
    st->webhook_secret_len = strlen(secret);
    st->webhook_secret_header = dup_str(secret_hdr);
    if (client_secret) {
        st->client_secret = dup_str(client_secret);
        st->client_secret_len = strlen(client_secret);
    }
    if (!st->store_hash || !st->access_token || !st->api_base || !st->api_b2b_base ||
        !st->store_currency || !st->quota[0] || !st->quota[1] || !st->webhook_secret ||
        !st->webhook_secret_header || (client_secret && !st->client_secret)) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "bigcommerce: out of memory");
        goto cleanup;
    }
    /* Paths are appended with their own leading slash. */
    base_len = strlen(st->api_base);
    while (base_len > 0 && st->api_base[base_len - 1] == '/') {
        st->api_base[--base_len] = '\0';
    }
    base_len = strlen(st->api_b2b_base);
    while (base_len > 0 && st->api_b2b_base[base_len - 1] == '/') {
        st->api_b2b_base[--base_len] = '\0';
    }
    if (EVP_Digest(st->webhook_secret, st->webhook_secret_len, st->webhook_secret_sha256, &md_len,
                   EVP_sha256(), NULL) != 1 ||
        md_len != sizeof(st->webhook_secret_sha256)) {
        rc = ferry__bc_err(err, FERRY_EPLUGIN, "bigcommerce: SHA-256 is not available");
        goto cleanup;
    }
    host->log(call, FERRY_LOG_DEBUG, "bigcommerce: store %s at %s, signature %s, page_limit %d",
              st->store_hash, st->api_base, sig, st->page_limit);
    *state = st;
    st = NULL;
    rc = 0;
cleanup:
    bc_close(st);
    return rc;
}

static int bc_fetch(void *state, struct ferry_call *call, const char *object, const char *id,
                    json_t **record, struct ferry_err *err)
{
    return ferry__bc_fetch(state, call, object, id, record, err);
}

static int bc_list_changes(void *state, struct ferry_call *call, const char *object,
                           const char *since, const char *page_token, json_t **page,
                           struct ferry_err *err)
{
    return ferry__bc_list(state, call, object, since, page_token, page, err);
}

static int bc_lookup(void *state, struct ferry_call *call, const char *object, const char *field,
                     const char *value, json_t **found, struct ferry_err *err)
{
    return ferry__bc_lookup(state, call, object, field, value, found, err);
}

static int bc_write(void *state, struct ferry_call *call, const struct ferry_write *w,
                    json_t **result, struct ferry_err *err)
{
    return ferry__bc_write(state, call, w, result, err);
}

static int bc_describe(void *state, struct ferry_call *call, json_t **objects,
                       struct ferry_err *err)
{
    return ferry__bc_describe(objects, err);
}

static int bc_verify_webhook(void *state, struct ferry_call *call, const struct ferry_webhook *wh,
                             struct ferry_err *err)
{
    return ferry__bc_webhook_verify(state, call, wh, err);
}

static int bc_decode_webhook(void *state, struct ferry_call *call, const struct ferry_webhook *wh,
                             json_t **events, struct ferry_err *err)
{
    return ferry__bc_webhook_decode(state, call, wh, events, err);
}

static int bc_sync_webhooks(void *state, struct ferry_call *call, const json_t *needs,
                            const char *url, int apply, json_t **report, struct ferry_err *err)
{
    return ferry__bc_sync_webhooks(state, call, needs, url, apply, report, err);
}

static const struct ferry_connector bc_connector = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "bigcommerce",
    .version = FERRY_BC_VERSION,
    .description = "BigCommerce REST v2/v3 and B2B Edition: customers, orders, refunds, carts, "
                   "products and companies by webhook and delta poll; customers also written",
    .config = bc_config,
    .open = bc_open,
    .close = bc_close,
    .worker_free = NULL, /* no per-worker state: every request carries its token */
    .fetch = bc_fetch,
    .list_changes = bc_list_changes,
    .lookup = bc_lookup,
    .write = bc_write,
    .verify_webhook = bc_verify_webhook,
    .decode_webhook = bc_decode_webhook,
    .describe = bc_describe,
    .sync_webhooks = bc_sync_webhooks,
};

FERRY_PLUGIN_EXPORT int ferry_connector_entry(const struct ferry_host_api *host,
                                              const struct ferry_connector **out)
{
    if (!host || !out) {
        return FERRY_EINVAL;
    }
    /* Every host member we call must exist in the host's build of the vtable. */
    if (host->abi != FERRY_PLUGIN_ABI || !FERRY_HOST_HAS(host, now_ms)) {
        return FERRY_EABI;
    }
    *out = &bc_connector;
    return 0;
}
