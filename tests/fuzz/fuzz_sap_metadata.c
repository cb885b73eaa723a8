/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the SAP connector's $metadata (EDMX) reader and the
 * describe() view built from it, on untrusted XML (libxml2 with
 * XML_PARSE_NONET and no entity expansion, as the connector configures it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sap_sales_metadata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml = malloc(size + 1);
    struct ferry_err err = {0};
    json_t *meta = NULL;
    if (!xml) {
        return 0;
    }
    memcpy(xml, data, size);
    xml[size] = '\0';
    if (ferry__sap_meta_parse(xml, size, &meta, &err) == 0) {
        json_t *desc = ferry__sap_meta_describe(meta);
        const char *set;
        json_t *v;
        json_object_foreach(meta, set, v)
        {
            (void)ferry__sap_meta_set(meta, set);
            (void)ferry__sap_meta_prop(meta, set, "ObjectID");
            (void)ferry__sap_meta_is_nav(meta, set, "ContactTextCollection");
        }
        json_decref(desc);
    }
    json_decref(meta);
    free(xml);
    return 0;
}
