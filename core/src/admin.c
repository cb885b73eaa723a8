/* SPDX-License-Identifier: MIT */
/*
 * The admin listener (see admin.h): a ferry_listener with GET routes and no
 * webhooks, and a one-at-a-time threadpool task that reads the state
 * database for /readyz and /metrics. Requests that arrive while a task runs
 * wait in a short queue; each is answered with the result of its own task,
 * so a reply never describes an older moment than its request.
 */
#include "admin.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* More waiting scrapes than this means something scrapes in a loop: refuse. */
#define QUEUE_MAX 32

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum admin_kind {
    KIND_METRICS = 1,
    KIND_READYZ = 2,
};

struct waiting {
    struct ferry_deferred *d;
    int kind;
};

struct ferry_admin {
    uv_loop_t *loop;
    struct ferry_listener *l;
    struct ferry_store *store; /* used by the task only, one task at a time */
    struct ferry_runtime *rt;
    uv_work_t work;
    bool busy; /* queue[0] is being answered by a task */
    struct waiting queue[QUEUE_MAX];
    size_t nqueue;
    atomic_bool draining;
    bool stopping;
    bool listener_closed;
    /* The running task: what it answers (copied before it is queued, so that
     * the task never reads the queue the loop thread appends to), and its answer. */
    int kind;
    int status;
    char *body;
    size_t len;
    const char *content_type;
    void (*done)(void *ud);
    void *done_ud;
};

/* ---- what is served ---- */

static json_t *check(bool ok, const char *detail)
{
    return json_pack("{s:b, s:s}", "ok", ok, "detail", detail ? detail : "");
}

int ferry_admin_readiness(struct ferry_store *s, const struct ferry_runtime *rt, bool draining,
                          json_t **doc, bool *ready, struct ferry_err *err)
{
    json_t *checks = json_object(), *conns = json_object();
    char line[160];
    bool all = true;
    *doc = NULL;
    *ready = false;
    if (!checks || !conns) {
        json_decref(checks);
        json_decref(conns);
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }

    int version = s ? ferry_store_schema_version(s) : -1;
    snprintf(line, sizeof(line), version >= 0 ? "schema version %d" : "cannot read the database",
             version);
    json_object_set_new(checks, "database", check(version >= 0, line));
    all = all && version >= 0;

    if (rt) {
        size_t want = rt->cfg ? rt->cfg->nconnectors : rt->ninstances;
        bool ok = rt->ninstances == want && want > 0;
        snprintf(line, sizeof(line), "%zu of %zu connector(s) loaded", rt->ninstances, want);
        json_object_set_new(checks, "plugins", check(ok, line));
        all = all && ok;
        /* A runtime with workers compiled every enabled mapping and checked
         * them against the targets; a failed SIGHUP keeps that set running. */
        ok = rt->nworkers > 0;
        snprintf(line, sizeof(line), "%zu mapping(s) compiled and checked, generation %llu",
                 rt->nmapping_paths, (unsigned long long)atomic_load(&rt->mapping_gen));
        json_object_set_new(checks, "mappings", check(ok, ok ? line : "no worker has mappings"));
        all = all && ok;
        bool conn_ok = true;
        for (size_t i = 0; i < rt->ninstances; i++) {
            struct ferry_metrics_call_state st;
            json_t *c;
            if (ferry_metrics_last_call(rt->instances[i].name, &st)) {
                c = json_pack("{s:b, s:s, s:I, s:i, s:I}", "ok", !st.failing, "detail", st.detail,
                              "calls", (json_int_t)st.calls, "last_status", st.status, "last_at",
                              (json_int_t)st.at_ms);
                conn_ok = conn_ok && !st.failing;
            } else {
                c = check(true, "no call yet");
            }
            json_object_set_new(conns, rt->instances[i].name, c);
        }
        json_t *cc = check(conn_ok, conn_ok ? "every connector's last call succeeded"
                                            : "a connector's last call failed");
        json_object_set(cc, "connectors", conns);
        json_object_set_new(checks, "connectors", cc);
        all = all && conn_ok;
    }
    json_object_set_new(checks, "draining",
                        check(!draining, draining ? "stopping: finishing running jobs" : "no"));
    all = all && !draining;
    json_decref(conns);
    *doc = json_pack("{s:b, s:o}", "ready", all, "checks", checks);
    if (!*doc) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    *ready = all;
    return 0;
}

