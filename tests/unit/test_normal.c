/* SPDX-License-Identifier: MIT */
/*
 * Normal-form tests: the C forms on known values, and the Lua functions
 * against the Lua helpers they replace (kept here as the reference) on
 * generated values, so that a mapping gets the same fields either way.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "normal.h"

static void assert_decimal(const char *in, const char *want)
{
    char out[64];
    size_t n;
    bool ok = ferry_normal_decimal(in, strlen(in), out, &n);
    if (want == NULL) {
        assert_false(ok);
        return;
    }
    assert_true(ok);
    assert_true(n + 1 <= strlen(in) + 4);
    out[n] = '\0';
    assert_string_equal(out, want);
}

static void test_normal_decimal_forms(void **state)
{
    (void)state;
    assert_decimal("370.9500", "370.95");
    assert_decimal("12", "12.00");
    assert_decimal(" -3.000 ", "-3.00");
    assert_decimal("0.0010", "0.001");
    assert_decimal("2.", "2.00");
    assert_decimal("1.5", "1.50");
    assert_decimal("\t7\n", "7.00");
    assert_decimal("", NULL);
    assert_decimal("-", NULL);
    assert_decimal(".5", NULL);
    assert_decimal("+5", NULL);
    assert_decimal("1e5", NULL);
    assert_decimal("1.2.3", NULL);
    assert_decimal("1 2", NULL);
}

static void assert_time(const char *in, int64_t want, bool ok)
{
    int64_t t = -1;
    assert_int_equal(ferry_normal_time(in, strlen(in), &t), ok);
    if (ok) {
        assert_int_equal(t, want);
    }
}

static void test_normal_time_forms(void **state)
{
    (void)state;
    const int64_t t = 1717492360; /* 2024-06-04T09:12:40Z */
    assert_time("Tue, 04 Jun 2024 09:12:40 +0000", t, true);
    assert_time("04 Jun 2024 11:12:40 +0200", t, true);
    assert_time("4 Jun 2024 09:12:40 +0000", t, true);
    assert_time("2024-06-04T09:12:40Z", t, true);
    assert_time("2024-06-04 10:12:40.123+01:00", t, true);
    assert_time("2024-06-04T04:12:40-0500", t, true);
    assert_time("2024-06-04T09:12:40", t, true);
    assert_time("2024-06-04T09:12Z", t - 40, true);
    assert_time("1969-12-31T23:59:59Z", -1, true);
    assert_time("Tue, 04 Foo 2024 09:12:40 +0000", 0, false);
    assert_time("2024-06-04T09:12:40 CET", 0, false);
    assert_time("2024-06-04T09:12:40.Z", 0, false);
    assert_time("2024-06-04", 0, false);
    assert_time("yesterday", 0, false);
    assert_time("", 0, false);
    assert_time("2024-06-04T09:12:4012345678901Z", 0, false);
}

