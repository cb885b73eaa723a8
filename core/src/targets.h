/* SPDX-License-Identifier: MIT */
/*
 * Checks what mappings write against what connectors say their objects
 * accept (the connector's `describe`): an unknown object, an unknown
 * property or a read-only one is an error naming the mapping file and line,
 * found when mappings load rather than when a record first fails.
 */
#ifndef FERRY_TARGETS_H
#define FERRY_TARGETS_H

#include <jansson.h>

#include "errors.h"

/*
 * `targets` as from ferry_mapping_set_targets(); `schemas` an object of
 * instance name -> the instance's describe() result (instances without one
 * are not checked). *problems is a new array of one-line messages
 * ("<file>:<line>: ..."), empty when all is well; *warnings likewise for
 * properties that can be set on create only. Returns 0 or FERRY_ENOMEM.
 */
FERRY_NODISCARD int ferry_targets_check(const json_t *targets, const json_t *schemas,
                                        json_t **problems, json_t **warnings);

#endif
