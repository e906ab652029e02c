// test_cpu_rope.c: dv_rope_init against the rope_scaling formulas of transformers
// (modeling_rope_utils: default, linear, llama3, yarn, dynamic), re-derived here in double, and the CPU rope op
// against a float64 rotation (rotate_half layout) at positions up to 131071, with strided layouts,
// attn_factor, 1 and 2 threads; the multi-section form (M-RoPE, vision 2-D rotary) likewise.
#include "tests/cpu_ops_ref.h"

#include <float.h>

// transformers' inverse frequencies, in double: 1 / theta^(2i/D), then the rope_scaling rule.
// *attn = the factor HF multiplies cos and sin by.
static void ref_inv_freq(double *f, int D, double theta, const dv_rope_scaling *sc, double *attn) {
    *attn = 1;
    if (sc && sc->type && !strcmp(sc->type, "dynamic") && sc->seq_len > sc->max_position_embeddings)
        theta *= pow(sc->factor * sc->seq_len / sc->max_position_embeddings - (sc->factor - 1), D / (D - 2.0));
    for (int i = 0; i < D / 2; i++) f[i] = 1.0 / pow(theta, 2.0 * i / D);
    if (!sc || !sc->type) return;
    if (!strcmp(sc->type, "yarn")) { // YaRN paper / _compute_yarn_parameters
        const double orig = sc->original_max_position_embeddings > 0 ? sc->original_max_position_embeddings
                                                                       : sc->max_position_embeddings;
        const double fast = sc->beta_fast > 0 ? sc->beta_fast : 32, slow = sc->beta_slow > 0 ? sc->beta_slow : 1;
        // the dims where the wavelength turns `fast` / `slow` times over the trained length
        double lo = D * log(orig / (fast * 2 * M_PI)) / (2 * log(theta)), hi = D * log(orig / (slow * 2 * M_PI)) / (2 * log(theta));
        if (!sc->no_truncate) lo = floor(lo), hi = ceil(hi);
        lo = lo < 0 ? 0 : lo;
        hi = hi > D - 1 ? D - 1 : hi;
        if (lo == hi) hi += 0.001;
        for (int i = 0; i < D / 2; i++) {
            const double ramp = fmin(fmax((i - lo) / (hi - lo), 0), 1); // 0: keep, 1: divide by factor
            f[i] = f[i] * (1 - ramp) + f[i] / sc->factor * ramp;
        }
        *attn = sc->attention_factor > 0 ? sc->attention_factor : 0.1 * log(sc->factor) + 1;
    }
    if (!strcmp(sc->type, "linear"))
        for (int i = 0; i < D / 2; i++) f[i] /= sc->factor;
    if (!strcmp(sc->type, "llama3")) {
        const double old = sc->original_max_position_embeddings;
        const double low_wavelen = old / sc->low_freq_factor, high_wavelen = old / sc->high_freq_factor;
        for (int i = 0; i < D / 2; i++) {
            const double wavelen = 2 * M_PI / f[i];
            if (wavelen < high_wavelen) continue; // high frequencies: unchanged
            if (wavelen > low_wavelen) {          // low frequencies: divided by factor
                f[i] /= sc->factor;
                continue;
            }
            const double smooth = (old / wavelen - sc->low_freq_factor) / (sc->high_freq_factor - sc->low_freq_factor);
            f[i] = (1 - smooth) * f[i] / sc->factor + smooth * f[i];
        }
    }
}

