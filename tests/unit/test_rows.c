/* SPDX-License-Identifier: MIT */
/*
 * ferry.rows tests: the declared fields against the same fields written in
 * Lua with the host's normal forms (the loop ferry.rows replaces), on
 * generated lists, read lazily and as plain tables; what a declaration may
 * not say; and what a call gives back for empty, missing and odd lists.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lua_json.h"
#include "normal.h"
#include "rows.h"

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    ferry__lua_json_open(L);
    lua_newtable(L);
    ferry__lua_normal_register(L);
    ferry__lua_rows_register(L);
    ferry__lua_push_null(L);
    lua_setfield(L, -2, "null");
    lua_setglobal(L, "ferry");
    return L;
}

/*
 * The fields as a mapping wrote them before ferry.rows: a path read as
 * ferry.get reads it, a normal form, the cut, the arguments.
 */
static const char SPEC[] =
    "local SPEC = { ID = { index = 10 }, A = { 'a', 'text' }, B = { 'b', 'decimal' },\n"
    "  C = { 'c', 'quantity' }, D = { 'd', 'id' }, E = { 'e', 'text', cut = 5 },\n"
    "  F = 'f', G = { 'n.x', form = 'text' }, H = { 'arr.2', 'decimal' },\n"
    "  R = { 'e', cut = 4 }, U = { arg = 1 }, K = { arg = 2, when = 'B' } }\n";

static const char REFERENCE[] =
    "local function get(v, path)\n"
    "  for step in path:gmatch('[^.]+') do\n"
    "    if type(v) ~= 'table' then return nil end\n"
    "    if step:match('^%d+$') and getmetatable(v) == 'ferry.array' then\n"
    "      v = v[tonumber(step)]\n"
    "    elseif getmetatable(v) == 'ferry.array' then return nil\n"
    "    else v = v[step] end\n"
    "  end\n"
    "  if v == ferry.null or v == '' then return nil end\n"
    "  return v\n"
    "end\n"
    "local function text(v) if type(v) == 'table' then return nil end return ferry.text(v) end\n"
    "local function reference(lines, unit, cur)\n"
    "  if #lines == 0 then return nil end\n"
    "  local out = {}\n"
    "  for i, l in ipairs(lines) do\n"
    "    if type(l) ~= 'table' then l = {} end\n"
    "    local b = get(l, 'b'); b = type(b) ~= 'table' and ferry.decimal(b) or nil\n"
    "    local c = get(l, 'c'); c = type(c) ~= 'table' and ferry.quantity(c) or nil\n"
    "    local d = get(l, 'd'); d = type(d) ~= 'table' and ferry.id(d) or nil\n"
    "    local e = text(get(l, 'e'))\n"
    "    local h = get(l, 'arr.2'); h = type(h) ~= 'table' and ferry.decimal(h) or nil\n"
    "    local r = get(l, 'e'); if type(r) == 'string' then r = ferry.cut(r, 4) end\n"
    "    if unit == '' or unit == ferry.null then unit = nil end\n"
    "    if cur == '' or cur == ferry.null then cur = nil end\n"
    "    out[i] = { ID = tostring(i * 10), A = text(get(l, 'a')), B = b, C = c, D = d,\n"
    "               E = e and ferry.cut(e, 5), F = get(l, 'f'), G = text(get(l, 'n.x')),\n"
    "               H = h, R = r, U = unit, K = b and cur or nil }\n"
    "  end\n"
    "  return out\n"
    "end\n";

