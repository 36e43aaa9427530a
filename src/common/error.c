#include "aedet/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ae_status ae_fail(ae_error *err, ae_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void ae_error_prefix(ae_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[512], old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    /* Truncation is fine: the start of a message says the most. */
    int len = snprintf(err->message, sizeof err->message, "%s: ", prefix);
    if (len >= 0 && (size_t)len < sizeof err->message)
        strncat(err->message, old, sizeof err->message - (size_t)len - 1);
}

void ae_error_clear(ae_error *err)
{
    if (err) {
        err->code = AE_OK;
        err->message[0] = '\0';
    }
}

const char *ae_status_name(ae_status code)
{
    switch (code) {
    case AE_OK: return "ok";
    case AE_ERR_USAGE: return "usage error";
    case AE_ERR_DATA: return "bad data";
    case AE_ERR_IO: return "I/O error";
    case AE_ERR_NOMEM: return "out of memory";
    case AE_ERR_NUMERIC: return "numeric error";
    case AE_ERR_INTERRUPTED: return "interrupted";
    case AE_ERR_FORMAT: return "bad model file";
    }
    return "unknown error";
}

int ae_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}
