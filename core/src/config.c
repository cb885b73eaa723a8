/* SPDX-License-Identifier: MIT */
/*
 * Loads the daemon's Lua configuration (see config.h). The file runs in a
 * state with no standard library at all: only literals, tables, arithmetic,
 * locals and the two functions env() and file(). Those return an opaque
 * userdata marker instead of the text, so the loader can tell a secret from
 * a string written into the file, and so a config cannot print or mangle a
 * secret. A count hook and a memory cap make a runaway file fail instead of
 * hanging or exhausting the daemon. The returned table is then walked in C
 * against the fixed key set; connector sections become JSON for the plugin
 * loader to check against each plugin's own declared fields.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "log.h"

#ifndef FERRY_DEFAULT_PLUGIN_DIR
#define FERRY_DEFAULT_PLUGIN_DIR "/usr/local/lib/ferry/plugins"
#endif

#define SECRET_MT         "ferry.config.secret"
#define CONFIG_MEM_MAX    (64u * 1024u * 1024u)
#define CONFIG_INSTR_MAX  10000000
#define CONFIG_HOOK_EVERY 1000
#define SECRET_FILE_MAX   (64 * 1024)
#define JSON_DEPTH_MAX    32
#define SECONDS_MAX       1e9
#define CHUNK_NAME        "ferry-config"

/* Per-load context, reachable from Lua callbacks through the allocator's ud. */
struct load_ctx {
    const char *file; /* the config path as given, for messages */
    const char *dir;  /* absolute directory of the config */
    size_t mem_used;
    long instructions;
    struct ferry_config *cfg;
    struct ferry_err *err;
};

static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct load_ctx *ctx = ud;
    /* When ptr is NULL, osize encodes the object type, not a size. */
    size_t old = ptr ? osize : 0;

    if (nsize == 0) {
        free(ptr);
        ctx->mem_used -= old;
        return NULL;
    }
    if (nsize > old && ctx->mem_used - old + nsize > CONFIG_MEM_MAX) {
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) {
        ctx->mem_used = ctx->mem_used - old + nsize;
    }
    return p;
}

static struct load_ctx *ctx_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static void on_count(lua_State *L, lua_Debug *ar)
{
    struct load_ctx *ctx = ctx_of(L);
    ctx->instructions += CONFIG_HOOK_EVERY;
    if (ctx->instructions > CONFIG_INSTR_MAX) {
        lua_getinfo(L, "l", ar);
        lua_pushfstring(L, "%s:%d: configuration runs too long (instruction limit reached)",
                        ctx->file, ar->currentline);
        lua_error(L);
    }
}

/* "<dir>/<p>" unless p is absolute; new string. */
static char *resolve_path(const char *dir, const char *p)
{
    if (p[0] == '/') {
        return strdup(p);
    }
    size_t n = strlen(dir) + strlen(p) + 2;
    char *out = malloc(n);
    if (out) {
        snprintf(out, n, "%s/%s", dir, p);
    }
    return out;
}

/* [-0, +1, -] pushes a secret marker holding `value`. */
static void push_secret(lua_State *L, const char *value, size_t len)
{
    lua_newuserdatauv(L, 0, 1);
    lua_pushlstring(L, value, len);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, SECRET_MT);
}

/* [-0, +0, -] the secret text at idx, or NULL when idx is no marker. */
static const char *secret_value(lua_State *L, int idx, size_t *len)
{
    idx = lua_absindex(L, idx);
    if (!luaL_testudata(L, idx, SECRET_MT)) {
        return NULL;
    }
    lua_getiuservalue(L, idx, 1);
    /* The registry keeps the marker (and so its text) alive while we walk. */
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    return s;
}

/* env("NAME"): [-1, +1, e] */
static int l_config_env(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    const char *name = luaL_checkstring(L, 1);
    const char *v = getenv(name);

    if (!v || !*v) {
        lua_pushfstring(L, "%s: env(\"%s\") is not set", ctx->file, name);
        return lua_error(L);
    }
    push_secret(L, v, strlen(v));
    return 1;
}

/* file("PATH"): [-1, +1, e] */
static int l_config_file(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    const char *name = luaL_checkstring(L, 1);
    char *path = resolve_path(ctx->dir, name);
    char buf[SECRET_FILE_MAX + 1];
    size_t len = 0;
    const char *why = NULL;

    if (!path) {
        return luaL_error(L, "out of memory");
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        why = strerror(errno);
    } else {
        len = fread(buf, 1, sizeof(buf), f);
        if (ferror(f)) {
            why = strerror(errno);
        } else if (len > SECRET_FILE_MAX) {
            why = "larger than 64 KiB";
        }
        fclose(f);
    }
    if (!why) {
        /* Editors end files with a newline that is not part of the secret. */
        if (len > 0 && buf[len - 1] == '\n') {
            len--;
            if (len > 0 && buf[len - 1] == '\r') {
                len--;
            }
        }
        if (len == 0) {
            why = "is empty";
        }
    }
    if (why) {
        lua_pushfstring(L, "%s: file(\"%s\"): %s: %s", ctx->file, name, path, why);
        free(path);
        return lua_error(L);
    }
    free(path);
    push_secret(L, buf, len);
    /* Do not leave a copy of the secret on the C stack. */
    memset(buf, 0, len);
    return 1;
}

/* Type name for messages: markers read as "secret", floats as "number". */
static const char *type_name(lua_State *L, int idx)
{
    if (luaL_testudata(L, idx, SECRET_MT)) {
        return "secret";
    }
    return luaL_typename(L, idx);
}

static int cfg_err(struct load_ctx *ctx, const char *key, const char *what)
{
    return ferry_err_set(ctx->err, FERRY_ECONFIG, "%s: %s: %s", ctx->file, key, what);
}

static int type_err(struct load_ctx *ctx, lua_State *L, int idx, const char *key,
                    const char *expected)
{
    return ferry_err_set(ctx->err, FERRY_ECONFIG, "%s: %s: expected %s, got %s", ctx->file, key,
                         expected, type_name(L, idx));
}

