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
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "bigcommerce.h"
#include "bigcommerce_time.h"
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
    assert_int_equal(n, 15);
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
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "opportunity", "250", &rec, &err),
                     FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "opportunity");
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
    /*
     * Keyset paging (bigcommerce_keyset.h): each page after the first starts
     * at the last date_modified read, inclusive, so customer n comes back
     * first on page n and is skipped, its id carried in the token.
     */
    static const int first_id[] = {1, 2, 3, 4, 5}, count[] = {2, 2, 2, 2, 1};
    static const int reported[] = {2, 1, 1, 1, 0};
    static const char *const want_min[] = {"2024-05-14T09:34:00%2B02:00", "2024-05-14T10:02:00Z",
                                           "2024-05-14T10:03:00Z", "2024-05-14T10:04:00Z",
                                           "2024-05-14T10:05:00Z"};
    static const char *const want_next[] = {"A:1715680920:0:2", "A:1715680980:0:3",
                                            "A:1715681040:0:4", "A:1715681100:0:5", NULL};

    for (int p = 0; p < 5; p++) {
        char *body = customers_page(first_id[p], count[p], 1, 1);
        fake_host_push(200, NULL, body);
        free(body);
    }
    for (int p = 0; p < 5; p++) {
        struct ferry_err err = {0};
        json_t *page = NULL;
        char want_url[256];
        assert_int_equal(
            conn->list_changes(f->state, fake_host_call(), "customer", since, token, &page, &err),
            0);
        snprintf(want_url, sizeof(want_url),
                 "https://api.bigcommerce.com/stores/abc123/v3/customers"
                 "?date_modified:min=%s&sort=date_modified:asc"
                 "&limit=2&page=1&include=addresses,attributes,formfields",
                 want_min[p]);
        assert_string_equal(fake_host_request((size_t)p)->url, want_url);
        assert_string_equal(fake_request_header(fake_host_request((size_t)p), "X-Auth-Token"),
                            TOKEN);

        json_t *items = json_object_get(page, "items");
        json_t *next = json_object_get(page, "next");
        assert_int_equal(json_array_size(items), reported[p]);
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
        if (want_next[p]) {
            assert_true(json_is_string(next));
            assert_string_equal(json_string_value(next), want_next[p]);
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
                        "?sort=date_modified:asc&limit=2&page=1"
                        "&include=addresses,attributes,formfields");
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);
}

/* A record handed on as read goes with its text; without texts from the host, without one. */
static void test_list_changes_hands_on_record_texts(void **ts)
{
    struct fixture *f = *ts;
    for (int with = 1; with >= 0; with--) {
        struct ferry_err err = {0};
        json_t *page = NULL;
        char *body = customers_page(1, 2, 1, 1);
        fake_host_set_item_texts(with);
        fake_host_push(200, NULL, body);
        free(body);
        assert_int_equal(
            conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err), 0);
        json_t *items = json_object_get(page, "items");
        assert_int_equal(json_array_size(items), 2);
        for (size_t i = 0; i < 2; i++) {
            json_t *it = json_array_get(items, i);
            const char *text = json_string_value(json_object_get(it, "record_text"));
            if (!with) {
                assert_null(json_object_get(it, "record_text"));
                continue;
            }
            char *want = json_dumps(json_object_get(it, "record"), JSON_COMPACT);
            assert_non_null(text);
            assert_string_equal(text, want);
            free(want);
        }
        json_decref(page);
    }
    fake_host_set_item_texts(true);
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
    assert_int_equal(conn->list_changes(f->state, fake_host_call(), "customer", NULL,
                                        "A:1715680920:0:2", &page, &err),
                     0);
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
        conn->list_changes(f->state, fake_host_call(), "opportunity", NULL, NULL, &page, &err),
        FERRY_EUNSUPPORTED);
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "cart", NULL, NULL, &page, &err),
        FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "store/cart/abandoned");
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "customer", "yesterday", NULL, &page, &err),
        FERRY_EINVAL);
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

/* One decoded event: object, id, event, and (when data_key) one member of its data. */
static void assert_event(json_t *events, const char *object, const char *id, const char *event,
                         const char *data_key, json_int_t data_int, const char *data_str)
{
    json_t *ev, *data;
    assert_true(json_is_array(events));
    assert_int_equal(json_array_size(events), 1);
    ev = json_array_get(events, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "object")), object);
    assert_string_equal(json_string_value(json_object_get(ev, "id")), id);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), event);
    data = json_object_get(ev, "data");
    if (!data_key) {
        assert_null(data);
        return;
    }
    if (data_str) {
        assert_string_equal(json_string_value(json_object_get(data, data_key)), data_str);
    } else {
        assert_int_equal(json_integer_value(json_object_get(data, data_key)), data_int);
    }
}

/*
 * Every vendor sample of a scope the connector handles (plus two it does
 * not). The vendor's customer updated and deleted samples carry scope
 * store/customer/created (facts 8.2) and the address-updated sample spells
 * store/customer/address/update; decode follows each file's scope.
 */
