/* SPDX-License-Identifier: MIT */
/*
 * Tests for core/src/plugin_loader.c with the test connectors built from
 * tests/unit/plugins/tp_plugin.c (one per refusal reason) into the
 * directory FERRY_TEST_PLUGIN_DIR: every refusal with its one-line message,
 * the descriptor copy, and the checking of a connector's config section.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "plugin_loader.h"

#ifndef FERRY_TEST_PLUGIN_DIR
#error "FERRY_TEST_PLUGIN_DIR must name the directory holding the tp_*.so test plugins"
#endif

FERRY_PRINTF(3, 4)
static void host_log(struct ferry_call *call, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ferry_log_writev(level, NULL, fmt, ap);
    va_end(ap);
}

static const struct ferry_host_api host = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_host_api),
    .log = host_log,
};

/* Loading `name` from the test directory fails with `code` and exactly "plugin <path>: <reason>".
 */
static void expect_refusal(const char *dir, const char *name, int code, const char *reason)
{
    struct ferry_plugin *p = NULL;
    struct ferry_err err = {0};
    char want[PATH_MAX + 256];

    assert_int_equal(ferry_plugin_load(&p, dir, name, &host, &err), code);
    assert_null(p);
    assert_int_equal(err.code, code);
    snprintf(want, sizeof(want), "plugin %s/%s.so: %s", dir, name, reason);
    assert_string_equal(err.msg, want);
    assert_null(strchr(err.msg, '\n'));
}

static void test_plugin_loader_good_plugin(void **state)
{
    struct ferry_plugin *p = NULL;
    struct ferry_err err = {0};
    char path[PATH_MAX];

    assert_int_equal(ferry_plugin_load(&p, FERRY_TEST_PLUGIN_DIR, "tp_good", &host, &err), 0);
    assert_non_null(p);
    snprintf(path, sizeof(path), "%s/tp_good.so", FERRY_TEST_PLUGIN_DIR);
    assert_string_equal(p->path, path);
    assert_int_equal(p->conn.abi, FERRY_PLUGIN_ABI);
    assert_int_equal(p->conn.size, sizeof(struct ferry_connector));
    assert_string_equal(p->conn.name, "tp_good");
    assert_string_equal(p->conn.version, "1.2.3");
    assert_string_equal(p->conn.description, "test connector");
    assert_non_null(p->conn.open);
    assert_non_null(p->conn.close);
    assert_non_null(p->conn.fetch);
    assert_null(p->conn.list_changes);
    assert_null(p->conn.decode_webhook);
    assert_non_null(p->conn.config);
    assert_int_equal(p->conn.fetch(NULL, NULL, "x", "1", NULL, NULL), FERRY_ENOTFOUND);

    /* The entry received our vtable. */
    const struct ferry_host_api **seen = dlsym(p->dl, "tp_seen_host");
    assert_non_null(seen);
    assert_ptr_equal(*seen, &host);
    ferry_plugin_unload(p);
    ferry_plugin_unload(NULL);
}

static void test_plugin_loader_newer_descriptor_clamped(void **state)
{
    struct ferry_plugin *p = NULL;
    struct ferry_err err = {0};

    assert_int_equal(ferry_plugin_load(&p, FERRY_TEST_PLUGIN_DIR, "tp_big", &host, &err), 0);
    /* Only what this host knows is copied; the copy reports that size. */
    assert_int_equal(p->conn.size, sizeof(struct ferry_connector));
    assert_string_equal(p->conn.version, "9.0.0");
    assert_non_null(p->conn.fetch);
    assert_null(p->conn.write);
    assert_true(FERRY_CONNECTOR_HAS(&p->conn, decode_webhook));
    ferry_plugin_unload(p);
}

static void test_plugin_loader_refusals(void **state)
{
    const char *d = FERRY_TEST_PLUGIN_DIR;
    char reason[256];

    expect_refusal(d, "tp_absent", FERRY_EPLUGIN, "not found");
    snprintf(reason, sizeof(reason), "built for ABI %u, this host has ABI %u", FERRY_PLUGIN_ABI + 1,
             FERRY_PLUGIN_ABI);
    expect_refusal(d, "tp_bad_abi", FERRY_EABI, reason);
    expect_refusal(d, "tp_no_entry", FERRY_EPLUGIN, "no entry symbol ferry_connector_entry");
    expect_refusal(d, "tp_entry_fails", FERRY_EPLUGIN, "entry failed: not supported");
    expect_refusal(d, "tp_wrong_name", FERRY_EPLUGIN,
                   "calls itself \"someone_else\", expected \"tp_wrong_name\"");
    snprintf(reason, sizeof(reason), "descriptor size %zu is below the minimum %zu for ABI %u",
             offsetof(struct ferry_connector, decode_webhook), (size_t)FERRY_CONNECTOR_MIN_SIZE,
             FERRY_PLUGIN_ABI);
    expect_refusal(d, "tp_small", FERRY_EABI, reason);
    expect_refusal(d, "tp_no_open", FERRY_EPLUGIN, "mandatory callback open is missing");
    expect_refusal(d, "../tp_good", FERRY_EPLUGIN,
                   "invalid name (letters, digits, '_' and '-' only)");
}

