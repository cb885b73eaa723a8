/* SPDX-License-Identifier: MIT */
/* Log tests: one JSON object per line, level filter, thread context. */
/* cmocka needs these first, in this order. */
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

#include "log.h"

/* Module-level so that the stream's buffer outlives capture(). */
static char *captured;
static size_t captured_len;

static char *capture(void (*fn)(void))
{
    FILE *f = open_memstream(&captured, &captured_len);
    assert_non_null(f);
    ferry_log_set_sink(f);
    fn();
    ferry_log_set_sink(NULL);
    fclose(f);
    char *out = captured;
    captured = NULL;
    return out;
}

static void write_two(void)
{
    struct ferry_log_ctx ctx = {.correlation_id = "abc",
                                .connector = "shop",
                                .object = "customer",
                                .id = "42",
                                .job_id = 7};
    ferry_log_set_level(FERRY_LOG_INFO);
    ferry_log_ctx_set(&ctx);
    ferry_info("hello %d", 1);
    ferry_debug("not shown");
    ferry_log_ctx_clear();
    ferry_warn("second \"quoted\"");
}

static void test_log_json_lines_with_context(void **state)
{
    char *out = capture(write_two);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    json_t *a = json_loads(out, 0, NULL);
    json_t *b = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(a, "msg")), "hello 1");
    assert_string_equal(json_string_value(json_object_get(a, "correlation_id")), "abc");
    assert_string_equal(json_string_value(json_object_get(a, "connector")), "shop");
    assert_string_equal(json_string_value(json_object_get(a, "id")), "42");
    assert_int_equal(json_integer_value(json_object_get(a, "job")), 7);
    assert_string_equal(json_string_value(json_object_get(b, "msg")), "second \"quoted\"");
    assert_null(json_object_get(b, "correlation_id"));
    assert_null(strstr(nl + 1, "not shown"));
    json_decref(a);
    json_decref(b);
    free(out);
}

static void test_log_level_parse(void **state)
{
    int level = -1;
    assert_int_equal(ferry_log_level_parse("DEBUG", &level), 0);
    assert_int_equal(level, FERRY_LOG_DEBUG);
    assert_int_not_equal(ferry_log_level_parse("loud", &level), 0);
    assert_string_equal(ferry_log_level_name(FERRY_LOG_WARN), "warn");
}

/* For a person at a terminal: what the line is about first, the job's ids last. */
static void test_log_text_format(void **state)
{
    ferry_log_set_format(FERRY_LOG_TEXT);
    uint64_t before = ferry_log_lines_written();
    char *out = capture(write_two);
    ferry_log_set_format(FERRY_LOG_JSON);
    assert_true(ferry_log_lines_written() == before + 2);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    /* "2024-05-01T10:00:00.123Z info  shop customer 42: hello 1 [job 7, correlation abc]" */
    assert_int_equal(out[4], '-');
    assert_int_equal(out[23], 'Z');
    assert_string_equal(out + 24, " info  shop customer 42: hello 1 [job 7, correlation abc]");
    assert_string_equal(nl + 25, " warn  second \"quoted\"\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_json_lines_with_context),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_text_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