static void test_decode_spec_samples(void **ts)
{
    struct fixture *f = *ts;
    static const struct {
        const char *file;
        const char *object; /* NULL: ignored scope */
        const char *id;
        const char *event;
        const char *data_key;
        json_int_t data_int;
        const char *data_str;
    } samples[] = {
        {"store_customer_created.json", "customer", "32", "created", NULL, 0, NULL},
        {"store_customer_updated.json", "customer", "32", "created", NULL, 0, NULL},
        {"store_customer_deleted.json", "customer", "32", "created", NULL, 0, NULL},
        {"store_customer_address_created.json", "customer", "32", "updated", "address_id", 60,
         NULL},
        {"store_customer_address_updated.json", "customer", "32", "updated", "address_id", 60,
         NULL},
        {"store_customer_address_deleted.json", "customer", "32", "updated", "address_id", 60,
         NULL},
        {"store_order_created.json", "order", "250", "created", NULL, 0, NULL},
        {"store_order_updated.json", "order", "250", "updated", NULL, 0, NULL},
        {"store_order_archived.json", "order", "250", "archived", NULL, 0, NULL},
        {"store_order_statusUpdated.json", "order", "250", "status_changed", "new_status_id", 11,
         NULL},
        {"store_order_refund_created.json", "refund", "250:3", "refund_created", "refund_id", 3,
         NULL},
        {"store_cart_abandoned.json", "cart", "09346904-4175-44fd-be53-f7e598531b6c", "abandoned",
         "token", 0, "1eed6d2d979776ff18e695ceeb10ea61"},
        {"store_cart_converted.json", "order", "252", "converted", "cart_id", 0,
         "d30016e2-23c0-4a90-884f-2e92ac135476"},
        {"store_product_updated.json", "product", NULL, "updated", NULL, 0, NULL},
        {"store_customer_payment_instrument_default_updated.json", NULL, NULL, NULL, NULL, 0, NULL},
        {"store_order_message_created.json", NULL, NULL, NULL, NULL, 0, NULL},
    };
    char path[1024];
    int found = 0;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        struct ferry_err err;
        json_t *ev = NULL;
        snprintf(path, sizeof(path), "%s/bigcommerce/docs/webhooks/callbacks/data/%s", specs_dir(),
                 samples[i].file);
        char *body = fake_host_read_file(path);
        if (!body) {
            continue;
        }
        found++;
        json_t *doc = json_loads(body, 0, NULL);
        assert_non_null(doc);
        const char *scope = json_string_value(json_object_get(doc, "scope"));
        char id[64];
        snprintf(id, sizeof(id), "%s", samples[i].id ? samples[i].id : "");
        if (!samples[i].id) {
            snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(json_object_get(doc, "data"), "id")));
        }

        size_t logs = fake_host_log_count(FERRY_LOG_INFO);
        if (decode(f->state, body, &ev, &err) != 0) {
            fail_msg("%s: %s", samples[i].file, err.msg);
        }
        if (samples[i].object) {
            assert_event(ev, samples[i].object, id, samples[i].event, samples[i].data_key,
                         samples[i].data_int, samples[i].data_str);
            assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "scope")),
                                scope);
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

