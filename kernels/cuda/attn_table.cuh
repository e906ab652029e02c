// attn_table.cuh: the device-side description of what each kv head's queries may attend to, shared by
// the attention kernels (attention.cu, flash_attn.cu, flash_decode.cu).
//
// A head has a list of runs: keys at consecutive positions pos0 .. pos0+n-1, row r of K at
// k + r * ks bytes stored as KV row type kt (kernels/dv_kv_type.h; V likewise, vt; the kernels
// dequantize as they load, kernels/cuda/kv_rows.cuh), runs sorted by position and disjoint (a KV cache's pages or sink +
// ring pieces, then the chunk's own keys). sink/window is the streaming mask of dv_kv_head_view
// (window 0 = none; the rule is kernels/dv_attn_mask.h). The host builds the table once per op call
// and uploads it in one copy.
#pragma once

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kv_rows.cuh"
#include "kernels/dv_attn_mask.h"

struct dv_run_dev {
    const char *k, *v;        // row 0 of the run
    long long pos0, n, ks, vs; // ks, vs: bytes between rows
    int kt, vt;               // dv_kv_type of the K and V rows
};

struct dv_head_dev {
    int off, cnt;             // runs [off, off + cnt) of the table
    long long sink, window;
};

// Decode (one query at position p): the rows p can see, as intervals of rows of the runs, numbered
// consecutively per head: interval i covers the head's visible keys [start, start + n).
struct dv_ival_dev {
    const char *k, *v;        // first row of the interval
    long long ks, vs, n, start; // ks, vs in bytes
    int kt, vt;
};

struct dv_dhead_dev {
    int off, cnt;             // intervals [off, off + cnt)
    long long total;          // visible keys of this head
};

// Kernel launchers for the shapes kernels/cuda/attn_path.h selects them for.
// out/q rows: element (t, h, d) at base + t * s0 + h * s1 + d floats.
void dv_cuda_flash_attn(dv_backend *be, float *out, long long os0, long long os1, const float *q, long long qs0,
                        long long qs1, long long Tq, int Hq, int Hkv, int D, const dv_run_dev *runs,
                        const dv_head_dev *heads, float scale, int causal, long long q_pos0);
void dv_cuda_flash_decode(dv_backend *be, float *out, long long os1, const float *q, long long qs1, int Hq, int Hkv,
                          int D, const dv_ival_dev *ivals, const dv_dhead_dev *heads, long long max_total, float scale);
