// dv_llm.h: a decoder-only LLM (Llama/Mistral/SmolLM2, Qwen2, Qwen3, the hybrid Qwen3.5) with a KV cache: open a Hugging Face model
// folder, prefill tokens or embeddings, decode one token at a time.
//
//   dv_llm *m; dv_llm_params p = dv_llm_default_params(); p.backend = be;
//   if (dv_llm_open("assets/models/tiny-llama", &p, &m)) fail(dv_error_message());
//   dv_llm_prefill(m, ids, NULL, n, logits, 0);         // logits (V) of the last token
//   while (...) { tok = sample(logits); dv_llm_decode(m, tok, logits); }
//   dv_llm_free(m);
//
// Weights stay in their file dtype inside the memory-mapped safetensors (a 7B bf16 model needs
// ~13.5 GB of page cache, never an fp32 copy). Activations are allocated once at open for up to
// n_batch tokens per forward; the KV cache (llm/dv_kv_cache.h: DuoAttention retrieval pages +
// streaming sink/ring) grows in pages as the context does.
#ifndef DV_LLM_H
#define DV_LLM_H

#include "kernels/dv_backend.h"
#include "llm/dv_duo_pattern.h"
#include "llm/dv_kv_cache.h"
#include "llm/dv_linear_state.h"
#include "llm/dv_llm_config.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_llm dv_llm;

typedef struct dv_llm_params {
    dv_backend *backend;           // not owned; required
    int n_ctx;                     // context capacity in tokens; 0 = max_position_embeddings. KV pages
                                   // are allocated as the context grows, not up front
    int n_batch;                   // tokens per forward chunk (prefill is split into chunks); 0 = 256
    const dv_duo_pattern *pattern; // DuoAttention heads (binarized); NULL = full attention. Copied.
    dv_duo_prefill duo_prefill;    // streaming-head semantics inside a chunk
    int kv_type_k, kv_type_v;      // KV cache row types (dv_kv_type: f32, bf16, f16, q8, q4) of keys and
                                   // values, or DV_LLM_KV_DEFAULT: bf16 where the backend stores compact
                                   // rows (its kv_store op), else f32
} dv_llm_params;

#define DV_LLM_KV_DEFAULT (-1)

dv_llm_params dv_llm_default_params(void);

// Opens MODEL_DIR (config.json + model.safetensors or a sharded index). Validates every tensor's
// presence and shape. Returns 0 or <0 with a message naming the file and the problem.
int dv_llm_open(const char *model_dir, const dv_llm_params *params, dv_llm **out);
void dv_llm_free(dv_llm *m);

const dv_llm_config *dv_llm_get_config(const dv_llm *m);
int dv_llm_n_ctx(const dv_llm *m);
int dv_llm_n_past(const dv_llm *m); // tokens in the KV cache
// Forgets cached positions >= n_past (n_past <= current); 0 clears the cache. A hybrid model
// (Gated DeltaNet layers: a recurrent state) refuses any other rewind with DV_EUNSUPPORTED:
// dv_llm_can_rewind says which, and callers then go back through a snapshot (dv_llm_state_write/_read).
int dv_llm_rewind(dv_llm *m, int n_past);
int dv_llm_can_rewind(const dv_llm *m);
// The Gated DeltaNet layers' states (NULL for a model without such layers).
const dv_linear_state *dv_llm_linear_state(const dv_llm *m);
// Bytes held by the KV cache (allocated) and by the weights (file bytes).
size_t dv_llm_kv_bytes(const dv_llm *m);
const dv_kv_cache *dv_llm_kv_cache(const dv_llm *m);
size_t dv_llm_weight_bytes(const dv_llm *m);
// The weight bytes one decode step reads: all of them, less an untied token-embedding table, of which
// a step reads one row (the memory floor of `bench llm`; with few layers the table is a large share).
size_t dv_llm_decode_weight_bytes(const dv_llm *m);
int64_t dv_llm_param_count(const dv_llm *m);