/* "webhook_missed_total:<connector>:<object>" counters become a labelled family. */
static void set_missed(struct ferry_metrics *m, json_t *counters)
{
    static const char prefix[] = "webhook_missed_total:";
    const char *name;
    json_t *v;
    ferry_metrics_clear(m, "ferry_webhook_missed_total");
    json_object_foreach(counters, name, v)
    {
        if (strncmp(name, prefix, sizeof(prefix) - 1) != 0) {
            continue;
        }
        const char *conn = name + sizeof(prefix) - 1;
        const char *colon = strchr(conn, ':');
        char cbuf[128];
        if (!colon || (size_t)(colon - conn) >= sizeof(cbuf)) {
            continue;
        }
        memcpy(cbuf, conn, (size_t)(colon - conn));
        cbuf[colon - conn] = '\0';
        ferry_metrics_set(m, "ferry_webhook_missed_total", (double)json_integer_value(v),
                          "connector", cbuf, "object", colon + 1, NULL);
    }
}

int ferry_admin_metrics_text(struct ferry_store *s, const struct ferry_runtime *rt, int64_t now_ms,
                             char **text, struct ferry_err *err)
{
    static const char *const lanes[] = {"realtime", "retry", "backfill"};
    struct ferry_metrics *m = ferry_metrics_global();
    int64_t counts[FERRY_JOB_NSTATES];
    json_t *snap = NULL, *seen = NULL, *counters = NULL;
    size_t i;
    json_t *row;
    int rc;
    (void)rt;
    *text = NULL;
    if (!m) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    rc = ferry_store_job_counts(s, counts, err);
    if (rc == 0) {
        rc = ferry_store_ops_snapshot(s, &snap, err);
    }
    if (rc == 0) {
        rc = ferry_store_webhooks_seen(s, &seen, err);
    }
    if (rc == 0) {
        rc = ferry_store_counters(s, &counters, err);
    }
    if (rc < 0) {
        goto cleanup;
    }
    for (int st = 0; st < FERRY_JOB_NSTATES; st++) {
        ferry_metrics_set(m, "ferry_jobs", (double)counts[st], "state", ferry_job_state_name(st),
                          NULL);
    }
    json_t *l = json_object_get(snap, "lanes");
    for (int k = 0; k < 3; k++) {
        ferry_metrics_set(m, "ferry_queue_depth",
                          (double)json_integer_value(json_object_get(l, lanes[k])), "lane",
                          lanes[k], NULL);
    }
    json_t *oldest = json_object_get(snap, "oldest_pending_at");
    double age = oldest ? (double)(now_ms - json_integer_value(oldest)) / 1000.0 : 0.0;
    ferry_metrics_set(m, "ferry_oldest_pending_age_seconds", age > 0 ? age : 0, NULL);
    ferry_metrics_set(m, "ferry_dead_letters_open",
                      (double)json_integer_value(json_object_get(snap, "dead_open")), NULL);
    ferry_metrics_clear(m, "ferry_poll_lag_seconds");
    json_array_foreach(json_object_get(snap, "cursors"), i, row)
    {
        int64_t at;
        const char *value = json_string_value(json_object_get(row, "value"));
        if (value && ferry_iso8601_parse(value, &at) == 0) {
            /* A source clock ahead of ours reads as no lag, not a negative one. */
            ferry_metrics_set(m, "ferry_poll_lag_seconds",
                              now_ms > at ? (double)(now_ms - at) / 1000.0 : 0.0, "connector",
                              json_string_value(json_object_get(row, "system")), "object",
                              json_string_value(json_object_get(row, "object")), NULL);
        }
    }
    ferry_metrics_clear(m, "ferry_webhook_silence_seconds");
    json_array_foreach(seen, i, row)
    {
        int64_t last = json_integer_value(json_object_get(row, "last_at"));
        ferry_metrics_set(m, "ferry_webhook_silence_seconds", (double)(now_ms - last) / 1000.0,
                          "connector", json_string_value(json_object_get(row, "instance")), "scope",
                          json_string_value(json_object_get(row, "scope")), NULL);
    }
    set_missed(m, counters);
    *text = ferry_metrics_render(m);
    if (!*text) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
cleanup:
    json_decref(snap);
    json_decref(seen);
    json_decref(counters);
    return rc;
}

