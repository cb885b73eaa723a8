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
static const char lazy_key = 0;
static const char built_mt_key = 0;

static void lazy_open(lua_State *L);
static int l_built_gc(lua_State *L);

/* [-0, +1, m] a new metatable named `name`, which getmetatable() shows instead
 * of the table, so that scripts cannot swap the marker away. */
static void named_metatable(lua_State *L, const char *name)
{
    lua_newtable(L);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable");
}

void ferry__lua_json_open(lua_State *L)
{
    named_metatable(L, "ferry.array");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    named_metatable(L, "ferry.json");
    lua_pushcfunction(L, l_built_gc);
    lua_setfield(L, -2, "__gc");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &built_mt_key);
    lazy_open(L);
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
    int top = lua_gettop(L);
    if (lua_type(L, idx) != LUA_TTABLE || !lua_checkstack(L, 3)) {
        return false;
    }
    if (lua_getmetatable(L, idx)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
        /* A record's array not read yet carries the marker in its own metatable. */
        is = lua_rawequal(L, -1, -2) || lua_rawgetp(L, -2, &array_mt_key) != LUA_TNIL;
        lua_settop(L, top);
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
/* [-0, +1, m] a JSON scalar as Lua; null (and anything else) as ferry.null. */
static void push_scalar(lua_State *L, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(j));
        break;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(j));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        ferry__lua_push_null(L);
        break;
    }
}

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
    default:
        push_scalar(L, json);
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
 * Records, read lazily. A mapping reads a handful of a record's values (an
 * order's id, its customer, its lines' SKUs and prices), yet converting all
 * of it, every key and string interned and every table filled, was a large
 * share of a mapping run. So a record's objects and arrays enter Lua as
 * tables that hold only what has been read:
 *
 * - A table still lazy (a "proxy") has one of the two lazy metatables, and
 *   its json_t under the unforgeable key &json_slot. __index looks the key up
 *   in the json_t, converts the value (objects and arrays again as proxies)
 *   and stores it in the proxy, so the next read is a plain table read.
 * - The slot is a userdata (struct lazy_slot) that also marks each value
 *   handed out (the address of the object's entry for the key, or the
 *   array index), so that a key the script deleted after reading it is not
 *   read again from the json_t. The marks are a small set in C memory, not
 *   keys of the proxy: a Lua key per read cost two table operations and
 *   rehashes, on the path every field of every record takes. JSON true,
 *   false and null are not stored: a read of one costs a metamethod call,
 *   and there is nothing to mark.
 * - Anything that needs the whole table (a write of a new key, pairs(), #,
 *   next, rawget, rawlen, setmetatable, ferry.array) first fills in the keys
 *   not read yet ("materialises" it), drops the slot and the marks and the
 *   lazy metatable: from then on it is the plain table it always was.
 * - The json_t is the caller's, borrowed for one run: each slot carries the
 *   number of the run it was made in, ferry__lua_records_release moves the
 *   state's run number on, and a proxy a script kept past its run raises a
 *   clear error instead of reading freed memory. Ending a run costs the same
 *   whatever number of proxies it made.
 *
 * The shared state `st` (upvalue of every metamethod, and in both lazy
 * metatables under &lazy_key) holds the run number and the metatables.
 */
enum { LZ_RUN = 1, LZ_OBJ_MT, LZ_ARR_MT };
static const char json_slot = 0;

/*
 * A proxy's slot. marks[] is, for an object, an open-addressing set of the
 * entries handed out (NULL = empty; cap a power of two, at least twice the
 * object's size, so a probe ends soon); for an array, a bitset of indexes.
 */
struct lazy_slot {
    const json_t *json;
    const lua_Integer *current; /* the state's run number (a userdata in st) */
    lua_Integer run;            /* the run this proxy belongs to */
    size_t cap;                 /* objects: slots in marks[]; arrays: bits */
    const void *marks[];
};

static bool shared_value(const json_t *v)
{
    return json_is_boolean(v) || json_is_null(v);
}

static size_t mark_home(const struct lazy_slot *s, const void *entry)
{
    /* Fibonacci hashing: jansson's entries are separate allocations, so the
     * low bits alone would cluster. */
    return (size_t)(((uint64_t)(uintptr_t)entry * UINT64_C(0x9E3779B97F4A7C15)) >> 32) &
           (s->cap - 1);
}

