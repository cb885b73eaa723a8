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
#include <stdarg.h>
#include <stdint.h>
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

/*
 * The whole record becomes Lua tables for every run, so this is on the hot
 * path: keys go in with the length jansson keeps (no strlen, no lookup in
 * Lua's cache of C string addresses), the stack is checked once per
 * container rather than per value, and arrays take the metatable from the
 * stack slot `mt` instead of the registry. Tables are sized and filled in
 * the object's order as before, so pairs() walks them as it always did.
 */
static void push_json(lua_State *L, const json_t *json, int depth, int mt)
{
    if (depth > FERRY_LUA_JSON_MAX_DEPTH) {
        luaL_error(L, "JSON nested deeper than %d levels", FERRY_LUA_JSON_MAX_DEPTH);
    }
    switch (json_typeof(json)) {
    case JSON_OBJECT: {
        /* The table, a key and a value. */
        luaL_checkstack(L, 3, "JSON too deep");
        lua_createtable(L, 0, (int)json_object_size(json));
        for (void *it = json_object_iter((json_t *)json); it;
             it = json_object_iter_next((json_t *)json, it)) {
            const char *key = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            /* A key with a NUL byte ends there, as a C string would. */
            if (memchr(key, '\0', klen)) {
                klen = strlen(key);
            }
            lua_pushlstring(L, key, klen);
            push_json(L, json_object_iter_value(it), depth + 1, mt);
            lua_rawset(L, -3);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(json);
        luaL_checkstack(L, 2, "JSON too deep");
        lua_createtable(L, n > 1000000 ? 0 : (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_json(L, json_array_get(json, i), depth + 1, mt);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_pushvalue(L, mt);
        lua_setmetatable(L, -2);
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
    int mt;
    if (!json) {
        ferry__lua_push_null(L);
        return;
    }
    luaL_checkstack(L, 2, "JSON too deep");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    mt = lua_gettop(L);
    push_json(L, json, 0, mt);
    lua_remove(L, mt);
}

/*
 * Where in the value a conversion is, for the error message: one frame per
 * level on the C stack, turned into text ("intent[1].fields.Phone") only
 * when a conversion fails, so that the success path pays nothing for it.
 */
struct json_frame {
    const struct json_frame *up;
    const char *key; /* NULL: an array element */
    size_t klen;
    lua_Integer index;
};

struct to_json_ctx {
    lua_State *L;
    const void *array_mt; /* the array metatable, compared by address */
    const char *what;     /* the root's name ... */
    const char *what2;    /* ... and the rest of it */
    struct ferry_err *err;
};

/* The path text is cut at this size, silently: the reason still follows it. */
#define PATH_TEXT_SIZE 200

static void path_append(char *buf, size_t *len, const char *s, size_t n)
{
    size_t room = PATH_TEXT_SIZE - 1 - *len;
    if (n > room) {
        n = room;
    }
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

static void path_text(const struct to_json_ctx *c, const struct json_frame *f, char *buf)
{
    const struct json_frame *chain[FERRY_LUA_JSON_MAX_DEPTH + 2];
    size_t n = 0;
    size_t len = 0;
    buf[0] = '\0';
    path_append(buf, &len, c->what, strlen(c->what));
    path_append(buf, &len, c->what2, strlen(c->what2));
    for (; f && n < sizeof(chain) / sizeof(chain[0]); f = f->up) {
        chain[n++] = f;
    }
    while (n > 0) {
        f = chain[--n];
        if (f->key) {
            path_append(buf, &len, ".", 1);
            path_append(buf, &len, f->key, f->klen);
        } else {
            char digits[24];
            int d = snprintf(digits, sizeof(digits), "[%lld]", (long long)f->index);
            path_append(buf, &len, digits, d > 0 ? (size_t)d : 0);
        }
    }
}

/* Fills err with "<path>: <message>" and returns FERRY_EMAPPING. */
FERRY_PRINTF(3, 4)
static int path_error(const struct to_json_ctx *c, const struct json_frame *f, const char *fmt, ...)
{
    char path[PATH_TEXT_SIZE];
    char msg[160];
    va_list ap;
    path_text(c, f, path);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ferry_err_set(c->err, FERRY_EMAPPING, "%s: %s", path, msg);
}

static int to_json(struct to_json_ctx *c, int idx, int depth, const struct json_frame *f,
                   json_t **out);

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
 * Whether s is plain ASCII, eight bytes at a time. jansson checks UTF-8
 * byte by byte on every string and key; intents are mostly ASCII, and only
 * the rest needs that check.
 */
static bool plain_ascii(const char *s, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof(w));
        acc |= w;
    }
    for (; i < n; i++) {
        acc |= (unsigned char)s[i];
    }
    return (acc & UINT64_C(0x8080808080808080)) == 0;
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

static int array_to_json(struct to_json_ctx *c, int idx, lua_Integer n, int depth,
                         const struct json_frame *f, json_t **out)
{
    lua_State *L = c->L;
    int rc = 0;
    json_t *arr = json_array();
    struct json_frame here = {f, NULL, 0, 0};
    if (!arr) {
        rc = ferry_err_set(c->err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (lua_Integer i = 1; i <= n; i++) {
        json_t *item = NULL;
        here.index = i;
        lua_rawgeti(L, idx, i);
        rc = to_json(c, lua_gettop(L), depth + 1, &here, &item);
        lua_pop(L, 1);
        if (rc < 0) {
            goto cleanup;
        }
        if (json_array_append_new(arr, item) < 0) {
            rc = ferry_err_set(c->err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
    }
    *out = arr;
    arr = NULL;
cleanup:
    json_decref(arr);
    return rc;
}

/* With `primed`, the first key and value (from lua_next) are already on the stack. */
static int object_to_json(struct to_json_ctx *c, int idx, int depth, const struct json_frame *f,
                          bool primed, json_t **out)
{
    lua_State *L = c->L;
    int rc = 0;
    json_t *obj = json_object();
    if (!obj) {
        if (primed) {
            lua_pop(L, 2);
        }
        rc = ferry_err_set(c->err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (!primed) {
        lua_pushnil(L);
    }
    while (primed || lua_next(L, idx) != 0) {
        json_t *item = NULL;
        size_t klen = 0;
        const char *key;
        struct json_frame here;
        primed = false;
        if (lua_type(L, -2) != LUA_TSTRING) {
            char kdesc[64];
            describe_key(L, -2, kdesc, sizeof(kdesc));
            lua_pop(L, 2);
            rc = path_error(c, f, "non-string key %s in an object", kdesc);
            goto cleanup;
        }
        key = lua_tolstring(L, -2, &klen);
        if (memchr(key, '\0', klen)) {
            lua_pop(L, 2);
            rc = path_error(c, f, "object key with a NUL byte");
            goto cleanup;
        }
        here.up = f;
        here.key = key;
        here.klen = klen;
        here.index = 0;
        rc = to_json(c, lua_gettop(L), depth + 1, &here, &item);
        if (rc < 0) {
            lua_pop(L, 2);
            goto cleanup;
        }
        if ((plain_ascii(key, klen) ? json_object_setn_new_nocheck(obj, key, klen, item)
                                    : json_object_setn_new(obj, key, klen, item)) < 0) {
            lua_pop(L, 2);
            rc = path_error(c, f, "object key is not valid UTF-8");
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

/* Whether the table at idx carries the array metatable. */
static bool has_array_mt(const struct to_json_ctx *c, int idx)
{
    bool is = false;
    if (lua_getmetatable(c->L, idx)) {
        is = lua_topointer(c->L, -1) == c->array_mt;
        lua_pop(c->L, 1);
    }
    return is;
}

static int to_json(struct to_json_ctx *c, int idx, int depth, const struct json_frame *f,
                   json_t **out)
{
    lua_State *L = c->L;
    json_t *j = NULL;
    if (depth > FERRY_LUA_JSON_MAX_DEPTH) {
        return path_error(c, f, "nested deeper than %d levels (a cycle?)",
                          FERRY_LUA_JSON_MAX_DEPTH);
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
                return path_error(c, f, "%s is not a JSON number", isnan(d) ? "NaN" : "infinity");
            }
            j = json_real(d);
        }
        break;
    case LUA_TSTRING: {
        size_t len = 0;
        const char *s = lua_tolstring(L, idx, &len);
        j = plain_ascii(s, len) ? json_stringn_nocheck(s, len) : json_stringn(s, len);
        if (!j) {
            return path_error(c, f, "string is not valid UTF-8");
        }
        break;
    }
    case LUA_TLIGHTUSERDATA:
        if (ferry__lua_is_null(L, idx)) {
            j = json_null();
            break;
        }
        return path_error(c, f, "cannot convert a userdata to JSON");
    case LUA_TTABLE: {
        lua_Integer n = 0;
        bool seq = false;
        bool is_array;
        /* A key, a value and the metatable; nested tables check again. */
        if (!lua_checkstack(L, 4)) {
            return path_error(c, f, "Lua stack exhausted");
        }
        is_array = has_array_mt(c, idx);
        if (!is_array) {
            /*
             * A table with a string key cannot be a sequence: convert it as an
             * object at once, from the key already found, instead of scanning
             * every key first. Intents are mostly such tables.
             */
            lua_pushnil(L);
            if (lua_next(L, idx) == 0) {
                return object_to_json(c, idx, depth, f, false, out);
            }
            if (lua_type(L, -2) == LUA_TSTRING) {
                return object_to_json(c, idx, depth, f, true, out);
            }
            lua_pop(L, 2);
        }
        scan_keys(L, idx, &n, &seq);
        if (is_array) {
            if (!seq) {
                return path_error(c, f, "array has keys other than 1..n");
            }
            return array_to_json(c, idx, n, depth, f, out);
        }
        if (n > 0 && seq) {
            return array_to_json(c, idx, n, depth, f, out);
        }
        return object_to_json(c, idx, depth, f, false, out);
    }
    default:
        return path_error(c, f, "cannot convert a %s to JSON", lua_typename(L, lua_type(L, idx)));
    }
    if (!j) {
        return ferry_err_set(c->err, FERRY_ENOMEM, "out of memory");
    }
    *out = j;
    return 0;
}

int ferry__lua_to_json_at(lua_State *L, int idx, const char *what, const char *what2, json_t **out,
                          struct ferry_err *err)
{
    struct to_json_ctx c = {L, NULL, what ? what : "value", what2 ? what2 : "", err};
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 1)) {
        return ferry_err_set(err, FERRY_EMAPPING, "%s%s: Lua stack exhausted", c.what, c.what2);
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    c.array_mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    return to_json(&c, idx, 0, NULL, out);
}

int ferry__lua_to_json(lua_State *L, int idx, const char *what, json_t **out, struct ferry_err *err)
{
    return ferry__lua_to_json_at(L, idx, what, NULL, out, err);
}
