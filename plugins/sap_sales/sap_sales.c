/* SPDX-License-Identifier: MIT */
/*
 * The sap_sales connector: SAP Sales Cloud (C4C) through the c4codataapi
 * OData v2 service, generic over entity sets (accounts, contacts, leads,
 * opportunities, activities, sales documents, ID mappings, employees), all
 * addressed by their key (ObjectID). The descriptor and the callbacks'
 * semantics live here: which fields a write may carry (read-only
 * properties from $metadata, approval fields and action flags never), the
 * approval guard, the 412 retry, unknown outcomes of a create, external-ID
 * strategies and delta reads. URLs and envelopes are in sap_sales_odata.c,
 * headers, CSRF and auth in sap_sales_session.c / sap_sales_auth.c,
 * $metadata in sap_sales_metadata.c, Atom in sap_sales_atom.c and $batch in
 * sap_sales_batch.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libxml/parser.h>

#include "ferry/plugin.h"

#include "sap_sales_batch.h"
#include "sap_sales_metadata.h"
#include "sap_sales_odata.h"
#include "sap_sales_session.h"

#define SAP_DEFAULT_ROOT "https://my000000.crm.ondemand.com/sap/c4c/odata/v1/c4codataapi/"
#define EXTERNAL_ID      "$external_id"
#define DELTA_PROPERTY   "EntityLastChangedOn"
#define TOKEN_PREFIX     "v1|"

FERRY_PLUGIN_EXPORT int ferry_connector_entry(const struct ferry_host_api *host,
                                              const struct ferry_connector **out);

static const struct ferry_config_field sap_config[] = {
    {"service_root", FERRY_CFG_STRING, SAP_DEFAULT_ROOT, 0,
     "c4codataapi service root URL (a trailing '/' is added when missing)"},
    {"auth", FERRY_CFG_STRING, "basic", 0,
     "\"basic\" (technical user) or \"oauth\" (bearer token)"},
    {"username", FERRY_CFG_STRING, NULL, 0,
     "basic: technical user of the communication arrangement"},
    {"password", FERRY_CFG_SECRET, NULL, 0, "basic: password of that user"},
    {"token_url", FERRY_CFG_STRING, NULL, 0,
     "oauth: token endpoint, e.g. https://<tenant>/sap/bc/sec/oauth2/token"},
    {"client_id", FERRY_CFG_STRING, NULL, 0, "oauth: client registered in the tenant"},
    {"client_secret", FERRY_CFG_SECRET, NULL, 0, "oauth: that client's secret"},
    {"scope", FERRY_CFG_STRING, NULL, 0, "oauth: scope to request (optional)"},
    {"assertion_file", FERRY_CFG_STRING, NULL, 0,
     "oauth: file with a base64url SAML 2.0 assertion (SAML bearer grant); absent: client "
     "credentials grant"},
    {"timeout", FERRY_CFG_INT, "30", 0, "per-request timeout in seconds"},
    {"page_size", FERRY_CFG_INT, "1000", 0, "$top for collection reads (server pages at 1000)"},
    {"metadata_file", FERRY_CFG_STRING, NULL, 0,
     "read $metadata from this file instead of the tenant (offline checks, tests)"},
    {"metadata_max_age", FERRY_CFG_INT, "86400", 0,
     "seconds before the cached $metadata is fetched again"},
    {"delta_lag", FERRY_CFG_INT, "5", 0,
     "seconds behind now for the fixed upper bound of a delta poll"},
    {"approval_codes", FERRY_CFG_TABLE, "[\"3\"]", 0,
     "ApprovalStatusCode values meaning \"in approval\" (opportunities and quotes are not "
     "modified then)"},
    {"external_id", FERRY_CFG_TABLE, "{}", 0,
     "per entity set: \"links\" | \"object_identifier_mapping[:<scheme code>]\" | "
     "\"extension:<Field>\" | \"patch_external_id\""},
    {"remote_business_system", FERRY_CFG_STRING, "FERRY", 0,
     "RemoteBusinessSystemID of ObjectIdentifierMapping rows ferry writes"},
    {"expand", FERRY_CFG_TABLE, "{}", 0,
     "per entity set: $expand for fetch and delta reads, e.g. \"CustomerOrderItem\""},
    {NULL, 0, NULL, 0, NULL},
};

/*
 * Never written, whatever the metadata says: approval is the tenant's
 * workflow, and action flags trigger it (facts section 10).
 */
static const char *const never_written[] = {
    "ApprovalStatusCode",   "Submit",   "SetAsWon", "SetAsLost",      "SubmitForApproval",
    "WithdrawFromApproval", "Transfer", "Simulate", "SetAsCompleted", "PrimaryQuote",
    "UpdateOpportunity",    "External", NULL,
};

