/* SPDX-License-Identifier: MIT */
/*
 * `ferry run` (the daemon) and `ferry sync --once` (poll, drain, exit). Both
 * build the same runtime and scheduler on a libuv loop; the daemon adds the
 * webhook listener, the admin listener, timed polls, retention pruning and
 * signal handling for reload and drain; `ferry sync` adds a progress display.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <uv.h>

#include "admin.h"
#include "cli.h"
#include "config.h"
#include "http.h"
#include "intake.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "redact.h"
#include "runtime.h"
#include "scheduler.h"
#include "store.h"
#include "util.h"

/* A pruning step that removed a full batch is followed this soon by the next. */
#define RETENTION_CATCHUP_MS 200

/*
 * Retention: one bounded step at a time on the threadpool, with its own
 * connection, so the loop never waits and intake waits at most for one
 * short statement.
 */
struct retention {
    uv_timer_t timer;
    bool timer_open;
    uv_work_t work;
    bool busy;
    struct ferry_store *store;
    const struct ferry_config *cfg;
    int64_t step_audit, step_jobs;   /* rows changed by the last step */
    int64_t round_audit, round_jobs; /* since the last report */
    int64_t total_audit, total_jobs;
    int rc;
    struct ferry_err err;
};

/* Progress of one polled object during `ferry sync`. */
struct progress_item {
    char *system;
    char *object;
    double rate;           /* jobs per second, smoothed */
    double last_processed; /* at the previous tick */
    int64_t last_ms;
};

struct progress {
    uv_timer_t timer;
    bool timer_open;
    bool tty;
    int64_t interval_ms;
    int64_t started_ms;
    struct progress_item *items;
    size_t n;
    int lines_drawn;   /* lines of the last drawing, to redraw in place */
    uint64_t log_mark; /* log lines written when we last drew */
};

struct daemon {
    uv_loop_t loop;
    struct ferry_config *cfg;
    struct ferry_runtime *rt;
    struct ferry_store *store; /* the loop thread's connection: intake and scheduling */
    struct ferry_scheduler *sched;
    struct ferry_listener *listener;
    struct ferry_intake *intake;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t poll_timer;
    bool poll_timer_open;
    uv_timer_t silence_timer;
    bool silence_timer_open;
    json_t *silent; /* "instance scope" -> true while reported silent */
    bool once;      /* sync --once: exit when idle */
    bool stopping;
    int exit_status;
    int64_t started_ms;
    size_t listener_open;
    struct ferry_admin *admin;
    struct retention ret;
    struct progress prog;
    /* mappings.watch: one inotify watch per directory (they are not
     * recursive), and a timer that turns a burst of events into one reload. */
    uv_fs_event_t *watches;
    size_t nwatches;
    uv_timer_t reload_timer;
    bool reload_timer_open;
};

/* ---- intake ---- */

static json_t *error_body(const char *code, const char *message)
{
    return json_pack("{s:s, s:s}", "error", code, "message", message);
}

/*
 * Every acknowledged webhook is answered here, so the body is formatted
 * directly: the error texts are intake's constants and need no escaping.
 */
static void on_intake_reply(void *ctx, const struct ferry_intake_reply *r)
{
    char body[256];
    int n;
    if (r->status == 200) {
        n = snprintf(body, sizeof(body),
                     "{\"status\":\"accepted\",\"queued\":%d,\"duplicates\":%d}", r->queued,
                     r->duplicates);
    } else {
        n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}",
                     r->error ? r->error : "unavailable", r->message ? r->message : "");
    }
    if (n < 0 || (size_t)n >= sizeof(body)) {
        n = 0;
    }
    ferry_listener_complete_json_text(ctx, r->status, n > 0 ? body : NULL, (size_t)n);
}

static void on_intake_committed(void *ud, int64_t queued)
{
    struct daemon *d = ud;
    (void)queued;
    ferry_scheduler_kick(d->sched);
}

/* The keys and payload of one decoded event, until intake has copied them. */
struct webhook_job {
    char dkey[512];
    char jkey[512];
    char corr[33];
    char group[256];
    char *payload;
};

/* A webhook usually carries one event: up to this many need no allocation. */
#define WEBHOOK_JOBS_LOCAL 4

/* Bytes s takes as the body of a JSON string; SIZE_MAX when not plain ASCII. */
static size_t json_ascii_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x80) {
            return SIZE_MAX;
        }
        if (*p == '"' || *p == '\\' || *p == '\b' || *p == '\f' || *p == '\n' || *p == '\r' ||
            *p == '\t') {
            n += 2;
        } else if (*p < 0x20) {
            n += 6;
        } else {
            n++;
        }
    }
    return n;
}

/* Appends ,"key":"s" (no comma when first) as json_dumps escapes it; s is ASCII. */
static char *put_member(char *o, bool first, const char *key, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!first) {
        *o++ = ',';
    }
    *o++ = '"';
    for (; *key; key++) {
        *o++ = *key;
    }
    *o++ = '"';
    *o++ = ':';
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = NULL;
        switch (*p) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            break;
        }
        if (esc) {
            *o++ = esc[0];
            *o++ = esc[1];
        } else if (*p < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[*p >> 4];
            o[5] = hex[*p & 0xf];
            o += 6;
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    return o;
}

/*
 * The job's payload text, {"source", "object", "id", "event", "scope",
 * ["group",] "event_data"} with null for an absent scope or data, what
 * json_dumps(JSON_COMPACT) makes of that object. Building the object only
 * to serialise it was a fifth of the loop thread's work per webhook, so
 * ASCII strings (ids, scopes, instance names) are written directly; anything
 * else goes through jansson, which also checks UTF-8. New string or NULL
 * (out of memory, invalid UTF-8).
 */
