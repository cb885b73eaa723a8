/* SPDX-License-Identifier: MIT */
/*
 * Tests for the JSON <-> Lua bridge (core/src/lua_json.c): values survive
 * the round trip with their types (empty arrays, null, integers), and a
 * value that cannot become JSON is reported with the path to it, which must
 * stay exact and bounded; strings and keys beyond ASCII are still checked
 * for UTF-8, and the nesting limit is the same in both directions.
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

/* ASCII skips jansson's UTF-8 check; everything else must still get it, in keys and values. */
static void test_lua_json_utf8_checked_beyond_ascii(void **state)
{
    (void)state;
    lua_State *L = new_state();
    json_t *out = NULL;
    struct ferry_err err = {0};
    eval(L, "return {['Gr\\195\\188\\195\\159e'] = 'Sch\\195\\182n', nul = 'a\\0b',"
            " long = 'abcdefghijklmnop\\195\\188q'}");
    assert_int_equal(ferry__lua_to_json(L, -1, "v", &out, &err), 0);
    assert_string_equal(json_string_value(json_object_get(out, "Gr\xc3\xbc\xc3\x9f"
                                                               "e")),
                        "Sch\xc3\xb6n");
    assert_int_equal(json_string_length(json_object_get(out, "nul")), 3);
    assert_memory_equal(json_string_value(json_object_get(out, "nul")), "a\0b", 3);
    assert_string_equal(json_string_value(json_object_get(out, "long")),
                        "abcdefghijklmnop\xc3\xbcq");
    json_decref(out);
    out = NULL;
    lua_pop(L, 1);

    eval(L, "return {x = {['\\255'] = 1}}");
    assert_int_equal(ferry__lua_to_json(L, -1, "v", &out, &err), FERRY_EMAPPING);
    assert_string_equal(err.msg, "v.x: object key is not valid UTF-8");
    lua_pop(L, 1);
    eval(L, "return {x = {['a\\0b'] = 1}}");
    assert_int_equal(ferry__lua_to_json(L, -1, "v", &out, &err), FERRY_EMAPPING);
    assert_string_equal(err.msg, "v.x: object key with a NUL byte");
    lua_pop(L, 1);
    /* The bad byte past the first eight, where the check goes word by word. */
    eval(L, "return {s = 'abcdefghijk\\255'}");
    assert_int_equal(ferry__lua_to_json(L, -1, "v", &out, &err), FERRY_EMAPPING);
    assert_string_equal(err.msg, "v.s: string is not valid UTF-8");
    lua_pop(L, 1);
    assert_null(out);
    lua_close(L);
}

static int push_protected(lua_State *L)
{
    ferry__lua_push_json(L, lua_touserdata(L, 1));
    return 1;
}

/* A value inside FERRY_LUA_JSON_MAX_DEPTH containers converts both ways; one level more fails. */
static void test_lua_json_depth_limit_is_exact(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char text[512];
    for (int extra = 0; extra <= 1; extra++) {
        int levels = FERRY_LUA_JSON_MAX_DEPTH + extra;
        size_t n = 0;
        json_t *in;
        json_t *out = NULL;
        struct ferry_err err = {0};
        int status;
        for (int i = 0; i < levels; i++) {
            text[n++] = '[';
        }
        text[n++] = '1';
        for (int i = 0; i < levels; i++) {
            text[n++] = ']';
        }
        text[n] = '\0';
        in = json_loads(text, 0, NULL);
        assert_non_null(in);
        lua_pushcfunction(L, push_protected);
        lua_pushlightuserdata(L, in);
        status = lua_pcall(L, 1, 1, 0);
        if (extra == 0) {
            assert_int_equal(status, LUA_OK);
            assert_int_equal(ferry__lua_to_json(L, -1, "v", &out, &err), 0);
            assert_true(json_equal(in, out));
            json_decref(out);
        } else {
            assert_int_equal(status, LUA_ERRRUN);
            assert_non_null(strstr(lua_tostring(L, -1), "JSON nested deeper than"));
        }
        lua_pop(L, 1);
        json_decref(in);
    }
    eval(L, "local t = {} local c = t for i = 1, 64 do c[1] = {} c = c[1] end c[1] = 1 return t");
    {
        json_t *out = NULL;
        struct ferry_err err = {0};
        assert_int_equal(ferry__lua_to_json(L, -1, "v", &out, &err), FERRY_EMAPPING);
        assert_non_null(strstr(err.msg, ": nested deeper than 64 levels"));
        lua_pop(L, 1);
    }
    lua_close(L);
}

