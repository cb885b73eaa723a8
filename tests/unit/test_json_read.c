/* SPDX-License-Identifier: MIT */
/*
 * JSON reader tests: on any text, ferry_json_loadb gives what json_loadb
 * gives, the same tree (types, key order, values) or the same error report.
 */
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

#include "json_read.h"
#include "random_json.h"
#include "util.h"

/* Insertion order, exact reals and types all show in this text. */
static char *exact_text(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
}

static void assert_reads_like_jansson_flags(const char *buf, size_t len, size_t flags)
{
    json_error_t e1, e2;
    memset(&e1, 0x5a, sizeof(e1));
    memset(&e2, 0x5a, sizeof(e2));
    json_t *mine = ferry_json_loadb(buf, len, flags, &e1);
    json_t *theirs = json_loadb(buf, len, flags, &e2);
    if (!theirs) {
        assert_null(mine);
        assert_string_equal(e1.text, e2.text);
        assert_string_equal(e1.source, e2.source);
        assert_int_equal(e1.line, e2.line);
        assert_int_equal(e1.column, e2.column);
        assert_int_equal(e1.position, e2.position);
        return;
    }
    assert_non_null(mine);
    assert_int_equal(json_typeof(mine), json_typeof(theirs));
    assert_true(json_equal(mine, theirs));
    char *a = exact_text(mine), *b = exact_text(theirs);
    assert_non_null(a);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(mine);
    json_decref(theirs);
}

static void assert_reads_like_jansson(const char *text)
{
    assert_reads_like_jansson_flags(text, strlen(text), 0);
    assert_reads_like_jansson_flags(text, strlen(text), JSON_DECODE_ANY);
    assert_reads_like_jansson_flags(text, strlen(text), JSON_REJECT_DUPLICATES);
}

static void test_json_read_every_type_as_jansson(void **state)
{
    const char *docs[] = {
        "{}",
        "[]",
        " \t\r\n[ 1 , -2 ,0,-0, 9223372036854775807, -9223372036854775808 ]\n",
        "[1.5, -0.25, 1e3, 1E-3, 2.5e+10, 0.1, 123456789.123456789, 4.9e-324, 1e-400]",
        "[true, false, null, \"\", \"x\"]",
        "{\"a\": {\"b\": [1, {\"c\": null}]}, \"d\": \"e\"}",
        "{\"z\": 1, \"a\": 2, \"m\": 3}",
        "{\"a\": 1, \"b\": 2, \"a\": 3}",
        "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
        "[\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00 tail\"]",
        "{\"k\\u00e9y\": \"v\\n\", \"plain\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
        "[\"\x7f\"]",
        "[[[[[[[[[[]]]]]]]]]]",
        ("{\"id\": 1, \"email\": \"customer0001@example.com\", \"authentication\": "
         "{\"force_password_reset\": false}, \"channel_ids\": null, \"addresses\": []}"),
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        assert_reads_like_jansson(docs[i]);
    }
}

static void test_json_read_errors_reported_by_jansson(void **state)
{
    const char *bad[] = {
        "",
        "   ",
        "[",
        "]",
        "[1,]",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{1:2}",
        "{\"a\" 1}",
        "[1 2]",
        "01",
        "[01]",
        "[1.]",
        "[1.e5]",
        "[.5]",
        "[-]",
        "[-a]",
        "[1e]",
        "[1e+]",
        "[+1]",
        "[9223372036854775808]",
        "[-9223372036854775809]",
        "[99999999999999999999999]",
        "[1e999]",
        "[-1e999]",
        "[tru]",
        "[truex]",
        "[true1]",
        "[nul]",
        "[NULL]",
        "[\"abc]",
        "[\"a\nb\"]",
        "[\"a\x01\"]",
        "[\"\\u0000\"]",
        "{\"\\u0000\": 1}",
        "[\"\\x\"]",
        "[\"\\u12\"]",
        "[\"\\u12G4\"]",
        "[\"\\ud83d\"]",
        "[\"\\ud83dx\"]",
        "[\"\\ud83d\\u0041\"]",
        "[\"\\ude00\"]",
        "[\"\xff\"]",
        "[\"\xc0\xaf\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xf4\x90\x80\x80\"]",
        "[\"\xe2\x82\"]",
        "[\"\xe0\x80\x80\"]",
        "[\"\xf0\x80\x80\x80\"]",
        "[1] x",
        "[1] [2]",
        "\"top\"",
        "42",
        "true",
        "null",
        "\xef\xbb\xbf[1]",
        "[1]\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_reads_like_jansson(bad[i]);
    }
    /* A NUL byte inside the buffer, in a string and between values. */
    assert_reads_like_jansson_flags("[\"a\0b\"]", 7, 0);
    assert_reads_like_jansson_flags("[1,\0 2]", 7, 0);
    assert_reads_like_jansson_flags("[1]\0", 4, 0);
}