/* Entity sets whose records are not modified while in approval (facts section 10). */
static const char *const approval_guarded[] = {"OpportunityCollection", "SalesQuoteCollection",
                                               NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++) {
        if (strcmp(*list, s) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Compact JSON text of a request body through the host's writer when it has
 * one (the same bytes as json_dumps; a $batch carries a body per record).
 */
static char *dump_compact(const struct ferry_sap_instance *inst, const json_t *v)
{
    if (FERRY_HOST_HAS(inst->host, json_dumps) && inst->host->json_dumps) {
        return inst->host->json_dumps(v, JSON_COMPACT);
    }
    return json_dumps(v, JSON_COMPACT);
}

static char *dup_str(const char *s)
{
    char *d = s ? malloc(strlen(s) + 1) : NULL;
    if (d) {
        strcpy(d, s);
    }
    return d;
}

static char *concat(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c);
    char *out = malloc(n + 1);
    if (out) {
        strcpy(out, a);
        strcat(out, b);
        strcat(out, c);
    }
    return out;
}

static void sap_close(void *state)
{
    struct ferry_sap_instance *inst = state;
    if (!inst) {
        return;
    }
    free(inst->root);
    ferry__sap_free_secret(inst->auth);
    ferry__sap_free_secret(inst->client_auth);
    ferry__sap_free_secret(inst->token);
    free(inst->token_url);
    free(inst->scope);
    free(inst->assertion_file);
    free(inst->metadata_file);
    free(inst->remote_business_system);
    json_decref(inst->approval_codes);
    json_decref(inst->external_id);
    json_decref(inst->expand);
    json_decref(inst->meta);
    pthread_mutex_destroy(&inst->lock);
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

/* A table config value: absent/null -> def (JSON text), else must be of the wanted kind. */
static int config_table(const json_t *config, const char *key, const char *def, bool array,
                        json_t **out, struct ferry_err *err)
{
    json_t *v = json_object_get(config, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        v = json_loads(def, 0, NULL);
    } else {
        v = json_incref(v);
    }
    /* An empty Lua table may arrive as either an empty object or an empty array. */
    if (v && !array && json_is_array(v) && json_array_size(v) == 0) {
        json_decref(v);
        v = json_object();
    }
    if (!v || (array ? !json_is_array(v) : !json_is_object(v))) {
        json_decref(v);
        return ferry__sap_err_set(err, FERRY_ECONFIG, "%s must be %s", key,
                                  array ? "a list" : "a table of entity set = value");
    }
    *out = v;
    return 0;
}

static int check_external_id(const json_t *ext, struct ferry_err *err)
{
    const char *set;
    json_t *v;
    json_object_foreach((json_t *)ext, set, v)
    {
        const char *s = json_string_value(v);
        if (!ferry__sap_is_name(set) || !s) {
            return ferry__sap_err_set(err, FERRY_ECONFIG,
                                      "external_id: %s must name a strategy (a string)", set);
        }
        if (strcmp(s, "links") == 0 || strcmp(s, "patch_external_id") == 0 ||
            strcmp(s, "object_identifier_mapping") == 0) {
            continue;
        }
        if (strncmp(s, "object_identifier_mapping:", 26) == 0 && ferry__sap_is_name(s + 26)) {
            continue;
        }
        if (strncmp(s, "extension:", 10) == 0 && ferry__sap_is_name(s + 10)) {
            continue;
        }
        return ferry__sap_err_set(err, FERRY_ECONFIG,
                                  "external_id.%s: unknown strategy \"%s\" (links, "
                                  "object_identifier_mapping[:<scheme>], extension:<Field>, "
                                  "patch_external_id)",
                                  set, s);
    }
    return 0;
}

static int open_auth(struct ferry_sap_instance *inst, const json_t *config, struct ferry_err *err)
{
    const char *mode = config_str(config, "auth");
    const char *user = config_str(config, "username");
    const char *password = config_str(config, "password");

    if (!mode || strcmp(mode, "basic") == 0) {
        inst->auth_mode = FERRY_SAP_AUTH_BASIC;
        if (!user) {
            return ferry__sap_err_set(err, FERRY_ECONFIG, "username is required");
        }
        if (strchr(user, ':')) {
            /* Basic authentication splits user and password at the first ':'. */
            return ferry__sap_err_set(err, FERRY_ECONFIG, "username must not contain ':'");
        }
        if (!password) {
            return ferry__sap_err_set(err, FERRY_ECONFIG, "password is required");
        }
        inst->auth = ferry__sap_basic_auth(user, password);
        return inst->auth ? 0 : ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    if (strcmp(mode, "oauth") == 0) {
        const char *url = config_str(config, "token_url");
        const char *id = config_str(config, "client_id");
        const char *secret = config_str(config, "client_secret");
        inst->auth_mode = FERRY_SAP_AUTH_OAUTH;
        if (!url || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)) {
            return ferry__sap_err_set(err, FERRY_ECONFIG,
                                      "auth = \"oauth\" needs token_url (an http(s) URL)");
        }
        if (!id || !secret || strchr(id, ':')) {
            return ferry__sap_err_set(err, FERRY_ECONFIG,
                                      "auth = \"oauth\" needs client_id (without ':') and "
                                      "client_secret");
        }
        inst->token_url = dup_str(url);
        inst->client_auth = ferry__sap_basic_auth(id, secret);
        inst->scope = dup_str(config_str(config, "scope"));
        inst->assertion_file = dup_str(config_str(config, "assertion_file"));
        if (!inst->token_url || !inst->client_auth) {
            return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        }
        return 0;
    }
    return ferry__sap_err_set(err, FERRY_ECONFIG, "auth must be \"basic\" or \"oauth\", not \"%s\"",
                              mode);
}

static int sap_open(const struct ferry_host_api *host, struct ferry_call *call,
                    const json_t *config, void **state, struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    struct ferry_sap_instance *inst = NULL;
    const char *root = config_str(config, "service_root");
    long n = 0;

    *state = NULL;
    if (!json_is_object(config)) {
        return ferry__sap_err_set(err, FERRY_ECONFIG, "configuration is not an object");
    }
    inst = calloc(1, sizeof(*inst));
    if (!inst) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    if (pthread_mutex_init(&inst->lock, NULL) != 0) {
        free(inst);
        return ferry__sap_err_set(err, FERRY_ENOMEM, "cannot create a mutex");
    }
    inst->host = host;
    /* libxml2 wants its global state set up once, before threads parse. */
    xmlInitParser();
    rc = open_auth(inst, config, err);
    if (rc < 0) {
        goto cleanup;
    }
    rc = ferry__sap_root_normalise(root ? root : SAP_DEFAULT_ROOT, &inst->root, err);
    if (rc < 0) {
        goto cleanup;
    }
    if ((rc = config_int(config, "timeout", 30, 1, 3600, &n, err)) < 0) {
        goto cleanup;
    }
    inst->timeout_ms = n * 1000;
    if ((rc = config_int(config, "page_size", 1000, 1, 100000, &inst->page_size, err)) < 0) {
        goto cleanup;
    }
    if ((rc = config_int(config, "metadata_max_age", 86400, 0, 365L * 86400, &n, err)) < 0) {
        goto cleanup;
    }
    inst->metadata_max_age_ms = (int64_t)n * 1000;
    if ((rc = config_int(config, "delta_lag", 5, 0, 3600, &n, err)) < 0) {
        goto cleanup;
    }
    inst->delta_lag_ms = (int64_t)n * 1000;
    if ((rc = config_table(config, "approval_codes", "[\"3\"]", true, &inst->approval_codes, err)) <
            0 ||
        (rc = config_table(config, "external_id", "{}", false, &inst->external_id, err)) < 0 ||
        (rc = config_table(config, "expand", "{}", false, &inst->expand, err)) < 0 ||
        (rc = check_external_id(inst->external_id, err)) < 0) {
        goto cleanup;
    }
    inst->metadata_file = dup_str(config_str(config, "metadata_file"));
    inst->remote_business_system = dup_str(config_str(config, "remote_business_system"));
    if (!inst->remote_business_system) {
        inst->remote_business_system = dup_str("FERRY");
    }
    host->log(call, FERRY_LOG_INFO, "service root %s, %s authentication%s%s", inst->root,
              inst->auth_mode == FERRY_SAP_AUTH_OAUTH ? "OAuth bearer" : "Basic",
              inst->metadata_file ? ", metadata from " : "",
              inst->metadata_file ? inst->metadata_file : "");
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

/* Metadata when available; its absence is logged, not fatal (borrowed by the caller, decref). */
static json_t *meta_or_null(struct ferry_sap_instance *inst, struct ferry_call *call)
{
    json_t *meta = NULL;
    struct ferry_err e = {0};
    if (ferry__sap_meta_get(inst, call, &meta, &e) < 0) {
        inst->host->log(call, FERRY_LOG_DEBUG, "working without $metadata: %s", e.msg);
    }
    return meta;
}

static const char *key_of(const json_t *meta, const char *object)
{
    const char *k = json_string_value(json_object_get(ferry__sap_meta_set(meta, object), "key"));
    return k ? k : "ObjectID";
}

static const char *expand_of(const struct ferry_sap_instance *inst, const char *object)
{
    return json_string_value(json_object_get(inst->expand, object));
}

/* GET one entity; *entity keeps __metadata so that its etag travels with it. */
static int get_entity(struct ferry_sap_instance *inst, struct ferry_call *call, const char *object,
                      const char *id, const char *select, json_t **entity, struct ferry_err *err)
{
    struct ferry_http_resp resp = {0};
    char *url = NULL, *query = NULL, *enc = NULL;
    const char *expand = select ? NULL : expand_of(inst, object);
    const char *extra = select ? select : expand;
    int rc;

    *entity = NULL;
    if (extra) {
        enc = ferry__sap_pct_encode(extra);
        query = enc ? concat(select ? "?$format=json&$select=" : "?$format=json&$expand=", enc, "")
                    : NULL;
    } else {
        query = dup_str("?$format=json");
    }
    url = query ? ferry__sap_entity_url(inst->root, object, id, query) : NULL;
    if (!url) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
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
    if (rc == 0 && !ferry__sap_entity_etag(*entity)) {
        /* A single read also has the version in its header (facts 4); keep it with the record. */
        const char *etag = inst->host->http_header(&resp, "etag");
        json_t *md = json_object_get(*entity, "__metadata");
        if (etag && *etag) {
            if (!json_is_object(md)) {
                md = json_object();
                json_object_set_new(*entity, "__metadata", md);
            }
            json_object_set_new(md, "etag", json_string(etag));
        }
    }
cleanup:
    inst->host->http_resp_free(&resp);
    free(url);
    free(query);
    free(enc);
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
    return get_entity(state, call, object, id, NULL, record, err);
}

/* ---- delta reads ---------------------------------------------------------------------- */

/* "<root><object>?$filter=...&$orderby=EntityLastChangedOn&$format=json[&$expand=...]" */
static char *delta_url(const struct ferry_sap_instance *inst, const char *object, const char *since,
                       const char *upper)
{
    char filter[256];
    char *enc = NULL, *exp = NULL, *out = NULL;
    const char *expand = expand_of(inst, object);
    size_t n;

    if (since) {
        snprintf(filter, sizeof(filter),
                 DELTA_PROPERTY " ge datetimeoffset'%s' and " DELTA_PROPERTY
                                " le datetimeoffset'%s'",
                 since, upper);
    } else {
        snprintf(filter, sizeof(filter), DELTA_PROPERTY " le datetimeoffset'%s'", upper);
    }
    enc = ferry__sap_pct_encode(filter);
    exp = expand ? ferry__sap_pct_encode(expand) : NULL;
    if (!enc || (expand && !exp)) {
        goto cleanup;
    }
    n = strlen(inst->root) + strlen(object) + strlen(enc) + (exp ? strlen(exp) : 0) + 128;
    out = malloc(n);
    if (out) {
        snprintf(out, n, "%s%s?$filter=%s&$orderby=" DELTA_PROPERTY "&$format=json%s%s", inst->root,
                 object, enc, exp ? "&$expand=" : "", exp ? exp : "");
    }
cleanup:
    free(enc);
    free(exp);
    return out;
}

/*
 * The page token carries the poll's fixed upper bound and the query of the
 * server's __next link: "v1|<upper>|<query>". Only the query is kept, so a
 * __next that names another host (a proxy rewriting) cannot send our
 * credentials elsewhere.
 */
static char *make_token(const char *upper, const char *next)
{
    const char *q = strchr(next, '?');
    return q ? concat(TOKEN_PREFIX, upper, "|") : NULL;
}

static int record_item(const json_t *rec, const char *key, const char *upper, json_t *items)
{
    const char *id = json_string_value(json_object_get(rec, key));
    const char *changed = json_string_value(json_object_get(rec, DELTA_PROPERTY));
    char iso[32];
    int64_t ms;

    if (!id) {
        return FERRY_EPROTO;
    }
    if (changed && ferry__sap_odata_date_ms(changed, &ms) == 0) {
        ferry__sap_ms_to_iso(ms, iso);
    } else if (changed && ferry__sap_iso_to_ms(changed, &ms) == 0) {
        ferry__sap_ms_to_iso(ms, iso);
    } else {
        /* Not selected or absent: the poll's bound is a safe upper estimate. */
        snprintf(iso, sizeof(iso), "%s", upper);
    }
    return json_array_append_new(
               items, json_pack("{s:s, s:s, s:O}", "id", id, "modified", iso, "record", rec)) < 0
               ? FERRY_ENOMEM
               : 0;
}

static int sap_list_changes(void *state, struct ferry_call *call, const char *object,
                            const char *since, const char *page_token, json_t **page,
                            struct ferry_err *err)
{
    struct ferry_sap_instance *inst = state;
    struct ferry_http_resp resp = {0};
    json_t *meta = NULL, *results = NULL, *items = NULL, *rec;
    char upper[32], *url = NULL, *next = NULL, *token = NULL, *tmp = NULL;
    const char *key;
    size_t i;
    int rc;

    *page = NULL;
    if (check_object(object, err) < 0) {
        return FERRY_EINVAL;
    }
    if (since && !ferry__sap_is_iso(since)) {
        return ferry__sap_err_set(err, FERRY_EINVAL,
                                  "list_changes %s: since \"%.40s\" is not an ISO 8601 timestamp",
                                  object, since);
    }
    meta = meta_or_null(inst, call);
    if (ferry__sap_meta_set(meta, object) && !ferry__sap_meta_prop(meta, object, DELTA_PROPERTY)) {
        rc = ferry__sap_err_set(err, FERRY_EUNSUPPORTED,
                                "list_changes %s: the entity has no " DELTA_PROPERTY
                                " (read it through its parent)",
                                object);
        goto cleanup;
    }
    key = key_of(meta, object);
    if (page_token) {
        const char *a = strncmp(page_token, TOKEN_PREFIX, 3) == 0 ? page_token + 3 : NULL;
        const char *bar = a ? strchr(a, '|') : NULL;
        if (!bar || (size_t)(bar - a) >= sizeof(upper) || bar[1] != '?' ||
            strpbrk(bar + 1, " \r\n#")) {
            rc = ferry__sap_err_set(err, FERRY_EINVAL, "list_changes %s: malformed page token",
                                    object);
            goto cleanup;
        }
        memcpy(upper, a, (size_t)(bar - a));
        upper[bar - a] = '\0';
        tmp = concat(inst->root, object, bar + 1);
        url = tmp && !strstr(bar + 1, "$format=") ? concat(tmp, "&$format=json", "") : tmp;
        if (url != tmp) {
            free(tmp);
        }
        tmp = NULL;
    } else {
        ferry__sap_ms_to_iso(inst->host->now_ms(call) - inst->delta_lag_ms, upper);
        url = delta_url(inst, object, since, upper);
    }
    if (!url) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    rc = ferry__sap_send(inst, call, "GET", url, NULL, NULL, object, &resp, err);
    if (rc < 0) {
        goto cleanup;
    }
    if (resp.status != 200) {
        rc = status_error(inst, &resp, "GET", object, err);
        goto cleanup;
    }
    rc = ferry__sap_parse_collection(resp.body, resp.body_len, &results, &next, err);
    if (rc < 0) {
        goto cleanup;
    }
    items = json_array();
    json_array_foreach(results, i, rec)
    {
        if (record_item(rec, key, upper, items) < 0) {
            rc = ferry__sap_err_set(err, FERRY_EPROTO, "list_changes %s: entry %zu has no %s",
                                    object, i, key);
            goto cleanup;
        }
    }
    if (next) {
        tmp = make_token(upper, next);
        token = tmp ? concat(tmp, strchr(next, '?'), "") : NULL;
        if (!token) {
            rc = ferry__sap_err_set(err, FERRY_EPROTO,
                                    "list_changes %s: __next link without a query", object);
            goto cleanup;
        }
    }
    *page = json_pack("{s:O, s:s?}", "items", items, "next", token);
    if (!*page) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
cleanup:
    inst->host->http_resp_free(&resp);
    json_decref(meta);
    json_decref(results);
    json_decref(items);
    free(url);
    free(next);
    free(token);
    free(tmp);
    return rc;
}

/* ---- lookup ----------------------------------------------------------------------------- */

/* GET <set>?$filter=...; 0, 1 (into *found) or EDUPLICATE. `filter_enc` is percent-encoded. */
static int query_unique(struct ferry_sap_instance *inst, struct ferry_call *call,
                        const char *object, const char *what, char *url, const char *key,
                        json_t **found, struct ferry_err *err)
{
    struct ferry_http_resp resp = {0};
    json_t *results = NULL, *rec;
    const char *etag;
    int rc;

    *found = NULL;
    rc = ferry__sap_send(inst, call, "GET", url, NULL, NULL, object, &resp, err);
    if (rc < 0) {
        goto cleanup;
    }
    if (resp.status != 200) {
        rc = status_error(inst, &resp, "GET", object, err);
        goto cleanup;
    }
    rc = ferry__sap_parse_collection(resp.body, resp.body_len, &results, NULL, err);
    if (rc < 0 || json_array_size(results) == 0) {
        goto cleanup;
    }
    if (json_array_size(results) > 1) {
        /* The value is customer data (an e-mail, a name): it stays out of the job error. */
        rc = ferry__sap_err_set(err, FERRY_EDUPLICATE,
                                "lookup %s: %zu or more records have the same %s value", object,
                                json_array_size(results), what);
        goto cleanup;
    }
    rec = json_array_get(results, 0);
    etag = ferry__sap_entity_etag(rec);
    if (!json_is_string(json_object_get(rec, key))) {
        rc = ferry__sap_err_set(err, FERRY_EPROTO, "lookup %s: record without %s", object, key);
        goto cleanup;
    }
    *found = json_pack("{s:O, s:o, s:O}", "id", json_object_get(rec, key), "etag",
                       etag ? json_string(etag) : json_null(), "record", rec);
    if (!*found) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
cleanup:
    inst->host->http_resp_free(&resp);
    json_decref(results);
    return rc;
}

static int lookup_field(struct ferry_sap_instance *inst, struct ferry_call *call,
                        const json_t *meta, const char *object, const char *field,
                        const char *value, json_t **found, struct ferry_err *err)
{
    const json_t *prop = ferry__sap_meta_prop(meta, object, field);
    char *url;
    int rc;

    if (prop && !json_is_true(json_object_get(prop, "filterable"))) {
        /* SAP answers 400 for it; saying why here is kinder (facts 1.5). */
        return ferry__sap_err_set(err, FERRY_EINVAL,
                                  "lookup %s: %s is not filterable (sap:filterable=false)", object,
                                  field);
    }
    if (ferry__sap_meta_set(meta, object) && !prop) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s: no property %s in $metadata",
                                  object, field);
    }
    /* Two rows are enough to tell "unique" from "ambiguous". */
    url = ferry__sap_lookup_url(inst->root, object, field, value, 2);
    if (!url) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    rc = query_unique(inst, call, object, field, url, key_of(meta, object), found, err);
    free(url);
    return rc;
}

static const char *strategy_of(const struct ferry_sap_instance *inst, const char *object)
{
    return json_string_value(json_object_get(inst->external_id, object));
}

static const char *scheme_of(const char *strategy)
{
    const char *c = strchr(strategy, ':');
    return c ? c + 1 : NULL;
}

/* The ObjectIdentifierMapping row for a remote id, then the entity it names. */
static int lookup_mapping(struct ferry_sap_instance *inst, struct ferry_call *call,
                          const char *object, const char *strategy, const char *value,
                          json_t **found, struct ferry_err *err)
{
    json_t *row = NULL, *entity = NULL;
    char *lit = ferry__sap_literal_encode(value);
    char *sys = ferry__sap_literal_encode(inst->remote_business_system);
    const char *scheme = scheme_of(strategy);
    char *url = NULL;
    const char *local, *etag;
    size_t n;
    int rc;

    *found = NULL;
    if (!lit || !sys) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    n = strlen(inst->root) + strlen(lit) + strlen(sys) + (scheme ? strlen(scheme) : 0) + 256;
    url = malloc(n);
    if (!url) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    /* `and` across different properties is allowed; only `or` is restricted (facts 1.5). */
    snprintf(url, n,
             "%sObjectIdentifierMappingCollection?$filter=RemoteObjectID%%20eq%%20%%27%s%%27"
             "%%20and%%20RemoteBusinessSystemID%%20eq%%20%%27%s%%27%s%s%s&$format=json&$top=2",
             inst->root, lit, sys,
             scheme ? "%20and%20RemoteIdentifierDefiningSchemeCode%20eq%20%27" : "",
             scheme ? scheme : "", scheme ? "%27" : "");
    rc = query_unique(inst, call, "ObjectIdentifierMappingCollection", "RemoteObjectID", url,
                      "ObjectID", &row, err);
    if (rc < 0 || !row) {
        goto cleanup;
    }
    local = json_string_value(json_object_get(json_object_get(row, "record"), "LocalObjectID"));
    if (!local || !*local) {
        rc = ferry__sap_err_set(err, FERRY_EPROTO, "lookup %s: mapping row without LocalObjectID",
                                object);
        goto cleanup;
    }
    rc = get_entity(inst, call, object, local, NULL, &entity, err);
    if (rc == FERRY_ENOTFOUND) {
        inst->host->log(call, FERRY_LOG_WARN,
                        "lookup %s: ID mapping points at %s, which no longer exists", object,
                        local);
        rc = 0;
        goto cleanup;
    }
    if (rc < 0) {
        goto cleanup;
    }
    etag = ferry__sap_entity_etag(entity);
    *found = json_pack("{s:s, s:o, s:O}", "id", local, "etag",
                       etag ? json_string(etag) : json_null(), "record", entity);
cleanup:
    json_decref(row);
    json_decref(entity);
    free(lit);
    free(sys);
    free(url);
    return rc;
}

static int lookup_external(struct ferry_sap_instance *inst, struct ferry_call *call,
                           const json_t *meta, const char *object, const char *value,
                           json_t **found, struct ferry_err *err)
{
    const char *strategy = strategy_of(inst, object);
    if (!strategy) {
        return ferry__sap_err_set(err, FERRY_EINVAL,
                                  "lookup %s: no external_id strategy configured for it", object);
    }
    if (strcmp(strategy, "links") == 0) {
        return ferry__sap_err_set(err, FERRY_EUNSUPPORTED,
                                  "lookup %s: external ids live only in ferry's links table "
                                  "(external_id = \"links\")",
                                  object);
    }
    if (strcmp(strategy, "patch_external_id") == 0) {
        return lookup_field(inst, call, meta, object, "ExternalID", value, found, err);
    }
    if (strncmp(strategy, "extension:", 10) == 0) {
        return lookup_field(inst, call, meta, object, strategy + 10, value, found, err);
    }
    return lookup_mapping(inst, call, object, strategy, value, found, err);
}

static int sap_lookup(void *state, struct ferry_call *call, const char *object, const char *field,
                      const char *value, json_t **found, struct ferry_err *err)
{
    struct ferry_sap_instance *inst = state;
    json_t *meta;
    int rc;

    *found = NULL;
    if (check_object(object, err) < 0) {
        return FERRY_EINVAL;
    }
    if (!field || (strcmp(field, EXTERNAL_ID) != 0 && !ferry__sap_is_name(field))) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s: invalid field name", object);
    }
    if (!value) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s.%s: no value", object, field);
    }
    meta = meta_or_null(inst, call);
    if (strcmp(field, EXTERNAL_ID) == 0) {
        rc = lookup_external(inst, call, meta, object, value, found, err);
    } else {
        rc = lookup_field(inst, call, meta, object, field, value, found, err);
    }
    json_decref(meta);
    return rc;
}

