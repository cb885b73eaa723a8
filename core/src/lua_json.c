/* SPDX-License-Identifier: MIT */
/*
 * JSON <-> Lua conversion for the mapping host (see lua_json.h). The Lua ->
 * JSON direction only reads the state (lua_next, lua_rawgeti, strings that
 * are already strings), so it cannot raise and may run outside a protected
 * call; the JSON -> Lua direction allocates in the state and must run inside
 * one.
 */
#include "lua_json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

/* Addresses used as unique registry keys and as the null sentinel. */
static const char null_sentinel = 0;
static const char array_mt_key = 0;

void ferry__lua_json_open(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, "ferry.array");
    lua_setfield(L, -2, "__name");
    /* Scripts must not swap the marker away: getmetatable() sees a string. */
    lua_pushliteral(L, "ferry.array");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
}

void ferry__lua_push_null(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&null_sentinel);
}

bool ferry__lua_is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA &&
           lua_touserdata(L, idx) == (void *)&null_sentinel;
}

void ferry__lua_mark_array(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    lua_setmetatable(L, idx);
}

bool ferry__lua_is_array(lua_State *L, int idx)
{
    bool is = false;
    if (lua_type(L, idx) != LUA_TTABLE || !lua_checkstack(L, 2)) {
        return false;
    }
    if (lua_getmetatable(L, idx)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
        is = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    return is;
}

static void push_json(lua_State *L, const json_t *json, int depth)
{
    if (depth > FERRY_LUA_JSON_MAX_DEPTH) {
        luaL_error(L, "JSON nested deeper than %d levels", FERRY_LUA_JSON_MAX_DEPTH);
    }
    luaL_checkstack(L, 3, "JSON too deep");
    switch (json_typeof(json)) {
    case JSON_OBJECT: {
        const char *key;
        const json_t *value;
        lua_createtable(L, 0, (int)json_object_size(json));
        json_object_foreach((json_t *)json, key, value)
        {
            lua_pushstring(L, key);
            push_json(L, value, depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(json);
        lua_createtable(L, n > 1000000 ? 0 : (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_json(L, json_array_get(json, i), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        ferry__lua_mark_array(L, -1);
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(json), json_string_length(json));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(json));
        break;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(json));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    case JSON_NULL:
    default:
        ferry__lua_push_null(L);
        break;
    }
}

void ferry__lua_push_json(lua_State *L, const json_t *json)
{
    if (!json) {
        ferry__lua_push_null(L);
        return;
    }
    push_json(L, json, 0);
}

/* Where in the value a conversion failed, for the error message. */
struct json_path {
    char buf[200];
    size_t len;
};

/*
 * The path is read only when a conversion fails, yet it is extended for
 * every key and element converted: plain copies, not snprintf, keep that
 * bookkeeping a small share of the conversion. Both truncate silently.
 */
static void path_append(struct json_path *p, const char *s, size_t n)
{
    size_t room = sizeof(p->buf) - 1 - p->len;
    if (n > room) {
        n = room;
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static size_t path_push_index(struct json_path *p, lua_Integer i)
{
    char digits[24];
    char *d = digits + sizeof(digits);
    unsigned long long u = i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i;
    size_t mark = p->len;
    *--d = ']';
    do {
        *--d = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (i < 0) {
        *--d = '-';
    }
    *--d = '[';
    path_append(p, d, (size_t)(digits + sizeof(digits) - d));
    return mark;
}

static size_t path_push_key(struct json_path *p, const char *key, size_t klen)
{
    size_t mark = p->len;
    path_append(p, ".", 1);
    path_append(p, key, klen);
    return mark;
}

static void path_pop(struct json_path *p, size_t mark)
{
    p->len = mark;
    p->buf[mark] = '\0';
}

static int to_json(lua_State *L, int idx, int depth, struct json_path *p, json_t **out,
                   struct ferry_err *err);

static void describe_key(lua_State *L, int idx, char *buf, size_t size)
{
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            snprintf(buf, size, "%lld", (long long)lua_tointeger(L, idx));
        } else {
            snprintf(buf, size, "%g", (double)lua_tonumber(L, idx));
        }
        break;
    case LUA_TBOOLEAN:
        snprintf(buf, size, "%s", lua_toboolean(L, idx) ? "true" : "false");
        break;
    default:
        snprintf(buf, size, "(a %s)", lua_typename(L, lua_type(L, idx)));
        break;
    }
}

/*
 * Scans the table's keys: *n counts them, *seq stays true while every key is
 * an integer in 1..count, which (with the count) makes the table a sequence.
 */
static void scan_keys(lua_State *L, int idx, lua_Integer *n, bool *seq)
{
    lua_Integer count = 0;
    lua_Integer max = 0;
    bool all_int = true;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        count++;
        if (lua_isinteger(L, -2)) {
            lua_Integer k = lua_tointeger(L, -2);
            if (k < 1) {
                all_int = false;
            } else if (k > max) {
                max = k;
            }
        } else {
            all_int = false;
        }
        lua_pop(L, 1);
    }
    *n = count;
    *seq = all_int && max == count;
}

static int array_to_json(lua_State *L, int idx, lua_Integer n, int depth, struct json_path *p,
                         json_t **out, struct ferry_err *err)
{
    int rc = 0;
    json_t *arr = json_array();
    if (!arr) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (lua_Integer i = 1; i <= n; i++) {
        json_t *item = NULL;
        size_t mark = path_push_index(p, i);
        lua_rawgeti(L, idx, i);
        rc = to_json(L, lua_gettop(L), depth + 1, p, &item, err);
        lua_pop(L, 1);
        path_pop(p, mark);
        if (rc < 0) {
            goto cleanup;
        }
        if (json_array_append_new(arr, item) < 0) {
            rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
    }
    *out = arr;
    arr = NULL;
cleanup:
    json_decref(arr);
    return rc;
}

static int object_to_json(lua_State *L, int idx, int depth, struct json_path *p, json_t **out,
                          struct ferry_err *err)
{
    int rc = 0;
    json_t *obj = json_object();
    if (!obj) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        json_t *item = NULL;
        size_t klen = 0;
        const char *key;
        size_t mark;
        if (lua_type(L, -2) != LUA_TSTRING) {
            char kdesc[64];
            describe_key(L, -2, kdesc, sizeof(kdesc));
            lua_pop(L, 2);
            rc = ferry_err_set(err, FERRY_EMAPPING, "%s: non-string key %s in an object", p->buf,
                               kdesc);
            goto cleanup;
        }
        key = lua_tolstring(L, -2, &klen);
        if (strlen(key) != klen) {
            lua_pop(L, 2);
            rc = ferry_err_set(err, FERRY_EMAPPING, "%s: object key with a NUL byte", p->buf);
            goto cleanup;
        }
        mark = path_push_key(p, key, klen);
        rc = to_json(L, lua_gettop(L), depth + 1, p, &item, err);
        path_pop(p, mark);
        if (rc < 0) {
            lua_pop(L, 2);
            goto cleanup;
        }
        if (json_object_set_new(obj, key, item) < 0) {
            lua_pop(L, 2);
            rc = ferry_err_set(err, FERRY_EMAPPING, "%s: object key is not valid UTF-8", p->buf);
            goto cleanup;
        }
        lua_pop(L, 1);
    }
    *out = obj;
    obj = NULL;
cleanup:
    json_decref(obj);
    return rc;
}

static int to_json(lua_State *L, int idx, int depth, struct json_path *p, json_t **out,
                   struct ferry_err *err)
{
    json_t *j = NULL;
    if (depth > FERRY_LUA_JSON_MAX_DEPTH) {
        return ferry_err_set(err, FERRY_EMAPPING, "%s: nested deeper than %d levels (a cycle?)",
                             p->buf, FERRY_LUA_JSON_MAX_DEPTH);
    }
    if (!lua_checkstack(L, 4)) {
        return ferry_err_set(err, FERRY_EMAPPING, "%s: Lua stack exhausted", p->buf);
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        j = json_null();
        break;
    case LUA_TBOOLEAN:
        j = json_boolean(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            j = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (!isfinite(d)) {
                return ferry_err_set(err, FERRY_EMAPPING, "%s: %s is not a JSON number", p->buf,
                                     isnan(d) ? "NaN" : "infinity");
            }
            j = json_real(d);
        }
        break;
    case LUA_TSTRING: {
        size_t len = 0;
        const char *s = lua_tolstring(L, idx, &len);
        j = json_stringn(s, len);
        if (!j) {
            return ferry_err_set(err, FERRY_EMAPPING, "%s: string is not valid UTF-8", p->buf);
        }
        break;
    }
    case LUA_TLIGHTUSERDATA:
        if (ferry__lua_is_null(L, idx)) {
            j = json_null();
            break;
        }
        return ferry_err_set(err, FERRY_EMAPPING, "%s: cannot convert a userdata to JSON", p->buf);
    case LUA_TTABLE: {
        lua_Integer n = 0;
        bool seq = false;
        bool is_array = ferry__lua_is_array(L, idx);
        if (!is_array) {
            /*
             * A table with a string key cannot be a sequence: convert it as an
             * object at once instead of scanning every key first. Intents are
             * mostly such tables, so this halves the walks over them.
             */
            lua_pushnil(L);
            if (lua_next(L, idx) == 0) {
                return object_to_json(L, idx, depth, p, out, err);
            }
            bool string_key = lua_type(L, -2) == LUA_TSTRING;
            lua_pop(L, 2);
            if (string_key) {
                return object_to_json(L, idx, depth, p, out, err);
            }
        }
        scan_keys(L, idx, &n, &seq);
        if (is_array) {
            if (!seq) {
                return ferry_err_set(err, FERRY_EMAPPING, "%s: array has keys other than 1..n",
                                     p->buf);
            }
            return array_to_json(L, idx, n, depth, p, out, err);
        }
        if (n > 0 && seq) {
            return array_to_json(L, idx, n, depth, p, out, err);
        }
        return object_to_json(L, idx, depth, p, out, err);
    }
    default:
        return ferry_err_set(err, FERRY_EMAPPING, "%s: cannot convert a %s to JSON", p->buf,
                             lua_typename(L, lua_type(L, idx)));
    }
    if (!j) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    *out = j;
    return 0;
}

int ferry__lua_to_json(lua_State *L, int idx, const char *what, json_t **out, struct ferry_err *err)
{
    struct json_path p;
    int n = snprintf(p.buf, sizeof(p.buf), "%s", what ? what : "value");
    p.len = n < 0 ? 0 : ((size_t)n < sizeof(p.buf) ? (size_t)n : sizeof(p.buf) - 1);
    return to_json(L, lua_absindex(L, idx), 0, &p, out, err);
}
