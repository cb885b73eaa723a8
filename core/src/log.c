/* SPDX-License-Identifier: MIT */
/*
 * Structured log lines (see log.h). A line is formatted into a local buffer
 * and written with one fwrite, so lines from several workers never
 * interleave within a line. Every message passes the redaction layer
 * (redact.h) first: secrets always, personal data as configured.
 */
#include "log.h"

#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "redact.h"

static int log_level = FERRY_LOG_INFO;
static _Atomic uint64_t lines_written;
static int log_format = FERRY_LOG_JSON;
static FILE *log_sink;
static _Thread_local struct ferry_log_ctx log_ctx;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

uint64_t ferry_log_lines_written(void)
{
    return atomic_load(&lines_written);
}

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

/*
 * For a person at a terminal: time, level, what the line is about, the
 * message, and the job's identifiers at the end where they do not get in
 * the way of reading but can still be copied into `ferry explain` or
 * `ferry log --correlation`.
 */
static void write_text(FILE *out, const char *ts, int level, const char *connector, const char *msg)
{
    char line[2800];
    char about[400] = "";
    char ids[120] = "";
    size_t n = 0;
    if (connector && *connector) {
        n = (size_t)snprintf(about, sizeof(about), "%s", connector);
        if (log_ctx.object && *log_ctx.object && n < sizeof(about)) {
            n += (size_t)snprintf(about + n, sizeof(about) - n, " %s", log_ctx.object);
        }
        if (log_ctx.id && *log_ctx.id && n < sizeof(about)) {
            n += (size_t)snprintf(about + n, sizeof(about) - n, " %s", log_ctx.id);
        }
    }
    if (log_ctx.job_id > 0 || (log_ctx.correlation_id && *log_ctx.correlation_id)) {
        size_t k = 0;
        if (log_ctx.job_id > 0) {
            k = (size_t)snprintf(ids, sizeof(ids), " [job %lld", (long long)log_ctx.job_id);
        } else {
            k = (size_t)snprintf(ids, sizeof(ids), " [");
        }
        if (log_ctx.correlation_id && *log_ctx.correlation_id && k < sizeof(ids)) {
            k += (size_t)snprintf(ids + k, sizeof(ids) - k, "%scorrelation %s",
                                  log_ctx.job_id > 0 ? ", " : "", log_ctx.correlation_id);
        }
        if (k < sizeof(ids)) {
            snprintf(ids + k, sizeof(ids) - k, "]");
        }
    }
    int len = snprintf(line, sizeof(line), "%s %-5s %s%s%s%s\n", ts, ferry_log_level_name(level),
                       about, about[0] ? ": " : "", msg, ids);
    if (len > 0) {
        size_t w = (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1;
        if ((size_t)len >= sizeof(line)) {
            line[w - 1] = '\n';
        }
        fwrite(line, 1, w, out);
    }
}

void ferry_log_writev(int level, const char *connector, const char *fmt, va_list ap)
{
    char raw[2048];
    char ts[40];
    char *safe = NULL;
    const char *msg = raw;
    FILE *out = log_sink ? log_sink : stderr;

    if (level > log_level) {
        return;
    }
    vsnprintf(raw, sizeof(raw), fmt, ap);
    if (ferry_redact_active()) {
        safe = ferry_redact_text(raw);
        msg = safe ? safe : "(message withheld: out of memory while redacting it)";
    }
    format_time(ts, sizeof(ts));
    if (!connector) {
        connector = log_ctx.connector;
    }
    atomic_fetch_add(&lines_written, 1);

    if (log_format == FERRY_LOG_TEXT) {
        write_text(out, ts, level, connector, msg);
        free(safe);
        return;
    }

    json_t *o = json_object();
    if (!o) {
        free(safe);
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
    free(safe);
}

void ferry_log_write(int level, const char *connector, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ferry_log_writev(level, connector, fmt, ap);
    va_end(ap);
}
