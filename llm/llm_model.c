// llm_model.c: open a Llama/Mistral/Qwen2/Qwen3/Qwen3.5 checkpoint folder: read config.json, map the safetensors,
// bind and shape-check every weight, and allocate the KV cache and activation buffers once.
#include "core/dv_error.h"
#include "core/dv_log.h"
#include "llm/llm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dv_llm_params dv_llm_default_params(void) {
    dv_llm_params p = {.backend = NULL, .n_ctx = 0, .n_batch = 256, .kv_type_k = DV_LLM_KV_DEFAULT,
                       .kv_type_v = DV_LLM_KV_DEFAULT};
    return p;
}

// Tensor-name prefixes: plain HF causal LMs ("model.layers.0...", "lm_head"), and the language
// model inside LLaVA-style checkpoints (old and new transformers layouts).
static const struct { const char *body, *head; } dv_prefixes[] = {
    {"model.", "lm_head."},
    {"language_model.model.", "language_model.lm_head."},
    {"model.language_model.", "lm_head."},
};

typedef struct binder {
    const dv_safetensors *st;
    const char *body, *head;
    int64_t n_params;
} binder;

// Looks up `prefix + name`, checks the shape (n_dims of shape) and the dtype, and makes a view.
static int bind_nd(binder *b, dv_tensor *t, const char *prefix, const char *name, int n_dims, const int64_t *shape) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const dv_st_tensor *st;
    int rc = dv_safetensors_get(b->st, full, n_dims, shape, &st);
    if (rc) return rc;
    if (st->dtype != DV_DTYPE_F32 && st->dtype != DV_DTYPE_F16 && st->dtype != DV_DTYPE_BF16)
        return dv_error_set(DV_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (supported: F32, F16, BF16)", st->file,
                            full, dv_dtype_name(st->dtype));
    *t = dv_tensor_make(st->dtype, (void *)st->data, st->n_dims, st->shape);
    t->name = st->name;
    b->n_params += dv_tensor_nelem(t);
    return 0;
}

// bind_nd for (n0) or (n0, n1) (n1 == 0).
static int bind(binder *b, dv_tensor *t, const char *prefix, const char *name, int64_t n0, int64_t n1) {
    const int64_t shape[2] = {n0, n1};
    return bind_nd(b, t, prefix, name, n1 ? 2 : 1, shape);
}

// A Gated DeltaNet layer's token mixer (linear_attn.*).
static int bind_linear(binder *b, const dv_llm_config *c, const char *p, dv_llm_layer *l) {
    const dv_llm_linear_config *k = &c->lin;
    const int64_t H = c->hidden_size, VD = (int64_t)k->n_v_heads * k->v_head_dim,
                  C = 2 * (int64_t)k->n_k_heads * k->k_head_dim + VD, Hv = k->n_v_heads;
    const int64_t conv[3] = {C, 1, k->conv_kernel};
    int rc;
    if ((rc = bind(b, &l->lin_qkv, p, "linear_attn.in_proj_qkv.weight", C, H)) ||
        (rc = bind(b, &l->lin_z, p, "linear_attn.in_proj_z.weight", VD, H)) ||
        (rc = bind(b, &l->lin_a, p, "linear_attn.in_proj_a.weight", Hv, H)) ||
        (rc = bind(b, &l->lin_b, p, "linear_attn.in_proj_b.weight", Hv, H)) ||
        (rc = bind_nd(b, &l->lin_conv, p, "linear_attn.conv1d.weight", 3, conv)) ||
        (rc = bind(b, &l->lin_a_log, p, "linear_attn.A_log", Hv, 0)) ||
        (rc = bind(b, &l->lin_dt_bias, p, "linear_attn.dt_bias", Hv, 0)) ||
        (rc = bind(b, &l->lin_norm, p, "linear_attn.norm.weight", k->v_head_dim, 0)) ||
        (rc = bind(b, &l->lin_out, p, "linear_attn.out_proj.weight", H, VD)))
        return rc;
    const char *name = l->lin_conv.name;
    l->lin_conv = dv_tensor_2d(l->lin_conv.dtype, l->lin_conv.data, C, k->conv_kernel); // (C, 1, K) as (C, K)
    l->lin_conv.name = name;
    return 0;
}

