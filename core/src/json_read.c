/* SPDX-License-Identifier: MIT */
/*
 * JSON text -> jansson tree without jansson's lexer (see json_read.h). The
 * grammar, the limits and every check follow jansson 2.14's load.c, so that
 * what is read here is what json_loadb would have built; anything else
 * returns "not certain" and the whole text goes to json_loadb.
 */
#include "json_read.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* jansson's JSON_PARSER_MAX_DEPTH (load.c; not in its header): deeper is its error. */
#define READ_MAX_DEPTH 2048

/* The flags whose meaning is implemented here; any other sends the text to jansson. */
#define READ_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/* Reals longer than this (never seen in records) are left to jansson. */
#define READ_REAL_MAX 63

/* Where one element of the kept array lies in the input. */
struct span {
    size_t start, end;
    bool dup; /* it holds an object with a repeated key, which the text would keep */
};

struct reader {
    const unsigned char *buf; /* the first byte */
    const unsigned char *p;   /* next byte */
    const unsigned char *end; /* one past the last byte */
    size_t flags;             /* json_loadb flags, within READ_FLAGS */
    int depth;                /* values open, counted as jansson counts them */
    unsigned dups;            /* repeated keys met so far */
    /* ferry_json_loadb_items: the top-level member whose array elements are kept. */
    const char *member;
    size_t member_len;
    bool keep_next;    /* the array about to be read is that member's */
    bool member_seen;  /* it came once already; a second one would replace the first */
    bool spans_failed; /* no usable spans (out of memory, the member twice) */
    struct span *spans;
    size_t nspans, cap_spans;
};

static json_t *read_value(struct reader *r);

static bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

static void skip_ws(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t')) {
        r->p++;
    }
}

/*
 * Length of the UTF-8 sequence at s, 0 when jansson's stream would refuse it
 * (utf8_check_first/utf8_check_full: no overlong forms, no surrogates,
 * nothing past U+10FFFF).
 */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    uint32_t v;
    size_t n;

    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07u;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0u) != 0x80u) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF)) {
        return 0;
    }
    return n;
}

/* The four hex digits at s as a code unit, -1 when they are not four hex digits. */
static int32_t hex4(const unsigned char *s, const unsigned char *end)
{
    int32_t v = 0;
    if (end - s < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i];
        int d;
        if (is_digit(c)) {
            d = (int)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (int)(c - 'a') + 10;
        } else if (c >= 'A' && c <= 'F') {
            d = (int)(c - 'A') + 10;
        } else {
            return -1;
        }
        v = (v << 4) | d;
    }
    return v;
}

