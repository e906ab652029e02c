// test_vlm_qwen25.c: Qwen2.5-VL through the VLM library (vlm/dv_vlm.h) end to end against Hugging Face
// (tests/fixtures/qwenvl/make_qwen25vl_fixture.py): dv_vlm_open detects the Qwen2_5_VL folder,
// dv_vlm_load_video samples the processor's frames of clip.mp4 at 2 fps (8, an even count),
// smart-resizes them (140x84: grid 4 x 6 x 10), encodes them and prefills them with their 3 x N M-RoPE
// positions between <|vision_start|> and <|vision_end|>; the first answer must give HF's logits
// (rel L2 < 1e-4) and 16 greedy tokens, a second turn in the same cache HF's turn-2 logits and 8
// tokens. Then the same through a reset (rewind), a context cache hit, a saved conversation state,
// chunked prefill (16 cells a chunk), a DuoAttention pattern at sparsity 0 (identical) and 0.5 (runs,
// deterministic), --max-pixels (a smaller grid) and the pixel-bound errors.
#include "llm/dv_duo_pattern.h"
#include "tests/test_vlm_util.h"

#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/qwenvl/"
#define MODEL FIX "tiny-qwen2_5-vl"
#define CLIP "tests/fixtures/vlm/clip.mp4"
#define V 1207
#define Q1 "What is moving in this video?"
#define Q2 "What colour is it?"

static const int32_t *g_want, *g_want2;
static const float *g_logits, *g_logits2;

static int load(dv_vlm *v, dv_vlm_video *vc) {
    dv_vlm_video_opts o = {.plan = dv_sample_plan_default(), .model_fps = 1}; // the processor's 2 fps, as HF
    int rc = dv_vlm_load_video(v, dv_test_path(CLIP), &o, NULL, vc);
    DV_CHECK_MSG(rc == 0, "load video: %s", dv_error_message());
    return rc;
}

// Both turns as HF: 16 greedy tokens after the video, 8 after the second question.
static void two_turns(dv_vlm *v, const char *label) {
    char what[96];
    snprintf(what, sizeof what, "%s, turn 1", label);
    vlm_check_answer(v, V, Q1, 1, 16, g_want, g_logits, what);
    snprintf(what, sizeof what, "%s, turn 2", label);
    vlm_check_answer(v, V, Q2, 0, 8, g_want2, g_logits2, what);
}

// Greedy answer ids and the logits of each step.
static int answer(dv_vlm *v, int n, int32_t *ids, float *logits) {
    dv_vlm_gen g = {.sampler = dv_sampler_default_params(), .max_new = n, .ignore_eos = 1, .logits_trace = logits};
    g.sampler.temperature = 0;
    dv_vlm_answer a;
    int rc = dv_vlm_ask(v, Q1, 1, &g, NULL, &a);
    if (!rc) memcpy(ids, a.ids, (size_t)n * sizeof *ids);
    return rc;
}

static dv_vlm *open_px(dv_backend *be, int64_t min_px, int64_t max_px) {
    dv_vlm_params p = dv_vlm_default_params();
    p.backend = be, p.min_pixels = min_px, p.max_pixels = max_px;
    dv_vlm *v = NULL;
    if (dv_vlm_open(dv_test_path(MODEL), &p, &v)) return NULL;
    return v;
}

