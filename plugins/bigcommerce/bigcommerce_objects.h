/* SPDX-License-Identifier: MIT */
/*
 * The objects the connector reads (docs/connectors/bigcommerce.md): one
 * fetch and one list_changes per object, each in the shape plugin.h asks
 * for, with ISO 8601 UTC watermarks whatever date format the API uses.
 */
#ifndef FERRY_BIGCOMMERCE_OBJECTS_H
#define FERRY_BIGCOMMERCE_OBJECTS_H

#include "bigcommerce.h"

/* Whether `object` is one this connector knows. */
int ferry__bc_object_known(const char *object);

/* plugin.h fetch. FERRY_EUNSUPPORTED for an unknown object. */
FERRY_BC_NODISCARD int ferry__bc_fetch(const struct ferry_bc_state *st, struct ferry_call *call,
                                       const char *object, const char *id, json_t **record,
                                       struct ferry_err *err);

/* plugin.h list_changes; `since` is our watermark or an operator's ISO 8601 time. */
FERRY_BC_NODISCARD int ferry__bc_list(const struct ferry_bc_state *st, struct ferry_call *call,
                                      const char *object, const char *since, const char *page_token,
                                      json_t **page, struct ferry_err *err);

#endif
