// convert.c: dtype conversion (F32 <-> F16 <-> BF16): the helpers matmul/embed/norm use to widen
// weights. Conversions round to nearest even, as PyTorch's .to() does.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#ifdef __F16C__
#include <immintrin.h>
#endif

DV_CPU_CLONES void dv_cpu_to_f32(float *restrict dst, const void *restrict src, dv_dtype dtype, size_t n) {
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
