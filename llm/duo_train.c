// duo_train.c: `identify --method gates`, the DuoAttention reference's optimization on the CPU.
//
// Every KV head g gets a gate alpha_g in [0, 1] that mixes its query heads' two attention outputs,
//   o_h = alpha_g * full_h + (1 - alpha_g) * streaming_h      (streaming: the strict sink + recent rule)
// and the gates are trained (AdamW with the reference's warm-up / decay schedule, clamped to [0, 1]
// after each step, starting at 1) on synthetic passkey samples, a fresh one per step, to keep the final
// hidden states at the answer tokens equal to full attention's, with an L1 push toward streaming:
//   loss = mean over answers and H of (h - h_full)^2  +  reg * mean_g alpha_g
// The weights stay frozen: the backward pass below computes activation gradients only (no weight
// gradients), from the answers' hidden states down to the gates. The trained alphas are the scores.
//
// One training forward per step, top to bottom (T tokens of one sample; H hidden, Hq / Hkv heads of D,
// F the MLP width), saving what the backward pass needs:
//   x = embed(ids)
//   for each layer:      x_in (T, H) saved
//     xb = rms_norm(x) ; q, k, v = xb Wq, xb Wk, xb Wv (+ biases; Qwen3: per-head q/k norms, inputs saved)
//     rope(q), rope(k)                                   q (T, Hq, D), k, v (T, Hkv, D) saved
//     per query head h: full_h, streaming_h (T, D) and their log-sum-exps (T)   saved
//     x += (alpha full + (1 - alpha) streaming) Wo       x_mid (T, H) saved
//     xb = rms_norm(x) ; x += (silu(xb Wg) * xb Wu) Wd   g, u (T, F) saved
//   h = rms_norm(x)
// and the backward pass walks the layers in reverse (rms_norm, SwiGLU, attention with the softmax
// recomputed from the saved log-sum-exps, RoPE as the rotation by the opposite angle). Attention runs
// per head in blocks of queries as matrix products through the backend's matmul, each block over the
// keys some query in it may see (all earlier ones, or the sink and the window).
// Dense Llama-family text models only (Llama, Mistral, Qwen2, Qwen3, SmolLM2): not Qwen3.5's gated
// attention or DeltaNet layers, mixture-of-experts MLPs or M-RoPE.
#include "llm/dv_duo_identify.h"

#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"
#include "kernels/dv_attn_mask.h"
#include "llm/llm_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

// One layer's saved forward activations (sizes for the longest sample, T_max).
typedef struct tr_acts {
    float *x;          // (T, H) layer input
    float *qpre, *kpre; // (T, Hq*D), (T, Hkv*D) before the per-head q/k norms (Qwen3; else NULL)
    float *q, *k, *v;  // (T, Hq*D), (T, Hkv*D), (T, Hkv*D) post-RoPE queries and keys, values
    float *of, *os;    // (Hq, T, D) full / streaming attention outputs per query head
    float *lf, *ls;    // (Hq, T) their log-sum-exps (scaled scores)
    float *xm;         // (T, H) after the attention residual
    float *g, *u;      // (T, F) MLP gate / up projections (before the activation)
} tr_acts;

// A frozen weight transposed to F32 (in, out): matmul(dX, dY, W^T) = dY W, the input gradient of
// y = x W^T.
typedef struct tr_wt {
    dv_tensor q, k, v, o, g, u, d;
} tr_wt;

// One thread's scratch for the attention work items (a query head and a block of TR_BQ queries).
typedef struct tr_ws {
    float *S, *Pf, *Ps; // (TR_BQ, T) the block's scores (then their gradient), full / streaming probabilities
    float *Tt;          // (T, TR_BQ) one of them transposed
    float *QbT, *dObT;  // (D, TR_BQ) the block's queries / output gradient transposed
    float *tmp;         // (T, D) a product before it is added
    float *dK, *dV;     // (Hkv, T, D) this thread's share of the key / value gradients
    double *ga;         // (Hkv) its share of d distill / d alpha
} tr_ws;

typedef struct trainer {
    dv_llm *m;
    dv_backend *be;
    int L, H, F, D, Hq, Hkv, grp, T_max;
    int sink, recent;
    float scale, eps;
    tr_acts *a;        // (L)
    tr_wt *wt;         // (L)
    float *alpha;      // (L, Hkv) the gates
    double *grad;      // (L, Hkv) d distill / d alpha of the current step
    // scratch for one sample of up to T_max tokens
    float *x, *xb, *att, *gate;                // (T, H), (T, H), (T, Hq*D), (T, F)
    float *dx, *dxb, *datt, *dq, *dk, *dv;     // (T, H), (T, H), (T, Hq*D), (T, Hq*D), (T, Hkv*D) x2
    float *dgate, *dup;                        // (T, F) x2
    float *KT, *VT;                            // (Hkv, D, T_max) the layer's keys / values transposed
    tr_ws *ws;                                 // (n_ws) one per OpenMP thread
    int n_ws;
    int32_t *pos, *npos;                       // (T) positions 0 .. T-1 and their negatives (RoPE's backward)
    float *h, *dh;                             // (T, H) final hidden states and their gradient
} trainer;

static dv_tensor t2(float *p, int64_t r, int64_t c) { return dv_tensor_2d(DV_DTYPE_F32, p, r, c); }

static void mm(trainer *tr, float *y, const float *x, int64_t T, int64_t K, const dv_tensor *w, const dv_tensor *b) {
    dv_tensor yt = t2(y, T, w->ne[0]), xt = t2((float *)x, T, K);
    tr->be->ops->matmul(tr->be, &yt, &xt, w, b && b->data ? b : NULL);
}

