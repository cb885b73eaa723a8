/* SPDX-License-Identifier: MIT */
/*
 * Operator commands that set up or verify a deployment without running the
 * daemon: `ferry check` (configuration, plugins, mappings, and mapping targets
 * against what each connector says its objects accept; with --online also a
 * cheap authenticated call per connector and the webhook registrations) and
 * `ferry webhooks` (the webhook registrations the mappings need, against those
 * the remote system has; --apply fixes them).
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
#include "redact.h"
#include "runtime.h"
#include "targets.h"
#include "util.h"

struct admin_args {
    const char *config;
    bool apply;
    bool json;
    bool online;
};

static int parse_args(int argc, char **argv, const char *usage, bool allow_apply,
                      struct admin_args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"apply", no_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},         {"online", no_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
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
        case 'o':
            /* Only check has it; webhooks always talks to the remote system. */
            if (allow_apply) {
                fputs(usage, stderr);
                return FERRY_EXIT_USAGE;
            }
            a->online = true;
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
                                   .time_limit_ms = cfg->lua_time_limit_ms};
    int rc = ferry_lua_new(L, cfg->lua_dir, &lim, err);
    if (rc == 0) {
        rc = ferry_mapping_set_load(*L, (const char *const *)rt->mapping_paths, rt->nmapping_paths,
                                    set, err);
    }
    return rc;
}

/* ---- ferry check ---- */

static const char check_usage[] =
    "usage: ferry check -c CONFIG [--online] [--json]\n\n"
    "Check a deployment without running it: the configuration, every connector\n"
    "plugin (loaded, configured and opened), the enabled mappings (compiled),\n"
    "and every property the mappings write against the objects each connector\n"
    "describes (a connector reads its metadata from a file named in its\n"
    "configuration, or from its cache). With --online, also one cheap\n"
    "authenticated call per connector (the first page of changes since now of an\n"
    "object the mappings use: refused credentials or an unreachable host fail)\n"
    "and, when webhooks.public_url is set, the webhook registrations the mappings\n"
    "need (missing or inactive ones fail; 'ferry webhooks --apply' fixes them).\n"
    "Exit status 0 when all is well, 1 when anything is wrong (each problem on\n"
    "its own line), 2 usage.\n\n"
    "  -c, --config FILE   configuration file (Lua)\n"
    "      --online        also call each connector and check webhook registrations\n"
    "      --json          one JSON object instead of text\n"
    "  -h, --help          this text\n";

static void report(json_t *checks, bool json, const char *what, bool ok, const char *detail)
{
    /* Remote answers quoted in a detail may hold secrets or personal data. */
    char *safe = ferry_redact_text(detail);
    const char *d = safe ? safe : "(detail withheld)";
    json_array_append_new(checks,
                          json_pack("{s:s, s:b, s:s}", "check", what, "ok", ok, "detail", d));
    if (!json) {
        printf("%-4s %-10s %s\n", ok ? "ok" : "FAIL", what, d);
    }
    free(safe);
}

/* ---- ferry check --online ---- */

/* The first object of `system` among `list` ({"system", "object"} items), or NULL. */
static const char *object_of(const json_t *list, const char *system)
{
    size_t i;
    json_t *it;
    json_array_foreach((json_t *)list, i, it)
    {
        const char *sys = json_string_value(json_object_get(it, "system"));
        if (sys && strcmp(sys, system) == 0) {
            return json_string_value(json_object_get(it, "object"));
        }
    }
    return NULL;
}

/*
 * What a probe's failure says about the credentials. Answers that need a
 * valid login to be given at all (not found, a rejected query) prove them;
 * refusals and silence do not.
 */
static bool probe_proves_login(int rc)
{
    switch (rc) {
    case 0:
    case FERRY_ENOTFOUND:
    case FERRY_EVALIDATION:
    case FERRY_EBADINPUT:
    case FERRY_EFILTERED:
    case FERRY_ERATELIMIT:
        return true;
    default:
        return false;
    }
}

/*
 * One cheap authenticated call per connector. There is no ABI member for
 * it yet, so the probe is the first page of changes since now of an object
 * the mappings read from (or write to) the connector: an empty page in
 * practice, one request. A connector that cannot list is asked for a record
 * that does not exist, where "not found" is the good answer.
 */
