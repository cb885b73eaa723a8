/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers (see util.h).
 */
#include "util.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "errors.h"
#include "ferry/text.h"

/*
 * EVP_sha256() makes every digest look the implementation up again (an
 * implicit fetch per call, a few thousand instructions); hashing is done per
 * webhook and per synced record, so the fetched method is kept. It lives for
 * the process.
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void ferry_sha256_hex(const void *data, size_t len, char out[FERRY_SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    pthread_once(&sha256_once, sha256_fetch);
    if (!EVP_Digest(data, len, md, &mdlen, sha256_md ? sha256_md : EVP_sha256(), NULL) ||
        mdlen != 32) {
        /* Only an allocation failure inside OpenSSL gets here; an all-zero hash
         * never equals a stored one, so the worst outcome is one extra write. */
        memset(out, '0', FERRY_SHA256_HEX_LEN);
        out[FERRY_SHA256_HEX_LEN] = '\0';
        return;
    }
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[FERRY_SHA256_HEX_LEN] = '\0';
}

/*
 * Compact JSON text written straight into one growing buffer. jansson's
 * json_dumps emits every token through a callback into its own string
 * buffer, about 55 instructions per byte of a record; the poll writes every
 * listed record as a job's text and every link stores a canonical copy, so
 * that was a tenth of an event's engine work. The bytes are exactly
 * jansson's (JSON_COMPACT, optionally JSON_SORT_KEYS): hashes stored by
 * earlier versions stay equal. What this writer does not do itself (reals,
 * invalid UTF-8, keys with a NUL) it hands to jansson.
 */
struct jbuf {
    char *p;
    size_t len, cap;
    bool failed;          /* out of memory, or a value to leave to jansson */
    const json_t *raw_at; /* written as raw (ferry_json_dumps_with) */
    const char *raw;
    size_t raw_len;
};

static void jb_reserve(struct jbuf *b, size_t more)
{
    if (b->failed || b->len + more <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) {
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
    jb_reserve(b, n);
    if (!b->failed) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + k >= n) {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF, as jansson refuses them. */
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += k + 1;
    }
    return true;
}

size_t ferry_json_escape_byte(unsigned char c, char out[6])
{
    static const char hex[] = "0123456789ABCDEF";
    char e = 0;
    switch (c) {
    case '"':
        e = '"';
        break;
    case '\\':
        e = '\\';
        break;
    case '\b':
        e = 'b';
        break;
    case '\f':
        e = 'f';
        break;
    case '\n':
        e = 'n';
        break;
    case '\r':
        e = 'r';
        break;
    case '\t':
        e = 't';
        break;
    default:
        if (c >= 0x20) {
            return 0;
        }
        memcpy(out, "\\u00", 4);
        out[4] = hex[c >> 4];
        out[5] = hex[c & 0xf];
        return 6;
    }
    out[0] = '\\';
    out[1] = e;
    return 2;
}

static void jb_string(struct jbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0;
    if (!utf8_valid(u, n)) {
        b->failed = true;
        return;
    }
    jb_reserve(b, n + 2);
    jb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        jb_put(b, s + start, i - start);
        start = i + 1;
        char seq[6];
        jb_put(b, seq, ferry_json_escape_byte(c, seq));
    }
    jb_put(b, s + start, n - start);
    jb_put(b, "\"", 1);
}

struct jkey {
    const char *key;
    size_t len;
    json_t *value;
};

static int jkey_cmp(const void *a, const void *b)
{
    return strcmp(((const struct jkey *)a)->key, ((const struct jkey *)b)->key);
}