/* Values the fields meet in stores' lines, odd ones included. */
static json_t *generated_value(unsigned *seed)
{
    switch (rand_r(seed) % 16) {
    case 0:
        return json_string(" 24.9000 ");
    case 1:
        return json_string("");
    case 2:
        return json_string("KW-SD12");
    case 3:
        return json_string("Akku-Bohrschrauber 18 V mit zwei Akkus");
    case 4:
        return json_integer(rand_r(seed) % 2001 - 1000);
    case 5:
        return json_real(2.5);
    case 6:
        return json_real(3.0);
    case 7:
        return json_real(1e300);
    case 8:
        return json_null();
    case 9:
        return json_true();
    case 10:
        return json_pack("{s:s}", "x", " inner ");
    case 11:
        return json_pack("[s,s]", "1.5", "7");
    case 12:
        return json_string("  \xC3\xA9t\xC3\xA9  ");
    case 13:
        return json_string("12");
    case 14:
        return json_string("abc\xE2\x80\xA6\xE2\x80\xA6\xE2\x80\xA6\xE2\x80\xA6");
    default:
        return json_string("-3.000");
    }
}

static json_t *generated_list(unsigned *seed)
{
    static const char *const keys[] = {"a", "b", "c", "d", "e", "f", "n", "arr"};
    json_t *list = json_array();
    int n = rand_r(seed) % 5;
    for (int i = 0; i < n; i++) {
        json_t *line;
        if (rand_r(seed) % 8 == 0) {
            line = generated_value(seed); /* not an object: a row without record fields */
        } else {
            line = json_object();
            for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
                if (rand_r(seed) % 4 != 0) {
                    json_object_set_new(line, keys[k], generated_value(seed));
                }
            }
        }
        json_array_append_new(list, line);
    }
    return list;
}

/* Converts the value at idx (popping it) and compares; prints both when they differ. */
static void assert_same_json(lua_State *L, int got, int want, const char *what)
{
    json_t *g = NULL, *w = NULL;
    struct ferry_err err = {0};
    assert_int_equal(ferry__lua_to_json(L, got, "got", &g, &err), 0);
    assert_int_equal(ferry__lua_to_json(L, want, "want", &w, &err), 0);
    if (!json_equal(g, w)) {
        char *gs = json_dumps(g, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *ws = json_dumps(w, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        fail_msg("%s:\n got %s\nwant %s", what, gs, ws);
    }
    json_decref(g);
    json_decref(w);
}

static void test_rows_agree_with_the_lua_fields(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char chunk[sizeof(SPEC) + sizeof(REFERENCE) + 200];
    snprintf(chunk, sizeof(chunk), "%s%s return ferry.rows(SPEC), reference", SPEC, REFERENCE);
    assert_int_equal(luaL_loadstring(L, chunk), LUA_OK);
    assert_int_equal(lua_pcall(L, 0, 2, 0), LUA_OK);
    int rows = 1, ref = 2;
    unsigned seed = 20261126;
    int compared = 0, with_rows = 0;
    for (int i = 0; i < 400; i++) {
        json_t *list = generated_list(&seed);
        json_t *unit = i % 3 ? json_string("EA") : json_string("");
        int base = lua_gettop(L);
        /* Lazily (the record path), then as a plain table (the conversion path). */
        for (int lazy = 1; lazy >= 0; lazy--) {
            lua_pushvalue(L, rows);
            if (lazy) {
                ferry__lua_push_record(L, list);
            } else {
                ferry__lua_push_json(L, list);
            }
            ferry__lua_push_json(L, unit);
            lua_pushstring(L, "EUR");
            if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
                fail_msg("rows: %s", lua_tostring(L, -1));
            }
            lua_pushvalue(L, ref);
            ferry__lua_push_json(L, list);
            ferry__lua_push_json(L, unit);
            lua_pushstring(L, "EUR");
            if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
                fail_msg("reference: %s", lua_tostring(L, -1));
            }
            if (lua_isnil(L, -1) || lua_isnil(L, -2)) {
                assert_true(lua_isnil(L, -1) && lua_isnil(L, -2));
            } else {
                assert_same_json(L, -2, -1, lazy ? "lazy list" : "plain list");
                with_rows++;
            }
            compared++;
            lua_settop(L, base);
            ferry__lua_records_release(L);
        }
        json_decref(list);
        json_decref(unit);
    }
    assert_int_equal(compared, 800);
    assert_true(with_rows > 400); /* most lists have rows, not only the nil answer */
    lua_close(L);
}

