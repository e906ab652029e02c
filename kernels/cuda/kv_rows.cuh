// kv_rows.cuh: KV rows in their stored types (kernels/dv_kv_type.h: f32, bf16, f16, q8, q4) as the
// CUDA attention kernels read them: dequantized in registers as they are loaded, never copied to a
// dequantized cache. The element values are those of dv_kv_dequantize_row (the scalar reference the
// CPU kernels follow); kv_store.cu writes the rows.
#pragma once

#include "kernels/cuda/common.cuh"
#include "kernels/dv_kv_type.h"

#include <stdint.h>
#include <string.h>

// (host and device: the decoders are plain arithmetic; tests may run them on the host)
#define DV_KV_DEV __host__ __device__ __forceinline__

DV_KV_DEV float dv_kv_u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Elements c .. c+3 of one row of type t (c a multiple of 4). The row must be aligned as
// dv_cuda_kv_row_align(t) (attn_path.h) says: the fast kernels take a segment only then.
DV_KV_DEV float4 dv_kv_load4(const char *row, int t, int c) {
    switch (t) {
    case DV_KV_BF16: {
        const uint2 u = *(const uint2 *)(row + 2 * c); // 4 bf16: a bf16 is the top half of its f32
        return make_float4(dv_kv_u2f(u.x << 16), dv_kv_u2f(u.x & 0xffff0000u), dv_kv_u2f(u.y << 16),
                           dv_kv_u2f(u.y & 0xffff0000u));
    }
    case DV_KV_F16: {
        const uint2 u = *(const uint2 *)(row + 2 * c); // 4 f16 in one 8-byte load
        return make_float4(__half2float(__ushort_as_half((unsigned short)(u.x & 0xffffu))),
                           __half2float(__ushort_as_half((unsigned short)(u.x >> 16))),
                           __half2float(__ushort_as_half((unsigned short)(u.y & 0xffffu))),
                           __half2float(__ushort_as_half((unsigned short)(u.y >> 16))));
    }
    case DV_KV_Q8: {
        const float s = *(const float *)row;
        const char4 q = *(const char4 *)(row + 4 + c);
        return make_float4(s * (float)q.x, s * (float)q.y, s * (float)q.z, s * (float)q.w);
    }
    case DV_KV_Q4: {
        // group c / 32: f16 scale and offset, then byte i holds element i (low) and i + 16 (high)
        const char *g = row + (c / DV_KV_Q4_GROUP) * DV_KV_Q4_GROUP_BYTES;
        const int i = c % DV_KV_Q4_GROUP;
        const uint32_t hd = *(const uint32_t *)g;
        const float2 dm = make_float2(__half2float(__ushort_as_half((unsigned short)(hd & 0xffffu))),
                                      __half2float(__ushort_as_half((unsigned short)(hd >> 16))));
        uint32_t b = *(const uint32_t *)(g + 4 + (i & 15));
        if (i >= 16) b >>= 4;
        return make_float4(dm.x * (float)(b & 15) + dm.y, dm.x * (float)((b >> 8) & 15) + dm.y,
                           dm.x * (float)((b >> 16) & 15) + dm.y, dm.x * (float)((b >> 24) & 15) + dm.y);
    }
    default: return *(const float4 *)(row + 4 * c);
    }
}

DV_KV_DEV uint32_t dv_kv_bytes_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
DV_KV_DEV unsigned short dv_kv_bytes_u16(const unsigned char *p) {
    return (unsigned short)(p[0] | p[1] << 8);
}

// Element i of one row of type t, with byte loads only (any alignment; f32 rows 4-byte aligned, as
// attention_kv asserts): the fp32 fallback kernels' reader.
DV_KV_DEV float dv_kv_elem(const char *row, int t, int i) {
    const unsigned char *r = (const unsigned char *)row;
    switch (t) {
    case DV_KV_BF16: return dv_kv_u2f((uint32_t)dv_kv_bytes_u16(r + 2 * i) << 16);
    case DV_KV_F16: return __half2float(__ushort_as_half(dv_kv_bytes_u16(r + 2 * i)));
    case DV_KV_Q8: return dv_kv_u2f(dv_kv_bytes_u32(r)) * (float)(signed char)r[4 + i];
    case DV_KV_Q4: {
        const unsigned char *g = r + (i / DV_KV_Q4_GROUP) * DV_KV_Q4_GROUP_BYTES;
        const int j = i % DV_KV_Q4_GROUP;
        const float d = __half2float(__ushort_as_half(dv_kv_bytes_u16(g)));
        const float m = __half2float(__ushort_as_half(dv_kv_bytes_u16(g + 2)));
        const int code = j < 16 ? g[4 + j] & 15 : g[4 + j - 16] >> 4;
        return d * (float)code + m;
    }
    default: return ((const float *)row)[i];
    }
}
