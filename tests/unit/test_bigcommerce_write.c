/* SPDX-License-Identifier: MIT */
/*
 * Tests of the bigcommerce connector's write side (bigcommerce_write.c):
 * lookup, create and update of customers and describe, through the built
 * plugin ($FERRY_PLUGIN_DIR/bigcommerce.so) as the host loads it, against
 * the fake host of the connector tests. They pin the requests (method,
 * URL, body), the answers' shapes and the error classes a two-way sync
 * acts on: validation, gone, unknown outcome, transient.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../plugins/fake_host.c"

#define API       "https://api.bigcommerce.com/stores/abc123/v3"
#define INCLUDES  "&include=addresses,attributes,formfields"
#define RESET_1MS "X-Rate-Limit-Requests-Left: 0\nX-Rate-Limit-Time-Reset-Ms: 1\n"

static const struct ferry_connector *conn;
static void *dl;

/* A customer shaped like customer_Full in customers.v3.yml (our own values). */
#define CUSTOMER(id, email)                                                                        \
    "{\"id\": " #id ", \"email\": \"" email "\", \"first_name\": \"Jane\","                        \
    " \"last_name\": \"Smith\", \"company\": \"Acme Corp\", \"phone\": \"555-123-4567\","          \
    " \"notes\": \"\", \"customer_group_id\": 0, \"date_created\": \"2024-05-01T08:00:00Z\","      \
    " \"date_modified\": \"2024-05-14T09:34:00Z\", \"addresses\": [], \"attributes\": [],"         \
    " \"form_fields\": [], \"origin_channel_id\": 1, \"channel_ids\": [1]}"
#define LIST(data) "{\"data\": [" data "], \"meta\": {\"pagination\": {\"total\": 1}}}"

static int group_setup(void **state)
{
    return fake_host_load_plugin("bigcommerce", &dl, &conn);
}

static int group_teardown(void **state)
{
    if (dl) {
        dlclose(dl);
    }
    return 0;
}

static int setup(void **state)
{
    struct ferry_err err = {0};
    void *st = NULL;
    json_t *cfg = json_loads("{\"store_hash\": \"abc123\", \"access_token\": \"tok-w\","
                             " \"webhook_secret\": \"s\", \"ratelimit_fallback_ms\": 5}",
                             0, NULL);
    fake_host_reset();
    assert_int_equal(conn->open(fake_host_api(), fake_host_call(), cfg, &st, &err), 0);
    json_decref(cfg);
    *state = st;
    return 0;
}

static int teardown(void **state)
{
    conn->close(*state);
    fake_host_reset();
    return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) {
        fail_msg("'%s' does not contain '%s'", hay, needle);
    }
}

/* The body of request i, parsed; the caller decrefs. */
static json_t *sent_body(size_t i)
{
    const struct fake_request *r = fake_host_request(i);
    json_t *j = r->body ? json_loads(r->body, 0, NULL) : NULL;
    if (!j) {
        fail_msg("request %zu has no JSON body", i);
    }
    return j;
}

static void assert_json(json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, 0, NULL);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        fail_msg("got %s, want %s", g ? g : "?", want_text);
    }
    json_decref(want);
}

static int write_customer(void *st, int op, const char *id, const char *fields, json_t **result,
                          struct ferry_err *err)
{
    json_t *f = json_loads(fields, 0, NULL);
    struct ferry_write w = {.op = op, .object = "customer", .id = id, .fields = f};
    assert_non_null(f);
    memset(err, 0, sizeof(*err));
    *result = NULL;
    int rc = conn->write(st, fake_host_call(), &w, result, err);
    json_decref(f);
    return rc;
}

/* ---- describe -------------------------------------------------------------------------- */

