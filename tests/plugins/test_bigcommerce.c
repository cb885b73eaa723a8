/* SPDX-License-Identifier: MIT */
/*
 * Tests of the bigcommerce connector through its ABI only: the descriptor
 * from ferry_connector_entry, driven against the fake host vtable. They pin
 * the exact requests sent (URL, query encoding, auth headers), the parsing of
 * v3 responses shaped like the vendor's examples, the status classification,
 * and webhook authentication and decoding, including the vendor's own sample
 * payloads from $FERRY_SPECS when that directory is present.
 */
/* cmocka 1.1 needs these first; keep them in their own block so sorting cannot move them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "bigcommerce.h"
#include "fake_host.h"

#ifndef FERRY_SPECS_DEFAULT
#define FERRY_SPECS_DEFAULT "../shared/specs"
#endif

#define TOKEN      "tok-7f3a9c-not-real"
#define SECRET     "s3cret-webhook-value"
#define CLIENT_SEC "client-secret-for-tests"
#define BASE_CONFIG                                                                                \
    "{\"store_hash\": \"abc123\", \"access_token\": \"" TOKEN "\","                                \
    " \"webhook_secret\": \"" SECRET "\""

/* 2023-11-14T22:13:20Z, the fake host's default clock. */
#define NOW_MS 1700000000000LL

static const struct ferry_connector *conn;

struct fixture {
    void *state;
};

/* ---- helpers ----------------------------------------------------------------------------- */

static int open_json(json_t *cfg, void **state, struct ferry_err *err)
{
    memset(err, 0, sizeof(*err));
    return conn->open(fake_host_api(), fake_host_call(), cfg, state, err);
}

static void *open_text(const char *text)
{
    struct ferry_err err;
    void *state = NULL;
    json_t *cfg = json_loads(text, 0, NULL);
    assert_non_null(cfg);
    int rc = open_json(cfg, &state, &err);
    json_decref(cfg);
    if (rc != 0) {
        fail_msg("open failed: %s", err.msg);
    }
    return state;
}

static int setup(void **ts)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fake_host_reset();
    fake_host_set_now(NOW_MS);
    f->state = open_text(BASE_CONFIG ", \"page_limit\": 2, \"client_secret\": \"" CLIENT_SEC "\"}");
    *ts = f;
    return 0;
}

static int teardown(void **ts)
{
    struct fixture *f = *ts;
    conn->close(f->state);
    free(f);
    fake_host_reset();
    return 0;
}

static const char *specs_dir(void)
{
    const char *d = getenv("FERRY_SPECS");
    return (d && d[0]) ? d : FERRY_SPECS_DEFAULT;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) {
        fail_msg("'%s' does not contain '%s'", hay, needle);
    }
}

/* A customer shaped like customer_Full in customers.v3.yml (our own values). */
static const char CUSTOMER_32[] =
    "{\"id\": 32, \"email\": \"jane.smith@example.com\", \"first_name\": \"Jane\","
    " \"last_name\": \"Smith\", \"company\": \"Acme Corp\", \"phone\": \"555-123-4567\","
    " \"notes\": \"Preferred customer\", \"tax_exempt_category\": \"\", \"customer_group_id\": 0,"
    " \"date_created\": \"2024-05-01T08:00:00Z\", \"date_modified\": \"2024-05-14T09:34:00Z\","
    " \"registration_ip_address\": \"\", \"address_count\": 1, \"attribute_count\": 1,"
    " \"authentication\": {\"force_password_reset\": false},"
    " \"addresses\": [{\"id\": 7, \"customer_id\": 32, \"first_name\": \"Jane\","
    "   \"last_name\": \"Smith\", \"company\": \"Acme Corp\", \"address1\": \"1 Main St\","
    "   \"address2\": \"\", \"city\": \"Austin\", \"state_or_province\": \"Texas\","
    "   \"postal_code\": \"78751\", \"country_code\": \"US\", \"country\": \"United States\","
    "   \"phone\": \"555-123-4567\", \"address_type\": \"residential\"}],"
    " \"attributes\": [{\"id\": 3, \"attribute_id\": 1, \"attribute_value\": \"gold\","
    "   \"customer_id\": 32, \"date_created\": \"2024-05-01T08:00:00Z\","
    "   \"date_modified\": \"2024-05-01T08:00:00Z\"}],"
    " \"form_fields\": [{\"name\": \"newsletter\", \"value\": \"yes\"}],"
    " \"accepts_product_review_abandoned_cart_emails\": true, \"origin_channel_id\": 1,"
    " \"channel_ids\": [1]}";

static char *envelope(const char *data_json, const char *meta_json)
{
    size_t n = strlen(data_json) + strlen(meta_json) + 32;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "{\"data\": %s, \"meta\": %s}", data_json, meta_json);
    return s;
}

/* ---- entry and open ---------------------------------------------------------------------- */

static void test_entry_abi_check(void **ts)
{
    struct ferry_host_api old = *fake_host_api();
    const struct ferry_connector *c = NULL;

    assert_int_equal(ferry_connector_entry(fake_host_api(), &c), 0);
    assert_ptr_equal(c, conn);
    assert_string_equal(c->name, "bigcommerce");
    assert_int_equal(c->abi, FERRY_PLUGIN_ABI);
    assert_true(c->size >= FERRY_CONNECTOR_MIN_SIZE);
    assert_non_null(c->lookup);
    assert_non_null(c->write);
    assert_non_null(c->verify_webhook);
    assert_non_null(c->decode_webhook);

    old.abi = FERRY_PLUGIN_ABI + 1;
    c = NULL;
    assert_int_equal(ferry_connector_entry(&old, &c), FERRY_EABI);
    assert_null(c);
    /* A host built before now_ms existed cannot serve this connector. */
    old.abi = FERRY_PLUGIN_ABI;
    old.size = (uint32_t)offsetof(struct ferry_host_api, now_ms);
    assert_int_equal(ferry_connector_entry(&old, &c), FERRY_EABI);
}