static int sap_lookup_where(void *state, struct ferry_call *call, const char *object,
                            const json_t *where, json_t **found, struct ferry_err *err)
{
    struct ferry_sap_instance *inst = state;
    const char *field, *first = NULL;
    json_t *v, *meta;
    char *url;
    int rc = 0;

    *found = NULL;
    if (check_object(object, err) < 0) {
        return FERRY_EINVAL;
    }
    if (!json_is_object(where) || json_object_size(where) == 0) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s: no conditions", object);
    }
    meta = meta_or_null(inst, call);
    json_object_foreach((json_t *)where, field, v)
    {
        const json_t *prop = ferry__sap_meta_prop(meta, object, field);
        size_t i;
        json_t *x;
        bool ok = json_is_string(v) || (json_is_array(v) && json_array_size(v) > 0);
        json_array_foreach(json_is_array(v) ? v : NULL, i, x)
        {
            ok = ok && json_is_string(x);
        }
        first = first ? first : field;
        if (!ferry__sap_is_name(field) || !ok) {
            rc = ferry__sap_err_set(err, FERRY_EINVAL,
                                    "lookup %s: condition on %.64s must name a property and give "
                                    "a string or a list of strings",
                                    object, field);
        } else if (prop && !json_is_true(json_object_get(prop, "filterable"))) {
            rc = ferry__sap_err_set(err, FERRY_EINVAL,
                                    "lookup %s: %s is not filterable (sap:filterable=false)",
                                    object, field);
        } else if (ferry__sap_meta_set(meta, object) && !prop) {
            rc = ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s: no property %s in $metadata",
                                    object, field);
        }
        if (rc < 0) {
            break;
        }
    }
    if (rc == 0) {
        /* Two rows are enough to tell "unique" from "ambiguous". */
        url = ferry__sap_where_url(inst->root, object, where, 2);
        rc = url ? query_unique(inst, call, object, first, url, key_of(meta, object), found, err)
                 : ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        free(url);
    }
    json_decref(meta);
    return rc;
}

