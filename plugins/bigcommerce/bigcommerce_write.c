/* SPDX-License-Identifier: MIT */
/*
 * Lookup, create and update of BigCommerce customers (v3), for mappings
 * that send a CRM's changes back to the shop. The customers API takes and
 * returns arrays of up to ten (facts 4.1); ferry writes one record per call,
 * so every body is a one-element array and every answer is searched for
 * that one customer. Errors are classified as everywhere in the connector
 * (ferry__bc_classify), with two refinements only a write needs: a refused
 * update of a customer that no longer exists is FERRY_ENOTFOUND, so that
 * the host matches again instead of failing for ever, and a create whose
 * answer was lost is FERRY_EUNKNOWN_OUTCOME, so that the host looks the
 * customer up before it creates one twice.
 */
#include "bigcommerce_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "bigcommerce_api.h"
#include "bigcommerce_objects.h"

/* The longest e-mail address the API stores (customer_Put, facts 4.4). */
#define BC_MAX_EMAIL  255
#define BC_NOMEM(err) ferry__bc_err(err, FERRY_ENOMEM, "bigcommerce: out of memory")

/* A customer property as customers.v3.yml defines it for writes. */
struct bc_prop {
    const char *name;
    const char *type; /* the spec's JSON Schema type */
    int creatable;    /* in customer_Post */
    int updatable;    /* in customer_Put and not described as read-only */
    int filterable;   /* lookup can search by it */
    int max_length;   /* 0: no limit given */
};

/*
 * customer_Post and customer_Put, less what the PUT description calls read
 * only (registration_ip_address, origin_channel_id) and what only POST
 * takes (addresses, attributes: sub-resources are not updated by PUT). The
 * e-mail limit is POST's, the stricter of the two.
 */
static const struct bc_prop customer_props[] = {
    {"id", "integer", 0, 0, 1, 0},
    {"email", "string", 1, 1, 1, 250},
    {"first_name", "string", 1, 1, 0, 100},
    {"last_name", "string", 1, 1, 0, 100},
    {"company", "string", 1, 1, 0, 255},
    {"phone", "string", 1, 1, 0, 50},
    {"notes", "string", 1, 1, 0, 0},
    {"tax_exempt_category", "string", 1, 1, 0, 255},
    {"customer_group_id", "integer", 1, 1, 0, 0},
    {"accepts_product_review_abandoned_cart_emails", "boolean", 1, 1, 0, 0},
    {"channel_ids", "array", 1, 1, 0, 0},
    {"authentication", "object", 1, 1, 0, 0},
    {"store_credit_amounts", "array", 1, 1, 0, 0},
    {"form_fields", "array", 1, 1, 0, 0},
    {"origin_channel_id", "integer", 1, 0, 0, 0},
    {"trigger_account_created_notification", "boolean", 1, 0, 0, 0},
    {"addresses", "array", 1, 0, 0, 0},
    {"attributes", "array", 1, 0, 0, 0},
    {"registration_ip_address", "string", 0, 0, 0, 30},
    {"date_created", "string", 0, 0, 0, 0},
    {"date_modified", "string", 0, 0, 0, 0},
    {"address_count", "integer", 0, 0, 0, 0},
    {"attribute_count", "integer", 0, 0, 0, 0},
};

static const struct bc_prop *customer_prop(const char *name)
{
    for (size_t i = 0; i < sizeof(customer_props) / sizeof(customer_props[0]); i++) {
        if (strcmp(customer_props[i].name, name) == 0) {
            return &customer_props[i];
        }
    }
    return NULL;
}

int ferry__bc_describe(json_t **objects, struct ferry_err *err)
{
    json_t *out = json_object(), *props = json_object(), *desc = json_object();
    int ok = out && props && desc;
    for (size_t i = 0; ok && i < sizeof(customer_props) / sizeof(customer_props[0]); i++) {
        const struct bc_prop *p = &customer_props[i];
        json_t *prop = json_pack("{s:s, s:b, s:b, s:b}", "type", p->type, "creatable", p->creatable,
                                 "updatable", p->updatable, "filterable", p->filterable);
        ok = prop && (!p->max_length ||
                      json_object_set_new(prop, "max_length", json_integer(p->max_length)) == 0);
        ok = ok && json_object_set_new(props, p->name, prop) == 0;
        if (!ok) {
            json_decref(prop);
        }
    }
    ok = ok && json_object_set_new(desc, "key", json_string("id")) == 0 &&
         json_object_set(desc, "properties", props) == 0 &&
         json_object_set(out, FERRY_BC_OBJECT_CUSTOMER, desc) == 0;
    json_decref(props);
    json_decref(desc);
    if (!ok) {
        json_decref(out);
        return BC_NOMEM(err);
    }
    *objects = out;
    return 0;
}

