// test_cpu_ops.c: the CPU backend's matmul, norms, activations, SwiGLU, add, embed, gather_sum, the dtype
// conversions and pool2d against naive float64 references written here, on random inputs over several shapes
// (odd sizes included), weights in F32/F16/BF16, strided rows, 1 and 2 threads. Outputs are
// poisoned with NaN first, so an element an op forgets to write fails; row padding is checked
// untouched. (RoPE: test_cpu_rope.c; attention: test_cpu_attention.c.)
#include "tests/cpu_ops_ref.h"

static const dv_dtype wdts[3] = {DV_DTYPE_F32, DV_DTYPE_BF16, DV_DTYPE_F16};

// Checks a strided (M, N) F32 result against a dense double reference and that the padding
// between rows (ld > N) still holds NaN.
static void check_rows(const char *label, const float *y, int64_t ld, const double *ref, int64_t M, int64_t N,
                       double tol) {
    float *dense = ref_xmalloc((size_t)(M * N) * sizeof(float));
    int pad_ok = 1;
    for (int64_t m = 0; m < M; m++) {
        memcpy(dense + m * N, y + m * ld, (size_t)N * sizeof(float));
        for (int64_t j = N; j < ld && m + 1 < M; j++) pad_ok &= isnan(y[m * ld + j]);
    }
    dv_test_close_f64(label, dense, ref, (size_t)(M * N), tol);
    DV_CHECK_MSG(pad_ok, "%s: wrote into the row padding", label);
    free(dense);
}

// ---- matmul: y = x @ w^T + b -----------------------------------------------------------------

static void matmul_case(dv_backend *be, dv_dtype wdt, dv_dtype bdt, int64_t M, int64_t K, int64_t N, int with_bias,
                        int64_t x_pad, int64_t y_pad) {
    const int64_t ldx = K + x_pad, ldy = N + y_pad;
    double *xe = ref_xmalloc((size_t)(M * ldx) * 8), *we = ref_xmalloc((size_t)(N * K) * 8);
    double *bexact = ref_xmalloc((size_t)N * 8), *ref = ref_xmalloc((size_t)(M * N) * 8);
    float *x = ref_rand_f32((size_t)(M * ldx), -1, 1, xe);
    void *w = ref_make_weights(wdt, (size_t)(N * K), we, -1, 1);
    void *b = ref_make_weights(bdt, (size_t)N, bexact, -1, 1);
    float *y = ref_xmalloc((size_t)(M * ldy) * sizeof(float));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = with_bias ? bexact[n] : 0.0;
            for (int64_t k = 0; k < K; k++) s += xe[m * ldx + k] * we[n * K + k];
            ref[m * N + n] = s;
        }
    ref_poison(y, (size_t)(M * ldy));
    dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, M, K), ty = dv_tensor_2d(DV_DTYPE_F32, y, M, N);
    dv_tensor tw = dv_tensor_2d(wdt, w, N, K), tb = dv_tensor_1d(bdt, b, N);
    tx.nb[0] = (size_t)ldx * sizeof(float);
    ty.nb[0] = (size_t)ldy * sizeof(float);
    be->ops->matmul(be, &ty, &tx, &tw, with_bias ? &tb : NULL);
    char label[160];
    snprintf(label, sizeof label, "matmul t=%d w=%s M=%lld K=%lld N=%lld bias=%s ldx=%lld ldy=%lld", be->n_threads,
             dv_dtype_name(wdt), (long long)M, (long long)K, (long long)N, with_bias ? dv_dtype_name(bdt) : "-",
             (long long)ldx, (long long)ldy);
    check_rows(label, y, ldy, ref, M, N, 1e-5);
    free(xe), free(we), free(bexact), free(ref), free(x), free(w), free(b), free(y);
}

