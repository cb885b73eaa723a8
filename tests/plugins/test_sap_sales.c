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
#include <unistd.h>

#include <jansson.h>

#include "ferry/plugin.h"

#include "fake_host.h"
#include "sap_sales_batch.h"
#include "sap_sales_metadata.h"
#include "sap_sales_odata.h"

#ifndef FERRY_SPECS_DEFAULT
#define FERRY_SPECS_DEFAULT "../shared/specs"
#endif

int ferry_connector_entry(const struct ferry_host_api *host, const struct ferry_connector **out);

#define SMALL_EDMX FERRY_SOURCE_DIR "/tests/fixtures/sap/c4c-small.edmx"
#define FIXTURES   FERRY_SOURCE_DIR "/tests/fixtures/sap/"

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
                  " \"timeout\": 30, \"page_size\": 1000,"
                  " \"metadata_file\": \"" SMALL_EDMX "\"}",
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
    /* username/password are required only with auth = "basic"; open checks that. */
    assert_int_equal(required, 0);

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

/* Several conditions: and between properties, or within one (as SAP allows). */
static void test_sap_lookup_where_builds_one_filter(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = (json_t *)1;
    struct ferry_err err = {0};
    json_t *where = json_pack("{s:s, s:[s, s]}", "AccountID", "O'Neil 17", "StatusCode", "1", "2");

    fake_host_push(200, NULL, "{\"d\":{\"results\":[]}}");
    assert_int_equal(
        f->conn->lookup_where(f->state, fake_host_call(), "ContactCollection", where, &found, &err),
        0);
    assert_null(found);
    assert_int_equal(fake_host_nrequests(), 1);
    assert_string_equal(fake_host_request(0)->url,
                        ROOT "ContactCollection?$filter=AccountID%20eq%20%27O%27%27Neil%2017%27"
                             "%20and%20(StatusCode%20eq%20%271%27%20or%20StatusCode%20eq%20"
                             "%272%27)&$format=json&$top=2");
    json_decref(where);

    /* Not a property name, or not strings: refused before any request. */
    where = json_pack("{s:s}", "A eq 'x' or B", "v");
    assert_int_equal(
        f->conn->lookup_where(f->state, fake_host_call(), "ContactCollection", where, &found, &err),
        FERRY_EINVAL);
    json_decref(where);
    where = json_pack("{s:i}", "Email", 5);
    assert_int_equal(
        f->conn->lookup_where(f->state, fake_host_call(), "ContactCollection", where, &found, &err),
        FERRY_EINVAL);
    json_decref(where);
    where = json_object();
    assert_int_equal(
        f->conn->lookup_where(f->state, fake_host_call(), "ContactCollection", where, &found, &err),
        FERRY_EINVAL);
    json_decref(where);
    assert_int_equal(fake_host_nrequests(), 1);
}

/* One request for a batch's values; each row matched back to its value. */
static void test_sap_lookup_many_matches_rows_to_values(void **ts)
{
    struct fixture *f = *ts;
    json_t *found = NULL;
    struct ferry_err err = {0};
    const char *values[] = {"a@example.com", "b@example.com", "c@example.com"};

    fake_host_push(200, NULL,
                   "{\"d\":{\"results\":["
                   "{\"ObjectID\":\"O1\",\"Email\":\"A@example.com\"},"
                   "{\"ObjectID\":\"O2\",\"Email\":\"c@example.com\"},"
                   "{\"ObjectID\":\"O3\",\"Email\":\"c@example.com\"}]}}");
    assert_int_equal(f->conn->lookup_many(f->state, fake_host_call(), "ContactCollection", "Email",
                                          values, 3, &found, &err),
                     0);
    assert_int_equal(fake_host_nrequests(), 1);
    assert_string_equal(fake_host_request(0)->url,
                        ROOT "ContactCollection?$filter=(Email%20eq%20%27a%40example.com%27"
                             "%20or%20Email%20eq%20%27b%40example.com%27%20or%20Email%20eq%20"
                             "%27c%40example.com%27)&$format=json&$top=7");
    assert_int_equal(json_array_size(found), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(found, 0), "id")), "O1");
    assert_true(json_is_null(json_array_get(found, 1)));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(found, 2), "error")),
                     FERRY_EDUPLICATE);
    json_decref(found);

    /* An answer as long as $top may have been cut off: nothing is concluded. */
    fake_host_push(200, NULL,
                   "{\"d\":{\"results\":[{\"ObjectID\":\"O1\",\"Email\":\"a@example.com\"},"
                   "{\"ObjectID\":\"O2\",\"Email\":\"a@example.com\"},"
                   "{\"ObjectID\":\"O3\",\"Email\":\"a@example.com\"}]}}");
    assert_int_equal(f->conn->lookup_many(f->state, fake_host_call(), "ContactCollection", "Email",
                                          values, 1, &found, &err),
                     FERRY_EPROTO);
    assert_null(found);
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

/* With odata-no-response-payload SAP answers a create with headers alone (facts section 3). */
static void test_sap_create_reads_location_and_etag_headers(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};
    const struct fake_request *r;

    push_token("tok-1");
    fake_host_push(201, "location: " ROOT "ContactCollection('" OID "')\netag: " ETAG1 "\n", NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), 0);
    r = fake_host_request(1);
    assert_string_equal(r->method, "POST");
    assert_string_equal(fake_request_header(r, "odata-no-response-payload"), "true");
    assert_string_equal(json_string_value(json_object_get(result, "id")), OID);
    assert_string_equal(json_string_value(json_object_get(result, "etag")), ETAG1);
    json_decref(result);

    /* No etag header and no body: the version is unknown (null), the id is not. */
    result = NULL;
    fake_host_push(201, "location: " ROOT "ContactCollection('B2')\n", NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), 0);
    assert_string_equal(json_string_value(json_object_get(result, "id")), "B2");
    assert_true(json_is_null(json_object_get(result, "etag")));
    json_decref(result);

    /* A tenant that ignores the request header: a missing etag header comes from the body. */
    result = NULL;
    fake_host_push(201, "location: " ROOT "ContactCollection('C3')\n",
                   "{\"d\":{\"results\":{\"__metadata\":{\"etag\":\"W/\\\"datetimeoffset'2024-05-"
                   "02T11%3A30%3A00.7654320Z'\\\"\"},\"ObjectID\":\"C3\"}}}");
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), 0);
    assert_string_equal(json_string_value(json_object_get(result, "id")), "C3");
    assert_string_equal(json_string_value(json_object_get(result, "etag")), ETAG2);
    json_decref(result);

    /* Neither a usable location nor a body: the key is unknown, which is a protocol error. */
    result = NULL;
    fake_host_push(201, "location: " ROOT "ContactCollection\netag: " ETAG1 "\n", NULL);
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err), FERRY_EPROTO);
    assert_null(result);
    assert_non_null(strstr(err.msg, "ObjectID"));
    assert_int_equal(fake_host_pending(), 0);
}

