/* SPDX-License-Identifier: MIT */
/*
 * Atom XML to the OData v2 JSON envelope (see sap_sales_atom.h), with
 * libxml2 in its safe mode: no network, no entity expansion, no DTD.
 */
#include "sap_sales_atom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#define NS_M "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
#define NS_D "http://schemas.microsoft.com/ado/2007/08/dataservices"

bool ferry__sap_is_xml(const char *body, size_t len)
{
    for (size_t i = 0; body && i < len; i++) {
        if (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n') {
            continue;
        }
        return body[i] == '<';
    }
    return false;
}

static bool is_elem(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static bool in_ns(const xmlNode *n, const char *ns)
{
    return n->ns && n->ns->href && strcmp((const char *)n->ns->href, ns) == 0;
}

static xmlNode *child(xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next) {
        if (is_elem(c, name)) {
            return c;
        }
    }
    return NULL;
}

static json_t *text_of(xmlNode *n)
{
    xmlChar *t = xmlNodeGetContent(n);
    json_t *out = json_string(t ? (const char *)t : "");
    xmlFree(t);
    return out;
}

static json_t *convert_entry(xmlNode *entry);
static json_t *convert_feed(xmlNode *feed);

/* A d:* element to a JSON value according to its m:type. */
static json_t *convert_value(xmlNode *p)
{
    xmlChar *isnull = xmlGetNsProp(p, (const xmlChar *)"null", (const xmlChar *)NS_M);
    xmlChar *type = xmlGetNsProp(p, (const xmlChar *)"type", (const xmlChar *)NS_M);
    xmlChar *text = NULL;
    json_t *out = NULL;
    bool complex = false;

    if (isnull && strcmp((const char *)isnull, "true") == 0) {
        out = json_null();
        goto cleanup;
    }
    for (xmlNode *c = p->children; c; c = c->next) {
        complex |= c->type == XML_ELEMENT_NODE && in_ns(c, NS_D);
    }
    if (complex) {
        /* A complex type ({"content": ..., "languageCode": ...}): its members the same way. */
        out = json_object();
        if (type) {
            json_object_set_new(out, "__metadata", json_pack("{s:s}", "type", (const char *)type));
        }
        for (xmlNode *c = p->children; c; c = c->next) {
            if (c->type == XML_ELEMENT_NODE && in_ns(c, NS_D)) {
                json_object_set_new(out, (const char *)c->name, convert_value(c));
            }
        }
        goto cleanup;
    }
    text = xmlNodeGetContent(p);
    if (!text) {
        out = json_string("");
        goto cleanup;
    }
    if (type && strcmp((const char *)type, "Edm.Boolean") == 0) {
        out = json_boolean(strcmp((const char *)text, "true") == 0);
    } else if (type && (strcmp((const char *)type, "Edm.Int32") == 0 ||
                        strcmp((const char *)type, "Edm.Int16") == 0 ||
                        strcmp((const char *)type, "Edm.Byte") == 0 ||
                        strcmp((const char *)type, "Edm.SByte") == 0)) {
        out = json_integer(strtoll((const char *)text, NULL, 10));
    } else if (type && (strcmp((const char *)type, "Edm.DateTimeOffset") == 0 ||
                        strcmp((const char *)type, "Edm.DateTime") == 0)) {
        int64_t ms;
        char buf[48];
        if (ferry__sap_iso_to_ms((const char *)text, &ms) == 0) {
            snprintf(buf, sizeof(buf), "/Date(%lld)/", (long long)ms);
            out = json_string(buf);
        } else {
            out = json_string((const char *)text);
        }
    } else {
        out = json_string((const char *)text);
    }
cleanup:
    xmlFree(isnull);
    xmlFree(type);
    xmlFree(text);
    return out;
}

static void add_properties(json_t *out, xmlNode *props)
{
    for (xmlNode *p = props ? props->children : NULL; p; p = p->next) {
        if (p->type == XML_ELEMENT_NODE && in_ns(p, NS_D)) {
            json_object_set_new(out, (const char *)p->name, convert_value(p));
        }
    }
}

