/* SPDX-License-Identifier: MIT */
/* Error helper tests: names, texts and classes come from one list. */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <errno.h>
#include <string.h>

#include "errors.h"

static void test_errors_names_and_texts(void **state)
{
    assert_string_equal(ferry_err_name(FERRY_ENOTFOUND), "ENOTFOUND");
    assert_string_equal(ferry_strerror(FERRY_ENOTFOUND), "not found");
    assert_string_equal(ferry_err_name(0), "OK");
    assert_string_equal(ferry_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(ferry_err_name(-ENOENT), "ERRNO");
}

static void test_errors_classes(void **state)
{
    assert_true(ferry_err_transient(FERRY_ENETWORK));
    assert_true(ferry_err_transient(FERRY_ERATELIMIT));
    assert_true(ferry_err_transient(FERRY_ECONFLICT));
    assert_false(ferry_err_transient(FERRY_EVALIDATION));
    assert_false(ferry_err_transient(FERRY_EMAPPING));
    assert_false(ferry_err_transient(FERRY_EAUTH));
    assert_true(ferry_err_transient(-EIO));
}

static void test_errors_set_formats_and_truncates(void **state)
{
    struct ferry_err err;
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(ferry_err_set(&err, FERRY_EINVAL, "bad %d", 7), FERRY_EINVAL);
    assert_int_equal(err.code, FERRY_EINVAL);
    assert_string_equal(err.msg, "bad 7");
    ferry_err_set(&err, FERRY_EINVAL, "%s", big);
    assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
    ferry_err_clear(&err);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.msg, "");
    assert_int_equal(ferry_err_set(NULL, FERRY_EIO, "ignored"), FERRY_EIO);
}

static void test_errors_join_reads_as_set(void **state)
{
    struct ferry_err a, b;
    char big[300];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    const char *const parts[] = {"no link for ", "bc", "/", NULL, " -> ", ""};
    assert_int_equal(ferry_err_join(&a, FERRY_ENOTFOUND, parts, 6), FERRY_ENOTFOUND);
    assert_int_equal(a.code, FERRY_ENOTFOUND);
    /* glibc's printf writes a NULL string as "(null)". */
    assert_string_equal(a.msg, "no link for bc/(null) -> ");
    /* Truncated where printf truncates, however the parts fall. */
    for (size_t cut = 0; cut < 300; cut += 37) {
        const char *const long_parts[] = {big + cut, "|", big};
        ferry_err_join(&a, FERRY_EIO, long_parts, 3);
        ferry_err_set(&b, FERRY_EIO, "%s|%s", big + cut, big);
        assert_string_equal(a.msg, b.msg);
    }
    assert_int_equal(ferry_err_join(NULL, FERRY_EIO, parts, 6), FERRY_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_names_and_texts),
        cmocka_unit_test(test_errors_classes),
        cmocka_unit_test(test_errors_set_formats_and_truncates),
        cmocka_unit_test(test_errors_join_reads_as_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