static int wt_make(const dv_tensor *w, dv_tensor *out) { // w (out, in) in its file type -> F32 (in, out)
    const int64_t O = w->ne[0], I = w->ne[1];
    float *p = malloc((size_t)(O * I) * sizeof *p);
    if (!p) return dv_error_set(DV_ENOMEM, "identify --method gates: out of memory for the transposed weights");
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) p[i * O + o] = dv_llm_weight_at(w, (size_t)(o * I + i));
    *out = t2(p, I, O);
    return 0;
}

// y = rms_norm(x) * w row by row; backward: dx += r (w dy) - x r^3 / n sum(x w dy), r = 1/rms(x).
static void rms_norm_bwd(const float *x, const dv_tensor *w, float eps, int64_t rows, int64_t n, const float *dy,
                         float *dx, int accumulate) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < rows; t++) {
        const float *xr = x + t * n, *dyr = dy + t * n;
        float *dxr = dx + t * n;
        double ss = 0, dot = 0;
        for (int64_t i = 0; i < n; i++) {
            const double wd = (double)dv_llm_weight_at(w, (size_t)i) * dyr[i];
            ss += (double)xr[i] * xr[i];
            dot += (double)xr[i] * wd;
        }
        const double r = 1.0 / sqrt(ss / n + eps), c = r * r * r * dot / n;
        for (int64_t i = 0; i < n; i++) {
            const float g = (float)(r * dv_llm_weight_at(w, (size_t)i) * dyr[i] - c * xr[i]);
            dxr[i] = accumulate ? dxr[i] + g : g;
        }
    }
}

// y (rows, n) += b: the backend's add
static void add_into(trainer *tr, float *y, const float *b, int64_t rows, int64_t n) {
    dv_tensor yt = t2(y, rows, n), bt = t2((float *)b, rows, n);
    tr->be->ops->add(tr->be, &yt, &yt, &bt);
}

// An F32 matrix view (r, c) with a row pitch of ld floats.
static dv_tensor tv(const float *p, int64_t r, int64_t c, int64_t ld) {
    dv_tensor t = t2((float *)p, r, c);
    t.nb[0] = (size_t)ld * sizeof(float);
    return t;
}

// y (M, N) = x (M, K) w (N, K)^T over views with row pitches ldy, ldx, ldw (floats): the backend's
// matmul. Called inside the attention's parallel loop, where OpenMP runs the matmul's own loop on the
// calling thread (nested regions get one thread).
static void mmv(trainer *tr, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t K, const float *w,
                int64_t ldw, int64_t N) {
    dv_tensor yt = tv(y, M, N, ldy), xt = tv(x, M, K, ldx), wt = tv(w, N, K, ldw);
    tr->be->ops->matmul(tr->be, &yt, &xt, &wt, NULL);
}

