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
    size_t nmappings;
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
    int64_t lua_mem_max;      /* mappings.memory_limit bytes, default 64 MiB */
    int64_t lua_instr_budget; /* mappings.instruction_limit, default 10,000,000 */
    struct ferry_connector_cfg *connectors;
    size_t nconnectors;
    char **secrets; /* every value that came from env()/file(), for redaction */
    size_t nsecrets;
};

/* Caller frees with ferry_config_free(). FERRY_ECONFIG with file and key in err. */
FERRY_NODISCARD int ferry_config_load(struct ferry_config **out, const char *path,
                                      struct ferry_err *err);
void ferry_config_free(struct ferry_config *cfg); /* accepts NULL */
/* The connector section named `name`, or NULL. Borrowed. */
const struct ferry_connector_cfg *ferry_config_connector(const struct ferry_config *cfg,
                                                         const char *name);

#endif