static char *job_payload_text(const char *instance, const char *object, const char *id,
                              const char *event, const char *scope, const char *group, json_t *data)
{
    static const char null_scope[] = ",\"scope\":null";
    static const char data_key[] = ",\"event_data\":";
    const char *names[] = {"source", "object", "id", "event", "scope"};
    const char *vals[] = {instance, object, id, event, scope};
    size_t nvals = scope ? 5 : 4;
    size_t bytes = sizeof(null_scope) + sizeof(data_key) + 2; /* braces, NUL */
    char *data_text = NULL, *out = NULL, *o;

    size_t group_len = group ? json_ascii_len(group) : 0;
    for (size_t i = 0; i < nvals || group_len == SIZE_MAX; i++) {
        size_t n = i < nvals ? json_ascii_len(vals[i]) : SIZE_MAX;
        if (n == SIZE_MAX) {
            json_t *payload =
                json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s*, s:O?}", "source", instance, "object",
                          object, "id", id, "event", event, "scope", scope, "group", group,
                          "event_data", json_is_object(data) ? data : NULL);
            out = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
            json_decref(payload);
            return out;
        }
        bytes += strlen(names[i]) + n + 6; /* ,"name":"value" */
    }
    data_text = json_is_object(data) ? json_dumps(data, JSON_COMPACT) : NULL;
    if (json_is_object(data) && !data_text) {
        return NULL;
    }
    bytes += data_text ? strlen(data_text) : 4;
    bytes += group ? group_len + 11 : 0; /* ,"group":"value" */
    out = malloc(bytes);
    if (out) {
        o = out;
        *o++ = '{';
        for (size_t i = 0; i < nvals; i++) {
            o = put_member(o, i == 0, names[i], vals[i]);
        }
        if (!scope) {
            memcpy(o, null_scope, sizeof(null_scope) - 1);
            o += sizeof(null_scope) - 1;
        }
        if (group) {
            o = put_member(o, false, "group", group);
        }
        memcpy(o, data_key, sizeof(data_key) - 1);
        o += sizeof(data_key) - 1;
        size_t n = data_text ? strlen(data_text) : 4;
        memcpy(o, data_text ? data_text : "null", n);
        o += n;
        *o++ = '}';
        *o = '\0';
    }
    free(data_text);
    return out;
}

/*
 * Verification and decoding happen here on the loop (no I/O); the events
 * become an intake item, and the sender is answered only once the item's
 * group commit is durable.
 */
static void on_webhook(void *ud, const char *instance, const struct ferry_webhook *wh,
                       struct ferry_webhook_reply *reply)
{
    struct daemon *d = ud;
    struct ferry_err err = {0};
    json_t *events = NULL;
    struct webhook_job *jobs = NULL;
    struct ferry_intake_job local_specs[WEBHOOK_JOBS_LOCAL];
    struct ferry_intake_job *specs = NULL;
    size_t njobs = 0; /* entries of jobs whose payload cleanup frees */
    const char *scope = NULL;
    int rc;

    if (d->stopping) {
        /* The sender retries; a 503 now is better than a job nobody will run. */
        reply->status = 503;
        reply->body = error_body("shutting_down", "ferry is stopping; deliver again later");
        return;
    }
    int idx = ferry_runtime_instance(d->rt, instance);
    if (idx < 0) {
        reply->status = 404;
        reply->body = error_body("unknown_connector", "no connector instance by that name");
        return;
    }
    struct ferry_instance *inst = &d->rt->instances[idx];
    if (!inst->conn->verify_webhook || !inst->conn->decode_webhook) {
        reply->status = 404;
        reply->body = error_body("no_webhooks", "this connector receives no webhooks");
        return;
    }
    struct ferry_call call;
    ferry_call_init(&call, d->rt, NULL, (size_t)idx, "intake", 0);

    rc = inst->conn->verify_webhook(inst->state, &call, wh, &err);
    if (rc < 0) {
        ferry_log_write(FERRY_LOG_WARN, inst->name, "webhook refused: %s", err.msg);
        reply->status = rc == FERRY_ESIGNATURE ? 401 : 400;
        reply->body = error_body(rc == FERRY_ESIGNATURE ? "unauthorized" : "bad_request",
                                 err.msg[0] ? err.msg : ferry_strerror(rc));
        return;
    }
    ferry_err_clear(&err);
    rc = inst->conn->decode_webhook(inst->state, &call, wh, &events, &err);
    if (rc < 0 || !json_is_array(events)) {
        json_decref(events);
        ferry_log_write(FERRY_LOG_WARN, inst->name, "webhook not decoded: %s", err.msg);
        reply->status = 400;
        reply->body = error_body("bad_request", err.msg[0] ? err.msg : "payload not understood");
        return;
    }
    if (json_array_size(events) == 0) {
        json_decref(events);
        reply->status = 200;
        reply->body = json_pack("{s:s}", "status", "ignored");
        return;
    }

    size_t nev = json_array_size(events);
    struct webhook_job local[WEBHOOK_JOBS_LOCAL];
    jobs = nev <= WEBHOOK_JOBS_LOCAL ? local : calloc(nev, sizeof(*jobs));
    specs = nev <= WEBHOOK_JOBS_LOCAL ? local_specs : calloc(nev, sizeof(*specs));
    if (!jobs || !specs) {
        reply->status = 503;
        reply->body = error_body("unavailable", "out of memory");
        goto cleanup;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        struct webhook_job *wj = &jobs[i];
        const char *object = json_string_value(json_object_get(ev, "object"));
        const char *id = json_string_value(json_object_get(ev, "id"));
        const char *event = json_string_value(json_object_get(ev, "event"));
        const char *dedupe = json_string_value(json_object_get(ev, "dedupe"));
        const char *sc = json_string_value(json_object_get(ev, "scope"));
        const char *grp = json_string_value(json_object_get(ev, "group"));
        json_t *data = json_object_get(ev, "data");
        wj->payload = NULL;
        njobs = i + 1;
        if (!object || !id || !event) {
            reply->status = 400;
            reply->body = error_body("bad_request", "connector decoded an incomplete event");
            goto cleanup;
        }
        scope = sc ? sc : scope;
        snprintf(wj->dkey, sizeof(wj->dkey), "%s:%s", instance, dedupe ? dedupe : "");
        snprintf(wj->jkey, sizeof(wj->jkey), "%s:%s:%s", instance, object, id);
        ferry_correlation_from(dedupe ? wj->dkey : wj->jkey, wj->corr);
        /* A group is the connector's; prefixed, two instances never share one. */
        if (grp) {
            snprintf(wj->group, sizeof(wj->group), "%s:%s", instance, grp);
        }
        wj->payload =
            job_payload_text(instance, object, id, event, sc, grp ? wj->group : NULL, data);
        if (!wj->payload) {
            reply->status = 503;
            reply->body = error_body("unavailable", "out of memory");
            goto cleanup;
        }
        specs[i] = (struct ferry_intake_job){
            .dedupe_key = dedupe ? wj->dkey : NULL,
            .job_key = wj->jkey,
            .kind = "sync",
            .payload = wj->payload,
            .correlation_id = wj->corr,
            .group = grp ? wj->group : NULL,
            .hold_ms = grp ? d->cfg->coalesce_window_ms : 0,
        };
        ferry_log_write(FERRY_LOG_DEBUG, instance, "webhook %s %s %s received", sc ? sc : event,
                        object, id);
    }
    struct ferry_deferred *later = ferry_listener_defer(reply);
    if (!later) {
        reply->status = 503;
        reply->body = error_body("unavailable", "out of memory");
        goto cleanup;
    }
    /* Intake copies the jobs and the scope (which points into `events`) before returning. */
    ferry_intake_submit(d->intake, specs, nev, instance, scope, ferry_now_ms(), on_intake_reply,
                        later);
cleanup:
    for (size_t k = 0; jobs && k < njobs; k++) {
        free(jobs[k].payload);
    }
    if (jobs != local) {
        free(jobs);
    }
    if (specs != local_specs) {
        free(specs);
    }
    json_decref(events);
}

