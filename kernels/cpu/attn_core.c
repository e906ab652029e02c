// attn_core.c: the online-softmax attention block shared by attention.c and attention_kv.c.
//
// A block holds up to DV_ATT_MAXQ query vectors that read the same kv head (the GQA heads of one
// group, for a few consecutive query rows). Keys are visited in steps of DV_ATT_KB: each key row is
// scored against every query of the block while it is in L1, then each query's running max/sum is
// rescaled once per step and the value rows are accumulated. Memory traffic for K/V is thus divided
// by the block size, and no score matrix is ever materialized (the step buffer is nq x DV_ATT_KB).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"
#include "kernels/dv_attn_mask.h"

#include <math.h>
#include <omp.h>
#include <string.h>


size_t dv_cpu_attn_ws_floats(int64_t D) {
    return (size_t)DV_ATT_MAXQ * (size_t)(2 * D + DV_ATT_KB);
}

void dv_cpu_attn_begin(dv_cpu_attn *a, float *ws, int nq, int64_t D) {
    DV_ASSERT(nq >= 1 && nq <= DV_ATT_MAXQ);
    a->nq = nq;
    a->D = D;
    a->q = ws;
    a->acc = ws + (size_t)DV_ATT_MAXQ * (size_t)D;
    a->s = ws + 2 * (size_t)DV_ATT_MAXQ * (size_t)D;
    memset(a->acc, 0, (size_t)nq * (size_t)D * sizeof(float));
    for (int i = 0; i < nq; i++) {
        a->m[i] = -INFINITY;
        a->l[i] = 0.0f;
    }
}

static inline float dot_q_k(const float *restrict q, const float *restrict k, int64_t D) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < D; d++) s += q[d] * k[d];
    return s;
}

// Keys rows [r0, r1) of a run starting at position pos0: all scored, masked per query when needed.
static void attend_rows(dv_cpu_attn *a, const float *k, int64_t ks, const float *v, int64_t vs, int64_t pos0,
                        int64_t r0, int64_t r1) {
    const int nq = a->nq;
    const int64_t D = a->D;
    for (int64_t j0 = r0; j0 < r1; j0 += DV_ATT_KB) {
        const int64_t nb = r1 - j0 < DV_ATT_KB ? r1 - j0 : DV_ATT_KB;
        const int64_t kp0 = pos0 + j0, kp1 = pos0 + j0 + nb - 1; // positions of this step's keys
        // scores (nq, nb): each key row once, against every query of the block
        for (int64_t j = 0; j < nb; j++) {
            const float *kr = k + (j0 + j) * ks;
            for (int i = 0; i < nq; i++) a->s[i * DV_ATT_KB + j] = dot_q_k(a->q + i * D, kr, D);
        }
        // mask only steps that some query cannot fully see
        if (!dv_attn_mask_all_visible(kp0, kp1, a->p_lo, a->p_hi, a->causal, a->sink, a->window))
            for (int i = 0; i < nq; i++)
                for (int64_t j = 0; j < nb; j++)
                    if (!dv_attn_mask_visible(a->pos[i], kp0 + j, a->causal, a->sink, a->window))
                        a->s[i * DV_ATT_KB + j] = -INFINITY;
        // online softmax: new max, rescale the running sums, turn scores into weights
        for (int i = 0; i < nq; i++) {
            float *s = a->s + i * DV_ATT_KB;
            float bm = -INFINITY;
            for (int64_t j = 0; j < nb; j++) bm = s[j] > bm ? s[j] : bm;
            const float nm = bm > a->m[i] ? bm : a->m[i];
            if (nm == -INFINITY) { // nothing visible to this query yet: weights are all 0
                for (int64_t j = 0; j < nb; j++) s[j] = 0.0f;
                continue;
            }
            const float corr = expf(a->m[i] - nm); // 0 on the first visible step (m = -inf)
            float l = a->l[i] * corr;
            for (int64_t j = 0; j < nb; j++) {
                s[j] = expf(s[j] - nm); // exp(-inf) = 0 for masked keys
                l += s[j];
            }
            a->l[i] = l;
            a->m[i] = nm;
            if (corr != 1.0f) {
                float *acc = a->acc + i * D;
                for (int64_t d = 0; d < D; d++) acc[d] *= corr;
            }
        }
        // acc_i += sum_j w_ij v_j, four value rows per pass over acc_i (one load/store of the
        // accumulator per four FMAs; the rows stay in L1 across the queries of the block)
        int64_t j = 0;
        for (; j + 4 <= nb; j += 4) {
            const float *restrict v0 = v + (j0 + j) * vs, *restrict v1 = v0 + vs, *restrict v2 = v1 + vs,
                                  *restrict v3 = v2 + vs;
            for (int i = 0; i < nq; i++) {
                const float *w = a->s + i * DV_ATT_KB + j;
                const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
                if (w0 == 0.0f && w1 == 0.0f && w2 == 0.0f && w3 == 0.0f) continue; // masked
                float *restrict acc = a->acc + i * D;
                for (int64_t d = 0; d < D; d++)
                    acc[d] = DV_FMA(w3, v3[d], DV_FMA(w2, v2[d], DV_FMA(w1, v1[d], DV_FMA(w0, v0[d], acc[d]))));
            }
        }
        for (; j < nb; j++) {
            const float *restrict vr = v + (j0 + j) * vs;
            for (int i = 0; i < nq; i++) {
                const float w = a->s[i * DV_ATT_KB + j];
                if (w == 0.0f) continue;
                float *restrict acc = a->acc + i * D;
                for (int64_t d = 0; d < D; d++) acc[d] = DV_FMA(w, vr[d], acc[d]);
            }
        }
    }
}

