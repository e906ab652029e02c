// test_llm_parity.c: our Llama/Mistral/Qwen2/Qwen3/SmolLM2/Qwen3.5 (dense, MoE, and the text model of
// a Qwen3_5ForConditionalGeneration folder) forward pass against Hugging Face transformers, with
// default, linear, llama3, yarn and dynamic RoPE.
//
// Fixtures (tests/fixtures/llm/make_llm_fixtures.py, make_text_fixtures.py) hold, per tiny random
// checkpoint: the prompt
// ids, HF's logits at every prompt position, 16 greedy tokens and the logits that chose each.
// We check: prompt logits (rel L2 < 1e-4), greedy tokens exactly and their logits, and that
// chunked prefill, one-token-at-a-time prefill, chunked prefill with a DuoAttention pattern at
// sparsity 0 and prefill from embeddings agree with it.
#include "core/dv_error.h"
#include "core/dv_safetensors.h"
#include "llm/dv_llm.h"
#include "tests/dv_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const dv_st_tensor *need(const dv_safetensors *st, const char *name) {
    const dv_st_tensor *t = dv_safetensors_find(st, name);
    if (!t) fprintf(stderr, "fixture lacks '%s'\n", name);
    return t;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

// Embedding rows for `ids` read straight from the checkpoint, as F32 (host).
static float *embeddings_for(const char *model_dir, const int32_t *ids, int n, int H) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(model_dir, &st)) return NULL;
    const dv_st_tensor *t = dv_safetensors_find(st, "model.embed_tokens.weight");
    if (!t) t = dv_safetensors_find(st, "model.language_model.embed_tokens.weight"); // a VLM's text model
    float *e = t ? malloc((size_t)n * (size_t)H * sizeof *e) : NULL;
    for (int i = 0; e && i < n; i++)
        for (int d = 0; d < H; d++) {
            size_t k = (size_t)ids[i] * (size_t)H + (size_t)d;
            e[(size_t)i * H + d] = t->dtype == DV_DTYPE_F32    ? ((const float *)t->data)[k]
                                   : t->dtype == DV_DTYPE_BF16 ? dv_bf16_to_f32(((const uint16_t *)t->data)[k])
                                                               : dv_f16_to_f32(((const uint16_t *)t->data)[k]);
        }
    dv_safetensors_free(st);
    return e;
}

