// backend.c: backend-independent pieces: freeing, counted host <-> device copies, core count, RoPE
// frequency tables, and the CUDA entry point, which loads the CUDA backend as a run-time module
// (kernels/dv_backend_module.h) so that duovid itself never links the CUDA runtime or cuBLAS.
#include "kernels/dv_backend.h"
#include "kernels/dv_backend_module.h"

#include "core/dv_error.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define DV_CUDA_MODULE_FILE "libduovid-cuda.so"

void dv_backend_free(dv_backend *be) {
    if (be) be->ops->destroy(be);
}

int dv_backend_upload(dv_backend *be, void *dst, const void *src, size_t n) {
    dv_backend_count_xfer(be, n, 0);
    return be->ops->upload(be, dst, src, n);
}

int dv_backend_upload_async(dv_backend *be, void *dst, const void *src, size_t n) {
    dv_backend_count_xfer(be, n, 0);
    return be->ops->upload_async ? be->ops->upload_async(be, dst, src, n) : be->ops->upload(be, dst, src, n);
}

int dv_backend_download(dv_backend *be, void *dst, const void *src, size_t n) {
    dv_backend_count_xfer(be, 0, n);
    return be->ops->download(be, dst, src, n);
}

int dv_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int dv_backend_module_open(const char *path, dv_backend_module *mod) {
    memset(mod, 0, sizeof *mod);
    if (access(path, F_OK) && strchr(path, '/')) // (a bare name is the dynamic loader's to search)
        return dv_error_set(DV_ENOTFOUND, "%s: no such backend module (%s)", path, strerror(errno));
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return dv_error_set(DV_EFORMAT, "%s: cannot load the backend module: %s", path, dlerror());
    dv_backend_module_register_fn reg;
    *(void **)&reg = dlsym(lib, DV_BACKEND_MODULE_SYMBOL); // (POSIX: object to function pointer)
    if (!reg) {
        dlclose(lib);
        return dv_error_set(DV_EFORMAT, "%s: not a duovid backend module (no %s symbol)", path,
                            DV_BACKEND_MODULE_SYMBOL);
    }
    const dv_backend_host host = {.abi = DV_BACKEND_MODULE_ABI,
                                  .sizeof_ops = sizeof(dv_backend_ops),
                                  .sizeof_backend = sizeof(dv_backend),
                                  .sizeof_tensor = sizeof(dv_tensor),
                                  .error_set = dv_error_set};
    dv_backend_module m = {0};
    dv_error_clear();
    int rc = reg(&host, &m);
    if (rc && !*dv_error_message()) // (a module of another ABI cannot use error_set)
        dv_error_set(rc, "it does not speak duovid's backend ABI %d", DV_BACKEND_MODULE_ABI);
    if (!rc && (m.abi != DV_BACKEND_MODULE_ABI || !m.init))
        rc = dv_error_set(DV_EUNSUPPORTED, "module ABI %d, duovid has ABI %d", m.abi, DV_BACKEND_MODULE_ABI);
    if (rc) {
        dlclose(lib);
        return dv_error_prefix(DV_EFORMAT, "%s: backend module refused", path);
    }
    *mod = m; // the library stays loaded: its op tables live as long as the process
    return 0;
}

// Where the CUDA module is looked for: $DUOVID_CUDA_MODULE (that file only), else next to the
// executable (/proc/self/exe: the build tree and a relocated install), else the install's module dir.
static int cuda_module_load(dv_backend_module *mod) {
    const char *env = getenv("DUOVID_CUDA_MODULE");
    if (env && *env) return dv_backend_module_open(env, mod);
    char exe[PATH_MAX], path[PATH_MAX + 32];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, sizeof path, "%s/%s", exe, DV_CUDA_MODULE_FILE);
            int rc = dv_backend_module_open(path, mod);
            if (rc != DV_ENOTFOUND) return rc;
        }
    }
#ifdef DUOVID_MODULE_DIR
    snprintf(path, sizeof path, "%s/%s", DUOVID_MODULE_DIR, DV_CUDA_MODULE_FILE);
    int rc = dv_backend_module_open(path, mod);
    if (rc != DV_ENOTFOUND) return rc;
#endif
#ifdef DUOVID_HAVE_CUDA
    return dv_error_set(DV_ENOTFOUND, "no CUDA backend module: %s is neither next to the executable nor in the "
                                      "install's module folder (set DUOVID_CUDA_MODULE to its path)",
                        DV_CUDA_MODULE_FILE);