static void test_config_table_declares_keys(void **ts)
{
    static const char *const required[] = {"store_hash", "access_token", "webhook_secret"};
    size_t n = 0;
    for (const struct ferry_config_field *f = conn->config; f->name; f++, n++) {
        int want_required = 0;
        for (size_t i = 0; i < 3; i++) {
            want_required |= strcmp(f->name, required[i]) == 0;
        }
        assert_int_equal(!!f->required, want_required);
        if (strcmp(f->name, "access_token") == 0 || strcmp(f->name, "webhook_secret") == 0 ||
            strcmp(f->name, "client_secret") == 0) {
            assert_int_equal(f->type, FERRY_CFG_SECRET);
        }
        if (strcmp(f->name, "page_limit") == 0) {
            assert_string_equal(f->def, "250");
        }
        if (strcmp(f->name, "signature") == 0) {
            assert_string_equal(f->def, "if-present");
        }
    }
    assert_int_equal(n, 9);
}

static void test_open_good_config(void **ts)
{
    struct ferry_bc_state *st =
        open_text(BASE_CONFIG ", \"api_base\": \"http://127.0.0.1:8080/bc//\", \"timeout\": 5,"
                              " \"signature\": \"off\"}");
    assert_string_equal(st->api_base, "http://127.0.0.1:8080/bc");
    assert_int_equal(st->page_limit, 250);
    assert_int_equal(st->timeout_ms, 5000);
    assert_int_equal(st->sig_mode, FERRY_BC_SIG_OFF);
    assert_string_equal(st->webhook_secret_header, "X-Ferry-Secret");
    assert_null(st->client_secret);
    conn->close(st);

    st = open_text(BASE_CONFIG ", \"signature\": \"required\", \"client_secret\": \"x\"}");
    assert_string_equal(st->api_base, "https://api.bigcommerce.com");
    assert_int_equal(st->sig_mode, FERRY_BC_SIG_REQUIRED);
    assert_int_equal(st->timeout_ms, 30000);
    conn->close(st);
    conn->close(NULL);
}

static void test_open_rejects_bad_config(void **ts)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"{\"access_token\": \"t\", \"webhook_secret\": \"s\"}", "store_hash"},
        {"{\"store_hash\": \"abc\", \"webhook_secret\": \"s\"}", "access_token"},
        {"{\"store_hash\": \"abc\", \"access_token\": \"t\"}", "webhook_secret"},
        {"{\"store_hash\": \"\", \"access_token\": \"t\", \"webhook_secret\": \"s\"}",
         "store_hash"},
        {"{\"store_hash\": \"ab/c\", \"access_token\": \"t\", \"webhook_secret\": \"s\"}",
         "store_hash"},
        {"{\"store_hash\": 5, \"access_token\": \"t\", \"webhook_secret\": \"s\"}", "store_hash"},
        {"{\"store_hash\": \"abc\", \"access_token\": \"t\\r\\nX: y\", \"webhook_secret\": \"s\"}",
         "access_token"},
        {BASE_CONFIG ", \"page_limit\": 0}", "page_limit"},
        {BASE_CONFIG ", \"page_limit\": 251}", "page_limit"},
        {BASE_CONFIG ", \"page_limit\": \"50\"}", "page_limit"},
        {BASE_CONFIG ", \"timeout\": 0}", "timeout"},
        {BASE_CONFIG ", \"signature\": \"maybe\"}", "signature"},
        {BASE_CONFIG ", \"signature\": \"required\"}", "client_secret"},
        {BASE_CONFIG ", \"signature\": \"required\", \"client_secret\": \"\"}", "client_secret"},
        {BASE_CONFIG ", \"api_base\": \"ftp://example.com\"}", "api_base"},
        {BASE_CONFIG ", \"api_base\": \"https://x.test/?a=b\"}", "api_base"},
        {BASE_CONFIG ", \"webhook_secret_header\": \"X Bad\"}", "webhook_secret_header"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ferry_err err;
        void *state = NULL;
        json_t *cfg = json_loads(cases[i].json, 0, NULL);
        assert_non_null(cfg);
        int rc = open_json(cfg, &state, &err);
        json_decref(cfg);
        if (rc != FERRY_ECONFIG) {
            fail_msg("case %zu (%s): rc %d, want ECONFIG", i, cases[i].json, rc);
        }
        assert_null(state);
        assert_int_equal(err.code, FERRY_ECONFIG);
        assert_contains(err.msg, cases[i].msg);
        assert_null(strstr(err.msg, TOKEN));
    }
}

/* ---- fetch ------------------------------------------------------------------------------- */