static void check_model(dv_backend *be, const char *name) {
    char ref_path[512];
    snprintf(ref_path, sizeof ref_path, "tests/fixtures/llm/%s.ref.safetensors", name);
    printf("== %s\n", name);
    dv_safetensors *ref = NULL;
    if (dv_safetensors_open(dv_test_path(ref_path), &ref)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return;
    }
    const char *model_rel = dv_safetensors_metadata(ref, "model_dir");
    const dv_st_tensor *t_ids = need(ref, "prompt_ids"), *t_pl = need(ref, "prompt_logits"),
                       *t_gi = need(ref, "greedy_ids"), *t_gl = need(ref, "greedy_logits");
    DV_CHECK(model_rel && t_ids && t_pl && t_gi && t_gl);
    if (!(model_rel && t_ids && t_pl && t_gi && t_gl)) goto out;
    char model_dir[4096];
    snprintf(model_dir, sizeof model_dir, "%s", dv_test_path(model_rel));
    const int n = (int)t_ids->shape[0], n_gen = (int)t_gi->shape[0], V = (int)t_pl->shape[1];
    const int32_t *ids = t_ids->data, *gids = t_gi->data;
    const float *plog = t_pl->data, *glog = t_gl->data;

    float *logits = malloc((size_t)(n + n_gen) * (size_t)V * sizeof(float));
    // A DuoAttention pattern at sparsity 0 (every head a retrieval head) must change nothing.
    dv_llm_config mc;
    dv_duo_pattern *full = NULL;
    DV_CHECK(dv_llm_config_load(model_dir, &mc) == 0 && dv_duo_pattern_full(mc.n_attn_layers, mc.n_kv_heads, &full) == 0);
    // Batch sizes: everything at once, odd chunks, one token at a time, odd chunks with the pattern.
    const int batches[] = {256, 5, 1, 5};
    for (int bi = 0; bi < 4; bi++) {
        dv_llm_params p = dv_llm_default_params();
        p.backend = be;
        p.n_batch = batches[bi];
        p.n_ctx = 64;
        p.pattern = bi == 3 ? full : NULL;
        p.kv_type_k = p.kv_type_v = DV_KV_F32; // HF parity at 1e-4: the cache keeps the F32 keys exactly
        dv_llm *m = NULL;
        if (dv_llm_open(model_dir, &p, &m)) {
            DV_CHECK_MSG(0, "open %s: %s", model_dir, dv_error_message());
            break;
        }
        DV_CHECK(dv_llm_get_config(m)->vocab_size == V);
        for (int i = 0; i < n * V; i++) logits[i] = NAN; // poison
        char label[128];
        DV_CHECK(dv_llm_prefill(m, ids, NULL, n, logits, 1) == 0);
        const char *duo = bi == 3 ? " duo sparsity 0" : "";
        snprintf(label, sizeof label, "%s batch=%d%s prompt logits (%d x %d)", name, batches[bi], duo, n, V);
        dv_test_close(label, logits, plog, (size_t)n * V, 1e-4);
        // greedy continuation through the decode path
        float *cur = logits + (size_t)(n - 1) * V;
        int tok_ok = 1;
        double worst = 0;
        for (int g = 0; g < n_gen; g++) {
            int tok = argmax(cur, V);
            if (tok != gids[g]) {
                tok_ok = 0;
                fprintf(stderr, "greedy token %d: got %d, HF %d\n", g, tok, gids[g]);
                break;
            }
            double md, rel = dv_test_rel_l2(cur, glog + (size_t)g * V, (size_t)V, &md);
            if (rel > worst) worst = rel;
            float *next = logits + (size_t)(n + g) * V;
            if (g + 1 < n_gen && dv_llm_decode(m, tok, next)) {
                tok_ok = 0;
                break;
            }
            cur = next;
        }
        printf("%s batch=%d%s: %d greedy tokens %s, worst step rel_l2 = %.3e\n", name, batches[bi], duo, n_gen,
               tok_ok ? "identical" : "DIFFER", worst);
        DV_CHECK(tok_ok);
        DV_CHECK_MSG(worst < 1e-4, "greedy-step logits rel_l2 %.3e", worst);
        dv_llm_free(m);
    }
    dv_duo_pattern_free(full);

    // Prefill from embeddings (the path image/video tokens take) must equal prefill from ids.
    {
        dv_llm_params p = dv_llm_default_params();
        p.backend = be;
        p.n_ctx = 64;
        p.n_batch = 7;
        p.kv_type_k = p.kv_type_v = DV_KV_F32;
        dv_llm *m = NULL;
        float *emb = NULL;
        DV_CHECK(dv_llm_open(model_dir, &p, &m) == 0);
        if (m) emb = embeddings_for(model_dir, ids, n, dv_llm_get_config(m)->hidden_size);
        DV_CHECK(emb != NULL);
        if (emb) {
            for (int i = 0; i < n * V; i++) logits[i] = NAN;
            DV_CHECK(dv_llm_prefill(m, NULL, emb, n, logits, 1) == 0);
            dv_test_close("prefill from embeddings", logits, plog, (size_t)n * V, 1e-4);
            // context overflow is an error, not a crash
            int32_t many[64] = {0};
            DV_CHECK(dv_llm_prefill(m, many, NULL, 64, NULL, 0) == DV_EINVAL);
            int32_t bad = V + 5;
            DV_CHECK(dv_llm_decode(m, bad, logits) == DV_EINVAL);
        }
        dv_llm_free(m);
        free(emb);
    }
    free(logits);
out:
    dv_safetensors_free(ref);
}

int main(void) {
    dv_backend *be = dv_backend_cpu_init(2);
    DV_CHECK(be != NULL);
    if (!be) return dv_test_finish();
    check_model(be, "tiny-llama");
    check_model(be, "tiny-mistral");
    check_model(be, "tiny-llama-f16-sharded");
    check_model(be, "tiny-qwen2");         // q/k/v bias, yarn, tied, unused sliding_window
    check_model(be, "tiny-qwen3");         // q_norm/k_norm, explicit head_dim, F16
    check_model(be, "tiny-smollm2");       // Llama layout, 3 heads / 1 KV head, tied
    check_model(be, "tiny-llama-dynamic"); // dynamic NTK past max_position_embeddings while decoding
    check_model(be, "tiny-qwen35");        // hybrid: Gated DeltaNet + gated attention, partial rotary, tied
    check_model(be, "tiny-qwen35-vlm");    // the same text model inside a Qwen3_5ForConditionalGeneration folder
    check_model(be, "tiny-qwen35-moe");    // Qwen3.5 MoE: 8 experts, top 2, shared expert with its gate
    check_model(be, "tiny-qwen35-moe-fused"); // the same with HF's fused expert tensors
    dv_backend_free(be);
    return dv_test_finish();
}