// A view of rows [r0, r0 + n) of a (R, K) weight, or of matrix e of an (E, R, K) one, as (n, K).
static dv_tensor weight_rows(const dv_tensor *t, int64_t e, int64_t r0, int64_t n) {
    const int64_t R = t->ne[t->n_dims - 2], K = t->ne[t->n_dims - 1];
    const size_t es = dv_dtype_size(t->dtype);
    dv_tensor v = dv_tensor_2d(t->dtype, (char *)t->data + ((size_t)(e * R + r0) * (size_t)K) * es, n, K);
    v.name = t->name;
    return v;
}

// The routed experts of a MoE block: per-expert tensors (mlp.experts.E.{gate,up,down}_proj.weight, as
// save_pretrained writes them) or HF's fused parameters (mlp.experts.gate_up_proj (E, 2Fe, H), gate
// rows first, and mlp.experts.down_proj (E, H, Fe)); either way views per expert.
static int bind_experts(binder *b, const dv_llm_config *c, const char *p, dv_llm_layer *l) {
    const int64_t H = c->hidden_size, E = c->n_experts, Fe = c->moe_intermediate_size;
    int rc;
    if (!(l->experts = calloc((size_t)(3 * E), sizeof *l->experts))) return dv_error_set(DV_ENOMEM, "out of memory");
    char name[160];
    snprintf(name, sizeof name, "%smlp.experts.gate_up_proj", p);
    if (dv_safetensors_find(b->st, name)) {
        const int64_t gu[3] = {E, 2 * Fe, H}, dn[3] = {E, H, Fe};
        dv_tensor tgu, tdn;
        if ((rc = bind_nd(b, &tgu, p, "mlp.experts.gate_up_proj", 3, gu)) ||
            (rc = bind_nd(b, &tdn, p, "mlp.experts.down_proj", 3, dn)))
            return rc;
        for (int64_t e = 0; e < E; e++) {
            l->experts[3 * e] = weight_rows(&tgu, e, 0, Fe);
            l->experts[3 * e + 1] = weight_rows(&tgu, e, Fe, Fe);
            l->experts[3 * e + 2] = weight_rows(&tdn, e, 0, H);
        }
        return 0;
    }
    for (int64_t e = 0; e < E; e++) {
        char g[64], u[64], d[64];
        snprintf(g, sizeof g, "mlp.experts.%lld.gate_proj.weight", (long long)e);
        snprintf(u, sizeof u, "mlp.experts.%lld.up_proj.weight", (long long)e);
        snprintf(d, sizeof d, "mlp.experts.%lld.down_proj.weight", (long long)e);
        if ((rc = bind(b, &l->experts[3 * e], p, g, Fe, H)) || (rc = bind(b, &l->experts[3 * e + 1], p, u, Fe, H)) ||
            (rc = bind(b, &l->experts[3 * e + 2], p, d, H, Fe)))
            return rc;
    }
    return 0;
}

// The MLP after the token mixer: SwiGLU, or (MoE) the router, the experts and the gated shared expert.
static int bind_mlp(binder *b, const dv_llm_config *c, const char *p, dv_llm_layer *l) {
    const int64_t H = c->hidden_size, F = c->intermediate_size;
    const char *mlp = c->n_experts ? "mlp.shared_expert." : "mlp.";
    char g[64], u[64], d[64];
    snprintf(g, sizeof g, "%sgate_proj.weight", mlp);
    snprintf(u, sizeof u, "%sup_proj.weight", mlp);
    snprintf(d, sizeof d, "%sdown_proj.weight", mlp);
    int rc;
    if ((rc = bind(b, &l->ffn_norm, p, "post_attention_layernorm.weight", H, 0)) ||
        (rc = bind(b, &l->w_gate, p, g, F, H)) || (rc = bind(b, &l->w_up, p, u, F, H)) ||
        (rc = bind(b, &l->w_down, p, d, H, F)))
        return rc;
    if (c->n_experts && ((rc = bind(b, &l->moe_router, p, "mlp.gate.weight", c->n_experts, H)) ||
                         (rc = bind(b, &l->moe_shared_gate, p, "mlp.shared_expert_gate.weight", 1, H)) ||
                         (rc = bind_experts(b, c, p, l))))
        return rc;
    return 0;
}

