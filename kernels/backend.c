// backend.c: backend-independent pieces: freeing, core count, RoPE frequency tables, and the CUDA
// entry point (which reports "not built with CUDA" when nvcc was absent at build time).
#include "kernels/dv_backend.h"

#include "core/dv_error.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

void dv_backend_free(dv_backend *be) {
    if (be) be->ops->destroy(be);
}

int dv_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

#ifdef DUOVID_HAVE_CUDA
dv_backend *dv_backend_cuda_init_impl(int device, int *status);
#endif

dv_backend *dv_backend_cuda_init(int device, int *status) {
    int dummy;
    if (!status) status = &dummy;
#ifdef DUOVID_HAVE_CUDA
    return dv_backend_cuda_init_impl(device, status);
#else
    (void)device;
    *status = dv_error_set(DV_EUNSUPPORTED, "duovid was built without CUDA (nvcc was not found at build time)");
    return NULL;
#endif
}

// Frequencies as Hugging Face computes them, in float32 (modeling_rope_utils):
//   inv_freq[i] = 1 / base ** (float(2i) / dim)   (arange in int64, cast to float, divided in float)
// then rope_scaling: linear divides by factor; llama3 applies the wavelength bands of
// _compute_llama3_parameters; yarn blends base and base/factor frequencies over a ramp of dims
// (_compute_yarn_parameters); dynamic raises the base for sequences past the trained length
// (_compute_dynamic_ntk_parameters). Python-side scalars (factor, the band edges, the ramp ends) are
// computed in double and rounded to float where torch would round them. base ** e is the correctly
// rounded float power; torch's vectorized powf is within 1 ulp of it, so a few entries in a thousand
// may differ by 1 ulp.
static float rope_pow(float base, int i, int head_dim) { // base ** (float(2i) / dim)
    const float e = (float)(2 * i) / (float)head_dim;
    return (float)pow((double)base, (double)e);
}

static void plain_inv_freq(float *inv_freq, int head_dim, float base) {
    for (int i = 0; i < head_dim / 2; i++) inv_freq[i] = 1.0f / rope_pow(base, i, head_dim);
}

// YaRN's attention factor default: 0.1 * mscale * ln(scale) + 1 (1 for scale <= 1).
static double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0; }

// The dimension whose wavelength makes num_rotations turns over max_pos positions (fractional).
static double yarn_correction_dim(double num_rotations, int dim, double base, double max_pos) {
    return (dim * log(max_pos / (num_rotations * 2 * M_PI))) / (2 * log(base));
}

static int rope_yarn(dv_rope *rope, double theta, const dv_rope_scaling *sc) {
    const int dim = rope->head_dim, half = dim / 2;
    // HF: an explicit original_max_position_embeddings is the trained length (Qwen2.5 writes it with
    // factor 4); without it the config's max_position_embeddings is.
    double factor = sc->factor;
    const double orig = sc->original_max_position_embeddings > 0 ? sc->original_max_position_embeddings
                                                                   : sc->max_position_embeddings;
    if (!(factor > 0) || !(orig > 0))
        return dv_error_set(DV_EFORMAT, "rope_scaling 'yarn' needs a factor > 0 and max_position_embeddings > 0");
    double attn = sc->attention_factor;
    if (!(attn > 0)) {
        if (sc->mscale > 0 && sc->mscale_all_dim > 0)
            attn = yarn_mscale(factor, sc->mscale) / yarn_mscale(factor, sc->mscale_all_dim);
        else
            attn = yarn_mscale(factor, 1.0);
    }
    const double beta_fast = sc->beta_fast > 0 ? sc->beta_fast : 32, beta_slow = sc->beta_slow > 0 ? sc->beta_slow : 1;
    double lo = yarn_correction_dim(beta_fast, dim, theta, orig), hi = yarn_correction_dim(beta_slow, dim, theta, orig);
    if (!sc->no_truncate) {
        lo = floor(lo);
        hi = ceil(hi);
    }
    lo = fmax(lo, 0);
    hi = fmin(hi, dim - 1);
    if (lo == hi) hi += 0.001; // HF's guard against a zero-width ramp
    const float ff = (float)factor;
    for (int i = 0; i < half; i++) {
        const float p = rope_pow((float)theta, i, dim);
        const float extra = 1.0f / p, inter = 1.0f / (ff * p);
        float ramp = ((float)i - (float)lo) / (float)(hi - lo); // linear_ramp_factor, clamped to [0, 1]
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        const float extra_w = 1.0f - ramp; // the share of the extrapolated (unscaled) frequency
        rope->inv_freq[i] = inter * (1.0f - extra_w) + extra * extra_w;
    }
    rope->attn_factor = (float)attn;
    return 0;
}

