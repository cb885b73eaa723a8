/* SPDX-License-Identifier: MIT */
/*
 * The metrics registry (see metrics.h). Families are few (a few dozen) and
 * series per family are bounded by configuration (connector instances,
 * objects, status classes, lanes), so plain arrays with linear lookup are
 * enough; a series is found by its label text, built the same way on every
 * update. Values are doubles, as the exposition format's are.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"
#include "util.h"

#define LABEL_TEXT_MAX 1024

struct series {
    char *key;            /* label text as built from the caller's values (lookup) */
    char *labels;         /* the same, redacted, as rendered */
    double value;         /* counter or gauge value; histogram sum */
    uint64_t count;       /* histogram observations */
    uint64_t *per_bucket; /* histogram: observations per bucket (not cumulative) */
};

struct family {
    char *name;
    char *help;
    int type;
    double *bounds;
    size_t nbounds;
    struct series *series;
    size_t n, cap;
};

struct last_call {
    char *connector;
    struct ferry_metrics_call_state st;
};

struct ferry_metrics {
    pthread_mutex_t mu;
    struct family *fams;
    size_t n, cap;
    struct last_call *calls;
    size_t ncalls;
};

int ferry_metrics_new(struct ferry_metrics **out)
{
    struct ferry_metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        return FERRY_ENOMEM;
    }
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return FERRY_ENOMEM;
    }
    *out = m;
    return 0;
}

static void series_free(struct series *s)
{
    free(s->key);
    free(s->labels);
    free(s->per_bucket);
}

static void family_clear(struct family *f)
{
    for (size_t i = 0; i < f->n; i++) {
        series_free(&f->series[i]);
    }
    f->n = 0;
}

static void calls_clear(struct ferry_metrics *m)
{
    for (size_t i = 0; i < m->ncalls; i++) {
        free(m->calls[i].connector);
    }
    free(m->calls);
    m->calls = NULL;
    m->ncalls = 0;
}

void ferry_metrics_free(struct ferry_metrics *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        family_clear(&m->fams[i]);
        free(m->fams[i].series);
        free(m->fams[i].name);
        free(m->fams[i].help);
        free(m->fams[i].bounds);
    }
    free(m->fams);
    calls_clear(m);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static bool valid_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9')) {
        return false;
    }
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':')) {
            return false;
        }
    }
    return true;
}

static struct family *find_family(struct ferry_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->fams[i].name, name) == 0) {
            return &m->fams[i];
        }
    }
    return NULL;
}

int ferry_metrics_declare(struct ferry_metrics *m, const char *name, int type, const char *help,
                          const double *buckets, size_t nbuckets)
{
    int rc = 0;
    if (!valid_name(name) || type < FERRY_METRIC_COUNTER || type > FERRY_METRIC_HISTOGRAM) {
        return FERRY_EINVAL;
    }
    pthread_mutex_lock(&m->mu);
    if (find_family(m, name)) {
        goto cleanup;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        struct family *grown = realloc(m->fams, cap * sizeof(*grown));
        if (!grown) {
            rc = FERRY_ENOMEM;
            goto cleanup;
        }
        m->fams = grown;
        m->cap = cap;
    }
    struct family f = {.type = type};
    f.name = strdup(name);
    f.help = strdup(help ? help : "");
    if (type == FERRY_METRIC_HISTOGRAM && nbuckets > 0) {
        f.bounds = malloc(nbuckets * sizeof(*f.bounds));
        if (f.bounds) {
            memcpy(f.bounds, buckets, nbuckets * sizeof(*f.bounds));
            f.nbounds = nbuckets;
        }
    }
    if (!f.name || !f.help || (type == FERRY_METRIC_HISTOGRAM && nbuckets > 0 && !f.bounds)) {
        free(f.name);
        free(f.help);
        free(f.bounds);
        rc = FERRY_ENOMEM;
        goto cleanup;
    }
    m->fams[m->n++] = f;
cleanup:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* Appends `s` with the escapes the exposition format wants in label values. */
static size_t put_escaped(char *out, size_t pos, size_t cap, const char *s)
{
    for (; s && *s && pos + 2 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            out[pos++] = '\\';
            out[pos++] = *s;
        } else if (*s == '\n') {
            out[pos++] = '\\';
            out[pos++] = 'n';
        } else {
            out[pos++] = *s;
        }
    }
    out[pos] = '\0';
    return pos;
}

