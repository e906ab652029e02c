// llm_synth.c: random-weight Llama checkpoints: written in the Hugging Face layout (streamed), or
// built directly in memory and opened as a dv_llm (benchmarks of 7B/8B shapes without any file);
// and a fast synthetic fill of a model's KV cache (decode benchmarks at long contexts).
#include "llm/dv_llm_synth.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "core/dv_log.h"
#include "core/dv_safetensors.h"
#include "llm/llm_internal.h"

#include <omp.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *name;
    int V, H, F, L, Hq, Hkv, ctx;
    double theta;
    const char *arch;
} presets[] = {
    {"tiny", 514, 64, 176, 2, 4, 2, 2048, 10000, "LlamaForCausalLM"},
    {"100m", 32000, 768, 2048, 12, 12, 4, 4096, 10000, "LlamaForCausalLM"},
    {"llama2-7b", 32000, 4096, 11008, 32, 32, 32, 4096, 10000, "LlamaForCausalLM"},
    {"vicuna-7b", 32000, 4096, 11008, 32, 32, 32, 4096, 10000, "LlamaForCausalLM"},
    {"llama3-8b", 128256, 4096, 14336, 32, 32, 8, 8192, 500000, "LlamaForCausalLM"},
    {"mistral-7b", 32000, 4096, 14336, 32, 32, 8, 32768, 1000000, "MistralForCausalLM"},
    // small GQA model with a long context, for `duovid bench duo` on the CPU
    {"duo-bench", 514, 128, 352, 2, 4, 2, 262144, 1000000, "LlamaForCausalLM"},
    // the text models of Qwen2.5-VL-7B and Qwen3-VL-8B with their M-RoPE (mrope below); the Qwen2 q/k/v
    // biases and Qwen3's q/k norms are left out (under 0.1% of the work)
    {"qwen2.5-vl-7b", 152064, 3584, 18944, 28, 28, 4, 128000, 1000000, "LlamaForCausalLM"},
    {"qwen3-vl-8b", 151936, 4096, 12288, 36, 32, 8, 262144, 5000000, "LlamaForCausalLM"},
};

// M-RoPE sections of the Qwen-VL presets (consecutive for 2.5, interleaved for 3)
static const struct {
    const char *name;
    int sec[3], interleaved;
} mrope_presets[] = {{"qwen2.5-vl-7b", {16, 24, 24}, 0}, {"qwen3-vl-8b", {24, 20, 20}, 1}};

const char *dv_llm_synth_preset_names(void) { return "tiny, 100m, duo-bench, llama2-7b, vicuna-7b, llama3-8b, mistral-7b, qwen2.5-vl-7b, qwen3-vl-8b"; }

int dv_llm_synth_preset(const char *name, dv_llm_config *c) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name)) continue;
        memset(c, 0, sizeof *c);
        c->arch = strcmp(presets[i].arch, "MistralForCausalLM") ? DV_LLM_ARCH_LLAMA : DV_LLM_ARCH_MISTRAL;
        snprintf(c->arch_name, sizeof c->arch_name, "%s", presets[i].arch);
        c->vocab_size = presets[i].V;
        c->hidden_size = presets[i].H;
        c->intermediate_size = presets[i].F;
        c->n_layers = presets[i].L;
        c->n_heads = presets[i].Hq;
        c->n_kv_heads = presets[i].Hkv;
        c->head_dim = presets[i].H / presets[i].Hq;
        c->max_position_embeddings = presets[i].ctx;
        c->rms_norm_eps = 1e-5;
        c->rope_theta = presets[i].theta;
        snprintf(c->rope_type, sizeof c->rope_type, "default");
        c->bos_token_id = 1;
        c->eos_token_ids[0] = 2;
        c->n_eos = 1;
        for (size_t k = 0; k < sizeof mrope_presets / sizeof mrope_presets[0]; k++)
            if (!strcmp(name, mrope_presets[k].name)) {
                c->mrope = 1;
                memcpy(c->mrope_section, mrope_presets[k].sec, sizeof c->mrope_section);
                c->mrope_interleaved = mrope_presets[k].interleaved;
            }
        return 0;
    }
    return dv_error_set(DV_EINVAL, "unknown model shape '%s' (known: %s)", name, dv_llm_synth_preset_names());
}

