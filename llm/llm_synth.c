// llm_synth.c: random-weight Llama/Mistral/Qwen3.5 checkpoints: written in the Hugging Face layout (streamed), or
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
    int D, tied;           // head_dim (0: H / Hq), tied embeddings
    int lin_hk, lin_hv;    // Qwen3.5 Gated DeltaNet key / value heads (head dims 128, conv 4)
} presets[] = {
    {"tiny", 514, 64, 176, 2, 4, 2, 2048, 10000, "LlamaForCausalLM", 0, 0, 0, 0},
    {"100m", 32000, 768, 2048, 12, 12, 4, 4096, 10000, "LlamaForCausalLM", 0, 0, 0, 0},
    {"llama2-7b", 32000, 4096, 11008, 32, 32, 32, 4096, 10000, "LlamaForCausalLM", 0, 0, 0, 0},
    {"vicuna-7b", 32000, 4096, 11008, 32, 32, 32, 4096, 10000, "LlamaForCausalLM", 0, 0, 0, 0},
    {"llama3-8b", 128256, 4096, 14336, 32, 32, 8, 8192, 500000, "LlamaForCausalLM", 0, 0, 0, 0},
    {"mistral-7b", 32000, 4096, 14336, 32, 32, 8, 32768, 1000000, "MistralForCausalLM", 0, 0, 0, 0},
    // small GQA model with a long context, for `duovid bench duo` on the CPU
    {"duo-bench", 514, 128, 352, 2, 4, 2, 262144, 1000000, "LlamaForCausalLM", 0, 0, 0, 0},
    // the text models of Qwen2.5-VL-7B and Qwen3-VL-8B with their M-RoPE (mrope below); the Qwen2 q/k/v
    // biases and Qwen3's q/k norms are left out (under 0.1% of the work)
    {"qwen2.5-vl-7b", 152064, 3584, 18944, 28, 28, 4, 128000, 1000000, "LlamaForCausalLM", 0, 0, 0, 0},
    {"qwen3-vl-8b", 151936, 4096, 12288, 36, 32, 8, 262144, 5000000, "LlamaForCausalLM", 0, 0, 0, 0},
    // Qwen3.5 hybrids (3 Gated DeltaNet layers per gated attention layer, head_dim 256, rotary 64)
    {"qwen3.5-tiny", 514, 64, 176, 4, 4, 2, 4096, 1e7, "Qwen3_5ForCausalLM", 32, 1, 2, 4},
    {"qwen3.5-0.8b", 248320, 1024, 3584, 24, 8, 2, 262144, 1e7, "Qwen3_5ForCausalLM", 256, 1, 16, 16},
    {"qwen3.5-9b", 248320, 4096, 12288, 32, 16, 4, 262144, 1e7, "Qwen3_5ForCausalLM", 256, 0, 16, 32},
};

const char *dv_llm_synth_preset_names(void) {
    return "tiny, 100m, duo-bench, llama2-7b, vicuna-7b, llama3-8b, mistral-7b, qwen3.5-tiny, qwen3.5-0.8b, qwen3.5-9b, qwen2.5-vl-7b, qwen3-vl-8b";
}

// Qwen3.5's layer map and Gated DeltaNet shape (full_attention_interval 4) for a layer count.
static void qwen3_5_layers(dv_llm_config *c) {
    c->n_linear_layers = 0;
    for (int l = 0; l < c->n_layers; l++) c->n_linear_layers += c->layer_linear[l] = (l + 1) % 4 != 0;
    c->n_attn_layers = c->n_layers - c->n_linear_layers;
}

int dv_llm_synth_set_layers(dv_llm_config *c, int n_layers) {
    if (n_layers < 1 || n_layers > DV_LLM_MAX_LAYERS)
        return dv_error_set(DV_EINVAL, "--layers %d is out of range [1, %d]", n_layers, DV_LLM_MAX_LAYERS);
    if (c->arch == DV_LLM_ARCH_QWEN3_5 && n_layers < 4)
        return dv_error_set(DV_EINVAL, "a Qwen3.5 shape needs at least 4 layers (every 4th is an attention layer)");
    c->n_layers = n_layers;
    if (c->arch == DV_LLM_ARCH_QWEN3_5) qwen3_5_layers(c);
    else c->n_attn_layers = n_layers;
    return 0;
}