static int bind_layer(binder *b, const dv_llm_config *c, int i, dv_llm_layer *l) {
    char p[96];
    snprintf(p, sizeof p, "%slayers.%d.", b->body, i);
    const int64_t H = c->hidden_size, QD = (int64_t)c->n_heads * c->head_dim,
                  KD = (int64_t)c->n_kv_heads * c->head_dim;
    int rc;
    if (c->layer_linear[i])
        return (rc = bind(b, &l->attn_norm, p, "input_layernorm.weight", H, 0)) || (rc = bind_linear(b, c, p, l)) ||
                       (rc = bind_mlp(b, c, p, l))
                   ? rc
                   : 0;
    if ((rc = bind(b, &l->attn_norm, p, "input_layernorm.weight", H, 0)) ||
        (rc = bind(b, &l->wq, p, "self_attn.q_proj.weight", c->attn_output_gate ? 2 * QD : QD, H)) ||
        (rc = bind(b, &l->wk, p, "self_attn.k_proj.weight", KD, H)) ||
        (rc = bind(b, &l->wv, p, "self_attn.v_proj.weight", KD, H)) ||
        (rc = bind(b, &l->wo, p, "self_attn.o_proj.weight", H, QD)) || (rc = bind_mlp(b, c, p, l)))
        return rc;
    if ((c->attention_bias || c->qkv_bias) &&
        ((rc = bind(b, &l->bq, p, "self_attn.q_proj.bias", QD, 0)) ||
         (rc = bind(b, &l->bk, p, "self_attn.k_proj.bias", KD, 0)) ||
         (rc = bind(b, &l->bv, p, "self_attn.v_proj.bias", KD, 0))))
        return rc;
    if (c->attention_bias && (rc = bind(b, &l->bo, p, "self_attn.o_proj.bias", H, 0))) return rc;
    if (c->qk_norm && ((rc = bind(b, &l->q_norm, p, "self_attn.q_norm.weight", c->head_dim, 0)) ||
                       (rc = bind(b, &l->k_norm, p, "self_attn.k_norm.weight", c->head_dim, 0))))
        return rc;
    if (c->mlp_bias &&
        ((rc = bind(b, &l->b_gate, p, "mlp.gate_proj.bias", c->intermediate_size, 0)) ||
         (rc = bind(b, &l->b_up, p, "mlp.up_proj.bias", c->intermediate_size, 0)) ||
         (rc = bind(b, &l->b_down, p, "mlp.down_proj.bias", H, 0))))
        return rc;
    return 0;
}

static void *be_alloc(dv_llm *m, size_t n, int *rc) {
    if (*rc) return NULL;
    void *p = m->be->ops->alloc(m->be, n);
    if (!p) *rc = dv_error_prefix(DV_ENOMEM, "allocating %.1f MiB of model buffers", (double)n / (1 << 20));
    return p;
}

// GPU backends: every weight is copied once to device memory in its file dtype (bf16 stays bf16),
// and the views are re-pointed at the copies. The tied head shares the embedding's copy.
static int upload_one(dv_llm *m, dv_tensor *t) {
    if (!t->data) return 0;
    const size_t n = dv_tensor_nbytes(t);
    void *d = m->be->ops->alloc(m->be, n);
    if (!d) return dv_error_prefix(DV_ENOMEM, "uploading tensor '%s'", t->name ? t->name : "?");
    m->dev_weights[m->n_dev_weights++] = d;
    int rc = dv_backend_upload_async(m->be, d, t->data, n); // the source outlives the sync below
    t->data = d;
    t->device = m->be->device;
    return rc;
}

