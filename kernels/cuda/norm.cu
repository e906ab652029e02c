// norm.cu: RMSNorm and LayerNorm over the last dim: one block per row, block reductions in fp32.
#include "kernels/cuda/common.cuh"

static __global__ void rms_norm_kernel(float *y, const float *x, const void *w, dv_dtype wt, int D, long long ldx,
                                       long long ldy, float eps) {
    const float *xr = x + (long long)blockIdx.x * ldx;
    float *yr = y + (long long)blockIdx.x * ldy;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) ss += xr[i] * xr[i];
    ss = dv_block_sum(ss);
    const float r = rsqrtf(ss / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) yr[i] = (xr[i] * r) * dv_ld(w, wt, i);
}

static __global__ void layer_norm_kernel(float *y, const float *x, const void *w, const void *b, dv_dtype wt,
                                         dv_dtype bt, int D, long long ldx, long long ldy, float eps) {
    const float *xr = x + (long long)blockIdx.x * ldx;
    float *yr = y + (long long)blockIdx.x * ldy;
    float s = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) s += xr[i];
    const float mean = dv_block_sum(s) / (float)D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) ss += (xr[i] - mean) * (xr[i] - mean);
    const float r = rsqrtf(dv_block_sum(ss) / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        yr[i] = (xr[i] - mean) * r * dv_ld(w, wt, i) + (b ? dv_ld(b, bt, i) : 0.0f);
}

static int threads_for(long long D) { return D >= 1024 ? 1024 : (int)DV_CEIL_DIV(D, 32) * 32; }

void dv_cuda_rms_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, float eps) {
    const long long M = x->ne[0], D = x->ne[1];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->ne[0] == M && y->ne[1] == D && w->ne[0] == D);
    if (!M) return;
    rms_norm_kernel<<<(unsigned)M, threads_for(D), 0, dv_cuda(be)->stream>>>(
        (float *)y->data, (const float *)x->data, w->data, w->dtype, (int)D, (long long)(x->nb[0] / 4),
        (long long)(y->nb[0] / 4), eps);
    DV_CUDA_LAUNCHED(be, "rms_norm");
}

void dv_cuda_layer_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *b,
                        float eps) {
    const long long M = x->ne[0], D = x->ne[1];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->ne[0] == M && y->ne[1] == D && w->ne[0] == D && (!b || b->ne[0] == D));
    if (!M) return;
    layer_norm_kernel<<<(unsigned)M, threads_for(D), 0, dv_cuda(be)->stream>>>(
        (float *)y->data, (const float *)x->data, w->data, b ? b->data : NULL, w->dtype, b ? b->dtype : DV_DTYPE_F32,
        (int)D, (long long)(x->nb[0] / 4), (long long)(y->nb[0] / 4), eps);
    DV_CUDA_LAUNCHED(be, "layer_norm");
}