static void test_rope_init(void) {
    struct {
        int D;
        double theta;
        dv_rope_scaling sc;
    } cases[] = {
        {128, 10000.0, {.type = NULL}},
        {64, 10000.0, {.type = "default"}},
        {80, 1000000.0, {.type = "linear", .factor = 4.0}},
        {128, 500000.0, {.type = "llama3", 8.0, 1.0, 4.0, 8192}},   // Llama 3.1
        {64, 500000.0, {.type = "llama3", 32.0, 1.0, 4.0, 8192}},   // Llama 3.2 1B
        {96, 250000.0, {.type = "llama3", 16.0, 2.0, 6.0, 4096}},
        {2, 10000.0, {.type = NULL}},
        // Qwen2.5's long-context setting: factor 4 over the trained 32768
        {128, 1000000.0, {.type = "yarn", .factor = 4.0, .original_max_position_embeddings = 32768,
                          .max_position_embeddings = 32768}},
        // no original length (the config's max is), explicit betas and attention factor, no truncation
        {64, 10000.0, {.type = "yarn", .factor = 8.0, .max_position_embeddings = 4096, .beta_fast = 16,
                       .beta_slow = 2, .attention_factor = 1.25, .no_truncate = 1}},
        // dynamic NTK: within the trained length the plain base, past it a larger one
        {64, 10000.0, {.type = "dynamic", .factor = 2.0, .max_position_embeddings = 2048, .seq_len = 2048}},
        {128, 500000.0, {.type = "dynamic", .factor = 4.0, .max_position_embeddings = 2048, .seq_len = 5000}},
    };
    char label[160];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dv_rope r;
        double ref[DV_ROPE_MAX_HALF], attn;
        const int rc = dv_rope_init(&r, cases[c].D, cases[c].theta, &cases[c].sc);
        DV_CHECK_MSG(rc == 0, "dv_rope_init: %s", dv_error_message());
        ref_inv_freq(ref, cases[c].D, cases[c].theta, &cases[c].sc, &attn);
        snprintf(label, sizeof label, "rope_init D=%d theta=%g %s", cases[c].D, cases[c].theta,
                 cases[c].sc.type ? cases[c].sc.type : "(none)");
        dv_test_close_f64(label, r.inv_freq, ref, (size_t)cases[c].D / 2, 1e-6);
        // Per frequency: HF computes in float32, a few ulp per step (bound 8 eps). In the llama3 medium
        // band smooth = (old/wavelen - low) / (high - low) is a difference that cancels: its float32
        // rounding error is amplified by cond = (old/wavelen) / |old/wavelen - low|, and reaches the
        // frequency scaled by |1 - 1/factor| / ((1 - smooth)/factor + smooth). The bound is derived
        // from that error analysis per frequency, not fitted to the result.
        double worst = 0;
        for (int i = 0; i < cases[c].D / 2; i++) {
            double amp = 0;
            const dv_rope_scaling *sc = &cases[c].sc;
            if (sc->type && !strcmp(sc->type, "llama3")) {
                const double f0 = 1.0 / pow(cases[c].theta, 2.0 * i / cases[c].D), x = sc->original_max_position_embeddings * f0 / (2 * M_PI);
                const double sm = (x - sc->low_freq_factor) / (sc->high_freq_factor - sc->low_freq_factor);
                if (sm > 0 && sm < 1)
                    amp = x / fabs(x - sc->low_freq_factor) * fabs(1 - 1 / sc->factor) / ((1 - sm) / sc->factor + sm);
            }
            const double err = fabs(r.inv_freq[i] / ref[i] - 1), bound = 8 * FLT_EPSILON * (1 + amp);
            worst = fmax(worst, err / bound);
        }
        printf("     %s: worst per-frequency error = %.2f of its float32 bound, attn_factor %.6f\n", label, worst,
               r.attn_factor);
        DV_CHECK(worst < 1 && r.head_dim == cases[c].D && r.attn_factor == (float)attn);
    }
    dv_rope r, plain;
    // the yarn ramp really blends: the fastest frequency is kept, the slowest divided by the factor
    dv_rope_scaling yarn = {.type = "yarn", .factor = 4.0, .max_position_embeddings = 32768};
    DV_CHECK(dv_rope_init(&r, 128, 1e6, &yarn) == 0 && dv_rope_init(&plain, 128, 1e6, NULL) == 0);
    DV_CHECK(r.inv_freq[0] == plain.inv_freq[0] && fabs(r.inv_freq[63] * 4 / plain.inv_freq[63] - 1) < 1e-6);
    dv_rope_scaling unknown = {.type = "longrope", .factor = 4.0};
    DV_CHECK(dv_rope_init(&r, 128, 10000.0, &unknown) == DV_EUNSUPPORTED);
    dv_rope_scaling no_factor = {.type = "yarn", .max_position_embeddings = 4096};
    DV_CHECK(dv_rope_init(&r, 128, 10000.0, &no_factor) == DV_EFORMAT);
    DV_CHECK(dv_rope_init(&r, 127, 10000.0, NULL) < 0);
    DV_CHECK(dv_rope_init(&r, 4 * DV_ROPE_MAX_HALF, 10000.0, NULL) < 0);
    dv_rope_scaling bad = {.type = "llama3", 8.0, 4.0, 1.0, 8192}; // low > high
    DV_CHECK(dv_rope_init(&r, 128, 10000.0, &bad) == DV_EFORMAT);
}