static void test_matmul(void) {
    const int64_t Ms[] = {1, 3, 8, 9, 65}, Ks[] = {1, 7, 33, 257}, Ns[] = {1, 5, 300};
    int c = 0;
    for (int bi = 0; bi < 2; bi++)
        for (int di = 0; di < 3; di++)
            for (int mi = 0; mi < 5; mi++)
                for (int ki = 0; ki < 4; ki++)
                    for (int ni = 0; ni < 3; ni++, c++) {
                        // every third case strided; bias in a rotating dtype on every other case
                        const int64_t pad = c % 3 == 0 ? 3 : 0;
                        matmul_case(ref_backends[bi], wdts[di], wdts[(di + c) % 3], Ms[mi], Ks[ki], Ns[ni], c % 2,
                                    pad, 2 * pad);
                    }
    // model-sized rows: the 32-lane dot loop, several sgemm tiles, the scratch reused then grown
    for (int bi = 0; bi < 2; bi++)
        for (int di = 1; di < 3; di++) {
            matmul_case(ref_backends[bi], wdts[di], DV_DTYPE_F32, 1, 4096, 64, 1, 0, 0);
            matmul_case(ref_backends[bi], wdts[di], DV_DTYPE_F32, 4, 4099, 40, 0, 5, 0);
            matmul_case(ref_backends[bi], wdts[di], DV_DTYPE_F32, 17, 1000, 600, 1, 0, 0);
            matmul_case(ref_backends[bi], wdts[di], DV_DTYPE_F32, 33, 2048, 200, 0, 0, 7);
            // one row, K a multiple of 32: bf16 weights take bf16 dot products under "avx512bf16"
            // (rows in chunks of 16, 4 at a time: the tails; K % 64 == 32: the odd chunk)
            matmul_case(ref_backends[bi], wdts[di], DV_DTYPE_BF16, 1, 768, 301, 1, 0, 0);
            matmul_case(ref_backends[bi], wdts[di], DV_DTYPE_F32, 1, 96, 7, 0, 3, 0);
        }
}

// ---- RMSNorm / LayerNorm -------------------------------------------------------------------------

static void norm_case(dv_backend *be, int layer, dv_dtype wdt, int64_t M, int64_t D, int64_t pad, int in_place,
                      int with_bias) {
    const int64_t ld = D + pad;
    const float eps = layer ? 1e-6f : 1e-5f;
    double *xe = ref_xmalloc((size_t)(M * ld) * 8), *we = ref_xmalloc((size_t)D * 8), *bexact = ref_xmalloc((size_t)D * 8);
    double *ref = ref_xmalloc((size_t)(M * D) * 8);
    // LayerNorm inputs off-centre, so the mean matters
    float *x = ref_rand_f32((size_t)(M * ld), layer ? 1.0f : -2.0f, layer ? 5.0f : 2.0f, xe);
    void *w = ref_make_weights(wdt, (size_t)D, we, -2, 2), *b = ref_make_weights(wdt, (size_t)D, bexact, -1, 1);
    for (int64_t m = 0; m < M; m++) {
        const double *xr = xe + m * ld;
        if (!layer) {
            double ss = 0;
            for (int64_t d = 0; d < D; d++) ss += xr[d] * xr[d];
            const double r = 1.0 / sqrt(ss / (double)D + eps);
            for (int64_t d = 0; d < D; d++) ref[m * D + d] = xr[d] * r * we[d];
        } else {
            double s = 0, ss = 0;
            for (int64_t d = 0; d < D; d++) s += xr[d];
            const double mean = s / (double)D;
            for (int64_t d = 0; d < D; d++) ss += (xr[d] - mean) * (xr[d] - mean);
            const double r = 1.0 / sqrt(ss / (double)D + eps);
            for (int64_t d = 0; d < D; d++)
                ref[m * D + d] = (xr[d] - mean) * r * we[d] + (with_bias ? bexact[d] : 0.0);
        }
    }
    float *y = in_place ? x : ref_xmalloc((size_t)(M * ld) * sizeof(float));
    if (!in_place) ref_poison(y, (size_t)(M * ld));
    else
        for (int64_t m = 0; m + 1 < M; m++)
            for (int64_t d = D; d < ld; d++) x[m * ld + d] = NAN;
    dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, M, D), ty = dv_tensor_2d(DV_DTYPE_F32, y, M, D);
    dv_tensor tw = dv_tensor_1d(wdt, w, D), tb = dv_tensor_1d(wdt, b, D);
    tx.nb[0] = ty.nb[0] = (size_t)ld * sizeof(float);
    if (layer) be->ops->layer_norm(be, &ty, &tx, &tw, with_bias ? &tb : NULL, eps);
    else be->ops->rms_norm(be, &ty, &tx, &tw, eps);
    char label[160];
    snprintf(label, sizeof label, "%s t=%d w=%s M=%lld D=%lld ld=%lld%s%s", layer ? "layer_norm" : "rms_norm",
             be->n_threads, dv_dtype_name(wdt), (long long)M, (long long)D, (long long)ld, in_place ? " in-place" : "",
             layer && !with_bias ? " no-bias" : "");
    check_rows(label, y, ld, ref, M, D, 1e-5);
    free(xe), free(we), free(bexact), free(ref), free(x), free(w), free(b);
    if (!in_place) free(y);
}

