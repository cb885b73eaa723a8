/* SPDX-License-Identifier: MIT */
/*
 * OData v2 $batch for c4codataapi (facts section 5): building a
 * multipart/mixed request with one changeset per business object, so that
 * one bad record never rolls back another, and reading the response, where
 * the envelope's 202 says nothing: every part carries its own HTTP status,
 * and a changeset may come back as its own nested multipart or as a single
 * error response standing for all of it.
 */
#ifndef FERRY_SAP_SALES_BATCH_H
#define FERRY_SAP_SALES_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ferry/plugin.h"

#include "sap_sales_odata.h"

struct ferry_sap_instance;

struct ferry_sap_batch_op {
    const char *method;       /* "POST", "PATCH" (in a changeset) or "GET" (outside) */
    const char *path;         /* relative to the service root, e.g. "ContactCollection('…')" */
    const char *if_match;     /* may be NULL */
    const char *body;         /* JSON text; NULL for GET */
    size_t group;             /* ops with the same group share a changeset (one business object) */
    bool no_response_payload; /* POST: odata-no-response-payload, answered by headers alone */
};

/*
 * The request body for `ops` (consecutive ops of the same group form one
 * changeset; GETs stand alone) with `boundary` as the batch boundary and
 * "<boundary>_cs<n>" for changesets. CRLF line ends throughout; a blank
 * line after every header block; Content-ID is the op's 1-based index.
 * New string, *len its length; NULL on ENOMEM.
 */
FERRY_SAP_NODISCARD char *ferry__sap_batch_build(const char *boundary,
                                                 const struct ferry_sap_batch_op *ops, size_t nops,
                                                 size_t *len);

/*
 * Parses a $batch response body given its Content-Type header (for the
 boundary). *parts is a new array with one item per top-level part, in order:
 *   {"status": 201, "headers": {<lower-case name>: value}, "body": "<text>"}
 * or, for a changeset answered as a nested multipart,
 *   {"changeset": [<responses as above>]}.
 * LF or CRLF line ends are both accepted. FERRY_EPROTO when the body is not a
 * multipart with that boundary or a part has no HTTP status line.
 */
FERRY_SAP_NODISCARD int ferry__sap_batch_parse(const char *content_type, const char *body,
                                               size_t len, json_t **parts, struct ferry_err *err);

/*
 * Matches parsed parts to the ops that produced them. *results is a new
 * array, one element per op:
 *   {"ok": true, "status": 201, "id": "..." | null, "etag": "..." | null, "body": {...} | null}
 * id comes from the part's location header and etag from its etag header;
 * the part's body is parsed (and returned as "body") only when one of them
 * is missing.
 *   {"ok": false, "status": 400, "code": FERRY_E..., "error": "<SAP's message>"}
 * A changeset answered by a single error response fails every op of its
 * group with that error. Ops without any answer fail with FERRY_EPROTO.
 */
FERRY_SAP_NODISCARD int ferry__sap_batch_match(const struct ferry_sap_batch_op *ops, size_t nops,
                                               const json_t *parts, json_t **results,
                                               struct ferry_err *err);

/*
 * Bulk writes through one $batch request, one changeset per write, with
 * the same field rules as the connector's write (read-only and approval
 * fields dropped). *results as ferry__sap_batch_match. Not reachable from
 * the host yet: the ABI has no bulk-write member.
 */
FERRY_SAP_NODISCARD int ferry__sap_write_batch(struct ferry_sap_instance *inst,
                                               struct ferry_call *call,
                                               const struct ferry_write *writes, size_t n,
                                               json_t **results, struct ferry_err *err);

#endif
