/* SPDX-License-Identifier: MIT */
/*
 * Mapping targets against connector object descriptions (see targets.h).
 */
#include "targets.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "ferry/plugin.h"

static int add(json_t *list, const char *path, json_int_t line, const char *fmt, ...)
    FERRY_PRINTF(4, 5);

static int add(json_t *list, const char *path, json_int_t line, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    int n = line > 0 ? snprintf(msg, sizeof(msg), "%s:%lld: ", path, (long long)line)
                     : snprintf(msg, sizeof(msg), "%s: ", path);
    if (n < 0 || (size_t)n >= sizeof(msg)) {
        n = 0;
    }
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    return json_array_append_new(list, json_string(msg)) == 0 ? 0 : FERRY_ENOMEM;
}

int ferry_targets_check(const json_t *targets, const json_t *schemas, json_t **problems,
                        json_t **warnings)
{
    json_t *bad = json_array(), *warn = json_array();
    size_t i;
    const json_t *t;
    int rc = 0;

    if (!bad || !warn) {
        rc = FERRY_ENOMEM;
        goto done;
    }
    json_array_foreach(targets, i, t)
    {
        const char *path = json_string_value(json_object_get(t, "path"));
        const char *system = json_string_value(json_object_get(t, "system"));
        const char *object = json_string_value(json_object_get(t, "object"));
        const json_t *schema = json_object_get(schemas, system ? system : "");
        if (!path || !system || !object || !json_is_object(schema)) {
            continue;
        }
        const json_t *desc = json_object_get(schema, object);
        if (!desc) {
            rc = add(bad, path, 0, "target object %s is not one that connector %s describes",
                     object, system);
            if (rc < 0) {
                goto done;
            }
            continue;
        }
        const json_t *props = json_object_get(desc, "properties");
        const char *field;
        json_t *line;
        json_object_foreach((json_t *)json_object_get(t, "fields"), field, line)
        {
            const json_t *p = json_object_get(props, field);
            json_int_t ln = json_integer_value(line);
            if (!p) {
                rc = add(bad, path, ln, "%s is not a property of %s (connector %s)", field, object,
                         system);
            } else {
                bool c = json_is_true(json_object_get(p, "creatable"));
                bool u = json_is_true(json_object_get(p, "updatable"));
                if (!c && !u) {
                    rc = add(bad, path, ln, "%s of %s is read-only in connector %s", field, object,
                             system);
                } else if (!u) {
                    rc = add(warn, path, ln, "%s of %s can be set on create only (connector %s)",
                             field, object, system);
                }
            }
            if (rc < 0) {
                goto done;
            }
        }
    }
done:
    if (rc < 0) {
        json_decref(bad);
        json_decref(warn);
        return rc;
    }
    *problems = bad;
    *warnings = warn;
    return 0;
}
