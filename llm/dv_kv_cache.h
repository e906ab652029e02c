// dv_kv_cache.h: the DuoAttention hybrid KV cache.
//
// Per layer, each KV head is either a retrieval head or a streaming head (from a dv_duo_pattern; no
// pattern = all retrieval = plain full attention):
//  - retrieval heads keep every token, in pages of page_size tokens allocated as the context grows
//    (a million-token context never needs one contiguous reallocation);
//  - streaming heads keep only the first `sink` tokens and a ring of the last `recent` tokens:
//    constant memory, whatever the context length.
// Keys are stored after RoPE at their absolute positions (no re-indexing), as the reference does.
// The cache hands attention per-head views (dv_kv_head_view) of what each head may see, and appends
// a chunk's new keys/values after its attention ran.
#ifndef DV_KV_CACHE_H
#define DV_KV_CACHE_H

#include "kernels/dv_backend.h"
#include "llm/dv_duo_pattern.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dv_duo_prefill {
    DV_DUO_PREFILL_REFERENCE = 0, // chunk tokens see each other causally; cache = sink + recent (reference)
    DV_DUO_PREFILL_STRICT,        // every streaming query sees only sink + its `recent` predecessors
} dv_duo_prefill;

typedef struct dv_kv_cache dv_kv_cache;

typedef struct dv_kv_cache_params {
    dv_backend *backend;            // not owned
    int n_layers, n_kv_heads, head_dim;
    int64_t n_ctx;                  // capacity in tokens
    int page_size;                  // tokens per retrieval page (0 = 256)
    const dv_duo_pattern *pattern;  // NULL: every head is a retrieval head; copied, not kept
    dv_duo_prefill prefill;
    dv_kv_type k_type, v_type;      // row types of keys and values (kernels/dv_kv_type.h); 0 = f32.
                                    // Types other than f32 need the backend's kv_store op.
} dv_kv_cache_params;

// Memory report: bytes actually allocated, by kind and per layer.
typedef struct dv_kv_memory {
    size_t retrieval_bytes, streaming_bytes, total_bytes;
    // K + V bytes one more token adds to the retrieval heads (all layers), by the layout formula:
    // n_retrieval_heads * (dv_kv_row_bytes(k_type, D) + dv_kv_row_bytes(v_type, D))
    size_t bytes_per_token;
    dv_kv_type k_type, v_type;
    int n_retrieval_heads, n_streaming_heads; // over all layers
    int64_t n_tokens;
} dv_kv_memory;

int dv_kv_cache_init(const dv_kv_cache_params *p, dv_kv_cache **out);
void dv_kv_cache_free(dv_kv_cache *c);

// Views of layer `l` for a chunk starting at the current length: one per kv head (Hkv entries),
// valid until the next append. Host memory owned by the cache.
const dv_kv_head_view *dv_kv_cache_views(dv_kv_cache *c, int l);
// Appends the chunk's keys/values of layer l: k_new, v_new (T, Hkv, D). Call once per layer, then
// dv_kv_cache_commit(T) after the last layer. Errors: context full, out of memory (pages).
int dv_kv_cache_append(dv_kv_cache *c, int l, const dv_tensor *k_new, const dv_tensor *v_new);
void dv_kv_cache_commit(dv_kv_cache *c, int64_t T);
// Makes room for T more tokens (allocates retrieval pages); DV_EINVAL when n_ctx would overflow.
int dv_kv_cache_reserve(dv_kv_cache *c, int64_t T);
// Forgets tokens at positions >= n (n <= length). Streaming heads can only rewind within their
// window: rewinding past what a ring still holds returns DV_EINVAL (clear with n = 0 instead).
int dv_kv_cache_rewind(dv_kv_cache *c, int64_t n);
void dv_kv_cache_memory(const dv_kv_cache *c, dv_kv_memory *m);
// Benchmarks: makes the cache hold n tokens (positions 0 .. n-1) of random keys/values without any
// model run: every retrieval page and streaming buffer gets one random block (fast on a GPU: device
// copies only). n below the current length rewinds instead.
int dv_kv_cache_fill_synthetic(dv_kv_cache *c, int64_t n, uint64_t seed);
// Checks that keys/values of head dim D can be stored as k_type / v_type on backend be (q4: D a
// multiple of 32; anything but f32: the backend's kv_store). 0 or DV_EINVAL / DV_EUNSUPPORTED with a
// message naming the type.
int dv_kv_cache_check_types(const dv_backend *be, int D, dv_kv_type k_type, dv_kv_type v_type);
// Per-layer report lines ("layer  3: 2 retrieval (1.0 MiB), 6 streaming (0.6 MiB)") to `f`.
void dv_kv_cache_print_report(const dv_kv_cache *c, void *file);
int dv_kv_cache_is_retrieval(const dv_kv_cache *c, int l, int kv_head);

// ---- serialization (kv_cache_io.c) ----
// Byte streams for saving/loading contexts: the caller chooses the destination (a file, a tmpfile for
// an in-memory snapshot) and may checksum what passes. write: 0 ok, <0 error (message set). read:
// 0 when all n bytes were read, <0 on error or a short read (message set; DV_EFORMAT for an
// unexpected end of the stream, DV_EIO for a read error).
typedef int (*dv_io_write_fn)(void *ctx, const void *buf, size_t n);
typedef int (*dv_io_read_fn)(void *ctx, void *buf, size_t n);
// Fixed-width little-endian fields of serialized headers: nbytes (<= 8) low bytes of v.
static inline void dv_io_put_le(uint8_t *p, uint64_t v, int nbytes) {
    for (int i = 0; i < nbytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t dv_io_get_le(const uint8_t *p, int nbytes) {
    uint64_t v = 0;
    for (int i = 0; i < nbytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
// Ready-made callbacks for a stdio stream: ctx is a FILE *.
int dv_io_write_stdio(void *file, const void *buf, size_t n);
int dv_io_read_stdio(void *file, void *buf, size_t n);

// Writes the cache's layout (layers, kv heads, head dim, page size, sink, recent, prefill semantics,
// K and V row types, token count, each head's kind) and contents: retrieval heads only their used rows,
// streaming heads their valid sink + ring slots. Data is downloaded through the backend one page at
// a time (one host staging buffer of at most a page), never the whole cache. Format: docs/FORMATS.md.
int dv_kv_cache_write(const dv_kv_cache *c, dv_io_write_fn w, void *ctx);
// Exact number of bytes dv_kv_cache_write writes now.
int64_t dv_kv_cache_state_bytes(const dv_kv_cache *c);
// Replaces the cache's contents with a stream written by dv_kv_cache_write. A different layout ->
// DV_EFORMAT "WHAT: KV cache head_dim is 32 in the stream, 16 here" (likewise another K or V type);
// a stream of an older format version -> DV_EVERSION; more tokens than n_ctx -> DV_EFORMAT. On any error the cache is left empty (0 tokens), never half-loaded. The result is
// bitwise the cache that was written (attention over it gives identical results).
int dv_kv_cache_read(dv_kv_cache *c, dv_io_read_fn r, void *ctx, const char *what);

#ifdef __cplusplus
}
#endif
#endif