static void test_norms(void) {
    const int64_t Ms[] = {1, 3, 65}, Ds[] = {1, 7, 33, 257, 4096};
    int c = 0;
    for (int layer = 0; layer < 2; layer++)
        for (int di = 0; di < 3; di++)
            for (int mi = 0; mi < 3; mi++)
                for (int ki = 0; ki < 5; ki++, c++)
                    norm_case(ref_backends[c % 2], layer, wdts[di], Ms[mi], Ds[ki], c % 4 == 1 ? 5 : 0, c % 5 == 2,
                              c % 3 != 0);
}

// ---- activations, SwiGLU, add / mul / scale -------------------------------------------------------

static double ref_act(double x, dv_act a) {
    switch (a) {
    case DV_ACT_SILU: return x / (1.0 + exp(-x));
    case DV_ACT_GELU_ERF: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case DV_ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    default: return x / (1.0 + exp(-1.702 * x));
    }
}

static const char *act_names[DV_ACT_COUNT] = {"silu", "gelu_erf", "gelu_tanh", "quick_gelu"};

static void test_elementwise(void) {
    const int64_t ns[] = {1, 7, 1000, 4099};
    char label[128];
    for (int ni = 0; ni < 4; ni++) {
        const int64_t n = ns[ni];
        dv_backend *be = ref_backends[ni % 2];
        double *ae = ref_xmalloc((size_t)n * 8), *bexact = ref_xmalloc((size_t)n * 8), *ref = ref_xmalloc((size_t)n * 8);
        float *a = ref_rand_f32((size_t)n, -8, 8, ae), *b = ref_rand_f32((size_t)n, -3, 3, bexact);
        float *y = ref_xmalloc((size_t)n * sizeof(float)), *a2 = ref_xmalloc((size_t)n * sizeof(float));
        dv_tensor ta = dv_tensor_1d(DV_DTYPE_F32, a, n), tb = dv_tensor_1d(DV_DTYPE_F32, b, n);
        dv_tensor ty = dv_tensor_1d(DV_DTYPE_F32, y, n), ta2 = dv_tensor_1d(DV_DTYPE_F32, a2, n);
        // a 2-d view of the same data: ops are shape-agnostic
        dv_tensor ty2 = ty;
        if (n % 7 == 0) ty2 = ta2 = dv_tensor_2d(DV_DTYPE_F32, a2, 7, n / 7), ty2.data = y;
        for (int k = 0; k < DV_ACT_COUNT; k++) {
            for (int64_t i = 0; i < n; i++) ref[i] = ref_act(ae[i], (dv_act)k);
            ref_poison(y, (size_t)n);
            be->ops->act(be, &ty, &ta, (dv_act)k);
            snprintf(label, sizeof label, "act %s t=%d n=%lld", act_names[k], be->n_threads, (long long)n);
            dv_test_close_f64(label, y, ref, (size_t)n, 1e-5);
            // in place (y aliases x)
            memcpy(a2, a, (size_t)n * sizeof(float));
            be->ops->act(be, &ta2, &ta2, (dv_act)k);
            snprintf(label, sizeof label, "act %s t=%d n=%lld in-place", act_names[k], be->n_threads, (long long)n);
            dv_test_close_f64(label, a2, ref, (size_t)n, 1e-5);
        }
        for (int64_t i = 0; i < n; i++) ref[i] = ae[i] / (1.0 + exp(-ae[i])) * bexact[i];
        memcpy(a2, a, (size_t)n * sizeof(float));
        dv_tensor tg = dv_tensor_1d(DV_DTYPE_F32, a2, n);
        be->ops->swiglu(be, &tg, &tg, &tb); // y aliases gate, as the Llama MLP calls it
        snprintf(label, sizeof label, "swiglu t=%d n=%lld in-place", be->n_threads, (long long)n);
        dv_test_close_f64(label, a2, ref, (size_t)n, 1e-5);
        ref_poison(y, (size_t)n);
        be->ops->swiglu(be, &ty, &ta, &tb);
        snprintf(label, sizeof label, "swiglu t=%d n=%lld", be->n_threads, (long long)n);
        dv_test_close_f64(label, y, ref, (size_t)n, 1e-5);

        for (int64_t i = 0; i < n; i++) ref[i] = ae[i] + bexact[i];
        ref_poison(y, (size_t)n);
        be->ops->add(be, &ty, &ta, &tb);
        snprintf(label, sizeof label, "add t=%d n=%lld", be->n_threads, (long long)n);
        dv_test_close_f64(label, y, ref, (size_t)n, 1e-7);
        memcpy(a2, a, (size_t)n * sizeof(float));
        be->ops->add(be, &tg, &tg, &tb);
        snprintf(label, sizeof label, "add t=%d n=%lld in-place", be->n_threads, (long long)n);
        dv_test_close_f64(label, a2, ref, (size_t)n, 1e-7);

        (void)ty2;
        free(ae), free(bexact), free(ref), free(a), free(b), free(y), free(a2);
    }
}

