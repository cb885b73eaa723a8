/* SPDX-License-Identifier: MIT */
/*
 * Tests of the Lua mapping host (core/src/mapping.c) and its JSON bridge
 * (core/src/lua_json.c): the sandbox (read-only libraries, globals per
 * mapping), the limits and that the state survives them, error locations
 * (also for error values that are not strings), JSON round trips,
 * all-or-nothing loading, selection by (system, object, event), the shipped
 * customer_to_contact mapping, and the set hash. Mapping files are written into a fresh mkdtemp
 * directory.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua_json.h"
#include "mapping.h"

#ifndef FERRY_SOURCE_DIR
#define FERRY_SOURCE_DIR "."
#endif

#define LUA_DIR FERRY_SOURCE_DIR "/lua"

struct fixture {
    char dir[64];
    char *files[32];
    size_t nfiles;
    char *dirs[8];
    size_t ndirs;
    struct ferry_lua *fl;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct ferry_err err = {0};
    /* The default time limit: the runaway tests make states with a small one. */
    struct ferry_lua_limits lim = {.mem_max = 16 * 1024 * 1024};
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ferry-test-mapping-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (ferry_lua_new(&f->fl, LUA_DIR, &lim, &err) < 0) {
        fail_msg("ferry_lua_new: %s", err.msg);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ferry_lua_free(f->fl);
    for (size_t i = f->nfiles; i > 0; i--) {
        unlink(f->files[i - 1]);
        free(f->files[i - 1]);
    }
    for (size_t i = f->ndirs; i > 0; i--) {
        rmdir(f->dirs[i - 1]);
        free(f->dirs[i - 1]);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Writes <tmpdir>/<name> and returns its path (owned by the fixture). */
static const char *write_file(struct fixture *f, const char *name, const char *text)
{
    char path[256];
    FILE *fp;
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    assert_true(f->nfiles < 32);
    f->files[f->nfiles] = strdup(path);
    return f->files[f->nfiles++];
}

static const char *make_dir(struct fixture *f, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_true(f->ndirs < 8);
    f->dirs[f->ndirs] = strdup(path);
    return f->dirs[f->ndirs++];
}

/* A minimal mapping whose single field X is `expr` (a Lua function body). */
static const char *write_field_mapping(struct fixture *f, const char *name, const char *body)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "return {\n"
             "  source = { \"shop\", \"customer\", on = { \"created\" } },\n"
             "  target = { \"crm\", \"Contact\" },\n"
             "  fields = { X = function(record, ctx)\n%s\n  end },\n"
             "}\n",
             body);
    return write_file(f, name, text);
}

static int load_one(struct fixture *f, const char *path, struct ferry_mapping_set **set,
                    struct ferry_err *err)
{
    return ferry_mapping_set_load(f->fl, &path, 1, set, err);
}

/* Writes a one-field mapping and loads it; the test fails on a load error. */
static struct ferry_mapping_set *load_field(struct fixture *f, const char *name, const char *body)
{
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    if (load_one(f, write_field_mapping(f, name, body), &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    return set;
}

/* Writes mapping file `name` and loads it; the test fails on a load error. */
static struct ferry_mapping_set *load_file(struct fixture *f, const char *name, const char *text)
{
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    if (load_one(f, write_file(f, name, text), &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    return set;
}

/* The intents of shop/customer/created for `record`; the test fails on a run error. */
static json_t *run_intents(struct ferry_mapping_set *set, const json_t *record)
{
    struct ferry_err err = {0};
    json_t *intents = NULL;
    if (ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents, &err) <
        0) {
        fail_msg("run: %s", err.msg);
    }
    return intents;
}

/* Runs the set on {"id": 7, ...extra} for shop/customer/created; returns fields.X. */
static int run_x(struct ferry_mapping_set *set, json_t **x, struct ferry_err *err)
{
    json_t *record = json_pack("{s:i, s:s}", "id", 7, "email", "A@B.C");
    json_t *intents = NULL;
    int rc = ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents, err);
    json_decref(record);
    if (rc < 0) {
        return rc;
    }
    assert_int_equal(json_array_size(intents), 1);
    *x = json_incref(json_object_get(json_object_get(json_array_get(intents, 0), "fields"), "X"));
    json_decref(intents);
    return 0;
}

static void test_mapping_sandbox_globals_absent(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    set = load_field(
        f, "sandbox.lua",
        "    local names = {}\n"
        "    for _, n in ipairs { 'io', 'os', 'debug', 'package', 'loadfile', 'dofile',\n"
        "                         'collectgarbage', 'coroutine' } do\n"
        "      if _G[n] ~= nil or _ENV[n] ~= nil then names[#names + 1] = n end\n"
        "    end\n"
        "    if string.dump ~= nil then names[#names + 1] = 'string.dump' end\n"
        "    return #names == 0 and 'none' or table.concat(names, ',')");
    assert_int_equal(run_x(set, &x, &err), 0);
    assert_string_equal(json_string_value(x), "none");
    json_decref(x);
    ferry_mapping_set_free(set);
}

/* The sandbox's own type() (names as upvalues) answers as the library's does. */
static void test_mapping_sandbox_type_as_library(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    set =
        load_field(f, "type.lua",
                   "    local ok, msg = pcall(type)\n"
                   "    return table.concat({ type(nil), type(1), type(1.5), type('s'), type({}),\n"
                   "      type(print), type(type), type(true), type(ferry.null), type(record),\n"
                   "      tostring(ok), msg }, ',')");
    assert_int_equal(run_x(set, &x, &err), 0);
    assert_string_equal(json_string_value(x),
                        "nil,number,number,string,table,function,function,boolean,userdata,table,"
                        "false,bad argument #1 to 'type' (value expected)");
    json_decref(x);
    ferry_mapping_set_free(set);
}

static void test_mapping_sandbox_binary_chunk_refused(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    set = load_field(f, "binary.lua",
                     "    local fn, msg = load('\\27LuaT\\0\\25\\147\\r\\n\\26\\n', 'x', 'b')\n"
                     "    local ok = load('return 1 + 1')\n"
                     "    return tostring(fn) .. '|' .. tostring(msg) .. '|' .. ok()");
    assert_int_equal(run_x(set, &x, &err), 0);
    assert_true(json_is_string(x));
    assert_non_null(strstr(json_string_value(x), "nil|"));
    assert_non_null(strstr(json_string_value(x), "binary"));
    assert_non_null(strstr(json_string_value(x), "|2"));
    json_decref(x);
    ferry_mapping_set_free(set);
}

static void test_mapping_sandbox_require_confined(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    const char *dir = make_dir(f, "withhelper");
    const char *bad[] = {"local m = require '../../etc/passwd'\nreturn {}\n",
                         "local m = require 'io'\nreturn {}\n",
                         "local m = require '/etc/hosts'\nreturn {}\n"};
    char name[128];
    char text[512];
    (void)dir;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *path;
        snprintf(name, sizeof(name), "badreq%zu.lua", i);
        path = write_file(f, name, bad[i]);
        assert_int_equal(load_one(f, path, &set, &err), FERRY_EMAPPING);
        assert_null(set);
        assert_non_null(strstr(err.msg, name));
        assert_true(strstr(err.msg, "invalid name") || strstr(err.msg, "not found"));
    }
    /* The mapping's own directory is allowed. */
    write_file(f, "withhelper/helper.lua", "return { greet = function() return 'hi' end }\n");
    snprintf(text, sizeof(text),
             "local h = require 'helper'\n"
             "return { source = { 'shop', 'customer' }, target = { 'crm', 'Contact' },\n"
             "         fields = { X = function() return h.greet() end } }\n");
    write_file(f, "withhelper/mapping.lua", text);
    snprintf(name, sizeof(name), "%s/withhelper", f->dir);
    if (load_one(f, name, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(run_x(set, &x, &err), 0);
    assert_string_equal(json_string_value(x), "hi");
    json_decref(x);
    ferry_mapping_set_free(set);
}

/* A state of its own with a 50 ms time limit: the runaway tests wait for the guard, not a sleep. */
static struct ferry_lua *new_state_50ms(void)
{
    struct ferry_lua *fl = NULL;
    struct ferry_err err = {0};
    struct ferry_lua_limits lim = {.mem_max = 16 * 1024 * 1024, .time_limit_ms = 50};
    if (ferry_lua_new(&fl, LUA_DIR, &lim, &err) < 0) {
        fail_msg("ferry_lua_new: %s", err.msg);
    }
    return fl;
}

static void test_mapping_time_limit_stops_loop(void **state)
{
    struct fixture *f = *state;
    struct ferry_lua *fl = new_state_50ms();
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    const char *path = write_field_mapping(f, "loop.lua",
                                           "    if record.id == 7 then while true do end end\n"
                                           "    return 'fine'");
    const char *path2 = write_field_mapping(
        f, "pcallloop.lua", "    while true do pcall(function() while true do end end) end");
    /* A message handler that loops must not keep the error from leaving xpcall. */
    const char *path3 = write_field_mapping(
        f, "xpcallloop.lua",
        "    return xpcall(function() while true do end end, function() while true do end end)");
    json_t *record = json_pack("{s:i}", "id", 8);
    json_t *intents = NULL;
    if (ferry_mapping_set_load(fl, &path, 1, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "time limit exceeded (50 ms per call)"));
    assert_non_null(strstr(err.msg, "loop.lua:5:"));
    /* The state still serves the next call, and the stop does not leak into it. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents, &err),
            0);
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(json_array_get(intents, 0), "fields"), "X")),
                            "fine");
        json_decref(intents);
        intents = NULL;
    }
    ferry_mapping_set_free(set);
    set = NULL;

    /* pcall inside the script must not swallow the time limit error. */
    if (ferry_mapping_set_load(fl, &path2, 1, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "time limit exceeded"));
    assert_non_null(strstr(err.msg, "pcallloop.lua:5:"));
    ferry_mapping_set_free(set);
    set = NULL;

    if (ferry_mapping_set_load(fl, &path3, 1, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "xpcallloop.lua"));
    ferry_mapping_set_free(set);
    json_decref(record);
    ferry_lua_free(fl);
}

/* Loading runs the file's top level: a loop there fails the load, with its line. */
static void test_mapping_time_limit_stops_loop_at_load(void **state)
{
    struct fixture *f = *state;
    struct ferry_lua *fl = new_state_50ms();
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    const char *path = write_file(f, "loadloop.lua", "local n = 0\nwhile true do n = n + 1 end\n");
    assert_int_equal(ferry_mapping_set_load(fl, &path, 1, &set, &err), FERRY_EMAPPING);
    assert_null(set);
    assert_non_null(strstr(err.msg, "loadloop.lua:2: time limit exceeded"));
    ferry_lua_free(fl);
}

/* The threads of this process, from /proc: the guard must not outlive the states. */
static int thread_count(void)
{
    int n = 0;
    char line[256];
    FILE *fp = fopen("/proc/self/status", "r");
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp)) {
        if (sscanf(line, "Threads: %d", &n) == 1) {
            break;
        }
    }
    fclose(fp);
    return n;
}

/*
 * The thread count once it is `want`, or what it still is after 5 s. A joined
 * thread has ended, but the kernel takes it off the count a moment later:
 * on a loaded machine a read right after the join can still see it.
 */
static int thread_count_when(int want)
{
    struct timespec start, now, pause = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int n = thread_count();
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (n == want || now.tv_sec - start.tv_sec >= 5) {
            return n;
        }
        nanosleep(&pause, NULL);
    }
}