/* Inline payloads of every scope shape, including the B2B ones (facts 9.5), which have no file. */
static void test_decode_every_scope_inline(void **ts)
{
    struct fixture *f = *ts;
    static const struct {
        const char *scope;
        const char *data;
        const char *object;
        const char *id;
        const char *event;
        const char *data_key;
        json_int_t data_int;
        const char *data_str;
    } cases[] = {
        {"store/customer/deleted", "{\"type\": \"customer\", \"id\": 7}", "customer", "7",
         "deleted", NULL, 0, NULL},
        {"store/customer/address/updated",
         "{\"type\": \"customer\", \"id\": 61, \"address\": {\"customer_id\": 8}}", "customer", "8",
         "updated", "address_id", 61, NULL},
        {"store/order/statusUpdated",
         "{\"type\": \"order\", \"id\": 9, \"status\": {\"previous_status_id\": 11,"
         " \"new_status_id\": 2}}",
         "order", "9", "status_changed", "previous_status_id", 11, NULL},
        {"store/order/refund/created",
         "{\"type\": \"order\", \"id\": 9, \"refund\": {\"refund_id\":"
         " 4}}",
         "refund", "9:4", "refund_created", "order_id", 9, NULL},
        {"store/product/deleted", "{\"type\": \"product\", \"id\": 5}", "product", "5", "deleted",
         NULL, 0, NULL},
        {"store/company/created", "{\"company_id\": 1234}", "company", "1234", "created", NULL, 0,
         NULL},
        {"store/company/updated", "{\"company_id\": 1234}", "company", "1234", "updated", NULL, 0,
         NULL},
        {"store/company/deleted", "{\"company_id\": 1234}", "company", "1234", "deleted", NULL, 0,
         NULL},
        {"store/company/statusUpdated", "{\"company_id\": 1234}", "company", "1234",
         "status_changed", NULL, 0, NULL},
        {"store/company/user/created", "{\"company_id\": 123456, \"user_id\": 321}", "company_user",
         "321", "created", "company_id", 123456, NULL},
        {"store/company/user/deleted", "{\"company_id\": 123456, \"user_id\": 321}", "company_user",
         "321", "deleted", "company_id", 123456, NULL},
        {"store/company/address/updated", "{\"company_id\": 123456, \"address_id\": 1234}",
         "company_address", "1234", "updated", "company_id", 123456, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[512];
        struct ferry_err err;
        json_t *ev = NULL;
        snprintf(body, sizeof(body),
                 "{\"scope\": \"%s\", \"store_id\": \"1025646\", \"data\": %s,"
                 " \"hash\": \"0123456789abcdef0123456789abcdef01234567\","
                 " \"created_at\": 1561479335, \"producer\": \"stores/abc123\"}",
                 cases[i].scope, cases[i].data);
        if (decode(f->state, body, &ev, &err) != 0) {
            fail_msg("%s: %s", cases[i].scope, err.msg);
        }
        assert_event(ev, cases[i].object, cases[i].id, cases[i].event, cases[i].data_key,
                     cases[i].data_int, cases[i].data_str);
        json_decref(ev);
    }
    /* Members a scope needs are checked like data.id is. */
    static const char *const bad[] = {
        "{\"scope\": \"store/customer/address/created\", \"data\": {\"id\": 60}, \"hash\": \"h\"}",
        "{\"scope\": \"store/order/statusUpdated\", \"data\": {\"id\": 9}, \"hash\": \"h\"}",
        "{\"scope\": \"store/order/refund/created\", \"data\": {\"id\": 9}, \"hash\": \"h\"}",
        "{\"scope\": \"store/cart/abandoned\", \"data\": {\"id\": 12}, \"hash\": \"h\"}",
        "{\"scope\": \"store/cart/abandoned\", \"data\": {\"id\": \"x/../y\"}, \"hash\": \"h\"}",
        "{\"scope\": \"store/company/user/updated\", \"data\": {\"user_id\": 3}, \"hash\": \"h\"}",
        "{\"scope\": \"store/company/created\", \"data\": {\"companyId\": 3}, \"hash\": \"h\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ferry_err err;
        json_t *ev = NULL;
        assert_int_equal(decode(f->state, bad[i], &ev, &err), FERRY_EBADINPUT);
        assert_null(ev);
    }
}

static void test_decode_unknown_scope_is_empty(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err;
    json_t *ev = NULL;
    size_t logs = fake_host_log_count(FERRY_LOG_INFO);

    assert_int_equal(
        decode(f->state,
               "{\"scope\": \"store/sku/inventory/updated\", \"store_id\": \"1025646\","
               " \"data\": {\"type\": \"sku\", \"id\": 250},"
               " \"hash\": \"dd70c0976e06b67aaf671e73f49dcb79230ebf9d\","
               " \"created_at\": 1561479335, \"producer\": \"stores/abc123\"}",
               &ev, &err),
        0);
    assert_true(json_is_array(ev));
    assert_int_equal(json_array_size(ev), 0);
    assert_int_equal(fake_host_log_count(FERRY_LOG_INFO), logs + 1);
    assert_string_equal(fake_host_last_log(), "ignoring scope store/sku/inventory/updated");
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

/* ---- dates ------------------------------------------------------------------------------ */

static void test_time_formats_round_trip(void **ts)
{
    int64_t t = 0;
    char iso[FERRY_BC_ISO_LEN], rfc[40];
    assert_int_equal(ferry__bc_parse_rfc2822("Wed, 10 Jan 2018 21:05:30 +0000", &t), 0);
    ferry__bc_format_iso(t, iso);
    assert_string_equal(iso, "2018-01-10T21:05:30Z");
    assert_int_equal(ferry__bc_parse_rfc2822("Thu, 20 Apr 2017 11:32:00 -0400", &t), 0);
    ferry__bc_format_iso(t, iso);
    assert_string_equal(iso, "2017-04-20T15:32:00Z");
    assert_int_equal(ferry__bc_parse_iso("2022-06-16T16:44:15+00:00", &t), 0);
    ferry__bc_format_iso(t, iso);
    assert_string_equal(iso, "2022-06-16T16:44:15Z");
    assert_int_equal(ferry__bc_parse_iso("2024-05-14T09:34:00.123+02:00", &t), 0);
    ferry__bc_format_iso(t, iso);
    assert_string_equal(iso, "2024-05-14T07:34:00Z");
    assert_int_equal(ferry__bc_parse_iso("2024-02-29", &t), 0);
    ferry__bc_format_rfc2822(t, rfc, sizeof(rfc));
    assert_string_equal(rfc, "Thu, 29 Feb 2024 00:00:00 +0000");
    ferry__bc_format_rfc2822(0, rfc, sizeof(rfc));
    assert_string_equal(rfc, "Thu, 01 Jan 1970 00:00:00 +0000");
    static const char *const bad_iso[] = {
        "",          "2024-13-01",  "2023-02-29", "2024-05-14T25:00:00Z", "2024-05-14T09:34:00+0",
        "yesterday", "2024-05-14Tx"};
    for (size_t i = 0; i < sizeof(bad_iso) / sizeof(bad_iso[0]); i++) {
        assert_int_equal(ferry__bc_parse_iso(bad_iso[i], &t), FERRY_EINVAL);
    }
    assert_int_equal(ferry__bc_parse_rfc2822("Wed, 10 Foo 2018 21:05:30 +0000", &t), FERRY_EINVAL);
    assert_int_equal(ferry__bc_parse_rfc2822("2018-01-10", &t), FERRY_EINVAL);
}

/* ---- orders (v2) ------------------------------------------------------------------------ */

/* An order shaped like the v2 spec's example (our own values), status and customer variable. */
static void order_json(char *out, size_t n, int id, int status_id, int customer_id,
                       const char *modified)
{
    snprintf(
        out, n,
        "{\"id\": %d, \"customer_id\": %d, \"date_created\": \"Tue, 14 May 2024 09:00:00 +0000\","
        " \"date_modified\": \"%s\", \"date_shipped\": \"\", \"status_id\": %d,"
        " \"status\": \"Awaiting Fulfillment\", \"subtotal_ex_tax\": \"336.3200\","
        " \"total_inc_tax\": \"370.9500\", \"refunded_amount\": \"0.0000\","
        " \"currency_code\": \"USD\", \"items_total\": 2,"
        " \"billing_address\": {\"first_name\": \"Jane\", \"last_name\": \"Smith\","
        "   \"email\": \"guest@example.com\", \"country_iso2\": \"US\"},"
        " \"products\": {\"url\": "
        "\"https://api.bigcommerce.com/stores/abc123/v2/orders/%d/products\","
        "   \"resource\": \"/orders/%d/products\"},"
        " \"shipping_addresses\": {\"url\": \"x\", \"resource\": "
        "\"/orders/%d/shippingaddresses\"}}",
        id, customer_id, modified, status_id, id, id, id);
}

static const char ORDER_PRODUCTS[] =
    "[{\"id\": 64, \"order_id\": 250, \"product_id\": 77, \"name\": \"Fog Linen Chambray Towel\","
    " \"sku\": \"SLCTBS\", \"base_price\": \"49.0000\", \"price_inc_tax\": \"49.0000\","
    " \"quantity\": 2, \"type\": \"physical\"}]";
static const char ORDER_SHIPPING[] =
    "[{\"id\": 5, \"order_id\": 250, \"first_name\": \"Jane\", \"city\": \"Austin\","
    " \"country_iso2\": \"US\", \"shipping_method\": \"Flat Rate\", \"cost_inc_tax\": "
    "\"10.0000\"}]";

static void test_order_fetch_with_details_and_guest(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL;
    char order[1024];
    order_json(order, sizeof(order), 250, 11, 0, "Wed, 15 May 2024 10:00:00 +0000");
    fake_host_push(200, NULL, order);
    fake_host_push(200, NULL, ORDER_PRODUCTS);
    fake_host_push(204, NULL, NULL); /* shipping addresses: none (v2 answers 204) */

    assert_int_equal(conn->fetch(f->state, fake_host_call(), "order", "250", &rec, &err), 0);
    assert_int_equal(fake_host_nrequests(), 3);
    assert_string_equal(fake_host_request(0)->url,
                        "https://api.bigcommerce.com/stores/abc123/v2/orders/250");
    assert_string_equal(fake_host_request(1)->url,
                        "https://api.bigcommerce.com/stores/abc123/v2/orders/250/products"
                        "?page=1&limit=250");
    assert_string_equal(fake_host_request(2)->url,
                        "https://api.bigcommerce.com/stores/abc123/v2/orders/250/shipping_addresses"
                        "?page=1&limit=250");
    /* Money stays the exact decimal string; the guest's contact is the billing e-mail. */
    assert_string_equal(json_string_value(json_object_get(rec, "total_inc_tax")), "370.9500");
    assert_int_equal(json_integer_value(json_object_get(rec, "customer_id")), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(rec, "billing_address"), "email")),
        "guest@example.com");
    json_t *products = json_object_get(rec, "products");
    assert_true(json_is_array(products));
    assert_string_equal(json_string_value(json_object_get(json_array_get(products, 0), "sku")),
                        "SLCTBS");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(products, 0), "base_price")), "49.0000");
    assert_true(json_is_array(json_object_get(rec, "shipping_addresses")));
    assert_int_equal(json_array_size(json_object_get(rec, "shipping_addresses")), 0);
    json_decref(rec);
}

