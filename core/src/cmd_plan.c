/* SPDX-License-Identifier: MIT */
/*
 * `ferry plan`: what the current mappings would do with real records, without
 * writing anything. For each record: which target record it would create or
 * update (and how that record was found), and per field the old and new value,
 * fields the target owns, and conflicts with edits made in the target since
 * the last sync. This is how an integrator checks a mapping change against
 * production data before reloading it.
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
#include "pipeline.h"
#include "runtime.h"
#include "util.h"

static const char plan_usage[] =
    "usage: ferry plan -c CONFIG --object OBJECT --id ID [--source CONNECTOR] [--event EVENT]\n"
    "       ferry plan -c CONFIG --since DATE [--object OBJECT] [--limit N]\n"
    "                  [--json]\n\n"
    "Fetch records from their source, run the enabled mappings, look the targets\n"
    "up and print what would happen per record and per field: create, update\n"
    "(old -> new), no change, conflict (the target was edited since the last\n"
    "sync), kept (the target owns the field). Nothing is written: no target\n"
    "request that changes data, no link, no audit row, no cursor.\n\n"
    "  --object OBJECT     source object (e.g. customer)\n"
    "  --id ID             one record\n"
    "  --source CONNECTOR  the source connector instance (default: the one the\n"
    "                      mappings read OBJECT from)\n"
    "  --event EVENT       event to map as (default: updated)\n"
    "  --since DATE        every record changed since DATE (2024-05-01[T10:00:00Z])\n"
    "  --limit N           at most N records with --since (default 50)\n"
    "  --json              one JSON document\n";

static void print_value(const json_t *v)
{
    if (!v) {
        printf("(none)");
        return;
    }
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    printf("%s", t ? t : "?");
    free(t);
}

static void print_entry(const json_t *e)
{
    const json_t *target = json_object_get(e, "target");
    printf("%s %s -> %s %s%s%s: %s", json_string_value(json_object_get(e, "source_object")),
           json_string_value(json_object_get(e, "source_id")),
           json_string_value(json_object_get(target, "system")),
           json_string_value(json_object_get(target, "object")),
           json_object_get(e, "target_id") ? " " : "",
           json_object_get(e, "target_id") ? json_string_value(json_object_get(e, "target_id"))
                                           : "",
           json_string_value(json_object_get(e, "action")));
    if (json_object_get(e, "matched_by")) {
        printf(" (found by %s)", json_string_value(json_object_get(e, "matched_by")));
    }
    const char *rule = json_string_value(json_object_get(e, "rule"));
    printf("  [%s%s%s]\n", json_string_value(json_object_get(e, "mapping")), rule ? " rule " : "",
           rule ? rule : "");
    if (json_object_get(e, "error")) {
        printf("    %s\n", json_string_value(json_object_get(e, "error")));
    }
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(e, "fields"), i, f)
    {
        const char *action = json_string_value(json_object_get(f, "action"));
        printf("    %-32s %-22s ", json_string_value(json_object_get(f, "field")), action);
        if (strcmp(action, "change") == 0 || strcmp(action, "conflict") == 0) {
            print_value(json_object_get(f, "old"));
            printf(" -> ");
        }
        print_value(json_object_get(f, "new"));
        printf("\n");
    }
}

/* The source connector the enabled mappings read `object` from. */
static const char *source_of(struct ferry_worker *w, const char *object, json_t **sources)
{
    *sources = ferry_mapping_set_sources(w->mappings);
    size_t i;
    json_t *s;
    json_array_foreach(*sources, i, s)
    {
        const char *obj = json_string_value(json_object_get(s, "object"));
        if (obj && strcmp(obj, object) == 0) {
            return json_string_value(json_object_get(s, "system"));
        }
    }
    return NULL;
}