static void test_sap_location_key(void **ts)
{
    char *k;
    (void)ts;
    k = ferry__sap_location_key(ROOT "ContactCollection('" OID "')");
    assert_string_equal(k, OID);
    free(k);
    /* Doubled quotes and percent-encoding of the OData literal are undone. */
    k = ferry__sap_location_key("http://h/s/X('O''Brien%20%26%20Co')");
    assert_string_equal(k, "O'Brien & Co");
    free(k);
    k = ferry__sap_location_key("/s/X('a%27%27b')?$format=json");
    assert_string_equal(k, "a'b");
    free(k);
    assert_null(ferry__sap_location_key(NULL));
    assert_null(ferry__sap_location_key(""));
    assert_null(ferry__sap_location_key(ROOT "ContactCollection"));
    assert_null(ferry__sap_location_key(ROOT "ContactCollection('')"));
    assert_null(ferry__sap_location_key(ROOT "ContactCollection(42)"));
    assert_null(ferry__sap_location_key(ROOT "X(A='1',B='2')"));
    assert_null(ferry__sap_location_key(ROOT "X('a'b')"));
    assert_null(ferry__sap_location_key(ROOT "X('a%00b')"));
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

static void test_sap_csrf_second_failure_is_transient(void **ts)
{
    struct fixture *f = *ts;
    json_t *result = NULL;
    struct ferry_err err = {0};

    push_token("tok-1");
    fake_host_push(403, "X-CSRF-Token: required\n", NULL);
    push_token("tok-2");
    fake_host_push(403, "x-csrf-token: Required\n", NULL);
    /* A session problem, not a permission: the job is retried later. */
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &result, &err),
                     FERRY_EUNAVAILABLE);
    assert_null(result);
    assert_int_equal(err.code, FERRY_EUNAVAILABLE);
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

    /* A POST that got no answer may have created the record: the host must look it up first. */
    push_token("tok-1");
    fake_host_push_error(FERRY_ENETWORK);
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &found, &err),
                     FERRY_EUNKNOWN_OUTCOME);
    assert_null(found);
    assert_non_null(strstr(err.msg, "after the request was sent"));

    /* ...but a failed token fetch before it sent nothing: an ordinary transient error. */
    f->conn->worker_free(f->state, fake_host_slot_value());
    fake_host_reset();
    fake_host_push_error(FERRY_ETIMEDOUT);
    assert_int_equal(do_write(f, FERRY_WRITE_CREATE, NULL, NULL, &found, &err), FERRY_ETIMEDOUT);
    assert_null(found);
}

static void test_sap_unsupported_callbacks(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *out = (json_t *)1;
    struct ferry_webhook wh = {.path = "", .body = "{}", .body_len = 2};

    /* A child node without EntityLastChangedOn cannot be read by delta. */
    assert_int_equal(f->conn->list_changes(f->state, fake_host_call(), "OpportunityPartyCollection",
                                           NULL, NULL, &out, &err),
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

/* ---- issue 4: metadata, field rules, Atom, deltas, $batch, OAuth, external ids ---- */

static json_t *load_meta(const char *path)
{
    char *xml = fake_host_read_file(path);
    json_t *meta = NULL;
    struct ferry_err err = {0};
    if (!xml) {
        return NULL;
    }
    assert_int_equal(ferry__sap_meta_parse(xml, strlen(xml), &meta, &err), 0);
    free(xml);
    return meta;
}

static bool flag(const json_t *meta, const char *set, const char *prop, const char *name)
{
    const json_t *p = ferry__sap_meta_prop(meta, set, prop);
    assert_non_null(p);
    return json_is_true(json_object_get(p, name));
}

static void test_sap_metadata_small_fixture(void **ts)
{
    json_t *meta = load_meta(SMALL_EDMX);
    static const char *const sets[] = {"CorporateAccountCollection",
                                       "ContactCollection",
                                       "IndividualCustomerCollection",
                                       "LeadCollection",
                                       "OpportunityCollection",
                                       "TasksCollection",
                                       "PhoneCallCollection",
                                       "AppointmentCollection",
                                       "CustomerOrderCollection",
                                       "SalesQuoteCollection",
                                       "ObjectIdentifierMappingCollection",
                                       "EmployeeCollection",
                                       "OpportunityPartyCollection",
                                       "TasksTextCollectionCollection",
                                       NULL};

    assert_non_null(meta);
    for (const char *const *s = sets; *s; s++) {
        assert_string_equal(
            json_string_value(json_object_get(ferry__sap_meta_set(meta, *s), "key")), "ObjectID");
    }
    assert_false(flag(meta, "ContactCollection", "ExternalID", "creatable"));
    assert_false(flag(meta, "ContactCollection", "ExternalID", "updatable"));
    assert_true(flag(meta, "ContactCollection", "ExternalID", "filterable"));
    assert_false(flag(meta, "ContactCollection", "LastName", "nullable"));
    assert_int_equal(
        json_integer_value(json_object_get(
            ferry__sap_meta_prop(meta, "ContactCollection", "LastName"), "max_length")),
        40);
    assert_false(flag(meta, "OpportunityCollection", "ExternalID", "creatable"));
    assert_true(flag(meta, "OpportunityCollection", "ExternalID", "updatable"));
    assert_false(flag(meta, "ContactCollection", "ETag", "filterable"));
    assert_string_equal(
        json_string_value(json_object_get(
            ferry__sap_meta_prop(meta, "OpportunityCollection", "ProbabilityPercent"), "type")),
        "Edm.Decimal");
    assert_true(ferry__sap_meta_is_nav(meta, "CustomerOrderCollection", "CustomerOrderItem"));
    assert_false(ferry__sap_meta_is_nav(meta, "CustomerOrderCollection", "Name"));
    assert_null(ferry__sap_meta_set(meta, "NoSuchCollection"));
    json_decref(meta);
}

static void test_sap_metadata_real_tenant_edmx(void **ts)
{
    char *path = specs_path("sap/c4c-odata-v2/C4C.edmx");
    json_t *meta = load_meta(path);
    json_t *described;

    if (!meta) {
        print_message("skipped: %s not found (set FERRY_SPECS to the shared specs directory)\n",
                      path);
        free(path);
        skip();
    }
    free(path);
    assert_true(json_object_size(meta) > 400);
    /* Facts 7/8, read off the tenant's document. */
    assert_false(flag(meta, "ContactCollection", "ExternalID", "creatable"));
    assert_false(flag(meta, "ContactCollection", "ExternalID", "updatable"));
    assert_false(flag(meta, "CorporateAccountCollection", "ExternalID", "updatable"));
    assert_true(flag(meta, "OpportunityCollection", "ExternalID", "updatable"));
    assert_false(flag(meta, "OpportunityCollection", "ExternalID", "creatable"));
    assert_false(flag(meta, "LeadCollection", "ID", "creatable"));
    assert_false(flag(meta, "SalesQuoteCollection", "ApprovalStatusCode", "updatable"));
    assert_false(flag(meta, "CorporateAccountCollection", "Name", "nullable"));
    assert_int_equal(
        json_integer_value(json_object_get(
            ferry__sap_meta_prop(meta, "CorporateAccountCollection", "Name"), "max_length")),
        40);
    assert_non_null(ferry__sap_meta_prop(meta, "TasksCollection", "EntityLastChangedOn"));
    assert_null(ferry__sap_meta_prop(meta, "OpportunityPartyCollection", "EntityLastChangedOn"));
    assert_true(ferry__sap_meta_is_nav(meta, "CustomerOrderCollection", "CustomerOrderItem"));
    for (const char *const *s =
             (const char *const[]){"CorporateAccountCollection", "IndividualCustomerCollection",
                                   "PhoneCallCollection", "AppointmentCollection",
                                   "CustomerOrderItemCollection",
                                   "ObjectIdentifierMappingCollection", "EmployeeCollection", NULL};
         *s; s++) {
        assert_non_null(ferry__sap_meta_set(meta, *s));
    }
    described = ferry__sap_meta_describe(meta);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(described, "ContactCollection"), "key")),
        "ObjectID");
    assert_null(json_object_get(json_object_get(described, "ContactCollection"), "navigations"));
    json_decref(described);
    json_decref(meta);
}

