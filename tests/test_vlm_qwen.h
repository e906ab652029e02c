// test_vlm_qwen.h: the checks a Qwen-VL model goes through in the VLM library (vlm/dv_vlm.h) against
// its Hugging Face fixture, shared by tests/test_vlm_qwen25.c, test_vlm_qwen3.c and test_vlm_qwen35.c: two turns as
// HF (16 greedy tokens after the video, 8 after the second question) in full attention, after a reset,
// from a saved state, from the context cache, in 16-cell chunks, with a DuoAttention pattern at sparsity
// 0 (identical) and 0.5 (deterministic, also through a reset).
#ifndef DV_TEST_VLM_QWEN_H
#define DV_TEST_VLM_QWEN_H

#include "llm/dv_duo_pattern.h"
#include "tests/test_vlm_util.h"

#include <string.h>
#include <unistd.h>

#define QVLM_CLIP "tests/fixtures/vlm/clip.mp4"
#define QVLM_Q1 "What is moving in this video?"
#define QVLM_Q2 "What colour is it?"

typedef struct qvlm_ref {
    const char *model;           // the tiny checkpoint's folder
    int vocab, n_layers, n_kv_heads;
    const int32_t *want, *want2; // greedy ids of turns 1 (16) and 2 (8)
    const float *logits, *logits2; // (16, vocab), (8, vocab)
} qvlm_ref;

// The HF reference's two turns (16 greedy ids + logits, then 8) into r; 0, or -1 when the fixture lacks
// them or has other sizes.
static inline int qvlm_ref_turns(const dv_safetensors *st, qvlm_ref *r) {
    int64_t n_g = 0, n_g2 = 0;
    r->want = vlm_ref_i32(st, "greedy_ids", &n_g);
    r->want2 = vlm_ref_i32(st, "greedy_ids_turn2", &n_g2);
    r->logits = vlm_ref_f32(st, "greedy_logits", 2, (int64_t[]){16, r->vocab});
    r->logits2 = vlm_ref_f32(st, "greedy_logits_turn2", 2, (int64_t[]){8, r->vocab});
    return r->want && r->want2 && r->logits && r->logits2 && n_g == 16 && n_g2 == 8 ? 0 : -1;
}

static inline int qvlm_load(dv_vlm *v, dv_vlm_video *vc) {
    dv_vlm_video_opts o = {.plan = dv_sample_plan_default(), .model_fps = 1}; // the processor's fps, as HF
    int rc = dv_vlm_load_video(v, dv_test_path(QVLM_CLIP), &o, NULL, vc);
    DV_CHECK_MSG(rc == 0, "load video: %s", dv_error_message());
    return rc;
}

static inline void qvlm_two_turns(const qvlm_ref *r, dv_vlm *v, const char *label) {
    char what[96];
    snprintf(what, sizeof what, "%s, turn 1", label);
    vlm_check_answer(v, r->vocab, QVLM_Q1, 1, 16, r->want, r->logits, what);
    snprintf(what, sizeof what, "%s, turn 2", label);
    vlm_check_answer(v, r->vocab, QVLM_Q2, 0, 8, r->want2, r->logits2, what);
}

// Greedy answer ids and the logits of each step.
static inline int qvlm_answer(dv_vlm *v, int n, int32_t *ids, float *logits) {
    dv_vlm_gen g = {.sampler = dv_sampler_default_params(), .max_new = n, .ignore_eos = 1, .logits_trace = logits};
    g.sampler.temperature = 0;
    dv_vlm_answer a;
    int rc = dv_vlm_ask(v, QVLM_Q1, 1, &g, NULL, &a);
    if (!rc) memcpy(ids, a.ids, (size_t)n * sizeof *ids);
    return rc;
}

