// test_qwen35_state.c: the state handling of the hybrid Qwen3.5 model (tiny-qwen35 fixture: 6
// Gated DeltaNet layers, 2 attention layers): the config's layer map, the KV cache holding the
// attention layers only, a state round trip (prefill, write, load into a fresh model, decode:
// bitwise the logits of the original), rewinds refused (a recurrent state cannot go back) but
// clearing allowed, streams of another model refused, Qwen3-Next refused by name, the configs of the
// Qwen3_5ForConditionalGeneration and MoE layouts (tiny-qwen35-vlm, tiny-qwen35-moe, and a MoE VLM); the
// synthetic Qwen3.5 shapes (synth-model): the checkpoint written to files and the one built in
// memory give the same logits.
#include "core/dv_error.h"
#include "llm/dv_llm.h"
#include "llm/dv_llm_synth.h"
#include "tests/dv_test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_PROMPT 23
#define N_DEC 6

static dv_llm *open_model(dv_backend *be, const char *rel, int n_batch) {
    dv_llm_params p = dv_llm_default_params();
    p.backend = be;
    p.n_ctx = 64;
    p.n_batch = n_batch;
    dv_llm *m = NULL;
    if (dv_llm_open(dv_test_path(rel), &p, &m)) DV_CHECK_MSG(0, "open %s: %s", rel, dv_error_message());
    return m;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) b = x[i] > x[b] ? i : b;
    return b;
}

// Greedy decode of N_DEC tokens after `first`, logits into lg (N_DEC, V).
static void decode_from(dv_llm *m, const float *first, float *lg, int V) {
    const float *cur = first;
    for (int g = 0; g < N_DEC; g++) {
        DV_CHECK(dv_llm_decode(m, argmax(cur, V), lg + (size_t)g * V) == 0);
        cur = lg + (size_t)g * V;
    }
}

static void test_config(void) {
    dv_llm_config c;
    DV_CHECK(dv_llm_config_load(dv_test_path("tests/fixtures/llm/tiny-qwen35"), &c) == 0);
    DV_CHECK(c.arch == DV_LLM_ARCH_QWEN3_5 && c.n_layers == 8 && c.n_attn_layers == 2 && c.n_linear_layers == 6);
    for (int l = 0; l < 8; l++) DV_CHECK_MSG(c.layer_linear[l] == (l != 3 && l != 7), "layer %d kind", l);
    DV_CHECK(c.rotary_dim == 8 && c.head_dim == 32 && c.attn_output_gate && c.zero_centered_norm && c.qk_norm);
    DV_CHECK(c.lin.n_k_heads == 2 && c.lin.n_v_heads == 4 && c.lin.k_head_dim == 16 && c.lin.v_head_dim == 24);
    DV_CHECK(c.lin.conv_kernel == 4 && c.n_mtp_layers == 1 && c.tie_word_embeddings);
    DV_CHECK(c.n_experts == 0);

    // the same text model as a Qwen3_5ForConditionalGeneration's text_config: equal configs
    dv_llm_config v;
    DV_CHECK(dv_llm_config_load(dv_test_path("tests/fixtures/llm/tiny-qwen35-vlm"), &v) == 0);
    DV_CHECK(v.arch == DV_LLM_ARCH_QWEN3_5 && v.n_attn_layers == 2 && v.rotary_dim == 8 && v.mrope &&
             v.tie_word_embeddings && v.bos_token_id == -1 && v.n_eos == 1 && v.eos_token_ids[0] == c.eos_token_ids[0]);
    // the MoE text model: experts, top-k, and the shared expert as the MLP width
    DV_CHECK(dv_llm_config_load(dv_test_path("tests/fixtures/llm/tiny-qwen35-moe"), &v) == 0);
    DV_CHECK(v.n_experts == 8 && v.n_experts_used == 2 && v.moe_intermediate_size == 40 && v.intermediate_size == 56 &&
             !v.tie_word_embeddings);

    // a ForConditionalGeneration folder ties lm_head by its outer tie_word_embeddings (HF), whatever
    // the text_config says; the MoE one reads its experts from the text_config
    char dir[] = "/tmp/duovid-test-q35cfg-XXXXXX";
    if (mkdtemp(dir)) {
        const char *outer[] = {"{\"model_type\": \"qwen3_5_moe\", \"architectures\": [\"Qwen3_5MoeForConditionalGeneration\"], "
                               "\"vision_config\": {}, \"text_config\": {\"model_type\": \"qwen3_5_moe_text\", "
                               "\"tie_word_embeddings\": true, \"vocab_size\": 10, \"hidden_size\": 8, "
                               "\"num_hidden_layers\": 4, \"num_attention_heads\": 2, \"head_dim\": 8, "
                               "\"linear_conv_kernel_dim\": 4, \"linear_num_key_heads\": 1, \"linear_num_value_heads\": 1, "
                               "\"linear_key_head_dim\": 4, \"linear_value_head_dim\": 4, \"num_experts\": 4, "
                               "\"num_experts_per_tok\": 2, \"moe_intermediate_size\": 6, "
                               "\"shared_expert_intermediate_size\": 5}}",
                               "{\"model_type\": \"qwen3_5_moe\", \"vision_config\": {}, \"text_config\": "
                               "{\"model_type\": \"qwen3_5_moe_text\", \"vocab_size\": 10, \"hidden_size\": 8, "
                               "\"num_hidden_layers\": 4, \"num_attention_heads\": 2, \"head_dim\": 8, "
                               "\"linear_conv_kernel_dim\": 4, \"linear_num_key_heads\": 1, \"linear_num_value_heads\": 1, "
                               "\"linear_key_head_dim\": 4, \"linear_value_head_dim\": 4, \"num_experts\": 4, "
                               "\"num_experts_per_tok\": 5, \"moe_intermediate_size\": 6, "
                               "\"shared_expert_intermediate_size\": 5}}"};
        char path[128];
        snprintf(path, sizeof path, "%s/config.json", dir);
        for (int i = 0; i < 2; i++) {
            FILE *f = fopen(path, "w");
            DV_CHECK(f && fputs(outer[i], f) >= 0 && fclose(f) == 0);
            const int rc = dv_llm_config_load(dir, &v);
            if (i == 0)
                DV_CHECK_MSG(rc == 0 && v.n_experts == 4 && v.n_experts_used == 2 && v.intermediate_size == 5 &&
                                 !v.tie_word_embeddings && v.n_attn_layers == 1,
                             "MoE text_config: rc %d %s", rc, dv_error_message());
            else // top-k above the expert count
                DV_CHECK_MSG(rc == DV_EFORMAT && strstr(dv_error_message(), "num_experts_per_tok"), "%s", dv_error_message());
        }
        remove(path);
        rmdir(dir);
    }

    // MoE variants and unknown layer kinds: refused with a message naming the problem
    const char *bad[][2] = {
        {"{\"model_type\": \"qwen3_next\"}", "mixture-of-experts"},
        {"{\"architectures\": [\"Qwen3NextForCausalLM\"]}", "mixture-of-experts"},
        {"{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, "
         "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"head_dim\": 8, \"layer_types\": [\"linear_attention\", "
         "\"sliding_attention\"], \"linear_conv_kernel_dim\": 4, \"linear_num_key_heads\": 1, \"linear_num_value_heads\": 1, "
         "\"linear_key_head_dim\": 4, \"linear_value_head_dim\": 4}",
         "sliding_attention"},
        {"{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, "
         "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"head_dim\": 8, \"mamba_ssm_dtype\": \"bfloat16\", "
         "\"linear_conv_kernel_dim\": 4, \"linear_num_key_heads\": 1, \"linear_num_value_heads\": 1, "
         "\"linear_key_head_dim\": 4, \"linear_value_head_dim\": 4}",
         "mamba_ssm_dtype"},
    };
    for (int i = 0; i < 4; i++) {
        cJSON *j = cJSON_Parse(bad[i][0]);
        dv_llm_config bc;
        DV_CHECK(j && dv_llm_config_from_json(j, "bad.json", &bc) == DV_EUNSUPPORTED);
        DV_CHECK_MSG(strstr(dv_error_message(), bad[i][1]) && strstr(dv_error_message(), "bad.json"), "message: %s",
                     dv_error_message());
        cJSON_Delete(j);
    }
}

