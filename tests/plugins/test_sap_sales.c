/* SPDX-License-Identifier: MIT */
/*
 * Connector tests for sap_sales against the fake host: the exact requests the
 * plugin sends (URLs, headers, CSRF token handling, If-Match) and how it reads
 * c4codataapi responses and errors. Response bodies are our own JSON shaped
 * like the C4C samples; the real error sample is read from FERRY_SPECS when
 * it is there.
 */
/* cmocka 1.1 needs these headers before it. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ferry/plugin.h"

#include "fake_host.h"
#include "sap_sales_odata.h"

#ifndef FERRY_SPECS_DEFAULT
#define FERRY_SPECS_DEFAULT "../shared/specs"
#endif

int ferry_connector_entry(const struct ferry_host_api *host, const struct ferry_connector **out);

#define ROOT  "http://sap.test/sap/c4c/odata/v1/c4codataapi/"
#define OID   "00163E0C6CDB1ED7A1B004E3242D49E9"
#define ETAG1 "W/\"datetimeoffset'2024-05-01T10%3A00%3A00.1234560Z'\""
#define ETAG2 "W/\"datetimeoffset'2024-05-02T11%3A30%3A00.7654320Z'\""

struct fixture {
    const struct ferry_connector *conn;
    void *state;
};

static const struct ferry_connector *connector(void)
{
    const struct ferry_connector *c = NULL;
    assert_int_equal(ferry_connector_entry(fake_host_api(), &c), 0);
    assert_non_null(c);
    return c;
}

static int open_with(const struct ferry_connector *c, const char *config_json, void **state,
                     struct ferry_err *err)
{
    json_t *config = json_loads(config_json, 0, NULL);
    int rc;
    assert_non_null(config);
    rc = c->open(fake_host_api(), fake_host_call(), config, state, err);
    json_decref(config);
    return rc;
}

static int setup(void **ts)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct ferry_err err = {0};
    fake_host_reset();
    f->conn = connector();
    assert_int_equal(
        open_with(f->conn,
                  "{\"service_root\": \"http://sap.test/sap/c4c/odata/v1/c4codataapi\","
                  " \"username\": \"Aladdin\", \"password\": \"open sesame\","
                  " \"timeout\": 30, \"page_size\": 1000}",
                  &f->state, &err),
        0);
    *ts = f;
    return 0;
}

static int teardown(void **ts)
{
    struct fixture *f = *ts;
    if (fake_host_slot_value()) {
        f->conn->worker_free(f->state, fake_host_slot_value());
    }
    f->conn->close(f->state);
    fake_host_reset();
    free(f);
    return 0;
}

static json_t *contact_fields(void)
{
    return json_pack("{s:s, s:s, s:s}", "FirstName", "Ada", "LastName", "O'Brien", "Email",
                     "o'brien@example.com");
}

static int do_write(struct fixture *f, int op, const char *id, const char *etag, json_t **result,
                    struct ferry_err *err)
{
    json_t *fields = contact_fields();
    struct ferry_write w = {
        .op = op, .object = "ContactCollection", .id = id, .etag = etag, .fields = fields};
    int rc = f->conn->write(f->state, fake_host_call(), &w, result, err);
    json_decref(fields);
    return rc;
}

static int do_lookup(struct fixture *f, const char *value, json_t **found, struct ferry_err *err)
{
    return f->conn->lookup(f->state, fake_host_call(), "ContactCollection", "Email", value, found,
                           err);
}

static void push_token(const char *token)
{
    char headers[256];
    snprintf(headers, sizeof(headers), "x-csrf-token: %s\nset-cookie: SAP_SESSIONID=abc\n", token);
    fake_host_push(200, headers, "{\"d\":{\"EntitySets\":[\"ContactCollection\"]}}");
}

static void assert_csrf_fetch(size_t i, uint32_t want_reset)
{
    const struct fake_request *r = fake_host_request(i);
    assert_non_null(r);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->url, ROOT);
    assert_string_equal(fake_request_header(r, "x-csrf-token"), "fetch");
    assert_int_equal(r->flags & FERRY_HTTP_RESET_SESSION, want_reset);
}

static char *specs_path(const char *rel)
{
    const char *base = getenv("FERRY_SPECS");
    char *p;
    if (!base || !*base) {
        base = FERRY_SPECS_DEFAULT;
    }
    p = malloc(strlen(base) + strlen(rel) + 2);
    assert_non_null(p);
    sprintf(p, "%s/%s", base, rel);
    return p;
}

/* ---- entry and open ---- */

