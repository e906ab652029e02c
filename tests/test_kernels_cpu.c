// test_kernels_cpu.c: every CPU op against a naive float64 reference written here, on random
// inputs over several shapes (odd sizes included), weights in F32/F16/BF16, 1 and 2 threads.
// Outputs are poisoned with NaN first, so an unwritten element fails.
#include "core/dv_error.h"
#include "kernels/dv_backend.h"
#include "tests/dv_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t seed = 42;

static void poison(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

// Random weights of a dtype plus their exact F32 values (the reference uses the rounded values).
static void *make_weights(dv_dtype dt, size_t n, double *exact) {
    float *f = malloc(n * sizeof *f);
    dv_test_rand(f, n, -1, 1, &seed);
    void *w = malloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        if (dt == DV_DTYPE_F32) {
            ((float *)w)[i] = f[i];
            exact[i] = f[i];
        } else if (dt == DV_DTYPE_BF16) {
            uint16_t h = dv_f32_to_bf16(f[i]);
            ((uint16_t *)w)[i] = h;
            exact[i] = dv_bf16_to_f32(h);
        } else {
            uint16_t h = dv_f32_to_f16(f[i]);
            ((uint16_t *)w)[i] = h;
            exact[i] = dv_f16_to_f32(h);
        }
    }
    free(f);
    return w;
}

static void test_matmul(dv_backend *be) {
    const int64_t Ms[] = {1, 3, 4, 5, 65}, Ks[] = {1, 7, 33, 257}, Ns[] = {1, 5, 300};
    const dv_dtype dts[] = {DV_DTYPE_F32, DV_DTYPE_BF16, DV_DTYPE_F16};
    int n_ok = 0, n = 0;
    double worst = 0;
    for (int di = 0; di < 3; di++)
        for (int mi = 0; mi < 5; mi++)
            for (int ki = 0; ki < 4; ki++)
                for (int ni = 0; ni < 3; ni++) {
                    const int64_t M = Ms[mi], K = Ks[ki], N = Ns[ni];
                    const int with_bias = (mi + ki + ni) % 2;
                    float *x = malloc((size_t)(M * K) * 4), *y = malloc((size_t)(M * N) * 4);
                    double *we = malloc((size_t)(N * K) * 8), *be_ = malloc((size_t)N * 8), *ref = malloc((size_t)(M * N) * 8);
                    dv_test_rand(x, (size_t)(M * K), -1, 1, &seed);
                    void *w = make_weights(dts[di], (size_t)(N * K), we);
                    void *b = make_weights(dts[di], (size_t)N, be_);
                    for (int64_t m = 0; m < M; m++)
                        for (int64_t j = 0; j < N; j++) {
                            double s = with_bias ? be_[j] : 0;
                            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * we[j * K + k];
                            ref[m * N + j] = s;
                        }
                    poison(y, (size_t)(M * N));
                    dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, M, K), ty = dv_tensor_2d(DV_DTYPE_F32, y, M, N),
                              tw = dv_tensor_2d(dts[di], w, N, K), tb = dv_tensor_1d(dts[di], b, N);
                    be->ops->matmul(be, &ty, &tx, &tw, with_bias ? &tb : NULL);
                    double num = 0, den = 0;
                    int finite = 1;
                    for (int64_t i = 0; i < M * N; i++) {
                        finite &= isfinite(y[i]);
                        num += (y[i] - ref[i]) * (y[i] - ref[i]);
                        den += ref[i] * ref[i];
                    }
                    double rel = finite ? sqrt(num / (den > 0 ? den : 1)) : INFINITY;
                    if (rel > worst) worst = rel;
                    n++;
                    if (rel < 1e-5) n_ok++;
                    else fprintf(stderr, "matmul %s M=%lld K=%lld N=%lld bias=%d: rel_l2 %.3e\n", dv_dtype_name(dts[di]),
                                 (long long)M, (long long)K, (long long)N, with_bias, rel);
                    free(x); free(y); free(we); free(be_); free(ref); free(w); free(b);
                }
    printf("matmul: %d/%d shapes x dtypes within 1e-5, worst rel_l2 = %.3e\n", n_ok, n, worst);
    DV_CHECK(n_ok == n);

    // a strided output: y rows written into a wider buffer (the KV-cache rows path)
    {
        const int64_t M = 3, K = 8, N = 4, LD = 10;
        float x[24], y[30], w[32];
        dv_test_rand(x, 24, -1, 1, &seed);
        dv_test_rand(w, 32, -1, 1, &seed);
        poison(y, 30);
        dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, M, K), tw = dv_tensor_2d(DV_DTYPE_F32, w, N, K);
        dv_tensor ty = dv_tensor_2d(DV_DTYPE_F32, y, M, N);
        ty.nb[0] = LD * sizeof(float);
        be->ops->matmul(be, &ty, &tx, &tw, NULL);
        double md = 0;
        int untouched = 1;
        for (int64_t m = 0; m < M; m++) {
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * w[j * K + k];
                md = fmax(md, fabs(s - y[m * LD + j]));
            }
            for (int64_t j = N; j < LD && m * LD + j < 30; j++) untouched &= isnan(y[m * LD + j]);
        }
        printf("matmul strided output: maxdiff = %.3e\n", md);
        DV_CHECK(md < 1e-5 && untouched);
    }
}

