/* SPDX-License-Identifier: MIT */
/*
 * Tests of the bigcommerce connector's keyset walk: the page-token module
 * (plugins/bigcommerce/bigcommerce_keyset.c, compiled in here) on its own,
 * a model store that changes while a walk reads it, and the requests each
 * list sends, through the built plugin ($FERRY_PLUGIN_DIR/bigcommerce.so)
 * driven by the fake host of the connector tests.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../plugins/bigcommerce/bigcommerce_keyset.c"
#include "../plugins/fake_host.c"

/* 2024-05-14T10:00:00Z and the clock of the connector tests: a month after the data. */
#define T0     1715680800LL
#define NOW_MS 1718000000000LL

/* ---- the token module ------------------------------------------------------------------ */

static void test_keyset_first_page_has_no_token(void **state)
{
    struct ferry_bc_keyset ks;
    assert_int_equal(ferry__bc_keyset_parse(NULL, &ks), 0);
    assert_int_equal(ks.mode, FERRY_BC_KEYSET_FIRST);
    assert_true(ks.at == INT64_MIN);
    assert_int_equal(ks.nseen, 0);
}

static void test_keyset_token_round_trip(void **state)
{
    struct ferry_bc_keyset ks, back;
    char *tok;
    memset(&ks, 0, sizeof(ks));
    ks.mode = FERRY_BC_KEYSET_AFTER;
    ks.at = T0;
    ks.nseen = 3;
    ks.seen[0] = 12;
    ks.seen[1] = 7;
    ks.seen[2] = 9223372036854775807LL;
    tok = ferry__bc_keyset_format(&ks);
    assert_string_equal(tok, "A:1715680800:0:12,7,9223372036854775807");
    assert_int_equal(ferry__bc_keyset_parse(tok, &back), 0);
    assert_memory_equal(&ks, &back, sizeof(ks));
    free(tok);

    memset(&ks, 0, sizeof(ks));
    ks.mode = FERRY_BC_KEYSET_INSTANT;
    ks.at = T0;
    ks.inclusive = 1;
    ks.pos = 4;
    ks.total = 7;
    ks.round = 2;
    tok = ferry__bc_keyset_format(&ks);
    assert_string_equal(tok, "I:1715680800:1:4:7:2:");
    assert_int_equal(ferry__bc_keyset_parse(tok, &back), 0);
    assert_memory_equal(&ks, &back, sizeof(ks));
    free(tok);

    /* A full page of the longest ids still fits the bound the parser enforces. */
    memset(&ks, 0, sizeof(ks));
    ks.mode = FERRY_BC_KEYSET_INSTANT;
    ks.at = 253402300799LL;
    ks.pos = ks.total = INT64_MAX;
    ks.round = FERRY_BC_KEYSET_MAX_ROUNDS;
    for (size_t i = 0; i < FERRY_BC_KEYSET_MAX_SEEN; i++) {
        ks.seen[ks.nseen++] = INT64_MAX - (int64_t)i;
    }
    tok = ferry__bc_keyset_format(&ks);
    assert_true(strlen(tok) <= FERRY_BC_KEYSET_TOKEN_MAX);
    assert_int_equal(ferry__bc_keyset_parse(tok, &back), 0);
    assert_memory_equal(&ks, &back, sizeof(ks));
    free(tok);
}

static void test_keyset_rejects_foreign_tokens(void **state)
{
    static const char *const bad[] = {
        "",
        "2",
        "0",
        "-1",
        "A",
        "A:",
        "A:1",
        "A:1:0",
        "A:1:2:",
        "A:-1:0:",
        "A:+1:0:",
        "A:1:0:1,",
        "A:1:0:,1",
        "A:1:0:1,,2",
        "A:1:0:0",
        "A:1:0:x",
        "A:1:0:1 ",
        "A:253402300800:0:",
        "A:1:0:99999999999999999999",
        "I:1:0:1:2:",
        "I:1:0:1:2:9:",
        "I:1:0:1:2",
        "X:1:0:",
        "a:1:0:",
    };
    struct ferry_bc_keyset ks;
    char many[FERRY_BC_KEYSET_TOKEN_MAX + 64];
    size_t len;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ferry__bc_keyset_parse(bad[i], &ks) != FERRY_EINVAL) {
            fail_msg("token '%s' was accepted", bad[i]);
        }
    }
    /* One id more than a page can report. */
    len = (size_t)snprintf(many, sizeof(many), "A:1:0:");
    for (int i = 1; i <= FERRY_BC_KEYSET_MAX_SEEN + 1; i++) {
        len += (size_t)snprintf(many + len, sizeof(many) - len, "%s%d", i > 1 ? "," : "", i);
    }
    assert_int_equal(ferry__bc_keyset_parse(many, &ks), FERRY_EINVAL);
}