static void test_sap_metadata_rejects_junk_and_entities(void **ts)
{
    struct ferry_err err = {0};
    json_t *meta = NULL;
    const char *xxe =
        "<?xml version=\"1.0\"?><!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<edmx:Edmx "
        "xmlns:edmx=\"http://schemas.microsoft.com/ado/2007/06/edmx\"><edmx:DataServices>"
        "<Schema Namespace=\"n\" xmlns=\"http://schemas.microsoft.com/ado/2008/09/edm\">"
        "<EntityType Name=\"T\"><Key><PropertyRef Name=\"ObjectID\"/></Key>"
        "<Property Name=\"ObjectID\" Type=\"Edm.String\"/><Property Name=\"A&x;\" "
        "Type=\"Edm.String\"/></EntityType><EntityContainer Name=\"c\">"
        "<EntitySet Name=\"TCollection\" EntityType=\"n.T\"/></EntityContainer></Schema>"
        "</edmx:DataServices></edmx:Edmx>";
    const char *it;
    json_t *v;

    assert_int_equal(ferry__sap_meta_parse("<edmx:Edmx", 10, &meta, &err), FERRY_EBADINPUT);
    assert_null(meta);
    assert_int_equal(ferry__sap_meta_parse("<a/>", 4, &meta, &err), FERRY_EBADINPUT);
    /* External entities are never read: the property name keeps no file content. */
    if (ferry__sap_meta_parse(xxe, strlen(xxe), &meta, &err) == 0) {
        json_object_foreach(json_object_get(json_object_get(meta, "TCollection"), "properties"), it,
                            v)
        {
            assert_null(strstr(it, "root:"));
        }
        json_decref(meta);
    }
}

static const char *small_edmx_text(void)
{
    static char *text;
    if (!text) {
        text = fake_host_read_file(SMALL_EDMX);
        assert_non_null(text);
    }
    return text;
}

static void test_sap_describe_fetches_caches_and_falls_back(void **ts)
{
    const struct ferry_connector *c = connector();
    struct ferry_err err = {0};
    void *state = NULL;
    json_t *objs = NULL;
    const char *cfg = "{\"service_root\": \"" ROOT "\", \"username\": \"u\", \"password\": \"p\","
                      " \"metadata_max_age\": 3600}";

    fake_host_reset();
    fake_host_set_now(1700000000000);
    assert_int_equal(open_with(c, cfg, &state, &err), 0);
    fake_host_push(200, "Content-Type: application/xml\n", small_edmx_text());
    assert_int_equal(c->describe(state, fake_host_call(), &objs, &err), 0);
    assert_string_equal(fake_host_request(0)->url, ROOT "$metadata");
    assert_true(fake_host_request(0)->flags & FERRY_HTTP_NO_AUDIT_BODY);
    assert_non_null(json_object_get(objs, "ContactCollection"));
    assert_false(json_is_true(json_object_get(
        json_object_get(json_object_get(json_object_get(objs, "ContactCollection"), "properties"),
                        "ExternalID"),
        "creatable")));
    json_decref(objs);
    assert_int_equal(fake_host_kv_puts(), 1);
    assert_non_null(fake_host_kv_value("metadata"));
    c->close(state);

    /* A new instance (a restart) within the age limit reads the cache, not the tenant. */
    assert_int_equal(open_with(c, cfg, &state, &err), 0);
    assert_int_equal(c->describe(state, fake_host_call(), &objs, &err), 0);
    assert_int_equal(fake_host_nrequests(), 1);
    json_decref(objs);
    c->close(state);

    /* Older than the limit: fetched again; when that fails the old copy serves. */
    fake_host_set_now(1700000000000 + 3601 * 1000);
    assert_int_equal(open_with(c, cfg, &state, &err), 0);
    fake_host_push(503, "Retry-After: 5\n", "down");
    assert_int_equal(c->describe(state, fake_host_call(), &objs, &err), 0);
    assert_int_equal(fake_host_nrequests(), 2);
    assert_non_null(json_object_get(objs, "LeadCollection"));
    assert_true(fake_host_log_count(FERRY_LOG_WARN) >= 1);
    json_decref(objs);
    c->close(state);

    /* No cache and no tenant: describe fails, and says why. */
    fake_host_reset();
    assert_int_equal(open_with(c, cfg, &state, &err), 0);
    fake_host_push(500, NULL, "boom");
    assert_int_equal(c->describe(state, fake_host_call(), &objs, &err), FERRY_EUNAVAILABLE);
    assert_null(objs);
    c->close(state);
    fake_host_set_now(1700000000000);
    fake_host_reset();
}

static int write_fields(struct fixture *f, int op, const char *object, const char *id,
                        const char *etag, const char *fields_json, json_t **result,
                        struct ferry_err *err)
{
    json_t *fields = json_loads(fields_json, 0, NULL);
    struct ferry_write w = {.op = op, .object = object, .id = id, .etag = etag, .fields = fields};
    int rc;
    assert_non_null(fields);
    rc = f->conn->write(f->state, fake_host_call(), &w, result, err);
    json_decref(fields);
    return rc;
}

static void assert_body(size_t i, const char *want_json)
{
    json_t *got = json_loads(fake_host_request(i)->body, 0, NULL);
    json_t *want = json_loads(want_json, 0, NULL);
    assert_non_null(got);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        fail_msg("request %zu body %s, want %s", i, fake_host_request(i)->body, want_json);
    }
    json_decref(got);
    json_decref(want);
}

#define CREATED(oid)                                                                               \
    "{\"d\":{\"results\":{\"__metadata\":{\"etag\":\""                                             \
    "W/\\\"x\\\""                                                                                  \
    "\"},\"ObjectID\":\"" oid "\"}}}"

static void test_sap_write_drops_read_only_and_approval_fields(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *res = NULL;
    size_t warns;

    push_token("tok-1");
    fake_host_push(201, "etag: " ETAG1 "\n", CREATED(OID));
    warns = fake_host_log_count(FERRY_LOG_WARN);
    assert_int_equal(write_fields(f, FERRY_WRITE_CREATE, "ContactCollection", NULL, NULL,
                                  "{\"LastName\": \"Lovelace\", \"ExternalID\": \"bc:1\","
                                  " \"ObjectID\": \"X\", \"ApprovalStatusCode\": \"3\"}",
                                  &res, &err),
                     0);
    assert_body(1, "{\"LastName\": \"Lovelace\"}");
    assert_int_equal(fake_host_log_count(FERRY_LOG_WARN) - warns, 3);
    json_decref(res);

    /* Opportunities: approval checked first; ID is create-only, SetAsWon an action flag. */
    fake_host_push(200, NULL,
                   "{\"d\":{\"results\":{\"ObjectID\":\"" OID "\",\"ApprovalStatusCode\":\"1\"}}}");
    fake_host_push(204, "etag: " ETAG2 "\n", NULL);
    assert_int_equal(write_fields(f, FERRY_WRITE_UPDATE, "OpportunityCollection", OID, ETAG1,
                                  "{\"Name\": \"Big deal\", \"ID\": \"42\", \"SetAsWon\": true,"
                                  " \"SalesCyclePhaseCode\": \"003\"}",
                                  &res, &err),
                     0);
    assert_string_equal(fake_host_request(2)->method, "GET");
    assert_string_equal(fake_host_request(2)->url,
                        ROOT "OpportunityCollection('" OID "')?$format=json&$select="
                             "ApprovalStatusCode");
    assert_string_equal(fake_host_request(3)->method, "PATCH");
    assert_body(3, "{\"Name\": \"Big deal\", \"SalesCyclePhaseCode\": \"003\"}");
    assert_string_equal(json_string_value(json_object_get(res, "etag")), ETAG2);
    json_decref(res);

    /* Nothing writable left: no request at all. */
    assert_int_equal(write_fields(f, FERRY_WRITE_UPDATE, "ContactCollection", OID, ETAG1,
                                  "{\"ExternalID\": \"bc:1\"}", &res, &err),
                     0);
    assert_int_equal(fake_host_nrequests(), 4);
    json_decref(res);
}

