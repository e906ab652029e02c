// dv_backend_module.h: the ABI between duovid and a backend built as a run-time module (the CUDA
// backend, libduovid-cuda.so), in the manner of ggml's backend loading.
//
// duovid never links a GPU runtime: on the first `--device cuda|auto` request, kernels/backend.c
// dlopen()s the module, looks up one symbol, DV_BACKEND_MODULE_SYMBOL, and calls it with the host's
// services. The module checks the ABI (the version and the sizes of the structures both sides share)
// and fills in its entry points. A missing, unloadable or mismatched module is an error with a
// message, never a crash; the caller then uses the CPU backend. The module is never unloaded (its
// op tables live as long as the process).
//
// The module links nothing of libduovid: it compiles kernels/dv_tensor.c itself and reports errors
// through the host's error_set, so messages land in the host's dv_error_message().
#ifndef DV_BACKEND_MODULE_H
#define DV_BACKEND_MODULE_H

#include "kernels/dv_backend.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bump on any change to dv_backend_ops, dv_backend, dv_tensor, dv_kv_head_view, dv_attn_params,
// dv_rope, dv_rope_sec or the two structures below.
#define DV_BACKEND_MODULE_ABI 3 // 2: pool2d DV_POOL_BILINEAR; conv1d_causal, gated_delta_rule, mul_sigmoid; rope_sections; kv_store; 3: gather_sum
#define DV_BACKEND_MODULE_SYMBOL "dv_backend_module_register"

// What the host hands the module.
typedef struct dv_backend_host {
    int abi;                    // DV_BACKEND_MODULE_ABI of the host
    size_t sizeof_ops, sizeof_backend, sizeof_tensor; // layout check of the shared structures
    // records the host thread's last error (core/dv_error.h's dv_error_set); returns code
    int (*error_set)(int code, const char *fmt, ...);
} dv_backend_host;

// What the module hands back.
typedef struct dv_backend_module {
    int abi;                    // DV_BACKEND_MODULE_ABI of the module
    const char *name;           // "cuda"
    // a backend on device `device` (an ordinal); NULL with a status (DV_EDEVICE: no usable device)
    // and a message on failure
    dv_backend *(*init)(int device, int *status);
} dv_backend_module;

// The one symbol a module exports: 0 and *mod filled, or DV_EUNSUPPORTED when host->abi or a size
// differs from the module's (message set through host->error_set when it is safe to call).
typedef int (*dv_backend_module_register_fn)(const dv_backend_host *host, dv_backend_module *mod);

// Loads the module at `path` (dlopen, the register symbol, the ABI check both ways). 0 and *mod
// filled, or <0 with a message naming the file: DV_ENOTFOUND when it does not exist, DV_EFORMAT when
// it cannot be loaded, lacks the symbol or refuses the ABI. The library stays loaded on success.
int dv_backend_module_open(const char *path, dv_backend_module *mod);

#ifdef __cplusplus
}
#endif
#endif
