// elementwise.cu: embedding rows, add / mul / scale, and dtype conversion.
#include "kernels/cuda/common.cuh"

static __global__ void embed_kernel(float *y, const void *table, dv_dtype tt, const int32_t *ids, long long T,
                                    long long D, long long ldy, long long ldt) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= T * D) return;
    const long long t = i / D, d = i % D;
    y[t * ldy + d] = dv_ld(table, tt, (long long)ids[t] * ldt + d);
}

static __global__ void binary_kernel(float *y, const float *a, const float *b, float s, long long n, int op) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    y[i] = op == 0 ? a[i] + b[i] : op == 1 ? a[i] * b[i] : a[i] * s;
}

static __global__ void convert_kernel(void *y, dv_dtype yt, const void *x, dv_dtype xt, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = dv_ld(x, xt, i);
    if (yt == DV_DTYPE_F32) ((float *)y)[i] = v;
    else if (yt == DV_DTYPE_BF16) ((__nv_bfloat16 *)y)[i] = __float2bfloat16_rn(v);
    else ((__half *)y)[i] = __float2half_rn(v);
}

void dv_cuda_embed(dv_backend *be, dv_tensor *y, const dv_tensor *table, const dv_tensor *ids) {
    const long long T = ids->ne[0], D = table->ne[1];
    DV_ASSERT(ids->dtype == DV_DTYPE_I32 && y->ne[0] == T && y->ne[1] == D); // ids validated by the caller
    if (!T) return;
    embed_kernel<<<(unsigned)DV_CEIL_DIV(T * D, 256), 256, 0, dv_cuda(be)->stream>>>(
        (float *)y->data, table->data, table->dtype, (const int32_t *)ids->data, T, D, (long long)(y->nb[0] / 4),
        (long long)(table->nb[0] / dv_dtype_size(table->dtype)));
    DV_CUDA_LAUNCHED(be, "embed");
}

static void binary(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b, float s, int op,
                   const char *name) {
    DV_ASSERT(dv_tensor_same_shape(y, a) && (!b || dv_tensor_same_shape(y, b)) && dv_tensor_is_contiguous(y));
    const long long n = dv_tensor_nelem(y);
    if (!n) return;
    binary_kernel<<<(unsigned)DV_CEIL_DIV(n, 256), 256, 0, dv_cuda(be)->stream>>>(
        (float *)y->data, (const float *)a->data, b ? (const float *)b->data : NULL, s, n, op);
    DV_CUDA_LAUNCHED(be, name);
}

void dv_cuda_add(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b) { binary(be, y, a, b, 0, 0, "add"); }
void dv_cuda_mul(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b) { binary(be, y, a, b, 0, 1, "mul"); }
void dv_cuda_scale(dv_backend *be, dv_tensor *y, const dv_tensor *a, float s) { binary(be, y, a, NULL, s, 2, "scale"); }

void dv_cuda_convert(dv_backend *be, dv_tensor *y, const dv_tensor *x) {
    DV_ASSERT(dv_tensor_same_shape(y, x) && dv_tensor_is_contiguous(y) && dv_tensor_is_contiguous(x));
    const long long n = dv_tensor_nelem(x);
    if (!n) return;
    convert_kernel<<<(unsigned)DV_CEIL_DIV(n, 256), 256, 0, dv_cuda(be)->stream>>>(y->data, y->dtype, x->data,
                                                                                   x->dtype, n);
    DV_CUDA_LAUNCHED(be, "convert");
}
