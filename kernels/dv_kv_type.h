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
//          group holds element i (low nibble) and element i + 16 (high nibble); x = d q + m, (d, m)
//          the group's least-squares fit (dv_kv_q4_group; D a multiple of 32)   D / 32 * 20 bytes
#ifndef DV_KV_TYPE_H
#define DV_KV_TYPE_H

#include "core/dv_dtype.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __CUDACC__
#include <cuda_fp16.h> // (dv_kv_q4_group's f16 conversions on the device)
#endif

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

// f32 arithmetic of dv_kv_q4_group, spelled so the host and the device round every step alike (the
// device would otherwise contract a * b + c into one fused, differently rounded, operation), and the
// f16 conversions of each side (round to nearest even on both); the device pass of nvcc only
#ifdef __CUDA_ARCH__
#define DV_KV_MUL(a, b) __fmul_rn((a), (b))
#define DV_KV_ADD(a, b) __fadd_rn((a), (b))
#define DV_KV_SUB(a, b) __fsub_rn((a), (b))
#define DV_KV_DIV(a, b) __fdiv_rn((a), (b))
#define DV_KV_TO_F16(x) __half_as_ushort(__float2half_rn(x))
#define DV_KV_OF_F16(h) __half2float(__ushort_as_half(h))
#else
#define DV_KV_MUL(a, b) ((a) * (b))
#define DV_KV_ADD(a, b) ((a) + (b))
#define DV_KV_SUB(a, b) ((a) - (b))
#define DV_KV_DIV(a, b) ((a) / (b))
#define DV_KV_TO_F16(x) dv_f32_to_f16(x)
#define DV_KV_OF_F16(h) dv_f16_to_f32(h)
#endif

// Step counts over the group's range tried by dv_kv_q4_group, in quarter steps: 15 (the min / max
// grid) up to 16.5 (the edge codes' cells half outside the range: the least-squares grid of
// uniformly spread values), each refined by a least-squares fit of (d, m) to its codes.
#define DV_KV_Q4_TRIES 7

// The codes of x (DV_KV_Q4_GROUP values) for the stored scale dq > 0 and offset mq: nearest, in
// [0, 15]; their squared error is returned, the codes written to q when it is not NULL.
DV_KV_FN float dv_kv_q4_codes(const float *x, float dq, float mq, uint8_t *q) {
#if defined(__clang__) && !defined(__CUDACC__)
#pragma clang fp contract(off)
#endif
    const float inv = DV_KV_DIV(1.0f, dq);
    float err = 0.0f;
    for (int i = 0; i < DV_KV_Q4_GROUP; i++) {
        float c = rintf(DV_KV_MUL(DV_KV_SUB(x[i], mq), inv));
        c = c < 0.0f ? 0.0f : c > 15.0f ? 15.0f : c;
        const float e = DV_KV_SUB(x[i], DV_KV_ADD(DV_KV_MUL(dq, c), mq));
        err = DV_KV_ADD(err, DV_KV_MUL(e, e));
        if (q) q[i] = (uint8_t)c;
    }
    return err;
}

// One q4 group: x (DV_KV_Q4_GROUP values) -> its DV_KV_Q4_GROUP_BYTES at og. Among the min / max grid
// and DV_KV_Q4_TRIES - 1 wider grids refined by least squares, the (d, m) whose f16-rounded values
// give the smallest squared error over the group (as llama.cpp's k-quant helpers search; the codes
// are always the nearest for the stored d and m). The host and the CUDA kv_store run this same code.
DV_KV_FN void dv_kv_q4_group(const float *x, uint8_t *og) {
#if defined(__clang__) && !defined(__CUDACC__)
#pragma clang fp contract(off)
#endif
    float lo = x[0], hi = x[0];
    for (int i = 1; i < DV_KV_Q4_GROUP; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    const float range = DV_KV_SUB(hi, lo);
    uint16_t dh = DV_KV_TO_F16(DV_KV_DIV(range, 15.0f)), mh = DV_KV_TO_F16(lo);
    float best = DV_KV_OF_F16(dh) > 0.0f ? dv_kv_q4_codes(x, DV_KV_OF_F16(dh), DV_KV_OF_F16(mh), NULL) : 0.0f;
    for (int c = 1; c < DV_KV_Q4_TRIES && best > 0.0f; c++) {
        // codes on a grid of 15 + c / 4 steps over the range, centred on it; then d, m fitted to them
        const float steps = DV_KV_ADD(15.0f, DV_KV_MUL(0.25f, (float)c)), is = DV_KV_DIV(steps, range);
        const float off = DV_KV_MUL(0.5f, DV_KV_SUB(steps, 15.0f)); // codes' shift: the grid centred
        float sl = 0.0f, sll = 0.0f, sx = 0.0f, slx = 0.0f;
        for (int i = 0; i < DV_KV_Q4_GROUP; i++) {
            float q = rintf(DV_KV_SUB(DV_KV_MUL(DV_KV_SUB(x[i], lo), is), off));
            q = q < 0.0f ? 0.0f : q > 15.0f ? 15.0f : q;
            sl = DV_KV_ADD(sl, q);
            sll = DV_KV_ADD(sll, DV_KV_MUL(q, q));
            sx = DV_KV_ADD(sx, x[i]);
            slx = DV_KV_ADD(slx, DV_KV_MUL(q, x[i]));
        }
        // least squares x ~ d q + m over the group (n = 32): sums of small integers are exact
        const float n = (float)DV_KV_Q4_GROUP, det = DV_KV_SUB(DV_KV_MUL(n, sll), DV_KV_MUL(sl, sl));
        if (det <= 0.0f) continue; // one code for every value: no slope
        const float d = DV_KV_DIV(DV_KV_SUB(DV_KV_MUL(n, slx), DV_KV_MUL(sl, sx)), det);
        const float m = DV_KV_DIV(DV_KV_SUB(sx, DV_KV_MUL(d, sl)), n);
        const uint16_t dc = DV_KV_TO_F16(d), mc = DV_KV_TO_F16(m);
        const float dq = DV_KV_OF_F16(dc);
        if (!(dq > 0.0f)) continue;
        const float err = dv_kv_q4_codes(x, dq, DV_KV_OF_F16(mc), NULL);
        if (err < best) best = err, dh = dc, mh = mc;
    }
    uint8_t q[DV_KV_Q4_GROUP]; // the codes for the chosen (stored) scale and offset
    const float dq = DV_KV_OF_F16(dh), mq = DV_KV_OF_F16(mh);
    if (dq > 0.0f) dv_kv_q4_codes(x, dq, mq, q);
    else
        for (int i = 0; i < DV_KV_Q4_GROUP; i++) q[i] = 0; // a constant group: every value is m
    og[0] = (uint8_t)dh, og[1] = (uint8_t)(dh >> 8), og[2] = (uint8_t)mh, og[3] = (uint8_t)(mh >> 8);
    for (int i = 0; i < 16; i++) og[4 + i] = (uint8_t)(q[i] | q[i + 16] << 4);
}
#undef DV_KV_MUL
#undef DV_KV_ADD
#undef DV_KV_SUB
#undef DV_KV_DIV
#undef DV_KV_TO_F16
#undef DV_KV_OF_F16
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
        for (int64_t g = 0; g < D / DV_KV_Q4_GROUP; g++)
            dv_kv_q4_group(x + g * DV_KV_Q4_GROUP, o + g * DV_KV_Q4_GROUP_BYTES);
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