/* ---- lifecycle ---- */

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void close_if_open(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void progress_finish(struct daemon *d);
static void watch_close(struct daemon *d);

static void on_admin_stopped(void *ud)
{
    (void)ud; /* the loop ends once every handle is closed; nothing else to do */
}

static void on_drained(void *ud)
{
    struct daemon *d = ud;
    if (d->admin) {
        /* Kept until now so that /metrics and /readyz answer during a drain. */
        ferry_admin_stop(d->admin, on_admin_stopped, d);
        d->admin = NULL;
    }
    if (d->ret.timer_open) {
        close_if_open((uv_handle_t *)&d->ret.timer);
    }
    progress_finish(d);
    close_if_open((uv_handle_t *)&d->sig_term);
    close_if_open((uv_handle_t *)&d->sig_int);
    close_if_open((uv_handle_t *)&d->sig_hup);
    watch_close(d);
    if (d->poll_timer_open) {
        close_if_open((uv_handle_t *)&d->poll_timer);
    }
    if (d->silence_timer_open) {
        close_if_open((uv_handle_t *)&d->silence_timer);
    }
    ferry_info("stopped: every running job has finished");
}

static void on_listener_closed(void *ud)
{
    struct daemon *d = ud;
    d->listener_open = 0;
}

static void begin_shutdown(struct daemon *d, const char *why)
{
    if (d->stopping) {
        return;
    }
    d->stopping = true;
    ferry_info("stopping (%s): intake closed, waiting for %zu running task(s)", why,
               ferry_scheduler_inflight(d->sched));
    if (d->listener) {
        ferry_listener_stop(d->listener, on_listener_closed, d);
        d->listener = NULL;
    }
    if (d->intake) {
        /* Webhooks already accepted are committed and answered before exit. */
        ferry_intake_stop(d->intake, NULL, NULL);
    }
    if (d->poll_timer_open) {
        uv_timer_stop(&d->poll_timer);
    }
    if (d->silence_timer_open) {
        uv_timer_stop(&d->silence_timer);
    }
    if (d->reload_timer_open) {
        uv_timer_stop(&d->reload_timer);
    }
    if (d->ret.timer_open) {
        uv_timer_stop(&d->ret.timer);
    }
    ferry_admin_set_draining(d->admin);
    ferry_scheduler_stop(d->sched, on_drained, d);
}

static void reload_mappings(struct daemon *d, const char *why)
{
    struct ferry_err err = {0};
    if (ferry_runtime_reload_mappings(d->rt, &err) == 0) {
        ferry_info("mappings reloaded (%s)", why);
    } else {
        ferry_error("mappings not reloaded (%s), keeping the previous set: %s", why, err.msg);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (signum == SIGHUP) {
        reload_mappings(d, "SIGHUP");
        return;
    }
    begin_shutdown(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- mapping file watch ---- */

/* Editors save in several steps (write a temporary, rename, chmod); waiting
 * this long after the last event reloads once, after the file is complete. */
#define RELOAD_SETTLE_MS 300

static void on_reload_timer(uv_timer_t *t)
{
    reload_mappings(t->data, "file change");
}

static void on_mapping_file(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct daemon *d = h->data;
    (void)events;
    if (status < 0) {
        ferry_warn("watching mappings: %s", uv_strerror(status));
        return;
    }
    /* Only scripts change what runs; swap files and fixtures do not. */
    size_t n = filename ? strlen(filename) : 0;
    if (filename && (n < 4 || strcmp(filename + n - 4, ".lua") != 0)) {
        return;
    }
    if (!d->stopping) {
        uv_timer_start(&d->reload_timer, on_reload_timer, RELOAD_SETTLE_MS, 0);
    }
}

static int watch_add(struct daemon *d, const char *dir)
{
    uv_fs_event_t *h = &d->watches[d->nwatches];
    int rc = uv_fs_event_init(&d->loop, h);
    if (rc == 0) {
        h->data = d;
        rc = uv_fs_event_start(h, on_mapping_file, dir, 0);
        if (rc < 0) {
            uv_close((uv_handle_t *)h, NULL);
        }
    }
    if (rc < 0) {
        /* SIGHUP still works; a missing watch is not worth refusing to start. */
        ferry_warn("not watching %s for changes: %s", dir, uv_strerror(rc));
        return 0;
    }
    d->nwatches++;
    return 0;
}

static int watch_mappings(struct daemon *d, struct ferry_err *err)
{
    const struct ferry_config *cfg = d->cfg;
    char dir[4096];
    d->watches = calloc(cfg->nmappings + 2, sizeof(*d->watches));
    if (!d->watches) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    uv_timer_init(&d->loop, &d->reload_timer);
    d->reload_timer.data = d;
    d->reload_timer_open = true;
    watch_add(d, cfg->lua_dir);
    for (size_t i = 0; i < cfg->nmappings; i++) {
        snprintf(dir, sizeof(dir), "%s/%s", cfg->mapping_dir, cfg->mappings[i]);
        watch_add(d, dir);
    }
    ferry_info("watching %zu mapping director%s for changes (mappings.watch)", d->nwatches,
               d->nwatches == 1 ? "y" : "ies");
    return 0;
}

static void watch_close(struct daemon *d)
{
    for (size_t i = 0; i < d->nwatches; i++) {
        close_if_open((uv_handle_t *)&d->watches[i]);
    }
    if (d->reload_timer_open) {
        close_if_open((uv_handle_t *)&d->reload_timer);
    }
}

static void on_idle(void *ud)
{
    struct daemon *d = ud;
    if (d->once) {
        begin_shutdown(d, "queue drained");
    }
}

/* ---- retention ---- */

static void on_retention_work(uv_work_t *req)
{
    struct retention *r = req->data;
    int64_t now = ferry_now_ms();
    size_t batch = (size_t)r->cfg->retention_batch;
    ferry_err_clear(&r->err);
    r->step_audit = r->step_jobs = 0;
    r->rc = 0;
    if (r->cfg->retention_audit_ms > 0) {
        r->rc = ferry_store_prune_audit(r->store, now - r->cfg->retention_audit_ms, batch,
                                        &r->step_audit, &r->err);
    }
    if (r->rc == 0 && r->cfg->retention_jobs_ms > 0) {
        r->rc = ferry_store_prune_job_payloads(r->store, now - r->cfg->retention_jobs_ms, batch,
                                               &r->step_jobs, &r->err);
    }
    /* Conflict rows hold field values, so they age out with the audit; expired
     * echo ledger rows are never read again and go whatever the settings. */
    int64_t n = 0;
    if (r->rc == 0 && r->cfg->retention_audit_ms > 0) {
        r->rc = ferry_store_prune_conflicts(r->store, now - r->cfg->retention_audit_ms, batch, &n,
                                            &r->err);
        r->step_audit += n;
    }
    if (r->rc == 0) {
        r->rc = ferry_store_prune_echoes(r->store, now, batch, &n, &r->err);
    }
}

static void on_retention_timer(uv_timer_t *t);

static void on_retention_done(uv_work_t *req, int status)
{
    struct retention *r = req->data;
    struct daemon *d = (struct daemon *)(void *)((char *)r - offsetof(struct daemon, ret));
    (void)status; /* never cancelled */
    r->busy = false;
    if (r->rc < 0) {
        /* Busy or locked: the next tick tries again; nothing is lost by waiting. */
        ferry_warn("retention step failed: %s", r->err.msg);
    }
    r->round_audit += r->step_audit;
    r->round_jobs += r->step_jobs;
    r->total_audit += r->step_audit;
    r->total_jobs += r->step_jobs;
    bool more = r->rc == 0 && (r->step_audit >= r->cfg->retention_batch ||
                               r->step_jobs >= r->cfg->retention_batch);
    if (!more && r->round_audit + r->round_jobs > 0) {
        ferry_info("retention: pruned %" PRId64 " audit row(s) and %" PRId64 " done job payload(s)",
                   r->round_audit, r->round_jobs);
        r->round_audit = r->round_jobs = 0;
    }
    if (d->stopping || !r->timer_open) {
        return;
    }
    /* A full batch means a backlog: go on soon, but with a pause in which
     * intake and the workers get the write lock first. */
    uv_timer_start(&r->timer, on_retention_timer,
                   more ? RETENTION_CATCHUP_MS : (uint64_t)r->cfg->retention_interval_ms, 0);
}

static void on_retention_timer(uv_timer_t *t)
{
    struct retention *r = t->data;
    if (r->busy) {
        return;
    }
    r->work.data = r;
    r->busy = true;
    if (uv_queue_work(t->loop, &r->work, on_retention_work, on_retention_done) < 0) {
        r->busy = false;
        uv_timer_start(&r->timer, on_retention_timer, (uint64_t)r->cfg->retention_interval_ms, 0);
    }
}

static int retention_start(struct daemon *d, struct ferry_err *err)
{
    struct retention *r = &d->ret;
    if (d->cfg->retention_audit_ms <= 0 && d->cfg->retention_jobs_ms <= 0) {
        return 0;
    }
    r->cfg = d->cfg;
    int rc = ferry_store_open(&r->store, d->cfg->state_path, err);
    if (rc == 0) {
        /* Pruning undone by a power cut is simply done again. */
        rc = ferry_store_set_synchronous(r->store, false, err);
    }
    if (rc < 0) {
        return rc;
    }
    uv_timer_init(&d->loop, &r->timer);
    r->timer.data = r;
    r->timer_open = true;
    /* The first step soon after start, so that a backlog starts shrinking at once. */
    uv_timer_start(&r->timer, on_retention_timer, 1000, 0);
    ferry_info("retention: audit rows after %.1f h, done job payloads after %.1f h (0: kept), "
               "%d row(s) per step",
               (double)d->cfg->retention_audit_ms / 3600000.0,
               (double)d->cfg->retention_jobs_ms / 3600000.0, d->cfg->retention_batch);
    return 0;
}

/* ---- sync progress ---- */

static int progress_add(struct progress *p, const char *system, const char *object)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->items[i].system, system) == 0 && strcmp(p->items[i].object, object) == 0) {
            return 0;
        }
    }
    struct progress_item *grown = realloc(p->items, (p->n + 1) * sizeof(*grown));
    if (!grown) {
        return FERRY_ENOMEM;
    }
    p->items = grown;
    struct progress_item *it = &p->items[p->n];
    memset(it, 0, sizeof(*it));
    it->system = ferry_strdup(system);
    it->object = ferry_strdup(object);
    if (!it->system || !it->object) {
        free(it->system);
        free(it->object);
        return FERRY_ENOMEM;
    }
    p->n++;
    return 0;
}

