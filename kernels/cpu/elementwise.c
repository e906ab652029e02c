// elementwise.c: embedding lookup and elementwise add / mul / scale (contiguous F32).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

void dv_cpu_embed(dv_backend *be, dv_tensor *y, const dv_tensor *table, const dv_tensor *ids) {
    (void)be;
    const int64_t T = ids->ne[0], V = table->ne[0], D = table->ne[1];
    DV_ASSERT(ids->dtype == DV_DTYPE_I32 && y->dtype == DV_DTYPE_F32 && y->ne[0] == T && y->ne[1] == D);
    const int32_t *id = ids->data;
    for (int64_t t = 0; t < T; t++) DV_ASSERT(id[t] >= 0 && id[t] < V);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++)
        dv_cpu_to_f32(dv_cpu_row(y, t), (const char *)table->data + (size_t)id[t] * table->nb[0], table->dtype,
                      (size_t)D);
}

#define DV_BINARY(name, expr)                                                                     \
    void name(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b) {             \
        (void)be;                                                                                 \
        DV_ASSERT(dv_tensor_same_shape(y, a) && dv_tensor_same_shape(y, b));                      \
        DV_ASSERT(dv_tensor_is_contiguous(y) && dv_tensor_is_contiguous(a) && dv_tensor_is_contiguous(b)); \
        DV_ASSERT(y->dtype == DV_DTYPE_F32 && a->dtype == DV_DTYPE_F32 && b->dtype == DV_DTYPE_F32); \
        const int64_t n = dv_tensor_nelem(y);                                                     \
        const float *as = a->data, *bs = b->data;                                                 \
        float *ys = y->data;                                                                      \
        _Pragma("omp parallel for schedule(static)") for (int64_t i = 0; i < n; i++) ys[i] = expr; \
    }

DV_BINARY(dv_cpu_add, as[i] + bs[i])
DV_BINARY(dv_cpu_mul, as[i] * bs[i])

void dv_cpu_scale(dv_backend *be, dv_tensor *y, const dv_tensor *a, float s) {
    (void)be;
    DV_ASSERT(dv_tensor_same_shape(y, a) && dv_tensor_is_contiguous(y) && dv_tensor_is_contiguous(a));
    const int64_t n = dv_tensor_nelem(y);
    const float *as = a->data;
    float *ys = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) ys[i] = as[i] * s;
}