// M-RoPE sections of the Qwen-VL presets (consecutive for 2.5, interleaved for 3)
static const struct {
    const char *name;
    int sec[3], interleaved;
} mrope_presets[] = {{"qwen2.5-vl-7b", {16, 24, 24}, 0}, {"qwen3-vl-8b", {24, 20, 20}, 1}};

int dv_llm_synth_preset(const char *name, dv_llm_config *c) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name)) continue;
        memset(c, 0, sizeof *c);
        c->arch = !strcmp(presets[i].arch, "MistralForCausalLM")   ? DV_LLM_ARCH_MISTRAL
                  : !strcmp(presets[i].arch, "Qwen3_5ForCausalLM") ? DV_LLM_ARCH_QWEN3_5
                                                                    : DV_LLM_ARCH_LLAMA;
        snprintf(c->arch_name, sizeof c->arch_name, "%s", presets[i].arch);
        c->vocab_size = presets[i].V;
        c->hidden_size = presets[i].H;
        c->intermediate_size = presets[i].F;
        c->n_layers = presets[i].L;
        c->n_heads = presets[i].Hq;
        c->n_kv_heads = presets[i].Hkv;
        c->head_dim = presets[i].D ? presets[i].D : presets[i].H / presets[i].Hq;
        c->rotary_dim = c->head_dim;
        c->tie_word_embeddings = presets[i].tied;
        c->n_attn_layers = c->n_layers;
        c->max_position_embeddings = presets[i].ctx;
        c->rms_norm_eps = 1e-5;
        c->rope_theta = presets[i].theta;
        snprintf(c->rope_type, sizeof c->rope_type, "default");
        c->bos_token_id = 1;
        c->eos_token_ids[0] = 2;
        c->n_eos = 1;
        if (c->arch == DV_LLM_ARCH_QWEN3_5) {
            c->rms_norm_eps = 1e-6;
            c->rotary_dim = c->head_dim / 4;
            c->qk_norm = c->attn_output_gate = c->zero_centered_norm = 1;
            c->lin = (dv_llm_linear_config){.conv_kernel = 4, .n_k_heads = presets[i].lin_hk,
                                            .n_v_heads = presets[i].lin_hv, .k_head_dim = 128, .v_head_dim = 128};
            if (presets[i].H < 256) c->lin.k_head_dim = 16, c->lin.v_head_dim = 24; // the tiny shape
            qwen3_5_layers(c);
        }
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
    cJSON_AddStringToObject(j, "model_type", c->arch == DV_LLM_ARCH_MISTRAL   ? "mistral"
                                             : c->arch == DV_LLM_ARCH_QWEN3_5 ? "qwen3_5_text"
                                                                              : "llama");
    if (c->arch == DV_LLM_ARCH_QWEN3_5) {
        cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(j, "partial_rotary_factor", (double)c->rotary_dim / c->head_dim);
        cJSON_AddNumberToObject(j, "linear_conv_kernel_dim", c->lin.conv_kernel);
        cJSON_AddNumberToObject(j, "linear_num_key_heads", c->lin.n_k_heads);
        cJSON_AddNumberToObject(j, "linear_num_value_heads", c->lin.n_v_heads);
        cJSON_AddNumberToObject(j, "linear_key_head_dim", c->lin.k_head_dim);
        cJSON_AddNumberToObject(j, "linear_value_head_dim", c->lin.v_head_dim);
        cJSON_AddStringToObject(j, "mamba_ssm_dtype", "float32");
        cJSON *lt = cJSON_AddArrayToObject(j, "layer_types");
        for (int l = 0; l < c->n_layers; l++)
            cJSON_AddItemToArray(lt, cJSON_CreateString(c->layer_linear[l] ? "linear_attention" : "full_attention"));
    }
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

// One tensor of a synthetic checkpoint: name, shape, the in-memory model's view to set, and its fill
// (random, or the constant `value`: norm weights, the DeltaNet gate parameters).
typedef struct synth_tensor {
    char name[96];
    dv_tensor *t; // the view dv_llm_open_synthetic sets (NULL when only writing)
    int n_dims;
    int64_t shape[3];
    int random;
    float value;
} synth_tensor;

