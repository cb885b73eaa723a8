/* SPDX-License-Identifier: MIT */
/*
 * Atom XML bodies of OData v2 (C4C's default format, still sent by some
 * tenants and proxies although ferry asks for JSON): feeds, entries and XML
 * error bodies, rewritten into the JSON verbose envelope the rest of the
 * connector reads, so that one code path handles both.
 */
#ifndef FERRY_SAP_SALES_ATOM_H
#define FERRY_SAP_SALES_ATOM_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ferry/plugin.h"

#include "sap_sales_odata.h"

/* Whether a body looks like XML (first non-blank byte '<'). */
bool ferry__sap_is_xml(const char *body, size_t len);

/*
 * Converts an Atom body into a new JSON document:
 *   <feed>  -> {"d": {"results": [...], "__count": "<m:count>", "__next": "<link rel=next>"}}
 *   <entry> -> {"d": {"results": {...}}}   (C4C's single-entity shape)
 *   <error> -> {"error": {"code": "...", "message": {"lang": "..", "value": "..."}}}
 * Entries become {"__metadata": {"uri", "type", "etag"}, <properties>...},
 * with m:null as null, Edm.Boolean as true/false, Edm.Int16/32/Byte as
 * integers, Edm.DateTime(Offset) as "/Date(ms)/" (as the JSON format has
 * them), everything else as the element text; deferred links as
 * {"__deferred": {"uri"}}, m:inline feeds/entries expanded.
 * FERRY_EPROTO when the XML is not one of these.
 */
FERRY_SAP_NODISCARD int ferry__sap_atom_to_json(const char *body, size_t len, json_t **doc,
                                                struct ferry_err *err);

#endif