static void test_plugin_loader_host_abi_checked_by_entry(void **state)
{
    struct ferry_plugin *p = NULL;
    struct ferry_err err = {0};
    struct ferry_host_api old = host;
    old.abi = 0;
    assert_int_equal(ferry_plugin_load(&p, FERRY_TEST_PLUGIN_DIR, "tp_good", &old, &err),
                     FERRY_EPLUGIN);
    assert_non_null(strstr(err.msg, "entry failed: plugin ABI mismatch"));
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    char buf[8192];
    size_t n;
    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        assert_int_equal(fwrite(buf, 1, n, out), n);
    }
    fclose(in);
    fclose(out);
}

static void test_plugin_loader_world_writable(void **state)
{
    char dir[] = "/tmp/ferry-test-plugins-XXXXXX";
    char so[sizeof(dir) + 32];
    char reason[128];
    struct ferry_plugin *p = NULL;
    struct ferry_err err = {0};

    assert_non_null(mkdtemp(dir));
    snprintf(so, sizeof(so), "%s/tp_good.so", dir);
    copy_file(FERRY_TEST_PLUGIN_DIR "/tp_good.so", so);

    assert_int_equal(chmod(so, 0666), 0);
    expect_refusal(dir, "tp_good", FERRY_EPLUGIN, "file is world-writable");

    assert_int_equal(chmod(so, 0644), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    snprintf(reason, sizeof(reason), "directory %s is world-writable", dir);
    expect_refusal(dir, "tp_good", FERRY_EPLUGIN, reason);

    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(ferry_plugin_load(&p, dir, "tp_good", &host, &err), 0);
    ferry_plugin_unload(p);

    expect_refusal("/nonexistent-ferry-dir", "tp_good", FERRY_EPLUGIN,
                   "directory /nonexistent-ferry-dir: No such file or directory");
    assert_int_equal(unlink(so), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* Config resolution, against tp_good's declared fields. */
static struct ferry_plugin *good;

static int resolve_setup(void **state)
{
    struct ferry_err err = {0};
    return ferry_plugin_load(&good, FERRY_TEST_PLUGIN_DIR, "tp_good", &host, &err);
}

static int resolve_teardown(void **state)
{
    ferry_plugin_unload(good);
    good = NULL;
    return 0;
}

static int resolve(const char *settings_json, json_t **out, struct ferry_err *err)
{
    json_t *settings = json_loads(settings_json, 0, NULL);
    assert_non_null(settings);
    *out = NULL;
    int rc = ferry_plugin_config_resolve(good, "/etc/ferry.lua", "shop", settings, out, err);
    json_decref(settings);
    return rc;
}

static void expect_resolve_error(const char *settings_json, const char *msg)
{
    json_t *out = NULL;
    struct ferry_err err = {0};
    assert_int_equal(resolve(settings_json, &out, &err), FERRY_ECONFIG);
    assert_null(out);
    assert_int_equal(err.code, FERRY_ECONFIG);
    assert_string_equal(err.msg, msg);
}

static void test_plugin_loader_resolve_defaults_and_secrets(void **state)
{
    json_t *out = NULL;
    struct ferry_err err = {0};

    assert_int_equal(resolve("{\"base_url\": \"https://x.test\","
                             " \"api_token\": {\"$secret\": \"t0k\"}}",
                             &out, &err),
                     0);
    char *dump = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(dump, "{\"api_token\":\"t0k\",\"base_url\":\"https://x.test\","
                              "\"page_size\":50,\"scopes\":[\"a\",\"b\"],\"verbose\":false}");
    free(dump);
    json_decref(out);

    /* Given values win over defaults; secrets nested in tables are unwrapped too. */
    assert_int_equal(resolve("{\"base_url\": {\"$secret\": \"https://env.test\"},"
                             " \"api_token\": {\"$secret\": \"t0k\"}, \"page_size\": 7,"
                             " \"verbose\": true, \"scopes\": {\"x\": 1},"
                             " \"options\": [{\"k\": {\"$secret\": \"deep\"}}], \"note\": \"n\"}",
                             &out, &err),
                     0);
    dump = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(dump, "{\"api_token\":\"t0k\",\"base_url\":\"https://env.test\","
                              "\"note\":\"n\",\"options\":[{\"k\":\"deep\"}],\"page_size\":7,"
                              "\"scopes\":{\"x\":1},\"verbose\":true}");
    free(dump);
    json_decref(out);
}

static void test_plugin_loader_resolve_errors(void **state)
{
    expect_resolve_error(
        "{\"base_url\": \"u\", \"api_token\": {\"$secret\": \"t\"}, \"colour\": 1}",
        "/etc/ferry.lua: connectors.shop.colour: unknown key");
    expect_resolve_error("{\"api_token\": {\"$secret\": \"t\"}}",
                         "/etc/ferry.lua: connectors.shop.base_url: required key is missing");
    expect_resolve_error("{\"base_url\": \"u\"}",
                         "/etc/ferry.lua: connectors.shop.api_token: required key is missing");
    expect_resolve_error("{\"base_url\": \"u\", \"api_token\": \"plain\"}",
                         "/etc/ferry.lua: connectors.shop.api_token: is a secret; give it as "
                         "env(\"NAME\") or file(\"PATH\")");
    expect_resolve_error("{\"base_url\": \"u\", \"api_token\": 5}",
                         "/etc/ferry.lua: connectors.shop.api_token: expected secret, got integer");
    expect_resolve_error("{\"base_url\": 1, \"api_token\": {\"$secret\": \"t\"}}",
                         "/etc/ferry.lua: connectors.shop.base_url: expected string, got integer");
    expect_resolve_error(
        "{\"base_url\": \"u\", \"api_token\": {\"$secret\": \"t\"}, \"page_size\": 2.5}",
        "/etc/ferry.lua: connectors.shop.page_size: expected integer, got number");
    expect_resolve_error(
        "{\"base_url\": \"u\", \"api_token\": {\"$secret\": \"t\"}, \"page_size\": \"7\"}",
        "/etc/ferry.lua: connectors.shop.page_size: expected integer, got string");
    expect_resolve_error(
        "{\"base_url\": \"u\", \"api_token\": {\"$secret\": \"t\"}, \"verbose\": 1}",
        "/etc/ferry.lua: connectors.shop.verbose: expected boolean, got integer");
    expect_resolve_error(
        "{\"base_url\": \"u\", \"api_token\": {\"$secret\": \"t\"}, \"scopes\": \"a\"}",
        "/etc/ferry.lua: connectors.shop.scopes: expected table, got string");
    expect_resolve_error("{\"base_url\": \"u\", \"api_token\": {\"$secret\": \"t\"},"
                         " \"scopes\": {\"$secret\": \"s\"}}",
                         "/etc/ferry.lua: connectors.shop.scopes: expected table, got secret");
}

static void test_plugin_loader_resolve_bad_default(void **state)
{
    struct ferry_plugin *p = NULL;
    struct ferry_err err = {0};
    json_t *out = NULL;
    json_t *settings = json_pack("{s:s, s:{s:s}}", "base_url", "u", "api_token", "$secret", "t");

    assert_int_equal(ferry_plugin_load(&p, FERRY_TEST_PLUGIN_DIR, "tp_bad_default", &host, &err),
                     0);
    assert_int_equal(ferry_plugin_config_resolve(p, "f.lua", "x", settings, &out, &err),
                     FERRY_EPLUGIN);
    assert_null(out);
    assert_non_null(strstr(err.msg, "field page_size: invalid default \"fifty\""));
    json_decref(settings);
    ferry_plugin_unload(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugin_loader_good_plugin),
        cmocka_unit_test(test_plugin_loader_newer_descriptor_clamped),
        cmocka_unit_test(test_plugin_loader_refusals),
        cmocka_unit_test(test_plugin_loader_host_abi_checked_by_entry),
        cmocka_unit_test(test_plugin_loader_world_writable),
        cmocka_unit_test_setup_teardown(test_plugin_loader_resolve_defaults_and_secrets,
                                        resolve_setup, resolve_teardown),
        cmocka_unit_test_setup_teardown(test_plugin_loader_resolve_errors, resolve_setup,
                                        resolve_teardown),
        cmocka_unit_test(test_plugin_loader_resolve_bad_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
