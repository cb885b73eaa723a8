/* SPDX-License-Identifier: MIT */
/*
 * Webhook registration (see bigcommerce_hooks.h). The needs are turned into
 * scopes with the webhook module's scope table, so a scope is registered
 * exactly when decode understands it. Hooks are per API account (facts
 * 8.1): the list shows only ours. A hook matches a need when its
 * destination is our URL and its scope is the needed one or a wildcard over
 * it. A hook that BigCommerce deactivated after failed deliveries (facts
 * 8.3) is switched back on; events in between are lost, which the delta
 * poll repairs. Bodies that carry the webhook secret are kept out of the
 * audit table.
 */
#include "bigcommerce_hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bigcommerce_api.h"
#include "bigcommerce_webhook.h"

#define BC_HOOKS_PAGE_LIMIT 250
#define BC_HOOKS_MAX_PAGES  100

static int event_wanted(const json_t *events, const char *event)
{
    size_t i;
    json_t *e;
    if (!json_is_array(events)) {
        return 1; /* absent: all events of the object */
    }
    json_array_foreach(events, i, e)
    {
        if (json_is_string(e) && strcmp(json_string_value(e), event) == 0) {
            return 1;
        }
    }
    return 0;
}

static int report_add(json_t *report, const char *scope, json_t *id, const char *state,
                      const char *detail)
{
    json_t *el = json_pack("{s:s, s:O, s:s, s:s}", "scope", scope, "id", id ? id : json_null(),
                           "state", state, "detail", detail);
    return el ? json_array_append_new(report, el) : -1;
}

/* Scopes needed (a new array of strings, no duplicates); unmet needs go to report as failed. */
static int needed_scopes(const json_t *needs, json_t *report, json_t **out, struct ferry_err *err)
{
    size_t nscopes, i, k;
    const struct ferry_bc_scope *table = ferry__bc_scopes(&nscopes);
    json_t *scopes = json_array();
    json_t *need;
    if (!scopes) {
        return ferry__bc_err(err, FERRY_ENOMEM, "out of memory");
    }
    json_array_foreach(needs, i, need)
    {
        const char *object = json_string_value(json_object_get(need, "object"));
        json_t *events = json_object_get(need, "events");
        json_t *e;
        int any = 0;
        if (!object) {
            continue;
        }
        for (k = 0; k < nscopes; k++) {
            if (table[k].decode_only || strcmp(table[k].object, object) != 0 ||
                !event_wanted(events, table[k].event)) {
                continue;
            }
            any = 1;
            int dup = 0;
            size_t j;
            json_t *s;
            json_array_foreach(scopes, j, s)
            {
                dup |= strcmp(json_string_value(s), table[k].scope) == 0;
            }
            if (!dup && json_array_append_new(scopes, json_string(table[k].scope)) < 0) {
                json_decref(scopes);
                return ferry__bc_err(err, FERRY_ENOMEM, "out of memory");
            }
        }
        /* An event nobody can deliver is a configuration the operator must hear about. */
        json_array_foreach(events, k, e)
        {
            int found = 0;
            const char *ev = json_string_value(e);
            for (size_t t = 0; ev && t < nscopes; t++) {
                found |= !table[t].decode_only && strcmp(table[t].object, object) == 0 &&
                         strcmp(table[t].event, ev) == 0;
            }
            if (!found) {
                char what[160], detail[200];
                snprintf(what, sizeof(what), "%.60s:%.60s", object, ev ? ev : "?");
                snprintf(detail, sizeof(detail), "no BigCommerce webhook scope delivers %s", what);
                report_add(report, what, NULL, "failed", detail);
            }
        }
        if (!any && !json_is_array(events)) {
            char detail[160];
            snprintf(detail, sizeof(detail), "BigCommerce has no webhooks for object %.60s",
                     object);
            report_add(report, object, NULL, "failed", detail);
        }
    }
    *out = scopes;
    return 0;
}