static int synth_max(const dv_llm_config *c) { return 3 + DV_LLM_LAYER_TENSORS * c->n_layers; }

// The checkpoint's tensors in file order; the fill key of tensor i depends on i only, so the writer
// and the in-memory model get the same values. m may be NULL (writing). Returns the count.
static int synth_list(const dv_llm_config *c, dv_llm *m, synth_tensor *ts) {
    const int64_t V = c->vocab_size, H = c->hidden_size, F = c->intermediate_size, D = c->head_dim,
                  QD = (int64_t)c->n_heads * D, KD = (int64_t)c->n_kv_heads * D, Hv = c->lin.n_v_heads,
                  VD = Hv * c->lin.v_head_dim, C = 2 * (int64_t)c->lin.n_k_heads * c->lin.k_head_dim + VD;
    const int q35 = c->arch == DV_LLM_ARCH_QWEN3_5;
    const float norm1 = c->zero_centered_norm ? 0.0f : 1.0f; // what makes a norm weight the identity
    int n = 0;
    char p[64] = "";
#define T_(ptr, nm, rnd, val, nd, d0, d1, d2)                                                              \
    do {                                                                                                  \
        synth_tensor *t_ = &ts[n++];                                                                      \
        *t_ = (synth_tensor){.t = m ? (ptr) : NULL, .n_dims = (nd), .shape = {(d0), (d1), (d2)}, .random = (rnd), \
                             .value = (val)};                                                             \
        snprintf(t_->name, sizeof t_->name, "%s%s", p, nm);                                               \
    } while (0)
#define W2(ptr, nm, d0, d1) T_(ptr, nm, 1, 0.0f, 2, d0, d1, 0)
#define NORM(ptr, nm, d0, val) T_(ptr, nm, 0, val, 1, d0, 0, 0)
    T_(m ? &m->tok_embd : NULL, "model.embed_tokens.weight", 1, 0.0f, 2, V, H, 0);
    for (int l = 0; l < c->n_layers; l++) {
        dv_llm_layer *y = m ? &m->layers[l] : NULL;
        snprintf(p, sizeof p, "model.layers.%d.", l);
        NORM(y ? &y->attn_norm : NULL, "input_layernorm.weight", H, norm1);
        if (c->layer_linear[l]) {
            W2(y ? &y->lin_qkv : NULL, "linear_attn.in_proj_qkv.weight", C, H);
            W2(y ? &y->lin_z : NULL, "linear_attn.in_proj_z.weight", VD, H);
            W2(y ? &y->lin_b : NULL, "linear_attn.in_proj_b.weight", Hv, H);
            W2(y ? &y->lin_a : NULL, "linear_attn.in_proj_a.weight", Hv, H);
            T_(y ? &y->lin_conv : NULL, "linear_attn.conv1d.weight", 1, 0.0f, 3, C, 1, c->lin.conv_kernel);
            NORM(y ? &y->lin_dt_bias : NULL, "linear_attn.dt_bias", Hv, 1.0f);
            NORM(y ? &y->lin_a_log : NULL, "linear_attn.A_log", Hv, 0.0f);
            NORM(y ? &y->lin_norm : NULL, "linear_attn.norm.weight", c->lin.v_head_dim, 1.0f);
            W2(y ? &y->lin_out : NULL, "linear_attn.out_proj.weight", H, VD);
        } else {
            W2(y ? &y->wq : NULL, "self_attn.q_proj.weight", c->attn_output_gate ? 2 * QD : QD, H);
            W2(y ? &y->wk : NULL, "self_attn.k_proj.weight", KD, H);
            W2(y ? &y->wv : NULL, "self_attn.v_proj.weight", KD, H);
            W2(y ? &y->wo : NULL, "self_attn.o_proj.weight", H, QD);
            if (q35) {
                NORM(y ? &y->q_norm : NULL, "self_attn.q_norm.weight", D, norm1);
                NORM(y ? &y->k_norm : NULL, "self_attn.k_norm.weight", D, norm1);
            }
        }
        NORM(y ? &y->ffn_norm : NULL, "post_attention_layernorm.weight", H, norm1);
        W2(y ? &y->w_gate : NULL, "mlp.gate_proj.weight", F, H);
        W2(y ? &y->w_up : NULL, "mlp.up_proj.weight", F, H);
        W2(y ? &y->w_down : NULL, "mlp.down_proj.weight", H, F);
    }
    p[0] = 0;
    NORM(m ? &m->out_norm : NULL, "model.norm.weight", H, norm1);
    if (!c->tie_word_embeddings) W2(m ? &m->lm_head : NULL, "lm_head.weight", V, H);
#undef NORM
#undef W2
#undef T_
    return n;
}