/* Whether the proxy already handed out (and may since have changed) object entry e. */
static bool entry_taken(const struct lazy_slot *s, const void *e)
{
    for (size_t i = mark_home(s, e);; i = (i + 1) & (s->cap - 1)) {
        if (s->marks[i] == e) {
            return true;
        }
        if (!s->marks[i]) {
            return false;
        }
    }
}

static void entry_mark(struct lazy_slot *s, const void *e)
{
    size_t i = mark_home(s, e);
    while (s->marks[i] && s->marks[i] != e) {
        i = (i + 1) & (s->cap - 1);
    }
    s->marks[i] = e;
}

static bool index_taken(const struct lazy_slot *s, size_t i)
{
    const unsigned char *bits = (const unsigned char *)s->marks;
    return i < s->cap && (bits[i / 8] & (1u << (i % 8))) != 0;
}

static void index_mark(struct lazy_slot *s, size_t i)
{
    unsigned char *bits = (unsigned char *)s->marks;
    if (i < s->cap) {
        bits[i / 8] |= (unsigned char)(1u << (i % 8));
    }
}

/* [-0, +0, -] the slot of the proxy at t, or NULL when its run has ended. */
static struct lazy_slot *lazy_slot_of(lua_State *L, int t)
{
    struct lazy_slot *s;
    lua_rawgetp(L, t, &json_slot);
    s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s && *s->current == s->run ? s : NULL;
}

/* [-0, +0, v] the slot of the proxy at t; raises for one whose run ended. */
static struct lazy_slot *lazy_slot(lua_State *L, int t)
{
    struct lazy_slot *s = lazy_slot_of(L, t);
    if (!s) {
        luaL_error(L, "a source record was kept after the mapping run it was given to ended; "
                      "copy the values a later run needs instead of the record");
    }
    return s;
}

/* [-0, +1, m] a new slot for j, of the state's current run. */
static void slot_new(lua_State *L, int st, const json_t *j)
{
    struct lazy_slot *s;
    size_t cap;
    size_t bytes;
    const lua_Integer *current;
    lua_rawgeti(L, st, LZ_RUN);
    current = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (json_is_object(j)) {
        cap = 4;
        while (cap < 2 * json_object_size(j)) {
            cap *= 2;
        }
        bytes = cap * sizeof(s->marks[0]);
    } else {
        cap = json_array_size(j);
        bytes = (cap + 7) / 8;
    }
    s = lua_newuserdatauv(L, sizeof(*s) + bytes, 0);
    s->json = j;
    s->current = current;
    s->run = *current;
    s->cap = cap;
    memset(s->marks, 0, bytes);
}

/* [-0, +1, m] the value j as Lua; an object or array as a new proxy of this run. */
static void lazy_push(lua_State *L, int st, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY: {
        luaL_checkstack(L, 3, "JSON too deep");
        /* Room for the slot and a few marks, so that reads seldom rehash. */
        if (json_is_object(j)) {
            lua_createtable(L, 0, (int)json_object_size(j) + 1);
            lua_rawgeti(L, st, LZ_OBJ_MT);
        } else {
            size_t n = json_array_size(j);
            lua_createtable(L, n > 1000000 ? 0 : (int)n, 4);
            lua_rawgeti(L, st, LZ_ARR_MT);
        }
        lua_setmetatable(L, -2);
        slot_new(L, st, j);
        lua_rawsetp(L, -2, &json_slot);
        return;
    }
    default:
        push_scalar(L, j);
        return;
    }
}