static void test_normal_iso_round_trip(void **state)
{
    (void)state;
    char out[FERRY_NORMAL_ISO_MAX];
    assert_int_equal(ferry_normal_iso(1717492360, out), 20);
    assert_string_equal(out, "2024-06-04T09:12:40Z");
    ferry_normal_iso(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59Z");
    ferry_normal_iso(951782400, out); /* a leap day */
    assert_string_equal(out, "2000-02-29T00:00:00Z");
    /* Every day of four centuries comes back as itself. */
    for (int64_t day = -146097; day < 146097 * 3; day += 7) {
        int64_t t = day * 86400 + 45296, back;
        size_t n = ferry_normal_iso(t, out);
        assert_true(ferry_normal_time(out, n, &back));
        assert_int_equal(back, t);
    }
}

static void test_normal_trim_and_utf8(void **state)
{
    (void)state;
    size_t n;
    const char *s = ferry_normal_trim("  ab c\t\n", 8, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(s, "ab c", 4);
    assert_null(ferry_normal_trim(" \t ", 3, &n));
    assert_null(ferry_normal_trim("", 0, &n));
    assert_true(ferry_normal_utf8_len("a\xC3\xA9\xE2\x80\xA6\xF0\x9F\x98\x80", 10, &n));
    assert_int_equal(n, 4);
    assert_false(ferry_normal_utf8_len("\xC0\xAF", 2, &n));         /* overlong '/' */
    assert_false(ferry_normal_utf8_len("\xED\xA0\x80", 3, &n));     /* a surrogate */
    assert_false(ferry_normal_utf8_len("\xF4\x90\x80\x80", 4, &n)); /* past U+10FFFF */
    assert_false(ferry_normal_utf8_len("\xE2\x80", 2, &n));         /* cut short */
    assert_false(ferry_normal_utf8_len("\x80", 1, &n));
}

/*
 * The Lua helpers the C functions replace, as they were (ferry.commerce before
 * the host took them over). One difference is written in: more than nine
 * digits of seconds is not a time.
 */
static const char REFERENCE[] =
    "local byte, sub, format, math_type = string.byte, string.sub, string.format, math.type\n"
    "local R = {}\n"
    "function R.text(v)\n"
    "  local t = type(v)\n"
    "  if t == 'number' then v = math_type(v) == 'integer' and format('%d', v) or tostring(v)\n"
    "  elseif t ~= 'string' then return nil end\n"
    "  local n = #v; local i, j = 1, n\n"
    "  while i <= j and byte(v, i) <= 32 do i = i + 1 end\n"
    "  while j >= i and byte(v, j) <= 32 do j = j - 1 end\n"
    "  if i > j then return nil end\n"
    "  return sub(v, i, j)\n"
    "end\n"
    "function R.id(v)\n"
    "  local mt = math_type(v)\n"
    "  if mt == 'float' and v == math.floor(v) then v = math.tointeger(v); mt = math_type(v) end\n"
    "  if mt == 'integer' then return format('%d', v) end\n"
    "  return R.text(v)\n"
    "end\n"
    "function R.cut(s, n)\n"
    "  if s == nil then return nil end\n"
    "  local len = utf8.len(s)\n"
    "  if len == nil then return #s <= n and s or s:sub(1, n) end\n"
    "  if len <= n then return s end\n"
    "  local head = s:sub(1, utf8.offset(s, n) - 1)\n"
    "  return (R.text(head) or '') .. '\\u{2026}'\n"
    "end\n"
    "local PAD = { [0] = '00', [1] = '0' }\n"
    "local function trim_decimals(int, frac)\n"
    "  local n = #frac\n"
    "  if n < 2 then return int .. '.' .. frac .. PAD[n] end\n"
    "  local j = n\n"
    "  while j > 2 and byte(frac, j) == 48 do j = j - 1 end\n"
    "  return int .. '.' .. sub(frac, 1, j)\n"
    "end\n"
    "function R.decimal(v)\n"
    "  if type(v) == 'number' then\n"
    "    if math_type(v) == 'integer' then return format('%d.00', v) end\n"
    "    if v ~= v or v == math.huge or v == -math.huge then return nil end\n"
    "    v = format('%.4f', v)\n"
    "  end\n"
    "  if type(v) ~= 'string' then return nil end\n"
    "  local sign, int, frac = v:match('^%s*(%-?)(%d+)%.?(%d*)%s*$')\n"
    "  if not int then return nil end\n"
    "  return trim_decimals(sign .. int, frac)\n"
    "end\n"
    "function R.quantity(v)\n"
    "  local d = R.decimal(v)\n"
    "  if d == nil then return nil end\n"
    "  if sub(d, -3) == '.00' then return sub(d, 1, -4) end\n"
    "  return d\n"
    "end\n"
    "local function days_from_civil(y, m, d)\n"
    "  if m <= 2 then y = y - 1 end\n"
    "  local era = y // 400; local yoe = y - era * 400\n"
    "  local mp = m > 2 and m - 3 or m + 9\n"
    "  local doy = (153 * mp + 2) // 5 + d - 1\n"
    "  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy\n"
    "  return era * 146097 + doe - 719468\n"
    "end\n"
    "local function civil_from_days(z)\n"
    "  z = z + 719468\n"
    "  local era = z // 146097; local doe = z - era * 146097\n"
    "  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365\n"
    "  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)\n"
    "  local mp = (5 * doy + 2) // 153\n"
    "  local d = doy - (153 * mp + 2) // 5 + 1\n"
    "  local m = mp < 10 and mp + 3 or mp - 9\n"
    "  local y = yoe + era * 400\n"
    "  if m <= 2 then y = y + 1 end\n"
    "  return y, m, d\n"
    "end\n"
    "local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,\n"
    "                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }\n"
    "local function offset_seconds(tz)\n"
    "  if tz == nil or tz == '' or tz == 'Z' or tz == 'z' then return 0 end\n"
    "  local sign, hh, mm = tz:match('^([+-])(%d%d):?(%d%d)$')\n"
    "  if not sign then return nil end\n"
    "  local s = tonumber(hh) * 3600 + tonumber(mm) * 60\n"
    "  return sign == '+' and s or -s\n"
    "end\n"
    "function R.time(v)\n"
    "  if math_type(v) == 'integer' then return v end\n"
    "  if type(v) == 'number' then return math.floor(v) end\n"
    "  if type(v) ~= 'string' then return nil end\n"
    "  local c = byte(v, 1)\n"
    "  local y, mo, d, h, mi, s, rest\n"
    "  if c and c >= 48 and c <= 57 then\n"
    "    if v:match('^%d+$') then return tonumber(v) end\n"
    "    y, mo, d, h, mi, s, rest = "
    "v:match('^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):?(%d*)(.*)$')\n"
    "    if y and #s > 9 then return nil end\n"
    "  end\n"
    "  local tz\n"
    "  if y then tz = rest:gsub('^%.%d+', '')\n"
    "  else\n"
    "    local dd, mon, yy, hh, mm, ss, z = v:match("
    "'^%a*,? *(%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) *([+-]%d%d%d%d)$')\n"
    "    if not dd or not MONTHS[mon] then return nil end\n"
    "    y, mo, d, h, mi, s, tz = yy, MONTHS[mon], dd, hh, mm, ss, z\n"
    "  end\n"
    "  local off = offset_seconds(tz)\n"
    "  if off == nil then return nil end\n"
    "  local days = days_from_civil(tonumber(y), tonumber(mo), tonumber(d))\n"
    "  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + (tonumber(s) or 0) - off\n"
    "end\n"
    "function R.iso(t)\n"
    "  if t == nil then return nil end\n"
    "  local days, secs = t // 86400, t % 86400\n"
    "  local y, m, d = civil_from_days(days)\n"
    "  return format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d, secs // 3600,\n"
    "                secs % 3600 // 60, secs % 60)\n"
    "end\n"
    "return R\n";

/*
 * Generated values for one seed: strings built from the pieces the forms are
 * made of (so that most are near misses of a valid value), and numbers.
 */
static const char *PIECES[] = {
    "0",
    "1",
    "2",
    "9",
    "00",
    "12",
    "2024",
    "1969",
    ".",
    "-",
    "+",
    " ",
    "\t",
    "\n",
    ":",
    "T",
    "Z",
    "z",
    ",",
    "Tue",
    "Jun",
    "Foo",
    "Feb",
    "e",
    "x",
    "0000",
    "\xC3\xA9",
    "\xE2\x80\xA6",
    "\xF0\x9F\x98\x80",
    "\xC0\xAF",
    "\x80",
    "ab",
    "2024-06-04T09:12:40",
    "2024-02-29 23:59",
    "Tue, 04 Jun 2024 09:12:40",
    " +0200",
    "+01:00",
    "-0530",
    ".123",
    "370.9500",
    "-3.000",
};

static void push_generated(lua_State *L, unsigned *seed)
{
    int kind = rand_r(seed) % 10;
    if (kind == 0) {
        lua_pushinteger(L, (lua_Integer)(rand_r(seed) % 2000001) - 1000000);
        return;
    }
    if (kind == 1) {
        lua_pushnumber(L, ((double)rand_r(seed) - RAND_MAX / 2.0) / 1000.0);
        return;
    }
    if (kind == 2) {
        /* Integral floats, as JSON gives ids ("250.0"), and one past the integers. */
        int r = rand_r(seed) % 100;
        lua_pushnumber(L, r == 0 ? 1e300 : (double)(r - 50) * 1000.0);
        return;
    }
    char buf[256];
    size_t n = 0;
    int pieces = 1 + rand_r(seed) % 5;
    for (int i = 0; i < pieces; i++) {
        const char *p = PIECES[rand_r(seed) % (sizeof(PIECES) / sizeof(PIECES[0]))];
        size_t len = strlen(p);
        if (n + len < sizeof(buf)) {
            memcpy(buf + n, p, len);
            n += len;
        }
    }
    lua_pushlstring(L, buf, n);
}

/* Calls f(v, extra) on the table at tables[i], leaving {ok, result}. */
static void call_form(lua_State *L, int table, const char *name, int v, int extra)
{
    lua_getfield(L, table, name);
    lua_pushvalue(L, v);
    lua_pushvalue(L, extra);
    int rc = lua_pcall(L, 2, 1, 0);
    lua_pushboolean(L, rc == LUA_OK);
    lua_insert(L, -2);
}

/* A state with the standard libraries and, on top, a table with the forms. */
static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    lua_newtable(L);
    ferry__lua_normal_register(L);
    return L;
}

static void test_normal_lua_forms_agree_with_reference(void **state)
{
    (void)state;
    lua_State *L = new_state();
    int host = lua_gettop(L);
    assert_int_equal(luaL_loadstring(L, REFERENCE), LUA_OK);
    assert_int_equal(lua_pcall(L, 0, 1, 0), LUA_OK);
    int ref = lua_gettop(L);

    static const char *forms[] = {"text", "decimal", "quantity", "time", "cut", "id"};
    unsigned seed = 20261126;
    int compared = 0, non_nil = 0;
    for (int i = 0; i < 24000; i++) {
        int base = lua_gettop(L);
        push_generated(L, &seed);
        const char *form = forms[i % 6];
        if (strcmp(form, "cut") == 0) {
            lua_tolstring(L, base + 1, NULL); /* cut is for text; a number becomes its text */
        }
        lua_pushinteger(L, 1 + rand_r(&seed) % 12); /* cut's length */
        call_form(L, ref, form, base + 1, base + 2);
        call_form(L, host, form, base + 1, base + 2);
        bool ref_ok = lua_toboolean(L, base + 3), host_ok = lua_toboolean(L, base + 5);
        if (!ref_ok || !host_ok || !lua_rawequal(L, base + 4, base + 6) ||
            lua_type(L, base + 4) != lua_type(L, base + 6)) {
            const char *in = luaL_tolstring(L, base + 1, NULL);
            const char *want = luaL_tolstring(L, base + 4, NULL);
            const char *got = luaL_tolstring(L, base + 6, NULL);
            fail_msg("%s(%s): reference %s, host %s", form, in, want, got);
        }
        compared++;
        non_nil += !lua_isnil(L, base + 4);
        /* A time that parsed also comes back as the reference's ISO text. */
        if (strcmp(form, "time") == 0 && lua_isinteger(L, base + 4)) {
            call_form(L, ref, "iso", base + 4, base + 2);
            call_form(L, host, "iso", base + 4, base + 2);
            assert_true(lua_toboolean(L, base + 7) && lua_toboolean(L, base + 9));
            assert_true(lua_rawequal(L, base + 8, base + 10));
        }
        lua_settop(L, base);
    }
    assert_int_equal(compared, 24000);
    /* The generator reaches the valid forms, not only the nil answers. */
    assert_true(non_nil > 5000);
    lua_close(L);
}

/* ferry.text keeps the very string when there is nothing to trim. */
static void test_normal_lua_text_and_errors(void **state)
{
    (void)state;
    lua_State *L = new_state();
    lua_setglobal(L, "ferry");
    const char *script =
        "local s = 'kept'\n"
        "assert(ferry.text(s) == s and ferry.text('  a ') == 'a' and ferry.text({}) == nil)\n"
        "assert(ferry.text(42) == '42' and ferry.text(1.5) == '1.5' and ferry.text(' ') == nil)\n"
        "assert(ferry.iso(nil) == nil and ferry.iso(0) == '1970-01-01T00:00:00Z')\n"
        "assert(ferry.iso(86400.0) == '1970-01-02T00:00:00Z')\n"
        "local ok, err = pcall(ferry.iso, 1.5)\n"
        "assert(not ok and err:find('expected Unix seconds %(an integer%), got a fraction'))\n"
        "ok, err = pcall(ferry.iso, {})\n"
        "assert(not ok and err:find('got table'))\n"
        "ok, err = pcall(ferry.cut, 'abc', 0)\n"
        "assert(not ok and err:find('at least one character'))\n"
        "assert(ferry.cut('Akku-Bohrschrauber', 5) == 'Akku\\u{2026}')\n"
        "assert(ferry.cut('ab cd', 4) == 'ab\\u{2026}')\n"
        "assert(ferry.time(1717492360.7) == 1717492360 and math.type(ferry.time(2.5)) == "
        "'integer')\n"
        "assert(ferry.time('99999999999999999999') == 1e20)\n"
        "assert(ferry.quantity('2.5000') == '2.50' and ferry.quantity(3) == '3')\n"
        "assert(ferry.id(250.0) == '250' and ferry.id(' 7 ') == '7' and ferry.id(1e300) == nil)\n"
        "assert(ferry.id(true) == nil and ferry.id('') == nil and ferry.id(-3) == '-3')\n"
        "return true";
    if (luaL_dostring(L, script) != LUA_OK) {
        fail_msg("%s", lua_tostring(L, -1));
    }
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normal_decimal_forms),
        cmocka_unit_test(test_normal_time_forms),
        cmocka_unit_test(test_normal_iso_round_trip),
        cmocka_unit_test(test_normal_trim_and_utf8),
        cmocka_unit_test(test_normal_lua_forms_agree_with_reference),
        cmocka_unit_test(test_normal_lua_text_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
