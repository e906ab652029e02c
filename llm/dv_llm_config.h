// dv_llm_config.h: the decoder-only LLM hyper-parameters read from a Hugging Face config.json
// (LlamaForCausalLM, MistralForCausalLM), with every field validated.
#ifndef DV_LLM_CONFIG_H
#define DV_LLM_CONFIG_H

#include "core/dv_dtype.h"
#include "kernels/dv_backend.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dv_llm_arch { DV_LLM_ARCH_LLAMA = 0, DV_LLM_ARCH_MISTRAL } dv_llm_arch;

#define DV_LLM_MAX_EOS 8

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
    char rope_type[16];         // "default", "linear", "llama3"
    dv_rope_scaling rope_scaling; // factors; .type unused (see rope_type)
    int tie_word_embeddings;
    int attention_bias, mlp_bias;
    int sliding_window;         // 0 when none (ignored by duovid; see the warning)
    int bos_token_id;           // -1 when unset
    int eos_token_ids[DV_LLM_MAX_EOS];
    int n_eos;
    dv_dtype dtype;             // torch_dtype/dtype in config (informational; tensors carry their own)
} dv_llm_config;

// Parses a config object (a whole config.json, or a VLM's "text_config"). `what` names the file for
// messages. Unknown architectures -> DV_EUNSUPPORTED; missing/invalid fields -> DV_EFORMAT.
int dv_llm_config_from_json(const cJSON *j, const char *what, dv_llm_config *cfg);
// Reads DIR/config.json.
int dv_llm_config_load(const char *model_dir, dv_llm_config *cfg);
// Fills a dv_rope for this config.
int dv_llm_config_rope(const dv_llm_config *cfg, dv_rope *rope);
int dv_llm_config_is_eos(const dv_llm_config *cfg, int token);

#ifdef __cplusplus
}
#endif
#endif
