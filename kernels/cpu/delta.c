// delta.c: the two ops of Gated DeltaNet layers (Qwen3.5 / Qwen3-Next linear attention): the causal
// depthwise conv1d with its carried state, and the gated delta rule with its fp32 recurrent state, in
// the recurrent form (decode) and the chunked WY / UT-transform form (prefill) that turns a chunk's
// updates into a few GEMMs and one triangular solve (OpenBLAS, single-threaded inside our threads).
//
// The chunked form, for one value head and a chunk of n tokens after state S0 (dk, dv), with
// gam_i = the chunk's cumulative log decay up to token i and u the chunk's state corrections:
//   (I + L) U = B V - diag(B exp(gam)) K S0,   L_ij = beta_i exp(gam_i - gam_j) k_i.k_j  (j < i)
//   O = diag(exp(gam)) Q S0 + (M o Q K^T) U,    M_ij = exp(gam_i - gam_j)               (j <= i)
//   S = exp(gam_n) S0 + (diag(exp(gam_n - gam)) K)^T U
// which is the recurrence S = exp(g) S; S += k (beta (v - S^T k))^T; o = S^T q unrolled over the
// chunk (HF torch_chunk_gated_delta_rule; tests/test_cpu_ops.c checks both forms against float64).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>

// ---- causal depthwise conv1d + SiLU ----

void dv_cpu_conv1d_causal(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, dv_tensor *state) {
    const int64_t T = x->ne[0], C = x->ne[1], K = state->ne[0] + 1;
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && x->n_dims == 2 && x->nb[1] == sizeof(float));
    DV_ASSERT(y->dtype == DV_DTYPE_F32 && y->n_dims == 2 && y->ne[0] == T && y->ne[1] == C && dv_tensor_is_contiguous(y));
    DV_ASSERT(state->dtype == DV_DTYPE_F32 && state->n_dims == 2 && state->ne[1] == C && dv_tensor_is_contiguous(state));
    DV_ASSERT(dv_cpu_is_float(w->dtype) && w->ne[0] == C && dv_tensor_nelem(w) == C * K && dv_tensor_is_contiguous(w));
    dv_cpu_ctx *cx = be->ctx;
    float *wf = dv_cpu_grow(&cx->lin_scratch, &cx->lin_scratch_cap, (size_t)(C * K)); // (C, K) F32
    dv_cpu_to_f32(wf, w->data, w->dtype, (size_t)(C * K));
    float *st = state->data; // (K-1, C)
    // xx(r, c): row r of [state; x]
#define XX(r, c) ((r) < K - 1 ? st[(r) * C + (c)] : dv_cpu_row(x, (r) - (K - 1))[c])
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT(be))
    for (int64_t t = 0; t < T; t++) {
        float *yr = dv_cpu_row(y, t);
        for (int64_t c = 0; c < C; c++) {
            float s = 0.0f;
            for (int64_t j = 0; j < K; j++) s = DV_FMA(wf[c * K + j], XX(t + j, c), s);
            yr[c] = s / (1.0f + expf(-s));
        }
    }
    // new state: rows T .. T+K-2 of xx; ascending r reads rows >= r not yet overwritten
    for (int64_t r = 0; r < K - 1; r++)
        for (int64_t c = 0; c < C; c++) st[r * C + c] = XX(T + r, c);
#undef XX
}

// ---- gated delta rule ----

typedef struct gdn_args {
    const dv_tensor *q, *k, *v, *a, *b;
    const float *a_log, *dt_bias; // (Hv) F32
    int64_t T, Hk, Hv, dk, dv, rep;
} gdn_args;

// Token t of value head h: l2-normalised (and, for q, scaled) q, k into qo, ko (dk); g and beta.
static void gdn_token(const gdn_args *A, int64_t t, int64_t h, float *qo, float *ko, float *g, float *beta) {
    const int64_t kh = h / A->rep, dk = A->dk;
    const float *qr = (const float *)((const char *)A->q->data + (size_t)t * A->q->nb[0]) + kh * dk;
    const float *kr = (const float *)((const char *)A->k->data + (size_t)t * A->k->nb[0]) + kh * dk;
    float sq = 0.0f, sk = 0.0f;
    for (int64_t i = 0; i < dk; i++) {
        sq = DV_FMA(qr[i], qr[i], sq);
        sk = DV_FMA(kr[i], kr[i], sk);
    }
    const float rq = 1.0f / sqrtf(sq + 1e-6f) / sqrtf((float)dk), rk = 1.0f / sqrtf(sk + 1e-6f);
    for (int64_t i = 0; i < dk; i++) {
        qo[i] = qr[i] * rq;
        ko[i] = kr[i] * rk;
    }
    const float av = dv_cpu_row(A->a, t)[h] + A->dt_bias[h], bv = dv_cpu_row(A->b, t)[h];
    const float sp = av > 20.0f ? av : log1pf(expf(av)); // F.softplus (threshold 20)
    *g = -expf(A->a_log[h]) * sp;
    *beta = 1.0f / (1.0f + expf(-bv));
}

