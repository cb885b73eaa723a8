/* SPDX-License-Identifier: MIT */
/*
 * Random JSON documents from a fixed seed, for tests that compare a ferry
 * reader or writer with jansson on many shapes. The caller picks the
 * scalars (each test stresses its own: long integers and reals for a
 * reader, control characters for a writer); this builds the arrays and
 * objects around them, at most five levels deep.
 */
#ifndef FERRY_TEST_RANDOM_JSON_H
#define FERRY_TEST_RANDOM_JSON_H

#include <jansson.h>

/* A scalar of the caller's choice: an integer, a real or a string (kind 0, 1, 2). */
typedef json_t *(*random_json_scalar_fn)(unsigned *seed, int kind);

json_t *random_json(unsigned *seed, random_json_scalar_fn scalar);

#endif
