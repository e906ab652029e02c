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

// Frequencies exactly as Hugging Face computes them, in float32:
//   inv_freq[i] = 1 / base ** (float(2i) / dim), then rope_scaling (linear: / factor; llama3: the
//   wavelength bands of transformers' _compute_llama3_parameters).
int dv_rope_init(dv_rope *rope, int head_dim, double theta, const dv_rope_scaling *sc) {
    DV_ASSERT(head_dim > 0 && head_dim % 2 == 0 && head_dim / 2 <= DV_ROPE_MAX_HALF);
    memset(rope, 0, sizeof *rope);
    rope->head_dim = head_dim;
    rope->attn_factor = 1.0f;
    const char *type = sc && sc->type ? sc->type : "default";
    const int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        float p = (float)pow(theta, (double)e);
        rope->inv_freq[i] = 1.0f / p;
    }
    if (!strcmp(type, "default")) return 0;
    if (!strcmp(type, "linear")) {
        if (!(sc->factor > 0)) return dv_error_set(DV_EFORMAT, "rope_scaling 'linear' needs a factor > 0");
        for (int i = 0; i < half; i++) rope->inv_freq[i] /= (float)sc->factor;
        return 0;
    }
    if (!strcmp(type, "llama3")) {
        const float factor = (float)sc->factor, lo = (float)sc->low_freq_factor, hi = (float)sc->high_freq_factor,
                    old_ctx = (float)sc->original_max_position_embeddings;
        if (!(factor > 0 && lo > 0 && hi > lo && old_ctx > 0))
            return dv_error_set(DV_EFORMAT, "rope_scaling 'llama3' needs factor, low_freq_factor < high_freq_factor "
                                            "and original_max_position_embeddings");
        const float lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
        for (int i = 0; i < half; i++) {
            float f = rope->inv_freq[i];
            float wavelen = 2.0f * (float)M_PI / f;
            float scaled = wavelen > lo_wavelen ? f / factor : f;
            if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) {
                float smooth = (old_ctx / wavelen - lo) / (hi - lo);
                scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
            }
            rope->inv_freq[i] = scaled;
        }
        return 0;
    }
    return dv_error_set(DV_EUNSUPPORTED, "rope_scaling type '%s' is not supported (default, linear, llama3)", type);
}
