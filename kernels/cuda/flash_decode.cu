// flash_decode.cu: split-K ("flash-decoding") attention of ONE query token over a KV cache.
//
// Grid (splits, Hkv): block (s, g) takes keys [s * chunk, (s + 1) * chunk) of kv head g's visible
// keys (retrieval pages, or a streaming head's sink + ring, then the token's own key: the host lists
// them as intervals numbered consecutively, so a streaming head only ever has sink + window keys and
// its later splits exit at once) and serves all G = Hq / Hkv query heads of the group, so each K/V row
// is read once per group (GQA). Inside a block, 8 groups of 16 lanes each take a key; a lane holds D/16
// consecutive dims (a group reads one whole row; rows of any KV type, dequantized in registers as they
// load: kv_rows.cuh, so a q4 cache moves 1/6.4 of an f32 one's bytes). Math is fp32 (decode is
// bandwidth-bound). Each block leaves (max, sum, unnormalized output) per query head; a second small
// kernel merges the splits.
#include "kernels/cuda/attn_path.h"
#include "kernels/cuda/attn_table.cuh"

#define FD_THREADS 128
#define FD_GROUPS (FD_THREADS / 16)

template <int D, int GM>
static __global__ void __launch_bounds__(FD_THREADS)
flash_decode_kernel(float *ws_o, float *ws_ml, const float *q, long long qs1, int G, const dv_ival_dev *ivals,
                    const dv_dhead_dev *heads, long long chunk, float scale_log2) {
    constexpr int EPL = D / 16;
    __shared__ float sm_acc[FD_GROUPS][GM][D];
    __shared__ float sm_m[FD_GROUPS][GM], sm_l[FD_GROUPS][GM];
    const int split = blockIdx.x, g = blockIdx.y, n_splits = gridDim.x;
    const int tid = threadIdx.x, grp = tid / 16, sub = tid % 16;
    const dv_dhead_dev hd = heads[g];

    float qr[GM][EPL], acc[GM][EPL], m[GM], l[GM];
#pragma unroll
    for (int hh = 0; hh < GM; hh++) {
        const float *qh = q + (long long)(g * G + (hh < G ? hh : 0)) * qs1 + sub * EPL;
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            qr[hh][e] = hh < G ? qh[e] * scale_log2 : 0.f;
            acc[hh][e] = 0.f;
        }
        m[hh] = -INFINITY;
        l[hh] = 0.f;
    }

    const long long c0 = (long long)split * chunk, c1 = c0 + chunk < hd.total ? c0 + chunk : hd.total;
    if (c0 < c1) {
        // the interval holding c0 (binary search: starts are increasing)
        int a = hd.off, b = hd.off + hd.cnt - 1;
        while (a < b) {
            const int mid = (a + b + 1) / 2;
            if (ivals[mid].start <= c0) a = mid;
            else b = mid - 1;
        }
        for (int i = a; i < hd.off + hd.cnt && ivals[i].start < c1; i++) {
            const dv_ival_dev iv = ivals[i];
            const long long r0 = (c0 > iv.start ? c0 : iv.start) - iv.start;
            const long long r1 = (c1 < iv.start + iv.n ? c1 : iv.start + iv.n) - iv.start;
            for (long long r = r0 + grp; r < r1; r += FD_GROUPS) {
                float kr[EPL], vr[EPL];
                const char *kp = iv.k + r * iv.ks, *vp = iv.v + r * iv.vs; // rows in their stored types
#pragma unroll
                for (int e = 0; e < EPL; e += 4) {
                    const float4 k4 = dv_kv_load4(kp, iv.kt, sub * EPL + e), v4 = dv_kv_load4(vp, iv.vt, sub * EPL + e);
                    kr[e] = k4.x, kr[e + 1] = k4.y, kr[e + 2] = k4.z, kr[e + 3] = k4.w;
                    vr[e] = v4.x, vr[e + 1] = v4.y, vr[e + 2] = v4.z, vr[e + 3] = v4.w;
                }
#pragma unroll
                for (int hh = 0; hh < GM; hh++) {
                    if (hh >= G) break;
                    float d = 0.f;
#pragma unroll
                    for (int e = 0; e < EPL; e++) d = fmaf(qr[hh][e], kr[e], d);
#pragma unroll
                    for (int o = 8; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                    const float nm = fmaxf(m[hh], d), corr = exp2f(m[hh] - nm), w = exp2f(d - nm);
                    m[hh] = nm;
                    l[hh] = l[hh] * corr + w;
#pragma unroll
                    for (int e = 0; e < EPL; e++) acc[hh][e] = fmaf(w, vr[e], acc[hh][e] * corr);
                }
            }
        }
    }
    // merge the 8 key groups of the block
#pragma unroll
    for (int hh = 0; hh < GM; hh++) {
#pragma unroll
        for (int e = 0; e < EPL; e++) sm_acc[grp][hh][sub * EPL + e] = acc[hh][e];
        if (sub == 0) {
            sm_m[grp][hh] = m[hh];
            sm_l[grp][hh] = l[hh];
        }
    }
    __syncthreads();
    for (int i = tid; i < G * D; i += FD_THREADS) {
        const int hh = i / D, d = i % D;
        float M = -INFINITY;
        for (int k = 0; k < FD_GROUPS; k++) M = fmaxf(M, sm_m[k][hh]);
        float o = 0.f, L = 0.f;
        if (M != -INFINITY)
            for (int k = 0; k < FD_GROUPS; k++) {
                const float w = exp2f(sm_m[k][hh] - M);
                o += w * sm_acc[k][hh][d];
                L += w * sm_l[k][hh];
            }
        const long long slot = (long long)(g * G + hh) * n_splits + split;
        ws_o[slot * D + d] = o;
        if (d == 0) {
            ws_ml[slot * 2] = M;
            ws_ml[slot * 2 + 1] = L;
        }
    }
}