static int upload_weights(dv_llm *m) {
    const int per_layer = DV_LLM_LAYER_TENSORS;
    const size_t n_experts = (size_t)3 * (size_t)m->cfg.n_experts * (size_t)m->cfg.n_layers; // one copy per view
    m->dev_weights = calloc((size_t)(3 + per_layer * m->cfg.n_layers) + n_experts, sizeof *m->dev_weights);
    if (!m->dev_weights) return dv_error_set(DV_ENOMEM, "out of memory");
    const int tied = m->lm_head.data == m->tok_embd.data;
    int rc = upload_one(m, &m->tok_embd);
    if (!rc) rc = upload_one(m, &m->out_norm);
    if (!rc) rc = tied ? (m->lm_head = m->tok_embd, 0) : upload_one(m, &m->lm_head);
    for (int l = 0; !rc && l < m->cfg.n_layers; l++) {
        dv_llm_layer *y = &m->layers[l];
        dv_tensor *ts[DV_LLM_LAYER_TENSORS] = {
            &y->attn_norm, &y->wq,      &y->wk,      &y->wv,        &y->wo,     &y->bq,         &y->bk,
            &y->bv,        &y->bo,      &y->q_norm,  &y->k_norm,    &y->ffn_norm, &y->w_gate,   &y->w_up,
            &y->w_down,    &y->b_gate,  &y->b_up,    &y->b_down,    &y->lin_qkv, &y->lin_z,     &y->lin_a,
            &y->lin_b,     &y->lin_conv, &y->lin_a_log, &y->lin_dt_bias, &y->lin_norm, &y->lin_out,
            &y->moe_router, &y->moe_shared_gate};
        for (int i = 0; !rc && i < per_layer; i++) rc = upload_one(m, ts[i]);
        for (int i = 0; !rc && y->experts && i < 3 * m->cfg.n_experts; i++) rc = upload_one(m, &y->experts[i]);
    }
    int rs = m->be->ops->synchronize(m->be); // the async copies are done before anything frees a source
    return rc ? rc : rs;
}

int dv_llm_open(const char *model_dir, const dv_llm_params *params, dv_llm **out) {
    *out = NULL;
    DV_ASSERT(params && params->backend);
    int rc;
    dv_llm *m = calloc(1, sizeof *m);
    if (!m) return dv_error_set(DV_ENOMEM, "out of memory");
    m->be = params->backend;
    if ((rc = dv_llm_config_load(model_dir, &m->cfg))) goto fail;
    const dv_llm_config *c = &m->cfg;
    if ((rc = dv_llm_config_rope(c, &m->rope))) goto fail;
    if ((rc = dv_safetensors_open(model_dir, &m->st))) goto fail;

    // ---- weights ----
    binder b = {.st = m->st};
    for (size_t i = 0; i < sizeof dv_prefixes / sizeof dv_prefixes[0] && !b.body; i++) {
        char name[128];
        snprintf(name, sizeof name, "%sembed_tokens.weight", dv_prefixes[i].body);
        if (dv_safetensors_find(m->st, name)) {
            b.body = dv_prefixes[i].body;
            b.head = dv_prefixes[i].head;
        }
    }
    if (!b.body) {
        rc = dv_error_set(DV_ENOTFOUND, "%s: missing tensor 'model.embed_tokens.weight' (not a Llama/Mistral checkpoint?)",
                          model_dir);
        goto fail;
    }
    const int64_t V = c->vocab_size, H = c->hidden_size;
    if ((rc = bind(&b, &m->tok_embd, b.body, "embed_tokens.weight", V, H)) ||
        (rc = bind(&b, &m->out_norm, b.body, "norm.weight", H, 0)))
        goto fail;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->n_layers; i++)
        if ((rc = bind_layer(&b, c, i, &m->layers[i]))) goto fail;
    char head_name[128];
    snprintf(head_name, sizeof head_name, "%sweight", b.head);
    if (!c->tie_word_embeddings || dv_safetensors_find(m->st, head_name)) {
        // Some tied checkpoints still store lm_head; use it when present (same values).
        if ((rc = bind(&b, &m->lm_head, b.head, "weight", V, H))) goto fail;
    } else {
        m->lm_head = m->tok_embd;
    }
    m->n_params = b.n_params;
    if ((rc = dv_llm_open_finish(m, params, model_dir))) goto fail;
    *out = m;
    return 0;
fail:
    dv_llm_free(m);
    return rc;
}