/* [-0, +0, e] fills in what the proxy at t has not read yet and makes it plain. */
static void lazy_fill(lua_State *L, int st, int t)
{
    const struct lazy_slot *s = lazy_slot(L, t);
    const json_t *j = s->json;
    luaL_checkstack(L, 4, "JSON too deep");
    if (json_is_object(j)) {
        for (void *it = json_object_iter((json_t *)j); it;
             it = json_object_iter_next((json_t *)j, it)) {
            const json_t *v = json_object_iter_value(it);
            const char *key;
            size_t klen;
            if (!shared_value(v) && entry_taken(s, it)) {
                continue;
            }
            key = json_object_iter_key(it);
            klen = json_object_iter_key_len(it);
            /* A key with a NUL byte ends there, as a C string would. */
            if (memchr(key, '\0', klen)) {
                klen = strlen(key);
            }
            lua_pushlstring(L, key, klen);
            lazy_push(L, st, v);
            lua_rawset(L, t);
        }
        lua_pushnil(L);
    } else {
        size_t n = json_array_size(j);
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_array_get(j, i);
            if (!shared_value(v) && index_taken(s, i)) {
                continue;
            }
            lazy_push(L, st, v);
            lua_rawseti(L, t, (lua_Integer)i + 1);
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    }
    lua_setmetatable(L, t);
    lua_pushnil(L);
    lua_rawsetp(L, t, &json_slot);
}

/* __index(t, k): the value from the json_t, kept in t for the next read. */
static int l_lazy_index(lua_State *L)
{
    struct lazy_slot *s = lazy_slot(L, 1);
    const json_t *j = s->json;
    const json_t *v = NULL;
    void *entry = NULL;
    size_t index = 0;
    if (json_is_object(j)) {
        if (lua_type(L, 2) == LUA_TSTRING) {
            size_t klen = 0;
            const char *key = lua_tolstring(L, 2, &klen);
            /* The entry, not just the value: its address marks the key. */
            entry = strlen(key) == klen ? json_object_iter_at((json_t *)j, key) : NULL;
            v = entry ? json_object_iter_value(entry) : NULL;
            if (v && !shared_value(v) && entry_taken(s, entry)) {
                v = NULL; /* read before and deleted by the script since */
            }
        }
    } else if (lua_type(L, 2) == LUA_TNUMBER) {
        int exact = 0;
        lua_Integer i = lua_tointegerx(L, 2, &exact);
        if (exact && i >= 1 && (size_t)i <= json_array_size(j)) {
            index = (size_t)i - 1;
            v = json_array_get(j, index);
            if (v && !shared_value(v) && index_taken(s, index)) {
                v = NULL;
            }
        }
    }
    if (!v) {
        lua_pushnil(L);
        return 1;
    }
    lazy_push(L, lua_upvalueindex(1), v);
    if (!shared_value(v)) {
        lua_pushvalue(L, 2);
        lua_pushvalue(L, -2);
        lua_rawset(L, 1);
        /* Marked after the store, which may raise (memory): a failed read
         * leaves the entry readable. */
        if (entry) {
            entry_mark(s, entry);
        } else {
            index_mark(s, index);
        }
    }
    return 1;
}

/* __newindex(t, k, v): t becomes a plain table first, then takes the write. */
static int l_lazy_newindex(lua_State *L)
{
    lua_settop(L, 3);
    lazy_fill(L, lua_upvalueindex(1), 1);
    lua_rawset(L, 1);
    return 0;
}

