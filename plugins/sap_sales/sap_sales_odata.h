/* SPDX-License-Identifier: MIT */
/*
 * The pure half of the SAP Sales Cloud connector: building c4codataapi URLs
 * and filters, Basic credentials, and reading OData v2 JSON envelopes and
 * error bodies. Nothing here does I/O, so every rule about the wire format
 * (facts sections 1, 4 and 6) can be tested without a host.
 */
#ifndef FERRY_SAP_SALES_ODATA_H
#define FERRY_SAP_SALES_ODATA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ferry/plugin.h"

#if defined(__GNUC__)
#define FERRY_SAP_NODISCARD __attribute__((warn_unused_result))
#else
#define FERRY_SAP_NODISCARD
#endif

/* Without a Retry-After header, a 429/503 still asks the host to back off this long. */
#define FERRY_SAP_DEFAULT_RETRY_MS 5000

/* How much of a non-JSON error body goes into an error message. */
#define FERRY_SAP_ERROR_TEXT_MAX 200

/*
 * Sets err->code, clears the retry hint and formats err->msg (truncated);
 * returns `code`. err may be NULL. The plugin cannot link the core's
 * ferry_err_set, hence its own.
 */
int ferry__sap_err_set(struct ferry_err *err, int code, const char *fmt, ...) FERRY_PRINTF(3, 4);

/* Case-insensitive substring search over the first `len` bytes of `hay`. */
bool ferry__sap_contains_ci(const char *hay, size_t len, const char *needle);

/*
 * Validates a configured service root (http:// or https:// and a host) and
 * returns a copy ending in exactly one '/': the service rejects paths
 * without it, and "//" would name another resource. Caller frees.
 * FERRY_ECONFIG when invalid, FERRY_ENOMEM.
 */
FERRY_SAP_NODISCARD int ferry__sap_root_normalise(const char *in, char **out,
                                                  struct ferry_err *err);

/* Standard base64 with padding of `len` bytes; caller frees; NULL on ENOMEM. */
FERRY_SAP_NODISCARD char *ferry__sap_base64(const unsigned char *data, size_t len);

/* "Basic " + base64(user ":" password); caller frees; NULL on ENOMEM. */
FERRY_SAP_NODISCARD char *ferry__sap_basic_auth(const char *user, const char *password);

/*
 * Percent-encodes everything but RFC 3986 unreserved characters, so that a
 * value can be dropped into a path segment or a query parameter alike.
 * Caller frees; NULL on ENOMEM.
 */
FERRY_SAP_NODISCARD char *ferry__sap_pct_encode(const char *s);

/*
 * An OData string literal body: single quotes doubled (OData v2 ABNF), then
 * percent-encoded. Caller frees; NULL on ENOMEM.
 */
FERRY_SAP_NODISCARD char *ferry__sap_literal_encode(const char *s);

/* Entity set and property names are identifiers; anything else would let a
 * mapping inject URL syntax. */
bool ferry__sap_is_name(const char *s);

/* "<root><object>('<id>')" plus `query` (e.g. "?$format=json", may be ""). Caller frees. */
FERRY_SAP_NODISCARD char *ferry__sap_entity_url(const char *root, const char *object,
                                                const char *id, const char *query);

/*
 * "<root><object>?$filter=<field> eq '<value>'&$format=json&$top=<top>" with
 * the filter percent-encoded. Caller frees; NULL on ENOMEM.
 */
FERRY_SAP_NODISCARD char *ferry__sap_lookup_url(const char *root, const char *object,
                                                const char *field, const char *value, int top);

/*
 * "<root><object>?$filter=<conditions>&$format=json&$top=<top>" for `where`,
 * an object of property -> string (eq) or array of strings (or, on that
 * property only, as SAP allows); conditions joined with and. Property names
 * are the caller's to check. Caller frees; NULL when out of memory or `where`
 * is empty.
 */
FERRY_SAP_NODISCARD char *ferry__sap_where_url(const char *root, const char *object,
                                               const json_t *where, int top);

/*
 * One entity from a read or create response. c4codataapi wraps single
 * entities as {"d":{"results":{...}}}, standard v2 as {"d":{...}}; both are
 * accepted. *entity is a new reference. FERRY_EPROTO when neither shape.
 */
FERRY_SAP_NODISCARD int ferry__sap_parse_entity(const char *body, size_t len, json_t **entity,
                                                struct ferry_err *err);

/*
 * A collection response {"d":{"results":[...], "__next": "...", "__count": "..."}}.
 * *results is a new reference to the array; *next (may be NULL to ignore) a
 * copy of __next or NULL, caller frees. Every entry must be an object with a
 * string ObjectID. FERRY_EPROTO otherwise.
 */
FERRY_SAP_NODISCARD int ferry__sap_parse_collection(const char *body, size_t len, json_t **results,
                                                    char **next, struct ferry_err *err);

/*
 * A response body as a JSON document: JSON as is, Atom XML (feed, entry,
 * error) through ferry__sap_atom_to_json. New reference or NULL with err
 * set (FERRY_EPROTO).
 */
json_t *ferry__sap_load_body(const char *body, size_t len, struct ferry_err *err);

/* "YYYY-MM-DDTHH:MM:SS[.f...][Z|+hh:mm|-hh:mm]" (no zone = UTC) to ms since the epoch. */
FERRY_SAP_NODISCARD int ferry__sap_iso_to_ms(const char *s, int64_t *ms);

/* ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" (fixed width, so strings sort by time). */
void ferry__sap_ms_to_iso(int64_t ms, char out[32]);

/* "/Date(<ms>)/" or "/Date(<ms>+<minutes>)/" (the offset is informational) to ms. */
FERRY_SAP_NODISCARD int ferry__sap_odata_date_ms(const char *s, int64_t *ms);

/* Whether s is a plausible ISO 8601 timestamp (safe to put inside datetimeoffset'...'). */
bool ferry__sap_is_iso(const char *s);

/*
 * The key of the entity a `location` header names, as in
 * ".../ContactCollection('00163E...')" (facts section 3: a 201 carries it):
 * the last quoted literal in parentheses, percent-decoded, with doubled
 * quotes undone. New string, caller frees; NULL when the header has no such
 * key (composite keys, unquoted keys) or on ENOMEM: the caller then falls
 * back to the response body.
 */
FERRY_SAP_NODISCARD char *ferry__sap_location_key(const char *location);

/* __metadata.etag of an entity, borrowed, or NULL. */
const char *ferry__sap_entity_etag(const json_t *entity);

/*
 * The human-readable part of an error body into `out`: error.message.value
 * (or error.message when it is a plain string) from JSON; otherwise the first
 * FERRY_SAP_ERROR_TEXT_MAX bytes of the text with control characters blanked.
 * Always NUL-terminates; "" for an empty body.
 */
void ferry__sap_error_text(const char *body, size_t len, char *out, size_t outlen);

/*
 * Maps a non-success response to a FERRY_E* code and fills err (facts
 * section 6). `what` names the operation for the message (e.g. "POST
 * ContactCollection"); `retry_after` is the Retry-After header or NULL.
 */
int ferry__sap_status_error(long status, const char *body, size_t len, const char *retry_after,
                            const char *what, struct ferry_err *err);

/*
 * Whether a 403 is the CSRF protection rather than missing authorisation:
 * the `x-csrf-token: Required` answer of the SAP gateway, or a body saying so.
 */
bool ferry__sap_is_csrf_failure(long status, const char *csrf_header, const char *body, size_t len);

#endif