static void test_mapping_time_guard_ends_with_last_state(void **state)
{
    struct ferry_lua *a;
    struct ferry_lua *b;
    int before = thread_count();
    (void)state;
    a = new_state_50ms();
    assert_int_equal(thread_count(), before + 1);
    b = new_state_50ms();
    assert_int_equal(thread_count(), before + 1);
    ferry_lua_free(a);
    assert_int_equal(thread_count(), before + 1);
    ferry_lua_free(b);
    assert_int_equal(thread_count_when(before), before);
    /* And starts again for the next state. */
    a = new_state_50ms();
    assert_int_equal(thread_count(), before + 1);
    ferry_lua_free(a);
    assert_int_equal(thread_count_when(before), before);
}

static void test_mapping_memory_cap_stops_doubling(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    json_t *record = json_pack("{s:i}", "id", 8);
    json_t *intents = NULL;
    set = load_field(f, "hog.lua",
                     "    if record.id ~= 7 then return 'small' end\n"
                     "    local s = 'x'\n"
                     "    while true do s = s .. s end");
    assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "memory"));
    assert_non_null(strstr(err.msg, "hog.lua"));
    assert_int_equal(
        ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents, &err), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(intents, 0), "fields"), "X")),
                        "small");
    json_decref(intents);
    json_decref(record);
    ferry_mapping_set_free(set);
}

static void test_mapping_runaway_scripts_do_not_crash(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    const char *rec = write_field_mapping(f, "recurse.lua",
                                          "    local function r(n) return 1 + r(n + 1) end\n"
                                          "    return r(1)");
    const char *gc = write_field_mapping(
        f, "gc.lua", "    setmetatable({}, { __gc = function() while true do end end })");
    const char *big = write_field_mapping(f, "big.lua", "    return string.rep('x', 1 << 40)");
    const char *pat = write_field_mapping(
        f, "pattern.lua",
        "    return string.find(string.rep('a', 40), string.rep('a*', 12) .. 'b')");
    const char *paths[] = {rec, gc, big, pat};
    for (size_t i = 0; i < 4; i++) {
        if (load_one(f, paths[i], &set, &err) < 0) {
            fail_msg("load: %s", err.msg);
        }
        assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
        assert_non_null(strstr(err.msg, strrchr(paths[i], '/') + 1));
        ferry_mapping_set_free(set);
        set = NULL;
    }
}

static void test_mapping_error_carries_file_line(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    const char *path = write_field_mapping(f, "boom.lua", "    error('boom')");
    const char *syntax = write_file(f, "syntax.lua", "return {\n  source = ,\n}\n");
    const char *unknown = write_file(f, "unknown.lua",
                                     "return { source = { 'a', 'b' }, target = { 'c', 'd' },\n"
                                     "  fields = {}, feilds = {} }\n");
    const char *pattern = write_field_mapping(f, "pattern.lua", "    return string.find('x', '[')");
    char want[320];
    if (load_one(f, path, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
    assert_int_equal(err.code, FERRY_EMAPPING);
    snprintf(want, sizeof(want), "%s:5: boom", path);
    assert_string_equal(err.msg, want);
    ferry_mapping_set_free(set);
    set = NULL;

    assert_int_equal(load_one(f, syntax, &set, &err), FERRY_EMAPPING);
    snprintf(want, sizeof(want), "%s:2:", syntax);
    assert_non_null(strstr(err.msg, want));

    assert_int_equal(load_one(f, unknown, &set, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, unknown));
    assert_non_null(strstr(err.msg, "'feilds'"));

    /* Raised inside a library function that the sandbox wraps. */
    assert_int_equal(load_one(f, pattern, &set, &err), 0);
    assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
    snprintf(want, sizeof(want), "%s:5: malformed pattern", pattern);
    assert_non_null(strstr(err.msg, want));
    ferry_mapping_set_free(set);
}

/* error() with a value that is not a string: Lua adds no position, the host must. */
/* A value the host cannot turn into JSON names the file and where in the intents it is. */
static void test_mapping_unconvertible_value_names_file_and_path(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    char want[320];
    const char *path = write_field_mapping(f, "fnvalue.lua", "    return print");
    if (load_one(f, path, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
    snprintf(want, sizeof(want), "%s: intents[1].fields.X: cannot convert a function to JSON",
             path);
    assert_string_equal(err.msg, want);
    ferry_mapping_set_free(set);
}

/* The engine reuses its list of field values from run to run: a value must
 * not outlive its run, not even past a run that failed half-way. */
static void test_mapping_field_value_does_not_outlive_its_run(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    json_t *x = NULL;
    struct ferry_mapping_set *set = load_field(f, "stale.lua",
                                               "    n = (n or 0) + 1\n"
                                               "    if n == 1 then return 'first' end\n"
                                               "    if n == 2 then error('second run fails') end\n"
                                               "    return nil");
    assert_int_equal(run_x(set, &x, &err), 0);
    assert_string_equal(json_string_value(x), "first");
    json_decref(x);
    x = NULL;
    assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "second run fails"));
    ferry_err_clear(&err);
    assert_int_equal(run_x(set, &x, &err), 0);
    assert_null(x);
    ferry_mapping_set_free(set);
}

/* A rule's intent is made when the rule returns it, the mapping's own
 * alternative when the run ends: what a later rule does to a table they
 * were given must reach neither. */
static void test_mapping_intent_keeps_what_its_rule_gave(void **state)
{
    struct fixture *f = *state;
    json_t *record = json_pack("{s:i}", "id", 7);
    struct ferry_mapping_set *set = load_file(
        f, "rules.lua",
        "local map = require 'ferry.map'\n"
        "local shared = {}\n"
        "local function task(key)\n"
        "  shared.S = 'given'\n"
        "  return map.activity { target = { 'crm', 'Task' }, key = key, fields = shared,\n"
        "                        owner = shared }\n"
        "end\n"
        "return {\n"
        "  source = { 'shop', 'customer', on = { 'created' } },\n"
        "  target = { 'crm', 'Contact' },\n"
        "  fields = { X = function() return 'x' end },\n"
        "  instead = function() return task('alt') end,\n"
        "  rules = {\n"
        "    a = function() return task('a') end,\n"
        "    b = function() shared.S = 'changed later'; return nil end,\n"
        "  },\n"
        "}\n");
    json_t *intents = run_intents(set, record);
    assert_int_equal(json_array_size(intents), 2);
    json_t *made[] = {json_object_get(json_array_get(intents, 0), "instead"),
                      json_array_get(intents, 1)};
    for (int i = 0; i < 2; i++) {
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(made[i], "fields"), "S")), "given");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(made[i], "owner"), "S")), "given");
    }
    json_decref(intents);
    json_decref(record);
    ferry_mapping_set_free(set);
}

/* Runs the set on shop/<object> {"id": 7} with `context`; returns fields.X (a new reference)
 * or NULL on error. */
static json_t *run_object(struct ferry_mapping_set *set, const char *object, json_t *context,
                          struct ferry_err *err)
{
    json_t *record = json_pack("{s:i}", "id", 7);
    json_t *intents = NULL, *x = NULL;
    if (ferry_mapping_set_run(set, "shop", object, "created", record, context, &intents, err) ==
        0) {
        x = json_incref(
            json_object_get(json_object_get(json_array_get(intents, 0), "fields"), "X"));
    }
    json_decref(intents);
    json_decref(record);
    return x;
}

static json_t *run_with_context(struct ferry_mapping_set *set, json_t *context,
                                struct ferry_err *err)
{
    return run_object(set, "customer", context, err);
}

