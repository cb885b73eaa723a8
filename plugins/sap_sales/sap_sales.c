/* SPDX-License-Identifier: MIT */
/*
 * The sap_sales connector: SAP Sales Cloud (C4C) through the c4codataapi
 * OData v2 service. In the walking skeleton SAP is only a target: the host
 * fetches, looks up and upserts entities such as ContactCollection; deltas
 * and webhooks are not offered. The descriptor and the callbacks' semantics
 * (status handling, the 412 retry) live here; URLs and envelopes in
 * sap_sales_odata.c, headers and the CSRF session in sap_sales_session.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ferry/plugin.h"

#include "sap_sales_odata.h"
#include "sap_sales_session.h"

#define SAP_DEFAULT_ROOT "https://my000000.crm.ondemand.com/sap/c4c/odata/v1/c4codataapi/"

FERRY_PLUGIN_EXPORT int ferry_connector_entry(const struct ferry_host_api *host,
                                              const struct ferry_connector **out);

static const struct ferry_config_field sap_config[] = {
    {"service_root", FERRY_CFG_STRING, SAP_DEFAULT_ROOT, 0,
     "c4codataapi service root URL (a trailing '/' is added when missing)"},
    {"username", FERRY_CFG_STRING, NULL, 1, "technical user of the communication arrangement"},
    {"password", FERRY_CFG_SECRET, NULL, 1, "password of that user (Basic authentication)"},
    {"timeout", FERRY_CFG_INT, "30", 0, "per-request timeout in seconds"},
    {"page_size", FERRY_CFG_INT, "1000", 0, "$top for collection reads (server pages at 1000)"},
    {NULL, 0, NULL, 0, NULL},
};

static void sap_close(void *state)
{
    struct ferry_sap_instance *inst = state;
    if (!inst) {
        return;
    }
    free(inst->root);
    if (inst->auth) {
        memset(inst->auth, 0, strlen(inst->auth));
    }
    free(inst->auth);
    free(inst);
}

static void sap_worker_free(void *state, void *slot)
{
    ferry__sap_session_free(slot);
}

static int config_int(const json_t *config, const char *key, long def, long min, long max,
                      long *out, struct ferry_err *err)
{
    json_t *v = json_object_get(config, key);
    long n = def;
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v)) {
            return ferry__sap_err_set(err, FERRY_ECONFIG, "%s must be an integer", key);
        }
        n = (long)json_integer_value(v);
    }
    if (n < min || n > max) {
        return ferry__sap_err_set(err, FERRY_ECONFIG, "%s must be between %ld and %ld", key, min,
                                  max);
    }
    *out = n;
    return 0;
}

static const char *config_str(const json_t *config, const char *key)
{
    const char *s = json_string_value(json_object_get(config, key));
    return (s && *s) ? s : NULL;
}

static int sap_open(const struct ferry_host_api *host, struct ferry_call *call,
                    const json_t *config, void **state, struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    struct ferry_sap_instance *inst = NULL;
    const char *root = config_str(config, "service_root");
    const char *user = config_str(config, "username");
    const char *password = config_str(config, "password");
    long timeout_s = 30;

    *state = NULL;
    if (!json_is_object(config)) {
        rc = ferry__sap_err_set(err, FERRY_ECONFIG, "configuration is not an object");
        goto cleanup;
    }
    if (!user) {
        rc = ferry__sap_err_set(err, FERRY_ECONFIG, "username is required");
        goto cleanup;
    }
    if (strchr(user, ':')) {
        /* Basic authentication splits user and password at the first ':'. */
        rc = ferry__sap_err_set(err, FERRY_ECONFIG, "username must not contain ':'");
        goto cleanup;
    }
    if (!password) {
        rc = ferry__sap_err_set(err, FERRY_ECONFIG, "password is required");
        goto cleanup;
    }
    inst = calloc(1, sizeof(*inst));
    if (!inst) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    inst->host = host;
    rc = ferry__sap_root_normalise(root ? root : SAP_DEFAULT_ROOT, &inst->root, err);
    if (rc < 0) {
        goto cleanup;
    }
    rc = config_int(config, "timeout", 30, 1, 3600, &timeout_s, err);
    if (rc < 0) {
        goto cleanup;
    }
    inst->timeout_ms = timeout_s * 1000;
    rc = config_int(config, "page_size", 1000, 1, 100000, &inst->page_size, err);
    if (rc < 0) {
        goto cleanup;
    }
    inst->auth = ferry__sap_basic_auth(user, password);
    if (!inst->auth) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    host->log(call, FERRY_LOG_INFO, "service root %s, user %s", inst->root, user);
    *state = inst;
    inst = NULL;
    rc = 0;
