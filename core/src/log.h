/* SPDX-License-Identifier: MIT */
/*
 * Structured logging: one JSON object per line on stderr (or text for a
 * human on a terminal), with level, time, message and the job context of the
 * calling thread (correlation ID, connector, object, record id).
 *
 * Threads: the level and format are set once at start-up, before workers run.
 * The context is thread-local, so each worker tags its own lines.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "ferry/plugin.h" /* enum ferry_log_level, FERRY_PRINTF */

enum ferry_log_format {
    FERRY_LOG_JSON = 0,
    FERRY_LOG_TEXT = 1,
};

void ferry_log_set_level(int level);
int ferry_log_get_level(void);
void ferry_log_set_format(int format);
/* Where lines go (default stderr); for tests. NULL restores stderr. */
void ferry_log_set_sink(FILE *f);
/* "error".."trace" -> enum ferry_log_level; returns 0 or FERRY_EINVAL. */
int ferry_log_level_parse(const char *name, int *level);
const char *ferry_log_level_name(int level);

/* The calling thread's job context; the pointers are borrowed until the next set/clear. */
struct ferry_log_ctx {
    const char *correlation_id;
    const char *connector;
    const char *object;
    const char *id;
    int64_t job_id;
};
void ferry_log_ctx_set(const struct ferry_log_ctx *ctx);
void ferry_log_ctx_clear(void);

/* Writes one line if `level` is enabled; `connector` overrides the context's when non-NULL. */
void ferry_log_write(int level, const char *connector, const char *fmt, ...) FERRY_PRINTF(3, 4);
void ferry_log_writev(int level, const char *connector, const char *fmt, va_list ap)
    FERRY_PRINTF(3, 0);

/* Lines written so far (any thread); lets a progress display notice interleaved lines. */
uint64_t ferry_log_lines_written(void);

#define FERRY_LOG_ENABLED(lvl) ((lvl) <= ferry_log_get_level())
#define ferry_error(...)       ferry_log_write(FERRY_LOG_ERROR, NULL, __VA_ARGS__)
#define ferry_warn(...)        ferry_log_write(FERRY_LOG_WARN, NULL, __VA_ARGS__)
#define ferry_info(...)        ferry_log_write(FERRY_LOG_INFO, NULL, __VA_ARGS__)
#define ferry_debug(...)                                                                           \
    do {                                                                                           \
        if (FERRY_LOG_ENABLED(FERRY_LOG_DEBUG)) {                                                  \
            ferry_log_write(FERRY_LOG_DEBUG, NULL, __VA_ARGS__);                                   \
        }                                                                                          \
    } while (0)

#endif
