// cpu_backend.c: the CPU backend: aligned host memory, the thread count (OpenMP + OpenBLAS), the
// scratch buffers the ops share, and the op table.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

// cblas.h of some OpenBLAS packages does not declare it
void openblas_set_num_threads(int n);

float *dv_cpu_grow(float **buf, size_t *cap, size_t n) {
    if (*cap < n) {
        void *p = NULL;
        if (posix_memalign(&p, 64, n * sizeof(float))) {
            fprintf(stderr, "duovid: out of memory growing a CPU scratch buffer to %zu bytes\n", n * sizeof(float));
            abort();
        }
        free(*buf);
        *buf = p;
        *cap = n;
    }
    return *buf;
}

static void *cpu_alloc(dv_backend *be, size_t n) {
    (void)be;
    void *p = NULL;
    // 64-byte alignment for vector loads; posix_memalign needs a non-zero size
    if (posix_memalign(&p, 64, n ? n : 64)) {
        dv_error_set(DV_ENOMEM, "cpu backend: out of memory allocating %zu bytes", n);
        return NULL;
    }
    return p;
}

static void cpu_free(dv_backend *be, void *p) {
    (void)be;
    free(p);
}

static int cpu_copy(dv_backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    if (n && dst != src) memmove(dst, src, n);
    return 0;
}

// KV rows F32 -> the cache's type (kernels/dv_kv_type.h's rule; a few rows per token and layer)
static int cpu_kv_store(dv_backend *be, void *dst, size_t dst_pitch, dv_kv_type t, const float *src, size_t src_pitch,
                        int64_t D, size_t rows) {
    (void)be;
    for (size_t r = 0; r < rows; r++)
        dv_kv_quantize_row(t, (const float *)((const char *)src + r * src_pitch), D, (char *)dst + r * dst_pitch);
    return 0;
}

static int cpu_sync(dv_backend *be) {
    (void)be;
    return 0;
}

static void cpu_destroy(dv_backend *be) {
    dv_cpu_ctx *c = be->ctx;
    if (c) {
        free(c->mm_scratch);
        free(c->att_scratch);
        free(c->att_part);
        free(c->lin_scratch);
        free(c->gdn_scratch);
    }
    free(c);
    free(be);
}

static const dv_backend_ops dv_cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .synchronize = cpu_sync,
    .destroy = cpu_destroy,
    .matmul = dv_cpu_matmul,
    .rms_norm = dv_cpu_rms_norm,
    .layer_norm = dv_cpu_layer_norm,
    .rope = dv_cpu_rope,
    .act = dv_cpu_act,
    .swiglu = dv_cpu_swiglu,
    .attention = dv_cpu_attention,
    .attention_kv = dv_cpu_attention_kv,
    .embed = dv_cpu_embed,
    .add = dv_cpu_add,
    .pool2d = dv_cpu_pool2d,
    .upload_async = cpu_copy,
    .conv1d_causal = dv_cpu_conv1d_causal,
    .gated_delta_rule = dv_cpu_gated_delta_rule,
    .mul_sigmoid = dv_cpu_mul_sigmoid,
    .gather_sum = dv_cpu_gather_sum,
    .rope_sections = dv_cpu_rope_sections,
    .kv_store = cpu_kv_store,
};

dv_backend *dv_backend_cpu_init(int n_threads) {
    dv_backend *be = calloc(1, sizeof *be);
    dv_cpu_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        dv_error_set(DV_ENOMEM, "cpu backend: out of memory");
        return NULL;
    }
    if (n_threads <= 0) n_threads = dv_cpu_count();
    // One pool: our OpenMP threads. OpenBLAS runs single-threaded inside them (matmul.c splits the
    // output into per-thread tiles): a second spinning pool on the same cores made decode 25x slower.
    omp_set_num_threads(n_threads);
    openblas_set_num_threads(1);
    c->n_threads = n_threads;
    be->ops = &dv_cpu_ops;
    be->device = DV_DEVICE_CPU;
    be->n_threads = n_threads;
    be->ctx = c;
    return be;
}
