/* SPDX-License-Identifier: MIT */
/*
 * A JSON reader that builds the very tree json_loadb builds, for a fraction
 * of its cost. jansson's lexer reads one byte per function call through its
 * stream and copies every string twice; connectors parse every list page and
 * every response body with it, which made it the largest single cost of a
 * synced record (issue 7). This reader scans the text in place and calls
 * jansson only to make the values. Whatever it is not certain to read exactly
 * as jansson does (any error, unusual flags, an unusual number) it hands to
 * json_loadb, so results and error reports never differ from jansson's.
 */
#ifndef FERRY_JSON_READ_H
#define FERRY_JSON_READ_H

#include <stddef.h>

#include <jansson.h>

/*
 * The contract of json_loadb(buf, len, flags, error): a new reference, or
 * NULL with *error (may be NULL) filled by jansson itself. buf is borrowed and
 * need not be NUL-terminated. Thread-safe: no state is shared between calls.
 */
json_t *ferry_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error);

/*
 * ferry_json_loadb, and for a top-level object whose member `member` is an
 * array (a list page's records), *texts: a new array with each element's
 * text exactly as ferry_json_dumps(element, false) writes it, taken from the
 * element's own bytes in buf with the whitespace left out and the strings
 * escaped as jansson escapes them. A connector that hands such an element on
 * unchanged can hand its text on too, and nobody has to write it again.
 * *texts is NULL when there is no such member, or the text went to jansson.
 */
json_t *ferry_json_loadb_items(const char *buf, size_t len, size_t flags, const char *member,
                               json_t **texts, json_error_t *error);

#endif
