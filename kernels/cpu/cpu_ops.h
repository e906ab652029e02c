// cpu_ops.h: the CPU backend's op functions (one .c file per op family) and its private state.
#ifndef DV_CPU_OPS_H
#define DV_CPU_OPS_H

#include "kernels/dv_backend.h"

#include <stddef.h>

typedef struct dv_cpu_ctx {
    float *scratch;      // F32 conversion buffer for bf16/f16 weight tiles, grown rarely, owned
    size_t scratch_cap;  // in floats
} dv_cpu_ctx;

// Row i of a 2-d F32 tensor (honours the row stride).
static inline float *dv_cpu_row(const dv_tensor *t, int64_t i) {
    return (float *)((char *)t->data + (size_t)i * t->nb[0]);
}

// Element i of a 1-d weight of any float dtype, as F32.
static inline float dv_cpu_weight_at(const dv_tensor *w, int64_t i) {
    switch (w->dtype) {
    case DV_DTYPE_F32: return ((const float *)w->data)[i];
    case DV_DTYPE_BF16: return dv_bf16_to_f32(((const uint16_t *)w->data)[i]);
    default: return dv_f16_to_f32(((const uint16_t *)w->data)[i]);
    }
}

// Converts n contiguous elements of a float-typed buffer to F32.
void dv_cpu_to_f32(float *dst, const void *src, dv_dtype dtype, size_t n);

void dv_cpu_matmul(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *bias);
void dv_cpu_rms_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, float eps);
void dv_cpu_layer_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *b,
                       float eps);
void dv_cpu_rope(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope);
void dv_cpu_act(dv_backend *be, dv_tensor *y, const dv_tensor *x, dv_act act);
void dv_cpu_swiglu(dv_backend *be, dv_tensor *y, const dv_tensor *gate, const dv_tensor *up);
void dv_cpu_softmax(dv_backend *be, dv_tensor *y, const dv_tensor *x);
void dv_cpu_attention(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k, const dv_tensor *v,
                      const dv_attn_params *p);
void dv_cpu_attention_kv(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                         const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p);
void dv_cpu_embed(dv_backend *be, dv_tensor *y, const dv_tensor *table, const dv_tensor *ids);
void dv_cpu_add(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b);
void dv_cpu_mul(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b);
void dv_cpu_scale(dv_backend *be, dv_tensor *y, const dv_tensor *a, float s);
void dv_cpu_convert(dv_backend *be, dv_tensor *y, const dv_tensor *x);

#endif
