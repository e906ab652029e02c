// dv_dtype.c: dtype sizes and names (names follow the safetensors header spelling).
#include "core/dv_dtype.h"

static const struct { const char *name; size_t size; } dv_dtypes[DV_DTYPE_COUNT] = {
    [DV_DTYPE_F32] = {"F32", 4}, [DV_DTYPE_F16] = {"F16", 2}, [DV_DTYPE_BF16] = {"BF16", 2},
    [DV_DTYPE_I32] = {"I32", 4}, [DV_DTYPE_I64] = {"I64", 8}, [DV_DTYPE_U8] = {"U8", 1},
};

size_t dv_dtype_size(dv_dtype t) { return (unsigned)t < DV_DTYPE_COUNT ? dv_dtypes[t].size : 0; }

const char *dv_dtype_name(dv_dtype t) { return (unsigned)t < DV_DTYPE_COUNT ? dv_dtypes[t].name : "?"; }

int dv_dtype_from_name(const char *s) {
    for (int i = 0; i < DV_DTYPE_COUNT; i++)
        if (strcmp(s, dv_dtypes[i].name) == 0) return i;
    return -1;
}