static void test_sap_entry_checks_abi(void **ts)
{
    const struct ferry_connector *c = NULL;
    struct ferry_host_api old = *fake_host_api();
    int required = 0;

    assert_int_equal(ferry_connector_entry(fake_host_api(), &c), 0);
    assert_int_equal(c->abi, FERRY_PLUGIN_ABI);
    assert_true(c->size >= FERRY_CONNECTOR_MIN_SIZE);
    assert_string_equal(c->name, "sap_sales");
    for (const struct ferry_config_field *cf = c->config; cf->name; cf++) {
        required += cf->required;
        if (strcmp(cf->name, "password") == 0) {
            assert_int_equal(cf->type, FERRY_CFG_SECRET);
        }
    }
    assert_int_equal(required, 2);

    old.abi = FERRY_PLUGIN_ABI + 1;
    c = NULL;
    assert_int_equal(ferry_connector_entry(&old, &c), FERRY_EABI);
    assert_null(c);
    old.abi = FERRY_PLUGIN_ABI;
    old.size = (uint32_t)offsetof(struct ferry_host_api, now_ms);
    assert_int_equal(ferry_connector_entry(&old, &c), FERRY_EABI);
    assert_int_equal(ferry_connector_entry(NULL, &c), FERRY_EABI);
}

static void test_sap_open_rejects_bad_config(void **ts)
{
    const struct ferry_connector *c = connector();
    struct ferry_err err = {0};
    void *state = (void *)1;

    assert_int_equal(
        open_with(c, "{\"password\": \"pw\", \"service_root\": \"" ROOT "\"}", &state, &err),
        FERRY_ECONFIG);
    assert_null(state);
    assert_non_null(strstr(err.msg, "username"));

    memset(&err, 0, sizeof(err));
    assert_int_equal(
        open_with(c, "{\"username\": \"u\", \"service_root\": \"" ROOT "\"}", &state, &err),
        FERRY_ECONFIG);
    assert_non_null(strstr(err.msg, "password"));

    memset(&err, 0, sizeof(err));
    assert_int_equal(open_with(c,
                               "{\"username\": \"u\", \"password\": \"pw\", \"service_root\":"
                               " \"my000000.crm.ondemand.com/sap/c4c/odata/v1/c4codataapi/\"}",
                               &state, &err),
                     FERRY_ECONFIG);
    assert_int_equal(err.code, FERRY_ECONFIG);
    assert_non_null(strstr(err.msg, "service_root"));

    assert_int_equal(open_with(c,
                               "{\"username\": \"u\", \"password\": \"pw\", \"timeout\": 0,"
                               " \"service_root\": \"" ROOT "\"}",
                               &state, &err),
                     FERRY_ECONFIG);
}

static void fetch_url_for_root(const char *root, const char *want_url)
{
    const struct ferry_connector *c = connector();
    struct ferry_err err = {0};
    char config[512];
    void *state = NULL;
    json_t *rec = NULL;

    fake_host_reset();
    if (root) {
        snprintf(config, sizeof(config),
                 "{\"username\": \"u\", \"password\": \"pw\", \"service_root\": \"%s\"}", root);
    } else {
        snprintf(config, sizeof(config), "{\"username\": \"u\", \"password\": \"pw\"}");
    }
    assert_int_equal(open_with(c, config, &state, &err), 0);
    fake_host_push(404, NULL,
                   "{\"error\":{\"code\":\"\",\"message\":{\"lang\":\"en\","
                   "\"value\":\"Resource not found\"}}}");
    assert_int_equal(c->fetch(state, fake_host_call(), "ContactCollection", "X", &rec, &err),
                     FERRY_ENOTFOUND);
    assert_null(rec);
    assert_string_equal(fake_host_request(0)->url, want_url);
    c->close(state);
    fake_host_reset();
}

