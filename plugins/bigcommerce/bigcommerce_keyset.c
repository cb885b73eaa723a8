/* SPDX-License-Identifier: MIT */
/*
 * The keyset walk of the delta poll (see bigcommerce_keyset.h). Why each
 * step is safe while the store keeps changing:
 *
 * AFTER. The next page asks for everything changed at or after T, the last
 * change time read, and skips the ids the previous page reported at T. A
 * record that changes during the walk gets a time later than T and comes
 * again further on, which is what a delta poll wants; nothing behind it
 * moves, because nothing is addressed by position. Times have one-second
 * resolution on every API (facts 4.4, 5.2, 9.2), so "after T" is "at or
 * after T + 1".
 *
 * INSTANT. When one instant fills a whole page, the next AFTER page would
 * return that same page again and the walk would stop dead (a bulk import
 * gives hundreds of records one date_modified). Such an instant is read on
 * its own, filtered to exactly T, in one of two ways:
 *  - by id (v2 orders: min_id), which no change can disturb;
 *  - by page number, last page first, where the API has no id filter but
 *    counts its matches. T is in the past, so its set of records can only
 *    shrink (a record changed now leaves it for a later time), and a
 *    record leaving shifts only the records after it, which a walk from the
 *    end has read already. Page 1 is read first to learn the count and
 *    again last, since a shrink before it moves records onto it.
 * Both hold only for an instant in the past: while T is the current second,
 * records still join it, with ids below the one reached or on pages read
 * already. So a walk reaching an instant younger than
 * FERRY_BC_KEYSET_SETTLE_S stops there instead, with every record reported
 * changed at or before T and every one not reported at or after T, and the
 * host's next poll starts at T (its `since` is inclusive). A count that grew
 * all the same (clocks further apart than that) reads the instant again
 * from its new end. The instant is then done and AFTER goes on at T + 1.
 *
 * Every token carries the ids its page reported at T, so two pages in a row
 * never report the same record, which the host takes for a remote that
 * loops. Tokens are text of digits, ':' and ',' only:
 *   A:<at>:<inclusive>:<id>,<id>,...
 *   I:<at>:<inclusive>:<pos>:<total>:<round>:<id>,<id>,...
 */
#include "bigcommerce_keyset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"

/* 9999-12-31T23:59:59Z: the last instant the date parsers accept. */
#define BC_KEYSET_MAX_TIME 253402300799LL