static void test_state(dv_backend *be) {
    const char *rel = "tests/fixtures/llm/tiny-qwen35";
    int32_t ids[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) ids[i] = 3 + (i * 37) % 500;
    dv_llm *a = open_model(be, rel, 7), *b = open_model(be, rel, 5);
    if (!a || !b) goto out;
    const int V = dv_llm_get_config(a)->vocab_size;
    float *pl = malloc((size_t)V * 4), *pl2 = malloc((size_t)V * 4), *la = malloc((size_t)N_DEC * V * 4),
          *lb = malloc((size_t)N_DEC * V * 4);
    DV_CHECK(dv_llm_prefill(a, ids, NULL, N_PROMPT, pl, 0) == 0);

    // the KV cache holds the 2 attention layers (2 KV heads each), nothing for the 6 linear layers
    dv_kv_memory mem;
    dv_kv_cache_memory(dv_llm_kv_cache(a), &mem);
    DV_CHECK_MSG(mem.n_retrieval_heads == 4 && mem.n_streaming_heads == 0, "KV heads %d/%d", mem.n_retrieval_heads,
                 mem.n_streaming_heads);
    const dv_linear_state *ls = dv_llm_linear_state(a);
    // 6 layers x ((K-1) x C + Hv x dk x dv) floats, C = 2*2*16 + 4*24
    DV_CHECK(ls && dv_linear_state_bytes(ls) == (size_t)6 * (3 * 160 + 4 * 16 * 24) * 4);

    // round trip through a stream, then both continue identically
    FILE *f = tmpfile();
    DV_CHECK(f && dv_llm_state_write(a, dv_io_write_stdio, f) == 0);
    DV_CHECK(f && ftell(f) == dv_llm_state_bytes(a));
    if (f) rewind(f);
    DV_CHECK(f && dv_llm_state_read(b, dv_io_read_stdio, f, "tmpfile") == 0);
    DV_CHECK(dv_llm_n_past(b) == N_PROMPT);
    decode_from(a, pl, la, V);
    decode_from(b, pl, lb, V);
    DV_CHECK_MSG(!memcmp(la, lb, (size_t)N_DEC * V * 4), "decode after a state load differs from the original");

    // rewinding a recurrent state is refused; clearing it is not, and gives a fresh context
    DV_CHECK(!dv_llm_can_rewind(a));
    DV_CHECK(dv_llm_rewind(a, N_PROMPT) == DV_EUNSUPPORTED && strstr(dv_error_message(), "recurrent"));
    DV_CHECK(dv_llm_n_past(a) == N_PROMPT + N_DEC);
    DV_CHECK(dv_llm_rewind(a, dv_llm_n_past(a)) == 0);
    DV_CHECK(dv_llm_rewind(a, 0) == 0 && dv_llm_n_past(a) == 0);
    DV_CHECK(dv_llm_prefill(a, ids, NULL, N_PROMPT, pl2, 0) == 0);
    DV_CHECK_MSG(!memcmp(pl, pl2, (size_t)V * 4), "prefill after clearing differs from the first prefill");

    // a truncated stream or one of another model: refused, the context left empty
    if (f) {
        rewind(f);
        FILE *g = tmpfile();
        char buf[256];
        size_t n = fread(buf, 1, sizeof buf, f);
        DV_CHECK(g && fwrite(buf, 1, n, g) == n);
        if (g) rewind(g);
        DV_CHECK(g && dv_llm_state_read(b, dv_io_read_stdio, g, "short") == DV_EFORMAT && dv_llm_n_past(b) == 0);
        if (g) fclose(g);
        fclose(f);
    }
    dv_llm *q3 = open_model(be, "tests/fixtures/llm/tiny-qwen3", 8);
    FILE *h = tmpfile();
    if (q3 && h) {
        DV_CHECK(dv_llm_prefill(q3, ids, NULL, 5, NULL, 0) == 0);
        DV_CHECK(dv_llm_state_write(q3, dv_io_write_stdio, h) == 0);
        rewind(h);
        DV_CHECK(dv_llm_state_read(b, dv_io_read_stdio, h, "qwen3.state") == DV_EFORMAT);
        DV_CHECK_MSG(strstr(dv_error_message(), "qwen3.state"), "%s", dv_error_message());
        DV_CHECK(dv_llm_n_past(b) == 0);
    }
    if (h) fclose(h);
    dv_llm_free(q3);
    free(pl), free(pl2), free(la), free(lb);
out:
    dv_llm_free(a);
    dv_llm_free(b);
}