int main(void) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-qwen2_5-vl.ref.safetensors"), &st)) {
        fprintf(stderr, "FAIL fixture: %s\n", dv_error_message());
        return 1;
    }
    int64_t n_ids = 0, n_g = 0, n_g2 = 0;
    const int32_t *want_ids = vlm_ref_i32(st, "input_ids", &n_ids);
    g_want = vlm_ref_i32(st, "greedy_ids", &n_g);
    g_want2 = vlm_ref_i32(st, "greedy_ids_turn2", &n_g2);
    g_logits = vlm_ref_f32(st, "greedy_logits", 2, (int64_t[]){16, V});
    g_logits2 = vlm_ref_f32(st, "greedy_logits_turn2", 2, (int64_t[]){8, V});
    if (!want_ids || !g_want || !g_want2 || !g_logits || !g_logits2 || n_g != 16 || n_g2 != 8) return 1;

    char cache[] = "/tmp/dv_test_qwen25_XXXXXX";
    DV_CHECK(mkdtemp(cache) != NULL);
    dv_backend *be = dv_backend_cpu_init(2);
    vlm_test_use_kv(DV_KV_F32);

    // ---- the plan and the prompt ids ----
    dv_vlm *v = vlm_test_open(MODEL, be, 256, NULL, cache);
    if (!v) return 1;
    DV_CHECK(dv_vlm_encoder(v) == NULL && strstr(dv_vlm_describe_vision(v), "qwen2_5_vl"));
    dv_vlm_video vc;
    if (load(v, &vc)) return 1;
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
    DV_CHECK(dv_vlm_prefix_ids(v, &pre, &npre) == 0 && dv_vlm_question_ids(v, Q1, 1, &q, &nq) == 0);
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

    // ---- two turns, a reset, a saved state ----
    DV_CHECK(dv_vlm_take_snapshot(v) == 0);
    dv_vlm_state *s0 = NULL;
    DV_CHECK(dv_vlm_state_save(v, &s0) == 0);
    two_turns(v, "full attention");
    DV_CHECK(dv_vlm_reset_conversation(v) == 0 && dv_llm_n_past(dv_vlm_llm(v)) == p->context_tokens);
    two_turns(v, "after /reset");
    DV_CHECK(s0 && dv_vlm_state_restore(v, s0) == 0);
    two_turns(v, "restored state");
    dv_vlm_state_free(s0);
    dv_vlm_free(v);

    // ---- the context cache: a second model loads the file ----
    v = vlm_test_open(MODEL, be, 256, NULL, cache);
    if (v && load(v, &vc) == 0) {
        DV_CHECK_MSG(vc.cache_hit == 1, "no cache hit: %s", vc.cache_path);
        two_turns(v, "cache hit");
    }
    dv_vlm_free(v);

    // ---- chunked prefill: 16 cells a chunk (video rows and text in the same chunks) ----
    v = vlm_test_open(MODEL, be, 16, NULL, NULL);
    if (v && load(v, &vc) == 0) two_turns(v, "chunks of 16");
    dv_vlm_free(v);

    // ---- DuoAttention: sparsity 0 is full attention; 0.5 (sink 4, recent 16 cells) repeats itself ----
    dv_duo_pattern *pat = NULL;
    DV_CHECK(dv_duo_pattern_full(2, 2, &pat) == 0);
    if (pat) {
        pat->sink = 4, pat->recent = 16;
        dv_duo_pattern_set_sparsity(pat, 0);
        v = vlm_test_open(MODEL, be, 32, pat, NULL);
        if (v && load(v, &vc) == 0) two_turns(v, "DuoAttention sparsity 0");
        dv_vlm_free(v);
        for (int i = 0; i < 4; i++) pat->alpha[i] = 0.1 * (i + 1);
        dv_duo_pattern_set_sparsity(pat, 0.5);
        static int32_t ga[16], gb[16];
        static float la[16 * V], lb[16 * V];
        int ok = 1;
        for (int r = 0; r < 2; r++) {
            v = vlm_test_open(MODEL, be, 32, pat, NULL);
            ok = ok && v && load(v, &vc) == 0 && dv_vlm_take_snapshot(v) == 0 &&
                 answer(v, 16, r ? gb : ga, r ? lb : la) == 0;
            // a reset reloads the snapshot (the streaming windows have moved on): the same answer again
            static int32_t gc[16];
            static float lc[16 * V];
            ok = ok && dv_vlm_reset_conversation(v) == 0 && answer(v, 16, gc, lc) == 0 && !memcmp(gc, ga, sizeof gc) &&
                 !memcmp(lc, la, sizeof lc);
            dv_vlm_free(v);
        }
        DV_CHECK_MSG(ok && !memcmp(la, lb, sizeof la) && !memcmp(ga, gb, sizeof ga), "sparsity 0.5 not deterministic");
        double diff = 0;
        for (int i = 0; i < V; i++) diff = fmax(diff, fabs(la[i] - g_logits[i]));
        printf("DuoAttention sparsity 0.5: deterministic, max |logit - HF full| %.3g\n", diff);
        DV_CHECK(diff > 0); // the streaming heads dropped cells
        dv_duo_pattern_free(pat);
    }

    // ---- --max-pixels / --min-pixels ----
    v = open_px(be, 0, 6000); // 320x240 -> 84x56: grid 4 x 4 x 6
    DV_CHECK_MSG(v != NULL, "max_pixels 6000: %s", dv_error_message());
    if (v && load(v, &vc) == 0) {
        DV_CHECK_MSG(vc.plan.grid_h == 4 && vc.plan.grid_w == 6 && vc.plan.group_tokens == 6, "grid %d x %d x %d",
                     vc.plan.grid_t, vc.plan.grid_h, vc.plan.grid_w);
        int32_t ids[4];
        static float lg[4 * V];
        DV_CHECK(answer(v, 4, ids, lg) == 0);
    }
    dv_vlm_free(v);
    DV_CHECK(open_px(be, 20000, 10000) == NULL && strstr(dv_error_message(), "video_preprocessor_config.json"));
    printf("min > max: %s\n", dv_error_message());

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    DV_CHECK(system(cmd) == 0);
    dv_backend_free(be);
    dv_safetensors_free(st);
    return dv_test_finish();
}