// dst (cols, rows) pitch ldd = src (rows, cols) pitch lds transposed, in 32 x 32 tiles.
static void transpose_v(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols) {
    for (int64_t r0 = 0; r0 < rows; r0 += 32)
        for (int64_t c0 = 0; c0 < cols; c0 += 32)
            for (int64_t r = r0; r < r0 + 32 && r < rows; r++)
                for (int64_t c = c0; c < c0 + 32 && c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

// Attention runs in work items of one query head and a block of TR_BQ queries [i0, i1), spread over
// the threads. A block's scores S (bq, i1) against keys [0, i1) are computed once and serve both
// branches: full attention reads every causal key, streaming only the sink and the window, whose
// probabilities are normalized separately (their own log-sum-exp). Which keys a query sees comes from
// the one mask rule (dv_attn_mask_run for that query alone: at most two runs of keys).
#define TR_BQ 128

static int row_keys(const trainer *tr, int64_t i, int streaming, int64_t lo[2], int64_t hi[2]) {
    return dv_attn_mask_run(0, i + 1, i, i, 1, tr->sink, streaming ? tr->recent : 0, lo, hi);
}

// p[0, n) = softmax of the scaled scores s over the runs of visible keys, 0 elsewhere. Forward
// (have_lse 0): returns the log-sum-exp; backward: p recomputed from the saved one.
static float row_softmax(const float *s, float *p, int64_t n, const int64_t *lo, const int64_t *hi, int nr, float scale,
                         float lse, int have_lse) {
    if (!have_lse) {
        float mx = -INFINITY;
        for (int k = 0; k < nr; k++)
            for (int64_t c = lo[k]; c < hi[k]; c++) mx = s[c] > mx ? s[c] : mx;
        double z = 0;
        for (int k = 0; k < nr; k++)
            for (int64_t c = lo[k]; c < hi[k]; c++) z += (p[c] = expf(scale * (s[c] - mx)));
        lse = scale * mx + (float)log(z);
        const float inv = (float)(1 / z);
        for (int k = 0; k < nr; k++)
            for (int64_t c = lo[k]; c < hi[k]; c++) p[c] *= inv;
    } else {
        for (int k = 0; k < nr; k++)
            for (int64_t c = lo[k]; c < hi[k]; c++) p[c] = expf(scale * s[c] - lse);
    }
    int64_t c = 0; // zero the gaps between and after the runs
    for (int k = 0; k < nr; c = hi[k++]) memset(p + c, 0, (size_t)(lo[k] - c) * sizeof *p);
    memset(p + c, 0, (size_t)(n - c) * sizeof *p);
    return lse;
}

// Work item it of n_items: query head h, query block [i0, i0 + bq). The largest blocks come first and
// the threads take the items in turn (schedule(static, 1)): an even split that is the same on every
// run, so the summed gradients are reproducible.
static void work_item(const trainer *tr, int T, int it, int *h, int64_t *i0, int *bq) {
    const int nb = (T + TR_BQ - 1) / TR_BQ;
    *h = it % tr->Hq;
    *i0 = (int64_t)(nb - 1 - it / tr->Hq) * TR_BQ;
    *bq = T - *i0 < TR_BQ ? (int)(T - *i0) : TR_BQ;
}

// Forward of one work item: both branches' outputs and log-sum-exps of query head h (a->of, a->os
// (Hq, T, D), a->lf, a->ls (Hq, T)) and their gated mix into tr->att (T, Hq*D), rows [i0, i0 + bq).
static void item_fwd(trainer *tr, tr_ws *w, const tr_acts *a, int T, int h, int64_t i0, int bq, float al) {
    const int D = tr->D, g = h / tr->grp;
    const int64_t QD = (int64_t)tr->Hq * D, KD = (int64_t)tr->Hkv * D, n = i0 + bq, Tm = tr->T_max;
    const float *Q = a->q + i0 * QD + (int64_t)h * D, *K = a->k + (int64_t)g * D, *VT = tr->VT + (size_t)g * D * Tm;
    float *Of = a->of + (size_t)h * T * D, *Os = a->os + (size_t)h * T * D, *lf = a->lf + (size_t)h * T,
          *ls = a->ls + (size_t)h * T;
    mmv(tr, w->S, n, Q, QD, bq, D, K, KD, n); // S (bq, n) = Q_b K[0:n]^T
    for (int r = 0; r < bq; r++) {
        int64_t lo[2], hi[2];
        int nr = row_keys(tr, i0 + r, 0, lo, hi);
        lf[i0 + r] = row_softmax(w->S + r * n, w->Pf + r * n, n, lo, hi, nr, tr->scale, 0, 0);
        nr = row_keys(tr, i0 + r, 1, lo, hi);
        ls[i0 + r] = row_softmax(w->S + r * n, w->Ps + r * n, n, lo, hi, nr, tr->scale, 0, 0);
    }
    mmv(tr, Of + i0 * D, D, w->Pf, n, bq, n, VT, Tm, D); // O_f = Pf V[0:n]
    int64_t lo[2], hi[2]; // the block's streaming keys: the sink, the window
    const int nr = dv_attn_mask_run(0, n, i0, n - 1, 1, tr->sink, tr->recent, lo, hi);
    for (int k = 0; k < nr; k++) { // O_s = Ps V over those runs only
        float *y = k ? w->tmp : Os + i0 * D;
        mmv(tr, y, D, w->Ps + lo[k], n, bq, hi[k] - lo[k], VT + lo[k], Tm, D);
        if (k) add_into(tr, Os + i0 * D, w->tmp, bq, D);
    }
    for (int r = 0; r < bq; r++)
        for (int d = 0; d < D; d++) {
            const int64_t t = i0 + r;
            tr->att[t * QD + (int64_t)h * D + d] = al * Of[t * D + d] + (1 - al) * Os[t * D + d];
        }
}

// Backward of one work item for dO = tr->datt (the gradient of the mixed output): writes dq's rows of
// the block for head h, adds the block's key / value gradients and d / d alpha to the thread's w.
// With dO_f = al dO and dO_s = (1 - al) dO, each branch's softmax backward is
//   dS = P (dO V^T - rowdot(dO_b, O_b)) scale; and both branches share the one score matrix, so
//   dS = scale (al Pf (G - Df) + (1 - al) Ps (G - Ds)),  G = dO V^T, Df = rowdot(dO, O_f), Ds likewise,
//   dQ = dS K, dK = dS^T Q, dV = (al Pf + (1 - al) Ps)^T dO, d / d alpha = sum (Df - Ds).
static void item_bwd(trainer *tr, tr_ws *w, const tr_acts *a, int T, int h, int64_t i0, int bq, float al) {
    const int D = tr->D, g = h / tr->grp;
    const int64_t QD = (int64_t)tr->Hq * D, KD = (int64_t)tr->Hkv * D, n = i0 + bq, Tm = tr->T_max;
    const float bl = 1 - al;
    const float *Q = a->q + i0 * QD + (int64_t)h * D, *K = a->k + (int64_t)g * D, *V = a->v + (int64_t)g * D,
                *KT = tr->KT + (size_t)g * D * Tm, *dO = tr->datt + i0 * QD + (int64_t)h * D,
                *Of = a->of + ((size_t)h * T + i0) * D, *Os = a->os + ((size_t)h * T + i0) * D,
                *lf = a->lf + (size_t)h * T, *ls = a->ls + (size_t)h * T;
    mmv(tr, w->S, n, Q, QD, bq, D, K, KD, n); // S again; P from the saved log-sum-exps
    for (int r = 0; r < bq; r++) {
        int64_t lo[2], hi[2];
        int nr;
        if (al != 0) {
            nr = row_keys(tr, i0 + r, 0, lo, hi);
            row_softmax(w->S + r * n, w->Pf + r * n, n, lo, hi, nr, tr->scale, lf[i0 + r], 1);
        }
        if (bl != 0) {
            nr = row_keys(tr, i0 + r, 1, lo, hi);
            row_softmax(w->S + r * n, w->Ps + r * n, n, lo, hi, nr, tr->scale, ls[i0 + r], 1);
        }
    }
    float *dS = w->S;
    mmv(tr, dS, n, dO, QD, bq, D, V, KD, n); // G (bq, n) = dO V[0:n]^T, turned into dS in place
    double ga = 0;
    for (int r = 0; r < bq; r++) {
        double df = 0, ds = 0;
        for (int d = 0; d < D; d++) {
            df += (double)dO[r * QD + d] * Of[r * D + d];
            ds += (double)dO[r * QD + d] * Os[r * D + d];
        }
        ga += df - ds;
        float *sr = dS + r * n;
        const float *pf = w->Pf + r * n, *ps = w->Ps + r * n, cf = al * tr->scale, cs = bl * tr->scale;
        if (bl == 0)
            for (int64_t c = 0; c < n; c++) sr[c] = cf * pf[c] * (sr[c] - (float)df);
        else if (al == 0)
            for (int64_t c = 0; c < n; c++) sr[c] = cs * ps[c] * (sr[c] - (float)ds);
        else
            for (int64_t c = 0; c < n; c++) sr[c] = cf * pf[c] * (sr[c] - (float)df) + cs * ps[c] * (sr[c] - (float)ds);
    }
    w->ga[g] += ga;
    mmv(tr, tr->dq + i0 * QD + (int64_t)h * D, QD, dS, n, bq, n, KT, Tm, D); // dQ_b = dS K[0:n]
    float *dK = w->dK + (size_t)g * Tm * D, *dV = w->dV + (size_t)g * Tm * D;
    transpose_v(w->Tt, bq, dS, n, bq, n);
    transpose_v(w->QbT, bq, Q, QD, bq, D);
    mmv(tr, w->tmp, D, w->Tt, bq, n, bq, w->QbT, bq, D); // dK[0:n] += dS^T Q_b
    add_into(tr, dK, w->tmp, n, D);
    for (int64_t r0 = 0; r0 < bq; r0 += 32) // Tt (n, bq) = (al Pf + (1 - al) Ps)^T
        for (int64_t c0 = 0; c0 < n; c0 += 32)
            for (int64_t r = r0; r < r0 + 32 && r < bq; r++)
                for (int64_t c = c0; c < c0 + 32 && c < n; c++)
                    w->Tt[c * bq + r] = (al != 0 ? al * w->Pf[r * n + c] : 0) + (bl != 0 ? bl * w->Ps[r * n + c] : 0);
    transpose_v(w->dObT, bq, dO, QD, bq, D);
    mmv(tr, w->tmp, D, w->Tt, bq, n, bq, w->dObT, bq, D); // dV[0:n] += P^T dO_b
    add_into(tr, dV, w->tmp, n, D);
}

// The layer's keys or values (T, Hkv*D) transposed per KV head into dst (Hkv, D, T_max).
static void kv_transpose(trainer *tr, float *dst, const float *src, int T) {
    const int64_t KD = (int64_t)tr->Hkv * tr->D;
    for (int g = 0; g < tr->Hkv; g++)
        transpose_v(dst + (size_t)g * tr->D * tr->T_max, tr->T_max, src + (int64_t)g * tr->D, KD, T, tr->D);
}

// Both attention branches of every query head of layer l, forward (a->of, os, lf, ls and tr->att).
static void attn_fwd(trainer *tr, int l, int T) {
    const tr_acts *a = &tr->a[l];
    kv_transpose(tr, tr->VT, a->v, T);
    const int n_items = tr->Hq * ((T + TR_BQ - 1) / TR_BQ);
#pragma omp parallel for schedule(static, 1)
    for (int it = 0; it < n_items; it++) {
        int h, bq;
        int64_t i0;
        work_item(tr, T, it, &h, &i0, &bq);
        item_fwd(tr, &tr->ws[omp_get_thread_num()], a, T, h, i0, bq, tr->alpha[l * tr->Hkv + h / tr->grp]);
    }
}

// Their backward from tr->datt: tr->dq (T, Hq*D), tr->dk, tr->dv (T, Hkv*D) and the gates' gradients;
// only the gates' (d / d alpha = sum over rows of rowdot(dO, O_f - O_s)) for the first layer, below
// which no gate sits.
static void attn_bwd(trainer *tr, int l, int T) {
    const tr_acts *a = &tr->a[l];
    const int D = tr->D, Hkv = tr->Hkv, n_items = tr->Hq * ((T + TR_BQ - 1) / TR_BQ);
    const size_t per = (size_t)Hkv * tr->T_max * D;
    if (l == 0) {
        const int64_t QD = (int64_t)tr->Hq * D;
        for (int h = 0; h < tr->Hq; h++) {
            double ga = 0;
            for (int64_t t = 0; t < T; t++)
                for (int d = 0; d < D; d++)
                    ga += (double)tr->datt[t * QD + (int64_t)h * D + d] *
                          (a->of[((size_t)h * T + t) * D + d] - a->os[((size_t)h * T + t) * D + d]);
            tr->grad[h / tr->grp] += ga;
        }
        return;
    }
    kv_transpose(tr, tr->KT, a->k, T);
    for (int i = 0; i < tr->n_ws; i++) {
        memset(tr->ws[i].dK, 0, per * sizeof(float));
        memset(tr->ws[i].dV, 0, per * sizeof(float));
        memset(tr->ws[i].ga, 0, (size_t)Hkv * sizeof(double));
    }
#pragma omp parallel for schedule(static, 1)
    for (int it = 0; it < n_items; it++) {
        int h, bq;
        int64_t i0;
        work_item(tr, T, it, &h, &i0, &bq);
        item_bwd(tr, &tr->ws[omp_get_thread_num()], a, T, h, i0, bq, tr->alpha[l * Hkv + h / tr->grp]);
    }
    // the threads' shares, summed in thread order: with the static schedule a thread count gives the
    // same split, so the same sums, on every run
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        for (int g = 0; g < Hkv; g++)
            for (int d = 0; d < D; d++) {
                float sk = 0, sv = 0;
                for (int i = 0; i < tr->n_ws; i++) {
                    const size_t o = ((size_t)g * tr->T_max + t) * D + d;
                    sk += tr->ws[i].dK[o], sv += tr->ws[i].dV[o];
                }
                tr->dk[((size_t)t * Hkv + g) * D + d] = sk, tr->dv[((size_t)t * Hkv + g) * D + d] = sv;
            }
    for (int g = 0; g < Hkv; g++)
        for (int i = 0; i < tr->n_ws; i++) tr->grad[l * Hkv + g] += tr->ws[i].ga[g];
}

static void rope_apply(trainer *tr, float *x, int T, int nh, const int32_t *pos) {
    dv_tensor xt = dv_tensor_3d(DV_DTYPE_F32, x, T, nh, tr->D), pt = dv_tensor_1d(DV_DTYPE_I32, (void *)pos, T);
    xt.ne[2] = tr->m->cfg.rotary_dim; // partial rotary: the rest of each head passes through
    tr->be->ops->rope(tr->be, &xt, &pt, &tr->m->rope);
}

static void rms_norm_fwd(trainer *tr, float *y, const float *x, int64_t rows, int64_t n, const dv_tensor *w) {
    dv_tensor yt = t2(y, rows, n), xt = t2((float *)x, rows, n);
    tr->be->ops->rms_norm(tr->be, &yt, &xt, w, tr->eps);
}

// The training forward of one sample (T tokens): saves every layer's activations, leaves the final
// normed hidden states in tr->h (T, H).
static void train_forward(trainer *tr, const int32_t *ids, int T) {
    dv_llm *m = tr->m;
    const int H = tr->H, F = tr->F, D = tr->D, Hq = tr->Hq, Hkv = tr->Hkv;
    dv_tensor xt = t2(tr->x, T, H), idt = dv_tensor_1d(DV_DTYPE_I32, (void *)ids, T);
    tr->be->ops->embed(tr->be, &xt, &m->tok_embd, &idt);
    for (int l = 0; l < tr->L; l++) {
        const dv_llm_layer *w = &m->layers[l];
        tr_acts *a = &tr->a[l];
        memcpy(a->x, tr->x, (size_t)T * H * sizeof(float));
        rms_norm_fwd(tr, tr->xb, tr->x, T, H, &w->attn_norm);
        mm(tr, a->q, tr->xb, T, H, &w->wq, &w->bq);
        mm(tr, a->k, tr->xb, T, H, &w->wk, &w->bk);
        mm(tr, a->v, tr->xb, T, H, &w->wv, &w->bv);
        if (w->q_norm.data) {
            memcpy(a->qpre, a->q, (size_t)T * Hq * D * sizeof(float));
            rms_norm_fwd(tr, a->q, a->qpre, (int64_t)T * Hq, D, &w->q_norm);
        }
        if (w->k_norm.data) {
            memcpy(a->kpre, a->k, (size_t)T * Hkv * D * sizeof(float));
            rms_norm_fwd(tr, a->k, a->kpre, (int64_t)T * Hkv, D, &w->k_norm);
        }
        rope_apply(tr, a->q, T, Hq, tr->pos);
        rope_apply(tr, a->k, T, Hkv, tr->pos);
        attn_fwd(tr, l, T);
        mm(tr, tr->xb, tr->att, T, (int64_t)Hq * D, &w->wo, &w->bo);
        add_into(tr, tr->x, tr->xb, T, H);
        memcpy(a->xm, tr->x, (size_t)T * H * sizeof(float));
        rms_norm_fwd(tr, tr->xb, tr->x, T, H, &w->ffn_norm);
        mm(tr, a->g, tr->xb, T, H, &w->w_gate, &w->b_gate);
        mm(tr, a->u, tr->xb, T, H, &w->w_up, &w->b_up);
        dv_tensor act = t2(tr->gate, T, F), gt = t2(a->g, T, F), ut = t2(a->u, T, F);
        tr->be->ops->swiglu(tr->be, &act, &gt, &ut); // silu(g) * u, as the model's forward
        mm(tr, tr->xb, tr->gate, T, F, &w->w_down, &w->b_down);
        add_into(tr, tr->x, tr->xb, T, H);
    }
    rms_norm_fwd(tr, tr->h, tr->x, T, H, &m->out_norm);
}

// The backward pass from dh (T, H), the loss gradient of the final hidden states: adds d loss / d alpha
// to tr->grad. Overwrites the scratch buffers.
static void train_backward(trainer *tr, const float *dh, int T) {
    dv_llm *m = tr->m;
    const int H = tr->H, F = tr->F, D = tr->D, Hq = tr->Hq, Hkv = tr->Hkv;
    rms_norm_bwd(tr->x, &m->out_norm, tr->eps, T, H, dh, tr->dx, 0); // tr->x: the last layer's output
    for (int l = tr->L - 1; l >= 0; l--) {
        const dv_llm_layer *w = &m->layers[l];
        const tr_acts *a = &tr->a[l];
        const tr_wt *wt = &tr->wt[l];
        // ---- MLP: x = xm + (silu(g) u) Wd, g = xb Wg, u = xb Wu, xb = rms_norm(xm) ----
        mm(tr, tr->dgate, tr->dx, T, H, &wt->d, NULL); // d(silu(g) u)
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < (int64_t)T * F; i++) {
            const float g = a->g[i], s = 1 / (1 + expf(-g)), da = tr->dgate[i];
            tr->dup[i] = da * g * s;
            tr->dgate[i] = da * a->u[i] * s * (1 + g * (1 - s));
        }
        mm(tr, tr->dxb, tr->dgate, T, F, &wt->g, NULL);
        mm(tr, tr->xb, tr->dup, T, F, &wt->u, NULL);
        add_into(tr, tr->dxb, tr->xb, T, H);
        rms_norm_bwd(a->xm, &w->ffn_norm, tr->eps, T, H, tr->dxb, tr->dx, 1); // dx is now d xm
        // ---- attention: xm = x + att Wo, att = alpha full + (1 - alpha) streaming ----
        mm(tr, tr->datt, tr->dx, T, H, &wt->o, NULL);
        attn_bwd(tr, l, T);
        if (l == 0) break; // nothing below the first layer's gates needs a gradient
        // RoPE is a rotation: its transpose turns by the opposite angle
        rope_apply(tr, tr->dq, T, Hq, tr->npos);
        rope_apply(tr, tr->dk, T, Hkv, tr->npos);
        if (w->q_norm.data) { // the normed rows' gradient back through the per-head norm
            memcpy(tr->datt, tr->dq, (size_t)T * Hq * D * sizeof(float));
            rms_norm_bwd(a->qpre, &w->q_norm, tr->eps, (int64_t)T * Hq, D, tr->datt, tr->dq, 0);
        }
        if (w->k_norm.data) {
            memcpy(tr->datt, tr->dk, (size_t)T * Hkv * D * sizeof(float));
            rms_norm_bwd(a->kpre, &w->k_norm, tr->eps, (int64_t)T * Hkv, D, tr->datt, tr->dk, 0);
        }
        mm(tr, tr->dxb, tr->dq, T, (int64_t)Hq * D, &wt->q, NULL);
        mm(tr, tr->xb, tr->dk, T, (int64_t)Hkv * D, &wt->k, NULL);
        add_into(tr, tr->dxb, tr->xb, T, H);
        mm(tr, tr->xb, tr->dv, T, (int64_t)Hkv * D, &wt->v, NULL);
        add_into(tr, tr->dxb, tr->xb, T, H);
        rms_norm_bwd(a->x, &w->attn_norm, tr->eps, T, H, tr->dxb, tr->dx, 1); // dx is now d x_in
    }
}

static void trainer_free(trainer *tr) {
    if (!tr) return;
    for (int l = 0; tr->a && l < tr->L; l++) {
        tr_acts *a = &tr->a[l];
        float *bufs[] = {a->x, a->qpre, a->kpre, a->q, a->k, a->v, a->of, a->os, a->lf, a->ls, a->xm, a->g, a->u};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    }
    for (int l = 0; tr->wt && l < tr->L; l++) {
        dv_tensor *w[] = {&tr->wt[l].q, &tr->wt[l].k, &tr->wt[l].v, &tr->wt[l].o, &tr->wt[l].g, &tr->wt[l].u, &tr->wt[l].d};
        for (size_t i = 0; i < sizeof w / sizeof *w; i++) free(w[i]->data);
    }
    float *bufs[] = {tr->x,  tr->xb,  tr->att, tr->gate, tr->dx, tr->dxb, tr->datt, tr->dq, tr->dk,
                     tr->dv, tr->dgate, tr->dup, tr->KT, tr->VT, tr->h, tr->dh, tr->alpha};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    for (int i = 0; tr->ws && i < tr->n_ws; i++) {
        tr_ws *w = &tr->ws[i];
        float *wb[] = {w->S, w->Pf, w->Ps, w->Tt, w->QbT, w->dObT, w->tmp, w->dK, w->dV};
        for (size_t j = 0; j < sizeof wb / sizeof *wb; j++) free(wb[j]);
        free(w->ga);
    }
    free(tr->ws);
    free(tr->a);
    free(tr->wt);
    free(tr->grad);
    free(tr->pos);
    free(tr->npos);
    free(tr);
}

static int trainer_init(dv_llm *m, int T_max, int sink, int recent, trainer **out) {
    *out = NULL;
    const dv_llm_config *c = &m->cfg;
    if (m->be->device != DV_DEVICE_CPU) return dv_error_set(DV_EUNSUPPORTED, "identify --method gates runs on the CPU backend");
    if (c->n_linear_layers || c->attn_output_gate || c->n_experts || c->mrope || c->zero_centered_norm)
        return dv_error_set(DV_EUNSUPPORTED, "identify --method gates: %s is not a dense Llama-family text model (Qwen3.5 "
                            "gated attention / DeltaNet, mixture of experts and M-RoPE are not trained; use --method deviation)",
                            c->arch_name);
    trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return dv_error_set(DV_ENOMEM, "out of memory");
    tr->m = m, tr->be = m->be, tr->L = c->n_layers, tr->H = c->hidden_size, tr->F = c->intermediate_size;
    tr->D = c->head_dim, tr->Hq = c->n_heads, tr->Hkv = c->n_kv_heads, tr->grp = c->n_heads / c->n_kv_heads;
    tr->T_max = T_max, tr->sink = sink, tr->recent = recent;
    tr->scale = 1.0f / sqrtf((float)c->head_dim), tr->eps = (float)c->rms_norm_eps;
    const size_t T = (size_t)T_max, H = tr->H, F = tr->F, D = tr->D, QD = (size_t)tr->Hq * D, KD = (size_t)tr->Hkv * D,
                 NH = (size_t)tr->L * tr->Hkv;
    int rc = 0;
    tr->a = calloc((size_t)tr->L, sizeof *tr->a);
    tr->wt = calloc((size_t)tr->L, sizeof *tr->wt);
    tr->grad = calloc(NH, sizeof *tr->grad);
    tr->pos = malloc(T * sizeof *tr->pos);
    tr->npos = malloc(T * sizeof *tr->npos);
    if (!tr->a || !tr->wt || !tr->grad || !tr->pos || !tr->npos) goto oom;
    for (int l = 0; l < tr->L; l++) {
        const dv_llm_layer *w = &m->layers[l];
        tr_acts *a = &tr->a[l];
        a->x = malloc(T * H * 4), a->q = malloc(T * QD * 4), a->k = malloc(T * KD * 4), a->v = malloc(T * KD * 4);
        a->of = malloc(T * QD * 4), a->os = malloc(T * QD * 4);
        a->lf = malloc(T * tr->Hq * 4), a->ls = malloc(T * tr->Hq * 4);
        a->xm = malloc(T * H * 4), a->g = malloc(T * F * 4), a->u = malloc(T * F * 4);
        if (w->q_norm.data) a->qpre = malloc(T * QD * 4);
        if (w->k_norm.data) a->kpre = malloc(T * KD * 4);
        if (!a->x || !a->q || !a->k || !a->v || !a->of || !a->os || !a->lf || !a->ls || !a->xm || !a->g || !a->u ||
            (w->q_norm.data && !a->qpre) || (w->k_norm.data && !a->kpre))
            goto oom;
        tr_wt *wt = &tr->wt[l];
        if ((rc = wt_make(&w->wq, &wt->q)) || (rc = wt_make(&w->wk, &wt->k)) || (rc = wt_make(&w->wv, &wt->v)) ||
            (rc = wt_make(&w->wo, &wt->o)) || (rc = wt_make(&w->w_gate, &wt->g)) || (rc = wt_make(&w->w_up, &wt->u)) ||
            (rc = wt_make(&w->w_down, &wt->d)))
            goto fail;
    }
    float **sc[] = {&tr->x, &tr->xb, &tr->dx, &tr->dxb, &tr->h, &tr->dh};
    for (size_t i = 0; i < sizeof sc / sizeof *sc; i++)
        if (!(*sc[i] = malloc(T * H * 4))) goto oom;
    float **sq[] = {&tr->att, &tr->datt, &tr->dq};
    for (size_t i = 0; i < sizeof sq / sizeof *sq; i++)
        if (!(*sq[i] = malloc(T * QD * 4))) goto oom;
    if (!(tr->dk = malloc(T * KD * 4)) || !(tr->dv = malloc(T * KD * 4)) || !(tr->gate = malloc(T * F * 4)) ||
        !(tr->dgate = malloc(T * F * 4)) || !(tr->dup = malloc(T * F * 4)) || !(tr->alpha = malloc(NH * 4)))
        goto oom;
    if (!(tr->KT = malloc(KD * T * 4)) || !(tr->VT = malloc(KD * T * 4))) goto oom;
    tr->n_ws = omp_get_max_threads();
    if (!(tr->ws = calloc((size_t)tr->n_ws, sizeof *tr->ws))) goto oom;
    for (int i = 0; i < tr->n_ws; i++) {
        tr_ws *w = &tr->ws[i];
        const size_t BT = (size_t)TR_BQ * T;
        if (!(w->S = malloc(BT * 4)) || !(w->Pf = malloc(BT * 4)) || !(w->Ps = malloc(BT * 4)) ||
            !(w->Tt = malloc(BT * 4)) || !(w->QbT = malloc(D * TR_BQ * 4)) || !(w->dObT = malloc(D * TR_BQ * 4)) ||
            !(w->tmp = malloc(T * D * 4)) || !(w->dK = malloc(KD * T * 4)) || !(w->dV = malloc(KD * T * 4)) ||
            !(w->ga = malloc((size_t)tr->Hkv * sizeof *w->ga)))
            goto oom;
    }
    for (int t = 0; t < T_max; t++) tr->pos[t] = t, tr->npos[t] = -t;
    for (size_t i = 0; i < NH; i++) tr->alpha[i] = 1;
    *out = tr;
    return 0;
oom:
    rc = dv_error_set(DV_ENOMEM, "identify --method gates: out of memory for %d tokens of activations (lower --length)",
                      T_max);
fail:
    trainer_free(tr);
    return rc;
}

// The distillation loss of the student's hidden states (tr->h) against the teacher's, and its gradient
// into tr->dh: the mean squared difference at the answer tokens (the reference's supervision); with
// `all`, averaged with the same mean over every position past the streaming window (where a streaming
// head sees less than full attention), so the gates keep language modelling as well as retrieval.
static double distill_loss(trainer *tr, const dv_duo_sample *s, const float *h_ref, int all) {
    const int H = tr->H;
    const int64_t w0 = (int64_t)tr->sink + tr->recent + 1; // first position that does not see every key
    const int n_late = all && s->n > w0 ? (int)(s->n - w0) : 0;
    const double wa = s->n_answer ? (n_late ? 0.5 : 1.0) / ((double)s->n_answer * H) : 0,
                 wl = n_late ? (s->n_answer ? 0.5 : 1.0) / ((double)n_late * H) : 0;
    memset(tr->dh, 0, (size_t)s->n * H * sizeof(float));
    double e = 0;
    for (int pass = 0; pass < 2; pass++) { // answers, then the late positions
        const int n = pass ? n_late : s->n_answer;
        const double k = pass ? wl : wa;
        for (int i = 0; i < n; i++) {
            const size_t r = (size_t)(pass ? w0 + i : s->answer[i]) * H;
            for (int d = 0; d < H; d++) {
                const double diff = (double)tr->h[r + d] - h_ref[r + d];
                e += k * diff * diff;
                tr->dh[r + d] += (float)(2 * diff * k);
            }
        }
    }
    return e;
}

// Teacher: the model's own full-attention forward (its KV cache is cleared first).
static int teacher_hidden(dv_llm *m, const dv_duo_sample *s, float *h_ref) {
    int rc = dv_llm_set_duo(m, NULL, DV_DUO_PREFILL_STRICT);
    return rc ? rc : dv_llm_prefill_hidden(m, s->ids, s->n, h_ref);
}

int dv_duo_gates_loss(dv_llm *m, const dv_duo_sample *s, int sink, int recent, const float *alpha, double *loss,
                      double *grad) {
    trainer *tr = NULL;
    float *h_ref = malloc((size_t)s->n * m->cfg.hidden_size * sizeof *h_ref);
    int rc = h_ref ? teacher_hidden(m, s, h_ref) : dv_error_set(DV_ENOMEM, "out of memory");
    if (!rc) rc = trainer_init(m, s->n, sink, recent, &tr);
    if (!rc) {
        const int NH = tr->L * tr->Hkv;
        memcpy(tr->alpha, alpha, (size_t)NH * sizeof *alpha);
        train_forward(tr, s->ids, s->n);
        *loss = distill_loss(tr, s, h_ref, 0);
        if (grad) {
            train_backward(tr, tr->dh, s->n);
            memcpy(grad, tr->grad, (size_t)NH * sizeof *grad);
        }
    }
    trainer_free(tr);
    free(h_ref);
    return rc;
}

int dv_duo_gates_train(dv_llm *m, dv_tokenizer *tok, const dv_duo_id_params *p, double *scores) {
    if (p->steps < 1 || !(p->lr > 0) || !(p->reg >= 0))
        return dv_error_set(DV_EINVAL, "identify --method gates: steps >= 1, lr > 0, reg >= 0");
    const int NH = m->cfg.n_layers * m->cfg.n_kv_heads;
    // one fresh sample per step, as the reference draws one per step
    dv_duo_sample *smp = calloc((size_t)p->steps, sizeof *smp);
    double *mom = calloc((size_t)NH, sizeof *mom), *var = calloc((size_t)NH, sizeof *var);
    trainer *tr = NULL;
    float *h_ref = NULL;
    int rc = smp && mom && var ? 0 : dv_error_set(DV_ENOMEM, "out of memory"), T_max = 0;
    for (int i = 0; !rc && i < p->steps; i++) {
        rc = dv_duo_sample_make(tok, p, p->seed + (uint64_t)i, &smp[i]);
        if (!rc && smp[i].n > m->n_ctx)
            rc = dv_error_set(DV_EINVAL, "identify: a sample has %d tokens, more than the context (%d)", smp[i].n, m->n_ctx);
        if (!rc && smp[i].n > T_max) T_max = smp[i].n;
    }
    if (!rc) rc = trainer_init(m, T_max, p->sink, p->recent, &tr);
    if (!rc && !(h_ref = malloc((size_t)T_max * m->cfg.hidden_size * sizeof *h_ref)))
        rc = dv_error_set(DV_ENOMEM, "out of memory");
    // AdamW (weight decay 0) with the reference's schedule: linear warm-up over the first fifth of the
    // steps, linear decay over the last fifth, never below a tenth of lr
    const double b1 = 0.9, b2 = 0.999, adam_eps = 1e-8, fifth = p->steps / 5.0 > 1 ? p->steps / 5.0 : 1;
    dv_progress *pg = rc ? NULL : dv_progress_init("identify (training gates)", p->steps, "steps");
    double t0 = dv_time_now(), ema = -1;
    for (int s = 0; !rc && s < p->steps; s++) {
        const dv_duo_sample *sm = &smp[s];
        if ((rc = teacher_hidden(m, sm, h_ref))) break;
        memset(tr->grad, 0, (size_t)NH * sizeof *tr->grad);
        train_forward(tr, sm->ids, sm->n);
        const double distill = distill_loss(tr, sm, h_ref, p->supervise_all);
        train_backward(tr, tr->dh, sm->n);
        double mean_alpha = 0;
        for (int i = 0; i < NH; i++) mean_alpha += tr->alpha[i] / NH;
        const double f = fmin(1, fmin(fmax((s + 1) / fifth, 0.1), fmax((p->steps - s) / fifth, 0.1))), lr = p->lr * f;
        for (int i = 0; i < NH; i++) {
            const double g = tr->grad[i] + p->reg / NH; // d(reg * mean|alpha|) for alpha >= 0
            mom[i] = b1 * mom[i] + (1 - b1) * g;
            var[i] = b2 * var[i] + (1 - b2) * g * g;
            const double mh = mom[i] / (1 - pow(b1, s + 1)), vh = var[i] / (1 - pow(b2, s + 1));
            const double a = tr->alpha[i] - lr * mh / (sqrt(vh) + adam_eps);
            tr->alpha[i] = (float)(a < 0 ? 0 : a > 1 ? 1 : a);
        }
        const double loss = distill + p->reg * mean_alpha;
        ema = ema < 0 ? loss : 0.9 * ema + 0.1 * loss;
        char note[128];
        snprintf(note, sizeof note, "loss %.3g (distill %.3g, mean gate %.3f)", ema, distill, mean_alpha);
        dv_progress_set_note(pg, note);
        dv_progress_update(pg, s + 1);
        DV_LOG_DEBUG("step %d: distill %.6g mean alpha %.4f lr %.4g", s, distill, mean_alpha, lr);
    }
    if (rc) dv_progress_free(pg);
    else dv_progress_finish(pg);
    if (!rc) {
        for (int i = 0; i < NH; i++) scores[i] = tr->alpha[i];
        DV_LOG_INFO("identify (gates): %d steps of %d tokens at most in %.1f s", p->steps, T_max, dv_time_now() - t0);
    }
    trainer_free(tr);
    free(h_ref);
    for (int i = 0; smp && i < p->steps; i++) dv_duo_sample_free(&smp[i]);
    free(smp);
    free(mom);
    free(var);
    return rc;
}
