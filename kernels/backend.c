// backend.c: backend-independent pieces: freeing, counted host <-> device copies, core count, RoPE frequency tables, and the CUDA
// entry point (which reports "not built with CUDA" when nvcc was absent at build time).
#include "kernels/dv_backend.h"

#include "core/dv_error.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

void dv_backend_free(dv_backend *be) {
    if (be) be->ops->destroy(be);
}

void dv_backend_count_xfer(dv_backend *be, size_t h2d, size_t d2h) {
    if (be->device == DV_DEVICE_CPU) return; // host memory: nothing crossed
    be->xfer.h2d_bytes += h2d;
    be->xfer.d2h_bytes += d2h;
    be->xfer.h2d_copies += h2d > 0;
    be->xfer.d2h_copies += d2h > 0;
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
// _compute_llama3_parameters. Python-side scalars (factor, the band edges) are computed in double and
// rounded to float where torch would round them. base ** e is the correctly rounded float power;
// torch's vectorized powf is within 1 ulp of it, so a few entries in a thousand may differ by 1 ulp.
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
    const float base = (float)theta;
    for (int i = 0; i < half; i++) {
        const float e = (float)(2 * i) / (float)head_dim;
        const float p = (float)pow((double)base, (double)e);
        rope->inv_freq[i] = 1.0f / p;
    }
    if (!strcmp(type, "default")) return 0;
    if (!strcmp(type, "linear")) {
        if (!(sc->factor > 0)) return dv_error_set(DV_EFORMAT, "rope_scaling 'linear' needs a factor > 0");
        const float factor = (float)sc->factor;
        for (int i = 0; i < half; i++) rope->inv_freq[i] /= factor;
        return 0;
    }
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
    return dv_error_set(DV_EUNSUPPORTED, "rope_scaling type '%s' is not supported (default, linear, llama3)", type);
}