static void test_norms(dv_backend *be) {
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {5, 64}, {2, 4097}};
    for (int si = 0; si < 4; si++)
        for (int di = 0; di < 3; di++) {
            const dv_dtype dt = (dv_dtype[]){DV_DTYPE_F32, DV_DTYPE_BF16, DV_DTYPE_F16}[di];
            const int64_t M = shapes[si][0], D = shapes[si][1];
            float *x = malloc((size_t)(M * D) * 4), *y = malloc((size_t)(M * D) * 4);
            double *we = malloc((size_t)D * 8), *bb = malloc((size_t)D * 8), *ref = malloc((size_t)(M * D) * 8);
            dv_test_rand(x, (size_t)(M * D), -3, 3, &seed);
            void *w = make_weights(dt, (size_t)D, we), *b = make_weights(dt, (size_t)D, bb);
            dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, M, D), ty = dv_tensor_2d(DV_DTYPE_F32, y, M, D),
                      tw = dv_tensor_1d(dt, w, D), tb = dv_tensor_1d(dt, b, D);
            char label[96];
            // RMSNorm
            for (int64_t m = 0; m < M; m++) {
                double ss = 0;
                for (int64_t d = 0; d < D; d++) ss += (double)x[m * D + d] * x[m * D + d];
                for (int64_t d = 0; d < D; d++) ref[m * D + d] = x[m * D + d] / sqrt(ss / D + 1e-5) * we[d];
            }
            poison(y, (size_t)(M * D));
            be->ops->rms_norm(be, &ty, &tx, &tw, 1e-5f);
            snprintf(label, sizeof label, "rms_norm %s (%lld, %lld)", dv_dtype_name(dt), (long long)M, (long long)D);
            dv_test_close_f64(label, y, ref, (size_t)(M * D), 1e-5);
            // LayerNorm
            for (int64_t m = 0; m < M; m++) {
                double s = 0, ss = 0;
                for (int64_t d = 0; d < D; d++) s += x[m * D + d];
                double mean = s / D;
                for (int64_t d = 0; d < D; d++) ss += (x[m * D + d] - mean) * (x[m * D + d] - mean);
                for (int64_t d = 0; d < D; d++)
                    ref[m * D + d] = (x[m * D + d] - mean) / sqrt(ss / D + 1e-6) * we[d] + bb[d];
            }
            poison(y, (size_t)(M * D));
            be->ops->layer_norm(be, &ty, &tx, &tw, &tb, 1e-6f);
            snprintf(label, sizeof label, "layer_norm %s (%lld, %lld)", dv_dtype_name(dt), (long long)M, (long long)D);
            dv_test_close_f64(label, y, ref, (size_t)(M * D), 1e-5);
            free(x); free(y); free(we); free(bb); free(ref); free(w); free(b);
        }
}

// Independent reference of HF's inverse frequencies (in double) for default / linear / llama3.
static void ref_inv_freq(double *f, int D, double theta, const char *type, double factor, double lo, double hi,
                         double old) {
    for (int i = 0; i < D / 2; i++) {
        double x = 1.0 / pow(theta, (2.0 * i) / D);
        if (!strcmp(type, "linear")) x /= factor;
        if (!strcmp(type, "llama3")) {
            double wl = 2 * M_PI / x, low_wl = old / lo, high_wl = old / hi;
            if (wl > low_wl) x = x / factor;
            else if (wl >= high_wl) {
                double sm = (old / wl - lo) / (hi - lo);
                x = (1 - sm) * x / factor + sm * x;
            }
        }
        f[i] = x;
    }
}

