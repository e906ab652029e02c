// flash_attn.cu: prefill attention on tensor cores, flash-attention-2 style.
//
// One block of 4 warps = 64 query rows of one query head; each warp owns 16 rows. Per KV tile of 64
// keys: S = Q K^T with mma.sync m16n8k16 (bf16 in, fp32 accumulate), mask, online softmax in fp32
// (base-2 exponent, the scale folded into Q), then O += P V with P rounded to bf16 (the score
// accumulators are reused as the A operand without a trip through shared memory; V's B operand comes
// from ldmatrix.trans). Q arrives as F32, K and V as F32 or as compact KV rows (bf16/f16/q8/q4,
// dequantized as the tile is loaded: kv_rows.cuh); all are rounded to bf16 as they enter registers /
// shared memory: CUDA prefill attention therefore has bf16 accuracy (tests hold it to relative L2 <
// 1e-2 against the CPU's fp32 over the same stored rows).
//
// Only the key rows some query of the block can see are visited (dv_attn_mask_run: causal end, sink
// interval, window interval), so a strict streaming head costs O(rows * (sink + window)) and causal
// attention skips the upper triangle; per-element masks are applied only to tiles not fully visible.
#include "kernels/cuda/attn_path.h"
#include "kernels/cuda/attn_table.cuh"

#include <stdint.h>

#define FA_BM 64     // query rows per block
#define FA_BN 64     // keys per tile
#define FA_THREADS 128

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

__device__ __forceinline__ void mma_bf16(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t *r, const void *smem) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

