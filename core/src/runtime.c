/* SPDX-License-Identifier: MIT */
/*
 * The runtime (see runtime.h) and the host vtable behind it. Host functions
 * find everything through the struct ferry_call the connector hands back, so
 * there is no global state and a connector cannot reach another worker's
 * connection, session or slot.
 */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json_read.h"
#include "log.h"
#include "metrics.h"
#include "targets.h"
#include "util.h"

/* ---- host vtable ---- */

FERRY_PRINTF(3, 4)
static void host_log(struct ferry_call *call, int level, const char *fmt, ...)
{
    va_list ap;
    const char *name = NULL;
    if (!FERRY_LOG_ENABLED(level)) {
        return;
    }
    if (call && call->rt && call->instance < call->rt->ninstances) {
        name = call->rt->instances[call->instance].name;
    }
    va_start(ap, fmt);
    ferry_log_writev(level, name, fmt, ap);
    va_end(ap);
}

/* The state connection a call may use: its worker's, or the start-up one. */
static struct ferry_store *call_store(struct ferry_call *call)
{
    if (!call) {
        return NULL;
    }
    if (call->worker) {
        return call->worker->store;
    }
    return call->setup ? call->rt->setup_store : NULL;
}

static int host_http(struct ferry_call *call, const struct ferry_http_req *req,
                     struct ferry_http_resp *resp, struct ferry_err *err)
{
    struct ferry_worker *w = call ? call->worker : NULL;
    struct ferry_store *store = call_store(call);
    struct ferry_http_trace trace = {0};
    int rc;

    memset(resp, 0, sizeof(*resp));
    if (!store) {
        /* The event loop must never wait on the network. */
        return ferry_err_set(err, FERRY_EUNSUPPORTED,
                             "HTTP is not available here (webhook handling on the event loop)");
    }
    if (ferry_store_in_transaction(store)) {
        /* Its write lock would keep intake and every other worker waiting
         * for as long as the remote takes to answer. */
        return ferry_err_set(err, FERRY_EINVAL,
                             "HTTP call refused: the worker holds a state transaction open");
    }
    struct ferry_http_client **client =
        w ? &w->http[call->instance] : &call->rt->setup_http[call->instance];
    if (!*client) {
        rc = ferry_http_client_new(client, &call->rt->http_opts, err);
        if (rc < 0) {
            return rc;
        }
    }
    rc = ferry_http_perform(*client, req, call->correlation_id, resp, &trace, err);

    struct ferry_audit_row row = {
        .job_id = call->job_id,
        .correlation_id = call->correlation_id,
        .connector = call->rt->instances[call->instance].name,
        .step = "http",
        .method = trace.method,
        .url = trace.url,
        .status = trace.status,
        .request = trace.request,
        .response = trace.response,
        .detail = rc < 0 ? (err ? err->msg : ferry_strerror(rc)) : req->object,
        .duration_ms = trace.duration_ms,
        .at_ms = call->rt->clock(),
    };
    ferry_metrics_http_call(row.connector, row.status, rc, row.duration_ms);
    struct ferry_err aerr = {0};
    if (!call->quiet && ferry_store_audit_add(store, &row, &aerr) < 0) {
        ferry_warn("audit row not written: %s", aerr.msg);
    }
    ferry_http_trace_clear(&trace);
    return rc;
}

static void host_http_resp_free(struct ferry_http_resp *resp)
{
    ferry_http_resp_free(resp);
}

static const char *host_http_header(const struct ferry_http_resp *resp, const char *name)
{
    return ferry_http_resp_header(resp, name);
}

static int64_t host_now_ms(struct ferry_call *call)
{
    return (call && call->rt) ? call->rt->clock() : ferry_now_ms();
}

static void **host_worker_slot(struct ferry_call *call)
{
    if (!call || !call->worker) {
        return NULL;
    }
    return &call->worker->slots[call->instance];
}

static const char *host_correlation_id(struct ferry_call *call)
{
    return (call && call->correlation_id) ? call->correlation_id : "-";
}

static int host_kv_get(struct ferry_call *call, const char *key, char **value,
                       int64_t *updated_at_ms, struct ferry_err *err)
{
    struct ferry_store *store = call_store(call);
    *value = NULL;
    if (!store) {
        return ferry_err_set(err, FERRY_EUNSUPPORTED, "key/value store not available here");
    }
    return ferry_store_kv_get(store, call->rt->instances[call->instance].name, key, value,
                              updated_at_ms, err);
}

