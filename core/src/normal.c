/* SPDX-License-Identifier: MIT */
/*
 * Normal forms of mapped values (see normal.h). Each Lua function returns
 * nil for a value that has no normal form rather than raising: a record
 * with a blank or odd field is ordinary, and the mapping decides what a
 * missing value means.
 */
#include "normal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "ferry/text.h"
#include "util.h"

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* What Lua's %s matches in the C locale (mappings were written against it). */
static bool is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool is_alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

const char *ferry_normal_trim(const char *s, size_t len, size_t *out_len)
{
    size_t i = 0, j = len;
    while (i < j && (unsigned char)s[i] <= 32) {
        i++;
    }
    while (j > i && (unsigned char)s[j - 1] <= 32) {
        j--;
    }
    *out_len = j - i;
    return i < j ? s + i : NULL;
}

bool ferry_normal_decimal(const char *s, size_t len, char *out, size_t *out_len)
{
    size_t i = 0, n = 0;
    while (i < len && is_space((unsigned char)s[i])) {
        i++;
    }
    if (i < len && s[i] == '-') {
        out[n++] = '-';
        i++;
    }
    size_t int_start = i;
    while (i < len && is_digit((unsigned char)s[i])) {
        out[n++] = s[i++];
    }
    if (i == int_start) {
        return false;
    }
    if (i < len && s[i] == '.') {
        i++;
    }
    size_t frac_start = i;
    while (i < len && is_digit((unsigned char)s[i])) {
        i++;
    }
    size_t frac_len = i - frac_start;
    while (i < len && is_space((unsigned char)s[i])) {
        i++;
    }
    if (i != len) {
        return false;
    }
    /* Zeros past the second decimal carry nothing; up to two are padded. */
    while (frac_len > 2 && s[frac_start + frac_len - 1] == '0') {
        frac_len--;
    }
    out[n++] = '.';
    memcpy(out + n, s + frac_start, frac_len);
    n += frac_len;
    for (; frac_len < 2; frac_len++) {
        out[n++] = '0';
    }
    *out_len = n;
    return true;
}

/* An offset as "", "Z", "z", "+hh:mm" or "+hhmm" (also '-'), in seconds. */
static bool offset_seconds(const char *p, const char *end, int64_t *off)
{
    if (p == end || (end - p == 1 && (*p == 'Z' || *p == 'z'))) {
        *off = 0;
        return true;
    }
    int hh, mm;
    if (*p != '+' && *p != '-') {
        return false;
    }
    const char *q = p + 1;
    if (!ferry_fixed_digits(q, end, 2, &hh)) {
        return false;
    }
    q += 2;
    if (q < end && *q == ':') {
        q++;
    }
    if (!ferry_fixed_digits(q, end, 2, &mm) || q + 2 != end) {
        return false;
    }
    int64_t s = (int64_t)hh * 3600 + (int64_t)mm * 60;
    *off = *p == '+' ? s : -s;
    return true;
}

/* "YYYY-MM-DD[T ]hh:mm[[:]ss][.fraction][offset]". */
static bool iso_time(const char *p, const char *end, int64_t *t)
{
    int y, mo, d, h, mi;
    if (!ferry_fixed_digits(p, end, 4, &y) || end - p < 16 || p[4] != '-' ||
        !ferry_fixed_digits(p + 5, end, 2, &mo) || p[7] != '-' ||
        !ferry_fixed_digits(p + 8, end, 2, &d) || (p[10] != 'T' && p[10] != ' ') ||
        !ferry_fixed_digits(p + 11, end, 2, &h) || p[13] != ':' ||
        !ferry_fixed_digits(p + 14, end, 2, &mi)) {
        return false;
    }
    p += 16;
    if (p < end && *p == ':') {
        p++;
    }
    /* Seconds are optional; more than nine digits of them is not a time. */
    int64_t sec = 0;
    int sec_digits = 0;
    for (; p < end && is_digit((unsigned char)*p); p++, sec_digits++) {
        sec = sec * 10 + (*p - '0');
        if (sec_digits == 9) {
            return false;
        }
    }
    if (p + 1 < end && *p == '.' && is_digit((unsigned char)p[1])) {
        for (p++; p < end && is_digit((unsigned char)*p); p++) {
        }
    }
    int64_t off;
    if (!offset_seconds(p, end, &off)) {
        return false;
    }
    *t = ferry_days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - off;
    return true;
}

