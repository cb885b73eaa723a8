/* SPDX-License-Identifier: MIT */
/*
 * BigCommerce REST v3 requests for the connector: URL and header building,
 * the HTTP status to FERRY_E* classification, and parsing the v3 envelope
 * into the shapes plugin.h promises (a record for fetch, a page for
 * list_changes). All functions block on host->http and run on a worker.
 */
#ifndef FERRY_BIGCOMMERCE_API_H
#define FERRY_BIGCOMMERCE_API_H

#include <stddef.h>

#include "bigcommerce.h"

/* A growable string; an allocation failure sets `oom` and turns later appends into no-ops. */
struct ferry_bc_buf {
    char *p; /* NUL-terminated once anything was appended; caller frees with ferry__bc_buf_free */
    size_t len;
    size_t cap;
    int oom;
};

void ferry__bc_buf_puts(struct ferry_bc_buf *b, const char *s);
/* Appends s percent-encoded for a query value (RFC 3986 unreserved and ':' stay as they are). */
void ferry__bc_buf_put_query(struct ferry_bc_buf *b, const char *s);
void ferry__bc_buf_free(struct ferry_bc_buf *b);

/*
 * GET one customer with its addresses, attributes and form fields.
 * `id` must be a decimal customer id. *record: new reference, caller owns.
 * FERRY_ENOTFOUND when BigCommerce has no such customer.
 */
FERRY_BC_NODISCARD int ferry__bc_customer_fetch(const struct ferry_bc_state *st,
                                                struct ferry_call *call, const char *id,
                                                json_t **record, struct ferry_err *err);

/*
 * One page (1-based `page_no`) of customers modified at or after `since`
 * (borrowed, used verbatim; NULL: all), oldest change first. *page: new
 * object in the list_changes shape of plugin.h, caller owns.
 */
FERRY_BC_NODISCARD int ferry__bc_customer_page(const struct ferry_bc_state *st,
                                               struct ferry_call *call, const char *since,
                                               long page_no, json_t **page, struct ferry_err *err);

/*
 * Map a non-2xx response to a FERRY_E* code with the remote reason in err
 * (and err->retry_after_ms for 429). Returns the code; never 0.
 */
int ferry__bc_classify(const struct ferry_host_api *host, const struct ferry_http_resp *resp,
                       struct ferry_err *err);

#endif
