/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the JSON <-> Lua bridge (core/src/lua_json.c) and, behind
 * it, a shipped mapping run on an arbitrary record.
 *
 * 1. Round trip: any JSON value the bridge accepts into Lua must come back
 *    out as an equal value (json_equal), so that a mapping that passes a
 *    field through never changes it. A value the bridge refuses (too deep)
 *    must be refused with a Lua error, never a crash.
 * 2. The same value as a lazy record (what a mapping gets): converted back
 *    untouched, and again after every value was read through the record's
 *    metamethods (never pairs), it must still equal the input.
 * 3. The same document, when it is an object, as a BigCommerce customer
 *    through customer_to_contact in the sandboxed mapping host: intents or
 *    a clean FERRY_EMAPPING, whatever shape the record has.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

#include "lua_json.h"
#include "mapping.h"

#ifndef FERRY_SOURCE_DIR
#error "FERRY_SOURCE_DIR must name the source tree (lua/, mappings/)"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static struct ferry_lua *host;
static struct ferry_mapping_set *set;
static unsigned runs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct ferry_err err = {0};
    const char *paths[] = {FERRY_SOURCE_DIR "/mappings/customer_to_contact"};
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    if (!L) {
        abort();
    }
    ferry__lua_json_open(L);
    if (ferry_lua_new(&host, FERRY_SOURCE_DIR "/lua", NULL, &err) < 0 ||
        ferry_mapping_set_load(host, paths, 1, &set, &err) < 0) {
        fprintf(stderr, "fuzz_lua_json: %s\n", err.msg);
        abort();
    }
    return 0;
}

static int push(lua_State *l)
{
    ferry__lua_push_json(l, lua_touserdata(l, 1));
    return 1;
}

static int json_depth(const json_t *j)
{
    int d = 0;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, key, v)
        {
            int k = json_depth(v);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            int k = json_depth(v);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    return 0;
}

/* Reads every value of the record table at idx as a script would: t[k], t[i]. */
static void touch(lua_State *l, int idx, const json_t *j)
{
    const char *key;
    json_t *v;
    size_t i;
    luaL_checkstack(l, 2, "deep");
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, key, v)
        {
            lua_getfield(l, idx, key);
            if (json_is_object(v) || json_is_array(v)) {
                touch(l, lua_gettop(l), v);
            }
            lua_pop(l, 1);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            lua_geti(l, idx, (lua_Integer)i + 1);
            if (json_is_object(v) || json_is_array(v)) {
                touch(l, lua_gettop(l), v);
            }
            lua_pop(l, 1);
        }
    }
}

static int push_record(lua_State *l)
{
    const json_t *j = lua_touserdata(l, 1);
    ferry__lua_push_record(l, j);
    if (lua_toboolean(l, 2)) {
        touch(l, lua_gettop(l), j);
    }
    return 1;
}

/* Both lazy round trips; `in` is at most FERRY_LUA_JSON_MAX_DEPTH deep when read. */
static void lazy_round_trips(const json_t *in)
{
    for (int read = 0; read <= 1; read++) {
        struct ferry_err err = {0};
        json_t *out = NULL;
        if (read && json_depth(in) > FERRY_LUA_JSON_MAX_DEPTH) {
            break; /* values read are converted with the depth limit, as any table */
        }
        lua_settop(L, 0);
        lua_pushcfunction(L, push_record);
        lua_pushlightuserdata(L, (void *)in);
        lua_pushboolean(L, read);
        if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
            fprintf(stderr, "lazy record refused: %s\n", lua_tostring(L, -1));
            abort();
        }
        if (ferry__lua_to_json(L, -1, "fuzz", &out, &err) < 0 || !json_equal(in, out)) {
            fprintf(stderr, "lazy round trip (%s) changed the value: %s\n",
                    read ? "all read" : "untouched", err.msg);
            abort();
        }
        json_decref(out);
        ferry__lua_records_release(L);
    }
    lua_settop(L, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *in = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (!in) {
        return 0;
    }
    lua_settop(L, 0);
    lua_pushcfunction(L, push);
    lua_pushlightuserdata(L, in);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        struct ferry_err err = {0};
        json_t *out = NULL;
        if (ferry__lua_to_json(L, -1, "fuzz", &out, &err) < 0) {
            fprintf(stderr, "pushed into Lua but not back out: %s\n", err.msg);
            abort();
        }
        if (!json_equal(in, out)) {
            char *a = json_dumps(in, JSON_ENCODE_ANY | JSON_COMPACT);
            char *b = json_dumps(out, JSON_ENCODE_ANY | JSON_COMPACT);
            fprintf(stderr, "round trip changed the value:\n  in:  %.300s\n  out: %.300s\n",
                    a ? a : "?", b ? b : "?");
            abort();
        }
        json_decref(out);
    } else if (!lua_isstring(L, -1)) {
        abort(); /* a refusal is an error message */
    }
    lua_settop(L, 0);
    lazy_round_trips(in);
    if (++runs % 256 == 0) {
        lua_gc(L, LUA_GCCOLLECT);
    }

    if (json_is_object(in)) {
        struct ferry_err err = {0};
        json_t *intents = NULL;
        int rc = ferry_mapping_set_run(set, "bigcommerce", "customer", "created", in, NULL,
                                       &intents, &err);
        if (rc == 0 ? !json_is_array(intents) : rc != FERRY_EMAPPING) {
            fprintf(stderr, "mapping run returned %d: %s\n", rc, err.msg);
            abort();
        }
        json_decref(intents);
    }
    json_decref(in);
    return 0;
}
