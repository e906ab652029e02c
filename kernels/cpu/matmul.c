// matmul.c: y (M, N) = x (M, K) @ w (N, K)^T + bias  (nn.Linear), weights in F32, F16 or BF16.
//
// F32 weights go straight to cblas_sgemm. Half-precision weights are never converted whole:
//  - few rows (decode, M <= DV_GEMV_MAX_M): a threaded dot-product kernel converts each weight row
//    on the fly (memory-bound: reads the weights once, in their file dtype);
//  - many rows (prefill): tiles of DV_TILE_N weight rows are converted into a scratch buffer owned by
//    the backend and multiplied with sgemm, so the conversion cost is amortized over M.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <cblas.h>
#include <stdlib.h>

#define DV_GEMV_MAX_M 4
#define DV_TILE_N 256

// dot(x, w_row) for a bf16/f16 row; the omp simd reduction lets gcc vectorize the sum.
static inline float dot_bf16(const float *x, const uint16_t *w, int64_t K) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < K; k++) acc += x[k] * dv_bf16_to_f32(w[k]);
    return acc;
}

static inline float dot_f16(const float *x, const uint16_t *w, int64_t K) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < K; k++) acc += x[k] * dv_f16_to_f32(w[k]);
    return acc;
}

static void gemv_half(dv_tensor *y, const dv_tensor *x, const dv_tensor *w, int64_t M, int64_t N, int64_t K) {
    const int bf = w->dtype == DV_DTYPE_BF16;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const uint16_t *wr = (const uint16_t *)((const char *)w->data + (size_t)n * w->nb[0]);
        for (int64_t m = 0; m < M; m++) {
            const float *xr = dv_cpu_row(x, m);
            dv_cpu_row(y, m)[n] = bf ? dot_bf16(xr, wr, K) : dot_f16(xr, wr, K);
        }
    }
}

static float *scratch(dv_backend *be, size_t n) {
    dv_cpu_ctx *c = be->ctx;
    if (c->scratch_cap < n) {
        float *p = NULL;
        DV_ASSERT(posix_memalign((void **)&p, 64, n * sizeof(float)) == 0);
        free(c->scratch);
        c->scratch = p;
        c->scratch_cap = n;
    }
    return c->scratch;
}

void dv_cpu_matmul(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *bias) {
    const int64_t M = x->ne[0], K = x->ne[1], N = w->ne[0];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32);
    DV_ASSERT(w->ne[1] == K && y->ne[0] == M && y->ne[1] == N);
    DV_ASSERT(x->nb[1] == sizeof(float) && y->nb[1] == sizeof(float) && w->nb[1] == dv_dtype_size(w->dtype));
    DV_ASSERT(!bias || bias->ne[0] == N);
    const int ldx = (int)(x->nb[0] / sizeof(float)), ldy = (int)(y->nb[0] / sizeof(float));
    if (M == 0 || N == 0) return;

    if (w->dtype == DV_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x->data, ldx, w->data,
                    (int)(w->nb[0] / sizeof(float)), 0.0f, y->data, ldy);
    } else {
        DV_ASSERT(w->dtype == DV_DTYPE_BF16 || w->dtype == DV_DTYPE_F16);
        if (M <= DV_GEMV_MAX_M) {
            gemv_half(y, x, w, M, N, K);
        } else {
            float *tile = scratch(be, (size_t)DV_TILE_N * (size_t)K); // (DV_TILE_N, K) F32
            for (int64_t n0 = 0; n0 < N; n0 += DV_TILE_N) {
                const int64_t tn = N - n0 < DV_TILE_N ? N - n0 : DV_TILE_N;
#pragma omp parallel for schedule(static)
                for (int64_t r = 0; r < tn; r++)
                    dv_cpu_to_f32(tile + r * K, (const char *)w->data + (size_t)(n0 + r) * w->nb[0], w->dtype,
                                  (size_t)K);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)tn, (int)K, 1.0f, x->data, ldx, tile,
                            (int)K, 0.0f, (float *)y->data + n0, ldy);
            }
        }
    }
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int64_t m = 0; m < M; m++) {
            float *yr = dv_cpu_row(y, m);
            for (int64_t n = 0; n < N; n++) yr[n] += dv_cpu_weight_at(bias, n);
        }
    }
}
