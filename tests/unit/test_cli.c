/* SPDX-License-Identifier: MIT */
/*
 * Command tests for the parts the end-to-end suite does not reach: usage and
 * configuration errors of `run` and `sync` (exit 2 and 1, before anything
 * starts), and `plugins`, which loads the real connectors built beside the
 * tests ($FERRY_PLUGIN_DIR) and lists them.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

struct fx {
    char dir[64];
    char config[128];
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/ferry-cli-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->config, sizeof(fx->config), "%s/ferry.lua", fx->dir);
    setenv("FERRY_TEST_TOKEN", "token-value-123", 1);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void write_config(struct fx *fx, const char *text)
{
    FILE *f = fopen(fx->config, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs fn(argc, argv) with stdout and stderr captured into *out (caller frees). */
static int run_captured(int (*fn)(int, char **), int argc, char **argv, char **out)
{
    char path[] = "/tmp/ferry-cli-out-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    off_t len = lseek(fd, 0, SEEK_END);
    *out = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, *out, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return rc;
}

static const char *good_config =
    "return {\n"
    "  state = { path = \"state.db\" },\n"
    "  connectors = {\n"
    "    bigcommerce = { store_hash = \"s1\", access_token = env(\"FERRY_TEST_TOKEN\"),\n"
    "                    webhook_secret = env(\"FERRY_TEST_TOKEN\") },\n"
    "    sap_sales = { username = \"U\", password = env(\"FERRY_TEST_TOKEN\") },\n"
    "  },\n"
    "}\n";

static void test_cli_run_and_sync_usage(void **state)
{
    struct fx *fx = *state;
    char *out = NULL;
    char *help[] = {"run", "--help", NULL};
    assert_int_equal(run_captured(ferry_cmd_run, 2, help, &out), FERRY_EXIT_OK);
    assert_non_null(strstr(out, "usage: ferry run -c CONFIG"));
    free(out);

    char *no_config[] = {"run", NULL};
    assert_int_equal(run_captured(ferry_cmd_run, 1, no_config, &out), FERRY_EXIT_USAGE);
    free(out);

    /* sync is one pass only: without --once it is a usage error. */
    char *no_once[] = {"sync", "-c", fx->config, NULL};
    assert_int_equal(run_captured(ferry_cmd_sync, 3, no_once, &out), FERRY_EXIT_USAGE);
    assert_non_null(strstr(out, "--once"));
    free(out);

    char *bad_since[] = {"sync", "-c", fx->config, "--since", "last tuesday", NULL};
    assert_int_equal(run_captured(ferry_cmd_sync, 5, bad_since, &out), FERRY_EXIT_USAGE);
    assert_non_null(strstr(out, "last tuesday"));
    free(out);
}

static void test_cli_run_reports_config_errors(void **state)
{
    struct fx *fx = *state;
    char *out = NULL;
    write_config(fx, "return { workerz = 2, connectors = { x = {} } }\n");
    char *argv[] = {"sync", "-c", fx->config, "--once", NULL};
    assert_int_equal(run_captured(ferry_cmd_sync, 4, argv, &out), FERRY_EXIT_FAILURE);
    assert_non_null(strstr(out, "workerz"));
    assert_non_null(strstr(out, "ferry.lua"));
    free(out);
}

static void test_cli_plugins_lists_connectors(void **state)
{
    struct fx *fx = *state;
    char *out = NULL;
    if (!getenv("FERRY_PLUGIN_DIR")) {
        skip();
    }
    write_config(fx, good_config);
    char *argv[] = {"plugins", "-c", fx->config, "--json", NULL};
    assert_int_equal(run_captured(ferry_cmd_plugins, 4, argv, &out), FERRY_EXIT_OK);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    json_t *list = json_object_get(doc, "connectors");
    assert_int_equal(json_array_size(list), 2);
    size_t i;
    json_t *row;
    int seen = 0;
    json_array_foreach(list, i, row)
    {
        const char *plugin = json_string_value(json_object_get(row, "plugin"));
        assert_non_null(json_string_value(json_object_get(row, "version")));
        seen += plugin && (strcmp(plugin, "bigcommerce") == 0 || strcmp(plugin, "sap_sales") == 0);
    }
    assert_int_equal(seen, 2);
    /* The secret's value never reaches the output. */
    assert_null(strstr(out, "token-value-123"));
    json_decref(doc);
    free(out);
}

