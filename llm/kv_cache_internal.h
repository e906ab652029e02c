// kv_cache_internal.h: the dv_kv_cache struct, shared by kv_cache.c (the cache) and kv_cache_io.c
// (its serialization). Nothing outside llm/ includes this.
#ifndef DV_KV_CACHE_INTERNAL_H
#define DV_KV_CACHE_INTERNAL_H

#include "llm/dv_kv_cache.h"

typedef struct kv_layer {
    int n_ret, n_str;   // kv heads of each kind in this layer
    int *slot;          // (Hkv) index of the head among its kind, owned
    uint8_t *is_ret;    // (Hkv), owned
    // retrieval pages: page i holds K and V of tokens [i*P, (i+1)*P) as (n_ret, P) rows of rk / rv
    // bytes each (the cache's K and V row types, kernels/dv_kv_type.h)
    char **k_pages, **v_pages;  // (max_pages), backend memory, owned
    int n_pages;
    // streaming: (n_str, sink + recent) rows each; slots [0, sink) sink, [sink, sink+recent) ring
    char *k_str, *v_str;        // backend memory, owned
    dv_kv_head_view *views;     // (Hkv) host, owned
    dv_kv_seg *segs;            // (Hkv, max_pages + 3) host, owned
    dv_kv_block *blocks;        // (Hkv, max_pages + 2) host, owned: each head's storage (pages, or sink + ring)
    uint64_t layout_gen;        // changes with the blocks (dv_kv_head_view.layout_gen)
} kv_layer;

struct dv_kv_cache {
    dv_backend *be;
    int L, Hkv, D, P;
    int64_t n_ctx, len, sink, recent;
    int max_pages;
    dv_duo_prefill prefill;
    dv_kv_type kt, vt;  // row types of keys and values
    int64_t rk, rv;     // bytes of one key / value row: dv_kv_row_bytes(kt / vt, D)
    kv_layer *layers;
};

// Bytes of one retrieval page of layer ly with rows of `row` bytes: (n_ret, P) rows.
static inline size_t dv_kv_page_bytes(const dv_kv_cache *c, const kv_layer *ly, int64_t row) {
    return (size_t)ly->n_ret * (size_t)c->P * (size_t)row;
}
// Bytes of one streaming buffer of layer ly with rows of `row` bytes: (n_str, sink + recent) rows.
static inline size_t dv_kv_str_bytes(const dv_kv_cache *c, const kv_layer *ly, int64_t row) {
    return (size_t)ly->n_str * (size_t)(c->sink + c->recent) * (size_t)row;
}

#endif
