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

#include <stdlib.h>
#include <string.h>

#include "errors.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util_sha256_known_vector),
        cmocka_unit_test(test_util_json_hash_ignores_key_order),
        cmocka_unit_test(test_util_path_join_and_scalars),
        cmocka_unit_test(test_util_iso8601_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
