// llm_config.c: parse and validate a Hugging Face Llama/Mistral/Qwen2/Qwen3/Qwen3.5 config.json into dv_llm_config.
#include "llm/dv_llm_config.h"

#include "core/dv_error.h"
#include "core/dv_json.h"
#include "core/dv_log.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define DV_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

// The architectures duovid runs: config.json "architectures"[0], or "model_type" when that is absent.
static const struct {
    const char *arch, *model_type;
    dv_llm_arch id;
    int moe; // the MLP is a mixture of experts
} dv_llm_archs[] = {
    {"LlamaForCausalLM", "llama", DV_LLM_ARCH_LLAMA, 0},
    {"MistralForCausalLM", "mistral", DV_LLM_ARCH_MISTRAL, 0},
    {"Qwen2ForCausalLM", "qwen2", DV_LLM_ARCH_QWEN2, 0},
    {"Qwen3ForCausalLM", "qwen3", DV_LLM_ARCH_QWEN3, 0},
    {"Qwen3_5ForCausalLM", "qwen3_5_text", DV_LLM_ARCH_QWEN3_5, 0},
    {"Qwen3_5MoeForCausalLM", "qwen3_5_moe_text", DV_LLM_ARCH_QWEN3_5, 1},
    // Qwen2.5-VL's text model: Qwen2 with M-RoPE (flat Hub configs, or transformers 5's text_config)
    {"Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl_text", DV_LLM_ARCH_QWEN2, 0},
    // Qwen3-VL's text model: Qwen3 (q/k norm) with interleaved M-RoPE; DeepStack via dv_llm_prefill_deepstack
    {"Qwen3VLForConditionalGeneration", "qwen3_vl_text", DV_LLM_ARCH_QWEN3, 0},
};

static int get_pos_int(const cJSON *j, const char *key, const char *what, int64_t lo, int64_t hi, int *out);

// The Qwen3.5 hybrid layout: layer_types (or full_attention_interval), the Gated DeltaNet shapes,
// partial rotary, the attention output gate, (1 + w) norms and the MTP layers that are not run.
static int read_qwen3_5(const cJSON *j, const char *what, dv_llm_config *cfg) {
    int rc;
    const char *ssm = dv_json_get_string(j, "mamba_ssm_dtype");
    if (ssm && strcmp(ssm, "float32"))
        return dv_error_set(DV_EUNSUPPORTED, "%s: mamba_ssm_dtype '%s' is not supported (the recurrent state is float32)",
                            what, ssm);
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    int64_t interval = 4;
    if ((rc = dv_json_get_int_opt(j, "full_attention_interval", what, &interval))) return rc;
    if (interval < 1) return dv_error_set(DV_EFORMAT, "%s: full_attention_interval must be >= 1", what);
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != cfg->n_layers)
            return dv_error_set(DV_EFORMAT, "%s: layer_types must list %d layer types", what, cfg->n_layers);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) {
            const char *t = cJSON_IsString(e) ? e->valuestring : "";
            if (strcmp(t, "linear_attention") && strcmp(t, "full_attention"))
                return dv_error_set(DV_EUNSUPPORTED, "%s: layer_types[%d] = '%s' is not supported "
                                    "(linear_attention, full_attention)", what, i, t);
            cfg->layer_linear[i++] = !strcmp(t, "linear_attention");
        }
    } else {
        for (int i = 0; i < cfg->n_layers; i++) cfg->layer_linear[i] = (i + 1) % interval != 0;
    }
    for (int i = 0; i < cfg->n_layers; i++) cfg->n_linear_layers += cfg->layer_linear[i];
    cfg->n_attn_layers = cfg->n_layers - cfg->n_linear_layers;
    if (cfg->n_attn_layers == 0)
        return dv_error_set(DV_EUNSUPPORTED, "%s: no full_attention layer (duovid needs at least one)", what);
    dv_llm_linear_config *l = &cfg->lin;
    if ((rc = get_pos_int(j, "linear_conv_kernel_dim", what, 1, 64, &l->conv_kernel)) ||
        (rc = get_pos_int(j, "linear_num_key_heads", what, 1, 1024, &l->n_k_heads)) ||
        (rc = get_pos_int(j, "linear_num_value_heads", what, 1, 1024, &l->n_v_heads)) ||
        (rc = get_pos_int(j, "linear_key_head_dim", what, 1, 512, &l->k_head_dim)) ||
        (rc = get_pos_int(j, "linear_value_head_dim", what, 1, 1024, &l->v_head_dim)))
        return rc;
    if (l->n_v_heads % l->n_k_heads)
        return dv_error_set(DV_EFORMAT, "%s: linear_num_value_heads %d is not a multiple of linear_num_key_heads %d",
                            what, l->n_v_heads, l->n_k_heads);
    const char *act = dv_json_get_string(j, "hidden_act");
    if (act && strcmp(act, "silu"))
        return dv_error_set(DV_EUNSUPPORTED, "%s: hidden_act '%s' is not supported (silu)", what, act);
    int gate = 1;
    if ((rc = dv_json_get_bool_opt(j, "attn_output_gate", what, &gate))) return rc;
    if (!gate) return dv_error_set(DV_EUNSUPPORTED, "%s: attn_output_gate false is not supported", what);
    cfg->attn_output_gate = 1;
    cfg->zero_centered_norm = 1;
    int64_t mtp = 0;
    if ((rc = dv_json_get_int_opt(j, "mtp_num_hidden_layers", what, &mtp))) return rc;
    cfg->n_mtp_layers = mtp > 0 ? (int)mtp : 0;
    return 0;
}