static void test_fetch_builds_request_and_parses(void **ts)
{
    struct ferry_err err = {0};
    json_t *rec = NULL;
    void *st = open_text(BASE_CONFIG ", \"api_base\": \"https://bc.example.test/api/\"}");
    char *body = envelope("["
                          "{\"id\": 32, \"email\": \"jane.smith@example.com\","
                          "\"first_name\": \"Jane\", \"last_name\": \"Smith\","
                          " \"date_modified\": \"2024-05-14T09:34:00Z\","
                          " \"addresses\": [{\"city\": \"Austin\"}]}"
                          "]",
                          "{\"pagination\": {\"total\": 1, \"count\": 1, \"per_page\": 50,"
                          " \"current_page\": 1, \"total_pages\": 1}}");
    fake_host_push(200, "Content-Type: application/json\n", body);
    free(body);

    assert_int_equal(conn->fetch(st, fake_host_call(), "customer", "32", &rec, &err), 0);
    assert_int_equal(fake_host_nrequests(), 1);
    const struct fake_request *r = fake_host_request(0);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->url, "https://bc.example.test/api/stores/abc123/v3/customers"
                                "?id:in=32&include=addresses,attributes,formfields");
    assert_string_equal(fake_request_header(r, "X-Auth-Token"), TOKEN);
    assert_string_equal(fake_request_header(r, "Accept"), "application/json");
    assert_string_equal(fake_request_header(r, "User-Agent"), "ferry/" FERRY_BC_VERSION);
    assert_null(r->body);

    assert_true(json_is_object(rec));
    assert_int_equal(json_integer_value(json_object_get(rec, "id")), 32);
    assert_string_equal(json_string_value(json_object_get(rec, "email")), "jane.smith@example.com");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(rec, "addresses"), 0), "city")),
                        "Austin");
    json_decref(rec);
    conn->close(st);
}

static void test_fetch_full_customer_default_base(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL;
    size_t n = strlen(CUSTOMER_32) + 8;
    char *data = malloc(n);
    assert_non_null(data);
    snprintf(data, n, "[%s]", CUSTOMER_32);
    char *body = envelope(data, "{}");
    free(data);
    fake_host_push(200, NULL, body);
    free(body);

    assert_int_equal(conn->fetch(f->state, fake_host_call(), "customer", "32", &rec, &err), 0);
    assert_string_equal(fake_host_request(0)->url,
                        "https://api.bigcommerce.com/stores/abc123/v3/customers"
                        "?id:in=32&include=addresses,attributes,formfields");
    assert_string_equal(json_string_value(json_object_get(rec, "last_name")), "Smith");
    assert_int_equal(json_array_size(json_object_get(rec, "attributes")), 1);
    assert_int_equal(json_array_size(json_object_get(rec, "form_fields")), 1);
    json_decref(rec);
}

static void test_fetch_empty_data_is_not_found(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL;
    fake_host_push(200, NULL, "{\"data\": [], \"meta\": {\"pagination\": {\"total\": 0}}}");
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "customer", "99", &rec, &err),
                     FERRY_ENOTFOUND);
    assert_int_equal(err.code, FERRY_ENOTFOUND);
    assert_contains(err.msg, "99");
    assert_null(rec);
}

static void test_fetch_other_customer_is_proto_error(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL;
    fake_host_push(200, NULL, "{\"data\": [{\"id\": 33}], \"meta\": {}}");
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "customer", "32", &rec, &err),
                     FERRY_EPROTO);
    assert_null(rec);
}

static void test_fetch_rejects_bad_id_and_object(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL;
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "customer", "32&limit=1", &rec, &err),
                     FERRY_EINVAL);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "customer", "", &rec, &err),
                     FERRY_EINVAL);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "order", "250", &rec, &err),
                     FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "order");
    assert_int_equal(fake_host_nrequests(), 0);
    assert_null(rec);
}

/* ---- list_changes ------------------------------------------------------------------------ */

static char *customers_page(int first_id, int count, int current, int total_pages)
{
    char data[1024] = "[";
    char meta[256];
    for (int i = 0; i < count; i++) {
        char one[160];
        snprintf(one, sizeof(one),
                 "%s{\"id\": %d, \"email\": \"c%d@example.com\","
                 " \"date_modified\": \"2024-05-14T10:%02d:00Z\"}",
                 i ? "," : "", first_id + i, first_id + i, first_id + i);
        strcat(data, one);
    }
    strcat(data, "]");
    snprintf(meta, sizeof(meta),
             "{\"pagination\": {\"total\": 5, \"count\": %d, \"per_page\": 2,"
             " \"current_page\": %d, \"total_pages\": %d,"
             " \"links\": {\"current\": \"?page=%d&limit=2\", \"next\": \"?page=%d&limit=2\"}}}",
             count, current, total_pages, current, current + 1);
    return envelope(data, meta);
}