static void test_keyset_wanted_skips_what_was_read(void **state)
{
    struct ferry_bc_keyset ks;
    struct ferry_bc_keyset_row older = {5, T0 - 1}, seen = {7, T0}, unseen = {8, T0},
                               later = {7, T0 + 1};
    assert_int_equal(ferry__bc_keyset_parse(NULL, &ks), 0);
    assert_true(ferry__bc_keyset_wanted(&ks, &older));
    assert_int_equal(ferry__bc_keyset_parse("A:1715680800:0:7", &ks), 0);
    assert_false(ferry__bc_keyset_wanted(&ks, &older));
    assert_false(ferry__bc_keyset_wanted(&ks, &seen));
    assert_true(ferry__bc_keyset_wanted(&ks, &unseen));
    /* The same record changed again: a new change, so reported again. */
    assert_true(ferry__bc_keyset_wanted(&ks, &later));
    assert_int_equal(ferry__bc_keyset_parse("I:1715680800:0:0:0:0:7", &ks), 0);
    assert_false(ferry__bc_keyset_wanted(&ks, &older));
    assert_false(ferry__bc_keyset_wanted(&ks, &seen));
    assert_true(ferry__bc_keyset_wanted(&ks, &unseen));
    assert_false(ferry__bc_keyset_wanted(&ks, &later));
}

/* ferry__bc_keyset_next on `cur` (a token or NULL) with rows given as id/offset-from-T0 pairs. */
static int step(const char *cur_token, int instant, const int64_t *pairs, size_t n, int limit,
                int64_t total, int64_t now_s, struct ferry_bc_keyset *next, int *more,
                const char **why)
{
    struct ferry_bc_keyset cur;
    struct ferry_bc_keyset_row rows[16];
    assert_true(n <= 16);
    assert_int_equal(ferry__bc_keyset_parse(cur_token, &cur), 0);
    for (size_t i = 0; i < n; i++) {
        rows[i].id = pairs[2 * i];
        rows[i].t = T0 + pairs[2 * i + 1];
    }
    return ferry__bc_keyset_next(&cur, instant, rows, n, limit, total, now_s, next, more, why);
}

static void assert_token(const struct ferry_bc_keyset *ks, const char *want)
{
    char *tok = ferry__bc_keyset_format(ks);
    assert_non_null(tok);
    assert_string_equal(tok, want);
    free(tok);
}

static void test_keyset_after_moves_to_the_last_instant(void **state)
{
    struct ferry_bc_keyset next;
    const char *why;
    int more = -1;
    const int64_t full[] = {1, 1, 2, 2, 3, 2};
    const int64_t shorter[] = {4, 5};
    const int64_t with_seen[] = {3, 2, 4, 2, 5, 9};

    assert_int_equal(step(NULL, 0, full, 3, 3, -1, NOW_MS / 1000, &next, &more, &why), 0);
    assert_int_equal(more, 1);
    /* The next page starts at the last instant read and skips the two ids read at it. */
    assert_token(&next, "A:1715680802:0:2,3");
    assert_int_equal(step(NULL, 0, shorter, 1, 3, -1, NOW_MS / 1000, &next, &more, &why), 0);
    assert_int_equal(more, 0);
    assert_int_equal(step(NULL, 0, NULL, 0, 3, -1, NOW_MS / 1000, &next, &more, &why), 0);
    assert_int_equal(more, 0);
    assert_int_equal(
        step("A:1715680802:0:2,3", 0, with_seen, 3, 3, -1, NOW_MS / 1000, &next, &more, &why), 0);
    assert_token(&next, "A:1715680809:0:5");
}

static void test_keyset_full_instant_is_read_on_its_own(void **state)
{
    struct ferry_bc_keyset next;
    const char *why;
    int more;
    const int64_t same[] = {4, 7, 5, 7, 6, 7};
    const int64_t seen_and_same[] = {3, 2, 4, 2, 5, 2};

    assert_int_equal(step(NULL, 0, same, 3, 3, -1, NOW_MS / 1000, &next, &more, &why), 0);
    assert_int_equal(more, 1);
    assert_token(&next, "I:1715680807:0:0:0:0:4,5,6");
    /* Without it, this page would come back forever: all three were read already. */
    assert_int_equal(
        step("A:1715680802:0:3,4,5", 0, seen_and_same, 3, 3, -1, NOW_MS / 1000, &next, &more, &why),
        0);
    assert_token(&next, "I:1715680802:0:0:0:0:3,4,5");
}

static void test_keyset_recent_instant_waits_for_the_next_poll(void **state)
{
    struct ferry_bc_keyset next;
    const char *why;
    int more = -1;
    const int64_t same[] = {4, 7, 5, 7};
    int64_t now_s = T0 + 7 + FERRY_BC_KEYSET_SETTLE_S - 1;
    assert_int_equal(step(NULL, 0, same, 2, 2, -1, now_s, &next, &more, &why), 0);
    assert_int_equal(more, 0);
    assert_int_equal(next.mode, FERRY_BC_KEYSET_INSTANT);
    assert_true(next.at == T0 + 7);
    assert_int_equal(step(NULL, 0, same, 2, 2, -1, now_s + 1, &next, &more, &why), 0);
    assert_int_equal(more, 1);
}