// Qwen3.5 MoE (Qwen3_5MoeSparseMoeBlock in every layer): the router always renormalises its top-k
// softmax weights (HF's Qwen3_5MoeTopKRouter has no norm_topk_prob switch), and every block has a
// shared expert with a sigmoid gate.
static int read_moe(const cJSON *j, const char *what, dv_llm_config *cfg) {
    int rc;
    if ((rc = get_pos_int(j, "num_experts", what, 1, 1 << 16, &cfg->n_experts)) ||
        (rc = get_pos_int(j, "num_experts_per_tok", what, 1, cfg->n_experts, &cfg->n_experts_used)) ||
        (rc = get_pos_int(j, "moe_intermediate_size", what, 1, 1 << 20, &cfg->moe_intermediate_size)) ||
        (rc = get_pos_int(j, "shared_expert_intermediate_size", what, 1, 1 << 20, &cfg->intermediate_size)))
        return rc;
    return 0;
}

// Mixture-of-experts models whose layout duovid does not implement, refused by name (Qwen3-Next:
// sparse layers every decoder_sparse_step, mlp_only_layers, norm_topk_prob).
static int refuse_moe(const char *arch, const char *model_type, const char *what) {
    const char *moe[] = {"Qwen3NextForCausalLM", "qwen3_next"};
    for (size_t i = 0; i < DV_ARRAY_LEN(moe); i++)
        if ((arch && !strcmp(arch, moe[i])) || (model_type && !strcmp(model_type, moe[i])))
            return dv_error_set(DV_EUNSUPPORTED,
                                "%s: '%s' is a mixture-of-experts model whose layout duovid does not implement; the "
                                "Qwen3.5 models (qwen3_5_text, qwen3_5_moe_text) are supported",
                                what, moe[i]);
    return 0;
}

// Token ids may be an int, a list of ints, or null.
static int read_ids(const cJSON *j, const char *key, int *ids, int max, int *n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    *n = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {
        ids[(*n)++] = (int)v->valuedouble;
        return 0;
    }
    if (!cJSON_IsArray(v)) return -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e)) return -1;
        if (*n < max) ids[(*n)++] = (int)e->valuedouble;
    }
    return 0;
}