static void test_list_changes_pages_through(void **ts)
{
    struct fixture *f = *ts;
    const char *since = "2024-05-14T09:34:00+02:00";
    char *token = NULL;
    int seen = 0;
    static const char *const want_next[] = {"2", "3", NULL};

    for (int p = 1; p <= 3; p++) {
        char *body = customers_page(1 + (p - 1) * 2, p < 3 ? 2 : 1, p, 3);
        fake_host_push(200, NULL, body);
        free(body);
    }
    for (int p = 1; p <= 3; p++) {
        struct ferry_err err = {0};
        json_t *page = NULL;
        char want_url[256];
        assert_int_equal(
            conn->list_changes(f->state, fake_host_call(), "customer", since, token, &page, &err),
            0);
        snprintf(want_url, sizeof(want_url),
                 "https://api.bigcommerce.com/stores/abc123/v3/customers"
                 "?date_modified:min=2024-05-14T09:34:00%%2B02:00&sort=date_modified:asc"
                 "&limit=2&page=%d&include=addresses",
                 p);
        assert_string_equal(fake_host_request((size_t)p - 1)->url, want_url);
        assert_string_equal(fake_request_header(fake_host_request((size_t)p - 1), "X-Auth-Token"),
                            TOKEN);

        json_t *items = json_object_get(page, "items");
        json_t *next = json_object_get(page, "next");
        assert_int_equal(json_array_size(items), p < 3 ? 2 : 1);
        for (size_t i = 0; i < json_array_size(items); i++) {
            json_t *it = json_array_get(items, i);
            char want_id[16], want_mod[48];
            seen++;
            snprintf(want_id, sizeof(want_id), "%d", seen);
            snprintf(want_mod, sizeof(want_mod), "2024-05-14T10:%02d:00Z", seen);
            assert_string_equal(json_string_value(json_object_get(it, "id")), want_id);
            assert_string_equal(json_string_value(json_object_get(it, "modified")), want_mod);
            assert_int_equal(
                json_integer_value(json_object_get(json_object_get(it, "record"), "id")), seen);
        }
        free(token);
        token = NULL;
        if (want_next[p - 1]) {
            assert_true(json_is_string(next));
            assert_string_equal(json_string_value(next), want_next[p - 1]);
            token = strdup(json_string_value(next));
        } else {
            assert_true(json_is_null(next));
        }
        json_decref(page);
    }
    assert_int_equal(seen, 5);
    assert_int_equal(fake_host_pending(), 0);
}

static void test_list_changes_without_since(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *page = NULL;
    char *body = customers_page(1, 1, 1, 1);
    fake_host_push(200, NULL, body);
    free(body);
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err), 0);
    assert_string_equal(fake_host_request(0)->url,
                        "https://api.bigcommerce.com/stores/abc123/v3/customers"
                        "?sort=date_modified:asc&limit=2&page=1&include=addresses");
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);
}

static void test_list_changes_empty_page_ends(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *page = NULL;
    /* A shrinking total must not make the walk go on forever. */
    fake_host_push(200, NULL,
                   "{\"data\": [], \"meta\": {\"pagination\": {\"total\": 0, \"count\": 0,"
                   " \"per_page\": 2, \"current_page\": 2, \"total_pages\": 3}}}");
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "customer", NULL, "2", &page, &err), 0);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);
}

static void test_list_changes_rejects_bad_input(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *page = NULL;
    static const char *const bad[] = {"0", "-1", "abc", "2x", "", "+3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            conn->list_changes(f->state, fake_host_call(), "customer", NULL, bad[i], &page, &err),
            FERRY_EINVAL);
    }
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "order", NULL, NULL, &page, &err),
        FERRY_EUNSUPPORTED);
    assert_int_equal(fake_host_nrequests(), 0);

    /* No pagination block: we cannot tell where the walk ends. */
    fake_host_push(200, NULL, "{\"data\": [], \"meta\": {}}");
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err),
        FERRY_EPROTO);
    /* An element without date_modified cannot carry a watermark. */
    fake_host_push(200, NULL,
                   "{\"data\": [{\"id\": 1}], \"meta\": {\"pagination\": {\"current_page\": 1,"
                   " \"total_pages\": 1}}}");
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err),
        FERRY_EPROTO);
    assert_null(page);
}

/* ---- error classification ---------------------------------------------------------------- */

static void test_errors_classified_by_status(void **ts)
{
    struct fixture *f = *ts;
    static const struct {
        long status;
        const char *headers;
        const char *body;
        int code;
        int64_t retry_ms;
        const char *msg;
    } cases[] = {
        {401, NULL, "{\"status\": 401, \"title\": \"Unauthorized\"}", FERRY_EAUTH, 0,
         "Unauthorized"},
        {403, NULL, "{\"status\": 403, \"title\": \"You don't have a required scope\"}",
         FERRY_EFORBIDDEN, 0, "required scope"},
        {404, NULL, "{\"status\": 404, \"title\": \"Not Found\"}", FERRY_ENOTFOUND, 0, "404"},
        {422, NULL,
         "{\"status\": 422, \"title\": \"JSON data is missing or invalid\","
         " \"type\": \"/api-docs/getting-started/api-status-codes\","
         " \"errors\": {\"date_modified:min\": \"must be a date\"}}",
         FERRY_EVALIDATION, 0,
         "JSON data is missing or invalid (date_modified:min: must be a date)"},
        {400, NULL, "[{\"status\": 400, \"message\": \"Bad query\"}]", FERRY_EVALIDATION, 0,
         "Bad query"},
        {429, "X-Rate-Limit-Time-Reset-Ms: 4500\nX-Retry-After: 9\n", "", FERRY_ERATELIMIT, 4500,
         "429"},
        {429, "x-retry-after: 7\n", "", FERRY_ERATELIMIT, 7000, "429"},
        {429, NULL, "", FERRY_ERATELIMIT, 3000, "429"},
        {429, "X-Rate-Limit-Time-Reset-Ms: soon\n", "", FERRY_ERATELIMIT, 3000, "429"},
        {500, NULL, "<html>oops</html>", FERRY_EUNAVAILABLE, 0, "500"},
        {503, NULL, "", FERRY_EUNAVAILABLE, 0, "503"},
        {200, NULL, "{\"data\": [", FERRY_EPROTO, 0, "malformed JSON"},
        {200, NULL, "[1, 2]", FERRY_EPROTO, 0, "envelope"},
        {302, "Location: https://example.com/\n", "", FERRY_EPROTO, 0, "302"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ferry_err err = {0};
        json_t *rec = NULL;
        fake_host_push(cases[i].status, cases[i].headers, cases[i].body);
        int rc = conn->fetch(f->state, fake_host_call(), "customer", "32", &rec, &err);
        if (rc != cases[i].code || err.code != cases[i].code) {
            fail_msg("case %zu (HTTP %ld): rc %d err.code %d, want %d (%s)", i, cases[i].status, rc,
                     err.code, cases[i].code, err.msg);
        }
        assert_int_equal(err.retry_after_ms, cases[i].retry_ms);
        assert_contains(err.msg, cases[i].msg);
        assert_null(strstr(err.msg, TOKEN));
        assert_null(rec);
    }
    assert_int_equal(fake_host_pending(), 0);
}

static void test_errors_transport_passes_through(void **ts)
{
    struct fixture *f = *ts;
    static const int codes[] = {FERRY_ENETWORK, FERRY_ETIMEDOUT, FERRY_ETOOBIG};
    for (size_t i = 0; i < 3; i++) {
        struct ferry_err err = {0};
        json_t *page = NULL;
        fake_host_push_error(codes[i]);
        assert_int_equal(
            conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err),
            codes[i]);
        assert_int_equal(err.code, codes[i]);
        assert_string_equal(err.msg, "fake host: injected transport error");
        assert_null(page);
    }
}

