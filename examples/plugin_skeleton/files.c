/* SPDX-License-Identifier: MIT */
/*
 * "files": a small but complete ferry connector that keeps records as JSON
 * files, one per record, at <dir>/<object>/<id>.json. It is the skeleton to
 * copy when starting a connector (see README.md): it is built only against
 * the installed SDK (ferry/plugin.h via pkg-config), and every callback shows
 * the contract a real connector fulfils, without any HTTP to get in the way.
 *
 *  - fetch:        reads one file; a missing file is FERRY_ENOTFOUND.
 *  - list_changes: the object's files changed at or after `since` (their
 *                  modification time), oldest first, `page_size` per page.
 *  - lookup:       the one file whose top-level `field` equals `value`.
 *  - write:        create (a new id) or update (merge the fields), with the
 *                  etag checked, written to a temporary file and renamed so a
 *                  reader never sees half a record.
 *
 * A real connector would replace the file access with host->http calls and
 * add verify_webhook/decode_webhook when its system pushes changes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <ferry/plugin.h>

#ifndef FILES_VERSION
#define FILES_VERSION "0.1.0"
#endif

#define NAME_MAX_LEN      128
#define RECORD_MAX_BYTES  (4 * 1024 * 1024)
#define WATERMARK_LEN     24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
#define DEFAULT_PAGE_SIZE "100"

/* Instance state: read-only after open, except what `lock` guards. */
struct files_state {
    const struct ferry_host_api *host;
    char *dir;
    json_int_t page_size;
    pthread_mutex_t lock; /* serialises writes, so an update's etag check and rename are atomic */
    uint64_t seq;         /* under lock: makes ids created in the same millisecond distinct */
};

/* One file found by a scan. */
struct files_entry {
    char id[NAME_MAX_LEN + 1];
    int64_t mtime_ms;
};

static const struct ferry_config_field files_config[] = {
    {"dir", FERRY_CFG_STRING, NULL, 1,
     "Directory holding <object>/<id>.json (relative to the daemon's working directory)"},
    {"page_size", FERRY_CFG_INT, DEFAULT_PAGE_SIZE, 0, "Records per list_changes page (1-10000)"},
    {NULL, 0, NULL, 0, NULL},
};

/* Both cross into file names, so they must not climb out of `dir` or hide as dot files. */
static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > NAME_MAX_LEN || s[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            return false;
        }
    }
    return true;
}

static int set_err(struct ferry_err *err, int code, const char *fmt, ...) FERRY_PRINTF(3, 4);
static int set_err(struct ferry_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->retry_after_ms = 0;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (timegm is not POSIX). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/*
 * Watermarks always carry milliseconds, so the ones this connector produces
 * compare as strings in time order, as the host requires.
 */
static void format_watermark(int64_t ms, char out[WATERMARK_LEN + 1])
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    int n =
        snprintf(out, WATERMARK_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
                 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)(ms - secs * 1000));
    if (n < 0 || n > WATERMARK_LEN) {
        /* Only years beyond 9999 get here; they still sort after every 4-digit year. */
        snprintf(out, WATERMARK_LEN + 1, "9999-12-31T23:59:59.999Z");
    }
}

/*
 * `since` is our own watermark or an operator's "2024-05-01" /
 * "2024-05-01T10:00:00Z"; parsed rather than compared as text, because an
 * operator's value has no milliseconds.
 */
static int parse_since(const char *s, int64_t *ms)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, frac = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3) {
        return FERRY_EINVAL;
    }
    const char *p = s + n;
    if (*p == 'T') {
        int k = 0;
        if (sscanf(p, "T%2d:%2d:%2d%n", &h, &mi, &sec, &k) != 3) {
            return FERRY_EINVAL;
        }
        p += k;
        if (*p == '.') {
            int digits = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
                if (digits < 3) {
                    frac = frac * 10 + (*p - '0');
                }
            }
            for (; digits < 3; digits++) {
                frac *= 10;
            }
        }
        if (*p == 'Z') {
            p++;
        }
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return FERRY_EINVAL;
    }
    *ms = ((days_from_civil(y, mo, d) * 86400) + h * 3600 + mi * 60 + sec) * 1000 + frac;
    return 0;
}

