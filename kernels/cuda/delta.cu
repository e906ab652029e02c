// delta.cu: Gated DeltaNet ops (Qwen3.5 linear attention) and the attention output gate: the causal
// depthwise conv1d with its state, the gated delta rule, mul_sigmoid. The delta rule has the CPU's two
// forms: token by token (chunk <= 1, decode: one block per value head, thread j owning column j of the
// fp32 state in device memory) and the chunked WY / UT-transform form for prefill (kernels/cpu/delta.c
// gives the algebra): one block per value head walks the chunks, each chunk's products (K S0, Q S0,
// the masked K K^T and Q K^T, the state update) spread over the block's threads by output element,
// the unit-lower solve by columns (a column's forward substitution is independent of the others'),
// the chunk's matrices in the backend scratch. Plain fp32 FMA loops, no tensor cores; the op test
// compares both forms with the CPU's at odd chunk sizes.
#include "kernels/cuda/common.cuh"

// y[t][c] = silu(sum_j w[c][j] xx[t + j][c]), xx = [state (K-1 rows); x (T rows)]
static __global__ void conv1d_kernel(float *y, const float *x, long long ldx, const void *w, dv_dtype wt,
                                     const float *state, long long T, long long C, int K) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= T * C) return;
    const long long t = i / C, c = i % C;
    float s = 0.0f;
    for (int j = 0; j < K; j++) {
        const long long r = t + j;
        const float xv = r < K - 1 ? state[r * C + c] : x[(r - (K - 1)) * ldx + c];
        s = fmaf(dv_ld(w, wt, c * K + j), xv, s);
    }
    y[t * C + c] = s / (1.0f + expf(-s));
}

// state = rows T .. T+K-2 of xx, one thread per channel (ascending rows: in place is safe)
static __global__ void conv1d_state_kernel(float *state, const float *x, long long ldx, long long T, long long C,
                                           int K) {
    const long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int r = 0; r < K - 1; r++) {
        const long long src = T + r;
        state[r * C + c] = src < K - 1 ? state[src * C + c] : x[(src - (K - 1)) * ldx + c];
    }
}

void dv_cuda_conv1d_causal(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, dv_tensor *state) {
    const long long T = x->ne[0], C = x->ne[1], K = state->ne[0] + 1;
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && x->nb[1] == 4 && y->ne[0] == T && y->ne[1] == C && dv_tensor_is_contiguous(y));
    DV_ASSERT(state->ne[1] == C && dv_tensor_is_contiguous(state) && w->ne[0] == C && dv_tensor_nelem(w) == C * K);
    if (!T) return;
    cudaStream_t s = dv_cuda(be)->stream;
    const long long ldx = (long long)(x->nb[0] / 4);
    conv1d_kernel<<<(unsigned)DV_CEIL_DIV(T * C, 256), 256, 0, s>>>((float *)y->data, (const float *)x->data, ldx,
                                                                     w->data, w->dtype, (const float *)state->data, T,
                                                                     C, (int)K);
    DV_CUDA_LAUNCHED(be, "conv1d_causal");
    conv1d_state_kernel<<<(unsigned)DV_CEIL_DIV(C, 256), 256, 0, s>>>((float *)state->data, (const float *)x->data,
                                                                       ldx, T, C, (int)K);
    DV_CUDA_LAUNCHED(be, "conv1d_causal state");
}

#define DV_GDN_MAX_DK 512