static void format_duration(double secs, char *buf, size_t n)
{
    long long s = secs > 0 ? (long long)llround(secs) : 0;
    if (s >= 3600) {
        snprintf(buf, n, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
    } else {
        snprintf(buf, n, "%lld:%02lld", s / 60, s % 60);
    }
}

/*
 * One object's line: what the poll listed, what has been processed, the
 * rate, and an ETA once the listing is complete (a delta listing has no
 * count up front, so before that there is nothing to divide).
 */
static void progress_line(struct progress_item *it, int64_t now, bool final, char *buf, size_t n)
{
    struct ferry_metrics *m = ferry_metrics_global();
    double listed = ferry_metrics_value(m, "ferry_poll_records_total", "connector", it->system,
                                        "object", it->object, NULL);
    double polls = ferry_metrics_sum(m, "ferry_polls_total", "connector", it->system, "object",
                                     it->object, NULL);
    double done = ferry_metrics_value(m, "ferry_jobs_processed_total", "connector", it->system,
                                      "object", it->object, "outcome", "done", NULL);
    double dead = ferry_metrics_value(m, "ferry_jobs_processed_total", "connector", it->system,
                                      "object", it->object, "outcome", "dead", NULL);
    double processed = done + dead;
    if (it->last_ms > 0 && now > it->last_ms) {
        double inst = (processed - it->last_processed) * 1000.0 / (double)(now - it->last_ms);
        it->rate = it->rate > 0 ? 0.7 * it->rate + 0.3 * inst : inst;
    }
    it->last_processed = processed;
    it->last_ms = now;
    char dead_text[40] = "";
    char eta[32] = "";
    if (dead > 0) {
        snprintf(dead_text, sizeof(dead_text), " (%.0f dead)", dead);
    }
    if (polls > 0 && !final) {
        double left = listed - processed;
        char dur[24];
        if (left <= 0) {
            snprintf(eta, sizeof(eta), ", ETA 0:00");
        } else if (it->rate > 0.01) {
            format_duration(left / it->rate, dur, sizeof(dur));
            snprintf(eta, sizeof(eta), ", ETA %s", dur);
        }
    }
    snprintf(buf, n, "%s %s: %.0f listed%s, %.0f processed%s, %.1f/s%s", it->system, it->object,
             listed, polls > 0 ? "" : " so far", processed, dead_text, it->rate, eta);
}

/* 429 answers so far across connectors: the "quota waits" of a backfill. */
static double throttled_total(void)
{
    return ferry_metrics_sum(ferry_metrics_global(), "ferry_http_throttled_total", NULL);
}

static void progress_draw(struct daemon *d, bool final)
{
    struct progress *p = &d->prog;
    int64_t now = ferry_now_ms();
    char line[512];
    char el[24];
    double throttled = throttled_total();
    if (p->n == 0) {
        return;
    }
    format_duration((double)(now - p->started_ms) / 1000.0, el, sizeof(el));
    if (!p->tty) {
        for (size_t i = 0; i < p->n; i++) {
            progress_line(&p->items[i], now, final, line, sizeof(line));
            ferry_info("sync progress: %s", line);
        }
        ferry_info("sync progress: %s elapsed, %.0f quota wait(s) (HTTP 429)", el, throttled);
        return;
    }
    /* Redraw in place, unless log lines came in between: then draw below them. */
    if (p->lines_drawn > 0 && ferry_log_lines_written() == p->log_mark) {
        fprintf(stderr, "\033[%dA", p->lines_drawn);
    }
    int lines = 0;
    for (size_t i = 0; i < p->n; i++) {
        progress_line(&p->items[i], now, final, line, sizeof(line));
        fprintf(stderr, "\r\033[K%s\n", line);
        lines++;
    }
    fprintf(stderr, "\r\033[K%s %s elapsed, %.0f quota wait(s)\n", final ? "done:" : "sync:", el,
            throttled);
    lines++;
    fflush(stderr);
    p->lines_drawn = lines;
    p->log_mark = ferry_log_lines_written();
}

static void on_progress_timer(uv_timer_t *t)
{
    progress_draw(t->data, false);
}

static void progress_start(struct daemon *d, int64_t interval_ms)
{
    struct progress *p = &d->prog;
    p->tty = isatty(STDERR_FILENO) == 1;
    p->interval_ms = interval_ms > 0 ? interval_ms : (p->tty ? 1000 : 10000);
    p->started_ms = ferry_now_ms();
    if (p->n == 0) {
        return;
    }
    uv_timer_init(&d->loop, &p->timer);
    p->timer.data = d;
    p->timer_open = true;
    uv_timer_start(&p->timer, on_progress_timer, (uint64_t)p->interval_ms,
                   (uint64_t)p->interval_ms);
}

static void progress_finish(struct daemon *d)
{
    struct progress *p = &d->prog;
    if (!p->timer_open) {
        return;
    }
    uv_timer_stop(&p->timer);
    close_if_open((uv_handle_t *)&p->timer);
    p->timer_open = false;
    progress_draw(d, true);
}

static void progress_free(struct progress *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].system);
        free(p->items[i].object);
    }
    free(p->items);
    p->items = NULL;
    p->n = 0;
}

