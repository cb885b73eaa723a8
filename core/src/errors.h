/* SPDX-License-Identifier: MIT */
/*
 * Error helpers over ferry/error.h: names, texts, the transient/permanent
 * class of a code, and filling a struct ferry_err with a formatted message.
 */
#ifndef FERRY_ERRORS_H
#define FERRY_ERRORS_H

#include <stdbool.h>

#include "ferry/error.h"
#include "ferry/plugin.h"

#if defined(__GNUC__)
#define FERRY_NODISCARD __attribute__((warn_unused_result))
#else
#define FERRY_NODISCARD
#endif

/* Text for a FERRY_E* code or -errno; never NULL. */
const char *ferry_strerror(int code);
/* "EINVAL"-style name for a FERRY_E* code; "ERRNO" for -errno; never NULL. */
const char *ferry_err_name(int code);
/* Whether a failure with this code is worth retrying later. */
bool ferry_err_transient(int code);
/*
 * Sets err->code and a formatted message (truncated to fit); returns `code`
 * so that callers can write `return ferry_err_set(err, FERRY_EINVAL, ...)`.
 * err may be NULL.
 */
int ferry_err_set(struct ferry_err *err, int code, const char *fmt, ...) FERRY_PRINTF(3, 4);
/*
 * As ferry_err_set with a message of n strings joined ("%s%s...": NULL reads
 * "(null)", truncated alike), without printf's cost: for failures a caller
 * expects and mostly drops, such as "not found" on a lookup.
 */
int ferry_err_join(struct ferry_err *err, int code, const char *const *parts, size_t n);
/* Clears err (code 0, empty message, no retry hint); err may be NULL. */
void ferry_err_clear(struct ferry_err *err);

#endif