/* A decimal number without sign in [0, max]; advances *p. */
static int read_num(const char **p, int64_t max, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (v > (INT64_MAX - (s[n] - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || v > max) {
        return -1;
    }
    *p = s + n;
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c) {
        return -1;
    }
    (*p)++;
    return 0;
}

int ferry__bc_keyset_parse(const char *token, struct ferry_bc_keyset *ks)
{
    const char *p = token;
    int64_t inc = 0;
    memset(ks, 0, sizeof(*ks));
    ks->at = INT64_MIN;
    if (!token) {
        ks->mode = FERRY_BC_KEYSET_FIRST;
        return 0;
    }
    if (strlen(token) > FERRY_BC_KEYSET_TOKEN_MAX || (p[0] != 'A' && p[0] != 'I') || p[1] != ':') {
        return FERRY_EINVAL;
    }
    ks->mode = p[0] == 'A' ? FERRY_BC_KEYSET_AFTER : FERRY_BC_KEYSET_INSTANT;
    p += 2;
    if (read_num(&p, BC_KEYSET_MAX_TIME, &ks->at) < 0 || expect(&p, ':') < 0 ||
        read_num(&p, 1, &inc) < 0 || expect(&p, ':') < 0) {
        return FERRY_EINVAL;
    }
    ks->inclusive = (int)inc;
    if (ks->mode == FERRY_BC_KEYSET_INSTANT &&
        (read_num(&p, INT64_MAX, &ks->pos) < 0 || expect(&p, ':') < 0 ||
         read_num(&p, INT64_MAX, &ks->total) < 0 || expect(&p, ':') < 0 ||
         read_num(&p, FERRY_BC_KEYSET_MAX_ROUNDS, &ks->round) < 0 || expect(&p, ':') < 0)) {
        return FERRY_EINVAL;
    }
    while (*p) {
        int64_t id;
        if (ks->nseen == FERRY_BC_KEYSET_MAX_SEEN || read_num(&p, INT64_MAX, &id) < 0 || id <= 0 ||
            (*p && expect(&p, ',') < 0) || (*p == '\0' && p[-1] == ',')) {
            return FERRY_EINVAL;
        }
        ks->seen[ks->nseen++] = id;
    }
    return 0;
}

char *ferry__bc_keyset_format(const struct ferry_bc_keyset *ks)
{
    char *out = malloc(FERRY_BC_KEYSET_TOKEN_MAX + 1);
    size_t len;
    if (!out) {
        return NULL;
    }
    if (ks->mode == FERRY_BC_KEYSET_INSTANT) {
        len = (size_t)snprintf(
            out, FERRY_BC_KEYSET_TOKEN_MAX + 1, "I:%lld:%d:%lld:%lld:%lld:", (long long)ks->at,
            ks->inclusive ? 1 : 0, (long long)ks->pos, (long long)ks->total, (long long)ks->round);
    } else {
        len = (size_t)snprintf(out, FERRY_BC_KEYSET_TOKEN_MAX + 1, "A:%lld:%d:", (long long)ks->at,
                               ks->inclusive ? 1 : 0);
    }
    for (size_t i = 0; i < ks->nseen && len < FERRY_BC_KEYSET_TOKEN_MAX; i++) {
        len += (size_t)snprintf(out + len, FERRY_BC_KEYSET_TOKEN_MAX + 1 - len, "%s%lld",
                                i ? "," : "", (long long)ks->seen[i]);
    }
    return out;
}

static int was_seen(const struct ferry_bc_keyset *ks, int64_t id)
{
    for (size_t i = 0; i < ks->nseen; i++) {
        if (ks->seen[i] == id) {
            return 1;
        }
    }
    return 0;
}

int ferry__bc_keyset_wanted(const struct ferry_bc_keyset *ks, const struct ferry_bc_keyset_row *r)
{
    switch (ks->mode) {
    case FERRY_BC_KEYSET_AFTER:
        return r->t > ks->at || (r->t == ks->at && !was_seen(ks, r->id));
    case FERRY_BC_KEYSET_INSTANT:
        return r->t == ks->at && !was_seen(ks, r->id);
    default:
        /* The first page reports what the API returns for `since`, as it always did. */
        return 1;
    }
}

/* ks becomes `mode` at `at`, remembering the ids of rows[from..n) changed at `at`. */
static void start(struct ferry_bc_keyset *ks, int mode, int64_t at, int inclusive,
                  const struct ferry_bc_keyset_row *rows, size_t from, size_t n)
{
    memset(ks, 0, sizeof(*ks));
    ks->mode = mode;
    ks->at = at;
    ks->inclusive = inclusive;
    for (size_t i = from; i < n; i++) {
        if (rows[i].t == at && ks->nseen < FERRY_BC_KEYSET_MAX_SEEN) {
            ks->seen[ks->nseen++] = rows[i].id;
        }
    }
}

static int64_t pages_of(int64_t total, int limit)
{
    return (total + limit - 1) / limit;
}

/* An AFTER or FIRST page: where the next one starts. */
static int next_after(const struct ferry_bc_keyset *cur, const struct ferry_bc_keyset_row *rows,
                      size_t n, int limit, int64_t now_s, struct ferry_bc_keyset *next, int *more,
                      const char **why)
{
    size_t older = 0;
    int inclusive = cur->inclusive;
    if ((int64_t)n < limit) {
        /* A short page is everything left at or after the bound. */
        *more = 0;
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (rows[i].t < rows[i - 1].t) {
            *why = "records are not in date order (the sort was ignored)";
            return FERRY_EPROTO;
        }
    }
    while (older < n && rows[older].t < cur->at) {
        older++;
    }
    if (older > 0) {
        /* B2B Edition's bound is sent one second early in case it is exclusive
         * (facts 9.3): records from that second mean it is inclusive after all. */
        inclusive = 1;
    }
    if (older == n) {
        if (cur->inclusive) {
            *why = "a whole page is older than the date filter asked for";
            return FERRY_EPROTO;
        }
        /* Nothing from the bound on fitted: ask again with the exact bound. */
        *next = *cur;
        next->inclusive = 1;
        *more = 1;
        return 0;
    }
    if (rows[older].t == rows[n - 1].t) {
        /* One instant from the bound to the end of a full page: it may hold
         * more than a page, which AFTER could never get past. */
        start(next, FERRY_BC_KEYSET_INSTANT, rows[n - 1].t, inclusive, rows, older, n);
        if (next->at > now_s - FERRY_BC_KEYSET_SETTLE_S) {
            *more = 0;
            return 0;
        }
    } else {
        start(next, FERRY_BC_KEYSET_AFTER, rows[n - 1].t, inclusive, rows, older, n);
    }
    *more = 1;
    return 0;
}

/* An INSTANT page: the next page of the instant, or AFTER at the second after it. */
static int next_instant(const struct ferry_bc_keyset *cur, int instant,
                        const struct ferry_bc_keyset_row *rows, size_t n, int limit, int64_t total,
                        struct ferry_bc_keyset *next, int *more, const char **why)
{
    *more = 1;
    if (instant == FERRY_BC_INSTANT_IDS) {
        int64_t last = cur->pos;
        if ((int64_t)n < limit) {
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            if (rows[i].id <= cur->pos) {
                *why = "records at or below the minimum id asked for (the id filter was ignored)";
                return FERRY_EPROTO;
            }
            last = rows[i].id > last ? rows[i].id : last;
        }
        start(next, FERRY_BC_KEYSET_INSTANT, cur->at, cur->inclusive, rows, 0, n);
        next->pos = last;
        return 0;
    }
    if (total < 0) {
        *why = "no count of the records at one instant (meta pagination total)";
        return FERRY_EPROTO;
    }
    if (cur->pos == 0 || (total > cur->total && cur->round < FERRY_BC_KEYSET_MAX_ROUNDS)) {
        int64_t round = cur->pos == 0 ? cur->round : cur->round + 1;
        if (cur->pos == 0 && pages_of(total, limit) <= 1) {
            goto done; /* page 1 held the whole instant */
        }
        start(next, FERRY_BC_KEYSET_INSTANT, cur->at, cur->inclusive, rows, 0, n);
        next->pos = pages_of(total, limit);
        next->total = total;
        next->round = round;
        return 0;
    }
    if (cur->pos <= 1) {
        goto done;
    }
    start(next, FERRY_BC_KEYSET_INSTANT, cur->at, cur->inclusive, rows, 0, n);
    next->pos = cur->pos - 1;
    next->total = total;
    next->round = cur->round;
    return 0;
done:
    if (cur->at >= BC_KEYSET_MAX_TIME) {
        *more = 0;
        return 0;
    }
    start(next, FERRY_BC_KEYSET_AFTER, cur->at + 1, cur->inclusive, rows, 0, 0);
    return 0;
}

int ferry__bc_keyset_next(const struct ferry_bc_keyset *cur, int instant,
                          const struct ferry_bc_keyset_row *rows, size_t n, int limit,
                          int64_t total, int64_t now_s, struct ferry_bc_keyset *next, int *more,
                          const char **why)
{
    *more = 0;
    *why = NULL;
    if (limit < 1 || limit > FERRY_BC_KEYSET_MAX_SEEN || (int64_t)n > limit) {
        *why = "more records than the page size asked for";
        return FERRY_EPROTO;
    }
    if (cur->mode == FERRY_BC_KEYSET_INSTANT) {
        return next_instant(cur, instant, rows, n, limit, total, next, more, why);
    }
    return next_after(cur, rows, n, limit, now_s, next, more, why);
}