static int queue_polls(struct daemon *d, const char *since)
{
    json_t *sources = NULL;
    struct ferry_worker *w = &d->rt->workers[0];
    int rc = 0;
    if (!w->mappings) {
        return 0;
    }
    sources = ferry_mapping_set_sources(w->mappings);
    size_t i;
    json_t *src;
    json_array_foreach(sources, i, src)
    {
        const char *sys = json_string_value(json_object_get(src, "system"));
        const char *obj = json_string_value(json_object_get(src, "object"));
        int idx = ferry_runtime_instance(d->rt, sys);
        if (idx < 0 || !d->rt->instances[idx].conn->list_changes) {
            continue;
        }
        rc = ferry_scheduler_add_poll(d->sched, sys, obj, since);
        if (rc < 0) {
            break;
        }
        if (d->once) {
            rc = progress_add(&d->prog, sys, obj);
            if (rc < 0) {
                break;
            }
        }
    }
    json_decref(sources);
    return rc;
}

static void on_poll_timer(uv_timer_t *t)
{
    struct daemon *d = t->data;
    if (queue_polls(d, NULL) == 0) {
        ferry_scheduler_kick(d->sched);
    }
}

/*
 * A scope that used to deliver and has gone quiet for longer than
 * webhooks.silence_alert is worth a warning: some senders
 * deactivate hooks after failures and tell nobody but an e-mail address.
 * Each scope is reported once per silence, and again after it recovers.
 */