static void test_describe_customer_properties(void **state)
{
    struct ferry_err err = {0};
    json_t *objects = NULL;
    assert_true(FERRY_CONNECTOR_HAS(conn, describe));
    assert_int_equal(conn->describe(*state, fake_host_loop_call(), &objects, &err), 0);
    assert_int_equal(fake_host_nrequests(), 0);
    assert_int_equal(json_object_size(objects), 1);
    json_t *c = json_object_get(objects, "customer");
    assert_string_equal(json_string_value(json_object_get(c, "key")), "id");
    json_t *props = json_object_get(c, "properties");
    assert_json(json_object_get(props, "phone"), "{\"type\": \"string\", \"creatable\": true,"
                                                 " \"updatable\": true, \"filterable\": false,"
                                                 " \"max_length\": 50}");
    assert_json(json_object_get(props, "email"), "{\"type\": \"string\", \"creatable\": true,"
                                                 " \"updatable\": true, \"filterable\": true,"
                                                 " \"max_length\": 250}");
    assert_json(json_object_get(props, "customer_group_id"),
                "{\"type\": \"integer\", \"creatable\": true, \"updatable\": true,"
                " \"filterable\": false}");
    assert_json(json_object_get(props, "origin_channel_id"),
                "{\"type\": \"integer\", \"creatable\": true, \"updatable\": false,"
                " \"filterable\": false}");
    assert_false(
        json_is_true(json_object_get(json_object_get(props, "date_modified"), "updatable")));
    assert_false(json_is_true(json_object_get(json_object_get(props, "id"), "creatable")));
    assert_true(json_is_true(json_object_get(json_object_get(props, "id"), "filterable")));
    for (const char *const *n =
             (const char *const[]){"first_name", "last_name", "company", "notes", NULL};
         *n; n++) {
        assert_true(json_is_true(json_object_get(json_object_get(props, *n), "updatable")));
    }
    json_decref(objects);
}

/* ---- lookup ---------------------------------------------------------------------------- */

static void test_lookup_by_email(void **state)
{
    struct ferry_err err = {0};
    json_t *found = NULL, *want;
    fake_host_push(200, NULL, LIST(CUSTOMER(32, "Jane.Smith@example.com")));
    assert_int_equal(conn->lookup(*state, fake_host_call(), "customer", "email",
                                  "jane.smith@example.com", &found, &err),
                     0);
    assert_string_equal(fake_host_request(0)->method, "GET");
    assert_string_equal(fake_host_request(0)->url,
                        API "/customers?email:in=jane.smith%40example.com" INCLUDES);
    assert_string_equal(json_string_value(json_object_get(found, "id")), "32");
    assert_true(json_is_null(json_object_get(found, "etag")));
    /* The record as fetch returns it, so mapped fields compare the same either way. */
    want = json_loads(CUSTOMER(32, "Jane.Smith@example.com"), 0, NULL);
    assert_true(json_equal(json_object_get(found, "record"), want));
    json_decref(want);
    json_decref(found);

    fake_host_push(200, NULL, "{\"data\": [], \"meta\": {\"pagination\": {\"total\": 0}}}");
    found = (json_t *)1;
    assert_int_equal(conn->lookup(*state, fake_host_call(), "customer", "email",
                                  "nobody@example.com", &found, &err),
                     0);
    assert_null(found);

    /* A store that ignored the filter answers with strangers: no match, not theirs. */
    fake_host_push(200, NULL, LIST(CUSTOMER(5, "other@example.com")));
    assert_int_equal(conn->lookup(*state, fake_host_call(), "customer", "email",
                                  "nobody@example.com", &found, &err),
                     0);
    assert_null(found);

    fake_host_push(200, NULL,
                   LIST(CUSTOMER(32, "twin@example.com") ", " CUSTOMER(33, "TWIN@example.com")));
    assert_int_equal(conn->lookup(*state, fake_host_call(), "customer", "email", "twin@example.com",
                                  &found, &err),
                     FERRY_EDUPLICATE);
    assert_contains(err.msg, "2 customers");
    assert_int_equal(fake_host_pending(), 0);
}