/* "<dir>/<object>" or "<dir>/<object>/<id>.json"; new string. */
static char *record_path(const struct files_state *st, const char *object, const char *id)
{
    size_t n = strlen(st->dir) + strlen(object) + (id ? strlen(id) : 0) + 8;
    char *p = malloc(n);
    if (p) {
        if (id) {
            snprintf(p, n, "%s/%s/%s.json", st->dir, object, id);
        } else {
            snprintf(p, n, "%s/%s", st->dir, object);
        }
    }
    return p;
}

/* FNV-1a over the file's bytes: an etag that changes whenever the content does. */
static int file_etag(const char *path, char out[17])
{
    uint64_t h = 1469598103934665603ull;
    unsigned char buf[8192];
    FILE *f = fopen(path, "rb");
    if (!f) {
        return -errno;
    }
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        for (size_t i = 0; i < n; i++) {
            h = (h ^ buf[i]) * 1099511628211ull;
        }
    }
    int rc = ferror(f) ? FERRY_EIO : 0;
    fclose(f);
    snprintf(out, 17, "%016" PRIx64, h);
    return rc;
}

/*
 * The record in `path`; *out is new. With `id`, a record without an "id"
 * member gets the file's id there (what a mapping reads), which a write
 * must not store back, so updates pass NULL.
 */
static int load_record(const char *path, const char *id, json_t **out, struct ferry_err *err)
{
    json_error_t jerr;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT) {
            return set_err(err, FERRY_ENOTFOUND, "%s: no such record", path);
        }
        return set_err(err, FERRY_EIO, "%s: %s", path, strerror(errno));
    }
    if (sb.st_size > RECORD_MAX_BYTES) {
        return set_err(err, FERRY_ETOOBIG, "%s: larger than %d bytes", path, RECORD_MAX_BYTES);
    }
    json_t *rec = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!rec) {
        return set_err(err, FERRY_EBADINPUT, "%s:%d: %s", path, jerr.line, jerr.text);
    }
    if (!json_is_object(rec)) {
        json_decref(rec);
        return set_err(err, FERRY_EBADINPUT, "%s: not a JSON object", path);
    }
    /* Mappings find the key at "id" by default; the file name is the record's id. */
    if (id && !json_object_get(rec, "id") && json_object_set_new(rec, "id", json_string(id)) != 0) {
        json_decref(rec);
        return set_err(err, FERRY_ENOMEM, "out of memory");
    }
    *out = rec;
    return 0;
}

static int only_records(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 5 && n - 5 <= NAME_MAX_LEN &&
           strcmp(e->d_name + n - 5, ".json") == 0;
}

static int by_time_then_id(const void *a, const void *b)
{
    const struct files_entry *x = a, *y = b;
    if (x->mtime_ms != y->mtime_ms) {
        return x->mtime_ms < y->mtime_ms ? -1 : 1;
    }
    return strcmp(x->id, y->id);
}

/* Every record file of `object`, oldest change first. A missing directory is an empty object. */
static int scan(const struct files_state *st, const char *object, struct files_entry **out,
                size_t *count, struct ferry_err *err)
{
    struct dirent **names = NULL;
    struct files_entry *v = NULL;
    size_t n = 0;
    int rc = 0;
    char *dir = record_path(st, object, NULL);
    if (!dir) {
        return set_err(err, FERRY_ENOMEM, "out of memory");
    }
    int found = scandir(dir, &names, only_records, alphasort);
    if (found < 0) {
        rc = errno == ENOENT ? 0 : set_err(err, FERRY_EIO, "%s: %s", dir, strerror(errno));
        found = 0;
    }
    if (found > 0) {
        v = calloc((size_t)found, sizeof(*v));
        if (!v) {
            rc = set_err(err, FERRY_ENOMEM, "out of memory");
        }
    }
    for (int i = 0; i < found && rc == 0; i++) {
        struct files_entry *e = &v[n];
        size_t len = strlen(names[i]->d_name) - 5;
        memcpy(e->id, names[i]->d_name, len);
        e->id[len] = '\0';
        char *path = record_path(st, object, e->id);
        struct stat sb;
        if (!path) {
            rc = set_err(err, FERRY_ENOMEM, "out of memory");
        } else if (valid_name(e->id) && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            e->mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
            n++;
        }
        free(path);
    }
    for (int i = 0; i < found; i++) {
        free(names[i]);
    }
    free(names);
    free(dir);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (n > 1) {
        qsort(v, n, sizeof(*v), by_time_then_id);
    }
    *out = v;
    *count = n;
    return 0;
}