static int add_secret(struct ferry_config *cfg, const char *s, size_t len)
{
    for (size_t i = 0; i < cfg->nsecrets; i++) {
        if (strlen(cfg->secrets[i]) == len && memcmp(cfg->secrets[i], s, len) == 0) {
            return 0;
        }
    }
    char **v = realloc(cfg->secrets, (cfg->nsecrets + 1) * sizeof(*v));
    if (!v) {
        return FERRY_ENOMEM;
    }
    cfg->secrets = v;
    v[cfg->nsecrets] = strndup(s, len);
    if (!v[cfg->nsecrets]) {
        return FERRY_ENOMEM;
    }
    cfg->nsecrets++;
    return 0;
}

/* The key at idx as text for a key path ("name" or "[3]"). */
static void key_text(lua_State *L, int idx, char *buf, size_t len)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        snprintf(buf, len, "%s", lua_tostring(L, idx));
    } else if (lua_isinteger(L, idx)) {
        snprintf(buf, len, "[%lld]", (long long)lua_tointeger(L, idx));
    } else {
        snprintf(buf, len, "[%s]", luaL_typename(L, idx));
    }
}

/* "a" + "b" for a key path; truncation only shortens an error message. */
static void cat_key(char *buf, size_t len, const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n >= len) {
        n = len - 1;
    }
    memcpy(buf, a, n);
    buf[n] = '\0';
    strncat(buf, b, len - n - 1);
}

static void join_key(char *buf, size_t len, const char *prefix, const char *key)
{
    /* Key paths only label error messages: a very long one may be cut. */
    int n;
    if (prefix && *prefix) {
        n = snprintf(buf, len, "%s.%s", prefix, key);
    } else {
        n = snprintf(buf, len, "%s", key);
    }
    if (n < 0 || (size_t)n >= len) {
        buf[len - 1] = '\0';
    }
}

/* Every key of the table at idx must be one of `allowed` (NULL-terminated). */
static int check_keys(struct load_ctx *ctx, lua_State *L, int idx, const char *prefix,
                      const char *const *allowed)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        bool known = false;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            for (size_t i = 0; allowed[i]; i++) {
                if (strcmp(k, allowed[i]) == 0) {
                    known = true;
                    break;
                }
            }
        }
        if (!known) {
            char k[128];
            char path[256];
            key_text(L, -2, k, sizeof(k));
            join_key(path, sizeof(path), prefix, k);
            lua_pop(L, 2);
            return cfg_err(ctx, path, "unknown key");
        }
        lua_pop(L, 1);
    }
    return 0;
}

/*
 * [-0, +1, -] pushes t[key] for the table at idx. Returns 0 when present,
 * 1 when nil (absent), or an error when the value's type differs from `type`.
 */
static int get_field(struct load_ctx *ctx, lua_State *L, int idx, const char *prefix,
                     const char *key, int type, char *path, size_t pathlen)
{
    static const char *const names[] = {[LUA_TSTRING] = "string",
                                        [LUA_TNUMBER] = "number",
                                        [LUA_TBOOLEAN] = "boolean",
                                        [LUA_TTABLE] = "table"};
    join_key(path, pathlen, prefix, key);
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        return 1;
    }
    if (lua_type(L, -1) != type) {
        return type_err(ctx, L, -1, path, names[type]);
    }
    return 0;
}

static int opt_string(struct load_ctx *ctx, lua_State *L, int idx, const char *prefix,
                      const char *key, char **dst, bool is_path)
{
    char path[256];
    int rc = get_field(ctx, L, idx, prefix, key, LUA_TSTRING, path, sizeof(path));
    if (rc == 0) {
        const char *s = lua_tostring(L, -1);
        if (!*s) {
            rc = cfg_err(ctx, path, "must not be empty");
        } else {
            char *v = is_path ? resolve_path(ctx->dir, s) : strdup(s);
            if (!v) {
                rc = FERRY_ENOMEM;
            } else {
                free(*dst);
                *dst = v;
            }
        }
    } else if (rc == 1) {
        rc = 0;
    }
    lua_pop(L, 1);
    return rc;
}

static int opt_int(struct load_ctx *ctx, lua_State *L, int idx, const char *prefix, const char *key,
                   int64_t lo, int64_t hi, int64_t *dst)
{
    char path[256];
    int rc = get_field(ctx, L, idx, prefix, key, LUA_TNUMBER, path, sizeof(path));
    if (rc == 0) {
        if (!lua_isinteger(L, -1)) {
            rc = ferry_err_set(ctx->err, FERRY_ECONFIG, "%s: %s: expected integer, got number",
                               ctx->file, path);
        } else {
            lua_Integer v = lua_tointeger(L, -1);
            if (v < lo || v > hi) {
                rc = ferry_err_set(ctx->err, FERRY_ECONFIG, "%s: %s: out of range (%lld..%lld)",
                                   ctx->file, path, (long long)lo, (long long)hi);
            } else {
                *dst = v;
            }
        }
    } else if (rc == 1) {
        rc = 0;
    }
    lua_pop(L, 1);
    return rc;
}

static int opt_bool(struct load_ctx *ctx, lua_State *L, int idx, const char *prefix,
                    const char *key, bool *dst)
{
    char path[256];
    int rc = get_field(ctx, L, idx, prefix, key, LUA_TBOOLEAN, path, sizeof(path));
    if (rc == 0) {
        *dst = lua_toboolean(L, -1);
    } else if (rc == 1) {
        rc = 0;
    }
    lua_pop(L, 1);
    return rc;
}