static const float *gdn_v(const gdn_args *A, int64_t t, int64_t h) {
    return (const float *)((const char *)A->v->data + (size_t)t * A->v->nb[0]) + h * A->dv;
}

// Token by token, one value head; ws: (2 dk + dv) floats.
DV_CPU_CLONES static void gdn_recurrent_head(const gdn_args *A, int64_t h, float *S, float *out, float *ws) {
    const int64_t dk = A->dk, dv = A->dv;
    float *q = ws, *k = ws + dk, *kv = ws + 2 * dk;
    for (int64_t t = 0; t < A->T; t++) {
        float g, beta;
        gdn_token(A, t, h, q, k, &g, &beta);
        const float decay = expf(g), *v = gdn_v(A, t, h);
        for (int64_t j = 0; j < dv; j++) kv[j] = 0.0f;
        for (int64_t i = 0; i < dk; i++) {
            float *Si = S + i * dv;
            for (int64_t j = 0; j < dv; j++) {
                Si[j] *= decay;
                kv[j] = DV_FMA(Si[j], k[i], kv[j]);
            }
        }
        for (int64_t j = 0; j < dv; j++) kv[j] = beta * (v[j] - kv[j]); // the delta
        float *o = out + t * A->Hv * dv + h * dv;
        for (int64_t j = 0; j < dv; j++) o[j] = 0.0f;
        for (int64_t i = 0; i < dk; i++) {
            float *Si = S + i * dv;
            for (int64_t j = 0; j < dv; j++) {
                Si[j] = DV_FMA(k[i], kv[j], Si[j]);
                o[j] = DV_FMA(Si[j], q[i], o[j]);
            }
        }
    }
}

static size_t gdn_chunk_ws(int64_t C, int64_t dk, int64_t dv) { return (size_t)(C * (3 * dk + 2 * dv + 2 * C + 2)); }

// The chunked form, one value head; ws: gdn_chunk_ws(C) floats.
DV_CPU_CLONES static void gdn_chunked_head(const gdn_args *A, int64_t h, float *S, float *out, float *ws, int64_t C) {
    const int64_t dk = A->dk, dv = A->dv, ldo = A->Hv * dv;
    float *Q = ws;            // (C, dk) normalised, scaled queries of the chunk
    float *K = Q + C * dk;    // (C, dk) normalised keys
    float *Kd = K + C * dk;   // (C, dk) keys times exp(gam_n - gam_j)
    float *U = Kd + C * dk;   // (C, dv) right-hand side, then the corrections u
    float *P = U + C * dv;    // (C, dv) K S0, then Q S0
    float *L = P + C * dv;    // (C, C) the unit-lower system
    float *M = L + C * C;     // (C, C) decayed causal Q K^T
    float *gam = M + C * C;   // (C) cumulative log decay
    float *bet = gam + C;     // (C) beta
    for (int64_t t0 = 0; t0 < A->T; t0 += C) {
        const int n = (int)(A->T - t0 < C ? A->T - t0 : C);
        float acc = 0.0f;
        for (int i = 0; i < n; i++) {
            float g;
            gdn_token(A, t0 + i, h, Q + i * dk, K + i * dk, &g, &bet[i]);
            acc += g; // sequential cumsum, as torch's cumsum over the chunk
            gam[i] = acc;
        }
        // right-hand side: beta v - beta exp(gam) (K S0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, (int)dv, (int)dk, 1.0f, K, (int)dk, S, (int)dv,
                    0.0f, P, (int)dv);
        for (int i = 0; i < n; i++) {
            const float *v = gdn_v(A, t0 + i, h);
            const float e = bet[i] * expf(gam[i]);
            for (int64_t j = 0; j < dv; j++) U[i * dv + j] = bet[i] * v[j] - e * P[i * dv + j];
        }
        // (I + L) U = rhs
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, (int)dk, 1.0f, K, (int)dk, K, (int)dk, 0.0f, L,
                    (int)C);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) L[i * C + j] *= bet[i] * expf(gam[i] - gam[j]);
        cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, n, (int)dv, 1.0f, L, (int)C, U,
                    (int)dv);
        // O = exp(gam) (Q S0) + (M o Q K^T) U
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, (int)dv, (int)dk, 1.0f, Q, (int)dk, S, (int)dv,
                    0.0f, P, (int)dv);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, (int)dk, 1.0f, Q, (int)dk, K, (int)dk, 0.0f, M,
                    (int)C);
        float *O = out + t0 * ldo + h * dv;
        for (int i = 0; i < n; i++) {
            const float e = expf(gam[i]);
            for (int j = 0; j < n; j++) M[i * C + j] = j <= i ? M[i * C + j] * expf(gam[i] - gam[j]) : 0.0f;
            for (int64_t j = 0; j < dv; j++) O[i * ldo + j] = e * P[i * dv + j];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, (int)dv, n, 1.0f, M, (int)C, U, (int)dv, 1.0f, O,
                    (int)ldo);
        // S = exp(gam_n) S0 + Kd^T U
        const float en = expf(gam[n - 1]);
        for (int64_t i = 0; i < dk * dv; i++) S[i] *= en;
        for (int i = 0; i < n; i++) {
            const float e = expf(gam[n - 1] - gam[i]);
            for (int64_t d = 0; d < dk; d++) Kd[i * dk + d] = K[i * dk + d] * e;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)dk, (int)dv, n, 1.0f, Kd, (int)dk, U, (int)dv, 1.0f,
                    S, (int)dv);
    }
}