static void test_keyset_instant_by_pages_walks_back(void **state)
{
    struct ferry_bc_keyset next;
    const char *why;
    int more;
    int64_t now_s = NOW_MS / 1000;
    const int64_t p1[] = {4, 7, 5, 7}, p4[] = {10, 7}, p3[] = {8, 7, 9, 7}, p2[] = {6, 7, 11, 7};

    /* Page 1 counts the instant: 7 records, 4 pages of 2, read from the last. */
    assert_int_equal(step("I:1715680807:0:0:0:0:4,5", 0, p1, 2, 2, 7, now_s, &next, &more, &why),
                     0);
    assert_token(&next, "I:1715680807:0:4:7:0:4,5");
    assert_int_equal(step("I:1715680807:0:4:7:0:4,5", 0, p4, 1, 2, 7, now_s, &next, &more, &why),
                     0);
    assert_token(&next, "I:1715680807:0:3:7:0:10");
    /* One record left the instant (it changed): the count drops, the walk goes on. */
    assert_int_equal(step("I:1715680807:0:3:7:0:10", 0, p3, 2, 2, 6, now_s, &next, &more, &why), 0);
    assert_token(&next, "I:1715680807:0:2:6:0:8,9");
    assert_int_equal(step("I:1715680807:0:2:6:0:8,9", 0, p2, 2, 2, 6, now_s, &next, &more, &why),
                     0);
    assert_token(&next, "I:1715680807:0:1:6:0:6,11");
    /* Page 1 again, then the second after the instant. */
    assert_int_equal(step("I:1715680807:0:1:6:0:6,11", 0, p1, 2, 2, 6, now_s, &next, &more, &why),
                     0);
    assert_int_equal(more, 1);
    assert_token(&next, "A:1715680808:0:");
    /* An instant that fits page 1 is done at once. */
    assert_int_equal(step("I:1715680807:1:0:0:0:4,5", 0, p1, 2, 2, 2, now_s, &next, &more, &why),
                     0);
    assert_token(&next, "A:1715680808:1:");
}

static void test_keyset_instant_that_grew_is_read_again(void **state)
{
    struct ferry_bc_keyset next;
    const char *why;
    int more;
    int64_t now_s = NOW_MS / 1000;
    const int64_t p[] = {8, 7, 9, 7};
    char tok[64];

    assert_int_equal(step("I:1715680807:0:3:6:0:10", 0, p, 2, 2, 9, now_s, &next, &more, &why), 0);
    assert_token(&next, "I:1715680807:0:5:9:1:8,9");
    /* A count that keeps moving is not chased for ever. */
    snprintf(tok, sizeof(tok), "I:1715680807:0:3:6:%d:10", FERRY_BC_KEYSET_MAX_ROUNDS);
    assert_int_equal(step(tok, 0, p, 2, 2, 9, now_s, &next, &more, &why), 0);
    assert_int_equal(next.pos, 2);
    assert_int_equal(next.round, FERRY_BC_KEYSET_MAX_ROUNDS);
    /* Without a count an instant cannot be read by pages. */
    assert_int_equal(step("I:1715680807:0:0:0:0:", 0, p, 2, 2, -1, now_s, &next, &more, &why),
                     FERRY_EPROTO);
    assert_non_null(why);
}

static void test_keyset_instant_by_ids(void **state)
{
    struct ferry_bc_keyset next;
    const char *why;
    int more;
    int64_t now_s = NOW_MS / 1000;
    const int64_t p1[] = {100, 7, 103, 7}, p2[] = {104, 7}, bad[] = {103, 7, 105, 7};

    assert_int_equal(step("I:1715680807:0:0:0:0:100,103", FERRY_BC_INSTANT_IDS, p1, 2, 2, -1, now_s,
                          &next, &more, &why),
                     0);
    assert_token(&next, "I:1715680807:0:103:0:0:100,103");
    assert_int_equal(step("I:1715680807:0:103:0:0:100,103", FERRY_BC_INSTANT_IDS, p2, 1, 2, -1,
                          now_s, &next, &more, &why),
                     0);
    assert_int_equal(more, 1);
    assert_token(&next, "A:1715680808:0:");
    /* Ids at or below the minimum asked for: the filter was ignored, the walk would loop. */
    assert_int_equal(step("I:1715680807:0:103:0:0:", FERRY_BC_INSTANT_IDS, bad, 2, 2, -1, now_s,
                          &next, &more, &why),
                     FERRY_EPROTO);
}

static void test_keyset_inclusive_bound_is_learnt(void **state)
{
    struct ferry_bc_keyset next;
    const char *why;
    int more;
    int64_t now_s = NOW_MS / 1000;
    const int64_t mixed[] = {1, -1, 2, 0, 3, 4}, older[] = {1, -1, 2, -1}, tail[] = {1, -1, 2, 0};

    /* Asked from T0 - 1 in case the bound is exclusive; a record of T0 - 1 says it is not. */
    assert_int_equal(step("A:1715680800:0:", 0, mixed, 3, 3, -1, now_s, &next, &more, &why), 0);
    assert_token(&next, "A:1715680804:1:3");
    /* A whole page of the second before: ask again with the exact bound. */
    assert_int_equal(step("A:1715680800:0:9", 0, older, 2, 2, -1, now_s, &next, &more, &why), 0);
    assert_int_equal(more, 1);
    assert_token(&next, "A:1715680800:1:9");
    assert_int_equal(step("A:1715680800:1:9", 0, older, 2, 2, -1, now_s, &next, &more, &why),
                     FERRY_EPROTO);
    /* The older records do not count towards "one instant fills the page". */
    assert_int_equal(step("A:1715680800:0:", 0, tail, 2, 2, -1, now_s, &next, &more, &why), 0);
    assert_token(&next, "I:1715680800:1:0:0:0:2");
}

