/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers (see util.h).
 */
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "errors.h"

void ferry_sha256_hex(const void *data, size_t len, char out[FERRY_SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
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