static void on_silence_timer(uv_timer_t *t)
{
    struct daemon *d = t->data;
    struct ferry_err err = {0};
    json_t *seen = NULL;
    int64_t now = ferry_now_ms();
    if (ferry_store_webhooks_seen(d->store, &seen, &err) < 0) {
        ferry_warn("webhook silence check skipped: %s", err.msg);
        return;
    }
    size_t i;
    json_t *row;
    json_array_foreach(seen, i, row)
    {
        const char *inst = json_string_value(json_object_get(row, "instance"));
        const char *scope = json_string_value(json_object_get(row, "scope"));
        int64_t last = json_integer_value(json_object_get(row, "last_at"));
        char key[512];
        snprintf(key, sizeof(key), "%s %s", inst, scope);
        bool quiet = now - last > d->cfg->silence_alert_ms;
        bool reported = json_object_get(d->silent, key) != NULL;
        if (quiet && !reported) {
            ferry_log_write(FERRY_LOG_WARN, inst,
                            "no %s webhook for %lld min (alert after %lld min); check the "
                            "registration with 'ferry webhooks' - the delta poll still covers it",
                            scope, (long long)((now - last) / 60000),
                            (long long)(d->cfg->silence_alert_ms / 60000));
            json_object_set_new(d->silent, key, json_true());
        } else if (!quiet && reported) {
            ferry_log_write(FERRY_LOG_INFO, inst, "%s webhooks are arriving again", scope);
            json_object_del(d->silent, key);
        }
    }
    json_decref(seen);
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        return -errno;
    }
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0) {
        return -errno;
    }
    /* Renamed into place so a reader never sees a half-written number. */
    return rename(tmp, path) == 0 ? 0 : -errno;
}

/*
 * One engine owns a state database at a time: at start it takes back jobs
 * left running by a crash, which would steal the jobs of a second engine
 * still running them. A POSIX record lock on "<state>.lock" makes the second
 * one refuse to start instead; the kernel drops it when the process dies.
 */
static int lock_state(const char *state_path, int *fd_out, struct ferry_err *err)
{
    char path[4096];
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    snprintf(path, sizeof(path), "%s.lock", state_path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return ferry_err_set(err, -errno, "%s: %s", path, strerror(errno));
    }
    if (fcntl(fd, F_SETLK, &fl) < 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EAGAIN) {
            return ferry_err_set(err, FERRY_EBUSY,
                                 "%s is in use by another ferry run or sync; stop it first",
                                 state_path);
        }
        return ferry_err_set(err, -e, "%s: %s", path, strerror(e));
    }
    *fd_out = fd;
    return 0;
}

static void usage_run(FILE *f, const char *cmd)
{
    if (strcmp(cmd, "run") == 0) {
        fprintf(f, "usage: ferry run -c CONFIG [--log-format json|text]\n\n"
                   "Run the daemon in the foreground: webhook intake, timed delta polls,\n"
                   "the worker pool, the admin listener (/healthz, /readyz, /metrics) when\n"
                   "configured, and retention pruning. SIGTERM or SIGINT stops intake, lets\n"
                   "running jobs finish and exits 0 (pending jobs stay queued for the next\n"
                   "start); SIGHUP recompiles the mappings and swaps them in only if all\n"
                   "compile.\n\n"
                   "  -c, --config FILE        configuration file (Lua)\n"
                   "      --log-format FORMAT  json (one object per line) or text (for a\n"
                   "                           person at a terminal); overrides log.format\n"
                   "  -h, --help               this text\n");
    } else {
        fprintf(f, "usage: ferry sync -c CONFIG (--once | --since DATE) [--log-format json|text]\n"
                   "                  [--progress-interval SECONDS]\n\n"
                   "Poll every source object the mappings read for changes since its\n"
                   "cursor (or, with --since, since DATE: a backfill, streamed page by\n"
                   "page), process the whole queue (including jobs left by the daemon),\n"
                   "and exit. On a terminal a progress line per object (records listed and\n"
                   "processed, rate, ETA once the listing is complete, quota waits) is\n"
                   "redrawn every second; otherwise the same appears as a log line every\n"
                   "10 seconds. Exit status: 0 all done, 3 something was dead-lettered\n"
                   "during this run (see 'ferry status'), 1 error, 2 usage.\n\n"
                   "  -c, --config FILE        configuration file (Lua)\n"
                   "      --once               one pass from the stored cursors, then exit\n"
                   "      --since DATE         one pass from DATE (2024-05-01 or\n"
                   "                           2024-05-01T10:00:00Z), then exit\n"
                   "      --log-format FORMAT  json or text; overrides log.format\n"
                   "      --progress-interval SECONDS\n"
                   "                           how often progress is shown (default 1 on a\n"
                   "                           terminal, 10 otherwise)\n"
                   "  -h, --help               this text\n");
    }
}