/* ---- verify_webhook ---------------------------------------------------------------------- */

static const char HOOK_BODY[] =
    "{\"scope\": \"store/customer/created\", \"store_id\": \"1025646\","
    " \"data\": {\"type\": \"customer\", \"id\": 32},"
    " \"hash\": \"8768ab15aa86c6d73c7e4c3efbaee072110ad1d2\", \"created_at\": 1561481571,"
    " \"producer\": \"stores/abc123\"}";

/* "v1,<base64 HMAC-SHA256(key, id.ts.body)>", computed independently of the plugin. */
static void sign(const char *key, size_t key_len, const char *id, const char *ts, const char *body,
                 char *out, size_t n)
{
    unsigned char mac[32];
    unsigned int mac_len = 0;
    char msg[2048];
    unsigned char b64[64];
    int len = snprintf(msg, sizeof(msg), "%s.%s.%s", id, ts, body);
    assert_true(len > 0 && (size_t)len < sizeof(msg));
    assert_non_null(
        HMAC(EVP_sha256(), key, (int)key_len, (unsigned char *)msg, (size_t)len, mac, &mac_len));
    EVP_EncodeBlock(b64, mac, (int)mac_len);
    snprintf(out, n, "v1,%s", b64);
}

static int verify(void *state, const struct ferry_http_header *h, size_t nh, const char *body,
                  struct ferry_err *err)
{
    struct ferry_webhook wh = {
        .path = "",
        .headers = h,
        .nheaders = nh,
        .body = body,
        .body_len = strlen(body),
        .received_at_ms = NOW_MS,
    };
    memset(err, 0, sizeof(*err));
    return conn->verify_webhook(state, fake_host_loop_call(), &wh, err);
}

static void test_verify_secret_header(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err;
    const struct ferry_http_header ok[] = {{"Content-Type", "application/json"},
                                           {"x-ferry-secret", SECRET}};
    const struct ferry_http_header wrong[] = {{"X-Ferry-Secret", "nope"}};
    /* Same length as SECRET, differing only in the last byte. */
    const struct ferry_http_header same_len[] = {{"X-Ferry-Secret", "s3cret-webhook-valuf"}};
    const struct ferry_http_header longer[] = {{"X-Ferry-Secret", SECRET "x"}};
    const struct ferry_http_header none[] = {{"Content-Type", "application/json"}};

    assert_int_equal(verify(f->state, ok, 2, HOOK_BODY, &err), 0);

    assert_int_equal(verify(f->state, wrong, 1, HOOK_BODY, &err), FERRY_ESIGNATURE);
    assert_contains(err.msg, "X-Ferry-Secret");
    assert_null(strstr(err.msg, "nope"));
    assert_null(strstr(err.msg, SECRET));

    assert_int_equal(verify(f->state, same_len, 1, HOOK_BODY, &err), FERRY_ESIGNATURE);
    assert_null(strstr(err.msg, SECRET));
    assert_int_equal(verify(f->state, longer, 1, HOOK_BODY, &err), FERRY_ESIGNATURE);

    assert_int_equal(verify(f->state, none, 1, HOOK_BODY, &err), FERRY_ESIGNATURE);
    assert_contains(err.msg, "X-Ferry-Secret");
    assert_null(strstr(err.msg, SECRET));
    assert_int_equal(verify(f->state, NULL, 0, HOOK_BODY, &err), FERRY_ESIGNATURE);
}

static void test_verify_custom_header_name(void **ts)
{
    struct ferry_err err;
    void *st = open_text(BASE_CONFIG ", \"webhook_secret_header\": \"X-Hook-Auth\"}");
    const struct ferry_http_header ok[] = {{"X-HOOK-AUTH", SECRET}};
    const struct ferry_http_header old_name[] = {{"X-Ferry-Secret", SECRET}};
    assert_int_equal(verify(st, ok, 1, HOOK_BODY, &err), 0);
    assert_int_equal(verify(st, old_name, 1, HOOK_BODY, &err), FERRY_ESIGNATURE);
    assert_contains(err.msg, "X-Hook-Auth");
    conn->close(st);
}