/* __len: counting needs the table's own contents (a deleted line, say). */
static int l_lazy_len(lua_State *L)
{
    lazy_fill(L, lua_upvalueindex(1), 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
    return 1;
}

/* __pairs: pairs() walks the plain table, as next() would. */
static int l_lazy_pairs(lua_State *L)
{
    lazy_fill(L, lua_upvalueindex(1), 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

int ferry__lua_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    ferry__lua_materialize(L, 1);
    if (lua_next(L, 1)) {
        return 2;
    }
    lua_pushnil(L);
    return 1;
}

static void lazy_open(lua_State *L)
{
    int st;
    lua_Integer *run;
    lua_createtable(L, 3, 0);
    st = lua_gettop(L);
    run = lua_newuserdatauv(L, sizeof(*run), 0);
    *run = 0;
    lua_rawseti(L, st, LZ_RUN);
    for (int arr = 0; arr <= 1; arr++) {
        lua_createtable(L, 0, 8);
        lua_pushvalue(L, st);
        lua_pushcclosure(L, l_lazy_index, 1);
        lua_setfield(L, -2, "__index");
        lua_pushvalue(L, st);
        lua_pushcclosure(L, l_lazy_newindex, 1);
        lua_setfield(L, -2, "__newindex");
        lua_pushvalue(L, st);
        lua_pushcclosure(L, l_lazy_len, 1);
        lua_setfield(L, -2, "__len");
        lua_pushvalue(L, st);
        lua_pushcfunction(L, ferry__lua_next);
        lua_pushcclosure(L, l_lazy_pairs, 2);
        lua_setfield(L, -2, "__pairs");
        lua_pushvalue(L, st);
        lua_rawsetp(L, -2, &lazy_key);
        if (arr) {
            /* What a plain array shows: tostring() and getmetatable() see the same. */
            lua_pushliteral(L, "ferry.array");
            lua_setfield(L, -2, "__name");
            lua_pushliteral(L, "ferry.array");
            lua_setfield(L, -2, "__metatable");
            lua_pushboolean(L, 1);
            lua_rawsetp(L, -2, &array_mt_key);
        } else {
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, "__metatable");
        }
        lua_rawseti(L, st, arr ? LZ_ARR_MT : LZ_OBJ_MT);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lazy_key);
}

/* [-0, +1|0, -] pushes st when the value at idx is a proxy (its metatable's &lazy_key). */
static int lazy_state(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) {
        return 0;
    }
    if (lua_rawgetp(L, -1, &lazy_key) != LUA_TTABLE) {
        lua_pop(L, 2);
        return 0;
    }
    lua_remove(L, -2);
    return 1;
}

/* Whether the proxy has handed out none of its values yet. */
static bool slot_untouched(const struct lazy_slot *s)
{
    size_t n = json_is_object(s->json) ? s->cap * sizeof(s->marks[0]) : (s->cap + 7) / 8;
    const unsigned char *bytes = (const unsigned char *)s->marks;
    for (size_t i = 0; i < n; i++) {
        if (bytes[i] != 0) {
            return false;
        }
    }
    return true;
}

const json_t *ferry__lua_record_json(lua_State *L, int idx)
{
    const struct lazy_slot *s;
    const json_t *j = NULL;
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 2) || !lazy_state(L, idx)) {
        return NULL;
    }
    lua_pop(L, 1);
    s = lazy_slot_of(L, idx);
    if (s && slot_untouched(s)) {
        j = s->json;
    }
    return j;
}

const json_t *ferry__lua_record_field(lua_State *L, int idx, const char *key, size_t klen,
                                      bool *json_ok)
{
    const struct lazy_slot *s;
    const json_t *v;
    char name[128];
    void *entry;
    *json_ok = false;
    idx = lua_absindex(L, idx);
    if (klen >= sizeof(name) || memchr(key, '\0', klen) || !lua_checkstack(L, 2) ||
        !lazy_state(L, idx)) {
        return NULL;
    }
    lua_pop(L, 1);
    /* A proxy of an ended run is read from Lua, which raises the clear error. */
    s = lazy_slot_of(L, idx);
    if (!s || !json_is_object(s->json)) {
        return NULL;
    }
    memcpy(name, key, klen);
    name[klen] = '\0';
    entry = json_object_iter_at((json_t *)s->json, name);
    if (!entry) {
        /* Not in the JSON, and not written: a new key makes the table plain. */
        *json_ok = true;
        return NULL;
    }
    v = json_object_iter_value(entry);
    if (!shared_value(v) && entry_taken(s, entry)) {
        return NULL;
    }
    *json_ok = true;
    return v;
}

bool ferry__lua_is_lazy(lua_State *L, int idx)
{
    if (!lua_checkstack(L, 2) || !lazy_state(L, idx)) {
        return false;
    }
    lua_pop(L, 1);
    return true;
}

void ferry__lua_materialize(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 2, "JSON too deep");
    if (lazy_state(L, idx)) {
        lazy_fill(L, lua_gettop(L), idx);
        lua_pop(L, 1);
    }
}

void ferry__lua_push_record(lua_State *L, const json_t *json)
{
    if (!json) {
        ferry__lua_push_null(L);
        return;
    }
    luaL_checkstack(L, 2, "JSON too deep");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_key);
    lazy_push(L, lua_gettop(L), json);
    lua_remove(L, -2);
}