static int files_open(const struct ferry_host_api *host, struct ferry_call *call,
                      const json_t *config, void **state, struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    struct files_state *st = calloc(1, sizeof(*st));
    if (!st) {
        goto cleanup;
    }
    st->host = host;
    /* The host has checked the types and filled in the defaults (plugin.h). */
    st->dir = strdup(json_string_value(json_object_get(config, "dir")));
    st->page_size = json_integer_value(json_object_get(config, "page_size"));
    if (!st->dir) {
        goto cleanup;
    }
    if (st->page_size < 1 || st->page_size > 10000) {
        rc = set_err(err, FERRY_ECONFIG, "page_size: out of range (1..10000)");
        goto cleanup;
    }
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        goto cleanup;
    }
    host->log(call, FERRY_LOG_INFO, "records in %s", st->dir);
    *state = st;
    st = NULL;
    rc = 0;
cleanup:
    if (st) {
        free(st->dir);
        free(st);
    }
    return rc == FERRY_ENOMEM ? set_err(err, rc, "out of memory") : rc;
}

static void files_close(void *state)
{
    struct files_state *st = state;
    if (!st) {
        return;
    }
    pthread_mutex_destroy(&st->lock);
    free(st->dir);
    free(st);
}

static int files_fetch(void *state, struct ferry_call *call, const char *object, const char *id,
                       json_t **record, struct ferry_err *err)
{
    struct files_state *st = state;
    if (!valid_name(object) || !valid_name(id)) {
        return set_err(err, FERRY_EINVAL, "object and id must be plain names");
    }
    char *path = record_path(st, object, id);
    if (!path) {
        return set_err(err, FERRY_ENOMEM, "out of memory");
    }
    int rc = load_record(path, id, record, err);
    free(path);
    return rc;
}

static int files_list_changes(void *state, struct ferry_call *call, const char *object,
                              const char *since, const char *page_token, json_t **page,
                              struct ferry_err *err)
{
    struct files_state *st = state;
    struct files_entry *v = NULL;
    size_t n = 0, start = 0;
    int64_t since_ms = INT64_MIN;
    json_t *out = NULL, *items = NULL;
    int rc = 0;

