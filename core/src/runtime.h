/* SPDX-License-Identifier: MIT */
/*
 * The engine's runtime: the configured connector instances (plugin + open
 * state), the per-worker contexts (state connection, Lua state with its
 * compiled mappings, HTTP clients, connector slots), and the host vtable the
 * connectors call back into. The daemon, `ferry sync` and the tests build
 * one of these; the pipeline runs jobs against it.
 *
 * Threads: the runtime is built and torn down on the main thread. A worker
 * context is used by one thread at a time (the scheduler hands it out).
 * The mapping generation is the only shared mutable value; it is atomic.
 */
#ifndef FERRY_RUNTIME_H
#define FERRY_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "errors.h"
#include "ferry/plugin.h"
#include "http.h"
#include "mapping.h"
#include "plugin_loader.h"
#include "store.h"

struct ferry_instance {
    char *name;                         /* instance name from the config */
    struct ferry_plugin *plugin;        /* NULL when registered from a descriptor (tests) */
    const struct ferry_connector *conn; /* borrowed from plugin or the registrant */
    json_t *config;                     /* resolved settings handed to open */
    void *state;                        /* connector state from open */
    json_t *schema;                     /* describe() result, or NULL */
};

struct ferry_worker {
    size_t index;
    struct ferry_runtime *rt;
    struct ferry_store *store;
    struct ferry_lua *lua;
    struct ferry_mapping_set *mappings;
    uint64_t mapping_gen;            /* generation of `mappings` */
    struct ferry_http_client **http; /* per instance, created on first use */
    void **slots;                    /* per instance, see ferry_host_api.worker_slot */
    /* While a task runs (ferry_worker_hold_quota): the last quota each
     * connector reported, written with the task's end. */
    bool quota_held;
    struct ferry_quota_note *quota;
    size_t nquota;
};

struct ferry_runtime {
    const struct ferry_config *cfg; /* borrowed */
    struct ferry_host_api host;
    struct ferry_instance *instances;
    size_t ninstances;
    struct ferry_worker *workers;
    size_t nworkers;
    char **mapping_paths; /* directories of the enabled mappings */
    size_t nmapping_paths;
    _Atomic uint64_t mapping_gen; /* bumped by a successful reload check */
    struct ferry_http_options http_opts;
    int64_t (*clock)(void); /* wall clock; replaceable in tests */
    /* Start-up calls (open, describe) on the main thread: their own state
     * connection and HTTP clients, so that no worker is needed yet. */
    struct ferry_store *setup_store;
    struct ferry_http_client **setup_http; /* per instance */
    size_t nsetup_http;
    /* Polled jobs' parsed payloads on their way to the worker that runs
     * them (ferry_runtime_payload_put); under payload_lock. */
    pthread_mutex_t payload_lock;
    struct ferry_payload_slot *payloads;
    size_t npayloads;
    size_t payload_bytes;
};

/* The host's side of one connector call (opaque to connectors). */
struct ferry_call {
    struct ferry_runtime *rt;
    struct ferry_worker *worker; /* NULL on the loop or main thread */
    bool setup;                  /* a start-up call: may do HTTP and kv without a worker */
    bool quiet;                  /* `ferry plan`: read-only, leaves no audit rows */
    size_t instance;             /* index into rt->instances */
    const char *correlation_id;
    int64_t job_id;
};

/*
 * Build a runtime from cfg (borrowed; must outlive the runtime): load and
 * open every configured connector and prepare cfg->workers worker contexts
 * (each opening its own state connection and compiling the mappings).
 * Caller frees with ferry_runtime_free().
 */
FERRY_NODISCARD int ferry_runtime_new(struct ferry_runtime **out, const struct ferry_config *cfg,
                                      struct ferry_err *err);

/*
 * For tests: a runtime with no connectors and no workers yet. Add connectors
 * with ferry_runtime_add_connector, then call ferry_runtime_start_workers.
 */