// ---- embed ---------------------------------------------------------------------------------------

static void test_embed(void) {
    const int64_t V = 50, Ds[] = {1, 33, 4096}, Ts[] = {1, 7, 65};
    char label[128];
    for (int di = 0; di < 3; di++)
        for (int k = 0; k < 3; k++) {
            const int64_t D = Ds[k], T = Ts[k], ld = D + (k == 1 ? 2 : 0);
            dv_backend *be = ref_backends[(di + k) % 2];
            double *te = ref_xmalloc((size_t)(V * D) * 8), *ref = ref_xmalloc((size_t)(T * D) * 8);
            void *table = ref_make_weights(wdts[di], (size_t)(V * D), te, -1, 1);
            int32_t *ids = ref_xmalloc((size_t)T * 4);
            for (int64_t t = 0; t < T; t++) ids[t] = t == 0 ? (int32_t)(V - 1) : (int32_t)((t * 17 + k) % V);
            for (int64_t t = 0; t < T; t++)
                for (int64_t d = 0; d < D; d++) ref[t * D + d] = te[ids[t] * D + d];
            float *y = ref_xmalloc((size_t)(T * ld) * 4);
            ref_poison(y, (size_t)(T * ld));
            dv_tensor ty = dv_tensor_2d(DV_DTYPE_F32, y, T, D), tt = dv_tensor_2d(wdts[di], table, V, D);
            dv_tensor ti = dv_tensor_1d(DV_DTYPE_I32, ids, T);
            ty.nb[0] = (size_t)ld * 4;
            be->ops->embed(be, &ty, &tt, &ti);
            snprintf(label, sizeof label, "embed t=%d table=%s T=%lld D=%lld ld=%lld", be->n_threads,
                     dv_dtype_name(wdts[di]), (long long)T, (long long)D, (long long)ld);
            check_rows(label, y, ld, ref, T, D, 1e-15); // a lookup is exact
            free(te), free(ref), free(table), free(ids), free(y);
        }
}

