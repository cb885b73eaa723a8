/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the SAP connector's $batch response parser and the matching
 * of response parts to the requests that produced them (the part of a
 * batched backfill write that decides which record was written).
 *
 * Input: a multipart body. When it starts with "--", its first line names
 * the boundary (as the vendor samples do); otherwise the first line is the
 * Content-Type header value and the rest is the body. The requests matched
 * against the parts are derived from the input's length, so that the same
 * parts meet different numbers and kinds of operations (creates, updates,
 * reads, changesets of one and of several).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sap_sales_batch.h"

#define MAX_OPS 24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    char ctype[256];
    struct ferry_err err = {0};
    json_t *parts = NULL, *results = NULL;
    if (!copy) {
        return 0;
    }
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *nl = memchr(copy, '\n', size);
    size_t line = nl ? (size_t)(nl - copy) : size;
    const char *body = copy;
    size_t len = size;
    if (size > 2 && copy[0] == '-' && copy[1] == '-') {
        size_t b = line > 2 && copy[line - 1] == '\r' ? line - 3 : line - 2;
        snprintf(ctype, sizeof(ctype), "multipart/mixed; boundary=%.*s", (int)(b < 200 ? b : 200),
                 copy + 2);
    } else {
        snprintf(ctype, sizeof(ctype), "%.*s", (int)(line < 255 ? line : 255), copy);
        body = nl ? nl + 1 : copy + size;
        len = size - (size_t)(body - copy);
    }
    if (ferry__sap_batch_parse(ctype, body, len, &parts, &err) == 0) {
        static const char *const methods[] = {"POST", "PATCH", "GET"};
        struct ferry_sap_batch_op ops[MAX_OPS];
        size_t nops = json_array_size(parts) + size % 3;
        nops = nops > MAX_OPS ? MAX_OPS : nops;
        for (size_t i = 0; i < nops; i++) {
            const char *m = methods[(size + i) % 3];
            ops[i] = (struct ferry_sap_batch_op){
                .method = m,
                .path = "ContactCollection",
                .if_match = m[1] == 'A' ? "W/\"x\"" : NULL,
                .body = m[0] == 'G' ? NULL : "{}",
                /* Neighbours share a changeset now and then. */
                .group = (size >> (i % 8)) & 1 ? i / 2 : i,
            };
        }
        memset(&err, 0, sizeof(err));
        if (ferry__sap_batch_match(ops, nops, parts, &results, &err) == 0 &&
            json_array_size(results) != nops) {
            abort(); /* one result per operation, always */
        }
        json_decref(results);
    }
    json_decref(parts);
    free(copy);
    return 0;
}