static void test_lookup_by_id_and_refusals(void **state)
{
    struct ferry_err err = {0};
    json_t *found = NULL;
    size_t before;
    fake_host_push(200, NULL, LIST(CUSTOMER(32, "jane@example.com")));
    assert_int_equal(conn->lookup(*state, fake_host_call(), "customer", "id", "32", &found, &err),
                     0);
    assert_string_equal(fake_host_request(0)->url, API "/customers?id:in=32" INCLUDES);
    assert_string_equal(json_string_value(json_object_get(found, "id")), "32");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(found, "record"), "email")),
        "jane@example.com");
    json_decref(found);
    fake_host_push(200, NULL, "{\"data\": [], \"meta\": {}}");
    assert_int_equal(conn->lookup(*state, fake_host_call(), "customer", "id", "40", &found, &err),
                     0);
    assert_null(found);

    before = fake_host_nrequests();
    assert_int_equal(conn->lookup(*state, fake_host_call(), "customer", "email",
                                  "a@example.com,b@example.com", &found, &err),
                     FERRY_EINVAL);
    assert_int_equal(conn->lookup(*state, fake_host_call(), "customer", "email", "", &found, &err),
                     FERRY_EINVAL);
    assert_int_equal(
        conn->lookup(*state, fake_host_call(), "customer", "phone", "555", &found, &err),
        FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "email or id");
    assert_int_equal(
        conn->lookup(*state, fake_host_call(), "order", "email", "a@example.com", &found, &err),
        FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "'order'");
    assert_int_equal(conn->lookup(*state, fake_host_call(), "customer", "id", "3x", &found, &err),
                     FERRY_EINVAL);
    assert_int_equal(fake_host_nrequests(), before);

    /* Failures of the read are the connector's usual classes. */
    fake_host_push(401, NULL, "{\"status\": 401, \"title\": \"Unauthorized\"}");
    assert_int_equal(
        conn->lookup(*state, fake_host_call(), "customer", "email", "a@example.com", &found, &err),
        FERRY_EAUTH);
}

/* ---- update ---------------------------------------------------------------------------- */

static void test_update_puts_one_element_array(void **state)
{
    struct ferry_err err;
    json_t *result = NULL, *body;
    fake_host_push(200, NULL, "{\"data\": [" CUSTOMER(32, "jane@example.com") "], \"meta\": {}}");
    assert_int_equal(write_customer(*state, FERRY_WRITE_UPDATE, "32",
                                    "{\"phone\": \"555-0100\", \"notes\": \"VIP\","
                                    " \"customer_group_id\": 3, \"first_name\": \"Jane\","
                                    " \"last_name\": \"Smith\", \"company\": \"Acme\","
                                    " \"email\": \"jane@example.com\"}",
                                    &result, &err),
                     0);
    assert_string_equal(fake_host_request(0)->method, "PUT");
    assert_string_equal(fake_host_request(0)->url, API "/customers");
    assert_string_equal(fake_request_header(fake_host_request(0), "Content-Type"),
                        "application/json");
    assert_string_equal(fake_request_header(fake_host_request(0), "X-Auth-Token"), "tok-w");
    assert_int_equal(fake_host_request(0)->flags & FERRY_HTTP_NO_AUDIT_BODY, 0);
    body = sent_body(0);
    assert_json(body, "[{\"id\": 32, \"phone\": \"555-0100\", \"notes\": \"VIP\","
                      " \"customer_group_id\": 3, \"first_name\": \"Jane\","
                      " \"last_name\": \"Smith\", \"company\": \"Acme\","
                      " \"email\": \"jane@example.com\"}]");
    json_decref(body);
    assert_json(result, "{\"id\": \"32\", \"etag\": null}");
    json_decref(result);

    /* A new password stays out of the audit table. */
    fake_host_push(200, NULL, "{\"data\": [" CUSTOMER(32, "jane@example.com") "], \"meta\": {}}");
    assert_int_equal(write_customer(*state, FERRY_WRITE_UPDATE, "32",
                                    "{\"authentication\": {\"new_password\": \"pw-123456\"}}",
                                    &result, &err),
                     0);
    assert_int_not_equal(fake_host_request(1)->flags & FERRY_HTTP_NO_AUDIT_BODY, 0);
    json_decref(result);
}

