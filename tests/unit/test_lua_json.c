/* SPDX-License-Identifier: MIT */
/*
 * Tests for the JSON <-> Lua bridge (core/src/lua_json.c): values survive
 * the round trip with their types (empty arrays, null, integers), and a
 * value that cannot become JSON is reported with the path to it, which is
 * built as the conversion descends and must stay exact and bounded.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

#include "lua_json.h"

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    ferry__lua_json_open(L);
    return L;
}

/* [-0, +1, -] runs a chunk that returns one value and leaves it on the stack. */
static void eval(lua_State *L, const char *chunk)
{
    assert_int_equal(luaL_loadstring(L, chunk), LUA_OK);
    assert_int_equal(lua_pcall(L, 0, 1, 0), LUA_OK);
}

static void test_lua_json_round_trip_keeps_types(void **state)
{
    (void)state;
    lua_State *L = new_state();
    json_t *in = json_loads("{\"a\":[1,{\"b\":\"x\"},2.5,null,true],\"empty\":[],\"obj\":{},"
                            "\"n\":-7}",
                            0, NULL);
    json_t *out = NULL;
    struct ferry_err err = {0};
    assert_non_null(in);
    ferry__lua_push_json(L, in);
    assert_int_equal(ferry__lua_to_json(L, -1, "record", &out, &err), 0);
    assert_true(json_equal(in, out));
    assert_true(json_is_array(json_object_get(out, "empty")));
    assert_true(json_is_integer(json_object_get(out, "n")));
    json_decref(in);
    json_decref(out);
    lua_close(L);
}

static void test_lua_json_error_names_the_path(void **state)
{
    (void)state;
    lua_State *L = new_state();
    json_t *out = NULL;
    struct ferry_err err = {0};
    eval(L, "return {{op = 'create', fields = {Phone = function() end}}}");
    assert_int_equal(ferry__lua_to_json(L, -1, "intent", &out, &err), FERRY_EMAPPING);
    assert_null(out);
    assert_string_equal(err.msg, "intent[1].fields.Phone: cannot convert a function to JSON");
    lua_pop(L, 1);

    eval(L, "local t = {}; for i = 1, 11 do t[i] = i end; t[12] = {x = 0/0}; return {items = t}");
    assert_int_equal(ferry__lua_to_json(L, -1, "intent", &out, &err), FERRY_EMAPPING);
    assert_string_equal(err.msg, "intent.items[12].x: NaN is not a JSON number");
    lua_pop(L, 1);
    lua_close(L);
}

static void test_lua_json_long_path_is_truncated(void **state)
{
    (void)state;
    lua_State *L = new_state();
    json_t *out = NULL;
    struct ferry_err err = {0};
    eval(L, "local k = '' for i = 1, 300 do k = k .. 'k' end "
            "return {[k] = {[k] = {ok = 1, bad = function() end}}}");
    assert_int_equal(ferry__lua_to_json(L, -1, "v", &out, &err), FERRY_EMAPPING);
    /* The path stops at its buffer; the reason still follows it. */
    assert_memory_equal(err.msg, "v.kkkk", 6);
    assert_non_null(strstr(err.msg, ": cannot convert a "));
    assert_null(strstr(err.msg, ".bad"));
    lua_pop(L, 1);

    /* A failure after a long sibling: the path was cut back to the parent. */
    eval(L, "local k = '' for i = 1, 300 do k = k .. 'k' end "
            "return {a = {[k] = 1}, b = {c = function() end}}");
    assert_int_equal(ferry__lua_to_json(L, -1, "v", &out, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "v.b.c: cannot convert a "));
    lua_pop(L, 1);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lua_json_round_trip_keeps_types),
        cmocka_unit_test(test_lua_json_error_names_the_path),
        cmocka_unit_test(test_lua_json_long_path_is_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