// out (Hq, D): per query head, the splits' partial results merged with their maxima.
static __global__ void flash_decode_reduce(float *out, long long os1, const float *ws_o, const float *ws_ml,
                                           int n_splits, int D) {
    const int h = blockIdx.x;
    const float *ml = ws_ml + (long long)h * n_splits * 2;
    float M = -INFINITY;
    for (int s = 0; s < n_splits; s++) M = fmaxf(M, ml[2 * s]);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.f, L = 0.f;
        if (M != -INFINITY)
            for (int s = 0; s < n_splits; s++) {
                const float w = exp2f(ml[2 * s] - M);
                o += w * ws_o[((long long)h * n_splits + s) * D + d];
                L += w * ml[2 * s + 1];
            }
        out[(long long)h * os1 + d] = L > 0.f ? o / L : 0.f;
    }
}

void dv_cuda_flash_decode(dv_backend *be, float *out, long long os1, const float *q, long long qs1, int Hq, int Hkv,
                          int D, const dv_ival_dev *ivals, const dv_dhead_dev *heads, long long max_total, float scale) {
    const int G = Hq / Hkv;
    // (max_total >= 1: the query always sees its own key)
    DV_ASSERT(dv_cuda_flash_decode_supports(D, G) && max_total > 0);
    // ~512 keys per block; smaller chunks when that leaves the GPU idle, at most 4096 splits
    long long chunk = 512;
    while (chunk > 64 && DV_CEIL_DIV(max_total, chunk) * Hkv < 512) chunk /= 2;
    if (DV_CEIL_DIV(max_total, chunk) > 4096) chunk = DV_CEIL_DIV(max_total, 4096);
    const int n_splits = (int)DV_CEIL_DIV(max_total, chunk);
    const size_t slots = (size_t)Hq * (size_t)n_splits;
    float *ws = (float *)dv_cuda_attn_ws(be, slots * (size_t)(D + 2) * sizeof(float)); // (Hq, splits, D) + (Hq, splits, 2)
    if (!ws) return; // error recorded (sticky)
    float *ws_o = ws, *ws_ml = ws + slots * (size_t)D;
    const float sl2 = scale * 1.4426950408889634f;
    cudaStream_t st = dv_cuda(be)->stream;
    const dim3 grid((unsigned)n_splits, (unsigned)Hkv);
    const int GM = G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : 8;
#define DV_FD_LAUNCH(DD, GG)                                                                                      \
    flash_decode_kernel<DD, GG><<<grid, FD_THREADS, 0, st>>>(ws_o, ws_ml, q, qs1, G, ivals, heads, chunk, sl2)
    if (D == 64) {
        if (GM == 1) DV_FD_LAUNCH(64, 1);
        else if (GM == 2) DV_FD_LAUNCH(64, 2);
        else if (GM == 4) DV_FD_LAUNCH(64, 4);
        else DV_FD_LAUNCH(64, 8);
    } else {
        if (GM == 1) DV_FD_LAUNCH(128, 1);
        else if (GM == 2) DV_FD_LAUNCH(128, 2);
        else if (GM == 4) DV_FD_LAUNCH(128, 4);
        else DV_FD_LAUNCH(128, 8);
    }
#undef DV_FD_LAUNCH
    DV_CUDA_LAUNCHED(be, "flash decode (split-K)");
    flash_decode_reduce<<<(unsigned)Hq, D, 0, st>>>(out, os1, ws_o, ws_ml, n_splits, D);
    DV_CUDA_LAUNCHED(be, "flash decode (merge)");
}
