/* SPDX-License-Identifier: MIT */
/*
 * `ferry map test MAPPING FIXTURE.json [--event E] [--expect EXPECTED.json]
 * [--lua-path DIR]`: runs one mapping offline on a recorded source record and
 * prints the intents it would produce, or compares them with an expected
 * file. This is the integrator's edit-run loop and the fixture test runner,
 * so it uses the daemon's own mapping host and limits, not a lookalike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "errors.h"
#include "mapping.h"

#ifndef FERRY_DEFAULT_SHARE_DIR
#define FERRY_DEFAULT_SHARE_DIR "/usr/local/share/ferry"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ferry map test MAPPING FIXTURE.json [--event EVENT] [--expect EXPECTED.json]\n"
            "                      [--lua-path DIR]\n"
            "\n"
            "Runs MAPPING (a mapping directory or a .lua file) on the record in FIXTURE.json\n"
            "and prints the intents as JSON. FIXTURE is the source record as the source\n"
            "API returns it, or {\"event\": \"...\", \"record\": {...}, \"context\": {...}}.\n"
            "\n"
            "  --event EVENT      the event kind (default: the fixture's, else the mapping's\n"
            "                     first 'on' event)\n"
            "  --expect FILE      compare with FILE instead; exit 1 when they differ\n"
            "  --lua-path DIR     where lua/ferry/*.lua live (default: $FERRY_LUA_PATH,\n"
            "                     else MAPPING/../../lua, else " FERRY_DEFAULT_SHARE_DIR "/lua)\n");
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The lua directory beside the mappings directory: <mapping dir>/../../lua. */
static char *lua_dir_near(const char *mapping)
{
    char *dir = NULL;
    char *cand = NULL;
    size_t len = strlen(mapping);
    while (len > 1 && mapping[len - 1] == '/') {
        len--;
    }
    if (is_dir(mapping)) {
        dir = strndup(mapping, len);
    } else {
        const char *slash = strrchr(mapping, '/');
        dir = slash ? strndup(mapping, (size_t)(slash - mapping)) : strdup(".");
    }
    if (!dir) {
        return NULL;
    }
    cand = malloc(strlen(dir) + sizeof("/../../lua"));
    if (cand) {
        sprintf(cand, "%s/../../lua", dir);
        if (!is_dir(cand)) {
            /* A lone .lua file directly under mappings/: <dir>/../lua. */
            sprintf(cand, "%s/../lua", dir);
            if (!is_dir(cand)) {
                free(cand);
                cand = NULL;
            }
        }
    }
    free(dir);
    return cand;
}

static void print_json(FILE *f, const json_t *j)
{
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s) {
        fprintf(f, "%s\n", s);
        free(s);
    }
}

static int map_test(int argc, char **argv)
{
    int rc = FERRY_EXIT_USAGE;
    const char *mapping = NULL;
    const char *fixture = NULL;
    const char *event = NULL;
    const char *expect_path = NULL;
    const char *lua_path = NULL;
    char *lua_guess = NULL;
    json_t *doc = NULL;
    json_t *expected = NULL;
    json_t *intents = NULL;
    json_t *sources = NULL;
    const json_t *record;
    const json_t *context = NULL;
    struct ferry_lua *fl = NULL;
    struct ferry_mapping_set *set = NULL;
    struct ferry_err err = {0};
    json_error_t jerr;
    const char *system;
    const char *object;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            rc = FERRY_EXIT_OK;
            goto cleanup;
        }
        if (strcmp(a, "--event") == 0 || strcmp(a, "--expect") == 0 ||
            strcmp(a, "--lua-path") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ferry: %s needs a value\n", a);
                usage(stderr);
                goto cleanup;
            }
            if (strcmp(a, "--event") == 0) {
                event = argv[++i];
            } else if (strcmp(a, "--expect") == 0) {
                expect_path = argv[++i];
            } else {
                lua_path = argv[++i];
            }
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "ferry: unknown option '%s'\n", a);
            usage(stderr);
            goto cleanup;
        }
        if (!mapping) {
            mapping = a;
        } else if (!fixture) {
            fixture = a;
        } else {
            fprintf(stderr, "ferry: unexpected argument '%s'\n", a);
            usage(stderr);
            goto cleanup;
        }
    }
    if (!mapping || !fixture) {
        usage(stderr);
        goto cleanup;
    }
    rc = FERRY_EXIT_FAILURE;

    doc = json_load_file(fixture, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        fprintf(stderr, "ferry: %s:%d: %s\n", fixture, jerr.line, jerr.text);
        goto cleanup;
    }
    record = doc;
    if (json_is_object(doc) && json_is_object(json_object_get(doc, "record"))) {
        record = json_object_get(doc, "record");
        context = json_object_get(doc, "context");
        if (!event && json_is_string(json_object_get(doc, "event"))) {
            event = json_string_value(json_object_get(doc, "event"));
        }
    }
    if (!json_is_object(record)) {
        fprintf(stderr, "ferry: %s: the fixture must be a JSON object (the record)\n", fixture);
        goto cleanup;
    }
    if (expect_path) {
        expected = json_load_file(expect_path, JSON_REJECT_DUPLICATES, &jerr);
        if (!expected) {
            fprintf(stderr, "ferry: %s:%d: %s\n", expect_path, jerr.line, jerr.text);
            goto cleanup;
        }
    }

    if (!lua_path) {
        lua_path = getenv("FERRY_LUA_PATH");
    }
    if (!lua_path || !*lua_path) {
        lua_guess = lua_dir_near(mapping);
        lua_path = lua_guess ? lua_guess : FERRY_DEFAULT_SHARE_DIR "/lua";
    }
    if (ferry_lua_new(&fl, lua_path, NULL, &err) < 0 ||
        ferry_mapping_set_load(fl, (const char *const *)&mapping, 1, &set, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        goto cleanup;
    }
    sources = ferry_mapping_set_sources(set);
    if (json_array_size(sources) != 1) {
        fprintf(stderr, "ferry: %s: cannot read the mapping's source\n", mapping);
        goto cleanup;
    }
    system = json_string_value(json_object_get(json_array_get(sources, 0), "system"));
    object = json_string_value(json_object_get(json_array_get(sources, 0), "object"));
    if (!event) {
        event = json_string_value(
            json_array_get(json_object_get(json_array_get(sources, 0), "events"), 0));
    }
    if (!event) {
        fprintf(stderr, "ferry: %s has no 'on' list: give the event with --event\n", mapping);
        rc = FERRY_EXIT_USAGE;
        goto cleanup;
    }
    if (ferry_mapping_set_run(set, system, object, event, record, context, &intents, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        goto cleanup;
    }
    print_json(stdout, intents);
    if (expected && !json_equal(expected, intents)) {
        fprintf(stderr, "ferry: the intents differ from %s\nexpected:\n", expect_path);
        print_json(stderr, expected);
        fprintf(stderr, "actual:\n");
        print_json(stderr, intents);
        goto cleanup;
    }
    rc = FERRY_EXIT_OK;
cleanup:
    json_decref(intents);
    json_decref(sources);
    json_decref(expected);
    json_decref(doc);
    ferry_mapping_set_free(set);
    ferry_lua_free(fl);
    free(lua_guess);
    return rc;
}

int ferry_cmd_map(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return FERRY_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return FERRY_EXIT_OK;
    }
    if (strcmp(argv[1], "test") == 0) {
        return map_test(argc - 1, argv + 1);
    }
    fprintf(stderr, "ferry: unknown map command '%s'\n", argv[1]);
    usage(stderr);
    return FERRY_EXIT_USAGE;
}
