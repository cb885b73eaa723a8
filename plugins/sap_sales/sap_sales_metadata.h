/* SPDX-License-Identifier: MIT */
/*
 * The service's $metadata (EDMX, OData v2) as the connector needs it: per
 * entity set the key, the properties with their types and SAP's
 * sap:creatable / sap:updatable / sap:filterable flags, and the navigation
 * properties (deep inserts). Read with libxml2 without network access,
 * entity substitution or DTD loading, because the document comes from a
 * remote server or an operator's file.
 */
#ifndef FERRY_SAP_SALES_METADATA_H
#define FERRY_SAP_SALES_METADATA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ferry/plugin.h"

#include "sap_sales_odata.h"

struct ferry_sap_instance;

/*
 * Parses an EDMX document into a new object keyed by entity set name:
 *   {"ContactCollection": {"type": "c4codata.Contact", "key": "ObjectID",
 *     "properties": {"Email": {"type": "Edm.String", "creatable": true,
 *        "updatable": true, "filterable": true, "nullable": true,
 *        "max_length": 255}, ...},
 *     "navigations": ["ContactTextCollection", ...]}, ...}
 * Absent sap: flags mean true (SAP's default). FERRY_EBADINPUT when the text
 * is not well-formed EDMX or has no entity set.
 */
FERRY_SAP_NODISCARD int ferry__sap_meta_parse(const char *xml, size_t len, json_t **meta,
                                              struct ferry_err *err);

/* The describe() shape (key + properties per set) from parsed metadata; new reference. */
json_t *ferry__sap_meta_describe(const json_t *meta);

/* The entry of one entity set (borrowed from meta) or NULL. */
const json_t *ferry__sap_meta_set(const json_t *meta, const char *set);

/* One property of an entity set (borrowed) or NULL. */
const json_t *ferry__sap_meta_prop(const json_t *meta, const char *set, const char *prop);

/* Whether `name` is a navigation property of the set (a deep-insert child). */
bool ferry__sap_meta_is_nav(const json_t *meta, const char *set, const char *name);

/*
 * The instance's metadata as a new reference, loading it on first use:
 * config metadata_file when set; otherwise the host kv cache when younger
 * than metadata_max_age, else GET <root>$metadata (stored in the kv cache),
 * falling back to any cached copy when the fetch fails. *meta is NULL with
 * err filled when no metadata can be had; callers that can work without it
 * carry on (writes still drop the fixed deny-list).
 */
FERRY_SAP_NODISCARD int ferry__sap_meta_get(struct ferry_sap_instance *inst,
                                            struct ferry_call *call, json_t **meta,
                                            struct ferry_err *err);

#endif