static int run_main(int argc, char **argv, bool sync_mode)
{
    const char *cmd = sync_mode ? "sync" : "run";
    const char *config_path = NULL;
    bool once = false;
    char since[21] = "";
    int log_format = -1;
    int64_t progress_ms = 0;
    int lock_fd = -1;
    struct daemon d;
    struct ferry_err err = {0};
    int rc;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"once", no_argument, NULL, 'o'},
        {"since", required_argument, NULL, 's'},
        {"log-format", required_argument, NULL, 'f'},
        {"progress-interval", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };

    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'o':
            once = true;
            break;
        case 's': {
            int64_t ms;
            if (!sync_mode || ferry_iso8601_parse(optarg, &ms) < 0) {
                fprintf(stderr,
                        "ferry %s: --since takes a date such as 2024-05-01 or "
                        "2024-05-01T10:00:00Z, not '%s'\n",
                        cmd, optarg);
                return FERRY_EXIT_USAGE;
            }
            ferry_iso8601_format(ms, since);
            once = true;
            break;
        }
        case 'f':
            if (strcmp(optarg, "json") == 0) {
                log_format = FERRY_LOG_JSON;
            } else if (strcmp(optarg, "text") == 0) {
                log_format = FERRY_LOG_TEXT;
            } else {
                fprintf(stderr, "ferry %s: --log-format is json or text, not '%s'\n", cmd, optarg);
                return FERRY_EXIT_USAGE;
            }
            break;
        case 'p': {
            char *end = NULL;
            double v = strtod(optarg, &end);
            if (!sync_mode || !optarg[0] || *end || !(v > 0) || v > 86400) {
                fprintf(stderr, "ferry %s: --progress-interval takes seconds (> 0), not '%s'\n",
                        cmd, optarg);
                return FERRY_EXIT_USAGE;
            }
            progress_ms = (int64_t)llround(v * 1000.0);
            break;
        }
        case 'h':
            usage_run(stdout, cmd);
            return FERRY_EXIT_OK;
        default:
            usage_run(stderr, cmd);
            return FERRY_EXIT_USAGE;
        }
    }
    if (!config_path || optind != argc || (once && !sync_mode) || (sync_mode && !once)) {
        usage_run(stderr, cmd);
        return FERRY_EXIT_USAGE;
    }

    memset(&d, 0, sizeof(d));
    d.once = sync_mode;
    d.exit_status = FERRY_EXIT_OK;
    d.started_ms = ferry_now_ms();

    rc = ferry_config_load(&d.cfg, config_path, &err);
    if (rc < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        return FERRY_EXIT_FAILURE;
    }
    ferry_log_set_level(d.cfg->log_level);
    ferry_log_set_format(log_format >= 0 ? log_format : d.cfg->log_format);
    /* Before anything is logged or stored: secrets and personal data never
     * reach a sink unredacted. */
    if (ferry_redact_configure_from(d.cfg) < 0) {
        fprintf(stderr, "ferry: out of memory\n");
        ferry_config_free(d.cfg);
        return FERRY_EXIT_FAILURE;
    }
    rc = lock_state(d.cfg->state_path, &lock_fd, &err);
    if (rc < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        ferry_config_free(d.cfg);
        return FERRY_EXIT_FAILURE;
    }

    /* libuv sizes its threadpool from the environment at first use; one
     * thread per worker plus room for libuv's own file and DNS work. */
    char pool[16];
    snprintf(pool, sizeof(pool), "%d", d.cfg->workers + 2);
    setenv("UV_THREADPOOL_SIZE", pool, 1);
    xmlInitParser();
    rc = ferry_http_global_init(&err);
    if (rc < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        ferry_config_free(d.cfg);
        close(lock_fd);
        return FERRY_EXIT_FAILURE;
    }

    rc = ferry_runtime_new(&d.rt, d.cfg, &err);
    if (rc < 0) {
        ferry_error("%s", err.msg);
        fprintf(stderr, "ferry: %s\n", err.msg);
        d.exit_status = FERRY_EXIT_FAILURE;
        goto out;
    }
    rc = ferry_store_open(&d.store, d.cfg->state_path, &err);
    if (rc < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        d.exit_status = FERRY_EXIT_FAILURE;
        goto out;
    }
    int64_t requeued = 0;
    rc = ferry_store_jobs_requeue_running(d.store, ferry_now_ms(), &requeued, &err);
    if (rc < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        d.exit_status = FERRY_EXIT_FAILURE;
        goto out;
    }
    if (requeued > 0) {
        ferry_warn("%" PRId64 " job(s) were running when ferry last stopped; queued again",
                   requeued);
    }

    uv_loop_init(&d.loop);
    rc = ferry_scheduler_new(&d.sched, &d.loop, d.rt, d.store, &err);
    if (rc < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        d.exit_status = FERRY_EXIT_FAILURE;
        goto loop_out;
    }
    ferry_scheduler_set_idle_cb(d.sched, on_idle, &d);

    uv_signal_init(&d.loop, &d.sig_term);
    uv_signal_init(&d.loop, &d.sig_int);
    uv_signal_init(&d.loop, &d.sig_hup);
    d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
    uv_signal_start(&d.sig_term, on_signal, SIGTERM);
    uv_signal_start(&d.sig_int, on_signal, SIGINT);
    uv_signal_start(&d.sig_hup, on_signal, SIGHUP);

    if (!sync_mode) {
        rc = ferry_intake_new(&d.intake, &d.loop, d.cfg->state_path, d.cfg->dedupe_window_ms,
                              on_intake_committed, &d, &err);
        if (rc < 0) {
            fprintf(stderr, "ferry: %s\n", err.msg);
            d.exit_status = FERRY_EXIT_FAILURE;
            /* Close every handle (the scheduler's timer among them) before
             * the memory that holds them goes. */
            uv_walk(&d.loop, close_walk, NULL);
            uv_run(&d.loop, UV_RUN_DEFAULT);
            ferry_scheduler_free(d.sched);
            d.sched = NULL;
            goto loop_out;
        }
    }
    if (!sync_mode) {
        struct ferry_listener_options lo = {
            .address = d.cfg->listen_address,
            .port = d.cfg->listen_port,
            .max_body = d.cfg->max_body,
            .max_headers = (size_t)d.cfg->max_headers,
            .max_header_bytes = d.cfg->max_header_bytes,
            .idle_timeout_ms = d.cfg->idle_timeout_ms,
            .tls_cert = d.cfg->tls_cert,
            .tls_key = d.cfg->tls_key,
        };
        rc = ferry_listener_start(&d.listener, &d.loop, &lo, on_webhook, &d, &err);
        if (rc < 0) {
            fprintf(stderr, "ferry: webhook listener: %s\n", err.msg);
            ferry_error("webhook listener: %s", err.msg);
            d.exit_status = FERRY_EXIT_FAILURE;
            begin_shutdown(&d, "start-up failed");
        } else {
            int port = ferry_listener_port(d.listener);
            d.listener_open = 1;
            ferry_info("listening for webhooks on %s:%d%s", d.cfg->listen_address, port,
                       d.cfg->tls_cert ? " (TLS)" : "");
            if (d.cfg->port_file) {
                rc = write_port_file(d.cfg->port_file, port);
                if (rc < 0) {
                    ferry_error("port file %s not written: %s", d.cfg->port_file, strerror(-rc));
                }
            }
        }
        if (!d.stopping && d.cfg->admin_port >= 0) {
            struct ferry_admin_options ao = {
                .address = d.cfg->admin_address,
                .port = d.cfg->admin_port,
                .state_path = d.cfg->state_path,
                .rt = d.rt,
            };
            rc = ferry_admin_start(&d.admin, &d.loop, &ao, &err);
            if (rc < 0) {
                fprintf(stderr, "ferry: admin listener: %s\n", err.msg);
                ferry_error("admin listener: %s", err.msg);
                d.exit_status = FERRY_EXIT_FAILURE;
                begin_shutdown(&d, "start-up failed");
            } else {
                int aport = ferry_admin_port(d.admin);
                ferry_info("admin listener (/healthz, /readyz, /metrics) on %s:%d",
                           d.cfg->admin_address, aport);
                if (d.cfg->admin_port_file) {
                    rc = write_port_file(d.cfg->admin_port_file, aport);
                    if (rc < 0) {
                        ferry_error("port file %s not written: %s", d.cfg->admin_port_file,
                                    strerror(-rc));
                    }
                }
            }
        }
        if (!d.stopping) {
            rc = retention_start(&d, &err);
            if (rc < 0) {
                fprintf(stderr, "ferry: retention: %s\n", err.msg);
                ferry_error("retention: %s", err.msg);
                d.exit_status = FERRY_EXIT_FAILURE;
                begin_shutdown(&d, "start-up failed");
            }
        }
        if (!d.stopping && d.cfg->poll_interval_ms > 0) {
            uv_timer_init(&d.loop, &d.poll_timer);
            d.poll_timer.data = &d;
            d.poll_timer_open = true;
            uv_timer_start(&d.poll_timer, on_poll_timer, 0, (uint64_t)d.cfg->poll_interval_ms);
        }
        if (!d.stopping && d.cfg->silence_alert_ms > 0) {
            int64_t every = d.cfg->silence_alert_ms / 4;
            every = every < 1000 ? 1000 : (every > 60000 ? 60000 : every);
            d.silent = json_object();
            uv_timer_init(&d.loop, &d.silence_timer);
            d.silence_timer.data = &d;
            d.silence_timer_open = true;
            uv_timer_start(&d.silence_timer, on_silence_timer, (uint64_t)every, (uint64_t)every);
        }
        if (!d.stopping && d.cfg->mapping_watch && watch_mappings(&d, &err) < 0) {
            ferry_error("mappings not watched: %s", err.msg);
        }
    } else {
        rc = queue_polls(&d, since[0] ? since : NULL);
        if (rc < 0) {
            ferry_error("polls not queued: %s", ferry_strerror(rc));
        }
        progress_start(&d, progress_ms);
    }
    if (!d.stopping) {
        ferry_info("ferry %s started (%s, %d worker(s))", FERRY_VERSION, cmd, d.cfg->workers);
        ferry_scheduler_kick(d.sched);
    }

    uv_run(&d.loop, UV_RUN_DEFAULT);

    const struct ferry_sched_stats *st = ferry_scheduler_stats(d.sched);
    ferry_info("%s finished: %" PRId64 " job(s) done, %" PRId64 " retried, %" PRId64
               " dead-lettered, %" PRId64 " write(s), %" PRId64 " poll(s)",
               cmd, st->jobs_done, st->jobs_retried, st->jobs_dead, st->writes, st->polls_done);
    if (sync_mode && d.exit_status == FERRY_EXIT_OK) {
        int64_t dead = 0;
        rc = ferry_store_jobs_dead_since(d.store, d.started_ms, &dead, &err);
        if (rc < 0) {
            d.exit_status = FERRY_EXIT_FAILURE;
        } else if (dead > 0) {
            fprintf(stderr, "ferry: %" PRId64 " job(s) were dead-lettered; see 'ferry status'\n",
                    dead);
            d.exit_status = FERRY_EXIT_DEADLETTERS;
        } else if (st->polls_failed > 0) {
            fprintf(stderr, "ferry: %" PRId64 " poll(s) failed; see the log\n", st->polls_failed);
            d.exit_status = FERRY_EXIT_FAILURE;
        }
    }
    if (d.intake) {
        const struct ferry_intake_stats *is = ferry_intake_stats(d.intake);
        if (is->items + is->failed > 0) {
            ferry_info("intake: %" PRId64 " webhook(s) acknowledged in %" PRId64
                       " commit(s) (largest %" PRId64 "), %" PRId64 " duplicate(s), %" PRId64
                       " refused with 503",
                       is->items, is->batches, is->max_batch, is->duplicates, is->failed);
        }
    }
    ferry_scheduler_free(d.sched);
loop_out:
    ferry_intake_free(d.intake);
    if (uv_loop_close(&d.loop) != 0) {
        /* Anything still open here is a bug of ours; walk and close it so the
         * process still exits cleanly. */
        uv_run(&d.loop, UV_RUN_DEFAULT);
        uv_loop_close(&d.loop);
    }
out:
    free(d.watches);
    json_decref(d.silent);
    progress_free(&d.prog);
    ferry_store_close(d.ret.store);
    ferry_store_close(d.store);
    ferry_runtime_free(d.rt);
    ferry_http_global_cleanup();
    ferry_config_free(d.cfg);
    close(lock_fd);
    /* Clearing frees and never fails. */
    (void)!ferry_redact_configure(NULL);
    return d.exit_status;
}

int ferry_cmd_run(int argc, char **argv)
{
    return run_main(argc, argv, false);
}

int ferry_cmd_sync(int argc, char **argv)
{
    return run_main(argc, argv, true);
}
