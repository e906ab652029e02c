// test_cpu_delta.c: the Gated DeltaNet ops of the CPU backend (conv1d_causal, gated_delta_rule in its
// recurrent and chunked forms, mul_sigmoid) against naive float64 code written from the HF
// definitions, on 1 and 2 threads: odd chunk sizes, grouped value heads, dk != dv, a carried state
// (one call over T tokens equals the same tokens split over several calls), weights in every dtype.
#include "tests/cpu_ops_ref.h"

// ---- float64 references ----

// y (T, C) = silu(causal depthwise conv of [state; x] with w (C, K)); state (K-1, C) updated.
static void ref_conv(double *y, const double *x, const double *w, double *state, int64_t T, int64_t C, int64_t K) {
    double *xx = ref_xmalloc((size_t)((K - 1 + T) * C) * sizeof *xx);
    memcpy(xx, state, (size_t)((K - 1) * C) * sizeof *xx);
    memcpy(xx + (K - 1) * C, x, (size_t)(T * C) * sizeof *xx);
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t j = 0; j < K; j++) s += w[c * K + j] * xx[(t + j) * C + c];
            y[t * C + c] = s / (1 + exp(-s));
        }
    memcpy(state, xx + T * C, (size_t)((K - 1) * C) * sizeof *xx);
    free(xx);
}

// The recurrence of torch_recurrent_gated_delta_rule (use_qk_l2norm_in_kernel), token by token.
static void ref_gdn(double *out, const double *q, const double *k, const double *v, const double *a, const double *b,
                    const double *a_log, const double *dt_bias, double *S, int64_t T, int64_t Hk, int64_t Hv,
                    int64_t dk, int64_t dv) {
    double qn[256], kn[256], kv[256];
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < Hv; h++) {
            const int64_t kh = h / (Hv / Hk);
            const double *qr = q + (t * Hk + kh) * dk, *kr = k + (t * Hk + kh) * dk, *vr = v + (t * Hv + h) * dv;
            double sq = 0, sk = 0;
            for (int64_t i = 0; i < dk; i++) sq += qr[i] * qr[i], sk += kr[i] * kr[i];
            for (int64_t i = 0; i < dk; i++) {
                qn[i] = qr[i] / sqrt(sq + 1e-6) / sqrt((double)dk);
                kn[i] = kr[i] / sqrt(sk + 1e-6);
            }
            const double x = a[t * Hv + h] + dt_bias[h];
            const double g = -exp(a_log[h]) * (x > 20 ? x : log1p(exp(x)));
            const double beta = 1 / (1 + exp(-b[t * Hv + h]));
            double *Sh = S + h * dk * dv;
            for (int64_t i = 0; i < dk * dv; i++) Sh[i] *= exp(g);
            for (int64_t j = 0; j < dv; j++) {
                kv[j] = 0;
                for (int64_t i = 0; i < dk; i++) kv[j] += Sh[i * dv + j] * kn[i];
            }
            for (int64_t i = 0; i < dk; i++)
                for (int64_t j = 0; j < dv; j++) Sh[i * dv + j] += kn[i] * beta * (vr[j] - kv[j]);
            for (int64_t j = 0; j < dv; j++) {
                double o = 0;
                for (int64_t i = 0; i < dk; i++) o += Sh[i * dv + j] * qn[i];
                out[(t * Hv + h) * dv + j] = o;
            }
        }
}

// ---- conv1d_causal ----