#else
    return dv_error_set(DV_EUNSUPPORTED, "duovid was built without CUDA (nvcc was not found at build time) and no "
                                         "%s was found", DV_CUDA_MODULE_FILE);
#endif
}

// The module is loaded once per process, on the first request; its outcome (and message) is kept.
static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static dv_backend_module cuda_mod;
static int cuda_status;
static char cuda_msg[1024];

static void cuda_load_once(void) {
    cuda_status = cuda_module_load(&cuda_mod);
    if (cuda_status) snprintf(cuda_msg, sizeof cuda_msg, "%s", dv_error_message());
}

int dv_backend_cuda_driver_visible(void) {
    return !access("/proc/driver/nvidia/version", F_OK) || !access("/dev/nvidiactl", F_OK) ||
           !access("/dev/dxg", F_OK);
}

dv_backend *dv_backend_cuda_init(int device, int *status) {
    int dummy;
    if (!status) status = &dummy;
    pthread_once(&cuda_once, cuda_load_once);
    if (cuda_status) {
        *status = dv_error_set(cuda_status, "%s", cuda_msg);
        return NULL;
    }
    return cuda_mod.init(device, status);
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

int dv_rope_sec_mrope(dv_rope_sec *sec, int head_dim, const int *sections, int n, int interleaved) {
    const int half = head_dim / 2;
    if (head_dim <= 0 || head_dim % 2 || half > DV_ROPE_MAX_HALF)
        return dv_error_set(DV_EUNSUPPORTED, "rope: head_dim %d must be even and at most %d", head_dim,
                            2 * DV_ROPE_MAX_HALF);
    if (n < 1 || n > DV_ROPE_MAX_SEC) return dv_error_set(DV_EFORMAT, "mrope_section: %d sections (1 .. %d)", n, DV_ROPE_MAX_SEC);
    int sum = 0;
    for (int j = 0; j < n; j++) {
        if (sections[j] < 0) return dv_error_set(DV_EFORMAT, "mrope_section: negative section %d", sections[j]);
        sum += sections[j];
    }
    memset(sec, 0, sizeof *sec);
    sec->n_sec = n < 3 ? n : 3;
    // HF Qwen3-VL / Qwen3.5: t everywhere, then h at 1, 4, .. < 3 s_h and w at 2, 5, .. < 3 s_w; the
    // sections are only bounds of those strides (HF slices, clipped at rotary dim / 2: Qwen3.5's default
    // [11, 11, 10] applies to any partial rotary width), so no sum is required
    if (interleaved) {
        if (n != 3) return dv_error_set(DV_EFORMAT, "mrope_section: interleaved M-RoPE needs 3 sections, not %d", n);
        for (int i = 0; i < half; i++) {
            if (i % 3 == 1 && i < 3 * sections[1]) sec->sec[i] = 1;
            else if (i % 3 == 2 && i < 3 * sections[2]) sec->sec[i] = 2;
        }
        return 0;
    }
    if (sum != half) return dv_error_set(DV_EFORMAT, "mrope_section sums to %d, the rotary dim / 2 is %d", sum, half);
    for (int j = 0, i = 0; j < n; j++) // Qwen2-VL: the j-th run of frequencies from row j % 3
        for (int k = 0; k < sections[j]; k++) sec->sec[i++] = (uint8_t)(j % 3);
    return 0;
}

int dv_rope_init_vision_2d(dv_rope *rope, dv_rope_sec *sec, int head_dim, double theta) {
    if (head_dim <= 0 || head_dim % 4 || head_dim / 2 > DV_ROPE_MAX_HALF)
        return dv_error_set(DV_EUNSUPPORTED, "vision rope: head_dim %d must be a multiple of 4 and at most %d",
                            head_dim, 2 * DV_ROPE_MAX_HALF);
    if (!(theta > 0)) return dv_error_set(DV_EFORMAT, "vision rope: theta %g must be > 0", theta);
    memset(rope, 0, sizeof *rope);
    memset(sec, 0, sizeof *sec);
    const int q = head_dim / 4;
    rope->head_dim = head_dim;
    rope->attn_factor = 1.0f;
    plain_inv_freq(rope->inv_freq, head_dim / 2, (float)theta); // q values: 1 / theta^(2i / (head_dim / 2))
    for (int i = 0; i < q; i++) {
        rope->inv_freq[q + i] = rope->inv_freq[i];
        sec->sec[q + i] = 1;
    }
    sec->n_sec = 2;
    return 0;
}
