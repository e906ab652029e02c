// convert.c: dtype conversion (F32 <-> F16 <-> BF16), used by weight tiles and the convert op.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

void dv_cpu_to_f32(float *dst, const void *src, dv_dtype dtype, size_t n) {
    if (dtype == DV_DTYPE_F32) {
        const float *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = s[i];
    } else if (dtype == DV_DTYPE_BF16) {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = dv_bf16_to_f32(s[i]);
    } else {
        DV_ASSERT(dtype == DV_DTYPE_F16);
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = dv_f16_to_f32(s[i]);
    }
}

void dv_cpu_convert(dv_backend *be, dv_tensor *y, const dv_tensor *x) {
    (void)be;
    DV_ASSERT(dv_tensor_same_shape(y, x) && dv_tensor_is_contiguous(y) && dv_tensor_is_contiguous(x));
    const int64_t n = dv_tensor_nelem(x);
    const int64_t chunk = 4096;
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        int64_t m = n - c0 < chunk ? n - c0 : chunk;
        float tmp[4096];
        dv_cpu_to_f32(tmp, (const char *)x->data + (size_t)c0 * dv_dtype_size(x->dtype), x->dtype, (size_t)m);
        char *dst = (char *)y->data + (size_t)c0 * dv_dtype_size(y->dtype);
        for (int64_t i = 0; i < m; i++) {
            if (y->dtype == DV_DTYPE_F32) ((float *)dst)[i] = tmp[i];
            else if (y->dtype == DV_DTYPE_BF16) ((uint16_t *)dst)[i] = dv_f32_to_bf16(tmp[i]);
            else ((uint16_t *)dst)[i] = dv_f32_to_f16(tmp[i]);
        }
    }
}