cleanup:
    sap_close(inst);
    return rc;
}

static int check_object(const char *object, struct ferry_err *err)
{
    if (!ferry__sap_is_name(object)) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "invalid entity set name \"%s\"",
                                  object ? object : "(null)");
    }
    return 0;
}

static int status_error(const struct ferry_sap_instance *inst, const struct ferry_http_resp *resp,
                        const char *method, const char *object, struct ferry_err *err)
{
    char what[128];
    snprintf(what, sizeof(what), "%s %s", method, object);
    return ferry__sap_status_error(resp->status, resp->body, resp->body_len,
                                   inst->host->http_header(resp, "Retry-After"), what, err);
}

/* GET one entity; *entity keeps __metadata so that its etag travels with it. */
static int get_entity(struct ferry_sap_instance *inst, struct ferry_call *call, const char *object,
                      const char *id, json_t **entity, struct ferry_err *err)
{
    struct ferry_http_resp resp = {0};
    char *url = NULL;
    int rc;

    *entity = NULL;
    url = ferry__sap_entity_url(inst->root, object, id, "?$format=json");
    if (!url) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    rc = ferry__sap_send(inst, call, "GET", url, NULL, NULL, object, &resp, err);
    if (rc < 0) {
        goto cleanup;
    }
    if (resp.status != 200) {
        rc = status_error(inst, &resp, "GET", object, err);
        goto cleanup;
    }
    rc = ferry__sap_parse_entity(resp.body, resp.body_len, entity, err);
cleanup:
    inst->host->http_resp_free(&resp);
    free(url);
    return rc;
}

static int sap_fetch(void *state, struct ferry_call *call, const char *object, const char *id,
                     json_t **record, struct ferry_err *err)
{
    *record = NULL;
    if (check_object(object, err) < 0) {
        return FERRY_EINVAL;
    }
    if (!id || !*id) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "fetch %s: empty id", object);
    }
    return get_entity(state, call, object, id, record, err);
}

static int sap_list_changes(void *state, struct ferry_call *call, const char *object,
                            const char *since, const char *page_token, json_t **page,
                            struct ferry_err *err)
{
    *page = NULL;
    return ferry__sap_err_set(err, FERRY_EUNSUPPORTED,
                              "sap_sales: list_changes is not available yet (SAP is only a "
                              "target in this version)");
}

static int sap_lookup(void *state, struct ferry_call *call, const char *object, const char *field,
                      const char *value, json_t **found, struct ferry_err *err)
{
    struct ferry_sap_instance *inst = state;
    struct ferry_http_resp resp = {0};
    json_t *results = NULL, *rec, *out = NULL;
    char *url = NULL;
    const char *etag;
    int rc;

    *found = NULL;
    if (check_object(object, err) < 0) {
        return FERRY_EINVAL;
    }
    if (!ferry__sap_is_name(field)) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s: invalid field name", object);
    }
    if (!value) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s.%s: no value", object, field);
    }
    /* Two rows are enough to tell "unique" from "ambiguous". */
    url = ferry__sap_lookup_url(inst->root, object, field, value, 2);
    if (!url) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    rc = ferry__sap_send(inst, call, "GET", url, NULL, NULL, object, &resp, err);
    if (rc < 0) {
        goto cleanup;
    }
    if (resp.status != 200) {
        rc = status_error(inst, &resp, "GET", object, err);
        goto cleanup;
    }
    rc = ferry__sap_parse_collection(resp.body, resp.body_len, &results, NULL, err);
    if (rc < 0) {
        goto cleanup;
    }
    if (json_array_size(results) == 0) {
        goto cleanup;
    }
    if (json_array_size(results) > 1) {
        /* The value is customer data (an e-mail, a name): it stays out of the job error. */
        rc = ferry__sap_err_set(err, FERRY_EDUPLICATE,
                                "lookup %s: %zu or more records have the same %s value", object,
                                json_array_size(results), field);
        goto cleanup;
    }
    rec = json_array_get(results, 0);
    etag = ferry__sap_entity_etag(rec);
    out = json_pack("{s:s, s:o, s:O}", "id", json_string_value(json_object_get(rec, "ObjectID")),
                    "etag", etag ? json_string(etag) : json_null(), "record", rec);
    if (!out) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    *found = out;