static int get_pos_int(const cJSON *j, const char *key, const char *what, int64_t lo, int64_t hi, int *out) {
    int64_t v;
    int rc = dv_json_get_int(j, key, what, &v);
    if (rc) return rc;
    if (v < lo || v > hi)
        return dv_error_set(DV_EFORMAT, "%s: '%s' = %lld is out of range [%lld, %lld]", what, key, (long long)v,
                            (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

// The sliding window as HF applies it. Llama has none. Mistral attends with `sliding_window` in every
// layer when it is set. Qwen2/Qwen3 use it only with use_sliding_window, and then only in the layers
// that layer_types marks "sliding_attention" (or, without layer_types, layers >= max_window_layers).
static int read_sliding_window(const cJSON *j, const char *what, dv_llm_config *cfg) {
    int64_t w = 0;
    int rc;
    if (cfg->arch == DV_LLM_ARCH_LLAMA) return 0;
    if ((rc = dv_json_get_int_opt(j, "sliding_window", what, &w))) return rc;
    if (w < 0 || w > (1ll << 30))
        return dv_error_set(DV_EFORMAT, "%s: sliding_window = %lld is out of range", what, (long long)w);
    if (w == 0) return 0;
    if (cfg->arch == DV_LLM_ARCH_QWEN2 || cfg->arch == DV_LLM_ARCH_QWEN3) {
        int use = 0;
        int64_t first = 28; // HF's max_window_layers default
        if ((rc = dv_json_get_bool_opt(j, "use_sliding_window", what, &use)) ||
            (rc = dv_json_get_int_opt(j, "max_window_layers", what, &first)))
            return rc;
        if (!use) return 0;
        const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layer_types"), *e;
        int any = 0;
        if (cJSON_IsArray(lt)) {
            cJSON_ArrayForEach(e, lt) any |= cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention");
        } else {
            any = first < cfg->n_layers;
        }
        if (!any) return 0;
    }
    cfg->sliding_window = (int)w;
    return 0;
}

int dv_llm_config_from_json(const cJSON *j, const char *what, dv_llm_config *cfg) {
    int rc;
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(j)) return dv_error_set(DV_EFORMAT, "%s: not a JSON object", what);

    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const char *model_type = dv_json_get_string(j, "model_type");
    const char *arch = NULL;
    if (cJSON_IsArray(archs) && cJSON_GetArraySize(archs) > 0 && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    if ((rc = refuse_moe(arch, model_type, what))) return rc;
    size_t ai = 0;
    for (; ai < DV_ARRAY_LEN(dv_llm_archs); ai++)
        if (arch ? !strcmp(arch, dv_llm_archs[ai].arch) : (model_type && !strcmp(model_type, dv_llm_archs[ai].model_type)))
            break;
    if (ai == DV_ARRAY_LEN(dv_llm_archs))
        return dv_error_set(DV_EUNSUPPORTED,
                            "%s: architecture '%s' is not supported (supported: LlamaForCausalLM, MistralForCausalLM, "
                            "Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3_5ForCausalLM, Qwen3_5MoeForCausalLM)",
                            what, arch ? arch : (model_type ? model_type : "(none)"));
    cfg->arch = dv_llm_archs[ai].id;
    snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s", dv_llm_archs[ai].arch);

    const int moe = dv_llm_archs[ai].moe;
    if ((rc = get_pos_int(j, "vocab_size", what, 1, INT_MAX / 2, &cfg->vocab_size)) ||
        (rc = get_pos_int(j, "hidden_size", what, 1, 1 << 17, &cfg->hidden_size)) ||
        (moe ? (rc = read_moe(j, what, cfg))
             : (rc = get_pos_int(j, "intermediate_size", what, 1, 1 << 20, &cfg->intermediate_size))) ||
        (rc = get_pos_int(j, "num_hidden_layers", what, 1, DV_LLM_MAX_LAYERS, &cfg->n_layers)) ||
        (rc = get_pos_int(j, "num_attention_heads", what, 1, 4096, &cfg->n_heads)))
        return rc;

    int64_t v = cfg->n_heads;
    if ((rc = dv_json_get_int_opt(j, "num_key_value_heads", what, &v))) return rc;
    if (v < 1 || v > cfg->n_heads || cfg->n_heads % v)
        return dv_error_set(DV_EFORMAT, "%s: num_key_value_heads = %lld must divide num_attention_heads = %d", what,
                            (long long)v, cfg->n_heads);
    cfg->n_kv_heads = (int)v;

    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(j, "head_dim");
    if (hd && !cJSON_IsNull(hd)) {
        if ((rc = get_pos_int(j, "head_dim", what, 2, 2 * DV_ROPE_MAX_HALF, &cfg->head_dim))) return rc;
    } else if (cfg->arch == DV_LLM_ARCH_QWEN3) {
        cfg->head_dim = 128; // Qwen3Config's default, not hidden_size / num_attention_heads
    } else if (cfg->arch == DV_LLM_ARCH_QWEN3_5) {
        cfg->head_dim = 256; // Qwen3_5TextConfig's default
    } else {
        if (cfg->hidden_size % cfg->n_heads)
            return dv_error_set(DV_EFORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", what,
                                cfg->hidden_size, cfg->n_heads);
        cfg->head_dim = cfg->hidden_size / cfg->n_heads;
    }
    if (cfg->head_dim % 2 || cfg->head_dim > 2 * DV_ROPE_MAX_HALF)
        return dv_error_set(DV_EFORMAT, "%s: head_dim %d must be even and <= %d", what, cfg->head_dim,
                            2 * DV_ROPE_MAX_HALF);

    v = 2048;
    if ((rc = dv_json_get_int_opt(j, "max_position_embeddings", what, &v))) return rc;
    if (v < 1 || v > (1ll << 30))
        return dv_error_set(DV_EFORMAT, "%s: max_position_embeddings = %lld is out of range", what, (long long)v);
    cfg->max_position_embeddings = (int)v;

    cfg->rms_norm_eps = 1e-6;
    if ((rc = dv_json_get_double_opt(j, "rms_norm_eps", what, &cfg->rms_norm_eps))) return rc;
    if (!(cfg->rms_norm_eps > 0 && cfg->rms_norm_eps < 1))
        return dv_error_set(DV_EFORMAT, "%s: rms_norm_eps = %g is out of range (0, 1)", what, cfg->rms_norm_eps);

    // RoPE: classic configs have rope_theta + rope_scaling at the top level; newer transformers
    // write one "rope_parameters" object holding rope_type, rope_theta and the scaling fields.
    cfg->rope_theta = 10000.0;
    if ((rc = dv_json_get_double_opt(j, "rope_theta", what, &cfg->rope_theta))) return rc;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    if (cJSON_IsObject(rp)) {
        if ((rc = dv_json_get_double_opt(rp, "rope_theta", what, &cfg->rope_theta))) return rc;
        if (!rs || cJSON_IsNull(rs)) rs = rp;
    }
    snprintf(cfg->rope_type, sizeof cfg->rope_type, "default");
    cfg->rope_scaling.factor = 1.0;
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs)) return dv_error_set(DV_EFORMAT, "%s: rope_scaling is not an object", what);
        const char *t = dv_json_get_string(rs, "rope_type");
        if (!t) t = dv_json_get_string(rs, "type");
        if (t) snprintf(cfg->rope_type, sizeof cfg->rope_type, "%s", t);
        dv_rope_scaling *sc = &cfg->rope_scaling;
        int truncate = 1;
        if ((rc = dv_json_get_double_opt(rs, "factor", what, &sc->factor)) ||
            (rc = dv_json_get_double_opt(rs, "low_freq_factor", what, &sc->low_freq_factor)) ||
            (rc = dv_json_get_double_opt(rs, "high_freq_factor", what, &sc->high_freq_factor)) ||
            (rc = dv_json_get_double_opt(rs, "original_max_position_embeddings", what,
                                         &sc->original_max_position_embeddings)) ||
            (rc = dv_json_get_double_opt(rs, "attention_factor", what, &sc->attention_factor)) ||
            (rc = dv_json_get_double_opt(rs, "beta_fast", what, &sc->beta_fast)) ||
            (rc = dv_json_get_double_opt(rs, "beta_slow", what, &sc->beta_slow)) ||
            (rc = dv_json_get_double_opt(rs, "mscale", what, &sc->mscale)) ||
            (rc = dv_json_get_double_opt(rs, "mscale_all_dim", what, &sc->mscale_all_dim)) ||
            (rc = dv_json_get_bool_opt(rs, "truncate", what, &truncate)))
            return rc;
        sc->no_truncate = !truncate;
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(rs, "mrope_section");
        if (ms && !cJSON_IsNull(ms)) {
            const cJSON *e;
            int n = 0, ok = cJSON_IsArray(ms) && cJSON_GetArraySize(ms) == 3;
            cJSON_ArrayForEach(e, ms) {
                if (!ok || !cJSON_IsNumber(e) || e->valueint < 0) ok = 0;
                else cfg->mrope_section[n++] = e->valueint;
            }
            if (!ok) return dv_error_set(DV_EFORMAT, "%s: mrope_section must be a list of 3 non-negative ints", what);
            cfg->mrope = 1;
            if ((rc = dv_json_get_bool_opt(rs, "mrope_interleaved", what, &cfg->mrope_interleaved))) return rc;
            if (strcmp(cfg->rope_type, "default") && strcmp(cfg->rope_type, "mrope"))
                return dv_error_set(DV_EUNSUPPORTED, "%s: M-RoPE with rope_type '%s'", what, cfg->rope_type);
            snprintf(cfg->rope_type, sizeof cfg->rope_type, "default"); // "mrope" in old configs: plain freqs
        }
    }
    if (cfg->arch == DV_LLM_ARCH_QWEN3_5) { // HF Qwen3_5TextRotaryEmbedding: M-RoPE always, interleaved always
        if (!cfg->mrope) memcpy(cfg->mrope_section, (const int[]){11, 11, 10}, sizeof cfg->mrope_section);
        cfg->mrope = cfg->mrope_interleaved = 1; // (its recomposition reads no mrope_interleaved flag)
    }
    cfg->rope_scaling.max_position_embeddings = cfg->max_position_embeddings;
    if (!(cfg->rope_theta > 0)) return dv_error_set(DV_EFORMAT, "%s: rope_theta must be > 0", what);
    // partial rotary (Qwen3.5: the first quarter of each head); HF takes int(head_dim * factor)
    double prf = cfg->arch == DV_LLM_ARCH_QWEN3_5 ? 0.25 : 1.0;
    if ((rc = dv_json_get_double_opt(j, "partial_rotary_factor", what, &prf)) ||
        (cJSON_IsObject(rp) && (rc = dv_json_get_double_opt(rp, "partial_rotary_factor", what, &prf))))
        return rc;
    if (!(prf > 0 && prf <= 1)) return dv_error_set(DV_EFORMAT, "%s: partial_rotary_factor %g is out of (0, 1]", what, prf);
    cfg->rotary_dim = (int)(cfg->head_dim * prf);
    if (cfg->rotary_dim < 2 || cfg->rotary_dim % 2)
        return dv_error_set(DV_EFORMAT, "%s: the rotary dim %d (head_dim x partial_rotary_factor) must be even", what,
                            cfg->rotary_dim);
    dv_rope probe;
    if ((rc = dv_llm_config_rope(cfg, &probe))) return dv_error_prefix(rc, "%s", what);
    dv_rope_sec sec_probe;
    if (cfg->mrope && (rc = dv_rope_sec_mrope(&sec_probe, cfg->rotary_dim, cfg->mrope_section, 3, cfg->mrope_interleaved)))
        return dv_error_prefix(rc, "%s", what);

    cfg->tie_word_embeddings = 0; // HF default for Llama, Mistral, Qwen2 and Qwen3
    if ((rc = dv_json_get_bool_opt(j, "tie_word_embeddings", what, &cfg->tie_word_embeddings))) return rc;
    // Llama/Mistral/Qwen3 read attention_bias (all four projections); Qwen2 always has q/k/v biases and
    // no o_proj bias (its config has no such field); only Llama has mlp_bias.
    if (cfg->arch == DV_LLM_ARCH_QWEN2) cfg->qkv_bias = 1;
    else if ((rc = dv_json_get_bool_opt(j, "attention_bias", what, &cfg->attention_bias))) return rc;
    if (cfg->arch == DV_LLM_ARCH_LLAMA && (rc = dv_json_get_bool_opt(j, "mlp_bias", what, &cfg->mlp_bias))) return rc;
    cfg->qk_norm = cfg->arch == DV_LLM_ARCH_QWEN3 || cfg->arch == DV_LLM_ARCH_QWEN3_5;
    if ((rc = read_sliding_window(j, what, cfg))) return rc;
    cfg->n_attn_layers = cfg->n_layers;
    if (cfg->arch == DV_LLM_ARCH_QWEN3_5 && (rc = read_qwen3_5(j, what, cfg))) return rc;

    int n;
    cfg->bos_token_id = -1;
    if (read_ids(j, "bos_token_id", &cfg->bos_token_id, 1, &n))
        return dv_error_set(DV_EFORMAT, "%s: bos_token_id is not an integer", what);
    if (read_ids(j, "eos_token_id", cfg->eos_token_ids, DV_LLM_MAX_EOS, &cfg->n_eos))
        return dv_error_set(DV_EFORMAT, "%s: eos_token_id is not an integer or a list of integers", what);

    const char *dt = dv_json_get_string(j, "torch_dtype");
    if (!dt) dt = dv_json_get_string(j, "dtype");
    cfg->dtype = DV_DTYPE_F32;
    if (dt && (!strcmp(dt, "bfloat16"))) cfg->dtype = DV_DTYPE_BF16;
    if (dt && (!strcmp(dt, "float16"))) cfg->dtype = DV_DTYPE_F16;
    return 0;
}

