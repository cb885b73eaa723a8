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
 * two ways are compared only for inputs without one.)
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
static const char DEFAULT_SPEC[] =
    "return ferry.rows { ID = { index = 10 }, S = { 'sku', 'text' }, N = { 'name', 'text', cut = "
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

/* [-0, +1] the compiled rows for spec (or the default), or nothing when it does not compile. */
static bool compile(lua_State *L, const json_t *spec)
{
    if (!spec) {
        check(luaL_dostring(L, DEFAULT_SPEC) == LUA_OK, "the default spec does not compile");
        return true;
    }
    lua_getglobal(L, "ferry");
    lua_getfield(L, -1, "rows");
    lua_remove(L, -2);
    ferry__lua_push_json(L, spec);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        check(msg && strstr(msg, "ferry.rows"), "a declaration error that does not say ferry.rows");
        lua_pop(L, 1);
        return false;
    }
    return true;
}

/* Applies the rows at the top to list; leaves the result JSON (or NULL) in *out. */
static void apply(lua_State *L, const json_t *list, bool lazy, json_t **out)
{
    struct ferry_err err = {0};
    lua_pushvalue(L, -1);
    if (lazy) {
        ferry__lua_push_record(L, list);
    } else {
        ferry__lua_push_json(L, list);
    }
    lua_pushliteral(L, "EA");
    lua_pushliteral(L, "EUR");
    *out = NULL;
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        check(json_is_object(list) && msg && strstr(msg, "expected a list"),
              "rows raised on a list");
    } else if (!lua_isnil(L, -1)) {
        check(ferry__lua_to_json(L, -1, "rows", out, &err) == 0, "rows did not convert");
    }
    lua_pop(L, 1);
    ferry__lua_records_release(L);
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
    if (list && (json_is_array(list) || json_is_object(list)) && compile(L, spec)) {
        json_t *a = NULL, *b = NULL;
        apply(L, list, true, &a);
        apply(L, list, false, &b);
        if (!memmem(data, size, "\\u0000", 6)) {
            check((a == NULL) == (b == NULL) && (a == NULL || json_equal(a, b)),
                  "the record's JSON and the plain table give different rows");
        }
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