void ferry__lua_records_release(lua_State *L)
{
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 2)) {
        return;
    }
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_key) == LUA_TTABLE) {
        lua_Integer *run;
        lua_rawgeti(L, top + 1, LZ_RUN);
        run = lua_touserdata(L, -1);
        if (run) {
            ++*run;
        }
    }
    lua_settop(L, top);
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
    const void *built_mt; /* the metatable of values the host built (struct built) */
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

/*
 * A record table still lazy: what it has not read, as the record has it;
 * what it has read, as the script left it. Reads only, like the rest.
 */
static int lazy_to_json(struct to_json_ctx *c, int idx, int depth, const struct json_frame *f,
                        json_t **out)
{
    lua_State *L = c->L;
    const struct lazy_slot *s = lazy_slot_of(L, idx);
    const json_t *j;
    json_t *res = NULL;
    int rc = 0;
    if (!s) {
        return path_error(c, f, "a source record kept from an earlier mapping run");
    }
    j = s->json;
    res = json_is_object(j) ? json_object() : json_array();
    if (!res) {
        goto nomem;
    }
    if (json_is_object(j)) {
        for (void *it = json_object_iter((json_t *)j); it;
             it = json_object_iter_next((json_t *)j, it)) {
            const json_t *v = json_object_iter_value(it);
            if (!shared_value(v) && entry_taken(s, it)) {
                continue;
            }
            if (json_object_setn_new_nocheck(res, json_object_iter_key(it),
                                             json_object_iter_key_len(it), json_deep_copy(v)) < 0) {
                goto nomem;
            }
        }
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                json_t *item = NULL;
                size_t klen = 0;
                const char *key = lua_tolstring(L, -2, &klen);
                struct json_frame here = {f, key, klen, 0};
                rc = to_json(c, lua_gettop(L), depth + 1, &here, &item);
                if (rc < 0) {
                    lua_pop(L, 2);
                    goto cleanup;
                }
                if (json_object_setn_new_nocheck(res, key, klen, item) < 0) {
                    lua_pop(L, 2);
                    goto nomem;
                }
            }
            lua_pop(L, 1);
        }
    } else {
        size_t n = json_array_size(j);
        bool hole = false;
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_array_get(j, i);
            json_t *item = NULL;
            if (!shared_value(v) && index_taken(s, i)) {
                struct json_frame here = {f, NULL, 0, (lua_Integer)i + 1};
                if (lua_rawgeti(L, idx, (lua_Integer)i + 1) == LUA_TNIL) {
                    lua_pop(L, 1);
                    hole = true;
                    continue;
                }
                if (hole) {
                    lua_pop(L, 1);
                    rc = path_error(c, f, "array has keys other than 1..n");
                    goto cleanup;
                }
                rc = to_json(c, lua_gettop(L), depth + 1, &here, &item);
                lua_pop(L, 1);
                if (rc < 0) {
                    goto cleanup;
                }
            } else if (hole) {
                rc = path_error(c, f, "array has keys other than 1..n");
                goto cleanup;
            } else {
                item = json_deep_copy(v);
            }
            if (json_array_append_new(res, item) < 0) {
                goto nomem;
            }
        }
    }
    *out = res;
    return 0;
nomem:
    rc = ferry_err_set(c->err, FERRY_ENOMEM, "out of memory");
cleanup:
    json_decref(res);
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

/*
 * A JSON value the host built ahead, held by a full userdata: the parts of
 * an intent that are the same for every record of a mapping (its op, names,
 * target and owner), converted once when the mapping is compiled and then
 * shared by reference, instead of converted again for each record. Nothing
 * downstream changes an intent's target or owner, so sharing them is safe.
 */
struct built {
    json_t *json; /* NULL until filled, and once handed over */
    bool once;    /* an intent: its conversion takes the value (a head's shares it) */
};

static int l_built_gc(lua_State *L)
{
    struct built *b = lua_touserdata(L, 1);
    json_decref(b->json);
    b->json = NULL;
    return 0;
}

/* [-0, +1, m] a new, empty holder; made before its json_t so that a memory error leaks nothing. */
static struct built *built_new(lua_State *L)
{
    struct built *b = lua_newuserdatauv(L, sizeof(*b), 0);
    b->json = NULL;
    b->once = false;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &built_mt_key);
    lua_setmetatable(L, -2);
    return b;
}

