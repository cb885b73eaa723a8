/* SPDX-License-Identifier: MIT */
/*
 * A small metrics registry: counters, gauges and histograms keyed by label
 * values, rendered in the Prometheus text exposition format (version
 * 0.0.4). The daemon keeps one process-wide registry that workers, intake
 * and the HTTP client feed with the one-line calls at the end of this file,
 * and that the admin listener renders on GET /metrics.
 *
 * Label values pass through the redaction layer (redact.h) when a series is
 * first created, so a misplaced secret never reaches a scraper.
 *
 * Threads: every function may be called from any thread; one mutex per
 * registry guards it (updates are a lookup and an addition, so contention
 * is negligible next to the HTTP call or job each update describes).
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

enum ferry_metric_type {
    FERRY_METRIC_COUNTER = 0,
    FERRY_METRIC_GAUGE = 1,
    FERRY_METRIC_HISTOGRAM = 2,
};

struct ferry_metrics;

/* Caller frees with ferry_metrics_free(). */
FERRY_NODISCARD int ferry_metrics_new(struct ferry_metrics **out);
void ferry_metrics_free(struct ferry_metrics *m); /* accepts NULL */

/*
 * The process-wide registry with every family the engine reports declared
 * (created on first use). Never freed; ferry_metrics_global_reset() zeroes
 * it (a fresh `ferry sync` in a test process, unit tests).
 */
struct ferry_metrics *ferry_metrics_global(void);
void ferry_metrics_global_reset(void);

/*
 * Declare a family. `help` and `buckets` (histogram upper bounds, ascending;
 * copied) are used for rendering. Declaring an existing name again is a
 * no-op. FERRY_EINVAL for a name that is not a valid metric name.
 */
FERRY_NODISCARD int ferry_metrics_declare(struct ferry_metrics *m, const char *name, int type,
                                          const char *help, const double *buckets, size_t nbuckets);

/*
 * Updates. After the value come label name/value pairs, then NULL:
 *   ferry_metrics_add(m, "ferry_http_requests_total", 1, "connector", "shop",
 *                     "class", "2xx", NULL);
 * An undeclared family or an allocation failure drops the update (metrics
 * never fail the work they describe).
 */
void ferry_metrics_add(struct ferry_metrics *m, const char *name, double delta, ...)
    __attribute__((sentinel));
void ferry_metrics_set(struct ferry_metrics *m, const char *name, double value, ...)
    __attribute__((sentinel));
void ferry_metrics_observe(struct ferry_metrics *m, const char *name, double value, ...)
    __attribute__((sentinel));
/* Remove every series of a gauge family (before setting a fresh snapshot). */
void ferry_metrics_clear(struct ferry_metrics *m, const char *name);
/*
 * A counter's or gauge's value, or a histogram's count, for these labels
 * (0 when absent). With labels NULL-terminated as above. For progress
 * output and tests.
 */
double ferry_metrics_value(struct ferry_metrics *m, const char *name, ...)
    __attribute__((sentinel));
/* The sum of a family's series whose labels include every given pair. */
double ferry_metrics_sum(struct ferry_metrics *m, const char *name, ...) __attribute__((sentinel));

/* The exposition text; caller frees. NULL when out of memory. */
char *ferry_metrics_render(struct ferry_metrics *m);

/* ---- what the engine reports (on the global registry) ---- */

/*
 * One HTTP call a connector made through the host: status 0 with rc < 0 is a
 * transport failure. Counts by status class, 429s, duration, and remembers
 * the connector's last outcome for /readyz.
 */
void ferry_metrics_http_call(const char *connector, int status, int rc, int64_t duration_ms);
/*
 * A job's outcome (kind: 0 done, 1 retry, 2 dead; see enum
 * ferry_outcome_kind), labelled by the source connector and object read
 * from its job key ("<connector>:<object>:<id>"); latency is arrival to now.
 */
void ferry_metrics_job_outcome(const char *job_key, int kind, int64_t created_at_ms,
                               int64_t now_ms);
/* One webhook acknowledged to its sender, with its new and duplicate events. */
void ferry_metrics_webhook(const char *connector, int64_t queued, int64_t duplicates);
/* One page of a delta poll committed; `page` is the connector's page ({"items": [...]}). */
void ferry_metrics_poll_page(const char *connector, const char *object, const json_t *page);
/* A delta poll ended (rc 0: it listed everything). */
void ferry_metrics_poll_done(const char *connector, const char *object, int rc);
/* A write skipped because it would only echo back what the target sent us (issue 5). */
void ferry_metrics_echo_suppressed(const char *connector);
/* Both systems changed the same record; resolved by the system-of-record rules (issue 5). */
void ferry_metrics_conflict(const char *connector);
/*
 * A connector's request quota as its remote last reported it (remaining
 * calls in the window, the window's size, ms until it resets; < 0: unknown).
 * Not fed yet: no ABI member carries it (see docs/operations.md).
 */
void ferry_metrics_quota(const char *connector, int64_t remaining, int64_t limit, int64_t reset_ms);
/* Create a connector's zero series, so that dashboards see them before the first event. */
void ferry_metrics_connector_init(const char *connector);

/* A connector's most recent HTTP call, for readiness. */
struct ferry_metrics_call_state {
    int64_t calls;   /* calls since start */
    int64_t at_ms;   /* when the last one ended */
    int status;      /* its HTTP status, 0 when none came back */
    bool failing;    /* transport error, 5xx, 401 or 403 */
    char detail[96]; /* e.g. "HTTP 503" or "transport error" */
};
/* false when the connector made no call yet. */
bool ferry_metrics_last_call(const char *connector, struct ferry_metrics_call_state *out);

#endif
