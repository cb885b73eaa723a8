/* SPDX-License-Identifier: MIT */
/*
 * BigCommerce webhook callbacks: authenticating a delivery (the custom
 * secret header set at hook creation, plus the Standard Webhooks signature
 * when configured) and turning its thin payload into ferry events. Both run
 * on the event loop: pure computation, no I/O.
 */
#ifndef FERRY_BIGCOMMERCE_WEBHOOK_H
#define FERRY_BIGCOMMERCE_WEBHOOK_H

#include "bigcommerce.h"

/* Signature timestamps further than this from host->now_ms are replays (Standard Webhooks default).
 */
#define FERRY_BC_SIG_TOLERANCE_S 300

/* One webhook scope the connector understands, and what it becomes. */
struct ferry_bc_scope {
    const char *scope;  /* BigCommerce scope, e.g. "store/order/statusUpdated" */
    const char *object; /* ferry object, e.g. "order" */
    const char *event;  /* ferry event, e.g. "status_changed" */
    int rule;           /* how data names the record (bigcommerce_webhook.c) */
    int decode_only;    /* an alias seen in payloads; never registered as a hook */
};

/* The scope table; *n entries. */
const struct ferry_bc_scope *ferry__bc_scopes(size_t *n);

/* 0, FERRY_ESIGNATURE (message names headers, never values) or FERRY_EBADINPUT. */
FERRY_BC_NODISCARD int ferry__bc_webhook_verify(const struct ferry_bc_state *st,
                                                struct ferry_call *call,
                                                const struct ferry_webhook *wh,
                                                struct ferry_err *err);

/*
 * *events: new array (caller owns) in the decode_webhook shape of
 * plugin.h; empty for scopes the connector does not handle (logged at INFO).
 * FERRY_EBADINPUT when the payload is not the documented envelope.
 */
FERRY_BC_NODISCARD int ferry__bc_webhook_decode(const struct ferry_bc_state *st,
                                                struct ferry_call *call,
                                                const struct ferry_webhook *wh, json_t **events,
                                                struct ferry_err *err);

#endif