static void test_sap_open_normalises_root_slash(void **ts)
{
    fetch_url_for_root("https://t.example/sap/c4c/odata/v1/c4codataapi",
                       "https://t.example/sap/c4c/odata/v1/c4codataapi/"
                       "ContactCollection('X')?$format=json");
    fetch_url_for_root("https://t.example/sap/c4c/odata/v1/c4codataapi///",
                       "https://t.example/sap/c4c/odata/v1/c4codataapi/"
                       "ContactCollection('X')?$format=json");
    fetch_url_for_root(NULL, "https://my000000.crm.ondemand.com/sap/c4c/odata/v1/c4codataapi/"
                             "ContactCollection('X')?$format=json");
}

static void test_sap_basic_auth_header(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = NULL;
    struct ferry_err err = {0};
    char *v = ferry__sap_basic_auth("Aladdin", "open sesame");

    /* RFC 7617 section 2's example credentials. */
    assert_string_equal(v, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    free(v);
    fake_host_push(200, NULL, "{\"d\":{\"results\":[]}}");
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), 0);
    assert_string_equal(fake_request_header(fake_host_request(0), "Authorization"),
                        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

static void test_sap_base64_padding(void **ts)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"", ""},
                 {"f", "Zg=="},
                 {"fo", "Zm8="},
                 {"foo", "Zm9v"},
                 {"foob", "Zm9vYg=="},
                 {"fooba", "Zm9vYmE="},
                 {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *b = ferry__sap_base64((const unsigned char *)cases[i].in, strlen(cases[i].in));
        assert_string_equal(b, cases[i].out);
        free(b);
    }
}

/* ---- lookup and fetch ---- */

static void test_sap_lookup_escapes_value_and_finds_none(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = (json_t *)1;
    struct ferry_err err = {0};
    const struct fake_request *r;

    fake_host_push(200, NULL, "{\"d\":{\"results\":[]}}");
    assert_int_equal(do_lookup(f, "o'brien@example.com", &found, &err), 0);
    assert_null(found);
    assert_int_equal(fake_host_nrequests(), 1);
    r = fake_host_request(0);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->url, ROOT "ContactCollection?$filter=Email%20eq%20%27o%27%27brien%40"
                                     "example.com%27&$format=json&$top=2");
    assert_string_equal(fake_request_header(r, "Accept"), "application/json");
    assert_null(fake_request_header(r, "x-csrf-token"));
    assert_null(r->body);

    assert_int_equal(f->conn->lookup(f->state, fake_host_call(), "ContactCollection",
                                     "Email eq 'x' or Email", "v", &found, &err),
                     FERRY_EINVAL);
    assert_int_equal(fake_host_nrequests(), 1);
}

static void test_sap_lookup_one_result(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = NULL;
    struct ferry_err err = {0};

    fake_host_push(200, "content-type: application/json\n",
                   "{\"d\":{\"results\":[{\"__metadata\":{\"uri\":\"" ROOT "ContactCollection('" OID
                   "')\",\"type\":\"c4codata.Contact\",\"etag\":"
                   "\"W/\\\"datetimeoffset'2024-05-01T10%3A00%3A00.1234560Z'\\\"\"},"
                   "\"ObjectID\":\"" OID "\",\"Email\":\"a@example.com\"}]}}");
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), 0);
    assert_non_null(found);
    assert_string_equal(json_string_value(json_object_get(found, "id")), OID);
    assert_string_equal(json_string_value(json_object_get(found, "etag")), ETAG1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(found, "record"), "Email")),
        "a@example.com");
    json_decref(found);
}

static void test_sap_lookup_two_results_is_duplicate(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = NULL;
    struct ferry_err err = {0};

    fake_host_push(200, NULL,
                   "{\"d\":{\"results\":[{\"ObjectID\":\"A1\",\"Email\":\"a@example.com\"},"
                   "{\"ObjectID\":\"B2\",\"Email\":\"a@example.com\"}]}}");
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), FERRY_EDUPLICATE);
    assert_null(found);
    assert_int_equal(err.code, FERRY_EDUPLICATE);
    assert_non_null(strstr(err.msg, "Email"));
    assert_non_null(strstr(err.msg, "2"));
}