/* prepare runs once per settings object, again when other settings come, and after its error. */
static void test_mapping_prepare_once_per_settings(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    set = load_file(f, "prepare.lua",
                    "local calls = 0\n"
                    "return {\n"
                    "  source = { 'shop', 'customer', on = { 'created' } },\n"
                    "  target = { 'crm', 'Contact' },\n"
                    "  prepare = function(settings)\n"
                    "    calls = calls + 1\n"
                    "    if settings and settings.fail then error('no prefix configured') end\n"
                    "    return { prefix = settings and settings.prefix or '-', calls = calls }\n"
                    "  end,\n"
                    "  fields = { X = function(record, ctx)\n"
                    "    return ctx.prepared.prefix .. ctx.prepared.calls\n"
                    "  end },\n"
                    "}\n");
    json_t *settings = json_pack("{s:s}", "prefix", "a");
    for (int i = 0; i < 3; i++) {
        /* A new context per job, the same settings object: prepared once. */
        json_t *ctx = json_pack("{s:O, s:s}", "settings", settings, "id", "7");
        json_t *x = run_with_context(set, ctx, &err);
        if (!x) {
            fail_msg("run: %s", err.msg);
        }
        assert_string_equal(json_string_value(x), "a1");
        json_decref(x);
        json_decref(ctx);
    }
    /* Other settings (an equal text would still be another object): prepared again. */
    json_t *other = json_pack("{s:s}", "prefix", "b");
    json_t *ctx = json_pack("{s:O}", "settings", other);
    json_t *x = run_with_context(set, ctx, &err);
    assert_non_null(x);
    assert_string_equal(json_string_value(x), "b2");
    json_decref(x);
    json_decref(ctx);
    /* A failing prepare fails the run, with its message, and runs again next time. */
    json_t *bad = json_pack("{s:b}", "fail", 1);
    ctx = json_pack("{s:O}", "settings", bad);
    for (int i = 0; i < 2; i++) {
        assert_null(run_with_context(set, ctx, &err));
        assert_non_null(strstr(err.msg, "no prefix configured"));
    }
    json_decref(ctx);
    /* No settings at all: prepare(nil). */
    x = run_with_context(set, NULL, &err);
    assert_non_null(x);
    assert_string_equal(json_string_value(x), "-5");
    json_decref(x);
    json_decref(settings);
    json_decref(other);
    json_decref(bad);
    ferry_mapping_set_free(set);

    /* prepare must be a function. */
    set = NULL;
    const char *path =
        write_file(f, "prepare_bad.lua",
                   "return { source = { 'shop', 'customer' }, target = { 'crm', 'Contact' },\n"
                   "  prepare = 'x', fields = { X = 'id' } }\n");
    assert_int_equal(load_one(f, path, &set, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "'prepare' must be a function(settings)"));
}

/* Runs `object`'s mapping of the set with `settings` as ctx.settings; returns fields.X's text. */
static const char *run_object_with(struct ferry_mapping_set *set, const char *object,
                                   json_t *settings, char *out, size_t size)
{
    struct ferry_err err = {0};
    json_t *ctx = json_pack("{s:O}", "settings", settings);
    json_t *x = run_object(set, object, ctx, &err);
    if (!x) {
        fail_msg("run: %s", err.msg);
    }
    snprintf(out, size, "%s", json_string_value(x));
    json_decref(x);
    json_decref(ctx);
    return out;
}

/*
 * Two mappings whose jobs alternate, each with settings of its own, keep
 * what they prepared: the set knows the last four settings objects apart.
 * A fifth makes room by forgetting the one unused longest.
 */
static void test_mapping_prepare_kept_across_alternating_settings(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    static const char body[] =
        "local calls = 0\n"
        "return {\n"
        "  source = { 'shop', '%s', on = { 'created' } },\n"
        "  target = { 'crm', 'Contact' },\n"
        "  prepare = function(settings) calls = calls + 1; return settings.tag .. calls end,\n"
        "  fields = { X = function(_, ctx) return ctx.prepared end },\n"
        "}\n";
    char text[512], got[64];
    snprintf(text, sizeof(text), body, "customer");
    const char *paths[2];
    paths[0] = write_file(f, "alt_customer.lua", text);
    snprintf(text, sizeof(text), body, "order");
    paths[1] = write_file(f, "alt_order.lua", text);
    if (ferry_mapping_set_load(f->fl, paths, 2, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    static const char *const tags[] = {"a", "b", "c", "d", "e"};
    json_t *s[5];
    for (int i = 0; i < 5; i++) {
        s[i] = json_pack("{s:s}", "tag", tags[i]);
    }
    for (int i = 0; i < 3; i++) {
        assert_string_equal(run_object_with(set, "customer", s[0], got, sizeof(got)), "a1");
        assert_string_equal(run_object_with(set, "order", s[1], got, sizeof(got)), "b1");
    }
    /* Two more for the orders fill the four slots; the customers' s[0] is used again, so
     * when a fifth comes, s[1] is the one unused longest. */
    assert_string_equal(run_object_with(set, "order", s[2], got, sizeof(got)), "c2");
    assert_string_equal(run_object_with(set, "order", s[3], got, sizeof(got)), "d3");
    assert_string_equal(run_object_with(set, "customer", s[0], got, sizeof(got)), "a1");
    assert_string_equal(run_object_with(set, "order", s[4], got, sizeof(got)), "e4");
    /* s[1] was unused longest: forgotten, so prepared again; s[0] was kept. */
    assert_string_equal(run_object_with(set, "order", s[1], got, sizeof(got)), "b5");
    assert_string_equal(run_object_with(set, "customer", s[0], got, sizeof(got)), "a1");
    for (int i = 0; i < 5; i++) {
        json_decref(s[i]);
    }
    ferry_mapping_set_free(set);
}

/* ctx.settings is converted once per settings object and shared by the runs; the rest is per run.
 */
static void test_mapping_settings_converted_once(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    struct ferry_mapping_set *set = NULL;
    /* `prev` holds the last run's table, so that its address cannot be reused. */
    set = load_file(f, "settings_once.lua",
                    "local prev\n"
                    "return {\n"
                    "  source = { 'shop', 'customer', on = { 'created' } },\n"
                    "  target = { 'crm', 'Contact' },\n"
                    "  fields = { X = function(record, ctx)\n"
                    "    local same = prev == ctx.settings\n"
                    "    prev = ctx.settings\n"
                    "    return string.format('%s|%s|%s', tostring(same), ctx.settings.v, ctx.id)\n"
                    "  end },\n"
                    "}\n");
    json_t *settings = json_pack("{s:s}", "v", "one");
    const char *want[] = {"false|one|a", "true|one|b", "true|one|b"};
    for (int i = 0; i < 3; i++) {
        json_t *ctx = json_pack("{s:O, s:s}", "settings", settings, "id", i == 0 ? "a" : "b");
        json_t *x = run_with_context(set, ctx, &err);
        if (!x) {
            fail_msg("run: %s", err.msg);
        }
        /* The same table from the second run on; the job's own values still its own. */
        assert_string_equal(json_string_value(x), want[i]);
        json_decref(x);
        json_decref(ctx);
    }
    json_t *other = json_pack("{s:s}", "v", "two");
    json_t *ctx = json_pack("{s:O, s:s}", "settings", other, "id", "c");
    json_t *x = run_with_context(set, ctx, &err);
    assert_non_null(x);
    assert_string_equal(json_string_value(x), "false|two|c");
    json_decref(x);
    json_decref(ctx);
    json_decref(settings);
    json_decref(other);
    ferry_mapping_set_free(set);
}

/* A rule's field that is a function (a source where a value belongs) is named by its path. */
static void test_mapping_rule_function_field_named(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *record = json_pack("{s:i}", "id", 7);
    json_t *intents = NULL;
    set = load_file(f, "rule_fn.lua",
                    "local map = require 'ferry.map'\n"
                    "return {\n"
                    "  source = { 'shop', 'customer', on = { 'created' } },\n"
                    "  target = { 'crm', 'Contact' },\n"
                    "  fields = { X = 'id' },\n"
                    "  rules = { task = function()\n"
                    "    return map.activity { target = { 'crm', 'Task' }, key = 't',\n"
                    "                          fields = { Subject = function() return 's' end } }\n"
                    "  end },\n"
                    "}\n");
    assert_int_equal(
        ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents, &err),
        FERRY_EMAPPING);
    if (!strstr(err.msg, "rule_fn.lua: intents[2].fields.Subject: cannot convert a function")) {
        fail_msg("unexpected error: %s", err.msg);
    }
    json_decref(record);
    ferry_mapping_set_free(set);
}

/* map.fixed values go into intents as they were made, in a rule's intent and its alternative. */
static void test_mapping_fixed_owner(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *record = json_pack("{s:i}", "id", 7);
    set = load_file(
        f, "fixed.lua",
        "local map = require 'ferry.map'\n"
        "local OWNED = map.fixed { Phone = 'crm' }\n"
        "local function task(key)\n"
        "  return map.activity { target = { 'crm', 'Task' }, key = key, fields = { S = 's' },\n"
        "                        owner = OWNED }\n"
        "end\n"
        "return {\n"
        "  source = { 'shop', 'customer', on = { 'created' } },\n"
        "  target = { 'crm', 'Contact' },\n"
        "  fields = { X = 'id' },\n"
        "  instead = function() return task('alt') end,\n"
        "  rules = { a = function() return task('a') end, b = function() return task('b') end },\n"
        "}\n");
    json_t *intents = run_intents(set, record);
    assert_int_equal(json_array_size(intents), 3);
    json_t *made[] = {json_object_get(json_array_get(intents, 0), "instead"),
                      json_array_get(intents, 1), json_array_get(intents, 2)};
    for (int i = 0; i < 3; i++) {
        json_t *owner = json_object_get(made[i], "owner");
        assert_int_equal(json_object_size(owner), 1);
        assert_string_equal(json_string_value(json_object_get(owner, "Phone")), "crm");
    }
    json_decref(intents);
    json_decref(record);
    ferry_mapping_set_free(set);
    /* Only tables. */
    set = NULL;
    const char *path =
        write_file(f, "fixed_bad.lua",
                   "local map = require 'ferry.map'\n"
                   "local X = map.fixed 'x'\n"
                   "return { source = { 'shop', 'customer' }, target = { 'crm', 'Contact' },\n"
                   "  fields = { X = 'id' } }\n");
    assert_int_equal(load_one(f, path, &set, &err), FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "map.fixed: expected a table, got string"));
}

