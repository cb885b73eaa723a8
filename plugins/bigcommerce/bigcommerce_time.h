/* SPDX-License-Identifier: MIT */
/*
 * The four date formats BigCommerce uses (facts 10.2): ISO 8601 in v3,
 * RFC 2822 in v2 orders, RFC 3339 with an offset in refunds, and Unix
 * seconds in B2B Edition. Watermarks handed to the host are always ISO 8601
 * UTC ("2024-05-01T00:00:00Z"), so that they compare as strings in time
 * order whatever the object.
 */
#ifndef FERRY_BIGCOMMERCE_TIME_H
#define FERRY_BIGCOMMERCE_TIME_H

#include <stdint.h>

#include "bigcommerce.h"

#define FERRY_BC_ISO_LEN 21 /* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

/*
 * ISO 8601 / RFC 3339: a date, optionally with time, fraction (dropped) and
 * Z or an offset (none: UTC). 0 and *unix_s, or FERRY_EINVAL.
 */
FERRY_BC_NODISCARD int ferry__bc_parse_iso(const char *s, int64_t *unix_s);
/* RFC 2822 "Wed, 10 Jan 2018 21:05:30 +0000" (weekday optional). 0 or FERRY_EINVAL. */
FERRY_BC_NODISCARD int ferry__bc_parse_rfc2822(const char *s, int64_t *unix_s);

/* out: FERRY_BC_ISO_LEN bytes. */
void ferry__bc_format_iso(int64_t unix_s, char *out);
/* "Tue, 20 Nov 2012 00:00:00 +0000"; out: at least 32 bytes. */
void ferry__bc_format_rfc2822(int64_t unix_s, char *out, size_t n);

#endif
