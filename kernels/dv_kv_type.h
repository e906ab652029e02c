// dv_kv_type.h: how a KV cache stores one key (or value) row of one head: the types, their byte
// layouts and the one scalar rule that quantizes and dequantizes a row (docs/FORMATS.md "KV row
// types"). The kernels read rows in these layouts directly; the KV cache writes them.
//
// A row is D values of one (token, kv head):
//  - f32:  D floats                                         4 D bytes
//  - bf16: D bfloat16 (round to nearest even)               2 D bytes
//  - f16:  D IEEE half floats (round to nearest even)       2 D bytes
//  - q8:   f32 scale s, then D int8 q (x = s q, s = max|x| / 127)          4 + D bytes
//  - q4:   D / 32 groups of 20 bytes: f16 scale d, f16 offset m, 16 bytes of nibbles; byte i of a
//          group holds element i (low nibble) and element i + 16 (high nibble); x = d q + m,
//          m = min, d = (max - min) / 15 (D a multiple of 32)                 D / 32 * 20 bytes
#ifndef DV_KV_TYPE_H
#define DV_KV_TYPE_H

#include "core/dv_dtype.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dv_kv_type {
    DV_KV_F32 = 0,
    DV_KV_BF16,
    DV_KV_F16,
    DV_KV_Q8,
    DV_KV_Q4,
    DV_KV_TYPE_COUNT
} dv_kv_type;

#define DV_KV_Q4_GROUP 32       // values per q4 group
#define DV_KV_Q4_GROUP_BYTES 20 // f16 scale + f16 offset + 16 bytes of nibbles

#ifdef __CUDACC__
#define DV_KV_FN static inline __host__ __device__
#else
#define DV_KV_FN static inline
#endif

// Bytes of one row of D values (q4: D must be a multiple of 32; dv_kv_type_check says so).
DV_KV_FN int64_t dv_kv_row_bytes(dv_kv_type t, int64_t D) {
    switch (t) {
    case DV_KV_F32: return 4 * D;
    case DV_KV_BF16:
    case DV_KV_F16: return 2 * D;
    case DV_KV_Q8: return 4 + D;
    case DV_KV_Q4: return D / DV_KV_Q4_GROUP * DV_KV_Q4_GROUP_BYTES;
    default: return 0;
    }
}
#undef DV_KV_FN

// (host code, CUDA host code included)
static inline const char *dv_kv_type_name(dv_kv_type t) {
    static const char *const names[DV_KV_TYPE_COUNT] = {"f32", "bf16", "f16", "q8", "q4"};
    return (unsigned)t < DV_KV_TYPE_COUNT ? names[t] : "?";
}

// "f32" | "bf16" | "f16" | "q8" | "q4" -> the type, else -1.
static inline int dv_kv_type_parse(const char *s) {
    for (int t = 0; t < DV_KV_TYPE_COUNT; t++)
        if (!strcmp(s, dv_kv_type_name((dv_kv_type)t))) return t;
    return -1;
}

// Can rows of D values be stored as t? (q4 needs whole groups.)
static inline int dv_kv_type_fits(dv_kv_type t, int64_t D) {
    return (unsigned)t < DV_KV_TYPE_COUNT && D > 0 && (t != DV_KV_Q4 || D % DV_KV_Q4_GROUP == 0);
}