static void test_verify_signature(void **ts)
{
    struct fixture *f = *ts; /* signature = if-present, client_secret set */
    struct ferry_err err;
    char ts_now[32], ts_old[32], ts_future[32], good[128], other[128], multi[512];
    const char *id = "msg_2k6Y1sYzvzA9cJ1e";
    snprintf(ts_now, sizeof(ts_now), "%lld", NOW_MS / 1000 - 30);
    snprintf(ts_old, sizeof(ts_old), "%lld", NOW_MS / 1000 - 301);
    snprintf(ts_future, sizeof(ts_future), "%lld", NOW_MS / 1000 + 301);
    sign(CLIENT_SEC, strlen(CLIENT_SEC), id, ts_now, HOOK_BODY, good, sizeof(good));
    sign("another-secret", 14, id, ts_now, HOOK_BODY, other, sizeof(other));
    snprintf(multi, sizeof(multi), "v1a,c2lnbmF0dXJl %s %s", other, good);

    struct ferry_http_header h[] = {
        {"X-Ferry-Secret", SECRET},
        {"webhook-id", id},
        {"webhook-timestamp", ts_now},
        {"webhook-signature", good},
    };
    assert_int_equal(verify(f->state, h, 4, HOOK_BODY, &err), 0);

    /* A body changed in transit. */
    assert_int_equal(verify(f->state, h, 4, "{\"scope\": \"store/customer/deleted\"}", &err),
                     FERRY_ESIGNATURE);
    assert_contains(err.msg, "webhook-signature");

    h[3].value = other;
    assert_int_equal(verify(f->state, h, 4, HOOK_BODY, &err), FERRY_ESIGNATURE);
    h[3].value = multi;
    assert_int_equal(verify(f->state, h, 4, HOOK_BODY, &err), 0);
    h[3].value = "v1,";
    assert_int_equal(verify(f->state, h, 4, HOOK_BODY, &err), FERRY_ESIGNATURE);

    /* Replays: a valid signature over a timestamp outside the tolerance. */
    sign(CLIENT_SEC, strlen(CLIENT_SEC), id, ts_old, HOOK_BODY, good, sizeof(good));
    h[2].value = ts_old;
    h[3].value = good;
    assert_int_equal(verify(f->state, h, 4, HOOK_BODY, &err), FERRY_ESIGNATURE);
    assert_contains(err.msg, "webhook-timestamp");
    sign(CLIENT_SEC, strlen(CLIENT_SEC), id, ts_future, HOOK_BODY, good, sizeof(good));
    h[2].value = ts_future;
    assert_int_equal(verify(f->state, h, 4, HOOK_BODY, &err), FERRY_ESIGNATURE);
    h[2].value = "yesterday";
    assert_int_equal(verify(f->state, h, 4, HOOK_BODY, &err), FERRY_ESIGNATURE);

    /* if-present: no signature headers at all is fine, a partial set is not. */
    assert_int_equal(verify(f->state, h, 1, HOOK_BODY, &err), 0);
    assert_int_equal(verify(f->state, h, 3, HOOK_BODY, &err), FERRY_ESIGNATURE);
    assert_contains(err.msg, "webhook-signature");

    /* The secret header is checked first, whatever the signature says. */
    h[0].value = "wrong";
    h[2].value = ts_now;
    sign(CLIENT_SEC, strlen(CLIENT_SEC), id, ts_now, HOOK_BODY, good, sizeof(good));
    h[3].value = good;
    assert_int_equal(verify(f->state, h, 4, HOOK_BODY, &err), FERRY_ESIGNATURE);
    assert_contains(err.msg, "X-Ferry-Secret");
}

static void test_verify_signature_required_and_off(void **ts)
{
    struct ferry_err err;
    const struct ferry_http_header secret_only[] = {{"X-Ferry-Secret", SECRET}};
    const struct ferry_http_header bad_sig[] = {
        {"X-Ferry-Secret", SECRET},
        {"webhook-id", "msg_1"},
        {"webhook-timestamp", "1"},
        {"webhook-signature", "v1,AAAA"},
    };
    void *req = open_text(BASE_CONFIG ", \"signature\": \"required\","
                                      " \"client_secret\": \"" CLIENT_SEC "\"}");
    void *off = open_text(BASE_CONFIG ", \"signature\": \"off\","
                                      " \"client_secret\": \"" CLIENT_SEC "\"}");
    void *nokey = open_text(BASE_CONFIG "}");

    assert_int_equal(verify(req, secret_only, 1, HOOK_BODY, &err), FERRY_ESIGNATURE);
    assert_contains(err.msg, "webhook-signature");
    assert_int_equal(verify(req, bad_sig, 4, HOOK_BODY, &err), FERRY_ESIGNATURE);
    assert_int_equal(verify(off, bad_sig, 4, HOOK_BODY, &err), 0);
    /* if-present without a client_secret relies on the secret header alone. */
    assert_int_equal(verify(nokey, bad_sig, 4, HOOK_BODY, &err), 0);
    assert_int_equal(verify(nokey, bad_sig, 1, HOOK_BODY, &err), 0);

    conn->close(req);
    conn->close(off);
    conn->close(nokey);
}

/*
 * The Standard Webhooks reference vector (spec and libraries' tests): secret
 * whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whose base64 part decodes to the
 * raw HMAC key, which is what BigCommerce's client secret is used as.
 */
