// common.cuh: shared pieces of the CUDA backend: the backend context, error checks that name the op
// and shapes, and small device helpers. Included by every kernels/cuda/*.cu file.
#pragma once

#include "core/dv_error.h"
#include "kernels/dv_backend.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define DV_CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

typedef struct dv_cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
    int status;              // sticky: the first failure, reported by synchronize()
    void *scratch;           // device scratch: half-precision activations for GEMMs, owned
    size_t scratch_bytes;
    void *table;             // device copy of attention_kv's segment table, owned
    size_t table_bytes;
    char *host_table;        // its host staging buffer, owned
    size_t host_table_bytes;
    void *attn_ws;           // split-K decode partial results, owned
    size_t attn_ws_bytes;
    struct dv_cuda_layout *layouts; // (n_layouts) KV cache layouts on the device, per layer, owned
    int n_layouts;
} dv_cuda_ctx;

static inline dv_cuda_ctx *dv_cuda(dv_backend *be) { return (dv_cuda_ctx *)be->ctx; }

// Records the first CUDA failure (sticky) with the op name; later ops still run but the caller
// learns of it at synchronize().
#define DV_CUDA_CHECK(be, call, op)                                                                    \
    do {                                                                                               \
        cudaError_t e_ = (call);                                                                       \
        if (e_ != cudaSuccess && !dv_cuda(be)->status)                                                 \
            dv_cuda(be)->status = dv_error_set(DV_EDEVICE, "CUDA %s: %s (%s:%d)", op, cudaGetErrorString(e_), \
                                               __FILE__, __LINE__);                                    \
    } while (0)

// After every launch: launch-configuration errors surface here, execution errors at synchronize().
#define DV_CUDA_LAUNCHED(be, op) DV_CUDA_CHECK(be, cudaGetLastError(), op)

// Grow the device scratch / table buffers (rarely: sizes stabilize after the first forward).
void *dv_cuda_scratch(dv_backend *be, size_t bytes);
void *dv_cuda_table(dv_backend *be, size_t bytes);
void *dv_cuda_attn_ws(dv_backend *be, size_t bytes);
// attention.cu: frees the cached KV layouts (backend teardown).
void dv_cuda_layouts_free(dv_backend *be);

// Element i of a float-typed buffer as float, on the device.
__device__ __forceinline__ float dv_ld(const void *p, dv_dtype t, long long i) {
    if (t == DV_DTYPE_F32) return ((const float *)p)[i];
    if (t == DV_DTYPE_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return __half2float(((const __half *)p)[i]);
}

__device__ __forceinline__ float dv_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over a block of up to 1024 threads (blockDim.x a multiple of 32); every thread gets the sum.
__device__ __forceinline__ float dv_block_sum(float v) {
    __shared__ float part[32];
    v = dv_warp_sum(v);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = threadIdx.x < blockDim.x / 32 ? part[lane] : 0.0f;
    return dv_warp_sum(v);
}

// ---- op entry points (one .cu file each family) ----
void dv_cuda_matmul(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *bias);
void dv_cuda_rms_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, float eps);
void dv_cuda_layer_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *b,
                        float eps);
void dv_cuda_rope(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope);
void dv_cuda_rope_sections(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope,
                           const dv_rope_sec *sec);
void dv_cuda_act(dv_backend *be, dv_tensor *y, const dv_tensor *x, dv_act act);
void dv_cuda_swiglu(dv_backend *be, dv_tensor *y, const dv_tensor *gate, const dv_tensor *up);
void dv_cuda_attention(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k, const dv_tensor *v,
                       const dv_attn_params *p);
void dv_cuda_attention_kv(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                          const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p);
void dv_cuda_embed(dv_backend *be, dv_tensor *y, const dv_tensor *table, const dv_tensor *ids);
void dv_cuda_add(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b);
void dv_cuda_conv1d_causal(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, dv_tensor *state);
void dv_cuda_gated_delta_rule(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k,
                              const dv_tensor *v, const dv_tensor *a, const dv_tensor *b, const dv_tensor *a_log,
                              const dv_tensor *dt_bias, dv_tensor *state, int chunk);
void dv_cuda_mul_sigmoid(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *gate);
void dv_cuda_gather_sum(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *idx, const dv_tensor *w);
void dv_cuda_pool2d(dv_backend *be, dv_tensor *y, const dv_tensor *x, int grid, int stride, dv_pool mode);
int dv_cuda_kv_store(dv_backend *be, void *dst, size_t dst_pitch, dv_kv_type t, const float *src, size_t src_pitch,
                     int64_t D, size_t rows);
