/* SPDX-License-Identifier: MIT */
/*
 * $metadata for the SAP Sales Cloud connector (see sap_sales_metadata.h):
 * the EDMX reader, and the instance cache that gets the document from a
 * file, the host's kv store or the tenant.
 */
#include "sap_sales_metadata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "sap_sales_session.h"

#define SAP_NS       "http://www.sap.com/Protocols/SAPData"
#define KV_KEY       "metadata"
#define RETRY_FAILED 60000 /* ms between failed loads, so a dead tenant is not hammered */

static bool is_elem(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* An attribute as a new jansson-independent C string is not needed: copy into json at once. */
static json_t *attr_str(xmlNode *n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    json_t *out = v ? json_string((const char *)v) : NULL;
    xmlFree(v);
    return out;
}

/* sap:<flag> or the default; anything but "false" counts as true, as SAP reads it. */
static bool sap_flag(xmlNode *n, const char *flag, bool def)
{
    xmlChar *v = xmlGetNsProp(n, (const xmlChar *)flag, (const xmlChar *)SAP_NS);
    bool out = def;
    if (v) {
        out = strcmp((const char *)v, "false") != 0;
    }
    xmlFree(v);
    return out;
}

static json_t *parse_property(xmlNode *p)
{
    json_t *prop = json_object();
    json_t *type = attr_str(p, "Type");
    xmlChar *nullable = xmlGetProp(p, (const xmlChar *)"Nullable");
    xmlChar *maxlen = xmlGetProp(p, (const xmlChar *)"MaxLength");

    if (!prop) {
        goto cleanup;
    }
    json_object_set_new(prop, "type", type ? type : json_string("Edm.String"));
    type = NULL;
    json_object_set_new(prop, "creatable", json_boolean(sap_flag(p, "creatable", true)));
    json_object_set_new(prop, "updatable", json_boolean(sap_flag(p, "updatable", true)));
    json_object_set_new(prop, "filterable", json_boolean(sap_flag(p, "filterable", true)));
    json_object_set_new(prop, "nullable",
                        json_boolean(!nullable || strcmp((const char *)nullable, "false") != 0));
    if (maxlen && strcmp((const char *)maxlen, "Max") != 0) {
        long n = strtol((const char *)maxlen, NULL, 10);
        if (n > 0) {
            json_object_set_new(prop, "max_length", json_integer(n));
        }
    }
cleanup:
    json_decref(type);
    xmlFree(nullable);
    xmlFree(maxlen);
    return prop;
}

/* One EntityType into {"type", "key", "properties", "navigations"}; NULL on ENOMEM. */
static json_t *parse_type(xmlNode *t, const char *qualified)
{
    json_t *out = json_pack("{s:s, s:{}, s:[]}", "type", qualified, "properties", "navigations");
    json_t *props, *navs;

    if (!out) {
        return NULL;
    }
    props = json_object_get(out, "properties");
    navs = json_object_get(out, "navigations");
    for (xmlNode *c = t->children; c; c = c->next) {
        if (is_elem(c, "Key")) {
            /* Only single-property keys are addressable as Set('<id>'); keep the first. */
            for (xmlNode *k = c->children; k; k = k->next) {
                if (is_elem(k, "PropertyRef") && !json_object_get(out, "key")) {
                    json_t *name = attr_str(k, "Name");
                    if (name) {
                        json_object_set_new(out, "key", name);
                    }
                }
            }
        } else if (is_elem(c, "Property")) {
            xmlChar *name = xmlGetProp(c, (const xmlChar *)"Name");
            if (name) {
                json_object_set_new(props, (const char *)name, parse_property(c));
            }
            xmlFree(name);
        } else if (is_elem(c, "NavigationProperty")) {
            json_t *name = attr_str(c, "Name");
            if (name) {
                json_array_append_new(navs, name);
            }
        }
    }
    return out;
}

/* Collects every EntityType of a Schema into types, keyed "Namespace.Name". */
static void collect_types(xmlNode *schema, json_t *types)
{
    xmlChar *ns = xmlGetProp(schema, (const xmlChar *)"Namespace");
    char qualified[512];

    for (xmlNode *c = schema->children; c; c = c->next) {
        xmlChar *name;
        if (!is_elem(c, "EntityType")) {
            continue;
        }
        name = xmlGetProp(c, (const xmlChar *)"Name");
        if (name) {
            snprintf(qualified, sizeof(qualified), "%s%s%s", ns ? (const char *)ns : "",
                     ns ? "." : "", (const char *)name);
            json_object_set_new(types, qualified, parse_type(c, qualified));
        }
        xmlFree(name);
    }
    xmlFree(ns);
}

static void collect_sets(xmlNode *schema, const json_t *types, json_t *meta)
{
    for (xmlNode *c = schema->children; c; c = c->next) {
        if (!is_elem(c, "EntityContainer")) {
            continue;
        }
        for (xmlNode *s = c->children; s; s = s->next) {
            xmlChar *name, *type;
            json_t *t;
            if (!is_elem(s, "EntitySet")) {
                continue;
            }
            name = xmlGetProp(s, (const xmlChar *)"Name");
            type = xmlGetProp(s, (const xmlChar *)"EntityType");
            t = (name && type) ? json_object_get(types, (const char *)type) : NULL;
            if (t) {
                json_object_set(meta, (const char *)name, t);
            }
            xmlFree(name);
            xmlFree(type);
        }
    }
}

/* Schemas sit under edmx:Edmx/edmx:DataServices; walk two levels to find them. */
static void walk_schemas(xmlNode *root, json_t *types, json_t *meta, bool sets)
{
    for (xmlNode *ds = root->children; ds; ds = ds->next) {
        if (!is_elem(ds, "DataServices")) {
            continue;
        }
        for (xmlNode *sc = ds->children; sc; sc = sc->next) {
            if (!is_elem(sc, "Schema")) {
                continue;
            }
            if (sets) {
                collect_sets(sc, types, meta);
            } else {
                collect_types(sc, types);
            }
        }
    }
}

int ferry__sap_meta_parse(const char *xml, size_t len, json_t **meta, struct ferry_err *err)
{
    xmlDoc *doc = NULL;
    xmlNode *root;
    json_t *types = NULL, *out = NULL;
    int rc = FERRY_EBADINPUT;

    *meta = NULL;
    if (!xml || len == 0 || len > (size_t)INT32_MAX) {
        return ferry__sap_err_set(err, FERRY_EBADINPUT, "$metadata: empty document");
    }
    /*
     * NONET: never fetch anything the document points at. No NOENT and no
     * DTDLOAD: entities stay unexpanded and external DTDs unread, so a
     * hostile document cannot read files or expand itself (XXE, billion laughs).
     */
    doc = xmlReadMemory(xml, (int)len, "metadata.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *xe = xmlGetLastError();
        rc =
            ferry__sap_err_set(err, FERRY_EBADINPUT, "$metadata is not well-formed XML%s%s",
                               xe && xe->message ? ": " : "", xe && xe->message ? xe->message : "");
        goto cleanup;
    }
    root = xmlDocGetRootElement(doc);
    if (!root || !is_elem(root, "Edmx")) {
        rc = ferry__sap_err_set(err, FERRY_EBADINPUT, "$metadata: root element is not edmx:Edmx");
        goto cleanup;
    }
    types = json_object();
    out = json_object();
    if (!types || !out) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    walk_schemas(root, types, out, false);
    walk_schemas(root, types, out, true);
    if (json_object_size(out) == 0) {
        rc = ferry__sap_err_set(err, FERRY_EBADINPUT, "$metadata: no entity sets");
        goto cleanup;
    }
    *meta = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(out);
    json_decref(types);
    xmlFreeDoc(doc);
    return rc;
}

json_t *ferry__sap_meta_describe(const json_t *meta)
{
    json_t *out = json_object();
    const char *set;
    json_t *entry;

    if (!out) {
        return NULL;
    }
    json_object_foreach((json_t *)meta, set, entry)
    {
        json_t *key = json_object_get(entry, "key");
        json_t *d = json_pack("{s:O, s:O}", "key", key ? key : json_null(), "properties",
                              json_object_get(entry, "properties"));
        if (!d || json_object_set_new(out, set, d) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

const json_t *ferry__sap_meta_set(const json_t *meta, const char *set)
{
    return meta && set ? json_object_get(meta, set) : NULL;
}

const json_t *ferry__sap_meta_prop(const json_t *meta, const char *set, const char *prop)
{
    return json_object_get(json_object_get(ferry__sap_meta_set(meta, set), "properties"), prop);
}

bool ferry__sap_meta_is_nav(const json_t *meta, const char *set, const char *name)
{
    const json_t *navs = json_object_get(ferry__sap_meta_set(meta, set), "navigations");
    size_t i;
    json_t *v;
    json_array_foreach(navs, i, v)
    {
        if (strcmp(json_string_value(v), name) == 0) {
            return true;
        }
    }
    return false;
}

/* Reads a whole file; caller frees. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    *len = 0;
    if (!f) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static bool host_has_kv(const struct ferry_host_api *host)
{
    return FERRY_HOST_HAS(host, kv_free) && host->kv_get && host->kv_put && host->kv_free;
}

/* GET <root>$metadata; *xml is a new string on success. */
static int fetch_remote(struct ferry_sap_instance *inst, struct ferry_call *call, char **xml,
                        size_t *len, struct ferry_err *err)
{
    struct ferry_http_resp resp = {0};
    char *url = malloc(strlen(inst->root) + sizeof("$metadata"));
    struct ferry_sap_req r = {
        .method = "GET", .object = "$metadata", .flags = FERRY_HTTP_NO_AUDIT_BODY};
    int rc;

    *xml = NULL;
    if (!url) {
        return ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    strcpy(url, inst->root);
    strcat(url, "$metadata");
    r.url = url;
    rc = ferry__sap_request(inst, call, &r, &resp, err);
    free(url);
    if (rc < 0) {
        return rc;
    }
    if (resp.status != 200) {
        rc = ferry__sap_status_error(resp.status, resp.body, resp.body_len,
                                     inst->host->http_header(&resp, "Retry-After"), "GET $metadata",
                                     err);
    } else {
        *xml = resp.body;
        *len = resp.body_len;
        resp.body = NULL;
        resp.body_len = 0;
    }
    inst->host->http_resp_free(&resp);
    return rc;
}

/* Loads into inst->meta; called with inst->lock held. */
static int load_locked(struct ferry_sap_instance *inst, struct ferry_call *call, int64_t now,
                       struct ferry_err *err)
{
    const struct ferry_host_api *host = inst->host;
    char *cached = NULL, *xml = NULL;
    int64_t cached_at = 0;
    size_t len = 0;
    json_t *parsed = NULL;
    struct ferry_err kerr = {0};
    int rc;

    if (inst->metadata_file) {
        xml = read_file(inst->metadata_file, &len);
        if (!xml) {
            return ferry__sap_err_set(err, FERRY_ECONFIG, "metadata_file %s cannot be read",
                                      inst->metadata_file);
        }
        rc = ferry__sap_meta_parse(xml, len, &parsed, err);
        free(xml);
        if (rc == 0) {
            inst->meta = parsed;
            inst->meta_at_ms = INT64_MAX / 2; /* a file never goes stale */
            inst->meta_failed_ms = 0;
        }
        return rc;
    }
    if (host_has_kv(host) && host->kv_get(call, KV_KEY, &cached, &cached_at, &kerr) < 0) {
        cached = NULL;
    }
    if (cached && !inst->meta && now - cached_at < inst->metadata_max_age_ms &&
        ferry__sap_meta_parse(cached, strlen(cached), &parsed, NULL) == 0) {
        inst->meta = parsed;
        inst->meta_at_ms = cached_at;
        inst->meta_failed_ms = 0;
        rc = 0;
        goto cleanup;
    }
    rc = fetch_remote(inst, call, &xml, &len, err);
    if (rc == 0) {
        rc = ferry__sap_meta_parse(xml, len, &parsed, err);
    }
    if (rc == 0) {
        json_decref(inst->meta);
        inst->meta = parsed;
        inst->meta_at_ms = now;
        inst->meta_failed_ms = 0;
        if (host_has_kv(host) && host->kv_put(call, KV_KEY, xml, &kerr) < 0) {
            host->log(call, FERRY_LOG_WARN, "$metadata: not cached: %s", kerr.msg);
        }
        host->log(call, FERRY_LOG_INFO, "$metadata loaded from the tenant: %zu entity sets",
                  json_object_size(parsed));
        goto cleanup;
    }
    /* The tenant is unreachable or sent junk: an old copy beats none. */
    if (!inst->meta && cached &&
        ferry__sap_meta_parse(cached, strlen(cached), &parsed, NULL) == 0) {
        inst->meta = parsed;
        inst->meta_at_ms = cached_at;
    }
    if (inst->meta) {
        host->log(call, FERRY_LOG_WARN, "$metadata refresh failed, using the cached copy: %s",
                  err ? err->msg : "");
        rc = 0;
    }
cleanup:
    if (cached) {
        host->kv_free(cached);
    }
    free(xml);
    return rc;
}

int ferry__sap_meta_get(struct ferry_sap_instance *inst, struct ferry_call *call, json_t **meta,
                        struct ferry_err *err)
{
    int64_t now = inst->host->now_ms(call);
    int rc = 0;

    *meta = NULL;
    pthread_mutex_lock(&inst->lock);
    if (inst->meta && now - inst->meta_at_ms < inst->metadata_max_age_ms) {
        goto done;
    }
    if (inst->meta_failed_ms && now - inst->meta_failed_ms < RETRY_FAILED) {
        if (!inst->meta) {
            rc = ferry__sap_err_set(err, FERRY_EUNAVAILABLE,
                                    "$metadata unavailable (last attempt failed)");
        }
        goto done;
    }
    /* Cleared by a successful load; a fallback to an old copy counts as a failure. */
    inst->meta_failed_ms = now;
    rc = load_locked(inst, call, now, err);
done:
    if (inst->meta) {
        *meta = json_incref(inst->meta);
        rc = 0;
    }
    pthread_mutex_unlock(&inst->lock);
    return rc;
}