cleanup:
    inst->host->http_resp_free(&resp);
    json_decref(results);
    free(url);
    return rc;
}

static json_t *write_result(const char *id, const char *etag)
{
    return json_pack("{s:s, s:o}", "id", id, "etag", etag ? json_string(etag) : json_null());
}

static int write_create(struct ferry_sap_instance *inst, struct ferry_call *call,
                        const struct ferry_write *w, const char *body, json_t **result,
                        struct ferry_err *err)
{
    struct ferry_http_resp resp = {0};
    json_t *entity = NULL;
    char *url = NULL;
    const char *id, *etag;
    int rc;

    url = malloc(strlen(inst->root) + strlen(w->object) + 1);
    if (!url) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    strcpy(url, inst->root);
    strcat(url, w->object);
    rc = ferry__sap_send(inst, call, "POST", url, NULL, body, w->object, &resp, err);
    if (rc < 0) {
        goto cleanup;
    }
    if (resp.status != 201 && resp.status != 200) {
        rc = status_error(inst, &resp, "POST", w->object, err);
        goto cleanup;
    }
    rc = ferry__sap_parse_entity(resp.body, resp.body_len, &entity, err);
    if (rc < 0) {
        goto cleanup;
    }
    id = json_string_value(json_object_get(entity, "ObjectID"));
    if (!id || !*id) {
        rc = ferry__sap_err_set(err, FERRY_EPROTO, "POST %s: created entity has no ObjectID",
                                w->object);
        goto cleanup;
    }
    /* The header is the precise, current version; the body's copy is the fallback. */
    etag = inst->host->http_header(&resp, "etag");
    if (!etag || !*etag) {
        etag = ferry__sap_entity_etag(entity);
    }
    *result = write_result(id, etag);
    if (!*result) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
cleanup:
    inst->host->http_resp_free(&resp);
    json_decref(entity);
    free(url);
    return rc;
}

/* One PATCH; *status is the HTTP status when a response came back. */
static int patch_once(struct ferry_sap_instance *inst, struct ferry_call *call,
                      const struct ferry_write *w, const char *url, const char *etag,
                      const char *body, json_t **result, long *status, struct ferry_err *err)
{
    struct ferry_http_resp resp = {0};
    const char *new_etag;
    int rc;

    *status = 0;
    rc = ferry__sap_send(inst, call, "PATCH", url, etag, body, w->object, &resp, err);
    if (rc < 0) {
        return rc;
    }
    *status = resp.status;
    if (resp.status != 204 && resp.status != 200) {
        rc = status_error(inst, &resp, "PATCH", w->object, err);
        goto cleanup;
    }
    /*
     * 204 has no body, so the new version is known only when the tenant sends
     * an etag header; a null etag tells the host to re-read before its next
     * conditional write.
     */
    new_etag = inst->host->http_header(&resp, "etag");
    *result = write_result(w->id, (new_etag && *new_etag) ? new_etag : NULL);
    if (!*result) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
cleanup:
    inst->host->http_resp_free(&resp);
    return rc;
}

static int write_update(struct ferry_sap_instance *inst, struct ferry_call *call,
                        const struct ferry_write *w, const char *body, json_t **result,
                        struct ferry_err *err)
{
    json_t *current = NULL;
    char *url = NULL;
    const char *etag;
    long status = 0;
    int rc;

