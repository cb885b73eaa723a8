/* SPDX-License-Identifier: MIT */
/* Util tests: canonical JSON makes equal content hash equally. */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "random_json.h"
#include "util.h"

static void test_util_sha256_known_vector(void **state)
{
    char hex[FERRY_SHA256_HEX_LEN + 1];
    ferry_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_util_json_hash_ignores_key_order(void **state)
{
    char h1[FERRY_SHA256_HEX_LEN + 1], h2[FERRY_SHA256_HEX_LEN + 1], h3[FERRY_SHA256_HEX_LEN + 1];
    json_t *a = json_loads("{\"a\":1,\"b\":\"x\"}", 0, NULL);
    json_t *b = json_loads("{\"b\":\"x\",\"a\":1}", 0, NULL);
    json_t *c = json_loads("{\"b\":\"y\",\"a\":1}", 0, NULL);
    assert_int_equal(ferry_json_hash(a, h1), 0);
    assert_int_equal(ferry_json_hash(b, h2), 0);
    assert_int_equal(ferry_json_hash(c, h3), 0);
    assert_string_equal(h1, h2);
    assert_string_not_equal(h1, h3);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void test_util_path_join_and_scalars(void **state)
{
    char *p = ferry_path_join("/etc/ferry", "m");
    assert_string_equal(p, "/etc/ferry/m");
    free(p);
    p = ferry_path_join("/etc/ferry/", "/abs");
    assert_string_equal(p, "/abs");
    free(p);
    json_t *i = json_integer(42);
    p = ferry_json_scalar_text(i);
    assert_string_equal(p, "42");
    free(p);
    json_decref(i);
    json_t *r = json_real(1.5);
    assert_null(ferry_json_scalar_text(r));
    json_decref(r);
    assert_null(ferry_strdup(NULL));
}

static void test_util_iso8601_round_trip(void **state)
{
    int64_t ms = 0;
    char out[21];
    assert_int_equal(ferry_iso8601_parse("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(ferry_iso8601_parse("2024-05-01", &ms), 0);
    assert_int_equal(ms, 1714521600000LL);
    assert_int_equal(ferry_iso8601_parse("2024-05-01T12:30:15.250Z", &ms), 0);
    assert_int_equal(ms, 1714566615250LL);
    assert_int_equal(ferry_iso8601_parse("2024-05-01T14:30:15+02:00", &ms), 0);
    assert_int_equal(ms, 1714566615000LL);
    ferry_iso8601_format(ms, out);
    assert_string_equal(out, "2024-05-01T12:30:15Z");
    assert_int_equal(ferry_iso8601_parse("2024-13-01", &ms), FERRY_EINVAL);
    assert_int_equal(ferry_iso8601_parse("yesterday", &ms), FERRY_EINVAL);
    assert_int_equal(ferry_iso8601_parse("2024-05-01T10:00Zjunk", &ms), FERRY_EINVAL);
}

/* Both writers on one value: the same bytes (or both refuse it), sorted and not. */
static void assert_dumps_like_jansson(const json_t *v)
{
    for (int sort = 0; sort <= 1; sort++) {
        char *mine = ferry_json_dumps(v, sort == 1);
        char *theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | (sort ? JSON_SORT_KEYS : 0));
        if (!theirs) {
            assert_null(mine);
        } else {
            assert_non_null(mine);
            assert_string_equal(mine, theirs);
        }
        free(mine);
        free(theirs);
    }
}

static void test_util_json_dumps_escapes_every_ascii_byte_as_jansson(void **state)
{
    char s[2] = {0, 0};
    for (int c = 0; c < 128; c++) {
        json_t *v = json_stringn(c ? (s[0] = (char)c, s) : "\0", 1);
        assert_non_null(v);
        assert_dumps_like_jansson(v);
        json_decref(v);
    }
    /* Runs of plain text between escapes, and UTF-8 of every length. */
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "plain", "a \"quoted\" \\ path/to\tx\n", "utf8",
                          "Gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x9a\xa2 ok",
                          "\xc3\xa9t\xc3\xa9", "key with UTF-8", "", "empty key");
    assert_non_null(o);
    assert_dumps_like_jansson(o);
    json_decref(o);
}

static void test_util_json_dumps_matches_jansson_on_every_type(void **state)
{
    json_t *v = json_loads("{\"z\":1,\"a\":[true,false,null,0,-1,9223372036854775807,"
                           "-9223372036854775808,1.0,-0.5,0.1,1e300,2.5e-8,\"s\"],"
                           "\"m\":{\"b\":{},\"a\":[],\"c\":[[[]]]},\"A\":\"upper sorts first\"}",
                           0, NULL);
    assert_non_null(v);
    assert_dumps_like_jansson(v);
    /* More keys than the writer keeps on its stack. */
    json_t *big = json_object();
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%03d", (i * 37) % 100);
        json_object_set_new(big, k, json_integer(i));
    }
    assert_dumps_like_jansson(big);
    /* Deep nesting. */
    json_t *deep = json_integer(1);
    for (int i = 0; i < 500; i++) {
        deep = json_pack("[o]", deep);
    }
    assert_dumps_like_jansson(deep);
    /* Scalars on their own. */
    json_t *scalars[] = {json_string("x"), json_integer(42), json_real(3.25), json_true(),
                         json_null()};
    for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
        assert_dumps_like_jansson(scalars[i]);
        json_decref(scalars[i]);
    }
    json_decref(v);
    json_decref(big);
    json_decref(deep);
}

