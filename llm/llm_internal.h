// llm_internal.h: the dv_llm struct, shared by llm_model.c (loading) and llm_forward.c (the pass).
#ifndef DV_LLM_INTERNAL_H
#define DV_LLM_INTERNAL_H

#include "core/dv_safetensors.h"
#include "llm/dv_llm.h"

// One transformer block's weights: views into the mapped checkpoint (file dtype). Biases have
// data == NULL when the config has none.
typedef struct dv_llm_layer {
    dv_tensor attn_norm;              // (H)
    dv_tensor wq, wk, wv, wo;         // (Hq*D, H), (Hkv*D, H), (Hkv*D, H), (H, Hq*D)
    dv_tensor bq, bk, bv, bo;         // (Hq*D), (Hkv*D), (Hkv*D), (H)  [attention_bias; qkv_bias: no bo]
    dv_tensor q_norm, k_norm;         // (D), (D)                       [qk_norm: per-head RMSNorm]
    dv_tensor ffn_norm;               // (H)
    dv_tensor w_gate, w_up, w_down;   // (F, H), (F, H), (H, F)
    dv_tensor b_gate, b_up, b_down;   // (F), (F), (H)                  [mlp_bias]
} dv_llm_layer;

// Called in every layer after RoPE, before attention, with the chunk's queries (T, Hq, D), new keys
// (T, Hkv, D) and the cache views (Hkv): lets analysis code (head identification) look at attention
// without a second implementation of the model.
typedef void (*dv_llm_observer)(void *ctx, int layer, const dv_tensor *q, const dv_tensor *k_new,
                                const dv_kv_head_view *views, int64_t q_pos0);

struct dv_llm {
    dv_llm_config cfg;
    dv_backend *be;      // not owned
    dv_safetensors *st;  // owned: the mapped checkpoint the weight views point into (NULL: synthetic)
    void *synth_host;    // owned: synthetic weights built in memory (llm_synth.c), NULL once uploaded
    size_t synth_bytes;  // their size
    dv_rope rope;

    dv_tensor tok_embd;  // (V, H)
    dv_tensor out_norm;  // (H)
    dv_tensor lm_head;   // (V, H); the same view as tok_embd when tied
    dv_llm_layer *layers; // (L), owned
    void **dev_weights;   // device copies of the weights (GPU backends only), owned
    int n_dev_weights;

    int n_ctx, n_batch, n_past;
    dv_llm_observer observer; // NULL normally
    void *observer_ctx;
    int64_t n_params;

    dv_kv_type kv_type_k, kv_type_v; // the KV cache's row types (kept across dv_llm_set_duo)
    dv_kv_cache *kv;     // owned: post-RoPE keys/values (paged retrieval heads, sink+ring streaming heads)

    // activations for one chunk of up to n_batch tokens, backend memory, owned
    float *x;       // (B, H) residual stream
    float *xb;      // (B, H) normed input / projection output
    float *q;       // (B, Hq*D)
    float *k_new;   // (B, Hkv*D) this chunk's keys (after RoPE), appended to the cache after attention
    float *v_new;   // (B, Hkv*D)
    float *att;     // (B, Hq*D) attention output
    float *gate;    // (B, F)
    float *up;      // (B, F)
    float *logits;  // (B, V)
    int32_t *pos;   // (B) absolute positions
    int32_t *ids;   // (B) token ids
    int32_t *pos_host, *ids_host; // (B) host staging, owned
};

// The second half of dv_llm_open, once cfg, rope, the weight views and n_params are set: uploads the
// weights (GPU backends), makes the KV cache and the activation buffers. The caller frees m on error.
int dv_llm_open_finish(dv_llm *m, const dv_llm_params *params, const char *model_dir);

// Forward of up to n_batch tokens (llm_forward.c); logits_out / hidden_out (host) may be NULL.
// The chunk's input is exactly one of ids, embd (host) and embd_dev (on the backend), rows of hidden.
int dv_llm_forward_chunk(dv_llm *m, const int32_t *ids, const float *embd, const float *embd_dev, int T,
                         float *logits_out, int all_logits, float *hidden_out);

#endif