// ---- gather_sum: the weighted gather of a mixture of experts' output rows -----------------------

static void test_gather_sum(void) {
    const int64_t shapes[][3] = {{1, 1, 1}, {7, 3, 33}, {65, 9, 64}, {4, 1, 4097}}; // T, k, N
    char label[128];
    for (int si = 0; si < 4; si++) {
        const int64_t T = shapes[si][0], k = shapes[si][1], N = shapes[si][2], R = T * k + 3;
        dv_backend *be = ref_backends[si % 2];
        float *x = ref_xmalloc((size_t)(R * N) * 4), *w = ref_xmalloc((size_t)(T * k) * 4),
              *y = ref_xmalloc((size_t)(T * N) * 4);
        int32_t *idx = ref_xmalloc((size_t)(T * k) * 4);
        double *ref = ref_xmalloc((size_t)(T * N) * 8);
        uint64_t s = 1234 + (uint64_t)si;
        dv_test_rand(x, (size_t)(R * N), -1, 1, &s);
        dv_test_rand(w, (size_t)(T * k), 0, 1, &s);
        for (int64_t i = 0; i < T * k; i++) idx[i] = (int32_t)((i * 7 + si) % R); // repeats across tokens
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                for (int64_t j = 0; j < k; j++) acc += (double)w[t * k + j] * x[(int64_t)idx[t * k + j] * N + n];
                ref[t * N + n] = acc;
            }
        ref_poison(y, (size_t)(T * N));
        dv_tensor ty = dv_tensor_2d(DV_DTYPE_F32, y, T, N), tx = dv_tensor_2d(DV_DTYPE_F32, x, R, N);
        dv_tensor ti = dv_tensor_2d(DV_DTYPE_I32, idx, T, k), tw = dv_tensor_2d(DV_DTYPE_F32, w, T, k);
        be->ops->gather_sum(be, &ty, &tx, &ti, &tw);
        snprintf(label, sizeof label, "gather_sum t=%d T=%lld k=%lld N=%lld", be->n_threads, (long long)T,
                 (long long)k, (long long)N);
        check_rows(label, y, N, ref, T, N, 1e-6);
        free(x), free(w), free(y), free(idx), free(ref);
    }
}

// ---- pool2d: average / max pooling and conv windows of token grids ------------------------------