static void test_update_errors(void **state)
{
    struct ferry_err err;
    json_t *result = NULL;
    const char *refusal =
        "{\"status\": 422, \"title\": \"Update customers failed.\","
        " \"type\": \"/api-docs/getting-started/api-status-codes\","
        " \"errors\": {\"0.email\": \"The email address x@y is already in use\"}}";

    /* Refused, and the customer is still there: the store's reason. */
    fake_host_push(422, NULL, refusal);
    fake_host_push(200, NULL, LIST(CUSTOMER(32, "jane@example.com")));
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"email\": \"x@y\"}", &result, &err),
        FERRY_EVALIDATION);
    assert_contains(err.msg, "Update customers failed.");
    assert_contains(err.msg, "0.email: The email address x@y is already in use");
    assert_string_equal(fake_host_request(1)->url, API "/customers?id:in=32" INCLUDES);
    assert_null(result);

    /* Refused because the customer is gone: matched again by the host. */
    fake_host_push(422, NULL,
                   "{\"status\": 422, \"title\": \"Update customers failed.\","
                   " \"errors\": {\"0.id\": \"customer 32 does not exist\"}}");
    fake_host_push(200, NULL, "{\"data\": [], \"meta\": {}}");
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"phone\": \"1\"}", &result, &err),
        FERRY_ENOTFOUND);
    assert_contains(err.msg, "no customer 32");
    assert_contains(err.msg, "does not exist");

    fake_host_push(404, NULL, "{\"status\": 404, \"title\": \"Not Found\"}");
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"phone\": \"1\"}", &result, &err),
        FERRY_ENOTFOUND);

    /* 200 without the customer: there was nothing to update. */
    fake_host_push(200, NULL, "{\"data\": [], \"meta\": {}}");
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"phone\": \"1\"}", &result, &err),
        FERRY_ENOTFOUND);

    /* An update is safe to repeat: transient failures stay transient. */
    fake_host_push(500, NULL, "");
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"phone\": \"1\"}", &result, &err),
        FERRY_EUNAVAILABLE);
    fake_host_push_error(FERRY_ETIMEDOUT);
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"phone\": \"1\"}", &result, &err),
        FERRY_ETIMEDOUT);
    fake_host_push(429, RESET_1MS, "{\"status\": 429, \"title\": \"Too many requests\"}");
    fake_host_push(200, NULL, "{\"data\": [" CUSTOMER(32, "jane@example.com") "], \"meta\": {}}");
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"phone\": \"1\"}", &result, &err), 0);
    json_decref(result);
    fake_host_push(429, RESET_1MS, "");
    fake_host_push(429, RESET_1MS, "");
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"phone\": \"1\"}", &result, &err),
        FERRY_ERATELIMIT);
    assert_int_equal(fake_host_pending(), 0);
}

/* ---- create ---------------------------------------------------------------------------- */

static void test_create_posts_and_returns_new_id(void **state)
{
    struct ferry_err err;
    json_t *result = NULL, *body;
    fake_host_push(200, NULL, "{\"data\": [" CUSTOMER(77, "new@example.com") "], \"meta\": {}}");
    assert_int_equal(write_customer(*state, FERRY_WRITE_CREATE, NULL,
                                    "{\"email\": \"new@example.com\", \"first_name\": \"New\","
                                    " \"last_name\": \"Buyer\", \"origin_channel_id\": 1}",
                                    &result, &err),
                     0);
    assert_string_equal(fake_host_request(0)->method, "POST");
    assert_string_equal(fake_host_request(0)->url, API "/customers");
    body = sent_body(0);
    assert_json(body, "[{\"email\": \"new@example.com\", \"first_name\": \"New\","
                      " \"last_name\": \"Buyer\", \"origin_channel_id\": 1}]");
    json_decref(body);
    assert_json(result, "{\"id\": \"77\", \"etag\": null}");
    json_decref(result);
}

