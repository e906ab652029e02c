// convert.c: dtype conversion (F32 <-> F16 <-> BF16): the helpers matmul/embed/norm use to widen
// weights, and the convert op. Conversions round to nearest even, as PyTorch's .to() does.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#ifdef __F16C__
#include <immintrin.h>
#endif

void dv_cpu_to_f32(float *restrict dst, const void *restrict src, dv_dtype dtype, size_t n) {
    if (dtype == DV_DTYPE_F32) {
        const float *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = s[i];
    } else if (dtype == DV_DTYPE_BF16) {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = dv_bf16_to_f32(s[i]);
    } else {
        DV_ASSERT(dtype == DV_DTYPE_F16);
        const uint16_t *s = src;
        size_t i = 0;
#ifdef __F16C__
        // gcc does not vectorize _Float16 -> float; F16C converts 8 at a time (exactly, like the scalar)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
#endif
        for (; i < n; i++) dst[i] = dv_f16_to_f32(s[i]);
    }
}

void dv_cpu_from_f32(void *restrict dst, const float *restrict src, dv_dtype dtype, size_t n) {
    if (dtype == DV_DTYPE_F32) {
        float *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = src[i];
    } else if (dtype == DV_DTYPE_BF16) {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = dv_f32_to_bf16(src[i]);
    } else {
        DV_ASSERT(dtype == DV_DTYPE_F16);
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = dv_f32_to_f16(src[i]);
    }
}

#define DV_CONVERT_CHUNK 1024 // elements per step; the F32 staging buffer lives on the stack

void dv_cpu_convert(dv_backend *be, dv_tensor *y, const dv_tensor *x) {
    DV_ASSERT(dv_cpu_is_float(x->dtype) && dv_cpu_is_float(y->dtype));
    DV_ASSERT(dv_tensor_same_shape(y, x) && dv_tensor_is_contiguous(y) && dv_tensor_is_contiguous(x));
    const int64_t n = dv_tensor_nelem(x), n_chunks = (n + DV_CONVERT_CHUNK - 1) / DV_CONVERT_CHUNK;
    const size_t xs = dv_dtype_size(x->dtype), ys = dv_dtype_size(y->dtype);
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT(be))
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t c0 = c * DV_CONVERT_CHUNK, m = n - c0 < DV_CONVERT_CHUNK ? n - c0 : DV_CONVERT_CHUNK;
        float tmp[DV_CONVERT_CHUNK]; // (m)
        dv_cpu_to_f32(tmp, (const char *)x->data + (size_t)c0 * xs, x->dtype, (size_t)m);
        dv_cpu_from_f32((char *)y->data + (size_t)c0 * ys, tmp, y->dtype, (size_t)m);
    }
}