static void probe_connector(struct ferry_runtime *rt, size_t i, const json_t *sources,
                            const json_t *targets, json_t *checks, bool json, bool *failed)
{
    struct ferry_instance *inst = &rt->instances[i];
    struct ferry_err err = {0};
    struct ferry_call call;
    char line[512], now_iso[21];
    json_t *page = NULL, *rec = NULL;
    const char *object = object_of(sources, inst->name);
    if (!object) {
        object = object_of(targets, inst->name);
    }
    if (!object) {
        snprintf(line, sizeof(line), "%s: not used by any enabled mapping; not called", inst->name);
        report(checks, json, "online", true, line);
        return;
    }
    ferry_call_init(&call, rt, NULL, i, "check-online", 0);
    call.setup = rt->setup_store != NULL;
    ferry_iso8601_format(ferry_now_ms(), now_iso);
    int rc;
    const char *how;
    if (inst->conn->list_changes) {
        how = "list changes of";
        rc = inst->conn->list_changes(inst->state, &call, object, now_iso, NULL, &page, &err);
    } else if (inst->conn->fetch) {
        how = "fetch a record that does not exist from";
        rc =
            inst->conn->fetch(inst->state, &call, object, "ferry-check-no-such-record", &rec, &err);
    } else {
        snprintf(line, sizeof(line), "%s: the connector can neither list nor fetch; not called",
                 inst->name);
        report(checks, json, "online", true, line);
        return;
    }
    bool ok = probe_proves_login(rc);
    if (rc == 0) {
        snprintf(line, sizeof(line), "%s: credentials accepted (%s %s since now: %zu record(s))",
                 inst->name, how, object, json_array_size(json_object_get(page, "items")));
    } else if (rc == FERRY_ERATELIMIT) {
        snprintf(line, sizeof(line), "%s: reachable but throttled (HTTP 429) on %s %s: %s",
                 inst->name, how, object, err.msg);
    } else if (ok) {
        snprintf(line, sizeof(line), "%s: credentials accepted (%s %s answered %s: %s)", inst->name,
                 how, object, ferry_err_name(rc), err.msg);
    } else if (rc == FERRY_EAUTH || rc == FERRY_EFORBIDDEN || rc == FERRY_ESIGNATURE) {
        snprintf(line, sizeof(line), "%s: credentials refused (%s): %s", inst->name,
                 ferry_err_name(rc), err.msg[0] ? err.msg : ferry_strerror(rc));
    } else {
        snprintf(line, sizeof(line), "%s: %s %s failed (%s): %s", inst->name, how, object,
                 ferry_err_name(rc), err.msg[0] ? err.msg : ferry_strerror(rc));
    }
    report(checks, json, "online", ok, line);
    *failed = *failed || !ok;
    json_decref(page);
    json_decref(rec);
}

/* The registrations the mappings need, as `ferry webhooks` sees them, without changing any. */
static void probe_webhooks(const struct ferry_config *cfg, struct ferry_runtime *rt, size_t i,
                           const json_t *sources, json_t *checks, bool json, bool *failed)
{
    struct ferry_instance *inst = &rt->instances[i];
    struct ferry_err err = {0};
    struct ferry_call call;
    json_t *needs = json_array(), *rep = NULL;
    size_t k;
    json_t *src;
    char line[3072], url[2048];
    if (!cfg->public_url || !FERRY_CONNECTOR_HAS(inst->conn, sync_webhooks) ||
        !inst->conn->sync_webhooks) {
        json_decref(needs);
        return;
    }
    json_array_foreach((json_t *)sources, k, src)
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
        return;
    }
    size_t ul = strlen(cfg->public_url);
    snprintf(url, sizeof(url), "%s%swebhooks/%s", cfg->public_url,
             ul && cfg->public_url[ul - 1] == '/' ? "" : "/", inst->name);
    ferry_call_init(&call, rt, NULL, i, "check-online", 0);
    call.setup = rt->setup_store != NULL;
    int rc = inst->conn->sync_webhooks(inst->state, &call, needs, url, 0, &rep, &err);
    json_decref(needs);
    if (rc < 0) {
        snprintf(line, sizeof(line), "%s: registrations not read: %s", inst->name, err.msg);
        report(checks, json, "webhook", false, line);
        *failed = true;
        json_decref(rep);
        return;
    }
    json_t *row;
    json_array_foreach(rep, k, row)
    {
        const char *state = json_string_value(json_object_get(row, "state"));
        const char *scope = json_string_value(json_object_get(row, "scope"));
        bool bad = state && (strcmp(state, "missing") == 0 || strcmp(state, "inactive") == 0 ||
                             strcmp(state, "failed") == 0);
        snprintf(line, sizeof(line), "%s: %s %s -> %s%s", inst->name, scope ? scope : "?",
                 state ? state : "?", url, bad ? " (ferry webhooks --apply fixes it)" : "");
        report(checks, json, "webhook", !bad, line);
        *failed = *failed || bad;
    }
    json_decref(rep);
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
    if (ferry_redact_configure_from(cfg) < 0) {
        report(checks, a.json, "config", false, "out of memory");
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
    if (a.online) {
        json_t *sources = ferry_mapping_set_sources(set);
        for (size_t k = 0; k < rt->ninstances; k++) {
            probe_connector(rt, k, sources, targets, checks, a.json, &failed);
            probe_webhooks(cfg, rt, k, sources, checks, a.json, &failed);
        }
        json_decref(sources);
    }
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
    (void)!ferry_redact_configure(NULL);
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