static void test_json_read_flags_jansson_implements(void **state)
{
    const char *dup = "{\"a\": 1, \"a\": 2}";
    assert_reads_like_jansson_flags(dup, strlen(dup), JSON_REJECT_DUPLICATES);
    assert_reads_like_jansson_flags("[1] x", 5, JSON_DISABLE_EOF_CHECK);
    assert_reads_like_jansson_flags("[1, 2]", 6, JSON_DECODE_INT_AS_REAL);
    assert_reads_like_jansson_flags("[\"a\\u0000b\"]", 12, JSON_ALLOW_NUL);
    assert_reads_like_jansson_flags("3.5", 3, JSON_DECODE_ANY);
    assert_reads_like_jansson_flags(NULL, 0, 0);
}

static void test_json_read_not_nul_terminated(void **state)
{
    const char text[] = "{\"a\": [1, 2, \"three\"]}trailing";
    assert_reads_like_jansson_flags(text, 22, 0);
    /* Cut anywhere: every prefix reads (or fails) as jansson reads it. */
    for (size_t n = 0; n < 22; n++) {
        assert_reads_like_jansson_flags(text, n, 0);
    }
}

static char *nested(size_t depth, const char *inner)
{
    size_t n = strlen(inner);
    char *s = malloc(depth * 2 + n + 1);
    assert_non_null(s);
    memset(s, '[', depth);
    memcpy(s + depth, inner, n);
    memset(s + depth + n, ']', depth);
    s[depth * 2 + n] = '\0';
    return s;
}

static void test_json_read_depth_limit_as_jansson(void **state)
{
    const size_t depths[] = {2046, 2047, 2048, 2049, 2050};
    for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
        char *empty = nested(depths[i], "");
        char *scalar = nested(depths[i], "1");
        assert_reads_like_jansson(empty);
        assert_reads_like_jansson(scalar);
        free(empty);
        free(scalar);
    }
}

/* Random documents from a fixed seed, written by jansson in several styles. */
static json_t *random_scalar(unsigned *seed, int kind)
{
    switch (kind) {
    case 0:
        return json_integer(((json_int_t)rand_r(seed) << 31) - (json_int_t)rand_r(seed));
    case 1:
        return json_real((double)rand_r(seed) / (double)(1 + rand_r(seed) % 1000) *
                         (rand_r(seed) % 2 ? 1e-5 : 1e5));
    default: {
        /* Code points from every UTF-8 length, control characters and quotes included. */
        static const char *const pieces[] = {"a",
                                             "\"",
                                             "\\",
                                             "/",
                                             "\n",
                                             "\x01",
                                             "\x1f",
                                             "\x7f",
                                             "\xc3\xa9",
                                             "\xe2\x82\xac",
                                             "\xf0\x9f\x98\x80",
                                             " "};
        char s[64];
        size_t n = 0;
        for (int i = rand_r(seed) % 10; i > 0; i--) {
            const char *p = pieces[rand_r(seed) % (sizeof(pieces) / sizeof(pieces[0]))];
            memcpy(s + n, p, strlen(p));
            n += strlen(p);
        }
        return json_stringn(s, n);
    }
    }
}

static void test_json_read_random_documents_as_jansson(void **state)
{
    const size_t styles[] = {JSON_COMPACT, JSON_INDENT(2), JSON_ENSURE_ASCII,
                             JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17)};
    unsigned seed = 11;
    for (int i = 0; i < 2000; i++) {
        json_t *v = random_json(&seed, random_scalar);
        json_t *doc = json_pack("{s:o}", "v", v);
        char *text = json_dumps(doc, styles[i % 4]);
        assert_non_null(text);
        size_t len = strlen(text);
        assert_reads_like_jansson_flags(text, len, 0);
        /* One byte changed or cut: whatever jansson makes of it, so does the reader. */
        for (int m = 0; m < 4 && len > 0; m++) {
            size_t at = (size_t)rand_r(&seed) % len;
            char saved = text[at];
            static const char subst[] = "\"\\{}[],:-0e.\xc3\x80 \n";
            text[at] = subst[rand_r(&seed) % (sizeof(subst) - 1)];
            assert_reads_like_jansson_flags(text, len, 0);
            assert_reads_like_jansson_flags(text, at, 0);
            text[at] = saved;
        }
        free(text);
        json_decref(doc);
    }
}