static void test_pool2d(void) {
    // (frames, grid, stride, channels): odd grids whose last row/column is dropped, stride 1 and = grid
    const int cases[][4] = {{1, 4, 2, 3}, {3, 5, 2, 7}, {2, 24, 2, 33}, {1, 7, 3, 1}, {2, 6, 1, 5}, {1, 3, 3, 4}};
    char label[128];
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int mode = DV_POOL_AVG; mode <= DV_POOL_WINDOWS; mode++) {
            const int B = cases[ci][0], g = cases[ci][1], s = cases[ci][2], C = cases[ci][3], pg = g / s;
            const int64_t rows = (int64_t)B * pg * pg, width = mode == DV_POOL_WINDOWS ? (int64_t)C * s * s : C;
            dv_backend *be = ref_backends[(ci + (size_t)mode) % 2];
            double *xe = ref_xmalloc((size_t)B * g * g * C * 8);
            float *x = ref_rand_f32((size_t)B * g * g * C, -2, 2, xe);
            double *ref = ref_xmalloc((size_t)(rows * width) * 8);
            for (int64_t r = 0; r < rows; r++) {
                const int64_t b = r / (pg * pg), oy = r / pg % pg, ox = r % pg;
                for (int64_t ch = 0; ch < C; ch++) {
                    double sum = 0, mx = -INFINITY;
                    for (int ky = 0; ky < s; ky++)
                        for (int kx = 0; kx < s; kx++) {
                            const double v = xe[((b * g + oy * s + ky) * g + ox * s + kx) * C + ch];
                            sum += v;
                            mx = v > mx ? v : mx;
                            if (mode == DV_POOL_WINDOWS) ref[r * width + (ch * s + ky) * s + kx] = v;
                        }
                    if (mode == DV_POOL_AVG) ref[r * width + ch] = sum / (s * s);
                    if (mode == DV_POOL_MAX) ref[r * width + ch] = mx;
                }
            }
            float *y = ref_xmalloc((size_t)(rows * width) * 4);
            ref_poison(y, (size_t)(rows * width));
            dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, (int64_t)B * g * g, C), ty = dv_tensor_2d(DV_DTYPE_F32, y, rows, width);
            be->ops->pool2d(be, &ty, &tx, g, s, (dv_pool)mode);
            snprintf(label, sizeof label, "pool2d %s t=%d B=%d g=%d s=%d C=%d",
                     mode == DV_POOL_AVG ? "avg" : mode == DV_POOL_MAX ? "max" : "windows", be->n_threads, B, g, s, C);
            check_rows(label, y, width, ref, rows, width, mode == DV_POOL_AVG ? 1e-6 : 1e-15);
            free(x), free(xe), free(ref), free(y);
        }
    // max pooling lets a NaN through, as torch does
    float x[16], y[4];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    x[5] = NAN;
    dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, 16, 1), ty = dv_tensor_2d(DV_DTYPE_F32, y, 4, 1);
    ref_backends[0]->ops->pool2d(ref_backends[0], &ty, &tx, 4, 2, DV_POOL_MAX);
    DV_CHECK_MSG(isnan(y[0]) && y[1] == 7 && y[2] == 13 && y[3] == 15, "pool2d max: NaN window gives %g, others %g %g %g",
                 y[0], y[1], y[2], y[3]);
}