/* ASCII case-insensitive equality: SAP compares e-mail addresses without case. */
static bool same_text(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
        if (x != y) {
            return false;
        }
    }
    return *a == *b;
}

/*
 * One GET for up to a batch of values: $filter=F eq 'a' or F eq 'b' ...
 * (or on one property is allowed). Each answer row is matched back to its
 * value; a value with two rows is a duplicate. $top is one more than two
 * rows per value, so a full answer means rows were cut off and nothing can
 * be concluded: the host then asks one by one.
 */
static int sap_lookup_many(void *state, struct ferry_call *call, const char *object,
                           const char *field, const char *const *values, size_t n, json_t **found,
                           struct ferry_err *err)
{
    struct ferry_sap_instance *inst = state;
    struct ferry_http_resp resp = {0};
    json_t *where = NULL, *list = NULL, *results = NULL, *meta = NULL, *out = NULL;
    char *url = NULL;
    size_t i, k;
    json_t *rec;
    int rc = 0;

    *found = NULL;
    if (check_object(object, err) < 0) {
        return FERRY_EINVAL;
    }
    if (!field || !ferry__sap_is_name(field) || n == 0) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s: invalid field or no values",
                                  object);
    }
    meta = meta_or_null(inst, call);
    const json_t *prop = ferry__sap_meta_prop(meta, object, field);
    if ((prop && !json_is_true(json_object_get(prop, "filterable"))) ||
        (ferry__sap_meta_set(meta, object) && !prop)) {
        rc = ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s: %s cannot be filtered on", object,
                                field);
        goto cleanup;
    }
    list = json_array();
    for (i = 0; list && i < n; i++) {
        if (!values[i] || !*values[i]) {
            rc = ferry__sap_err_set(err, FERRY_EINVAL, "lookup %s: empty value", object);
            goto cleanup;
        }
        json_array_append_new(list, json_string(values[i]));
    }
    where = json_object();
    if (!list || !where || json_object_set(where, field, list) < 0 ||
        !(url = ferry__sap_where_url(inst->root, object, where, (int)(2 * n + 1)))) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
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
    if (json_array_size(results) >= 2 * n + 1) {
        rc = ferry__sap_err_set(err, FERRY_EPROTO, "lookup %s: the answer was cut off at %zu rows",
                                object, json_array_size(results));
        goto cleanup;
    }
    const char *key = key_of(meta, object);
    out = json_array();
    for (i = 0; out && i < n; i++) {
        json_t *hit = NULL;
        int hits = 0;
        json_array_foreach(results, k, rec)
        {
            const char *have = json_string_value(json_object_get(rec, field));
            if (have && same_text(have, values[i])) {
                hit = hits++ ? hit : rec;
            }
        }
        const char *etag = hit ? ferry__sap_entity_etag(hit) : NULL;
        json_t *el;
        if (hits > 1) {
            el = json_pack("{s:i, s:s}", "error", FERRY_EDUPLICATE, "message",
                           "two or more records have the same value");
        } else if (hit && !json_is_string(json_object_get(hit, key))) {
            el = json_pack("{s:i, s:s}", "error", FERRY_EPROTO, "message", "record without key");
        } else if (hit) {
            el = json_pack("{s:O, s:o, s:O}", "id", json_object_get(hit, key), "etag",
                           etag ? json_string(etag) : json_null(), "record", hit);
        } else {
            el = json_null();
        }
        if (!el || json_array_append_new(out, el) < 0) {
            rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
    }
    if (!out) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    *found = out;
    out = NULL;
cleanup:
    inst->host->http_resp_free(&resp);
    json_decref(out);
    json_decref(results);
    json_decref(where);
    json_decref(list);
    json_decref(meta);
    free(url);
    return rc;
}

