// embed.c: row gathers: the embedding lookup y (T, D) F32 = table (V, D)[ids (T)], table in
// F32/F16/BF16; gather_sum, the weighted gather that combines a mixture of experts' output rows.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

void dv_cpu_embed(dv_backend *be, dv_tensor *y, const dv_tensor *table, const dv_tensor *ids) {
    const int64_t T = ids->ne[0], V = table->ne[0], D = table->ne[1];
    DV_ASSERT(ids->dtype == DV_DTYPE_I32 && dv_tensor_nelem(ids) == T && dv_tensor_is_contiguous(ids));
    DV_ASSERT(dv_cpu_is_float(table->dtype) && table->n_dims == 2 && table->nb[1] == dv_dtype_size(table->dtype));
    DV_ASSERT(y->dtype == DV_DTYPE_F32 && y->ne[0] == T && y->ne[1] == D && y->nb[1] == sizeof(float));
    const int32_t *id = ids->data;
    for (int64_t t = 0; t < T; t++) DV_ASSERT(id[t] >= 0 && id[t] < V);
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT_FOR(be, T * D))
    for (int64_t t = 0; t < T; t++)
        dv_cpu_to_f32(dv_cpu_row(y, t), (const char *)table->data + (size_t)id[t] * table->nb[0], table->dtype,
                      (size_t)D);
}

void dv_cpu_gather_sum(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *idx, const dv_tensor *w) {
    const int64_t T = idx->ne[0], k = idx->ne[1], R = x->ne[0], N = x->ne[1];
    DV_ASSERT(idx->dtype == DV_DTYPE_I32 && idx->n_dims == 2 && dv_tensor_is_contiguous(idx));
    DV_ASSERT(w->dtype == DV_DTYPE_F32 && dv_tensor_same_shape(w, idx) && dv_tensor_is_contiguous(w));
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && x->n_dims == 2 && dv_tensor_is_contiguous(x));
    DV_ASSERT(y->dtype == DV_DTYPE_F32 && y->n_dims == 2 && y->ne[0] == T && y->ne[1] == N &&
              dv_tensor_is_contiguous(y) && y->data != x->data);
    const int32_t *id = idx->data;
    const float *wt = w->data, *xs = x->data;
    for (int64_t i = 0; i < T * k; i++) DV_ASSERT(id[i] >= 0 && id[i] < R);
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT_FOR(be, T * k * N))
    for (int64_t t = 0; t < T; t++) {
        float *yr = (float *)y->data + t * N;
        for (int64_t n = 0; n < N; n++) yr[n] = 0.0f;
        for (int64_t j = 0; j < k; j++) {
            const float wj = wt[t * k + j], *xr = xs + (int64_t)id[t * k + j] * N;
            for (int64_t n = 0; n < N; n++) yr[n] += wj * xr[n];
        }
    }
}
