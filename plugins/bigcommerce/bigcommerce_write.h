/* SPDX-License-Identifier: MIT */
/*
 * The write side of the connector, for two-way sync: lookup, create and
 * update of customers (v3 /customers, facts 4), and the description of
 * what a mapping may write there. Every other object is read only.
 */
#ifndef FERRY_BIGCOMMERCE_WRITE_H
#define FERRY_BIGCOMMERCE_WRITE_H

#include "bigcommerce.h"

/*
 * plugin.h lookup. Customers by `email` (case-insensitive, as e-mail
 * addresses are) or `id`; *found is NULL when none matches, else a new
 * {"id", "etag": null, "record"} whose record has fetch's shape.
 * FERRY_EDUPLICATE for several matches, FERRY_EUNSUPPORTED for another
 * object or field.
 */
FERRY_BC_NODISCARD int ferry__bc_lookup(const struct ferry_bc_state *st, struct ferry_call *call,
                                        const char *object, const char *field, const char *value,
                                        json_t **found, struct ferry_err *err);

/*
 * plugin.h write: PUT or POST /v3/customers with a one-element array.
 * *result is a new {"id", "etag": null}. FERRY_EVALIDATION with the
 * store's reason when refused, FERRY_ENOTFOUND when the customer to
 * update is gone, FERRY_EUNKNOWN_OUTCOME when a create may or may not
 * have happened, FERRY_EUNSUPPORTED for another object.
 */
FERRY_BC_NODISCARD int ferry__bc_write(const struct ferry_bc_state *st, struct ferry_call *call,
                                       const struct ferry_write *w, json_t **result,
                                       struct ferry_err *err);

/* plugin.h describe: {"customer": {"key": "id", "properties": {...}}}; no I/O. */
FERRY_BC_NODISCARD int ferry__bc_describe(json_t **objects, struct ferry_err *err);

#endif