static void conv_case(dv_backend *be, dv_dtype wdt, int64_t T, int64_t C, int64_t K, int64_t pad) {
    char label[160];
    const int64_t ldx = C + pad; // x rows strided, as the model's views into a wider buffer
    double *xe = ref_xmalloc((size_t)(T * C) * 8), *we = ref_xmalloc((size_t)(C * K) * 8);
    double *se = ref_xmalloc((size_t)((K - 1) * C) * 8), *ye = ref_xmalloc((size_t)(T * C) * 8);
    float *xs = ref_rand_f32((size_t)(T * ldx), -2, 2, NULL);
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < C; c++) xe[t * C + c] = xs[t * ldx + c];
    void *w = ref_make_weights(wdt, (size_t)(C * K), we, -1, 1);
    float *st = ref_rand_f32((size_t)((K - 1) * C), -1, 1, se); // a state carried from earlier tokens
    float *y = ref_xmalloc((size_t)(T * C) * sizeof(float));
    ref_conv(ye, xe, we, se, T, C, K);
    dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, xs, T, C);
    tx.nb[0] = (size_t)ldx * 4;
    const int64_t wshape[3] = {C, 1, K}; // the checkpoint's (C, 1, K)
    dv_tensor tw = dv_tensor_make(wdt, w, 3, wshape), ty = dv_tensor_2d(DV_DTYPE_F32, y, T, C);
    dv_tensor ts = dv_tensor_2d(DV_DTYPE_F32, st, K - 1, C);
    ref_poison(y, (size_t)(T * C));
    be->ops->conv1d_causal(be, &ty, &tx, &tw, &ts);
    snprintf(label, sizeof label, "conv1d t=%d %s T=%lld C=%lld K=%lld", be->n_threads, dv_dtype_name(wdt),
             (long long)T, (long long)C, (long long)K);
    dv_test_close_f64(label, y, ye, (size_t)(T * C), 1e-5);
    snprintf(label, sizeof label, "conv1d t=%d T=%lld K=%lld state", be->n_threads, (long long)T, (long long)K);
    dv_test_close_f64(label, st, se, (size_t)((K - 1) * C), 1e-12); // a copy: exact
    free(xe), free(we), free(se), free(ye), free(xs), free(w), free(st), free(y);
}

// ---- gated_delta_rule ----

typedef struct gdn_case {
    int64_t T, Hk, Hv, dk, dv;
} gdn_case;

// One case: the float64 recurrence over T tokens from a random state; then the op in the recurrent
// form (chunk 0) and chunked forms of several (odd) sizes, each also split over two calls.
static void gdn_run(dv_backend *be, const gdn_case *c, dv_dtype pdt) {
    const int64_t T = c->T, Hk = c->Hk, Hv = c->Hv, dk = c->dk, dv = c->dv, pad = 3;
    const int64_t ldq = Hk * dk + pad, ldv = Hv * dv + pad; // strided rows, as the conv output views
    const size_t nq = (size_t)(T * Hk * dk), nv = (size_t)(T * Hv * dv), ng = (size_t)(T * Hv),
                 ns = (size_t)(Hv * dk * dv);
    double *qe = ref_xmalloc(nq * 8), *ke = ref_xmalloc(nq * 8), *ve = ref_xmalloc(nv * 8);
    double *ae = ref_xmalloc(ng * 8), *be_ = ref_xmalloc(ng * 8), *ale = ref_xmalloc((size_t)Hv * 8),
           *dbe = ref_xmalloc((size_t)Hv * 8);
    double *S0 = ref_xmalloc(ns * 8), *Se = ref_xmalloc(ns * 8), *oe = ref_xmalloc(nv * 8);
    float *q = ref_rand_f32((size_t)(T * ldq), -1, 1, NULL), *k = ref_rand_f32((size_t)(T * ldq), -1, 1, NULL);
    float *v = ref_rand_f32((size_t)(T * ldv), -1, 1, NULL);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < Hk * dk; i++) qe[t * Hk * dk + i] = q[t * ldq + i], ke[t * Hk * dk + i] = k[t * ldq + i];
        for (int64_t i = 0; i < Hv * dv; i++) ve[t * Hv * dv + i] = v[t * ldv + i];
    }
    float *a = ref_rand_f32(ng, -3, 3, ae), *b = ref_rand_f32(ng, -3, 3, be_);
    void *al = ref_make_weights(pdt, (size_t)Hv, ale, -1, 2.5f); // exp: decays up to ~12 per token
    void *db = ref_make_weights(pdt, (size_t)Hv, dbe, -1, 1);
    float *s0 = ref_rand_f32(ns, -0.5f, 0.5f, S0);
    memcpy(Se, S0, ns * 8);
    ref_gdn(oe, qe, ke, ve, ae, be_, ale, dbe, Se, T, Hk, Hv, dk, dv);

    float *out = ref_xmalloc(nv * 4), *st = ref_xmalloc(ns * 4);
    const int chunks[] = {0, 1, 3, 7, 64};
    const int64_t shape1[1] = {Hv};
    dv_tensor tal = dv_tensor_make(pdt, al, 1, shape1), tdb = dv_tensor_make(pdt, db, 1, shape1);
    char label[200];
    for (int ci = 0; ci < 5; ci++)
        for (int split = 0; split < 2; split++) {
            // split: the same tokens over two calls (state carried), the second starting mid-chunk
            const int64_t cut = split ? T / 2 + 1 : T;
            if (split && cut >= T) continue;
            memcpy(st, s0, ns * 4);
            ref_poison(out, nv);
            for (int64_t t0 = 0; t0 < T; t0 = t0 == 0 ? cut : T) {
                const int64_t n = (t0 == 0 ? cut : T) - t0;
                dv_tensor tq = dv_tensor_3d(DV_DTYPE_F32, q + t0 * ldq, n, Hk, dk);
                dv_tensor tk = dv_tensor_3d(DV_DTYPE_F32, k + t0 * ldq, n, Hk, dk);
                dv_tensor tv = dv_tensor_3d(DV_DTYPE_F32, v + t0 * ldv, n, Hv, dv);
                tq.nb[0] = tk.nb[0] = (size_t)ldq * 4;
                tv.nb[0] = (size_t)ldv * 4;
                dv_tensor ta = dv_tensor_2d(DV_DTYPE_F32, a + t0 * Hv, n, Hv);
                dv_tensor tb = dv_tensor_2d(DV_DTYPE_F32, b + t0 * Hv, n, Hv);
                dv_tensor to = dv_tensor_3d(DV_DTYPE_F32, out + t0 * Hv * dv, n, Hv, dv);
                dv_tensor ts = dv_tensor_3d(DV_DTYPE_F32, st, Hv, dk, dv);
                be->ops->gated_delta_rule(be, &to, &tq, &tk, &tv, &ta, &tb, &tal, &tdb, &ts, chunks[ci]);
            }
            snprintf(label, sizeof label, "gdn t=%d %s T=%lld Hk=%lld Hv=%lld dk=%lld dv=%lld chunk=%d%s out",
                     be->n_threads, dv_dtype_name(pdt), (long long)T, (long long)Hk, (long long)Hv, (long long)dk,
                     (long long)dv, chunks[ci], split ? " split" : "");
            dv_test_close_f64(label, out, oe, nv, 2e-5);
            snprintf(label, sizeof label, "gdn t=%d T=%lld chunk=%d%s state", be->n_threads, (long long)T, chunks[ci],
                     split ? " split" : "");
            dv_test_close_f64(label, st, Se, ns, 2e-5);
        }
    free(qe), free(ke), free(ve), free(ae), free(be_), free(ale), free(dbe), free(S0), free(Se), free(oe);
    free(q), free(k), free(v), free(a), free(b), free(al), free(db), free(s0), free(out), free(st);
}

