// act.cu: activations (SiLU, GELU erf/tanh, quick GELU) and SwiGLU.
#include "kernels/cuda/common.cuh"

static __global__ void act_kernel(float *y, const float *x, long long n, int a) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = x[i];
    float r;
    switch (a) {
    case DV_ACT_SILU: r = v / (1.0f + expf(-v)); break;
    case DV_ACT_GELU_ERF: r = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); break;
    case DV_ACT_GELU_TANH: r = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v))); break;
    default: r = v / (1.0f + expf(-1.702f * v)); break;
    }
    y[i] = r;
}

static __global__ void swiglu_kernel(float *y, const float *g, const float *u, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void dv_cuda_act(dv_backend *be, dv_tensor *y, const dv_tensor *x, dv_act a) {
    DV_ASSERT(dv_tensor_same_shape(x, y) && dv_tensor_is_contiguous(x) && dv_tensor_is_contiguous(y));
    const long long n = dv_tensor_nelem(x);
    if (!n) return;
    act_kernel<<<(unsigned)DV_CEIL_DIV(n, 256), 256, 0, dv_cuda(be)->stream>>>((float *)y->data,
                                                                               (const float *)x->data, n, (int)a);
    DV_CUDA_LAUNCHED(be, "act");
}

void dv_cuda_swiglu(dv_backend *be, dv_tensor *y, const dv_tensor *gate, const dv_tensor *up) {
    DV_ASSERT(dv_tensor_same_shape(y, gate) && dv_tensor_same_shape(y, up) && dv_tensor_is_contiguous(y));
    const long long n = dv_tensor_nelem(y);
    if (!n) return;
    swiglu_kernel<<<(unsigned)DV_CEIL_DIV(n, 256), 256, 0, dv_cuda(be)->stream>>>(
        (float *)y->data, (const float *)gate->data, (const float *)up->data, n);
    DV_CUDA_LAUNCHED(be, "swiglu");
}