// One block per value head h; thread j < dv owns column j of S (dk rows, row stride dv).
static __global__ void gdn_kernel(float *out, const float *q, const float *k, long long ldq, const float *v,
                                  long long ldv, const float *a, const float *b, long long ldab, const void *a_log,
                                  const void *dt_bias, dv_dtype pt, float *state, long long T, int Hk, int Hv, int dk,
                                  int dv) {
    __shared__ float qs[DV_GDN_MAX_DK], ks[DV_GDN_MAX_DK];
    const int h = blockIdx.x, kh = h / (Hv / Hk), j = threadIdx.x;
    float *S = state + (long long)h * dk * dv;
    const float al = expf(dv_ld(a_log, pt, h)), db = dv_ld(dt_bias, pt, h);
    for (long long t = 0; t < T; t++) {
        const float *qr = q + t * ldq + (long long)kh * dk, *kr = k + t * ldq + (long long)kh * dk;
        float sq = 0.0f, sk = 0.0f;
        for (int i = j; i < dk; i += blockDim.x) {
            const float qv = qr[i], kv = kr[i];
            qs[i] = qv, ks[i] = kv;
            sq += qv * qv, sk += kv * kv;
        }
        sq = dv_block_sum(sq); // synchronizes: qs, ks are complete
        sk = dv_block_sum(sk);
        const float rq = rsqrtf(sq + 1e-6f) * rsqrtf((float)dk), rk = rsqrtf(sk + 1e-6f);
        const float x = a[t * ldab + h] + db;
        const float g = -al * (x > 20.0f ? x : log1pf(expf(x)));
        const float beta = 1.0f / (1.0f + expf(-b[t * ldab + h])), decay = expf(g);
        if (j < dv) {
            float kv = 0.0f;
            for (int i = 0; i < dk; i++) kv = fmaf(S[(long long)i * dv + j], ks[i] * rk, kv);
            const float delta = beta * (v[t * ldv + (long long)h * dv + j] - decay * kv);
            float o = 0.0f;
            for (int i = 0; i < dk; i++) {
                float *sp = S + (long long)i * dv + j;
                const float sn = fmaf(ks[i] * rk, delta, *sp * decay);
                *sp = sn;
                o = fmaf(sn, qs[i] * rq, o);
            }
            out[(t * Hv + h) * dv + j] = o;
        }
        __syncthreads(); // qs, ks are rewritten by the next token
    }
}

// Floats of chunk scratch per value head: Q, K, Kd (C, dk), U, P (C, dv), L, M (C, C), gam, bet (C)
static __host__ __device__ long long gdn_chunk_ws(long long C, long long dk, long long dv) { return C * (3 * dk + 2 * dv + 2 * C + 2); }