int ferry_cmd_plan(int argc, char **argv)
{
    const char *config = NULL, *object = NULL, *id = NULL, *source = NULL, *event = "updated";
    const char *since_arg = NULL;
    long limit = 50;
    bool json = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"object", required_argument, NULL, 'o'},
        {"id", required_argument, NULL, 'i'},     {"source", required_argument, NULL, 's'},
        {"event", required_argument, NULL, 'e'},  {"since", required_argument, NULL, 'S'},
        {"limit", required_argument, NULL, 'l'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'o':
            object = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 's':
            source = optarg;
            break;
        case 'e':
            event = optarg;
            break;
        case 'S':
            since_arg = optarg;
            break;
        case 'l':
            limit = strtol(optarg, NULL, 10);
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(plan_usage, stdout);
            return FERRY_EXIT_OK;
        default:
            fputs(plan_usage, stderr);
            return FERRY_EXIT_USAGE;
        }
    }
    int64_t since_ms = 0;
    char since[21] = "";
    if (!config || optind != argc || (!!id == !!since_arg) || (id && !object) || limit <= 0 ||
        (since_arg && ferry_iso8601_parse(since_arg, &since_ms) < 0)) {
        fputs(plan_usage, stderr);
        return FERRY_EXIT_USAGE;
    }
    if (since_arg) {
        ferry_iso8601_format(since_ms, since);
    }

    struct ferry_err err = {0};
    struct ferry_config *cfg = NULL;
    struct ferry_runtime *rt = NULL;
    json_t *entries = json_array(), *sources = NULL;
    int status = FERRY_EXIT_FAILURE;
    if (ferry_config_load(&cfg, config, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        goto out;
    }
    ferry_log_set_level(FERRY_LOG_ERROR);
    xmlInitParser();
    if (ferry_http_global_init(&err) < 0 || ferry_runtime_new(&rt, cfg, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        goto out;
    }
    struct ferry_worker *w = &rt->workers[0];
    if (id) {
        if (!source) {
            source = source_of(w, object, &sources);
        }
        if (!source) {
            fprintf(stderr,
                    "ferry: no enabled mapping reads %s; name the connector with --source\n",
                    object);
            goto out;
        }
        if (ferry_pipeline_plan_record(w, source, object, id, event, NULL, entries, &err) < 0) {
            fprintf(stderr, "ferry: %s %s: %s\n", object, id, err.msg);
            goto out;
        }
    } else {
        json_t *all = ferry_mapping_set_sources(w->mappings);
        size_t i;
        json_t *s;
        long left = limit;
        json_array_foreach(all, i, s)
        {
            const char *sys = json_string_value(json_object_get(s, "system"));
            const char *obj = json_string_value(json_object_get(s, "object"));
            int idx = ferry_runtime_instance(rt, sys);
            if ((object && strcmp(obj, object) != 0) || idx < 0 ||
                !rt->instances[idx].conn->list_changes) {
                continue;
            }
            struct ferry_instance *inst = &rt->instances[idx];
            struct ferry_call call;
            char *token = NULL;
            ferry_call_init(&call, rt, w, (size_t)idx, "plan", 0);
            call.quiet = true;
            while (left > 0) {
                json_t *page = NULL;
                if (inst->conn->list_changes(inst->state, &call, obj, since, token, &page, &err) <
                    0) {
                    fprintf(stderr, "ferry: listing %s %s: %s\n", sys, obj, err.msg);
                    free(token);
                    json_decref(all);
                    goto out;
                }
                size_t k;
                json_t *item;
                json_array_foreach(json_object_get(page, "items"), k, item)
                {
                    char *rid = ferry_json_scalar_text(json_object_get(item, "id"));
                    if (left-- <= 0 || !rid) {
                        free(rid);
                        break;
                    }
                    if (ferry_pipeline_plan_record(w, sys, obj, rid, event,
                                                   json_object_get(item, "record"), entries,
                                                   &err) < 0) {
                        json_array_append_new(entries,
                                              json_pack("{s:s, s:s, s:s, s:s}", "source_object",
                                                        obj, "source_id", rid, "action", "error",
                                                        "error", err.msg));
                    }
                    free(rid);
                }
                const char *next = json_string_value(json_object_get(page, "next"));
                free(token);
                token = ferry_strdup(next);
                json_decref(page);
                if (!token) {
                    break;
                }
            }
            free(token);
        }
        json_decref(all);
    }
    if (json) {
        json_t *doc = json_pack("{s:O}", "plan", entries);
        char *text = json_dumps(doc, JSON_INDENT(2));
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(doc);
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e)
        {
            print_entry(e);
        }
        if (json_array_size(entries) == 0) {
            printf("(nothing to do: no record produced an intent)\n");
        }
    }
    status = FERRY_EXIT_OK;
out:
    json_decref(sources);
    json_decref(entries);
    ferry_runtime_free(rt);
    ferry_config_free(cfg);
    ferry_http_global_cleanup();
    return status;
}
