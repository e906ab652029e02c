// norm.c: RMSNorm (Llama) and LayerNorm (ViT) over the last dim, statistics in double.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <math.h>

void dv_cpu_rms_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, float eps) {
    (void)be;
    const int64_t M = x->ne[0], D = x->ne[1];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && y->ne[0] == M && y->ne[1] == D);
    DV_ASSERT(w->ne[0] == D && x->nb[1] == sizeof(float) && y->nb[1] == sizeof(float));
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = dv_cpu_row(x, m);
        float *yr = dv_cpu_row(y, m);
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        // HF: x * rsqrt(mean(x^2) + eps), rounded to F32, then * weight
        const float r = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
        for (int64_t d = 0; d < D; d++) yr[d] = (xr[d] * r) * dv_cpu_weight_at(w, d);
    }
}

void dv_cpu_layer_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *b,
                       float eps) {
    (void)be;
    const int64_t M = x->ne[0], D = x->ne[1];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && y->ne[0] == M && y->ne[1] == D);
    DV_ASSERT(w->ne[0] == D && (!b || b->ne[0] == D) && x->nb[1] == sizeof(float) && y->nb[1] == sizeof(float));
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = dv_cpu_row(x, m);
        float *yr = dv_cpu_row(y, m);
        double s = 0, ss = 0;
        for (int64_t d = 0; d < D; d++) s += xr[d];
        const double mean = s / (double)D;
        for (int64_t d = 0; d < D; d++) ss += ((double)xr[d] - mean) * ((double)xr[d] - mean);
        const double r = 1.0 / sqrt(ss / (double)D + (double)eps); // biased variance, as nn.LayerNorm
        for (int64_t d = 0; d < D; d++)
            yr[d] = (float)(((double)xr[d] - mean) * r) * dv_cpu_weight_at(w, d) + (b ? dv_cpu_weight_at(b, d) : 0.0f);
    }
}
