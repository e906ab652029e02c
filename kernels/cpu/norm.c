// norm.c: RMSNorm (Llama) and LayerNorm (ViT) over the last dim of (M, D) F32 rows; the statistics
// are summed in double (cheap next to the matmuls, and independent of D's size).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <math.h>

// Largest D whose weight row we widen on the stack (Llama: 4096-8192; ViT: 768-1152).
#define DV_NORM_MAX_D 16384

static void check_norm_args(const dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *b) {
    const int64_t M = x->ne[0], D = x->ne[1];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && x->n_dims == 2 && y->n_dims == 2);
    DV_ASSERT(y->ne[0] == M && y->ne[1] == D && D > 0 && D <= DV_NORM_MAX_D);
    DV_ASSERT(x->nb[1] == sizeof(float) && y->nb[1] == sizeof(float));
    DV_ASSERT(dv_cpu_is_float(w->dtype) && dv_tensor_nelem(w) == D && dv_tensor_is_contiguous(w));
    DV_ASSERT(!b || (dv_cpu_is_float(b->dtype) && dv_tensor_nelem(b) == D && dv_tensor_is_contiguous(b)));
}

void dv_cpu_rms_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, float eps) {
    check_norm_args(y, x, w, NULL);
    const int64_t M = x->ne[0], D = x->ne[1];
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT_FOR(be, M * D))
    for (int64_t m = 0; m < M; m++) {
        const float *xr = dv_cpu_row(x, m);
        float *yr = dv_cpu_row(y, m);
        float wbuf[DV_NORM_MAX_D]; // (D) the weight widened to F32 when it is F16/BF16
        const float *wf = w->dtype == DV_DTYPE_F32 ? w->data : wbuf;
        if (wf == wbuf) dv_cpu_to_f32(wbuf, w->data, w->dtype, (size_t)D);
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int64_t d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        // HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) in F32, then weight * that
        const float r = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
        for (int64_t d = 0; d < D; d++) yr[d] = wf[d] * (xr[d] * r);
    }
}

void dv_cpu_layer_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *b,
                       float eps) {
    check_norm_args(y, x, w, b);
    const int64_t M = x->ne[0], D = x->ne[1];
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT_FOR(be, M * D))
    for (int64_t m = 0; m < M; m++) {
        const float *xr = dv_cpu_row(x, m);
        float *yr = dv_cpu_row(y, m);
        float wbuf[DV_NORM_MAX_D], bf[DV_NORM_MAX_D]; // (D) weight (when not F32) and bias in F32
        const float *wf = w->dtype == DV_DTYPE_F32 ? w->data : wbuf;
        if (wf == wbuf) dv_cpu_to_f32(wbuf, w->data, w->dtype, (size_t)D);
        if (b) dv_cpu_to_f32(bf, b->data, b->dtype, (size_t)D);
        else
            for (int64_t d = 0; d < D; d++) bf[d] = 0.0f;
        double s = 0, ss = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t d = 0; d < D; d++) s += xr[d];
        const double mean = s / (double)D;
        // two passes: the centred sum of squares does not cancel catastrophically
#pragma omp simd reduction(+ : ss)
        for (int64_t d = 0; d < D; d++) ss += ((double)xr[d] - mean) * ((double)xr[d] - mean);
        const float r = (float)(1.0 / sqrt(ss / (double)D + (double)eps)); // biased variance, as nn.LayerNorm
        for (int64_t d = 0; d < D; d++) yr[d] = (float)(((double)xr[d] - mean) * r) * wf[d] + bf[d];
    }
}
