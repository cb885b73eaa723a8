/* SPDX-License-Identifier: MIT */
/*
 * Operator commands that set up or verify a deployment without running the
 * daemon: `ferry check` (configuration, plugins, mappings, and mapping targets
 * against what each connector says its objects accept) and `ferry webhooks`
 * (the webhook registrations the mappings need, against those the remote
 * system has; --apply fixes them).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "cli.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "mapping.h"
#include "runtime.h"
#include "targets.h"
#include "util.h"

struct admin_args {
    const char *config;
    bool apply;
    bool json;
};

static int parse_args(int argc, char **argv, const char *usage, bool allow_apply,
                      struct admin_args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"apply", no_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    memset(a, 0, sizeof(*a));
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'a':
            if (!allow_apply) {
                fputs(usage, stderr);
                return FERRY_EXIT_USAGE;
            }
            a->apply = true;
            break;
        case 'j':
            a->json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return FERRY_EXIT_OK;
        default:
            fputs(usage, stderr);
            return FERRY_EXIT_USAGE;
        }
    }
    if (!a->config || optind != argc) {
        fputs(usage, stderr);
        return FERRY_EXIT_USAGE;
    }
    return -1; /* go on */
}

/* Compile the enabled mappings in a scratch state. */
static int compile_mappings(const struct ferry_config *cfg, struct ferry_runtime *rt,
                            struct ferry_lua **L, struct ferry_mapping_set **set,
                            struct ferry_err *err)
{
    struct ferry_lua_limits lim = {.mem_max = (size_t)cfg->lua_mem_max,
                                   .instr_budget = cfg->lua_instr_budget};
    int rc = ferry_lua_new(L, cfg->lua_dir, &lim, err);
    if (rc == 0) {
        rc = ferry_mapping_set_load(*L, (const char *const *)rt->mapping_paths, rt->nmapping_paths,
                                    set, err);
    }
    return rc;
}

/* ---- ferry check ---- */

static const char check_usage[] =
    "usage: ferry check -c CONFIG [--json]\n\n"
    "Check a deployment without running it: the configuration, every connector\n"
    "plugin (loaded, configured and opened), the enabled mappings (compiled),\n"
    "and every property the mappings write against the objects each connector\n"
    "describes (a connector reads its metadata from a file named in its\n"
    "configuration, or from its cache). Exit status 0 when all is well, 1 when\n"
    "anything is wrong (each problem on its own line), 2 usage.\n\n"
    "  -c, --config FILE   configuration file (Lua)\n"
    "      --json          one JSON object instead of text\n"
    "  -h, --help          this text\n";

static void report(json_t *checks, bool json, const char *what, bool ok, const char *detail)
{
    json_array_append_new(checks,
                          json_pack("{s:s, s:b, s:s}", "check", what, "ok", ok, "detail", detail));
    if (!json) {
        printf("%-4s %-10s %s\n", ok ? "ok" : "FAIL", what, detail);
    }
}

