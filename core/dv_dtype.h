// dv_dtype.h: element types shared by files (safetensors) and tensors, with scalar conversions.
// bf16/f16 <-> f32 conversions are exact-rounding (round to nearest even), as PyTorch does them.
#ifndef DV_DTYPE_H
#define DV_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dv_dtype {
    DV_DTYPE_F32 = 0,
    DV_DTYPE_F16,
    DV_DTYPE_BF16,
    DV_DTYPE_I32,
    DV_DTYPE_I64,
    DV_DTYPE_U8,
    DV_DTYPE_COUNT
} dv_dtype;

size_t dv_dtype_size(dv_dtype t);
const char *dv_dtype_name(dv_dtype t); // "F32", "F16", "BF16", ... (safetensors spelling)
// Parses a safetensors dtype string; returns -1 when unknown.
int dv_dtype_from_name(const char *s);

static inline float dv_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t dv_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                          // round to nearest even
    return (uint16_t)(u >> 16);
}

static inline float dv_f16_to_f32(uint16_t h) {
#if defined(__FLT16_MAX__) && !defined(__cplusplus)
    _Float16 x;
    memcpy(&x, &h, 2);
    return (float)x;
#else
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (m == 0) {
            u = s;
        } else { // subnormal: renormalize
            e = 127 - 15 + 1;
            while (!(m & 0x400)) { m <<= 1; e--; }
            u = s | (e << 23) | ((m & 0x3ff) << 13);
        }
    } else if (e == 31) {
        u = s | 0x7f800000u | (m << 13);
    } else {
        u = s | ((e + 127 - 15) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

static inline uint16_t dv_f32_to_f16(float f) {
#if defined(__FLT16_MAX__) && !defined(__cplusplus)
    _Float16 x = (_Float16)f;
    uint16_t h;
    memcpy(&h, &x, 2);
    return h;
#else
    // portable fallback: round to nearest even via the float bit pattern
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t)(s | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0));
    if (a >= 0x477ff000u) return (uint16_t)(s | 0x7c00); // overflow -> inf
    if (a < 0x38800000u) {                                // subnormal or zero
        float af;
        memcpy(&af, &a, 4);
        return (uint16_t)(s | (uint32_t)(af * 16777216.0f + 0.5f)); // approx; unused with _Float16
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - ((127 - 15) << 23);
    return (uint16_t)(s | (r >> 13));
#endif
}

#ifdef __cplusplus
}
#endif
#endif