// Zero-centred RMSNorms (Qwen3_5RMSNorm: x_normed * (1 + w), in F32) become plain RMSNorms with the
// weight 1 + w widened to F32 once here, as HF computes it (1.0 + w.float()): no op of its own.
static int shift_norms(dv_llm *m) {
    const dv_llm_config *c = &m->cfg;
    dv_tensor **ts = malloc((1 + 4 * (size_t)c->n_layers) * sizeof *ts);
    if (!ts) return dv_error_set(DV_ENOMEM, "out of memory");
    int n = 0;
    ts[n++] = &m->out_norm;
    for (int l = 0; l < c->n_layers; l++) {
        dv_llm_layer *y = &m->layers[l];
        dv_tensor *per[4] = {&y->attn_norm, &y->ffn_norm, &y->q_norm, &y->k_norm};
        for (int i = 0; i < 4; i++)
            if (per[i]->data) ts[n++] = per[i];
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)dv_tensor_nelem(ts[i]);
    if (!(m->norm_host = malloc(total * sizeof(float)))) {
        free(ts);
        return dv_error_set(DV_ENOMEM, "out of memory");
    }
    float *p = m->norm_host;
    for (int i = 0; i < n; i++) {
        const int64_t k = dv_tensor_nelem(ts[i]);
        for (int64_t j = 0; j < k; j++) {
            const void *d = ts[i]->data;
            const float w = ts[i]->dtype == DV_DTYPE_F32    ? ((const float *)d)[j]
                            : ts[i]->dtype == DV_DTYPE_BF16 ? dv_bf16_to_f32(((const uint16_t *)d)[j])
                                                            : dv_f16_to_f32(((const uint16_t *)d)[j]);
            p[j] = 1.0f + w;
        }
        const char *name = ts[i]->name;
        *ts[i] = dv_tensor_1d(DV_DTYPE_F32, p, k);
        ts[i]->name = name;
        p += k;
    }
    free(ts);
    return 0;
}