/* A line the script changed is read as changed: the list is converted, not read as JSON. */
static void test_rows_see_what_the_script_changed(void **state)
{
    (void)state;
    lua_State *L = new_state();
    json_t *list =
        json_loads("[{\"sku\":\" A \",\"qty\":2},{\"sku\":\"B\",\"qty\":\"1.5\"}]", 0, NULL);
    assert_int_equal(luaL_loadstring(L, "local lines = ...\n"
                                        "local R = ferry.rows { P = { 'sku', 'text' },\n"
                                        "                       Q = { 'qty', 'quantity' } }\n"
                                        "local before = R(lines)\n"
                                        "lines[1].sku = 'changed'\n"
                                        "return before, R(lines)"),
                     LUA_OK);
    ferry__lua_push_record(L, list);
    assert_int_equal(lua_pcall(L, 1, 2, 0), LUA_OK);
    json_t *before = NULL, *after = NULL;
    struct ferry_err err = {0};
    assert_int_equal(ferry__lua_to_json(L, -2, "before", &before, &err), 0);
    assert_int_equal(ferry__lua_to_json(L, -1, "after", &after, &err), 0);
    json_t *want_before =
        json_loads("[{\"P\":\"A\",\"Q\":\"2\"},{\"P\":\"B\",\"Q\":\"1.50\"}]", 0, NULL);
    json_t *want_after =
        json_loads("[{\"P\":\"changed\",\"Q\":\"2\"},{\"P\":\"B\",\"Q\":\"1.50\"}]", 0, NULL);
    assert_true(json_equal(before, want_before));
    assert_true(json_equal(after, want_after));
    json_decref(before);
    json_decref(after);
    json_decref(want_before);
    json_decref(want_after);
    json_decref(list);
    ferry__lua_records_release(L);
    lua_close(L);
}

static void assert_compile_error(lua_State *L, const char *spec, const char *want)
{
    char chunk[512];
    snprintf(chunk, sizeof(chunk), "return ferry.rows(%s)", spec);
    assert_int_equal(luaL_loadstring(L, chunk), LUA_OK);
    assert_int_equal(lua_pcall(L, 0, 1, 0), LUA_ERRRUN);
    const char *msg = lua_tostring(L, -1);
    if (!msg || !strstr(msg, want)) {
        fail_msg("ferry.rows(%s): expected an error with \"%s\", got \"%s\"", spec, want,
                 msg ? msg : "(none)");
    }
    lua_pop(L, 1);
}

static void test_rows_declaration_errors_are_specific(void **state)
{
    (void)state;
    lua_State *L = new_state();
    assert_compile_error(L, "{}", "ferry.rows: no fields");
    assert_compile_error(L, "{ [1] = 'a' }", "field names must be strings, got a number");
    assert_compile_error(L, "{ A = 5 }", "field A: expected a path or a table, got a number");
    assert_compile_error(L, "{ A = { 'a', cutt = 3 } }", "field A: unknown key cutt");
    assert_compile_error(L, "{ A = { 'a', 'upper' } }", "field A: unknown form 'upper'");
    assert_compile_error(L, "{ A = { 'a', arg = 1 } }",
                         "field A: give exactly one of a path, index or arg");
    assert_compile_error(L, "{ A = { form = 'text' } }",
                         "field A: give exactly one of a path, index or arg");
    assert_compile_error(L, "{ A = '' }", "field A: the path is empty");
    assert_compile_error(L, "{ A = { index = 0 } }", "field A: index must be an integer from 1");
    assert_compile_error(L, "{ A = { arg = 17 } }", "field A: arg must be 1 to 16");
    assert_compile_error(L, "{ A = { 'a', cut = 0 } }", "field A: cut must be a positive integer");
    assert_compile_error(L, "{ A = { 'a', when = 'B' } }",
                         "field A: when must name another field of the rows");
    assert_compile_error(L, "{ A = { 'a', when = 'A' } }",
                         "field A: when must name another field of the rows");
    assert_compile_error(L, "{ A = { 'a', when = 'B' }, B = { 'b', when = 'C' }, C = 'c' }",
                         "field A: when names B, which has a when itself");
    lua_close(L);
}