/* A state with ferry.intent_head and ferry.intent, as the mapping host registers them. */
static lua_State *intent_state(void)
{
    lua_State *L = new_state();
    lua_newtable(L);
    lua_pushcfunction(L, ferry__lua_intent_head);
    lua_setfield(L, -2, "intent_head");
    lua_pushcfunction(L, ferry__lua_intent);
    lua_setfield(L, -2, "intent");
    lua_setglobal(L, "ferry");
    return L;
}

static void test_lua_json_intent_shares_the_head_and_adds_the_record(void **state)
{
    (void)state;
    lua_State *L = intent_state();
    json_t *out = NULL;
    struct ferry_err err = {0};
    eval(L, "local head = ferry.intent_head { op = 'upsert', mapping = 'm',\n"
            "  source = { system = 's', object = 'o' }, target = { system = 't', object = 'T' },\n"
            "  owner = { Phone = 't' } }\n"
            "return { ferry.intent(head, 'm.lua', 1, '7', 'created', nil, nil, nil,\n"
            "                      { { rule = 'link' } }, { A = 'x', N = 2 }),\n"
            "         ferry.intent(head, 'm.lua', 2, '8', nil, 'update', 'r',\n"
            "                      { system = 'u', object = 'U' }, {}, {}, {},\n"
            "                      { policy = 'park' }, nil, { 'why' }),\n"
            "         ferry.intent(head, 'm.lua', 3, '9', 'created', nil, nil, nil, {}, {}) }");
    assert_int_equal(ferry__lua_to_json(L, -1, "list", &out, &err), 0);
    json_t *a = json_array_get(out, 0);
    json_t *b = json_array_get(out, 1);
    json_t *c = json_array_get(out, 2);
    json_t *want_a = json_loads(
        "{\"op\":\"upsert\",\"mapping\":\"m\",\"source\":{\"system\":\"s\",\"object\":\"o\","
        "\"id\":\"7\",\"event\":\"created\"},\"target\":{\"system\":\"t\",\"object\":\"T\"},"
        "\"owner\":{\"Phone\":\"t\"},\"match\":[{\"rule\":\"link\"}],\"fields\":{\"A\":\"x\","
        "\"N\":2}}",
        0, NULL);
    assert_non_null(want_a);
    assert_true(json_equal(a, want_a));
    /* nil parts are left out; an absent event too. */
    assert_null(json_object_get(json_object_get(b, "source"), "event"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "source"), "id")),
                        "8");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(b, "conflict"), "policy")), "park");
    assert_string_equal(json_string_value(json_array_get(json_object_get(b, "notes"), 0)), "why");
    /* Parts given replace the head's. */
    assert_string_equal(json_string_value(json_object_get(b, "op")), "update");
    assert_string_equal(json_string_value(json_object_get(b, "rule")), "r");
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "target"), "object")),
                        "U");
    assert_int_equal(json_object_size(json_object_get(b, "owner")), 0);
    assert_null(json_object_get(a, "rule"));
    assert_null(json_object_get(a, "conflict"));
    assert_null(json_object_get(a, "notes"));
    /* The head's parts are shared, the source is each intent's own. */
    assert_ptr_equal(json_object_get(a, "target"), json_object_get(c, "target"));
    assert_ptr_equal(json_object_get(a, "owner"), json_object_get(c, "owner"));
    assert_ptr_not_equal(json_object_get(a, "source"), json_object_get(c, "source"));
    /* An intent is handed over, not shared: the list holds the only reference. */
    assert_int_equal(a->refcount, 1);
    assert_int_equal(b->refcount, 1);
    json_decref(want_a);
    json_decref(out);
    lua_close(L);
}