/* <link rel=".../related/X" title="X" href="..."> with or without m:inline. */
static void add_navigation(json_t *out, xmlNode *link)
{
    xmlChar *rel = xmlGetProp(link, (const xmlChar *)"rel");
    xmlChar *title = xmlGetProp(link, (const xmlChar *)"title");
    xmlChar *href = xmlGetProp(link, (const xmlChar *)"href");
    const char *marker = "/related/";
    const char *name = NULL;
    xmlNode *inl = NULL;

    if (!rel || !strstr((const char *)rel, marker)) {
        goto cleanup;
    }
    name = title ? (const char *)title : strstr((const char *)rel, marker) + strlen(marker);
    for (xmlNode *c = link->children; c; c = c->next) {
        if (is_elem(c, "inline") && in_ns(c, NS_M)) {
            inl = c;
        }
    }
    if (inl) {
        xmlNode *f = child(inl, "feed");
        xmlNode *e = child(inl, "entry");
        json_t *v = NULL;
        if (f) {
            v = convert_feed(f);
            json_t *res = json_incref(json_object_get(json_object_get(v, "d"), "results"));
            json_decref(v);
            v = json_pack("{s:o}", "results", res);
        } else if (e) {
            v = convert_entry(e);
        } else {
            v = json_null();
        }
        json_object_set_new(out, name, v);
    } else {
        json_object_set_new(
            out, name, json_pack("{s:{s:s}}", "__deferred", "uri", href ? (const char *)href : ""));
    }
cleanup:
    xmlFree(rel);
    xmlFree(title);
    xmlFree(href);
}

static json_t *convert_entry(xmlNode *entry)
{
    json_t *out = json_object();
    json_t *meta = json_object();
    xmlChar *etag = xmlGetNsProp(entry, (const xmlChar *)"etag", (const xmlChar *)NS_M);
    xmlNode *props = NULL;

    for (xmlNode *c = entry->children; c; c = c->next) {
        if (is_elem(c, "id")) {
            json_object_set_new(meta, "uri", text_of(c));
        } else if (is_elem(c, "category")) {
            xmlChar *term = xmlGetProp(c, (const xmlChar *)"term");
            if (term) {
                json_object_set_new(meta, "type", json_string((const char *)term));
            }
            xmlFree(term);
        } else if (is_elem(c, "link")) {
            add_navigation(out, c);
        } else if (is_elem(c, "content")) {
            props = child(c, "properties");
        } else if (is_elem(c, "properties") && in_ns(c, NS_M)) {
            /* Media link entries carry the properties beside the content. */
            props = c;
        }
    }
    if (etag) {
        json_object_set_new(meta, "etag", json_string((const char *)etag));
    }
    xmlFree(etag);
    json_object_set_new(out, "__metadata", meta);
    add_properties(out, props);
    return out;
}

static json_t *convert_feed(xmlNode *feed)
{
    json_t *results = json_array();
    json_t *d = json_object();

    for (xmlNode *c = feed->children; c; c = c->next) {
        if (is_elem(c, "entry")) {
            json_array_append_new(results, convert_entry(c));
        } else if (is_elem(c, "count") && in_ns(c, NS_M)) {
            /* As in the JSON format, where __count is a string too. */
            json_object_set_new(d, "__count", text_of(c));
        } else if (is_elem(c, "link")) {
            xmlChar *rel = xmlGetProp(c, (const xmlChar *)"rel");
            xmlChar *href = xmlGetProp(c, (const xmlChar *)"href");
            if (rel && href && strcmp((const char *)rel, "next") == 0) {
                json_object_set_new(d, "__next", json_string((const char *)href));
            }
            xmlFree(rel);
            xmlFree(href);
        }
    }
    json_object_set_new(d, "results", results);
    return json_pack("{s:o}", "d", d);
}

static json_t *convert_error(xmlNode *e)
{
    xmlNode *code = child(e, "code");
    xmlNode *msg = child(e, "message");
    xmlChar *lang = msg ? xmlNodeGetLang(msg) : NULL;
    json_t *out =
        json_pack("{s:{s:o, s:{s:s, s:o}}}", "error", "code",
                  code ? text_of(code) : json_string(""), "message", "lang",
                  lang ? (const char *)lang : "", "value", msg ? text_of(msg) : json_string(""));
    xmlFree(lang);
    return out;
}

int ferry__sap_atom_to_json(const char *body, size_t len, json_t **doc, struct ferry_err *err)
{
    xmlDoc *x = NULL;
    xmlNode *root;
    int rc = FERRY_EPROTO;

    *doc = NULL;
    if (!body || len == 0 || len > (size_t)INT32_MAX) {
        return ferry__sap_err_set(err, FERRY_EPROTO, "empty XML body");
    }
    x = xmlReadMemory(body, (int)len, "response.xml", NULL,
                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!x) {
        return ferry__sap_err_set(err, FERRY_EPROTO,
                                  "response is neither JSON nor well-formed XML");
    }
    root = xmlDocGetRootElement(x);
    if (is_elem(root, "feed")) {
        *doc = convert_feed(root);
    } else if (is_elem(root, "entry")) {
        *doc = json_pack("{s:{s:o}}", "d", "results", convert_entry(root));
    } else if (is_elem(root, "error")) {
        *doc = convert_error(root);
    } else {
        ferry__sap_err_set(err, FERRY_EPROTO, "XML response with unexpected root <%s>",
                           root ? (const char *)root->name : "");
        goto cleanup;
    }
    if (!*doc) {
        rc = ferry__sap_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    rc = 0;
cleanup:
    xmlFreeDoc(x);
    return rc;
}