/* {"id": "<id>", "etag": null, "record": record} (record borrowed). */
static int found_new(const char *id, json_t *record, json_t **found, struct ferry_err *err)
{
    json_t *f = json_pack("{s:s, s:n, s:O}", "id", id, "etag", "record", record);
    if (!f) {
        return BC_NOMEM(err);
    }
    *found = f;
    return 0;
}

static int lookup_by_email(const struct ferry_bc_state *st, struct ferry_call *call,
                           const char *email, json_t **found, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *data, *el, *match = NULL;
    size_t i, n = 0;
    int rc;

    /* A comma would make `email:in` a list of two addresses (facts 4.2). */
    if (!email[0] || strlen(email) > BC_MAX_EMAIL || strchr(email, ',')) {
        return ferry__bc_err(err, FERRY_EINVAL,
                             "bigcommerce: cannot look a customer up by e-mail '%.64s' (empty, "
                             "longer than %d or with a comma)",
                             email, BC_MAX_EMAIL);
    }
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_puts(&url, "/customers?email:in=");
    ferry__bc_buf_put_query(&url, email);
    /* The record has fetch's shape, so a mapping's fields compare alike either way. */
    ferry__bc_buf_puts(&url, "&include=addresses,attributes,formfields");
    if (url.oom) {
        rc = BC_NOMEM(err);
        goto cleanup;
    }
    if ((rc = ferry__bc_get_v3(st, call, url.p, FERRY_BC_OBJECT_CUSTOMER, &root, err)) < 0) {
        goto cleanup;
    }
    data = json_object_get(root, "data");
    if (!json_is_array(data)) {
        rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce customer list `data` is not an array");
        goto cleanup;
    }
    /* Compared here too, so that a filter the store ignored cannot match a stranger. */
    json_array_foreach(data, i, el)
    {
        const char *have = json_string_value(json_object_get(el, "email"));
        if (have && strcasecmp(have, email) == 0) {
            match = el;
            n++;
        }
    }
    if (n > 1) {
        rc = ferry__bc_err(err, FERRY_EDUPLICATE,
                           "BigCommerce has %zu customers with the e-mail address '%.64s'", n,
                           email);
        goto cleanup;
    }
    *found = NULL;
    rc = 0;
    if (match) {
        char id[32];
        json_t *v = json_object_get(match, "id");
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            rc = ferry__bc_err(err, FERRY_EPROTO, "BigCommerce customer without an integer `id`");
            goto cleanup;
        }
        snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        rc = found_new(id, match, found, err);
    }
cleanup:
    json_decref(root);
    ferry__bc_buf_free(&url);
    return rc;
}