static void test_order_incomplete_filtered_by_config(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL;
    char order[1024];
    order_json(order, sizeof(order), 251, 0, 32, "Wed, 15 May 2024 10:00:00 +0000");
    fake_host_push(200, NULL, order);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "order", "251", &rec, &err),
                     FERRY_EFILTERED);
    assert_contains(err.msg, "include_incomplete_orders");
    assert_null(rec);

    void *incl = open_text(BASE_CONFIG ", \"include_incomplete_orders\": true}");
    fake_host_push(200, NULL, order);
    fake_host_push(200, NULL, ORDER_PRODUCTS);
    fake_host_push(200, NULL, ORDER_SHIPPING);
    fake_host_push(200, NULL, "{\"statuses\": [{\"id\": 11, \"count\": 3}], \"count\": 3}");
    assert_int_equal(conn->fetch(incl, fake_host_call(), "order", "251", &rec, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(rec, "status_id")), 0);
    assert_int_equal(json_array_size(json_object_get(rec, "shipping_addresses")), 1);
    json_decref(rec);
    conn->close(incl);

    fake_host_push(404, NULL,
                   "[{\"status\": 404, \"message\": \"The requested resource was not found.\"}]");
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "order", "9", &rec, &err),
                     FERRY_ENOTFOUND);
    assert_contains(err.msg, "not found");
}

/* A customer's order carries how many orders the buyer placed before it;
 * a guest's has no count; buyer_history = false spends no request. */
static void test_order_fetch_counts_buyer_history(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL;
    char order[1024];
    order_json(order, sizeof(order), 252, 11, 32, "Wed, 15 May 2024 10:00:00 +0000");
    fake_host_push(200, NULL, order);
    fake_host_push(200, NULL, ORDER_PRODUCTS);
    fake_host_push(204, NULL, NULL);
    fake_host_push(200, NULL, "{\"statuses\": [{\"id\": 11, \"count\": 2}], \"count\": 2}");
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "order", "252", &rec, &err), 0);
    assert_int_equal(fake_host_nrequests(), 4);
    assert_string_equal(fake_host_request(3)->url,
                        "https://api.bigcommerce.com/stores/abc123/v2/orders/count"
                        "?customer_id=32&max_id=251");
    assert_int_equal(json_integer_value(json_object_get(rec, "buyer_orders_before")), 2);
    json_decref(rec);
    rec = NULL;

    /* An answer without a count is a protocol error, not "first order". */
    fake_host_push(200, NULL, order);
    fake_host_push(200, NULL, ORDER_PRODUCTS);
    fake_host_push(204, NULL, NULL);
    fake_host_push(200, NULL, "{\"statuses\": []}");
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "order", "252", &rec, &err),
                     FERRY_EPROTO);
    assert_null(rec);

    void *off = open_text(BASE_CONFIG ", \"buyer_history\": false}");
    fake_host_reset();
    fake_host_push(200, NULL, order);
    fake_host_push(200, NULL, ORDER_PRODUCTS);
    fake_host_push(204, NULL, NULL);
    assert_int_equal(conn->fetch(off, fake_host_call(), "order", "252", &rec, &err), 0);
    assert_int_equal(fake_host_nrequests(), 3);
    assert_null(json_object_get(rec, "buyer_orders_before"));
    json_decref(rec);
    conn->close(off);
}

static void test_order_list_since_rfc2822_and_204(void **ts)
{
    struct ferry_err err = {0};
    json_t *page = NULL;
    char a[1024], b[1024], body[2200];
    void *st = open_text(BASE_CONFIG ", \"page_limit\": 2, \"order_details_in_poll\": false}");

    order_json(a, sizeof(a), 250, 0, 32, "Wed, 15 May 2024 10:00:00 +0000");
    order_json(b, sizeof(b), 251, 11, 0, "Wed, 15 May 2024 12:30:05 +0200");
    snprintf(body, sizeof(body), "[%s, %s]", a, b);
    fake_host_push(200, NULL, body);
    assert_int_equal(conn->list_changes(st, fake_host_call(), "order", "2024-05-14T09:34:00+02:00",
                                        NULL, &page, &err),
                     0);
    assert_string_equal(fake_host_request(0)->url,
                        "https://api.bigcommerce.com/stores/abc123/v2/orders"
                        "?min_date_modified=Tue%2C%2014%20May%202024%2007:34:00%20%2B0000"
                        "&sort=date_modified&limit=2&page=1");
    json_t *items = json_object_get(page, "items");
    /* The Incomplete order is dropped; the full page still has a successor. */
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "id")), "251");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "modified")),
                        "2024-05-15T10:30:05Z");
    /* The next page starts at the last date_modified read (251's), skipping 251. */
    assert_string_equal(json_string_value(json_object_get(page, "next")), "A:1715769005:0:251");
    json_decref(page);

    fake_host_push(204, NULL, NULL);
    assert_int_equal(conn->list_changes(st, fake_host_call(), "order", "2024-05-14T07:34:00Z",
                                        "A:1715769005:0:251", &page, &err),
                     0);
    assert_string_equal(fake_host_request(1)->url,
                        "https://api.bigcommerce.com/stores/abc123/v2/orders"
                        "?min_date_modified=Wed%2C%2015%20May%202024%2010:30:05%20%2B0000"
                        "&sort=date_modified&limit=2&page=1");
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);

    /* An order without a parseable date cannot carry a watermark. */
    order_json(a, sizeof(a), 252, 11, 0, "2024-05-15");
    snprintf(body, sizeof(body), "[%s]", a);
    fake_host_push(200, NULL, body);
    assert_int_equal(conn->list_changes(st, fake_host_call(), "order", NULL, NULL, &page, &err),
                     FERRY_EPROTO);
    conn->close(st);
}

