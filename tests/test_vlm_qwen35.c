// test_vlm_qwen35.c: Qwen3.5 (Qwen3_5ForConditionalGeneration: natively multimodal, Gated DeltaNet +
// gated attention) through the VLM library (vlm/dv_vlm.h) end to end against Hugging Face
// (tests/fixtures/qwenvl/make_qwen35vl_fixture.py): dv_vlm_open detects the qwen3_5 folder and opens
// the Qwen3-VL video path without DeepStack; dv_vlm_load_video samples the Qwen3VLVideoProcessor's 7
// frames of clip.mp4 at 1.75 fps (0 6 13 20 26 32 39), smart-resizes them (128x96: grid 4 x 6 x 8) and
// prefills each temporal group as "<t seconds><|vision_start|>" + its rows (own position grid) +
// "<|vision_end|>", with the text model's default M-RoPE ([11, 11, 10] interleaved over the 64 rotary
// dims of head_dim 256; the config names no mrope_section). Then the shared checks (tests/test_vlm_qwen.h:
// HF's logits rel L2 < 1e-4 and greedy tokens for two turns, after /reset, from a saved state, from the
// context cache, in 16-cell chunks, DuoAttention over the 2 attention layers at sparsity 0 and 0.5), and
// what the recurrent state adds: chunked prefill of odd sizes (7 and 13 cells: the chunked delta rule
// over chunk boundaries anywhere equals HF's), a context cache file that carries the DeltaNet states and
// decodes bit-identically to the run that wrote it.
#include "tests/test_vlm_qwen.h"

#include "llm/dv_llm.h"

#define FIX "tests/fixtures/qwenvl/"
#define MODEL FIX "tiny-qwen3_5-vl"
#define V 1207
#define VIDEO_PAD 1206
#define N_LAYERS 8
#define N_LINEAR 6

int main(void) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-qwen3_5-vl.ref.safetensors"), &st)) {
        fprintf(stderr, "FAIL fixture: %s\n", dv_error_message());
        return 1;
    }
    int64_t n_ids = 0, n_idx = 0;
    const int32_t *want_ids = vlm_ref_i32(st, "input_ids", &n_ids), *want_idx = vlm_ref_i32(st, "frame_indices", &n_idx);
    const dv_st_tensor *tpos = NULL;
    const int32_t *want_pos = NULL;
    if (want_ids && !dv_safetensors_get(st, "position_ids", 2, (int64_t[]){3, n_ids}, &tpos) &&
        tpos->dtype == DV_DTYPE_I32)
        want_pos = tpos->data;
    // the DuoAttention pattern covers the 2 attention layers (1 KV head each)
    qvlm_ref r = {.model = MODEL, .vocab = V, .n_layers = N_LAYERS - N_LINEAR, .n_kv_heads = 1};
    if (qvlm_ref_turns(st, &r) || !want_ids || !want_idx || !want_pos || n_idx != 7) return 1;

    char cache[] = "/tmp/dv_test_qwen35_XXXXXX";
    DV_CHECK(mkdtemp(cache) != NULL);
    dv_backend *be = dv_backend_cpu_init(2);
    vlm_test_use_kv(DV_KV_F32);

    // ---- the model: hybrid text model with the default M-RoPE, the tower without DeepStack ----
    dv_vlm *v = vlm_test_open(MODEL, be, 256, NULL, cache);
    if (!v) return 1;
    const dv_llm_config *c = dv_llm_get_config(dv_vlm_llm(v));
    DV_CHECK_MSG(c->n_linear_layers == N_LINEAR && c->n_attn_layers == 2 && c->layer_linear[0] && !c->layer_linear[3] &&
                     !c->layer_linear[7] && c->n_mtp_layers == 1,
                 "layers: %d linear, %d attention", c->n_linear_layers, c->n_attn_layers);
    DV_CHECK_MSG(c->mrope && c->mrope_interleaved && c->rotary_dim == 64 && c->mrope_section[0] == 11 &&
                     c->mrope_section[1] == 11 && c->mrope_section[2] == 10,
                 "M-RoPE: %d, sections %d %d %d, rotary %d", c->mrope, c->mrope_section[0], c->mrope_section[1],
                 c->mrope_section[2], c->rotary_dim);
    DV_CHECK(dv_llm_linear_state(dv_vlm_llm(v)) != NULL);
    DV_CHECK_MSG(dv_vlm_encoder(v) == NULL && strstr(dv_vlm_describe_vision(v), "qwen3 vision") &&
                     strstr(dv_vlm_describe_vision(v), "0 deepstack"),
                 "vision: %s", dv_vlm_describe_vision(v));

    // ---- the plan, the frames, the prompt ids, the positions ----
    dv_vlm_video vc;
    if (qvlm_load(v, &vc)) return 1;
    const int nq = qvlm_check_qwen3_prompt(v, &vc, want_idx, want_ids, n_ids, VIDEO_PAD);
    if (!nq) return 1;
    // the text after the video resumes where HF's get_rope_index puts the question (all 3 rows equal)
    const int64_t at = n_ids - nq;
    DV_CHECK_MSG(want_pos[at] == want_pos[n_ids + at] && want_pos[at] == want_pos[2 * n_ids + at] &&
                     dv_llm_next_position(dv_vlm_llm(v)) == want_pos[at],
                 "text resumes at position %d, HF %d (cell %lld)", dv_llm_next_position(dv_vlm_llm(v)), want_pos[at],
                 (long long)at);

    // ---- two turns, /reset, a saved state, the context cache, 16-cell chunks, DuoAttention ----
    qvlm_check_all(&r, be, v, cache);

    // ---- chunked prefill of odd sizes: chunk boundaries inside the video rows and the text ----
    v = vlm_test_open(MODEL, be, 7, NULL, NULL);
    if (v && qvlm_load(v, &vc) == 0) qvlm_two_turns(&r, v, "chunks of 7");
    dv_vlm_free(v);
    v = vlm_test_open(MODEL, be, 13, NULL, NULL);
    if (v && qvlm_load(v, &vc) == 0) qvlm_two_turns(&r, v, "chunks of 13");
    dv_vlm_free(v);

    // ---- the context cache file carries the DeltaNet states: a hit decodes bit-identically ----
    char cache2[] = "/tmp/dv_test_qwen35c_XXXXXX";
    DV_CHECK(mkdtemp(cache2) != NULL);
    int32_t ga[16], gb[16];
    float *la = malloc(2 * 16 * (size_t)V * sizeof(float)), *lb = la ? la + 16 * V : NULL;
    int ok = la != NULL;
    for (int k = 0; ok && k < 2; k++) {
        v = vlm_test_open(MODEL, be, 13, NULL, cache2);
        ok = v && qvlm_load(v, &vc) == 0 && vc.cache_hit == k && qvlm_answer(v, 16, k ? gb : ga, k ? lb : la) == 0;
        DV_CHECK_MSG(ok, "cache pass %d (hit %d): %s", k, vc.cache_hit, dv_error_message());
        dv_vlm_free(v);
    }
    DV_CHECK_MSG(ok && !memcmp(ga, gb, sizeof ga) && !memcmp(la, lb, 16 * (size_t)V * sizeof(float)),
                 "the context cache hit does not decode bit-identically");
    if (ok) printf("context cache hit: 16 tokens and their logits bit-identical to the run that wrote it\n");
    free(la);

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", cache, cache2);
    DV_CHECK(system(cmd) == 0);
    dv_backend_free(be);
    dv_safetensors_free(st);
    return dv_test_finish();
}
