/* SPDX-License-Identifier: MIT */
/*
 * Error codes shared by the core and connector plugins. Zero is success and a
 * negative FERRY_E* value is a failure; system errors travel as -errno. The
 * class of a code (transient or permanent) decides whether a job is retried
 * or dead-lettered, so a connector's only duty is to pick the right code.
 */
#ifndef FERRY_ERROR_H
#define FERRY_ERROR_H

#include <stdint.h>

/* XX(name, value, transient, text) */
#define FERRY_ERRNO_MAP(XX)                                                                        \
    XX(EINVAL, -1001, 0, "invalid argument")                                                       \
    XX(ENOMEM, -1002, 1, "out of memory")                                                          \
    XX(EIO, -1003, 1, "input/output error")                                                        \
    XX(ENETWORK, -1004, 1, "network error")                                                        \
    XX(ETIMEDOUT, -1005, 1, "timed out")                                                           \
    XX(ERATELIMIT, -1006, 1, "rate limited")                                                       \
    XX(EUNAVAILABLE, -1007, 1, "remote service unavailable")                                       \
    XX(ECONFLICT, -1008, 1, "concurrent modification")                                             \
    XX(ENOTFOUND, -1009, 0, "not found")                                                           \
    XX(EAUTH, -1010, 0, "authentication failed")                                                   \
    XX(EFORBIDDEN, -1011, 0, "permission denied")                                                  \
    XX(EVALIDATION, -1012, 0, "rejected by the remote system")                                     \
    XX(EPROTO, -1013, 0, "unexpected response from the remote system")                             \
    XX(ECONFIG, -1014, 0, "configuration error")                                                   \
    XX(EMAPPING, -1015, 0, "mapping error")                                                        \
    XX(EPLUGIN, -1016, 0, "plugin error")                                                          \
    XX(EABI, -1017, 0, "plugin ABI mismatch")                                                      \
    XX(EDB, -1018, 1, "state database error")                                                      \
    XX(EUNSUPPORTED, -1019, 0, "not supported")                                                    \
    XX(EDUPLICATE, -1020, 0, "duplicate")                                                          \
    XX(ETOOBIG, -1021, 0, "too large")                                                             \
    XX(ECANCELED, -1022, 0, "canceled")                                                            \
    XX(ESIGNATURE, -1023, 0, "signature or secret mismatch")                                       \
    XX(EBADINPUT, -1024, 0, "malformed input")                                                     \
    XX(EBUSY, -1025, 1, "busy")                                                                    \
    XX(EFILTERED, -1026, 0, "excluded by configuration")                                           \
    XX(EUNKNOWN_OUTCOME, -1027, 1, "outcome unknown: the request may or may not have taken effect")

enum ferry_errno {
#define FERRY_ERRNO_ENUM(name, value, transient, text) FERRY_##name = (value),
    FERRY_ERRNO_MAP(FERRY_ERRNO_ENUM)
#undef FERRY_ERRNO_ENUM
};

/*
 * Detail for a failure, filled by the callee (SQLite's pzErrMsg, as a fixed
 * buffer so that it can cross the plugin boundary without allocation).
 */
struct ferry_err {
    int code;               /* FERRY_E* or -errno; 0 when unset */
    int64_t retry_after_ms; /* > 0: the remote system asked us to wait this long */
    char msg[256];          /* one line, no secrets */
};

#endif
