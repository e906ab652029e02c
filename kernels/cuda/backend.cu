// backend.cu: the CUDA backend (placeholder: reports "no CUDA backend yet" until the CUDA issue).
#include "core/dv_error.h"
#include "kernels/dv_backend.h"

extern "C" dv_backend *dv_backend_cuda_init_impl(int device, int *status) {
    (void)device;
    *status = dv_error_set(DV_EUNSUPPORTED, "the CUDA backend is not implemented yet; use --device cpu");
    return NULL;
}