/* A duration given in (possibly fractional) seconds, stored in ms. */
static int opt_seconds(struct load_ctx *ctx, lua_State *L, int idx, const char *prefix,
                       const char *key, bool positive, int64_t *dst_ms)
{
    char path[256];
    int rc = get_field(ctx, L, idx, prefix, key, LUA_TNUMBER, path, sizeof(path));
    if (rc == 0) {
        double v = lua_tonumber(L, -1);
        if (!(v >= 0.0) || v > SECONDS_MAX || (positive && v <= 0.0)) {
            rc = ferry_err_set(ctx->err, FERRY_ECONFIG, "%s: %s: out of range (%s seconds)",
                               ctx->file, path, positive ? "> 0" : ">= 0");
        } else {
            *dst_ms = (int64_t)llround(v * 1000.0);
        }
    } else if (rc == 1) {
        rc = 0;
    }
    lua_pop(L, 1);
    return rc;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* An array of non-empty strings. */
static int opt_strings(struct load_ctx *ctx, lua_State *L, int idx, const char *prefix,
                       const char *key, char ***dst, size_t *ndst)
{
    char path[256];
    char **v = NULL;
    size_t n = 0;
    int rc = get_field(ctx, L, idx, prefix, key, LUA_TTABLE, path, sizeof(path));
    if (rc != 0) {
        rc = rc == 1 ? 0 : rc;
        goto cleanup;
    }
    lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        char item[300];
        char k[64];
        key_text(L, -2, k, sizeof(k));
        cat_key(item, sizeof(item), path, k);
        if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 || lua_tointeger(L, -2) > len) {
            lua_pop(L, 2);
            rc = cfg_err(ctx, path, "expected a list of strings");
            goto cleanup;
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            rc = type_err(ctx, L, -1, item, "string");
            lua_pop(L, 2);
            goto cleanup;
        }
        lua_pop(L, 1);
    }
    v = calloc((size_t)len + 1, sizeof(*v));
    if (!v) {
        rc = FERRY_ENOMEM;
        goto cleanup;
    }
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, -1, i);
        v[n] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (!v[n]) {
            rc = FERRY_ENOMEM;
            goto cleanup;
        }
        n++;
    }
    free_strv(*dst, *ndst);
    *dst = v;
    *ndst = n;
    v = NULL;
    n = 0;
cleanup:
    free_strv(v, n);
    lua_pop(L, 1);
    return rc;
}

/*
 * [-0, +1, -] pushes the section table `key` of the table at idx (nil when
 * absent) after checking its keys. Returns 0 present, 1 absent, or an error.
 */
static int section(struct load_ctx *ctx, lua_State *L, int idx, const char *key,
                   const char *const *allowed)
{
    char path[256];
    int rc = get_field(ctx, L, idx, "", key, LUA_TTABLE, path, sizeof(path));
    if (rc == 0) {
        rc = check_keys(ctx, L, -1, key, allowed);
    }
    return rc;
}

/* Convert the Lua value at idx to JSON; secrets become {"$secret": v}. */
static int to_json(struct load_ctx *ctx, lua_State *L, int idx, const char *path, int depth,
                   json_t **out)
{
    size_t len = 0;
    const char *s;
    json_t *j = NULL;
    int rc = 0;

    idx = lua_absindex(L, idx);
    /* Each level holds a key and a value on the Lua stack, beyond LUA_MINSTACK when deep. */
    if (depth > JSON_DEPTH_MAX || !lua_checkstack(L, 4)) {
        return cfg_err(ctx, path, "nested too deeply");
    }
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        j = json_stringn(s, len);
        if (!j) {
            return cfg_err(ctx, path, "not valid UTF-8");
        }
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            j = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d)) {
                return cfg_err(ctx, path, "not a finite number");
            }
            j = json_real(d);
        }
        break;
    case LUA_TBOOLEAN:
        j = json_boolean(lua_toboolean(L, idx));
        break;
    case LUA_TUSERDATA:
        s = secret_value(L, idx, &len);
        if (!s) {
            return type_err(ctx, L, idx, path, "string, number, boolean or table");
        }
        rc = add_secret(ctx->cfg, s, len);
        if (rc < 0) {
            return rc;
        }
        j = json_pack("{s:s%}", "$secret", s, len);
        if (!j) {
            return cfg_err(ctx, path, "secret is not valid UTF-8");
        }
        break;
    case LUA_TTABLE: {
        /* A table whose keys are exactly 1..n is an array; an empty one too. */
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        lua_Integer count = 0;
        bool has_string = false;
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            count++;
            if (lua_type(L, -2) == LUA_TSTRING) {
                has_string = true;
            } else if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 ||
                       lua_tointeger(L, -2) > n) {
                char k[64];
                char sub[300];
                key_text(L, -2, k, sizeof(k));
                cat_key(sub, sizeof(sub), path, k);
                lua_pop(L, 2);
                return cfg_err(ctx, sub, "keys must be strings or 1..n");
            }
            lua_pop(L, 1);
        }
        if (has_string && count != 0 && n > 0) {
            return cfg_err(ctx, path, "mixes list items and named keys");
        }
        if (!has_string) {
            j = json_array();
            for (lua_Integer i = 1; j && i <= n; i++) {
                char sub[300];
                json_t *item = NULL;
                snprintf(sub, sizeof(sub), "%s[%lld]", path, (long long)i);
                lua_rawgeti(L, idx, i);
                rc = to_json(ctx, L, -1, sub, depth + 1, &item);
                lua_pop(L, 1);
                if (rc < 0 || json_array_append_new(j, item) != 0) {
                    json_decref(j);
                    return rc < 0 ? rc : FERRY_ENOMEM;
                }
            }
        } else {
            j = json_object();
            lua_pushnil(L);
            while (j && lua_next(L, idx) != 0) {
                char sub[300];
                json_t *item = NULL;
                join_key(sub, sizeof(sub), path, lua_tostring(L, -2));
                rc = to_json(ctx, L, -1, sub, depth + 1, &item);
                if (rc == 0 && json_object_set_new(j, lua_tostring(L, -2), item) != 0) {
                    rc = cfg_err(ctx, sub, "key is not valid UTF-8");
                }
                lua_pop(L, 1);
                if (rc < 0) {
                    lua_pop(L, 1);
                    json_decref(j);
                    return rc;
                }
            }
        }
        break;
    }
    default:
        return type_err(ctx, L, idx, path, "string, number, boolean or table");
    }
    if (!j) {
        return FERRY_ENOMEM;
    }
    *out = j;
    return 0;
}

