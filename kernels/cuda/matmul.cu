// matmul.cu: y (M, N) = x (M, K) @ w (N, K)^T + bias through cuBLAS, fp32 accumulation.
// F32 weights: SGEMM. BF16/F16 weights: the activations are rounded to the weight dtype in a scratch
// buffer and cublasGemmEx runs bf16/f16 x bf16/f16 -> f32 (tensor cores), as the issue specifies
// (bf16 paths are held to rel L2 < 1e-2 against the CPU).
// Row-major y = x w^T is column-major y^T = w x^T: cuBLAS sees A = w (K x N, transposed), B = x.
#include "kernels/cuda/common.cuh"

// ---- kernels ----
template <typename T>
static __global__ void to_half_rows(T *dst, const float *x, long long M, long long K, long long ldx) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * K) return;
    const long long m = i / K, k = i % K;
    dst[i] = (T)x[m * ldx + k];
}

static __global__ void add_bias(float *y, const void *b, dv_dtype bt, long long M, long long N, long long ldy) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * N) return;
    const long long m = i / N, n = i % N;
    y[m * ldy + n] += dv_ld(b, bt, n);
}

// ---- launchers ----
static void to_half_rows_cuda(void *dst, dv_dtype t, const float *x, long long M, long long K, long long ldx,
                              cudaStream_t st) {
    const long long n = M * K;
    const int threads = 256;
    const unsigned blocks = (unsigned)DV_CEIL_DIV(n, threads);
    if (t == DV_DTYPE_BF16)
        to_half_rows<__nv_bfloat16><<<blocks, threads, 0, st>>>((__nv_bfloat16 *)dst, x, M, K, ldx);
    else
        to_half_rows<__half><<<blocks, threads, 0, st>>>((__half *)dst, x, M, K, ldx);
}

void dv_cuda_matmul(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *bias) {
    dv_cuda_ctx *c = dv_cuda(be);
    const long long M = x->ne[0], K = x->ne[1], N = w->ne[0];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && w->ne[1] == K && y->ne[0] == M && y->ne[1] == N);
    DV_ASSERT(x->nb[1] == 4 && y->nb[1] == 4 && w->nb[1] == dv_dtype_size(w->dtype) && (!bias || bias->ne[0] == N));
    if (M == 0 || N == 0) return;
    const int ldx = (int)(x->nb[0] / 4), ldy = (int)(y->nb[0] / 4), ldw = (int)(w->nb[0] / dv_dtype_size(w->dtype));
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st;
    if (w->dtype == DV_DTYPE_F32) {
        st = cublasSgemm(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, (const float *)w->data, ldw,
                         (const float *)x->data, ldx, &zero, (float *)y->data, ldy);
    } else {
        DV_ASSERT(w->dtype == DV_DTYPE_BF16 || w->dtype == DV_DTYPE_F16);
        void *xh = dv_cuda_scratch(be, (size_t)(M * K) * 2); // (M, K) in the weight dtype
        if (!xh) return;
        to_half_rows_cuda(xh, w->dtype, (const float *)x->data, M, K, ldx, c->stream);
        DV_CUDA_LAUNCHED(be, "matmul: activations to half precision");
        const cudaDataType_t dt = w->dtype == DV_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
        st = cublasGemmEx(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, w->data, dt, ldw, xh, dt,
                          (int)K, &zero, y->data, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
    if (st != CUBLAS_STATUS_SUCCESS && !c->status)
        c->status = dv_error_set(DV_EDEVICE, "cuBLAS matmul (%lld x %lld) @ (%lld x %lld)^T %s failed: status %d", M, K,
                                 N, K, dv_dtype_name(w->dtype), (int)st);
    if (bias) {
        add_bias<<<(unsigned)DV_CEIL_DIV(M * N, 256), 256, 0, c->stream>>>((float *)y->data, bias->data, bias->dtype,
                                                                           M, N, ldy);
        DV_CUDA_LAUNCHED(be, "matmul bias");
    }
}
