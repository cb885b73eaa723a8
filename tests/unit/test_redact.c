/* SPDX-License-Identifier: MIT */
/*
 * Tests for the redaction layer (core/src/redact.c): secrets, masked and
 * hashed fields in every shape a sink holds (JSON, JSON inside a string,
 * XML, OData filters, query strings), e-mail addresses in free text, hash
 * tokens that stay comparable across shapes, and the layer on each sink the
 * core writes: log lines, audit rows, dead-letter reasons, metrics labels.
 */
/* cmocka 1.1.5 needs these four first, in this order, so keep the formatter off them. */
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

#include "log.h"
#include "metrics.h"
#include "redact.h"
#include "store.h"
#include "util.h"

static const char *const secrets[] = {"s3cr3t-token", "hunter2"};
static const char *const masked[] = {"email", "street"};
static const char *const hashed[] = {"phone"};

static const struct ferry_redact_policy policy = {
    .secrets = secrets,
    .nsecrets = 2,
    .mask_fields = masked,
    .nmask = 2,
    .hash_fields = hashed,
    .nhash = 1,
    .emails = FERRY_PII_MASK,
};

/* The token for `value` (already lower-case, decoded) with no salt. */
static void token(const char *value, char out[22])
{
    char hex[FERRY_SHA256_HEX_LEN + 1];
    ferry_sha256_hex(value, strlen(value), hex);
    snprintf(out, 22, "hash:%.16s", hex);
}