// A VLM's "text_config" on the Hub often lists only what differs from the transformers defaults
// (llava-hf/LLaVA-NeXT-Video-7B-hf gives no hidden_size); fill the LlamaConfig / MistralConfig /
// Qwen2Config defaults for the missing fields, and the token ids from the outer config (Qwen2Config
// has no default token ids: NAN leaves them unset).
static cJSON *text_config_with_defaults(const cJSON *root, const cJSON *tc) {
    static const struct { const char *key; double llama, mistral, qwen2; } defaults[] = {
        {"vocab_size", 32000, 32000, 151936},          {"hidden_size", 4096, 4096, 4096},
        {"intermediate_size", 11008, 14336, 22016},    {"num_hidden_layers", 32, 32, 32},
        {"num_attention_heads", 32, 32, 32},           {"num_key_value_heads", 32, 8, 32},
        {"max_position_embeddings", 2048, 131072, 32768}, {"rms_norm_eps", 1e-6, 1e-6, 1e-6},
        {"bos_token_id", 1, 1, NAN},                   {"eos_token_id", 2, 2, NAN},
    };
    cJSON *j = cJSON_Duplicate(tc, 1);
    if (!j) return NULL;
    const char *mt = dv_json_get_string(j, "model_type");
    const int mistral = mt && !strcmp(mt, "mistral"), qwen2 = mt && !strncmp(mt, "qwen2", 5);
    if (!mt) cJSON_AddStringToObject(j, "model_type", "llama"); // LLaVA's text_config default
    // Qwen3.5 (Qwen3_5ForConditionalGeneration, the MoE too): the outer config's tie_word_embeddings
    // decides whether lm_head is the embedding (HF ties by it, default false), and its text_config
    // lists every field (no LLaVA defaults apply)
    const char *omt = dv_json_get_string(root, "model_type");
    const int qwen3_5 = omt && (!strcmp(omt, "qwen3_5") || !strcmp(omt, "qwen3_5_moe"));
    if (qwen3_5) {
        int tie = 0;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
        if (cJSON_IsBool(t)) tie = cJSON_IsTrue(t);
        cJSON_DeleteItemFromObjectCaseSensitive(j, "tie_word_embeddings");
        cJSON_AddBoolToObject(j, "tie_word_embeddings", tie);
    }
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, defaults[i].key);
        if (v && !cJSON_IsNull(v)) continue;
        if (qwen3_5 && !strstr(defaults[i].key, "token_id")) continue;
        const cJSON *outer = cJSON_GetObjectItemCaseSensitive(root, defaults[i].key);
        const double d = qwen3_5 ? NAN : qwen2 ? defaults[i].qwen2 : mistral ? defaults[i].mistral : defaults[i].llama;
        cJSON_DeleteItemFromObjectCaseSensitive(j, defaults[i].key);
        if (outer && !cJSON_IsNull(outer) && strstr(defaults[i].key, "token_id"))
            cJSON_AddItemToObject(j, defaults[i].key, cJSON_Duplicate(outer, 1));
        else if (!isnan(d))
            cJSON_AddNumberToObject(j, defaults[i].key, d);
    }
    const char *dt = dv_json_get_string(root, "torch_dtype");
    if (!dt) dt = dv_json_get_string(root, "dtype");
    if (dt && !cJSON_GetObjectItemCaseSensitive(j, "torch_dtype")) cJSON_AddStringToObject(j, "torch_dtype", dt);
    return j;
}

