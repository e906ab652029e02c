// kv_store.cu: the kv_store op on the device: F32 key/value rows -> KV rows of a compact type
// (kernels/dv_kv_type.h), what a KV cache's append does for bf16/f16/q8/q4. The arithmetic is
// dv_kv_quantize_row's, step for step (IEEE division, round half to even, no fused multiply-adds),
// so the device writes the bytes the CPU backend writes. One warp per row: q8's max |x| is a warp
// reduction; a q4 group's scale / offset search is dv_kv_q4_group itself (the header's one copy,
// host and device), one lane per group.
#include "kernels/cuda/common.cuh"
#include "kernels/dv_kv_type.h"

#include <stdint.h>

#define KS_THREADS 128

// dv_f32_to_bf16 on the device: round to nearest even, NaN kept quiet as the host does it.
__device__ __forceinline__ unsigned short f32_to_bf16(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

__device__ __forceinline__ void put_u16(unsigned char *p, unsigned short h) {
    p[0] = (unsigned char)h;
    p[1] = (unsigned char)(h >> 8);
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Row r of src (D floats at src + r * sp bytes) -> row r of dst (type t, at dst + r * dp bytes).
static __global__ void kv_store_kernel(unsigned char *dst, long long dp, const char *src, long long sp, int t, int D,
                                       long long rows) {
    const long long r = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (r >= rows) return; // whole warps leave together (rows are per warp)
    const int lane = threadIdx.x % 32;
    const float *x = (const float *)(src + r * sp);
    unsigned char *o = dst + r * dp;
    switch (t) {
    case DV_KV_BF16:
        for (int d = lane; d < D; d += 32) put_u16(o + 2 * d, f32_to_bf16(x[d]));
        return;
    case DV_KV_F16:
        for (int d = lane; d < D; d += 32) put_u16(o + 2 * d, __half_as_ushort(__float2half_rn(x[d])));
        return;
    case DV_KV_Q8: {
        float amax = 0.0f;
        for (int d = lane; d < D; d += 32) amax = fmaxf(amax, fabsf(x[d]));
        amax = warp_max(amax);
        const float s = amax / 127.0f, inv = s > 0.0f ? 1.0f / s : 0.0f;
        if (lane == 0) {
            const uint32_t u = __float_as_uint(s);
            for (int b = 0; b < 4; b++) o[b] = (unsigned char)(u >> (8 * b));
        }
        for (int d = lane; d < D; d += 32) {
            const float q = rintf(__fmul_rn(x[d], inv)); // (no contraction: the host's product)
            o[4 + d] = (unsigned char)(signed char)(q > 127.0f ? 127 : q < -127.0f ? -127 : (int)q);
        }
        return;
    }
    case DV_KV_Q4: // one lane per group, dv_kv_q4_group's search as the host runs it
        for (int g = lane; g < D / DV_KV_Q4_GROUP; g += 32)
            dv_kv_q4_group(x + g * DV_KV_Q4_GROUP, o + g * DV_KV_Q4_GROUP_BYTES);
        return;
    default: // f32
        for (int d = lane; d < D; d += 32) {
            const uint32_t u = __float_as_uint(x[d]);
            for (int b = 0; b < 4; b++) o[4 * d + b] = (unsigned char)(u >> (8 * b));
        }
        return;
    }
}

int dv_cuda_kv_store(dv_backend *be, void *dst, size_t dst_pitch, dv_kv_type t, const float *src, size_t src_pitch,
                     int64_t D, size_t rows) {
    if (!dv_kv_type_fits(t, D) || src_pitch % 4 || (uintptr_t)src % 4)
        return dv_error_set(DV_EINVAL, "kv_store: rows of %lld values cannot be stored as %s (or src misaligned)",
                            (long long)D, dv_kv_type_name(t));
    if (!rows) return 0;
    kv_store_kernel<<<(unsigned)DV_CEIL_DIV((long long)rows * 32, KS_THREADS), KS_THREADS, 0, dv_cuda(be)->stream>>>(
        (unsigned char *)dst, (long long)dst_pitch, (const char *)src, (long long)src_pitch, (int)t, (int)D,
        (long long)rows);
    DV_CUDA_LAUNCHED(be, "kv_store");
    return dv_cuda(be)->status;
}