// Counter-based generator: element i of tensor `id` is a pure function of (seed, id, i), so any chunk
// can be filled independently while streaming.
typedef struct fill_ctx {
    dv_dtype dtype;
    uint64_t key;
    float amp;   // uniform half-width; 0 -> constant `value`
    float value;
} fill_ctx;

static inline uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void fill(void *buf, size_t n, size_t first, void *vctx) {
    const fill_ctx *c = vctx;
    for (size_t i = 0; i < n; i++) {
        float v = c->value;
        if (c->amp > 0) {
            uint64_t r = splitmix(c->key ^ (first + i) * 0x2545f4914f6cdd1dull);
            v = c->amp * (2.0f * (float)((r >> 40) * (1.0 / 16777216.0)) - 1.0f);
        }
        switch (c->dtype) {
        case DV_DTYPE_F32: ((float *)buf)[i] = v; break;
        case DV_DTYPE_F16: ((uint16_t *)buf)[i] = dv_f32_to_f16(v); break;
        default: ((uint16_t *)buf)[i] = dv_f32_to_bf16(v); break;
        }
    }
}

static int write_config(const char *dir, const dv_llm_config *c, dv_dtype dtype) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(c->arch_name));
    cJSON_AddStringToObject(j, "model_type", c->arch == DV_LLM_ARCH_MISTRAL ? "mistral" : "llama");
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(j, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
    if (c->mrope) { // Qwen-VL shapes: M-RoPE, as Qwen2.5-VL's Hub configs write it
        cJSON *rs = cJSON_AddObjectToObject(j, "rope_scaling");
        cJSON_AddStringToObject(rs, "type", "mrope");
        cJSON_AddItemToObject(rs, "mrope_section", cJSON_CreateIntArray(c->mrope_section, 3));
        if (c->mrope_interleaved) cJSON_AddBoolToObject(rs, "mrope_interleaved", 1);
    } else {
        cJSON_AddNullToObject(j, "rope_scaling");
    }
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddNumberToObject(j, "bos_token_id", c->bos_token_id);
    cJSON_AddNumberToObject(j, "eos_token_id", c->n_eos ? c->eos_token_ids[0] : 2);
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddStringToObject(j, "torch_dtype",
                            dtype == DV_DTYPE_BF16 ? "bfloat16" : dtype == DV_DTYPE_F16 ? "float16" : "float32");
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    const size_t n = text ? strlen(text) : 0;
    char *line = text ? realloc(text, n + 2) : NULL;
    if (!line) {
        free(text);
        return dv_error_set(DV_ENOMEM, "out of memory");
    }
    line[n] = '\n';
    int rc = dv_fs_write_atomic(path, line, n + 1);
    free(line);
    return rc;
}

int dv_llm_synth_write(const char *dir, const dv_llm_config *c, dv_dtype dtype, uint64_t seed, double std) {
    const float amp = (float)(std * 1.7320508075688772); // a uniform distribution with this std
    if (!(std >= 0 && std < 100)) return dv_error_set(DV_EINVAL, "synthetic weight std %g is out of range", std);
    if (dtype != DV_DTYPE_F32 && dtype != DV_DTYPE_F16 && dtype != DV_DTYPE_BF16)
        return dv_error_set(DV_EINVAL, "synthetic weights must be F32, F16 or BF16");
    if (mkdir(dir, 0777) && errno != EEXIST) return dv_error_set(DV_EIO, "%s: cannot create (%s)", dir, strerror(errno));
    const int L = c->n_layers, n_max = 3 + 9 * L;
    const int64_t V = c->vocab_size, H = c->hidden_size, F = c->intermediate_size,
                  QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    dv_st_write_tensor *ts = calloc((size_t)n_max, sizeof *ts);
    fill_ctx *fc = calloc((size_t)n_max, sizeof *fc);
    char(*names)[96] = calloc((size_t)n_max, sizeof *names);
    int rc = 0, n = 0;
    if (!ts || !fc || !names) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto done;
    }