static void test_sap_lookup_parses_next_and_count(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = NULL, *results = NULL;
    struct ferry_err err = {0};
    char *next = NULL;
    const char *body = "{\"d\":{\"__count\":\"1209\",\"__next\":\"" ROOT
                       "ContactCollection?$skiptoken=1001\",\"results\":[{\"__metadata\":"
                       "{\"type\":\"c4codata.Contact\"},\"ObjectID\":\"" OID "\"}]}}";

    fake_host_push(200, NULL, body);
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), 0);
    assert_non_null(found);
    assert_true(json_is_null(json_object_get(found, "etag")));
    json_decref(found);

    assert_int_equal(ferry__sap_parse_collection(body, strlen(body), &results, &next, &err), 0);
    assert_int_equal(json_array_size(results), 1);
    assert_string_equal(next, ROOT "ContactCollection?$skiptoken=1001");
    json_decref(results);
    free(next);

    fake_host_push(200, NULL, "{\"d\":{\"__count\":1209,\"results\":[]}}");
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), FERRY_EPROTO);
}

static void test_sap_fetch_keeps_metadata(void **ts)
{
    struct fixture *f = *ts;
    json_t *rec = NULL;
    struct ferry_err err = {0};

    fake_host_push(200, "etag: " ETAG1 "\n",
                   "{\"d\":{\"results\":{\"__metadata\":{\"etag\":\"W/\\\"datetimeoffset'2024-05-"
                   "01T10%3A00%3A00.1234560Z'\\\"\"},\"ObjectID\":\"" OID
                   "\",\"LastName\":\"Lovelace\"}}}");
    assert_int_equal(
        f->conn->fetch(f->state, fake_host_call(), "ContactCollection", OID, &rec, &err), 0);
    assert_string_equal(fake_host_request(0)->url,
                        ROOT "ContactCollection('" OID "')?$format=json");
    assert_string_equal(ferry__sap_entity_etag(rec), ETAG1);
    assert_string_equal(json_string_value(json_object_get(rec, "LastName")), "Lovelace");
    assert_int_equal(json_object_size(rec), 3);
    json_decref(rec);
}

/* ---- writes ---- */

static void test_sap_create_fetches_token_once(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL, *sent = NULL, *fields = contact_fields();
    struct ferry_err err = {0};
    const struct fake_request *r;

    push_token("tok-1");
    fake_host_push(201, "location: " ROOT "ContactCollection('" OID "')\netag: " ETAG1 "\n",
                   "{\"d\":{\"results\":{\"__metadata\":{\"etag\":\"W/\\\"old\\\"\"},"
                   "\"ObjectID\":\"" OID "\",\"ContactID\":\"1000042\"}}}");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), 0);
    assert_int_equal(fake_host_nrequests(), 2);
    assert_csrf_fetch(0, 0);
    r = fake_host_request(1);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, ROOT "ContactCollection");
    assert_string_equal(fake_request_header(r, "x-csrf-token"), "tok-1");
    assert_string_equal(fake_request_header(r, "Content-Type"), "application/json");
    assert_string_equal(fake_request_header(r, "Accept"), "application/json");
    assert_null(fake_request_header(r, "If-Match"));
    sent = json_loads(r->body, 0, NULL);
    assert_non_null(sent);
    assert_true(json_equal(sent, fields));
    assert_null(json_object_get(sent, "ObjectID"));
    assert_string_equal(json_string_value(json_object_get(result, "id")), OID);
    /* The etag header wins over the body's copy. */
    assert_string_equal(json_string_value(json_object_get(result, "etag")), ETAG1);
    json_decref(result);
    json_decref(sent);
    json_decref(fields);

    /* Standard v2 shape, no etag header: the body's __metadata.etag is used. */
    result = NULL;
    fake_host_push(201, NULL,
                   "{\"d\":{\"__metadata\":{\"etag\":\"W/\\\"datetimeoffset'2024-05-02T11%3A30%3A"
                   "00.7654320Z'\\\"\"},\"ObjectID\":\"B2\"}}");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), 0);
    assert_int_equal(fake_host_nrequests(), 3);
    assert_string_equal(fake_request_header(fake_host_request(2), "x-csrf-token"), "tok-1");
    assert_string_equal(json_string_value(json_object_get(result, "id")), "B2");
    assert_string_equal(json_string_value(json_object_get(result, "etag")), ETAG2);
    json_decref(result);

    /* Neither header nor metadata: null. */
    result = NULL;
    fake_host_push(201, NULL, "{\"d\":{\"ObjectID\":\"C3\"}}");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), 0);
    assert_true(json_is_null(json_object_get(result, "etag")));
    json_decref(result);
    assert_int_equal(fake_host_pending(), 0);
}