int dv_rope_init(dv_rope *rope, int head_dim, double theta, const dv_rope_scaling *sc) {
    if (head_dim <= 0 || head_dim % 2 || head_dim / 2 > DV_ROPE_MAX_HALF)
        return dv_error_set(DV_EUNSUPPORTED, "rope: head_dim %d must be even and at most %d", head_dim,
                            2 * DV_ROPE_MAX_HALF);
    if (!(theta > 0)) return dv_error_set(DV_EFORMAT, "rope: rope_theta %g must be > 0", theta);
    memset(rope, 0, sizeof *rope);
    rope->head_dim = head_dim;
    rope->attn_factor = 1.0f;
    const char *type = sc && sc->type ? sc->type : "default";
    const int half = head_dim / 2;
    plain_inv_freq(rope->inv_freq, head_dim, (float)theta);
    if (!strcmp(type, "default")) return 0;
    if (!strcmp(type, "linear")) {
        if (!(sc->factor > 0)) return dv_error_set(DV_EFORMAT, "rope_scaling 'linear' needs a factor > 0");
        const float factor = (float)sc->factor;
        for (int i = 0; i < half; i++) rope->inv_freq[i] /= factor;
        return 0;
    }
    if (!strcmp(type, "dynamic")) {
        const double max_pos = sc->max_position_embeddings; // HF: the config's, not an "original" one
        if (!(sc->factor > 0) || !(max_pos > 0))
            return dv_error_set(DV_EFORMAT, "rope_scaling 'dynamic' needs a factor > 0 and max_position_embeddings > 0");
        if (!(sc->seq_len > max_pos)) return 0; // within the trained length: the plain base
        // base * (factor * seq_len / max_pos - (factor - 1)) ** (dim / (dim - 2)), in float32 as torch
        // evaluates it (seq_len arrives as an int64 tensor)
        const float f = (float)sc->factor;
        const float grow = f * (float)sc->seq_len / (float)max_pos - (f - 1.0f);
        const float base = (float)theta * powf(grow, (float)((double)head_dim / (head_dim - 2)));
        plain_inv_freq(rope->inv_freq, head_dim, base);
        return 0;
    }
    if (!strcmp(type, "yarn")) return rope_yarn(rope, theta, sc);
    if (!strcmp(type, "llama3")) {
        const double old_ctx = sc->original_max_position_embeddings;
        if (!(sc->factor > 0 && sc->low_freq_factor > 0 && sc->high_freq_factor > sc->low_freq_factor && old_ctx > 0))
            return dv_error_set(DV_EFORMAT, "rope_scaling 'llama3' needs factor > 0, 0 < low_freq_factor < "
                                            "high_freq_factor and original_max_position_embeddings > 0");
        const float factor = (float)sc->factor, lo = (float)sc->low_freq_factor, old_ctx_f = (float)old_ctx;
        const float lo_wavelen = (float)(old_ctx / sc->low_freq_factor);   // Python float, compared in F32
        const float hi_wavelen = (float)(old_ctx / sc->high_freq_factor);
        const float band = (float)(sc->high_freq_factor - sc->low_freq_factor);
        const float two_pi = (float)(2.0 * M_PI);
        for (int i = 0; i < half; i++) {
            const float f = rope->inv_freq[i];
            const float wavelen = two_pi / f;
            float scaled = wavelen > lo_wavelen ? f / factor : f; // low frequencies: divided by factor
            if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) { // medium: interpolate
                const float smooth = (old_ctx_f / wavelen - lo) / band;
                scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
            }
            rope->inv_freq[i] = scaled;
        }
        return 0;
    }
    return dv_error_set(DV_EUNSUPPORTED,
                        "rope_scaling type '%s' is not supported (default, linear, llama3, yarn, dynamic)", type);
}