static size_t utf8_put(char *out, int32_t v)
{
    if (v < 0x80) {
        out[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        out[0] = (char)(0xC0 | (v >> 6));
        out[1] = (char)(0x80 | (v & 0x3F));
        return 2;
    }
    if (v < 0x10000) {
        out[0] = (char)(0xE0 | (v >> 12));
        out[1] = (char)(0x80 | ((v >> 6) & 0x3F));
        out[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (v >> 18));
    out[1] = (char)(0x80 | ((v >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((v >> 6) & 0x3F));
    out[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

/*
 * The rest of a string that has an escape at p; start is past the opening
 * quote. Decodes into a new buffer (*owned, caller frees). \u0000 is refused
 * because jansson refuses it without JSON_ALLOW_NUL (values) and always in
 * keys.
 */
static int read_escaped(struct reader *r, const unsigned char *start, const unsigned char *p,
                        const char **s, size_t *n, char **owned)
{
    const unsigned char *end = r->end;
    size_t len = (size_t)(p - start);
    size_t cap = len + 64;
    char *buf = malloc(cap);

    if (!buf) {
        return -1;
    }
    memcpy(buf, start, len);
    for (;;) {
        unsigned c;
        if (p == end) {
            goto fail;
        }
        if (cap - len < 4) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                goto fail;
            }
            buf = bigger;
            cap *= 2;
        }
        c = *p;
        if (c == '"') {
            break;
        }
        if (c < 0x20) {
            goto fail;
        }
        if (c >= 0x80) {
            size_t k = utf8_len(p, end);
            if (!k) {
                goto fail;
            }
            memcpy(buf + len, p, k);
            len += k;
            p += k;
            continue;
        }
        if (c != '\\') {
            buf[len++] = (char)c;
            p++;
            continue;
        }
        if (end - p < 2) {
            goto fail;
        }
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
            buf[len++] = (char)p[1];
            break;
        case 'b':
            buf[len++] = '\b';
            break;
        case 'f':
            buf[len++] = '\f';
            break;
        case 'n':
            buf[len++] = '\n';
            break;
        case 'r':
            buf[len++] = '\r';
            break;
        case 't':
            buf[len++] = '\t';
            break;
        case 'u': {
            int32_t v = hex4(p + 2, end);
            if (v <= 0 || (v >= 0xDC00 && v <= 0xDFFF)) {
                goto fail;
            }
            if (v >= 0xD800 && v <= 0xDBFF) {
                int32_t lo;
                if (end - p < 12 || p[6] != '\\' || p[7] != 'u') {
                    goto fail;
                }
                lo = hex4(p + 8, end);
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    goto fail;
                }
                v = ((v - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
                p += 6;
            }
            len += utf8_put(buf + len, v);
            p += 4;
            break;
        }
        default:
            goto fail;
        }
        p += 2;
    }
    r->p = p + 1;
    *s = buf;
    *n = len;
    *owned = buf;
    return 0;
fail:
    free(buf);
    return -1;
}

/*
 * The string whose opening quote r->p is just past: *s and *n name its bytes,
 * in the input when it has no escape, else in *owned (caller frees). -1 when
 * not certain: a bad escape, a control byte, invalid UTF-8, the end of input.
 */
static int read_string(struct reader *r, const char **s, size_t *n, char **owned)
{
    const unsigned char *start = r->p, *p = r->p, *end = r->end;

    *owned = NULL;
    for (;;) {
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
            p++;
        }
        if (p == end || *p < 0x20) {
            return -1;
        }
        if (*p == '"') {
            *s = (const char *)start;
            *n = (size_t)(p - start);
            r->p = p + 1;
            return 0;
        }
        if (*p == '\\') {
            return read_escaped(r, start, p, s, n, owned);
        }
        size_t k = utf8_len(p, end);
        if (!k) {
            return -1;
        }
        p += k;
    }
}

/* jansson's number grammar (lex_scan_number): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static json_t *read_number(struct reader *r)
{
    const unsigned char *start = r->p, *p = r->p, *end = r->end;
    bool neg = false, real = false;

    if (*p == '-') {
        neg = true;
        p++;
    }
    if (p == end || !is_digit(*p)) {
        return NULL;
    }
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            return NULL;
        }
    } else {
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && *p == '.') {
        real = true;
        p++;
        if (p == end || !is_digit(*p)) {
            return NULL;
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p == end || !is_digit(*p)) {
            return NULL;
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    r->p = p;
    if (!real) {
        /* strtoll's range; past it jansson reports "too big integer". */
        unsigned long long limit = neg ? (unsigned long long)LLONG_MAX + 1u : LLONG_MAX;
        unsigned long long v = 0;
        for (const unsigned char *q = start + neg; q < p; q++) {
            unsigned d = *q - '0';
            if (v > (limit - d) / 10) {
                return NULL;
            }
            v = v * 10 + d;
        }
        if (!neg) {
            return json_integer((json_int_t)v);
        }
        return json_integer(v > (unsigned long long)LLONG_MAX ? LLONG_MIN : -(json_int_t)v);
    }
    /*
     * strtod as jansson calls it. In a locale whose radix is not '.', jansson
     * rewrites the text first; strtod then stops short here and the text
     * goes to jansson, so the locale never makes a difference.
     */
    char text[READ_REAL_MAX + 1];
    size_t len = (size_t)(p - start);
    char *stop = NULL;
    double d;
    if (len > READ_REAL_MAX) {
        return NULL;
    }
    memcpy(text, start, len);
    text[len] = '\0';
    d = strtod(text, &stop);
    if (stop != text + len || isinf(d)) {
        return NULL;
    }
    return json_real(d);
}

/* true, false, null; jansson reads a whole run of letters as one word. */
static json_t *read_word(struct reader *r, const char *word, size_t n, json_t *v)
{
    const unsigned char *after = r->p + n;
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) {
        return NULL;
    }
    if (after < r->end && ((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z'))) {
        return NULL;
    }
    r->p = after;
    return v;
}

static json_t *read_object(struct reader *r)
{
    json_t *obj = json_object();
    size_t nset = 0;
    if (!obj) {
        return NULL;
    }
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return obj;
    }
    for (;;) {
        const char *key;
        size_t klen;
        char *owned = NULL;
        json_t *v;
        int rc;

        if (r->p == r->end || *r->p != '"') {
            goto fail;
        }
        r->p++;
        if (read_string(r, &key, &klen, &owned) < 0) {
            goto fail;
        }
        if ((r->flags & JSON_REJECT_DUPLICATES) && json_object_getn(obj, key, klen)) {
            free(owned);
            goto fail;
        }
        skip_ws(r);
        if (r->p == r->end || *r->p != ':') {
            free(owned);
            goto fail;
        }
        r->p++;
        skip_ws(r);
        if (r->member && r->depth == 1 && klen == r->member_len &&
            memcmp(key, r->member, klen) == 0) {
            r->spans_failed = r->spans_failed || r->member_seen;
            r->member_seen = true;
            r->keep_next = r->p < r->end && *r->p == '[';
        }
        v = r->p < r->end ? read_value(r) : NULL;
        /* A duplicate key replaces the value in place, as jansson's parser does. */
        rc = v ? json_object_setn_new_nocheck(obj, key, klen, v) : -1;
        free(owned);
        if (rc < 0) {
            goto fail;
        }
        nset++;
        skip_ws(r);
        if (r->p == r->end) {
            goto fail;
        }
        if (*r->p == '}') {
            r->p++;
            if (json_object_size(obj) != nset) {
                r->dups++;
            }
            return obj;
        }
        if (*r->p != ',') {
            goto fail;
        }
        r->p++;
        skip_ws(r);
    }
fail:
    json_decref(obj);
    return NULL;
}

static void keep_span(struct reader *r, const unsigned char *start, unsigned dups_before)
{
    if (r->spans_failed) {
        return;
    }
    if (r->nspans == r->cap_spans) {
        size_t cap = r->cap_spans ? r->cap_spans * 2 : 64;
        struct span *s = realloc(r->spans, cap * sizeof(*s));
        if (!s) {
            r->spans_failed = true;
            return;
        }
        r->spans = s;
        r->cap_spans = cap;
    }
    r->spans[r->nspans++] = (struct span){.start = (size_t)(start - r->buf),
                                          .end = (size_t)(r->p - r->buf),
                                          .dup = r->dups != dups_before};
}

static json_t *read_array(struct reader *r)
{
    json_t *arr = json_array();
    bool keep = r->keep_next;
    r->keep_next = false;
    if (!arr) {
        return NULL;
    }
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return arr;
    }
    for (;;) {
        const unsigned char *start = r->p;
        unsigned dups_before = r->dups;
        json_t *v = r->p < r->end ? read_value(r) : NULL;
        if (!v || json_array_append_new(arr, v) < 0) {
            goto fail;
        }
        if (keep) {
            keep_span(r, start, dups_before);
        }
        skip_ws(r);
        if (r->p == r->end) {
            goto fail;
        }
        if (*r->p == ']') {
            r->p++;
            return arr;
        }
        if (*r->p != ',') {
            goto fail;
        }
        r->p++;
        skip_ws(r);
    }
fail:
    json_decref(arr);
    return NULL;
}

