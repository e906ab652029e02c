// elementwise.cu: embedding rows, add, and gather_sum (the mixture-of-experts combine).
#include "kernels/cuda/common.cuh"

static __global__ void embed_kernel(float *y, const void *table, dv_dtype tt, const int32_t *ids, long long T,
                                    long long D, long long ldy, long long ldt) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= T * D) return;
    const long long t = i / D, d = i % D;
    y[t * ldy + d] = dv_ld(table, tt, (long long)ids[t] * ldt + d);
}

static __global__ void add_kernel(float *y, const float *a, const float *b, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a[i] + b[i];
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

void dv_cuda_add(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b) {
    DV_ASSERT(dv_tensor_same_shape(y, a) && dv_tensor_same_shape(y, b) && dv_tensor_is_contiguous(y));
    const long long n = dv_tensor_nelem(y);
    if (!n) return;
    add_kernel<<<(unsigned)DV_CEIL_DIV(n, 256), 256, 0, dv_cuda(be)->stream>>>((float *)y->data, (const float *)a->data,
                                                                               (const float *)b->data, n);
    DV_CUDA_LAUNCHED(be, "add");
}

// one thread per output element: the k terms in order j = 0 .. k-1, as the CPU op sums them
static __global__ void gather_sum_kernel(float *y, const float *x, const int32_t *idx, const float *w, long long T,
                                         long long k, long long N) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= T * N) return;
    const long long t = i / N, n = i % N;
    float acc = 0.0f;
    for (long long j = 0; j < k; j++) acc += w[t * k + j] * x[(long long)idx[t * k + j] * N + n];
    y[i] = acc;
}

void dv_cuda_gather_sum(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *idx, const dv_tensor *w) {
    const long long T = idx->ne[0], k = idx->ne[1], N = x->ne[1];
    DV_ASSERT(idx->dtype == DV_DTYPE_I32 && w->dtype == DV_DTYPE_F32 && dv_tensor_same_shape(w, idx)); // idx validated by the caller
    DV_ASSERT(y->ne[0] == T && y->ne[1] == N && dv_tensor_is_contiguous(y) && dv_tensor_is_contiguous(x));
    if (!T || !N) return;
    gather_sum_kernel<<<(unsigned)DV_CEIL_DIV(T * N, 256), 256, 0, dv_cuda(be)->stream>>>(
        (float *)y->data, (const float *)x->data, (const int32_t *)idx->data, (const float *)w->data, T, k, N);
    DV_CUDA_LAUNCHED(be, "gather_sum");
}