// Appends n tokens to the context, given as token ids (ids != NULL) or as input embeddings
// (embd (n, hidden), F32, host memory), in chunks of n_batch. logits (host, F32) may be NULL; else
// it receives the last token's logits (V) or, with all_logits, every token's (n, V).
// Errors: out-of-range ids, context full (DV_EINVAL naming n_ctx).
int dv_llm_prefill(dv_llm *m, const int32_t *ids, const float *embd, int n, float *logits, int all_logits);
// Embeddings on m's backend (device memory on a GPU: no host round trip), so a caller can mix text
// and image/video embeddings in one sequence (the VLM pipeline):
// dv_llm_prefill_tensor: like dv_llm_prefill from embd (n, hidden) F32, contiguous, n = embd->ne[0].
// dv_llm_embed_tokens_tensor: the input embeddings of token ids (what prefill from ids feeds the first
// layer) into the rows of out (n, hidden) F32 (any row stride); only the ids cross to the device; the
// rows are queued on the backend's stream like its ops (not waited for).
int dv_llm_prefill_tensor(dv_llm *m, const dv_tensor *embd, float *logits, int all_logits);
int dv_llm_embed_tokens_tensor(dv_llm *m, const int32_t *ids, int n, dv_tensor *out);
// M-RoPE models (cfg.mrope): like dv_llm_prefill (ids) / dv_llm_prefill_tensor (embd on the backend,
// (n, hidden)) with explicit positions pos (3, n) host I32, rows t, h, w (HF get_rope_index). The KV
// cache counts cells, not positions: attention masks, DuoAttention's sink / recent and n_ctx are in
// cells. Tokens given no positions (prefill, decode) continue as text after the largest position so
// far (HF's rope_deltas). Not an M-RoPE model -> DV_EINVAL.
int dv_llm_prefill_pos(dv_llm *m, const int32_t *ids, const dv_tensor *embd, const int32_t *pos, int n, float *logits,
                       int all_logits);
// Qwen3-VL DeepStack: like dv_llm_prefill_pos from embd (n, hidden) on the backend (pos may be NULL:
// text positions), and after decoder layer l < add->ne[0] the rows add[l] (n_add, n, hidden) F32 on
// the backend, contiguous, are added to the n rows' hidden states (HF _deepstack_process; rows of
// text tokens hold zeros). Chunked prefill takes each chunk's rows. n_add > n_layers -> DV_EINVAL.
int dv_llm_prefill_deepstack(dv_llm *m, const dv_tensor *embd, const int32_t *pos, const dv_tensor *add, float *logits,
                             int all_logits);
// The position the next token without explicit positions takes (n_past without M-RoPE).
int dv_llm_next_position(const dv_llm *m);
// One token: append it and write its logits (V).
int dv_llm_decode(dv_llm *m, int32_t id, float *logits);
// Like dv_llm_prefill from token ids, but writes the final (normed) hidden states (n, hidden) of
// every token instead of logits: what DuoAttention head identification compares.
int dv_llm_prefill_hidden(dv_llm *m, const int32_t *ids, int n, float *hidden);
// Replaces the DuoAttention pattern and prefill semantics (NULL = full attention), keeping the KV
// row types. Clears the context: the new cache starts empty.
int dv_llm_set_duo(dv_llm *m, const dv_duo_pattern *pattern, dv_duo_prefill prefill);

// ---- context save/load (kv_cache_io.c) ----
// Serializes the context: a header (model shape, n_past) and the KV cache (dv_kv_cache_write), as a
// byte stream through `w` (see dv_io_write_fn in llm/dv_kv_cache.h). The cache may live on a GPU:
// data moves a page at a time through a bounded host buffer. Format: docs/FORMATS.md.
int dv_llm_state_write(dv_llm *m, dv_io_write_fn w, void *ctx);
// Exact byte count dv_llm_state_write would write now (for progress and size checks).
int64_t dv_llm_state_bytes(const dv_llm *m);
// Replaces the context with one written by dv_llm_state_write. A stream of another model shape or
// KV layout (DuoAttention pattern, sink/recent, prefill semantics) -> DV_EFORMAT naming `what` and
// the field. On any error the llm has an empty context (n_past 0). Decoding after a load gives
// bitwise the logits decoding gave after the original prefill.
int dv_llm_state_read(dv_llm *m, dv_io_read_fn r, void *ctx, const char *what);

#ifdef __cplusplus
}
#endif
#endif