/* map.lookup_value's value is the value, not a path: at the top level and in a rule; in a
 * rule, the table goes into the intent as it is (no other keys), and an empty value none. */
static void test_mapping_lookup_value_is_literal(void **state)
{
    struct fixture *f = *state;
    json_t *record = json_pack("{s:i, s:s}", "id", 7, "email", "from@record");
    struct ferry_mapping_set *set = load_file(
        f, "lookup_value.lua",
        "local map = require 'ferry.map'\n"
        "return {\n"
        "  source = { 'shop', 'customer', on = { 'created' } },\n"
        "  target = { 'crm', 'Contact' },\n"
        "  match = { 'link', map.lookup_value('Email', 'email') },\n"
        "  fields = { X = 'id' },\n"
        "  rules = { task = function(record)\n"
        "    return map.activity { target = { 'crm', 'Task' }, key = 't', fields = { S = 's' },\n"
        "                          match = { map.lookup_value('Code', 'email', { Kind = 'a' }) } "
        "}\n"
        "  end,\n"
        "  uses = function(record)\n"
        "    local m = { 'link', map.lookup_value('Code', 'x'), map.lookup_value('Empty', '') }\n"
        "    assert(map.is_literal(m[2]) and not map.is_literal({ rule = 'lookup' }))\n"
        "    return map.activity { target = { 'crm', 'Task' }, key = 'u', fields = { S = 's' },\n"
        "                          match = m }\n"
        "  end },\n"
        "}\n");
    json_t *intents = run_intents(set, record);
    assert_int_equal(json_array_size(intents), 3);
    /* Rules run in name order: task, then uses. */
    json_t *uses = json_object_get(json_array_get(intents, 2), "match");
    json_t *want = json_pack("[{s:s},{s:s,s:s,s:s}]", "rule", "link", "rule", "lookup", "field",
                             "Code", "value", "x");
    if (!json_equal(uses, want)) {
        char *g = json_dumps(uses, JSON_SORT_KEYS);
        fail_msg("match of rule uses: %s", g);
    }
    json_decref(want);
    json_t *own = json_array_get(json_object_get(json_array_get(intents, 0), "match"), 1);
    json_t *rule = json_array_get(json_object_get(json_array_get(intents, 1), "match"), 0);
    assert_string_equal(json_string_value(json_object_get(own, "value")), "email");
    assert_string_equal(json_string_value(json_object_get(rule, "value")), "email");
    assert_string_equal(json_string_value(json_object_get(rule, "field")), "Code");
    assert_string_equal(json_string_value(json_object_get(json_object_get(rule, "where"), "Kind")),
                        "a");
    json_decref(intents);
    json_decref(record);
    ferry_mapping_set_free(set);
}

static void test_mapping_non_string_error_carries_file_line(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *name, *body, *want;
    } cases[] = {
        {"err_table.lua", "    error({})", "error object is a table value"},
        {"err_nil.lua", "    error()", "error object is a nil value"},
        {"err_number.lua", "    error(42)", "error object is a number value (42)"},
        {"err_bool.lua", "    local function deep() error(false) end\n    return deep()",
         "error object is a boolean value"},
        {"err_tostring.lua",
         "    error(setmetatable({}, { __tostring = function() return 'custom' end }))", "custom"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ferry_mapping_set *set = NULL;
        struct ferry_err err = {0};
        json_t *x = NULL;
        char want[320];
        const char *path = write_field_mapping(f, cases[i].name, cases[i].body);
        if (load_one(f, path, &set, &err) < 0) {
            fail_msg("load: %s", err.msg);
        }
        assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
        snprintf(want, sizeof(want), "%s:5: %s", path, cases[i].want);
        assert_string_equal(err.msg, want);
        ferry_mapping_set_free(set);
    }
}

/*
 * Library tables are shared by every mapping of a state: each way of writing
 * to one must fail with file:line, and the libraries must be intact after.
 */
static void test_mapping_sandbox_libraries_read_only(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"    string.lower = function() return 'poisoned' end", "cannot assign to string.lower"},
        {"    getmetatable('').__index.upper = function() return 'POISONED' end",
         "cannot assign to string.upper"},
        {"    getmetatable('').__index = {}", "cannot assign to getmetatable(\"\").__index"},
        {"    rawset(string, 'lower', print)", "cannot assign to string.lower"},
        {"    table.concat = nil", "cannot assign to table.concat"},
        {"    table.insert(math, 1)", "cannot assign to math[1]"},
        {"    utf8.char = nil", "cannot assign to utf8.char"},
        {"    ferry.null = 0", "cannot assign to ferry.null"},
        {"    require('ferry.map').get = nil", "cannot assign to ferry.map.get"},
        {"    setmetatable(string, {})", "cannot change a protected metatable"},
        {"    getmetatable(_ENV).__index.string = {}", "attempt to index a boolean value"},
    };
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *x = NULL;
    const char *path;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[64];
        char want[320];
        snprintf(name, sizeof(name), "poison%zu.lua", i);
        path = write_field_mapping(f, name, cases[i].body);
        if (load_one(f, path, &set, &err) < 0) {
            fail_msg("load: %s", err.msg);
        }
        assert_int_equal(run_x(set, &x, &err), FERRY_EMAPPING);
        snprintf(want, sizeof(want), "%s:5: %s", path, cases[i].want);
        if (strncmp(err.msg, want, strlen(want)) != 0) {
            fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err.msg, want);
        }
        ferry_mapping_set_free(set);
        set = NULL;
    }
    /* Reads through the proxies, in the state the attacks ran in. */
    path = write_field_mapping(
        f, "intact.lua",
        "    local map = require 'ferry.map'\n"
        "    local n, m = 0, 0\n"
        "    for k in pairs(string) do n = n + 1 end\n"
        "    for k in pairs(map) do m = m + 1 end\n"
        "    local t = {}\n"
        "    table.insert(t, 'b')\n"
        "    return table.concat({ string.lower('AbC'), ('x'):upper(), math.floor(2.5),\n"
        "      utf8.char(72), tostring(getmetatable('').__index == string),\n"
        "      tostring(n > 10 and m > 5), map.get({ a = { b = 'deep' } }, 'a.b'), t[1] }, '|')");
    if (load_one(f, path, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    if (run_x(set, &x, &err) < 0) {
        fail_msg("run: %s", err.msg);
    }
    assert_string_equal(json_string_value(x), "abc|X|2|H|true|true|deep|b");
    json_decref(x);
    ferry_mapping_set_free(set);
}

/* Two mappings of one set: what one makes global, however it does so, the other never sees. */
static void test_mapping_globals_stay_per_mapping(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *record = json_pack("{s:i}", "id", 7);
    json_t *intents = NULL;
    const char *paths[2];
    paths[0] = write_field_mapping(f, "writer.lua",
                                   "    leak = 'a'\n"
                                   "    _G.leak_g = 'a'\n"
                                   "    _ENV.leak_env = 'a'\n"
                                   "    load('leak_load = \"a\"')()\n"
                                   "    return leak .. leak_g .. leak_env .. leak_load");
    paths[1] = write_field_mapping(f, "reader.lua",
                                   "    return tostring(leak) .. tostring(leak_g) ..\n"
                                   "      tostring(leak_env) .. tostring(leak_load) ..\n"
                                   "      tostring(_G == _ENV)");
    if (ferry_mapping_set_load(f->fl, paths, 2, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    for (int round = 0; round < 2; round++) {
        if (ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents,
                                  &err) < 0) {
            fail_msg("run: %s", err.msg);
        }
        assert_int_equal(json_array_size(intents), 2);
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(json_array_get(intents, 0), "fields"), "X")),
                            "aaaa");
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(json_array_get(intents, 1), "fields"), "X")),
                            "nilnilnilniltrue");
        json_decref(intents);
        intents = NULL;
    }
    json_decref(record);
    ferry_mapping_set_free(set);
}

/* Runs `body` as field X on `record_text`; returns X (new reference) or NULL with err set. */
static json_t *run_body_on(struct fixture *f, const char *name, const char *body,
                           const char *record_text, struct ferry_err *err)
{
    struct ferry_mapping_set *set = NULL;
    json_t *record = json_loads(record_text, 0, NULL);
    json_t *intents = NULL, *x = NULL;
    assert_non_null(record);
    if (load_one(f, write_field_mapping(f, name, body), &set, err) < 0) {
        fail_msg("load: %s", err->msg);
    }
    if (ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents, err) ==
        0) {
        x = json_incref(
            json_object_get(json_object_get(json_array_get(intents, 0), "fields"), "X"));
    }
    json_decref(intents);
    json_decref(record);
    ferry_mapping_set_free(set);
    return x;
}

static const char *const LAZY_RECORD =
    "{\"id\": 7, \"email\": \"a@b.c\", \"name\": \"Ann\", \"vip\": true, \"note\": null,"
    " \"addr\": {\"city\": \"Graz\", \"zip\": \"8010\", \"lines\": [\"Hauptplatz 1\"]},"
    " \"lines\": [{\"sku\": \"A\", \"qty\": 2}, {\"sku\": \"B\", \"qty\": 1},"
    " {\"sku\": \"C\", \"qty\": 5}], \"tags\": []}";

/* Runs body on LAZY_RECORD and checks the text it returns. */
static void assert_body_text(struct fixture *f, const char *name, const char *body,
                             const char *want)
{
    struct ferry_err err = {0};
    json_t *x = run_body_on(f, name, body, LAZY_RECORD, &err);
    if (!x) {
        fail_msg("run: %s", err.msg);
    }
    assert_string_equal(json_string_value(x), want);
    json_decref(x);
}

/*
 * A record reaches Lua lazily (lua_json.c): whatever a script does with it
 * must answer as the plain table did. Each line is one behaviour; the field
 * is the list of those that held, so that a failure names the broken one.
 */
