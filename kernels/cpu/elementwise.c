// elementwise.c: y = a + b over contiguous F32 tensors of one shape (y may alias a or b).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

void dv_cpu_add(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b) {
    DV_ASSERT(y->dtype == DV_DTYPE_F32 && a->dtype == DV_DTYPE_F32 && b->dtype == DV_DTYPE_F32);
    DV_ASSERT(dv_tensor_same_shape(y, a) && dv_tensor_same_shape(y, b));
    DV_ASSERT(dv_tensor_is_contiguous(y) && dv_tensor_is_contiguous(a) && dv_tensor_is_contiguous(b));
    const int64_t n = dv_tensor_nelem(y);
    const float *as = a->data, *bs = b->data;
    float *ys = y->data;
#pragma omp parallel for simd schedule(static) num_threads(DV_CPU_NT_FOR(be, n))
    for (int64_t i = 0; i < n; i++) ys[i] = as[i] + bs[i];
}
