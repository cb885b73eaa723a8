/* SPDX-License-Identifier: MIT */
#include "random_json.h"

#include <stdio.h>
#include <stdlib.h>

static json_t *value(unsigned *seed, int depth, random_json_scalar_fn scalar)
{
    /* Deeper than four levels only scalars, so that documents stay small. */
    int kind = depth > 4 ? (int)(rand_r(seed) % 5) : (int)(rand_r(seed) % 7);
    switch (kind) {
    case 0:
    case 1:
    case 2:
        return scalar(seed, kind);
    case 3:
        return rand_r(seed) % 2 ? json_true() : json_false();
    case 4:
        return json_null();
    case 5: {
        json_t *a = json_array();
        for (int i = rand_r(seed) % 6; i > 0; i--) {
            json_array_append_new(a, value(seed, depth + 1, scalar));
        }
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = rand_r(seed) % 8; i > 0; i--) {
            char k[8];
            snprintf(k, sizeof(k), "%c%d", 'a' + (char)(rand_r(seed) % 26), rand_r(seed) % 50);
            json_object_set_new(o, k, value(seed, depth + 1, scalar));
        }
        return o;
    }
    }
}

json_t *random_json(unsigned *seed, random_json_scalar_fn scalar)
{
    return value(seed, 0, scalar);
}