static void test_sap_create_unparseable_body_is_eproto(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};

    push_token("tok-1");
    fake_host_push(201, NULL, "<html>created</html>");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), FERRY_EPROTO);
    assert_null(result);
    fake_host_push(201, NULL, "{\"d\":{\"results\":{\"LastName\":\"x\"}}}");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), FERRY_EPROTO);
    assert_non_null(strstr(err.msg, "ObjectID"));
}

static void test_sap_update_sends_if_match_verbatim(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};
    const struct fake_request *r;

    push_token("tok-1");
    fake_host_push(204, "etag: " ETAG2 "\n", NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_UPDATE, OID, ETAG1, &result, &err), 0);
    assert_int_equal(fake_host_nrequests(), 2);
    r = fake_host_request(1);
    assert_string_equal(r->method, "PATCH");
    assert_string_equal(r->url, ROOT "ContactCollection('" OID "')");
    assert_string_equal(fake_request_header(r, "If-Match"), ETAG1);
    assert_string_equal(fake_request_header(r, "x-csrf-token"), "tok-1");
    assert_string_equal(json_string_value(json_object_get(result, "id")), OID);
    assert_string_equal(json_string_value(json_object_get(result, "etag")), ETAG2);
    json_decref(result);

    /* No etag header on the 204: the host must re-read before a conditional write. */
    result = NULL;
    fake_host_push(204, NULL, NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_UPDATE, OID, NULL, &result, &err), 0);
    assert_null(fake_request_header(fake_host_request(2), "If-Match"));
    assert_true(json_is_null(json_object_get(result, "etag")));
    json_decref(result);
}

static void test_sap_csrf_required_refetches_once(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};

    push_token("tok-1");
    fake_host_push(403, "x-csrf-token: Required\n", "CSRF token validation failed");
    push_token("tok-2");
    fake_host_push(201, NULL, "{\"d\":{\"results\":{\"ObjectID\":\"" OID "\"}}}");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), 0);
    assert_int_equal(fake_host_nrequests(), 4);
    assert_csrf_fetch(0, 0);
    assert_string_equal(fake_request_header(fake_host_request(1), "x-csrf-token"), "tok-1");
    assert_csrf_fetch(2, FERRY_HTTP_RESET_SESSION);
    assert_string_equal(fake_host_request(3)->method, "POST");
    assert_string_equal(fake_request_header(fake_host_request(3), "x-csrf-token"), "tok-2");
    assert_string_equal(json_string_value(json_object_get(result, "id")), OID);
    json_decref(result);

    /* A body-only signal (no header) counts too, and the new token stays in use. */
    result = NULL;
    fake_host_push(403, NULL,
                   "{\"error\":{\"code\":\"\",\"message\":{\"lang\":\"en\","
                   "\"value\":\"CSRF token validation failed\"}}}");
    push_token("tok-3");
    fake_host_push(204, NULL, NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_UPDATE, OID, NULL, &result, &err), 0);
    assert_string_equal(fake_request_header(fake_host_request(4), "x-csrf-token"), "tok-2");
    assert_csrf_fetch(5, FERRY_HTTP_RESET_SESSION);
    assert_string_equal(fake_request_header(fake_host_request(6), "x-csrf-token"), "tok-3");
    json_decref(result);
}

static void test_sap_csrf_second_failure_is_forbidden(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};

    push_token("tok-1");
    fake_host_push(403, "X-CSRF-Token: required\n", NULL);
    push_token("tok-2");
    fake_host_push(403, "x-csrf-token: Required\n", NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), FERRY_EFORBIDDEN);
    assert_null(result);
    assert_int_equal(err.code, FERRY_EFORBIDDEN);
    assert_int_equal(fake_host_nrequests(), 4);
    assert_int_equal(fake_host_pending(), 0);

    /* The refused token is dropped: the next write starts with a fresh fetch. */
    push_token("tok-3");
    fake_host_push(201, NULL, "{\"d\":{\"ObjectID\":\"" OID "\"}}");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), 0);
    assert_csrf_fetch(4, 0);
    json_decref(result);
}