#define ADD(nm, d0, d1, is_norm)                                                                     \
    do {                                                                                             \
        snprintf(names[n], sizeof names[n], "%s", nm);                                               \
        fc[n] = (fill_ctx){dtype, splitmix(seed * 1000003u + (uint64_t)n), (is_norm) ? 0 : amp, \
                           1.0f};                                                                    \
        ts[n] = (dv_st_write_tensor){.name = names[n], .dtype = dtype, .n_dims = (d1) ? 2 : 1,       \
                                     .shape = {(d0), (d1)}, .fill = fill, .fill_ctx = &fc[n]};       \
        n++;                                                                                         \
    } while (0)
    ADD("model.embed_tokens.weight", V, H, 0);
    for (int l = 0; l < L; l++) {
        char p[64];
        snprintf(p, sizeof p, "model.layers.%d.", l);
        char nm[96];
#define LADD(suffix, d0, d1, is_norm)                         \
    do {                                                      \
        snprintf(nm, sizeof nm, "%s%s", p, suffix);           \
        ADD(nm, d0, d1, is_norm);                             \
    } while (0)
        LADD("input_layernorm.weight", H, 0, 1);
        LADD("self_attn.q_proj.weight", QD, H, 0);
        LADD("self_attn.k_proj.weight", KD, H, 0);
        LADD("self_attn.v_proj.weight", KD, H, 0);
        LADD("self_attn.o_proj.weight", H, QD, 0);
        LADD("post_attention_layernorm.weight", H, 0, 1);
        LADD("mlp.gate_proj.weight", F, H, 0);
        LADD("mlp.up_proj.weight", F, H, 0);
        LADD("mlp.down_proj.weight", H, F, 0);
#undef LADD
    }
    ADD("model.norm.weight", H, 0, 1);
    if (!c->tie_word_embeddings) ADD("lm_head.weight", V, H, 0);
#undef ADD
    if ((rc = write_config(dir, c, dtype))) goto done;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    rc = dv_safetensors_write(path, ts, n, mk, mv, 1);
done:
    free(ts);
    free(fc);
    free(names);
    return rc;
}

// ---- in memory ----

// The tensors of a synthetic checkpoint, in the writer's order (so the fill keys, hence the values,
// are those of dv_llm_synth_write with the same seed).
typedef struct synth_tensor {
    dv_tensor *t;
    int64_t d0, d1;
    int is_norm;
} synth_tensor;

int dv_llm_open_synthetic(const dv_llm_config *cfg, dv_dtype dtype, uint64_t seed, double std,
                          const dv_llm_params *params, dv_llm **out) {
    *out = NULL;
    DV_ASSERT(params && params->backend);
    const float amp = (float)(std * 1.7320508075688772);
    if (!(std >= 0 && std < 100)) return dv_error_set(DV_EINVAL, "synthetic weight std %g is out of range", std);
    if (dtype != DV_DTYPE_F32 && dtype != DV_DTYPE_F16 && dtype != DV_DTYPE_BF16)
        return dv_error_set(DV_EINVAL, "synthetic weights must be F32, F16 or BF16");
    dv_llm *m = calloc(1, sizeof *m);
    if (!m) return dv_error_set(DV_ENOMEM, "out of memory");
    m->be = params->backend;
    m->cfg = *cfg;
    const dv_llm_config *c = &m->cfg;
    int rc;
    synth_tensor *ts = NULL;
    if ((rc = dv_llm_config_rope(c, &m->rope))) goto fail;
    const int L = c->n_layers, n_max = 3 + 9 * L;
    const int64_t V = c->vocab_size, H = c->hidden_size, F = c->intermediate_size,
                  QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    ts = calloc((size_t)n_max, sizeof *ts);
    if (!m->layers || !ts) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto fail;
    }
    int n = 0;