static const char MONTHS[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* "[Day][,] D[D] Mon YYYY hh:mm:ss +hhmm" (the weekday is not checked). */
static bool rfc2822_time(const char *p, const char *end, int64_t *t)
{
    while (p < end && is_alpha((unsigned char)*p)) {
        p++;
    }
    if (p < end && *p == ',') {
        p++;
    }
    while (p < end && *p == ' ') {
        p++;
    }
    int d, y, h, mi, s, month = 0;
    if (p < end && is_digit((unsigned char)*p)) {
        d = *p++ - '0';
        if (p < end && is_digit((unsigned char)*p)) {
            d = d * 10 + (*p++ - '0');
        }
    } else {
        return false;
    }
    if (end - p < 5 || *p != ' ' || p[4] != ' ') {
        return false;
    }
    while (month < 12 && memcmp(p + 1, MONTHS[month], 3) != 0) {
        month++;
    }
    if (month == 12) {
        return false;
    }
    p += 5;
    if (!ferry_fixed_digits(p, end, 4, &y) || end - p < 13 || p[4] != ' ' ||
        !ferry_fixed_digits(p + 5, end, 2, &h) || p[7] != ':' ||
        !ferry_fixed_digits(p + 8, end, 2, &mi) || p[10] != ':' ||
        !ferry_fixed_digits(p + 11, end, 2, &s)) {
        return false;
    }
    p += 13;
    while (p < end && *p == ' ') {
        p++;
    }
    int64_t off;
    if (end - p != 5 || (*p != '+' && *p != '-') || !offset_seconds(p, end, &off)) {
        return false;
    }
    *t = ferry_days_from_civil(y, month + 1, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + s -
         off;
    return true;
}

bool ferry_normal_time(const char *s, size_t len, int64_t *t)
{
    const char *end = s + len;
    /* Only an ISO date starts with a digit, and an RFC 2822 date (every v2
     * order) usually does not: it goes to its own form at once. */
    if (len > 0 && is_digit((unsigned char)s[0]) && iso_time(s, end, t)) {
        return true;
    }
    return rfc2822_time(s, end, t);
}

/* a / b rounded down, for b > 0 (C's division rounds toward zero). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return a % b < 0 ? q - 1 : q;
}

size_t ferry_normal_iso(int64_t t, char out[FERRY_NORMAL_ISO_MAX])
{
    /* Not t - days * 86400: near INT64_MIN that product overflows. */
    int64_t days = floor_div(t, 86400), secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
    }
    /* The inverse of ferry_days_from_civil (H. Hinnant's algorithm). */
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    if (y >= 0 && y <= 9999) {
        /* Every store date: written by hand, as snprintf was most of this function's cost. */
        const int64_t parts[] = {m, d, secs / 3600, secs % 3600 / 60, secs % 60};
        static const char seps[] = "--T::";
        char *p = out;
        *p++ = (char)('0' + y / 1000);
        *p++ = (char)('0' + y / 100 % 10);
        *p++ = (char)('0' + y / 10 % 10);
        *p++ = (char)('0' + y % 10);
        for (int i = 0; i < 5; i++) {
            *p++ = seps[i];
            *p++ = (char)('0' + parts[i] / 10);
            *p++ = (char)('0' + parts[i] % 10);
        }
        *p++ = 'Z';
        *p = '\0';
        return (size_t)(p - out);
    }
    int n = snprintf(out, FERRY_NORMAL_ISO_MAX,
                     "%04" PRId64 "-%02" PRId64 "-%02" PRId64 "T%02" PRId64 ":%02" PRId64
                     ":%02" PRId64 "Z",
                     y, m, d, secs / 3600, secs % 3600 / 60, secs % 60);
    return n > 0 ? (size_t)n : 0;
}

