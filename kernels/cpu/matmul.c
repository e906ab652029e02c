// matmul.c: y (M, N) = x (M, K) @ w (N, K)^T + bias (N)   (nn.Linear), weights in F32, F16 or BF16.
//
// One thread pool: our OpenMP threads split the output columns N and OpenBLAS runs single-threaded
// inside them (cpu_backend.c). Half-precision weights are never converted whole:
//  - few rows (decode, M <= DV_GEMV_MAX_M): a dot-product kernel reads each weight row once, in its
//    file dtype, converting on the fly (decode is memory-bound: bytes of weights are the cost); one
//    row against bf16 weights on an AVX-512 BF16 CPU: bf16 dot products, no conversion (gemv_bfdp);
//  - many rows (prefill, ViT): each thread converts a tile of DV_TILE_N weight rows into its slice of
//    the backend's scratch and multiplies it with cblas_sgemm, so the conversion is amortized over M.
// x and y rows may be strided (nb[0]); elements within a row are contiguous.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"
#include "kernels/cpu/bf16_split.h"

#include <cblas.h>
#include <omp.h>

#define DV_GEMV_MAX_M 8
#define DV_TILE_N 256
#define DV_DOT_LANES 32   // independent partial sums: 4 AVX2 (2 AVX-512) accumulators, no FMA latency chain
#define DV_GEMV_CHUNK 512 // weight elements widened at once when M > 1 (2 KiB on the stack, stays in L1)
#define DV_GEMV_ROWS 16   // weight rows per scheduling chunk (24 KiB of a bf16 768-wide matrix)

// ---- dot products: fixed-width inner loops so gcc vectorizes them without -ffast-math ----