// The chunked form: one block per value head h, chunks of C tokens in order; ws: this head's
// gdn_chunk_ws floats. Every phase writes what the next reads, a __syncthreads between them.
static __global__ void gdn_chunk_kernel(float *out, const float *q, const float *k, long long ldq, const float *v,
                                        long long ldv, const float *a, const float *b, long long ldab,
                                        const void *a_log, const void *dt_bias, dv_dtype pt, float *state, long long T,
                                        int Hk, int Hv, int dk, int dv, int C, float *ws_all) {
    const int h = blockIdx.x, kh = h / (Hv / Hk), tid = threadIdx.x, nth = blockDim.x;
    float *S = state + (long long)h * dk * dv;
    float *ws = ws_all + (long long)h * gdn_chunk_ws(C, dk, dv);
    float *Q = ws, *K = Q + (long long)C * dk, *Kd = K + (long long)C * dk, *U = Kd + (long long)C * dk;
    float *P = U + (long long)C * dv, *L = P + (long long)C * dv, *M = L + (long long)C * C, *gam = M + (long long)C * C;
    float *bet = gam + C;
    const float al = expf(dv_ld(a_log, pt, h)), db = dv_ld(dt_bias, pt, h);
    const float qscale = rsqrtf((float)dk);
    for (long long t0 = 0; t0 < T; t0 += C) {
        const int n = (int)(T - t0 < C ? T - t0 : C);
        // 1. normalised q, k, the log decay g (into gam) and beta, one thread per token
        for (int i = tid; i < n; i += nth) {
            const float *qr = q + (t0 + i) * ldq + (long long)kh * dk, *kr = k + (t0 + i) * ldq + (long long)kh * dk;
            float sq = 0.0f, sk = 0.0f;
            for (int d = 0; d < dk; d++) sq = fmaf(qr[d], qr[d], sq), sk = fmaf(kr[d], kr[d], sk);
            const float rq = (1.0f / sqrtf(sq + 1e-6f)) * qscale, rk = 1.0f / sqrtf(sk + 1e-6f);
            for (int d = 0; d < dk; d++) Q[i * dk + d] = qr[d] * rq, K[i * dk + d] = kr[d] * rk;
            const float x = a[(t0 + i) * ldab + h] + db;
            gam[i] = -al * (x > 20.0f ? x : log1pf(expf(x)));
            bet[i] = 1.0f / (1.0f + expf(-b[(t0 + i) * ldab + h]));
        }
        __syncthreads();
        if (tid == 0) // sequential cumulative sum, as the CPU's
            for (int i = 1; i < n; i++) gam[i] += gam[i - 1];
        __syncthreads();
        // 2. U = beta v - beta exp(gam) (K S0);  L = beta_i exp(gam_i - gam_j) k_i.k_j (j < i);
        //    P = Q S0;  M = exp(gam_i - gam_j) q_i.k_j (j <= i)
        for (int e = tid; e < n * dv; e += nth) {
            const int i = e / dv, j = e % dv;
            float ks = 0.0f, qs = 0.0f;
            for (int d = 0; d < dk; d++) {
                const float s = S[(long long)d * dv + j];
                ks = fmaf(K[i * dk + d], s, ks);
                qs = fmaf(Q[i * dk + d], s, qs);
            }
            U[i * dv + j] = bet[i] * v[(t0 + i) * ldv + (long long)h * dv + j] - bet[i] * expf(gam[i]) * ks;
            P[i * dv + j] = qs;
        }
        for (int e = tid; e < n * n; e += nth) {
            const int i = e / n, j = e % n;
            float kk = 0.0f, qk = 0.0f;
            if (j <= i)
                for (int d = 0; d < dk; d++) {
                    kk = fmaf(K[i * dk + d], K[j * dk + d], kk);
                    qk = fmaf(Q[i * dk + d], K[j * dk + d], qk);
                }
            const float dec = j <= i ? expf(gam[i] - gam[j]) : 0.0f;
            L[i * C + j] = j < i ? bet[i] * dec * kk : 0.0f;
            M[i * C + j] = qk * dec;
        }
        __syncthreads();
        // 3. (I + L) U = rhs: forward substitution, each thread its own columns
        for (int j = tid; j < dv; j += nth)
            for (int i = 1; i < n; i++) {
                float s = U[i * dv + j];
                for (int m = 0; m < i; m++) s = fmaf(-L[i * C + m], U[m * dv + j], s);
                U[i * dv + j] = s;
            }
        // Kd = K exp(gam_n - gam_i)
        for (int e = tid; e < n * dk; e += nth) Kd[e] = K[e] * expf(gam[n - 1] - gam[e / dk]);
        __syncthreads();
        // 4. O = exp(gam) (Q S0) + M U
        for (int e = tid; e < n * dv; e += nth) {
            const int i = e / dv, j = e % dv;
            float o = expf(gam[i]) * P[i * dv + j];
            for (int m = 0; m <= i; m++) o = fmaf(M[i * C + m], U[m * dv + j], o);
            out[((t0 + i) * Hv + h) * dv + j] = o;
        }
        // 5. S = exp(gam_n) S0 + Kd^T U (S0 is no longer read in this chunk: phases 2 and 4 are done with it)
        const float en = expf(gam[n - 1]);
        for (int e = tid; e < dk * dv; e += nth) {
            const int d = e / dv, j = e % dv;
            float s = en * S[e];
            for (int i = 0; i < n; i++) s = fmaf(Kd[i * dk + d], U[i * dv + j], s);
            S[e] = s;
        }
        __syncthreads(); // the next chunk rewrites the scratch and reads S
    }
}

