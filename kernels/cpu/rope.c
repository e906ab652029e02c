// rope.c: rotary position embedding, Hugging Face "rotate_half" layout: element d pairs with d + D/2.
// Angles are float32 pos * inv_freq as HF computes them; cos/sin of that angle are exact.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <math.h>

void dv_cpu_rope(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope) {
    (void)be;
    const int64_t T = x->ne[0], H = x->ne[1], D = x->ne[2], half = D / 2;
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && pos->dtype == DV_DTYPE_I32 && pos->ne[0] == T);
    DV_ASSERT(D == rope->head_dim && x->nb[2] == sizeof(float));
    const int32_t *p = pos->data;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        float c[DV_ROPE_MAX_HALF], s[DV_ROPE_MAX_HALF];
        for (int64_t i = 0; i < half; i++) {
            const float ang = (float)p[t] * rope->inv_freq[i];
            c[i] = (float)cos((double)ang) * rope->attn_factor;
            s[i] = (float)sin((double)ang) * rope->attn_factor;
        }
        for (int64_t h = 0; h < H; h++) {
            float *v = (float *)((char *)x->data + (size_t)t * x->nb[0] + (size_t)h * x->nb[1]);
            for (int64_t i = 0; i < half; i++) {
                const float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}