static void jb_value(struct jbuf *b, const json_t *v, bool sort_keys, int depth)
{
    char num[32];
    if (b->failed) {
        return;
    }
    if (depth > 2048) {
        b->failed = true; /* as deep as jansson would go; let it decide */
        return;
    }
    if (v == b->raw_at) {
        jb_put(b, b->raw, b->raw_len);
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        struct jkey stack_keys[32];
        struct jkey *keys = n <= 32 ? stack_keys : malloc(n * sizeof(*keys));
        const char *k;
        json_t *x;
        if (!keys) {
            b->failed = true;
            return;
        }
        json_object_foreach((json_t *)v, k, x)
        {
            size_t len = json_object_iter_key_len(json_object_key_to_iter(k));
            if (memchr(k, '\0', len)) {
                b->failed = true;
                break;
            }
            keys[i++] = (struct jkey){k, len, x};
        }
        if (!b->failed) {
            if (sort_keys && i > 1) {
                qsort(keys, i, sizeof(*keys), jkey_cmp);
            }
            jb_put(b, "{", 1);
            for (size_t j = 0; j < i && !b->failed; j++) {
                if (j) {
                    jb_put(b, ",", 1);
                }
                jb_string(b, keys[j].key, keys[j].len);
                jb_put(b, ":", 1);
                jb_value(b, keys[j].value, sort_keys, depth + 1);
            }
            jb_put(b, "}", 1);
        }
        if (keys != stack_keys) {
            free(keys);
        }
        return;
    }
    case JSON_ARRAY:
        jb_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v) && !b->failed; i++) {
            if (i) {
                jb_put(b, ",", 1);
            }
            jb_value(b, json_array_get(v, i), sort_keys, depth + 1);
        }
        jb_put(b, "]", 1);
        return;
    case JSON_STRING:
        jb_string(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER: {
        int n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        jb_put(b, num, (size_t)n);
        return;
    }
    case JSON_REAL: {
        /* jansson's own formatting (precision, the ".0" it adds): rare in records. */
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!t) {
            b->failed = true;
            return;
        }
        jb_put(b, t, strlen(t));
        free(t);
        return;
    }
    case JSON_TRUE:
        jb_put(b, "true", 4);
        return;
    case JSON_FALSE:
        jb_put(b, "false", 5);
        return;
    case JSON_NULL:
        jb_put(b, "null", 4);
        return;
    }
}

char *ferry_json_dumps(const json_t *v, bool sort_keys)
{
    struct jbuf b = {0};
    if (!v) {
        return NULL;
    }
    jb_value(&b, v, sort_keys, 0);
    jb_put(&b, "", 1);
    if (b.failed) {
        free(b.p);
        return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | (sort_keys ? JSON_SORT_KEYS : 0));
    }
    return b.p;
}

char *ferry_json_dumps_with(const json_t *v, const json_t *at, const char *text, size_t len)
{
    /* Anything but a container's text would not be what the caller thinks it is. */
    bool container = text && len >= 2 &&
                     ((text[0] == '{' && text[len - 1] == '}' && json_is_object(at)) ||
                      (text[0] == '[' && text[len - 1] == ']' && json_is_array(at)));
    struct jbuf b = {.raw_at = container ? at : NULL, .raw = text, .raw_len = len};
    if (!v) {
        return NULL;
    }
    /* The text is most of the result: one allocation instead of a doubling series. */
    jb_reserve(&b, len + 256);
    jb_value(&b, v, false, 0);
    jb_put(&b, "", 1);
    if (b.failed) {
        free(b.p);
        return ferry_json_dumps(v, false);
    }
    return b.p;
}

char *ferry_json_canonical(const json_t *v)
{
    return ferry_json_dumps(v, true);
}

int ferry_json_hash(const json_t *v, char out[FERRY_SHA256_HEX_LEN + 1])
{
    char *text = ferry_json_canonical(v);
    if (!text) {
        return FERRY_ENOMEM;
    }
    ferry_sha256_hex(text, strlen(text), out);
    free(text);
    return 0;
}