/* ---- writes ----------------------------------------------------------------------------- */

/*
 * The body of a write: w->fields without what must never be sent. Returns
 * a new object; *ext is the "$external_id" pseudo-field's value (borrowed
 * from w->fields) or NULL.
 */
static json_t *prepare_fields(struct ferry_sap_instance *inst, struct ferry_call *call,
                              const json_t *meta, const struct ferry_write *w, const char **ext)
{
    json_t *out = json_object();
    const char *name;
    json_t *v;
    bool create = w->op == FERRY_WRITE_CREATE;

    *ext = NULL;
    if (!out) {
        return NULL;
    }
    json_object_foreach((json_t *)w->fields, name, v)
    {
        const json_t *prop;
        if (strcmp(name, EXTERNAL_ID) == 0) {
            *ext = json_string_value(v);
            continue;
        }
        if (in_list(never_written, name)) {
            inst->host->log(call, FERRY_LOG_WARN,
                            "%s: %s is never written by ferry (approval/action); dropped",
                            w->object, name);
            continue;
        }
        prop = ferry__sap_meta_prop(meta, w->object, name);
        if (prop && !json_is_true(json_object_get(prop, create ? "creatable" : "updatable"))) {
            inst->host->log(call, FERRY_LOG_WARN, "%s: %s is not %s in $metadata; dropped",
                            w->object, name, create ? "creatable" : "updatable");
            continue;
        }
        /* Unknown names go through: navigation arrays are deep inserts, and SAP judges the rest. */
        json_object_set(out, name, v);
    }
    return out;
}

