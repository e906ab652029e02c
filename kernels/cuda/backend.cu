// backend.cu: the CUDA backend: device, stream, cuBLAS handle, device memory (plain cudaMalloc, no
// managed memory), copies, the op table, and the registration function of the run-time module
// libduovid-cuda.so (kernels/dv_backend_module.h). Ops live in one .cu file per family beside this
// one; each has a plain-C twin in kernels/cpu/ that tests/test_cuda_backend_ops.c compares it against.
#include "kernels/cuda/common.cuh"
#include "kernels/dv_backend_module.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void *grow(dv_backend *be, void **buf, size_t *have, size_t bytes) {
    if (*have < bytes) {
        // the old buffer may still be in use by queued work
        DV_CUDA_CHECK(be, cudaStreamSynchronize(dv_cuda(be)->stream), "scratch sync");
        if (*buf) cudaFree(*buf);
        *buf = NULL;
        *have = 0;
        DV_CUDA_CHECK(be, cudaMalloc(buf, bytes), "scratch alloc");
        if (*buf) *have = bytes;
    }
    return *buf;
}

void *dv_cuda_scratch(dv_backend *be, size_t bytes) {
    return grow(be, &dv_cuda(be)->scratch, &dv_cuda(be)->scratch_bytes, bytes);
}

void *dv_cuda_table(dv_backend *be, size_t bytes) {
    return grow(be, &dv_cuda(be)->table, &dv_cuda(be)->table_bytes, bytes);
}

void *dv_cuda_attn_ws(dv_backend *be, size_t bytes) {
    return grow(be, &dv_cuda(be)->attn_ws, &dv_cuda(be)->attn_ws_bytes, bytes);
}

static void *cuda_alloc(dv_backend *be, size_t n) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, n ? n : 256);
    if (e != cudaSuccess) {
        size_t free_b = 0, total = 0;
        cudaMemGetInfo(&free_b, &total);
        dv_error_set(DV_ENOMEM, "CUDA: cannot allocate %.1f MiB of device memory (%.1f MiB free): %s",
                     (double)n / (1 << 20), (double)free_b / (1 << 20), cudaGetErrorString(e));
        return NULL;
    }
    (void)be;
    return p;
}

static void cuda_free(dv_backend *be, void *p) {
    (void)be;
    cudaFree(p);
}

// wait: 1 when the host side must be done on return (upload from caller memory, download); device
// copies and upload_async stay queued on the stream.
static int cuda_memcpy(dv_backend *be, void *dst, const void *src, size_t n, cudaMemcpyKind kind, int wait,
                       const char *what) {
    if (!n) return 0;
    DV_CUDA_CHECK(be, cudaMemcpyAsync(dst, src, n, kind, dv_cuda(be)->stream), what);
    if (wait) DV_CUDA_CHECK(be, cudaStreamSynchronize(dv_cuda(be)->stream), what);
    return dv_cuda(be)->status;
}

static int cuda_upload(dv_backend *be, void *d, const void *s, size_t n) {
    return cuda_memcpy(be, d, s, n, cudaMemcpyHostToDevice, 1, "upload");
}
static int cuda_upload_async(dv_backend *be, void *d, const void *s, size_t n) {
    return cuda_memcpy(be, d, s, n, cudaMemcpyHostToDevice, 0, "upload (async)");
}
static int cuda_download(dv_backend *be, void *d, const void *s, size_t n) {
    return cuda_memcpy(be, d, s, n, cudaMemcpyDeviceToHost, 1, "download");
}
static int cuda_copy(dv_backend *be, void *d, const void *s, size_t n) {
    return cuda_memcpy(be, d, s, n, cudaMemcpyDeviceToDevice, 0, "device copy");
}

static int cuda_copy_2d(dv_backend *be, void *d, size_t dp, const void *s, size_t sp, size_t w, size_t rows) {
    if (!w || !rows) return 0;
    DV_CUDA_CHECK(be, cudaMemcpy2DAsync(d, dp, s, sp, w, rows, cudaMemcpyDeviceToDevice, dv_cuda(be)->stream),
                  "device copy 2d");
    return dv_cuda(be)->status;
}

static int cuda_mem_info(dv_backend *be, size_t *used, size_t *total) {
    size_t free_b = 0, tot = 0;
    cudaError_t e = cudaMemGetInfo(&free_b, &tot);
    if (e != cudaSuccess) return dv_error_set(DV_EDEVICE, "CUDA memory info: %s", cudaGetErrorString(e));
    (void)be;
    *used = tot - free_b;
    *total = tot;
    return 0;
}

static int cuda_sync(dv_backend *be) {
    DV_CUDA_CHECK(be, cudaStreamSynchronize(dv_cuda(be)->stream), "synchronize");
    return dv_cuda(be)->status;
}

