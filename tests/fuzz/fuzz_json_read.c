/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: ferry_json_loadb (core/src/json_read.c), the reader that
 * connectors parse list pages, webhooks and response bodies with, against
 * jansson's json_loadb, whose results it promises to repeat. For every input
 * and each flag set a connector uses: both refuse it, with the same error
 * (text, line, column, position), or both accept it with equal trees.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t flag_sets[] = {0, JSON_DECODE_ANY, JSON_REJECT_DUPLICATES,
                                   JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t k = 0; k < sizeof(flag_sets) / sizeof(flag_sets[0]); k++) {
        json_error_t want_err, got_err;
        json_t *want = json_loadb((const char *)data, size, flag_sets[k], &want_err);
        json_t *got = ferry_json_loadb((const char *)data, size, flag_sets[k], &got_err);
        if (!want != !got) {
            fprintf(stderr, "flags %zu: jansson %s, the reader %s (%s)\n", flag_sets[k],
                    want ? "accepts" : "refuses", got ? "accepts" : "refuses",
                    want ? got_err.text : want_err.text);
            abort();
        }
        if (want && !json_equal(want, got)) {
            fprintf(stderr, "flags %zu: the trees differ\n", flag_sets[k]);
            abort();
        }
        if (!want && (strcmp(want_err.text, got_err.text) != 0 || want_err.line != got_err.line ||
                      want_err.column != got_err.column || want_err.position != got_err.position)) {
            fprintf(stderr, "flags %zu: errors differ: jansson %d:%d %s, the reader %d:%d %s\n",
                    flag_sets[k], want_err.line, want_err.column, want_err.text, got_err.line,
                    got_err.column, got_err.text);
            abort();
        }
        json_decref(want);
        json_decref(got);
    }
    return 0;
}
