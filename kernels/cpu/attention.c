// attention.c: scaled dot-product attention with an online softmax (one pass over the keys, no
// score matrix), causal or not, GQA, keys/values with arbitrary row/head strides (cache layouts).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <math.h>
#include <string.h>

#define DV_ATT_BLOCK 64 // keys scored per step of the online softmax

void dv_cpu_attention(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k, const dv_tensor *v,
                      const dv_attn_params *p) {
    (void)be;
    const int64_t Tq = q->ne[0], Hq = q->ne[1], D = q->ne[2], Tk = k->ne[0], Hkv = k->ne[1];
    DV_ASSERT(q->dtype == DV_DTYPE_F32 && k->dtype == DV_DTYPE_F32 && v->dtype == DV_DTYPE_F32);
    DV_ASSERT(out->ne[0] == Tq && out->ne[1] == Hq && out->ne[2] == D && k->ne[2] == D);
    DV_ASSERT(v->ne[0] == Tk && v->ne[1] == Hkv && v->ne[2] == D && Hkv > 0 && Hq % Hkv == 0);
    DV_ASSERT(q->nb[2] == sizeof(float) && k->nb[2] == sizeof(float) && v->nb[2] == sizeof(float));
    DV_ASSERT(out->nb[2] == sizeof(float) && D <= 2 * DV_ROPE_MAX_HALF);
    const int64_t group = Hq / Hkv;

#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int64_t t = 0; t < Tq; t++) {
        for (int64_t h = 0; h < Hq; h++) {
            const float *qv = (const float *)((const char *)q->data + (size_t)t * q->nb[0] + (size_t)h * q->nb[1]);
            float *o = (float *)((char *)out->data + (size_t)t * out->nb[0] + (size_t)h * out->nb[1]);
            const int64_t g = h / group;
            int64_t n_vis = Tk;
            if (p->causal) {
                int64_t last = p->q_pos0 + t; // keys 0..last are visible
                n_vis = last + 1 < Tk ? last + 1 : Tk;
            }
            float acc[2 * DV_ROPE_MAX_HALF], s[DV_ATT_BLOCK];
            memset(acc, 0, (size_t)D * sizeof(float));
            float m = -INFINITY, l = 0.0f;
            for (int64_t j0 = 0; j0 < n_vis; j0 += DV_ATT_BLOCK) {
                const int64_t nb = n_vis - j0 < DV_ATT_BLOCK ? n_vis - j0 : DV_ATT_BLOCK;
                float bm = -INFINITY;
                for (int64_t j = 0; j < nb; j++) {
                    const float *kv = (const float *)((const char *)k->data + (size_t)(j0 + j) * k->nb[0] +
                                                      (size_t)g * k->nb[1]);
                    float d = 0.0f;
#pragma omp simd reduction(+ : d)
                    for (int64_t i = 0; i < D; i++) d += qv[i] * kv[i];
                    s[j] = d * p->scale;
                    bm = s[j] > bm ? s[j] : bm;
                }
                const float nm = bm > m ? bm : m;
                const float corr = expf(m - nm); // 0 on the first block (m = -inf)
                l *= corr;
                for (int64_t i = 0; i < D; i++) acc[i] *= corr;
                for (int64_t j = 0; j < nb; j++) {
                    const float e = expf(s[j] - nm);
                    const float *vv = (const float *)((const char *)v->data + (size_t)(j0 + j) * v->nb[0] +
                                                      (size_t)g * v->nb[1]);
                    l += e;
#pragma omp simd
                    for (int64_t i = 0; i < D; i++) acc[i] += e * vv[i];
                }
                m = nm;
            }
            const float inv = l > 0 ? 1.0f / l : 0.0f;
            for (int64_t i = 0; i < D; i++) o[i] = acc[i] * inv;
        }
    }
}