void dv_cpu_gated_delta_rule(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k,
                             const dv_tensor *v, const dv_tensor *a, const dv_tensor *b, const dv_tensor *a_log,
                             const dv_tensor *dt_bias, dv_tensor *state, int chunk) {
    const int64_t T = q->ne[0], Hk = q->ne[1], dk = q->ne[2], Hv = v->ne[1], dv = v->ne[2];
    DV_ASSERT(q->dtype == DV_DTYPE_F32 && k->dtype == DV_DTYPE_F32 && v->dtype == DV_DTYPE_F32);
    DV_ASSERT(q->n_dims == 3 && k->n_dims == 3 && v->n_dims == 3 && dv_tensor_same_shape(q, k) && v->ne[0] == T);
    DV_ASSERT(q->nb[2] == 4 && q->nb[1] == (size_t)dk * 4 && k->nb[2] == 4 && k->nb[1] == (size_t)dk * 4);
    DV_ASSERT(v->nb[2] == 4 && v->nb[1] == (size_t)dv * 4 && Hv % Hk == 0);
    DV_ASSERT(a->dtype == DV_DTYPE_F32 && b->dtype == DV_DTYPE_F32 && a->ne[0] == T && a->ne[1] == Hv &&
              b->ne[0] == T && b->ne[1] == Hv && a->nb[1] == 4 && b->nb[1] == 4);
    DV_ASSERT(dv_cpu_is_float(a_log->dtype) && dv_tensor_nelem(a_log) == Hv && dv_cpu_is_float(dt_bias->dtype) &&
              dv_tensor_nelem(dt_bias) == Hv);
    DV_ASSERT(state->dtype == DV_DTYPE_F32 && dv_tensor_nelem(state) == Hv * dk * dv && dv_tensor_is_contiguous(state));
    DV_ASSERT(out->dtype == DV_DTYPE_F32 && dv_tensor_nelem(out) == T * Hv * dv && dv_tensor_is_contiguous(out));
    if (T == 0) return;
    float al[1024], db[1024]; // (Hv) the gate parameters in F32
    DV_ASSERT(Hv <= 1024);
    dv_cpu_to_f32(al, a_log->data, a_log->dtype, (size_t)Hv);
    dv_cpu_to_f32(db, dt_bias->data, dt_bias->dtype, (size_t)Hv);
    gdn_args A = {.q = q, .k = k, .v = v, .a = a, .b = b, .a_log = al, .dt_bias = db, .T = T, .Hk = Hk, .Hv = Hv,
                  .dk = dk, .dv = dv, .rep = Hv / Hk};
    const int64_t C = chunk > 1 ? (chunk < T ? chunk : T) : 0;
    const size_t per = C ? gdn_chunk_ws(C, dk, dv) : (size_t)(2 * dk + dv);
    const int nt = DV_CPU_NT(be);
    dv_cpu_ctx *cx = be->ctx;
    float *ws = dv_cpu_grow(&cx->gdn_scratch, &cx->gdn_scratch_cap, per * (size_t)nt);
    float *S = state->data, *o = out->data;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t h = 0; h < Hv; h++) {
        float *w = ws + per * (size_t)omp_get_thread_num();
        if (C) gdn_chunked_head(&A, h, S + h * dk * dv, o, w, C);
        else gdn_recurrent_head(&A, h, S + h * dk * dv, o, w);
    }
}