static bool valid_name(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

static int load_connector(struct load_ctx *ctx, lua_State *L, const char *instance, int idx,
                          struct ferry_connector_cfg *cc)
{
    char path[256];
    int rc;

    snprintf(path, sizeof(path), "connectors.%s", instance);
    if (!valid_name(instance)) {
        return cfg_err(ctx, path, "instance names use only letters, digits, '_' and '-'");
    }
    if (lua_type(L, idx) != LUA_TTABLE) {
        return type_err(ctx, L, idx, path, "table");
    }
    cc->name = strdup(instance);
    cc->settings = json_object();
    if (!cc->name || !cc->settings) {
        return FERRY_ENOMEM;
    }
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        char sub[300];
        char k[128];
        key_text(L, -2, k, sizeof(k));
        join_key(sub, sizeof(sub), path, k);
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return cfg_err(ctx, sub, "keys must be strings");
        }
        if (strcmp(k, "plugin") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING) {
                rc = type_err(ctx, L, -1, sub, "string");
                lua_pop(L, 2);
                return rc;
            }
            if (!valid_name(lua_tostring(L, -1))) {
                lua_pop(L, 2);
                return cfg_err(ctx, sub, "plugin names use only letters, digits, '_' and '-'");
            }
            cc->plugin = strdup(lua_tostring(L, -1));
            if (!cc->plugin) {
                lua_pop(L, 2);
                return FERRY_ENOMEM;
            }
        } else {
            json_t *v = NULL;
            rc = to_json(ctx, L, -1, sub, 1, &v);
            if (rc == 0 && json_object_set_new(cc->settings, k, v) != 0) {
                rc = cfg_err(ctx, sub, "key is not valid UTF-8");
            }
            if (rc < 0) {
                lua_pop(L, 2);
                return rc;
            }
        }
        lua_pop(L, 1);
    }
    if (!cc->plugin) {
        cc->plugin = strdup(instance);
        if (!cc->plugin) {
            return FERRY_ENOMEM;
        }
    }
    return 0;
}

static int compare_connectors(const void *a, const void *b)
{
    const struct ferry_connector_cfg *x = a;
    const struct ferry_connector_cfg *y = b;
    return strcmp(x->name, y->name);
}

static int load_connectors(struct load_ctx *ctx, lua_State *L, int root)
{
    struct ferry_config *cfg = ctx->cfg;
    char path[256];
    int rc = get_field(ctx, L, root, "", "connectors", LUA_TTABLE, path, sizeof(path));
    size_t n = 0;

    if (rc < 0) {
        goto cleanup;
    }
    if (rc == 0) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            n++;
            lua_pop(L, 1);
        }
    }
    if (n == 0) {
        rc = cfg_err(ctx, "connectors", "required");
        goto cleanup;
    }
    cfg->connectors = calloc(n, sizeof(*cfg->connectors));
    if (!cfg->connectors) {
        rc = FERRY_ENOMEM;
        goto cleanup;
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        char k[128];
        key_text(L, -2, k, sizeof(k));
        if (lua_type(L, -2) != LUA_TSTRING) {
            char sub[200];
            snprintf(sub, sizeof(sub), "connectors.%s", k);
            lua_pop(L, 2);
            rc = cfg_err(ctx, sub, "instance names must be strings");
            goto cleanup;
        }
        /* Count first, so that a partly filled entry is still freed. */
        struct ferry_connector_cfg *cc = &cfg->connectors[cfg->nconnectors++];
        rc = load_connector(ctx, L, k, -1, cc);
        lua_pop(L, 1);
        if (rc < 0) {
            lua_pop(L, 1);
            goto cleanup;
        }
    }
    /* Lua's table order is randomised per state; output and start-up order must not be. */
    qsort(cfg->connectors, cfg->nconnectors, sizeof(*cfg->connectors), compare_connectors);
    rc = 0;
cleanup:
    lua_pop(L, 1);
    return rc;
}

static int load_state(struct load_ctx *ctx, lua_State *L, int sec)
{
    return opt_string(ctx, L, sec, "state", "path", &ctx->cfg->state_path, true);
}

static int load_log(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    char *level = NULL;
    char *format = NULL;
    int rc = opt_string(ctx, L, sec, "log", "level", &level, false);
    if (rc < 0) {
        goto cleanup;
    }
    rc = opt_string(ctx, L, sec, "log", "format", &format, false);
    if (rc < 0) {
        goto cleanup;
    }
    if (level && ferry_log_level_parse(level, &cfg->log_level) < 0) {
        rc = cfg_err(ctx, "log.level", "expected one of error, warn, info, debug, trace");
    } else if (format && strcmp(format, "json") == 0) {
        cfg->log_format = FERRY_LOG_JSON;
    } else if (format && strcmp(format, "text") == 0) {
        cfg->log_format = FERRY_LOG_TEXT;
    } else if (format) {
        rc = cfg_err(ctx, "log.format", "expected \"json\" or \"text\"");
    }
cleanup:
    free(level);
    free(format);
    return rc;
}

static int load_plugins(struct load_ctx *ctx, lua_State *L, int sec)
{
    return opt_string(ctx, L, sec, "plugins", "dir", &ctx->cfg->plugin_dir, true);
}

