// llm_internal.h: the dv_llm struct, shared by llm_model.c (loading) and llm_forward.c (the pass).
#ifndef DV_LLM_INTERNAL_H
#define DV_LLM_INTERNAL_H

#include "core/dv_dtype.h"
#include "core/dv_safetensors.h"
#include "llm/dv_linear_state.h"
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
    // Gated DeltaNet layers (cfg.layer_linear[l]; wq..k_norm unused), C = 2 Hk dk + Hv dv:
    dv_tensor lin_qkv;                // (C, H)       in_proj_qkv: q, k, v before the conv
    dv_tensor lin_z;                  // (Hv*dv, H)   in_proj_z: the gate of the gated RMSNorm
    dv_tensor lin_a, lin_b;           // (Hv, H), (Hv, H) in_proj_a (decay), in_proj_b (beta)
    dv_tensor lin_conv;               // (C, K)       depthwise conv1d weight (file shape (C, 1, K))
    dv_tensor lin_a_log, lin_dt_bias; // (Hv), (Hv)
    dv_tensor lin_norm;               // (dv)         gated RMSNorm weight (plain w, not 1 + w)
    dv_tensor lin_out;                // (H, Hv*dv)   out_proj
    // Mixture-of-experts MLP (cfg.n_experts > 0; w_gate, w_up, w_down are then the shared expert's):
    dv_tensor moe_router;             // (E, H)       mlp.gate: router logits
    dv_tensor moe_shared_gate;        // (1, H)       mlp.shared_expert_gate
    dv_tensor *experts;               // (E, 3) owned array of views: expert e's gate (Fe, H), up (Fe, H),
                                      // down (H, Fe) at [3e], [3e+1], [3e+2] (per-expert or fused tensors)
    int kv_layer;                     // attention layers: its layer in the KV cache; else -1
    int lin_layer;                    // Gated DeltaNet layers: its state in m->lin; else -1
} dv_llm_layer;
#define DV_LLM_LAYER_TENSORS 29       // dv_tensor fields of dv_llm_layer (the weight upload walks them)

// Called in every attention layer after RoPE, before attention, with the chunk's queries (T, Hq, D),
// new keys and values (T, Hkv, D) and the cache views (Hkv); `layer` is the KV-cache (attention) layer.
// Lets analysis code (head identification) look at attention without a second implementation of the model.
typedef void (*dv_llm_observer)(void *ctx, int layer, const dv_tensor *q, const dv_tensor *k_new,
                                const dv_tensor *v_new, const dv_kv_head_view *views, int64_t q_pos0);

typedef struct dv_llm_moe_host dv_llm_moe_host;

struct dv_llm {
    dv_llm_config cfg;
    dv_backend *be;      // not owned
    dv_safetensors *st;  // owned: the mapped checkpoint the weight views point into (NULL: synthetic)
    void *synth_host;    // owned: synthetic weights built in memory (llm_synth.c), NULL once uploaded
    size_t synth_bytes;  // their size
    dv_rope rope;
    dv_rope_sec rope_sec; // cfg.mrope: which of the (t, h, w) positions each frequency takes

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
                         // of the attention layers only (cfg.n_attn_layers)
    dv_linear_state *lin; // owned: conv + delta-rule states of the Gated DeltaNet layers (NULL: none)
    float *norm_host;    // owned: (1 + w) in F32 of zero-centred RMSNorm weights (NULL: none)

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
    int32_t *pos;   // (B) absolute positions; M-RoPE: (3, B), rows t, h, w
    int32_t *ids;   // (B) token ids
    int32_t *pos_host, *ids_host; // (B) host staging ((3, B) pos with M-RoPE), owned
    // hybrid models only (NULL otherwise), C = 2 Hk dk + Hv dv, VD = Hv dv:
    float *qg;      // (B, Hq*2D) gated attention's q_proj output: per head [q (D), gate (D)]
    float *lin_x;   // (B, C) in_proj_qkv output (the conv input)
    float *lin_c;   // (B, C) conv output: q | k | v columns
    float *lin_z;   // (B, VD)
    float *lin_a, *lin_b; // (B, Hv), (B, Hv)
    float *lin_o;   // (B, VD) delta-rule output, normed and gated in place
    // mixture-of-experts models only (NULL otherwise), k = n_experts_used, Fe = moe_intermediate_size:
    float *moe_logits;     // (B, E) router logits
    float *moe_sgate;      // (B) shared expert gate logits
    float *moe_xg;         // (B*k, H) the normed input rows gathered in expert order
    float *moe_g, *moe_u;  // (B*k, Fe) expert gate / up projections
    float *moe_y;          // (B*k + B, H) expert outputs in expert order, then the shared expert's rows
    int32_t *moe_perm;     // (B*k) token of each gathered row
    int32_t *moe_idx;      // (B, k+1) rows of moe_y each token sums: its k experts', then its shared row
    float *moe_w;          // (B, k+1) their weights: renormalised router probabilities, sigmoid(shared gate)
    dv_llm_moe_host *moe_host; // host staging and routing scratch (llm/moe.c), owned
    // M-RoPE: positions are not cells. cell_next[c] = the position a token after cell c takes when it
    // is given none (HF: the largest position so far + 1), so a rewind knows where text resumes.
    int32_t *cell_next; // (n_ctx), NULL without M-RoPE
    const int32_t *pos_in; // M-RoPE: explicit (3, T) positions of the next chunk, rows pos_in_stride
    int64_t pos_in_stride; //   apart (set by prefill for one chunk); NULL: text positions
    const float *add_in;   // DeepStack: (add_layers, ..) rows on the backend added after layers 0 ..
    int add_layers;        //   add_layers - 1, layer l's T rows at add_in + l * add_layer_stride (one
    int64_t add_layer_stride; // chunk's, set by prefill); add_layers 0: none
};

// The second half of dv_llm_open, once cfg, rope, the weight views and n_params are set: uploads the
// weights (GPU backends), makes the KV cache and the activation buffers. The caller frees m on error.
int dv_llm_open_finish(dv_llm *m, const dv_llm_params *params, const char *model_dir);

// Forward of up to n_batch tokens (llm_forward.c); logits_out / hidden_out (host) may be NULL.
// The chunk's input is exactly one of ids, embd (host) and embd_dev (on the backend), rows of hidden.
// Mixture of experts (llm/moe.c). moe_init allocates the buffers above for n_batch tokens (once);
// moe_ffn is the MLP of layer w on xb (T, H), result into xb: route (softmax, top-k, renormalise),
// gather each expert's tokens, run the experts and the gated shared expert, combine with gather_sum.
int dv_llm_moe_init(dv_llm *m);
void dv_llm_moe_free(dv_llm *m);
int dv_llm_moe_ffn(dv_llm *m, const dv_llm_layer *w, int T);

// Element i of a weight in its file type (F32, BF16, F16) as F32: analysis code (identify) reading
// host-resident weights one value at a time.
static inline float dv_llm_weight_at(const dv_tensor *w, size_t i) {
    switch (w->dtype) {
    case DV_DTYPE_BF16: return dv_bf16_to_f32(((const uint16_t *)w->data)[i]);
    case DV_DTYPE_F16: return dv_f16_to_f32(((const uint16_t *)w->data)[i]);
    default: return ((const float *)w->data)[i];
    }
}

int dv_llm_forward_chunk(dv_llm *m, const int32_t *ids, const float *embd, const float *embd_dev, int T,
                         float *logits_out, int all_logits, float *hidden_out);


#endif
