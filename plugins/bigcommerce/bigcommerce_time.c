/* SPDX-License-Identifier: MIT */
/*
 * Date parsing and formatting for the connector (see bigcommerce_time.h).
 * Civil-date arithmetic is done here rather than with timegm(), which is
 * not in C11 or POSIX, so results do not depend on the process time zone.
 */
#include "bigcommerce_time.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const weekdays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : dm[m - 1];
}

/* Exactly `n` digits at *p; advances *p. -1 when not. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') {
            return -1;
        }
        v = v * 10 + (c - '0');
    }
    *p += n;
    return v;
}

static int valid_civil(int64_t y, int mo, int d, int h, int mi, int s)
{
    return y >= 1970 && y <= 9999 && mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) &&
           h >= 0 && h <= 23 && mi >= 0 && mi <= 59 && s >= 0 && s <= 60;
}

/* "+HH:MM", "+HHMM", "-..."; sets seconds east of UTC. */
static int parse_offset(const char **p, int colon_optional, int *off_s)
{
    int sign, hh, mm;
    if (**p != '+' && **p != '-') {
        return FERRY_EINVAL;
    }
    sign = **p == '-' ? -1 : 1;
    (*p)++;
    if ((hh = digits(p, 2)) < 0) {
        return FERRY_EINVAL;
    }
    if (**p == ':' && colon_optional) {
        (*p)++;
    }
    if ((mm = digits(p, 2)) < 0 || hh > 23 || mm > 59) {
        return FERRY_EINVAL;
    }
    *off_s = sign * (hh * 3600 + mm * 60);
    return 0;
}

int ferry__bc_parse_iso(const char *s, int64_t *unix_s)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;
    if (!s) {
        return FERRY_EINVAL;
    }
    if ((y = digits(&p, 4)) < 0 || *p++ != '-' || (mo = digits(&p, 2)) < 0 || *p++ != '-' ||
        (d = digits(&p, 2)) < 0) {
        return FERRY_EINVAL;
    }
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if ((h = digits(&p, 2)) < 0 || *p++ != ':' || (mi = digits(&p, 2)) < 0) {
            return FERRY_EINVAL;
        }
        if (*p == ':') {
            p++;
            if ((sec = digits(&p, 2)) < 0) {
                return FERRY_EINVAL;
            }
            if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9') {
                    return FERRY_EINVAL;
                }
                while (*p >= '0' && *p <= '9') {
                    p++;
                }
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            if (parse_offset(&p, 1, &off) < 0) {
                return FERRY_EINVAL;
            }
        }
    }
    if (*p != '\0' || !valid_civil(y, mo, d, h, mi, sec)) {
        return FERRY_EINVAL;
    }
    *unix_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    return 0;
}

int ferry__bc_parse_rfc2822(const char *s, int64_t *unix_s)
{
    const char *p = s;
    int d, mo = 0, y, h, mi, sec = 0, off = 0;
    if (!s) {
        return FERRY_EINVAL;
    }
    /* Optional "Wed, " */
    if (((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) && p[1] && p[2] && p[3] == ',') {
        p += 4;
        while (*p == ' ') {
            p++;
        }
    }
    if (*p >= '0' && *p <= '9' && (p[1] < '0' || p[1] > '9')) {
        d = *p++ - '0';
    } else if ((d = digits(&p, 2)) < 0) {
        return FERRY_EINVAL;
    }
    if (*p++ != ' ') {
        return FERRY_EINVAL;
    }
    for (int i = 0; i < 12; i++) {
        if (strncasecmp(p, months[i], 3) == 0) {
            mo = i + 1;
        }
    }
    if (!mo) {
        return FERRY_EINVAL;
    }
    p += 3;
    if (*p++ != ' ' || (y = digits(&p, 4)) < 0 || *p++ != ' ' || (h = digits(&p, 2)) < 0 ||
        *p++ != ':' || (mi = digits(&p, 2)) < 0) {
        return FERRY_EINVAL;
    }
    if (*p == ':') {
        p++;
        if ((sec = digits(&p, 2)) < 0) {
            return FERRY_EINVAL;
        }
    }
    while (*p == ' ') {
        p++;
    }
    if (strcmp(p, "GMT") == 0 || strcmp(p, "UT") == 0 || strcmp(p, "Z") == 0) {
        p += strlen(p);
    } else if (parse_offset(&p, 0, &off) < 0) {
        return FERRY_EINVAL;
    }
    if (*p != '\0' || !valid_civil(y, mo, d, h, mi, sec)) {
        return FERRY_EINVAL;
    }
    *unix_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    return 0;
}

static void split(int64_t t, int64_t *y, int *mo, int *d, int *h, int *mi, int *s, int64_t *days)
{
    int64_t dd = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t rem = t - dd * 86400;
    civil_from_days(dd, y, mo, d);
    *h = (int)(rem / 3600);
    *mi = (int)(rem % 3600 / 60);
    *s = (int)(rem % 60);
    *days = dd;
}

void ferry__bc_format_iso(int64_t unix_s, char *out)
{
    int64_t y, days;
    int mo, d, h, mi, s;
    char tmp[64];
    split(unix_s, &y, &mo, &d, &h, &mi, &s, &days);
    /* Years past 9999 cannot come from our parsers; the copy keeps the size promise anyway. */
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02dZ", (int)y, mo, d, h, mi, s);
    memcpy(out, tmp, FERRY_BC_ISO_LEN - 1);
    out[FERRY_BC_ISO_LEN - 1] = '\0';
}

void ferry__bc_format_rfc2822(int64_t unix_s, char *out, size_t n)
{
    int64_t y, days;
    int mo, d, h, mi, s;
    split(unix_s, &y, &mo, &d, &h, &mi, &s, &days);
    int64_t wd = days % 7;
    if (wd < 0) {
        wd += 7;
    }
    snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d +0000", weekdays[wd], d, months[mo - 1],
             (int)y, h, mi, s);
}