static int load_mappings(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    int rc = opt_string(ctx, L, sec, "mappings", "dir", &cfg->mapping_dir, true);
    if (rc == 0) {
        rc = opt_string(ctx, L, sec, "mappings", "lua_path", &cfg->lua_dir, true);
    }
    if (rc == 0) {
        rc = opt_strings(ctx, L, sec, "mappings", "enabled", &cfg->mappings, &cfg->nmappings);
    }
    if (rc == 0) {
        rc = opt_int(ctx, L, sec, "mappings", "memory_limit", 1024 * 1024, INT64_MAX,
                     &cfg->lua_mem_max);
    }
    /* The instruction budget became a time limit: a count hook made every mapped record
     * a fifth slower. An old file must not start with a limit it did not ask for. */
    if (rc == 0 && lua_getfield(L, sec, "instruction_limit") != LUA_TNIL) {
        rc = cfg_err(ctx, "mappings.instruction_limit",
                     "no longer supported: use mappings.time_limit (seconds per call, "
                     "fractional ok, default 1)");
    }
    lua_pop(L, 1);
    if (rc == 0) {
        rc = opt_seconds(ctx, L, sec, "mappings", "time_limit", true, &cfg->lua_time_limit_ms);
    }
    if (rc == 0 && (cfg->lua_time_limit_ms < 1 || cfg->lua_time_limit_ms > 86400 * 1000)) {
        rc = cfg_err(ctx, "mappings.time_limit", "out of range (0.001 to 86400 seconds)");
    }
    if (rc == 0) {
        rc = opt_bool(ctx, L, sec, "mappings", "watch", &cfg->mapping_watch);
    }
    if (rc == 0) {
        rc = opt_seconds(ctx, L, sec, "mappings", "echo_ttl", true, &cfg->echo_ttl_ms);
    }
    /* mappings.settings.<mapping> = { ... }: thresholds and tables a mapping
     * reads as ctx.settings (map.setting), kept as JSON. */
    if (rc == 0 && lua_getfield(L, sec, "settings") == LUA_TNIL) {
        lua_pop(L, 1);
    } else if (rc == 0) {
        if (!lua_istable(L, -1)) {
            rc = ferry_err_set(ctx->err, FERRY_ECONFIG,
                               "%s: mappings.settings: expected a table of tables", ctx->file);
        } else {
            rc = to_json(ctx, L, lua_gettop(L), "mappings.settings", 1, &cfg->mapping_settings);
            if (rc == 0 && !json_is_object(cfg->mapping_settings)) {
                rc = ferry_err_set(ctx->err, FERRY_ECONFIG,
                                   "%s: mappings.settings: expected { <mapping> = { ... } }",
                                   ctx->file);
            }
        }
        lua_pop(L, 1);
    }
    return rc;
}

/*
 * Header limits and the idle timeout. h2o 2.2 parses at most 100 header
 * fields and about 400 KiB of request head by itself; ours are stricter and
 * are checked before any route runs.
 */
static int load_limits(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    int64_t max_headers = cfg->max_headers;
    int64_t max_header_bytes = (int64_t)cfg->max_header_bytes;
    int rc = opt_int(ctx, L, sec, "webhooks", "max_headers", 1, 100, &max_headers);
    if (rc == 0) {
        rc = opt_int(ctx, L, sec, "webhooks", "max_header_bytes", 1024, 256 * 1024,
                     &max_header_bytes);
    }
    if (rc == 0) {
        rc = opt_seconds(ctx, L, sec, "webhooks", "idle_timeout", true, &cfg->idle_timeout_ms);
    }
    cfg->max_headers = (int)max_headers;
    cfg->max_header_bytes = (size_t)max_header_bytes;
    return rc;
}

/* webhooks.tls = { cert = "...", key = "..." }: both or neither. */
static int load_tls(struct load_ctx *ctx, lua_State *L, int sec)
{
    static const char *const keys[] = {"cert", "key", NULL};
    struct ferry_config *cfg = ctx->cfg;
    char path[256];
    int rc = get_field(ctx, L, sec, "webhooks", "tls", LUA_TTABLE, path, sizeof(path));
    if (rc == 1) {
        rc = 0;
        goto cleanup;
    }
    if (rc < 0) {
        goto cleanup;
    }
    int tls = lua_gettop(L);
    rc = check_keys(ctx, L, tls, "webhooks.tls", keys);
    if (rc == 0) {
        rc = opt_string(ctx, L, tls, "webhooks.tls", "cert", &cfg->tls_cert, true);
    }
    if (rc == 0) {
        rc = opt_string(ctx, L, tls, "webhooks.tls", "key", &cfg->tls_key, true);
    }
    if (rc == 0 && !cfg->tls_cert) {
        rc = cfg_err(ctx, "webhooks.tls.cert", "required (a PEM certificate chain file)");
    } else if (rc == 0 && !cfg->tls_key) {
        rc = cfg_err(ctx, "webhooks.tls.key", "required (a PEM private key file)");
    }
cleanup:
    lua_pop(L, 1);
    return rc;
}

/* admin = { address, port, port_file }: present means the admin listener runs. */
static int load_admin(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    int64_t port = 9464;
    int rc = opt_string(ctx, L, sec, "admin", "address", &cfg->admin_address, false);
    if (rc == 0) {
        rc = opt_int(ctx, L, sec, "admin", "port", 0, 65535, &port);
    }
    if (rc == 0) {
        rc = opt_string(ctx, L, sec, "admin", "port_file", &cfg->admin_port_file, true);
    }
    cfg->admin_port = (int)port;
    return rc;
}

/* privacy.salt: a string, or better a secret from env()/file(). */
static int load_salt(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    size_t len = 0;
    int rc = 0;
    lua_getfield(L, sec, "salt");
    if (lua_isnil(L, -1)) {
        goto cleanup;
    }
    const char *s = secret_value(L, -1, &len);
    if (s) {
        rc = add_secret(cfg, s, len);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &len);
    } else {
        rc = type_err(ctx, L, -1, "privacy.salt", "string or secret");
        goto cleanup;
    }
    if (rc == 0) {
        free(cfg->privacy_salt);
        cfg->privacy_salt = strndup(s, len);
        rc = cfg->privacy_salt ? 0 : FERRY_ENOMEM;
    }
