// dv_llm_config.h: the decoder-only LLM hyper-parameters read from a Hugging Face config.json
// (LlamaForCausalLM incl. SmolLM2, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, and the
// hybrid Qwen3_5ForCausalLM / qwen3_5_text: Gated DeltaNet + gated attention, dense or with a
// mixture-of-experts MLP, Qwen3_5MoeForCausalLM / qwen3_5_moe_text; also as the text_config of their
// ForConditionalGeneration folders), with every field validated.
#ifndef DV_LLM_CONFIG_H
#define DV_LLM_CONFIG_H

#include "core/dv_dtype.h"
#include "kernels/dv_backend.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dv_llm_arch {
    DV_LLM_ARCH_LLAMA = 0, // Llama 1-3, SmolLM2 (Llama layout)
    DV_LLM_ARCH_MISTRAL,
    DV_LLM_ARCH_QWEN2,     // q/k/v projections with bias, o_proj without
    DV_LLM_ARCH_QWEN3,     // per-head RMSNorm of q and k (q_norm, k_norm) before RoPE
    DV_LLM_ARCH_QWEN3_5,   // hybrid: Gated DeltaNet layers + gated attention layers (see `lin` below)
} dv_llm_arch;

#define DV_LLM_MAX_EOS 8
#define DV_LLM_MAX_LAYERS 4096

// Gated DeltaNet (linear attention) layer shape, Qwen3.5's linear_* fields.
typedef struct dv_llm_linear_config {
    int conv_kernel;            // K (linear_conv_kernel_dim)
    int n_k_heads, n_v_heads;   // Hk, Hv (Hv % Hk == 0)
    int k_head_dim, v_head_dim; // dk, dv
} dv_llm_linear_config;
typedef struct dv_llm_config {
    dv_llm_arch arch;
    char arch_name[64];         // "LlamaForCausalLM", ...
    int vocab_size;             // V
    int hidden_size;            // H
    int intermediate_size;      // F
    int n_layers;               // L
    int n_heads;                // Hq
    int n_kv_heads;             // Hkv (Hq % Hkv == 0)
    int head_dim;               // D
    int max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    char rope_type[16];         // "default", "linear", "llama3", "yarn", "dynamic"
    dv_rope_scaling rope_scaling; // factors; .type unused (see rope_type)
    int tie_word_embeddings;
    int attention_bias, mlp_bias; // bias on q, k, v and o_proj / on the MLP projections
    int qkv_bias;               // bias on q, k, v only (Qwen2)
    int qk_norm;                // RMSNorm (head_dim weights) on each q and k head before RoPE (Qwen3)
    int sliding_window;         // a window some layer attends with, as HF applies it; 0 when none (a
                                // window a model does not use: Qwen's use_sliding_window false, or one
                                // beyond the last layer, is ignored as HF ignores it)
    int bos_token_id;           // -1 when unset
    int eos_token_ids[DV_LLM_MAX_EOS];
    int n_eos;
    dv_dtype dtype;             // torch_dtype/dtype in config (informational; tensors carry their own)

    // ---- hybrid models (Qwen3.5); for the others n_attn_layers == n_layers, no layer is linear ----
    int rotary_dim;             // RoPE on the first rotary_dim dims of each head (partial_rotary_factor)
    int attn_output_gate;       // q_proj yields per head [q (D), gate (D)]; attention out *= sigmoid(gate)
    int zero_centered_norm;     // RMSNorm weights scale by (1 + w) (Qwen3_5RMSNorm)
    int n_attn_layers;          // layers with softmax attention (and a KV cache)
    int n_linear_layers;        // Gated DeltaNet layers (a recurrent state, no KV cache)
    int n_mtp_layers;           // multi-token-prediction layers in the checkpoint (never run)
    dv_llm_linear_config lin;
    // Mixture of experts (Qwen3.5 MoE, Qwen3_5MoeSparseMoeBlock in every layer): a softmax router picks
    // the top n_experts_used of n_experts SwiGLU experts per token (their weights renormalised to sum
    // to 1), plus a shared expert scaled by sigmoid(shared_expert_gate(x)). The shared expert is the
    // dense MLP's weights: intermediate_size is then its width (shared_expert_intermediate_size).
    int n_experts;              // E (num_experts); 0: a dense MLP
    int n_experts_used;         // k (num_experts_per_tok)
    int moe_intermediate_size;  // Fe: each routed expert's width
    unsigned char layer_linear[DV_LLM_MAX_LAYERS]; // (n_layers) 1: Gated DeltaNet, 0: attention
    // M-RoPE (Qwen2-VL / Qwen2.5-VL / Qwen3-VL text models: rope "mrope_section"): each token has three
    // positions (t, h, w); frequencies take theirs by section (consecutive, or interleaved for Qwen3-VL).
    // Positions are then independent of KV cells (llm/dv_llm.h: dv_llm_prefill_pos).
    int mrope;                  // 1 when mrope_section is given
    int mrope_section[3];
    int mrope_interleaved;
} dv_llm_config;

// Parses a config object (a whole config.json, or a VLM's "text_config"). `what` names the file for
// messages. Unknown architectures -> DV_EUNSUPPORTED; missing/invalid fields -> DV_EFORMAT.
int dv_llm_config_from_json(const cJSON *j, const char *what, dv_llm_config *cfg);
// Reads DIR/config.json.
int dv_llm_config_load(const char *model_dir, dv_llm_config *cfg);
// Fills a dv_rope for this config (for "dynamic" scaling: at the model's maximum length).
int dv_llm_config_rope(const dv_llm_config *cfg, dv_rope *rope);
// The rope a forward ending at sequence length seq_len uses. Only "dynamic" (NTK) scaling depends on
// it: as HF, the base grows once seq_len exceeds max_position_embeddings (the table is D/2 powers:
// cheap enough to rebuild for every forward chunk).
int dv_llm_config_rope_at(const dv_llm_config *cfg, int64_t seq_len, dv_rope *rope);
// 1 when the rope depends on the sequence length (dynamic scaling).
int dv_llm_config_rope_is_dynamic(const dv_llm_config *cfg);
int dv_llm_config_is_eos(const dv_llm_config *cfg, int token);
// The model layers of one kind as ranges ("0-2,4-6"; "" when none): linear = 1 Gated DeltaNet
// layers, 0 attention layers. For reports (info, identify, pattern, the KV report).
const char *dv_llm_config_layers_str(const dv_llm_config *cfg, int linear, char *buf, size_t n);
// Model layer of attention layer a (the KV cache and DuoAttention patterns count attention layers only).
int dv_llm_config_attn_layer(const dv_llm_config *cfg, int a);

#ifdef __cplusplus
}
#endif
#endif