static json_t *write_result(const char *id, const char *etag)
{
    return json_pack("{s:s, s:o}", "id", id, "etag", etag ? json_string(etag) : json_null());
}

/* One PATCH; *status is the HTTP status when a response came back, *new_etag a copy or NULL. */
static int patch_once(struct ferry_sap_instance *inst, struct ferry_call *call, const char *object,
                      const char *url, const char *etag, const char *body, long *status,
                      char **new_etag, struct ferry_err *err)
{
    struct ferry_http_resp resp = {0};
    const char *tag;
    int rc;

    *status = 0;
    *new_etag = NULL;
    rc = ferry__sap_send(inst, call, "PATCH", url, etag, body, object, &resp, err);
    if (rc < 0) {
        return rc;
    }
    *status = resp.status;
    if (resp.status != 204 && resp.status != 200) {
        rc = status_error(inst, &resp, "PATCH", object, err);
        goto cleanup;
    }
    /*
     * 204 has no body, so the new version is known only when the tenant sends
     * an etag header; a null etag tells the host to re-read before its next
     * conditional write.
     */
    tag = inst->host->http_header(&resp, "etag");
    if (tag && *tag) {
        *new_etag = dup_str(tag);
    }
cleanup:
    inst->host->http_resp_free(&resp);
    return rc;
}

/* After a create: make the external id findable again, as the object's strategy says. */
static void apply_external_id(struct ferry_sap_instance *inst, struct ferry_call *call,
                              const char *object, const char *id, const char *ext, char **etag)
{
    const char *strategy = strategy_of(inst, object);
    struct ferry_err e = {0};
    json_t *row = NULL;
    char *body = NULL, *url = NULL, *new_etag = NULL;
    long status = 0;
    int rc = 0;

    if (!strategy || !ext || strcmp(strategy, "links") == 0 ||
        strncmp(strategy, "extension:", 10) == 0) {
        return;
    }
    if (strcmp(strategy, "patch_external_id") == 0) {
        /* ExternalID is updatable but not creatable on opportunities (facts 8). */
        row = json_pack("{s:s}", "ExternalID", ext);
        body = row ? dump_compact(inst, row) : NULL;
        url = ferry__sap_entity_url(inst->root, object, id, "");
        rc = body && url ? patch_once(inst, call, object, url, *etag, body, &status, &new_etag, &e)
                         : ferry__sap_err_set(&e, FERRY_ENOMEM, "out of memory");
        if (rc == 0) {
            free(*etag);
            *etag = new_etag;
            new_etag = NULL;
        }
    } else {
        struct ferry_http_resp resp = {0};
        const char *scheme = scheme_of(strategy);
        row = json_pack("{s:s, s:s, s:s}", "LocalObjectID", id, "RemoteObjectID", ext,
                        "RemoteBusinessSystemID", inst->remote_business_system);
        if (row && scheme) {
            json_object_set_new(row, "RemoteIdentifierDefiningSchemeCode", json_string(scheme));
        }
        body = row ? dump_compact(inst, row) : NULL;
        url = concat(inst->root, "ObjectIdentifierMappingCollection", "");
        rc = body && url ? ferry__sap_send(inst, call, "POST", url, NULL, body,
                                           "ObjectIdentifierMappingCollection", &resp, &e)
                         : ferry__sap_err_set(&e, FERRY_ENOMEM, "out of memory");
        if (rc == 0 && resp.status != 201 && resp.status != 200) {
            rc = status_error(inst, &resp, "POST", "ObjectIdentifierMappingCollection", &e);
        }
        inst->host->http_resp_free(&resp);
    }
    if (rc < 0) {
        /*
         * The record exists; failing the job now would create it again on
         * retry. The links table still knows it; the safety net is missing.
         */
        inst->host->log(call, FERRY_LOG_ERROR,
                        "%s %s created, but its external id was not stored (%s): %s", object, id,
                        strategy, e.msg);
    }
    json_decref(row);
    free(body);
    free(url);
    free(new_etag);
}