static void test_verify_signature_known_answer(void **ts)
{
    static const unsigned char key[] = {0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a, 0xab,
                                        0x4f, 0x08, 0xd4, 0x3c, 0x3f, 0x08, 0x2c, 0xf6, 0x48,
                                        0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0, 0};
    struct ferry_err err;
    void *st = NULL;
    json_t *cfg = json_loads(BASE_CONFIG ", \"signature\": \"required\"}", 0, NULL);
    assert_non_null(cfg);
    /* The key is not UTF-8; secrets from file("...") may be arbitrary bytes. */
    json_object_set_new(cfg, "client_secret", json_string_nocheck((const char *)key));
    fake_host_set_now(1614265330LL * 1000);
    assert_int_equal(open_json(cfg, &st, &err), 0);
    json_decref(cfg);

    const struct ferry_http_header h[] = {
        {"X-Ferry-Secret", SECRET},
        {"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
        {"webhook-timestamp", "1614265330"},
        {"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
    };
    assert_int_equal(verify(st, h, 4, "{\"test\": 2432232314}", &err), 0);
    assert_int_equal(verify(st, h, 4, "{\"test\": 2432232315}", &err), FERRY_ESIGNATURE);
    conn->close(st);
}

/* ---- decode_webhook ---------------------------------------------------------------------- */

static int decode(void *state, const char *body, json_t **events, struct ferry_err *err)
{
    const struct ferry_http_header h[] = {{"X-Ferry-Secret", SECRET}};
    struct ferry_webhook wh = {
        .path = "",
        .headers = h,
        .nheaders = 1,
        .body = body,
        .body_len = strlen(body),
        .received_at_ms = NOW_MS,
    };
    memset(err, 0, sizeof(*err));
    *events = NULL;
    return conn->decode_webhook(state, fake_host_loop_call(), &wh, events, err);
}

static void assert_customer_event(json_t *events, const char *id, const char *kind,
                                  const char *scope, const char *hash)
{
    char dedupe[256];
    json_t *ev;
    assert_true(json_is_array(events));
    assert_int_equal(json_array_size(events), 1);
    ev = json_array_get(events, 0);
    snprintf(dedupe, sizeof(dedupe), "%s:%s", scope, hash);
    assert_string_equal(json_string_value(json_object_get(ev, "object")), "customer");
    assert_string_equal(json_string_value(json_object_get(ev, "id")), id);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), kind);
    assert_string_equal(json_string_value(json_object_get(ev, "scope")), scope);
    assert_string_equal(json_string_value(json_object_get(ev, "dedupe")), dedupe);
}

static void test_decode_customer_events_inline(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err;
    json_t *ev = NULL;

    assert_int_equal(decode(f->state, HOOK_BODY, &ev, &err), 0);
    assert_customer_event(ev, "32", "created", "store/customer/created",
                          "8768ab15aa86c6d73c7e4c3efbaee072110ad1d2");
    json_decref(ev);

    /* Older docs: integer store_id; extra data members are ignored. */
    assert_int_equal(decode(f->state,
                            "{\"scope\": \"store/customer/updated\", \"store_id\": 1025646,"
                            " \"data\": {\"type\": \"customer\", \"id\": 4711,"
                            " \"origin_channel_id\": 1, \"channel_ids\": [1]},"
                            " \"hash\": \"0123456789abcdef0123456789abcdef01234567\","
                            " \"created_at\": 1561481571, \"producer\": \"stores/abc123\"}",
                            &ev, &err),
                     0);
    assert_customer_event(ev, "4711", "updated", "store/customer/updated",
                          "0123456789abcdef0123456789abcdef01234567");
    json_decref(ev);
}

static void test_decode_spec_samples(void **ts)
{
    struct fixture *f = *ts;
    /*
     * The vendor's updated and deleted samples both carry scope
     * store/customer/created (facts 8.2 notes the first), so the expected
     * event follows each file's scope, as decode must; payment-instrument and
     * address scopes are not customer changes for this skeleton.
     */
    static const char *const samples[] = {
        "store_customer_created.json",
        "store_customer_updated.json",
        "store_customer_deleted.json",
        "store_customer_address_created.json",
        "store_customer_payment_instrument_default_updated.json",
    };
    char path[1024];
    int found = 0;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        struct ferry_err err;
        json_t *ev = NULL;
        snprintf(path, sizeof(path), "%s/bigcommerce/docs/webhooks/callbacks/data/%s", specs_dir(),
                 samples[i]);
        char *body = fake_host_read_file(path);
        if (!body) {
            continue;
        }
        found++;
        json_t *doc = json_loads(body, 0, NULL);
        assert_non_null(doc);
        const char *scope = json_string_value(json_object_get(doc, "scope"));
        const char *hash = json_string_value(json_object_get(doc, "hash"));
        const char *kind = strcmp(scope, "store/customer/created") == 0   ? "created"
                           : strcmp(scope, "store/customer/updated") == 0 ? "updated"
                                                                          : NULL;
        char id[32];
        snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(json_object_get(doc, "data"), "id")));

        size_t logs = fake_host_log_count(FERRY_LOG_INFO);
        if (decode(f->state, body, &ev, &err) != 0) {
            fail_msg("%s: %s", samples[i], err.msg);
        }
        if (kind) {
            assert_customer_event(ev, id, kind, scope, hash);
        } else {
            assert_int_equal(json_array_size(ev), 0);
            assert_int_equal(fake_host_log_count(FERRY_LOG_INFO), logs + 1);
            assert_contains(fake_host_last_log(), scope);
        }
        json_decref(ev);
        json_decref(doc);
        free(body);
    }
    if (!found) {
        print_message("skipped: no BigCommerce webhook samples under %s (set FERRY_SPECS)\n",
                      specs_dir());
        skip();
    }
}