FERRY_NODISCARD int ferry_runtime_new_empty(struct ferry_runtime **out,
                                            const struct ferry_config *cfg, struct ferry_err *err);
/* Load, configure and open every connector the configuration names. */
FERRY_NODISCARD int ferry_runtime_load_connectors(struct ferry_runtime *rt, struct ferry_err *err);
/* Register and open a connector from a descriptor (borrowed, must outlive the runtime). */
FERRY_NODISCARD int ferry_runtime_add_connector(struct ferry_runtime *rt, const char *name,
                                                const struct ferry_connector *conn,
                                                const json_t *config, struct ferry_err *err);
FERRY_NODISCARD int ferry_runtime_start_workers(struct ferry_runtime *rt, struct ferry_err *err);

void ferry_runtime_free(struct ferry_runtime *rt); /* accepts NULL */

/* Index of the instance named `name`, or -1. */
int ferry_runtime_instance(const struct ferry_runtime *rt, const char *name);

/*
 * Compile the enabled mappings in a scratch Lua state; on success bump the
 * generation so that each worker recompiles before its next job. On failure
 * nothing changes and err says why (hot reload keeps the old set).
 */
FERRY_NODISCARD int ferry_runtime_reload_mappings(struct ferry_runtime *rt, struct ferry_err *err);
/* Bring a worker's mapping set up to the current generation (keeps the old set on error). */
FERRY_NODISCARD int ferry_worker_refresh_mappings(struct ferry_worker *w, struct ferry_err *err);

/* A call context for a job on a worker, or for the loop (worker NULL). */
void ferry_call_init(struct ferry_call *call, struct ferry_runtime *rt, struct ferry_worker *w,
                     size_t instance, const char *correlation_id, int64_t job_id);

/*
 * Ask every connector that can describe its objects (after open), then check
 * the enabled mappings' targets against those descriptions: unknown or
 * read-only properties are FERRY_EMAPPING naming each file and line.
 * Warnings (create-only properties) are logged. Called by ferry_runtime_new;
 * `ferry check` uses it on its own.
 */
FERRY_NODISCARD int ferry_runtime_describe(struct ferry_runtime *rt, bool strict,
                                           struct ferry_err *err);
FERRY_NODISCARD int ferry_runtime_check_mappings(struct ferry_runtime *rt,
                                                 const struct ferry_mapping_set *set,
                                                 struct ferry_err *err);

/*
 * A polled job's payload as the poll built it, handed to the job in this
 * process so that the job need not parse the stored text again (for a
 * snapshot, that parse cost as much as the mapping). Only after the job's
 * insert is committed (ids of a rolled-back insert come back). `text_len`
 * is the stored text's length, checked on take. put takes the reference,
 * and drops it when the handoff is full (bounded in count and text bytes;
 * the oldest, which run first, are kept). take returns it (the caller owns
 * it) or NULL: then the job parses its text, as always. Thread-safe.
 */
void ferry_runtime_payload_put(struct ferry_runtime *rt, int64_t job_id, size_t text_len,
                               json_t *payload);
json_t *ferry_runtime_payload_take(struct ferry_runtime *rt, int64_t job_id, size_t text_len);

/*
 * Quota reports (ferry_host_api.quota) are kept where `ferry status` can read
 * them, one key/value per connector and quota. While held (on = true), a
 * worker keeps the last of each in memory instead of writing every report,
 * and ferry_worker_flush_quota writes them: the caller does that in the
 * transaction that ends the task, so they cost no commit of their own.
 * Turning holding off flushes what is held.
 */
void ferry_worker_hold_quota(struct ferry_worker *w, bool on);
void ferry_worker_flush_quota(struct ferry_worker *w);

/* Audit helper: one row on the worker's connection; failures are logged, not fatal. */
void ferry_worker_audit(struct ferry_worker *w, int64_t job_id, const char *correlation_id,
                        const char *connector, const char *step, const char *detail);

#endif