int ferry_cmd_check(int argc, char **argv)
{
    struct admin_args a;
    struct ferry_err err = {0};
    struct ferry_config *cfg = NULL;
    struct ferry_runtime *rt = NULL;
    struct ferry_lua *L = NULL;
    struct ferry_mapping_set *set = NULL;
    json_t *checks = json_array();
    bool failed = false;
    char line[512];
    int rc = parse_args(argc, argv, check_usage, false, &a);
    if (rc >= 0) {
        json_decref(checks);
        return rc;
    }
    ferry_log_set_level(FERRY_LOG_ERROR);

    if (ferry_config_load(&cfg, a.config, &err) < 0) {
        report(checks, a.json, "config", false, err.msg);
        failed = true;
        goto out;
    }
    snprintf(line, sizeof(line), "%s: %zu connector(s), %zu mapping(s)", a.config, cfg->nconnectors,
             cfg->nmappings);
    report(checks, a.json, "config", true, line);
    xmlInitParser();
    if (ferry_http_global_init(&err) < 0 || ferry_runtime_new_empty(&rt, cfg, &err) < 0 ||
        ferry_runtime_load_connectors(rt, &err) < 0) {
        report(checks, a.json, "plugins", false, err.msg);
        failed = true;
        goto out;
    }
    for (size_t i = 0; i < rt->ninstances; i++) {
        snprintf(line, sizeof(line), "%s: %s %s", rt->instances[i].name,
                 rt->instances[i].conn->name, rt->instances[i].conn->version);
        report(checks, a.json, "plugin", true, line);
    }
    if (compile_mappings(cfg, rt, &L, &set, &err) < 0) {
        report(checks, a.json, "mappings", false, err.msg);
        failed = true;
        goto out;
    }
    json_t *targets = ferry_mapping_set_targets(set);
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t)
    {
        snprintf(line, sizeof(line), "%s: %s -> %s %s (%zu field(s))",
                 json_string_value(json_object_get(t, "path")),
                 json_string_value(json_object_get(t, "mapping")),
                 json_string_value(json_object_get(t, "system")),
                 json_string_value(json_object_get(t, "object")),
                 json_object_size(json_object_get(t, "fields")));
        report(checks, a.json, "mapping", true, line);
    }
    if (ferry_runtime_describe(rt, true, &err) < 0) {
        report(checks, a.json, "describe", false, err.msg);
        failed = true;
        json_decref(targets);
        goto out;
    }
    json_t *schemas = json_object(), *problems = NULL, *warnings = NULL;
    for (size_t k = 0; k < rt->ninstances; k++) {
        if (rt->instances[k].schema) {
            json_object_set(schemas, rt->instances[k].name, rt->instances[k].schema);
            snprintf(line, sizeof(line), "%s describes %zu object(s)", rt->instances[k].name,
                     json_object_size(rt->instances[k].schema));
            report(checks, a.json, "describe", true, line);
        }
    }
    if (ferry_targets_check(targets, schemas, &problems, &warnings) < 0) {
        report(checks, a.json, "targets", false, "out of memory");
        failed = true;
    } else {
        json_t *m;
        json_array_foreach(warnings, i, m)
        {
            report(checks, a.json, "warning", true, json_string_value(m));
        }
        json_array_foreach(problems, i, m)
        {
            report(checks, a.json, "target", false, json_string_value(m));
            failed = true;
        }
        if (json_array_size(problems) == 0) {
            report(checks, a.json, "targets", true,
                   "every written property exists and is writable");
        }
    }
    json_decref(problems);
    json_decref(warnings);
    json_decref(schemas);
    json_decref(targets);
out:
    if (a.json) {
        json_t *doc = json_pack("{s:b, s:O}", "ok", !failed, "checks", checks);
        char *text = json_dumps(doc, JSON_COMPACT);
        if (text) {
            printf("%s\n", text);
        }
        free(text);
        json_decref(doc);
    }
    json_decref(checks);
    ferry_mapping_set_free(set);
    ferry_lua_free(L);
    ferry_runtime_free(rt);
    ferry_config_free(cfg);
    ferry_http_global_cleanup();
    return failed ? FERRY_EXIT_FAILURE : FERRY_EXIT_OK;
}

/* ---- ferry webhooks ---- */

static const char webhooks_usage[] =
    "usage: ferry webhooks -c CONFIG [--apply] [--json]\n\n"
    "Compare the webhook registrations the enabled mappings need with those the\n"
    "remote systems have, and with --apply create the missing ones (with the\n"
    "shared-secret header) and reactivate deactivated ones. The address\n"
    "registered is webhooks.public_url + /webhooks/<connector>.\n"
    "Exit status 0 when every needed registration is active (after --apply),\n"
    "1 when one is missing, inactive or failed, 2 usage.\n\n"
    "  -c, --config FILE   configuration file (Lua)\n"
    "      --apply         make the changes\n"
    "      --json          one JSON object instead of text\n"
    "  -h, --help          this text\n";

