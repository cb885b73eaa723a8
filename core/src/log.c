/* SPDX-License-Identifier: MIT */
/*
 * Structured log lines (see log.h). A line is formatted into a local buffer
 * and written with one fwrite, so lines from several workers never
 * interleave within a line.
 */
#include "log.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

static int log_level = FERRY_LOG_INFO;
static int log_format = FERRY_LOG_JSON;
static FILE *log_sink;
static _Thread_local struct ferry_log_ctx log_ctx;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void ferry_log_set_level(int level)
{
    log_level = level;
}

int ferry_log_get_level(void)
{
    return log_level;
}

void ferry_log_set_format(int format)
{
    log_format = format;
}

void ferry_log_set_sink(FILE *f)
{
    log_sink = f;
}

int ferry_log_level_parse(const char *name, int *level)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (name && strcasecmp(name, level_names[i]) == 0) {
            *level = i;
            return 0;
        }
    }
    return FERRY_EINVAL;
}

const char *ferry_log_level_name(int level)
{
    if (level < 0 || level > FERRY_LOG_TRACE) {
        return "unknown";
    }
    return level_names[level];
}

void ferry_log_ctx_set(const struct ferry_log_ctx *ctx)
{
    if (ctx) {
        log_ctx = *ctx;
    } else {
        memset(&log_ctx, 0, sizeof(log_ctx));
    }
}

void ferry_log_ctx_clear(void)
{
    memset(&log_ctx, 0, sizeof(log_ctx));
}

static void format_time(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static void set_str(json_t *o, const char *key, const char *value)
{
    if (value && *value) {
        json_object_set_new(o, key, json_string(value));
    }
}

void ferry_log_writev(int level, const char *connector, const char *fmt, va_list ap)
{
    char msg[2048];
    char ts[40];
    FILE *out = log_sink ? log_sink : stderr;

    if (level > log_level) {
        return;
    }
    vsnprintf(msg, sizeof(msg), fmt, ap);
    format_time(ts, sizeof(ts));
    if (!connector) {
        connector = log_ctx.connector;
    }

    if (log_format == FERRY_LOG_TEXT) {
        char line[2600];
        int n =
            snprintf(line, sizeof(line), "%s %-5s %s%s%s%s%s\n", ts, ferry_log_level_name(level),
                     connector ? "[" : "", connector ? connector : "", connector ? "] " : "", msg,
                     log_ctx.correlation_id ? "" : "");
        if (n > 0) {
            fwrite(line, 1, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, out);
        }
        return;
    }

    json_t *o = json_object();
    if (!o) {
        return;
    }
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(ferry_log_level_name(level)));
    /* Invalid UTF-8 from a remote system must not cost us the whole line. */
    json_t *m = json_string(msg);
    json_object_set_new(o, "msg", m ? m : json_string("(message not valid UTF-8)"));
    set_str(o, "correlation_id", log_ctx.correlation_id);
    set_str(o, "connector", connector);
    set_str(o, "object", log_ctx.object);
    set_str(o, "id", log_ctx.id);
    if (log_ctx.job_id > 0) {
        json_object_set_new(o, "job", json_integer(log_ctx.job_id));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text) {
        size_t len = strlen(text);
        text[len] = '\n';
        fwrite(text, 1, len + 1, out);
        text[len] = '\0';
        free(text);
    }
}

void ferry_log_write(int level, const char *connector, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ferry_log_writev(level, connector, fmt, ap);
    va_end(ap);
}
