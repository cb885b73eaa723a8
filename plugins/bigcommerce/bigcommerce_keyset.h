/* SPDX-License-Identifier: MIT */
/*
 * Page tokens of the delta poll's keyset walk. A list sorted by change time
 * and read by page number loses a record whenever one already read changes
 * during the walk: it moves to the end, everything after it moves up one
 * place, and the first record of the next page is never read. So the next
 * page starts where the last one ended instead: at the last change time read
 * (inclusive), less the ids already reported at that instant, which the
 * token carries. More records at one instant than a page holds would stop
 * that walk dead, so such an instant is read on its own first (INSTANT).
 *
 * Pure logic, no I/O: the list functions of bigcommerce_objects.c build the
 * requests from a struct ferry_bc_keyset and hand each page's (id, time)
 * rows back to ferry__bc_keyset_next.
 */
#ifndef FERRY_BIGCOMMERCE_KEYSET_H
#define FERRY_BIGCOMMERCE_KEYSET_H

#include <stddef.h>
#include <stdint.h>

/* The platform's page cap (facts 4.2): no page reports more ids than this. */
#define FERRY_BC_KEYSET_MAX_SEEN 250
/* The longest token ferry__bc_keyset_format writes: seven numbers and a page of ids. */
#define FERRY_BC_KEYSET_TOKEN_MAX (8 * 21 + FERRY_BC_KEYSET_MAX_SEEN * 20)
/* Restarts of one instant after it grew; a count that never settles is not chased further. */
#define FERRY_BC_KEYSET_MAX_ROUNDS 8
/*
 * An instant is read on its own only once it is this many seconds old by
 * the host's clock: until then records may still join it (see the .c).
 * Generous, because the two clocks may differ.
 */
#define FERRY_BC_KEYSET_SETTLE_S 60

enum ferry_bc_keyset_mode {
    FERRY_BC_KEYSET_FIRST = 0,   /* no token yet: the caller's `since` */
    FERRY_BC_KEYSET_AFTER = 1,   /* changed at or after `at`, less the ids in `seen` */
    FERRY_BC_KEYSET_INSTANT = 2, /* changed exactly at `at`, which more than a page share */
};

/* How an API reads the records of one instant (FERRY_BC_KEYSET_INSTANT). */
enum ferry_bc_keyset_instant {
    /* By page number, last page first; the API counts the matches (v3, B2B Edition). */
    FERRY_BC_INSTANT_PAGES = 0,
    /* By ascending id from pos + 1, with a minimum-id filter (v2 orders). */
    FERRY_BC_INSTANT_IDS = 1,
};

struct ferry_bc_keyset {
    int mode;      /* enum ferry_bc_keyset_mode */
    int64_t at;    /* AFTER, INSTANT: the instant, Unix seconds; FIRST: `since` or INT64_MIN */
    int inclusive; /* the API answered a lower bound of at - 1 with records of at - 1 */
    int64_t pos;   /* INSTANT: page to read next (0: page 1, to count) or the last id read */
    int64_t total; /* INSTANT by pages: the instant's records as last counted */
    int64_t round; /* INSTANT by pages: restarts after the instant grew */
    size_t nseen;
    int64_t seen[FERRY_BC_KEYSET_MAX_SEEN]; /* ids at `at` the previous page reported */
};

/* One record of a page as the walk sees it. */
struct ferry_bc_keyset_row {
    int64_t id; /* positive */
    int64_t t;  /* change time, Unix seconds */
};

/*
 * Reads a token (NULL: the first page, mode FIRST with at = INT64_MIN).
 * 0, or FERRY_EINVAL for anything ferry__bc_keyset_format did not write.
 */
int ferry__bc_keyset_parse(const char *token, struct ferry_bc_keyset *ks);

/* The token for ks (mode AFTER or INSTANT); caller frees with free(). NULL: out of memory. */
char *ferry__bc_keyset_format(const struct ferry_bc_keyset *ks);

/* Whether a page's row is one to report: 1, or 0 for one read already or outside the walk. */
int ferry__bc_keyset_wanted(const struct ferry_bc_keyset *ks, const struct ferry_bc_keyset_row *r);

/*
 * The walk after one page: `rows` are every record of the page in the order
 * received (also those not reported, e.g. filtered orders), `limit` the page
 * size asked for, `total` the API's count of matches (-1: none given),
 * `instant` an enum ferry_bc_keyset_instant and `now_s` the host's clock in
 * Unix seconds. Sets *next and *more (0: the walk is over; with next->mode
 * INSTANT it stopped before an instant too recent to read on its own, which
 * the next poll starts at). FERRY_EPROTO with *why set when the page
 * contradicts the request (unsorted, larger than asked, a filter ignored),
 * since walking on would lose records or loop.
 */
int ferry__bc_keyset_next(const struct ferry_bc_keyset *cur, int instant,
                          const struct ferry_bc_keyset_row *rows, size_t n, int limit,
                          int64_t total, int64_t now_s, struct ferry_bc_keyset *next, int *more,
                          const char **why);

#endif