static void test_sap_deep_insert_passes_items_through(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *res = NULL;

    push_token("tok-1");
    fake_host_push(201, NULL, CREATED(OID));
    assert_int_equal(write_fields(f, FERRY_WRITE_CREATE, "CustomerOrderCollection", NULL, NULL,
                                  "{\"BuyerID\": \"bc-order-100\", \"BuyerPartyID\": \"1001\","
                                  " \"SubmitForApproval\": true, \"CustomerOrderItem\": ["
                                  "{\"ProductID\": \"P1\", \"Quantity\": \"2\"}]}",
                                  &res, &err),
                     0);
    assert_string_equal(fake_host_request(1)->url, ROOT "CustomerOrderCollection");
    assert_body(1, "{\"BuyerID\": \"bc-order-100\", \"BuyerPartyID\": \"1001\","
                   " \"CustomerOrderItem\": [{\"ProductID\": \"P1\", \"Quantity\": \"2\"}]}");
    assert_string_equal(json_string_value(json_object_get(res, "id")), OID);
    json_decref(res);
}

static void test_sap_in_approval_is_not_modified(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *res = NULL;

    fake_host_push(200, NULL,
                   "{\"d\":{\"results\":{\"ObjectID\":\"" OID "\",\"ApprovalStatusCode\":\"3\"}}}");
    assert_int_equal(write_fields(f, FERRY_WRITE_UPDATE, "SalesQuoteCollection", OID, ETAG1,
                                  "{\"Name\": \"x\"}", &res, &err),
                     FERRY_EFORBIDDEN);
    assert_null(res);
    assert_int_equal(strncmp(err.msg, "in approval:", 12), 0);
    assert_int_equal(fake_host_nrequests(), 1);
}

static void test_sap_412_twice_names_both_versions(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *res = NULL;

    push_token("tok-1");
    fake_host_push(412, NULL, "{\"error\":{\"message\":{\"value\":\"outdated\"}}}");
    fake_host_push(200, NULL,
                   "{\"d\":{\"results\":{\"__metadata\":{\"etag\":\""
                   "W/\\\"v2\\\""
                   "\"},"
                   "\"ObjectID\":\"" OID "\"}}}");
    fake_host_push(412, NULL, "{\"error\":{\"message\":{\"value\":\"outdated\"}}}");
    assert_int_equal(write_fields(f, FERRY_WRITE_UPDATE, "ContactCollection", OID, "W/\"v1\"",
                                  "{\"LastName\": \"x\"}", &res, &err),
                     FERRY_ECONFLICT);
    assert_non_null(strstr(err.msg, "W/\"v1\""));
    assert_non_null(strstr(err.msg, "W/\"v2\""));
}

static void test_sap_atom_responses_are_understood(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL, *found = NULL;
    char *entry = fake_host_read_file(FIXTURES "contact-entry.atom.xml");
    char *feed = fake_host_read_file(FIXTURES "contact-feed.atom.xml");
    char *xerr = fake_host_read_file(FIXTURES "error.xml");
    json_t *results = NULL;
    char *next = NULL;

    assert_non_null(entry);
    assert_non_null(feed);
    assert_non_null(xerr);
    fake_host_push(200, "Content-Type: application/atom+xml;type=entry\n", entry);
    assert_int_equal(
        f->conn->fetch(f->state, fake_host_call(), "ContactCollection", OID, &rec, &err), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "ObjectID")), OID);
    assert_string_equal(json_string_value(json_object_get(rec, "LastName")), "O'Brien & Sons");
    assert_true(json_is_null(json_object_get(rec, "Phone")));
    assert_true(json_is_false(json_object_get(rec, "EmailInvalidIndicator")));
    assert_string_equal(json_string_value(json_object_get(rec, "EntityLastChangedOn")),
                        "/Date(1714557600123)/");
    assert_string_equal(json_string_value(json_object_get(rec, "CreationOn")),
                        "/Date(1714510800000)/");
    assert_string_equal(ferry__sap_entity_etag(rec), ETAG1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(rec, "__metadata"), "type")),
        "c4codata.Contact");
    assert_non_null(json_object_get(json_object_get(rec, "ContactTextCollection"), "__deferred"));
    json_decref(rec);

    assert_int_equal(ferry__sap_parse_collection(feed, strlen(feed), &results, &next, &err), 0);
    assert_int_equal(json_array_size(results), 1);
    assert_string_equal(next, ROOT "ContactCollection?$skiptoken=1001");
    json_decref(results);
    free(next);

    fake_host_push(200, NULL, feed);
    assert_int_equal(do_lookup(f, "ada@example.com", &found, &err), 0);
    assert_string_equal(json_string_value(json_object_get(found, "etag")), ETAG2);
    json_decref(found);

    fake_host_push(400, "Content-Type: application/xml\n", xerr);
    assert_int_equal(do_lookup(f, "ada@example.com", &found, &err), FERRY_EVALIDATION);
    assert_non_null(strstr(err.msg, "Cannot maintain internal field"));
    free(entry);
    free(feed);
    free(xerr);
}

static void test_sap_dates_convert_both_ways(void **ts)
{
    int64_t ms = 0;
    char iso[32];

    assert_int_equal(ferry__sap_odata_date_ms("/Date(1490902810849)/", &ms), 0);
    assert_int_equal(ms, 1490902810849LL);
    ferry__sap_ms_to_iso(ms, iso);
    assert_string_equal(iso, "2017-03-30T19:40:10.849Z");
    assert_int_equal(ferry__sap_odata_date_ms("/Date(1490902810849+0060)/", &ms), 0);
    assert_int_equal(ferry__sap_odata_date_ms("/Date(x)/", &ms), FERRY_EINVAL);
    assert_int_equal(ferry__sap_iso_to_ms("2017-03-30T19:40:10.849Z", &ms), 0);
    assert_int_equal(ms, 1490902810849LL);
    assert_int_equal(ferry__sap_iso_to_ms("2024-05-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 1714521600000LL);
    assert_int_equal(ferry__sap_iso_to_ms("2024-05-01T02:00:00+02:00", &ms), 0);
    assert_int_equal(ms, 1714521600000LL);
    ferry__sap_ms_to_iso(0, iso);
    assert_string_equal(iso, "1970-01-01T00:00:00.000Z");
    assert_false(ferry__sap_is_iso("2024-05-01' or 1 eq 1"));
    assert_false(ferry__sap_is_iso("yesterday"));
}

static void test_sap_list_changes_pages_with_fixed_upper_bound(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *page = NULL, *items;
    const char *next;
    char *token;

    fake_host_set_now(1714557605000); /* 2024-05-01T10:00:05Z; delta_lag 5 s */
    fake_host_push(200, NULL,
                   "{\"d\":{\"__count\":\"3\",\"results\":["
                   "{\"ObjectID\":\"A1\",\"EntityLastChangedOn\":\"/Date(1714550000000)/\"},"
                   "{\"ObjectID\":\"A2\",\"EntityLastChangedOn\":\"/Date(1714550000001)/\"}],"
                   "\"__next\":\"https://elsewhere.example/odata/LeadCollection?$filter=x"
                   "&$skiptoken=2\"}}");
    assert_int_equal(f->conn->list_changes(f->state, fake_host_call(), "LeadCollection",
                                           "2024-05-01T00:00:00Z", NULL, &page, &err),
                     0);
    assert_string_equal(fake_host_request(0)->url,
                        ROOT "LeadCollection?$filter=EntityLastChangedOn%20ge%20datetimeoffset"
                             "%272024-05-01T00%3A00%3A00Z%27%20and%20EntityLastChangedOn%20le"
                             "%20datetimeoffset%272024-05-01T10%3A00%3A00.000Z%27"
                             "&$orderby=EntityLastChangedOn&$format=json");
    items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "id")), "A1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 1), "modified")),
                        "2024-05-01T07:53:20.001Z");
    next = json_string_value(json_object_get(page, "next"));
    assert_non_null(next);
    token = strdup(next);
    json_decref(page);

    /* The next page keeps the first poll's bound and never follows the foreign host. */
    fake_host_set_now(1714600000000);
    fake_host_push(200, NULL, "{\"d\":{\"results\":[{\"ObjectID\":\"A3\"}]}}");
    assert_int_equal(f->conn->list_changes(f->state, fake_host_call(), "LeadCollection",
                                           "2024-05-01T00:00:00Z", token, &page, &err),
                     0);
    assert_string_equal(fake_host_request(1)->url,
                        ROOT "LeadCollection?$filter=x&$skiptoken=2&$format=json");
    assert_true(json_is_null(json_object_get(page, "next")));
    /* No EntityLastChangedOn in the record: the poll's upper bound stands in. */
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(page, "items"), 0), "modified")),
                        "2024-05-01T10:00:00.000Z");
    json_decref(page);
    free(token);

    assert_int_equal(f->conn->list_changes(f->state, fake_host_call(), "LeadCollection",
                                           "2024-05-01'%20or%20", NULL, &page, &err),
                     FERRY_EINVAL);
    assert_int_equal(f->conn->list_changes(f->state, fake_host_call(), "LeadCollection", NULL,
                                           "v1|garbage", &page, &err),
                     FERRY_EINVAL);
    fake_host_set_now(1700000000000);
}