// x (T, H, D) in a buffer laid out (T, H, D) or head-major (H, T, D) (a KV cache), rotated in place.
static void rope_case(dv_backend *be, int D, int64_t T, int64_t H, int head_major, float attn_factor,
                      const dv_rope_scaling *sc) {
    dv_rope r;
    DV_CHECK(dv_rope_init(&r, D, 500000.0, sc) == 0);
    r.attn_factor = attn_factor;
    const int64_t n = T * H * D;
    double *xe = ref_xmalloc((size_t)n * 8), *ref = ref_xmalloc((size_t)n * 8);
    float *x = ref_rand_f32((size_t)n, -2, 2, xe), *got = ref_xmalloc((size_t)n * 4);
    int32_t *pos = ref_xmalloc((size_t)T * 4);
    const int32_t big[] = {0, 1, 2, 4095, 8191, 65536, 99999, 100000, 131071};
    for (int64_t t = 0; t < T; t++) pos[t] = t < 9 ? big[t] : (int32_t)(t * 7919 % 131072);
    // element (t, h, d) lives at off(t, h) + d
#define OFF(t, h) (head_major ? ((h) * T + (t)) * D : ((t) * H + (h)) * D)
    const int half = D / 2;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
            for (int i = 0; i < half; i++) {
                // the angle is an F32 product in HF (inv_freq @ position_ids in float32); cos/sin exact
                const double ang = (double)((float)pos[t] * r.inv_freq[i]);
                const double c = cos(ang) * attn_factor, s = sin(ang) * attn_factor;
                const double a = xe[OFF(t, h) + i], b = xe[OFF(t, h) + i + half];
                ref[(t * H + h) * D + i] = a * c - b * s;
                ref[(t * H + h) * D + i + half] = b * c + a * s;
            }
    dv_tensor tx = dv_tensor_3d(DV_DTYPE_F32, x, T, H, D), tp = dv_tensor_1d(DV_DTYPE_I32, pos, T);
    if (head_major) {
        tx.nb[0] = (size_t)D * 4;
        tx.nb[1] = (size_t)(T * D) * 4;
    }
    be->ops->rope(be, &tx, &tp, &r);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) memcpy(got + (t * H + h) * D, x + OFF(t, h), (size_t)D * 4);
#undef OFF
    char label[160];
    snprintf(label, sizeof label, "rope t=%d D=%d T=%lld H=%lld%s attn_factor=%g %s", be->n_threads, D, (long long)T,
             (long long)H, head_major ? " head-major" : "", attn_factor, sc && sc->type ? sc->type : "default");
    dv_test_close_f64(label, got, ref, (size_t)n, 1e-5);
    free(xe), free(ref), free(x), free(got), free(pos);
}

// rope_sections: M-RoPE (consecutive and interleaved sections) and the vision 2-D rotary against a
// float64 rotation where frequency i takes the position of row sec(i), sec(i) re-derived here from the
// HF rules (Qwen2-VL: split by mrope_section, chunk j from row j % 3; Qwen3-VL: h at i % 3 == 1 below
// 3 s_h, w at i % 3 == 2 below 3 s_w; vision: rows h then w, the head_dim / 4 frequencies repeated).
static void rope_sections_case(dv_backend *be, int D, int64_t T, int64_t H, int kind) {
    dv_rope r;
    dv_rope_sec sec;
    int ref_sec[DV_ROPE_MAX_HALF];
    double f[DV_ROPE_MAX_HALF];
    const int half = D / 2;
    const int s3[3] = {half / 4, half / 2 - half / 4 + (half % 2), 0};
    const int secs[3] = {s3[0], s3[1], half - s3[0] - s3[1]};
    if (kind == 2) {
        DV_CHECK(dv_rope_init_vision_2d(&r, &sec, D, 10000.0) == 0 && sec.n_sec == 2);
        for (int i = 0; i < half; i++) {
            ref_sec[i] = i < D / 4 ? 0 : 1;
            f[i] = 1.0 / pow(10000.0, 2.0 * (i % (D / 4)) / (D / 2));
        }
    } else {
        DV_CHECK(dv_rope_init(&r, D, 1e6, NULL) == 0 && dv_rope_sec_mrope(&sec, D, secs, 3, kind) == 0);
        for (int i = 0, j = 0, k = 0; i < half; i++) {
            f[i] = 1.0 / pow(1e6, 2.0 * i / D);
            if (kind == 1) {
                ref_sec[i] = (i % 3 == 1 && i < 3 * secs[1]) ? 1 : (i % 3 == 2 && i < 3 * secs[2]) ? 2 : 0;
            } else {
                while (k >= secs[j]) j++, k = 0;
                ref_sec[i] = j % 3;
                k++;
            }
        }
    }
    for (int i = 0; i < half; i++) DV_CHECK(sec.sec[i] == ref_sec[i]);
    dv_test_close_f64("rope_sections inv_freq", r.inv_freq, f, (size_t)half, 1e-6);
    const int n_sec = sec.n_sec;
    const int64_t n = T * H * D;
    double *xe = ref_xmalloc((size_t)n * 8), *ref = ref_xmalloc((size_t)n * 8);
    float *x = ref_rand_f32((size_t)n, -2, 2, xe);
    int32_t *pos = ref_xmalloc((size_t)(n_sec * T) * 4);
    for (int64_t i = 0; i < n_sec * T; i++) pos[i] = (int32_t)((i * 7919 + 13) % 40000);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
            for (int i = 0; i < half; i++) {
                const double ang = (double)((float)pos[ref_sec[i] * T + t] * r.inv_freq[i]);
                const double a = xe[(t * H + h) * D + i], b = xe[(t * H + h) * D + i + half];
                ref[(t * H + h) * D + i] = a * cos(ang) - b * sin(ang);
                ref[(t * H + h) * D + i + half] = b * cos(ang) + a * sin(ang);
            }
    dv_tensor tx = dv_tensor_3d(DV_DTYPE_F32, x, T, H, D), tp = dv_tensor_2d(DV_DTYPE_I32, pos, n_sec, T);
    be->ops->rope_sections(be, &tx, &tp, &r, &sec);
    char label[96];
    static const char *kinds[] = {"mrope", "mrope interleaved", "vision 2d"};
    snprintf(label, sizeof label, "rope_sections %s t=%d D=%d T=%lld H=%lld", kinds[kind], be->n_threads, D,
             (long long)T, (long long)H);
    dv_test_close_f64(label, x, ref, (size_t)n, 1e-5);
    free(xe), free(ref), free(x), free(pos);
}