/* ---- the task ---- */

static void on_work(uv_work_t *req)
{
    struct ferry_admin *a = req->data;
    struct ferry_err err = {0};
    json_t *doc = NULL;
    bool ready = false;
    int kind = a->kind;
    bool draining = atomic_load(&a->draining);

    a->body = NULL;
    a->len = 0;
    int rc = ferry_admin_readiness(a->store, a->rt, draining, &doc, &ready, &err);
    if (rc == 0) {
        ferry_metrics_set(ferry_metrics_global(), "ferry_ready", ready ? 1 : 0, NULL);
    }
    if (kind == KIND_READYZ) {
        a->content_type = "application/json";
        a->status = rc < 0 ? 503 : (ready ? 200 : 503);
        a->body = rc < 0 ? NULL : json_dumps(doc, JSON_COMPACT);
        if (!a->body) {
            char msg[300];
            snprintf(msg, sizeof(msg), "{\"ready\":false,\"error\":\"%s\"}",
                     rc < 0 ? "readiness not evaluated" : "out of memory");
            a->body = strdup(msg);
        }
    } else {
        a->content_type = METRICS_CONTENT_TYPE;
        rc = ferry_admin_metrics_text(a->store, a->rt, ferry_now_ms(), &a->body, &err);
        a->status = rc < 0 ? 503 : 200;
        if (rc < 0) {
            char msg[320];
            snprintf(msg, sizeof(msg), "# metrics not collected: %s\n", err.msg);
            free(a->body);
            a->body = strdup(msg);
        }
    }
    a->len = a->body ? strlen(a->body) : 0;
    json_decref(doc);
}

static void maybe_free(struct ferry_admin *a);
static void start_task(struct ferry_admin *a);

static void on_after_work(uv_work_t *req, int status)
{
    struct ferry_admin *a = req->data;
    (void)status; /* never cancelled */
    a->busy = false;
    ferry_listener_complete_text(a->queue[0].d, a->status, a->content_type, a->body, a->len);
    a->body = NULL;
    memmove(&a->queue[0], &a->queue[1], (a->nqueue - 1) * sizeof(a->queue[0]));
    a->nqueue--;
    if (a->stopping) {
        maybe_free(a);
        return;
    }
    if (a->nqueue > 0) {
        start_task(a);
    }
}

static void start_task(struct ferry_admin *a)
{
    a->busy = true;
    a->kind = a->queue[0].kind;
    a->work.data = a;
    int rc = uv_queue_work(a->loop, &a->work, on_work, on_after_work);
    if (rc < 0) {
        a->busy = false;
        char *msg = strdup("{\"error\":\"unavailable\",\"message\":\"cannot queue the task\"}");
        ferry_listener_complete_text(a->queue[0].d, 503, "application/json", msg,
                                     msg ? strlen(msg) : 0);
        memmove(&a->queue[0], &a->queue[1], (a->nqueue - 1) * sizeof(a->queue[0]));
        a->nqueue--;
    }
}

static char *dup_text(const char *s, size_t *len)
{
    char *p = strdup(s);
    *len = p ? strlen(p) : 0;
    return p;
}