static int write_create(struct ferry_sap_instance *inst, struct ferry_call *call,
                        const struct ferry_write *w, const char *body, const char *key,
                        const char *ext, json_t **result, struct ferry_err *err)
{
    struct ferry_http_resp resp = {0};
    /*
     * The created entity is the largest part of a create's cost (SAP renders
     * it, ferry parses it) and only its key and version are kept, which the
     * location and etag headers carry (facts section 3).
     */
    struct ferry_sap_req r = {
        .method = "POST", .body = body, .object = w->object, .no_response_payload = true};
    json_t *entity = NULL;
    char *url = concat(inst->root, w->object, ""), *etag = NULL, *id = NULL;
    const char *tag;
    bool sent = false;
    int rc;

    if (!url) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    r.url = url;
    r.sent = &sent;
    rc = ferry__sap_request(inst, call, &r, &resp, err);
    if (rc < 0) {
        if (sent && (rc == FERRY_ETIMEDOUT || rc == FERRY_ENETWORK)) {
            /* SAP may have created it: the host must look it up before any retry. */
            char cause[sizeof(err->msg)];
            memcpy(cause, err ? err->msg : "", err ? sizeof(cause) : 1);
            rc = ferry__sap_err_set(err, FERRY_EUNKNOWN_OUTCOME,
                                    "POST %s: no answer after the request was sent (%.120s)",
                                    w->object, cause);
        }
        goto cleanup;
    }
    if (resp.status != 201 && resp.status != 200) {
        rc = status_error(inst, &resp, "POST", w->object, err);
        goto cleanup;
    }
    id = ferry__sap_location_key(inst->host->http_header(&resp, "location"));
    /* The header is the precise, current version; the body's copy is the fallback. */
    tag = inst->host->http_header(&resp, "etag");
    if (tag && !*tag) {
        tag = NULL;
    }
    /* A tenant that ignores the header, or a header missing: the body says what they do not. */
    if (resp.body_len > 0 && (!id || !tag)) {
        rc = ferry__sap_parse_entity(resp.body, resp.body_len, &entity, id ? NULL : err);
        if (rc < 0 && !id) {
            goto cleanup;
        }
        if (!id && json_string_value(json_object_get(entity, key))) {
            id = dup_str(json_string_value(json_object_get(entity, key)));
        }
        if (!tag) {
            tag = ferry__sap_entity_etag(entity);
        }
        rc = 0;
    }
    if (!id || !*id) {
        rc = ferry__sap_err_set(err, FERRY_EPROTO,
                                "POST %s: created entity has no %s and no usable location header",
                                w->object, key);
        goto cleanup;
    }
    etag = dup_str(tag);
    apply_external_id(inst, call, w->object, id, ext, &etag);
    *result = write_result(id, etag);
    if (!*result) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
cleanup:
    inst->host->http_resp_free(&resp);
    json_decref(entity);
    free(url);
    free(etag);
    free(id);
    return rc;
}

static bool in_approval(const struct ferry_sap_instance *inst, const json_t *entity)
{
    const char *code = json_string_value(json_object_get(entity, "ApprovalStatusCode"));
    size_t i;
    json_t *v;
    if (!code) {
        return false;
    }
    json_array_foreach(inst->approval_codes, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), code) == 0) {
            return true;
        }
    }
    return false;
}

static int approval_error(const struct ferry_write *w, const json_t *entity, struct ferry_err *err)
{
    /* The prefix is the contract: rules can match "in approval:" and create a task instead. */
    return ferry__sap_err_set(err, FERRY_EFORBIDDEN,
                              "in approval: %s('%s') has ApprovalStatusCode %s and is not "
                              "modified",
                              w->object, w->id,
                              json_string_value(json_object_get(entity, "ApprovalStatusCode")));
}

static int write_update(struct ferry_sap_instance *inst, struct ferry_call *call,
                        const struct ferry_write *w, const char *body, json_t **result,
                        struct ferry_err *err)
{
    json_t *current = NULL;
    char *url = NULL, *new_etag = NULL, *first = NULL;
    const char *etag;
    bool guarded = in_list(approval_guarded, w->object);
    long status = 0;
    int rc;

    if (!w->id || !*w->id) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "update %s: no id", w->object);
    }
    if (guarded) {
        rc = get_entity(inst, call, w->object, w->id, "ApprovalStatusCode", &current, err);
        if (rc < 0) {
            goto cleanup;
        }
        if (in_approval(inst, current)) {
            rc = approval_error(w, current, err);
            goto cleanup;
        }
        json_decref(current);
        current = NULL;
    }
    url = ferry__sap_entity_url(inst->root, w->object, w->id, "");
    if (!url) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    rc = patch_once(inst, call, w->object, url, w->etag, body, &status, &new_etag, err);
    if (rc != FERRY_ECONFLICT || status != 412) {
        goto done;
    }
    /*
     * The host decided what to send under its ownership rules before the
     * write; a concurrent change in SAP to other fields survives because a
     * PATCH carries only these. Re-read the current version and apply once more.
     */
    inst->host->log(call, FERRY_LOG_WARN, "PATCH %s: 412, entity changed in SAP; re-reading",
                    w->object);
    rc = get_entity(inst, call, w->object, w->id, NULL, &current, err);
    if (rc < 0) {
        goto cleanup;
    }
    if (guarded && in_approval(inst, current)) {
        rc = approval_error(w, current, err);
        goto cleanup;
    }
    etag = ferry__sap_entity_etag(current);
    if (!etag) {
        rc = ferry__sap_err_set(err, FERRY_ECONFLICT,
                                "PATCH %s: 412 and the re-read entity carries no etag", w->object);
        goto cleanup;
    }
    first = dup_str(etag);
    rc = patch_once(inst, call, w->object, url, etag, body, &status, &new_etag, err);
    if (rc == FERRY_ECONFLICT && status == 412) {
        rc = ferry__sap_err_set(err, FERRY_ECONFLICT,
                                "PATCH %s: 412 twice; local version %s, remote version %s",
                                w->object, w->etag ? w->etag : "(none)", first ? first : "?");
        goto cleanup;
    }
done:
    if (rc == 0) {
        *result = write_result(w->id, new_etag);
        if (!*result) {
            rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        }
    }
cleanup:
    json_decref(current);
    free(url);
    free(new_etag);
    free(first);
    return rc;
}

