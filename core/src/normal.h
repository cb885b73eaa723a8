/* SPDX-License-Identifier: MIT */
/*
 * Normal forms of the values mappings write: trimmed text, decimal strings,
 * timestamps as Unix seconds and back as ISO 8601 UTC, text cut to a length
 * in characters. Mappings call these for nearly every field of every record;
 * written in Lua they were about a quarter of an order's mapping cost, so
 * the host provides them (ferry.text, ferry.decimal, ...; docs/mappings.md).
 *
 * The C functions below are what the Lua ones are made of, so that they can
 * be tested (and used) without a Lua state.
 */
#ifndef FERRY_NORMAL_H
#define FERRY_NORMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* Longest ferry_normal_iso text, with its NUL (a year of up to 19 digits). */
#define FERRY_NORMAL_ISO_MAX 48

/*
 * s without the bytes <= 32 at either end (spaces, tabs, line ends: what
 * shoppers type around everything); NULL when nothing is left.
 */
const char *ferry_normal_trim(const char *s, size_t len, size_t *out_len);

/*
 * A decimal string in the form targets take for amounts: at least two
 * decimals, trailing zeros beyond them dropped ("370.9500" -> "370.95",
 * "12" -> "12.00", " -3.000 " -> "-3.00"). Spaces around, a leading '-'
 * and a '.' with or without decimals are accepted, nothing else (no '+',
 * no exponent). out needs len + 4 bytes; false when s is not such a number.
 */
bool ferry_normal_decimal(const char *s, size_t len, char *out, size_t *out_len);

/*
 * Unix seconds of a timestamp in one of the forms stores send: ISO 8601 /
 * RFC 3339 ("2024-06-04T09:12:40Z", "2024-06-04 10:12:40.123+01:00", no
 * offset meaning UTC) or RFC 2822 ("Tue, 04 Jun 2024 09:12:40 +0000").
 * Plain digits (Unix seconds as text) are the caller's (they may not fit).
 * Fields are not range-checked, as a store's own dates are not wrong.
 */
bool ferry_normal_time(const char *s, size_t len, int64_t *t);

/* "YYYY-MM-DDTHH:MM:SSZ" of Unix seconds into out; its length. */
size_t ferry_normal_iso(int64_t t, char out[FERRY_NORMAL_ISO_MAX]);

/* Longest ferry_normal_int_text, "-9223372036854775808" (no NUL is written). */
#define FERRY_NORMAL_INT_MAX 20

/* An integer's text as Lua's "%d" writes it, into out; its length. */
size_t ferry_normal_int_text(int64_t i, char out[FERRY_NORMAL_INT_MAX]);

/* What ferry.cut appends to text it shortened: U+2026, the ellipsis. */
#define FERRY_NORMAL_ELLIPSIS "\xE2\x80\xA6"

/*
 * ferry.cut's work: of s, the part to keep (*out_len bytes from the
 * returned pointer, which is NULL for none) and whether an ellipsis follows
 * it. Valid UTF-8 longer than n characters keeps its first n - 1, trimmed,
 * and the ellipsis makes n; other text is cut at n bytes, with no ellipsis.
 */
const char *ferry_normal_cut(const char *s, size_t len, size_t n, size_t *out_len, bool *ellipsis);

/* Number of characters of s when it is valid UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF), else false. */
bool ferry_normal_utf8_len(const char *s, size_t len, size_t *chars);

/*
 * [-0, +0, e] adds text, decimal, quantity, time, iso, cut and id to the
 * table at the top of the stack (the `ferry` table mappings see).
 */
void ferry__lua_normal_register(lua_State *L);

/*
 * [-0, +1, m] the normal form of the value at idx, or nil: what ferry.text,
 * ferry.decimal, ferry.quantity and ferry.id return for it. For the host's
 * own evaluation of declared fields (rows.c), which has the value on the
 * stack already and should not pay for a Lua call.
 */
void ferry__lua_push_text(lua_State *L, int idx);
void ferry__lua_push_decimal(lua_State *L, int idx);
void ferry__lua_push_quantity(lua_State *L, int idx);
void ferry__lua_push_id(lua_State *L, int idx);
/* [-0, +1, m] ferry.cut(s, n) of the string at idx (n >= 1). */
void ferry__lua_push_cut(lua_State *L, int idx, lua_Integer n);

#endif