cleanup:
    lua_pop(L, 1);
    return rc;
}

static int load_privacy(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    char *emails = NULL;
    int rc = opt_strings(ctx, L, sec, "privacy", "mask", &cfg->privacy_mask, &cfg->nprivacy_mask);
    if (rc == 0) {
        rc = opt_strings(ctx, L, sec, "privacy", "hash", &cfg->privacy_hash, &cfg->nprivacy_hash);
    }
    if (rc == 0) {
        rc = opt_string(ctx, L, sec, "privacy", "emails", &emails, false);
    }
    if (rc == 0 && emails) {
        if (strcmp(emails, "mask") == 0) {
            cfg->privacy_emails = 1;
        } else if (strcmp(emails, "hash") == 0) {
            cfg->privacy_emails = 2;
        } else {
            rc = cfg_err(ctx, "privacy.emails", "expected \"mask\" or \"hash\"");
        }
    }
    if (rc == 0) {
        rc = load_salt(ctx, L, sec);
    }
    free(emails);
    return rc;
}

/* An age in (possibly fractional) days, stored in ms; 0 means "keep". */
static int opt_days(struct load_ctx *ctx, lua_State *L, int idx, const char *prefix,
                    const char *key, int64_t *dst_ms)
{
    char path[256];
    int rc = get_field(ctx, L, idx, prefix, key, LUA_TNUMBER, path, sizeof(path));
    if (rc == 0) {
        double v = lua_tonumber(L, -1);
        if (!(v >= 0.0) || v > 36500.0) {
            rc = ferry_err_set(ctx->err, FERRY_ECONFIG, "%s: %s: out of range (0..36500 days)",
                               ctx->file, path);
        } else {
            *dst_ms = (int64_t)llround(v * 86400000.0);
        }
    } else if (rc == 1) {
        rc = 0;
    }
    lua_pop(L, 1);
    return rc;
}

static int load_retention(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    int64_t batch = cfg->retention_batch;
    int rc = opt_days(ctx, L, sec, "retention", "audit_days", &cfg->retention_audit_ms);
    if (rc == 0) {
        rc = opt_days(ctx, L, sec, "retention", "jobs_days", &cfg->retention_jobs_ms);
    }
    if (rc == 0) {
        rc = opt_int(ctx, L, sec, "retention", "batch", 1, 100000, &batch);
    }
    if (rc == 0) {
        rc = opt_seconds(ctx, L, sec, "retention", "interval", true, &cfg->retention_interval_ms);
    }
    cfg->retention_batch = (int)batch;
    return rc;
}

static int load_webhooks(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    int64_t port = cfg->listen_port;
    int64_t max_body = (int64_t)cfg->max_body;
    int rc = opt_string(ctx, L, sec, "webhooks", "address", &cfg->listen_address, false);
    if (rc == 0) {
        rc = opt_int(ctx, L, sec, "webhooks", "port", 0, 65535, &port);
    }
    if (rc == 0) {
        rc = opt_string(ctx, L, sec, "webhooks", "port_file", &cfg->port_file, true);
    }
    if (rc == 0) {
        rc = opt_int(ctx, L, sec, "webhooks", "max_body", 1024, INT32_MAX, &max_body);
    }
    if (rc == 0) {
        rc = opt_seconds(ctx, L, sec, "webhooks", "dedupe_window", false, &cfg->dedupe_window_ms);
    }
    if (rc == 0) {
        rc = opt_seconds(ctx, L, sec, "webhooks", "coalesce_window", false,
                         &cfg->coalesce_window_ms);
    }
    if (rc == 0) {
        rc = opt_string(ctx, L, sec, "webhooks", "public_url", &cfg->public_url, false);
    }
    if (rc == 0) {
        rc = opt_seconds(ctx, L, sec, "webhooks", "silence_alert", false, &cfg->silence_alert_ms);
    }
    cfg->listen_port = (int)port;
    cfg->max_body = (size_t)max_body;
    if (rc == 0) {
        rc = load_limits(ctx, L, sec);
    }
    if (rc == 0) {
        rc = load_tls(ctx, L, sec);
    }
    return rc;
}

static int load_poll(struct load_ctx *ctx, lua_State *L, int sec)
{
    int64_t batch = ctx->cfg->batch_size;
    int rc = opt_seconds(ctx, L, sec, "poll", "interval", false, &ctx->cfg->poll_interval_ms);
    if (rc == 0) {
        rc = opt_int(ctx, L, sec, "poll", "batch_size", 1, 500, &batch);
    }
    ctx->cfg->batch_size = (int)batch;
    return rc;
}

static int load_retry(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    int64_t attempts = cfg->retry_max_attempts;
    int rc = opt_int(ctx, L, sec, "retry", "max_attempts", 1, 1000, &attempts);
    if (rc == 0) {
        rc = opt_seconds(ctx, L, sec, "retry", "base_delay", false, &cfg->retry_base_ms);
    }
    if (rc == 0) {
        rc = opt_seconds(ctx, L, sec, "retry", "max_delay", false, &cfg->retry_max_ms);
    }
    if (rc == 0 && cfg->retry_max_ms < cfg->retry_base_ms) {
        rc = cfg_err(ctx, "retry.max_delay", "must not be below retry.base_delay");
    }
    cfg->retry_max_attempts = (int)attempts;
    return rc;
}

static int load_http(struct load_ctx *ctx, lua_State *L, int sec)
{
    struct ferry_config *cfg = ctx->cfg;
    int rc = opt_seconds(ctx, L, sec, "http", "timeout", true, &cfg->http_timeout_ms);
    if (rc == 0) {
        rc = opt_strings(ctx, L, sec, "http", "insecure_hosts", &cfg->insecure_hosts,
                         &cfg->ninsecure_hosts);
    }
    return rc;
}

static const char *const top_keys[] = {"state",    "workers",   "log",        "plugins", "mappings",
                                       "webhooks", "poll",      "retry",      "http",    "admin",
                                       "privacy",  "retention", "connectors", NULL};