static void test_rope(dv_backend *be) {
    const struct { const char *type; int D; double theta, factor, lo, hi, old; } cases[] = {
        {"default", 16, 10000, 1, 0, 0, 0},  {"default", 128, 500000, 1, 0, 0, 0},
        {"linear", 64, 10000, 4, 0, 0, 0},   {"llama3", 16, 10000, 8, 1, 4, 64},
        {"llama3", 128, 500000, 8, 1, 4, 8192},
    };
    for (int ci = 0; ci < 5; ci++) {
        const int D = cases[ci].D, T = 9, H = 3;
        dv_rope_scaling sc = {cases[ci].type, cases[ci].factor, cases[ci].lo, cases[ci].hi, cases[ci].old};
        dv_rope r;
        DV_CHECK(dv_rope_init(&r, D, cases[ci].theta, &sc) == 0);
        double f[512], maxrel = 0;
        ref_inv_freq(f, D, cases[ci].theta, cases[ci].type, cases[ci].factor, cases[ci].lo, cases[ci].hi, cases[ci].old);
        for (int i = 0; i < D / 2; i++) maxrel = fmax(maxrel, fabs(r.inv_freq[i] - f[i]) / f[i]);
        printf("rope %s D=%d: inv_freq max rel diff %.2e\n", cases[ci].type, D, maxrel);
        DV_CHECK(maxrel < 1e-6);
        int32_t pos[9] = {0, 1, 2, 7, 100, 1000, 4095, 30000, 131071};
        float *x = malloc((size_t)(T * H * D) * 4), *x0 = malloc((size_t)(T * H * D) * 4);
        double *ref = malloc((size_t)(T * H * D) * 8);
        dv_test_rand(x0, (size_t)(T * H * D), -1, 1, &seed);
        memcpy(x, x0, (size_t)(T * H * D) * 4);
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < D / 2; i++) {
                    // angle from the F32 frequency, as HF multiplies pos * inv_freq in float32
                    double ang = (double)((float)pos[t] * r.inv_freq[i]);
                    const float *v = x0 + (t * H + h) * D;
                    ref[(t * H + h) * D + i] = v[i] * cos(ang) - v[i + D / 2] * sin(ang);
                    ref[(t * H + h) * D + i + D / 2] = v[i + D / 2] * cos(ang) + v[i] * sin(ang);
                }
        dv_tensor tx = dv_tensor_3d(DV_DTYPE_F32, x, T, H, D), tp = dv_tensor_1d(DV_DTYPE_I32, pos, T);
        be->ops->rope(be, &tx, &tp, &r);
        char label[64];
        snprintf(label, sizeof label, "rope %s D=%d", cases[ci].type, D);
        dv_test_close_f64(label, x, ref, (size_t)(T * H * D), 1e-6);
        free(x); free(x0); free(ref);
    }
    dv_rope r;
    dv_rope_scaling bad = {"yarn", 2, 0, 0, 0};
    DV_CHECK(dv_rope_init(&r, 16, 10000, &bad) == DV_EUNSUPPORTED);
}

static double ref_act(double x, dv_act a) {
    switch (a) {
    case DV_ACT_SILU: return x / (1 + exp(-x));
    case DV_ACT_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case DV_ACT_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    default: return x / (1 + exp(-1.702 * x));
    }
}

