/* SPDX-License-Identifier: MIT */
/* Target checks: unknown objects, unknown and read-only properties, with file and line. */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "targets.h"

static const char *schemas_text =
    "{\"crm\": {\"Contacts\": {\"key\": \"ObjectID\", \"properties\": {"
    "\"FirstName\": {\"creatable\": true, \"updatable\": true},"
    "\"ContactID\": {\"creatable\": true, \"updatable\": false},"
    "\"ExternalID\": {\"creatable\": false, \"updatable\": false}}}}}";

static void test_targets_problems_name_file_and_line(void **state)
{
    json_t *schemas = json_loads(schemas_text, 0, NULL);
    json_t *targets =
        json_loads("[{\"mapping\": \"m\", \"path\": \"m/mapping.lua\", \"system\": \"crm\","
                   " \"object\": \"Contacts\", \"fields\": {\"FirstName\": 3, \"ContactID\": 4,"
                   " \"ExternalID\": 5, \"Nickname\": 6}},"
                   " {\"mapping\": \"n\", \"path\": \"n/mapping.lua\", \"system\": \"crm\","
                   " \"object\": \"Leads\", \"fields\": {}},"
                   " {\"mapping\": \"o\", \"path\": \"o/mapping.lua\", \"system\": \"other\","
                   " \"object\": \"X\", \"fields\": {\"Y\": 1}}]",
                   0, NULL);
    json_t *problems = NULL, *warnings = NULL;
    assert_non_null(schemas);
    assert_non_null(targets);
    assert_int_equal(ferry_targets_check(targets, schemas, &problems, &warnings), 0);
    assert_int_equal(json_array_size(problems), 3);
    const char *all = NULL;
    char joined[2048] = "";
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p)
    {
        strncat(joined, json_string_value(p), sizeof(joined) - strlen(joined) - 2);
        strcat(joined, "\n");
    }
    all = joined;
    assert_non_null(strstr(all, "m/mapping.lua:5: ExternalID of Contacts is read-only"));
    assert_non_null(strstr(all, "m/mapping.lua:6: Nickname is not a property of Contacts"));
    assert_non_null(strstr(all, "n/mapping.lua: target object Leads"));
    /* An instance without a description is not checked. */
    assert_null(strstr(all, "o/mapping.lua"));
    assert_int_equal(json_array_size(warnings), 1);
    assert_non_null(strstr(json_string_value(json_array_get(warnings, 0)), "ContactID"));
    json_decref(problems);
    json_decref(warnings);
    json_decref(targets);
    json_decref(schemas);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets_problems_name_file_and_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