static const struct section_def {
    const char *name;
    const char *const keys[16];
    int (*load)(struct load_ctx *ctx, lua_State *L, int sec);
} sections[] = {
    {"state", {"path", NULL}, load_state},
    {"log", {"level", "format", NULL}, load_log},
    {"plugins", {"dir", NULL}, load_plugins},
    {"mappings",
     {"dir", "lua_path", "enabled", "memory_limit", "time_limit", "instruction_limit", "settings",
      "watch", "echo_ttl", NULL},
     load_mappings},
    {"webhooks",
     {"address", "port", "port_file", "max_body", "dedupe_window", "public_url", "silence_alert",
      "tls", "max_headers", "max_header_bytes", "idle_timeout", "coalesce_window", NULL},
     load_webhooks},
    {"poll", {"interval", "batch_size", NULL}, load_poll},
    {"retry", {"max_attempts", "base_delay", "max_delay", NULL}, load_retry},
    {"http", {"timeout", "insecure_hosts", NULL}, load_http},
    {"admin", {"address", "port", "port_file", NULL}, load_admin},
    {"privacy", {"mask", "hash", "emails", "salt", NULL}, load_privacy},
    {"retention", {"audit_days", "jobs_days", "batch", "interval", NULL}, load_retention},
};

/* Walk the table at the top of the stack into ctx->cfg. */
static int load_table(struct load_ctx *ctx, lua_State *L)
{
    int root = lua_gettop(L);
    int64_t workers = ctx->cfg->workers;
    int rc = check_keys(ctx, L, root, "", top_keys);
    if (rc < 0) {
        return rc;
    }
    rc = opt_int(ctx, L, root, "", "workers", 1, 64, &workers);
    if (rc < 0) {
        return rc;
    }
    ctx->cfg->workers = (int)workers;
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
        rc = section(ctx, L, root, sections[i].name, sections[i].keys);
        if (rc == 0) {
            rc = sections[i].load(ctx, L, lua_gettop(L));
        } else if (rc == 1) {
            rc = 0;
        }
        lua_pop(L, 1);
        if (rc < 0) {
            return rc;
        }
    }
    return load_connectors(ctx, L, root);
}

/*
 * A directory next to the config file when there is one (a deployment's own
 * copy, as `ferry init` writes), else the installed one, so that a packaged
 * ferry finds its shipped mappings and helpers with no paths in the config.
 */
static char *default_dir(const char *dir, const char *name)
{
    struct stat sb;
    char *local = resolve_path(dir, name);
    if (!local || (stat(local, &sb) == 0 && S_ISDIR(sb.st_mode))) {
        return local;
    }
    free(local);
    return resolve_path(FERRY_DEFAULT_SHARE_DIR, name);
}

static int set_defaults(struct ferry_config *cfg, const char *path, const char *dir)
{
    cfg->path = strdup(path);
    cfg->dir = strdup(dir);
    cfg->state_path = resolve_path(dir, "ferry.db");
    cfg->workers = 4;
    cfg->log_level = FERRY_LOG_INFO;
    cfg->log_format = FERRY_LOG_JSON;
    cfg->plugin_dir = strdup(FERRY_DEFAULT_PLUGIN_DIR);
    cfg->mapping_dir = default_dir(dir, "mappings");
    cfg->lua_dir = default_dir(dir, "lua");
    cfg->listen_address = strdup("127.0.0.1");
    cfg->listen_port = 8080;
    cfg->max_body = 1024 * 1024;
    cfg->dedupe_window_ms = 600 * 1000;
    cfg->batch_size = 25;
    cfg->poll_interval_ms = 300 * 1000;
    cfg->retry_max_attempts = 8;
    cfg->retry_base_ms = 1000;
    cfg->retry_max_ms = 600 * 1000;
    cfg->http_timeout_ms = 30 * 1000;
    cfg->lua_mem_max = 64 * 1024 * 1024;
    cfg->lua_time_limit_ms = 1000;
    cfg->mapping_watch = true;
    cfg->echo_ttl_ms = 24 * 3600 * 1000;
    cfg->coalesce_window_ms = 5000;
    cfg->admin_address = strdup("127.0.0.1");
    cfg->admin_port = -1;
    cfg->max_headers = 64;
    cfg->max_header_bytes = 16 * 1024;
    cfg->idle_timeout_ms = 10 * 1000;
    cfg->retention_batch = 500;
    cfg->retention_interval_ms = 60 * 1000;
    if (!cfg->admin_address || !cfg->path || !cfg->dir || !cfg->state_path || !cfg->plugin_dir ||
        !cfg->mapping_dir || !cfg->lua_dir || !cfg->listen_address) {
        return FERRY_ENOMEM;
    }
    return 0;
}

/*
 * The absolute directory holding `path`; new string. Not canonicalised:
 * symlinked deployments expect paths next to the link, not its target.
 */