    if (!w->id || !*w->id) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "update %s: no id", w->object);
    }
    url = ferry__sap_entity_url(inst->root, w->object, w->id, "");
    if (!url) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    rc = patch_once(inst, call, w, url, w->etag, body, result, &status, err);
    if (rc != FERRY_ECONFLICT || status != 412) {
        goto cleanup;
    }
    /*
     * Skeleton rule: the source owns every field it sends, so a concurrent
     * change in SAP loses ("source wins"). Re-read the current version and
     * PATCH once more; if SAP moved on again, report the conflict.
     */
    inst->host->log(call, FERRY_LOG_WARN,
                    "PATCH %s: 412, entity changed in SAP; source wins, retrying once", w->object);
    rc = get_entity(inst, call, w->object, w->id, &current, err);
    if (rc < 0) {
        goto cleanup;
    }
    etag = ferry__sap_entity_etag(current);
    if (!etag) {
        rc = ferry__sap_err_set(err, FERRY_ECONFLICT,
                                "PATCH %s: 412 and the re-read entity carries no etag", w->object);
        goto cleanup;
    }
    rc = patch_once(inst, call, w, url, etag, body, result, &status, err);
    if (rc == FERRY_ECONFLICT && status == 412) {
        rc = ferry__sap_err_set(err, FERRY_ECONFLICT,
                                "PATCH %s: 412 again after re-reading the entity", w->object);
    }
cleanup:
    json_decref(current);
    free(url);
    return rc;
}

static int sap_write(void *state, struct ferry_call *call, const struct ferry_write *w,
                     json_t **result, struct ferry_err *err)
{
    struct ferry_sap_instance *inst = state;
    char *body = NULL;
    int rc;

    *result = NULL;
    if (!w || check_object(w->object, err) < 0) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "write: invalid request");
    }
    if (!json_is_object(w->fields)) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "write %s: fields is not an object",
                                  w->object);
    }
    /* Exactly what the host gave: C4C rejects values for read-only properties (facts 3). */
    body = json_dumps(w->fields, JSON_COMPACT);
    if (!body) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    if (w->op == FERRY_WRITE_CREATE) {
        rc = write_create(inst, call, w, body, result, err);
    } else if (w->op == FERRY_WRITE_UPDATE) {
        rc = write_update(inst, call, w, body, result, err);
    } else {
        rc = ferry__sap_err_set(err, FERRY_EINVAL, "write %s: unknown operation %d", w->object,
                                w->op);
    }
    free(body);
    return rc;
}

static int sap_verify_webhook(void *state, struct ferry_call *call, const struct ferry_webhook *wh,
                              struct ferry_err *err)
{
    return ferry__sap_err_set(err, FERRY_EUNSUPPORTED, "sap_sales receives no webhooks");
}

static int sap_decode_webhook(void *state, struct ferry_call *call, const struct ferry_webhook *wh,
                              json_t **events, struct ferry_err *err)
{
    *events = NULL;
    return ferry__sap_err_set(err, FERRY_EUNSUPPORTED, "sap_sales receives no webhooks");
}

static const struct ferry_connector sap_connector = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "sap_sales",
    .version = "0.1.0",
    .description = "SAP Sales Cloud (C4C) via the c4codataapi OData v2 service",
    .config = sap_config,
    .open = sap_open,
    .close = sap_close,
    .worker_free = sap_worker_free,
    .fetch = sap_fetch,
    .list_changes = sap_list_changes,
    .lookup = sap_lookup,
    .write = sap_write,
    .verify_webhook = sap_verify_webhook,
    .decode_webhook = sap_decode_webhook,
};

FERRY_PLUGIN_EXPORT int ferry_connector_entry(const struct ferry_host_api *host,
                                              const struct ferry_connector **out)
{
    if (!out) {
        return FERRY_EINVAL;
    }
    *out = NULL;
    /* Every member up to worker_slot is used, so an older, smaller host cannot run us. */
    if (!host || host->abi != FERRY_PLUGIN_ABI || !FERRY_HOST_HAS(host, worker_slot)) {
        return FERRY_EABI;
    }
    *out = &sap_connector;
    return 0;
}