static void test_order_list_reads_details(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *page = NULL;
    char a[1024], body[1200];
    order_json(a, sizeof(a), 250, 11, 32, "Wed, 15 May 2024 10:00:00 +0000");
    snprintf(body, sizeof(body), "[%s]", a);
    fake_host_push(200, NULL, body);
    fake_host_push(200, NULL, ORDER_PRODUCTS);
    fake_host_push(200, NULL, ORDER_SHIPPING);
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "order", NULL, NULL, &page, &err), 0);
    assert_int_equal(fake_host_nrequests(), 3);
    assert_string_equal(fake_host_request(0)->url,
                        "https://api.bigcommerce.com/stores/abc123/v2/orders"
                        "?sort=date_modified&limit=2&page=1");
    json_t *rec = json_object_get(json_array_get(json_object_get(page, "items"), 0), "record");
    assert_int_equal(json_array_size(json_object_get(rec, "products")), 1);
    assert_int_equal(json_array_size(json_object_get(rec, "shipping_addresses")), 1);
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);
}

/* ---- refunds, carts, addresses, products ---------------------------------------------- */

static const char REFUND_3[] =
    "{\"id\": 3, \"order_id\": 250, \"user_id\": 0, \"created\": \"2022-06-16T16:44:15+02:00\","
    " \"reason\": \"damaged\", \"total_amount\": 20.83, \"total_tax\": 0.83,"
    " \"uses_merchant_override_values\": false,"
    " \"items\": [{\"item_type\": \"PRODUCT\", \"item_id\": 64, \"quantity\": 1,"
    "   \"requested_amount\": 10}],"
    " \"payments\": [{\"id\": 3, \"provider_id\": \"braintree\", \"amount\": 20.83,"
    "   \"offline\": false, \"is_declined\": false, \"declined_message\": \"\"}]}";

static void test_refund_fetch_and_list(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL, *page = NULL;
    char *body = envelope("[{\"id\": 2, \"order_id\": 250}, "
                          "{\"id\": 3, \"order_id\": 250}]",
                          "{}");
    fake_host_push(200, NULL, body);
    free(body);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "refund", "250:3", &rec, &err), 0);
    assert_string_equal(fake_host_request(0)->url, "https://api.bigcommerce.com/stores/abc123/v3"
                                                   "/orders/250/payment_actions/refunds");
    assert_int_equal(json_integer_value(json_object_get(rec, "id")), 3);
    json_decref(rec);
    rec = NULL;
    fake_host_push(200, NULL, "{\"data\": [], \"meta\": {}}");
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "refund", "250:4", &rec, &err),
                     FERRY_ENOTFOUND);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "refund", "3", &rec, &err),
                     FERRY_EINVAL);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "refund", "250:x", &rec, &err),
                     FERRY_EINVAL);

    char data[1024];
    snprintf(data, sizeof(data), "[%s, %s]", REFUND_3, REFUND_3);
    body = envelope(data, "{}");
    fake_host_push(200, NULL, body);
    free(body);
    assert_int_equal(conn->list_changes(f->state, fake_host_call(), "refund",
                                        "2022-06-01T00:00:00+02:00", NULL, &page, &err),
                     0);
    assert_string_equal(
        fake_host_request(2)->url,
        "https://api.bigcommerce.com/stores/abc123/v3/orders/payment_actions/refunds"
        "?created:min=2022-05-31T22:00:00Z&page=1&limit=2");
    json_t *it = json_array_get(json_object_get(page, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(it, "id")), "250:3");
    assert_string_equal(json_string_value(json_object_get(it, "modified")), "2022-06-16T14:44:15Z");
    /* No pagination block: a full page may have a successor. */
    assert_string_equal(json_string_value(json_object_get(page, "next")), "2");
    json_decref(page);
}

static void test_cart_fetch_by_id_and_token(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL;
    const char *cart = "{\"data\": {\"id\": \"09346904-4175-44fd-be53-f7e598531b6c\","
                       " \"customer_id\": 0, \"email\": \"shopper@example.com\","
                       " \"currency\": {\"code\": \"USD\"}, \"cart_amount\": 49.5,"
                       " \"line_items\": {\"physical_items\": [], \"digital_items\": []}},"
                       " \"meta\": {}}";
    fake_host_push(200, NULL, cart);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "cart",
                                 "09346904-4175-44fd-be53-f7e598531b6c", &rec, &err),
                     0);
    assert_string_equal(fake_host_request(0)->url,
                        "https://api.bigcommerce.com/stores/abc123/v3/carts/"
                        "09346904-4175-44fd-be53-f7e598531b6c?include="
                        "line_items.physical_items.options,line_items.digital_items.options");
    assert_string_equal(json_string_value(json_object_get(rec, "email")), "shopper@example.com");
    json_decref(rec);
    rec = NULL;

    fake_host_push(
        200, NULL,
        "{\"data\": {\"cart_id\": \"09346904-4175-44fd-be53-f7e598531b6c\"}, \"meta\": {}}");
    fake_host_push(200, NULL, cart);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "cart",
                                 "1eed6d2d979776ff18e695ceeb10ea61", &rec, &err),
                     0);
    assert_string_equal(fake_host_request(1)->url,
                        "https://api.bigcommerce.com/stores/abc123/v3/abandoned-carts/"
                        "1eed6d2d979776ff18e695ceeb10ea61");
    assert_string_equal(json_string_value(json_object_get(rec, "id")),
                        "09346904-4175-44fd-be53-f7e598531b6c");
    json_decref(rec);
    rec = NULL;

    /* A converted cart is deleted (facts 7). */
    fake_host_push(404, NULL, "{\"status\": 404, \"title\": \"Cart not found\"}");
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "cart",
                                 "d30016e2-23c0-4a90-884f-2e92ac135476", &rec, &err),
                     FERRY_ENOTFOUND);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "cart", "../hooks", &rec, &err),
                     FERRY_EINVAL);
}