#define SADD(tp, a, b, norm) ts[n++] = (synth_tensor){(tp), (a), (b), (norm)}
    SADD(&m->tok_embd, V, H, 0);
    for (int l = 0; l < L; l++) {
        dv_llm_layer *y = &m->layers[l];
        SADD(&y->attn_norm, H, 0, 1);
        SADD(&y->wq, QD, H, 0);
        SADD(&y->wk, KD, H, 0);
        SADD(&y->wv, KD, H, 0);
        SADD(&y->wo, H, QD, 0);
        SADD(&y->ffn_norm, H, 0, 1);
        SADD(&y->w_gate, F, H, 0);
        SADD(&y->w_up, F, H, 0);
        SADD(&y->w_down, H, F, 0);
    }
    SADD(&m->out_norm, H, 0, 1);
    if (!c->tie_word_embeddings) SADD(&m->lm_head, V, H, 0);
#undef SADD
    // one host block for all weights (64-byte aligned tensors), filled in parallel
    const size_t es = dv_dtype_size(dtype);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += ((size_t)(ts[i].d0 * (ts[i].d1 ? ts[i].d1 : 1)) * es + 63) / 64 * 64;
    char *base = aligned_alloc(64, total ? total : 64);
    if (!base) {
        rc = dv_error_set(DV_ENOMEM, "synthetic weights: cannot allocate %.1f GiB of host memory",
                          (double)total / (1 << 30));
        goto fail;
    }
    m->synth_host = base;
    m->synth_bytes = total;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const int64_t shape[2] = {ts[i].d0, ts[i].d1};
        const size_t ne = (size_t)(ts[i].d0 * (ts[i].d1 ? ts[i].d1 : 1));
        *ts[i].t = dv_tensor_make(dtype, base + off, ts[i].d1 ? 2 : 1, shape);
        ts[i].t->name = "synthetic weight";
        m->n_params += (int64_t)ne;
        const fill_ctx fc = {dtype, splitmix(seed * 1000003u + (uint64_t)i), ts[i].is_norm ? 0 : amp, 1.0f};
        const size_t step = (size_t)1 << 20;
        char *dst = base + off;
#pragma omp parallel for schedule(dynamic, 1)
        for (size_t e0 = 0; e0 < ne; e0 += step) {
            fill_ctx f = fc;
            fill(dst + e0 * es, ne - e0 < step ? ne - e0 : step, e0, &f);
        }
        off += (ne * es + 63) / 64 * 64;
    }
    if (c->tie_word_embeddings) m->lm_head = m->tok_embd;
    char label[96];
    snprintf(label, sizeof label, "synthetic %s", c->arch_name);
    if ((rc = dv_llm_open_finish(m, params, label))) goto fail;
    if (m->be->device != DV_DEVICE_CPU) { // the device holds the weights now
        free(m->synth_host);
        m->synth_host = NULL;
    }
    free(ts);
    *out = m;
    return 0;
fail:
    free(ts);
    dv_llm_free(m);
    return rc;
}

int dv_llm_fill_kv_synthetic(dv_llm *m, int n_tokens, uint64_t seed) {
    if (n_tokens < 0 || n_tokens > m->n_ctx)
        return dv_error_set(DV_EINVAL, "cannot fill the KV cache with %d tokens (context size %d)", n_tokens, m->n_ctx);
    int rc = dv_kv_cache_fill_synthetic(m->kv, n_tokens, seed);
    if (!rc) m->n_past = n_tokens;
    return rc;
}
