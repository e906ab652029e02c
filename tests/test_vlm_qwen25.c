// test_vlm_qwen25.c: Qwen2.5-VL through the VLM library (vlm/dv_vlm.h) end to end against Hugging Face
// (tests/fixtures/qwenvl/make_qwen25vl_fixture.py): dv_vlm_open detects the Qwen2_5_VL folder,
// dv_vlm_load_video samples the processor's frames of clip.mp4 at 2 fps (8, an even count),
// smart-resizes them (140x84: grid 4 x 6 x 10), encodes them and prefills them with their 3 x N M-RoPE
// positions between <|vision_start|> and <|vision_end|>; the first answer must give HF's logits
// (rel L2 < 1e-4) and 16 greedy tokens, a second turn in the same cache HF's turn-2 logits and 8
// tokens. Then the same through a reset (rewind), a context cache hit, a saved conversation state,
// chunked prefill (16 cells a chunk), a DuoAttention pattern at sparsity 0 (identical) and 0.5 (runs,
// deterministic), --max-pixels (a smaller grid) and the pixel-bound errors.
#include "tests/test_vlm_qwen.h"

#define FIX "tests/fixtures/qwenvl/"
#define MODEL FIX "tiny-qwen2_5-vl"
#define V 1207

int main(void) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-qwen2_5-vl.ref.safetensors"), &st)) {
        fprintf(stderr, "FAIL fixture: %s\n", dv_error_message());
        return 1;
    }
    int64_t n_ids = 0;
    const int32_t *want_ids = vlm_ref_i32(st, "input_ids", &n_ids);
    qvlm_ref r = {.model = MODEL, .vocab = V, .n_layers = 2, .n_kv_heads = 2};
    if (qvlm_ref_turns(st, &r) || !want_ids) return 1;

    char cache[] = "/tmp/dv_test_qwen25_XXXXXX";
    DV_CHECK(mkdtemp(cache) != NULL);
    dv_backend *be = dv_backend_cpu_init(2);
    vlm_test_use_kv(DV_KV_F32);

    // ---- the plan and the prompt ids ----
    dv_vlm *v = vlm_test_open(MODEL, be, 256, NULL, cache);
    if (!v) return 1;
    DV_CHECK(dv_vlm_encoder(v) == NULL && strstr(dv_vlm_describe_vision(v), "qwen2_5_vl"));
    dv_vlm_video vc;
    if (qvlm_load(v, &vc)) return 1;
    const dv_vlm_plan *p = &vc.plan;
    DV_CHECK(p->n_frames == 8 && p->grid_t == 4 && p->grid_h == 6 && p->grid_w == 10 && p->group_tokens == 15);
    DV_CHECK(p->frame_w == 140 && p->frame_h == 84 && !vc.cache_hit);
    int64_t nft = 0;
    const double *ft = dv_vlm_frame_times(v, &nft);
    DV_CHECK(nft == 8);
    for (int i = 0; i < nft; i++) // frames 0, 5, 10, ... of the 10 fps clip
        DV_CHECK_MSG(fabs(ft[i] - 0.5 * i) < 0.01, "frame %d at %.3f s", i, ft[i]);
    int32_t *pre = NULL, *q = NULL;
    int npre = 0, nq = 0;
    DV_CHECK(dv_vlm_prefix_ids(v, &pre, &npre) == 0 && dv_vlm_question_ids(v, QVLM_Q1, 1, &q, &nq) == 0);
    const int n_video = 60;
    int same = pre && q && npre + n_video + 1 + nq == n_ids && !memcmp(pre, want_ids, (size_t)npre * 4) &&
               !memcmp(q, want_ids + npre + n_video + 1, (size_t)nq * 4) && want_ids[npre + n_video] == 1204;
    for (int i = 0; same && i < n_video; i++) same = want_ids[npre + i] == 1206;
    DV_CHECK_MSG(same, "prompt ids (prefix %d + %d video + vision_end + question %d) differ from HF's %lld", npre,
                 n_video, nq, (long long)n_ids);
    DV_CHECK(p->context_tokens == npre + n_video + 1 && dv_vlm_video_tokens(v) == p->context_tokens);
    free(pre), free(q);
    char text[1024];
    dv_vlm_plan_text(v, p, text, sizeof text);
    printf("%s", text);
    DV_CHECK(strstr(text, "grid 4 x 6 x 10") && strstr(text, "15 tokens/2 frames"));

    qvlm_check_all(&r, be, v, cache);

    // ---- --max-pixels / --min-pixels ----
    v = qvlm_open_px(MODEL, be, 0, 6000); // 320x240 -> 84x56: grid 4 x 4 x 6
    DV_CHECK_MSG(v != NULL, "max_pixels 6000: %s", dv_error_message());
    if (v && qvlm_load(v, &vc) == 0) {
        DV_CHECK_MSG(vc.plan.grid_h == 4 && vc.plan.grid_w == 6 && vc.plan.group_tokens == 6, "grid %d x %d x %d",
                     vc.plan.grid_t, vc.plan.grid_h, vc.plan.grid_w);
        int32_t ids[4];
        static float lg[4 * V];
        DV_CHECK(qvlm_answer(v, 4, ids, lg) == 0);
    }
    dv_vlm_free(v);
    DV_CHECK(qvlm_open_px(MODEL, be, 20000, 10000) == NULL && strstr(dv_error_message(), "video_preprocessor_config.json"));
    printf("min > max: %s\n", dv_error_message());

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    DV_CHECK(system(cmd) == 0);
    dv_backend_free(be);
    dv_safetensors_free(st);
    return dv_test_finish();
}