static void test_address_and_product_objects(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *rec = NULL, *page = NULL;
    char *body = envelope("[{\"id\": 60, \"customer_id\": 32, \"city\": \"Austin\"}]",
                          "{\"pagination\": {\"total\": 1, \"count\": 1, \"per_page\": 2,"
                          " \"current_page\": 1, \"total_pages\": 1}}");
    fake_host_push(200, NULL, body);
    fake_host_push(200, NULL, body);
    free(body);
    assert_int_equal(conn->fetch(f->state, fake_host_call(), "customer_address", "60", &rec, &err),
                     0);
    assert_string_equal(fake_host_request(0)->url,
                        "https://api.bigcommerce.com/stores/abc123/v3/customers/addresses"
                        "?id:in=60&include=formfields");
    assert_int_equal(json_integer_value(json_object_get(rec, "customer_id")), 32);
    json_decref(rec);
    rec = NULL;
    /* No date on addresses: the caller's since is the watermark, the cursor stays. */
    assert_int_equal(conn->list_changes(f->state, fake_host_call(), "customer_address",
                                        "2024-05-01T00:00:00Z", NULL, &page, &err),
                     0);
    json_t *it = json_array_get(json_object_get(page, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(it, "id")), "60");
    assert_string_equal(json_string_value(json_object_get(it, "modified")), "2024-05-01T00:00:00Z");
    json_decref(page);

    fake_host_push(
        200, NULL,
        "{\"data\": {\"id\": 77, \"name\": \"Fog Linen Chambray Towel\","
        " \"sku\": \"SLCTBS\", \"price\": 49, \"date_modified\": \"2024-05-14T09:34:00+00:00\","
        " \"description\": \"long text we do not need\"}, \"meta\": {}}");
    void *eur = open_text(BASE_CONFIG ", \"store_currency\": \"EUR\"}");
    assert_int_equal(conn->fetch(eur, fake_host_call(), "product", "77", &rec, &err), 0);
    assert_string_equal(fake_host_request(2)->url,
                        "https://api.bigcommerce.com/stores/abc123/v3/catalog/products/77"
                        "?include_fields=sku,name,price,date_modified");
    assert_string_equal(json_string_value(json_object_get(rec, "sku")), "SLCTBS");
    assert_string_equal(json_string_value(json_object_get(rec, "currency")), "EUR");
    assert_int_equal(json_integer_value(json_object_get(rec, "price")), 49);
    assert_null(json_object_get(rec, "description"));
    json_decref(rec);
    conn->close(eur);
}

/* ---- B2B Edition ------------------------------------------------------------------------ */

static void test_b2b_companies_users_addresses(void **ts)
{
    struct ferry_err err = {0};
    json_t *rec = NULL, *page = NULL;
    void *st =
        open_text(BASE_CONFIG ", \"page_limit\": 2, \"api_b2b_base\": \"http://b2b.test/\"}");
    fake_host_push(200, "X-Requests-Remaining: 149\nX-Request-Window-Resets-After: 59.5\n",
                   "{\"code\": 200, \"data\": ["
                   "{\"companyId\": 11, \"companyName\": \"Acme\", \"companyStatus\": \"1\","
                   " \"updatedAt\": 1620872672, \"extraFields\": [{\"fieldName\": \"tax\","
                   "   \"fieldValue\": \"G\"}]},"
                   "{\"companyId\": 12, \"companyName\": \"Beta\", \"companyStatus\": \"3\","
                   " \"updatedAt\": \"1620872700\"}],"
                   " \"meta\": {\"message\": \"SUCCESS\", \"pagination\": {\"limit\": 2,"
                   " \"offset\": 0, \"totalCount\": 3}}}");
    assert_int_equal(conn->list_changes(st, fake_host_call(), "company", "2021-05-13T02:24:32Z",
                                        NULL, &page, &err),
                     0);
    const struct fake_request *r = fake_host_request(0);
    assert_string_equal(r->url, "http://b2b.test/api/v3/io/companies?minModified=1620872671"
                                "&sortBy=updatedAt&orderBy=ASC&isIncludeExtraFields=1&limit=2"
                                "&offset=0");
    assert_string_equal(fake_request_header(r, "X-Auth-Token"), TOKEN);
    assert_string_equal(fake_request_header(r, "X-Store-Hash"), "abc123");
    json_t *items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "id")), "11");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "modified")),
                        "2021-05-13T02:24:32Z");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 1), "modified")),
                        "2021-05-13T02:25:00Z");
    assert_string_equal(json_string_value(json_object_get(page, "next")), "A:1620872700:0:12");
    json_decref(page);

    fake_host_push(200, NULL,
                   "{\"code\": 200, \"data\": {\"id\": 321, \"customerId\": 32, \"companyId\": 11,"
                   " \"email\": \"buyer@acme.test\", \"role\": 1, \"updatedAt\": 1574999690},"
                   " \"meta\": {\"message\": \"SUCCESS\"}}");
    assert_int_equal(conn->fetch(st, fake_host_call(), "company_user", "321", &rec, &err), 0);
    assert_string_equal(fake_host_request(1)->url, "http://b2b.test/api/v3/io/users/321");
    assert_int_equal(json_integer_value(json_object_get(rec, "customerId")), 32);
    json_decref(rec);
    rec = NULL;

    fake_host_push(404, NULL,
                   "{\"code\": 404, \"data\": {\"errMsg\": \"address not found\"},"
                   " \"meta\": {\"message\": \"Not Found\"}}");
    assert_int_equal(conn->fetch(st, fake_host_call(), "company_address", "9", &rec, &err),
                     FERRY_ENOTFOUND);
    assert_contains(err.msg, "address not found");
    assert_string_equal(fake_host_request(2)->url, "http://b2b.test/api/v3/io/addresses/9");

    fake_host_push(200, NULL,
                   "{\"code\": 200, \"data\": [{\"addressId\": 5, \"companyId\": 11,"
                   " \"updatedAt\": 1622619778}], \"meta\": {\"pagination\": {\"limit\": 2,"
                   " \"offset\": 2, \"totalCount\": 3}}}");
    assert_int_equal(
        conn->list_changes(st, fake_host_call(), "company_address", NULL, "2", &page, &err), 0);
    assert_string_equal(fake_host_request(3)->url, "http://b2b.test/api/v3/io/addresses"
                                                   "?isIncludeExtraFields=1&limit=2&offset=2");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(page, "items"), 0), "id")),
        "5");
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);
    conn->close(st);
}