/* The value starting at r->p (not at the end of input), or NULL when not certain. */
static json_t *read_value(struct reader *r)
{
    json_t *v = NULL;

    if (++r->depth > READ_MAX_DEPTH) {
        return NULL;
    }
    switch (*r->p) {
    case '{':
        v = read_object(r);
        break;
    case '[':
        v = read_array(r);
        break;
    case '"': {
        const char *s;
        size_t n;
        char *owned;
        r->p++;
        if (read_string(r, &s, &n, &owned) == 0) {
            v = json_stringn_nocheck(s, n);
            free(owned);
        }
        break;
    }
    case 't':
        v = read_word(r, "true", 4, json_true());
        break;
    case 'f':
        v = read_word(r, "false", 5, json_false());
        break;
    case 'n':
        v = read_word(r, "null", 4, json_null());
        break;
    default:
        if (*r->p == '-' || is_digit(*r->p)) {
            v = read_number(r);
        }
        break;
    }
    r->depth--;
    return v;
}

/* The whole text as ferry_json_loadb reads it; r carries what the caller asked to keep. */
static json_t *load(struct reader *r, const char *buf, size_t len, size_t flags,
                    json_error_t *error, bool *mine)
{
    json_t *v = NULL;

    r->buf = r->p = (const unsigned char *)buf;
    r->end = (const unsigned char *)buf + (buf ? len : 0);
    r->flags = flags;
    *mine = false;
    if (buf && !(flags & ~(size_t)READ_FLAGS)) {
        skip_ws(r);
        if (r->p < r->end && ((flags & JSON_DECODE_ANY) || *r->p == '{' || *r->p == '[')) {
            v = read_value(r);
        }
        if (v) {
            skip_ws(r);
            if (r->p != r->end) {
                json_decref(v);
                v = NULL;
            }
        }
    }
    if (!v) {
        /* Errors, and what this reader is not certain of, are jansson's to read and report. */
        return json_loadb(buf, len, flags, error);
    }
    *mine = true;
    if (error) {
        error->line = -1;
        error->column = -1;
        error->position = len > INT_MAX ? INT_MAX : (int)len;
        error->text[0] = '\0';
        snprintf(error->source, sizeof(error->source), "%s", "<buffer>");
    }
    return v;
}

json_t *ferry_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error)
{
    struct reader r = {0};
    bool mine;
    return load(&r, buf, len, flags, error, &mine);
}

