// act.c: activations (SiLU, GELU erf/tanh, quick GELU), SwiGLU and row softmax, elementwise in F32.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <math.h>

static inline float act1(float x, dv_act a) {
    switch (a) {
    case DV_ACT_SILU: return x / (1.0f + expf(-x));
    case DV_ACT_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case DV_ACT_GELU_TANH:
        return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    default: return x / (1.0f + expf(-1.702f * x));
    }
}

void dv_cpu_act(dv_backend *be, dv_tensor *y, const dv_tensor *x, dv_act a) {
    (void)be;
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && dv_tensor_same_shape(x, y));
    DV_ASSERT(dv_tensor_is_contiguous(x) && dv_tensor_is_contiguous(y) && (unsigned)a < DV_ACT_COUNT);
    const int64_t n = dv_tensor_nelem(x);
    const float *xs = x->data;
    float *ys = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) ys[i] = act1(xs[i], a);
}

void dv_cpu_swiglu(dv_backend *be, dv_tensor *y, const dv_tensor *gate, const dv_tensor *up) {
    (void)be;
    DV_ASSERT(dv_tensor_same_shape(y, gate) && dv_tensor_same_shape(y, up));
    DV_ASSERT(dv_tensor_is_contiguous(y) && dv_tensor_is_contiguous(gate) && dv_tensor_is_contiguous(up));
    const int64_t n = dv_tensor_nelem(y);
    const float *g = gate->data, *u = up->data;
    float *ys = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) ys[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void dv_cpu_softmax(dv_backend *be, dv_tensor *y, const dv_tensor *x) {
    (void)be;
    const int64_t M = x->ne[0], N = x->ne[1];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && y->ne[0] == M && y->ne[1] == N);
    DV_ASSERT(x->nb[1] == sizeof(float) && y->nb[1] == sizeof(float));
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = dv_cpu_row(x, m);
        float *yr = dv_cpu_row(y, m);
        float mx = -INFINITY;
        for (int64_t i = 0; i < N; i++) mx = xr[i] > mx ? xr[i] : mx;
        double s = 0;
        for (int64_t i = 0; i < N; i++) {
            yr[i] = expf(xr[i] - mx);
            s += yr[i];
        }
        const float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < N; i++) yr[i] *= inv;
    }
}