static void test_sap_forbidden_without_csrf_is_not_retried(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};

    push_token("tok-1");
    fake_host_push(403, NULL,
                   "{\"error\":{\"code\":\"\",\"message\":{\"lang\":\"en\","
                   "\"value\":\"No authorization for ContactCollection\"}}}");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), FERRY_EFORBIDDEN);
    assert_int_equal(fake_host_nrequests(), 2);
    assert_non_null(strstr(err.msg, "No authorization"));
}

static void test_sap_412_rereads_and_retries(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};

    push_token("tok-1");
    fake_host_push(412, NULL,
                   "{\"error\":{\"code\":\"\",\"message\":{\"lang\":\"en\","
                   "\"value\":\"Precondition failed\"}}}");
    fake_host_push(200, NULL,
                   "{\"d\":{\"results\":{\"__metadata\":{\"etag\":\"W/\\\"datetimeoffset'2024-05-"
                   "02T11%3A30%3A00.7654320Z'\\\"\"},\"ObjectID\":\"" OID "\"}}}");
    fake_host_push(204, NULL, NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_UPDATE, OID, ETAG1, &result, &err), 0);
    assert_int_equal(fake_host_nrequests(), 4);
    assert_string_equal(fake_request_header(fake_host_request(1), "If-Match"), ETAG1);
    assert_string_equal(fake_host_request(2)->method, "GET");
    assert_string_equal(fake_host_request(2)->url,
                        ROOT "ContactCollection('" OID "')?$format=json");
    assert_string_equal(fake_host_request(3)->method, "PATCH");
    assert_string_equal(fake_request_header(fake_host_request(3), "If-Match"), ETAG2);
    assert_string_equal(json_string_value(json_object_get(result, "id")), OID);
    json_decref(result);
}

static void test_sap_412_twice_is_conflict(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};

    push_token("tok-1");
    fake_host_push(412, NULL, NULL);
    fake_host_push(200, NULL,
                   "{\"d\":{\"__metadata\":{\"etag\":\"W/\\\"v2\\\"\"},\"ObjectID\":\"" OID "\"}}");
    fake_host_push(412, NULL, NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_UPDATE, OID, ETAG1, &result, &err), FERRY_ECONFLICT);
    assert_null(result);
    assert_int_equal(err.code, FERRY_ECONFLICT);
    assert_int_equal(fake_host_nrequests(), 4);
    assert_int_equal(fake_host_pending(), 0);
}

/* ---- errors ---- */

static void test_sap_error_sample_from_specs(void **ts)
{
    struct fixture *f = *ts;
    char *path = specs_path("sap/c4c-odata-v2/samples/error.json");
    char *body = fake_host_read_file(path);
    json_t *doc = NULL, *found = NULL;
    struct ferry_err err = {0};
    char text[256];
    const char *want;

    if (!body) {
        fprintf(stderr, "skipping: %s not found (set FERRY_SPECS)\n", path);
        free(path);
        skip();
    }
    doc = json_loads(body, 0, NULL);
    assert_non_null(doc);
    want = json_string_value(
        json_object_get(json_object_get(json_object_get(doc, "error"), "message"), "value"));
    assert_non_null(want);
    assert_true(strlen(want) > 0);
    ferry__sap_error_text(body, strlen(body), text, sizeof(text));
    assert_string_equal(text, want);

    fake_host_push(400, "content-type: application/json\n", body);
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), FERRY_EVALIDATION);
    assert_non_null(strstr(err.msg, want));
    json_decref(doc);
    free(body);
    free(path);
}

static void test_sap_400_is_validation_with_message(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};

    push_token("tok-1");
    fake_host_push(400, NULL,
                   "{\"error\":{\"code\":\"\",\"message\":{\"lang\":\"en\","
                   "\"value\":\"Property LastNam is invalid\"}}}");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), FERRY_EVALIDATION);
    assert_int_equal(err.code, FERRY_EVALIDATION);
    assert_non_null(strstr(err.msg, "Property LastNam is invalid"));
    assert_non_null(strstr(err.msg, "400"));
    assert_int_equal(err.retry_after_ms, 0);
}

static void test_sap_401_is_auth(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = NULL;
    struct ferry_err err = {0};

    fake_host_push(401, "www-authenticate: Basic realm=\"SAP\"\n", "<html>Logon failed</html>");
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), FERRY_EAUTH);
    assert_non_null(strstr(err.msg, "Logon failed"));

    /* A 401 on the token fetch stops the write before anything is sent. */
    assert_int_equal(fake_host_nrequests(), 1);
    fake_host_push(401, NULL, NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &found, &err), FERRY_EAUTH);
    assert_int_equal(fake_host_nrequests(), 2);
}

