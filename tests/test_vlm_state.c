// test_vlm_state.c: a conversation swapped out of the model and back (dv_vlm_state_save/restore, the
// server's way of holding many conversations on one model) goes on exactly as if it had never left:
// with a hybrid DuoAttention cache (sparsity 0.5, small windows that the conversation overflows), the
// logits of a second turn after save -> another video context -> restore equal those of an
// uninterrupted run, bit for bit; the frame list and the video context length come back too.
#include "vlm/dv_vlm.h"
#include "core/dv_error.h"
#include "tests/dv_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/vlm/"
#define V 514
#define N 6

static int build(dv_vlm *v, int n_frames) {
    dv_video *video = NULL;
    int rc = dv_video_open(dv_test_path(FIX "clip.mp4"), NULL, &video);
    dv_vlm_video_opts o = {.plan = dv_sample_plan_default()};
    o.plan.n_frames = n_frames;
    dv_vlm_plan p;
    if (!rc) rc = dv_vlm_plan_video(v, dv_video_get_info(video), &o, &p);
    dv_vlm_stats st;
    if (!rc) rc = dv_vlm_prefill_video(v, video, &p, 0, NULL, &st);
    if (rc) fprintf(stderr, "FAIL video context: %s\n", dv_error_message());
    dv_video_free(video);
    return rc;
}

int main(void) {
    dv_backend *be = dv_backend_cpu_init(0);
    dv_duo_pattern *pat = NULL;
    DV_CHECK(be && dv_duo_pattern_full(2, 2, &pat) == 0);
    if (!be || !pat) return dv_test_finish();
    for (int i = 0; i < 4; i++) pat->alpha[i] = 0.5 + 0.1 * i;
    pat->sink = 4;
    pat->recent = 16;
    dv_duo_pattern_set_sparsity(pat, 0.5);
    dv_vlm_params prm = dv_vlm_default_params();
    prm.backend = be;
    prm.n_batch = 64;
    prm.pattern = pat;
    dv_vlm *v = NULL;
    DV_CHECK(dv_vlm_open(dv_test_path(FIX "tiny-llava-next-video"), &prm, &v) == 0);
    float *a = malloc(N * V * sizeof(float)), *b = malloc(N * V * sizeof(float));
    dv_vlm_gen g = {.sampler = dv_sampler_default_params(), .max_new = N, .ignore_eos = 1};
    dv_vlm_answer ans;
    if (v && a && b && build(v, 4) == 0) {
        // the uninterrupted run: two turns
        DV_CHECK(dv_vlm_ask(v, "What is in the video?", 1, &g, NULL, &ans) == 0);
        g.logits_trace = a;
        DV_CHECK(dv_vlm_ask(v, "And then?", 0, &g, NULL, &ans) == 0);
        g.logits_trace = NULL;
        // again, with the conversation swapped out after its first turn
        DV_CHECK(build(v, 4) == 0);
        DV_CHECK(dv_vlm_ask(v, "What is in the video?", 1, &g, NULL, &ans) == 0);
        const int n_past = dv_llm_n_past(dv_vlm_llm(v));
        const int64_t vt = dv_vlm_video_tokens(v);
        dv_vlm_state *s = NULL;
        DV_CHECK(dv_vlm_state_save(v, &s) == 0);
        DV_CHECK(dv_vlm_state_bytes(s) > 0);
        DV_CHECK(build(v, 2) == 0); // another conversation takes the model
        DV_CHECK(dv_vlm_ask(v, "Something else?", 1, &g, NULL, &ans) == 0);
        DV_CHECK(s && dv_vlm_state_restore(v, s) == 0);
        int64_t nf = 0;
        dv_vlm_frame_times(v, &nf);
        DV_CHECK_MSG(dv_llm_n_past(dv_vlm_llm(v)) == n_past && dv_vlm_video_tokens(v) == vt && nf == 4,
                     "restored: n_past %d (want %d), video tokens %lld (want %lld), %lld frames",
                     dv_llm_n_past(dv_vlm_llm(v)), n_past, (long long)dv_vlm_video_tokens(v), (long long)vt,
                     (long long)nf);
        g.logits_trace = b;
        DV_CHECK(dv_vlm_ask(v, "And then?", 0, &g, NULL, &ans) == 0);
        DV_CHECK_MSG(memcmp(a, b, N * V * sizeof(float)) == 0, "second turn after a swap differs");
        dv_vlm_state_free(s);
        dv_vlm_state_free(NULL);
    }
    free(a);
    free(b);
    dv_vlm_free(v);
    dv_duo_pattern_free(pat);
    dv_backend_free(be);
    return dv_test_finish();
}