static char *config_dir(const char *path)
{
    char cwd[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    char *dir = NULL;

    if (path[0] == '/') {
        return strndup(path, dirlen ? dirlen : 1);
    }
    if (!getcwd(cwd, sizeof(cwd))) {
        return NULL;
    }
    size_t n = strlen(cwd) + dirlen + 2;
    dir = malloc(n);
    if (dir) {
        if (slash) {
            snprintf(dir, n, "%s/%.*s", cwd, (int)dirlen, path);
        } else {
            snprintf(dir, n, "%s", cwd);
        }
    }
    return dir;
}

struct chunk_reader {
    FILE *f;
    char buf[4096];
};

static const char *read_chunk(lua_State *L, void *ud, size_t *size)
{
    struct chunk_reader *r = ud;
    *size = fread(r->buf, 1, sizeof(r->buf), r->f);
    return *size > 0 ? r->buf : NULL;
}

/* [-0, +1, -] like luaL_loadfilex(L, path, "t") but with chunk name CHUNK_NAME. */
static int load_chunk(lua_State *L, const char *path)
{
    struct chunk_reader r;
    r.f = fopen(path, "rb");
    if (!r.f) {
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return LUA_ERRFILE;
    }
    int st = lua_load(L, read_chunk, &r, "=" CHUNK_NAME, "t");
    if (ferror(r.f)) {
        lua_pop(L, 1);
        lua_pushfstring(L, "%s: read error", path);
        st = LUA_ERRFILE;
    }
    fclose(r.f);
    return st;
}

int ferry_config_load(struct ferry_config **out, const char *path, struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    struct ferry_config *cfg = calloc(1, sizeof(*cfg));
    struct load_ctx ctx = {.file = path, .err = err, .cfg = cfg};
    lua_State *L = NULL;
    char *dir = NULL;
    struct stat st;

    ferry_err_clear(err);
    if (!cfg) {
        goto cleanup;
    }
    if (stat(path, &st) != 0) {
        rc = ferry_err_set(err, FERRY_ECONFIG, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ferry_err_set(err, FERRY_ECONFIG, "%s: not a regular file", path);
        goto cleanup;
    }
    dir = config_dir(path);
    if (!dir) {
        rc = ferry_err_set(err, FERRY_ECONFIG, "%s: cannot resolve its directory: %s", path,
                           strerror(errno));
        goto cleanup;
    }
    ctx.dir = dir;
    rc = set_defaults(cfg, path, dir);
    if (rc < 0) {
        goto cleanup;
    }

    L = lua_newstate(config_alloc, &ctx);
    if (!L) {
        rc = FERRY_ENOMEM;
        goto cleanup;
    }
    luaL_newmetatable(L, SECRET_MT);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_config_env);
    lua_setglobal(L, "env");
    lua_pushcfunction(L, l_config_file);
    lua_setglobal(L, "file");
    lua_sethook(L, on_count, LUA_MASKCOUNT, CONFIG_HOOK_EVERY);

    /*
     * Text only: a precompiled chunk could bypass every check the parser
     * makes. The short chunk name is swapped for the real path below, because
     * Lua cuts long chunk names in messages to LUA_IDSIZE characters.
     */
    int st_lua = load_chunk(L, path);
    if (st_lua == LUA_OK) {
        st_lua = lua_pcall(L, 0, 1, 0);
    }
    if (st_lua != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) {
            msg = "(error object is not a string)";
        }
        size_t cl = strlen(CHUNK_NAME);
        if (strncmp(msg, CHUNK_NAME ":", cl + 1) == 0) {
            rc = ferry_err_set(err, FERRY_ECONFIG, "%s:%s", path, msg + cl + 1);
        } else {
            rc = ferry_err_set(err, FERRY_ECONFIG, "%s", msg);
        }
        goto cleanup;
    }
    lua_sethook(L, NULL, 0, 0);
    if (lua_type(L, -1) != LUA_TTABLE) {
        rc = ferry_err_set(err, FERRY_ECONFIG, "%s: expected the file to return a table, got %s",
                           path, type_name(L, -1));
        goto cleanup;
    }
    rc = load_table(&ctx, L);
    if (rc < 0) {
        if (rc == FERRY_ENOMEM && err && !err->code) {
            ferry_err_set(err, rc, "%s: out of memory", path);
        }
        goto cleanup;
    }

    /* One switch for every command, so tests and packagers can point at a build tree. */
    const char *env_dir = getenv("FERRY_PLUGIN_DIR");
    if (env_dir && *env_dir) {
        char *d = strdup(env_dir);
        if (!d) {
            rc = FERRY_ENOMEM;
            goto cleanup;
        }
        free(cfg->plugin_dir);
        cfg->plugin_dir = d;
    }
    *out = cfg;
    cfg = NULL;
    rc = 0;
cleanup:
    if (rc == FERRY_ENOMEM && err && !err->code) {
        ferry_err_set(err, rc, "%s: out of memory", path);
    }
    if (L) {
        lua_close(L);
    }
    free(dir);
    ferry_config_free(cfg);
    return rc;
}

void ferry_config_free(struct ferry_config *cfg)
{
    if (!cfg) {
        return;
    }
    free(cfg->path);
    free(cfg->dir);
    free(cfg->state_path);
    free(cfg->plugin_dir);
    free(cfg->mapping_dir);
    free(cfg->lua_dir);
    json_decref(cfg->mapping_settings);
    free_strv(cfg->mappings, cfg->nmappings);
    free(cfg->listen_address);
    free(cfg->port_file);
    free(cfg->public_url);
    free_strv(cfg->insecure_hosts, cfg->ninsecure_hosts);
    free(cfg->admin_address);
    free(cfg->admin_port_file);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free_strv(cfg->privacy_mask, cfg->nprivacy_mask);
    free_strv(cfg->privacy_hash, cfg->nprivacy_hash);
    if (cfg->privacy_salt) {
        memset(cfg->privacy_salt, 0, strlen(cfg->privacy_salt));
        free(cfg->privacy_salt);
    }
    for (size_t i = 0; i < cfg->nconnectors; i++) {
        free(cfg->connectors[i].name);
        free(cfg->connectors[i].plugin);
        json_decref(cfg->connectors[i].settings);
    }
    free(cfg->connectors);
    for (size_t i = 0; i < cfg->nsecrets; i++) {
        /* Secrets should not linger in freed heap memory. */
        memset(cfg->secrets[i], 0, strlen(cfg->secrets[i]));
        free(cfg->secrets[i]);
    }
    free(cfg->secrets);
    free(cfg);
}

const struct ferry_connector_cfg *ferry_config_connector(const struct ferry_config *cfg,
                                                         const char *name)
{
    if (!cfg || !name) {
        return NULL;
    }
    for (size_t i = 0; i < cfg->nconnectors; i++) {
        if (strcmp(cfg->connectors[i].name, name) == 0) {
            return &cfg->connectors[i];
        }
    }
    return NULL;
}