/* The built value at idx, or NULL for any other userdata (or one still empty). */
static struct built *built_at(const struct to_json_ctx *c, int idx)
{
    struct built *b = NULL;
    if (lua_getmetatable(c->L, idx)) {
        if (lua_topointer(c->L, -1) == c->built_mt) {
            b = lua_touserdata(c->L, idx);
        }
        lua_pop(c->L, 1);
    }
    return b && b->json ? b : NULL;
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
    case LUA_TUSERDATA: {
        struct built *b = built_at(c, idx);
        if (!b) {
            return path_error(c, f, "cannot convert a userdata to JSON");
        }
        /* An intent is converted once, by the host, at the end of its run:
         * handing it over frees it with the others, not at the next collection. */
        j = b->once ? b->json : json_incref(b->json);
        if (b->once) {
            b->json = NULL;
        }
        break;
    }
    case LUA_TTABLE: {
        lua_Integer n = 0;
        bool seq = false;
        bool is_array;
        /* A key, a value and the metatable; nested tables check again. */
        if (!lua_checkstack(L, 4)) {
            return path_error(c, f, "Lua stack exhausted");
        }
        if (lazy_state(L, idx)) {
            lua_pop(L, 1);
            return lazy_to_json(c, idx, depth, f, out);
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

static void ctx_metatables(struct to_json_ctx *c)
{
    lua_rawgetp(c->L, LUA_REGISTRYINDEX, &array_mt_key);
    c->array_mt = lua_topointer(c->L, -1);
    lua_rawgetp(c->L, LUA_REGISTRYINDEX, &built_mt_key);
    c->built_mt = lua_topointer(c->L, -1);
    lua_pop(c->L, 2);
}

int ferry__lua_to_json_at(lua_State *L, int idx, const char *what, const char *what2, json_t **out,
                          struct ferry_err *err)
{
    struct to_json_ctx c = {L, NULL, NULL, what ? what : "value", what2 ? what2 : "", err};
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 2)) {
        return ferry_err_set(err, FERRY_EMAPPING, "%s%s: Lua stack exhausted", c.what, c.what2);
    }
    ctx_metatables(&c);
    return to_json(&c, idx, 0, NULL, out);
}

int ferry__lua_to_json(lua_State *L, int idx, const char *what, json_t **out, struct ferry_err *err)
{
    return ferry__lua_to_json_at(L, idx, what, NULL, out, err);
}

json_t **ferry__lua_push_built(lua_State *L)
{
    return &built_new(L)->json;
}

int ferry__lua_intent_head(lua_State *L)
{
    struct ferry_err err = {0};
    json_t *j = NULL;
    struct built *b;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    b = built_new(L);
    if (ferry__lua_to_json(L, 1, "intent head", &j, &err) < 0) {
        lua_pushstring(L, err.msg);
        return lua_error(L);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return luaL_error(L, "intent head: expected a table with string keys");
    }
    b->json = j;
    return 1;
}

/*
 * The parts of an intent that differ per record or rule, in the order of
 * ferry__lua_intent's arguments from the fourth on.
 */
static const char *const intent_parts[] = {"source.id", "source.event", "op",     "rule",
                                           "target",    "match",        "fields", "owner",
                                           "conflict",  "instead",      "notes"};
#define INTENT_PARTS (int)(sizeof(intent_parts) / sizeof(intent_parts[0]))

/*
 * fields from two lists (names[i] = values[i], a nil value left out): the
 * engine keeps them so, reused from record to record, instead of filling
 * a new table per record for this conversion to walk.
 */
static int fields_from_lists(struct to_json_ctx *c, int names, int values,
                             const struct json_frame *up, json_t **out)
{
    lua_State *L = c->L;
    json_t *fields = json_object();
    lua_Integer n = (lua_Integer)lua_rawlen(L, names);
    int rc = 0;
    if (!fields) {
        return ferry_err_set(c->err, FERRY_ENOMEM, "out of memory");
    }
    for (lua_Integer i = 1; i <= n && rc == 0; i++) {
        json_t *item = NULL;
        size_t klen = 0;
        const char *key;
        if (lua_rawgeti(L, values, i) == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        lua_rawgeti(L, names, i);
        key = lua_tolstring(L, -1, &klen);
        if (!key) {
            rc = path_error(c, up, "field name %lld is not a string", (long long)i);
        } else {
            struct json_frame here = {up, key, klen, 0};
            rc = to_json(c, lua_gettop(L) - 1, 3, &here, &item);
            if (rc == 0 && json_object_setn_new_nocheck(fields, key, klen, item) < 0) {
                rc = ferry_err_set(c->err, FERRY_ENOMEM, "out of memory");
            }
        }
        lua_pop(L, 2);
    }
    if (rc < 0) {
        json_decref(fields);
        return rc;
    }
    *out = fields;
    return 0;
}

int ferry__lua_intent(lua_State *L)
{
    struct ferry_err err = {0};
    struct to_json_ctx c = {L, NULL, NULL, NULL, ": intents", &err};
    struct json_frame root = {NULL, NULL, 0, 0};
    struct json_frame source = {&root, "source", 6, 0};
    const struct built *head;
    struct built *b;
    json_t *intent = NULL;
    json_t *src = NULL;
    const char *key;
    json_t *v;
    int rc = 0;
    lua_settop(L, 3 + INTENT_PARTS + 2);
    luaL_checkstack(L, 8, "intent");
    ctx_metatables(&c);
    head = lua_type(L, 1) == LUA_TUSERDATA ? built_at(&c, 1) : NULL;
    if (!head || !json_is_object(json_object_get(head->json, "source"))) {
        return luaL_argerror(L, 1, "expected an intent head with a source (ferry.intent_head)");
    }
    c.what = luaL_checkstring(L, 2);
    /* Where the host's list will have it, for the path in an error. */
    root.index = luaL_checkinteger(L, 3);
    luaL_checktype(L, 4, LUA_TSTRING);
    if (!lua_isnil(L, 4 + INTENT_PARTS)) {
        luaL_checktype(L, 4 + INTENT_PARTS, LUA_TTABLE);
        luaL_checktype(L, 5 + INTENT_PARTS, LUA_TTABLE);
    }
    b = built_new(L);
    intent = json_object();
    if (!intent) {
        goto nomem;
    }
    json_object_foreach(head->json, key, v)
    {
        if (strcmp(key, "source") == 0) {
            /* Its own object: the id and event are this record's. */
            src = json_copy(v);
            if (!src || json_object_set_new_nocheck(intent, key, src) < 0) {
                goto nomem;
            }
        } else if (json_object_set_nocheck(intent, key, v) < 0) {
            goto nomem;
        }
    }
    for (int i = 0; i < INTENT_PARTS; i++) {
        const char *name = intent_parts[i];
        bool in_source = strncmp(name, "source.", 7) == 0;
        struct json_frame here = {&root, name, strlen(name), 0};
        json_t *item = NULL;
        int idx = 4 + i;
        if (lua_isnil(L, idx)) {
            continue;
        }
        if (in_source) {
            here.up = &source;
            here.key = name + 7;
            here.klen = strlen(here.key);
        }
        /* Depth as in the host's conversion of the whole list: list 0, intent 1. */
        rc = to_json(&c, idx, in_source ? 3 : 2, &here, &item);
        if (rc < 0) {
            goto fail;
        }
        if (json_object_set_new_nocheck(in_source ? src : intent, here.key, item) < 0) {
            goto nomem;
        }
    }
    if (!lua_isnil(L, 4 + INTENT_PARTS)) {
        struct json_frame here = {&root, "fields", 6, 0};
        json_t *fields = NULL;
        rc = fields_from_lists(&c, 4 + INTENT_PARTS, 5 + INTENT_PARTS, &here, &fields);
        if (rc < 0) {
            goto fail;
        }
        if (json_object_set_new_nocheck(intent, "fields", fields) < 0) {
            goto nomem;
        }
    }
    b->json = intent;
    b->once = true;
    return 1;
nomem:
    ferry_err_set(&err, FERRY_ENOMEM, "%s: out of memory", c.what);
fail:
    json_decref(intent);
    lua_pushstring(L, err.msg);
    return lua_error(L);
}
