// matmul.c: y (M, N) = x (M, K) @ w (N, K)^T + bias  (nn.Linear), weights in F32, F16 or BF16.
//
// One thread pool: our OpenMP threads split the output columns N, and each calls a single-threaded
// cblas_sgemm on its tile (OpenBLAS runs with 1 thread; two spinning pools on the same cores made
// decode 25x slower). Half-precision weights are never converted whole:
//  - few rows (decode, M <= DV_GEMV_MAX_M): a dot-product kernel converts each weight row on the fly
//    (memory-bound: reads the weights once, in their file dtype);
//  - many rows (prefill): each thread converts a tile of weight rows into its scratch buffer and
//    multiplies it with sgemm, so the conversion is amortized over M.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <cblas.h>
#include <omp.h>
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

static inline float dot_f32(const float *x, const float *w, int64_t K) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < K; k++) acc += x[k] * w[k];
    return acc;
}

static inline float dot_f16(const float *x, const uint16_t *w, int64_t K) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < K; k++) acc += x[k] * dv_f16_to_f32(w[k]);
    return acc;
}

static void gemv(dv_tensor *y, const dv_tensor *x, const dv_tensor *w, int64_t M, int64_t N, int64_t K) {
    const dv_dtype dt = w->dtype;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const void *wr = (const char *)w->data + (size_t)n * w->nb[0];
        for (int64_t m = 0; m < M; m++) {
            const float *xr = dv_cpu_row(x, m);
            dv_cpu_row(y, m)[n] = dt == DV_DTYPE_F32    ? dot_f32(xr, wr, K)
                                  : dt == DV_DTYPE_BF16 ? dot_bf16(xr, wr, K)
                                                        : dot_f16(xr, wr, K);
        }
    }
}

// Per-thread conversion tiles: (n_threads, DV_TILE_N, K) F32, grown rarely, owned by the backend.
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
    DV_ASSERT(w->dtype == DV_DTYPE_F32 || w->dtype == DV_DTYPE_BF16 || w->dtype == DV_DTYPE_F16);
    DV_ASSERT(w->ne[1] == K && y->ne[0] == M && y->ne[1] == N);
    DV_ASSERT(x->nb[1] == sizeof(float) && y->nb[1] == sizeof(float) && w->nb[1] == dv_dtype_size(w->dtype));
    DV_ASSERT(!bias || bias->ne[0] == N);
    const int ldx = (int)(x->nb[0] / sizeof(float)), ldy = (int)(y->nb[0] / sizeof(float));
    if (M == 0 || N == 0) return;

    if (M <= DV_GEMV_MAX_M) {
        gemv(y, x, w, M, N, K);
    } else {
        const int nt = be->n_threads;
        // tiles small enough that every thread gets work, at most DV_TILE_N rows
        int64_t tile = (N + nt - 1) / nt;
        tile = tile < DV_TILE_N ? (tile + 15) / 16 * 16 : DV_TILE_N;
        float *scr = w->dtype == DV_DTYPE_F32 ? NULL : scratch(be, (size_t)nt * (size_t)tile * (size_t)K);
        const int64_t n_tiles = (N + tile - 1) / tile;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int64_t ti = 0; ti < n_tiles; ti++) {
            const int64_t n0 = ti * tile, tn = N - n0 < tile ? N - n0 : tile;
            const float *wt;
            int ldw;
            if (w->dtype == DV_DTYPE_F32) {
                wt = (const float *)((const char *)w->data + (size_t)n0 * w->nb[0]);
                ldw = (int)(w->nb[0] / sizeof(float));
            } else {
                float *buf = scr + (size_t)omp_get_thread_num() * (size_t)tile * (size_t)K; // (tile, K)
                for (int64_t r = 0; r < tn; r++)
                    dv_cpu_to_f32(buf + r * K, (const char *)w->data + (size_t)(n0 + r) * w->nb[0], w->dtype,
                                  (size_t)K);
                wt = buf;
                ldw = (int)K;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)tn, (int)K, 1.0f, x->data, ldx, wt, ldw,
                        0.0f, (float *)y->data + n0, ldy);
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