static int sap_write(void *state, struct ferry_call *call, const struct ferry_write *w,
                     json_t **result, struct ferry_err *err)
{
    struct ferry_sap_instance *inst = state;
    json_t *meta = NULL, *fields = NULL;
    const char *ext = NULL, *strategy;
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
    meta = meta_or_null(inst, call);
    fields = prepare_fields(inst, call, meta, w, &ext);
    if (!fields) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    strategy = strategy_of(inst, w->object);
    if (w->op == FERRY_WRITE_CREATE && ext && strategy &&
        strncmp(strategy, "extension:", 10) == 0) {
        /* An extension field is an ordinary property: it travels with the create itself. */
        json_object_set_new(fields, strategy + 10, json_string(ext));
    }
    body = dump_compact(inst, fields);
    if (!body) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (w->op == FERRY_WRITE_CREATE) {
        rc = write_create(inst, call, w, body, key_of(meta, w->object), ext, result, err);
    } else if (w->op == FERRY_WRITE_UPDATE) {
        if (json_object_size(fields) == 0) {
            /* Everything was read-only: nothing to send, and SAP's version stays as it is. */
            *result = write_result(w->id ? w->id : "", w->etag);
            rc = *result ? 0 : ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
        rc = write_update(inst, call, w, body, result, err);
    } else {
        rc = ferry__sap_err_set(err, FERRY_EINVAL, "write %s: unknown operation %d", w->object,
                                w->op);
    }
cleanup:
    json_decref(meta);
    json_decref(fields);
    free(body);
    return rc;
}

/* ---- $batch (plugin-internal until the ABI has a bulk-write member) --------------------- */

int ferry__sap_write_batch(struct ferry_sap_instance *inst, struct ferry_call *call,
                           const struct ferry_write *writes, size_t n, json_t **results,
                           struct ferry_err *err)
{
    struct ferry_sap_batch_op *ops = calloc(n ? n : 1, sizeof(*ops));
    char **bodies = calloc(n ? n : 1, sizeof(char *));
    char **paths = calloc(n ? n : 1, sizeof(char *));
    struct ferry_http_resp resp = {0};
    struct ferry_sap_req r = {.method = "POST", .object = "$batch"};
    json_t *meta = NULL, *parts = NULL;
    char boundary[64], ctype[96], *payload = NULL, *url = NULL;
    size_t len = 0;
    int rc = 0;

    *results = NULL;
    if (!ops || !bodies || !paths) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    meta = meta_or_null(inst, call);
    for (size_t i = 0; i < n; i++) {
        const char *ext = NULL;
        json_t *f;
        if (check_object(writes[i].object, err) < 0 || !json_is_object(writes[i].fields) ||
            (writes[i].op == FERRY_WRITE_UPDATE && !writes[i].id)) {
            rc = ferry__sap_err_set(err, FERRY_EINVAL, "$batch: write %zu is invalid", i);
            goto cleanup;
        }
        f = prepare_fields(inst, call, meta, &writes[i], &ext);
        bodies[i] = f ? dump_compact(inst, f) : NULL;
        json_decref(f);
        paths[i] = writes[i].op == FERRY_WRITE_CREATE
                       ? dup_str(writes[i].object)
                       : ferry__sap_entity_url("", writes[i].object, writes[i].id, "");
        if (!bodies[i] || !paths[i]) {
            rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
        ops[i] = (struct ferry_sap_batch_op){
            .method = writes[i].op == FERRY_WRITE_CREATE ? "POST" : "PATCH",
            .path = paths[i],
            .if_match = writes[i].op == FERRY_WRITE_UPDATE ? writes[i].etag : NULL,
            .body = bodies[i],
            .group = i,
            /* As for a single create: the part's location and etag are all that is kept. */
            .no_response_payload = writes[i].op == FERRY_WRITE_CREATE,
        };
    }
    snprintf(boundary, sizeof(boundary), "batch_ferry_%lld", (long long)inst->host->now_ms(call));
    snprintf(ctype, sizeof(ctype), "multipart/mixed; boundary=%s", boundary);
    payload = ferry__sap_batch_build(boundary, ops, n, &len);
    url = concat(inst->root, "$batch", "");
    if (!payload || !url) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    r.url = url;
    r.body = payload;
    r.body_len = len;
    r.content_type = ctype;
    rc = ferry__sap_request(inst, call, &r, &resp, err);
    if (rc < 0) {
        goto cleanup;
    }
    if (resp.status != 202 && resp.status != 200) {
        rc = status_error(inst, &resp, "POST", "$batch", err);
        goto cleanup;
    }
    rc = ferry__sap_batch_parse(inst->host->http_header(&resp, "Content-Type"), resp.body,
                                resp.body_len, &parts, err);
    if (rc == 0) {
        rc = ferry__sap_batch_match(ops, n, parts, results, err);
    }
    /* A PATCH is answered 204 without a body: its id is the one it was sent to. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *res = json_array_get(*results, i);
        if (writes[i].op == FERRY_WRITE_UPDATE && json_is_true(json_object_get(res, "ok")) &&
            !json_is_string(json_object_get(res, "id"))) {
            json_object_set_new(res, "id", json_string(writes[i].id));
        }
    }
cleanup:
    for (size_t i = 0; bodies && paths && i < n; i++) {
        free(bodies[i]);
        free(paths[i]);
    }
    inst->host->http_resp_free(&resp);
    json_decref(meta);
    json_decref(parts);
    free(ops);
    free(bodies);
    free(paths);
    free(payload);
    free(url);
    return rc;
}

/* ---- describe, webhooks, descriptor --------------------------------------------------- */

static int sap_describe(void *state, struct ferry_call *call, json_t **objects,
                        struct ferry_err *err)
{
    struct ferry_sap_instance *inst = state;
    json_t *meta = NULL, *out;
    const char *set;
    json_t *v;
    int rc;

    *objects = NULL;
    rc = ferry__sap_meta_get(inst, call, &meta, err);
    if (rc < 0) {
        return rc;
    }
    out = ferry__sap_meta_describe(meta);
    json_decref(meta);
    if (!out) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    /* The pseudo-field a mapping sets to hand over its external id (see README). */
    json_object_foreach(inst->external_id, set, v)
    {
        json_t *props = json_object_get(json_object_get(out, set), "properties");
        if (props) {
            json_object_set_new(props, EXTERNAL_ID,
                                json_pack("{s:s, s:b, s:b, s:b}", "type", "Edm.String", "creatable",
                                          1, "updatable", 0, "filterable", 1));
        }
    }
    *objects = out;
    return 0;
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

/* Backfills: one $batch request, one changeset per write (see sap_sales_batch.h). */
static int sap_write_many(void *state, struct ferry_call *call, const struct ferry_write *writes,
                          size_t n, json_t **results, struct ferry_err *err)
{
    *results = NULL;
    if (!writes || n == 0) {
        return ferry__sap_err_set(err, FERRY_EINVAL, "write_many: nothing to write");
    }
    for (size_t i = 0; i < n; i++) {
        if (check_object(writes[i].object, err) < 0) {
            return ferry__sap_err_set(err, FERRY_EINVAL, "write_many: invalid object");
        }
    }
    return ferry__sap_write_batch(state, call, writes, n, results, err);
}

static const struct ferry_connector sap_connector = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "sap_sales",
    .version = "0.2.0",
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
    .describe = sap_describe,
    .write_many = sap_write_many,
    .lookup_where = sap_lookup_where,
    .lookup_many = sap_lookup_many,
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