int dv_llm_open_finish(dv_llm *m, const dv_llm_params *params, const char *model_dir) {
    const dv_llm_config *c = &m->cfg;
    const int64_t V = c->vocab_size, H = c->hidden_size;
    int rc;
    int kvl = 0, linl = 0;
    for (int l = 0; l < c->n_layers; l++) {
        m->layers[l].kv_layer = c->layer_linear[l] ? -1 : kvl++;
        m->layers[l].lin_layer = c->layer_linear[l] ? linl++ : -1;
    }
    if (c->zero_centered_norm && (rc = shift_norms(m))) return rc;
    if (m->be->device != DV_DEVICE_CPU && (rc = upload_weights(m))) return rc;
    // ---- buffers, allocated once ----
    m->n_ctx = params->n_ctx > 0 ? params->n_ctx : c->max_position_embeddings;
    if (c->sliding_window > 0 && m->n_ctx > c->sliding_window) {
        // Within the window, sliding-window attention is full attention: a context that fits it is
        // exact. A longer one would need the window, which duovid does not implement.
        if (params->n_ctx > 0)
            return dv_error_set(DV_EUNSUPPORTED,
                                "%s: config.json uses a sliding window of %d tokens, which duovid does not implement; "
                                "a context of %d tokens needs it (use a context of at most %d tokens)",
                                model_dir, c->sliding_window, m->n_ctx, c->sliding_window);
        DV_LOG_INFO("%s: context limited to the sliding window of %d tokens (sliding-window attention is not "
                    "implemented; within the window it equals full attention)",
                    model_dir, c->sliding_window);
        m->n_ctx = c->sliding_window;
    }
    m->n_batch = params->n_batch > 0 ? params->n_batch : 256;
    if (m->n_batch > m->n_ctx) m->n_batch = m->n_ctx;
    const size_t L = (size_t)c->n_layers, KD = (size_t)c->n_kv_heads * c->head_dim,
                 QD = (size_t)c->n_heads * c->head_dim, B = (size_t)m->n_batch, F = (size_t)c->intermediate_size;
    rc = 0;
    (void)L;
    // KV row types: the default is bf16 where the backend stores compact rows, else f32
    const dv_kv_type def = m->be->ops->kv_store ? DV_KV_BF16 : DV_KV_F32;
    m->kv_type_k = params->kv_type_k == DV_LLM_KV_DEFAULT ? def : (dv_kv_type)params->kv_type_k;
    m->kv_type_v = params->kv_type_v == DV_LLM_KV_DEFAULT ? def : (dv_kv_type)params->kv_type_v;
    dv_kv_cache_params kp = {.backend = m->be, .n_layers = c->n_attn_layers, .n_kv_heads = c->n_kv_heads,
                             .head_dim = c->head_dim, .n_ctx = m->n_ctx, .pattern = params->pattern,
                             .prefill = params->duo_prefill, .k_type = m->kv_type_k, .v_type = m->kv_type_v};
    if ((rc = dv_kv_cache_init(&kp, &m->kv))) return dv_error_prefix(rc, "%s", model_dir);
    if (c->n_linear_layers) {
        const dv_llm_linear_config *k = &c->lin;
        const size_t VD = (size_t)k->n_v_heads * k->v_head_dim, C = 2 * (size_t)k->n_k_heads * k->k_head_dim + VD;
        if ((rc = dv_linear_state_init(m->be, c, &m->lin))) return rc;
        m->lin_x = be_alloc(m, B * C * sizeof(float), &rc);
        m->lin_c = be_alloc(m, B * C * sizeof(float), &rc);
        m->lin_z = be_alloc(m, B * VD * sizeof(float), &rc);
        m->lin_a = be_alloc(m, B * (size_t)k->n_v_heads * sizeof(float), &rc);
        m->lin_b = be_alloc(m, B * (size_t)k->n_v_heads * sizeof(float), &rc);
        m->lin_o = be_alloc(m, B * VD * sizeof(float), &rc);
    }
    if (c->attn_output_gate) m->qg = be_alloc(m, B * 2 * QD * sizeof(float), &rc);
    if (!rc && c->n_experts) rc = dv_llm_moe_init(m);
    m->k_new = be_alloc(m, B * KD * sizeof(float), &rc);
    m->v_new = be_alloc(m, B * KD * sizeof(float), &rc);
    m->x = be_alloc(m, B * (size_t)H * sizeof(float), &rc);
    m->xb = be_alloc(m, B * (size_t)H * sizeof(float), &rc);
    m->q = be_alloc(m, B * QD * sizeof(float), &rc);
    m->att = be_alloc(m, B * QD * sizeof(float), &rc);
    m->gate = be_alloc(m, B * F * sizeof(float), &rc);
    m->up = be_alloc(m, B * F * sizeof(float), &rc);
    m->logits = be_alloc(m, B * (size_t)V * sizeof(float), &rc);
    const size_t n_pos = c->mrope ? 3 : 1; // M-RoPE: (t, h, w) per token
    m->pos = be_alloc(m, n_pos * B * sizeof(int32_t), &rc);
    m->ids = be_alloc(m, B * sizeof(int32_t), &rc);
    if (rc) return rc;
    m->pos_host = malloc(n_pos * B * sizeof(int32_t));
    m->ids_host = malloc(B * sizeof(int32_t));
    if (!m->pos_host || !m->ids_host) return dv_error_set(DV_ENOMEM, "out of memory");
    if (c->mrope) {
        if (!(m->cell_next = malloc((size_t)m->n_ctx * sizeof(int32_t)))) return dv_error_set(DV_ENOMEM, "out of memory");
        if ((rc = dv_rope_sec_mrope(&m->rope_sec, c->rotary_dim, c->mrope_section, 3, c->mrope_interleaved))) return rc;
    }
    DV_LOG_DEBUG("%s: %s, %d layers, hidden %d, heads %d/%d, ctx %d, batch %d", model_dir, c->arch_name,
                 c->n_layers, c->hidden_size, c->n_heads, c->n_kv_heads, m->n_ctx, m->n_batch);
    return 0;
}

