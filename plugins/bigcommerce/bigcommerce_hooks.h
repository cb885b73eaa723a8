/* SPDX-License-Identifier: MIT */
/*
 * `ferry webhooks`: the hooks the enabled mappings need, compared with
 * those the store has (/v3/hooks), and with apply, the missing ones created
 * and the deactivated ones switched back on.
 */
#ifndef FERRY_BIGCOMMERCE_HOOKS_H
#define FERRY_BIGCOMMERCE_HOOKS_H

#include "bigcommerce.h"

/* plugin.h sync_webhooks. */
FERRY_BC_NODISCARD int ferry__bc_sync_webhooks(const struct ferry_bc_state *st,
                                               struct ferry_call *call, const json_t *needs,
                                               const char *url, int apply, json_t **report,
                                               struct ferry_err *err);

#endif
