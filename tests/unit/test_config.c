/* SPDX-License-Identifier: MIT */
/*
 * Tests for core/src/config.c: defaults, every section, the env()/file()
 * secret markers, the error messages an operator sees (file, key path, line),
 * the sandbox and its instruction limit, path resolution and the
 * FERRY_PLUGIN_DIR override. Each test writes its config into a fresh
 * temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define MIN_CONNECTORS "connectors = { shop = { plugin = \"p\" } }"

struct fixture {
    char dir[PATH_MAX];
    char path[PATH_MAX + 16];
    struct ferry_config *cfg;
    struct ferry_err err;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/ferry-test-config-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/ferry.lua", f->dir);
    /* CTest sets it for the e2e tests; these tests decide it themselves. */
    unsetenv("FERRY_PLUGIN_DIR");
    unsetenv("FERRY_TEST_TOKEN");
    unsetenv("FERRY_TEST_MISSING");
    *state = f;
    return 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[PATH_MAX + 16];
    ferry_config_free(f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        return -1;
    }
    free(f);
    return 0;
}

static int load(struct fixture *f, const char *text)
{
    write_file(f->dir, "ferry.lua", text);
    ferry_config_free(f->cfg);
    f->cfg = NULL;
    return ferry_config_load(&f->cfg, f->path, &f->err);
}

/* Loading `text` fails with FERRY_ECONFIG and exactly "<path><suffix>". */
static void expect_error(struct fixture *f, const char *text, const char *suffix)
{
    char want[PATH_MAX + 256];
    assert_int_equal(load(f, text), FERRY_ECONFIG);
    assert_null(f->cfg);
    assert_int_equal(f->err.code, FERRY_ECONFIG);
    snprintf(want, sizeof(want), "%s%s", f->path, suffix);
    assert_string_equal(f->err.msg, want);
}

static char *in_dir(const struct fixture *f, const char *name)
{
    static char buf[PATH_MAX + 64];
    snprintf(buf, sizeof(buf), "%s/%s", f->dir, name);
    return buf;
}

static void test_config_mapping_settings(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        load(f, "return { mappings = { settings = {\n"
                "  order_to_activities = { call_above = 500, statuses = { [\"11\"] = \"x\" } },\n"
                "} }, " MIN_CONNECTORS " }"),
        0);
    json_t *s = f->cfg->mapping_settings;
    assert_true(json_is_object(s));
    json_t *o = json_object_get(s, "order_to_activities");
    assert_int_equal(json_integer_value(json_object_get(o, "call_above")), 500);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "statuses"), "11")),
                        "x");
    assert_int_equal(load(f, "return { mappings = { settings = 3 }, " MIN_CONNECTORS " }"),
                     FERRY_ECONFIG);
    assert_non_null(strstr(f->err.msg, "mappings.settings"));
}

