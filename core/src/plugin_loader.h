/* SPDX-License-Identifier: MIT */
/*
 * Loads connector plugins: dlopen(RTLD_NOW|RTLD_LOCAL) from the configured
 * directory only, one entry symbol, ABI and size checks, then a copy of the
 * descriptor into a zeroed struct so that members a plugin was built without
 * read as NULL. Every refusal is one line naming the file and the reason.
 */
#ifndef FERRY_PLUGIN_LOADER_H
#define FERRY_PLUGIN_LOADER_H

#include <jansson.h>

#include "errors.h"
#include "ferry/plugin.h"

struct ferry_plugin {
    char *path;                  /* the file loaded */
    void *dl;                    /* dlopen handle */
    struct ferry_connector conn; /* copy of the descriptor, zero-extended */
};

/*
 * Load "<dir>/<name>.so". Refuses: a missing file, a world-writable file or
 * directory, a missing entry symbol, an entry that fails, a descriptor with
 * another ABI or a size below FERRY_CONNECTOR_MIN_SIZE, a descriptor whose
 * name differs from `name`, or a NULL mandatory callback (open, close).
 * Caller frees with ferry_plugin_unload().
 */
FERRY_NODISCARD int ferry_plugin_load(struct ferry_plugin **out, const char *dir, const char *name,
                                      const struct ferry_host_api *host, struct ferry_err *err);
void ferry_plugin_unload(struct ferry_plugin *p); /* accepts NULL */

/*
 * Check a connector section against the plugin's declared fields and build
 * the object its open() receives: defaults filled in, types checked,
 * {"$secret": v} unwrapped to v. Unknown keys, missing required keys, wrong
 * types and a secret field given as plain text are FERRY_ECONFIG errors
 * naming "<cfg_file>: connectors.<instance>.<key>". *resolved is new.
 */
FERRY_NODISCARD int ferry_plugin_config_resolve(const struct ferry_plugin *p, const char *cfg_file,
                                                const char *instance, const json_t *settings,
                                                json_t **resolved, struct ferry_err *err);

#endif