static void test_rope_sec_errors(void) {
    dv_rope_sec sec;
    dv_rope r;
    DV_CHECK(dv_rope_sec_mrope(&sec, 128, (const int[]){16, 24, 24}, 3, 0) == 0);
    DV_CHECK(sec.sec[15] == 0 && sec.sec[16] == 1 && sec.sec[39] == 1 && sec.sec[40] == 2 && sec.sec[63] == 2);
    DV_CHECK(dv_rope_sec_mrope(&sec, 128, (const int[]){24, 20, 20}, 3, 1) == 0);
    DV_CHECK(sec.sec[0] == 0 && sec.sec[1] == 1 && sec.sec[2] == 2 && sec.sec[60] == 0 && sec.sec[61] == 0);
    DV_CHECK(dv_rope_sec_mrope(&sec, 128, (const int[]){16, 24, 20}, 3, 0) == DV_EFORMAT); // sums to 60
    // interleaved: HF's strided slices clipped at rotary dim / 2 (Qwen3.5's default [11, 11, 10] on a
    // rotary dim of 8: t h w t; on 64: h at 1 .. 31, w at 2 .. 29, t the rest)
    DV_CHECK(dv_rope_sec_mrope(&sec, 8, (const int[]){11, 11, 10}, 3, 1) == 0);
    DV_CHECK(sec.sec[0] == 0 && sec.sec[1] == 1 && sec.sec[2] == 2 && sec.sec[3] == 0);
    DV_CHECK(dv_rope_sec_mrope(&sec, 64, (const int[]){11, 11, 10}, 3, 1) == 0);
    DV_CHECK(sec.sec[29] == 2 && sec.sec[30] == 0 && sec.sec[31] == 1);
    DV_CHECK(dv_rope_sec_mrope(&sec, 128, (const int[]){32, 32}, 2, 1) == DV_EFORMAT);
    DV_CHECK(dv_rope_init_vision_2d(&r, &sec, 18, 10000.0) == DV_EUNSUPPORTED);
}

int main(void) {
    if (ref_backends_init()) return 1;
    test_rope_init();
    test_rope_sec_errors();
    dv_rope_scaling lin = {.type = "linear", .factor = 2.0}, l3 = {.type = "llama3", 8.0, 1.0, 4.0, 8192};
    for (int b = 0; b < 2; b++) {
        dv_backend *be = ref_backends[b];
        rope_case(be, 128, 9, 4, 0, 1.0f, NULL);
        rope_case(be, 128, 33, 3, 1, 1.0f, &l3);
        rope_case(be, 64, 20, 2, 0, 1.0f, &lin);
        rope_case(be, 2, 5, 1, 0, 1.0f, NULL);
        rope_case(be, 80, 65, 5, 1, 0.75f, NULL);
        rope_sections_case(be, 128, 17, 4, 0);
        rope_sections_case(be, 128, 9, 2, 1);
        rope_sections_case(be, 16, 33, 3, 0); // half 8: sections 2, 3, 3 (the tiny fixture's)
        rope_sections_case(be, 80, 40, 3, 2);
        rope_sections_case(be, 16, 60, 2, 2);
    }
    ref_backends_free();
    return dv_test_finish();
}