static void test_config_defaults(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "return { " MIN_CONNECTORS " }"), 0);
    struct ferry_config *c = f->cfg;
    assert_string_equal(c->path, f->path);
    assert_string_equal(c->dir, f->dir);
    assert_string_equal(c->state_path, in_dir(f, "ferry.db"));
    assert_int_equal(c->workers, 4);
    assert_int_equal(c->log_level, FERRY_LOG_INFO);
    assert_int_equal(c->log_format, FERRY_LOG_JSON);
    assert_string_equal(c->plugin_dir, FERRY_DEFAULT_PLUGIN_DIR);
    /* No mappings/ or lua/ next to the config: the installed ones. */
    assert_string_equal(c->mapping_dir, FERRY_DEFAULT_SHARE_DIR "/mappings");
    assert_string_equal(c->lua_dir, FERRY_DEFAULT_SHARE_DIR "/lua");
    assert_int_equal(c->nmappings, 0);
    /* A deployment's own copies next to the config win. */
    char sub[PATH_MAX + 16];
    snprintf(sub, sizeof(sub), "%s/mappings", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof(sub), "%s/lua", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    ferry_config_free(f->cfg);
    f->cfg = NULL;
    assert_int_equal(load(f, "return { " MIN_CONNECTORS " }"), 0);
    c = f->cfg;
    assert_string_equal(c->mapping_dir, in_dir(f, "mappings"));
    assert_string_equal(c->lua_dir, in_dir(f, "lua"));
    assert_string_equal(c->listen_address, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_null(c->port_file);
    assert_int_equal(c->max_body, 1024 * 1024);
    assert_int_equal(c->dedupe_window_ms, 600000);
    assert_int_equal(c->poll_interval_ms, 300000);
    assert_int_equal(c->retry_max_attempts, 8);
    assert_int_equal(c->retry_base_ms, 1000);
    assert_int_equal(c->retry_max_ms, 600000);
    assert_int_equal(c->http_timeout_ms, 30000);
    assert_int_equal(c->ninsecure_hosts, 0);
    assert_int_equal(c->lua_mem_max, 64 * 1024 * 1024);
    assert_int_equal(c->lua_time_limit_ms, 1000);
    assert_true(c->mapping_watch);
    assert_int_equal(c->nsecrets, 0);
    assert_int_equal(c->nconnectors, 1);
    assert_string_equal(c->connectors[0].name, "shop");
    assert_string_equal(c->connectors[0].plugin, "p");
    assert_int_equal(json_object_size(c->connectors[0].settings), 0);
}

static void test_config_every_section(void **state)
{
    struct fixture *f = *state;
    const char *text =
        "local base = 2\n"
        "return {\n"
        "  state = { path = \"/var/lib/ferry/state.db\" },\n"
        "  workers = base * 4,\n"
        "  log = { level = \"debug\", format = \"text\" },\n"
        "  plugins = { dir = \"/opt/ferry/plugins\" },\n"
        "  mappings = { dir = \"maps\", lua_path = \"/usr/share/ferry/lua\",\n"
        "               enabled = { \"a_to_b\", \"c_to_d\" },\n"
        "               memory_limit = 8 * 1024 * 1024, time_limit = 0.25,\n"
        "               watch = false },\n"
        "  webhooks = { address = \"0.0.0.0\", port = 0, port_file = \"run/port\",\n"
        "               max_body = 4096, dedupe_window = 30 },\n"
        "  poll = { interval = 0 },\n"
        "  retry = { max_attempts = 3, base_delay = 0.25, max_delay = 10 },\n"
        "  http = { timeout = 2.5, insecure_hosts = { \"localhost\", \"sim.test\" } },\n"
        "  connectors = { src = { plugin = \"one\" }, dst = { plugin = \"two\" } },\n"
        "}\n";
    assert_int_equal(load(f, text), 0);
    struct ferry_config *c = f->cfg;
    assert_string_equal(c->state_path, "/var/lib/ferry/state.db");
    assert_int_equal(c->workers, 8);
    assert_int_equal(c->log_level, FERRY_LOG_DEBUG);
    assert_int_equal(c->log_format, FERRY_LOG_TEXT);
    assert_string_equal(c->plugin_dir, "/opt/ferry/plugins");
    assert_string_equal(c->mapping_dir, in_dir(f, "maps"));
    assert_string_equal(c->lua_dir, "/usr/share/ferry/lua");
    assert_int_equal(c->nmappings, 2);
    assert_string_equal(c->mappings[0], "a_to_b");
    assert_string_equal(c->mappings[1], "c_to_d");
    assert_int_equal(c->lua_mem_max, 8 * 1024 * 1024);
    assert_int_equal(c->lua_time_limit_ms, 250);
    assert_false(c->mapping_watch);
    assert_string_equal(c->listen_address, "0.0.0.0");
    assert_int_equal(c->listen_port, 0);
    assert_string_equal(c->port_file, in_dir(f, "run/port"));
    assert_int_equal(c->max_body, 4096);
    assert_int_equal(c->dedupe_window_ms, 30000);
    assert_int_equal(c->poll_interval_ms, 0);
    assert_int_equal(c->retry_max_attempts, 3);
    assert_int_equal(c->retry_base_ms, 250);
    assert_int_equal(c->retry_max_ms, 10000);
    assert_int_equal(c->http_timeout_ms, 2500);
    assert_int_equal(c->ninsecure_hosts, 2);
    assert_string_equal(c->insecure_hosts[1], "sim.test");
    assert_int_equal(c->nconnectors, 2);
    /* Sorted by instance name, whatever order Lua's table iteration had. */
    assert_string_equal(c->connectors[0].name, "dst");
    assert_string_equal(c->connectors[1].name, "src");
    const struct ferry_connector_cfg *dst = ferry_config_connector(c, "dst");
    assert_non_null(dst);
    assert_string_equal(dst->plugin, "two");
    assert_null(ferry_config_connector(c, "nope"));
}

static void test_config_env_secret(void **state)
{
    struct fixture *f = *state;
    setenv("FERRY_TEST_TOKEN", "tok-123", 1);
    assert_int_equal(load(f, "return { connectors = { shop = { token = env(\"FERRY_TEST_TOKEN\"),"
                             " again = env(\"FERRY_TEST_TOKEN\") } } }"),
                     0);
    json_t *s = f->cfg->connectors[0].settings;
    assert_string_equal(f->cfg->connectors[0].plugin, "shop");
    assert_string_equal(json_string_value(json_object_get(json_object_get(s, "token"), "$secret")),
                        "tok-123");
    assert_int_equal(f->cfg->nsecrets, 1);
    assert_string_equal(f->cfg->secrets[0], "tok-123");

    expect_error(f, "return { connectors = { shop = { token = env(\"FERRY_TEST_MISSING\") } } }",
                 ": env(\"FERRY_TEST_MISSING\") is not set");
    setenv("FERRY_TEST_MISSING", "", 1);
    expect_error(f, "return { connectors = { shop = { token = env(\"FERRY_TEST_MISSING\") } } }",
                 ": env(\"FERRY_TEST_MISSING\") is not set");
}

static void test_config_file_secret(void **state)
{
    struct fixture *f = *state;
    write_file(f->dir, "secret.txt", "from-file\n");
    assert_int_equal(load(f, "return { connectors = { shop = { key = file(\"secret.txt\") } } }"),
                     0);
    json_t *key = json_object_get(f->cfg->connectors[0].settings, "key");
    assert_string_equal(json_string_value(json_object_get(key, "$secret")), "from-file");
    assert_int_equal(f->cfg->nsecrets, 1);
    assert_string_equal(f->cfg->secrets[0], "from-file");

    assert_int_equal(load(f, "return { connectors = { shop = { key = file(\"nope.txt\") } } }"),
                     FERRY_ECONFIG);
    assert_non_null(strstr(f->err.msg, f->path));
    assert_non_null(strstr(f->err.msg, "file(\"nope.txt\")"));
    assert_non_null(strstr(f->err.msg, in_dir(f, "nope.txt")));
}

static void test_config_unknown_keys(void **state)
{
    struct fixture *f = *state;
    expect_error(f, "return { workerz = 2, " MIN_CONNECTORS " }", ": workerz: unknown key");
    expect_error(f, "return { webhooks = { max_bdy = 1 }, " MIN_CONNECTORS " }",
                 ": webhooks.max_bdy: unknown key");
    expect_error(f, "return { http = { timeout = 1, verify = false }, " MIN_CONNECTORS " }",
                 ": http.verify: unknown key");
    expect_error(f, "return { 1, " MIN_CONNECTORS " }", ": [1]: unknown key");
}

static void test_config_wrong_types(void **state)
{
    struct fixture *f = *state;
    expect_error(f, "return { log = \"info\", " MIN_CONNECTORS " }",
                 ": log: expected table, got string");
    expect_error(f, "return { workers = \"4\", " MIN_CONNECTORS " }",
                 ": workers: expected number, got string");
    expect_error(f, "return { mappings = { watch = \"yes\" }, " MIN_CONNECTORS " }",
                 ": mappings.watch: expected boolean, got string");
    expect_error(f, "return { workers = 2.5, " MIN_CONNECTORS " }",
                 ": workers: expected integer, got number");
    expect_error(f, "return { webhooks = { address = 1 }, " MIN_CONNECTORS " }",
                 ": webhooks.address: expected string, got number");
    expect_error(f, "return { mappings = { enabled = { \"a\", 2 } }, " MIN_CONNECTORS " }",
                 ": mappings.enabled[2]: expected string, got number");
    expect_error(f, "return { connectors = { shop = { plugin = 3 } } }",
                 ": connectors.shop.plugin: expected string, got number");
    expect_error(f, "return { connectors = { shop = 3 } }",
                 ": connectors.shop: expected table, got number");
    expect_error(f, "return { log = { level = \"loud\" }, " MIN_CONNECTORS " }",
                 ": log.level: expected one of error, warn, info, debug, trace");
    setenv("FERRY_TEST_TOKEN", "x", 1);
    expect_error(f, "return { state = { path = env(\"FERRY_TEST_TOKEN\") }, " MIN_CONNECTORS " }",
                 ": state.path: expected string, got secret");
    expect_error(f, "return 42", ": expected the file to return a table, got number");
}

static void test_config_out_of_range(void **state)
{
    struct fixture *f = *state;
    expect_error(f, "return { workers = 0, " MIN_CONNECTORS " }",
                 ": workers: out of range (1..64)");
    expect_error(f, "return { workers = 65, " MIN_CONNECTORS " }",
                 ": workers: out of range (1..64)");
    expect_error(f, "return { webhooks = { port = 65536 }, " MIN_CONNECTORS " }",
                 ": webhooks.port: out of range (0..65535)");
    expect_error(f, "return { webhooks = { port = -1 }, " MIN_CONNECTORS " }",
                 ": webhooks.port: out of range (0..65535)");
    expect_error(f, "return { webhooks = { max_body = 1023 }, " MIN_CONNECTORS " }",
                 ": webhooks.max_body: out of range (1024..2147483647)");
    expect_error(f, "return { poll = { interval = -1 }, " MIN_CONNECTORS " }",
                 ": poll.interval: out of range (>= 0 seconds)");
    expect_error(f, "return { mappings = { time_limit = 0 }, " MIN_CONNECTORS " }",
                 ": mappings.time_limit: out of range (> 0 seconds)");
    expect_error(f, "return { mappings = { time_limit = 0.0001 }, " MIN_CONNECTORS " }",
                 ": mappings.time_limit: out of range (0.001 to 86400 seconds)");
    expect_error(f, "return { mappings = { time_limit = 86401 }, " MIN_CONNECTORS " }",
                 ": mappings.time_limit: out of range (0.001 to 86400 seconds)");
}

/* A file from before the time limit names the key that replaced its budget. */
static void test_config_instruction_limit_replaced(void **state)
{
    struct fixture *f = *state;
    expect_error(f, "return { mappings = { instruction_limit = 5000 }, " MIN_CONNECTORS " }",
                 ": mappings.instruction_limit: no longer supported: use mappings.time_limit "
                 "(seconds per call, fractional ok, default 1)");
}

static void test_config_connectors_required(void **state)
{
    struct fixture *f = *state;
    expect_error(f, "return {}", ": connectors: required");
    expect_error(f, "return { connectors = {} }", ": connectors: required");
}

static void test_config_syntax_error_has_line(void **state)
{
    struct fixture *f = *state;
    char want[PATH_MAX + 32];
    assert_int_equal(load(f, "return {\n  workers = 4,\n  connectors = {,\n}\n"), FERRY_ECONFIG);
    snprintf(want, sizeof(want), "%s:3:", f->path);
    assert_memory_equal(f->err.msg, want, strlen(want));
}

static void test_config_runtime_error_has_line(void **state)
{
    struct fixture *f = *state;
    char want[PATH_MAX + 32];
    assert_int_equal(load(f, "local x = nil\nreturn x.y\n"), FERRY_ECONFIG);
    snprintf(want, sizeof(want), "%s:2:", f->path);
    assert_memory_equal(f->err.msg, want, strlen(want));
    assert_non_null(strstr(f->err.msg, "attempt to index a nil value"));

    /* No standard library: not even print or string functions. */
    assert_int_equal(load(f, "print(1)\nreturn {}\n"), FERRY_ECONFIG);
    assert_non_null(strstr(f->err.msg, "global 'print'"));
    assert_int_equal(load(f, "return { workers = math.floor(2) }\n"), FERRY_ECONFIG);
    assert_non_null(strstr(f->err.msg, "global 'math'"));
}

static void test_config_infinite_loop_stopped(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "local n = 0\nwhile true do n = n + 1 end\n"), FERRY_ECONFIG);
    assert_non_null(strstr(f->err.msg, "instruction limit"));
    assert_non_null(strstr(f->err.msg, f->path));
}