template <int D>
static __global__ void __launch_bounds__(FA_THREADS)
flash_attn_kernel(float *out, long long os0, long long os1, const float *q, long long qs0, long long qs1, long long Tq,
                  int Hq, int Hkv, const dv_run_dev *runs, const dv_head_dev *heads, float scale_log2, int causal,
                  long long q_pos0) {
    constexpr int LD = D + 8; // bf16 row pitch of the tiles: conflict-free fragment loads
    __shared__ __align__(16) __nv_bfloat16 sK[FA_BN * LD];
    __shared__ __align__(16) __nv_bfloat16 sV[FA_BN * LD];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gq = lane / 4, tq = lane % 4;
    // heavy (late, causal) query tiles first
    const long long t0 = (long long)(gridDim.x - 1 - blockIdx.x) * FA_BM;
    const int h = blockIdx.y, g = h / (Hq / Hkv);
    const long long rA = t0 + warp * 16 + gq, rB = rA + 8; // this thread's two query rows
    const long long pA = q_pos0 + rA, pB = q_pos0 + rB;
    const long long last = t0 + FA_BM - 1 < Tq - 1 ? t0 + FA_BM - 1 : Tq - 1;
    const long long p_lo = q_pos0 + t0, p_hi = q_pos0 + last;

    // Q fragments (A operand, row-major 16 x D per warp), pre-scaled by scale * log2(e)
    uint32_t qa[D / 16][4];
    {
        const float *qA = q + rA * qs0 + (long long)h * qs1, *qB = q + rB * qs0 + (long long)h * qs1;
        const bool okA = rA < Tq, okB = rB < Tq;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const int c0 = kk * 16 + 2 * tq, c1 = c0 + 8;
            float2 a0 = okA ? *(const float2 *)(qA + c0) : make_float2(0.f, 0.f);
            float2 b0 = okB ? *(const float2 *)(qB + c0) : make_float2(0.f, 0.f);
            float2 a1 = okA ? *(const float2 *)(qA + c1) : make_float2(0.f, 0.f);
            float2 b1 = okB ? *(const float2 *)(qB + c1) : make_float2(0.f, 0.f);
            qa[kk][0] = pack_bf16(a0.x * scale_log2, a0.y * scale_log2);
            qa[kk][1] = pack_bf16(b0.x * scale_log2, b0.y * scale_log2);
            qa[kk][2] = pack_bf16(a1.x * scale_log2, a1.y * scale_log2);
            qa[kk][3] = pack_bf16(b1.x * scale_log2, b1.y * scale_log2);
        }
    }
    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;

    const dv_head_dev hd = heads[g];
    for (int ri = 0; ri < hd.cnt; ri++) {
        const dv_run_dev run = runs[hd.off + ri];
        int64_t lo[2], hi[2];
        const int ni = dv_attn_mask_run(run.pos0, run.n, p_lo, p_hi, causal, hd.sink, hd.window, lo, hi);
#pragma unroll
        for (int ii = 0; ii < 2; ii++) { // (constant trip count: lo/hi stay in registers)
            if (ii >= ni) break;
            for (long long j = lo[ii]; j < hi[ii]; j += FA_BN) {
                // ---- tile load: rows j .. j+63 (positions) of the run, stored type -> bf16 ----
                __syncthreads(); // the previous tile is consumed
                for (int idx = tid; idx < FA_BN * (D / 4); idx += FA_THREADS) {
                    const int r = idx / (D / 4), c = (idx % (D / 4)) * 4;
                    float4 kv = make_float4(0.f, 0.f, 0.f, 0.f), vv = kv;
                    if (j + r < hi[ii]) {
                        const long long row = j + r - run.pos0; // dequantized from its stored type
                        kv = dv_kv_load4(run.k + row * run.ks, run.kt, c);
                        vv = dv_kv_load4(run.v + row * run.vs, run.vt, c);
                    }
                    *(uint2 *)&sK[r * LD + c] = make_uint2(pack_bf16(kv.x, kv.y), pack_bf16(kv.z, kv.w));
                    *(uint2 *)&sV[r * LD + c] = make_uint2(pack_bf16(vv.x, vv.y), pack_bf16(vv.z, vv.w));
                }
                __syncthreads();
                // ---- S = Q K^T (16 x 64 per warp) ----
                float s[FA_BN / 8][4];
#pragma unroll
                for (int nt = 0; nt < FA_BN / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
                    for (int nt = 0; nt < FA_BN / 8; nt++) {
                        const __nv_bfloat16 *kr = &sK[(nt * 8 + gq) * LD + kk * 16 + 2 * tq];
                        mma_bf16(s[nt], qa[kk], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
                    }
                // ---- mask (only where some query of the block cannot see the whole tile) ----
                const long long jl = j + FA_BN - 1;
                const bool full = jl < hi[ii] && dv_attn_mask_all_visible(j, jl, p_lo, p_hi, causal, hd.sink, hd.window);
                if (!full) {
#pragma unroll
                    for (int nt = 0; nt < FA_BN / 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const long long jp = j + nt * 8 + 2 * tq + (e & 1);
                            const long long p = e < 2 ? pA : pB;
                            if (!(jp < hi[ii] && dv_attn_mask_visible(p, jp, causal, hd.sink, hd.window)))
                                s[nt][e] = -INFINITY;
                        }
                }
                // ---- online softmax (rows A and B; a row's 64 scores sit in the 4 threads of a quad) ----
                float bA = -INFINITY, bB = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < FA_BN / 8; nt++) {
                    bA = fmaxf(bA, fmaxf(s[nt][0], s[nt][1]));
                    bB = fmaxf(bB, fmaxf(s[nt][2], s[nt][3]));
                }
                bA = fmaxf(bA, __shfl_xor_sync(0xffffffffu, bA, 1));
                bA = fmaxf(bA, __shfl_xor_sync(0xffffffffu, bA, 2));
                bB = fmaxf(bB, __shfl_xor_sync(0xffffffffu, bB, 1));
                bB = fmaxf(bB, __shfl_xor_sync(0xffffffffu, bB, 2));
                const float nA = fmaxf(mA, bA), nB = fmaxf(mB, bB);
                // a row with nothing visible yet keeps m = -inf: its weights are 0 (exp2(-inf))
                const float uA = nA == -INFINITY ? 0.f : nA, uB = nB == -INFINITY ? 0.f : nB;
                const float cA = exp2f(mA - uA), cB = exp2f(mB - uB);
                mA = nA;
                mB = nB;
                float sumA = 0.f, sumB = 0.f;
#pragma unroll
                for (int nt = 0; nt < FA_BN / 8; nt++) {
                    s[nt][0] = exp2f(s[nt][0] - uA);
                    s[nt][1] = exp2f(s[nt][1] - uA);
                    s[nt][2] = exp2f(s[nt][2] - uB);
                    s[nt][3] = exp2f(s[nt][3] - uB);
                    sumA += s[nt][0] + s[nt][1];
                    sumB += s[nt][2] + s[nt][3];
                }
                lA = lA * cA + sumA; // per-thread partial sums; the quad is reduced at the end
                lB = lB * cB + sumB;
#pragma unroll
                for (int i = 0; i < D / 8; i++) {
                    o[i][0] *= cA;
                    o[i][1] *= cA;
                    o[i][2] *= cB;
                    o[i][3] *= cB;
                }
                // ---- O += P V: P's accumulator layout is the A fragment layout of the next mma ----
#pragma unroll
                for (int kk = 0; kk < FA_BN / 16; kk++) {
                    uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                      pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                      pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                    for (int np = 0; np < D / 16; np++) {
                        uint32_t b[4];
                        const int vr = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8, vc = np * 16 + (lane / 16) * 8;
                        ldmatrix_x4_trans(b, &sV[vr * LD + vc]);
                        mma_bf16(o[2 * np], pa, b[0], b[1]);
                        mma_bf16(o[2 * np + 1], pa, b[2], b[3]);
                    }
                }
            }
        }
    }
    lA += __shfl_xor_sync(0xffffffffu, lA, 1);
    lA += __shfl_xor_sync(0xffffffffu, lA, 2);
    lB += __shfl_xor_sync(0xffffffffu, lB, 1);
    lB += __shfl_xor_sync(0xffffffffu, lB, 2);
    const float iA = lA > 0.f ? 1.f / lA : 0.f, iB = lB > 0.f ? 1.f / lB : 0.f;
    float *oA = out + rA * os0 + (long long)h * os1, *oB = out + rB * os0 + (long long)h * os1;
#pragma unroll
    for (int i = 0; i < D / 8; i++) {
        const int c = i * 8 + 2 * tq;
        if (rA < Tq) *(float2 *)(oA + c) = make_float2(o[i][0] * iA, o[i][1] * iA);
        if (rB < Tq) *(float2 *)(oB + c) = make_float2(o[i][2] * iB, o[i][3] * iB);
    }
}