static void test_sap_batch_parses_real_sample(void **ts)
{
    char *path = specs_path("sap/c4c-odata-v2/samples/complex-multipart.response");
    char *body = fake_host_read_file(path);
    struct ferry_err err = {0};
    json_t *parts = NULL, *cs;
    json_t *entity = NULL;
    const char *b;

    if (!body) {
        print_message("skipped: %s not found (set FERRY_SPECS)\n", path);
        free(path);
        skip();
    }
    free(path);
    assert_int_equal(ferry__sap_batch_parse("multipart/mixed; boundary=ejjeeffe0", body,
                                            strlen(body), &parts, &err),
                     0);
    assert_int_equal(json_array_size(parts), 4);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(parts, 0), "status")), 200);
    b = json_string_value(json_object_get(json_array_get(parts, 1), "body"));
    assert_non_null(strstr(b, "\"__count\":\"1211\""));
    cs = json_object_get(json_array_get(parts, 2), "changeset");
    assert_int_equal(json_array_size(cs), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(cs, 0), "status")), 201);
    assert_non_null(json_object_get(json_object_get(json_array_get(cs, 0), "headers"), "location"));
    b = json_string_value(json_object_get(json_array_get(cs, 0), "body"));
    /* The single-entity d.results shape inside a changeset answer. */
    assert_int_equal(ferry__sap_parse_entity(b, strlen(b), &entity, &err), 0);
    assert_string_equal(json_string_value(json_object_get(entity, "ObjectID")),
                        "00163E457AE21EE89F9B22B7AE488EE9");
    json_decref(entity);
    assert_int_equal(json_array_size(json_object_get(json_array_get(parts, 3), "changeset")), 1);
    json_decref(parts);

    /* Wrong boundary or a truncated body is a protocol error, not an empty success. */
    assert_int_equal(
        ferry__sap_batch_parse("multipart/mixed; boundary=other", body, strlen(body), &parts, &err),
        FERRY_EPROTO);
    assert_int_equal(
        ferry__sap_batch_parse("multipart/mixed; boundary=ejjeeffe0", body, 300, &parts, &err),
        FERRY_EPROTO);
    assert_int_equal(ferry__sap_batch_parse("application/json", body, strlen(body), &parts, &err),
                     FERRY_EPROTO);
    free(body);
}

/* A part's Content-Type as its header block states it: any case, the last one, valid UTF-8 only. */
static void test_sap_batch_part_content_type(void **ts)
{
    static const char body[] = "--b\r\n"
                               "content-type: application/http\r\n"
                               "CONTENT-TYPE: multipart/mixed; boundary=cs\r\n"
                               "Content-Type: multipart/mixed; boundary=\xff\r\n"
                               "Content-Typ: application/http\r\n"
                               "\r\n"
                               "--cs\r\n"
                               "Content-Type:   application/http\r\n"
                               "\r\n"
                               "HTTP/1.1 201 Created\r\n"
                               "Location: x('K')\r\n"
                               "\r\n"
                               "{}\r\n"
                               "--cs--\r\n"
                               "--b\r\n"
                               "Content-Type: multipart/mixed; boundary=cs\r\n"
                               "Content-Type: application/http\r\n"
                               "\r\n"
                               "HTTP/1.1 204 No Content\r\n"
                               "\r\n"
                               "\r\n"
                               "--b--\r\n";
    struct ferry_err err = {0};
    json_t *parts = NULL;
    assert_int_equal(
        ferry__sap_batch_parse("multipart/mixed; boundary=b", body, strlen(body), &parts, &err), 0);
    assert_int_equal(json_array_size(parts), 2);
    json_t *cs = json_object_get(json_array_get(parts, 0), "changeset");
    assert_int_equal(json_array_size(cs), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(cs, 0), "status")), 201);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(cs, 0), "headers"), "location")),
                        "x('K')");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(parts, 1), "status")), 204);
    json_decref(parts);
}

static const struct ferry_sap_batch_op three_ops[] = {
    {.method = "POST", .path = "ContactCollection", .body = "{\"LastName\":\"One\"}", .group = 0},
    {.method = "POST", .path = "ContactCollection", .body = "{}", .group = 1},
    {.method = "PATCH",
     .path = "ContactCollection('X')",
     .if_match = "W/\"e\"",
     .body = "{\"LastName\":\"Three\"}",
     .group = 2},
};

static void test_sap_batch_builds_one_changeset_per_object(void **ts)
{
    size_t len = 0;
    char *body = ferry__sap_batch_build("batch_t", three_ops, 2, &len);
    const char *want = "--batch_t\r\n"
                       "Content-Type: multipart/mixed; boundary=batch_t_cs0\r\n"
                       "\r\n"
                       "--batch_t_cs0\r\n"
                       "Content-Type: application/http\r\n"
                       "Content-Transfer-Encoding: binary\r\n"
                       "Content-ID: 1\r\n"
                       "\r\n"
                       "POST ContactCollection HTTP/1.1\r\n"
                       "Accept: application/json\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 18\r\n"
                       "\r\n"
                       "{\"LastName\":\"One\"}\r\n"
                       "--batch_t_cs0--\r\n"
                       "--batch_t\r\n"
                       "Content-Type: multipart/mixed; boundary=batch_t_cs1\r\n"
                       "\r\n"
                       "--batch_t_cs1\r\n"
                       "Content-Type: application/http\r\n"
                       "Content-Transfer-Encoding: binary\r\n"
                       "Content-ID: 2\r\n"
                       "\r\n"
                       "POST ContactCollection HTTP/1.1\r\n"
                       "Accept: application/json\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 2\r\n"
                       "\r\n"
                       "{}\r\n"
                       "--batch_t_cs1--\r\n"
                       "--batch_t--\r\n";
    assert_non_null(body);
    assert_string_equal(body, want);
    assert_int_equal(len, strlen(want));
    free(body);
    body = ferry__sap_batch_build("b", three_ops + 2, 1, &len);
    assert_non_null(strstr(body, "PATCH ContactCollection('X') HTTP/1.1\r\n"));
    assert_non_null(strstr(body, "If-Match: W/\"e\"\r\n"));
    free(body);
}

