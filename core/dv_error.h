// dv_error.h: status codes and the thread-local "last error" message.
//
// Library functions return int: 0 (DV_OK) on success, a negative DV_E* code on failure. The failing
// function records one human-readable line naming the file/tensor/op and the problem with
// dv_error_set(); callers add context with dv_error_prefix(); apps/ prints dv_error_message() once
// and exits 1. Programmer errors (violated preconditions) use DV_ASSERT and abort instead.
#ifndef DV_ERROR_H
#define DV_ERROR_H

#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

enum dv_status {
    DV_OK = 0,
    DV_EINVAL = -1,       // bad argument or flag value
    DV_EIO = -2,          // open/read/write/mmap failed
    DV_ENOMEM = -3,       // allocation failed
    DV_EFORMAT = -4,      // malformed or inconsistent file contents
    DV_ENOTFOUND = -5,    // missing file, tensor, key
    DV_EUNSUPPORTED = -6, // valid input we do not handle (dtype, architecture, codec)
    DV_ESHAPE = -7,       // tensor shape does not match what the model expects
    DV_EDEVICE = -8,      // backend/device failure (CUDA, out of device memory)
    DV_EINTR = -9,        // interrupted by the user
};

// Record `fmt` as the current thread's last error; returns `code` so callers can write
// `return dv_error_set(DV_EIO, "%s: cannot open (%s)", path, strerror(errno));`
int dv_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Prepend "<context>: " to the current message (keeps the code); returns the code.
int dv_error_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// The last message ("" when none) and a short name for a code ("I/O error", ...).
const char *dv_error_message(void);
const char *dv_error_name(int code);
void dv_error_clear(void);

// Programmer-error check that stays on in release builds (cheap, at op/API boundaries only).
#define DV_ASSERT(cond)                                                                       \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "duovid: internal error: %s:%d: %s: assertion '%s' failed\n",    \
                    __FILE__, __LINE__, __func__, #cond);                                     \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