void dv_cuda_flash_attn(dv_backend *be, float *out, long long os0, long long os1, const float *q, long long qs0,
                        long long qs1, long long Tq, int Hq, int Hkv, int D, const dv_run_dev *runs,
                        const dv_head_dev *heads, float scale, int causal, long long q_pos0) {
    DV_ASSERT(dv_cuda_flash_attn_supports(D));
    const dim3 grid((unsigned)DV_CEIL_DIV(Tq, FA_BM), (unsigned)Hq);
    const float sl2 = scale * 1.4426950408889634f;
    cudaStream_t st = dv_cuda(be)->stream;
#define DV_FA_LAUNCH(DD)                                                                                           \
    flash_attn_kernel<DD><<<grid, FA_THREADS, 0, st>>>(out, os0, os1, q, qs0, qs1, Tq, Hq, Hkv, runs, heads, sl2,   \
                                                       causal, q_pos0)
    switch (D) {
    case 16: DV_FA_LAUNCH(16); break;
    case 32: DV_FA_LAUNCH(32); break;
    case 64: DV_FA_LAUNCH(64); break;
    default: DV_FA_LAUNCH(128); break;
    }
#undef DV_FA_LAUNCH
    DV_CUDA_LAUNCHED(be, "flash attention (prefill)");
}
