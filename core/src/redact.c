/* SPDX-License-Identifier: MIT */
/*
 * The redaction layer (see redact.h). Three passes over a text: secrets
 * first (so that no later step can hash or echo one), then values of named
 * fields, then e-mail addresses in free text. Each pass copies lazily: text
 * is appended to the output only up to the next replacement, so a text with
 * nothing to redact costs one scan and one copy.
 *
 * The field pass is a scanner, not a parser: the sinks hold HTTP traces cut
 * at 4 KiB, log messages and fragments, none of which is guaranteed to be a
 * well-formed document. It recognises a field name at a word boundary and
 * then the few shapes a value takes next to it (redact.h); anything else is
 * left as it is.
 */
#include "redact.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "http.h"
#include "util.h"

/* How far a scanner looks for the end of an XML start tag or a value. */
#define SCAN_TAG_MAX   512
#define SCAN_VALUE_MAX 4096

struct owned_policy {
    char **secrets;
    size_t nsecrets;
    char **mask;
    size_t nmask;
    char **hash;
    size_t nhash;
    int emails;
    char *salt;
};

static struct owned_policy g_policy;

struct buf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->oom || n == 0) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->oom = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static char *buf_finish(struct buf *b)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (!b->p) {
        return strdup("");
    }
    return b->p;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i]) {
            /* Secrets should not linger in freed heap memory. */
            memset(v[i], 0, strlen(v[i]));
            free(v[i]);
        }
    }
    free(v);
}

static int copy_strv(char ***dst, size_t *ndst, const char *const *src, size_t n)
{
    *dst = NULL;
    *ndst = 0;
    if (n == 0) {
        return 0;
    }
    char **v = calloc(n, sizeof(*v));
    if (!v) {
        return FERRY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup(src[i] ? src[i] : "");
        if (!v[i]) {
            free_strv(v, i);
            return FERRY_ENOMEM;
        }
    }
    *dst = v;
    *ndst = n;
    return 0;
}

static void owned_clear(struct owned_policy *o)
{
    free_strv(o->secrets, o->nsecrets);
    free_strv(o->mask, o->nmask);
    free_strv(o->hash, o->nhash);
    if (o->salt) {
        memset(o->salt, 0, strlen(o->salt));
        free(o->salt);
    }
    memset(o, 0, sizeof(*o));
}

int ferry_redact_configure(const struct ferry_redact_policy *p)
{
    struct owned_policy o = {0};
    if (!p) {
        owned_clear(&g_policy);
        return 0;
    }
    if (copy_strv(&o.secrets, &o.nsecrets, p->secrets, p->nsecrets) < 0 ||
        copy_strv(&o.mask, &o.nmask, p->mask_fields, p->nmask) < 0 ||
        copy_strv(&o.hash, &o.nhash, p->hash_fields, p->nhash) < 0 ||
        (p->hash_salt && !(o.salt = strdup(p->hash_salt)))) {
        owned_clear(&o);
        return FERRY_ENOMEM;
    }
    o.emails = p->emails;
    owned_clear(&g_policy);
    g_policy = o;
    return 0;
}

int ferry_redact_configure_from(const struct ferry_config *cfg)
{
    struct ferry_redact_policy p = {
        .secrets = (const char *const *)cfg->secrets,
        .nsecrets = cfg->nsecrets,
        .mask_fields = (const char *const *)cfg->privacy_mask,
        .nmask = cfg->nprivacy_mask,
        .hash_fields = (const char *const *)cfg->privacy_hash,
        .nhash = cfg->nprivacy_hash,
        .emails = cfg->privacy_emails,
        .hash_salt = cfg->privacy_salt,
    };
    return ferry_redact_configure(&p);
}

static struct ferry_redact_policy global_view(void)
{
    return (struct ferry_redact_policy){
        .secrets = (const char *const *)g_policy.secrets,
        .nsecrets = g_policy.nsecrets,
        .mask_fields = (const char *const *)g_policy.mask,
        .nmask = g_policy.nmask,
        .hash_fields = (const char *const *)g_policy.hash,
        .nhash = g_policy.nhash,
        .emails = g_policy.emails,
        .hash_salt = g_policy.salt,
    };
}