static void test_sap_batch_creates_answered_by_headers(void **ts)
{
    const struct ferry_sap_batch_op ops[] = {
        {.method = "POST",
         .path = "ContactCollection",
         .body = "{}",
         .group = 0,
         .no_response_payload = true},
        {.method = "POST", .path = "ContactCollection", .body = "{}", .group = 1},
    };
    struct ferry_err err = {0};
    size_t len = 0;
    char *body = ferry__sap_batch_build("b", ops, 2, &len);
    json_t *parts, *res = NULL, *r;
    const char *second;

    assert_non_null(body);
    second = strstr(body, "Content-ID: 2");
    assert_non_null(second);
    /* Asked for in the first create only, and among that request's own headers. */
    assert_non_null(
        strstr(body, "Accept: application/json\r\nodata-no-response-payload: true\r\n"));
    assert_true(strstr(body, "odata-no-response-payload") < second);
    assert_null(strstr(second, "odata-no-response-payload"));
    free(body);

    parts = json_pack("[{s:[{s:i, s:{s:s, s:s}, s:s}]}, {s:[{s:i, s:{s:s}, s:s}]}]", "changeset",
                      "status", 201, "headers", "location", ROOT "ContactCollection('K1')", "etag",
                      ETAG1, "body", "", "changeset", "status", 201, "headers", "location",
                      ROOT "ContactCollection('K2')", "body",
                      "{\"d\":{\"results\":{\"ObjectID\":\"ignored\",\"__metadata\":{\"etag\":"
                      "\"W/\\\"b\\\"\"}}}}");
    assert_non_null(parts);
    assert_int_equal(ferry__sap_batch_match(ops, 2, parts, &res, &err), 0);
    r = json_array_get(res, 0);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_string_equal(json_string_value(json_object_get(r, "id")), "K1");
    assert_string_equal(json_string_value(json_object_get(r, "etag")), ETAG1);
    assert_true(json_is_null(json_object_get(r, "body")));
    /* The location names the key even when a body came too; the body fills in the etag. */
    r = json_array_get(res, 1);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "K2");
    assert_string_equal(json_string_value(json_object_get(r, "etag")), "W/\"b\"");
    json_decref(res);
    json_decref(parts);
}

static void test_sap_batch_reports_failed_changeset_per_object(void **ts)
{
    char *body = fake_host_read_file(FIXTURES "batch-changeset-failure.response");
    struct ferry_err err = {0};
    json_t *parts = NULL, *res = NULL, *r;

    assert_non_null(body);
    assert_int_equal(ferry__sap_batch_parse("multipart/mixed; boundary=\"resp_b0\"", body,
                                            strlen(body), &parts, &err),
                     0);
    assert_int_equal(ferry__sap_batch_match(three_ops, 3, parts, &res, &err), 0);
    assert_int_equal(json_array_size(res), 3);
    r = json_array_get(res, 0);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_string_equal(json_string_value(json_object_get(r, "id")),
                        "00163E00000000000000000000000001");
    assert_non_null(strstr(json_string_value(json_object_get(r, "etag")), "0000001Z"));
    r = json_array_get(res, 1);
    assert_false(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r, "code")), FERRY_EVALIDATION);
    assert_non_null(
        strstr(json_string_value(json_object_get(r, "error")), "Mandatory property LastName"));
    r = json_array_get(res, 2);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r, "status")), 204);
    json_decref(res);

    /* A response with fewer answers than requests: the rest fail, never succeed silently. */
    {
        json_t *short_answer = json_pack("[{s:[]}]", "changeset");
        assert_int_equal(ferry__sap_batch_match(three_ops, 3, short_answer, &res, &err), 0);
        for (size_t i = 0; i < 3; i++) {
            assert_false(json_is_true(json_object_get(json_array_get(res, i), "ok")));
            assert_int_equal(json_integer_value(json_object_get(json_array_get(res, i), "code")),
                             FERRY_EPROTO);
        }
        json_decref(res);
        json_decref(short_answer);
    }
    json_decref(parts);
    free(body);
}

static void test_sap_write_batch_through_the_host(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    char *body = fake_host_read_file(FIXTURES "batch-changeset-failure.response");
    json_t *fields[3] = {json_pack("{s:s, s:s}", "LastName", "One", "ExternalID", "x"),
                         json_object(), json_pack("{s:s}", "LastName", "Three")};
    struct ferry_write w[3] = {
        {.op = FERRY_WRITE_CREATE, .object = "ContactCollection", .fields = fields[0]},
        {.op = FERRY_WRITE_CREATE, .object = "ContactCollection", .fields = fields[1]},
        {.op = FERRY_WRITE_UPDATE,
         .object = "ContactCollection",
         .id = "X",
         .etag = "W/\"e\"",
         .fields = fields[2]},
    };
    json_t *res = NULL;
    const struct fake_request *r;

    push_token("tok-1");
    fake_host_push(202, "Content-Type: multipart/mixed; boundary=resp_b0\n", body);
    assert_int_equal(ferry__sap_write_batch(f->state, fake_host_call(), w, 3, &res, &err), 0);
    r = fake_host_request(1);
    assert_string_equal(r->url, ROOT "$batch");
    assert_string_equal(fake_request_header(r, "x-csrf-token"), "tok-1");
    assert_non_null(strstr(fake_request_header(r, "Content-Type"), "multipart/mixed; boundary="));
    /* The read-only ExternalID never reaches SAP, in a batch either. */
    assert_null(strstr(r->body, "ExternalID"));
    assert_non_null(strstr(r->body, "PATCH ContactCollection('X') HTTP/1.1"));
    /* Both creates ask for no entity in their answer; the PATCH is answered 204 anyway. */
    {
        const char *p = r->body;
        int asked = 0;
        while ((p = strstr(p, "odata-no-response-payload: true")) != NULL) {
            asked++;
            p++;
        }
        assert_int_equal(asked, 2);
        assert_null(strstr(strstr(r->body, "PATCH ContactCollection"), "odata-no-response"));
    }
    assert_int_equal(json_array_size(res), 3);
    assert_false(json_is_true(json_object_get(json_array_get(res, 1), "ok")));
    json_decref(res);
    for (int i = 0; i < 3; i++) {
        json_decref(fields[i]);
    }
    free(body);
}