/* ---- quota governor and 429 ------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const char EMPTY_CUSTOMERS[] =
    "{\"data\": [], \"meta\": {\"pagination\": {\"total\": 0, \"count\": 0, \"per_page\": 2,"
    " \"current_page\": 1, \"total_pages\": 0}}}";

static void test_quota_waits_for_reset_when_used_up(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *page = NULL;
    int64_t t0;
    /* The last request of the window: the next one must wait for the reset (80 ms). */
    fake_host_push(200,
                   "X-Rate-Limit-Requests-Left: 0\nX-Rate-Limit-Time-Reset-Ms: 80\n"
                   "X-Rate-Limit-Time-Window-Ms: 30000\nX-Rate-Limit-Requests-Quota: 150\n",
                   EMPTY_CUSTOMERS);
    fake_host_push(200, "X-Rate-Limit-Requests-Left: 149\nX-Rate-Limit-Time-Reset-Ms: 30000\n",
                   EMPTY_CUSTOMERS);
    fake_host_push(200, "X-Rate-Limit-Requests-Left: 148\nX-Rate-Limit-Time-Reset-Ms: 29990\n",
                   EMPTY_CUSTOMERS);
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err), 0);
    json_decref(page);
    t0 = mono_ms();
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err), 0);
    json_decref(page);
    int64_t waited = mono_ms() - t0;
    if (waited < 70) {
        fail_msg("second request went out after %lld ms, before the 80 ms reset",
                 (long long)waited);
    }
    /* Quota left again: no wait. */
    t0 = mono_ms();
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err), 0);
    json_decref(page);
    assert_true(mono_ms() - t0 < 70);
    assert_int_equal(fake_host_nrequests(), 3);
}

/* A window shorter than a second: the first answer of the next window is a
 * new window, not the old one's, even if it comes before the old end as the
 * client saw it; so the window's end moves on and no probe meets it used up. */
static void test_quota_short_windows_are_told_apart(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *page = NULL;
    int64_t t0;
    /* Old window: one left, 100 ms to go. */
    fake_host_push(200, "X-Rate-Limit-Requests-Left: 1\nX-Rate-Limit-Time-Reset-Ms: 100\n",
                   EMPTY_CUSTOMERS);
    /* The store's window rolled already: a new one of 500 ms, 39 left. */
    fake_host_push(200, "X-Rate-Limit-Requests-Left: 39\nX-Rate-Limit-Time-Reset-Ms: 500\n",
                   EMPTY_CUSTOMERS);
    /* Used up, 460 ms to go: the next request must wait for that, not for the old end. */
    fake_host_push(200, "X-Rate-Limit-Requests-Left: 0\nX-Rate-Limit-Time-Reset-Ms: 460\n",
                   EMPTY_CUSTOMERS);
    fake_host_push(200, "X-Rate-Limit-Requests-Left: 39\nX-Rate-Limit-Time-Reset-Ms: 500\n",
                   EMPTY_CUSTOMERS);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err), 0);
        json_decref(page);
    }
    t0 = mono_ms();
    assert_int_equal(
        conn->list_changes(f->state, fake_host_call(), "customer", NULL, NULL, &page, &err), 0);
    json_decref(page);
    int64_t waited = mono_ms() - t0;
    if (waited < 400) {
        fail_msg("the request after a used-up short window went out after %lld ms, before its "
                 "460 ms reset",
                 (long long)waited);
    }
    assert_int_equal(fake_host_nrequests(), 4);
}

static void test_ratelimit_429_retried_once(void **ts)
{
    struct ferry_err err = {0};
    json_t *page = NULL;
    int64_t t0;
    void *st = open_text(BASE_CONFIG ", \"ratelimit_fallback_ms\": 20}");

    /* 429, wait the announced reset, retry: success, one 429 spent. */
    fake_host_push(429, "X-Rate-Limit-Requests-Left: 0\nX-Rate-Limit-Time-Reset-Ms: 60\n",
                   "{\"status\": 429, \"title\": \"Too many requests\"}");
    fake_host_push(200, "X-Rate-Limit-Requests-Left: 149\nX-Rate-Limit-Time-Reset-Ms: 30000\n",
                   EMPTY_CUSTOMERS);
    t0 = mono_ms();
    assert_int_equal(conn->list_changes(st, fake_host_call(), "customer", NULL, NULL, &page, &err),
                     0);
    assert_true(mono_ms() - t0 >= 50);
    assert_int_equal(fake_host_nrequests(), 2);
    assert_string_equal(fake_host_request(0)->url, fake_host_request(1)->url);
    json_decref(page);
    page = NULL;

    static const struct {
        const char *headers;
        int64_t retry_ms;
    } cases[] = {
        {"X-Rate-Limit-Time-Reset-Ms: 45\nX-Retry-After: 9\n", 45},
        {"X-Request-Window-Resets-After: 0.03\n", 30},
        {NULL, 20}, /* no headers at all: platform-wide limit, fallback delay */
        {"X-Rate-Limit-Time-Reset-Ms: soon\n", 20},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_host_push(429, cases[i].headers, "");
        fake_host_push(429, cases[i].headers, "");
        memset(&err, 0, sizeof(err));
        assert_int_equal(
            conn->list_changes(st, fake_host_call(), "customer", NULL, NULL, &page, &err),
            FERRY_ERATELIMIT);
        assert_int_equal(err.retry_after_ms, cases[i].retry_ms);
        assert_contains(err.msg, "429");
        assert_null(page);
    }
    assert_int_equal(fake_host_pending(), 0);
    conn->close(st);
}

/* ---- sync_webhooks ---------------------------------------------------------------------- */

#define HOOK_URL "https://ferry.example.com/webhooks/bigcommerce"

