/* SPDX-License-Identifier: MIT */
/*
 * Text helpers for hot paths, shared by the core and connector plugins as
 * inline code (a connector links nothing of the core). Building an id or a
 * length into a request or a key through snprintf costs about a thousand
 * instructions; these cost tens.
 */
#ifndef FERRY_TEXT_H
#define FERRY_TEXT_H

#include <stddef.h>

/* Digits of the largest unsigned long long (64 bits). */
#define FERRY_DIGITS_MAX 20

/*
 * Writes the decimal digits of v at the end of buf (no NUL) and returns how
 * many: they are the last n bytes, buf + FERRY_DIGITS_MAX - n on.
 */
static inline size_t ferry_digits(char buf[FERRY_DIGITS_MAX], unsigned long long v)
{
    size_t i = FERRY_DIGITS_MAX;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return FERRY_DIGITS_MAX - i;
}

#endif