static void test_config_relative_paths(void **state)
{
    struct fixture *f = *state;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    write_file(
        f->dir, "ferry.lua",
        "return { state = { path = \"data/x.db\" }, plugins = { dir = \"plug\" },\n"
        "  mappings = { dir = \"m\", lua_path = \"l\" }, webhooks = { port_file = \"/tmp/p\" },\n"
        "  connectors = { shop = { path = \"stays/relative\" } } }\n");
    /* Loaded by a relative name from the config's own directory. */
    assert_int_equal(chdir(f->dir), 0);
    int rc = ferry_config_load(&f->cfg, "ferry.lua", &f->err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    assert_string_equal(f->cfg->dir, f->dir);
    assert_string_equal(f->cfg->state_path, in_dir(f, "data/x.db"));
    assert_string_equal(f->cfg->plugin_dir, in_dir(f, "plug"));
    assert_string_equal(f->cfg->mapping_dir, in_dir(f, "m"));
    assert_string_equal(f->cfg->lua_dir, in_dir(f, "l"));
    assert_string_equal(f->cfg->port_file, "/tmp/p");
    /* Connector settings are the plugin's business: untouched. */
    assert_string_equal(json_string_value(json_object_get(f->cfg->connectors[0].settings, "path")),
                        "stays/relative");
}

static void test_config_connector_settings_json(void **state)
{
    struct fixture *f = *state;
    setenv("FERRY_TEST_TOKEN", "tok-1", 1);
    write_file(f->dir, "pw", "pw-2\r\n");
    const char *text = "return { connectors = { crm = {\n"
                       "  plugin = \"crm_plugin\",\n"
                       "  base_url = \"https://crm.test/api\",\n"
                       "  page_size = 100, ratio = 1.5, verbose = true, strict = false,\n"
                       "  scopes = { \"a\", \"b\" }, empty = {},\n"
                       "  nested = { deep = { n = 1, list = { 1, 2, { x = \"y\" } } } },\n"
                       "  token = env(\"FERRY_TEST_TOKEN\"),\n"
                       "  auth = { user = \"u\", password = file(\"pw\") },\n"
                       "} } }\n";
    assert_int_equal(load(f, text), 0);
    const struct ferry_connector_cfg *cc = ferry_config_connector(f->cfg, "crm");
    assert_non_null(cc);
    assert_string_equal(cc->plugin, "crm_plugin");
    assert_null(json_object_get(cc->settings, "plugin"));
    char *dump = json_dumps(cc->settings, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(dump,
                        "{\"auth\":{\"password\":{\"$secret\":\"pw-2\"},\"user\":\"u\"},"
                        "\"base_url\":\"https://crm.test/api\",\"empty\":[],"
                        "\"nested\":{\"deep\":{\"list\":[1,2,{\"x\":\"y\"}],\"n\":1}},"
                        "\"page_size\":100,\"ratio\":1.5,\"scopes\":[\"a\",\"b\"],\"strict\":false,"
                        "\"token\":{\"$secret\":\"tok-1\"},\"verbose\":true}");
    free(dump);
    assert_true(json_is_integer(json_object_get(cc->settings, "page_size")));
    assert_true(json_is_real(json_object_get(cc->settings, "ratio")));
    assert_int_equal(f->cfg->nsecrets, 2);

    expect_error(f, "return { connectors = { crm = { bad = { 1, x = 2 } } } }",
                 ": connectors.crm.bad: mixes list items and named keys");
    expect_error(f, "return { connectors = { crm = { bad = { [5] = 1 } } } }",
                 ": connectors.crm.bad[5]: keys must be strings or 1..n");
    expect_error(f, "return { connectors = { [\"a b\"] = {} } }",
                 ": connectors.a b: instance names use only letters, digits, '_' and '-'");
    expect_error(f, "return { connectors = { x = { plugin = \"../evil\" } } }",
                 ": connectors.x.plugin: plugin names use only letters, digits, '_' and '-'");
    /* A table that contains itself must fail, not recurse forever. */
    assert_int_equal(load(f, "local t = {}\nt.self = t\nreturn { connectors = { x = { t = t } } }"),
                     FERRY_ECONFIG);
    assert_non_null(strstr(f->err.msg, ": connectors.x.t.self.self."));
    assert_non_null(strstr(f->err.msg, ": nested too deeply"));
}

static void test_config_plugin_dir_env_override(void **state)
{
    struct fixture *f = *state;
    setenv("FERRY_PLUGIN_DIR", "/build/plugins", 1);
    assert_int_equal(load(f, "return { plugins = { dir = \"mine\" }, " MIN_CONNECTORS " }"), 0);
    assert_string_equal(f->cfg->plugin_dir, "/build/plugins");
    unsetenv("FERRY_PLUGIN_DIR");
    assert_int_equal(load(f, "return { plugins = { dir = \"mine\" }, " MIN_CONNECTORS " }"), 0);
    assert_string_equal(f->cfg->plugin_dir, in_dir(f, "mine"));
}

static void test_config_missing_file(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ferry_config_load(&f->cfg, in_dir(f, "absent.lua"), &f->err), FERRY_ECONFIG);
    assert_null(f->cfg);
    assert_non_null(strstr(f->err.msg, "absent.lua"));
}

/* Issue 8: admin listener, webhook TLS and limits, privacy, retention. */
static void test_config_operations_sections(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "return { " MIN_CONNECTORS " }"), 0);
    assert_int_equal(f->cfg->admin_port, -1); /* no admin section: no admin listener */
    assert_null(f->cfg->tls_cert);
    assert_int_equal(f->cfg->max_headers, 64);
    assert_int_equal(f->cfg->max_header_bytes, 16 * 1024);
    assert_int_equal(f->cfg->idle_timeout_ms, 10000);
    assert_int_equal(f->cfg->nprivacy_mask, 0);
    assert_int_equal(f->cfg->privacy_emails, 0);
    assert_int_equal(f->cfg->retention_audit_ms, 0);
    assert_int_equal(f->cfg->retention_batch, 500);
    assert_int_equal(f->cfg->retention_interval_ms, 60000);

    assert_int_equal(load(f, "return { " MIN_CONNECTORS ", admin = {} }"), 0);
    assert_int_equal(f->cfg->admin_port, 9464);
    assert_string_equal(f->cfg->admin_address, "127.0.0.1");

    setenv("FERRY_TEST_TOKEN", "salty", 1);
    assert_int_equal(load(f,
                          "return { " MIN_CONNECTORS ",\n"
                          "  admin = { address = \"::1\", port = 0, port_file = \"admin.port\" },\n"
                          "  webhooks = { tls = { cert = \"c.pem\", key = \"/etc/k.pem\" },"
                          " max_headers = 20, max_header_bytes = 4096, idle_timeout = 2.5 },\n"
                          "  privacy = { mask = { \"email\", \"street\" }, hash = { \"phone\" },"
                          " emails = \"hash\", salt = env(\"FERRY_TEST_TOKEN\") },\n"
                          "  retention = { audit_days = 30, jobs_days = 0.5, batch = 100,"
                          " interval = 5 } }"),
                     0);
    struct ferry_config *c = f->cfg;
    assert_string_equal(c->admin_address, "::1");
    assert_int_equal(c->admin_port, 0);
    assert_string_equal(c->admin_port_file, in_dir(f, "admin.port"));
    assert_string_equal(c->tls_cert, in_dir(f, "c.pem"));
    assert_string_equal(c->tls_key, "/etc/k.pem");
    assert_int_equal(c->max_headers, 20);
    assert_int_equal(c->max_header_bytes, 4096);
    assert_int_equal(c->idle_timeout_ms, 2500);
    assert_int_equal(c->nprivacy_mask, 2);
    assert_string_equal(c->privacy_mask[1], "street");
    assert_int_equal(c->nprivacy_hash, 1);
    assert_int_equal(c->privacy_emails, 2);
    assert_string_equal(c->privacy_salt, "salty");
    /* A salt from env() is a secret like any other: it is redacted too. */
    assert_int_equal(c->nsecrets, 1);
    assert_int_equal(c->retention_audit_ms, 30LL * 86400000);
    assert_int_equal(c->retention_jobs_ms, 43200000);
    assert_int_equal(c->retention_batch, 100);
    assert_int_equal(c->retention_interval_ms, 5000);

    expect_error(f, "return { " MIN_CONNECTORS ", webhooks = { tls = { cert = \"c\" } } }",
                 ": webhooks.tls.key: required (a PEM private key file)");
    expect_error(f, "return { " MIN_CONNECTORS ", webhooks = { tls = { crt = \"c\" } } }",
                 ": webhooks.tls.crt: unknown key");
    expect_error(f, "return { " MIN_CONNECTORS ", webhooks = { max_headers = 101 } }",
                 ": webhooks.max_headers: out of range (1..100)");
    expect_error(f, "return { " MIN_CONNECTORS ", privacy = { emails = \"drop\" } }",
                 ": privacy.emails: expected \"mask\" or \"hash\"");
    expect_error(f, "return { " MIN_CONNECTORS ", privacy = { salt = 3 } }",
                 ": privacy.salt: expected string or secret, got number");
    expect_error(f, "return { " MIN_CONNECTORS ", retention = { audit_days = -1 } }",
                 ": retention.audit_days: out of range (0..36500 days)");
    expect_error(f, "return { " MIN_CONNECTORS ", admin = { port = 70000 } }",
                 ": admin.port: out of range (0..65535)");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_mapping_settings, setup, teardown),
        T(test_config_defaults),
        T(test_config_every_section),
        T(test_config_env_secret),
        T(test_config_file_secret),
        T(test_config_unknown_keys),
        T(test_config_wrong_types),
        T(test_config_out_of_range),
        T(test_config_instruction_limit_replaced),
        T(test_config_connectors_required),
        T(test_config_syntax_error_has_line),
        T(test_config_runtime_error_has_line),
        T(test_config_infinite_loop_stopped),
        T(test_config_relative_paths),
        T(test_config_connector_settings_json),
        T(test_config_plugin_dir_env_override),
        T(test_config_missing_file),
        T(test_config_operations_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