#ifndef __CUDACC__ // (the CUDA backend's own device versions: kernels/cuda/kv_store.cu, kv_rows.cuh)
// x (D) F32 -> one row of type t at `row` (dv_kv_row_bytes(t, D) bytes, no alignment needed).
static inline void dv_kv_quantize_row(dv_kv_type t, const float *x, int64_t D, void *row) {
    uint8_t *o = (uint8_t *)row;
    switch (t) {
    case DV_KV_F32: memcpy(o, x, (size_t)D * 4); return;
    case DV_KV_BF16:
        for (int64_t d = 0; d < D; d++) {
            const uint16_t h = dv_f32_to_bf16(x[d]);
            memcpy(o + 2 * d, &h, 2);
        }
        return;
    case DV_KV_F16:
        for (int64_t d = 0; d < D; d++) {
            const uint16_t h = dv_f32_to_f16(x[d]);
            memcpy(o + 2 * d, &h, 2);
        }
        return;
    case DV_KV_Q8: {
        float amax = 0.0f;
        for (int64_t d = 0; d < D; d++) amax = fabsf(x[d]) > amax ? fabsf(x[d]) : amax;
        const float s = amax / 127.0f, inv = s > 0.0f ? 1.0f / s : 0.0f;
        memcpy(o, &s, 4);
        for (int64_t d = 0; d < D; d++) {
            const float r = nearbyintf(x[d] * inv);
            o[4 + d] = (uint8_t)(int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r);
        }
        return;
    }
    case DV_KV_Q4:
        for (int64_t g = 0; g < D / DV_KV_Q4_GROUP; g++) {
            const float *xg = x + g * DV_KV_Q4_GROUP;
            uint8_t *og = o + g * DV_KV_Q4_GROUP_BYTES;
            float lo = xg[0], hi = xg[0];
            for (int i = 1; i < DV_KV_Q4_GROUP; i++) {
                lo = xg[i] < lo ? xg[i] : lo;
                hi = xg[i] > hi ? xg[i] : hi;
            }
            // the stored (f16-rounded) scale and offset are the ones the codes are chosen for
            const uint16_t dh = dv_f32_to_f16((hi - lo) / 15.0f), mh = dv_f32_to_f16(lo);
            const float dq = dv_f16_to_f32(dh), mq = dv_f16_to_f32(mh), inv = dq > 0.0f ? 1.0f / dq : 0.0f;
            memcpy(og, &dh, 2);
            memcpy(og + 2, &mh, 2);
            for (int i = 0; i < 16; i++) {
                float a = nearbyintf((xg[i] - mq) * inv), b = nearbyintf((xg[i + 16] - mq) * inv);
                a = a < 0.0f ? 0.0f : a > 15.0f ? 15.0f : a;
                b = b < 0.0f ? 0.0f : b > 15.0f ? 15.0f : b;
                og[4 + i] = (uint8_t)((int)a | (int)b << 4);
            }
        }
        return;
    default: return;
    }
}

// One row of type t -> y (D) F32: the scalar reference of what the kernels compute.
static inline void dv_kv_dequantize_row(dv_kv_type t, const void *row, int64_t D, float *y) {
    const uint8_t *r = (const uint8_t *)row;
    switch (t) {
    case DV_KV_F32: memcpy(y, r, (size_t)D * 4); return;
    case DV_KV_BF16:
    case DV_KV_F16:
        for (int64_t d = 0; d < D; d++) {
            uint16_t h;
            memcpy(&h, r + 2 * d, 2);
            y[d] = t == DV_KV_BF16 ? dv_bf16_to_f32(h) : dv_f16_to_f32(h);
        }
        return;
    case DV_KV_Q8: {
        float s;
        memcpy(&s, r, 4);
        for (int64_t d = 0; d < D; d++) y[d] = s * (float)(int8_t)r[4 + d];
        return;
    }
    case DV_KV_Q4:
        for (int64_t g = 0; g < D / DV_KV_Q4_GROUP; g++) {
            const uint8_t *rg = r + g * DV_KV_Q4_GROUP_BYTES;
            uint16_t dh, mh;
            memcpy(&dh, rg, 2);
            memcpy(&mh, rg + 2, 2);
            const float dq = dv_f16_to_f32(dh), mq = dv_f16_to_f32(mh);
            for (int i = 0; i < 16; i++) {
                y[g * DV_KV_Q4_GROUP + i] = dq * (float)(rg[4 + i] & 15) + mq;
                y[g * DV_KV_Q4_GROUP + i + 16] = dq * (float)(rg[4 + i] >> 4) + mq;
            }
        }
        return;
    default: return;
    }
}
#endif

#ifdef __cplusplus
}
#endif
#endif