static void test_keyset_refuses_pages_that_contradict_the_request(void **state)
{
    struct ferry_bc_keyset next;
    const char *why = NULL;
    int more;
    const int64_t unsorted[] = {1, 5, 2, 3}, three[] = {1, 1, 2, 2, 3, 3};
    assert_int_equal(step(NULL, 0, unsorted, 2, 2, -1, NOW_MS / 1000, &next, &more, &why),
                     FERRY_EPROTO);
    assert_non_null(why);
    assert_int_equal(step(NULL, 0, three, 3, 2, -1, NOW_MS / 1000, &next, &more, &why),
                     FERRY_EPROTO);
    assert_int_equal(step(NULL, 0, three, 3, FERRY_BC_KEYSET_MAX_SEEN + 1, -1, NOW_MS / 1000, &next,
                          &more, &why),
                     FERRY_EPROTO);
}

/* ---- a store that changes while it is read ----------------------------------------------- */

#define MODEL_MAX 200

struct model {
    size_t n;
    int64_t id[MODEL_MAX];
    int64_t t[MODEL_MAX];
    int64_t now;
    unsigned rng;
};

static unsigned model_rand(struct model *m)
{
    m->rng = m->rng * 1103515245u + 12345u;
    return (m->rng >> 16) & 0x7fff;
}

