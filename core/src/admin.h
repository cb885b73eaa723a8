/* SPDX-License-Identifier: MIT */
/*
 * The admin listener: a second HTTP listener, on its own address (loopback
 * by default), for the people and systems that watch the daemon:
 *
 *   GET /healthz  200 while the process runs (answered by the listener)
 *   GET /readyz   200 or 503 with a JSON body: database readable, plugins
 *                 loaded, mappings compiled and checked, each connector's
 *                 last HTTP call not failing, not draining
 *   GET /metrics  the Prometheus text exposition: the process-wide registry
 *                 (metrics.h) plus gauges read from the state database at
 *                 scrape time (jobs by state, queue depth per lane, oldest
 *                 pending age, open dead letters, webhook silence per scope,
 *                 poll lag per cursor, missed-webhook counters)
 *
 * Database reads never run on the loop thread: each /readyz or /metrics
 * request is answered from a threadpool task with the admin's own read
 * connection, one task at a time (further requests wait their turn).
 *
 * Threads: start, stop and the setters run on the loop thread.
 */
#ifndef FERRY_ADMIN_H
#define FERRY_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "errors.h"
#include "runtime.h"
#include "store.h"

struct ferry_admin_options {
    const char *address;      /* IPv4/IPv6 literal; default "127.0.0.1" */
    int port;                 /* 0: any free port */
    const char *state_path;   /* the database; the admin opens its own connection */
    struct ferry_runtime *rt; /* borrowed; may be NULL (no plugin or mapping checks) */
};

struct ferry_admin;

/* Caller stops it with ferry_admin_stop and runs the loop until `done`. */
FERRY_NODISCARD int ferry_admin_start(struct ferry_admin **out, uv_loop_t *loop,
                                      const struct ferry_admin_options *opt, struct ferry_err *err);
int ferry_admin_port(const struct ferry_admin *a);
/* From now on /readyz answers 503 "draining" (the daemon is stopping). */
void ferry_admin_set_draining(struct ferry_admin *a);
/*
 * Stop listening, answer what waits, and free the admin once its running
 * task (if any) has returned; `done` (may be NULL) then runs on the loop.
 */
void ferry_admin_stop(struct ferry_admin *a, void (*done)(void *ud), void *ud);

/*
 * What the admin serves, for tests and tools; callable on any thread with a
 * connection of its own. *text: the whole exposition (caller frees).
 * *doc: the readiness document; *ready: whether it is 200.
 */
FERRY_NODISCARD int ferry_admin_metrics_text(struct ferry_store *s, const struct ferry_runtime *rt,
                                             int64_t now_ms, char **text, struct ferry_err *err);
FERRY_NODISCARD int ferry_admin_readiness(struct ferry_store *s, const struct ferry_runtime *rt,
                                          bool draining, json_t **doc, bool *ready,
                                          struct ferry_err *err);

#endif
