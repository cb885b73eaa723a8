/* SPDX-License-Identifier: MIT */
/*
 * Talking to one c4codataapi tenant: the instance settings every request
 * needs (root, credentials, timeout) and the per-worker session that carries
 * the CSRF token. SAP ties the token to the session cookies (facts section 2,
 * KBA 3048103); the host keeps one cookie jar per worker, so the token is
 * kept per worker too, in the host's worker slot, and never shared.
 */
#ifndef FERRY_SAP_SALES_SESSION_H
#define FERRY_SAP_SALES_SESSION_H

#include "ferry/plugin.h"

#include "sap_sales_odata.h"

/* Read-only after open: shared by all workers without a lock. */
struct ferry_sap_instance {
    const struct ferry_host_api *host; /* borrowed; valid until close */
    char *root;                        /* service root, exactly one trailing '/' */
    char *auth;                        /* "Basic ..." header value (a secret) */
    long timeout_ms;                   /* per request */
    long page_size;                    /* $top for delta reads (issue 4) */
};

/* One worker's state; lives in host->worker_slot, freed by ferry__sap_session_free. */
struct ferry_sap_session {
    char *csrf_token; /* NULL until fetched on this worker */
};

/* Releases a session (the descriptor's worker_free); accepts NULL. */
void ferry__sap_session_free(void *slot);

/*
 * A request with the headers every call carries (Authorization, Accept: JSON,
 * Content-Type on bodies, If-Match when `if_match` is non-NULL).
 *
 * Writes (any method but GET) also carry the worker's CSRF token, fetched
 * lazily with `GET <root>` + `x-csrf-token: fetch` before the first write.
 * When the tenant answers a write with the CSRF 403, the token and the
 * session cookies are renewed once (FERRY_HTTP_RESET_SESSION) and the write
 * is sent once more; a second CSRF 403 is FERRY_EFORBIDDEN.
 *
 * Returns 0 when a response was received, whatever its status (the caller
 * classifies it and frees it with host->http_resp_free); transport errors
 * from host->http pass through with err filled. `object` tags the audit row.
 */
FERRY_SAP_NODISCARD int ferry__sap_send(const struct ferry_sap_instance *inst,
                                        struct ferry_call *call, const char *method,
                                        const char *url, const char *if_match, const char *body,
                                        const char *object, struct ferry_http_resp *resp,
                                        struct ferry_err *err);

#endif