static bool policy_active(const struct ferry_redact_policy *p)
{
    return p->nsecrets > 0 || p->nmask > 0 || p->nhash > 0 || p->emails != FERRY_PII_KEEP;
}

bool ferry_redact_active(void)
{
    struct ferry_redact_policy p = global_view();
    return policy_active(&p);
}

/* ---- hashing ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/*
 * The same person's address must hash alike whether it came from a JSON
 * body or a URL, so the input is percent-decoded (URL forms), trimmed and
 * lower-cased before hashing.
 */
static void hash_token(const char *salt, const char *v, size_t n, bool url, char out[22])
{
    struct buf b = {0};
    char hex[FERRY_SHA256_HEX_LEN + 1];
    if (salt) {
        buf_add(&b, salt, strlen(salt));
    }
    while (n > 0 && isspace((unsigned char)v[0])) {
        v++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)v[n - 1])) {
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (url && c == '%' && i + 2 < n && hex_value(v[i + 1]) >= 0 && hex_value(v[i + 2]) >= 0) {
            c = (char)(hex_value(v[i + 1]) * 16 + hex_value(v[i + 2]));
            i += 2;
        } else if (url && c == '+') {
            c = ' ';
        }
        c = (char)tolower((unsigned char)c);
        buf_add(&b, &c, 1);
    }
    ferry_sha256_hex(b.p ? b.p : "", b.len, hex);
    if (b.p) {
        memset(b.p, 0, b.len);
    }
    free(b.p);
    memcpy(out, "hash:", 5);
    memcpy(out + 5, hex, 16);
    out[21] = '\0';
}

void ferry_redact_hash_token(const char *value, size_t len, char out[22])
{
    hash_token(g_policy.salt, value, len, false, out);
}

static void emit_value(struct buf *b, const struct ferry_redact_policy *p, int action,
                       const char *v, size_t n, bool url)
{
    if (action == FERRY_PII_HASH) {
        char tok[22];
        hash_token(p->hash_salt, v, n, url, tok);
        buf_add(b, tok, strlen(tok));
    } else {
        buf_add(b, FERRY_MASKED, strlen(FERRY_MASKED));
    }
}

/* ---- field pass ---- */

static bool is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

static int field_action(const struct ferry_redact_policy *p, const char *name, size_t len)
{
    /* Hashing wins over masking: both hide the value, only one keeps it comparable. */
    for (size_t i = 0; i < p->nhash; i++) {
        if (strlen(p->hash_fields[i]) == len && strncasecmp(p->hash_fields[i], name, len) == 0) {
            return FERRY_PII_HASH;
        }
    }
    for (size_t i = 0; i < p->nmask; i++) {
        if (strlen(p->mask_fields[i]) == len && strncasecmp(p->mask_fields[i], name, len) == 0) {
            return FERRY_PII_MASK;
        }
    }
    return FERRY_PII_KEEP;
}

struct span {
    size_t start; /* value start (absolute index) */
    size_t end;   /* one past the value */
    bool url;     /* percent-encoded context */
    bool quote;   /* a bare JSON scalar: the replacement needs quotes */
};

static bool at(const char *t, size_t len, size_t i, const char *lit)
{
    size_t n = strlen(lit);
    return i + n <= len && strncasecmp(t + i, lit, n) == 0;
}

