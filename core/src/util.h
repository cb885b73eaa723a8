/* SPDX-License-Identifier: MIT */
/*
 * Small shared helpers: content hashes, canonical JSON, clocks, strings.
 */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ferry/plugin.h" /* FERRY_PRINTF */

#define FERRY_SHA256_HEX_LEN 64

/* Lower-case hex SHA-256 of data into out (FERRY_SHA256_HEX_LEN + 1 bytes). */
void ferry_sha256_hex(const void *data, size_t len, char out[FERRY_SHA256_HEX_LEN + 1]);
/*
 * Canonical JSON text (sorted keys, compact), so that equal content always
 * hashes equally whatever order a mapping produced it in. Caller frees.
 */
char *ferry_json_canonical(const json_t *v);
/*
 * Compact JSON text of any value, byte for byte what json_dumps gives with
 * JSON_COMPACT | JSON_ENCODE_ANY (and JSON_SORT_KEYS when sort_keys), at a
 * fraction of its cost. Caller frees; NULL where json_dumps fails too.
 */
char *ferry_json_dumps(const json_t *v, bool sort_keys);

/* The escape jansson's dump writes for byte c ('"', '\\' and control
 * characters: the short form where there is one, else \u00XX in upper case),
 * into out; its length, or 0 when c is written as it is. */
size_t ferry_json_escape_byte(unsigned char c, char out[6]);
/*
 * ferry_json_dumps(v, false) where the value `at` inside v is written as
 * `text`, which the caller knows to be that value's compact text (a list
 * page's own bytes for a record, from ferry_json_loadb_items): the record
 * is not written twice. `text` must be an object's or array's text.
 */
char *ferry_json_dumps_with(const json_t *v, const json_t *at, const char *text, size_t len);
/* SHA-256 hex of the canonical text of v; returns 0 or FERRY_ENOMEM. */
int ferry_json_hash(const json_t *v, char out[FERRY_SHA256_HEX_LEN + 1]);

/* Wall clock, ms since the Unix epoch. */
int64_t ferry_now_ms(void);

/* strdup that accepts NULL (returns NULL). */
char *ferry_strdup(const char *s);
/* malloc'd "a/b" path join; b absolute -> copy of b. */
char *ferry_path_join(const char *a, const char *b);
/*
 * Parse an ISO 8601 date or UTC/offset timestamp ("2024-05-01",
 * "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123+02:00") into ms since the
 * epoch. Returns 0 or FERRY_EINVAL.
 */
int ferry_iso8601_parse(const char *text, int64_t *ms);
/*
 * Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm). Months 0 to 99 and days 0 to 99 give what the formula gives,
 * for callers that take a store's dates as they come.
 */
int64_t ferry_days_from_civil(int64_t y, int m, int d);
/* Exactly n digits at p, before end, as a number in *out; false when not. */
bool ferry_fixed_digits(const char *p, const char *end, int n, int *out);
/* Format ms since the epoch as "YYYY-MM-DDTHH:MM:SSZ" into out (at least 21 bytes). */
void ferry_iso8601_format(int64_t ms, char out[21]);

/* Text of a JSON scalar as a new string (strings as-is, integers in decimal); NULL otherwise. */
char *ferry_json_scalar_text(const json_t *v);

/*
 * snprintf and vsnprintf with the same output and return value, for the
 * text a job builds on every event (audit details, cache and dedupe keys).
 * %s, %.Ns, %.*s, %c, %d, %u, %ld, %lu, %lld, %llu, %zu and %% are done
 * here; a format with anything else (a width, a flag, a float) goes to
 * vsnprintf whole.
 */
int ferry_fmt(char *out, size_t size, const char *fmt, ...) FERRY_PRINTF(3, 4);
int ferry_vfmt(char *out, size_t size, const char *fmt, va_list ap) FERRY_PRINTF(3, 0);

/*
 * The next step of a dotted path ("billing_address.email", "lines.1.sku")
 * from *at on: its bytes (*step, *step_len) and, when it is all digits and
 * at most 18 of them (which always fit), *is_index and its value in
 * *index: the step that indexes an array. An empty step ("a..b") is
 * skipped. False at the end of the path.
 */
bool ferry_path_step(const char *path, size_t len, size_t *at, const char **step, size_t *step_len,
                     bool *is_index, uint64_t *index);

#endif