static void expect(const struct ferry_redact_policy *p, const char *in, const char *want)
{
    char *got = ferry_redact_text_with(p, in);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static int teardown_policy(void **state)
{
    (void)state;
    assert_int_equal(ferry_redact_configure(NULL), 0);
    return 0;
}

static void test_redact_secrets_always(void **state)
{
    struct ferry_redact_policy only = {.secrets = secrets, .nsecrets = 2};
    expect(&only, "Authorization: Bearer s3cr3t-token; pw=hunter2",
           "Authorization: Bearer [REDACTED]; pw=[REDACTED]");
    expect(&only, "nothing here", "nothing here");
}

static void test_redact_json_members(void **state)
{
    char tok[22];
    char want[256];
    token("+1 555 0100", tok);
    snprintf(want, sizeof(want),
             "{\"Email\":\"[MASKED]\",\"email\": \"[MASKED]\",\"name\":\"Bob\",\"phone\":\"%s\","
             "\"Street\":null}",
             tok);
    expect(&policy,
           "{\"Email\":\"bob@example.com\",\"email\": \"BOB@example.com\",\"name\":\"Bob\","
           "\"phone\":\"+1 555 0100\",\"Street\":null}",
           want);
    /* A bare scalar becomes a quoted token, so the document stays JSON. */
    token("5550100", tok);
    snprintf(want, sizeof(want), "{\"phone\":\"%s\",\"n\":1}", tok);
    expect(&policy, "{\"phone\":5550100,\"n\":1}", want);
    /* A field name is matched whole: "mail" is not "email". */
    struct ferry_redact_policy mail = {.mask_fields = (const char *const[]){"mail"}, .nmask = 1};
    expect(&mail, "{\"email\":\"x\",\"emails\":\"y\"}", "{\"email\":\"x\",\"emails\":\"y\"}");
    /* JSON held in a JSON string (a body logged inside a message). */
    expect(&policy, "{\"body\":\"{\\\"email\\\":\\\"bob@x.org\\\"}\"}",
           "{\"body\":\"{\\\"email\\\":\\\"[MASKED]\\\"}\"}");
    /* Escapes inside the value are part of the value. */
    expect(&policy, "{\"street\":\"Main \\\"1\\\" St\",\"z\":2}",
           "{\"street\":\"[MASKED]\",\"z\":2}");
}

static void test_redact_xml_odata_query(void **state)
{
    expect(&policy, "<m:properties><d:Email>bob@example.com</d:Email><d:City>X</d:City>",
           "<m:properties><d:Email>[MASKED]</d:Email><d:City>X</d:City>");
    expect(&policy, "<Email type=\"work\">bob@example.com</Email><Email/>",
           "<Email type=\"work\">[MASKED]</Email><Email/>");
    expect(&policy, "ContactCollection?$filter=Email%20eq%20%27bob%40example.com%27&$top=2",
           "ContactCollection?$filter=Email%20eq%20%27[MASKED]%27&$top=2");
    expect(&policy, "$filter=tolower(Email) eq 'bob@example.com'",
           "$filter=tolower(Email) eq '[MASKED]'");
    expect(&policy, "/v3/customers?email:in=bob%40example.com&page=2",
           "/v3/customers?email:in=[MASKED]&page=2");
    expect(&policy, "email=bob@example.com&x=1", "email=[MASKED]&x=1");
}

/* One person's number hashes alike in a JSON body and in a URL. */
static void test_redact_hash_comparable_and_salted(void **state)
{
    char tok[22];
    char want[128];
    token("jane@example.com", tok);
    struct ferry_redact_policy h = {.hash_fields = (const char *const[]){"email"}, .nhash = 1};
    snprintf(want, sizeof(want), "{\"email\":\"%s\"}", tok);
    expect(&h, "{\"email\":\" Jane@Example.com \"}", want);
    snprintf(want, sizeof(want), "?email=%s", tok);
    expect(&h, "?email=jane%40example.com", want);
    h.hash_salt = "pepper";
    char *salted = ferry_redact_text_with(&h, "{\"email\":\"jane@example.com\"}");
    assert_non_null(salted);
    assert_null(strstr(salted, tok));
    assert_non_null(strstr(salted, "hash:"));
    free(salted);
}

static void test_redact_emails_in_free_text(void **state)
{
    expect(&policy, "HTTP 400: Email jane.doe+x@example.co.uk is invalid.",
           "HTTP 400: Email [MASKED] is invalid.");
    expect(&policy, "write to a@b.org.", "write to [MASKED].");
    expect(&policy, "user@localhost and @handle stay", "user@localhost and @handle stay");
    expect(&policy, "q=jane%40example.com", "q=[MASKED]");
    struct ferry_redact_policy hash = {.emails = FERRY_PII_HASH};
    char tok[22], want[64];
    token("a@b.org", tok);
    snprintf(want, sizeof(want), "to %s now", tok);
    expect(&hash, "to A@B.org now", want);
}

static void test_redact_global_policy(void **state)
{
    assert_false(ferry_redact_active());
    char *t = ferry_redact_text("hunter2");
    assert_string_equal(t, "hunter2");
    free(t);
    assert_int_equal(ferry_redact_configure(&policy), 0);
    assert_true(ferry_redact_active());
    t = ferry_redact_text("pw hunter2 <d:Email>a@b.c</d:Email>");
    assert_string_equal(t, "pw [REDACTED] <d:Email>[MASKED]</d:Email>");
    free(t);
    assert_null(ferry_redact_text(NULL));
    assert_int_equal(ferry_redact_configure(NULL), 0);
    assert_false(ferry_redact_active());
}

/* ---- every sink ---- */

static char *captured;
static size_t captured_len;

static void test_redact_sink_log(void **state)
{
    assert_int_equal(ferry_redact_configure(&policy), 0);
    FILE *f = open_memstream(&captured, &captured_len);
    assert_non_null(f);
    ferry_log_set_sink(f);
    ferry_log_set_level(FERRY_LOG_INFO);
    ferry_error("rejected: {\"email\":\"bob@example.com\"} with token s3cr3t-token");
    ferry_log_set_format(FERRY_LOG_TEXT);
    ferry_warn("mail jane@example.com");
    ferry_log_set_format(FERRY_LOG_JSON);
    ferry_log_set_sink(NULL);
    fclose(f);
    assert_null(strstr(captured, "bob@example.com"));
    assert_null(strstr(captured, "jane@example.com"));
    assert_null(strstr(captured, "s3cr3t-token"));
    assert_non_null(strstr(captured, "[MASKED]"));
    assert_non_null(strstr(captured, "[REDACTED]"));
    assert_non_null(strstr(captured, "mail [MASKED]"));
    free(captured);
    captured = NULL;
}

static void test_redact_sink_audit_and_dead_letters(void **state)
{
    char dir[] = "/tmp/ferry-test-redact-XXXXXX";
    char path[128];
    struct ferry_store *s = NULL;
    struct ferry_err err = {0};
    struct ferry_job *job = NULL;
    json_t *rows = NULL;
    int64_t id = 0;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/state.db", dir);
    assert_int_equal(ferry_redact_configure(&policy), 0);
    assert_int_equal(ferry_store_open(&s, path, &err), 0);
    struct ferry_job_new jn = {.job_key = "shop:customer:1",
                               .kind = "sync",
                               .payload = "{}",
                               .correlation_id = "c1",
                               .now_ms = 1};
    assert_int_equal(ferry_store_job_enqueue(s, &jn, &id, NULL, &err), 0);
    struct ferry_audit_row row = {
        .job_id = id,
        .correlation_id = "c1",
        .connector = "crm",
        .step = "http",
        .method = "GET",
        .url = "https://crm/ContactCollection?$filter=Email%20eq%20%27bob%40example.com%27",
        .status = 200,
        .request = "X-Auth: s3cr3t-token",
        .response = "{\"d\":{\"results\":[{\"Email\":\"bob@example.com\",\"Phone\":\"1\"}]}}",
        .detail = "looked up bob@example.com",
        .at_ms = 2,
    };
    assert_int_equal(ferry_store_audit_add(s, &row, &err), 0);
    assert_int_equal(
        ferry_store_job_bury(s, id, 3, "EVALIDATION: Email bob@example.com: hunter2", &err), 0);
    assert_int_equal(ferry_store_audit_for_job(s, id, &rows, &err), 0);
    char *text = json_dumps(rows, JSON_COMPACT);
    assert_non_null(text);
    assert_null(strstr(text, "bob@example.com"));
    assert_null(strstr(text, "bob%40example.com"));
    assert_null(strstr(text, "s3cr3t-token"));
    assert_non_null(strstr(text, "Email%20eq%20%27[MASKED]%27"));
    assert_non_null(strstr(text, "looked up [MASKED]"));
    free(text);
    json_decref(rows);
    assert_int_equal(ferry_store_job_get(s, id, &job, &err), 0);
    assert_string_equal(job->last_error, "EVALIDATION: Email [MASKED]: [REDACTED]");
    ferry_job_free(job);
    ferry_store_close(s);
    unlink(path);
    snprintf(path, sizeof(path), "%s/state.db-wal", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/state.db-shm", dir);
    unlink(path);
    rmdir(dir);
}

static void test_redact_sink_metrics_labels(void **state)
{
    assert_int_equal(ferry_redact_configure(&policy), 0);
    struct ferry_metrics *m = NULL;
    assert_int_equal(ferry_metrics_new(&m), 0);
    assert_int_equal(ferry_metrics_declare(m, "t_total", FERRY_METRIC_COUNTER, "t", NULL, 0), 0);
    ferry_metrics_add(m, "t_total", 1, "scope", "hook-s3cr3t-token", NULL);
    char *text = ferry_metrics_render(m);
    assert_non_null(text);
    assert_null(strstr(text, "s3cr3t-token"));
    assert_non_null(strstr(text, "t_total{scope=\"hook-[REDACTED]\"} 1\n"));
    free(text);
    /* The series is still found by the caller's own value. */
    assert_true(ferry_metrics_value(m, "t_total", "scope", "hook-s3cr3t-token", NULL) == 1.0);
    ferry_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact_secrets_always),
        cmocka_unit_test(test_redact_json_members),
        cmocka_unit_test(test_redact_xml_odata_query),
        cmocka_unit_test(test_redact_hash_comparable_and_salted),
        cmocka_unit_test(test_redact_emails_in_free_text),
        cmocka_unit_test_teardown(test_redact_global_policy, teardown_policy),
        cmocka_unit_test_teardown(test_redact_sink_log, teardown_policy),
        cmocka_unit_test_teardown(test_redact_sink_audit_and_dead_letters, teardown_policy),
        cmocka_unit_test_teardown(test_redact_sink_metrics_labels, teardown_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