static void test_synth(dv_backend *be) {
    dv_llm_config c;
    DV_CHECK(dv_llm_synth_preset("qwen3.5-9b", &c) == 0);
    DV_CHECK(c.n_layers == 32 && c.n_attn_layers == 8 && c.layer_linear[2] && !c.layer_linear[3] && c.rotary_dim == 64);
    DV_CHECK(dv_llm_synth_set_layers(&c, 3) == DV_EINVAL);
    DV_CHECK(dv_llm_synth_preset("qwen3.5-tiny", &c) == 0 && dv_llm_synth_set_layers(&c, 8) == 0 && c.n_attn_layers == 2);
    char dir[] = "/tmp/duovid-test-q35-XXXXXX";
    if (!mkdtemp(dir)) return;
    DV_CHECK(dv_llm_synth_write(dir, &c, DV_DTYPE_BF16, 3, 0.2) == 0);
    dv_llm_params p = dv_llm_default_params();
    p.backend = be;
    p.n_ctx = 64;
    p.n_batch = 6;
    dv_llm *f = NULL, *s = NULL;
    DV_CHECK(dv_llm_open(dir, &p, &f) == 0);
    DV_CHECK(dv_llm_open_synthetic(&c, DV_DTYPE_BF16, 3, 0.2, &p, &s) == 0);
    if (f && s) {
        int32_t ids[13];
        for (int i = 0; i < 13; i++) ids[i] = 5 + 31 * i % 500;
        const int V = c.vocab_size;
        float *a = malloc((size_t)13 * V * 4), *b = malloc((size_t)13 * V * 4);
        DV_CHECK(dv_llm_prefill(f, ids, NULL, 13, a, 1) == 0 && dv_llm_prefill(s, ids, NULL, 13, b, 1) == 0);
        DV_CHECK_MSG(!memcmp(a, b, (size_t)13 * V * 4), "synthetic Qwen3.5: file and in-memory logits differ");
        double spread = 0;
        for (int i = 1; i < V; i++) spread += fabs(a[i] - a[0]);
        DV_CHECK_MSG(spread > 0, "synthetic Qwen3.5 logits are constant");
        free(a), free(b);
    }
    dv_llm_free(f);
    dv_llm_free(s);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    DV_CHECK(system(cmd) == 0);
}

int main(void) {
    dv_backend *be = dv_backend_cpu_init(2);
    DV_CHECK(be != NULL);
    if (!be) return dv_test_finish();
    test_config();
    test_state(be);
    test_synth(be);
    dv_backend_free(be);
    return dv_test_finish();
}