/* "name": value  (also inside a JSON string that holds JSON: \"name\": \"value\"). */
static bool match_json(const char *t, size_t len, size_t i, size_t j, struct span *sp)
{
    bool esc;
    if (i == 0 || t[i - 1] != '"') {
        return false;
    }
    esc = i >= 2 && t[i - 2] == '\\';
    size_t k = j;
    if (esc) {
        if (!at(t, len, k, "\\\"")) {
            return false;
        }
        k += 2;
    } else {
        if (k >= len || t[k] != '"') {
            return false;
        }
        k++;
    }
    while (k < len && (t[k] == ' ' || t[k] == '\t')) {
        k++;
    }
    if (k >= len || t[k] != ':') {
        return false;
    }
    k++;
    while (k < len && (t[k] == ' ' || t[k] == '\t' || t[k] == '\r' || t[k] == '\n')) {
        k++;
    }
    if (esc ? at(t, len, k, "\\\"") : (k < len && t[k] == '"')) {
        size_t s = k + (esc ? 2 : 1);
        size_t e = s;
        while (e < len && e - s < SCAN_VALUE_MAX) {
            if (esc) {
                if (at(t, len, e, "\\\"")) {
                    break;
                }
                if (t[e] == '\\' && e + 1 < len) {
                    e += at(t, len, e, "\\\\") ? 2 : 1;
                    continue;
                }
            } else {
                if (t[e] == '"') {
                    break;
                }
                if (t[e] == '\\' && e + 1 < len) {
                    e += 2;
                    continue;
                }
            }
            e++;
        }
        if (e > len) {
            e = len;
        }
        if (e == s) {
            return false; /* an empty value tells nothing */
        }
        *sp = (struct span){.start = s, .end = e};
        return true;
    }
    if (k < len && (t[k] == '-' || isdigit((unsigned char)t[k]) || t[k] == 't' || t[k] == 'f')) {
        size_t e = k;
        while (e < len && !strchr(",}] \t\r\n", t[e])) {
            e++;
        }
        *sp = (struct span){.start = k, .end = e, .quote = !esc};
        return true;
    }
    return false;
}

/* <name attr="...">value</  or  <prefix:name>value</ */
static bool match_xml(const char *t, size_t len, size_t i, size_t j, struct span *sp)
{
    if (i == 0) {
        return false;
    }
    if (t[i - 1] != '<') {
        if (t[i - 1] != ':') {
            return false;
        }
        size_t b = i - 1;
        while (b > 0 && is_word(t[b - 1])) {
            b--;
        }
        if (b == 0 || t[b - 1] != '<') {
            return false;
        }
    }
    if (j >= len || !(t[j] == '>' || t[j] == ' ' || t[j] == '\t' || t[j] == '/')) {
        return false;
    }
    size_t k = j;
    while (k < len && t[k] != '>' && t[k] != '<' && k - j < SCAN_TAG_MAX) {
        k++;
    }
    if (k >= len || t[k] != '>' || t[k - 1] == '/') {
        return false;
    }
    size_t s = k + 1, e = s;
    while (e < len && t[e] != '<' && e - s < SCAN_VALUE_MAX) {
        e++;
    }
    if (e == s) {
        return false;
    }
    *sp = (struct span){.start = s, .end = e};
    return true;
}

/* A space in a URL is " ", "+" or "%20". */
static size_t skip_url_space(const char *t, size_t len, size_t k)
{
    for (;;) {
        if (k < len && (t[k] == ' ' || t[k] == '+')) {
            k++;
        } else if (at(t, len, k, "%20")) {
            k += 3;
        } else {
            return k;
        }
    }
}

/* Name eq 'value', also tolower(Name) eq '...', plain or URL-encoded. */
static bool match_odata(const char *t, size_t len, size_t j, struct span *sp)
{
    size_t k = j;
    bool url = false;
    if (k < len && t[k] == ')') {
        k++;
    }
    size_t s0 = k;
    k = skip_url_space(t, len, k);
    if (k == s0 || !at(t, len, k, "eq")) {
        return false;
    }
    url = memchr(t + s0, '%', k - s0) != NULL || memchr(t + s0, '+', k - s0) != NULL;
    k += 2;
    size_t s1 = k;
    k = skip_url_space(t, len, k);
    if (k == s1) {
        return false;
    }
    size_t qlen;
    if (k < len && t[k] == '\'') {
        qlen = 1;
    } else if (at(t, len, k, "%27")) {
        qlen = 3;
        url = true;
    } else {
        return false;
    }
    size_t s = k + qlen, e = s;
    while (e < len && e - s < SCAN_VALUE_MAX) {
        if (qlen == 1 ? t[e] == '\'' : at(t, len, e, "%27")) {
            break;
        }
        e++;
    }
    if (e == s) {
        return false;
    }
    *sp = (struct span){.start = s, .end = e, .url = url};
    return true;
}

