/* SPDX-License-Identifier: MIT */
/*
 * Talking to one c4codataapi tenant: the instance settings every request
 * needs (root, credentials, timeout), the caches shared by all workers
 * (metadata, OAuth token; guarded by the instance lock) and the per-worker
 * session that carries the CSRF token. SAP ties the token to the session
 * cookies (facts section 2, KBA 3048103); the host keeps one cookie jar per
 * worker, so the token is kept per worker too, in the host's worker slot,
 * and never shared.
 */
#ifndef FERRY_SAP_SALES_SESSION_H
#define FERRY_SAP_SALES_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ferry/plugin.h"

#include "sap_sales_odata.h"

enum ferry_sap_auth_mode {
    FERRY_SAP_AUTH_BASIC = 0,
    FERRY_SAP_AUTH_OAUTH = 1,
};

/*
 * Settings are read-only after open and shared by all workers without a
 * lock; the members after `lock` are caches guarded by it.
 */
struct ferry_sap_instance {
    const struct ferry_host_api *host; /* borrowed; valid until close */
    char *root;                        /* service root, exactly one trailing '/' */
    char *auth;                        /* Basic: "Basic ..." header value (a secret) */
    long timeout_ms;                   /* per request */
    long page_size;                    /* $top for lookups that page */
    char *metadata_file;               /* offline $metadata; NULL: fetch from the tenant */
    int64_t metadata_max_age_ms;       /* kv cache refresh age */
    int64_t delta_lag_ms;              /* list_changes upper bound = now - lag */
    json_t *approval_codes;       /* array of ApprovalStatusCode values meaning "in approval" */
    json_t *external_id;          /* object: entity set -> strategy text */
    json_t *expand;               /* object: entity set -> "$expand" value */
    char *remote_business_system; /* ObjectIdentifierMapping RemoteBusinessSystemID */

    int auth_mode;        /* enum ferry_sap_auth_mode */
    char *token_url;      /* OAuth token endpoint */
    char *client_auth;    /* "Basic base64(client_id:client_secret)" for the token endpoint */
    char *scope;          /* may be NULL */
    char *assertion_file; /* SAML bearer assertion (base64url); NULL: client credentials */

    pthread_mutex_t lock;
    json_t *meta;           /* parsed metadata or NULL */
    int64_t meta_at_ms;     /* when that metadata was obtained from the tenant */
    int64_t meta_failed_ms; /* last failed load; 0 if none */
    char *token;            /* "Bearer ..." or NULL */
    int64_t token_expires_ms;
};

/* One worker's state; lives in host->worker_slot, freed by ferry__sap_session_free. */
struct ferry_sap_session {
    char *csrf_token; /* NULL until fetched on this worker */
};

/* Releases a session (the descriptor's worker_free); accepts NULL. */
void ferry__sap_session_free(void *slot);

/* One request as the connector describes it; see ferry__sap_request. */
struct ferry_sap_req {
    const char *method;
    const char *url;
    const char *if_match;     /* may be NULL */
    const char *body;         /* may be NULL */
    size_t body_len;          /* 0: strlen(body) */
    const char *content_type; /* NULL: application/json when there is a body */
    const char *object;       /* audit tag; may be NULL */
    uint32_t flags;           /* enum ferry_http_flags */
    /*
     * POST: send `odata-no-response-payload: true` (facts section 3), so a
     * create is answered by its location and etag headers without the
     * entity; whoever sets it must cope with an empty 201.
     */
    bool no_response_payload;
    /*
     * Set to true once the request itself (not a token fetch before it) was
     * handed to host->http: a transport failure after that point leaves the
     * outcome of a POST unknown. May be NULL.
     */
    bool *sent;
};

/*
 * A request with the headers every call carries (Authorization, Accept: JSON,
 * Content-Type on bodies, If-Match when set).
 *
 * Writes (any method but GET) also carry the worker's CSRF token, fetched
 * lazily with `GET <root>` + `x-csrf-token: fetch` before the first write.
 * When the tenant answers a write with the CSRF 403, the token and the
 * session cookies are renewed once (FERRY_HTTP_RESET_SESSION) and the write
 * is sent once more; a second CSRF 403 is FERRY_EFORBIDDEN. With OAuth, a
 * 401 renews the bearer token once and resends.
 *
 * Returns 0 when a response was received, whatever its status (the caller
 * classifies it and frees it with host->http_resp_free); transport errors
 * from host->http pass through with err filled.
 */
FERRY_SAP_NODISCARD int ferry__sap_request(struct ferry_sap_instance *inst, struct ferry_call *call,
                                           const struct ferry_sap_req *r,
                                           struct ferry_http_resp *resp, struct ferry_err *err);

/* ferry__sap_request with a JSON body (or none) and no flags. */
FERRY_SAP_NODISCARD int ferry__sap_send(struct ferry_sap_instance *inst, struct ferry_call *call,
                                        const char *method, const char *url, const char *if_match,
                                        const char *body, const char *object,
                                        struct ferry_http_resp *resp, struct ferry_err *err);

/*
 * The Authorization header value (new string, a secret; caller frees after
 * wiping). OAuth: the cached bearer token, fetched from token_url when
 * missing, within 60 s of expiry, or when `renew` (after a 401).
 */
FERRY_SAP_NODISCARD int ferry__sap_auth_header(struct ferry_sap_instance *inst,
                                               struct ferry_call *call, bool renew, char **value,
                                               struct ferry_err *err);

/* Frees a secret string after overwriting it; accepts NULL. */
void ferry__sap_free_secret(char *s);

#endif