int ferry_cmd_webhooks(int argc, char **argv)
{
    struct admin_args a;
    struct ferry_err err = {0};
    struct ferry_config *cfg = NULL;
    struct ferry_runtime *rt = NULL;
    struct ferry_lua *L = NULL;
    struct ferry_mapping_set *set = NULL;
    json_t *sources = NULL, *all = json_object();
    int status = FERRY_EXIT_OK;
    int rc = parse_args(argc, argv, webhooks_usage, true, &a);
    if (rc >= 0) {
        json_decref(all);
        return rc;
    }
    if (ferry_config_load(&cfg, a.config, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        json_decref(all);
        return FERRY_EXIT_FAILURE;
    }
    ferry_log_set_level(cfg->log_level < FERRY_LOG_WARN ? cfg->log_level : FERRY_LOG_WARN);
    if (!cfg->public_url || !*cfg->public_url) {
        fprintf(stderr,
                "ferry: %s: webhooks.public_url is not set: it is the https address the "
                "remote system calls (e.g. \"https://ferry.example.com\")\n",
                cfg->path);
        status = FERRY_EXIT_FAILURE;
        goto out;
    }
    xmlInitParser();
    if (ferry_http_global_init(&err) < 0 || ferry_runtime_new_empty(&rt, cfg, &err) < 0 ||
        ferry_runtime_load_connectors(rt, &err) < 0 ||
        compile_mappings(cfg, rt, &L, &set, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        status = FERRY_EXIT_FAILURE;
        goto out;
    }
    sources = ferry_mapping_set_sources(set);
    for (size_t i = 0; i < rt->ninstances; i++) {
        struct ferry_instance *inst = &rt->instances[i];
        struct ferry_call call;
        json_t *needs = json_array(), *report = NULL;
        size_t k;
        json_t *src;
        if (!FERRY_CONNECTOR_HAS(inst->conn, sync_webhooks) || !inst->conn->sync_webhooks) {
            json_decref(needs);
            continue;
        }
        json_array_foreach(sources, k, src)
        {
            const char *sys = json_string_value(json_object_get(src, "system"));
            if (sys && strcmp(sys, inst->name) == 0) {
                json_t *need = json_pack("{s:O}", "object", json_object_get(src, "object"));
                if (json_object_get(src, "events")) {
                    json_object_set(need, "events", json_object_get(src, "events"));
                }
                json_array_append_new(needs, need);
            }
        }
        if (json_array_size(needs) == 0) {
            json_decref(needs);
            continue;
        }
        char url[2048];
        size_t ul = strlen(cfg->public_url);
        snprintf(url, sizeof(url), "%s%swebhooks/%s", cfg->public_url,
                 ul && cfg->public_url[ul - 1] == '/' ? "" : "/", inst->name);
        ferry_call_init(&call, rt, NULL, i, "webhooks", 0);
        call.setup = rt->setup_store != NULL;
        ferry_err_clear(&err);
        rc = inst->conn->sync_webhooks(inst->state, &call, needs, url, a.apply ? 1 : 0, &report,
                                       &err);
        json_decref(needs);
        if (rc < 0) {
            fprintf(stderr, "ferry: %s: %s\n", inst->name, err.msg);
            status = FERRY_EXIT_FAILURE;
            json_decref(report);
            continue;
        }
        json_t *row;
        if (!a.json) {
            printf("%s -> %s\n", inst->name, url);
        }
        json_array_foreach(report, k, row)
        {
            const char *state = json_string_value(json_object_get(row, "state"));
            const char *detail = json_string_value(json_object_get(row, "detail"));
            const char *id = json_string_value(json_object_get(row, "id"));
            if (!a.json) {
                printf("  %-12s %-40s %s%s%s\n", state ? state : "?",
                       json_string_value(json_object_get(row, "scope")), id ? "id " : "",
                       id ? id : "", detail ? detail : "");
            }
            if (state && (strcmp(state, "missing") == 0 || strcmp(state, "inactive") == 0 ||
                          strcmp(state, "failed") == 0)) {
                status = FERRY_EXIT_FAILURE;
            }
        }
        json_object_set_new(all, inst->name, report ? report : json_array());
    }
    if (a.json) {
        char *text = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
        if (text) {
            printf("%s\n", text);
        }
        free(text);
    }
out:
    json_decref(sources);
    json_decref(all);
    ferry_mapping_set_free(set);
    ferry_lua_free(L);
    ferry_runtime_free(rt);
    ferry_config_free(cfg);
    ferry_http_global_cleanup();
    return status;
}