/* k1="v1",k2="v2" from the NULL-terminated pairs in ap; false when it does not fit. */
static bool label_text(char *out, size_t cap, va_list ap)
{
    size_t pos = 0;
    const char *k;
    out[0] = '\0';
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        size_t klen = strlen(k);
        /* Joined by hand: every counted request and job formats its labels here. */
        if ((pos ? 1 : 0) + klen + 2 >= cap - pos) {
            return false;
        }
        if (pos) {
            out[pos++] = ',';
        }
        memcpy(out + pos, k, klen);
        pos += klen;
        out[pos++] = '=';
        out[pos++] = '"';
        out[pos] = '\0';
        pos = put_escaped(out, pos, cap, v ? v : "");
        if (pos + 2 >= cap) {
            return false;
        }
        out[pos++] = '"';
        out[pos] = '\0';
    }
    return true;
}

static struct series *find_series(struct family *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->series[i].key, key) == 0) {
            return &f->series[i];
        }
    }
    return NULL;
}

static struct series *get_series(struct family *f, const char *key)
{
    struct series *s = find_series(f, key);
    if (s) {
        return s;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct series *grown = realloc(f->series, cap * sizeof(*grown));
        if (!grown) {
            return NULL;
        }
        f->series = grown;
        f->cap = cap;
    }
    struct series ns = {0};
    ns.key = strdup(key);
    /* Labels are connector, object and scope names from the configuration and
     * the remote systems; redact them once, when the series is born. */
    ns.labels = ferry_redact_text(key);
    if (f->type == FERRY_METRIC_HISTOGRAM) {
        ns.per_bucket = calloc(f->nbounds + 1, sizeof(*ns.per_bucket));
    }
    if (!ns.key || !ns.labels || (f->type == FERRY_METRIC_HISTOGRAM && !ns.per_bucket)) {
        series_free(&ns);
        return NULL;
    }
    f->series[f->n] = ns;
    return &f->series[f->n++];
}

enum update_op { OP_ADD, OP_SET, OP_OBSERVE };

