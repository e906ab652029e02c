// attn_table.cuh: the device-side description of what each kv head's queries may attend to, shared by
// the attention kernels (attention.cu, flash_attn.cu, flash_decode.cu).
//
// A head has a list of runs: keys at consecutive positions pos0 .. pos0+n-1, row r of K at
// k + r * ks floats (V likewise), runs sorted by position and disjoint (a KV cache's pages or sink +
// ring pieces, then the chunk's own keys). sink/window is the streaming mask of dv_kv_head_view
// (window 0 = none). The host builds the table once per op call and uploads it in one copy.
#pragma once

#include "kernels/cuda/common.cuh"

struct dv_run_dev {
    const float *k, *v;
    long long pos0, n, ks, vs;
};

struct dv_head_dev {
    int off, cnt;             // runs [off, off + cnt) of the table
    long long sink, window;
};

// Decode (one query at position p): the rows p can see, as intervals of rows of the runs, numbered
// consecutively per head: interval i covers the head's visible keys [start, start + n).
struct dv_ival_dev {
    const float *k, *v;       // first row of the interval
    long long ks, vs, n, start;
};

struct dv_dhead_dev {
    int off, cnt;             // intervals [off, off + cnt)
    long long total;          // visible keys of this head
};

// The key rows [lo, hi) of a run that some query at positions [p_lo, p_hi] can see: at most two
// intervals (the sink part and the window part), as CPU attn_core.c's dv_cpu_attn_run chooses them.
// Returns the number of intervals written to lo[], hi[] (positions, not rows).
__host__ __device__ __forceinline__ int dv_run_visible(long long pos0, long long n, long long p_lo, long long p_hi,
                                                       int causal, long long sink, long long window, long long *lo,
                                                       long long *hi) {
    long long end = pos0 + n;
    if (causal && end > p_hi + 1) end = p_hi + 1;
    if (end <= pos0) return 0;
    if (window <= 0) {
        lo[0] = pos0;
        hi[0] = end;
        return 1;
    }
    int k = 0;
    const long long s_end = sink < end ? sink : end;
    if (s_end > pos0) {
        lo[k] = pos0;
        hi[k++] = s_end;
    }
    long long w0 = p_lo - window;
    if (w0 < pos0) w0 = pos0;
    if (w0 < s_end) w0 = s_end;
    if (w0 < end) {
        lo[k] = w0;
        hi[k++] = end;
    }
    return k;
}

// Kernel launchers (return 0 when launched, 1 when the shape is not handled: the caller falls back).
// out/q rows: element (t, h, d) at base + t * s0 + h * s1 + d floats.
int dv_cuda_flash_attn(dv_backend *be, float *out, long long os0, long long os1, const float *q, long long qs0,
                       long long qs1, long long Tq, int Hq, int Hkv, int D, const dv_run_dev *runs,
                       const dv_head_dev *heads, float scale, int causal, long long q_pos0);
int dv_cuda_flash_decode(dv_backend *be, float *out, long long os1, const float *q, long long qs1, int Hq, int Hkv,
                         int D, const dv_ival_dev *ivals, const dv_dhead_dev *heads, long long max_total, float scale);
// Shapes the tensor-core / split-K kernels take (so the host can skip building tables they need).
int dv_cuda_flash_attn_supports(int D);
int dv_cuda_flash_decode_supports(int D, int group);