/* Every hook of this API account, all pages. *out: new array. */
static int list_hooks(const struct ferry_bc_state *st, struct ferry_call *call, json_t **out,
                      struct ferry_err *err)
{
    json_t *all = json_array();
    int rc = 0;
    if (!all) {
        return ferry__bc_err(err, FERRY_ENOMEM, "out of memory");
    }
    for (long page = 1; page <= BC_HOOKS_MAX_PAGES; page++) {
        struct ferry_bc_buf url = {0};
        json_t *root = NULL, *pg;
        ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
        ferry__bc_buf_printf(&url, "/hooks?page=%ld&limit=%d", page, BC_HOOKS_PAGE_LIMIT);
        if (url.oom) {
            rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory");
        } else {
            /* Hooks carry their custom headers, the webhook secret among them. */
            rc = ferry__bc_request_flags(st, call, FERRY_BC_API_STORE, "GET", url.p, NULL, "hook",
                                         FERRY_HTTP_NO_AUDIT_BODY, NULL, &root, err);
        }
        ferry__bc_buf_free(&url);
        if (rc < 0) {
            break;
        }
        if (!json_is_array(json_object_get(root, "data"))) {
            json_decref(root);
            rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce /v3/hooks `data` is not an array");
            break;
        }
        json_array_extend(all, json_object_get(root, "data"));
        pg = json_object_get(json_object_get(root, "meta"), "pagination");
        int more = json_array_size(json_object_get(root, "data")) > 0 &&
                   json_integer_value(json_object_get(pg, "current_page")) <
                       json_integer_value(json_object_get(pg, "total_pages"));
        json_decref(root);
        if (!more) {
            break;
        }
    }
    if (rc < 0) {
        json_decref(all);
        return rc;
    }
    *out = all;
    return 0;
}

static int scope_covers(const char *hook_scope, const char *scope)
{
    size_t n = strlen(hook_scope);
    if (strcmp(hook_scope, scope) == 0) {
        return 1;
    }
    /* A trailing slash-star wildcard covers its prefix (facts 8.1). */
    return n >= 2 && strcmp(hook_scope + n - 2, "/*") == 0 &&
           strncmp(hook_scope, scope, n - 1) == 0;
}

static char *hook_body(const struct ferry_bc_state *st, const char *scope, const char *url,
                       int full)
{
    json_t *headers = json_object();
    json_t *body = NULL;
    char *text = NULL;
    if (headers && json_object_set_new(headers, st->webhook_secret_header,
                                       json_string(st->webhook_secret)) == 0) {
        body = full ? json_pack("{s:s, s:s, s:b, s:O}", "scope", scope, "destination", url,
                                "is_active", 1, "headers", headers)
                    : json_pack("{s:b, s:O}", "is_active", 1, "headers", headers);
    }
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
    }
    json_decref(body);
    json_decref(headers);
    return text;
}

/* POST a new hook or PUT is_active on an old one; records the outcome in report. */
static int apply_one(const struct ferry_bc_state *st, struct ferry_call *call, const char *scope,
                     const char *url, json_t *hook, json_t *report, struct ferry_err *err)
{
    struct ferry_bc_buf u = {0};
    struct ferry_err e = {0};
    json_t *root = NULL;
    char *body = hook_body(st, scope, url, hook == NULL);
    const char *ok_state = hook ? "reactivated" : "created";
    int rc;

    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &u);
    if (hook) {
        ferry__bc_buf_printf(&u, "/hooks/%" JSON_INTEGER_FORMAT,
                             json_integer_value(json_object_get(hook, "id")));
    } else {
        ferry__bc_buf_puts(&u, "/hooks");
    }
    if (!body || u.oom) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    rc = ferry__bc_request_flags(st, call, FERRY_BC_API_STORE, hook ? "PUT" : "POST", u.p, body,
                                 "hook", FERRY_HTTP_NO_AUDIT_BODY, NULL, &root, &e);
    if (rc == FERRY_ENOMEM) {
        *err = e;
        goto cleanup;
    }
    if (rc < 0) {
        /* One refused hook must not hide the state of the others. */
        rc = report_add(report, scope, hook ? json_object_get(hook, "id") : NULL, "failed", e.msg) <
                     0
                 ? ferry__bc_err(err, FERRY_ENOMEM, "out of memory")
                 : 0;
        goto cleanup;
    }
    rc = report_add(report, scope, json_object_get(json_object_get(root, "data"), "id"), ok_state,
                    url) < 0
             ? ferry__bc_err(err, FERRY_ENOMEM, "out of memory")
             : 0;
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&u);
    if (body) {
        memset(body, 0, strlen(body)); /* it held the secret */
        free(body);
    }
    return rc;
}

