// softmax.c: numerically stable softmax over the last dim of (M, N) F32 rows (y may alias x).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <math.h>

void dv_cpu_softmax(dv_backend *be, dv_tensor *y, const dv_tensor *x) {
    const int64_t M = x->ne[0], N = x->ne[1];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && x->n_dims == 2 && y->n_dims == 2);
    DV_ASSERT(y->ne[0] == M && y->ne[1] == N && x->nb[1] == sizeof(float) && y->nb[1] == sizeof(float));
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT(be))
    for (int64_t m = 0; m < M; m++) {
        const float *xr = dv_cpu_row(x, m);
        float *yr = dv_cpu_row(y, m);
        float mx = -INFINITY;
        for (int64_t i = 0; i < N; i++) mx = xr[i] > mx ? xr[i] : mx;
        if (mx == -INFINITY) mx = 0.0f; // a fully masked row gives exp(-inf) = 0, then 0 / 0 below
        double s = 0;
        for (int64_t i = 0; i < N; i++) {
            yr[i] = expf(xr[i] - mx);
            s += yr[i];
        }
        const float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < N; i++) yr[i] *= inv;
    }
}
