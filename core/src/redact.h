/* SPDX-License-Identifier: MIT */
/*
 * The one redaction layer every sink goes through: log lines, audit rows,
 * dead-letter reasons, CLI output and metrics labels. Configured secrets are
 * always replaced by "[REDACTED]"; personal data named in the configuration
 * (`privacy.mask` and `privacy.hash` field names, and optionally every
 * e-mail address in free text) is replaced by "[MASKED]" or by a stable
 * "hash:<16 hex>" token that still lets an operator see that two rows hold
 * the same value.
 *
 * Field rules work on text, because that is what the sinks hold: HTTP traces
 * (headers, JSON or XML bodies, URLs with query strings or OData filters),
 * messages and JSON documents. A field matches by name, case-insensitively
 * ("email" covers "Email"), in these forms:
 *   "email": "v"          JSON member (string, number or boolean value)
 *   <d:Email>v</d:Email>  XML element
 *   Email eq 'v'          OData filter literal (also URL-encoded)
 *   email=v, email:in=v   query string or form field
 *
 * Threads: the process policy is installed once at start-up, before any
 * worker thread runs, and only read afterwards.
 */
#ifndef FERRY_REDACT_H
#define FERRY_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

struct ferry_config;

#define FERRY_REDACTED "[REDACTED]"
#define FERRY_MASKED   "[MASKED]"

enum ferry_pii_action {
    FERRY_PII_KEEP = 0,
    FERRY_PII_MASK = 1,
    FERRY_PII_HASH = 2,
};

struct ferry_redact_policy {
    const char *const *secrets; /* values masked wherever they appear */
    size_t nsecrets;
    const char *const *mask_fields; /* field names whose values become FERRY_MASKED */
    size_t nmask;
    const char *const *hash_fields; /* field names whose values become "hash:..." */
    size_t nhash;
    int emails;            /* enum ferry_pii_action for any e-mail address in free text */
    const char *hash_salt; /* prefixed to values before hashing; may be NULL */
};

/*
 * Install the process-wide policy (copied; NULL clears it). Call before
 * threads start. Returns 0 or FERRY_ENOMEM (the previous policy then stays).
 */
FERRY_NODISCARD int ferry_redact_configure(const struct ferry_redact_policy *p);
/* The policy a configuration asks for: its secrets and its `privacy` section. */
FERRY_NODISCARD int ferry_redact_configure_from(const struct ferry_config *cfg);
/* Whether the process policy would change anything at all. */
bool ferry_redact_active(void);

/*
 * A redacted copy of `text` under the process policy; caller frees. NULL
 * for NULL text or when out of memory (a sink must then drop the text, not
 * write it unredacted).
 */
char *ferry_redact_text(const char *text);
/* The same with an explicit policy (tests, one-off tools). */
char *ferry_redact_text_with(const struct ferry_redact_policy *p, const char *text);

/* The token FERRY_PII_HASH writes for `value` under the process policy, into out. */
void ferry_redact_hash_token(const char *value, size_t len, char out[22]);

#endif
