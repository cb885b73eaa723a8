/* SPDX-License-Identifier: MIT */
/*
 * A fake ferry_host_api for connector tests: HTTP answers come from a queue
 * of canned responses, and every request is recorded so that a test can
 * assert exactly what the connector sent. No network, no core.
 */
#ifndef FERRY_FAKE_HOST_H
#define FERRY_FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/plugin.h"

#define FAKE_MAX_HEADERS 32

struct fake_request {
    char *method;
    char *url;
    char *body; /* NUL-terminated copy; NULL when none */
    size_t body_len;
    uint32_t flags;
    size_t nheaders;
    char *header_names[FAKE_MAX_HEADERS];
    char *header_values[FAKE_MAX_HEADERS];
};

/* Forget queued responses, recorded requests, the worker slot and log lines. */
void fake_host_reset(void);
/*
 * Queue one response. `headers` is "Name: value\n" lines (may be NULL);
 * `body` may be NULL (empty). Responses are consumed in order.
 */
void fake_host_push(long status, const char *headers, const char *body);
/* Queue a transport failure: host->http returns `code` (e.g. FERRY_ENETWORK). */
void fake_host_push_error(int code);
/* Load a file (e.g. a vendor sample under FERRY_SPECS) into a new string; NULL if missing. */
char *fake_host_read_file(const char *path);

size_t fake_host_nrequests(void);
const struct fake_request *fake_host_request(size_t i);
const char *fake_request_header(const struct fake_request *r, const char *name);
/* Number of queued responses not consumed yet. */
size_t fake_host_pending(void);
/* Count of log lines at or above `level` (ERROR=0 ... TRACE=4) so far. */
size_t fake_host_log_count(int max_level);
/* The last log line, or "" */
const char *fake_host_last_log(void);

const struct ferry_host_api *fake_host_api(void);
/* Whether host->json_loadb_items gives texts (on again after fake_host_reset). */
void fake_host_set_item_texts(bool on);
/*
 * Load $FERRY_PLUGIN_DIR/<name>.so as the host would and hand it this fake
 * host: *dl for dlclose, *conn its descriptor. 0, or -1 with the reason on
 * stderr (for cmocka group setups).
 */
int fake_host_load_plugin(const char *name, void **dl, const struct ferry_connector **conn);
/* A call with a worker (http and worker_slot work). */
struct ferry_call *fake_host_call(void);
/* A call without a worker, as on the event loop (http fails with FERRY_EUNSUPPORTED). */
struct ferry_call *fake_host_loop_call(void);
void fake_host_set_now(int64_t ms);
/* The value the worker slot holds, for freeing it in teardown. */
void *fake_host_slot_value(void);

/*
 * The in-memory kv store behind host->kv_get/kv_put (emptied by
 * fake_host_reset). Set a value as if stored at `updated_at_ms`; read one
 * back (borrowed, NULL when absent); count kv_put calls since the reset.
 */
void fake_host_kv_set(const char *key, const char *value, int64_t updated_at_ms);
const char *fake_host_kv_value(const char *key);
size_t fake_host_kv_puts(void);

#endif
