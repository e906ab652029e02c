// dv_llm_synth.h: synthetic checkpoints: a Hugging Face-layout Llama folder (config.json +
// model.safetensors) with random weights of any shape, for benchmarks and the GPU work (7B-shaped
// models without downloading anything). Weights are streamed to disk; memory use stays small.
#ifndef DV_LLM_SYNTH_H
#define DV_LLM_SYNTH_H

#include "core/dv_dtype.h"
#include "llm/dv_llm.h"
#include "llm/dv_llm_config.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Named shapes: "tiny" (~0.2M), "100m" (~125M), "duo-bench" (small GQA, 256K context), "llama2-7b", "vicuna-7b" (llama2-7b shape),
// "llama3-8b", "mistral-7b", and the Qwen3.5 hybrids "qwen3.5-tiny", "qwen3.5-0.8b", "qwen3.5-9b"
// (Gated DeltaNet + gated attention, every 4th layer attention). Returns DV_EINVAL listing the names
// for an unknown one.
int dv_llm_synth_preset(const char *name, dv_llm_config *cfg);
// Changes the layer count of a preset (and, for Qwen3.5, its layer map). DV_EINVAL when out of range.
int dv_llm_synth_set_layers(dv_llm_config *cfg, int n_layers);
// Writes DIR/config.json and DIR/model.safetensors (creating DIR). Weights ~ U(-a, a) with the
// given std (HF's initializer_range is 0.02; larger values give peakier attention), norm weights 1,
// deterministic for a seed. dtype: F32, F16 or BF16.
int dv_llm_synth_write(const char *dir, const dv_llm_config *cfg, dv_dtype dtype, uint64_t seed, double std);
// The same checkpoint built directly in (host) memory and opened as a model: no file is written; the
// weights equal those dv_llm_synth_write writes for the same arguments. GPU backends get the weights
// uploaded and the host copy freed. Errors: bad std/dtype, out of (host or device) memory.
int dv_llm_open_synthetic(const dv_llm_config *cfg, dv_dtype dtype, uint64_t seed, double std,
                          const dv_llm_params *params, dv_llm **out);
// Makes the model's KV cache hold n_tokens tokens of random keys/values without running the model
// (decode benchmarks at long contexts; see dv_kv_cache_fill_synthetic). n_past becomes n_tokens.
int dv_llm_fill_kv_synthetic(dv_llm *m, int n_tokens, uint64_t seed);
// The names listed in --help.
const char *dv_llm_synth_preset_names(void);

#ifdef __cplusplus
}
#endif
#endif
