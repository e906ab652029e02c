// rope.c: rotary position embedding in place on x (T, H, D), Hugging Face "rotate_half" layout:
// element d < D/2 pairs with d + D/2. The angle is the F32 product pos * inv_freq, as HF computes it
// (a float32 matmul of inv_freq and positions); cos/sin of that F32 angle are then evaluated in double
// and rounded, so they are within half an ulp of the exact value (HF's float cos is within one).
// One loop serves plain RoPE (one position row) and the multi-section form (M-RoPE, 2-D vision rotary),
// where frequency i reads its position from row sec[i] of a (n_sec, T) table.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <math.h>

static void rope_rows(dv_backend *be, dv_tensor *x, const int32_t *p, int n_sec, const uint8_t *sec,
                      const dv_rope *rope) {
    const int64_t T = x->ne[0], H = x->ne[1], D = x->ne[2], half = D / 2;
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && x->n_dims == 3 && x->nb[2] == sizeof(float));
    DV_ASSERT(D == rope->head_dim && D % 2 == 0 && half <= DV_ROPE_MAX_HALF);
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT_FOR(be, T * H * D))
    for (int64_t t = 0; t < T; t++) {
        float c[DV_ROPE_MAX_HALF], s[DV_ROPE_MAX_HALF]; // (half) cos/sin for this token
        for (int64_t i = 0; i < half; i++) {
            const int r = sec ? sec[i] : 0;
            DV_ASSERT(r < n_sec);
            const float ang = (float)p[(int64_t)r * T + t] * rope->inv_freq[i];
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

void dv_cpu_rope(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope) {
    DV_ASSERT(pos->dtype == DV_DTYPE_I32 && dv_tensor_nelem(pos) == x->ne[0] && dv_tensor_is_contiguous(pos));
    rope_rows(be, x, pos->data, 1, NULL, rope);
}

void dv_cpu_rope_sections(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope,
                          const dv_rope_sec *sec) {
    DV_ASSERT(sec->n_sec >= 1 && sec->n_sec <= DV_ROPE_MAX_SEC);
    DV_ASSERT(pos->dtype == DV_DTYPE_I32 && dv_tensor_nelem(pos) == (int64_t)sec->n_sec * x->ne[0] &&
              dv_tensor_is_contiguous(pos));
    rope_rows(be, x, pos->data, sec->n_sec, sec->sec, rope);
}