static void test_elementwise(dv_backend *be) {
    const int64_t n = 1031;
    float *a = malloc(n * 4), *b = malloc(n * 4), *y = malloc(n * 4);
    double *ref = malloc(n * 8);
    dv_test_rand(a, n, -8, 8, &seed);
    dv_test_rand(b, n, -2, 2, &seed);
    dv_tensor ta = dv_tensor_1d(DV_DTYPE_F32, a, n), tb = dv_tensor_1d(DV_DTYPE_F32, b, n),
              ty = dv_tensor_1d(DV_DTYPE_F32, y, n);
    const char *names[] = {"silu", "gelu_erf", "gelu_tanh", "quick_gelu"};
    for (int k = 0; k < DV_ACT_COUNT; k++) {
        for (int64_t i = 0; i < n; i++) ref[i] = ref_act(a[i], (dv_act)k);
        poison(y, n);
        be->ops->act(be, &ty, &ta, (dv_act)k);
        dv_test_close_f64(names[k], y, ref, n, 1e-6);
    }
    for (int64_t i = 0; i < n; i++) ref[i] = ref_act(a[i], DV_ACT_SILU) * b[i];
    poison(y, n);
    be->ops->swiglu(be, &ty, &ta, &tb);
    dv_test_close_f64("swiglu", y, ref, n, 1e-6);
    for (int64_t i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    poison(y, n);
    be->ops->add(be, &ty, &ta, &tb);
    dv_test_close_f64("add", y, ref, n, 1e-7);
    for (int64_t i = 0; i < n; i++) ref[i] = (double)a[i] * b[i];
    poison(y, n);
    be->ops->mul(be, &ty, &ta, &tb);
    dv_test_close_f64("mul", y, ref, n, 1e-7);
    for (int64_t i = 0; i < n; i++) ref[i] = (double)a[i] * 0.37f;
    poison(y, n);
    be->ops->scale(be, &ty, &ta, 0.37f);
    dv_test_close_f64("scale", y, ref, n, 1e-7);
    // softmax over rows of (7, 147)
    dv_tensor tx2 = dv_tensor_2d(DV_DTYPE_F32, a, 7, 147), ty2 = dv_tensor_2d(DV_DTYPE_F32, y, 7, 147);
    for (int m = 0; m < 7; m++) {
        double mx = -1e300, s = 0;
        for (int i = 0; i < 147; i++) mx = fmax(mx, a[m * 147 + i]);
        for (int i = 0; i < 147; i++) s += exp(a[m * 147 + i] - mx);
        for (int i = 0; i < 147; i++) ref[m * 147 + i] = exp(a[m * 147 + i] - mx) / s;
    }
    poison(y, n);
    be->ops->softmax(be, &ty2, &tx2);
    dv_test_close_f64("softmax", y, ref, 7 * 147, 1e-6);
    // convert round trips: F32 -> BF16 -> F32 equals the scalar conversion
    uint16_t *h = malloc(n * 2);
    dv_tensor th = dv_tensor_1d(DV_DTYPE_BF16, h, n);
    be->ops->convert(be, &th, &ta);
    poison(y, n);
    be->ops->convert(be, &ty, &th);
    for (int64_t i = 0; i < n; i++) ref[i] = dv_bf16_to_f32(dv_f32_to_bf16(a[i]));
    dv_test_close_f64("convert f32->bf16->f32", y, ref, n, 1e-12);
    th.dtype = DV_DTYPE_F16;
    be->ops->convert(be, &th, &ta);
    poison(y, n);
    be->ops->convert(be, &ty, &th);
    for (int64_t i = 0; i < n; i++) ref[i] = dv_f16_to_f32(dv_f32_to_f16(a[i]));
    dv_test_close_f64("convert f32->f16->f32", y, ref, n, 1e-12);
    // bf16 rounding is round-to-nearest-even: 1 + 2^-8 (a tie) rounds down to 1, 1 + 3*2^-8 rounds up
    DV_CHECK(dv_bf16_to_f32(dv_f32_to_bf16(1.00390625f)) == 1.0f);
    DV_CHECK(dv_bf16_to_f32(dv_f32_to_bf16(1.01171875f)) == 1.015625f);
    // embedding rows from a BF16 table
    {
        const int64_t V = 11, D = 9, T = 5;
        double *te = malloc(V * D * 8);
        void *tab = make_weights(DV_DTYPE_BF16, V * D, te);
        int32_t ids[5] = {0, 10, 3, 3, 7};
        dv_tensor tt = dv_tensor_2d(DV_DTYPE_BF16, tab, V, D), ti = dv_tensor_1d(DV_DTYPE_I32, ids, T),
                  te2 = dv_tensor_2d(DV_DTYPE_F32, y, T, D);
        poison(y, T * D);
        be->ops->embed(be, &te2, &tt, &ti);
        for (int64_t t = 0; t < T; t++)
            for (int64_t d = 0; d < D; d++) ref[t * D + d] = te[ids[t] * D + d];
        dv_test_close_f64("embed bf16", y, ref, T * D, 1e-12);
        free(te);
        free(tab);
    }
    free(a); free(b); free(y); free(ref); free(h);
}

// Naive attention in double: explicit softmax over every visible key.
static void ref_attention(double *out, const float *q, const float *k, const float *v, int64_t Tq, int64_t Hq,
                          int64_t Tk, int64_t Hkv, int64_t D, size_t k_tok, size_t k_head, int causal, int64_t pos0,
                          double scale) {
    double *s = malloc((size_t)Tk * 8);
    for (int64_t t = 0; t < Tq; t++)
        for (int64_t h = 0; h < Hq; h++) {
            int64_t g = h / (Hq / Hkv), n = causal ? (pos0 + t + 1 < Tk ? pos0 + t + 1 : Tk) : Tk;
            double mx = -1e300, sum = 0;
            for (int64_t j = 0; j < n; j++) {
                double d = 0;
                for (int64_t i = 0; i < D; i++) d += (double)q[(t * Hq + h) * D + i] * k[j * k_tok + g * k_head + i];
                s[j] = d * scale;
                mx = fmax(mx, s[j]);
            }
            for (int64_t j = 0; j < n; j++) sum += (s[j] = exp(s[j] - mx));
            for (int64_t i = 0; i < D; i++) {
                double o = 0;
                for (int64_t j = 0; j < n; j++) o += s[j] * v[j * k_tok + g * k_head + i];
                out[(t * Hq + h) * D + i] = o / sum;
            }
        }
    free(s);
}

static void test_attention(dv_backend *be) {
    const struct { int64_t Tq, Hq, Tk, Hkv, D, pos0; int causal, head_major; } cases[] = {
        {1, 4, 1, 4, 16, 0, 1, 0},      {7, 8, 7, 2, 16, 0, 1, 0},     {5, 8, 200, 2, 64, 195, 1, 0},
        {3, 4, 130, 1, 32, 60, 1, 1},   {9, 4, 9, 4, 40, 0, 0, 0},     {1, 32, 513, 8, 128, 512, 1, 1},
        {65, 2, 65, 2, 8, 0, 1, 0},
    };
    for (int ci = 0; ci < 7; ci++) {
        const int64_t Tq = cases[ci].Tq, Hq = cases[ci].Hq, Tk = cases[ci].Tk, Hkv = cases[ci].Hkv, D = cases[ci].D;
        float *q = malloc((size_t)(Tq * Hq * D) * 4), *o = malloc((size_t)(Tq * Hq * D) * 4);
        // head-major layout (Hkv, Tk, D) viewed as (Tk, Hkv, D) through the strides
        float *k = malloc((size_t)(Tk * Hkv * D) * 4), *v = malloc((size_t)(Tk * Hkv * D) * 4);
        double *ref = malloc((size_t)(Tq * Hq * D) * 8);
        dv_test_rand(q, (size_t)(Tq * Hq * D), -2, 2, &seed);
        dv_test_rand(k, (size_t)(Tk * Hkv * D), -2, 2, &seed);
        dv_test_rand(v, (size_t)(Tk * Hkv * D), -1, 1, &seed);
        size_t k_tok = cases[ci].head_major ? (size_t)D : (size_t)(Hkv * D);
        size_t k_head = cases[ci].head_major ? (size_t)(Tk * D) : (size_t)D;
        dv_tensor tq = dv_tensor_3d(DV_DTYPE_F32, q, Tq, Hq, D), to = dv_tensor_3d(DV_DTYPE_F32, o, Tq, Hq, D);
        dv_tensor tk = dv_tensor_3d(DV_DTYPE_F32, k, Tk, Hkv, D), tv = dv_tensor_3d(DV_DTYPE_F32, v, Tk, Hkv, D);
        tk.nb[0] = tv.nb[0] = k_tok * 4;
        tk.nb[1] = tv.nb[1] = k_head * 4;
        double scale = 1.0 / sqrt((double)D);
        dv_attn_params p = {.scale = (float)scale, .causal = cases[ci].causal, .q_pos0 = cases[ci].pos0};
        ref_attention(ref, q, k, v, Tq, Hq, Tk, Hkv, D, k_tok, k_head, p.causal, p.q_pos0, scale);
        poison(o, (size_t)(Tq * Hq * D));
        be->ops->attention(be, &to, &tq, &tk, &tv, &p);
        char label[128];
        snprintf(label, sizeof label, "attention Tq=%lld Hq=%lld Tk=%lld Hkv=%lld D=%lld pos0=%lld %s%s", (long long)Tq,
                 (long long)Hq, (long long)Tk, (long long)Hkv, (long long)D, (long long)p.q_pos0,
                 p.causal ? "causal" : "full", cases[ci].head_major ? " head-major" : "");
        dv_test_close_f64(label, o, ref, (size_t)(Tq * Hq * D), 1e-5);
        free(q); free(o); free(k); free(v); free(ref);
    }
}

int main(void) {
    for (int threads = 1; threads <= 2; threads++) {
        dv_backend *be = dv_backend_cpu_init(threads);
        DV_CHECK(be != NULL);
        if (!be) break;
        printf("== CPU backend, %d thread(s)\n", threads);
        test_matmul(be);
        test_norms(be);
        test_rope(be);
        test_elementwise(be);
        test_attention(be);
        dv_backend_free(be);
    }
    int st = 0;
    dv_backend *cuda = dv_backend_cuda_init(0, &st);
    DV_CHECK(cuda == NULL && st < 0 && dv_error_message()[0]); // CUDA ops are covered by test_cuda_*
    return dv_test_finish();
}