static int host_kv_put(struct ferry_call *call, const char *key, const char *value,
                       struct ferry_err *err)
{
    struct ferry_store *store = call_store(call);
    if (!store) {
        return ferry_err_set(err, FERRY_EUNSUPPORTED, "key/value store not available here");
    }
    return ferry_store_kv_put(store, call->rt->instances[call->instance].name, key, value,
                              call->rt->clock(), err);
}

static void host_kv_free(char *value)
{
    free(value);
}

/* ferry_json_dumps writes jansson's compact forms; any other layout is jansson's to write. */
static char *host_json_dumps(const json_t *v, size_t flags)
{
    size_t layout = flags & ~(size_t)(JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (layout != JSON_COMPACT ||
        (!(flags & JSON_ENCODE_ANY) && !json_is_object(v) && !json_is_array(v))) {
        return json_dumps(v, flags);
    }
    return ferry_json_dumps(v, (flags & JSON_SORT_KEYS) != 0);
}

/* Held quota reports of one worker (ferry_worker_hold_quota); a few per connector. */
#define QUOTA_NOTES_MAX 8

struct ferry_quota_note {
    size_t instance;
    char key[160];
    char value[160];
};

static void quota_write(struct ferry_runtime *rt, struct ferry_store *store, size_t instance,
                        const char *key, const char *value)
{
    struct ferry_err err = {0};
    if (ferry_store_kv_put(store, rt->instances[instance].name, key, value, rt->clock(), &err) <
        0) {
        ferry_debug("quota not recorded: %s", err.msg);
    }
}

/* Keeps the report for the task's end; false when it must be written now. */
static bool quota_hold(struct ferry_worker *w, size_t instance, const char *key, const char *value)
{
    if (!w || !w->quota_held) {
        return false;
    }
    if (!w->quota) {
        w->quota = calloc(QUOTA_NOTES_MAX, sizeof(*w->quota));
        if (!w->quota) {
            return false;
        }
    }
    size_t i = 0;
    while (i < w->nquota &&
           !(w->quota[i].instance == instance && strcmp(w->quota[i].key, key) == 0)) {
        i++;
    }
    if (i == QUOTA_NOTES_MAX) {
        return false;
    }
    w->quota[i].instance = instance;
    snprintf(w->quota[i].key, sizeof(w->quota[i].key), "%s", key);
    snprintf(w->quota[i].value, sizeof(w->quota[i].value), "%s", value);
    if (i == w->nquota) {
        w->nquota++;
    }
    return true;
}

void ferry_worker_flush_quota(struct ferry_worker *w)
{
    for (size_t i = 0; i < w->nquota; i++) {
        quota_write(w->rt, w->store, w->quota[i].instance, w->quota[i].key, w->quota[i].value);
    }
    w->nquota = 0;
}

void ferry_worker_hold_quota(struct ferry_worker *w, bool on)
{
    if (!on) {
        ferry_worker_flush_quota(w);
    }
    w->quota_held = on;
}

static void host_quota(struct ferry_call *call, const char *name, int64_t remaining, int64_t limit,
                       int64_t reset_ms)
{
    struct ferry_store *store = call_store(call);
    const char *inst = call->rt->instances[call->instance].name;
    char label[256], key[160], value[160];
    snprintf(label, sizeof(label), "%s:%s", inst, name ? name : "default");
    ferry_metrics_quota(label, remaining, limit, reset_ms);
    if (!store) {
        return;
    }
    /* Kept where `ferry status` (another process) can read it. */
    snprintf(key, sizeof(key), "quota:%s", name ? name : "default");
    snprintf(value, sizeof(value), "{\"remaining\":%lld,\"limit\":%lld,\"reset_at\":%lld}",
             (long long)remaining, (long long)limit, (long long)(call->rt->clock() + reset_ms));
    if (!quota_hold(call->worker, call->instance, key, value)) {
        quota_write(call->rt, store, call->instance, key, value);
    }
}

void ferry_call_init(struct ferry_call *call, struct ferry_runtime *rt, struct ferry_worker *w,
                     size_t instance, const char *correlation_id, int64_t job_id)
{
    call->rt = rt;
    call->worker = w;
    call->instance = instance;
    call->correlation_id = correlation_id;
    call->job_id = job_id;
    call->setup = false;
    call->quiet = false;
}

/* ---- runtime ---- */

int ferry_runtime_instance(const struct ferry_runtime *rt, const char *name)
{
    for (size_t i = 0; name && i < rt->ninstances; i++) {
        if (strcmp(rt->instances[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int ferry_runtime_new_empty(struct ferry_runtime **out, const struct ferry_config *cfg,
                            struct ferry_err *err)
{
    struct ferry_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    if (pthread_mutex_init(&rt->payload_lock, NULL) != 0) {
        free(rt);
        return ferry_err_set(err, FERRY_ENOMEM, "cannot create a lock");
    }
    rt->cfg = cfg;
    rt->clock = ferry_now_ms;
    rt->host = (struct ferry_host_api){
        .abi = FERRY_PLUGIN_ABI,
        .size = sizeof(struct ferry_host_api),
        .log = host_log,
        .http = host_http,
        .http_resp_free = host_http_resp_free,
        .http_header = host_http_header,
        .now_ms = host_now_ms,
        .worker_slot = host_worker_slot,
        .correlation_id = host_correlation_id,
        .kv_get = host_kv_get,
        .kv_put = host_kv_put,
        .kv_free = host_kv_free,
        .quota = host_quota,
        .json_loadb = ferry_json_loadb,
        .json_dumps = host_json_dumps,
        .json_loadb_items = ferry_json_loadb_items,
    };
    rt->http_opts = (struct ferry_http_options){
        .timeout_ms = cfg->http_timeout_ms,
        .connect_timeout_ms = cfg->http_timeout_ms < 10000 ? cfg->http_timeout_ms : 10000,
        .max_response = 16u << 20,
        .insecure_hosts = (const char *const *)cfg->insecure_hosts,
        .ninsecure_hosts = cfg->ninsecure_hosts,
        .secrets = (const char *const *)cfg->secrets,
        .nsecrets = cfg->nsecrets,
        .trace_body_max = 4096,
    };
    rt->mapping_paths = calloc(cfg->nmappings ? cfg->nmappings : 1, sizeof(char *));
    if (!rt->mapping_paths) {
        pthread_mutex_destroy(&rt->payload_lock);
        free(rt);
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < cfg->nmappings; i++) {
        rt->mapping_paths[i] = ferry_path_join(cfg->mapping_dir, cfg->mappings[i]);
        if (!rt->mapping_paths[i]) {
            rt->nmapping_paths = i;
            ferry_runtime_free(rt);
            return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
        }
    }
    rt->nmapping_paths = cfg->nmappings;
    if (cfg->state_path) {
        int rc = ferry_store_open(&rt->setup_store, cfg->state_path, err);
        if (rc < 0) {
            ferry_runtime_free(rt);
            return rc;
        }
    }
    *out = rt;
    return 0;
}

static int add_instance(struct ferry_runtime *rt, const char *name, struct ferry_plugin *plugin,
                        const struct ferry_connector *conn, json_t *config, struct ferry_err *err)
{
    struct ferry_instance *grown =
        realloc(rt->instances, (rt->ninstances + 1) * sizeof(*rt->instances));
    if (!grown) {
        json_decref(config);
        ferry_plugin_unload(plugin);
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    rt->instances = grown;
    struct ferry_instance *inst = &rt->instances[rt->ninstances];
    memset(inst, 0, sizeof(*inst));
    inst->name = ferry_strdup(name);
    inst->plugin = plugin;
    inst->conn = conn;
    inst->config = config;
    rt->ninstances++;
    if (!inst->name) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }

    /* One more start-up HTTP slot for this instance (created on first use). */
    struct ferry_http_client **clients =
        realloc(rt->setup_http, rt->ninstances * sizeof(*rt->setup_http));
    if (!clients) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    rt->setup_http = clients;
    rt->setup_http[rt->ninstances - 1] = NULL;
    rt->nsetup_http = rt->ninstances;

    struct ferry_call call;
    ferry_call_init(&call, rt, NULL, rt->ninstances - 1, "startup", 0);
    call.setup = rt->setup_store != NULL;
    struct ferry_err oerr = {0};
    int rc = conn->open(&rt->host, &call, config, &inst->state, &oerr);
    if (rc < 0) {
        return ferry_err_set(err, rc, "connector %s: %s", name,
                             oerr.msg[0] ? oerr.msg : ferry_strerror(rc));
    }
    return 0;
}

int ferry_runtime_add_connector(struct ferry_runtime *rt, const char *name,
                                const struct ferry_connector *conn, const json_t *config,
                                struct ferry_err *err)
{
    json_t *copy = config ? json_deep_copy(config) : json_object();
    if (!copy) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    return add_instance(rt, name, NULL, conn, copy, err);
}

static int worker_compile(struct ferry_worker *w, struct ferry_err *err)
{
    struct ferry_runtime *rt = w->rt;
    struct ferry_mapping_set *set = NULL;
    uint64_t gen = atomic_load(&rt->mapping_gen);
    int rc = ferry_mapping_set_load(w->lua, (const char *const *)rt->mapping_paths,
                                    rt->nmapping_paths, &set, err);
    if (rc < 0) {
        return rc;
    }
    ferry_mapping_set_free(w->mappings);
    w->mappings = set;
    w->mapping_gen = gen;
    return 0;
}

int ferry_worker_refresh_mappings(struct ferry_worker *w, struct ferry_err *err)
{
    if (w->mappings && w->mapping_gen == atomic_load(&w->rt->mapping_gen)) {
        return 0;
    }
    return worker_compile(w, err);
}

int ferry_runtime_start_workers(struct ferry_runtime *rt, struct ferry_err *err)
{
    const struct ferry_config *cfg = rt->cfg;
    size_t n = cfg->workers > 0 ? (size_t)cfg->workers : 1;
    struct ferry_lua_limits lim = {
        .mem_max = (size_t)cfg->lua_mem_max,
        .time_limit_ms = cfg->lua_time_limit_ms,
    };
    int rc;

    rt->workers = calloc(n, sizeof(*rt->workers));
    if (!rt->workers) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct ferry_worker *w = &rt->workers[i];
        w->index = i;
        w->rt = rt;
        rt->nworkers = i + 1;
        w->http = calloc(rt->ninstances ? rt->ninstances : 1, sizeof(*w->http));
        w->slots = calloc(rt->ninstances ? rt->ninstances : 1, sizeof(*w->slots));
        if (!w->http || !w->slots) {
            return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
        }
        rc = ferry_store_open(&w->store, cfg->state_path, err);
        if (rc < 0) {
            return rc;
        }
        /* Worker bookkeeping (leases, links, audit) may be lost to a power cut
         * without loss of data: a job whose completion was lost runs again,
         * and every write it makes is idempotent. Only intake needs FULL. */
        rc = ferry_store_set_synchronous(w->store, false, err);
        if (rc < 0) {
            return rc;
        }
        rc = ferry_lua_new(&w->lua, cfg->lua_dir, &lim, err);
        if (rc < 0) {
            return rc;
        }
        rc = worker_compile(w, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int ferry_runtime_load_connectors(struct ferry_runtime *rt, struct ferry_err *err)
{
    const struct ferry_config *cfg = rt->cfg;
    for (size_t i = 0; i < cfg->nconnectors; i++) {
        const struct ferry_connector_cfg *cc = &cfg->connectors[i];
        struct ferry_plugin *p = NULL;
        json_t *resolved = NULL;
        int rc = ferry_plugin_load(&p, cfg->plugin_dir, cc->plugin, &rt->host, err);
        if (rc < 0) {
            return rc;
        }
        rc = ferry_plugin_config_resolve(p, cfg->path, cc->name, cc->settings, &resolved, err);
        if (rc < 0) {
            ferry_plugin_unload(p);
            return rc;
        }
        rc = add_instance(rt, cc->name, p, &p->conn, resolved, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int ferry_runtime_new(struct ferry_runtime **out, const struct ferry_config *cfg,
                      struct ferry_err *err)
{
    struct ferry_runtime *rt = NULL;
    int rc = ferry_runtime_new_empty(&rt, cfg, err);
    if (rc < 0) {
        return rc;
    }
    rc = ferry_runtime_load_connectors(rt, err);
    if (rc < 0) {
        goto fail;
    }
    rc = ferry_runtime_describe(rt, false, err);
    if (rc < 0) {
        goto fail;
    }
    rc = ferry_runtime_start_workers(rt, err);
    if (rc < 0) {
        goto fail;
    }
    rc = ferry_runtime_check_mappings(rt, rt->workers[0].mappings, err);
    if (rc < 0) {
        goto fail;
    }
    *out = rt;
    return 0;
fail:
    ferry_runtime_free(rt);
    return rc;
}

int ferry_runtime_describe(struct ferry_runtime *rt, bool strict, struct ferry_err *err)
{
    for (size_t i = 0; i < rt->ninstances; i++) {
        struct ferry_instance *inst = &rt->instances[i];
        struct ferry_call call;
        struct ferry_err derr = {0};
        json_t *objects = NULL;
        if (!FERRY_CONNECTOR_HAS(inst->conn, describe) || !inst->conn->describe) {
            continue;
        }
        ferry_call_init(&call, rt, NULL, i, "startup", 0);
        call.setup = rt->setup_store != NULL;
        int rc = inst->conn->describe(inst->state, &call, &objects, &derr);
        if (rc == FERRY_EUNSUPPORTED) {
            json_decref(objects);
            continue;
        }
        if (rc < 0 || !json_is_object(objects)) {
            json_decref(objects);
            if (!strict) {
                /* The daemon still starts: intake must not wait for a remote
                 * metadata service. Mappings are simply not checked. */
                ferry_log_write(FERRY_LOG_WARN, inst->name,
                                "cannot describe its objects (%s); mapping targets are not "
                                "checked against it",
                                derr.msg[0] ? derr.msg : "no object description returned");
                continue;
            }
            return ferry_err_set(err, rc < 0 ? rc : FERRY_EPLUGIN,
                                 "connector %s cannot describe its objects: %s", inst->name,
                                 derr.msg[0] ? derr.msg : "no object description returned");
        }
        json_decref(inst->schema);
        inst->schema = objects;
    }
    return 0;
}

int ferry_runtime_check_mappings(struct ferry_runtime *rt, const struct ferry_mapping_set *set,
                                 struct ferry_err *err)
{
    json_t *schemas = json_object(), *targets = ferry_mapping_set_targets(set);
    json_t *problems = NULL, *warnings = NULL;
    int rc = FERRY_ENOMEM;
    if (!schemas || !targets) {
        ferry_err_set(err, rc, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < rt->ninstances; i++) {
        if (rt->instances[i].schema) {
            json_object_set(schemas, rt->instances[i].name, rt->instances[i].schema);
        }
    }
    rc = ferry_targets_check(targets, schemas, &problems, &warnings);
    if (rc < 0) {
        ferry_err_set(err, rc, "out of memory");
        goto cleanup;
    }
    size_t i;
    json_t *m;
    json_array_foreach(warnings, i, m)
    {
        ferry_warn("%s", json_string_value(m));
    }
    json_array_foreach(problems, i, m)
    {
        ferry_error("%s", json_string_value(m));
    }
    if (json_array_size(problems) > 0) {
        rc = ferry_err_set(err, FERRY_EMAPPING, "%s%s",
                           json_string_value(json_array_get(problems, 0)),
                           json_array_size(problems) > 1 ? " (and more; see the log)" : "");
    }
cleanup:
    json_decref(problems);
    json_decref(warnings);
    json_decref(targets);
    json_decref(schemas);
    return rc;
}

int ferry_runtime_reload_mappings(struct ferry_runtime *rt, struct ferry_err *err)
{
    struct ferry_lua *L = NULL;
    struct ferry_mapping_set *set = NULL;
    struct ferry_lua_limits lim = {
        .mem_max = (size_t)rt->cfg->lua_mem_max,
        .time_limit_ms = rt->cfg->lua_time_limit_ms,
    };
    int rc = ferry_lua_new(&L, rt->cfg->lua_dir, &lim, err);
    if (rc < 0) {
        return rc;
    }
    rc = ferry_mapping_set_load(L, (const char *const *)rt->mapping_paths, rt->nmapping_paths, &set,
                                err);
    if (rc == 0) {
        rc = ferry_runtime_check_mappings(rt, set, err);
    }
    ferry_mapping_set_free(set);
    ferry_lua_free(L);
    if (rc == 0) {
        atomic_fetch_add(&rt->mapping_gen, 1);
    }
    return rc;
}

void ferry_worker_audit(struct ferry_worker *w, int64_t job_id, const char *correlation_id,
                        const char *connector, const char *step, const char *detail)
{
    struct ferry_audit_row row = {
        .job_id = job_id,
        .correlation_id = correlation_id,
        .connector = connector,
        .step = step,
        .detail = detail,
        .at_ms = w->rt->clock(),
    };
    struct ferry_err err = {0};
    if (ferry_store_audit_add(w->store, &row, &err) < 0) {
        ferry_warn("audit row not written: %s", err.msg);
    }
}

/*
 * Bounds of the payload handoff: a poll runs ahead of the jobs it queues by
 * up to this much (parsed, a payload takes a few times its text's size).
 */
#define PAYLOAD_HANDOFF_MAX   512
#define PAYLOAD_HANDOFF_BYTES (8u << 20)
/* A payload nobody took by then (its job was coalesced, or dropped) goes. */
#define PAYLOAD_HANDOFF_AGE_MS (5 * 60 * 1000)

struct ferry_payload_slot {
    int64_t job_id;
    size_t text_len;
    int64_t at_ms;
    json_t *payload;
};

/* Removes slot i (in order), returning its payload to the caller. */
static json_t *payload_remove(struct ferry_runtime *rt, size_t i)
{
    json_t *p = rt->payloads[i].payload;
    rt->payload_bytes -= rt->payloads[i].text_len;
    memmove(&rt->payloads[i], &rt->payloads[i + 1],
            (rt->npayloads - i - 1) * sizeof(*rt->payloads));
    rt->npayloads--;
    return p;
}

void ferry_runtime_payload_put(struct ferry_runtime *rt, int64_t job_id, size_t text_len,
                               json_t *payload)
{
    int64_t now = rt->clock();
    json_t *stale = NULL;
    bool kept = false;
    pthread_mutex_lock(&rt->payload_lock);
    if (!rt->payloads) {
        rt->payloads = calloc(PAYLOAD_HANDOFF_MAX, sizeof(*rt->payloads));
    }
    while (rt->npayloads > 0 && now - rt->payloads[0].at_ms > PAYLOAD_HANDOFF_AGE_MS) {
        stale = stale ? stale : json_array();
        json_array_append_new(stale, payload_remove(rt, 0));
    }
    if (rt->payloads && rt->npayloads < PAYLOAD_HANDOFF_MAX &&
        rt->payload_bytes + text_len <= PAYLOAD_HANDOFF_BYTES) {
        rt->payloads[rt->npayloads++] = (struct ferry_payload_slot){
            .job_id = job_id, .text_len = text_len, .at_ms = now, .payload = payload};
        rt->payload_bytes += text_len;
        kept = true;
    }
    pthread_mutex_unlock(&rt->payload_lock);
    /* Freed outside the lock: a payload may be large. */
    json_decref(stale);
    if (!kept) {
        json_decref(payload);
    }
}

json_t *ferry_runtime_payload_take(struct ferry_runtime *rt, int64_t job_id, size_t text_len)
{
    json_t *out = NULL;
    pthread_mutex_lock(&rt->payload_lock);
    /* Jobs run about in the order they were queued: the oldest come first. */
    for (size_t i = 0; i < rt->npayloads; i++) {
        if (rt->payloads[i].job_id == job_id) {
            bool same = rt->payloads[i].text_len == text_len;
            out = payload_remove(rt, i);
            if (!same) {
                /* Not what this job stored: never use it. */
                json_decref(out);
                out = NULL;
            }
            break;
        }
    }
    pthread_mutex_unlock(&rt->payload_lock);
    return out;
}

void ferry_runtime_free(struct ferry_runtime *rt)
{
    if (!rt) {
        return;
    }
    for (size_t i = 0; i < rt->npayloads; i++) {
        json_decref(rt->payloads[i].payload);
    }
    free(rt->payloads);
    pthread_mutex_destroy(&rt->payload_lock);
    for (size_t i = 0; i < rt->nworkers; i++) {
        struct ferry_worker *w = &rt->workers[i];
        for (size_t k = 0; k < rt->ninstances; k++) {
            if (w->http) {
                ferry_http_client_free(w->http[k]);
            }
            if (w->slots && w->slots[k] && rt->instances[k].conn->worker_free) {
                rt->instances[k].conn->worker_free(rt->instances[k].state, w->slots[k]);
            }
        }
        if (w->store) {
            ferry_worker_flush_quota(w);
        }
        free(w->quota);
        free(w->http);
        free(w->slots);
        ferry_mapping_set_free(w->mappings);
        ferry_lua_free(w->lua);
        ferry_store_close(w->store);
    }
    free(rt->workers);
    for (size_t i = 0; i < rt->ninstances; i++) {
        struct ferry_instance *inst = &rt->instances[i];
        if (inst->state && inst->conn->close) {
            inst->conn->close(inst->state);
        }
        json_decref(inst->config);
        json_decref(inst->schema);
        ferry_plugin_unload(inst->plugin);
        free(inst->name);
    }
    free(rt->instances);
    for (size_t i = 0; i < rt->nsetup_http; i++) {
        ferry_http_client_free(rt->setup_http[i]);
    }
    free(rt->setup_http);
    ferry_store_close(rt->setup_store);
    for (size_t i = 0; i < rt->nmapping_paths; i++) {
        free(rt->mapping_paths[i]);
    }
    free(rt->mapping_paths);
    free(rt);
}
