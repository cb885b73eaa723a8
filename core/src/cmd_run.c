/* SPDX-License-Identifier: MIT */
/*
 * `ferry run` (the daemon) and `ferry sync --once` (poll, drain, exit). Both
 * build the same runtime and scheduler on a libuv loop; the daemon adds the
 * webhook listener, timed polls and signal handling for reload and drain.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <uv.h>

#include "cli.h"
#include "config.h"
#include "http.h"
#include "intake.h"
#include "listener.h"
#include "log.h"
#include "pipeline.h"
#include "runtime.h"
#include "scheduler.h"
#include "store.h"
#include "util.h"

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
};

/* ---- intake ---- */

static json_t *error_body(const char *code, const char *message)
{
    return json_pack("{s:s, s:s}", "error", code, "message", message);
}

static void on_intake_reply(void *ctx, int status, json_t *body)
{
    ferry_listener_complete(ctx, status, body);
}

static void on_intake_committed(void *ud, int64_t queued)
{
    struct daemon *d = ud;
    (void)queued;
    ferry_scheduler_kick(d->sched);
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
    json_t *events = NULL, *jobs = NULL;
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

    jobs = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *object = json_string_value(json_object_get(ev, "object"));
        const char *id = json_string_value(json_object_get(ev, "id"));
        const char *event = json_string_value(json_object_get(ev, "event"));
        const char *dedupe = json_string_value(json_object_get(ev, "dedupe"));
        const char *sc = json_string_value(json_object_get(ev, "scope"));
        json_t *data = json_object_get(ev, "data");
        if (!object || !id || !event) {
            json_decref(jobs);
            json_decref(events);
            reply->status = 400;
            reply->body = error_body("bad_request", "connector decoded an incomplete event");
            return;
        }
        scope = sc ? sc : scope;
        char dkey[512], jkey[512], corr[33];
        snprintf(dkey, sizeof(dkey), "%s:%s", instance, dedupe ? dedupe : "");
        snprintf(jkey, sizeof(jkey), "%s:%s:%s", instance, object, id);
        ferry_correlation_from(dedupe ? dkey : jkey, corr);
        json_t *payload = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:O?}", "source", instance,
                                    "object", object, "id", id, "event", event, "scope", sc,
                                    "event_data", json_is_object(data) ? data : NULL);
        char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
        json_decref(payload);
        json_t *job =
            text ? json_pack("{s:s?, s:s, s:s, s:s, s:s, s:s}", "dedupe_key", dedupe ? dkey : NULL,
                             "job_key", jkey, "kind", "sync", "payload", text, "correlation_id",
                             corr, "detail", sc ? sc : event)
                 : NULL;
        free(text);
        if (!job || json_array_append_new(jobs, job) < 0) {
            json_decref(jobs);
            json_decref(events);
            reply->status = 503;
            reply->body = error_body("unavailable", "out of memory");
            return;
        }
        ferry_log_write(FERRY_LOG_DEBUG, instance, "webhook %s %s %s received", sc ? sc : event,
                        object, id);
    }
    struct ferry_deferred *later = ferry_listener_defer(reply);
    if (!later) {
        json_decref(jobs);
        json_decref(events);
        reply->status = 503;
        reply->body = error_body("unavailable", "out of memory");
        return;
    }
    /* scope points into `events`: submit copies it before events goes. */
    ferry_intake_submit(d->intake, jobs, instance, scope, ferry_now_ms(), on_intake_reply, later);
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

static void on_drained(void *ud)
{
    struct daemon *d = ud;
    close_if_open((uv_handle_t *)&d->sig_term);
    close_if_open((uv_handle_t *)&d->sig_int);
    close_if_open((uv_handle_t *)&d->sig_hup);
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
    ferry_scheduler_stop(d->sched, on_drained, d);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (signum == SIGHUP) {
        struct ferry_err err = {0};
        if (ferry_runtime_reload_mappings(d->rt, &err) == 0) {
            ferry_info("mappings reloaded (SIGHUP)");
        } else {
            ferry_error("mappings not reloaded, keeping the previous set: %s", err.msg);
        }
        return;
    }
    begin_shutdown(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_idle(void *ud)
{
    struct daemon *d = ud;
    if (d->once) {
        begin_shutdown(d, "queue drained");
    }
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
        fprintf(f, "usage: ferry run -c CONFIG\n\n"
                   "Run the daemon in the foreground: webhook intake, timed delta polls,\n"
                   "and the worker pool. SIGTERM or SIGINT stops intake, lets running jobs\n"
                   "finish and exits 0 (pending jobs stay queued for the next start);\n"
                   "SIGHUP recompiles the mappings and swaps them in only if all compile.\n\n"
                   "  -c, --config FILE   configuration file (Lua)\n"
                   "  -h, --help          this text\n");
    } else {
        fprintf(f, "usage: ferry sync -c CONFIG (--once | --since DATE)\n\n"
                   "Poll every source object the mappings read for changes since its\n"
                   "cursor (or, with --since, since DATE: a backfill, streamed page by\n"
                   "page), process the whole queue (including jobs left by the daemon),\n"
                   "and exit. Exit status: 0 all done, 3 something was dead-lettered during\n"
                   "this run (see 'ferry status'), 1 error, 2 usage.\n\n"
                   "  -c, --config FILE   configuration file (Lua)\n"
                   "      --once          one pass from the stored cursors, then exit\n"
                   "      --since DATE    one pass from DATE (2024-05-01 or\n"
                   "                      2024-05-01T10:00:00Z), then exit\n"
                   "  -h, --help          this text\n");
    }
}

static int run_main(int argc, char **argv, bool sync_mode)
{
    const char *cmd = sync_mode ? "sync" : "run";
    const char *config_path = NULL;
    bool once = false;
    char since[21] = "";
    int lock_fd = -1;
    struct daemon d;
    struct ferry_err err = {0};
    int rc;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"once", no_argument, NULL, 'o'},
        {"since", required_argument, NULL, 's'},
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
    ferry_log_set_format(d.cfg->log_format);
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
            ferry_info("listening for webhooks on %s:%d", d.cfg->listen_address, port);
            if (d.cfg->port_file) {
                rc = write_port_file(d.cfg->port_file, port);
                if (rc < 0) {
                    ferry_error("port file %s not written: %s", d.cfg->port_file, strerror(-rc));
                }
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
    } else {
        rc = queue_polls(&d, since[0] ? since : NULL);
        if (rc < 0) {
            ferry_error("polls not queued: %s", ferry_strerror(rc));
        }
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
    json_decref(d.silent);
    ferry_store_close(d.store);
    ferry_runtime_free(d.rt);
    ferry_http_global_cleanup();
    ferry_config_free(d.cfg);
    close(lock_fd);
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
