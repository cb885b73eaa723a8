/* SPDX-License-Identifier: MIT */
/*
 * Test connectors for unit.plugin_loader. One source, built once per
 * variant (TP_<VARIANT>=1, TP_NAME="tp_<variant>"): each variant breaks the
 * ABI contract in exactly one way, so each refusal the loader makes has a
 * plugin that provokes it. Built like a real connector (hidden visibility,
 * -z defs, SDK headers only).
 */
#include <stddef.h>

#include "ferry/plugin.h"

/* The host vtable the entry saw, so a test can check what the loader passed. */
FERRY_PLUGIN_EXPORT const struct ferry_host_api *tp_seen_host;

/* Unused by some variants (no_open, entry_fails); that is the point of them. */
__attribute__((unused)) static int tp_open(const struct ferry_host_api *host,
                                           struct ferry_call *call, const json_t *config,
                                           void **state, struct ferry_err *err)
{
    *state = NULL;
    return 0;
}

static void tp_close(void *state)
{
}

static int tp_fetch(void *state, struct ferry_call *call, const char *object, const char *id,
                    json_t **record, struct ferry_err *err)
{
    return FERRY_ENOTFOUND;
}

static const struct ferry_config_field tp_fields[] = {
    {"base_url", FERRY_CFG_STRING, NULL, 1, "where the remote API lives"},
    {"api_token", FERRY_CFG_SECRET, NULL, 1, "credential"},
#if defined(TP_BAD_DEFAULT)
    {"page_size", FERRY_CFG_INT, "fifty", 0, "records per page"},
#else
    {"page_size", FERRY_CFG_INT, "50", 0, "records per page"},
#endif
    {"verbose", FERRY_CFG_BOOL, "false", 0, "log more"},
    {"scopes", FERRY_CFG_TABLE, "[\"a\",\"b\"]", 0, "what to subscribe to"},
    {"options", FERRY_CFG_TABLE, NULL, 0, "free-form options"},
    {"note", FERRY_CFG_STRING, NULL, 0, "optional, no default"},
    {NULL, 0, NULL, 0, NULL},
};

#if defined(TP_BIG)
/* A descriptor from a newer header: members this host does not know follow. */
static const struct {
    struct ferry_connector base;
    void *future[4];
} tp_big = {
    .base =
        {
            .abi = FERRY_PLUGIN_ABI,
            .size = sizeof(tp_big),
            .name = TP_NAME,
            .version = "9.0.0",
            .config = tp_fields,
            .open = tp_open,
            .close = tp_close,
            .fetch = tp_fetch,
        },
    .future = {(void *)1, (void *)2, (void *)3, (void *)4},
};
#else
__attribute__((unused)) static const struct ferry_connector tp_desc = {
#if defined(TP_BAD_ABI)
    .abi = FERRY_PLUGIN_ABI + 1,
#else
    .abi = FERRY_PLUGIN_ABI,
#endif
#if defined(TP_SMALL)
    .size = offsetof(struct ferry_connector, decode_webhook),
#else
    .size = sizeof(struct ferry_connector),
#endif
#if defined(TP_WRONG_NAME)
    .name = "someone_else",
#else
    .name = TP_NAME,
#endif
    .version = "1.2.3",
    .description = "test connector",
    .config = tp_fields,
#if !defined(TP_NO_OPEN)
    .open = tp_open,
#endif
    .close = tp_close,
    .fetch = tp_fetch,
};
#endif

#if defined(TP_NO_ENTRY)
FERRY_PLUGIN_EXPORT int ferry_connector_entry_v0(const struct ferry_host_api *host,
                                                 const struct ferry_connector **out);
FERRY_PLUGIN_EXPORT int ferry_connector_entry_v0(const struct ferry_host_api *host,
                                                 const struct ferry_connector **out)
#else
FERRY_PLUGIN_EXPORT int ferry_connector_entry(const struct ferry_host_api *host,
                                              const struct ferry_connector **out);
FERRY_PLUGIN_EXPORT int ferry_connector_entry(const struct ferry_host_api *host,
                                              const struct ferry_connector **out)
#endif
{
    tp_seen_host = host;
    if (!host || host->abi != FERRY_PLUGIN_ABI) {
        return FERRY_EABI;
    }
#if defined(TP_ENTRY_FAILS)
    return FERRY_EUNSUPPORTED;
#elif defined(TP_BIG)
    *out = &tp_big.base;
    return 0;
#else
    *out = &tp_desc;
    return 0;
#endif
}
