// attention.c: scaled dot-product attention out (Tq, Hq, D) over k, v (Tk, Hkv, D), causal or not,
// GQA, keys/values with any row/head byte strides (cache layouts). Online softmax in blocks of
// queries that share each K/V load (attn_core.c); parallel over (query rows, kv head, head subset).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <omp.h>

void dv_cpu_attention(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k, const dv_tensor *v,
                      const dv_attn_params *p) {
    const int64_t Tq = q->ne[0], Hq = q->ne[1], D = q->ne[2], Tk = k->ne[0], Hkv = k->ne[1];
    DV_ASSERT(q->dtype == DV_DTYPE_F32 && k->dtype == DV_DTYPE_F32 && v->dtype == DV_DTYPE_F32);
    DV_ASSERT(out->dtype == DV_DTYPE_F32 && q->n_dims == 3 && k->n_dims == 3 && v->n_dims == 3 && out->n_dims == 3);
    DV_ASSERT(out->ne[0] == Tq && out->ne[1] == Hq && out->ne[2] == D && k->ne[2] == D && D > 0);
    DV_ASSERT(v->ne[0] == Tk && v->ne[1] == Hkv && v->ne[2] == D && Hkv > 0 && Hq % Hkv == 0);
    DV_ASSERT(q->nb[2] == sizeof(float) && k->nb[2] == sizeof(float) && v->nb[2] == sizeof(float));
    DV_ASSERT(out->nb[2] == sizeof(float));
    DV_ASSERT(k->nb[0] % sizeof(float) == 0 && k->nb[1] % sizeof(float) == 0);
    DV_ASSERT(v->nb[0] % sizeof(float) == 0 && v->nb[1] % sizeof(float) == 0);
    DV_ASSERT(!p->causal || p->q_pos0 >= 0);
    if (Tq == 0) return;

    dv_cpu_ctx *c = be->ctx;
    const int nt = c->n_threads;
    const size_t ws_n = dv_cpu_attn_ws_floats(D);
    float *ws_all = dv_cpu_grow(&c->att_scratch, &c->att_scratch_cap, (size_t)nt * ws_n); // (nt, ws_n)
    const int64_t group = Hq / Hkv;
    int64_t qb, hs;
    dv_cpu_attn_plan(Tq, Hq, Hkv, nt, &qb, &hs);
    const int64_t n_tb = (Tq + qb - 1) / qb, n_hsub = group / hs, n_tasks = n_tb * Hkv * n_hsub;
    const int64_t ks = (int64_t)(k->nb[0] / sizeof(float)), vs = (int64_t)(v->nb[0] / sizeof(float));

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t task = 0; task < n_tasks; task++) {
        // causal rows near the end see the most keys: hand those out first
        const int64_t tb = n_tb - 1 - task / (Hkv * n_hsub), g = task / n_hsub % Hkv, hsub = task % n_hsub;
        const int64_t t0 = tb * qb, nrows = Tq - t0 < qb ? Tq - t0 : qb, h0 = g * group + hsub * hs;
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
        a.causal = p->causal != 0;
        a.sink = 0;
        a.window = 0;
        const float *kg = (const float *)((const char *)k->data + (size_t)g * k->nb[1]);
        const float *vg = (const float *)((const char *)v->data + (size_t)g * v->nb[1]);
        dv_cpu_attn_run(&a, kg, ks, vg, vs, 0, Tk);
        dv_cpu_attn_end(&a, outp);
    }
}
