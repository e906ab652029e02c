// dv_tensor.c: constructors and queries for dv_tensor views.
#include "kernels/dv_tensor.h"

#include "core/dv_error.h"

#include <stdio.h>

dv_tensor dv_tensor_make(dv_dtype dtype, void *data, int n_dims, const int64_t *shape) {
    DV_ASSERT(n_dims >= 1 && n_dims <= DV_MAX_DIMS);
    dv_tensor t = {.dtype = dtype, .device = DV_DEVICE_CPU, .n_dims = n_dims, .data = data};
    for (int d = 0; d < DV_MAX_DIMS; d++) t.ne[d] = d < n_dims ? shape[d] : 1;
    size_t stride = dv_dtype_size(dtype);
    for (int d = DV_MAX_DIMS - 1; d >= 0; d--) {
        t.nb[d] = stride;
        stride *= (size_t)t.ne[d];
    }
    return t;
}

dv_tensor dv_tensor_1d(dv_dtype dtype, void *data, int64_t n0) { return dv_tensor_make(dtype, data, 1, &n0); }

dv_tensor dv_tensor_2d(dv_dtype dtype, void *data, int64_t n0, int64_t n1) {
    int64_t s[2] = {n0, n1};
    return dv_tensor_make(dtype, data, 2, s);
}

dv_tensor dv_tensor_3d(dv_dtype dtype, void *data, int64_t n0, int64_t n1, int64_t n2) {
    int64_t s[3] = {n0, n1, n2};
    return dv_tensor_make(dtype, data, 3, s);
}

int64_t dv_tensor_nelem(const dv_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < DV_MAX_DIMS; d++) n *= t->ne[d];
    return n;
}

size_t dv_tensor_nbytes(const dv_tensor *t) { return (size_t)dv_tensor_nelem(t) * dv_dtype_size(t->dtype); }

int dv_tensor_is_contiguous(const dv_tensor *t) {
    size_t stride = dv_dtype_size(t->dtype);
    for (int d = DV_MAX_DIMS - 1; d >= 0; d--) {
        if (t->ne[d] != 1 && t->nb[d] != stride) return 0;
        stride *= (size_t)t->ne[d];
    }
    return 1;
}

dv_tensor dv_tensor_rows(const dv_tensor *t, int64_t r0, int64_t n) {
    DV_ASSERT(r0 >= 0 && n >= 0 && r0 + n <= t->ne[0]);
    dv_tensor v = *t;
    v.data = (char *)t->data + (size_t)r0 * t->nb[0];
    v.ne[0] = n;
    return v;
}

int dv_tensor_same_shape(const dv_tensor *a, const dv_tensor *b) {
    for (int d = 0; d < DV_MAX_DIMS; d++)
        if (a->ne[d] != b->ne[d]) return 0;
    return 1;
}

const char *dv_tensor_shape_str(const dv_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int d = 0; d < t->n_dims && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)t->ne[d]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}