int dv_llm_config_load(const char *model_dir, dv_llm_config *cfg) {
    char path[4096], what[4200];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    cJSON *j = NULL;
    int rc = dv_json_load(path, &j);
    if (rc) return rc;
    // LLaVA-style checkpoints (llava, llava_next, llava_next_video): the language model's config is
    // nested under "text_config".
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "text_config");
    if (cJSON_IsObject(tc) && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "vision_config"))) {
        cJSON *t = text_config_with_defaults(j, tc);
        snprintf(what, sizeof what, "%s (text_config)", path);
        rc = t ? dv_llm_config_from_json(t, what, cfg) : dv_error_set(DV_ENOMEM, "out of memory");
        cJSON_Delete(t);
    } else {
        rc = dv_llm_config_from_json(j, path, cfg);
    }
    cJSON_Delete(j);
    return rc;
}

int dv_llm_config_rope_at(const dv_llm_config *cfg, int64_t seq_len, dv_rope *rope) {
    dv_rope_scaling sc = cfg->rope_scaling;
    sc.type = cfg->rope_type; // set here, not stored: a stored pointer would dangle in struct copies
    sc.seq_len = (double)seq_len;
    return dv_rope_init(rope, cfg->rotary_dim, cfg->rope_theta, &sc);
}

int dv_llm_config_rope(const dv_llm_config *cfg, dv_rope *rope) { return dv_llm_config_rope_at(cfg, 0, rope); }

int dv_llm_config_rope_is_dynamic(const dv_llm_config *cfg) { return !strcmp(cfg->rope_type, "dynamic"); }

int dv_llm_config_is_eos(const dv_llm_config *cfg, int token) {
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_token_ids[i] == token) return 1;
    return 0;
}

const char *dv_llm_config_layers_str(const dv_llm_config *cfg, int linear, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int l = 0; l < cfg->n_layers; l++) {
        if (cfg->layer_linear[l] != linear) continue;
        int e = l;
        while (e + 1 < cfg->n_layers && cfg->layer_linear[e + 1] == linear) e++;
        int w = e > l ? snprintf(buf + len, n - len, "%s%d-%d", len ? "," : "", l, e)
                      : snprintf(buf + len, n - len, "%s%d", len ? "," : "", l);
        if (w < 0 || (size_t)w >= n - len) break; // truncated: what fits stays
        len += (size_t)w;
        l = e;
    }
    return buf;
}

int dv_llm_config_attn_layer(const dv_llm_config *cfg, int a) {
    for (int l = 0; l < cfg->n_layers; l++)
        if (!cfg->layer_linear[l] && a-- == 0) return l;
    return -1;
}