static void test_decode_unknown_scope_is_empty(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err;
    json_t *ev = NULL;
    size_t logs = fake_host_log_count(FERRY_LOG_INFO);

    assert_int_equal(decode(f->state,
                            "{\"scope\": \"store/order/created\", \"store_id\": \"1025646\","
                            " \"data\": {\"type\": \"order\", \"id\": 250},"
                            " \"hash\": \"dd70c0976e06b67aaf671e73f49dcb79230ebf9d\","
                            " \"created_at\": 1561479335, \"producer\": \"stores/abc123\"}",
                            &ev, &err),
                     0);
    assert_true(json_is_array(ev));
    assert_int_equal(json_array_size(ev), 0);
    assert_int_equal(fake_host_log_count(FERRY_LOG_INFO), logs + 1);
    assert_string_equal(fake_host_last_log(), "ignoring scope store/order/created");
    json_decref(ev);

    /* A shape without data.id is fine for a scope we do not handle. */
    assert_int_equal(decode(f->state,
                            "{\"scope\": \"store/customer/channel/login/access/updated\","
                            " \"data\": {\"customer_id\": 22, \"channel_ids\": [1]},"
                            " \"hash\": \"abc\"}",
                            &ev, &err),
                     0);
    assert_int_equal(json_array_size(ev), 0);
    json_decref(ev);
}

static void test_decode_rejects_bad_payloads(void **ts)
{
    struct fixture *f = *ts;
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"", "not valid JSON"},
        {"{\"scope\": \"store/customer/created\"", "not valid JSON"},
        {"[1]", "not a JSON object"},
        {"{\"data\": {\"id\": 1}, \"hash\": \"h\"}", "scope"},
        {"{\"scope\": 5, \"data\": {\"id\": 1}, \"hash\": \"h\"}", "scope"},
        {"{\"scope\": \"store/customer/created\", \"data\": {\"id\": 1}}", "hash"},
        {"{\"scope\": \"store/customer/created\", \"data\": {\"id\": 1}, \"hash\": 7}", "hash"},
        {"{\"scope\": \"store/customer/created\", \"hash\": \"h\"}", "data"},
        {"{\"scope\": \"store/customer/created\", \"data\": [1], \"hash\": \"h\"}", "data"},
        {"{\"scope\": \"store/customer/created\", \"data\": {\"type\": \"customer\"},"
         " \"hash\": \"h\"}",
         "data.id"},
        {"{\"scope\": \"store/customer/created\", \"data\": {\"id\": \"32\"}, \"hash\": \"h\"}",
         "data.id"},
        {"{\"scope\": \"store/customer/updated\", \"data\": {\"id\": 1.5}, \"hash\": \"h\"}",
         "data.id"},
        {"{\"scope\": \"store/customer/updated\", \"data\": {\"id\": 0}, \"hash\": \"h\"}",
         "data.id"},
        {"{\"scope\": \"store/customer/created\", \"data\": {\"id\": 1}, \"hash\": \"h\","
         " \"store_id\": true}",
         "store_id"},
        {"{\"scope\": \"a\", \"scope\": \"b\", \"data\": {\"id\": 1}, \"hash\": \"h\"}",
         "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ferry_err err;
        json_t *ev = NULL;
        int rc = decode(f->state, cases[i].body, &ev, &err);
        if (rc != FERRY_EBADINPUT) {
            fail_msg("case %zu (%s): rc %d, want EBADINPUT", i, cases[i].body, rc);
        }
        assert_int_equal(err.code, FERRY_EBADINPUT);
        assert_contains(err.msg, cases[i].msg);
        assert_null(ev);
    }
}

static void test_lookup_and_write_unsupported(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *out = NULL;
    json_t *fields = json_pack("{s:s}", "email", "a@example.com");
    struct ferry_write w = {.op = FERRY_WRITE_CREATE, .object = "customer", .fields = fields};

    assert_int_equal(
        conn->lookup(f->state, fake_host_call(), "customer", "email", "a@example.com", &out, &err),
        FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "lookup");
    assert_int_equal(conn->write(f->state, fake_host_call(), &w, &out, &err), FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "customer");
    assert_null(out);
    assert_int_equal(fake_host_nrequests(), 0);
    json_decref(fields);
}

int main(void)
{
    if (ferry_connector_entry(fake_host_api(), &conn) != 0) {
        fprintf(stderr, "ferry_connector_entry failed\n");
        return 1;
    }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_entry_abi_check),
        T(test_config_table_declares_keys),
        T(test_open_good_config),
        T(test_open_rejects_bad_config),
        T(test_fetch_builds_request_and_parses),
        T(test_fetch_full_customer_default_base),
        T(test_fetch_empty_data_is_not_found),
        T(test_fetch_other_customer_is_proto_error),
        T(test_fetch_rejects_bad_id_and_object),
        T(test_list_changes_pages_through),
        T(test_list_changes_without_since),
        T(test_list_changes_empty_page_ends),
        T(test_list_changes_rejects_bad_input),
        T(test_errors_classified_by_status),
        T(test_errors_transport_passes_through),
        T(test_verify_secret_header),
        T(test_verify_custom_header_name),
        T(test_verify_signature),
        T(test_verify_signature_required_and_off),
        T(test_verify_signature_known_answer),
        T(test_decode_customer_events_inline),
        T(test_decode_spec_samples),
        T(test_decode_unknown_scope_is_empty),
        T(test_decode_rejects_bad_payloads),
        T(test_lookup_and_write_unsupported),
    };
#undef T
    return cmocka_run_group_tests_name("plugin.bigcommerce", tests, NULL, NULL);
}