static void test_mapping_record_reads_like_a_plain_table(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    json_t *x = run_body_on(
        f, "plain.lua",
        "    local ok = {}\n"
        "    local function check(name, cond) ok[#ok + 1] = name .. '=' .. tostring(cond) end\n"
        "    check('read', record.email == 'a@b.c' and record.id == 7)\n"
        "    check('bool', record.vip == true and record.note == ferry.null)\n"
        "    check('absent', record.nope == nil and record[1] == nil)\n"
        "    check('same', record.addr == record.addr and record.lines[2] == record.lines[2])\n"
        "    check('array', ferry.is_array(record.lines) and ferry.is_array(record.tags)\n"
        "          and not ferry.is_array(record.addr))\n"
        "    check('meta', getmetatable(record) == nil and getmetatable(record.lines) == "
        "'ferry.array')\n"
        "    local skus = ''\n"
        "    for i, l in ipairs(record.lines) do skus = skus .. i .. l.sku end\n"
        "    check('ipairs', skus == '1A2B3C')\n"
        "    check('len', #record.lines == 3 and #record.tags == 0 and #record.addr.lines == 1)\n"
        "    check('rawget', rawget(record.addr, 'zip') == '8010' and rawlen(record.lines) == 3)\n"
        "    check('next', next(record.tags) == nil and next(record) ~= nil)\n"
        "    local keys = {}\n"
        "    for k in pairs(record) do keys[#keys + 1] = k end\n"
        "    table.sort(keys)\n"
        "    check('pairs', table.concat(keys, ',') == 'addr,email,id,lines,name,note,tags,vip')\n"
        "    local c = 0\n"
        "    for _ in pairs(record.addr) do c = c + 1 end\n"
        "    check('pairs_after_read', c == 3)\n"
        "    check('concat', table.concat(record.addr.lines, '|') == 'Hauptplatz 1')\n"
        "    return table.concat(ok, ' ')",
        LAZY_RECORD, &err);
    if (!x) {
        fail_msg("run: %s", err.msg);
    }
    assert_string_equal(json_string_value(x),
                        "read=true bool=true absent=true same=true array=true meta=true "
                        "ipairs=true len=true rawget=true next=true pairs=true "
                        "pairs_after_read=true concat=true");
    json_decref(x);
}

/* Writes and deletions stick, before and after the table is filled in. */
static void test_mapping_record_writes_stick(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    json_t *x = run_body_on(
        f, "writes.lua",
        "    local ok = {}\n"
        "    local function check(name, cond) ok[#ok + 1] = name .. '=' .. tostring(cond) end\n"
        "    local e = record.email\n"
        "    record.email = nil\n"
        "    check('deleted', e == 'a@b.c' and record.email == nil)\n"
        "    local n = 0\n"
        "    for k in pairs(record) do n = n + 1; if k == 'email' then n = 100 end end\n"
        "    check('deleted_after_fill', n == 7 and record.email == nil)\n"
        "    record.addr.city = 'Wien'\n"
        "    check('new_value', record.addr.city == 'Wien' and record.addr.zip == '8010')\n"
        "    local l = record.lines\n"
        "    local last = l[3]\n"
        "    table.remove(l)\n"
        "    check('remove', #l == 2 and l[3] == nil and last.sku == 'C')\n"
        "    table.insert(l, 1, {sku = 'Z'})\n"
        "    check('insert', #l == 3 and l[1].sku == 'Z' and l[2].sku == 'A')\n"
        "    rawset(record, 'raw', 1)\n"
        "    local mt = {}\n"
        "    setmetatable(record.addr, mt)\n"
        "    check('raw', record.raw == 1 and getmetatable(record.addr) == mt\n"
        "          and record.addr.zip == '8010')\n"
        "    return table.concat(ok, ' ')",
        LAZY_RECORD, &err);
    if (!x) {
        fail_msg("run: %s", err.msg);
    }
    assert_string_equal(json_string_value(x), "deleted=true deleted_after_fill=true new_value=true "
                                              "remove=true insert=true raw=true");
    json_decref(x);
}

/* A record table handed back as a value converts as the script left it. */
static void test_mapping_record_table_as_a_value(void **state)
{
    struct fixture *f = *state;
    struct ferry_err err = {0};
    json_t *want = json_loads("{\"addr\": {\"city\": \"Graz\", \"zip\": \"8010!\", \"lines\": "
                              "[\"Hauptplatz 1\"]}, \"lines\": [{\"sku\": \"A\", \"qty\": 2}, "
                              "{\"sku\": \"B\", \"qty\": 1}], \"vip\": true, \"tags\": []}",
                              0, NULL);
    /* Untouched, read, changed, deleted, an array shortened: never filled in. */
    json_t *x =
        run_body_on(f, "value.lua",
                    "    local a = record.addr\n"
                    "    a.zip = a.zip .. '!'\n"
                    "    local l = record.lines\n"
                    "    local _ = l[3]\n"
                    "    l[3] = nil\n"
                    "    return { addr = record.addr, vip = record.vip, tags = record.tags,\n"
                    "             lines = l, changed = (function()\n"
                    "               local b = record.addr\n"
                    "               return b end)() }",
                    LAZY_RECORD, &err);
    if (!x) {
        fail_msg("run: %s", err.msg);
    }
    /* addr and changed are the same table: both show the state at the end. */
    json_object_set_new(want, "changed", json_deep_copy(json_object_get(want, "addr")));
    assert_true(json_equal(x, want));
    json_decref(x);

    x = run_body_on(f, "value2.lua",
                    "    local a = record.addr\n"
                    "    local _ = a.city .. a.zip\n"
                    "    a.zip = nil\n"
                    "    rawequal(a, a)\n"
                    "    local c = record.addr\n"
                    "    return c",
                    LAZY_RECORD, &err);
    if (!x) {
        fail_msg("run: %s", err.msg);
    }
    json_decref(want);
    want = json_loads("{\"city\": \"Graz\", \"lines\": [\"Hauptplatz 1\"]}", 0, NULL);
    assert_true(json_equal(x, want));
    json_decref(x);
    json_decref(want);

    /* A hole in a record's array is an error, as for any table. */
    x = run_body_on(f, "hole.lua",
                    "    local l = record.lines\n"
                    "    local _ = l[2]\n"
                    "    l[2] = nil\n"
                    "    return l",
                    LAZY_RECORD, &err);
    assert_null(x);
    assert_non_null(strstr(err.msg, "array has keys other than 1..n"));
}

/*
 * map.get (the host's ferry.get) on the lazy record and on plain tables:
 * digits index arrays only, empty steps are skipped, and a missing step,
 * a non-table on the way, JSON null and "" all read as nil.
 */
static void test_mapping_get_reads_paths_as_documented(void **state)
{
    assert_body_text(
        *state, "get.lua",
        "    local get = require('ferry.map').get\n"
        "    local plain = { ['2'] = 'key', list = ferry.array { 'x', 'y' }, e = '', n = "
        "ferry.null }\n"
        "    local out = {}\n"
        "    local got = table.pack(get(record, 'lines.2.sku'), get(record, 'addr.lines.1'),\n"
        "                         get(record, 'addr..city.'), get(record, 'id'), get(record, '') "
        "== record,\n"
        "                         get(record, 'lines.4.sku'), get(record, 'email.x'), get(record, "
        "'note'),\n"
        "                         get(record, 'addr.1'), get(plain, '2'), get(plain, 'list.02'),\n"
        "                         get(plain, 'e'), get(plain, 'n'), get(42, 'a'),\n"
        "                         get(record, 'lines.99999999999999999999'))\n"
        "    for i = 1, got.n do\n"
        "      out[i] = tostring(got[i])\n"
        "    end\n"
        "    local ok, err = pcall(get, record, {})\n"
        "    out[#out + 1] = tostring(not ok and err:find('string expected') ~= nil)\n"
        "    return table.concat(out, ' ')",
        "B Hauptplatz 1 Graz 7 true nil nil nil nil key y nil nil nil nil true");
}

/* ferry.commerce's amounts and quantities: strings in, SAP's decimal strings out. */
static void test_mapping_commerce_decimal_and_quantity(void **state)
{
    assert_body_text(
        *state, "money.lua",
        "    local c = require 'ferry.commerce'\n"
        "    local out = {}\n"
        "    for _, v in ipairs({ '370.9500', 98.0, '12', 12, '1.5', '0.1230', '-3.000',\n"
        "                         ' 7 ', '2.', 'abc', '1e5', '100.10' }) do\n"
        "      out[#out + 1] = tostring(c.decimal(v))\n"
        "    end\n"
        "    for _, v in ipairs({ '2', '2.5000', 3, '1.000', '0.0010', '10.00', 'x', 2.25 }) do\n"
        "      out[#out + 1] = tostring(c.quantity(v))\n"
        "    end\n"
        "    return table.concat(out, ' ')",
        "370.95 98.00 12.00 12.00 1.50 0.123 -3.00 7.00 2.00 nil nil 100.10 "
        "2 2.50 3 1 0.001 10 nil 2.25");
}

/* commerce.ref_to and commerce.ref: a reference only with the daemon's refs and an id; the
 * default otherwise, ferry.null as nil. */