static void on_get(void *ud, const char *path, struct ferry_get_reply *reply)
{
    struct ferry_admin *a = ud;
    int kind;
    if (strcmp(path, "/metrics") == 0) {
        kind = KIND_METRICS;
    } else if (strcmp(path, "/readyz") == 0) {
        kind = KIND_READYZ;
    } else if (strcmp(path, "/") == 0) {
        reply->body =
            dup_text("{\"endpoints\":[\"/healthz\",\"/readyz\",\"/metrics\"]}", &reply->len);
        return;
    } else {
        reply->status = 404;
        return;
    }
    if (a->stopping || a->nqueue >= QUEUE_MAX) {
        reply->status = 503;
        reply->body = dup_text(a->stopping ? "{\"error\":\"stopping\"}" : "{\"error\":\"busy\"}",
                               &reply->len);
        return;
    }
    struct ferry_deferred *d = ferry_listener_defer_get(reply);
    if (!d) {
        reply->status = 503;
        reply->body = dup_text("{\"error\":\"out of memory\"}", &reply->len);
        return;
    }
    a->queue[a->nqueue++] = (struct waiting){.d = d, .kind = kind};
    if (!a->busy) {
        start_task(a);
    }
}

/* ---- lifecycle ---- */

int ferry_admin_start(struct ferry_admin **out, uv_loop_t *loop,
                      const struct ferry_admin_options *opt, struct ferry_err *err)
{
    struct ferry_admin *a = calloc(1, sizeof(*a));
    int rc;
    if (!a) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    a->loop = loop;
    a->rt = opt->rt;
    atomic_init(&a->draining, false);
    rc = ferry_store_open(&a->store, opt->state_path, err);
    if (rc < 0) {
        free(a);
        return rc;
    }
    struct ferry_listener_options lo = {
        .address = opt->address,
        .port = opt->port,
        .max_body = 1024,
        .get = on_get,
        .get_ud = a,
        .name = "admin listener",
    };
    rc = ferry_listener_start(&a->l, loop, &lo, NULL, NULL, err);
    if (rc < 0) {
        ferry_store_close(a->store);
        free(a);
        return rc;
    }
    if (opt->rt) {
        for (size_t i = 0; i < opt->rt->ninstances; i++) {
            ferry_metrics_connector_init(opt->rt->instances[i].name);
        }
    }
    ferry_metrics_set(ferry_metrics_global(), "ferry_start_time_seconds",
                      (double)(ferry_now_ms() / 1000), NULL);
    *out = a;
    return 0;
}

int ferry_admin_port(const struct ferry_admin *a)
{
    return a ? ferry_listener_port(a->l) : -1;
}

void ferry_admin_set_draining(struct ferry_admin *a)
{
    if (a) {
        atomic_store(&a->draining, true);
    }
}

static void maybe_free(struct ferry_admin *a)
{
    if (!a->listener_closed || a->busy) {
        return;
    }
    void (*done)(void *) = a->done;
    void *done_ud = a->done_ud;
    ferry_store_close(a->store);
    free(a);
    if (done) {
        done(done_ud);
    }
}

static void on_listener_stopped(void *ud)
{
    struct ferry_admin *a = ud;
    a->listener_closed = true;
    maybe_free(a);
}

void ferry_admin_stop(struct ferry_admin *a, void (*done)(void *ud), void *ud)
{
    if (!a || a->stopping) {
        return;
    }
    a->stopping = true;
    a->done = done;
    a->done_ud = ud;
    /* Everything that waits behind the running task is answered now, so that
     * its connection can close and the listener can finish stopping. */
    size_t keep = a->busy ? 1 : 0;
    for (size_t i = keep; i < a->nqueue; i++) {
        char *msg = strdup("{\"error\":\"stopping\"}");
        ferry_listener_complete_text(a->queue[i].d, 503, "application/json", msg,
                                     msg ? strlen(msg) : 0);
    }
    a->nqueue = keep;
    struct ferry_listener *l = a->l;
    a->l = NULL;
    ferry_listener_stop(l, on_listener_stopped, a);
}