void dv_llm_free(dv_llm *m) {
    if (!m) return;
    dv_kv_cache_free(m->kv);
    dv_linear_state_free(m->lin);
    dv_llm_moe_free(m);
    void *bufs[] = {m->k_new, m->v_new, m->x,     m->xb,    m->q,     m->att,   m->gate,  m->up,   m->logits,
                    m->pos,   m->ids,   m->qg,    m->lin_x, m->lin_c, m->lin_z, m->lin_a, m->lin_b, m->lin_o};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) m->be->ops->free(m->be, bufs[i]);
    for (int i = 0; i < m->n_dev_weights; i++) m->be->ops->free(m->be, m->dev_weights[i]);
    free(m->dev_weights);
    free(m->pos_host);
    free(m->cell_next);
    free(m->ids_host);
    for (int l = 0; m->layers && l < m->cfg.n_layers; l++) free(m->layers[l].experts);
    free(m->layers);
    dv_safetensors_free(m->st);
    free(m->synth_host);
    free(m->norm_host);
    free(m);
}

const dv_llm_config *dv_llm_get_config(const dv_llm *m) { return &m->cfg; }
int dv_llm_n_ctx(const dv_llm *m) { return m->n_ctx; }
int dv_llm_n_past(const dv_llm *m) { return m->n_past; }
int64_t dv_llm_param_count(const dv_llm *m) { return m->n_params; }
size_t dv_llm_weight_bytes(const dv_llm *m) { return m->st ? dv_safetensors_total_bytes(m->st) : m->synth_bytes; }

size_t dv_llm_decode_weight_bytes(const dv_llm *m) {
    const size_t all = dv_llm_weight_bytes(m);
    if (!m->tok_embd.data || m->tok_embd.data == m->lm_head.data) return all; // tied: the table is the lm_head
    const size_t table = dv_tensor_nbytes(&m->tok_embd), row = table / (size_t)m->cfg.vocab_size;
    return all > table ? all - table + row : all;
}

size_t dv_llm_kv_bytes(const dv_llm *m) {
    dv_kv_memory mem;
    dv_kv_cache_memory(m->kv, &mem);
    return mem.total_bytes;
}

const dv_kv_cache *dv_llm_kv_cache(const dv_llm *m) { return m->kv; }

int dv_llm_rewind(dv_llm *m, int n_past) {
    // A recurrent state holds every token folded in: it can be cleared, not rewound
    if (m->lin && n_past != m->n_past && n_past != 0)
        return dv_error_set(DV_EUNSUPPORTED,
                            "cannot rewind from %d to %d tokens: the Gated DeltaNet layers' recurrent state cannot be "
                            "rewound (reload a snapshot, dv_llm_state_read, or clear with 0)",
                            m->n_past, n_past);
    int rc = dv_kv_cache_rewind(m->kv, n_past); // later positions are overwritten before they are read
    if (!rc && m->lin && n_past == 0 && m->n_past != 0) rc = dv_linear_state_clear(m->lin);
    if (!rc) m->n_past = n_past;
    return rc;
}

int dv_llm_can_rewind(const dv_llm *m) { return m->lin == NULL; }
const dv_linear_state *dv_llm_linear_state(const dv_llm *m) { return m->lin; }

int dv_llm_set_duo(dv_llm *m, const dv_duo_pattern *pattern, dv_duo_prefill prefill) {
    const dv_llm_config *c = &m->cfg;
    dv_kv_cache_params kp = {.backend = m->be, .n_layers = c->n_attn_layers, .n_kv_heads = c->n_kv_heads,
                             .head_dim = c->head_dim, .n_ctx = m->n_ctx, .pattern = pattern, .prefill = prefill,
                             .k_type = m->kv_type_k, .v_type = m->kv_type_v};
    dv_kv_cache *kv = NULL;
    int rc = dv_kv_cache_init(&kp, &kv);
    if (rc) return rc;
    if (m->lin && (rc = dv_linear_state_clear(m->lin))) {
        dv_kv_cache_free(kv);
        return rc;
    }
    dv_kv_cache_free(m->kv);
    m->kv = kv;
    m->n_past = 0;
    return 0;
}

int dv_llm_next_position(const dv_llm *m) {
    if (!m->cell_next) return m->n_past;
    return m->n_past ? m->cell_next[m->n_past - 1] : 0;
}
