// attention_kv.c: attention of a chunk of queries over a (DuoAttention) KV cache, online softmax.
//
// Each kv head brings its own cached segments (retrieval heads: pages; streaming heads: sink +
// ring) and an optional streaming window; the chunk's new keys follow causally. For every query,
// the visible part of each segment is one or two position intervals ([pos0, sink) and
// [p - window, p]), computed up front: invisible keys are skipped, never scored, so a streaming
// head costs O(sink + window) per query whatever the context length.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <math.h>
#include <string.h>

#define DV_ATT_BLOCK 64

typedef struct online {
    float m, l;
    float *acc; // (D)
} online;

// Scores keys [a, b) of a segment (row indices) into the running softmax.
static void attend_rows(online *st, const float *qv, const float *k, const float *v, int64_t stride, int64_t a,
                        int64_t b, int64_t D, float scale) {
    float s[DV_ATT_BLOCK];
    for (int64_t j0 = a; j0 < b; j0 += DV_ATT_BLOCK) {
        const int64_t nb = b - j0 < DV_ATT_BLOCK ? b - j0 : DV_ATT_BLOCK;
        float bm = -INFINITY;
        for (int64_t j = 0; j < nb; j++) {
            const float *kr = k + (j0 + j) * stride;
            float d = 0.0f;
#pragma omp simd reduction(+ : d)
            for (int64_t i = 0; i < D; i++) d += qv[i] * kr[i];
            s[j] = d * scale;
            bm = s[j] > bm ? s[j] : bm;
        }
        const float nm = bm > st->m ? bm : st->m;
        const float corr = expf(st->m - nm);
        st->l *= corr;
        for (int64_t i = 0; i < D; i++) st->acc[i] *= corr;
        for (int64_t j = 0; j < nb; j++) {
            const float e = expf(s[j] - nm);
            const float *vr = v + (j0 + j) * stride;
            st->l += e;
#pragma omp simd
            for (int64_t i = 0; i < D; i++) st->acc[i] += e * vr[i];
        }
        st->m = nm;
    }
}

// Keys at positions [pos0, pos0 + n) of a run, restricted to what the query at position p sees.
static void attend_run(online *st, const float *qv, const float *k, const float *v, int64_t stride, int64_t pos0,
                       int64_t n, int64_t p, const dv_kv_head_view *view, int64_t D, float scale) {
    int64_t end = pos0 + n < p + 1 ? pos0 + n : p + 1; // causal
    if (end <= pos0) return;
    if (view->window <= 0) {
        attend_rows(st, qv, k, v, stride, 0, end - pos0, D, scale);
        return;
    }
    // sink part [pos0, min(end, sink)) and window part [max(pos0, p - window), end), without overlap
    const int64_t s_end = view->sink < end ? view->sink : end;
    if (s_end > pos0) attend_rows(st, qv, k, v, stride, 0, s_end - pos0, D, scale);
    int64_t w0 = p - view->window;
    if (w0 < pos0) w0 = pos0;
    if (w0 < s_end) w0 = s_end;
    if (w0 < end) attend_rows(st, qv, k, v, stride, w0 - pos0, end - pos0, D, scale);
}

void dv_cpu_attention_kv(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                         const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p) {
    (void)be;
    const int64_t T = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = k_new->ne[1];
    DV_ASSERT(q->dtype == DV_DTYPE_F32 && k_new->dtype == DV_DTYPE_F32 && v_new->dtype == DV_DTYPE_F32);
    DV_ASSERT(k_new->ne[0] == T && k_new->ne[2] == D && v_new->ne[0] == T && v_new->ne[1] == Hkv);
    DV_ASSERT(out->ne[0] == T && out->ne[1] == Hq && out->ne[2] == D && Hq % Hkv == 0);
    DV_ASSERT(dv_tensor_is_contiguous(k_new) && dv_tensor_is_contiguous(v_new) && q->nb[2] == sizeof(float));
    DV_ASSERT(D <= 2 * DV_ROPE_MAX_HALF);
    const int64_t group = Hq / Hkv;

#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int64_t t = 0; t < T; t++) {
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t g = h / group, pos = p->q_pos0 + t;
            const dv_kv_head_view *view = &views[g];
            const float *qv = (const float *)((const char *)q->data + (size_t)t * q->nb[0] + (size_t)h * q->nb[1]);
            float acc[2 * DV_ROPE_MAX_HALF];
            memset(acc, 0, (size_t)D * sizeof(float));
            online st = {-INFINITY, 0.0f, acc};
            for (int s = 0; s < view->n_segs; s++) {
                const dv_kv_seg *sg = &view->segs[s];
                attend_run(&st, qv, sg->k, sg->v, sg->stride, sg->pos0, sg->n, pos, view, D, p->scale);
            }
            // the chunk's own keys: rows 0..T-1 at positions q_pos0 + row, kv head g
            const float *kn = (const float *)k_new->data + g * D, *vn = (const float *)v_new->data + g * D;
            attend_run(&st, qv, kn, vn, Hkv * D, p->q_pos0, T, pos, view, D, p->scale);
            float *o = (float *)((char *)out->data + (size_t)t * out->nb[0] + (size_t)h * out->nb[1]);
            const float inv = st.l > 0 ? 1.0f / st.l : 0.0f;
            for (int64_t i = 0; i < D; i++) o[i] = acc[i] * inv;
        }
    }
}
