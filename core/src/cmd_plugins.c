/* SPDX-License-Identifier: MIT */
/*
 * `ferry plugins -c CONFIG [--json]`: load every configured connector the way
 * the daemon would (same directory, same ABI checks, same validation of its
 * configuration section) and list what was found, so an operator can check
 * a deployment before starting it. Connectors are not opened: opening may
 * talk to the remote system, and this command must be safe to run anywhere.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "plugin_loader.h"

FERRY_PRINTF(3, 4)
static void cli_log(struct ferry_call *call, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ferry_log_writev(level, NULL, fmt, ap);
    va_end(ap);
}

/* Nothing is opened here, so no connector has a reason to make requests. */
static int cli_http(struct ferry_call *call, const struct ferry_http_req *req,
                    struct ferry_http_resp *resp, struct ferry_err *err)
{
    return ferry_err_set(err, FERRY_EUNSUPPORTED, "no HTTP while listing plugins");
}

static int64_t cli_now_ms(struct ferry_call *call)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void **cli_worker_slot(struct ferry_call *call)
{
    return NULL;
}

static const char *cli_correlation_id(struct ferry_call *call)
{
    return "ferry-plugins";
}

static const struct ferry_host_api cli_host = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_host_api),
    .log = cli_log,
    .http = cli_http,
    .http_resp_free = ferry_http_resp_free,
    .http_header = ferry_http_resp_header,
    .now_ms = cli_now_ms,
    .worker_slot = cli_worker_slot,
    .correlation_id = cli_correlation_id,
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ferry plugins -c CONFIG [--json]\n\n"
               "Loads each connector named in CONFIG from the plugin directory\n"
               "(FERRY_PLUGIN_DIR overrides plugins.dir), checks its configuration\n"
               "section, and prints: instance, plugin, version, file.\n");
}

int ferry_cmd_plugins(int argc, char **argv)
{
    const char *config_path = NULL;
    int as_json = 0;
    int status = FERRY_EXIT_FAILURE;
    struct ferry_config *cfg = NULL;
    struct ferry_plugin *p = NULL;
    json_t *list = NULL;
    struct ferry_err err = {0};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return FERRY_EXIT_OK;
        } else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
                   i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else {
            fprintf(stderr, "ferry plugins: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return FERRY_EXIT_USAGE;
        }
    }
    if (!config_path) {
        fprintf(stderr, "ferry plugins: -c CONFIG is required\n");
        usage(stderr);
        return FERRY_EXIT_USAGE;
    }

    if (ferry_config_load(&cfg, config_path, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        goto cleanup;
    }
    ferry_log_set_level(cfg->log_level);
    ferry_log_set_format(cfg->log_format);
    list = json_array();
    if (!list) {
        fprintf(stderr, "ferry plugins: out of memory\n");
        goto cleanup;
    }
    for (size_t i = 0; i < cfg->nconnectors; i++) {
        const struct ferry_connector_cfg *cc = &cfg->connectors[i];
        json_t *resolved = NULL;
        if (ferry_plugin_load(&p, cfg->plugin_dir, cc->plugin, &cli_host, &err) < 0 ||
            ferry_plugin_config_resolve(p, cfg->path, cc->name, cc->settings, &resolved, &err) <
                0) {
            fprintf(stderr, "%s\n", err.msg);
            goto cleanup;
        }
        json_decref(resolved);
        json_t *row =
            json_pack("{s:s, s:s, s:s, s:s}", "instance", cc->name, "plugin", p->conn.name,
                      "version", p->conn.version ? p->conn.version : "-", "path", p->path);
        if (!row || json_array_append_new(list, row) != 0) {
            fprintf(stderr, "ferry plugins: cannot encode %s\n", cc->name);
            goto cleanup;
        }
        ferry_plugin_unload(p);
        p = NULL;
    }
    /* Print only once everything loaded, so a failure never looks like a partial success. */
    if (as_json) {
        json_t *doc = json_pack("{s:O}", "connectors", list);
        char *text = doc ? json_dumps(doc, JSON_PRESERVE_ORDER) : NULL;
        json_decref(doc);
        if (!text) {
            fprintf(stderr, "ferry plugins: out of memory\n");
            goto cleanup;
        }
        printf("%s\n", text);
        free(text);
    } else {
        size_t i;
        json_t *row;
        json_array_foreach(list, i, row)
        {
            printf("%s  %s  %s  %s\n", json_string_value(json_object_get(row, "instance")),
                   json_string_value(json_object_get(row, "plugin")),
                   json_string_value(json_object_get(row, "version")),
                   json_string_value(json_object_get(row, "path")));
        }
    }
    fflush(stdout);
    status = FERRY_EXIT_OK;
cleanup:
    ferry_plugin_unload(p);
    json_decref(list);
    ferry_config_free(cfg);
    return status;
}