static size_t synth_nelem(const synth_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= (size_t)t->shape[d];
    return n;
}

static fill_ctx synth_fill(const synth_tensor *t, int i, dv_dtype dtype, uint64_t seed, float amp) {
    return (fill_ctx){dtype, splitmix(seed * 1000003u + (uint64_t)i), t->random ? amp : 0, t->value};
}

int dv_llm_synth_write(const char *dir, const dv_llm_config *c, dv_dtype dtype, uint64_t seed, double std) {
    const float amp = (float)(std * 1.7320508075688772); // a uniform distribution with this std
    if (!(std >= 0 && std < 100)) return dv_error_set(DV_EINVAL, "synthetic weight std %g is out of range", std);
    if (dtype != DV_DTYPE_F32 && dtype != DV_DTYPE_F16 && dtype != DV_DTYPE_BF16)
        return dv_error_set(DV_EINVAL, "synthetic weights must be F32, F16 or BF16");
    if (mkdir(dir, 0777) && errno != EEXIST) return dv_error_set(DV_EIO, "%s: cannot create (%s)", dir, strerror(errno));
    const int n_max = synth_max(c);
    synth_tensor *st = calloc((size_t)n_max, sizeof *st);
    dv_st_write_tensor *ts = calloc((size_t)n_max, sizeof *ts);
    fill_ctx *fc = calloc((size_t)n_max, sizeof *fc);
    int rc = 0;
    if (!st || !ts || !fc) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto done;
    }
    const int n = synth_list(c, NULL, st);
    for (int i = 0; i < n; i++) {
        fc[i] = synth_fill(&st[i], i, dtype, seed, amp);
        ts[i] = (dv_st_write_tensor){.name = st[i].name, .dtype = dtype, .n_dims = st[i].n_dims, .fill = fill,
                                     .fill_ctx = &fc[i]};
        for (int d = 0; d < st[i].n_dims; d++) ts[i].shape[d] = st[i].shape[d];
    }
    if ((rc = write_config(dir, c, dtype))) goto done;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    rc = dv_safetensors_write(path, ts, n, mk, mv, 1);
done:
    free(st);
    free(ts);
    free(fc);
    return rc;
}

// ---- in memory ----

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
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    ts = calloc((size_t)synth_max(c), sizeof *ts);
    if (!m->layers || !ts) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto fail;
    }
    const int n = synth_list(c, m, ts);
    // one host block for all weights (64-byte aligned tensors), filled in parallel
    const size_t es = dv_dtype_size(dtype);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (synth_nelem(&ts[i]) * es + 63) / 64 * 64;
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
        const size_t ne = synth_nelem(&ts[i]);
        // the conv weight (C, 1, K) is bound as (C, K), as dv_llm_open binds it
        const int nd = ts[i].n_dims == 3 ? 2 : ts[i].n_dims;
        const int64_t shape[2] = {ts[i].shape[0], ts[i].n_dims == 3 ? ts[i].shape[2] : ts[i].shape[1]};
        *ts[i].t = dv_tensor_make(dtype, base + off, nd, shape);
        ts[i].t->name = "synthetic weight";
        m->n_params += (int64_t)ne;
        const fill_ctx fc = synth_fill(&ts[i], i, dtype, seed, amp);
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
    // hybrid models: the Gated DeltaNet states stay as they are (zero after a clear): their size and
    // per-token cost do not depend on the length, only the attention layers' KV does
    int rc = dv_kv_cache_fill_synthetic(m->kv, n_tokens, seed);
    if (!rc) m->n_past = n_tokens;
    return rc;
}