static void test_mapping_commerce_ref_to(void **state)
{
    assert_body_text(
        *state, "ref_to.lua",
        "    local c = require 'ferry.commerce'\n"
        "    local on, off = { features = { refs = true } }, { features = {} }\n"
        "    local function show(r)\n"
        "      if type(r) ~= 'table' then return tostring(r) end\n"
        "      local x = r['$ref']\n"
        "      return x.object .. '/' .. x.id .. '>' .. x.target .. '.' .. x.property .. ':'\n"
        "             .. tostring(x.default == ferry.null and 'null' or x.default)\n"
        "    end\n"
        "    local out = {\n"
        "      show(c.ref_to(on, 'customer', ' 17 ', 'ContactCollection', 'AccountID', 'D')),\n"
        "      show(c.ref_to(on, 'customer', 0, 'ContactCollection', 'AccountID', 'D')),\n"
        "      show(c.ref_to(on, 'customer', nil, 'ContactCollection', 'ContactID', ferry.null)),\n"
        "      show(c.ref_to(off, 'customer', 17, 'ContactCollection', 'AccountID', 'D')),\n"
        "      show(c.ref_to(nil, 'customer', 17, 'ContactCollection', 'ContactID', ferry.null)),\n"
        "      show(c.ref(on, { object = 'company', id = 9, target = 'T', property = 'P',\n"
        "                       default = ferry.null })),\n"
        "      show(c.ref(on, { lookup = { target = 'T', field = 'Email', value = '' },\n"
        "                       property = 'P', default = 'D' })),\n"
        "    }\n"
        "    local l = c.ref(on, { lookup = { target = 'T', field = 'Email', value = 'a@b.c' },\n"
        "                          property = 'P' })['$ref']\n"
        "    out[#out + 1] = l.lookup.target .. '.' .. l.lookup.field .. '=' .. l.lookup.value\n"
        "    return table.concat(out, ' ')",
        "customer/17>ContactCollection.AccountID:D D nil D nil company/9>T.P:null D T.Email=a@b.c");
}

/* ferry.commerce's dates: the store's four formats to Unix seconds and back as ISO UTC. */
static void test_mapping_commerce_time_formats(void **state)
{
    assert_body_text(
        *state, "dates.lua",
        "    local c = require 'ferry.commerce'\n"
        "    local out = {}\n"
        "    for _, v in ipairs({ 'Tue, 04 Jun 2024 09:12:40 +0000',\n"
        "                         '04 Jun 2024 11:12:40 +0200',\n"
        "                         '2024-06-04T09:12:40Z', '2024-06-04 10:12:40.123+01:00',\n"
        "                         '1717492360', 1717492360, 1717492360.7,\n"
        "                         'Tue, 04 Foo 2024 09:12:40 +0000', '2024-06-04T09:12:40 CET',\n"
        "                         'yesterday', '' }) do\n"
        "      out[#out + 1] = tostring(c.iso(c.time(v)))\n"
        "    end\n"
        "    return table.concat(out, ' ')",
        "2024-06-04T09:12:40Z 2024-06-04T09:12:40Z 2024-06-04T09:12:40Z "
        "2024-06-04T09:12:40Z 2024-06-04T09:12:40Z 2024-06-04T09:12:40Z "
        "2024-06-04T09:12:40Z nil nil nil nil");
}

/*
 * ferry.owner: a `where` given as a function is called only when the object
 * has owner settings (a deployment without them skips the address work),
 * and then decides exactly as the table would.
 */
static void test_mapping_owner_where_function_only_when_configured(void **state)
{
    assert_body_text(*state, "owner_lazy.lua",
                     "    local owner = require 'ferry.owner'\n"
                     "    local calls = 0\n"
                     "    local function where()\n"
                     "      calls = calls + 1\n"
                     "      return { id = 7, country = 'DE', region = 'Berlin' }\n"
                     "    end\n"
                     "    local none = owner.pick({ settings = {} }, 'TasksCollection', where)\n"
                     "    local before = calls\n"
                     "    local ctx = { settings = { owner = { territories = { DE = 'E1' } } } }\n"
                     "    local v, how = owner.pick(ctx, 'TasksCollection', where)\n"
                     "    local t = owner.pick(ctx, 'TasksCollection', where())\n"
                     "    return table.concat({ tostring(none), before, v, how, t, calls }, ' ')",
                     "nil 0 E1 territory DE E1 2");
}

/*
 * where.place: the record's country and region found only when a territory
 * rule is reached with territories configured; the rules after inherit are
 * the reference's default, as before.
 */
static void test_mapping_owner_place_only_for_territories(void **state)
{
    assert_body_text(
        *state, "owner_place.lua",
        "    local owner = require 'ferry.owner'\n"
        "    local places = 0\n"
        "    local where = { id = 7, place = function() places = places + 1; return 'de', 'be' end "
        "}\n"
        "    local out = {}\n"
        "    local function pick(spec)\n"
        "      local v, how = owner.pick({ settings = { owner = spec } }, 'TasksCollection', "
        "where)\n"
        "      out[#out + 1] = tostring(v) .. '/' .. tostring(how) .. '/' .. places\n"
        "    end\n"
        "    pick({ fallback = 'F' })\n"
        "    pick({ territories = { DE = 'E1' }, fallback = 'F' })\n"
        "    pick({ territories = { ['DE-BE'] = { 'T1', 'T2' } } })\n"
        "    pick({ order = { 'fallback', 'territory' }, territories = { DE = 'E1' }, fallback = "
        "'F' })\n"
        "    local ctx = { settings = { owner = { territories = { DE = 'E1' } } },\n"
        "                  features = { refs = true } }\n"
        "    where.inherit = { object = 'customer', id = 3, target = 'C', property = 'OwnerID' }\n"
        "    local ref, how = owner.pick(ctx, 'TasksCollection', where)\n"
        "    out[#out + 1] = ref['$ref'].default .. '/' .. how .. '/' .. places\n"
        "    return table.concat(out, ' ')",
        "F/fallback/0 E1/territory DE/1 T1/territory DE-BE/2 F/fallback/2 "
        "E1/inherit C.OwnerID, else territory DE/3");
}

