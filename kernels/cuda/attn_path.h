// attn_path.h: which CUDA attention kernel an attention / attention_kv call runs, as one plain-C
// function of the op's own arguments. attention.cu dispatches on it and tests/test_cuda_backend_ops.c
// asks it for the tolerance of the path a shape takes, so the selection rules exist once.
//
//  - flash prefill (flash_attn.cu): tensor cores, bf16 mma with fp32 accumulation, 64 x 64 tiles;
//    head dims 16/32/64/128, K/V rows 16-byte aligned, Q/out rows 8-byte aligned;
//  - split-K decode (flash_decode.cu): one causal query token over a KV cache (attention_kv), fp32,
//    head dims 64/128, GQA groups <= 8, the same alignment;
// Cached rows of every KV type (f32/bf16/f16/q8/q4) are read in place by all three, dequantized as
// they are loaded; the fast kernels need each segment's rows aligned as dv_cuda_kv_row_align says.
//  - fp32 baseline (attention.cu): one warp per (query row, head), for everything else; also every
//    causal single-query call of the plain attention op. DV_ATTN_FP32=1 forces it.
// Every kernel loads only the key rows some query of its block can see (dv_attn_mask_run: causal end,
// sink interval, window interval); the flash kernel masks per element only tiles that are not
// dv_attn_mask_all_visible.
#ifndef DV_CUDA_ATTN_PATH_H
#define DV_CUDA_ATTN_PATH_H

#include "kernels/dv_backend.h"

#include <stdint.h>
#include <stdlib.h>

typedef enum dv_cuda_attn_kernel {
    DV_CUDA_ATTN_FP32 = 0,      // warp per (query row, head), fp32
    DV_CUDA_ATTN_FLASH_PREFILL, // tensor cores, Q/K/V rounded to bf16
    DV_CUDA_ATTN_SPLITK_DECODE, // one query token, split-K over the visible keys, fp32
} dv_cuda_attn_kernel;

typedef struct dv_cuda_attn_path {
    dv_cuda_attn_kernel kernel;
    int bf16;     // the kernel rounds Q/K/V to bf16 (relative L2 ~1e-3 vs fp32), else fp32 throughout
    int key_tile; // keys per masking step: 64 (flash: per-element masks only on partial tiles), else 1
} dv_cuda_attn_path;

static inline int dv_cuda_flash_attn_supports(int64_t D) { return D == 16 || D == 32 || D == 64 || D == 128; }
static inline int dv_cuda_flash_decode_supports(int64_t D, int64_t group) {
    return (D == 64 || D == 128) && group >= 1 && group <= 8;
}

static inline int dv_cuda_aligned(const void *p, uintptr_t bytes) { return ((uintptr_t)p & (bytes - 1)) == 0; }

// Alignment the fast kernels' loads of four elements need in a row of KV type t (kernels/cuda/kv_rows.cuh):
// 16 bytes for f32, 8 for bf16/f16, 4 for q8/q4 (the scale word and four codes).
static inline uintptr_t dv_cuda_kv_row_align(dv_kv_type t) {
    return t == DV_KV_F32 ? 16 : t == DV_KV_BF16 || t == DV_KV_F16 ? 8 : 4;
}

// K/V rows the flash kernels' 16-byte loads may read: row and head strides multiples of 4 floats.
static inline int dv_cuda_kv_aligned(const dv_tensor *k, const dv_tensor *v) {
    return k->nb[0] % 16 == 0 && k->nb[1] % 16 == 0 && v->nb[0] % 16 == 0 && v->nb[1] % 16 == 0 &&
           dv_cuda_aligned(k->data, 16) && dv_cuda_aligned(v->data, 16);
}

// The path of attention (views == NULL; causal as given) or attention_kv (views: one per kv head of
// k, always causal) for these arguments, exactly as the op takes them.
static inline dv_cuda_attn_path dv_cuda_attn_select(const dv_tensor *out, const dv_tensor *q, const dv_tensor *k,
                                                    const dv_tensor *v, const dv_kv_head_view *views, int causal) {
    const int64_t T = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = k->ne[1];
    dv_cuda_attn_path path = {DV_CUDA_ATTN_FP32, 0, 1};
    if (views) causal = 1;
    else if (causal && T == 1) return path; // the plain op's single causal query: the warp kernel
    const char *env = getenv("DV_ATTN_FP32");
    if (env && *env && *env != '0') return path;
    int ok = dv_cuda_kv_aligned(k, v);
    for (int64_t g = 0; views && g < Hkv; g++)
        for (int s = 0; s < views[g].n_segs; s++) {
            const dv_kv_seg *sg = &views[g].segs[s];
            const uintptr_t ka = dv_cuda_kv_row_align(sg->kt), va = dv_cuda_kv_row_align(sg->vt);
            ok &= sg->k_stride % (int64_t)ka == 0 && sg->v_stride % (int64_t)va == 0 && dv_cuda_aligned(sg->k, ka) &&
                  dv_cuda_aligned(sg->v, va);
        }
    ok &= q->nb[0] % 8 == 0 && q->nb[1] % 8 == 0 && out->nb[0] % 8 == 0 && out->nb[1] % 8 == 0 &&
          dv_cuda_aligned(q->data, 8) && dv_cuda_aligned(out->data, 8);
    if (!ok) return path;
    if (views && T == 1 && dv_cuda_flash_decode_supports(D, Hq / Hkv)) {
        path.kernel = DV_CUDA_ATTN_SPLITK_DECODE;
    } else if (dv_cuda_flash_attn_supports(D)) {
        path.kernel = DV_CUDA_ATTN_FLASH_PREFILL;
        path.bf16 = 1;
        path.key_tile = 64;
    }
    return path;
}

#endif
