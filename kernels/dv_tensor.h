// dv_tensor.h: a view of n-d data (dtype, shape, byte strides, device). A tensor never owns its
// memory: weights are views into an mmap'd safetensors file (CPU) or a device arena (CUDA);
// activations are views into buffers the model allocates once at load time.
//
// Shapes are written outermost first, as PyTorch prints them: a Linear weight is (out, in) with
// ne = {out, in} and nb = {in * elem, elem}. Unused trailing dims are 1.
#ifndef DV_TENSOR_H
#define DV_TENSOR_H

#include "core/dv_dtype.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DV_MAX_DIMS 4

typedef enum dv_device { DV_DEVICE_CPU = 0, DV_DEVICE_CUDA } dv_device;

typedef struct dv_tensor {
    dv_dtype dtype;
    dv_device device;
    int n_dims;
    int64_t ne[DV_MAX_DIMS]; // shape, outermost first
    size_t nb[DV_MAX_DIMS];  // stride of each dim in bytes
    void *data;              // not owned
    const char *name;        // for messages; may be NULL
} dv_tensor;

// A contiguous view of `data` with the given shape (n_dims <= DV_MAX_DIMS).
dv_tensor dv_tensor_make(dv_dtype dtype, void *data, int n_dims, const int64_t *shape);
// Shorthands for contiguous 1-d/2-d/3-d views.
dv_tensor dv_tensor_1d(dv_dtype dtype, void *data, int64_t n0);
dv_tensor dv_tensor_2d(dv_dtype dtype, void *data, int64_t n0, int64_t n1);
dv_tensor dv_tensor_3d(dv_dtype dtype, void *data, int64_t n0, int64_t n1, int64_t n2);
int64_t dv_tensor_nelem(const dv_tensor *t);
size_t dv_tensor_nbytes(const dv_tensor *t); // of a contiguous tensor
int dv_tensor_is_contiguous(const dv_tensor *t);
// Rows [r0, r0+n) of dim 0, as a view.
dv_tensor dv_tensor_rows(const dv_tensor *t, int64_t r0, int64_t n);
// True when shapes are equal over all dims.
int dv_tensor_same_shape(const dv_tensor *a, const dv_tensor *b);
// "(2, 64)" into buf, for error messages.
const char *dv_tensor_shape_str(const dv_tensor *t, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