/* A record kept in a global for a later run fails with a clear error there. */
static void test_mapping_record_kept_past_its_run(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *intents = NULL;
    const char *path =
        write_field_mapping(f, "keeper.lua",
                            "    if kept == nil then kept = record; return 'kept' end\n"
                            "    return kept.name");
    if (load_one(f, path, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    for (int round = 0; round < 2; round++) {
        json_t *record = json_loads(LAZY_RECORD, 0, NULL);
        int rc =
            ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents, &err);
        /* The first record is freed before the second run reads it. */
        json_decref(record);
        if (round == 0) {
            assert_int_equal(rc, 0);
            json_decref(intents);
            intents = NULL;
        } else {
            assert_int_equal(rc, FERRY_EMAPPING);
            assert_non_null(strstr(err.msg, "keeper.lua:"));
            assert_non_null(strstr(err.msg, "kept after the mapping run it was given to ended"));
        }
    }
    ferry_mapping_set_free(set);
}

/* ---- JSON bridge ----------------------------------------------------------- */

static lua_State *bridge_state(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    ferry__lua_json_open(L);
    return L;
}

static void test_mapping_json_round_trip(void **state)
{
    const char *text =
        "{\"obj\": {\"a\": {\"b\": [1, 2.5, \"x\"]}}, \"empty_arr\": [], \"empty_obj\": {},"
        " \"nul\": null, \"int\": 9007199254740993, \"real\": 1.0, \"neg\": -3,"
        " \"uni\": \"Gr\\u00fc\\u00dfe \\u2603 \\ud83d\\ude00\", \"t\": true, \"f\": false,"
        " \"arr_of_null\": [null, null], \"nested_empty\": [[], {}]}";
    json_error_t jerr;
    json_t *in = json_loads(text, 0, &jerr);
    json_t *out = NULL;
    struct ferry_err err = {0};
    lua_State *L = bridge_state();
    (void)state;
    assert_non_null(in);
    ferry__lua_push_json(L, in);
    /* null is the sentinel, distinct from absent */
    lua_getfield(L, -1, "nul");
    assert_true(ferry__lua_is_null(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, -1, "int");
    assert_true(lua_isinteger(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, -1, "real");
    assert_false(lua_isinteger(L, -1));
    lua_pop(L, 1);
    assert_int_equal(ferry__lua_to_json(L, -1, "value", &out, &err), 0);
    if (!json_equal(in, out)) {
        char *a = json_dumps(in, JSON_SORT_KEYS);
        char *b = json_dumps(out, JSON_SORT_KEYS);
        fail_msg("round trip differs:\n%s\n%s", a, b);
    }
    /* integer 1 and real 1.0 stay apart */
    assert_true(json_is_real(json_object_get(out, "real")));
    assert_true(json_is_integer(json_object_get(out, "neg")));
    json_decref(in);
    json_decref(out);
    lua_close(L);
}

static void expect_to_json_error(lua_State *L, const char *chunk, const char *needle)
{
    json_t *out = NULL;
    struct ferry_err err = {0};
    if (luaL_dostring(L, chunk) != LUA_OK) {
        fail_msg("chunk: %s", lua_tostring(L, -1));
    }
    assert_int_equal(ferry__lua_to_json(L, -1, "v", &out, &err), FERRY_EMAPPING);
    assert_null(out);
    if (!strstr(err.msg, needle)) {
        fail_msg("'%s' does not contain '%s'", err.msg, needle);
    }
    lua_pop(L, 1);
}

static void test_mapping_json_lua_errors(void **state)
{
    lua_State *L = bridge_state();
    (void)state;
    expect_to_json_error(L, "return { a = { [true] = 1 } }", "v.a: non-string key true");
    expect_to_json_error(L, "return { 1, 2, x = 3 }", "non-string key");
    expect_to_json_error(L, "return { n = 0/0 }", "NaN");
    expect_to_json_error(L, "return { n = math.huge }", "infinity");
    expect_to_json_error(L, "local t = {} t.self = t return t", "nested deeper than");
    expect_to_json_error(L,
                         "local t = {} local c = t for i = 1, 100 do c[1] = {} c = c[1] end "
                         "return t",
                         "nested deeper than");
    expect_to_json_error(L, "return { f = print }", "v.f: cannot convert a function");
    expect_to_json_error(L, "return { s = '\\255\\254' }", "UTF-8");
    lua_close(L);
}

/* ---- sets ------------------------------------------------------------------ */

static void test_mapping_load_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = (struct ferry_mapping_set *)(uintptr_t)0x1;
    struct ferry_err err = {0};
    const char *good = write_field_mapping(f, "good.lua", "    return 1");
    const char *bad = write_file(f, "bad.lua",
                                 "return { source = { 'shop' }, target = { 'crm', 'C' },\n"
                                 "  fields = {} }\n");
    const char *paths[] = {good, bad, good};
    assert_int_equal(ferry_mapping_set_load(f->fl, paths, 3, &set, &err), FERRY_EMAPPING);
    /* *out untouched */
    assert_ptr_equal(set, (struct ferry_mapping_set *)(uintptr_t)0x1);
    assert_non_null(strstr(err.msg, "bad.lua"));
    assert_non_null(strstr(err.msg, "source[2]"));
    set = NULL;
    /* A missing file is as bad as a broken one. */
    paths[1] = "/nonexistent/mapping.lua";
    assert_int_equal(ferry_mapping_set_load(f->fl, paths, 3, &set, &err), FERRY_EMAPPING);
    assert_null(set);
}

/* The targets of a source, asked for every job: right for each source, also when remembered. */
static void test_mapping_targets_of_each_source(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    const char *a = write_file(f, "ta.lua",
                               "return { source = { 'shop', 'customer' },\n"
                               "  target = { 'crm', 'Contact' }, fields = { N = 'name' } }\n");
    const char *b = write_file(f, "tb.lua",
                               "return { source = { 'shop', 'order' },\n"
                               "  target = { 'crm', 'Order' }, fields = { N = 'name' } }\n");
    const char *c = write_file(f, "tc.lua",
                               "return { source = { 'shop', 'customer' },\n"
                               "  target = { 'erp', 'Partner' }, fields = { N = 'name' } }\n");
    const char *paths[] = {a, b, c};
    json_t *want_customer = json_loads("[{\"system\": \"crm\", \"object\": \"Contact\"}, "
                                       "{\"system\": \"erp\", \"object\": \"Partner\"}]",
                                       0, NULL);
    json_t *want_order = json_loads("[{\"system\": \"crm\", \"object\": \"Order\"}]", 0, NULL);
    json_t *none = json_array();
    if (ferry_mapping_set_load(f->fl, paths, 3, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    for (int round = 0; round < 2; round++) {
        json_t *t1 = ferry_mapping_set_targets_of(set, "shop", "customer");
        json_t *t2 = ferry_mapping_set_targets_of(set, "shop", "customer");
        json_t *t3 = ferry_mapping_set_targets_of(set, "shop", "order");
        json_t *t4 = ferry_mapping_set_targets_of(set, "shop", "cart");
        json_t *t5 = ferry_mapping_set_targets_of(set, "other", "order");
        assert_true(json_equal(t1, want_customer));
        assert_true(json_equal(t2, want_customer));
        assert_true(json_equal(t3, want_order));
        assert_true(json_equal(t4, none));
        assert_true(json_equal(t5, none));
        json_decref(t1);
        json_decref(t2);
        json_decref(t3);
        json_decref(t4);
        json_decref(t5);
    }
    json_decref(want_customer);
    json_decref(want_order);
    json_decref(none);
    ferry_mapping_set_free(set);
}

static void test_mapping_run_selects_by_source_and_event(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *record = json_pack("{s:i, s:s}", "id", 42, "name", "n");
    json_t *intents = NULL;
    json_t *sources = NULL;
    json_t *want_sources = NULL;
    const char *a = write_file(f, "a.lua",
                               "return { source = { 'shop', 'customer', on = { 'created' } },\n"
                               "  target = { 'crm', 'Contact' }, fields = { N = 'name' } }\n");
    const char *b = write_file(f, "b.lua",
                               "return { source = { 'shop', 'order', on = { 'placed' } },\n"
                               "  target = { 'crm', 'Order' }, fields = { N = 'name' } }\n");
    const char *c = write_file(f, "c.lua",
                               "return { source = { 'shop', 'customer', on = { 'updated' } },\n"
                               "  target = { 'crm', 'Lead' }, fields = { N = 'name' } }\n");
    const char *d = write_file(f, "d.lua",
                               "return { source = { 'shop', 'customer' },\n"
                               "  target = { 'crm', 'Any' }, fields = { N = 'name' } }\n");
    const char *paths[] = {a, b, c, d};
    if (ferry_mapping_set_load(f->fl, paths, 4, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(
        ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents, &err), 0);
    assert_int_equal(json_array_size(intents), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(intents, 0), "mapping")),
                        "a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(intents, 1), "mapping")),
                        "d");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(intents, 0), "source"), "id")),
                        "42");
    json_decref(intents);
    assert_int_equal(
        ferry_mapping_set_run(set, "shop", "order", "placed", record, NULL, &intents, &err), 0);
    assert_int_equal(json_array_size(intents), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(intents, 0), "mapping")),
                        "b");
    json_decref(intents);
    assert_int_equal(
        ferry_mapping_set_run(set, "shop", "order", "created", record, NULL, &intents, &err), 0);
    assert_int_equal(json_array_size(intents), 0);
    json_decref(intents);
    assert_int_equal(
        ferry_mapping_set_run(set, "other", "customer", "created", record, NULL, &intents, &err),
        0);
    assert_int_equal(json_array_size(intents), 0);
    json_decref(intents);

    /* reacts() agrees with run(): the pipeline fetches only when it is true. */
    assert_true(ferry_mapping_set_reacts(set, "shop", "customer", "deleted")); /* d: no `on` */
    assert_true(ferry_mapping_set_reacts(set, "shop", "order", "placed"));
    assert_false(ferry_mapping_set_reacts(set, "shop", "order", "created"));
    assert_false(ferry_mapping_set_reacts(set, "other", "customer", "created"));
    assert_false(ferry_mapping_set_reacts(NULL, "shop", "order", "placed"));
    /* reads(): any event at all. */
    assert_true(ferry_mapping_set_reads(set, "shop", "order"));
    assert_false(ferry_mapping_set_reads(set, "other", "customer"));
    assert_false(ferry_mapping_set_reads(NULL, "shop", "order"));

    sources = ferry_mapping_set_sources(set);
    want_sources = json_pack("[{s:s, s:s}, {s:s, s:s, s:[s]}]", "system", "shop", "object",
                             "customer", "system", "shop", "object", "order", "events", "placed");
    assert_true(json_equal(sources, want_sources));
    json_decref(sources);
    json_decref(want_sources);
    json_decref(record);
    ferry_mapping_set_free(set);
}

static void test_mapping_filter_false_no_intents(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *record = json_pack("{s:i, s:b}", "id", 1, "guest", 1);
    json_t *ctx = json_pack("{s:s}", "tenant", "t1");
    json_t *intents = NULL;
    const char *p = write_file(
        f, "filter.lua",
        "return { source = { 'shop', 'customer' }, target = { 'crm', 'Contact' },\n"
        "  fields = { T = function(r, ctx) return ctx.tenant .. '/' .. ctx.event end },\n"
        "  filter = function(r, ctx) return not r.guest end }\n");
    if (load_one(f, p, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(
        ferry_mapping_set_run(set, "shop", "customer", "updated", record, ctx, &intents, &err), 0);
    assert_true(json_is_array(intents));
    assert_int_equal(json_array_size(intents), 0);
    json_decref(intents);
    json_object_set_new(record, "guest", json_false());
    assert_int_equal(
        ferry_mapping_set_run(set, "shop", "customer", "updated", record, ctx, &intents, &err), 0);
    assert_int_equal(json_array_size(intents), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(intents, 0), "fields"), "T")),
                        "t1/updated");
    json_decref(intents);
    json_decref(record);
    json_decref(ctx);
    ferry_mapping_set_free(set);
}