// The chunked form equals the recurrent form on the op itself (float32 both ways), over a long
// sequence with many chunks: what prefill (chunked) vs decode (recurrent) relies on.
static void gdn_forms_agree(dv_backend *be) {
    const int64_t T = 150, Hk = 2, Hv = 4, dk = 32, dv = 48;
    const size_t nq = (size_t)(T * Hk * dk), nv = (size_t)(T * Hv * dv), ns = (size_t)(Hv * dk * dv);
    float *q = ref_rand_f32(nq, -1, 1, NULL), *k = ref_rand_f32(nq, -1, 1, NULL), *v = ref_rand_f32(nv, -1, 1, NULL);
    float *a = ref_rand_f32((size_t)(T * Hv), -2, 2, NULL), *b = ref_rand_f32((size_t)(T * Hv), -2, 2, NULL);
    float *al = ref_rand_f32((size_t)Hv, -2, 0.5f, NULL), *db = ref_rand_f32((size_t)Hv, -1, 1, NULL);
    float *o1 = ref_xmalloc(nv * 4), *o2 = ref_xmalloc(nv * 4), *s1 = ref_xmalloc(ns * 4), *s2 = ref_xmalloc(ns * 4);
    dv_tensor tq = dv_tensor_3d(DV_DTYPE_F32, q, T, Hk, dk), tk = dv_tensor_3d(DV_DTYPE_F32, k, T, Hk, dk);
    dv_tensor tv = dv_tensor_3d(DV_DTYPE_F32, v, T, Hv, dv), ta = dv_tensor_2d(DV_DTYPE_F32, a, T, Hv);
    dv_tensor tb = dv_tensor_2d(DV_DTYPE_F32, b, T, Hv), tal = dv_tensor_1d(DV_DTYPE_F32, al, Hv);
    dv_tensor tdb = dv_tensor_1d(DV_DTYPE_F32, db, Hv);
    dv_tensor to1 = dv_tensor_3d(DV_DTYPE_F32, o1, T, Hv, dv), to2 = dv_tensor_3d(DV_DTYPE_F32, o2, T, Hv, dv);
    dv_tensor ts1 = dv_tensor_3d(DV_DTYPE_F32, s1, Hv, dk, dv), ts2 = dv_tensor_3d(DV_DTYPE_F32, s2, Hv, dk, dv);
    const int chunks[] = {5, 33, 64};
    for (int ci = 0; ci < 3; ci++) {
        memset(s1, 0, ns * 4), memset(s2, 0, ns * 4);
        ref_poison(o1, nv), ref_poison(o2, nv);
        be->ops->gated_delta_rule(be, &to1, &tq, &tk, &tv, &ta, &tb, &tal, &tdb, &ts1, 0);
        be->ops->gated_delta_rule(be, &to2, &tq, &tk, &tv, &ta, &tb, &tal, &tdb, &ts2, chunks[ci]);
        char label[128];
        snprintf(label, sizeof label, "gdn t=%d chunked(%d) == recurrent, T=%lld out", be->n_threads, chunks[ci],
                 (long long)T);
        dv_test_close(label, o2, o1, nv, 1e-5);
        snprintf(label, sizeof label, "gdn t=%d chunked(%d) == recurrent state", be->n_threads, chunks[ci]);
        dv_test_close(label, s2, s1, ns, 1e-5);
    }
    free(q), free(k), free(v), free(a), free(b), free(al), free(db), free(o1), free(o2), free(s1), free(s2);
}