static void update(struct ferry_metrics *m, const char *name, double v, int op, va_list ap)
{
    char key[LABEL_TEXT_MAX];
    if (!m || !name || !label_text(key, sizeof(key), ap)) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    struct family *f = find_family(m, name);
    struct series *s = f ? get_series(f, key) : NULL;
    if (s) {
        if (op == OP_SET) {
            s->value = v;
        } else if (op == OP_ADD) {
            s->value += v;
        } else if (f->type == FERRY_METRIC_HISTOGRAM) {
            size_t b = 0;
            while (b < f->nbounds && v > f->bounds[b]) {
                b++;
            }
            s->per_bucket[b]++;
            s->count++;
            s->value += v;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

void ferry_metrics_add(struct ferry_metrics *m, const char *name, double delta, ...)
{
    va_list ap;
    va_start(ap, delta);
    update(m, name, delta, OP_ADD, ap);
    va_end(ap);
}

void ferry_metrics_set(struct ferry_metrics *m, const char *name, double value, ...)
{
    va_list ap;
    va_start(ap, value);
    update(m, name, value, OP_SET, ap);
    va_end(ap);
}

void ferry_metrics_observe(struct ferry_metrics *m, const char *name, double value, ...)
{
    va_list ap;
    va_start(ap, value);
    update(m, name, value, OP_OBSERVE, ap);
    va_end(ap);
}

void ferry_metrics_clear(struct ferry_metrics *m, const char *name)
{
    if (!m) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    struct family *f = find_family(m, name);
    if (f) {
        family_clear(f);
    }
    pthread_mutex_unlock(&m->mu);
}

static double series_value(const struct family *f, const struct series *s)
{
    return f->type == FERRY_METRIC_HISTOGRAM ? (double)s->count : s->value;
}

double ferry_metrics_value(struct ferry_metrics *m, const char *name, ...)
{
    char key[LABEL_TEXT_MAX];
    double v = 0;
    va_list ap;
    va_start(ap, name);
    bool ok = m && label_text(key, sizeof(key), ap);
    va_end(ap);
    if (!ok) {
        return 0;
    }
    pthread_mutex_lock(&m->mu);
    struct family *f = find_family(m, name);
    struct series *s = f ? find_series(f, key) : NULL;
    if (s) {
        v = series_value(f, s);
    }
    pthread_mutex_unlock(&m->mu);
    return v;
}

/* Whether the label text `key` holds the pair `pair` (k="v") as a whole item. */
static bool has_pair(const char *key, const char *pair)
{
    size_t n = strlen(pair);
    for (const char *p = strstr(key, pair); p; p = strstr(p + 1, pair)) {
        if ((p == key || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) {
            return true;
        }
    }
    return false;
}

double ferry_metrics_sum(struct ferry_metrics *m, const char *name, ...)
{
    char pairs[8][LABEL_TEXT_MAX / 4];
    size_t npairs = 0;
    double v = 0;
    va_list ap;
    const char *k;
    if (!m) {
        return 0;
    }
    va_start(ap, name);
    while ((k = va_arg(ap, const char *)) != NULL && npairs < 8) {
        const char *val = va_arg(ap, const char *);
        int n = snprintf(pairs[npairs], sizeof(pairs[npairs]), "%s=\"", k);
        size_t pos = n > 0 ? (size_t)n : 0;
        pos = put_escaped(pairs[npairs], pos, sizeof(pairs[npairs]) - 1, val ? val : "");
        pairs[npairs][pos++] = '"';
        pairs[npairs][pos] = '\0';
        npairs++;
    }
    va_end(ap);
    pthread_mutex_lock(&m->mu);
    struct family *f = find_family(m, name);
    for (size_t i = 0; f && i < f->n; i++) {
        bool all = true;
        for (size_t p = 0; p < npairs && all; p++) {
            all = has_pair(f->series[i].key, pairs[p]);
        }
        if (all) {
            v += series_value(f, &f->series[i]);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return v;
}

/* ---- rendering ---- */

struct out {
    char *p;
    size_t len, cap;
    bool oom;
};

static void out_printf(struct out *o, const char *fmt, ...) FERRY_PRINTF(2, 3);
static void out_printf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    if (o->oom) {
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(o->p ? o->p + o->len : NULL, o->p ? o->cap - o->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if (o->p && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + (size_t)n + 1) {
            cap *= 2;
        }
        char *grown = realloc(o->p, cap);
        if (!grown) {
            o->oom = true;
            return;
        }
        o->p = grown;
        o->cap = cap;
    }
}

static void fmt_value(char *buf, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(buf, n, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, n, "%lld", (long long)v);
    } else {
        snprintf(buf, n, "%.9g", v);
    }
}

static int compare_series(const void *a, const void *b)
{
    const struct series *x = *(const struct series *const *)a;
    const struct series *y = *(const struct series *const *)b;
    return strcmp(x->labels, y->labels);
}

static const char *type_name(int type)
{
    switch (type) {
    case FERRY_METRIC_COUNTER:
        return "counter";
    case FERRY_METRIC_GAUGE:
        return "gauge";
    default:
        return "histogram";
    }
}

static void render_family(struct out *o, const struct family *f)
{
    char num[64];
    out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, type_name(f->type));
    if (f->n == 0) {
        return;
    }
    const struct series **sorted = malloc(f->n * sizeof(*sorted));
    if (!sorted) {
        o->oom = true;
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        sorted[i] = &f->series[i];
    }
    qsort(sorted, f->n, sizeof(*sorted), compare_series);
    for (size_t i = 0; i < f->n; i++) {
        const struct series *s = sorted[i];
        const char *sep = s->labels[0] ? "," : "";
        if (f->type != FERRY_METRIC_HISTOGRAM) {
            fmt_value(num, sizeof(num), s->value);
            if (s->labels[0]) {
                out_printf(o, "%s{%s} %s\n", f->name, s->labels, num);
            } else {
                out_printf(o, "%s %s\n", f->name, num);
            }
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; b <= f->nbounds; b++) {
            char le[64];
            cum += s->per_bucket[b];
            if (b < f->nbounds) {
                fmt_value(le, sizeof(le), f->bounds[b]);
            } else {
                snprintf(le, sizeof(le), "+Inf");
            }
            out_printf(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, s->labels, sep, le,
                       (unsigned long long)cum);
        }
        fmt_value(num, sizeof(num), s->value);
        if (s->labels[0]) {
            out_printf(o, "%s_sum{%s} %s\n%s_count{%s} %llu\n", f->name, s->labels, num, f->name,
                       s->labels, (unsigned long long)s->count);
        } else {
            out_printf(o, "%s_sum %s\n%s_count %llu\n", f->name, num, f->name,
                       (unsigned long long)s->count);
        }
    }
    free(sorted);
}

char *ferry_metrics_render(struct ferry_metrics *m)
{
    struct out o = {0};
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++) {
        render_family(&o, &m->fams[i]);
    }
    pthread_mutex_unlock(&m->mu);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p ? o.p : strdup("");
}

/* ---- the engine's families ---- */

static const double latency_buckets[] = {0.05, 0.1, 0.25, 0.5, 1,   2.5, 5,
                                         10,   30,  60,   300, 900, 3600};
static const double http_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

#define NBUCKETS(a) (sizeof(a) / sizeof((a)[0]))

static const struct family_def {
    const char *name;
    int type;
    const char *help;
    const double *buckets;
    size_t nbuckets;
} engine_families[] = {
    {"ferry_build_info", FERRY_METRIC_GAUGE, "Always 1; the version label says which ferry runs.",
     NULL, 0},
    {"ferry_start_time_seconds", FERRY_METRIC_GAUGE, "When the daemon started (Unix time).", NULL,
     0},
    {"ferry_ready", FERRY_METRIC_GAUGE, "1 when /readyz would answer 200.", NULL, 0},
    {"ferry_jobs", FERRY_METRIC_GAUGE, "Jobs in the state database by state.", NULL, 0},
    {"ferry_queue_depth", FERRY_METRIC_GAUGE, "Pending jobs by priority lane.", NULL, 0},
    {"ferry_oldest_pending_age_seconds", FERRY_METRIC_GAUGE,
     "Age of the oldest pending job (0 when none).", NULL, 0},
    {"ferry_dead_letters_open", FERRY_METRIC_GAUGE,
     "Dead letters not superseded, retried or dropped.", NULL, 0},
    {"ferry_webhooks_received_total", FERRY_METRIC_COUNTER,
     "Webhook deliveries acknowledged (committed, answered 200).", NULL, 0},
    {"ferry_webhook_events_total", FERRY_METRIC_COUNTER,
     "Events in acknowledged webhooks: queued as jobs, or recognised as duplicates.", NULL, 0},
    {"ferry_webhook_silence_seconds", FERRY_METRIC_GAUGE,
     "Seconds since the last delivery per connector and webhook scope.", NULL, 0},
    {"ferry_webhook_missed_total", FERRY_METRIC_COUNTER,
     "Changes a delta poll found that no webhook announced.", NULL, 0},
    {"ferry_http_requests_total", FERRY_METRIC_COUNTER,
     "HTTP calls connectors made, by status class (error: no response).", NULL, 0},
    {"ferry_http_throttled_total", FERRY_METRIC_COUNTER, "HTTP 429 answers per connector.", NULL,
     0},
    {"ferry_http_request_duration_seconds", FERRY_METRIC_HISTOGRAM,
     "Duration of connectors' HTTP calls.", http_buckets, NBUCKETS(http_buckets)},
    {"ferry_jobs_processed_total", FERRY_METRIC_COUNTER,
     "Job runs by source connector, object and outcome (done, retry, dead).", NULL, 0},
    {"ferry_job_latency_seconds", FERRY_METRIC_HISTOGRAM,
     "Arrival to final outcome (done or dead) per source connector and object.", latency_buckets,
     NBUCKETS(latency_buckets)},
    {"ferry_job_retries_total", FERRY_METRIC_COUNTER, "Job runs that ended in a retry.", NULL, 0},
    {"ferry_dead_letters_total", FERRY_METRIC_COUNTER, "Jobs dead-lettered since the start.", NULL,
     0},
    {"ferry_poll_records_total", FERRY_METRIC_COUNTER, "Records listed by delta polls.", NULL, 0},
    {"ferry_polls_total", FERRY_METRIC_COUNTER, "Delta polls by result (ok, failed).", NULL, 0},
    {"ferry_poll_last_success_timestamp_seconds", FERRY_METRIC_GAUGE,
     "When a delta poll of the object last completed (Unix time).", NULL, 0},
    {"ferry_poll_lag_seconds", FERRY_METRIC_GAUGE,
     "Now minus the object's delta cursor (newest change seen); grows while the source is quiet.",
     NULL, 0},
    {"ferry_quota_remaining", FERRY_METRIC_GAUGE,
     "Requests left in the connector's current quota window, as the remote last said.", NULL, 0},
    {"ferry_quota_limit", FERRY_METRIC_GAUGE, "Requests per quota window, as the remote said.",
     NULL, 0},
    {"ferry_quota_reset_seconds", FERRY_METRIC_GAUGE,
     "Seconds until the quota window resets, as the remote last said.", NULL, 0},
    {"ferry_echo_suppressed_total", FERRY_METRIC_COUNTER,
     "Writes skipped because they would echo back what the target sent.", NULL, 0},
    {"ferry_conflicts_total", FERRY_METRIC_COUNTER,
     "Records changed on both sides, resolved by system-of-record rules.", NULL, 0},
};

static struct ferry_metrics *g_metrics;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void declare_engine(struct ferry_metrics *m)
{
    for (size_t i = 0; i < NBUCKETS(engine_families); i++) {
        const struct family_def *d = &engine_families[i];
        /* Only an allocation failure: the family's updates are then dropped. */
        if (ferry_metrics_declare(m, d->name, d->type, d->help, d->buckets, d->nbuckets) < 0) {
            continue;
        }
    }
    ferry_metrics_set(m, "ferry_build_info", 1, "version", FERRY_VERSION, NULL);
}

static void global_init(void)
{
    if (ferry_metrics_new(&g_metrics) == 0) {
        declare_engine(g_metrics);
    }
}

struct ferry_metrics *ferry_metrics_global(void)
{
    pthread_once(&g_once, global_init);
    return g_metrics;
}

void ferry_metrics_global_reset(void)
{
    struct ferry_metrics *m = ferry_metrics_global();
    if (!m) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++) {
        family_clear(&m->fams[i]);
    }
    calls_clear(m);
    pthread_mutex_unlock(&m->mu);
    ferry_metrics_set(m, "ferry_build_info", 1, "version", FERRY_VERSION, NULL);
}

void ferry_metrics_connector_init(const char *connector)
{
    struct ferry_metrics *m = ferry_metrics_global();
    ferry_metrics_add(m, "ferry_http_throttled_total", 0, "connector", connector, NULL);
    ferry_metrics_add(m, "ferry_echo_suppressed_total", 0, "connector", connector, NULL);
    ferry_metrics_add(m, "ferry_conflicts_total", 0, "connector", connector, NULL);
}

static void note_call(struct ferry_metrics *m, const char *connector, int status, int rc)
{
    pthread_mutex_lock(&m->mu);
    struct last_call *lc = NULL;
    for (size_t i = 0; i < m->ncalls; i++) {
        if (strcmp(m->calls[i].connector, connector) == 0) {
            lc = &m->calls[i];
        }
    }
    if (!lc) {
        struct last_call *grown = realloc(m->calls, (m->ncalls + 1) * sizeof(*grown));
        char *name = strdup(connector);
        if (!grown || !name) {
            free(name);
            if (grown) {
                m->calls = grown;
            }
            pthread_mutex_unlock(&m->mu);
            return;
        }
        m->calls = grown;
        lc = &m->calls[m->ncalls++];
        memset(lc, 0, sizeof(*lc));
        lc->connector = name;
    }
    lc->st.calls++;
    lc->st.at_ms = ferry_now_ms();
    lc->st.status = status;
    /* What readiness calls failing: the remote is unreachable or broken, or
     * refuses our credentials. A 404, a validation error or a 429 is the
     * remote working as designed. */
    lc->st.failing = (status == 0 && rc < 0) || status >= 500 || status == 401 || status == 403;
    if (status == 0) {
        snprintf(lc->st.detail, sizeof(lc->st.detail), "no response (%s)", ferry_strerror(rc));
    } else {
        snprintf(lc->st.detail, sizeof(lc->st.detail), "HTTP %d", status);
    }
    pthread_mutex_unlock(&m->mu);
}

bool ferry_metrics_last_call(const char *connector, struct ferry_metrics_call_state *out)
{
    struct ferry_metrics *m = ferry_metrics_global();
    bool found = false;
    if (!m) {
        return false;
    }
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->ncalls; i++) {
        if (strcmp(m->calls[i].connector, connector) == 0) {
            *out = m->calls[i].st;
            found = true;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return found;
}

void ferry_metrics_http_call(const char *connector, int status, int rc, int64_t duration_ms)
{
    struct ferry_metrics *m = ferry_metrics_global();
    char cls[8];
    if (!m || !connector) {
        return;
    }
    if (status >= 100 && status <= 599) {
        snprintf(cls, sizeof(cls), "%dxx", status / 100);
    } else {
        snprintf(cls, sizeof(cls), "error");
    }
    ferry_metrics_add(m, "ferry_http_requests_total", 1, "connector", connector, "class", cls,
                      NULL);
    if (status == 429) {
        ferry_metrics_add(m, "ferry_http_throttled_total", 1, "connector", connector, NULL);
    }
    ferry_metrics_observe(m, "ferry_http_request_duration_seconds", (double)duration_ms / 1000.0,
                          "connector", connector, NULL);
    note_call(m, connector, status, rc);
}

/* "<connector>:<object>:<id>" -> connector, object; false when not in that shape. */
static bool split_job_key(const char *key, char *conn, size_t cn, char *obj, size_t on)
{
    const char *a = key ? strchr(key, ':') : NULL;
    const char *b = a ? strchr(a + 1, ':') : NULL;
    if (!a || !b || (size_t)(a - key) >= cn || (size_t)(b - a - 1) >= on) {
        return false;
    }
    memcpy(conn, key, (size_t)(a - key));
    conn[a - key] = '\0';
    memcpy(obj, a + 1, (size_t)(b - a - 1));
    obj[b - a - 1] = '\0';
    return true;
}

void ferry_metrics_job_outcome(const char *job_key, int kind, int64_t created_at_ms, int64_t now_ms)
{
    static const char *const outcomes[] = {"done", "retry", "dead"};
    struct ferry_metrics *m = ferry_metrics_global();
    char conn[128], obj[128];
    if (!m || kind < 0 || kind > 2 ||
        !split_job_key(job_key, conn, sizeof(conn), obj, sizeof(obj))) {
        return;
    }
    ferry_metrics_add(m, "ferry_jobs_processed_total", 1, "connector", conn, "object", obj,
                      "outcome", outcomes[kind], NULL);
    if (kind == 1) {
        ferry_metrics_add(m, "ferry_job_retries_total", 1, "connector", conn, "object", obj, NULL);
        return;
    }
    if (kind == 2) {
        ferry_metrics_add(m, "ferry_dead_letters_total", 1, "connector", conn, "object", obj, NULL);
    }
    double secs = now_ms > created_at_ms ? (double)(now_ms - created_at_ms) / 1000.0 : 0.0;
    ferry_metrics_observe(m, "ferry_job_latency_seconds", secs, "connector", conn, "object", obj,
                          NULL);
}

void ferry_metrics_webhook(const char *connector, int64_t queued, int64_t duplicates)
{
    struct ferry_metrics *m = ferry_metrics_global();
    ferry_metrics_add(m, "ferry_webhooks_received_total", 1, "connector", connector, NULL);
    ferry_metrics_add(m, "ferry_webhook_events_total", (double)queued, "connector", connector,
                      "result", "queued", NULL);
    ferry_metrics_add(m, "ferry_webhook_events_total", (double)duplicates, "connector", connector,
                      "result", "duplicate", NULL);
}

void ferry_metrics_poll_page(const char *connector, const char *object, const json_t *page)
{
    size_t records = json_array_size(json_object_get(page, "items"));
    ferry_metrics_add(ferry_metrics_global(), "ferry_poll_records_total", (double)records,
                      "connector", connector, "object", object, NULL);
}

void ferry_metrics_poll_done(const char *connector, const char *object, int rc)
{
    struct ferry_metrics *m = ferry_metrics_global();
    ferry_metrics_add(m, "ferry_polls_total", 1, "connector", connector, "object", object, "result",
                      rc == 0 ? "ok" : "failed", NULL);
    if (rc == 0) {
        ferry_metrics_set(m, "ferry_poll_last_success_timestamp_seconds",
                          (double)(ferry_now_ms() / 1000), "connector", connector, "object", object,
                          NULL);
    }
}

void ferry_metrics_quota(const char *connector, int64_t remaining, int64_t limit, int64_t reset_ms)
{
    struct ferry_metrics *m = ferry_metrics_global();
    if (remaining >= 0) {
        ferry_metrics_set(m, "ferry_quota_remaining", (double)remaining, "connector", connector,
                          NULL);
    }
    if (limit >= 0) {
        ferry_metrics_set(m, "ferry_quota_limit", (double)limit, "connector", connector, NULL);
    }
    if (reset_ms >= 0) {
        ferry_metrics_set(m, "ferry_quota_reset_seconds", (double)reset_ms / 1000.0, "connector",
                          connector, NULL);
    }
}

void ferry_metrics_echo_suppressed(const char *connector)
{
    ferry_metrics_add(ferry_metrics_global(), "ferry_echo_suppressed_total", 1, "connector",
                      connector, NULL);
}

void ferry_metrics_conflict(const char *connector)
{
    ferry_metrics_add(ferry_metrics_global(), "ferry_conflicts_total", 1, "connector", connector,
                      NULL);
}
