/* SPDX-License-Identifier: MIT */
/*
 * The daemon's configuration: a Lua file that returns a table, evaluated in
 * an empty sandbox whose only functions are env("NAME") and file("PATH") for
 * secrets. Unknown keys and missing required keys are errors naming the file
 * and the key path ("ferry.lua: webhooks.max_bdy: unknown key").
 *
 * Connector sections are kept as JSON: their keys are checked later against
 * the connector's own declared fields (plugin_loader.h), because only the
 * plugin knows them. A value from env()/file() is kept as {"$secret": "value"}
 * there, so that a secret field can insist on coming from outside the file.
 *
 * Relative paths in the file are resolved against the file's directory.
 */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

struct ferry_connector_cfg {
    char *name;       /* instance name: the key under `connectors` */
    char *plugin;     /* `plugin` key, defaulting to the instance name */
    json_t *settings; /* every other key of the section; owned */
};

struct ferry_config {
    char *path;        /* the file as given */
    char *dir;         /* its directory, absolute */
    char *state_path;  /* state.path, default "ferry.db" */
    int workers;       /* default 4, 1..64 */
    int log_level;     /* log.level, default info */
    int log_format;    /* log.format "json" (default) or "text" */
    char *plugin_dir;  /* plugins.dir, default FERRY_DEFAULT_PLUGIN_DIR */
    char *mapping_dir; /* mappings.dir, default "mappings" */
    char *lua_dir;     /* mappings.lua_path, default "lua" */
    char **mappings;   /* mappings.enabled: names of directories under mapping_dir */
    json_t
        *mapping_settings; /* mappings.settings: {<mapping>: {...}} as ctx.settings; may be NULL */
    size_t nmappings;
    bool mapping_watch;       /* mappings.watch: reload when a file under dir/lua_path changes */
    char *listen_address;     /* webhooks.address, default "127.0.0.1" */
    int listen_port;          /* webhooks.port, default 8080; 0 = any free port */
    char *port_file;          /* webhooks.port_file: where to write the bound port; may be NULL */
    size_t max_body;          /* webhooks.max_body bytes, default 1 MiB */
    int64_t dedupe_window_ms; /* webhooks.dedupe_window seconds, default 600 */
    char *public_url; /* webhooks.public_url: the https://host the vendor calls; may be NULL */
    int64_t silence_alert_ms; /* webhooks.silence_alert seconds; 0 (default): no alerts */
    int64_t poll_interval_ms; /* poll.interval seconds, default 300; 0 = no timed polls */
    int batch_size; /* poll.batch_size: backfill jobs per batched write round trip, default 25 */
    int retry_max_attempts;  /* retry.max_attempts, default 8 */
    int64_t retry_base_ms;   /* retry.base_delay seconds (fractional ok), default 1 */
    int64_t retry_max_ms;    /* retry.max_delay seconds, default 600 */
    int64_t http_timeout_ms; /* http.timeout seconds, default 30 */
    char **insecure_hosts;   /* http.insecure_hosts: TLS verification off for these hosts only */
    size_t ninsecure_hosts;
    int64_t lua_mem_max;       /* mappings.memory_limit bytes, default 64 MiB */
    int64_t lua_time_limit_ms; /* mappings.time_limit seconds per call (fractional ok), default 1 */
    struct ferry_connector_cfg *connectors;
    size_t nconnectors;
    char **secrets; /* every value that came from env()/file(), for redaction */
    size_t nsecrets;
    /* Appended for issue 8 (operations). */
    char *admin_address;     /* admin.address, default "127.0.0.1" */
    int admin_port;          /* admin.port; -1 (default, no admin section): no admin listener */
    char *admin_port_file;   /* admin.port_file: where to write the bound port; may be NULL */
    char *tls_cert;          /* webhooks.tls.cert: PEM certificate chain; NULL: plain HTTP */
    char *tls_key;           /* webhooks.tls.key: PEM private key */
    int max_headers;         /* webhooks.max_headers, default 64 (h2o stops at 100) */
    size_t max_header_bytes; /* webhooks.max_header_bytes (names + values), default 16 KiB */
    int64_t idle_timeout_ms; /* webhooks.idle_timeout seconds, default 10 */
    char **privacy_mask;     /* privacy.mask: field names whose values are masked */
    size_t nprivacy_mask;
    char **privacy_hash; /* privacy.hash: field names whose values are hashed */
    size_t nprivacy_hash;
    int privacy_emails;         /* privacy.emails "mask" | "hash": any e-mail address in text */
    char *privacy_salt;         /* privacy.salt (string or env()/file()): prefixed before hashing */
    int64_t retention_audit_ms; /* retention.audit_days; 0 (default): keep audit rows */
    int64_t retention_jobs_ms;  /* retention.jobs_days; 0 (default): keep done jobs' payloads */
    int retention_batch;        /* retention.batch: rows per pruning step, default 500 */
    int64_t retention_interval_ms; /* retention.interval seconds between steps, default 60 */
    /* Appended for issue 5 (two-way sync). */
    int64_t echo_ttl_ms;        /* mappings.echo_ttl seconds: how long a write of ferry's is
                                   recognised when it comes back, default 86400 */
    int64_t coalesce_window_ms; /* webhooks.coalesce_window seconds: events of one business
                                   entity (a group) wait this long so that they are seen
                                   together, default 5; 0: no waiting */
};

/* Caller frees with ferry_config_free(). FERRY_ECONFIG with file and key in err. */
FERRY_NODISCARD int ferry_config_load(struct ferry_config **out, const char *path,
                                      struct ferry_err *err);
void ferry_config_free(struct ferry_config *cfg); /* accepts NULL */
/* The connector section named `name`, or NULL. Borrowed. */
const struct ferry_connector_cfg *ferry_config_connector(const struct ferry_config *cfg,
                                                         const char *name);

#endif