int ferry__bc_sync_webhooks(const struct ferry_bc_state *st, struct ferry_call *call,
                            const json_t *needs, const char *url, int apply, json_t **report,
                            struct ferry_err *err)
{
    json_t *out = json_array();
    json_t *scopes = NULL, *hooks = NULL, *used = NULL, *s, *h;
    size_t i, j;
    int rc;

    if (!url || !url[0] || !json_is_array(needs)) {
        json_decref(out);
        return ferry__bc_err(err, FERRY_EINVAL, "sync_webhooks needs an array of needs and a URL");
    }
    if (!out || (used = json_array()) == NULL) {
        rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    if ((rc = needed_scopes(needs, out, &scopes, err)) < 0 ||
        (rc = list_hooks(st, call, &hooks, err)) < 0) {
        goto cleanup;
    }
    json_array_foreach(scopes, i, s)
    {
        const char *scope = json_string_value(s);
        json_t *match = NULL;
        json_array_foreach(hooks, j, h)
        {
            const char *hs = json_string_value(json_object_get(h, "scope"));
            const char *dest = json_string_value(json_object_get(h, "destination"));
            if (hs && dest && strcmp(dest, url) == 0 && scope_covers(hs, scope)) {
                /* Prefer an active one when several cover the scope. */
                if (!match || (!json_is_true(json_object_get(match, "is_active")) &&
                               json_is_true(json_object_get(h, "is_active")))) {
                    match = h;
                }
            }
        }
        if (match) {
            json_array_append(used, match);
        }
        if (match && json_is_true(json_object_get(match, "is_active"))) {
            rc = report_add(out, scope, json_object_get(match, "id"), "ok",
                            json_string_value(json_object_get(match, "scope")));
        } else if (apply) {
            rc = apply_one(st, call, scope, url, match, out, err);
        } else {
            rc = report_add(out, scope, match ? json_object_get(match, "id") : NULL,
                            match ? "inactive" : "missing",
                            match ? "deactivated by BigCommerce after failed deliveries" : url);
        }
        if (rc < 0) {
            rc = rc == -1 ? ferry__bc_err(err, FERRY_ENOMEM, "out of memory") : rc;
            goto cleanup;
        }
    }
    json_array_foreach(hooks, j, h)
    {
        int is_used = 0;
        size_t k;
        json_t *u;
        const char *hs = json_string_value(json_object_get(h, "scope"));
        char detail[300];
        json_array_foreach(used, k, u)
        {
            is_used |= u == h;
        }
        if (is_used) {
            continue;
        }
        /* Reported, never deleted: it may serve another deployment of this account. */
        snprintf(detail, sizeof(detail), "not needed by the enabled mappings; destination %.200s%s",
                 json_string_value(json_object_get(h, "destination"))
                     ? json_string_value(json_object_get(h, "destination"))
                     : "?",
                 json_is_true(json_object_get(h, "is_active")) ? "" : " (inactive)");
        if (report_add(out, hs ? hs : "?", json_object_get(h, "id"), "extra", detail) < 0) {
            rc = ferry__bc_err(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
    }
    *report = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(out);
    json_decref(scopes);
    json_decref(hooks);
    json_decref(used);
    return rc;
}
