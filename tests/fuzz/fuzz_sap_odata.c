/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: everything the SAP Sales Cloud connector parses out of an
 * OData v2 response body, JSON and Atom alike: single entities (both C4C
 * shapes), collections with __next and __count, the JSON/Atom sniffing
 * loader, Atom to JSON, ETags, /Date()/ values, error texts and the status
 * classification (with and without Retry-After), the CSRF failure test.
 * The plugin's internal functions are compiled in with its sources.
 * Bodies are NUL-terminated, as the host hands them over (plugin.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sap_sales_atom.h"
#include "sap_sales_odata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entity(const json_t *e)
{
    const char *tag = ferry__sap_entity_etag(e);
    const char *changed = json_string_value(json_object_get(e, "EntityLastChangedOn"));
    int64_t ms = 0;
    char iso[32];
    if (tag && strlen(tag) == 0) {
        return;
    }
    /* A date that parses must format back into the fixed-width watermark. */
    if (changed &&
        (ferry__sap_odata_date_ms(changed, &ms) == 0 || ferry__sap_iso_to_ms(changed, &ms) == 0)) {
        ferry__sap_ms_to_iso(ms, iso);
        if (strlen(iso) >= sizeof(iso)) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size + 1);
    struct ferry_err err = {0};
    json_t *doc = NULL, *results = NULL;
    char *next = NULL;
    char text[FERRY_SAP_ERROR_TEXT_MAX + 1];
    static const long statuses[] = {400, 401, 403, 404, 409, 412, 429, 500, 503};
    if (!body) {
        return 0;
    }
    memcpy(body, data, size);
    body[size] = '\0';

    if (ferry__sap_parse_entity(body, size, &doc, &err) == 0) {
        check_entity(doc);
    }
    json_decref(doc);
    doc = NULL;
    memset(&err, 0, sizeof(err));
    if (ferry__sap_parse_collection(body, size, &results, &next, &err) == 0) {
        size_t i;
        json_t *e;
        json_array_foreach(results, i, e)
        {
            check_entity(e);
        }
    }
    json_decref(results);
    free(next);
    memset(&err, 0, sizeof(err));
    doc = ferry__sap_load_body(body, size, &err);
    json_decref(doc);
    doc = NULL;
    if (ferry__sap_is_xml(body, size)) {
        memset(&err, 0, sizeof(err));
        if (ferry__sap_atom_to_json(body, size, &doc, &err) == 0 && !doc) {
            abort();
        }
        json_decref(doc);
    }
    ferry__sap_error_text(body, size, text, sizeof(text));
    if (strlen(text) >= sizeof(text)) {
        abort();
    }
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        memset(&err, 0, sizeof(err));
        int rc = ferry__sap_status_error(statuses[i], body, size, i % 2 ? "7" : NULL, "fuzz", &err);
        if (rc >= 0) {
            abort(); /* an error status is never success */
        }
    }
    (void)ferry__sap_is_csrf_failure(403, "Required", body, size);
    (void)ferry__sap_is_csrf_failure(403, NULL, body, size);
    free(body);
    return 0;
}