static void test_mapping_null_and_empty_values(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *record = json_pack("{s:i, s:n, s:s, s:[]}", "id", 3, "phone", "email", "", "tags");
    json_t *intents = NULL;
    json_t *fields;
    const char *p = write_file(
        f, "nulls.lua",
        "return { source = { 'shop', 'customer' }, target = { 'crm', 'Contact' },\n"
        "  fields = { Phone = 'phone', Email = 'email', Clear = function() return ferry.null end,\n"
        "             Tags = function(r) return r.tags end,\n"
        "             IsNull = function(r) return r.phone == ferry.null end } }\n");
    if (load_one(f, p, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(
        ferry_mapping_set_run(set, "shop", "customer", "x", record, NULL, &intents, &err), 0);
    fields = json_object_get(json_array_get(intents, 0), "fields");
    assert_null(json_object_get(fields, "Phone"));
    assert_null(json_object_get(fields, "Email"));
    assert_true(json_is_null(json_object_get(fields, "Clear")));
    assert_true(json_is_array(json_object_get(fields, "Tags")));
    assert_true(json_is_true(json_object_get(fields, "IsNull")));
    json_decref(intents);
    json_decref(record);
    ferry_mapping_set_free(set);
}

static const char *rules_mapping =
    "local map = require \"ferry.map\"\n"
    "return {\n"
    "  source = { \"shop\", \"order\", on = { \"created\" } },\n"
    "  target = { \"crm\", \"CustomerOrder\" },\n"
    "  fields = { Name = \"name\", Email = map.lower \"email\" },\n"
    "  validate = { Email = { required = true, format = \"email\" },\n"
    "               Name = { max_length = 10 } },\n"
    "  rules = {\n"
    "    call_big_buyers = function(record, ctx)\n"
    "      if record.total < map.setting(\"threshold\", 100)(record, ctx) then return nil end\n"
    "      return map.activity{ target = { \"crm\", \"PhoneCall\" }, key = \"big-order\",\n"
    "                           fields = { Subject = \"Call \" .. record.name } }\n"
    "    end,\n"
    "    move_opportunity = function(record, ctx)\n"
    "      return map.update{ target = { \"crm\", \"Opportunity\" },\n"
    "                         match = { map.lookup(\"AccountEmail\", map.lower \"email\") },\n"
    "                         fields = { SalesCyclePhaseCode = \"004\" } }\n"
    "    end,\n"
    "  },\n"
    "}\n";

/* Runs the rules mapping on one order; returns the intents (caller frees) or NULL with err set. */
static json_t *run_order(struct ferry_mapping_set *set, const char *name, const char *email,
                         int total, const char *settings, struct ferry_err *err)
{
    json_t *record =
        json_pack("{s:i, s:s, s:s, s:i}", "id", 250, "name", name, "email", email, "total", total);
    json_t *ctx = settings ? json_pack("{s:o}", "settings", json_loads(settings, 0, NULL)) : NULL;
    json_t *intents = NULL;
    int rc = ferry_mapping_set_run(set, "shop", "order", "created", record, ctx, &intents, err);
    json_decref(record);
    json_decref(ctx);
    return rc < 0 ? NULL : intents;
}

static void test_mapping_rules_validation_and_settings(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    const char *path = write_file(f, "rules.lua", rules_mapping);
    if (load_one(f, path, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }

    /* Below the default threshold: the main intent and the opportunity update. */
    json_t *out = run_order(set, "Ada", "ADA@x.io", 50, NULL, &err);
    assert_non_null(out);
    assert_int_equal(json_array_size(out), 2);
    json_t *upd = json_array_get(out, 1);
    assert_string_equal(json_string_value(json_object_get(upd, "op")), "update");
    assert_string_equal(json_string_value(json_object_get(upd, "rule")), "move_opportunity");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(upd, "match"), 0), "value")),
                        "ada@x.io");
    json_decref(out);

    /* A settings table lowers the threshold: the phone call appears, keyed for idempotency. */
    out = run_order(set, "Ada", "ada@x.io", 50, "{\"threshold\": 10}", &err);
    assert_non_null(out);
    assert_int_equal(json_array_size(out), 3);
    json_t *call = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(out, i, it)
    {
        const char *obj =
            json_string_value(json_object_get(json_object_get(it, "target"), "object"));
        if (obj && strcmp(obj, "PhoneCall") == 0) {
            call = it;
        }
    }
    assert_non_null(call);
    assert_string_equal(json_string_value(json_object_get(call, "op")), "upsert");
    assert_string_equal(json_string_value(json_object_get(json_object_get(call, "source"), "id")),
                        "250#big-order");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(call, "fields"), "Subject")), "Call Ada");
    json_decref(out);

    /* Validation: a bad e-mail and a too-long name fail the job with the file named. */
    assert_null(run_order(set, "Ada", "not-an-address", 50, NULL, &err));
    assert_int_equal(err.code, FERRY_EMAPPING);
    assert_non_null(strstr(err.msg, "rules.lua"));
    assert_non_null(strstr(err.msg, "Email is not a valid email"));
    assert_null(run_order(set, "Adalovelace!", "a@b.co", 50, NULL, &err));
    assert_non_null(strstr(err.msg, "Name is 12 characters, more than 10"));
    ferry_mapping_set_free(set);

    /* A rule without a key cannot be made idempotent: refused when it runs. */
    const char *bad =
        write_file(f, "nokey.lua",
                   "local map = require \"ferry.map\"\n"
                   "return { source = { \"shop\", \"order\" }, target = { \"crm\", \"X\" },\n"
                   "  fields = { A = \"id\" },\n"
                   "  rules = { r = function() return map.activity{ target = { \"crm\", \"T\" },\n"
                   "                                                 fields = {} } end } }\n");
    set = NULL;
    assert_int_equal(load_one(f, bad, &set, &err), 0);
    assert_null(run_order(set, "A", "a@b.co", 1, NULL, &err));
    assert_non_null(strstr(err.msg, "key must be a non-empty string"));
    ferry_mapping_set_free(set);
}

static void test_mapping_customer_to_contact_intent(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    const char *path = FERRY_SOURCE_DIR "/mappings/customer_to_contact";
    json_error_t jerr;
    json_t *record = json_loads(
        "{\"id\": 42, \"email\": \" Ada.Lovelace@Example.COM\", \"first_name\": \"Ada\","
        " \"last_name\": \"Lovelace\", \"company\": \"\", \"phone\": \"+44 20 7946 0000\","
        " \"customer_group_id\": 0, \"date_created\": \"2024-01-02T03:04:05Z\","
        " \"addresses\": [{\"id\": 1, \"customer_id\": 42, \"first_name\": \"Ada\","
        " \"last_name\": \"Lovelace\", \"address1\": \"12 St James Sq\", \"address2\": \"\","
        " \"city\": \"London\", \"state_or_province\": \"London\", \"postal_code\": \"SW1Y 4JH\","
        " \"country_code\": \"GB\", \"country\": \"United Kingdom\", \"phone\": \"\","
        " \"address_type\": \"residential\"}]}",
        0, &jerr);
    json_t *want = json_loads(
        "[{\"op\": \"upsert\", \"mapping\": \"customer_to_contact\","
        " \"source\": {\"system\": \"bigcommerce\", \"object\": \"customer\", \"id\": \"42\","
        "  \"event\": \"updated\"},"
        " \"target\": {\"system\": \"sap_sales\", \"object\": \"ContactCollection\"},"
        " \"match\": [{\"rule\": \"link\"},"
        "  {\"rule\": \"lookup\", \"field\": \"Email\", \"value\": \"ada.lovelace@example.com\"}],"
        " \"fields\": {\"FirstName\": \"Ada\", \"LastName\": \"Lovelace\","
        "  \"Email\": \"ada.lovelace@example.com\", \"Phone\": \"+44 20 7946 0000\","
        "  \"BusinessAddressStreet\": \"12 St James Sq\", \"BusinessAddressCity\": \"London\","
        "  \"BusinessAddressStreetPostalCode\": \"SW1Y 4JH\","
        "  \"BusinessAddressCountryCode\": \"GB\"},"
        " \"owner\": {\"Phone\": \"sap_sales\"}}]",
        0, &jerr);
    json_t *intents = NULL;
    assert_non_null(record);
    assert_non_null(want);
    if (load_one(f, path, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_int_equal(ferry_mapping_set_run(set, "bigcommerce", "customer", "updated", record, NULL,
                                           &intents, &err),
                     0);
    if (!json_equal(intents, want)) {
        char *s = json_dumps(intents, JSON_SORT_KEYS | JSON_INDENT(2));
        fail_msg("unexpected intents:\n%s", s);
    }
    json_decref(intents);
    /* A deletion is not among its events. */
    assert_int_equal(ferry_mapping_set_run(set, "bigcommerce", "customer", "deleted", record, NULL,
                                           &intents, &err),
                     0);
    assert_int_equal(json_array_size(intents), 0);
    json_decref(intents);
    json_decref(record);
    json_decref(want);
    ferry_mapping_set_free(set);
}

static void test_mapping_set_hash_stable_and_sensitive(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *s1 = NULL;
    struct ferry_mapping_set *s2 = NULL;
    struct ferry_mapping_set *s3 = NULL;
    struct ferry_err err = {0};
    char h1[65];
    const char *p = write_field_mapping(f, "hashed.lua", "    return 1");
    if (load_one(f, p, &s1, &err) < 0 || load_one(f, p, &s2, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    snprintf(h1, sizeof(h1), "%s", ferry_mapping_set_hash(s1));
    assert_int_equal(strlen(h1), 64);
    assert_string_equal(h1, ferry_mapping_set_hash(s2));
    write_field_mapping(f, "hashed.lua", "    return 2");
    f->nfiles--; /* same path, already tracked */
    free(f->files[f->nfiles]);
    if (load_one(f, p, &s3, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    assert_string_not_equal(h1, ferry_mapping_set_hash(s3));
    ferry_mapping_set_free(s1);
    ferry_mapping_set_free(s2);
    ferry_mapping_set_free(s3);
}

static void test_mapping_set_outlives_state_safely(void **state)
{
    struct fixture *f = *state;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_t *record = json_pack("{s:i}", "id", 1);
    json_t *intents = NULL;
    const char *p = write_field_mapping(f, "orphan.lua", "    return 1");
    if (load_one(f, p, &set, &err) < 0) {
        fail_msg("load: %s", err.msg);
    }
    ferry_lua_free(f->fl);
    f->fl = NULL;
    assert_int_equal(
        ferry_mapping_set_run(set, "shop", "customer", "created", record, NULL, &intents, &err),
        FERRY_EINVAL);
    ferry_mapping_set_free(set);
    json_decref(record);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mapping_rules_validation_and_settings, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_sandbox_globals_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_sandbox_type_as_library, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_sandbox_binary_chunk_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_sandbox_require_confined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_time_limit_stops_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_time_limit_stops_loop_at_load, setup,
                                        teardown),
        cmocka_unit_test(test_mapping_time_guard_ends_with_last_state),
        cmocka_unit_test_setup_teardown(test_mapping_memory_cap_stops_doubling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_runaway_scripts_do_not_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_error_carries_file_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_unconvertible_value_names_file_and_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_field_value_does_not_outlive_its_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_intent_keeps_what_its_rule_gave, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_prepare_once_per_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_prepare_kept_across_alternating_settings,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_lookup_value_is_literal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_fixed_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_rule_function_field_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_settings_converted_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_non_string_error_carries_file_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_sandbox_libraries_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_globals_stay_per_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_record_reads_like_a_plain_table, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_record_writes_stick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_record_table_as_a_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_record_kept_past_its_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_get_reads_paths_as_documented, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_commerce_decimal_and_quantity, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_owner_where_function_only_when_configured,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_owner_place_only_for_territories, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_commerce_time_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_commerce_ref_to, setup, teardown),
        cmocka_unit_test(test_mapping_json_round_trip),
        cmocka_unit_test(test_mapping_json_lua_errors),
        cmocka_unit_test_setup_teardown(test_mapping_load_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_targets_of_each_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_run_selects_by_source_and_event, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_filter_false_no_intents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_null_and_empty_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_customer_to_contact_intent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_set_hash_stable_and_sensitive, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mapping_set_outlives_state_safely, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