void dv_cpu_attn_run(dv_cpu_attn *a, const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                     int64_t pos0, int64_t n) {
    // only the rows some query of the block can see (the sink part and the window part, disjoint)
    int64_t lo[2], hi[2];
    const int ni = dv_attn_mask_run(pos0, n, a->p_lo, a->p_hi, a->causal, a->sink, a->window, lo, hi);
    for (int i = 0; i < ni; i++) attend_rows(a, k, k_stride, v, v_stride, pos0, lo[i] - pos0, hi[i] - pos0);
}

void dv_cpu_attn_end(const dv_cpu_attn *a, float *const *out) {
    for (int i = 0; i < a->nq; i++) {
        const float inv = a->l[i] > 0 ? 1.0f / a->l[i] : 0.0f;
        const float *acc = a->acc + i * a->D;
        for (int64_t d = 0; d < a->D; d++) out[i][d] = acc[d] * inv;
    }
}

void dv_cpu_attn_plan(int64_t T, int64_t Hq, int64_t Hkv, int n_threads, int64_t *qb, int64_t *hs) {
    const int64_t group = Hq / Hkv;
    int64_t h = group;
    while (h > DV_ATT_MAXQ || group % h) h--; // largest divisor of group that fits a block
    int64_t b = DV_ATT_MAXQ / h;
    if (b > T) b = T > 0 ? T : 1;
    // enough tasks to keep every thread busy (dynamic scheduling evens out causal imbalance)
    for (;;) {
        const int64_t tasks = (T + b - 1) / b * Hkv * (group / h);
        if (tasks >= 4 * (int64_t)n_threads) break;
        if (b > 1) {
            b = (b + 1) / 2;
        } else if (h > 1) {
            do h--;
            while (group % h);
        } else {
            break;
        }
    }
    *qb = b;
    *hs = h;
}

void dv_cpu_attn_tasks(dv_backend *be, dv_tensor *out, const dv_tensor *q, int64_t Hkv, const dv_attn_params *p,
                       dv_cpu_attn_keys_fn keys, const void *ctx) {
    const int64_t T = q->ne[0], Hq = q->ne[1], D = q->ne[2];
    if (T == 0) return;
    dv_cpu_ctx *c = be->ctx;
    const int nt = c->n_threads;
    const size_t ws_n = dv_cpu_attn_ws_floats(D);
    float *ws_all = dv_cpu_grow(&c->att_scratch, &c->att_scratch_cap, (size_t)nt * ws_n); // (nt, ws_n)
    const int64_t group = Hq / Hkv;
    int64_t qb, hs;
    dv_cpu_attn_plan(T, Hq, Hkv, nt, &qb, &hs);
    const int64_t n_tb = (T + qb - 1) / qb, n_hsub = group / hs, n_tasks = n_tb * Hkv * n_hsub;

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t task = 0; task < n_tasks; task++) {
        // causal rows near the end see the most keys: hand those out first
        const int64_t tb = n_tb - 1 - task / (Hkv * n_hsub), g = task / n_hsub % Hkv, hsub = task % n_hsub;
        const int64_t t0 = tb * qb, nrows = T - t0 < qb ? T - t0 : qb, h0 = g * group + hsub * hs;
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
        keys(&a, g, ctx);
        dv_cpu_attn_end(&a, outp);
    }
}
