// attention_kv.c: attention of a chunk of queries over a (DuoAttention) KV cache, online softmax.
//
// Each kv head brings its own cached segments (retrieval heads: pages; streaming heads: sink +
// ring) and an optional streaming window; the chunk's new keys follow causally. For a block of
// queries, only the keys some query can see are scored (attn_core.c: the sink interval and the
// window interval of each run), so a streaming head costs O(sink + window) per query whatever the
// context length. Parallel over (query rows, kv head, head subset), as attention.c.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <omp.h>

void dv_cpu_attention_kv(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                         const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p) {
    const int64_t T = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = k_new->ne[1];
    DV_ASSERT(q->dtype == DV_DTYPE_F32 && k_new->dtype == DV_DTYPE_F32 && v_new->dtype == DV_DTYPE_F32);
    DV_ASSERT(out->dtype == DV_DTYPE_F32 && q->n_dims == 3 && k_new->n_dims == 3 && v_new->n_dims == 3);
    DV_ASSERT(k_new->ne[0] == T && k_new->ne[2] == D && v_new->ne[0] == T && v_new->ne[1] == Hkv);
    DV_ASSERT(v_new->ne[2] == D && out->ne[0] == T && out->ne[1] == Hq && out->ne[2] == D && D > 0);
    DV_ASSERT(Hkv > 0 && Hq % Hkv == 0 && p->q_pos0 >= 0);
    DV_ASSERT(q->nb[2] == sizeof(float) && out->nb[2] == sizeof(float));
    DV_ASSERT(k_new->nb[2] == sizeof(float) && k_new->nb[0] % sizeof(float) == 0 && k_new->nb[1] % sizeof(float) == 0);
    DV_ASSERT(v_new->nb[2] == sizeof(float) && v_new->nb[0] % sizeof(float) == 0 && v_new->nb[1] % sizeof(float) == 0);
    for (int64_t g = 0; g < Hkv; g++)
        for (int s = 0; s < views[g].n_segs; s++)
            DV_ASSERT(views[g].segs[s].n >= 0 && views[g].segs[s].pos0 + views[g].segs[s].n <= p->q_pos0);
    if (T == 0) return;

    dv_cpu_ctx *c = be->ctx;
    const int nt = c->n_threads;
    const size_t ws_n = dv_cpu_attn_ws_floats(D);
    float *ws_all = dv_cpu_grow(&c->att_scratch, &c->att_scratch_cap, (size_t)nt * ws_n); // (nt, ws_n)
    const int64_t group = Hq / Hkv;
    int64_t qb, hs;
    dv_cpu_attn_plan(T, Hq, Hkv, nt, &qb, &hs);
    const int64_t n_tb = (T + qb - 1) / qb, n_hsub = group / hs, n_tasks = n_tb * Hkv * n_hsub;
    const int64_t ks = (int64_t)(k_new->nb[0] / sizeof(float)), vs = (int64_t)(v_new->nb[0] / sizeof(float));

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t task = 0; task < n_tasks; task++) {
        const int64_t tb = n_tb - 1 - task / (Hkv * n_hsub), g = task / n_hsub % Hkv, hsub = task % n_hsub;
        const int64_t t0 = tb * qb, nrows = T - t0 < qb ? T - t0 : qb, h0 = g * group + hsub * hs;
        const dv_kv_head_view *view = &views[g];
        dv_cpu_attn a;
        dv_cpu_attn_begin(&a, ws_all + (size_t)omp_get_thread_num() * ws_n, (int)(nrows * hs), D);
        float *outp[DV_ATT_MAXQ];
        for (int64_t r = 0; r < nrows; r++)
            for (int64_t hh = 0; hh < hs; hh++) {
                const int64_t i = r * hs + hh, t = t0 + r, h = h0 + hh;
                const float *qv = (const float *)((const char *)q->data + (size_t)t * q->nb[0] + (size_t)h * q->nb[1]);
                for (int64_t d = 0; d < D; d++) a.q[i * D + d] = qv[d] * p->scale;
                a.pos[i] = p->q_pos0 + t;
                outp[i] = (float *)((char *)out->data + (size_t)t * out->nb[0] + (size_t)h * out->nb[1]);
            }
        a.p_lo = p->q_pos0 + t0;
        a.p_hi = p->q_pos0 + t0 + nrows - 1;
        a.causal = 1;
        a.sink = view->sink;
        a.window = view->window;
        for (int s = 0; s < view->n_segs; s++) {
            const dv_kv_seg *sg = &view->segs[s];
            dv_cpu_attn_run(&a, sg->k, sg->stride, sg->v, sg->stride, sg->pos0, sg->n);
        }
        // the chunk's own keys: rows 0..T-1 at positions q_pos0 + row, kv head g
        const float *kn = (const float *)((const char *)k_new->data + (size_t)g * k_new->nb[1]);
        const float *vn = (const float *)((const char *)v_new->data + (size_t)g * v_new->nb[1]);
        dv_cpu_attn_run(&a, kn, ks, vn, vs, p->q_pos0, T);
        dv_cpu_attn_end(&a, outp);
    }
}
