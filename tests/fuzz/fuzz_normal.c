/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the normal forms (core/src/normal.c), which read whatever a
 * store puts in a record's fields. For every input: each C form stays in
 * its bounds and keeps its promises (a decimal is its own normal form, a
 * parsed time written as ISO reads back as the same second, a trimmed text
 * has no blank at either end), and each Lua function answers without
 * raising, with the input's first byte as cut's length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "normal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "normal forms: %s\n", what);
        abort();
    }
}

static void check_c_forms(const char *s, size_t size)
{
    size_t n, n2;
    const char *t = ferry_normal_trim(s, size, &n);
    check(t == NULL || (n > 0 && (unsigned char)t[0] > 32 && (unsigned char)t[n - 1] > 32),
          "a trimmed text starts or ends with a blank");

    char *d = malloc(size + 4), *d2 = malloc(size + 8);
    check(d && d2, "out of memory");
    if (ferry_normal_decimal(s, size, d, &n)) {
        check(n <= size + 4, "a decimal longer than its room");
        check(ferry_normal_decimal(d, n, d2, &n2) && n2 == n && memcmp(d, d2, n) == 0,
              "a decimal is not its own normal form");
    }
    free(d);
    free(d2);

    int64_t when, back;
    char iso[FERRY_NORMAL_ISO_MAX];
    if (ferry_normal_time(s, size, &when) && when >= -62167219200 && when <= 253402300799) {
        /* Years 0000-9999 are written with four digits and so read back. */
        size_t len = ferry_normal_iso(when, iso);
        check(ferry_normal_time(iso, len, &back) && back == when, "an ISO time reads back wrong");
    }
    size_t chars;
    if (ferry_normal_utf8_len(s, size, &chars)) {
        check(chars <= size, "more characters than bytes");
    }
}

static void check_lua_forms(const char *s, size_t size)
{
    static lua_State *L;
    if (L == NULL) {
        L = luaL_newstate();
        check(L != NULL, "no Lua state");
        luaL_openlibs(L);
        lua_newtable(L);
        ferry__lua_normal_register(L);
        lua_setglobal(L, "ferry");
    }
    static const char *const forms[] = {"text", "decimal", "quantity", "time", "cut"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        lua_getglobal(L, "ferry");
        lua_getfield(L, -1, forms[i]);
        lua_pushlstring(L, s, size);
        lua_pushinteger(L, size > 0 ? 1 + (unsigned char)s[0] % 64 : 1);
        if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
            fprintf(stderr, "ferry.%s raised: %s\n", forms[i], lua_tostring(L, -1));
            abort();
        }
        /* A time goes on to ferry.iso, which takes any whole number. */
        if (strcmp(forms[i], "time") == 0 && lua_isinteger(L, -1)) {
            lua_getfield(L, -2, "iso");
            lua_insert(L, -2);
            check(lua_pcall(L, 1, 1, 0) == LUA_OK && lua_isstring(L, -1), "ferry.iso failed");
        }
        lua_pop(L, 2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_c_forms((const char *)data, size);
    check_lua_forms((const char *)data, size);
    return 0;
}