static void test_util_json_dumps_leaves_what_jansson_refuses_to_jansson(void **state)
{
    /* Invalid UTF-8 (unchecked strings, a surrogate, an overlong form, a cut sequence): both
     * refuse the value. */
    const char *bad[] = {"\xff", "a\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf0\x9f\x9a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *v = json_stringn_nocheck(bad[i], strlen(bad[i]));
        assert_non_null(v);
        assert_dumps_like_jansson(v);
        char *mine = ferry_json_dumps(v, false);
        assert_null(mine);
        json_decref(v);
    }
    /* A key holding a NUL byte. */
    json_t *o = json_object();
    json_object_setn_new(o, "a\0b", 3, json_integer(1));
    json_object_set_new(o, "a", json_integer(2));
    assert_dumps_like_jansson(o);
    json_decref(o);
}

static void test_util_json_dumps_with_writes_the_given_text(void **state)
{
    json_t *record = json_pack("{s:i, s:[s, s]}", "id", 7, "tags", "a", "b\"");
    json_t *payload = json_pack("{s:s, s:O, s:s}", "source", "src", "record", record, "z", "end");
    char *whole = ferry_json_dumps(payload, false);
    char *rtext = ferry_json_dumps(record, false);

    /* The record's own text: the same bytes as writing it. */
    char *with = ferry_json_dumps_with(payload, record, rtext, strlen(rtext));
    assert_string_equal(with, whole);
    free(with);
    /* And it is the given text that is written, not the record. */
    with = ferry_json_dumps_with(payload, record, "{\"x\":1}", 7);
    assert_string_equal(with, "{\"source\":\"src\",\"record\":{\"x\":1},\"z\":\"end\"}");
    free(with);
    /* What is not a text of that kind of value is not used. */
    const char *wrong[] = {"[1]", "\"s\"", "{", ""};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        with = ferry_json_dumps_with(payload, record, wrong[i], strlen(wrong[i]));
        assert_string_equal(with, whole);
        free(with);
    }
    with = ferry_json_dumps_with(payload, record, NULL, 0);
    assert_string_equal(with, whole);
    free(with);
    free(rtext);
    free(whole);
    json_decref(payload);
    json_decref(record);
}

/* Random documents from a fixed seed: any difference in bytes fails with the seed's case. */
static json_t *random_scalar(unsigned *seed, int kind)
{
    switch (kind) {
    case 0:
        return json_integer((json_int_t)rand_r(seed) - RAND_MAX / 2);
    case 1:
        return json_real((double)rand_r(seed) / 7.0);
    default: {
        char s[24];
        size_t n = rand_r(seed) % sizeof(s);
        for (size_t i = 0; i < n; i++) {
            s[i] = (char)(1 + rand_r(seed) % 127);
        }
        return json_stringn(s, n);
    }
    }
}

static void test_util_json_dumps_matches_jansson_on_random_documents(void **state)
{
    unsigned seed = 7;
    for (int i = 0; i < 2000; i++) {
        json_t *v = random_json(&seed, random_scalar);
        assert_non_null(v);
        assert_dumps_like_jansson(v);
        json_decref(v);
    }
}

/*
 * ferry_fmt against snprintf: the same text and the same return value at
 * every buffer size from 0 to past the end, for each conversion it does
 * itself and for formats it hands to vsnprintf.
 */
#define SAME_AS_SNPRINTF(...)                                                                      \
    do {                                                                                           \
        char want[600], got[600];                                                                  \
        int wn = snprintf(want, sizeof(want), __VA_ARGS__);                                        \
        assert_true(wn >= 0 && (size_t)wn < sizeof(want));                                         \
        for (size_t size = 0; size <= (size_t)wn + 2; size++) {                                    \
            memset(want, 'x', sizeof(want));                                                       \
            memset(got, 'x', sizeof(got));                                                         \
            assert_int_equal(ferry_fmt(size ? got : NULL, size, __VA_ARGS__),                      \
                             snprintf(size ? want : NULL, size, __VA_ARGS__));                     \
            assert_memory_equal(got, want, sizeof(want));                                          \
        }                                                                                          \
        checked++;                                                                                 \
    } while (0)