// ---- mul_sigmoid ----

static void mul_sigmoid_case(dv_backend *be, int64_t M, int64_t N, int64_t pad) {
    const int64_t ld = N + pad;
    double *xe = ref_xmalloc((size_t)(M * ld) * 8), *ge = ref_xmalloc((size_t)(M * ld) * 8),
           *ye = ref_xmalloc((size_t)(M * N) * 8);
    float *x = ref_rand_f32((size_t)(M * ld), -4, 4, xe), *g = ref_rand_f32((size_t)(M * ld), -8, 8, ge);
    float *y = ref_xmalloc((size_t)(M * N) * 4);
    for (int64_t m = 0; m < M; m++)
        for (int64_t i = 0; i < N; i++) ye[m * N + i] = xe[m * ld + i] / (1 + exp(-ge[m * ld + i]));
    dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, M, N), tg = dv_tensor_2d(DV_DTYPE_F32, g, M, N);
    tx.nb[0] = tg.nb[0] = (size_t)ld * 4; // the gate interleaved with q in Qwen3.5's q_proj output
    dv_tensor ty = dv_tensor_2d(DV_DTYPE_F32, y, M, N);
    ref_poison(y, (size_t)(M * N));
    be->ops->mul_sigmoid(be, &ty, &tx, &tg);
    char label[128];
    snprintf(label, sizeof label, "mul_sigmoid t=%d M=%lld N=%lld pad=%lld", be->n_threads, (long long)M,
             (long long)N, (long long)pad);
    dv_test_close_f64(label, y, ye, (size_t)(M * N), 1e-6);
    if (!pad) { // in place
        be->ops->mul_sigmoid(be, &tx, &tx, &tg);
        snprintf(label, sizeof label, "mul_sigmoid t=%d M=%lld N=%lld in place", be->n_threads, (long long)M,
                 (long long)N);
        dv_test_close_f64(label, x, ye, (size_t)(M * N), 1e-6);
    }
    free(xe), free(ge), free(ye), free(x), free(g), free(y);
}

int main(void) {
    if (ref_backends_init()) return 1;
    const dv_dtype dts[3] = {DV_DTYPE_F32, DV_DTYPE_BF16, DV_DTYPE_F16};
    const int64_t Ts[] = {1, 2, 5, 17}, Ks[] = {2, 4};
    int n = 0;
    for (int ti = 0; ti < 4; ti++)
        for (int ki = 0; ki < 2; ki++, n++) conv_case(ref_backends[n % 2], dts[n % 3], Ts[ti], 37, Ks[ki], n % 2 ? 5 : 0);
    const gdn_case cases[] = {
        {1, 1, 1, 8, 8},   // one token (decode)
        {23, 2, 4, 16, 24}, // grouped value heads, dk != dv: the tiny-qwen35 shape
        {70, 1, 3, 32, 16}, // more tokens than the largest chunk
        {9, 2, 2, 128, 128}, // Qwen3.5's head dims
    };
    for (int i = 0; i < 4; i++) gdn_run(ref_backends[i % 2], &cases[i], dts[i % 3]);
    for (int i = 0; i < 2; i++) gdn_forms_agree(ref_backends[i]);
    mul_sigmoid_case(ref_backends[0], 7, 33, 0);
    mul_sigmoid_case(ref_backends[1], 12, 32, 32);
    ref_backends_free();
    return dv_test_finish();
}
