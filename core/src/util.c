/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers (see util.h).
 */
#include "util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "errors.h"

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

char *ferry_json_canonical(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
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

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool digits(const char *p, int n, int *out)
{
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
    if (!p || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
        !digits(p + 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31) {
        return FERRY_EINVAL;
    }
    p += 10;
    if (*p == 'T' || *p == ' ') {
        if (!digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) || h > 23 || mi > 59) {
            return FERRY_EINVAL;
        }
        p += 6;
        if (*p == ':') {
            if (!digits(p + 1, 2, &sec) || sec > 60) {
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
            if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om)) {
                return FERRY_EINVAL;
            }
            off_min = sign * (oh * 60 + om);
            p += 6;
        }
    }
    if (*p != '\0') {
        return FERRY_EINVAL;
    }
    int64_t days = days_from_civil(y, mo, d);
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
