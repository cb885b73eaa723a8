/* SPDX-License-Identifier: MIT */
/*
 * The host's HTTP client behind ferry_host_api.http: one libcurl easy handle
 * per (worker, connector instance) for connection reuse, with its own cookie
 * jar. Timeouts always; TLS verification always, except for hosts the
 * configuration names; X-Correlation-ID on every request; a response-size
 * cap. Each call yields a redacted, size-capped trace for the audit row.
 *
 * Threads: a client belongs to one thread at a time. curl_global_init() must
 * have run (ferry_http_global_init) before any thread starts.
 */
#ifndef FERRY_HTTP_H
#define FERRY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "ferry/plugin.h"

int ferry_http_global_init(struct ferry_err *err);
void ferry_http_global_cleanup(void);

struct ferry_http_options {
    long timeout_ms;                   /* whole request; default 30000 */
    long connect_timeout_ms;           /* default 10000 */
    size_t max_response;               /* bytes; default 16 MiB; larger -> FERRY_ETOOBIG */
    const char *const *insecure_hosts; /* TLS verification off for exactly these host names */
    size_t ninsecure_hosts;
    const char *const *secrets; /* values to mask wherever they appear in traces */
    size_t nsecrets;
    size_t trace_body_max; /* bytes of each body kept in a trace; default 4096 */
};

struct ferry_http_client;

FERRY_NODISCARD int ferry_http_client_new(struct ferry_http_client **out,
                                          const struct ferry_http_options *opt,
                                          struct ferry_err *err);
void ferry_http_client_free(struct ferry_http_client *c); /* accepts NULL */

/* What happened, redacted: headers whose names suggest credentials
 * (authorization, cookie, *token*, *secret*, *key*, *password*, *signature*)
 * and every configured secret value are masked as "[REDACTED]". */
struct ferry_http_trace {
    char *method;
    char *url;
    char *request;  /* request headers + body, capped */
    char *response; /* status line, headers + body, capped */
    int status;     /* 0 when no response */
    int64_t duration_ms;
};
void ferry_http_trace_clear(struct ferry_http_trace *t); /* accepts NULL */

/*
 * Perform one request (see ferry_host_api.http for the contract). `trace` may
 * be NULL; when not, it is filled whether or not the request succeeded.
 */
FERRY_NODISCARD int ferry_http_perform(struct ferry_http_client *c,
                                       const struct ferry_http_req *req, const char *correlation_id,
                                       struct ferry_http_resp *resp, struct ferry_http_trace *trace,
                                       struct ferry_err *err);
void ferry_http_resp_free(struct ferry_http_resp *resp); /* frees members, zeroes; accepts NULL */
const char *ferry_http_resp_header(const struct ferry_http_resp *resp, const char *name);

/* Replace every occurrence of each secret in `text` by "[REDACTED]"; new string. */
char *ferry_redact(const char *text, const char *const *secrets, size_t nsecrets);

#endif