/* Every text of *texts is jansson's compact dump of the element it stands for. */
static void assert_texts_are_dumps(const json_t *arr, const json_t *texts)
{
    assert_non_null(texts);
    assert_int_equal(json_array_size(texts), json_array_size(arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char *want = json_dumps(json_array_get(arr, i), JSON_COMPACT | JSON_ENCODE_ANY);
        const json_t *t = json_array_get(texts, i);
        assert_non_null(want);
        assert_true(json_is_string(t));
        assert_int_equal(json_string_length(t), strlen(want));
        assert_string_equal(json_string_value(t), want);
        free(want);
    }
}

static void test_json_read_items_texts_are_compact_dumps(void **state)
{
    const char *doc =
        "{\"meta\": {\"data\": [9]},\n \"data\": [\n"
        "  {\"id\": 1, \"n\": -0, \"r\": 1.50, \"e\": 2E3},\n"
        "  {\"s\": \"a\\/b \\u00e9\\u20ac \\ud83d\\ude00 "
        "\\u0001\\u001F\\u0022\\u005c\\b\\f\\n\\r\\t\\\"\"},\n"
        "  {\"k\": 1, \"k\": 2, \"z\": [ {\"k\" : 3 , \"k\":4} ] },\n"
        "  \"caf\xc3\xa9 \x7f\", -12, 0, 9223372036854775807, true, false, null, [], {},\n"
        "  [ 1 , [ 2 ] , { } ]\n"
        "] }";
    json_t *texts = NULL;
    json_error_t e;
    json_t *v = ferry_json_loadb_items(doc, strlen(doc), 0, "data", &texts, &e);
    assert_non_null(v);
    assert_texts_are_dumps(json_object_get(v, "data"), texts);
    /* The plain elements are the page's own bytes, only without the blanks. */
    assert_string_equal(json_string_value(json_array_get(texts, 12)), "[1,[2],{}]");
    json_decref(texts);
    json_decref(v);
}

static void test_json_read_items_none_when_unsure(void **state)
{
    const char *docs[] = {
        "{\"data\": [1], \"data\": [2]}", /* the second replaces the first */
        "{\"data\": {\"a\": 1}}",         /* not an array */
        "{\"other\": [1]}",               /* no such member */
        "[{\"data\": [1]}]",              /* not at the top */
        "{\"data\": [1,]}",               /* an error: jansson reports it */
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *texts = (json_t *)docs; /* must be reset */
        json_error_t e1, e2;
        json_t *v = ferry_json_loadb_items(docs[i], strlen(docs[i]), 0, "data", &texts, &e1);
        json_t *w = json_loadb(docs[i], strlen(docs[i]), 0, &e2);
        assert_null(texts);
        assert_int_equal(v == NULL, w == NULL);
        assert_true(!v || json_equal(v, w));
        if (!v) {
            assert_string_equal(e1.text, e2.text);
        }
        json_decref(v);
        json_decref(w);
    }
    json_t *texts = NULL;
    json_t *v = ferry_json_loadb_items("{\"data\": []}", 12, 0, "data", &texts, NULL);
    assert_non_null(v);
    assert_non_null(texts);
    assert_int_equal(json_array_size(texts), 0);
    json_decref(texts);
    json_decref(v);
}

/* Random pages in every style jansson writes: each element's text is its compact dump. */
static void test_json_read_items_random_pages(void **state)
{
    const size_t styles[] = {JSON_COMPACT, JSON_INDENT(2), JSON_ENSURE_ASCII,
                             JSON_INDENT(1) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17)};
    unsigned seed = 7;
    for (int i = 0; i < 1000; i++) {
        json_t *data = json_array();
        for (int k = rand_r(&seed) % 5; k >= 0; k--) {
            json_array_append_new(data, random_json(&seed, random_scalar));
        }
        json_t *doc = json_pack("{s:i, s:o}", "total", i, "data", data);
        char *text = json_dumps(doc, styles[i % 4]);
        json_t *texts = NULL;
        json_t *v = ferry_json_loadb_items(text, strlen(text), 0, "data", &texts, NULL);
        assert_non_null(v);
        assert_true(json_equal(v, doc));
        assert_texts_are_dumps(json_object_get(v, "data"), texts);
        json_decref(texts);
        json_decref(v);
        free(text);
        json_decref(doc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_read_every_type_as_jansson),
        cmocka_unit_test(test_json_read_errors_reported_by_jansson),
        cmocka_unit_test(test_json_read_flags_jansson_implements),
        cmocka_unit_test(test_json_read_not_nul_terminated),
        cmocka_unit_test(test_json_read_depth_limit_as_jansson),
        cmocka_unit_test(test_json_read_random_documents_as_jansson),
        cmocka_unit_test(test_json_read_items_texts_are_compact_dumps),
        cmocka_unit_test(test_json_read_items_none_when_unsure),
        cmocka_unit_test(test_json_read_items_random_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