static void test_sync_webhooks_report_and_apply(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *report = NULL;
    json_t *needs = json_loads(
        "[{\"object\": \"customer\", \"events\": [\"created\", \"updated\"]},"
        " {\"object\": \"order\", \"events\": [\"status_changed\"]},"
        " {\"object\": \"cart\"}, {\"object\": \"order\", \"events\": [\"teleported\"]}]",
        0, NULL);
    const char *hooks_page1 =
        "{\"data\": ["
        "{\"id\": 1, \"scope\": \"store/customer/created\", \"destination\": \"" HOOK_URL "\","
        " \"is_active\": true, \"headers\": {\"X-Ferry-Secret\": \"" SECRET "\"}},"
        "{\"id\": 2, \"scope\": \"store/customer/address/*\", \"destination\": \"" HOOK_URL "\","
        " \"is_active\": false}],"
        " \"meta\": {\"pagination\": {\"total\": 3, \"count\": 2, \"per_page\": 2,"
        " \"current_page\": 1, \"total_pages\": 2}}}";
    const char *hooks_page2 =
        "{\"data\": ["
        "{\"id\": 3, \"scope\": \"store/product/updated\", \"destination\": "
        "\"https://old.example\","
        " \"is_active\": true}],"
        " \"meta\": {\"pagination\": {\"total\": 3, \"count\": 1, \"per_page\": 2,"
        " \"current_page\": 2, \"total_pages\": 2}}}";
    assert_non_null(needs);

    fake_host_push(200, NULL, hooks_page1);
    fake_host_push(200, NULL, hooks_page2);
    assert_int_equal(
        conn->sync_webhooks(f->state, fake_host_call(), needs, HOOK_URL, 0, &report, &err), 0);
    assert_int_equal(fake_host_nrequests(), 2);
    assert_string_equal(fake_host_request(0)->url,
                        "https://api.bigcommerce.com/stores/abc123/v3/hooks?page=1&limit=250");
    assert_true(fake_host_request(0)->flags & FERRY_HTTP_NO_AUDIT_BODY);
    /* Expected: teleported failed; created ok; updated missing; 3 address scopes inactive (hook
     * 2); statusUpdated missing; abandoned missing; hook 3 extra. */
    static const struct {
        const char *scope;
        const char *state;
    } want[] = {
        {"order:teleported", "failed"},
        {"store/customer/created", "ok"},
        {"store/customer/updated", "missing"},
        {"store/customer/address/created", "inactive"},
        {"store/customer/address/updated", "inactive"},
        {"store/customer/address/deleted", "inactive"},
        {"store/order/statusUpdated", "missing"},
        {"store/cart/abandoned", "missing"},
        {"store/product/updated", "extra"},
    };
    assert_int_equal(json_array_size(report), sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        json_t *el = json_array_get(report, i);
        if (strcmp(json_string_value(json_object_get(el, "scope")), want[i].scope) != 0 ||
            strcmp(json_string_value(json_object_get(el, "state")), want[i].state) != 0) {
            fail_msg("report[%zu] = %s %s, want %s %s", i,
                     json_string_value(json_object_get(el, "scope")),
                     json_string_value(json_object_get(el, "state")), want[i].scope, want[i].state);
        }
    }
    json_decref(report);
    report = NULL;

    /* apply: one POST per missing scope, one PUT per inactive match, secret in the headers. */
    fake_host_reset();
    fake_host_push(200, NULL, hooks_page1);
    fake_host_push(200, NULL, hooks_page2);
    fake_host_push(200, NULL, "{\"data\": {\"id\": 10, \"scope\": \"store/customer/updated\"}}");
    for (int i = 0; i < 3; i++) {
        fake_host_push(200, NULL, "{\"data\": {\"id\": 2, \"is_active\": true}}");
    }
    fake_host_push(422, NULL, "{\"status\": 422, \"title\": \"Duplicate webhook\"}");
    fake_host_push(200, NULL, "{\"data\": {\"id\": 12, \"scope\": \"store/cart/abandoned\"}}");
    assert_int_equal(
        conn->sync_webhooks(f->state, fake_host_call(), needs, HOOK_URL, 1, &report, &err), 0);
    assert_int_equal(fake_host_nrequests(), 8);
    const struct fake_request *post = fake_host_request(2);
    assert_string_equal(post->method, "POST");
    assert_string_equal(post->url, "https://api.bigcommerce.com/stores/abc123/v3/hooks");
    assert_true(post->flags & FERRY_HTTP_NO_AUDIT_BODY);
    assert_string_equal(fake_request_header(post, "Content-Type"), "application/json");
    json_t *body = json_loads(post->body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "scope")),
                        "store/customer/updated");
    assert_string_equal(json_string_value(json_object_get(body, "destination")), HOOK_URL);
    assert_true(json_is_true(json_object_get(body, "is_active")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(body, "headers"), "X-Ferry-Secret")),
        SECRET);
    json_decref(body);
    const struct fake_request *put = fake_host_request(3);
    assert_string_equal(put->method, "PUT");
    assert_string_equal(put->url, "https://api.bigcommerce.com/stores/abc123/v3/hooks/2");
    body = json_loads(put->body, 0, NULL);
    assert_true(json_is_true(json_object_get(body, "is_active")));
    json_decref(body);
    assert_string_equal(json_string_value(json_object_get(json_array_get(report, 2), "state")),
                        "created");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(report, 2), "id")), 10);
    assert_string_equal(json_string_value(json_object_get(json_array_get(report, 3), "state")),
                        "reactivated");
    assert_string_equal(json_string_value(json_object_get(json_array_get(report, 6), "state")),
                        "failed");
    assert_contains(json_string_value(json_object_get(json_array_get(report, 6), "detail")),
                    "Duplicate webhook");
    assert_string_equal(json_string_value(json_object_get(json_array_get(report, 7), "state")),
                        "created");
    json_decref(report);
    json_decref(needs);
}

/* Customers are written (tests/unit/test_bigcommerce_write.c); every other object is not. */
static void test_lookup_and_write_unsupported(void **ts)
{
    struct fixture *f = *ts;
    struct ferry_err err = {0};
    json_t *out = NULL;
    json_t *fields = json_pack("{s:s}", "status", "shipped");
    struct ferry_write w = {
        .op = FERRY_WRITE_UPDATE, .object = "order", .id = "250", .fields = fields};

    assert_int_equal(
        conn->lookup(f->state, fake_host_call(), "order", "email", "a@example.com", &out, &err),
        FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "lookup");
    assert_int_equal(conn->write(f->state, fake_host_call(), &w, &out, &err), FERRY_EUNSUPPORTED);
    assert_contains(err.msg, "order");
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
        T(test_list_changes_hands_on_record_texts),
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
        T(test_decode_every_scope_inline),
        T(test_decode_unknown_scope_is_empty),
        T(test_decode_rejects_bad_payloads),
        T(test_lookup_and_write_unsupported),
        T(test_time_formats_round_trip),
        T(test_order_fetch_with_details_and_guest),
        T(test_order_incomplete_filtered_by_config),
        T(test_order_fetch_counts_buyer_history),
        T(test_order_list_since_rfc2822_and_204),
        T(test_order_list_reads_details),
        T(test_refund_fetch_and_list),
        T(test_cart_fetch_by_id_and_token),
        T(test_address_and_product_objects),
        T(test_b2b_companies_users_addresses),
        T(test_quota_waits_for_reset_when_used_up),
        T(test_quota_short_windows_are_told_apart),
        T(test_ratelimit_429_retried_once),
        T(test_sync_webhooks_report_and_apply),
    };
#undef T
    return cmocka_run_group_tests_name("plugin.bigcommerce", tests, NULL, NULL);
}