// pool2d bilinear (LLaVA-OneVision): torch's F.interpolate(size = ceil(g / s), "bilinear",
// align_corners False) blended in float64; odd and even grids, stride 1 (identity), a 1-wide grid.
static void test_pool2d_bilinear(void) {
    const int cases[][4] = {{1, 7, 2, 3}, {2, 27, 2, 5}, {3, 4, 2, 8}, {1, 5, 1, 2}, {2, 9, 3, 4}, {1, 1, 1, 3}, {1, 24, 2, 17}};
    char label[128];
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int B = cases[ci][0], g = cases[ci][1], s = cases[ci][2], C = cases[ci][3], pg = (g + s - 1) / s;
        const int64_t rows = (int64_t)B * pg * pg;
        dv_backend *be = ref_backends[ci % 2];
        double *xe = ref_xmalloc((size_t)B * g * g * C * 8);
        float *x = ref_rand_f32((size_t)B * g * g * C, -2, 2, xe);
        double *ref = ref_xmalloc((size_t)(rows * C) * 8);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t b = r / ((int64_t)pg * pg);
            const int o[2] = {(int)(r / pg % pg), (int)(r % pg)};
            int i0[2], i1[2];
            double l[2];
            for (int a = 0; a < 2; a++) { // (y, x): source coordinate, clamped below at 0; the op's
                // definition (torch's) rounds the scale and the coordinate to float, the blend is float64 here
                double src = (float)((float)g / (float)pg * ((float)o[a] + 0.5f) - 0.5f);
                if (src < 0) src = 0;
                i0[a] = (int)floor(src);
                i1[a] = i0[a] + 1 < g ? i0[a] + 1 : g - 1;
                l[a] = src - i0[a];
            }
            for (int64_t ch = 0; ch < C; ch++) {
#define XE(yy, xx) xe[((b * g + (yy)) * g + (xx)) * C + ch]
                ref[r * C + ch] = (1 - l[0]) * ((1 - l[1]) * XE(i0[0], i0[1]) + l[1] * XE(i0[0], i1[1])) +
                                  l[0] * ((1 - l[1]) * XE(i1[0], i0[1]) + l[1] * XE(i1[0], i1[1]));
#undef XE
            }
        }
        float *y = ref_xmalloc((size_t)(rows * C) * 4);
        ref_poison(y, (size_t)(rows * C));
        dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, (int64_t)B * g * g, C), ty = dv_tensor_2d(DV_DTYPE_F32, y, rows, C);
        be->ops->pool2d(be, &ty, &tx, g, s, DV_POOL_BILINEAR);
        snprintf(label, sizeof label, "pool2d bilinear t=%d B=%d g=%d -> %d C=%d", be->n_threads, B, g, pg, C);
        check_rows(label, y, C, ref, rows, C, 1e-6);
        free(x), free(xe), free(ref), free(y);
    }
    // a known case: a 3x3 ramp 0..8 to 2x2 reads source (0.25, 0.25), (0.25, 1.75), ... (torch: 1, 2.5, 5.5, 7)
    float x[9], y[4];
    for (int i = 0; i < 9; i++) x[i] = (float)i;
    dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, 9, 1), ty = dv_tensor_2d(DV_DTYPE_F32, y, 4, 1);
    ref_backends[0]->ops->pool2d(ref_backends[0], &ty, &tx, 3, 2, DV_POOL_BILINEAR);
    DV_CHECK_MSG(fabsf(y[0] - 1.0f) < 1e-6f && fabsf(y[1] - 2.5f) < 1e-6f && fabsf(y[2] - 5.5f) < 1e-6f &&
                     fabsf(y[3] - 7.0f) < 1e-6f,
                 "pool2d bilinear 3x3 ramp -> %g %g %g %g (torch: 1 2.5 5.5 7)", y[0], y[1], y[2], y[3]);
}

// ---- convert -------------------------------------------------------------------------------------

// x rounded to `bits` significant bits, nearest even, with f16's subnormal floor (2^-24) when
// min_exp is given: the reference for F32 -> BF16 (8 bits) and F32 -> F16 (11 bits).
static double ref_round(double x, int bits, int has_floor) {
    if (x == 0 || !isfinite(x)) return x;
    int e;
    frexp(x, &e); // |x| in [2^(e-1), 2^e)
    int q = e - bits; // ulp exponent
    if (has_floor && q < -24) q = -24;
    return ldexp(nearbyint(ldexp(x, -q)), q);
}

static double ref_decode(const void *p, dv_dtype dt, size_t i) {
    if (dt == DV_DTYPE_F32) return ((const float *)p)[i];
    if (dt == DV_DTYPE_BF16) return ref_bf16_value(((const uint16_t *)p)[i]);
    return ref_f16_value(((const uint16_t *)p)[i]);
}

// One element of `v` (exactly representable in float) encoded as dt by core/dv_dtype.h's helpers.
static void ref_encode(void *p, dv_dtype dt, size_t i, float v) {
    if (dt == DV_DTYPE_F32) ((float *)p)[i] = v;
    else if (dt == DV_DTYPE_BF16) ((uint16_t *)p)[i] = dv_f32_to_bf16(v);
    else ((uint16_t *)p)[i] = dv_f32_to_f16(v);
}