// v: a model with the video loaded (plan p, context cache folder `cache`), freed here.
static inline void qvlm_check_all(const qvlm_ref *r, dv_backend *be, dv_vlm *v, const char *cache) {
    dv_vlm_video vc;
    // ---- two turns, a reset, a saved state ----
    DV_CHECK(dv_vlm_take_snapshot(v) == 0);
    dv_vlm_state *s0 = NULL;
    DV_CHECK(dv_vlm_state_save(v, &s0) == 0);
    qvlm_two_turns(r, v, "full attention");
    DV_CHECK(dv_vlm_reset_conversation(v) == 0 && dv_llm_n_past(dv_vlm_llm(v)) == dv_vlm_video_tokens(v));
    qvlm_two_turns(r, v, "after /reset");
    DV_CHECK(s0 && dv_vlm_state_restore(v, s0) == 0);
    qvlm_two_turns(r, v, "restored state");
    dv_vlm_state_free(s0);
    dv_vlm_free(v);

    // ---- the context cache: a second model loads the file ----
    v = vlm_test_open(r->model, be, 256, NULL, cache);
    if (v && qvlm_load(v, &vc) == 0) {
        DV_CHECK_MSG(vc.cache_hit == 1, "no cache hit: %s", vc.cache_path);
        qvlm_two_turns(r, v, "cache hit");
    }
    dv_vlm_free(v);

    // ---- chunked prefill: 16 cells a chunk (video rows and text in the same chunks) ----
    v = vlm_test_open(r->model, be, 16, NULL, NULL);
    if (v && qvlm_load(v, &vc) == 0) qvlm_two_turns(r, v, "chunks of 16");
    dv_vlm_free(v);

    // ---- DuoAttention: sparsity 0 is full attention; 0.5 (sink 4, recent 16 cells) repeats itself ----
    dv_duo_pattern *pat = NULL;
    DV_CHECK(dv_duo_pattern_full(r->n_layers, r->n_kv_heads, &pat) == 0);
    if (!pat) return;
    pat->sink = 4, pat->recent = 16;
    dv_duo_pattern_set_sparsity(pat, 0);
    v = vlm_test_open(r->model, be, 32, pat, NULL);
    if (v && qvlm_load(v, &vc) == 0) qvlm_two_turns(r, v, "DuoAttention sparsity 0");
    dv_vlm_free(v);
    for (int i = 0; i < r->n_layers * r->n_kv_heads; i++) pat->alpha[i] = 0.1 * (i + 1);
    dv_duo_pattern_set_sparsity(pat, 0.5);
    const int V = r->vocab;
    int32_t ga[16], gb[16], gc[16];
    float *la = malloc(3 * 16 * (size_t)V * sizeof(float)), *lb = la ? la + 16 * V : NULL, *lc = la ? lb + 16 * V : NULL;
    int ok = la != NULL;
    for (int k = 0; ok && k < 2; k++) {
        v = vlm_test_open(r->model, be, 32, pat, NULL);
        ok = ok && v && qvlm_load(v, &vc) == 0 && dv_vlm_take_snapshot(v) == 0 &&
             qvlm_answer(v, 16, k ? gb : ga, k ? lb : la) == 0;
        // a reset reloads the snapshot (the streaming windows have moved on): the same answer again
        ok = ok && dv_vlm_reset_conversation(v) == 0 && qvlm_answer(v, 16, gc, lc) == 0 && !memcmp(gc, ga, sizeof gc) &&
             !memcmp(lc, la, 16 * (size_t)V * sizeof(float));
        dv_vlm_free(v);
    }
    DV_CHECK_MSG(ok && !memcmp(la, lb, 16 * (size_t)V * sizeof(float)) && !memcmp(ga, gb, sizeof ga),
                 "sparsity 0.5 not deterministic");
    double diff = 0;
    for (int i = 0; ok && i < V; i++) diff = fmax(diff, fabs(la[i] - r->logits[i]));
    printf("DuoAttention sparsity 0.5: deterministic, max |logit - HF full| %.3g\n", diff);
    DV_CHECK(diff > 0); // the streaming heads dropped cells
    free(la);
    dv_duo_pattern_free(pat);
}

// The Qwen3VLVideoProcessor fixtures (Qwen3-VL, Qwen3.5) on clip.mp4: v has the video loaded (vc)
// from a fresh context; its plan (7 frames 128x96, grid 4 x 6 x 8, 12 rows a group), HF's frame indices
// want_idx (7), HF's prompt ids want_ids (n_ids, 48 of them video_pad) around the video. Returns the
// question's id count (0 on failure).
static inline int qvlm_check_qwen3_prompt(dv_vlm *v, const dv_vlm_video *vc, const int32_t *want_idx,
                                          const int32_t *want_ids, int64_t n_ids, int video_pad) {
    const dv_vlm_plan *p = &vc->plan;
    DV_CHECK_MSG(p->n_frames == 7 && p->grid_t == 4 && p->grid_h == 6 && p->grid_w == 8 && p->group_tokens == 12,
                 "plan: %lld frames, grid %d x %d x %d", (long long)p->n_frames, p->grid_t, p->grid_h, p->grid_w);
    DV_CHECK(p->frame_w == 128 && p->frame_h == 96 && !vc->cache_hit);
    int64_t nft = 0;
    const double *ft = dv_vlm_frame_times(v, &nft);
    DV_CHECK(nft == 7);
    for (int i = 0; i < nft && i < 7; i++) // HF's frame indices of the 10 fps clip
        DV_CHECK_MSG(fabs(ft[i] - want_idx[i] / 10.0) < 0.01, "frame %d at %.3f s, HF frame %d", i, ft[i], want_idx[i]);
    int32_t *pre = NULL, *q = NULL;
    int npre = 0, nq = 0;
    DV_CHECK(dv_vlm_prefix_ids(v, &pre, &npre) == 0 && dv_vlm_question_ids(v, QVLM_Q1, 1, &q, &nq) == 0);
    int pads = 0;
    for (int i = 0; i < n_ids; i++) pads += want_ids[i] == video_pad;
    // the video's cells: HF's ids between the prefix and the question (timestamps, markers, 48 rows);
    // the plan counts them exactly (each group's timestamp text from the planned frame times)
    const int ok = pre && q && pads == 48 && !memcmp(pre, want_ids, (size_t)npre * 4) &&
                   !memcmp(q, want_ids + n_ids - nq, (size_t)nq * 4) && dv_vlm_video_tokens(v) == n_ids - nq &&
                   p->context_tokens == n_ids - nq;
    DV_CHECK_MSG(ok, "prompt: prefix %d, question %d, context %lld cells, plan %lld; HF %lld ids", npre, nq,
                 (long long)dv_vlm_video_tokens(v), (long long)p->context_tokens, (long long)n_ids);
    free(pre), free(q);
    char text[1024];
    dv_vlm_plan_text(v, p, text, sizeof text);
    printf("%s", text);
    DV_CHECK(strstr(text, "grid 4 x 6 x 8") && strstr(text, "12 tokens/2 frames"));
    return ok ? nq : 0;
}

static inline dv_vlm *qvlm_open_px(const char *model, dv_backend *be, int64_t min_px, int64_t max_px) {
    dv_vlm_params p = dv_vlm_default_params();
    p.backend = be, p.min_pixels = min_px, p.max_pixels = max_px;
    dv_vlm *v = NULL;
    if (dv_vlm_open(dv_test_path(model), &p, &v)) return NULL;
    return v;
}

#endif