// pairwise sum of the partial sums (vector adds, not a 32-long scalar chain); acc is clobbered
static inline float lanes_sum(float *acc) {
    for (int w = DV_DOT_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

static inline float dot_f32(const float *restrict x, const float *restrict w, int64_t K) {
    float acc[DV_DOT_LANES] = {0};
    int64_t k = 0;
    for (; k + DV_DOT_LANES <= K; k += DV_DOT_LANES)
        for (int j = 0; j < DV_DOT_LANES; j++) acc[j] = DV_FMA(x[k + j], w[k + j], acc[j]);
    float tail = 0.0f;
    for (; k < K; k++) tail += x[k] * w[k];
    return lanes_sum(acc) + tail;
}

// bf16 -> f32 is a 16-bit shift, so the widening vectorizes (vpmovzxwd + vpslld)
static inline float dot_bf16(const float *restrict x, const uint16_t *restrict w, int64_t K) {
    float acc[DV_DOT_LANES] = {0};
    int64_t k = 0;
    for (; k + DV_DOT_LANES <= K; k += DV_DOT_LANES)
        for (int j = 0; j < DV_DOT_LANES; j++) acc[j] = DV_FMA(x[k + j], dv_bf16_to_f32(w[k + j]), acc[j]);
    float tail = 0.0f;
    for (; k < K; k++) tail += x[k] * dv_bf16_to_f32(w[k]);
    return lanes_sum(acc) + tail;
}

// f16 has no shift trick: widen 256 elements at a time (F16C in dv_cpu_to_f32), then the f32 FMAs
static inline float dot_f16(const float *restrict x, const uint16_t *restrict w, int64_t K) {
    float acc[DV_DOT_LANES] = {0}, tail = 0.0f;
    float wf[256]; // (kn) widened chunk of w
    for (int64_t k0 = 0; k0 < K; k0 += 256) {
        const int64_t kn = K - k0 < 256 ? K - k0 : 256, kv = kn / DV_DOT_LANES * DV_DOT_LANES;
        dv_cpu_to_f32(wf, w + k0, DV_DTYPE_F16, (size_t)kn);
        const float *restrict xc = x + k0;
        for (int64_t k = 0; k < kv; k += DV_DOT_LANES)
            for (int j = 0; j < DV_DOT_LANES; j++) acc[j] = DV_FMA(xc[k + j], wf[k + j], acc[j]);
        for (int64_t k = kv; k < kn; k++) tail += xc[k] * wf[k];
    }
    return lanes_sum(acc) + tail;
}

static inline float dot_any(const float *x, const void *w, dv_dtype dt, int64_t K) {
    return dt == DV_DTYPE_BF16 ? dot_bf16(x, w, K) : dt == DV_DTYPE_F16 ? dot_f16(x, w, K) : dot_f32(x, w, K);
}

static inline float bias_at(const dv_tensor *b, int64_t i) {
    const char *p = (const char *)b->data + (size_t)i * b->nb[b->n_dims - 1];
    return b->dtype == DV_DTYPE_F32    ? *(const float *)p
           : b->dtype == DV_DTYPE_BF16 ? dv_bf16_to_f32(*(const uint16_t *)p)
                                       : dv_f16_to_f32(*(const uint16_t *)p);
}

// ---- decode path: parallel over weight rows ----

DV_CPU_CLONES static void gemv(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *bias,
                 int64_t M, int64_t N, int64_t K) {
    const dv_dtype dt = w->dtype;
    // chunks of rows handed out as threads come free: a thread that was descheduled (a loaded
    // machine) does not leave its fixed half for the others to wait on at the join
#pragma omp parallel for schedule(dynamic, DV_GEMV_ROWS) num_threads(DV_CPU_NT(be))
    for (int64_t n = 0; n < N; n++) {
        const char *wr = (const char *)w->data + (size_t)n * w->nb[0];
        const float b = bias ? bias_at(bias, n) : 0.0f;
        if (M == 1) {
            dv_cpu_row(y, 0)[n] = dot_any(dv_cpu_row(x, 0), wr, dt, K) + b;
            continue;
        }
        // widen a chunk of the weight row once, use it for every x row; partial sums per row kept
        // across chunks (reduced once at the end)
        float acc[DV_GEMV_MAX_M][DV_DOT_LANES] = {{0}}, tail[DV_GEMV_MAX_M] = {0};
        float wf[DV_GEMV_CHUNK]; // (kn) F32 copy of w[n, k0 : k0 + kn]
        for (int64_t k0 = 0; k0 < K; k0 += DV_GEMV_CHUNK) {
            const int64_t kn = K - k0 < DV_GEMV_CHUNK ? K - k0 : DV_GEMV_CHUNK;
            const int64_t kv = kn / DV_DOT_LANES * DV_DOT_LANES; // vector part (chunks are whole but the last)
            const float *wc;
            if (dt == DV_DTYPE_F32) {
                wc = (const float *)wr + k0;
            } else {
                dv_cpu_to_f32(wf, wr + (size_t)k0 * 2, dt, (size_t)kn);
                wc = wf;
            }
            for (int64_t m = 0; m < M; m++) {
                const float *restrict xc = dv_cpu_row(x, m) + k0;
                float *restrict am = acc[m];
                for (int64_t k = 0; k < kv; k += DV_DOT_LANES)
                    for (int j = 0; j < DV_DOT_LANES; j++) am[j] = DV_FMA(xc[k + j], wc[k + j], am[j]);
                for (int64_t k = kv; k < kn; k++) tail[m] += xc[k] * wc[k];
            }
        }
        for (int64_t m = 0; m < M; m++) dv_cpu_row(y, m)[n] = lanes_sum(acc[m]) + tail[m] + b;
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// One x row against bf16 weights with AVX-512 BF16 dot products (vdpbf16ps: 32 bf16 products summed
// pairwise into 16 F32 lanes, each product exact), the weights read as stored: x is split once into
// three bf16 terms (bf16_split.h: |x - sum| <= 2^-27 |x|, so the sums are as F32's), three
// instructions per 32 weights where widening them costs six. Used when the CPU attention's
// instruction set is "avx512bf16" (dv_cpu_bf16dp), for K a multiple of 32.
#define DV_XT 3 // bf16 terms of x

// y[r] = the weight row at w0 + r * ws bytes . x (xt: DV_XT rows of K bf16), r < NR
DV_BF16_SPLIT_TARGET static inline __attribute__((always_inline)) void gemv_bfdp_rows(
    float *restrict y, const char *w0, size_t ws, const uint16_t *xt, int64_t K, const int NR) {
    __m512 acc[4][2]; // [row][even / odd 32-wide chunk]: independent chains cover the instruction's latency
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k0 = 0; k0 < K; k0 += 64)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const int64_t k = k0 + 32 * h;
            if (k >= K) break; // K % 64 == 32: the last chunk alone
            __m512bh xv[DV_XT];
#pragma GCC unroll 3
            for (int t = 0; t < DV_XT; t++) xv[t] = (__m512bh)_mm512_loadu_si512(xt + t * K + k);
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                const __m512bh wv = (__m512bh)_mm512_loadu_si512((const uint16_t *)(w0 + r * ws) + k);
                // smallest term first: the large one lands on a sum that already holds the small ones
                acc[r][h] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_dpbf16_ps(acc[r][h], xv[2], wv), xv[1], wv), xv[0], wv);
            }
        }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
}

DV_BF16_SPLIT_TARGET static void gemv_bfdp(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w,
                                           const dv_tensor *bias, int64_t N, int64_t K) {
    dv_cpu_ctx *c = be->ctx;
    // (DV_XT, K) bf16 terms of x (K / 2 floats each)
    uint16_t *xt = (uint16_t *)dv_cpu_grow(&c->mm_scratch, &c->mm_scratch_cap, (size_t)(DV_XT * K + 1) / 2);
    const float *xr = dv_cpu_row(x, 0);
    for (int64_t k = 0; k < K; k += 16) {
        __m256i t[DV_XT];
        dv_bf16_split3(_mm512_loadu_ps(xr + k), &t[0], &t[1], &t[2]);
        for (int i = 0; i < DV_XT; i++) _mm256_storeu_si256((__m256i *)(xt + i * K + k), t[i]);
    }
    float *yr = dv_cpu_row(y, 0);
    const int64_t n_chunks = (N + DV_GEMV_ROWS - 1) / DV_GEMV_ROWS;
#pragma omp parallel for schedule(dynamic, 1) num_threads(DV_CPU_NT(be))
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        const int64_t n1 = (ch + 1) * DV_GEMV_ROWS < N ? (ch + 1) * DV_GEMV_ROWS : N;
        int64_t n = ch * DV_GEMV_ROWS;
        for (; n + 4 <= n1; n += 4) gemv_bfdp_rows(yr + n, (const char *)w->data + (size_t)n * w->nb[0], w->nb[0], xt, K, 4);
        for (; n < n1; n++) gemv_bfdp_rows(yr + n, (const char *)w->data + (size_t)n * w->nb[0], w->nb[0], xt, K, 1);
        if (bias)
            for (int64_t j = ch * DV_GEMV_ROWS; j < n1; j++) yr[j] += bias_at(bias, j);
    }
}
#endif