/*
 * One string of a valid text, from its opening quote at *pp, written as
 * jansson's dump writes the string it decodes to (dump.c dump_string without
 * flags: only '"', '\\' and control characters escaped, the short forms where
 * there is one, else \u00XX in upper case; everything else as UTF-8).
 * Never longer than the input: every escape it writes replaces one at least
 * as long.
 */
static size_t compact_string(const unsigned char **pp, const unsigned char *end, char *out)
{
    const unsigned char *p = *pp + 1;
    size_t o = 1;

    out[0] = '"';
    for (;;) {
        const unsigned char *run = p;
        while (p < end && *p != '"' && *p != '\\') {
            p++;
        }
        memcpy(out + o, run, (size_t)(p - run));
        o += (size_t)(p - run);
        if (p == end || *p == '"') {
            break;
        }
        int32_t v = p[1];
        switch (p[1]) {
        case '/':
            v = '/';
            break;
        case 'b':
            v = '\b';
            break;
        case 'f':
            v = '\f';
            break;
        case 'n':
            v = '\n';
            break;
        case 'r':
            v = '\r';
            break;
        case 't':
            v = '\t';
            break;
        case 'u':
            v = hex4(p + 2, end);
            if (v >= 0xD800 && v <= 0xDBFF) {
                v = ((v - 0xD800) << 10) + (hex4(p + 8, end) - 0xDC00) + 0x10000;
                p += 6;
            }
            p += 4;
            break;
        default: /* '"' and '\\' */
            break;
        }
        p += 2;
        size_t k = v < 0x80 ? ferry_json_escape_byte((unsigned char)v, out + o) : 0;
        o += k ? k : utf8_put(out + o, v);
    }
    out[o++] = '"';
    *pp = p + 1;
    return o;
}

/*
 * The compact text jansson writes for the value whose valid text (as this
 * reader accepted it) is s[0..n): into out, which has room for n bytes, as
 * the text never grows. 0 for what it leaves to jansson's own formatting: a
 * real, or -0 (read as the integer 0).
 */
static size_t compact_span(const unsigned char *s, size_t n, char *out)
{
    const unsigned char *p = s, *end = s + n;
    size_t o = 0;

    while (p < end) {
        unsigned c = *p;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            p++;
        } else if (c == '"') {
            o += compact_string(&p, end, out + o);
        } else if (c == '-' || is_digit(c)) {
            const unsigned char *q = p + 1;
            while (q < end && is_digit(*q)) {
                q++;
            }
            if ((q < end && (*q == '.' || *q == 'e' || *q == 'E')) ||
                (q - p == 2 && p[0] == '-' && p[1] == '0')) {
                return 0;
            }
            memcpy(out + o, p, (size_t)(q - p));
            o += (size_t)(q - p);
            p = q;
        } else {
            out[o++] = (char)c; /* punctuation, and the letters of true, false and null */
            p++;
        }
    }
    return o;
}

/* The texts of arr's elements from the kept spans; NULL when they do not fit. */
static json_t *element_texts(const struct reader *r, const json_t *arr)
{
    json_t *texts = NULL;
    char *scratch = NULL;
    size_t longest = 0;

    if (r->spans_failed || !json_is_array(arr) || json_array_size(arr) != r->nspans) {
        return NULL;
    }
    for (size_t i = 0; i < r->nspans; i++) {
        size_t n = r->spans[i].end - r->spans[i].start;
        longest = n > longest ? n : longest;
    }
    texts = json_array();
    scratch = malloc(longest + 1);
    if (!texts || !scratch) {
        goto fail;
    }
    for (size_t i = 0; i < r->nspans; i++) {
        const struct span *sp = &r->spans[i];
        size_t n = sp->dup ? 0 : compact_span(r->buf + sp->start, sp->end - sp->start, scratch);
        json_t *t;
        if (n > 0) {
            t = json_stringn_nocheck(scratch, n);
        } else {
            /* A repeated key, a real: as the dump of the value itself. */
            char *d = ferry_json_dumps(json_array_get(arr, i), false);
            t = d ? json_string_nocheck(d) : NULL;
            free(d);
        }
        if (!t || json_array_append_new(texts, t) < 0) {
            goto fail;
        }
    }
    free(scratch);
    return texts;
fail:
    free(scratch);
    json_decref(texts);
    return NULL;
}

json_t *ferry_json_loadb_items(const char *buf, size_t len, size_t flags, const char *member,
                               json_t **texts, json_error_t *error)
{
    struct reader r = {.member = member, .member_len = member ? strlen(member) : 0};
    bool mine;
    json_t *v = load(&r, buf, len, flags, error, &mine);

    *texts = NULL;
    if (v && mine && member && r.member_seen && json_is_object(v)) {
        *texts = element_texts(&r, json_object_get(v, member));
    }
    free(r.spans);
    return v;
}