static void cuda_destroy(dv_backend *be) {
    dv_cuda_ctx *c = dv_cuda(be);
    if (c) {
        if (c->scratch) cudaFree(c->scratch);
        if (c->table) cudaFree(c->table);
        if (c->attn_ws) cudaFree(c->attn_ws);
        dv_cuda_layouts_free(be);
        free(c->host_table);
        if (c->cublas) cublasDestroy(c->cublas);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

static const dv_backend_ops dv_cuda_ops = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .synchronize = cuda_sync,
    .destroy = cuda_destroy,
    .matmul = dv_cuda_matmul,
    .rms_norm = dv_cuda_rms_norm,
    .layer_norm = dv_cuda_layer_norm,
    .rope = dv_cuda_rope,
    .act = dv_cuda_act,
    .swiglu = dv_cuda_swiglu,
    .attention = dv_cuda_attention,
    .attention_kv = dv_cuda_attention_kv,
    .embed = dv_cuda_embed,
    .add = dv_cuda_add,
    .copy_2d = cuda_copy_2d,
    .mem_info = cuda_mem_info,
    .pool2d = dv_cuda_pool2d,
    .upload_async = cuda_upload_async,
    .conv1d_causal = dv_cuda_conv1d_causal,
    .gated_delta_rule = dv_cuda_gated_delta_rule,
    .mul_sigmoid = dv_cuda_mul_sigmoid,
    .rope_sections = dv_cuda_rope_sections,
    .kv_store = dv_cuda_kv_store, // compact KV rows (kv_store.cu); the attention kernels read every type
    .gather_sum = dv_cuda_gather_sum,
};

static dv_backend *cuda_init(int device, int *status) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        *status = dv_error_set(DV_EDEVICE, "no CUDA device available (%s)",
                               e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return NULL;
    }
    if (device < 0 || device >= n) {
        *status = dv_error_set(DV_EINVAL, "CUDA device %d does not exist (%d found)", device, n);
        return NULL;
    }
    dv_backend *be = (dv_backend *)calloc(1, sizeof *be);
    dv_cuda_ctx *c = (dv_cuda_ctx *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        *status = dv_error_set(DV_ENOMEM, "out of memory");
        return NULL;
    }
    be->ops = &dv_cuda_ops;
    be->device = DV_DEVICE_CUDA;
    be->n_threads = 1;
    be->ctx = c;
    c->device = device;
    if ((e = cudaSetDevice(device)) != cudaSuccess || (e = cudaStreamCreate(&c->stream)) != cudaSuccess) {
        *status = dv_error_set(DV_EDEVICE, "CUDA device %d: %s", device, cudaGetErrorString(e));
        cuda_destroy(be);
        return NULL;
    }
    if (cublasCreate(&c->cublas) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(c->cublas, c->stream) != CUBLAS_STATUS_SUCCESS) {
        *status = dv_error_set(DV_EDEVICE, "CUDA device %d: cuBLAS initialization failed", device);
        cuda_destroy(be);
        return NULL;
    }
    // fp32 GEMMs stay fp32 (no TF32): the op tests hold fp32 paths to 1e-4
    cublasSetMathMode(c->cublas, CUBLAS_DEFAULT_MATH);
    *status = 0;
    return be;
}

// ---- the module's side of kernels/dv_backend_module.h ----

static const dv_backend_host *dv_host; // set once by dv_backend_module_register

// This module's dv_error_set (core/dv_error.h, which it does not link): the message is recorded in
// the host's thread-local error, where the caller's dv_error_message() reads it.
extern "C" int dv_error_set(int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dv_host ? dv_host->error_set(code, "%s", msg) : code;
}

extern "C" __attribute__((visibility("default"))) int dv_backend_module_register(const dv_backend_host *host,
                                                                                 dv_backend_module *mod) {
    // (a host of another ABI may lay the structure out differently: only its first field is read then)
    if (host->abi != DV_BACKEND_MODULE_ABI) return DV_EUNSUPPORTED;
    if (host->sizeof_ops != sizeof(dv_backend_ops) || host->sizeof_backend != sizeof(dv_backend) ||
        host->sizeof_tensor != sizeof(dv_tensor))
        return host->error_set(DV_EUNSUPPORTED, "structure sizes differ from the module's (ops %zu/%zu, backend "
                               "%zu/%zu, tensor %zu/%zu)", host->sizeof_ops, sizeof(dv_backend_ops),
                               host->sizeof_backend, sizeof(dv_backend), host->sizeof_tensor, sizeof(dv_tensor));
    dv_host = host;
    mod->abi = DV_BACKEND_MODULE_ABI;
    mod->name = "cuda";
    mod->init = cuda_init;
    return 0;
}