static void test_util_fmt_matches_snprintf(void **state)
{
    int checked = 0;
    /* Read through a volatile, so that the compiler does not flag the NULLs. */
    const char *volatile null_text = NULL;
    const char *none = null_text;
    long long big = LLONG_MIN;
    SAME_AS_SNPRINTF("plain text, no conversion");
    SAME_AS_SNPRINTF("%s", "");
    SAME_AS_SNPRINTF("%s:%s:%s", "bigcommerce", "customer", "4711");
    SAME_AS_SNPRINTF("%d\x1f%s\x1f%s\x1f%s", 3, "ContactCollection", "Email", "a@b.example");
    SAME_AS_SNPRINTF("parked: %.*s", 20, "a reason longer than twenty bytes");
    SAME_AS_SNPRINTF("%.*s|%.*s", -1, "negative precision is none", 0, "zero");
    SAME_AS_SNPRINTF("%.200s and %.3s", "short", "longer");
    SAME_AS_SNPRINTF("[%s] [%.3s] [%.6s] [%.10s]", none, none, none, none);
    SAME_AS_SNPRINTF("%d %d %d %i", 0, -1, INT_MIN, INT_MAX);
    SAME_AS_SNPRINTF("%u %lu %llu %zu", UINT_MAX, ULONG_MAX, ULLONG_MAX, SIZE_MAX);
    SAME_AS_SNPRINTF("%ld %lld %lli %lld", LONG_MIN, big, 42LL, 1700000000123LL);
    SAME_AS_SNPRINTF("100%% of %c%c", 'o', 'k');
    SAME_AS_SNPRINTF("trailing percent sign %s%%", "here");
    /* What it hands over whole: widths, flags, floats, hex, pointers. */
    SAME_AS_SNPRINTF("%5d|%-4s|%02d", 7, "ab", 3);
    SAME_AS_SNPRINTF("%s took %.1f s", "poll", 2.25);
    SAME_AS_SNPRINTF("%x %lx %s", 255u, 4096ul, "after");
    SAME_AS_SNPRINTF("%.*d", 4, 12);
    assert_int_equal(checked, 17);
}

/* Steps of a dotted path, as ferry.get and ferry.rows walk them. */
static void test_util_path_steps(void **state)
{
    (void)state;
    static const char path[] = "..lines.2.sku..0.1234567890123456789.";
    const char *want[] = {"lines", "2", "sku", "0", "1234567890123456789"};
    const bool want_index[] = {false, true, false, true, false};
    const uint64_t want_n[] = {0, 2, 0, 0, 0};
    size_t at = 0, len;
    const char *step;
    bool is_index;
    uint64_t n;
    int k = 0;
    while (ferry_path_step(path, strlen(path), &at, &step, &len, &is_index, &n)) {
        assert_true(k < 5);
        assert_int_equal(len, strlen(want[k]));
        assert_memory_equal(step, want[k], len);
        assert_int_equal(is_index, want_index[k]);
        assert_int_equal(n, want_n[k]);
        k++;
    }
    assert_int_equal(k, 5);
    assert_int_equal(at, strlen(path));
    at = 0;
    assert_false(ferry_path_step("...", 3, &at, &step, &len, &is_index, &n));
    at = 0;
    assert_true(ferry_path_step("123456789012345678", 18, &at, &step, &len, &is_index, &n));
    assert_true(is_index);
    assert_int_equal(n, 123456789012345678ULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util_sha256_known_vector),
        cmocka_unit_test(test_util_json_hash_ignores_key_order),
        cmocka_unit_test(test_util_json_dumps_escapes_every_ascii_byte_as_jansson),
        cmocka_unit_test(test_util_json_dumps_matches_jansson_on_every_type),
        cmocka_unit_test(test_util_json_dumps_leaves_what_jansson_refuses_to_jansson),
        cmocka_unit_test(test_util_json_dumps_with_writes_the_given_text),
        cmocka_unit_test(test_util_json_dumps_matches_jansson_on_random_documents),
        cmocka_unit_test(test_util_path_join_and_scalars),
        cmocka_unit_test(test_util_iso8601_round_trip),
        cmocka_unit_test(test_util_fmt_matches_snprintf),
        cmocka_unit_test(test_util_path_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