/* Runs `chunk` (which returns one value) and leaves its JSON dump, or its error, in out. */
static void run_to_text(lua_State *L, const char *chunk, char *out, size_t size)
{
    assert_int_equal(luaL_loadstring(L, chunk), LUA_OK);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        snprintf(out, size, "error: %s", lua_tostring(L, -1));
    } else if (lua_isnil(L, -1)) {
        snprintf(out, size, "nil");
    } else {
        json_t *j = NULL;
        struct ferry_err err = {0};
        assert_int_equal(ferry__lua_to_json(L, -1, "rows", &j, &err), 0);
        char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
        snprintf(out, size, "%s", s);
        free(s);
        json_decref(j);
    }
    lua_pop(L, 1);
}

static void test_rows_calls(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char got[512];
    assert_int_equal(luaL_dostring(L, "R = ferry.rows { N = { 'n', 'text' }, I = { index = 1 },\n"
                                      "  U = { arg = 1 }, P = { 'p', 'decimal' },\n"
                                      "  C = { arg = 2, when = 'P' } }"),
                     LUA_OK);
    run_to_text(L, "return R(nil)", got, sizeof(got));
    assert_string_equal(got, "nil");
    run_to_text(L, "return R(ferry.null)", got, sizeof(got));
    assert_string_equal(got, "nil");
    run_to_text(L, "return R({})", got, sizeof(got));
    assert_string_equal(got, "nil");
    run_to_text(L, "return R({ n = 'x' })", got, sizeof(got));
    assert_non_null(strstr(got, ": ferry.rows: expected a list (an array), got an object"));
    run_to_text(L, "return R('lines')", got, sizeof(got));
    assert_non_null(strstr(got, "a list expected, got string"));
    /* Missing arguments and the condition: C only where P is. */
    run_to_text(L, "return R({ { n = ' a ', p = '1' }, { n = 'b' }, 7 })", got, sizeof(got));
    assert_string_equal(got, "[{\"I\":\"1\",\"N\":\"a\",\"P\":\"1.00\"},{\"I\":\"2\",\"N\":\"b\"},"
                             "{\"I\":\"3\"}]");
    run_to_text(L, "return R({ { p = 2 }, { p = 'x' } }, 'EA', 'EUR')", got, sizeof(got));
    assert_string_equal(got, "[{\"C\":\"EUR\",\"I\":\"1\",\"P\":\"2.00\",\"U\":\"EA\"},"
                             "{\"I\":\"2\",\"U\":\"EA\"}]");
    /* The result goes into a table as a value the host converts by reference. */
    run_to_text(L, "return { Items = R({ { n = 'x' } }), Other = 1 }", got, sizeof(got));
    assert_string_equal(got, "{\"Items\":[{\"I\":\"1\",\"N\":\"x\"}],\"Other\":1}");
    run_to_text(L, "return R({ { n = 'x' } }, function() end)", got, sizeof(got));
    assert_non_null(strstr(got, "ferry.rows: rows argument: cannot convert a function to JSON"));
    lua_close(L);
}

/* Row `i`'s field `name` in the rows value at idx (converted by reference: the host's own). */
static json_t *row_field(lua_State *L, int idx, size_t i, const char *name)
{
    json_t *j = NULL;
    struct ferry_err err = {0};
    assert_int_equal(ferry__lua_to_json(L, idx, "rows", &j, &err), 0);
    json_t *v = json_object_get(json_array_get(j, i), name);
    json_decref(j); /* the value stays held by the Lua value at idx */
    return v;
}

/*
 * What does not change is made once and shared: an argument's text by every
 * row and the next call, a position's text by the next call, and a record's
 * string that the form leaves as it is by the row. What changes is not: a
 * call with another argument gets its own, a trimmed string is a copy.
 */