void dv_cuda_gated_delta_rule(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k,
                              const dv_tensor *v, const dv_tensor *a, const dv_tensor *b, const dv_tensor *a_log,
                              const dv_tensor *dt_bias, dv_tensor *state, int chunk) {
    const long long T = q->ne[0];
    const int Hk = (int)q->ne[1], dk = (int)q->ne[2], Hv = (int)v->ne[1], dv = (int)v->ne[2];
    DV_ASSERT(q->nb[0] == k->nb[0] && q->nb[1] == (size_t)dk * 4 && k->nb[1] == (size_t)dk * 4 && v->nb[1] == (size_t)dv * 4);
    DV_ASSERT(Hv % Hk == 0 && dk <= DV_GDN_MAX_DK && dv <= 1024 && a->nb[0] == b->nb[0] && a_log->dtype == dt_bias->dtype);
    DV_ASSERT(dv_tensor_nelem(state) == (int64_t)Hv * dk * dv && dv_tensor_nelem(out) == T * Hv * dv);
    if (!T) return;
    if (chunk > 1) { // the chunked form (prefill)
        const long long C = chunk < T ? chunk : T;
        float *ws = (float *)dv_cuda_scratch(be, (size_t)(Hv * gdn_chunk_ws(C, dk, dv)) * sizeof(float));
        if (!ws) return; // the scratch failure is recorded (sticky)
        gdn_chunk_kernel<<<(unsigned)Hv, 256, 0, dv_cuda(be)->stream>>>(
            (float *)out->data, (const float *)q->data, (const float *)k->data, (long long)(q->nb[0] / 4),
            (const float *)v->data, (long long)(v->nb[0] / 4), (const float *)a->data, (const float *)b->data,
            (long long)(a->nb[0] / 4), a_log->data, dt_bias->data, a_log->dtype, (float *)state->data, T, Hk, Hv, dk,
            dv, (int)C, ws);
        DV_CUDA_LAUNCHED(be, "gated_delta_rule chunked");
        return;
    }
    const int threads = (int)DV_CEIL_DIV(dv, 32) * 32;
    gdn_kernel<<<(unsigned)Hv, threads, 0, dv_cuda(be)->stream>>>(
        (float *)out->data, (const float *)q->data, (const float *)k->data, (long long)(q->nb[0] / 4),
        (const float *)v->data, (long long)(v->nb[0] / 4), (const float *)a->data, (const float *)b->data,
        (long long)(a->nb[0] / 4), a_log->data, dt_bias->data, a_log->dtype, (float *)state->data, T, Hk, Hv, dk, dv);
    DV_CUDA_LAUNCHED(be, "gated_delta_rule");
}

static __global__ void mul_sigmoid_kernel(float *y, long long ldy, const float *x, long long ldx, const float *g,
                                          long long ldg, long long M, long long N) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * N) return;
    const long long m = i / N, n = i % N;
    y[m * ldy + n] = x[m * ldx + n] * (1.0f / (1.0f + expf(-g[m * ldg + n])));
}

void dv_cuda_mul_sigmoid(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *gate) {
    DV_ASSERT(dv_tensor_same_shape(y, x) && dv_tensor_same_shape(y, gate) && y->n_dims == 2);
    DV_ASSERT(y->nb[1] == 4 && x->nb[1] == 4 && gate->nb[1] == 4);
    const long long M = y->ne[0], N = y->ne[1];
    if (M * N == 0) return;
    mul_sigmoid_kernel<<<(unsigned)DV_CEIL_DIV(M * N, 256), 256, 0, dv_cuda(be)->stream>>>(
        (float *)y->data, (long long)(y->nb[0] / 4), (const float *)x->data, (long long)(x->nb[0] / 4),
        (const float *)gate->data, (long long)(gate->nb[0] / 4), M, N);
    DV_CUDA_LAUNCHED(be, "mul_sigmoid");
}
