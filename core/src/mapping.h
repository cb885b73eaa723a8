/* SPDX-License-Identifier: MIT */
/*
 * Lua mappings: a sandboxed Lua 5.4 state (base, string, table, math, utf8
 * only; no io/os/debug/package.loadlib, no binary chunks; `require` only from
 * the lua/ directory and the mapping's own directory), with a memory cap in
 * the allocator and a time limit per call. All mappings of a state
 * share it, so what they share is read-only: the library tables, the string
 * metatable and the modules `require` returns refuse writes, and each script
 * has its own globals. Each mapping is a file that returns a declarative
 * table (docs/mappings.md); running it turns one source record into a list
 * of intents, as JSON.
 *
 * Intent (one element of the array ferry_mapping_set_run produces):
 *   {"op": "upsert", "mapping": "customer_to_contact",
 *    "source": {"system": "shop", "object": "customer", "id": "42", "event": "updated"},
 *    "target": {"system": "crm", "object": "ContactCollection"},
 *    "match":  [{"rule": "link"}, {"rule": "lookup", "field": "Email", "value": "a@b.c"}],
 *    "fields": {"FirstName": "Jane", ...},
 *    "owner":  {"Phone": "crm"}}
 *
 * Threads: a struct ferry_lua and the mapping sets compiled in it belong to
 * one thread at a time (one per worker). While any state exists, a guard
 * thread enforces the time limit: it sends SIGURG to a thread whose call
 * runs too long (the process must leave SIGURG to ferry and must not block
 * it in the threads that run mappings). The last ferry_lua_free joins it.
 */
#ifndef FERRY_MAPPING_H
#define FERRY_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

struct ferry_lua_limits {
    size_t mem_max;        /* bytes per state; 0: 64 MiB */
    int64_t time_limit_ms; /* wall time per call (load or run), ms; 0: 1000 */
};

struct ferry_lua;

/* lua_dir: where `require "ferry.map"` finds lua/ferry/map.lua. */
FERRY_NODISCARD int ferry_lua_new(struct ferry_lua **out, const char *lua_dir,
                                  const struct ferry_lua_limits *lim, struct ferry_err *err);
void ferry_lua_free(struct ferry_lua *L); /* accepts NULL; frees its mapping sets' Lua side too */

struct ferry_mapping_set;

/*
 * Compile mappings. Each entry of `paths` is a mapping directory (holding
 * mapping.lua) or a .lua file; the mapping's name is the directory name (or
 * the file name without .lua). All compile or none: on any error *out is
 * untouched and err names the file and line. Caller frees with
 * ferry_mapping_set_free() before freeing L.
 */
FERRY_NODISCARD int ferry_mapping_set_load(struct ferry_lua *L, const char *const *paths,
                                           size_t npaths, struct ferry_mapping_set **out,
                                           struct ferry_err *err);
void ferry_mapping_set_free(struct ferry_mapping_set *set); /* accepts NULL */

/* SHA-256 hex of every compiled source, in order: which rules produced an outcome. */
const char *ferry_mapping_set_hash(const struct ferry_mapping_set *set);

/* The (system, object) pairs the set reacts to, as a new array [{"system":..,"object":..}],
 * deduplicated. */
json_t *ferry_mapping_set_sources(const struct ferry_mapping_set *set);

/*
 * What the set writes, as a new array, one element per mapping:
 *   {"mapping": "...", "path": "<mapping file>", "system": "<target instance>",
 *    "object": "<target object>", "fields": {"<Field>": <line in the file, 0 if unknown>}}
 * for checking targets against a connector's description of its objects.
 */
json_t *ferry_mapping_set_targets(const struct ferry_mapping_set *set);

/* The main targets ({"system", "object"}) of the mappings whose source is (system, object):
 * a reference for the caller to release, shared with the set's later answers, so read it
 * only. */
json_t *ferry_mapping_set_targets_of(struct ferry_mapping_set *set, const char *system,
                                     const char *object);

/* Whether ferry_mapping_set_run would run any mapping for this event: when
 * none would, the pipeline skips fetching the record. */
bool ferry_mapping_set_reacts(const struct ferry_mapping_set *set, const char *system,
                              const char *object, const char *event);

/* Whether any mapping reads (system, object), whatever the event. */
bool ferry_mapping_set_reads(const struct ferry_mapping_set *set, const char *system,
                             const char *object);

/*
 * Run every mapping whose source is (system, object) and whose `on` list
 * holds `event` (or that has no `on` list), in load order. `record` is the
 * full source record (borrowed); `context` a JSON object handed to rule
 * functions as ctx (borrowed; may be NULL). *intents is a new array (possibly
 * empty). A script error, a time limit or memory overrun, or a malformed result
 * is FERRY_EMAPPING with "file:line: message" in err.
 */
FERRY_NODISCARD int ferry_mapping_set_run(struct ferry_mapping_set *set, const char *system,
                                          const char *object, const char *event,
                                          const json_t *record, const json_t *context,
                                          json_t **intents, struct ferry_err *err);

#endif
