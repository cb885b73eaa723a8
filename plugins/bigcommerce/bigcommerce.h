/* SPDX-License-Identifier: MIT */
/*
 * State shared by the bigcommerce connector's modules: the instance
 * configuration as parsed and validated by open(), immutable afterwards so
 * that worker threads and the event loop may read it without a lock (the
 * quota governors it points to carry their own lock), and the
 * error helper every module fills struct ferry_err with. Nothing here is
 * visible outside the plugin (hidden visibility, see ferry_add_plugin).
 */
#ifndef FERRY_BIGCOMMERCE_H
#define FERRY_BIGCOMMERCE_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/plugin.h"

#define FERRY_BC_VERSION "0.2.0"

/* Object names as mappings and the host see them (docs/connectors/bigcommerce.md). */
#define FERRY_BC_OBJECT_CUSTOMER        "customer"
#define FERRY_BC_OBJECT_CUSTOMER_ADDR   "customer_address"
#define FERRY_BC_OBJECT_ORDER           "order"
#define FERRY_BC_OBJECT_REFUND          "refund"
#define FERRY_BC_OBJECT_CART            "cart"
#define FERRY_BC_OBJECT_PRODUCT         "product"
#define FERRY_BC_OBJECT_COMPANY         "company"
#define FERRY_BC_OBJECT_COMPANY_USER    "company_user"
#define FERRY_BC_OBJECT_COMPANY_ADDRESS "company_address"

#if defined(__GNUC__)
#define FERRY_BC_NODISCARD __attribute__((warn_unused_result))
#else
#define FERRY_BC_NODISCARD
#endif

enum ferry_bc_sig_mode {
    FERRY_BC_SIG_OFF = 0,
    FERRY_BC_SIG_IF_PRESENT = 1,
    FERRY_BC_SIG_REQUIRED = 2,
};

/* The two APIs with separate quotas and base URLs. */
enum ferry_bc_api {
    FERRY_BC_API_STORE = 0, /* REST v2/v3 under <api_base>/stores/<hash> */
    FERRY_BC_API_B2B = 1,   /* B2B Edition under <api_b2b_base>/api/v3/io */
};

struct ferry_bc_quota; /* bigcommerce_quota.h; mutable, shared by all workers */

struct ferry_bc_state {
    const struct ferry_host_api *host; /* borrowed; valid until close */
    char *store_hash;                  /* [A-Za-z0-9]+, safe in a URL path */
    char *access_token;                /* secret: X-Auth-Token value */
    char *api_base;                    /* no trailing slash */
    char *api_b2b_base;                /* no trailing slash */
    char *webhook_secret;              /* secret: expected custom header value */
    size_t webhook_secret_len;
    unsigned char webhook_secret_sha256[32]; /* what verify compares against */
    char *webhook_secret_header;             /* header name BigCommerce sends it in */
    int sig_mode;                            /* enum ferry_bc_sig_mode */
    char *client_secret;                     /* secret; NULL when not configured */
    size_t client_secret_len;
    int page_limit;                  /* 1..250 */
    long timeout_ms;                 /* per request, > 0 */
    int include_incomplete_orders;   /* status 0 orders reach the host */
    int order_details_in_poll;       /* list_changes reads products + shipping addresses */
    int buyer_history;               /* fetch adds buyer_orders_before to an order */
    int64_t ratelimit_fallback_ms;   /* wait after a 429 without usable headers */
    char *store_currency;            /* ISO 4217 code of catalog prices */
    struct ferry_bc_quota *quota[2]; /* by enum ferry_bc_api; the only mutable part */
    char user_agent[48];
};

/*
 * Sets err->code and a formatted one-line message (truncated to fit) and
 * returns `code`, so that callers can write `rc = ferry__bc_err(err, ...)`.
 * err may be NULL. Never pass a secret in the arguments.
 */
int ferry__bc_err(struct ferry_err *err, int code, const char *fmt, ...) FERRY_PRINTF(3, 4);

/* The exported entry point (plugin.h), declared for -Wmissing-prototypes and the tests. */
FERRY_PLUGIN_EXPORT int ferry_connector_entry(const struct ferry_host_api *host,
                                              const struct ferry_connector **out);

#endif
