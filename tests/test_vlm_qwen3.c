// test_vlm_qwen3.c: Qwen3-VL through the VLM library (vlm/dv_vlm.h) end to end against Hugging Face
// (tests/fixtures/qwenvl/make_qwen3vl_fixture.py): dv_vlm_open detects the Qwen3VL folder,
// dv_vlm_load_video samples the processor's frames of clip.mp4 at its 1.75 fps (7 frames
// np.linspace(0, 39, 7).round(): 0 6 13 20 26 32 39, not evenly spaced; the last repeated to fill the
// 4th temporal patch), smart-resizes them (128x96: grid 4 x 6 x 8), encodes them with DeepStack and
// prefills each group as "<t seconds><|vision_start|>" + its rows (own grid) + "<|vision_end|>", the
// DeepStack rows added after the first text layers through the feeder's chunks. Then the shared
// checks (tests/test_vlm_qwen.h): HF's logits (rel L2 < 1e-4) and greedy tokens for two turns, after a
// reset, from a saved state, from the context cache, in 16-cell chunks, DuoAttention at sparsity 0
// and 0.5; and --max-pixels giving a smaller grid.
#include "tests/test_vlm_qwen.h"

#define FIX "tests/fixtures/qwenvl/"
#define MODEL FIX "tiny-qwen3-vl"
#define V 1207
#define VIDEO_PAD 1206

int main(void) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-qwen3-vl.ref.safetensors"), &st)) {
        fprintf(stderr, "FAIL fixture: %s\n", dv_error_message());
        return 1;
    }
    int64_t n_ids = 0, n_idx = 0;
    const int32_t *want_ids = vlm_ref_i32(st, "input_ids", &n_ids), *want_idx = vlm_ref_i32(st, "frame_indices", &n_idx);
    qvlm_ref r = {.model = MODEL, .vocab = V, .n_layers = 3, .n_kv_heads = 2};
    if (qvlm_ref_turns(st, &r) || !want_ids || !want_idx || n_idx != 7) return 1;

    char cache[] = "/tmp/dv_test_qwen3_XXXXXX";
    DV_CHECK(mkdtemp(cache) != NULL);
    dv_backend *be = dv_backend_cpu_init(2);
    vlm_test_use_kv(DV_KV_F32);

    // ---- the plan, the frames, the prompt ids ----
    dv_vlm *v = vlm_test_open(MODEL, be, 256, NULL, cache);
    if (!v) return 1;
    DV_CHECK(dv_vlm_encoder(v) == NULL && strstr(dv_vlm_describe_vision(v), "qwen3 vision") &&
             strstr(dv_vlm_describe_vision(v), "2 deepstack"));
    dv_vlm_video vc;
    if (qvlm_load(v, &vc)) return 1;
    qvlm_check_qwen3_prompt(v, &vc, want_idx, want_ids, n_ids, VIDEO_PAD);

    qvlm_check_all(&r, be, v, cache);

    // ---- --max-pixels: a smaller grid, still answering ----
    v = qvlm_open_px(MODEL, be, 0, 40000);
    DV_CHECK_MSG(v != NULL, "max_pixels 40000: %s", dv_error_message());
    if (v && qvlm_load(v, &vc) == 0) {
        printf("max_pixels 40000: grid %d x %d x %d\n", vc.plan.grid_t, vc.plan.grid_h, vc.plan.grid_w);
        DV_CHECK(vc.plan.grid_h * vc.plan.grid_w < 6 * 8 && vc.plan.grid_t == 4);
        DV_CHECK_MSG(vc.plan.context_tokens == dv_vlm_video_tokens(v), "plan %lld cells, context %lld",
                     (long long)vc.plan.context_tokens, (long long)dv_vlm_video_tokens(v));
        int32_t ids[4];
        static float lg[4 * V];
        DV_CHECK(qvlm_answer(v, 4, ids, lg) == 0);
    }
    dv_vlm_free(v);

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    DV_CHECK(system(cmd) == 0);
    dv_backend_free(be);
    dv_safetensors_free(st);
    return dv_test_finish();
}
