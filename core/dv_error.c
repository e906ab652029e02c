// dv_error.c: the thread-local last-error message behind dv_error_set()/dv_error_message().
#include "core/dv_error.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char dv_err_msg[1024];

int dv_error_set(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dv_err_msg, sizeof dv_err_msg, fmt, ap);
    va_end(ap);
    return code;
}

int dv_error_prefix(int code, const char *fmt, ...) {
    char prefix[512], old[sizeof dv_err_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, dv_err_msg, sizeof old);
    const char *rest = old[0] ? old : dv_error_name(code);
    // "prefix: rest", truncated to the buffer (the return value is checked to keep -Wformat-truncation quiet)
    int n = snprintf(dv_err_msg, sizeof dv_err_msg, "%s: ", prefix);
    if (n > 0 && (size_t)n < sizeof dv_err_msg) {
        size_t room = sizeof dv_err_msg - (size_t)n - 1, len = strlen(rest);
        if (len > room) len = room;
        memcpy(dv_err_msg + n, rest, len);
        dv_err_msg[(size_t)n + len] = 0;
    }
    return code;
}

const char *dv_error_message(void) { return dv_err_msg; }

void dv_error_clear(void) { dv_err_msg[0] = 0; }

const char *dv_error_name(int code) {
    switch (code) {
    case DV_OK: return "success";
    case DV_EINVAL: return "invalid argument";
    case DV_EIO: return "I/O error";
    case DV_ENOMEM: return "out of memory";
    case DV_EFORMAT: return "malformed file";
    case DV_ENOTFOUND: return "not found";
    case DV_EUNSUPPORTED: return "unsupported";
    case DV_ESHAPE: return "shape mismatch";
    case DV_EDEVICE: return "device error";
    case DV_EINTR: return "interrupted";
    default: return "unknown error";
    }
}