// ---- prefill path: per-thread tiles of N, single-threaded sgemm each ----

static void gemm_tiles(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *bias,
                       int64_t M, int64_t N, int64_t K) {
    dv_cpu_ctx *c = be->ctx;
    const int nt = c->n_threads;
    const int ldx = (int)(x->nb[0] / sizeof(float)), ldy = (int)(y->nb[0] / sizeof(float));
    // tiles small enough that every thread gets work, at most DV_TILE_N rows, multiples of 16
    int64_t tile = (N + nt - 1) / nt;
    tile = tile < DV_TILE_N ? (tile + 15) / 16 * 16 : DV_TILE_N;
    const int64_t n_tiles = (N + tile - 1) / tile;
    // (nt, tile, K) F32 conversion tiles, one slice per thread
    float *scr = w->dtype == DV_DTYPE_F32
                     ? NULL
                     : dv_cpu_grow(&c->mm_scratch, &c->mm_scratch_cap, (size_t)nt * (size_t)tile * (size_t)K);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t ti = 0; ti < n_tiles; ti++) {
        const int64_t n0 = ti * tile, tn = N - n0 < tile ? N - n0 : tile;
        const float *wt;
        int ldw;
        if (w->dtype == DV_DTYPE_F32) {
            wt = (const float *)((const char *)w->data + (size_t)n0 * w->nb[0]);
            ldw = (int)(w->nb[0] / sizeof(float));
        } else {
            float *buf = scr + (size_t)omp_get_thread_num() * (size_t)tile * (size_t)K; // (tn, K)
            for (int64_t r = 0; r < tn; r++)
                dv_cpu_to_f32(buf + r * K, (const char *)w->data + (size_t)(n0 + r) * w->nb[0], w->dtype, (size_t)K);
            wt = buf;
            ldw = (int)K;
        }
        float *yt = (float *)y->data + n0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)tn, (int)K, 1.0f, (const float *)x->data,
                    ldx, wt, ldw, 0.0f, yt, ldy);
        if (bias) {
            float bt[DV_TILE_N]; // (tn) bias of this tile in F32
            for (int64_t j = 0; j < tn; j++) bt[j] = bias_at(bias, n0 + j);
            for (int64_t m = 0; m < M; m++) {
                float *yr = yt + m * (int64_t)ldy;
                for (int64_t j = 0; j < tn; j++) yr[j] += bt[j];
            }
        }
    }
}

void dv_cpu_matmul(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *bias) {
    const int64_t M = x->ne[0], K = x->ne[1], N = w->ne[0];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && dv_cpu_is_float(w->dtype));
    DV_ASSERT(x->n_dims == 2 && y->n_dims == 2 && w->n_dims == 2);
    DV_ASSERT(w->ne[1] == K && y->ne[0] == M && y->ne[1] == N && K > 0);
    DV_ASSERT(x->nb[1] == sizeof(float) && y->nb[1] == sizeof(float) && w->nb[1] == dv_dtype_size(w->dtype));
    // leading dims: whole floats, at least a row (sgemm's contract), and within int range
    DV_ASSERT(x->nb[0] % sizeof(float) == 0 && (M == 1 || x->nb[0] >= (size_t)K * sizeof(float)));
    DV_ASSERT(y->nb[0] % sizeof(float) == 0 && (M == 1 || y->nb[0] >= (size_t)N * sizeof(float)));
    DV_ASSERT(w->dtype != DV_DTYPE_F32 || (w->nb[0] % sizeof(float) == 0 && w->nb[0] >= (size_t)K * sizeof(float)));
    DV_ASSERT(M < INT32_MAX && N < INT32_MAX && K < INT32_MAX && x->nb[0] / 4 < INT32_MAX && y->nb[0] / 4 < INT32_MAX);
    DV_ASSERT(!bias || (dv_cpu_is_float(bias->dtype) && dv_tensor_nelem(bias) == N));
    if (M == 0 || N == 0) return;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    if (M == 1 && w->dtype == DV_DTYPE_BF16 && K % 32 == 0 && dv_cpu_bf16dp()) {
        gemv_bfdp(be, y, x, w, bias, N, K);
        return;
    }
#endif
    if (M <= DV_GEMV_MAX_M)
        gemv(be, y, x, w, bias, M, N, K);
    else
        gemm_tiles(be, y, x, w, bias, M, N, K);
}