bool ferry_normal_utf8_len(const char *s, size_t len, size_t *chars)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    size_t n = 0;
    while (p < end) {
        unsigned c = *p;
        size_t need;
        uint32_t cp, min;
        if (c < 0x80) {
            p++;
            n++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= need) {
            return false;
        }
        for (size_t k = 1; k <= need; k++) {
            if ((p[k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        p += need + 1;
        n++;
    }
    *chars = n;
    return true;
}

/* ---------------------------------------------------------------------------
 * The Lua functions. */

size_t ferry_normal_int_text(int64_t i, char out[FERRY_NORMAL_INT_MAX])
{
    char digits[FERRY_DIGITS_MAX];
    size_t n = ferry_digits(digits, i < 0 ? 0u - (uint64_t)i : (uint64_t)i);
    size_t k = 0;
    if (i < 0) {
        out[k++] = '-';
    }
    memcpy(out + k, digits + FERRY_DIGITS_MAX - n, n);
    return k + n;
}

/* [-0, +1, m] an integer's text without snprintf: ids are written so for nearly every record. */
static void push_integer_text(lua_State *L, lua_Integer i)
{
    char buf[FERRY_NORMAL_INT_MAX];
    lua_pushlstring(L, buf, ferry_normal_int_text((int64_t)i, buf));
}

void ferry__lua_push_text(lua_State *L, int idx)
{
    size_t len, out_len;
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            push_integer_text(L, lua_tointeger(L, idx));
        } else {
            /* A copy becomes the string, not the value; a float's text has
             * nothing to trim. */
            lua_pushvalue(L, idx);
            lua_tolstring(L, -1, NULL);
        }
        return;
    default:
        lua_pushnil(L);
        return;
    }
    const char *s = lua_tolstring(L, idx, &len);
    const char *t = ferry_normal_trim(s, len, &out_len);
    if (t == NULL) {
        lua_pushnil(L);
    } else if (out_len == len) {
        lua_pushvalue(L, idx); /* nothing trimmed: the very string */
    } else {
        lua_pushlstring(L, t, out_len);
    }
}

/* ferry.text(v): trimmed text, numbers as Lua writes them, nil when blank. */
static int l_text(lua_State *L)
{
    ferry__lua_push_text(L, 1);
    return 1;
}

void ferry__lua_push_decimal(lua_State *L, int idx)
{
    char num[512];
    const char *s;
    size_t len;
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TNUMBER) {
        if (lua_isinteger(L, idx)) {
            lua_pushfstring(L, "%I.00", (LUAI_UACINT)lua_tointeger(L, idx));
            return;
        }
        lua_Number v = lua_tonumber(L, idx);
        if (!isfinite(v)) {
            lua_pushnil(L);
            return;
        }
        /* Four decimals, as the store writes amounts; any double fits. */
        int n = snprintf(num, sizeof(num), "%.4f", (double)v);
        s = num;
        len = n > 0 && (size_t)n < sizeof(num) ? (size_t)n : 0;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        s = lua_tolstring(L, idx, &len);
    } else {
        lua_pushnil(L);
        return;
    }
    luaL_Buffer b;
    size_t out_len;
    char *out = luaL_buffinitsize(L, &b, len + 4);
    if (ferry_normal_decimal(s, len, out, &out_len)) {
        luaL_pushresultsize(&b, out_len);
    } else {
        luaL_pushresultsize(&b, 0);
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

/* ferry.decimal(v): "370.9500" -> "370.95", 98.0 -> "98.00"; nil if not a number. */
static int l_decimal(lua_State *L)
{
    ferry__lua_push_decimal(L, 1);
    return 1;
}

void ferry__lua_push_quantity(lua_State *L, int idx)
{
    ferry__lua_push_decimal(L, idx);
    size_t len;
    const char *d = lua_tolstring(L, -1, &len);
    /* A decimal keeps exactly ".00" when it is whole. */
    if (d != NULL && len >= 3 && memcmp(d + len - 3, ".00", 3) == 0) {
        lua_pushlstring(L, d, len - 3);
        lua_remove(L, -2);
    }
}

/* ferry.quantity(v): "2" for whole numbers, a decimal string otherwise. */
static int l_quantity(lua_State *L)
{
    ferry__lua_push_quantity(L, 1);
    return 1;
}

void ferry__lua_push_id(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TNUMBER && !lua_isinteger(L, idx)) {
        lua_Number f = lua_tonumber(L, idx);
        lua_Integer i;
        if (f == floor(f)) {
            /* Integral but past the integers (1e300, infinity): no id. */
            if (!lua_numbertointeger(f, &i)) {
                lua_pushnil(L);
                return;
            }
            push_integer_text(L, i);
            return;
        }
    }
    ferry__lua_push_text(L, idx);
}

/* ferry.id(v): an identifier as text ("250", never "250.0"), trimmed; nil when blank. */
static int l_id(lua_State *L)
{
    ferry__lua_push_id(L, 1);
    return 1;
}

/* ferry.time(v): Unix seconds of a timestamp (see normal.h), numbers as they are. */
static int l_time(lua_State *L)
{
    switch (lua_type(L, 1)) {
    case LUA_TNUMBER: {
        if (lua_isinteger(L, 1)) {
            lua_settop(L, 1);
            return 1;
        }
        lua_Number f = floor(lua_tonumber(L, 1));
        lua_Integer i;
        if (lua_numbertointeger(f, &i)) {
            lua_pushinteger(L, i);
        } else {
            lua_pushnumber(L, f);
        }
        return 1;
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        size_t k = 0;
        while (k < len && is_digit((unsigned char)s[k])) {
            k++;
        }
        /* Unix seconds as text: Lua's own conversion, a float when too big. */
        if (len > 0 && k == len && lua_stringtonumber(L, s) != 0) {
            return 1;
        }
        int64_t t;
        if (ferry_normal_time(s, len, &t)) {
            lua_pushinteger(L, (lua_Integer)t);
        } else {
            lua_pushnil(L);
        }
        return 1;
    }
    default:
        lua_pushnil(L);
        return 1;
    }
}

/* ferry.iso(t): "2024-03-07T10:12:44Z" of Unix seconds; nil for nil. */
static int l_iso(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    int ok;
    lua_Integer t = lua_tointegerx(L, 1, &ok);
    if (!ok) {
        return luaL_error(L, "ferry.iso: expected Unix seconds (an integer), got %s",
                          lua_isnumber(L, 1) ? "a fraction" : luaL_typename(L, 1));
    }
    char out[FERRY_NORMAL_ISO_MAX];
    size_t n = ferry_normal_iso((int64_t)t, out);
    lua_pushlstring(L, out, n);
    return 1;
}

/*
 * ferry.cut(s, n): at most n characters of s, the last one an ellipsis when
 * cut (the kept part trimmed first). Text that is not valid UTF-8 is cut at
 * n bytes instead, with no ellipsis, as there are no characters to count.
 */
const char *ferry_normal_cut(const char *s, size_t len, size_t n, size_t *out_len, bool *ellipsis)
{
    size_t chars;
    *ellipsis = false;
    if (!ferry_normal_utf8_len(s, len, &chars)) {
        *out_len = len <= n ? len : n;
        return s;
    }
    if (chars <= n) {
        *out_len = len;
        return s;
    }
    /* The first n - 1 characters end where the n-th begins. */
    size_t at = 0;
    for (size_t k = 1; k < n; k++) {
        at++;
        while (at < len && ((unsigned char)s[at] & 0xC0) == 0x80) {
            at++;
        }
    }
    *ellipsis = true;
    return ferry_normal_trim(s, at, out_len);
}

void ferry__lua_push_cut(lua_State *L, int idx, lua_Integer n)
{
    size_t len, keep;
    bool ellipsis;
    const char *s = lua_tolstring(L, idx, &len);
    idx = lua_absindex(L, idx);
    const char *head = ferry_normal_cut(s, len, (size_t)n, &keep, &ellipsis);
    if (!ellipsis && keep == len) {
        lua_pushvalue(L, idx);
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (head != NULL) {
        luaL_addlstring(&b, head, keep);
    }
    if (ellipsis) {
        luaL_addstring(&b, FERRY_NORMAL_ELLIPSIS);
    }
    luaL_pushresult(&b);
}

static int l_cut(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    luaL_checkstring(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 1, 2, "at least one character");
    ferry__lua_push_cut(L, 1, n);
    return 1;
}

void ferry__lua_normal_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"text", l_text}, {"decimal", l_decimal}, {"quantity", l_quantity},
        {"time", l_time}, {"iso", l_iso},         {"cut", l_cut},
        {"id", l_id},     {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}
