/* SPDX-License-Identifier: MIT */
/*
 * Error names and classes generated from FERRY_ERRNO_MAP, so that the enum,
 * the texts and the retry policy can never drift apart.
 */
#include "errors.h"

#include <stdio.h>
#include <string.h>

const char *ferry_strerror(int code)
{
    switch (code) {
#define FERRY_ERRNO_TEXT(name, value, transient, text)                                             \
    case FERRY_##name:                                                                             \
        return text;
        FERRY_ERRNO_MAP(FERRY_ERRNO_TEXT)
#undef FERRY_ERRNO_TEXT
    case 0:
        return "success";
    default:
        break;
    }
    if (code < 0 && code > -1000) {
        return strerror(-code);
    }
    return "unknown error";
}

const char *ferry_err_name(int code)
{
    switch (code) {
#define FERRY_ERRNO_NAME(name, value, transient, text)                                             \
    case FERRY_##name:                                                                             \
        return #name;
        FERRY_ERRNO_MAP(FERRY_ERRNO_NAME)
#undef FERRY_ERRNO_NAME
    case 0:
        return "OK";
    default:
        return "ERRNO";
    }
}

bool ferry_err_transient(int code)
{
    switch (code) {
#define FERRY_ERRNO_CLASS(name, value, transient, text)                                            \
    case FERRY_##name:                                                                             \
        return (transient) != 0;
        FERRY_ERRNO_MAP(FERRY_ERRNO_CLASS)
#undef FERRY_ERRNO_CLASS
    default:
        /* System errors (-errno) are I/O trouble on our side: worth another try. */
        return code < 0;
    }
}

int ferry_err_set(struct ferry_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

int ferry_err_join(struct ferry_err *err, int code, const char *const *parts, size_t n)
{
    if (err) {
        size_t len = 0, room = sizeof(err->msg) - 1;
        err->code = code;
        for (size_t i = 0; i < n && len < room; i++) {
            const char *p = parts[i] ? parts[i] : "(null)";
            size_t k = strlen(p);
            if (k > room - len) {
                k = room - len;
            }
            memcpy(err->msg + len, p, k);
            len += k;
        }
        err->msg[len] = '\0';
    }
    return code;
}

void ferry_err_clear(struct ferry_err *err)
{
    if (err) {
        memset(err, 0, sizeof(*err));
    }
}