// The dtype conversions weights and synthetic models go through (core/dv_dtype.h's scalar
// helpers; the CPU kernels widen with the same decoders): every pair of F32/BF16/F16.
static void test_convert(void) {
    const int64_t n = 5003;
    char label[128];
    float *src = ref_xmalloc((size_t)n * 4);
    dv_test_rand(src, (size_t)n, -3, 3, &ref_seed);
    // magnitudes over many binades, f16 subnormals, ties and exact zeros
    for (int64_t i = 0; i < n; i++) src[i] *= (float)ldexp(1.0, (int)(i % 40) - 26);
    src[0] = 0.0f, src[1] = -0.0f, src[2] = 1.0f + 1.0f / 256; // bf16 tie: rounds to even (1.0)
    src[3] = 1.0f + 3.0f / 256;                              // bf16 tie: rounds up to even
    src[4] = 1.0f + 1.0f / 2048;                             // f16 tie
    for (int si = 0; si < 3; si++)
        for (int di = 0; di < 3; di++) {
            const dv_dtype sdt = wdts[si], ddt = wdts[di];
            // the source: src rounded into sdt by the library, decoded here
            void *x = ref_xmalloc((size_t)n * 4), *y = ref_xmalloc((size_t)n * 4);
            for (int64_t i = 0; i < n; i++) ref_encode(x, sdt, (size_t)i, src[i]);
            double *ref = ref_xmalloc((size_t)n * 8), *srcr = ref_xmalloc((size_t)n * 8);
            float *got = ref_xmalloc((size_t)n * 4);
            for (int64_t i = 0; i < n; i++) {
                // first hop checked too: the library's sdt value must be the rounding of src
                srcr[i] = sdt == DV_DTYPE_F32 ? src[i] : ref_round(src[i], sdt == DV_DTYPE_BF16 ? 8 : 11, sdt == DV_DTYPE_F16);
                const double v = ref_decode(x, sdt, (size_t)i);
                ref[i] = ddt == DV_DTYPE_F32 ? v : ref_round(v, ddt == DV_DTYPE_BF16 ? 8 : 11, ddt == DV_DTYPE_F16);
            }
            if (di == 0) {
                for (int64_t i = 0; i < n; i++) got[i] = (float)ref_decode(x, sdt, (size_t)i);
                snprintf(label, sizeof label, "convert F32->%s n=%lld", dv_dtype_name(sdt), (long long)n);
                dv_test_close_f64(label, got, srcr, (size_t)n, 1e-15);
            }
            memset(y, 0xff, (size_t)n * 4); // NaN patterns in every dtype
            for (int64_t i = 0; i < n; i++) {
                const uint16_t h = sdt == DV_DTYPE_F32 ? 0 : ((const uint16_t *)x)[i];
                const float v = sdt == DV_DTYPE_F32 ? ((const float *)x)[i]
                                : sdt == DV_DTYPE_BF16 ? dv_bf16_to_f32(h) : dv_f16_to_f32(h);
                ref_encode(y, ddt, (size_t)i, v);
            }
            for (int64_t i = 0; i < n; i++) got[i] = (float)ref_decode(y, ddt, (size_t)i);
            snprintf(label, sizeof label, "convert %s->%s n=%lld", dv_dtype_name(sdt), dv_dtype_name(ddt), (long long)n);
            dv_test_close_f64(label, got, ref, (size_t)n, 1e-15);
            free(x), free(y), free(ref), free(srcr), free(got);
        }
    free(src);
}

int main(void) {
    if (ref_backends_init()) return 1;
    // the matmul with the CPU's own instruction set (its vector loops: target_clones), then, where
    // the CPU has AVX-512 BF16, again with the single-row bf16 dot products off ("avx512")
    test_matmul();
    if (!strcmp(dv_backend_cpu_isa(), "avx512bf16") && !dv_backend_cpu_set_isa("avx512")) {
        test_matmul();
        dv_backend_cpu_set_isa("avx512bf16");
    } else {
        printf("SKIP matmul with bf16 dot products: this CPU lacks AVX-512 BF16\n");
    }
    test_norms();
    test_elementwise();
    test_embed();
    test_gather_sum();
    test_convert();
    test_pool2d();
    test_pool2d_bilinear();
    ref_backends_free();
    return dv_test_finish();
}