static void test_lua_json_intent_fields_from_lists(void **state)
{
    (void)state;
    lua_State *L = intent_state();
    json_t *out = NULL;
    struct ferry_err err = {0};
    eval(L, "local head = ferry.intent_head { source = { system = 's', object = 'o' } }\n"
            "return ferry.intent(head, 'm.lua', 1, '7', 'e', nil, nil, nil, {}, nil, nil, nil,\n"
            "                    nil, nil, { 'A', 'B', 'C' }, { 'x', nil, 3 })");
    assert_int_equal(ferry__lua_to_json(L, -1, "intent", &out, &err), 0);
    json_t *want = json_loads("{\"A\":\"x\",\"C\":3}", 0, NULL);
    assert_true(json_equal(json_object_get(out, "fields"), want));
    json_decref(want);
    json_decref(out);
    lua_close(L);
}

/* Returns the message of the error `chunk` raises, as a new string. */
static char *eval_error(lua_State *L, const char *chunk)
{
    assert_int_equal(luaL_loadstring(L, chunk), LUA_OK);
    assert_int_not_equal(lua_pcall(L, 0, 0, 0), LUA_OK);
    char *msg = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return msg;
}

static void test_lua_json_intent_errors_name_the_intent_path(void **state)
{
    (void)state;
    lua_State *L = intent_state();
    char *msg;
    eval(L, "head = ferry.intent_head { op = 'upsert', source = { system = 's', object = 'o' } }"
            " return true");
    lua_pop(L, 1);
    msg = eval_error(L, "ferry.intent(head, 'm.lua', 1, '1', 'e', nil, nil, nil, {},\n"
                        "  { X = function() end })");
    assert_string_equal(msg, "m.lua: intents[1].fields.X: cannot convert a function to JSON");
    free(msg);
    msg = eval_error(L, "ferry.intent(head, 'm.lua', 3, '\\xff', 'e', nil, nil, nil, {}, {})");
    assert_string_equal(msg, "m.lua: intents[3].source.id: string is not valid UTF-8");
    free(msg);
    msg = eval_error(L, "ferry.intent(head, 'm.lua', 2, '1', 'e', nil, nil, nil, {}, {}, nil,\n"
                        "  nil, nil, { function() end })");
    assert_string_equal(msg, "m.lua: intents[2].notes[1]: cannot convert a function to JSON");
    free(msg);
    msg = eval_error(L, "ferry.intent(head, 'm.lua', 1, '1', 'e', nil, nil, nil, {}, nil, nil,\n"
                        "  nil, nil, nil, { 'A', 'B' }, { 'x', function() end })");
    assert_string_equal(msg, "m.lua: intents[1].fields.B: cannot convert a function to JSON");
    free(msg);
    /* Only a head will do, and a head must be an object. */
    msg = eval_error(L, "ferry.intent({}, 'm.lua', 1, '1', 'e')");
    assert_non_null(strstr(msg, "expected an intent head"));
    free(msg);
    msg = eval_error(L, "ferry.intent_head { 1, 2 }");
    assert_non_null(strstr(msg, "intent head: expected a table with string keys"));
    free(msg);
    msg = eval_error(L, "ferry.intent_head { f = function() end }");
    assert_string_equal(msg, "intent head.f: cannot convert a function to JSON");
    free(msg);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lua_json_round_trip_keeps_types),
        cmocka_unit_test(test_lua_json_error_names_the_path),
        cmocka_unit_test(test_lua_json_long_path_is_truncated),
        cmocka_unit_test(test_lua_json_utf8_checked_beyond_ascii),
        cmocka_unit_test(test_lua_json_depth_limit_is_exact),
        cmocka_unit_test(test_lua_json_intent_shares_the_head_and_adds_the_record),
        cmocka_unit_test(test_lua_json_intent_errors_name_the_intent_path),
        cmocka_unit_test(test_lua_json_intent_fields_from_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