static void test_sap_oauth_token_cached_renewed_and_retried(void **ts)
{
    const struct ferry_connector *c = connector();
    struct ferry_err err = {0};
    void *state = NULL;
    json_t *found = NULL;

    fake_host_reset();
    fake_host_set_now(1700000000000);
    assert_int_equal(open_with(c,
                               "{\"service_root\": \"" ROOT "\", \"auth\": \"oauth\","
                               " \"token_url\": \"http://sap.test/sap/bc/sec/oauth2/token\","
                               " \"client_id\": \"ferry\", \"client_secret\": \"s3cret\","
                               " \"scope\": \"UIWC:CC_HOME\", \"metadata_file\": \"" SMALL_EDMX
                               "\"}",
                               &state, &err),
                     0);
    fake_host_push(200, NULL,
                   "{\"access_token\":\"AT1\",\"token_type\":\"Bearer\","
                   "\"expires_in\":600}");
    fake_host_push(200, NULL, "{\"d\":{\"results\":[]}}");
    fake_host_push(200, NULL, "{\"d\":{\"results\":[]}}");
    assert_int_equal(
        c->lookup(state, fake_host_call(), "ContactCollection", "Email", "a@b", &found, &err), 0);
    assert_int_equal(
        c->lookup(state, fake_host_call(), "ContactCollection", "Email", "a@b", &found, &err), 0);
    assert_string_equal(fake_host_request(0)->url, "http://sap.test/sap/bc/sec/oauth2/token");
    assert_string_equal(fake_host_request(0)->body,
                        "grant_type=client_credentials&scope=UIWC%3ACC_HOME");
    /* base64("ferry:s3cret") */
    assert_string_equal(fake_request_header(fake_host_request(0), "Authorization"),
                        "Basic ZmVycnk6czNjcmV0");
    assert_string_equal(fake_request_header(fake_host_request(1), "Authorization"), "Bearer AT1");
    assert_string_equal(fake_request_header(fake_host_request(2), "Authorization"), "Bearer AT1");
    assert_int_equal(fake_host_nrequests(), 3);

    /* 60 s before expiry it is renewed ahead of the request. */
    fake_host_set_now(1700000000000 + 541 * 1000);
    fake_host_push(200, NULL, "{\"access_token\":\"AT2\",\"token_type\":\"bearer\"}");
    fake_host_push(200, NULL, "{\"d\":{\"results\":[]}}");
    assert_int_equal(
        c->lookup(state, fake_host_call(), "ContactCollection", "Email", "a@b", &found, &err), 0);
    assert_string_equal(fake_host_request(3)->url, "http://sap.test/sap/bc/sec/oauth2/token");
    assert_string_equal(fake_request_header(fake_host_request(4), "Authorization"), "Bearer AT2");

    /* A revoked token: one renewal and one retry on 401, then the 401 stands. */
    fake_host_push(401, NULL, "{\"error\":{\"message\":{\"value\":\"token revoked\"}}}");
    fake_host_push(200, NULL, "{\"access_token\":\"AT3\",\"expires_in\":600}");
    fake_host_push(200, NULL, "{\"d\":{\"results\":[]}}");
    assert_int_equal(
        c->lookup(state, fake_host_call(), "ContactCollection", "Email", "a@b", &found, &err), 0);
    assert_string_equal(fake_request_header(fake_host_request(7), "Authorization"), "Bearer AT3");
    fake_host_push(401, NULL, "no");
    fake_host_push(200, NULL, "{\"access_token\":\"AT4\",\"expires_in\":600}");
    fake_host_push(401, NULL, "{\"error\":{\"message\":{\"value\":\"still no\"}}}");
    assert_int_equal(
        c->lookup(state, fake_host_call(), "ContactCollection", "Email", "a@b", &found, &err),
        FERRY_EAUTH);

    /* A refused client is an auth error with the server's reason. */
    fake_host_set_now(1700000000000 + 4000 * 1000);
    fake_host_push(401, NULL, "{\"error\":\"invalid_client\"}");
    assert_int_equal(
        c->lookup(state, fake_host_call(), "ContactCollection", "Email", "a@b", &found, &err),
        FERRY_EAUTH);
    assert_non_null(strstr(err.msg, "invalid_client"));
    c->close(state);
    fake_host_reset();
    fake_host_set_now(1700000000000);
}

static void test_sap_oauth_saml_bearer_and_bad_config(void **ts)
{
    const struct ferry_connector *c = connector();
    struct ferry_err err = {0};
    void *state = NULL;
    json_t *found = NULL;
    char cfg[1024];
    char path[] = "/tmp/ferry-sap-assertion-XXXXXX";
    int fd = mkstemp(path);
    FILE *fp;

    assert_true(fd >= 0);
    fp = fdopen(fd, "w");
    fputs("PHNhbWw+PC9zYW1sPg\n", fp);
    fclose(fp);
    fake_host_reset();
    snprintf(cfg, sizeof(cfg),
             "{\"service_root\": \"" ROOT "\", \"auth\": \"oauth\", \"token_url\":"
             " \"https://t/sap/bc/sec/oauth2/token\", \"client_id\": \"c\", \"client_secret\":"
             " \"s\", \"assertion_file\": \"%s\", \"metadata_file\": \"" SMALL_EDMX "\"}",
             path);
    assert_int_equal(open_with(c, cfg, &state, &err), 0);
    fake_host_push(200, NULL, "{\"access_token\":\"AT\",\"expires_in\":600}");
    fake_host_push(200, NULL, "{\"d\":{\"results\":[]}}");
    assert_int_equal(
        c->lookup(state, fake_host_call(), "ContactCollection", "Email", "a@b", &found, &err), 0);
    assert_string_equal(fake_host_request(0)->body,
                        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Asaml2-bearer"
                        "&assertion=PHNhbWw%2BPC9zYW1sPg");
    assert_true(fake_host_request(0)->flags & FERRY_HTTP_NO_AUDIT_BODY);
    c->close(state);
    unlink(path);
    fake_host_reset();

    assert_int_equal(open_with(c, "{\"auth\": \"oauth\", \"client_id\": \"c\"}", &state, &err),
                     FERRY_ECONFIG);
    assert_non_null(strstr(err.msg, "token_url"));
    assert_int_equal(open_with(c, "{\"auth\": \"kerberos\"}", &state, &err), FERRY_ECONFIG);
    assert_int_equal(open_with(c,
                               "{\"username\": \"u\", \"password\": \"p\", \"external_id\":"
                               " {\"ContactCollection\": \"guess\"}}",
                               &state, &err),
                     FERRY_ECONFIG);
    assert_non_null(strstr(err.msg, "external_id.ContactCollection"));
}

static void *open_ext(const struct ferry_connector *c)
{
    void *state = NULL;
    struct ferry_err err = {0};
    assert_int_equal(open_with(c,
                               "{\"service_root\": \"" ROOT "\", \"username\": \"u\","
                               " \"password\": \"p\", \"metadata_file\": \"" SMALL_EDMX "\","
                               " \"remote_business_system\": \"BC_STORE\", \"external_id\": {"
                               " \"ContactCollection\": \"object_identifier_mapping:1\","
                               " \"OpportunityCollection\": \"patch_external_id\","
                               " \"LeadCollection\": \"extension:ZBCID_KUT\","
                               " \"CorporateAccountCollection\": \"links\"}}",
                               &state, &err),
                     0);
    return state;
}