int ferry__bc_lookup(const struct ferry_bc_state *st, struct ferry_call *call, const char *object,
                     const char *field, const char *value, json_t **found, struct ferry_err *err)
{
    json_t *record = NULL;
    int rc;
    if (!object || strcmp(object, FERRY_BC_OBJECT_CUSTOMER) != 0) {
        return ferry__bc_err(err, FERRY_EUNSUPPORTED,
                             "bigcommerce: lookup of '%.64s' is not supported; only customer can "
                             "be looked up",
                             object ? object : "(null)");
    }
    if (!value) {
        return ferry__bc_err(err, FERRY_EINVAL, "bigcommerce: lookup without a value");
    }
    if (field && strcmp(field, "email") == 0) {
        return lookup_by_email(st, call, value, found, err);
    }
    if (!field || strcmp(field, "id") != 0) {
        return ferry__bc_err(err, FERRY_EUNSUPPORTED,
                             "bigcommerce: customers can be looked up by email or id, not by "
                             "'%.64s'",
                             field ? field : "(null)");
    }
    rc = ferry__bc_fetch(st, call, FERRY_BC_OBJECT_CUSTOMER, value, &record, err);
    if (rc == FERRY_ENOTFOUND) {
        *found = NULL;
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    rc = found_new(value, record, found, err);
    json_decref(record);
    return rc;
}

/* Fields a write may carry: known read-only ones, and create-only ones on update, are refused. */
static int check_fields(const struct ferry_write *w, long long id, struct ferry_err *err)
{
    const char *name;
    json_t *v;
    int create = w->op == FERRY_WRITE_CREATE;
    json_object_foreach((json_t *)w->fields, name, v)
    {
        const struct bc_prop *p = customer_prop(name);
        if (strcmp(name, "id") == 0) {
            if (create || !json_is_integer(v) || json_integer_value(v) != id) {
                return ferry__bc_err(err, FERRY_EVALIDATION,
                                     "bigcommerce: customer `id` is BigCommerce's to assign and "
                                     "cannot be written");
            }
            continue;
        }
        if (p && !(create ? p->creatable : p->updatable)) {
            return ferry__bc_err(
                err, FERRY_EVALIDATION, "bigcommerce: customer `%s` cannot be %s", name,
                p->creatable ? "changed after the customer was created" : "written (read only)");
        }
    }
    return 0;
}

/* "[{...fields, "id": id}]" (id 0: none); NULL when out of memory. */
static char *write_body(const struct ferry_write *w, long long id)
{
    json_t *item = json_deep_copy(w->fields), *arr = json_array();
    char *text = NULL;
    if (item && arr && (id == 0 || json_object_set_new(item, "id", json_integer(id)) == 0) &&
        json_array_append(arr, item) == 0) {
        text = json_dumps(arr, JSON_COMPACT);
    }
    json_decref(item);
    json_decref(arr);
    return text;
}

/* The customer `id` of an answer's data array, or NULL (by id; id 0: the first one). */
static json_t *answered(json_t *root, long long id)
{
    size_t i;
    json_t *el;
    json_array_foreach(json_object_get(root, "data"), i, el)
    {
        json_t *v = json_object_get(el, "id");
        if (json_is_integer(v) && json_integer_value(v) > 0 &&
            (id == 0 || json_integer_value(v) == id)) {
            return el;
        }
    }
    return NULL;
}

/* A 207 that left our customer out: the store's `errors` say why. */
static int partial_refusal(json_t *root, struct ferry_err *err)
{
    json_t *errors = json_object_get(root, "errors");
    char *text = errors ? json_dumps(errors, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    int rc = ferry__bc_err(err, FERRY_EVALIDATION, "BigCommerce refused the customer: %.200s",
                           text ? text : "no reason given");
    free(text);
    return rc;
}

/*
 * After a refused update: whether the customer still exists. Only a read
 * tells; how the store reports an unknown id in a PUT batch is not
 * documented. The refusal stays in err unless the customer is gone.
 */
static int refused_update(const struct ferry_bc_state *st, struct ferry_call *call, const char *id,
                          int rc, struct ferry_err *err)
{
    struct ferry_err check = {0};
    json_t *record = NULL;
    int crc = ferry__bc_fetch(st, call, FERRY_BC_OBJECT_CUSTOMER, id, &record, &check);
    json_decref(record);
    if (crc == FERRY_ENOTFOUND) {
        char refusal[sizeof(err->msg)];
        snprintf(refusal, sizeof(refusal), "%s", err ? err->msg : "");
        return ferry__bc_err(err, FERRY_ENOTFOUND,
                             "BigCommerce has no customer %s any more (the update was refused: "
                             "%.150s)",
                             id, refusal);
    }
    return rc;
}

/*
 * Whether a failed create may still have made the customer: no answer or
 * one too big to read, an unreadable 2xx, a 408, or a 500/502/504 from the
 * store or a gateway in front of it. 503 (maintenance) and 507 (plan
 * limit) are refusals before any work, like every 4xx.
 */
static int create_may_have_happened(int rc, long status)
{
    switch (rc) {
    case FERRY_ETIMEDOUT:
    case FERRY_ENETWORK:
    case FERRY_ETOOBIG:
        return 1;
    case FERRY_EPROTO:
        return status >= 200 && status <= 299;
    case FERRY_EUNAVAILABLE:
        return status != 503 && status != 507;
    default:
        return 0;
    }
}

int ferry__bc_write(const struct ferry_bc_state *st, struct ferry_call *call,
                    const struct ferry_write *w, json_t **result, struct ferry_err *err)
{
    struct ferry_bc_buf url = {0};
    json_t *root = NULL, *el;
    char *body = NULL;
    char id[32] = "";
    long long want = 0;
    long status = 0;
    int update, rc;

    if (!w || !w->object || strcmp(w->object, FERRY_BC_OBJECT_CUSTOMER) != 0) {
        return ferry__bc_err(err, FERRY_EUNSUPPORTED,
                             "bigcommerce: writing '%.64s' is not supported; only customer can be "
                             "written",
                             (w && w->object) ? w->object : "(null)");
    }
    update = w->op == FERRY_WRITE_UPDATE;
    if (!update && w->op != FERRY_WRITE_CREATE) {
        return ferry__bc_err(err, FERRY_EINVAL, "bigcommerce: unknown write operation %d", w->op);
    }
    if (!json_is_object(w->fields)) {
        return ferry__bc_err(err, FERRY_EINVAL, "bigcommerce: customer fields are not an object");
    }
    if (update) {
        char *end = NULL;
        errno = 0;
        want = w->id && w->id[0] >= '1' && w->id[0] <= '9' ? strtoll(w->id, &end, 10) : 0;
        /* customer_Put `id` is an int32. */
        if (errno || !end || *end != '\0' || want <= 0 || want > 2147483647LL) {
            return ferry__bc_err(err, FERRY_EINVAL,
                                 "customer id must be a positive integer, got '%.40s'",
                                 w->id ? w->id : "(null)");
        }
        snprintf(id, sizeof(id), "%lld", want);
    }
    if ((rc = check_fields(w, want, err)) < 0) {
        return rc;
    }
    body = write_body(w, want);
    ferry__bc_url(st, FERRY_BC_API_STORE, "v3", &url);
    ferry__bc_buf_puts(&url, "/customers");
    if (!body || url.oom) {
        rc = BC_NOMEM(err);
        goto cleanup;
    }
    /* A new password must not reach the audit table (facts 4.4, authentication.new_password). */
    rc = ferry__bc_request_flags(
        st, call, FERRY_BC_API_STORE, update ? "PUT" : "POST", url.p, body,
        FERRY_BC_OBJECT_CUSTOMER,
        json_object_get(w->fields, "authentication") ? FERRY_HTTP_NO_AUDIT_BODY : 0, &status, &root,
        err);
    if (rc < 0) {
        if (update && (rc == FERRY_EVALIDATION || rc == FERRY_ECONFLICT)) {
            rc = refused_update(st, call, id, rc, err);
        } else if (!update && create_may_have_happened(rc, status)) {
            char cause[sizeof(err->msg)];
            snprintf(cause, sizeof(cause), "%s", err ? err->msg : "");
            rc = ferry__bc_err(err, FERRY_EUNKNOWN_OUTCOME,
                               "POST /v3/customers: outcome unknown (%.200s)", cause);
        }
        goto cleanup;
    }
    el = answered(root, want);
    if (!el) {
        if (status == 207) {
            rc = partial_refusal(root, err);
        } else if (update) {
            /* A batch answer without our customer: it was not there to update. */
            rc = ferry__bc_err(err, FERRY_ENOTFOUND,
                               "BigCommerce did not update customer %s (not in its answer)", id);
        } else {
            rc = ferry__bc_err(err, FERRY_EUNKNOWN_OUTCOME,
                               "BigCommerce answered the create (HTTP %ld) without the new "
                               "customer's id",
                               status);
        }
        goto cleanup;
    }
    if (!update) {
        snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(el, "id")));
    }
    *result = json_pack("{s:s, s:n}", "id", id, "etag");
    rc = *result ? 0 : BC_NOMEM(err);
cleanup:
    json_decref(root);
    free(body);
    ferry__bc_buf_free(&url);
    return rc;
}
