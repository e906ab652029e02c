// act.c: elementwise activations (SiLU, GELU erf/tanh, quick GELU), SwiGLU and the sigmoid gate, in F32.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <math.h>

static void check_same(const dv_tensor *y, const dv_tensor *x) {
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && dv_tensor_same_shape(x, y));
    DV_ASSERT(dv_tensor_is_contiguous(x) && dv_tensor_is_contiguous(y));
}

void dv_cpu_act(dv_backend *be, dv_tensor *y, const dv_tensor *x, dv_act a) {
    check_same(y, x);
    DV_ASSERT((unsigned)a < DV_ACT_COUNT);
    const int64_t n = dv_tensor_nelem(x);
    const float *xs = x->data;
    float *ys = y->data;
    const int nt = DV_CPU_NT_FOR(be, 8 * n); // an expf/erff/tanhf weighs about 8 element operations
    // one loop per activation: no switch inside the element loop
    switch (a) {
    case DV_ACT_SILU:
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++) ys[i] = xs[i] / (1.0f + expf(-xs[i]));
        break;
    case DV_ACT_GELU_ERF:
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++) ys[i] = 0.5f * xs[i] * (1.0f + erff(xs[i] * 0.70710678118654752f));
        break;
    case DV_ACT_GELU_TANH:
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++) {
            const float v = xs[i];
            ys[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
        }
        break;
    default: // DV_ACT_QUICK_GELU
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++) ys[i] = xs[i] / (1.0f + expf(-1.702f * xs[i]));
        break;
    }
}

void dv_cpu_swiglu(dv_backend *be, dv_tensor *y, const dv_tensor *gate, const dv_tensor *up) {
    check_same(y, gate);
    check_same(y, up);
    const int64_t n = dv_tensor_nelem(y);
    const float *g = gate->data, *u = up->data;
    float *ys = y->data;
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT_FOR(be, 8 * n))
    for (int64_t i = 0; i < n; i++) ys[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void dv_cpu_mul_sigmoid(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *gate) {
    DV_ASSERT(y->dtype == DV_DTYPE_F32 && x->dtype == DV_DTYPE_F32 && gate->dtype == DV_DTYPE_F32);
    DV_ASSERT(y->n_dims == 2 && dv_tensor_same_shape(y, x) && dv_tensor_same_shape(y, gate));
    DV_ASSERT(y->nb[1] == 4 && x->nb[1] == 4 && gate->nb[1] == 4);
    const int64_t M = y->ne[0], N = y->ne[1];
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT_FOR(be, 8 * M * N))
    for (int64_t m = 0; m < M; m++) {
        const float *xr = dv_cpu_row(x, m), *gr = dv_cpu_row(gate, m);
        float *yr = dv_cpu_row(y, m);
        for (int64_t i = 0; i < N; i++) yr[i] = xr[i] * (1.0f / (1.0f + expf(-gr[i])));
    }
}