static void test_cli_plugins_refuses_bad_section(void **state)
{
    struct fx *fx = *state;
    char *out = NULL;
    if (!getenv("FERRY_PLUGIN_DIR")) {
        skip();
    }
    /* A secret written into the file is refused, naming the key. */
    write_config(fx, "return { connectors = { sap_sales = { username = \"U\", "
                     "password = \"plain-text\" } } }\n");
    char *argv[] = {"plugins", "-c", fx->config, NULL};
    assert_int_equal(run_captured(ferry_cmd_plugins, 3, argv, &out), FERRY_EXIT_FAILURE);
    assert_non_null(strstr(out, "connectors.sap_sales.password"));
    free(out);
}

static void test_cli_check_reports_each_layer(void **state)
{
    struct fx *fx = *state;
    char *out = NULL;
    char cfg[1024];
    if (!getenv("FERRY_PLUGIN_DIR") || !getenv("FERRY_SOURCE_DIR")) {
        skip();
    }
    snprintf(cfg, sizeof(cfg),
             "return {\n"
             "  state = { path = \"state.db\" },\n"
             "  mappings = { dir = \"%s/mappings\", lua_path = \"%s/lua\",\n"
             "               enabled = { \"customer_to_contact\" } },\n"
             "  connectors = {\n"
             "    bigcommerce = { store_hash = \"s1\", access_token = env(\"FERRY_TEST_TOKEN\"),\n"
             "                    webhook_secret = env(\"FERRY_TEST_TOKEN\") },\n"
             "    sap_sales = { username = \"U\", password = env(\"FERRY_TEST_TOKEN\") },\n"
             "  },\n"
             "}\n",
             getenv("FERRY_SOURCE_DIR"), getenv("FERRY_SOURCE_DIR"));
    write_config(fx, cfg);
    char *argv[] = {"check", "-c", fx->config, NULL};
    int rc = run_captured(ferry_cmd_check, 3, argv, &out);
    assert_non_null(strstr(out, "ok   config"));
    assert_non_null(strstr(out, "customer_to_contact -> sap_sales ContactCollection"));
    assert_int_equal(rc, strstr(out, "FAIL") ? FERRY_EXIT_FAILURE : FERRY_EXIT_OK);
    free(out);

    /* A broken mapping directory fails the check, naming the problem. */
    write_config(fx, "return { mappings = { dir = \"/nonexistent\", enabled = { \"x\" } },\n"
                     "  connectors = { sap_sales = { username = \"U\",\n"
                     "    password = env(\"FERRY_TEST_TOKEN\") } } }\n");
    assert_int_equal(run_captured(ferry_cmd_check, 3, argv, &out), FERRY_EXIT_FAILURE);
    assert_non_null(strstr(out, "FAIL"));
    free(out);
}

static void test_cli_webhooks_needs_public_url(void **state)
{
    struct fx *fx = *state;
    char *out = NULL;
    write_config(fx, good_config);
    char *argv[] = {"webhooks", "-c", fx->config, NULL};
    assert_int_equal(run_captured(ferry_cmd_webhooks, 3, argv, &out), FERRY_EXIT_FAILURE);
    assert_non_null(strstr(out, "webhooks.public_url"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cli_run_and_sync_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_run_reports_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_plugins_lists_connectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_plugins_refuses_bad_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_check_reports_each_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_webhooks_needs_public_url, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