/* Sorted (t, id): the order of a date-sorted list with a stable tie-break. */
static int by_time(const void *a, const void *b)
{
    const struct ferry_bc_keyset_row *x = a, *y = b;
    if (x->t != y->t) {
        return x->t < y->t ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

static int by_id(const void *a, const void *b)
{
    const struct ferry_bc_keyset_row *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * One page as the API would answer `ks`: FIRST from `since`, AFTER from
 * ks->at, INSTANT exactly ks->at by page number (pages) or from id pos + 1.
 * The order within one instant is shuffled for AFTER pages, which must not
 * depend on it. Returns the row count; *total counts all matches.
 */
static size_t model_page(struct model *m, const struct ferry_bc_keyset *ks, int ids, int64_t since,
                         int limit, struct ferry_bc_keyset_row *out, int64_t *total)
{
    static struct ferry_bc_keyset_row all[MODEL_MAX];
    size_t k = 0, from = 0;
    for (size_t i = 0; i < m->n; i++) {
        int keep;
        if (ks->mode == FERRY_BC_KEYSET_FIRST) {
            keep = m->t[i] >= since;
        } else if (ks->mode == FERRY_BC_KEYSET_AFTER) {
            keep = m->t[i] >= ks->at;
        } else {
            keep = m->t[i] == ks->at && (!ids || m->id[i] > ks->pos);
        }
        if (keep) {
            all[k].id = m->id[i];
            all[k].t = m->t[i];
            k++;
        }
    }
    qsort(all, k, sizeof(all[0]), ks->mode == FERRY_BC_KEYSET_INSTANT && ids ? by_id : by_time);
    if (ks->mode != FERRY_BC_KEYSET_INSTANT) {
        for (size_t i = 0; i + 1 < k; i++) {
            size_t j = i + 1 + model_rand(m) % (k - i - 1);
            if (all[j].t == all[i].t) {
                struct ferry_bc_keyset_row tmp = all[i];
                all[i] = all[j];
                all[j] = tmp;
            }
        }
    } else if (!ids && ks->pos > 1) {
        from = (size_t)((ks->pos - 1) * limit);
    }
    *total = (int64_t)k;
    size_t n = 0;
    for (size_t i = from; i < k && n < (size_t)limit; i++) {
        out[n++] = all[i];
    }
    return n;
}

/* Between two pages: the clock may tick, records change (to now) and new ones appear. */
static void model_churn(struct model *m)
{
    m->now += model_rand(m) % 2;
    int changes = (int)(model_rand(m) % 4);
    for (int c = 0; c < changes; c++) {
        if (model_rand(m) % 5 == 0 && m->n < MODEL_MAX) {
            m->id[m->n] = 1000 + (int64_t)m->n;
            m->t[m->n] = m->now;
            m->n++;
        } else {
            m->t[model_rand(m) % m->n] = m->now;
        }
    }
}

/*
 * A whole poll over the model. Afterwards every record must have been
 * reported as it is now, or have changed at or after the highest time
 * reported (the host's next `since`): nothing falls between two polls.
 */
static void model_poll(unsigned seed, int ids, int limit)
{
    struct model m;
    static int64_t reported[MODEL_MAX];
    static int64_t prev_t[MODEL_MAX];
    struct ferry_bc_keyset ks, next;
    struct ferry_bc_keyset_row rows[FERRY_BC_KEYSET_MAX_SEEN];
    json_t *tokens = json_object();
    int64_t since = 100, high = INT64_MIN, total;
    int more = 1, pages = 0;

    memset(&m, 0, sizeof(m));
    m.rng = seed;
    m.n = 60;
    for (size_t i = 0; i < m.n; i++) {
        m.id[i] = (int64_t)i + 1;
        /* A third share one second, more than a page holds; the rest spread over a minute. */
        m.t[i] = i % 3 == 0 ? 130 : 100 + (int64_t)(model_rand(&m) % 60);
    }
    m.now = 1000;
    for (size_t i = 0; i < MODEL_MAX; i++) {
        reported[i] = prev_t[i] = INT64_MIN;
    }
    assert_int_equal(ferry__bc_keyset_parse(NULL, &ks), 0);
    ks.at = since;
    while (more) {
        const char *why = NULL;
        int64_t cur_t[MODEL_MAX];
        size_t n = model_page(&m, &ks, ids, since, limit, rows, &total);
        for (size_t i = 0; i < MODEL_MAX; i++) {
            cur_t[i] = INT64_MIN;
        }
        for (size_t i = 0; i < n; i++) {
            size_t at = (size_t)(rows[i].id >= 1000 ? rows[i].id - 1000 : rows[i].id - 1);
            if (!ferry__bc_keyset_wanted(&ks, &rows[i])) {
                continue;
            }
            /* The host stops a poll whose pages repeat; a record changed since is news. */
            if (prev_t[at] == rows[i].t) {
                fail_msg("seed %u: id %lld at %lld reported on two pages in a row", seed,
                         (long long)rows[i].id, (long long)rows[i].t);
            }
            cur_t[at] = rows[i].t;
            reported[at] = rows[i].t;
            high = rows[i].t > high ? rows[i].t : high;
        }
        memcpy(prev_t, cur_t, sizeof(prev_t));
        if (ferry__bc_keyset_next(&ks, ids, rows, n, limit, total, m.now, &next, &more, &why) < 0) {
            fail_msg("seed %u: %s", seed, why);
        }
        if (more) {
            char *tok = ferry__bc_keyset_format(&next);
            assert_non_null(tok);
            if (json_object_get(tokens, tok)) {
                fail_msg("seed %u: token %s handed out twice", seed, tok);
            }
            json_object_set_new(tokens, tok, json_true());
            free(tok);
            ks = next;
        }
        if (++pages > 2000) {
            fail_msg("seed %u: the walk does not end", seed);
        }
        model_churn(&m);
    }
    for (size_t i = 0; i < m.n; i++) {
        size_t at = (size_t)(m.id[i] >= 1000 ? m.id[i] - 1000 : m.id[i] - 1);
        if (reported[at] != m.t[i] && m.t[i] < high) {
            fail_msg("seed %u (%s, limit %d): id %lld changed at %lld was lost (highest read %lld)",
                     seed, ids ? "ids" : "pages", limit, (long long)m.id[i], (long long)m.t[i],
                     (long long)high);
        }
    }
    json_decref(tokens);
}

static void test_keyset_model_store_loses_nothing(void **state)
{
    for (unsigned seed = 1; seed <= 400; seed++) {
        model_poll(seed, FERRY_BC_INSTANT_PAGES, 2 + (int)(seed % 7));
        model_poll(seed, FERRY_BC_INSTANT_IDS, 2 + (int)(seed % 7));
    }
}

/* ---- the lists, through the plugin ----------------------------------------------------- */

static const struct ferry_connector *conn;
static void *dl;

static int group_setup(void **state)
{
    return fake_host_load_plugin("bigcommerce", &dl, &conn);
}

static int group_teardown(void **state)
{
    if (dl) {
        dlclose(dl);
    }
    return 0;
}

static int setup(void **state)
{
    struct ferry_err err = {0};
    void *st = NULL;
    json_t *cfg = json_loads("{\"store_hash\": \"abc123\", \"access_token\": \"tok\","
                             " \"webhook_secret\": \"s\", \"page_limit\": 2,"
                             " \"order_details_in_poll\": false}",
                             0, NULL);
    fake_host_reset();
    fake_host_set_now(NOW_MS);
    assert_int_equal(conn->open(fake_host_api(), fake_host_call(), cfg, &st, &err), 0);
    json_decref(cfg);
    *state = st;
    return 0;
}

static int teardown(void **state)
{
    conn->close(*state);
    fake_host_reset();
    return 0;
}

/*
 * One list_changes call: the request it sent must be `url` (after the
 * store prefix), the ids reported `ids` (comma-separated, "" for none), and
 * the token it hands out `next` (NULL: the walk ended). Returns the token.
 */
static char *poll_page(void *st, const char *object, const char *since, char *token,
                       const char *url, const char *ids, const char *next)
{
    struct ferry_err err = {0};
    json_t *page = NULL, *item;
    char got[512] = "";
    size_t i, before = fake_host_nrequests();
    int rc = conn->list_changes(st, fake_host_call(), object, since, token, &page, &err);
    char *out = NULL;
    if (rc != 0) {
        fail_msg("list_changes(%s, %s): %d %s", object, token ? token : "NULL", rc, err.msg);
    }
    assert_int_equal(fake_host_nrequests(), before + 1);
    /* The request after its API prefix (/stores/<hash>/v2|v3 or /api/v3/io). */
    const char *sent = fake_host_request(before)->url;
    const char *tail = strstr(sent, "/api/v3/io/");
    if (tail) {
        tail += strlen("/api/v3/io");
    } else {
        tail = strstr(sent, "/stores/abc123/");
        assert_non_null(tail);
        tail += strlen("/stores/abc123/v3");
    }
    assert_string_equal(tail, url);
    json_array_foreach(json_object_get(page, "items"), i, item)
    {
        size_t len = strlen(got);
        snprintf(got + len, sizeof(got) - len, "%s%s", i ? "," : "",
                 json_string_value(json_object_get(item, "id")));
    }
    assert_string_equal(got, ids);
    if (next) {
        assert_string_equal(json_string_value(json_object_get(page, "next")), next);
        out = strdup(next);
    } else {
        assert_true(json_is_null(json_object_get(page, "next")));
    }
    json_decref(page);
    free(token);
    return out;
}

/* A v3 envelope of customers given as id/minute pairs (2024-05-14T10:<minute>:00Z). */
static char *customers(const int *pairs, size_t n, int total)
{
    char *s = malloc(4096);
    size_t len;
    assert_non_null(s);
    len = (size_t)snprintf(s, 4096, "{\"data\": [");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(s + len, 4096 - len,
                                "%s{\"id\": %d, \"email\": \"c%d@example.com\","
                                " \"date_modified\": \"2024-05-14T10:%02d:00Z\"}",
                                i ? ", " : "", pairs[2 * i], pairs[2 * i], pairs[2 * i + 1]);
    }
    snprintf(s + len, 4096 - len,
             "], \"meta\": {\"pagination\": {\"total\": %d, \"count\": %zu, \"per_page\": 2,"
             " \"current_page\": 1, \"total_pages\": %d}}}",
             total, n, (total + 1) / 2);
    return s;
}

static void push_customers(const int *pairs, size_t n, int total)
{
    char *body = customers(pairs, n, total);
    fake_host_push(200, NULL, body);
    free(body);
}

#define INCLUDE "&include=addresses,attributes,formfields"

static void test_customer_walk_by_key_and_instant(void **state)
{
    void *st = *state;
    const char *since = "2024-05-14T10:00:00Z";
    char *tok = NULL;
    const int p1[] = {1, 1, 2, 2}, p2[] = {2, 2, 3, 3}, p3[] = {6, 5, 7, 5}, i1[] = {6, 5, 7, 5},
              i3[] = {10, 5}, i2[] = {8, 5, 9, 5};

    push_customers(p1, 2, 9);
    push_customers(p2, 2, 8);
    push_customers(p3, 2, 5);
    push_customers(i1, 2, 5);
    push_customers(i3, 1, 5);
    push_customers(i2, 2, 5);
    push_customers(i1, 2, 5);
    push_customers(NULL, 0, 0);

    tok = poll_page(st, "customer", since, tok,
                    "/customers?date_modified:min=2024-05-14T10:00:00Z"
                    "&sort=date_modified:asc&limit=2&page=1" INCLUDE,
                    "1,2", "A:1715680920:0:2");
    /* Customer 2 again (the bound is inclusive) but not reported again. */
    tok = poll_page(st, "customer", since, tok,
                    "/customers?date_modified:min=2024-05-14T10:02:00Z"
                    "&sort=date_modified:asc&limit=2&page=1" INCLUDE,
                    "3", "A:1715680980:0:3");
    /* A full page of one second: that second is read on its own, by page from its end. */
    tok = poll_page(st, "customer", since, tok,
                    "/customers?date_modified:min=2024-05-14T10:03:00Z"
                    "&sort=date_modified:asc&limit=2&page=1" INCLUDE,
                    "6,7", "I:1715681100:0:0:0:0:6,7");
    assert_true(fake_host_log_count(FERRY_LOG_INFO) >= 1);
    assert_non_null(strstr(fake_host_last_log(), "on its own"));
#define INSTANT_Q                                                                                  \
    "/customers?date_modified:min=2024-05-14T10:05:00Z&date_modified:max=2024-05-14T10:05:00Z"     \
    "&sort=date_modified:asc&limit=2"
    tok = poll_page(st, "customer", since, tok, INSTANT_Q "&page=1" INCLUDE, "",
                    "I:1715681100:0:3:5:0:6,7");
    tok = poll_page(st, "customer", since, tok, INSTANT_Q "&page=3" INCLUDE, "10",
                    "I:1715681100:0:2:5:0:10");
    tok = poll_page(st, "customer", since, tok, INSTANT_Q "&page=2" INCLUDE, "8,9",
                    "I:1715681100:0:1:5:0:8,9");
    tok = poll_page(st, "customer", since, tok, INSTANT_Q "&page=1" INCLUDE, "6,7",
                    "A:1715681101:0:");
    tok = poll_page(st, "customer", since, tok,
                    "/customers?date_modified:min=2024-05-14T10:05:01Z"
                    "&sort=date_modified:asc&limit=2&page=1" INCLUDE,
                    "", NULL);
    assert_null(tok);
    assert_int_equal(fake_host_pending(), 0);
}

static void test_customer_recent_instant_ends_the_poll(void **state)
{
    void *st = *state;
    const int p[] = {4, 5, 5, 5};
    push_customers(p, 2, 2);
    /* Ten seconds after the data: records may still join 10:05:00, so the next poll reads it. */
    fake_host_set_now((T0 + 310) * 1000);
    char *tok = poll_page(st, "customer", NULL, NULL,
                          "/customers?sort=date_modified:asc&limit=2&page=1" INCLUDE, "4,5", NULL);
    assert_null(tok);
    assert_non_null(strstr(fake_host_last_log(), "next poll"));
}

static void test_customer_list_refuses_broken_pages(void **state)
{
    void *st = *state;
    struct ferry_err err = {0};
    json_t *page = NULL;
    const int unsorted[] = {1, 5, 2, 3}, three[] = {1, 1, 2, 2, 3, 3};
    push_customers(unsorted, 2, 2);
    assert_int_equal(conn->list_changes(st, fake_host_call(), "customer", NULL, NULL, &page, &err),
                     FERRY_EPROTO);
    assert_non_null(strstr(err.msg, "date order"));
    push_customers(three, 3, 3);
    assert_int_equal(conn->list_changes(st, fake_host_call(), "customer", NULL, NULL, &page, &err),
                     FERRY_EPROTO);
    fake_host_push(200, NULL, "{\"data\": [], \"meta\": {}}");
    assert_int_equal(conn->list_changes(st, fake_host_call(), "customer", NULL, NULL, &page, &err),
                     FERRY_EPROTO);
    assert_non_null(strstr(err.msg, "total"));
    assert_null(page);
    for (const char *const *o =
             (const char *const[]){"customer", "order", "product", "company", NULL};
         *o; o++) {
        assert_int_equal(conn->list_changes(st, fake_host_call(), *o, NULL, "2", &page, &err),
                         FERRY_EINVAL);
        assert_int_equal(
            conn->list_changes(st, fake_host_call(), *o, NULL, "A:1:0:1,", &page, &err),
            FERRY_EINVAL);
    }
}

/* A v2 order list body: orders given as id/minute pairs. */
static void push_orders(const int *pairs, size_t n)
{
    char body[4096];
    size_t len = (size_t)snprintf(body, sizeof(body), "[");
    if (n == 0) {
        fake_host_push(204, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(body + len, sizeof(body) - len,
                                "%s{\"id\": %d, \"customer_id\": 0, \"status_id\": %d,"
                                " \"date_modified\": \"Tue, 14 May 2024 10:%02d:00 +0000\"}",
                                i ? ", " : "", pairs[2 * i], pairs[2 * i] == 102 ? 0 : 11,
                                pairs[2 * i + 1]);
    }
    snprintf(body + len, sizeof(body) - len, "]");
    fake_host_push(200, NULL, body);
}

static void test_order_instant_by_ids(void **state)
{
    void *st = *state;
    char *tok = NULL;
    const int p1[] = {100, 5, 101, 5}, i1[] = {100, 5, 101, 5}, i2[] = {102, 5, 103, 5},
              i3[] = {104, 5};
    push_orders(p1, 2);
    push_orders(i1, 2);
    push_orders(i2, 2);
    push_orders(i3, 1);
    push_orders(NULL, 0);
    tok = poll_page(st, "order", "2024-05-14T10:05:00Z", tok,
                    "/orders?min_date_modified=Tue%2C%2014%20May%202024%2010:05:00%20%2B0000"
                    "&sort=date_modified&limit=2&page=1",
                    "100,101", "I:1715681100:0:0:0:0:100,101");
#define ORDER_INSTANT                                                                              \
    "/orders?min_date_modified=Tue%2C%2014%20May%202024%2010:05:00%20%2B0000"                      \
    "&max_date_modified=Tue%2C%2014%20May%202024%2010:05:00%20%2B0000&sort=id&limit=2&page=1"
    tok = poll_page(st, "order", "2024-05-14T10:05:00Z", tok, ORDER_INSTANT, "",
                    "I:1715681100:0:101:0:0:100,101");
    /* 102 is Incomplete: left out of the page, still part of the walk. */
    tok = poll_page(st, "order", "2024-05-14T10:05:00Z", tok, ORDER_INSTANT "&min_id=102", "103",
                    "I:1715681100:0:103:0:0:102,103");
    tok = poll_page(st, "order", "2024-05-14T10:05:00Z", tok, ORDER_INSTANT "&min_id=104", "104",
                    "A:1715681101:0:");
    tok = poll_page(st, "order", "2024-05-14T10:05:00Z", tok,
                    "/orders?min_date_modified=Tue%2C%2014%20May%202024%2010:05:01%20%2B0000"
                    "&sort=date_modified&limit=2&page=1",
                    "", NULL);
    assert_null(tok);
}

static void test_product_walk_uses_date_bounds(void **state)
{
    void *st = *state;
    char *tok = NULL;
    const char *same = "{\"data\": [{\"id\": 77, \"sku\": \"A\", \"name\": \"a\", \"price\": 1,"
                       " \"date_modified\": \"2024-05-14T10:05:00+00:00\"},"
                       " {\"id\": 78, \"sku\": \"B\", \"name\": \"b\", \"price\": 2,"
                       " \"date_modified\": \"2024-05-14T10:05:00+00:00\"}],"
                       " \"meta\": {\"pagination\": {\"total\": 2, \"count\": 2}}}";
    fake_host_push(200, NULL, same);
    fake_host_push(200, NULL, same);
    fake_host_push(200, NULL, "{\"data\": [], \"meta\": {\"pagination\": {\"total\": 0}}}");
#define PRODUCT_Q "sort=date_modified&direction=asc&include_fields=sku,name,price,date_modified"
    tok = poll_page(st, "product", NULL, tok, "/catalog/products?" PRODUCT_Q "&limit=2&page=1",
                    "77,78", "I:1715681100:0:0:0:0:77,78");
    tok = poll_page(st, "product", NULL, tok,
                    "/catalog/products?date_modified:min=2024-05-14T10:05:00Z"
                    "&date_modified:max=2024-05-14T10:05:00Z&" PRODUCT_Q "&limit=2&page=1",
                    "", "A:1715681101:0:");
    tok = poll_page(st, "product", NULL, tok,
                    "/catalog/products?date_modified:min=2024-05-14T10:05:01Z&" PRODUCT_Q
                    "&limit=2&page=1",
                    "", NULL);
    assert_null(tok);
}

static void push_companies(const long *pairs, size_t n, int total)
{
    char body[4096];
    size_t len = (size_t)snprintf(body, sizeof(body), "{\"code\": 200, \"data\": [");
    for (size_t i = 0; i < n; i++) {
        len +=
            (size_t)snprintf(body + len, sizeof(body) - len,
                             "%s{\"companyId\": %ld, \"companyName\": \"C\", \"updatedAt\": %ld}",
                             i ? ", " : "", pairs[2 * i], pairs[2 * i + 1]);
    }
    snprintf(body + len, sizeof(body) - len,
             "], \"meta\": {\"message\": \"SUCCESS\", \"pagination\": {\"limit\": 2,"
             " \"offset\": 0, \"totalCount\": %d}}}",
             total);
    fake_host_push(200, NULL, body);
}

static void test_company_bound_learns_inclusive(void **state)
{
    void *st = *state;
    char *tok = NULL;
    /* 1715681099 is a second before `since`: the bound sent as since - 1 was inclusive. */
    const long p1[] = {5, 1715681099L, 6, 1715681100L}, i1[] = {6, 1715681100L},
               p2[] = {7, 1715681160L}, p3[] = {8, 1715681200L, 9, 1715681300L},
               p4[] = {9, 1715681300L};
    push_companies(p1, 2, 2);
    push_companies(i1, 1, 1);
    push_companies(p2, 1, 1);
    tok = poll_page(st, "company", "2024-05-14T10:05:00Z", tok,
                    "/companies?minModified=1715681099&sortBy=updatedAt&orderBy=ASC"
                    "&isIncludeExtraFields=1&limit=2&offset=0",
                    "5,6", "I:1715681100:1:0:0:0:6");
    tok = poll_page(st, "company", "2024-05-14T10:05:00Z", tok,
                    "/companies?minModified=1715681100&maxModified=1715681100&sortBy=updatedAt"
                    "&orderBy=ASC&isIncludeExtraFields=1&limit=2&offset=0",
                    "", "A:1715681101:1:");
    tok = poll_page(st, "company", "2024-05-14T10:05:00Z", tok,
                    "/companies?minModified=1715681101&sortBy=updatedAt&orderBy=ASC"
                    "&isIncludeExtraFields=1&limit=2&offset=0",
                    "7", NULL);
    assert_null(tok);

    /* Until then the bound goes out a second early, and a page of an instant by offset. */
    push_companies(p3, 2, 3);
    push_companies(p4, 1, 1);
    tok = poll_page(st, "company", NULL, strdup("A:1715681200:0:8"),
                    "/companies?minModified=1715681199&sortBy=updatedAt&orderBy=ASC"
                    "&isIncludeExtraFields=1&limit=2&offset=0",
                    "9", "A:1715681300:0:9");
    free(tok);
    tok = poll_page(st, "company", NULL, strdup("I:1715681300:0:3:5:0:9"),
                    "/companies?minModified=1715681299&maxModified=1715681301&sortBy=updatedAt"
                    "&orderBy=ASC&isIncludeExtraFields=1&limit=2&offset=4",
                    "", "I:1715681300:0:2:1:0:9");
    free(tok);
}

static void test_b2b_users_keep_offsets(void **state)
{
    void *st = *state;
    const char *body = "{\"code\": 200, \"data\": [{\"id\": 5, \"updatedAt\": 1715681100}],"
                       " \"meta\": {\"pagination\": {\"limit\": 2, \"offset\": 2,"
                       " \"totalCount\": 5}}}";
    fake_host_push(200, NULL, body);
    char *tok = poll_page(st, "company_user", NULL, strdup("2"),
                          "/users?isIncludeExtraFields=1&limit=2&offset=2", "5", "3");
    free(tok);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_keyset_first_page_has_no_token),
        cmocka_unit_test(test_keyset_token_round_trip),
        cmocka_unit_test(test_keyset_rejects_foreign_tokens),
        cmocka_unit_test(test_keyset_wanted_skips_what_was_read),
        cmocka_unit_test(test_keyset_after_moves_to_the_last_instant),
        cmocka_unit_test(test_keyset_full_instant_is_read_on_its_own),
        cmocka_unit_test(test_keyset_recent_instant_waits_for_the_next_poll),
        cmocka_unit_test(test_keyset_instant_by_pages_walks_back),
        cmocka_unit_test(test_keyset_instant_that_grew_is_read_again),
        cmocka_unit_test(test_keyset_instant_by_ids),
        cmocka_unit_test(test_keyset_inclusive_bound_is_learnt),
        cmocka_unit_test(test_keyset_refuses_pages_that_contradict_the_request),
        cmocka_unit_test(test_keyset_model_store_loses_nothing),
    };
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest lists[] = {
        T(test_customer_walk_by_key_and_instant),
        T(test_customer_recent_instant_ends_the_poll),
        T(test_customer_list_refuses_broken_pages),
        T(test_order_instant_by_ids),
        T(test_product_walk_uses_date_bounds),
        T(test_company_bound_learns_inclusive),
        T(test_b2b_users_keep_offsets),
    };
    int failed = cmocka_run_group_tests_name("bigcommerce_keyset", pure, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("bigcommerce_keyset_lists", lists, group_setup, group_teardown);
    return failed;
}
