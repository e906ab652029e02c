// dv_attn_mask.h: the one statement of which keys a query may attend to (causal attention and the
// DuoAttention streaming rule), as static inline functions for host C (the KV cache, the CPU
// kernels) and CUDA device code (the CUDA kernels) alike.
//
// Positions are absolute: the query at position p, the key at position j.
//  - causal:            j <= p
//  - streaming, strict: causal and (j < sink or p - j <= recent): every query sees the sink and its
//                       `recent` predecessors (and itself);
//  - streaming, reference (the DuoAttention reference's chunked prefill): causal and (j >= c0 or
//                       j < sink or j >= c0 - recent) for a chunk starting at c0: the chunk's own
//                       tokens see each other causally, the cache before it holds sink + recent.
// A kernel receives the streaming rule as (sink, window): window = recent under strict semantics; 0
// under reference semantics, where what the cache keeps (dv_attn_mask_ring_start) already is the mask.
#ifndef DV_ATTN_MASK_H
#define DV_ATTN_MASK_H

#include <stdint.h>

#ifdef __CUDACC__
#define DV_MASK_FN static inline __host__ __device__
#else
#define DV_MASK_FN static inline
#endif

// The one rule: may the query at position p see the key at position j? window <= 0: no streaming
// mask (full attention, or a reference-semantics streaming head whose cache is the mask).
DV_MASK_FN int dv_attn_mask_visible(int64_t p, int64_t j, int causal, int64_t sink, int64_t window) {
    if (causal && j > p) return 0;
    return window <= 0 || j < sink || p - j <= window;
}

// The window a streaming head's kernels apply: `recent` under strict semantics, 0 under reference
// semantics (queries then see every cached key and the chunk causally).
DV_MASK_FN int64_t dv_attn_mask_window(int strict, int64_t recent) { return strict ? recent : 0; }

// First position a streaming head's ring still holds when `len` tokens have been cached: the cache
// keeps positions [0, min(len, sink)) and [dv_attn_mask_ring_start(len, sink, recent), len), i.e. a key
// j survives iff j < sink or j >= len - recent (the reference rule with c0 = len).
DV_MASK_FN int64_t dv_attn_mask_ring_start(int64_t len, int64_t sink, int64_t recent) {
    return len - recent > sink ? len - recent : sink;
}

// Are all keys at positions [k_lo, k_hi] visible to all queries at positions [p_lo, p_hi]? (Kernels
// apply per-element masks only to key tiles for which this is false.)
DV_MASK_FN int dv_attn_mask_all_visible(int64_t k_lo, int64_t k_hi, int64_t p_lo, int64_t p_hi, int causal,
                                        int64_t sink, int64_t window) {
    return (!causal || k_hi <= p_lo) && (window <= 0 || k_hi < sink || p_hi - k_lo <= window);
}

// The positions [lo[i], hi[i]) of a run of keys at positions pos0 .. pos0+n-1 that some query at
// positions [p_lo, p_hi] can see: at most two disjoint intervals (the sink part and the window part;
// one without a window). Keys outside them are invisible to every such query and are never loaded.
// Returns the number of intervals.
DV_MASK_FN int dv_attn_mask_run(int64_t pos0, int64_t n, int64_t p_lo, int64_t p_hi, int causal, int64_t sink,
                                int64_t window, int64_t lo[2], int64_t hi[2]) {
    int64_t end = pos0 + n; // one past the last position any query may see
    if (causal && end > p_hi + 1) end = p_hi + 1;
    if (end <= pos0) return 0;
    if (window <= 0) {
        lo[0] = pos0;
        hi[0] = end;
        return 1;
    }
    int k = 0;
    const int64_t s_end = sink < end ? sink : end;
    if (s_end > pos0) {
        lo[k] = pos0;
        hi[k++] = s_end;
    }
    int64_t w0 = p_lo - window;
    if (w0 < pos0) w0 = pos0;
    if (w0 < s_end) w0 = s_end;
    if (w0 < end) {
        lo[k] = w0;
        hi[k++] = end;
    }
    return k;
}

#undef DV_MASK_FN
#endif
