/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: ferry.rows (core/src/rows.c), which reads whatever lists a
 * store sends and whatever declarations a mapping author writes. The input
 * is JSON: a list, or an object with "list" (or a fixture's record.products)
 * and optionally "spec", a declaration. For every input: a declaration
 * either compiles or raises an error that names ferry.rows; a list maps
 * without raising, and the same whether it is read from the record's JSON
 * or converted from a plain table; every row is an object. (A key with a
 * NUL byte ends there in a plain table, as documented for records, so the
 * two ways are compared only for inputs without one.) Declared with a
 * `from` path, the rows of the same list inside a record are the same. The
 * unit argument changes with the input, so that the values a program keeps
 * between calls are replaced as well as reused.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lua_json.h"
#include "normal.h"
#include "rows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "rows: %s\n", what);
        abort();
    }
}

/* Every source, form and option at once, for lists without a spec of their own. */
static const char DEFAULT_FIELDS[] =
    "return { ID = { index = 10 }, S = { 'sku', 'text' }, N = { 'name', 'text', cut = "
    "40 }, Q = { 'quantity', 'quantity' }, P = { 'price_ex_tax', 'decimal' }, I = { "
    "'product_id', 'id' }, R = 'brand', D = { 'product.0.sku', form = 'text' }, U = { arg = 1 }, "
    "C = { arg = 2, when = 'P' } }";

static lua_State *state(void)
{
    static lua_State *L;
    if (L == NULL) {
        L = luaL_newstate();
        check(L != NULL, "no Lua state");
        luaL_openlibs(L);
        ferry__lua_json_open(L);
        lua_newtable(L);
        ferry__lua_normal_register(L);
        ferry__lua_rows_register(L);
        ferry__lua_push_null(L);
        lua_setfield(L, -2, "null");
        lua_setglobal(L, "ferry");
    }
    return L;
}

/*
 * [-0, +1] the compiled rows for spec (or the default), or nothing when it
 * does not compile; from: the list's path in the record a call takes, or NULL.
 */
static bool compile(lua_State *L, const json_t *spec, const char *from)
{
    lua_getglobal(L, "ferry");
    lua_getfield(L, -1, "rows");
    lua_remove(L, -2);
    if (spec) {
        ferry__lua_push_json(L, spec);
    } else {
        check(luaL_dostring(L, DEFAULT_FIELDS) == LUA_OK, "the default fields do not load");
    }
    if (from) {
        lua_pushstring(L, from);
    }
    if (lua_pcall(L, from ? 2 : 1, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        check(spec != NULL, "the default spec does not compile");
        check(msg && strstr(msg, "ferry.rows"), "a declaration error that does not say ferry.rows");
        lua_pop(L, 1);
        return false;
    }
    return true;
}

/*
 * Applies the rows at the top to list (to a record holding it at "lines"
 * when from); leaves the result JSON (or NULL) in *out.
 */
static void apply(lua_State *L, const json_t *list, bool lazy, bool from, const char *unit,
                  json_t **out)
{
    struct ferry_err err = {0};
    json_t *record = from ? json_pack("{s:O}", "lines", list) : json_incref((json_t *)list);
    check(record != NULL, "out of memory");
    lua_pushvalue(L, -1);
    if (lazy) {
        ferry__lua_push_record(L, record);
    } else {
        ferry__lua_push_json(L, record);
    }
    lua_pushstring(L, unit);
    lua_pushliteral(L, "EUR");
    *out = NULL;
    if (lua_pcall(L, 3, 2, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        check(!from && json_is_object(list) && msg && strstr(msg, "expected a list"),
              "rows raised on a list");
        lua_pop(L, 1);
    } else {
        if (from) {
            check(lua_toboolean(L, -1) == (json_is_array(list) || json_object_size(list) == 0),
                  "rows from a record: whether there was a list, wrong");
        }
        if (!lua_isnil(L, -2)) {
            check(ferry__lua_to_json(L, -2, "rows", out, &err) == 0, "rows did not convert");
        }
        lua_pop(L, 2);
    }
    ferry__lua_records_release(L);
    json_decref(record);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    const json_t *list = doc, *spec = NULL;
    lua_State *L = state();
    int top = lua_gettop(L);
    if (json_is_object(doc)) {
        spec = json_object_get(doc, "spec");
        list = json_object_get(doc, "list");
        if (!list) {
            list = json_object_get(json_object_get(doc, "record"), "products");
        }
    }
    const char *unit = size % 2 ? "EA" : "PC";
    if (list && (json_is_array(list) || json_is_object(list)) && compile(L, spec, NULL)) {
        json_t *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        apply(L, list, true, false, unit, &a);
        apply(L, list, false, false, unit, &b);
        if (!memmem(data, size, "\\u0000", 6)) {
            check((a == NULL) == (b == NULL) && (a == NULL || json_equal(a, b)),
                  "the record's JSON and the plain table give different rows");
        }
        lua_pop(L, 1);
        check(compile(L, spec, "lines"), "compiles without from but not with it");
        apply(L, list, true, true, unit, &c);
        apply(L, list, false, true, unit, &d);
        if (!memmem(data, size, "\\u0000", 6)) {
            check((a == NULL) == (c == NULL) && (a == NULL || json_equal(a, c)),
                  "rows from the record's path differ from rows of the list");
            check((c == NULL) == (d == NULL) && (c == NULL || json_equal(c, d)),
                  "rows from a lazy and a plain record differ");
        }
        json_decref(c);
        json_decref(d);
        if (a) {
            size_t i;
            json_t *row;
            check(json_is_array(a) && json_array_size(a) == json_array_size(list),
                  "not one row per element");
            json_array_foreach(a, i, row)
            {
                check(json_is_object(row), "a row that is not an object");
            }
        }
        json_decref(a);
        json_decref(b);
    }
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT, 0);
    json_decref(doc);
    return 0;
}