static void test_sap_429_and_503_carry_retry_after(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = NULL;
    struct ferry_err err = {0};

    fake_host_push(429, "Retry-After: 7\n", NULL);
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), FERRY_ERATELIMIT);
    assert_int_equal(err.retry_after_ms, 7000);

    fake_host_push(503, NULL, "Service Unavailable");
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), FERRY_EUNAVAILABLE);
    assert_int_equal(err.retry_after_ms, FERRY_SAP_DEFAULT_RETRY_MS);

    fake_host_push(429, "retry-after: Wed, 21 Oct 2015 07:28:00 GMT\n", NULL);
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), FERRY_ERATELIMIT);
    assert_int_equal(err.retry_after_ms, FERRY_SAP_DEFAULT_RETRY_MS);
}

static void test_sap_500_non_json_is_unavailable(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = NULL;
    struct ferry_err err = {0};
    char body[600];
    char text[256];

    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    memcpy(body, "<html>\nInternal", 15);
    fake_host_push(500, NULL, body);
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), FERRY_EUNAVAILABLE);
    assert_int_equal(err.retry_after_ms, 0);
    assert_non_null(strstr(err.msg, "<html> Internal"));

    ferry__sap_error_text(body, strlen(body), text, sizeof(text));
    assert_int_equal(strlen(text), FERRY_SAP_ERROR_TEXT_MAX);
}

static void test_sap_transport_error_passes_through(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = NULL;
    struct ferry_err err = {0};

    fake_host_push_error(FERRY_ETIMEDOUT);
    assert_int_equal(do_lookup(f, "a@example.com", &found, &err), FERRY_ETIMEDOUT);
    assert_int_equal(err.code, FERRY_ETIMEDOUT);

    push_token("tok-1");
    fake_host_push_error(FERRY_ENETWORK);
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &found, &err), FERRY_ENETWORK);
    assert_null(found);
}

static void test_sap_unsupported_callbacks(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *out = (json_t *)1;
    struct ferry_webhook wh = {.path = "", .body = "{}", .body_len = 2};

    assert_int_equal(f->conn->list_changes(f->state, fake_host_call(), "ContactCollection", NULL,
                                           NULL, &out, &err),
                     FERRY_EUNSUPPORTED);
    assert_null(out);
    assert_int_equal(f->conn->verify_webhook(f->state, fake_host_loop_call(), &wh, &err),
                     FERRY_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "no webhooks"));
    out = (json_t *)1;
    assert_int_equal(f->conn->decode_webhook(f->state, fake_host_loop_call(), &wh, &out, &err),
                     FERRY_EUNSUPPORTED);
    assert_null(out);
    assert_int_equal(fake_host_nrequests(), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sap_entry_checks_abi),
        cmocka_unit_test(test_sap_open_rejects_bad_config),
        cmocka_unit_test(test_sap_open_normalises_root_slash),
        cmocka_unit_test(test_sap_base64_padding),
        T(test_sap_basic_auth_header),
        T(test_sap_lookup_escapes_value_and_finds_none),
        T(test_sap_lookup_one_result),
        T(test_sap_lookup_two_results_is_duplicate),
        T(test_sap_lookup_parses_next_and_count),
        T(test_sap_fetch_keeps_metadata),
        T(test_sap_create_fetches_token_once),
        T(test_sap_create_unparseable_body_is_eproto),
        T(test_sap_update_sends_if_match_verbatim),
        T(test_sap_csrf_required_refetches_once),
        T(test_sap_csrf_second_failure_is_forbidden),
        T(test_sap_forbidden_without_csrf_is_not_retried),
        T(test_sap_412_rereads_and_retries),
        T(test_sap_412_twice_is_conflict),
        T(test_sap_error_sample_from_specs),
        T(test_sap_400_is_validation_with_message),
        T(test_sap_401_is_auth),
        T(test_sap_429_and_503_carry_retry_after),
        T(test_sap_500_non_json_is_unavailable),
        T(test_sap_transport_error_passes_through),
        T(test_sap_unsupported_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