static void test_create_errors(void **state)
{
    struct ferry_err err;
    json_t *result = NULL;
    const char *fields = "{\"email\": \"new@example.com\", \"first_name\": \"New\"}";
    static const struct {
        long status;
        const char *body;
        int code;
        const char *msg;
    } cases[] = {
        {422,
         "{\"status\": 422, \"title\": \"Create customers failed.\","
         " \"errors\": {\"0.last_name\": \"error.path.missing\"}}",
         FERRY_EVALIDATION, "0.last_name: error.path.missing"},
        {413, "", FERRY_EVALIDATION, "413"},
        /* The answer was lost: the customer may exist, look before creating again. */
        {500, "", FERRY_EUNKNOWN_OUTCOME, "outcome unknown"},
        {502, "", FERRY_EUNKNOWN_OUTCOME, "502"},
        {504, "", FERRY_EUNKNOWN_OUTCOME, "504"},
        /* Maintenance and a plan limit: nothing was made, a later retry is right. */
        {503, "", FERRY_EUNAVAILABLE, "503"},
        {507, "", FERRY_EUNAVAILABLE, "507"},
        {200, "{\"data\": [], \"meta\": {}}", FERRY_EUNKNOWN_OUTCOME, "without the new"},
        {207, "{\"data\": [], \"errors\": {\"0.email\": \"invalid\"}, \"meta\": {}}",
         FERRY_EVALIDATION, "0.email"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_host_push(cases[i].status, NULL, cases[i].body);
        int rc = write_customer(*state, FERRY_WRITE_CREATE, NULL, fields, &result, &err);
        if (rc != cases[i].code) {
            fail_msg("case %zu (HTTP %ld): %d, want %d (%s)", i, cases[i].status, rc, cases[i].code,
                     err.msg);
        }
        assert_contains(err.msg, cases[i].msg);
        assert_null(result);
    }
    fake_host_push_error(FERRY_ETIMEDOUT);
    assert_int_equal(write_customer(*state, FERRY_WRITE_CREATE, NULL, fields, &result, &err),
                     FERRY_EUNKNOWN_OUTCOME);
    fake_host_push_error(FERRY_ENETWORK);
    assert_int_equal(write_customer(*state, FERRY_WRITE_CREATE, NULL, fields, &result, &err),
                     FERRY_EUNKNOWN_OUTCOME);
    fake_host_push_error(FERRY_ETOOBIG);
    assert_int_equal(write_customer(*state, FERRY_WRITE_CREATE, NULL, fields, &result, &err),
                     FERRY_EUNKNOWN_OUTCOME);
    fake_host_push(200, NULL, "{\"data\": [{\"id\": 7");
    assert_int_equal(write_customer(*state, FERRY_WRITE_CREATE, NULL, fields, &result, &err),
                     FERRY_EUNKNOWN_OUTCOME);
    assert_contains(err.msg, "malformed JSON");
    /* A redirect answers before anything is made. */
    fake_host_push(301, "Location: https://api.bigcommerce.com/\n", "");
    assert_int_equal(write_customer(*state, FERRY_WRITE_CREATE, NULL, fields, &result, &err),
                     FERRY_EPROTO);
    assert_int_equal(fake_host_pending(), 0);
}

static void test_write_refusals_send_nothing(void **state)
{
    struct ferry_err err;
    json_t *result = NULL, *f = json_object();
    struct ferry_write w = {.op = FERRY_WRITE_UPDATE, .object = "order", .id = "1", .fields = f};
    assert_int_equal(conn->write(*state, fake_host_call(), &w, &result, &err), FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "'order'");
    w.object = "company";
    assert_int_equal(conn->write(*state, fake_host_call(), &w, &result, &err), FERRY_EUNSUPPORTED);
    json_decref(f);
    assert_int_equal(write_customer(*state, FERRY_WRITE_UPDATE, "32",
                                    "{\"date_modified\": \"2024-01-01T00:00:00Z\"}", &result, &err),
                     FERRY_EVALIDATION);
    assert_contains(err.msg, "date_modified");
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"addresses\": []}", &result, &err),
        FERRY_EVALIDATION);
    assert_contains(err.msg, "after the customer was created");
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, "32", "{\"id\": 33}", &result, &err),
        FERRY_EVALIDATION);
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_CREATE, NULL, "{\"id\": 33}", &result, &err),
        FERRY_EVALIDATION);
    static const char *const bad_ids[] = {"abc", "0", "-3", "3x", "", "2147483648"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        assert_int_equal(write_customer(*state, FERRY_WRITE_UPDATE, bad_ids[i],
                                        "{\"phone\": \"1\"}", &result, &err),
                         FERRY_EINVAL);
    }
    assert_int_equal(
        write_customer(*state, FERRY_WRITE_UPDATE, NULL, "{\"phone\": \"1\"}", &result, &err),
        FERRY_EINVAL);
    assert_int_equal(write_customer(*state, FERRY_WRITE_UPDATE, "32", "[1]", &result, &err),
                     FERRY_EINVAL);
    assert_int_equal(fake_host_nrequests(), 0);
    assert_null(result);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_describe_customer_properties),
        T(test_lookup_by_email),
        T(test_lookup_by_id_and_refusals),
        T(test_update_puts_one_element_array),
        T(test_update_errors),
        T(test_create_posts_and_returns_new_id),
        T(test_create_errors),
        T(test_write_refusals_send_nothing),
    };
    return cmocka_run_group_tests_name("bigcommerce_write", tests, group_setup, group_teardown);
}