int64_t ferry_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *ferry_strdup(const char *s)
{
    if (!s) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

char *ferry_path_join(const char *a, const char *b)
{
    if (!b) {
        return NULL;
    }
    if (b[0] == '/' || !a || !*a) {
        return ferry_strdup(b);
    }
    size_t la = strlen(a), lb = strlen(b);
    int slash = a[la - 1] == '/';
    char *p = malloc(la + lb + 2);
    if (p) {
        memcpy(p, a, la);
        if (!slash) {
            p[la++] = '/';
        }
        memcpy(p + la, b, lb + 1);
    }
    return p;
}

char *ferry_json_scalar_text(const json_t *v)
{
    char buf[32];
    if (json_is_string(v)) {
        return ferry_strdup(json_string_value(v));
    }
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return ferry_strdup(buf);
    }
    return NULL;
}

int64_t ferry_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool ferry_fixed_digits(const char *p, const char *end, int n, int *out)
{
    if (end - p < n) {
        return false;
    }
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

int ferry_iso8601_parse(const char *text, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0, off_min = 0;
    const char *p = text;
    const char *end = text ? text + strlen(text) : NULL;
    if (!p || !ferry_fixed_digits(p, end, 4, &y) || p[4] != '-' ||
        !ferry_fixed_digits(p + 5, end, 2, &mo) || p[7] != '-' ||
        !ferry_fixed_digits(p + 8, end, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31) {
        return FERRY_EINVAL;
    }
    p += 10;
    if (*p == 'T' || *p == ' ') {
        if (!ferry_fixed_digits(p + 1, end, 2, &h) || p[3] != ':' ||
            !ferry_fixed_digits(p + 4, end, 2, &mi) || h > 23 || mi > 59) {
            return FERRY_EINVAL;
        }
        p += 6;
        if (*p == ':') {
            if (!ferry_fixed_digits(p + 1, end, 2, &sec) || sec > 60) {
                return FERRY_EINVAL;
            }
            p += 3;
            if (*p == '.') {
                int scale = 100;
                p++;
                if (*p < '0' || *p > '9') {
                    return FERRY_EINVAL;
                }
                while (*p >= '0' && *p <= '9') {
                    frac_ms += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                }
            }
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            int sign = *p == '-' ? -1 : 1;
            if (!ferry_fixed_digits(p + 1, end, 2, &oh) || p[3] != ':' ||
                !ferry_fixed_digits(p + 4, end, 2, &om)) {
                return FERRY_EINVAL;
            }
            off_min = sign * (oh * 60 + om);
            p += 6;
        }
    }
    if (*p != '\0') {
        return FERRY_EINVAL;
    }
    int64_t days = ferry_days_from_civil(y, mo, d);
    *ms = (((days * 24 + h) * 60 + mi - off_min) * 60 + sec) * 1000 + frac_ms;
    return 0;
}

void ferry_iso8601_format(int64_t ms, char out[21])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * glibc's vsnprintf costs about a thousand instructions a call, most of it
 * in generality these formats never use (locale, positional arguments,
 * floating point); a synced event formatted some twenty such strings. The
 * writer keeps counting past the end, as vsnprintf does, so callers that
 * size a buffer from the return value get the same answer.
 */
struct fmt_out {
    char *buf;
    size_t size;
    size_t len;
};

static void fmt_put(struct fmt_out *o, const char *s, size_t n)
{
    if (o->len + 1 < o->size) {
        size_t room = o->size - 1 - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void fmt_unsigned(struct fmt_out *o, unsigned long long v, bool negative)
{
    char digits[FERRY_DIGITS_MAX];
    size_t n = ferry_digits(digits, v);
    if (negative) {
        fmt_put(o, "-", 1);
    }
    fmt_put(o, digits + FERRY_DIGITS_MAX - n, n);
}

static void fmt_signed(struct fmt_out *o, long long v)
{
    /* The magnitude of LLONG_MIN does not fit a long long: negate unsigned. */
    fmt_unsigned(o, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, v < 0);
}

int ferry_vfmt(char *out, size_t size, const char *fmt, va_list ap)
{
    struct fmt_out o = {out, size, 0};
    va_list whole;
    va_copy(whole, ap);
    for (const char *p = fmt; *p;) {
        const char *pct = strchr(p, '%');
        if (!pct) {
            fmt_put(&o, p, strlen(p));
            break;
        }
        fmt_put(&o, p, (size_t)(pct - p));
        p = pct + 1;
        if (*p == '%') {
            fmt_put(&o, "%", 1);
            p++;
            continue;
        }
        bool precise = false;
        size_t precision = 0;
        if (*p == '.') {
            precise = true;
            p++;
            if (*p == '*') {
                int v = va_arg(ap, int);
                /* A negative precision is taken as none, as printf does. */
                precise = v >= 0;
                precision = v >= 0 ? (size_t)v : 0;
                p++;
            } else if (*p >= '0' && *p <= '9') {
                while (*p >= '0' && *p <= '9' && precision < 100000000) {
                    precision = precision * 10 + (size_t)(*p++ - '0');
                }
            } else {
                goto whole;
            }
            if (*p != 's') {
                goto whole;
            }
        }
        switch (*p) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            size_t n;
            if (!s) {
                /* glibc prints "(null)" unless a precision cuts it short. */
                s = precise && precision < 6 ? "" : "(null)";
            }
            n = precise ? strnlen(s, precision) : strlen(s);
            fmt_put(&o, s, n);
            p++;
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            fmt_put(&o, &c, 1);
            p++;
            break;
        }
        case 'd':
        case 'i':
            fmt_signed(&o, va_arg(ap, int));
            p++;
            break;
        case 'u':
            fmt_unsigned(&o, va_arg(ap, unsigned), false);
            p++;
            break;
        case 'z':
            if (p[1] != 'u') {
                goto whole;
            }
            fmt_unsigned(&o, va_arg(ap, size_t), false);
            p += 2;
            break;
        case 'l':
            if (p[1] == 'l' && (p[2] == 'd' || p[2] == 'i')) {
                fmt_signed(&o, va_arg(ap, long long));
                p += 3;
            } else if (p[1] == 'l' && p[2] == 'u') {
                fmt_unsigned(&o, va_arg(ap, unsigned long long), false);
                p += 3;
            } else if (p[1] == 'd' || p[1] == 'i') {
                fmt_signed(&o, va_arg(ap, long));
                p += 2;
            } else if (p[1] == 'u') {
                fmt_unsigned(&o, va_arg(ap, unsigned long), false);
                p += 2;
            } else {
                goto whole;
            }
            break;
        default:
            goto whole;
        }
    }
    if (size) {
        out[o.len < size ? o.len : size - 1] = '\0';
    }
    va_end(whole);
    return o.len > INT_MAX ? -1 : (int)o.len;
whole : {
    int n = vsnprintf(out, size, fmt, whole);
    va_end(whole);
    return n;
}
}

int ferry_fmt(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = ferry_vfmt(out, size, fmt, ap);
    va_end(ap);
    return n;
}

bool ferry_path_step(const char *path, size_t len, size_t *at, const char **step, size_t *step_len,
                     bool *is_index, uint64_t *index)
{
    size_t i = *at;
    while (i < len && path[i] == '.') {
        i++;
    }
    if (i >= len) {
        *at = len;
        return false;
    }
    size_t j = i;
    bool digits = true;
    for (; j < len && path[j] != '.'; j++) {
        digits = digits && path[j] >= '0' && path[j] <= '9';
    }
    *index = 0;
    *is_index = digits && j - i <= 18;
    if (*is_index) {
        for (size_t k = i; k < j; k++) {
            *index = *index * 10 + (uint64_t)(path[k] - '0');
        }
    }
    *step = path + i;
    *step_len = j - i;
    *at = j;
    return true;
}