static void test_sap_external_id_strategies(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *res = NULL, *found = NULL, *objs = NULL;
    void *orig = f->state;

    f->state = open_ext(f->conn);
    /* patch_external_id: POST without it, then PATCH it with the create's etag. */
    push_token("tok-1");
    fake_host_push(201, "etag: " ETAG1 "\n", CREATED(OID));
    fake_host_push(204, "etag: " ETAG2 "\n", NULL);
    assert_int_equal(write_fields(f, FERRY_WRITE_CREATE, "OpportunityCollection", NULL, NULL,
                                  "{\"Name\": \"Deal\", \"$external_id\": \"bc:cart:9\"}", &res,
                                  &err),
                     0);
    assert_body(1, "{\"Name\": \"Deal\"}");
    assert_string_equal(fake_host_request(2)->method, "PATCH");
    assert_string_equal(fake_host_request(2)->url, ROOT "OpportunityCollection('" OID "')");
    assert_string_equal(fake_request_header(fake_host_request(2), "If-Match"), ETAG1);
    assert_body(2, "{\"ExternalID\": \"bc:cart:9\"}");
    assert_string_equal(json_string_value(json_object_get(res, "etag")), ETAG2);
    json_decref(res);
    fake_host_push(200, NULL, "{\"d\":{\"results\":[{\"ObjectID\":\"" OID "\"}]}}");
    assert_int_equal(f->conn->lookup(f->state, fake_host_call(), "OpportunityCollection",
                                     "$external_id", "bc:cart:9", &found, &err),
                     0);
    assert_non_null(strstr(fake_host_request(3)->url, "$filter=ExternalID%20eq%20%27bc%3Acart"));
    json_decref(found);

    /* object_identifier_mapping: a mapping row after the create; lookups go through it. */
    fake_host_push(201, NULL, CREATED(OID));
    fake_host_push(201, NULL, CREATED("MAP1"));
    assert_int_equal(write_fields(f, FERRY_WRITE_CREATE, "ContactCollection", NULL, NULL,
                                  "{\"LastName\": \"L\", \"$external_id\": \"bc:1\"}", &res, &err),
                     0);
    assert_body(4, "{\"LastName\": \"L\"}");
    assert_string_equal(fake_host_request(5)->url, ROOT "ObjectIdentifierMappingCollection");
    assert_body(5, "{\"LocalObjectID\": \"" OID "\", \"RemoteObjectID\": \"bc:1\","
                   " \"RemoteBusinessSystemID\": \"BC_STORE\","
                   " \"RemoteIdentifierDefiningSchemeCode\": \"1\"}");
    json_decref(res);
    fake_host_push(200, NULL,
                   "{\"d\":{\"results\":[{\"ObjectID\":\"MAP1\",\"LocalObjectID\":\"" OID "\"}]}}");
    fake_host_push(200, "etag: " ETAG1 "\n",
                   "{\"d\":{\"results\":{\"ObjectID\":\"" OID "\",\"LastName\":\"L\"}}}");
    assert_int_equal(f->conn->lookup(f->state, fake_host_call(), "ContactCollection",
                                     "$external_id", "bc:1", &found, &err),
                     0);
    assert_string_equal(fake_host_request(6)->url,
                        ROOT "ObjectIdentifierMappingCollection?$filter=RemoteObjectID%20eq%20"
                             "%27bc%3A1%27%20and%20RemoteBusinessSystemID%20eq%20%27BC_STORE%27"
                             "%20and%20RemoteIdentifierDefiningSchemeCode%20eq%20%271%27"
                             "&$format=json&$top=2");
    assert_string_equal(json_string_value(json_object_get(found, "id")), OID);
    assert_string_equal(json_string_value(json_object_get(found, "etag")), ETAG1);
    json_decref(found);

    /* A failed mapping write does not fail the create (that would create it twice). */
    fake_host_push(201, NULL, CREATED(OID));
    fake_host_push(400, NULL, "{\"error\":{\"message\":{\"value\":\"scheme not allowed\"}}}");
    assert_int_equal(write_fields(f, FERRY_WRITE_CREATE, "ContactCollection", NULL, NULL,
                                  "{\"LastName\": \"L\", \"$external_id\": \"bc:2\"}", &res, &err),
                     0);
    assert_non_null(strstr(fake_host_last_log(), "scheme not allowed"));
    json_decref(res);

    /* extension:<Field>: the field travels with the create; lookups filter on it. */
    fake_host_push(201, NULL, CREATED(OID));
    assert_int_equal(write_fields(f, FERRY_WRITE_CREATE, "LeadCollection", NULL, NULL,
                                  "{\"Name\": \"Lead\", \"$external_id\": \"bc:3\"}", &res, &err),
                     0);
    assert_body(fake_host_nrequests() - 1, "{\"Name\": \"Lead\", \"ZBCID_KUT\": \"bc:3\"}");
    json_decref(res);

    /* links: only ferry knows; a remote lookup cannot answer. */
    assert_int_equal(f->conn->lookup(f->state, fake_host_call(), "CorporateAccountCollection",
                                     "$external_id", "bc:4", &found, &err),
                     FERRY_EUNSUPPORTED);
    assert_int_equal(f->conn->lookup(f->state, fake_host_call(), "EmployeeCollection",
                                     "$external_id", "x", &found, &err),
                     FERRY_EINVAL);

    /* describe offers the pseudo-field where a strategy is configured. */
    assert_int_equal(f->conn->describe(f->state, fake_host_call(), &objs, &err), 0);
    assert_non_null(json_object_get(
        json_object_get(json_object_get(objs, "ContactCollection"), "properties"), "$external_id"));
    assert_null(
        json_object_get(json_object_get(json_object_get(objs, "EmployeeCollection"), "properties"),
                        "$external_id"));
    json_decref(objs);

    f->conn->close(f->state);
    f->state = orig;
}

static void test_sap_lookup_checks_filterable_and_generic_sets(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *found = NULL;

    assert_int_equal(f->conn->lookup(f->state, fake_host_call(), "SalesQuoteCollection", "Submit",
                                     "true", &found, &err),
                     FERRY_EINVAL);
    assert_non_null(strstr(err.msg, "not filterable"));
    assert_int_equal(f->conn->lookup(f->state, fake_host_call(), "EmployeeCollection", "Nope", "x",
                                     &found, &err),
                     FERRY_EINVAL);
    assert_int_equal(fake_host_nrequests(), 0);
    /* Owner lookup: employees by e-mail, like any other set. */
    fake_host_push(200, NULL,
                   "{\"d\":{\"results\":[{\"ObjectID\":\"E1\",\"EmployeeID\":\"8000000001\"}]}}");
    assert_int_equal(f->conn->lookup(f->state, fake_host_call(), "EmployeeCollection", "Email",
                                     "rep@example.com", &found, &err),
                     0);
    assert_string_equal(json_string_value(json_object_get(found, "id")), "E1");
    json_decref(found);
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
        T(test_sap_lookup_where_builds_one_filter),
        T(test_sap_lookup_many_matches_rows_to_values),
        T(test_sap_lookup_one_result),
        T(test_sap_lookup_two_results_is_duplicate),
        T(test_sap_lookup_parses_next_and_count),
        T(test_sap_fetch_keeps_metadata),
        T(test_sap_create_fetches_token_once),
        T(test_sap_create_reads_location_and_etag_headers),
        cmocka_unit_test(test_sap_location_key),
        T(test_sap_create_unparseable_body_is_eproto),
        T(test_sap_update_sends_if_match_verbatim),
        T(test_sap_csrf_required_refetches_once),
        T(test_sap_csrf_second_failure_is_transient),
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
        cmocka_unit_test(test_sap_metadata_small_fixture),
        cmocka_unit_test(test_sap_metadata_real_tenant_edmx),
        cmocka_unit_test(test_sap_metadata_rejects_junk_and_entities),
        cmocka_unit_test(test_sap_describe_fetches_caches_and_falls_back),
        T(test_sap_write_drops_read_only_and_approval_fields),
        T(test_sap_deep_insert_passes_items_through),
        T(test_sap_in_approval_is_not_modified),
        T(test_sap_412_twice_names_both_versions),
        T(test_sap_atom_responses_are_understood),
        cmocka_unit_test(test_sap_dates_convert_both_ways),
        T(test_sap_list_changes_pages_with_fixed_upper_bound),
        cmocka_unit_test(test_sap_batch_parses_real_sample),
        cmocka_unit_test(test_sap_batch_part_content_type),
        cmocka_unit_test(test_sap_batch_builds_one_changeset_per_object),
        cmocka_unit_test(test_sap_batch_creates_answered_by_headers),
        cmocka_unit_test(test_sap_batch_reports_failed_changeset_per_object),
        T(test_sap_write_batch_through_the_host),
        cmocka_unit_test(test_sap_oauth_token_cached_renewed_and_retried),
        cmocka_unit_test(test_sap_oauth_saml_bearer_and_bad_config),
        T(test_sap_external_id_strategies),
        T(test_sap_lookup_checks_filterable_and_generic_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