/* name=value or name:op=value in a query string or form body. */
static bool match_query(const char *t, size_t len, size_t j, struct span *sp)
{
    size_t k = j;
    if (k < len && t[k] == ':') {
        k++;
        size_t w = k;
        while (k < len && is_word(t[k])) {
            k++;
        }
        if (k == w) {
            return false;
        }
    }
    if (k >= len || t[k] != '=') {
        return false;
    }
    size_t s = k + 1, e = s;
    while (e < len && !strchr("&# \t\r\n\"'<>,;", t[e]) && e - s < SCAN_VALUE_MAX) {
        e++;
    }
    if (e == s) {
        return false;
    }
    *sp = (struct span){.start = s, .end = e, .url = true};
    return true;
}

static char *field_pass(const struct ferry_redact_policy *p, const char *t)
{
    size_t len = strlen(t);
    size_t copied = 0, i = 0;
    struct buf b = {0};
    while (i < len) {
        if (!is_word(t[i]) || (i > 0 && is_word(t[i - 1]))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && is_word(t[j])) {
            j++;
        }
        int action = field_action(p, t + i, j - i);
        struct span sp;
        if (action != FERRY_PII_KEEP &&
            (match_json(t, len, i, j, &sp) || match_xml(t, len, i, j, &sp) ||
             match_odata(t, len, j, &sp) || match_query(t, len, j, &sp))) {
            buf_add(&b, t + copied, sp.start - copied);
            if (sp.quote) {
                buf_add(&b, "\"", 1);
            }
            emit_value(&b, p, action, t + sp.start, sp.end - sp.start, sp.url);
            if (sp.quote) {
                buf_add(&b, "\"", 1);
            }
            copied = i = sp.end;
            continue;
        }
        i = j;
    }
    buf_add(&b, t + copied, len - copied);
    return buf_finish(&b);
}

/* ---- e-mail pass ---- */

static bool is_local(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("._%+-", c));
}

static bool is_domain(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-';
}

static char *email_pass(const struct ferry_redact_policy *p, const char *t)
{
    size_t len = strlen(t);
    size_t copied = 0, i = 0;
    struct buf b = {0};
    while (i < len) {
        size_t atlen = t[i] == '@' ? 1 : (at(t, len, i, "%40") ? 3 : 0);
        if (atlen == 0) {
            i++;
            continue;
        }
        size_t l = i;
        while (l > copied && is_local(t[l - 1])) {
            l--;
        }
        size_t r = i + atlen, dot = 0;
        while (r < len && is_domain(t[r])) {
            r++;
        }
        /* The address ends before a final dot ("write to a@b.org."). */
        while (r > i + atlen && t[r - 1] == '.') {
            r--;
        }
        for (size_t k = i + atlen + 1; k + 1 < r; k++) {
            if (t[k] == '.') {
                dot = k;
            }
        }
        if (l == i || dot == 0) {
            i += atlen;
            continue;
        }
        buf_add(&b, t + copied, l - copied);
        emit_value(&b, p, p->emails, t + l, r - l, atlen == 3);
        copied = i = r;
    }
    buf_add(&b, t + copied, len - copied);
    return buf_finish(&b);
}

char *ferry_redact_text_with(const struct ferry_redact_policy *p, const char *text)
{
    if (!text) {
        return NULL;
    }
    char *cur = ferry_redact(text, p->secrets, p->nsecrets);
    if (cur && (p->nmask > 0 || p->nhash > 0)) {
        char *next = field_pass(p, cur);
        free(cur);
        cur = next;
    }
    if (cur && p->emails != FERRY_PII_KEEP) {
        char *next = email_pass(p, cur);
        free(cur);
        cur = next;
    }
    return cur;
}

char *ferry_redact_text(const char *text)
{
    struct ferry_redact_policy p = global_view();
    return ferry_redact_text_with(&p, text);
}