static void test_rows_share_what_does_not_change(void **state)
{
    (void)state;
    lua_State *L = new_state();
    json_t *list = json_array();
    for (int i = 0; i < 12; i++) {
        json_array_append_new(list,
                              json_pack("{s:s,s:s}", "sku", i % 2 ? "KW-2" : "KW-1", "n", " pad "));
    }
    assert_int_equal(luaL_dostring(L, "R = ferry.rows { S = { 'sku', 'text' }, "
                                      "N = { 'n', 'text' }, I = { index = 10 }, U = { arg = 1 } }"),
                     LUA_OK);
    lua_getglobal(L, "R");
    ferry__lua_push_record(L, list);
    lua_pushstring(L, "EA");
    assert_int_equal(lua_pcall(L, 2, 1, 0), LUA_OK); /* 1: the record, "EA" */
    lua_getglobal(L, "R");
    ferry__lua_push_json(L, list);
    lua_pushstring(L, "EA");
    assert_int_equal(lua_pcall(L, 2, 1, 0), LUA_OK); /* 2: a plain table, "EA" again */
    lua_getglobal(L, "R");
    ferry__lua_push_json(L, list);
    lua_pushstring(L, "PC");
    assert_int_equal(lua_pcall(L, 2, 1, 0), LUA_OK); /* 3: another unit */
    lua_getglobal(L, "R");
    ferry__lua_push_json(L, list);
    lua_pushstring(L, "EA");
    assert_int_equal(lua_pcall(L, 2, 1, 0), LUA_OK); /* 4: back to "EA" */

    json_t *ea = row_field(L, 1, 0, "U");
    assert_string_equal(json_string_value(ea), "EA");
    assert_ptr_equal(row_field(L, 1, 11, "U"), ea);
    assert_ptr_equal(row_field(L, 2, 5, "U"), ea);
    assert_string_equal(json_string_value(row_field(L, 3, 0, "U")), "PC");
    assert_ptr_equal(row_field(L, 3, 0, "U"), row_field(L, 3, 7, "U"));
    assert_string_equal(json_string_value(row_field(L, 4, 3, "U")), "EA");
    /* Positions past those kept are made per row, and right. */
    for (size_t i = 0; i < 12; i++) {
        char want[8];
        snprintf(want, sizeof(want), "%zu", (i + 1) * 10);
        assert_string_equal(json_string_value(row_field(L, 1, i, "I")), want);
        assert_string_equal(json_string_value(row_field(L, 2, i, "I")), want);
    }
    assert_ptr_equal(row_field(L, 1, 2, "I"), row_field(L, 2, 2, "I"));
    /* Read from the record's JSON: its own string when the form keeps it. */
    assert_ptr_equal(row_field(L, 1, 1, "S"), json_object_get(json_array_get(list, 1), "sku"));
    assert_string_equal(json_string_value(row_field(L, 1, 1, "N")), "pad");
    assert_ptr_not_equal(row_field(L, 1, 1, "N"), json_object_get(json_array_get(list, 1), "n"));
    lua_settop(L, 0);
    ferry__lua_records_release(L);

    /* An argument that is not UTF-8 text is named. */
    char got[512];
    run_to_text(L, "return R({ { sku = 'x' } }, 'E\\255')", got, sizeof(got));
    assert_non_null(strstr(got, "ferry.rows: argument 1 is not valid UTF-8 text"));
    lua_close(L);
    /* The record outlives the state and the values it shared: still whole. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "sku")), "KW-2");
    json_decref(list);
}

/*
 * With a `from` path the call takes the record: the list there, read from
 * the record's JSON until the script has read that key, from Lua after (so
 * a change is seen), and whether there was a list at all.
 */
static void test_rows_from_a_record_path(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char got[512];
    json_t *order = json_loads("{\"id\":1,\"products\":[{\"sku\":\" A \"},{\"sku\":\"B\"}],"
                               "\"link\":{\"url\":\"x\"},\"none\":[],\"nested\":{\"items\":"
                               "[{\"sku\":\"N\"}]},\"nul\":null}",
                               0, NULL);
    assert_non_null(order);
    assert_int_equal(luaL_dostring(L, "P = ferry.rows({ S = { 'sku', 'text' } }, 'products')\n"
                                      "L = ferry.rows({ S = 'sku' }, 'link')\n"
                                      "E = ferry.rows({ S = 'sku' }, 'none')\n"
                                      "M = ferry.rows({ S = 'sku' }, 'missing')\n"
                                      "Z = ferry.rows({ S = 'sku' }, 'nul')\n"
                                      "N = ferry.rows({ S = 'sku' }, 'nested.items')\n"
                                      "function show(rows, listed)\n"
                                      "  return { rows = rows or 'nil', listed = listed }\n"
                                      "end"),
                     LUA_OK);
    static const struct {
        const char *chunk, *want;
    } cases[] = {
        {"return show(P(o))", "{\"listed\":true,\"rows\":[{\"S\":\"A\"},{\"S\":\"B\"}]}"},
        {"return show(L(o))", "{\"listed\":false,\"rows\":\"nil\"}"},
        {"return show(E(o))", "{\"listed\":true,\"rows\":\"nil\"}"},
        {"return show(M(o))", "{\"listed\":false,\"rows\":\"nil\"}"},
        {"return show(Z(o))", "{\"listed\":false,\"rows\":\"nil\"}"},
        {"return show(N(o))", "{\"listed\":true,\"rows\":[{\"S\":\"N\"}]}"},
        {"return show(P(nil))", "{\"listed\":false,\"rows\":\"nil\"}"},
        /* Read, then changed by the script: the change is what the rows show. */
        {"o.products[2].sku = 'changed'; return show(P(o))",
         "{\"listed\":true,\"rows\":[{\"S\":\"A\"},{\"S\":\"changed\"}]}"},
        {"o.nested.items = { { sku = 'lua' } }; return show(N(o))",
         "{\"listed\":true,\"rows\":[{\"S\":\"lua\"}]}"},
        {"o.products = ferry.null; return show(P(o))", "{\"listed\":false,\"rows\":\"nil\"}"},
        {"o.extra = 1; o.link = { { sku = 'now a list' } }; return show(L(o))",
         "{\"listed\":true,\"rows\":[{\"S\":\"now a list\"}]}"},
        /* A plain table as the record. */
        {"return show(P({ products = { { sku = 'p' } } }))",
         "{\"listed\":true,\"rows\":[{\"S\":\"p\"}]}"},
    };
    ferry__lua_push_record(L, order);
    lua_setglobal(L, "o");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char chunk[256];
        snprintf(chunk, sizeof(chunk), "%s", cases[i].chunk);
        run_to_text(L, chunk, got, sizeof(got));
        if (strcmp(got, cases[i].want) != 0) {
            fail_msg("%s:\n got %s\nwant %s", cases[i].chunk, got, cases[i].want);
        }
    }
    /* The record is read from JSON only while lazy: the JSON is unchanged. */
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(order, "products"), 1), "sku")),
                        "B");
    lua_pushnil(L);
    lua_setglobal(L, "o");
    ferry__lua_records_release(L);
    run_to_text(L, "return ferry.rows({ S = 'sku' }, '')", got, sizeof(got));
    assert_non_null(strstr(got, "ferry.rows: from must be a non-empty path"));
    run_to_text(L, "return ferry.rows({ S = 'sku' }, 5)", got, sizeof(got));
    assert_non_null(strstr(got, "ferry.rows: from must be a non-empty path"));
    run_to_text(L, "return P('order')", got, sizeof(got));
    assert_non_null(strstr(got, "a record expected, got string"));
    lua_close(L);
    json_decref(order);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_agree_with_the_lua_fields),
        cmocka_unit_test(test_rows_see_what_the_script_changed),
        cmocka_unit_test(test_rows_declaration_errors_are_specific),
        cmocka_unit_test(test_rows_calls),
        cmocka_unit_test(test_rows_share_what_does_not_change),
        cmocka_unit_test(test_rows_from_a_record_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
