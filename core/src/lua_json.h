/* SPDX-License-Identifier: MIT */
/*
 * The JSON <-> Lua bridge used by the mapping host. Objects become plain
 * tables, arrays become sequences carrying the array metatable (so that an
 * empty array survives the round trip as []), integers stay integers, reals
 * stay floats, and JSON null becomes the sentinel ferry.null (a light
 * userdata) so that a script can tell "null" from "absent".
 *
 * A mapping's source record goes in lazily instead (ferry__lua_push_record):
 * scripts see the same tables, filled in as they read them.
 *
 * Lua -> JSON: a table with the array metatable, or whose keys are exactly
 * 1..n, is an array; any other table is an object and must have string keys.
 * A value the host built (ferry.intent_head, ferry.intent) passes through as
 * its JSON. NaN, infinities, functions and other userdata are errors, and so is
 * nesting deeper than FERRY_LUA_JSON_MAX_DEPTH (which also catches cycles).
 */
#ifndef FERRY_LUA_JSON_H
#define FERRY_LUA_JSON_H

#include <stdbool.h>

#include <jansson.h>
#include <lua.h>

#include "errors.h"

#define FERRY_LUA_JSON_MAX_DEPTH 64

/* [-0, +0, e] creates the array metatable in the registry; once per state. */
void ferry__lua_json_open(lua_State *L);

/* [-0, +1, -] pushes the null sentinel. */
void ferry__lua_push_null(lua_State *L);
/* [-0, +0, -] whether the value at idx is the null sentinel. */
bool ferry__lua_is_null(lua_State *L, int idx);

/* [-0, +0, e] gives the table at idx the array metatable. */
void ferry__lua_mark_array(lua_State *L, int idx);
/* [-0, +0, -] whether the value at idx is a table with the array metatable. */
bool ferry__lua_is_array(lua_State *L, int idx);

/* [-0, +1, e] pushes json (borrowed) as a Lua value; raises on memory or depth. */
void ferry__lua_push_json(lua_State *L, const json_t *json);

/*
 * [-0, +1, e] pushes a source record (borrowed) for one mapping run: its
 * objects and arrays read the json_t on demand and become plain tables on
 * the first write or traversal (lua_json.c, "Records, read lazily"). The
 * json_t must outlive the run; ferry__lua_records_release ends it.
 */
void ferry__lua_push_record(lua_State *L, const json_t *json);
/* [-0, +0, -] ends the run's records: a table still lazy raises when read. */
void ferry__lua_records_release(lua_State *L);
/* [-0, +0, -] whether the value at idx is a record table not yet materialised. */
bool ferry__lua_is_lazy(lua_State *L, int idx);
/* [-0, +0, e] makes the lazy record table at idx plain (no-op for anything else);
 * for functions that work on a table's raw contents (next, rawget, ...). */
void ferry__lua_materialize(lua_State *L, int idx);
/* next(t, k) as in lbaselib.c, for a record table too (materialised first). */
int ferry__lua_next(lua_State *L);

/*
 * [-0, +0, -] converts the value at idx. Returns 0 with *out a new reference,
 * or FERRY_EMAPPING with err naming the offending path below `what` (e.g.
 * "intent[1].fields.Phone: cannot convert a function to JSON"). Never raises:
 * it only reads the Lua state, so it may run outside a protected call.
 */
FERRY_NODISCARD int ferry__lua_to_json(lua_State *L, int idx, const char *what, json_t **out,
                                       struct ferry_err *err);
/* The same, with the root named `what` followed by `what2` (e.g. a file and ": intents"),
 * joined only when a conversion fails. */
FERRY_NODISCARD int ferry__lua_to_json_at(lua_State *L, int idx, const char *what,
                                          const char *what2, json_t **out, struct ferry_err *err);

/*
 * [-0, +0, -] the json_t behind the record table at idx (borrowed, for this
 * run) when the table is still lazy and has handed out none of its values,
 * so that the json_t is all there is to it; NULL otherwise (then convert it).
 */
const json_t *ferry__lua_record_json(lua_State *L, int idx);

/*
 * [-0, +0, -] t[key] of the record table t at idx, from its JSON, when t is
 * still lazy and has not handed out that key (so the script cannot have
 * changed it): *json_ok true and the value (borrowed, for this run; NULL
 * for a key the record does not have). *json_ok false when t must be read
 * from Lua instead (a plain table, a key read before, a long key).
 */
const json_t *ferry__lua_record_field(lua_State *L, int idx, const char *key, size_t klen,
                                      bool *json_ok);

/*
 * [-0, +1, m] a new value the host builds (as ferry.intent_head's): the
 * caller stores a json_t in the returned slot, which the value then owns
 * (freed when it is collected) and which conversions take by reference.
 * Made empty first, so that nothing leaks when making it raises.
 */
json_t **ferry__lua_push_built(lua_State *L);

/*
 * ferry.intent_head(t): t converted once into a value the conversions above
 * pass through by reference (a userdata). For the engine: the parts of a
 * mapping's intent that are the same for every record.
 */
int ferry__lua_intent_head(lua_State *L);
/*
 * ferry.intent(head, path, index, source_id, event, op, rule, target, match,
 * fields, owner, conflict, instead, notes[, names, values]): an intent of the
 * engine's list (with names and values, its fields are names[i] = values[i]
 * for each value that is not nil),
 * converted now and held like a head (the host's conversion of the list
 * takes it over). It has the head's parts, its source with the id and event
 * added, and the non-nil parts given, which replace the head's. A value
 * that does not convert raises the error the host's conversion of the list
 * would give ("<path>: intents[<index>].fields.X: ...").
 */
int ferry__lua_intent(lua_State *L);

#endif
