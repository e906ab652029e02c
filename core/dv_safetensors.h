// dv_safetensors.h: memory-mapped safetensors checkpoints, single-file or sharded.
//
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__": {str: str}}, then the data block; offsets are relative to the data
// block. Everything is validated on open: header length within the file, valid JSON, known dtypes,
// offsets inside the data block, end - begin == prod(shape) * dtype size, no two tensors
// overlapping. Tensor data stays in the map (file dtype, never copied).
#ifndef DV_SAFETENSORS_H
#define DV_SAFETENSORS_H

#include "core/dv_dtype.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DV_ST_MAX_DIMS 8

typedef struct dv_st_tensor {
    const char *name;
    dv_dtype dtype;
    int n_dims;
    int64_t shape[DV_ST_MAX_DIMS];
    const void *data; // inside the map
    size_t nbytes;
    const char *file; // the shard it lives in (for messages)
} dv_st_tensor;

typedef struct dv_safetensors dv_safetensors;

// `path` may be a .safetensors file, a model.safetensors.index.json (sharded: every shard it names
// is mapped and validated, and every tensor must be in the shard the index says), or a directory
// holding either (index preferred). Errors name the file and the problem.
int dv_safetensors_open(const char *path, dv_safetensors **out);
void dv_safetensors_free(dv_safetensors *st);

int dv_safetensors_count(const dv_safetensors *st);
const dv_st_tensor *dv_safetensors_at(const dv_safetensors *st, int i);
// NULL when absent (no error set).
const dv_st_tensor *dv_safetensors_find(const dv_safetensors *st, const char *name);
// Required tensor with an expected shape: DV_ENOTFOUND "model.safetensors: missing tensor 'x'" or
// DV_ESHAPE "...: tensor 'x' has shape (a, b), expected (c, d)". A negative expected dim matches any.
int dv_safetensors_get(const dv_safetensors *st, const char *name, int n_dims, const int64_t *shape,
                       const dv_st_tensor **out);
// Value of a "__metadata__" key (first file that has it), or NULL.
const char *dv_safetensors_metadata(const dv_safetensors *st, const char *key);
// Sum of all tensors' bytes.
size_t dv_safetensors_total_bytes(const dv_safetensors *st);

// ---- writing (synthetic checkpoints, test fixtures) ----
typedef struct dv_st_write_tensor {
    const char *name;
    dv_dtype dtype;
    int n_dims;
    int64_t shape[DV_ST_MAX_DIMS];
    const void *data; // prod(shape) * dtype size bytes; or NULL and fill != NULL
    // Called instead of reading `data` to stream large tensors: fill(buf, n_elems, first_elem, ctx)
    // writes n_elems elements (in dtype) starting at element first_elem.
    void (*fill)(void *buf, size_t n_elems, size_t first_elem, void *ctx);
    void *fill_ctx;
} dv_st_write_tensor;

// Writes a single-file safetensors atomically (temp file + rename; nothing left on failure).
// metadata: n_meta key/value pairs (may be 0).
int dv_safetensors_write(const char *path, const dv_st_write_tensor *tensors, int n,
                         const char *const *meta_keys, const char *const *meta_values, int n_meta);

#ifdef __cplusplus
}
#endif
#endif