    if (!valid_name(object)) {
        return set_err(err, FERRY_EINVAL, "object must be a plain name");
    }
    if (since && parse_since(since, &since_ms) < 0) {
        return set_err(err, FERRY_EINVAL, "since: not an ISO 8601 UTC timestamp: %s", since);
    }
    /* The token is an offset into the ordered scan; changes between pages may shift it,
     * which only re-delivers a record (the host deduplicates by content). */
    if (page_token) {
        char *end = NULL;
        unsigned long long off = strtoull(page_token, &end, 10);
        if (!end || *end != '\0') {
            return set_err(err, FERRY_EINVAL, "bad page token %s", page_token);
        }
        start = (size_t)off;
    }
    rc = scan(st, object, &v, &n, err);
    if (rc < 0) {
        return rc;
    }
    out = json_object();
    items = json_array();
    if (!out || !items || json_object_set(out, "items", items) != 0) {
        rc = set_err(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    size_t skipped = 0, i = 0;
    for (; i < n && json_array_size(items) < (size_t)st->page_size; i++) {
        if (v[i].mtime_ms < since_ms) {
            continue;
        }
        if (skipped < start) {
            skipped++;
            continue;
        }
        json_t *rec = NULL;
        char *path = record_path(st, object, v[i].id);
        char mark[WATERMARK_LEN + 1];
        if (!path) {
            rc = set_err(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
        rc = load_record(path, v[i].id, &rec, err);
        free(path);
        if (rc == FERRY_ENOTFOUND) {
            /* Deleted since the scan: nothing left to deliver. */
            rc = 0;
            continue;
        }
        if (rc < 0) {
            goto cleanup;
        }
        format_watermark(v[i].mtime_ms, mark);
        if (json_array_append_new(items, json_pack("{s:s, s:s, s:o}", "id", v[i].id, "modified",
                                                   mark, "record", rec)) != 0) {
            rc = set_err(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
    }
    /* More remain when the loop stopped on a full page before the end. */
    bool more = false;
    for (; i < n && !more; i++) {
        more = v[i].mtime_ms >= since_ms;
    }
    if (more) {
        char next[32];
        snprintf(next, sizeof(next), "%zu", start + json_array_size(items));
        rc = json_object_set_new(out, "next", json_string(next)) == 0
                 ? 0
                 : set_err(err, FERRY_ENOMEM, "out of memory");
    } else {
        rc = json_object_set_new(out, "next", json_null()) == 0
                 ? 0
                 : set_err(err, FERRY_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        *page = out;
        out = NULL;
    }
cleanup:
    json_decref(items);
    json_decref(out);
    free(v);
    return rc;
}

/* The record's `field` as text for comparison: strings as-is, integers in decimal. */
static bool field_equals(const json_t *rec, const char *field, const char *value)
{
    const json_t *f = json_object_get(rec, field);
    char num[32];
    if (json_is_string(f)) {
        return strcmp(json_string_value(f), value) == 0;
    }
    if (json_is_integer(f)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(f));
        return strcmp(num, value) == 0;
    }
    return false;
}

static int files_lookup(void *state, struct ferry_call *call, const char *object, const char *field,
                        const char *value, json_t **found, struct ferry_err *err)
{
    struct files_state *st = state;
    struct files_entry *v = NULL;
    size_t n = 0;
    json_t *hit = NULL;
    int rc;

    if (!valid_name(object)) {
        return set_err(err, FERRY_EINVAL, "object must be a plain name");
    }
    rc = scan(st, object, &v, &n, err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *rec = NULL;
        char etag[17];
        char *path = record_path(st, object, v[i].id);
        if (!path) {
            rc = set_err(err, FERRY_ENOMEM, "out of memory");
            break;
        }
        rc = load_record(path, v[i].id, &rec, err);
        if (rc == FERRY_ENOTFOUND) {
            rc = 0;
        } else if (rc == 0 && field_equals(rec, field, value)) {
            if (hit) {
                /* The host never guesses between two candidates. */
                rc = set_err(err, FERRY_EDUPLICATE, "%s: several records with %s=%s", object, field,
                             value);
            } else if (file_etag(path, etag) < 0) {
                rc = set_err(err, FERRY_EIO, "%s: cannot read", path);
            } else {
                hit = json_pack("{s:s, s:s, s:O}", "id", v[i].id, "etag", etag, "record", rec);
                if (!hit) {
                    rc = set_err(err, FERRY_ENOMEM, "out of memory");
                }
            }
        }
        json_decref(rec);
        free(path);
    }
    free(v);
    if (rc < 0) {
        json_decref(hit);
        return rc;
    }
    *found = hit;
    return 0;
}

/* mkdir -p: the first write into an object (or a fresh `dir`) creates the directories. */
static int make_dirs(char *path, struct ferry_err *err)
{
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            int failed = mkdir(path, 0755) != 0 && errno != EEXIST;
            int saved = errno;
            *p = c;
            if (failed) {
                return set_err(err, FERRY_EIO, "%s: %s", path, strerror(saved));
            }
            if (c == '\0') {
                return 0;
            }
        }
    }
}

/* Write rec to path through a temporary file and rename, so readers see old or new, never half. */
static int store_record(const char *path, const json_t *rec, struct ferry_err *err)
{
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    int rc = 0;
    int fd = -1;
    if (!tmp) {
        return set_err(err, FERRY_ENOMEM, "out of memory");
    }
    /* A dot name: scans skip it, so a crash mid-write leaves no visible record. */
    const char *slash = strrchr(path, '/');
    snprintf(tmp, n, "%.*s/.%s.tmp", (int)(slash - path), path, slash + 1);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = set_err(err, FERRY_EIO, "%s: %s", tmp, strerror(errno));
    } else if (json_dumpfd(rec, fd, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 ||
               write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        rc = set_err(err, FERRY_EIO, "%s: write failed", tmp);
    }
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        rc = set_err(err, FERRY_EIO, "%s: %s", tmp, strerror(errno));
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = set_err(err, FERRY_EIO, "%s: %s", path, strerror(errno));
    }
    if (rc < 0 && fd >= 0) {
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

static int files_write(void *state, struct ferry_call *call, const struct ferry_write *w,
                       json_t **result, struct ferry_err *err)
{
    struct files_state *st = state;
    char id[NAME_MAX_LEN + 1];
    char etag[17];
    char *path = NULL, *dir = NULL;
    json_t *rec = NULL;
    int rc = 0;

    if (!valid_name(w->object) || !json_is_object(w->fields)) {
        return set_err(err, FERRY_EINVAL, "write needs a plain object name and a fields object");
    }
    pthread_mutex_lock(&st->lock);
    if (w->op == FERRY_WRITE_CREATE) {
        snprintf(id, sizeof(id), "%" PRId64 "-%" PRIu64, st->host->now_ms(call), ++st->seq);
        rec = json_deep_copy(w->fields);
        if (!rec) {
            rc = set_err(err, FERRY_ENOMEM, "out of memory");
        }
    } else if (w->op == FERRY_WRITE_UPDATE && valid_name(w->id)) {
        snprintf(id, sizeof(id), "%s", w->id);
        path = record_path(st, w->object, id);
        rc = path ? 0 : set_err(err, FERRY_ENOMEM, "out of memory");
        if (rc == 0 && w->etag && file_etag(path, etag) == 0 && strcmp(etag, w->etag) != 0) {
            rc = set_err(err, FERRY_ECONFLICT, "%s/%s changed since it was read", w->object, id);
        }
        if (rc == 0) {
            rc = load_record(path, NULL, &rec, err);
        }
        /* Only the fields given change; the rest of the record stays as it was. */
        if (rc == 0) {
            /* A copy: the host's fields are const and may be read by it afterwards. */
            json_t *changes = json_deep_copy(w->fields);
            if (!changes || json_object_update(rec, changes) != 0) {
                rc = set_err(err, FERRY_ENOMEM, "out of memory");
            }
            json_decref(changes);
        }
    } else {
        rc = set_err(err, FERRY_EINVAL, "unknown write op %d or bad id", w->op);
    }
    if (rc == 0 && !path) {
        path = record_path(st, w->object, id);
        dir = record_path(st, w->object, NULL);
        if (!path || !dir) {
            rc = set_err(err, FERRY_ENOMEM, "out of memory");
        } else {
            rc = make_dirs(dir, err);
        }
    }
    if (rc == 0) {
        rc = store_record(path, rec, err);
    }
    if (rc == 0 && file_etag(path, etag) < 0) {
        rc = set_err(err, FERRY_EIO, "%s: cannot read back", path);
    }
    pthread_mutex_unlock(&st->lock);
    if (rc == 0) {
        *result = json_pack("{s:s, s:s}", "id", id, "etag", etag);
        rc = *result ? 0 : set_err(err, FERRY_ENOMEM, "out of memory");
        st->host->log(call, FERRY_LOG_DEBUG, "%s %s/%s",
                      w->op == FERRY_WRITE_CREATE ? "created" : "updated", w->object, id);
    }
    json_decref(rec);
    free(path);
    free(dir);
    return rc;
}

static const struct ferry_connector files_connector = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_connector),
    .name = "files",
    .version = FILES_VERSION,
    .description = "JSON files on disk, one per record: <dir>/<object>/<id>.json",
    .config = files_config,
    .open = files_open,
    .close = files_close,
    .fetch = files_fetch,
    .list_changes = files_list_changes,
    .lookup = files_lookup,
    .write = files_write,
    /* No webhooks and no describe: the host treats NULL as "not offered". */
};

FERRY_PLUGIN_EXPORT int ferry_connector_entry(const struct ferry_host_api *host,
                                              const struct ferry_connector **out);

FERRY_PLUGIN_EXPORT int ferry_connector_entry(const struct ferry_host_api *host,
                                              const struct ferry_connector **out)
{
    /* A host of another ABI lays out its vtable differently: refuse rather than guess. */
    if (!host || host->abi != FERRY_PLUGIN_ABI) {
        return FERRY_EABI;
    }
    *out = &files_connector;
    return 0;
}
