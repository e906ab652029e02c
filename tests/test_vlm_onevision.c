// test_vlm_onevision.c: LLaVA-OneVision (SigLIP + Qwen2) as a video-QA model end to end against
// Hugging Face. The fixture (tests/fixtures/vlm/make_onevision_fixture.py) ran
// LlavaOnevisionForConditionalGeneration on the 4 frames duovid's video/ layer samples from clip.mp4;
// here our pipeline decodes the clip itself and must reproduce: the chat template's prompt text (also
// after a system turn), the processor's prompt ids (onevision template, <video> x (4 x 16 + 1)), the frames chosen, the pixels (within 1/255), the video features
// (projector on all 49 patches, bilinear 7x7 -> 4x4, image_newline after the last frame; rel L2 <
// 1e-4), the logits after the prompt (rel L2 < 1e-4), 16 greedy tokens, then a second chat turn in the
// same KV cache (8 greedy tokens); the context cache (built, then loaded) gives the same answer; and a
// folder without its video processor config or with a mis-shaped image_newline is a one-line error.
#include "vlm/dv_vlm.h"
#include "core/dv_error.h"
#include "core/dv_safetensors.h"
#include "tests/dv_test.h"
#include "tests/test_vlm_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/vlm/"
#define MODEL FIX "tiny-llava-onevision"
#define CLIP FIX "clip.mp4"
#define N_FRAMES 4
#define TPF 16
#define NV (N_FRAMES * TPF + 1) // + image_newline
#define D 64
#define S 28
#define V 1205
#define VIDEO_ID 1204

#define ref_f32 vlm_ref_f32
#define ref_i32 vlm_ref_i32

static dv_vlm *open_model(const char *dir, dv_backend *be, int n_batch, const char *cache_dir) {
    return vlm_test_open(dir, be, n_batch, NULL, cache_dir);
}

static dv_vlm_video_opts opts(void) {
    dv_vlm_video_opts o = {.plan = dv_sample_plan_default(), .reserve = 64};
    o.plan.n_frames = N_FRAMES;
    return o;
}

static void check_answer(dv_vlm *v, const char *q, int first, int n, const int32_t *want_ids, const float *want_logits,
                         const char *label) {
    vlm_check_answer(v, V, q, first, n, want_ids, want_logits, label);
}

// The prompt texts around the video as the chat template renders them, without and with a system turn.
static void check_texts(const dv_safetensors *st, const char *q1) {
    const char *want[2] = {dv_safetensors_metadata(st, "prompt"), dv_safetensors_metadata(st, "prompt_system")};
    const char *sys = dv_safetensors_metadata(st, "system");
    DV_CHECK(want[0] && want[1] && sys);
    for (int i = 0; i < 2 && want[0] && want[1] && sys; i++) {
        dv_template t;
        const char *why;
        char got[1024];
        DV_CHECK(dv_template_load(dv_test_path(MODEL), -1, i ? sys : NULL, &t, &why) == 0);
        DV_CHECK(t.kind == DV_TEMPLATE_ONEVISION && !strcmp(why, "from the model's chat template"));
        DV_CHECK(dv_template_prefix(&t, got, sizeof got) == 0);
        const size_t n = strlen(got);
        snprintf(got + n, sizeof got - n, "<video>");
        DV_CHECK(dv_template_first_question(&t, q1, got + n + 7, sizeof got - n - 7) == 0);
        DV_CHECK_MSG(!strcmp(got, want[i]), "prompt text%s:\n%s\n-- the chat template renders --\n%s",
                     i ? " with a system prompt" : "", got, want[i]);
    }
}

// Prompt ids: prefix + <video> x NV + first question == the processor's; turn 2 = turn 1 + answer + next.
static void check_ids(dv_vlm *v, const dv_safetensors *st, const char *q1, const char *q2) {
    int64_t n_ids = 0, n_ids2 = 0, n_g = 0;
    const int32_t *ids = ref_i32(st, "input_ids", &n_ids), *ids2 = ref_i32(st, "input_ids_turn2", &n_ids2);
    const int32_t *g1 = ref_i32(st, "greedy_ids", &n_g);
    int32_t *pre = NULL, *qid = NULL, *nq2 = NULL;
    int n_pre = 0, n_q = 0, n_q2 = 0;
    DV_CHECK(ids && ids2 && g1);
    DV_CHECK(dv_vlm_prefix_ids(v, &pre, &n_pre) == 0);
    DV_CHECK(dv_vlm_question_ids(v, q1, 1, &qid, &n_q) == 0);
    DV_CHECK(dv_vlm_question_ids(v, q2, 0, &nq2, &n_q2) == 0);
    if (ids && ids2 && g1 && pre && qid && nq2) {
        int same = n_pre + NV + n_q == n_ids;
        for (int i = 0; same && i < n_ids; i++)
            same = ids[i] == (i < n_pre ? pre[i] : i < n_pre + NV ? VIDEO_ID : qid[i - n_pre - NV]);
        DV_CHECK_MSG(same, "prompt ids differ from the processor's (%d + %d + %d vs %lld)", n_pre, NV, n_q,
                     (long long)n_ids);
        int same2 = n_ids + n_g + n_q2 == n_ids2;
        for (int i = 0; same2 && i < n_ids2; i++)
            same2 = ids2[i] == (i < n_ids ? ids[i] : i < n_ids + n_g ? g1[i - n_ids] : nq2[i - n_ids - n_g]);
        DV_CHECK_MSG(same2, "turn-2 ids differ from HF's (%lld + %lld + %d vs %lld)", (long long)n_ids, (long long)n_g,
                     n_q2, (long long)n_ids2);
        printf("prompt ids: %d prefix + %d video + %d question = %lld, as the HF processor\n", n_pre, NV, n_q,
               (long long)n_ids);
    }
    free(pre);
    free(qid);
    free(nq2);
}

// Our own decode of the clip: frame times, the processor's pixels, the features + image_newline.
static void check_frames(dv_vlm *v, const dv_safetensors *st) {
    const float *pix = ref_f32(st, "pixel_values_videos", 4, (int64_t[]){N_FRAMES, 3, S, S});
    const float *feats = ref_f32(st, "video_features", 2, (int64_t[]){NV, D});
    const char *pts = dv_safetensors_metadata(st, "frame_pts");
    DV_CHECK(pix && feats && pts);
    if (!pix || !feats || !pts) return;
    dv_video *video = NULL;
    dv_video_sampler *s = NULL;
    dv_sample_plan plan = dv_sample_plan_default();
    plan.n_frames = N_FRAMES;
    DV_CHECK(dv_video_open(dv_test_path(CLIP), NULL, &video) == 0);
    DV_CHECK(video && dv_video_sampler_init(video, &plan, 0, 0, &s) == 0);
    dv_encoder *enc = dv_vlm_encoder(v);
    const dv_prep_config *pc = dv_encoder_prep_config(enc);
    uint8_t *rgb = NULL, prep[S * S * 3];
    dv_image img[N_FRAMES];
    int k = 0, maxd = 0;
    dv_frame f;
    char *end = NULL;
    for (const char *p = pts; s && k < N_FRAMES && dv_video_sampler_next(s, &f) == 1; p = *end == ',' ? end + 1 : end) {
        const double t = strtod(p, &end);
        DV_CHECK_MSG(fabs(f.t_sec - t) < 1e-4, "frame %d at %.3f s, HF got the one at %.3f s", k, f.t_sec, t);
        if (!rgb) rgb = malloc((size_t)N_FRAMES * f.w * f.h * 3);
        memcpy(rgb + (size_t)k * f.w * f.h * 3, f.rgb, (size_t)f.w * f.h * 3);
        img[k] = (dv_image){rgb + (size_t)k * f.w * f.h * 3, f.w, f.h, 3 * f.w};
        DV_CHECK(dv_encoder_preprocess(enc, &img[k], prep) == 0);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < S * S; i++) { // the processor's pixels before normalization are whole numbers / 255
                const double x = pix[((size_t)k * 3 + c) * S * S + i] * pc->std[c] + pc->mean[c];
                const int d = abs((int)lrint(x * 255.0) - prep[(size_t)i * 3 + c]);
                if (d > maxd) maxd = d;
            }
        k++;
    }
    DV_CHECK(k == N_FRAMES);
    printf("pixels vs the HF video processor (28x28, no crop): max diff %d/255\n", maxd);
    DV_CHECK(maxd <= 1);
    float *emb = malloc((size_t)NV * D * sizeof(float));
    DV_CHECK(dv_encoder_tokens_per_frame(enc) == TPF && dv_encoder_video_suffix_tokens(enc) == 1);
    if (k == N_FRAMES && dv_encoder_encode(enc, img, N_FRAMES, emb) == 0) {
        dv_tensor sfx;
        DV_CHECK(dv_encoder_video_suffix(enc, &sfx) == 0 && sfx.ne[0] == 1 && sfx.ne[1] == D);
        memcpy(emb + (size_t)N_FRAMES * TPF * D, sfx.data, D * sizeof(float)); // CPU backend: host memory
        dv_test_close("video features (4 frames x 16 + image_newline) vs HF", emb, feats, (size_t)NV * D, 1e-4);
    } else {
        DV_CHECK_MSG(0, "encode: %s", dv_error_message());
    }
    free(emb);
    free(rgb);
    dv_video_sampler_free(s);
    dv_video_free(video);
}

// The context cache: a build, then a load, each answering the HF turn 1.
static void check_cache(dv_backend *be, const char *q1, const int32_t *g1, const float *gl1, int n_g) {
    char dir[] = "/tmp/dv_test_onevision_XXXXXX";
    if (!mkdtemp(dir)) {
        DV_CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        dv_vlm *v = open_model(MODEL, be, 256, dir);
        dv_vlm_video_opts o = opts();
        dv_vlm_video vc;
        if (v && dv_vlm_load_video(v, dv_test_path(CLIP), &o, NULL, &vc) == 0) {
            DV_CHECK_MSG(vc.cache_hit == pass, "context cache pass %d: hit %d", pass, vc.cache_hit);
            check_answer(v, q1, 1, n_g, g1, gl1, pass ? "turn 1 from the context cache" : "turn 1 (cache written)");
        } else {
            DV_CHECK_MSG(0, "load video (pass %d): %s", pass, dv_error_message());
        }
        dv_vlm_free(v);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    DV_CHECK(system(cmd) == 0);
}

// Broken copies of the fixture folder: one error line naming the file and the problem.
static void check_errors(dv_backend *be) {
    char dir[] = "/tmp/dv_test_onevision_bad_XXXXXX";
    if (!mkdtemp(dir)) {
        DV_CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    char cmd[1024], path[512];
    snprintf(cmd, sizeof cmd, "cp '%s'/* '%s'/ && rm '%s/video_preprocessor_config.json'", dv_test_path(MODEL), dir, dir);
    DV_CHECK(system(cmd) == 0);
    dv_vlm_params p = dv_vlm_default_params();
    p.backend = be;
    dv_vlm *v = NULL;
    int rc = dv_vlm_open(dir, &p, &v);
    DV_CHECK_MSG(rc == DV_ENOTFOUND && strstr(dv_error_message(), "video_preprocessor_config.json: missing") &&
                     !strchr(dv_error_message(), '\n'),
                 "no video processor config: rc %d, '%s'", rc, dv_error_message());
    printf("no video_preprocessor_config.json: %s\n", dv_error_message());
    dv_vlm_free(v);
    v = NULL;
    // image_newline of the wrong width
    snprintf(cmd, sizeof cmd, "cp '%s'/video_preprocessor_config.json '%s'/", dv_test_path(MODEL), dir);
    DV_CHECK(system(cmd) == 0);
    dv_safetensors *st = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dv_test_path(MODEL));
    DV_CHECK(dv_safetensors_open(path, &st) == 0);
    const int n = st ? dv_safetensors_count(st) : 0;
    dv_st_write_tensor *w = calloc((size_t)(n ? n : 1), sizeof *w);
    for (int i = 0; w && i < n; i++) {
        const dv_st_tensor *t = dv_safetensors_at(st, i);
        w[i] = (dv_st_write_tensor){.name = t->name, .dtype = t->dtype, .n_dims = t->n_dims, .data = t->data};
        memcpy(w[i].shape, t->shape, sizeof t->shape);
        if (!strcmp(t->name, "image_newline")) w[i].shape[0] = D / 2; // the first half of its bytes
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    DV_CHECK(w && dv_safetensors_write(path, w, n, NULL, NULL, 0) == 0);
    free(w);
    dv_safetensors_free(st);
    rc = dv_vlm_open(dir, &p, &v);
    DV_CHECK_MSG(rc == DV_ESHAPE && strstr(dv_error_message(), "image_newline") && !strchr(dv_error_message(), '\n'),
                 "mis-shaped image_newline: rc %d, '%s'", rc, dv_error_message());
    printf("image_newline (32): %s\n", dv_error_message());
    dv_vlm_free(v);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    DV_CHECK(system(cmd) == 0);
}

int main(void) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-llava-onevision.ref.safetensors"), &st)) {
        fprintf(stderr, "FAIL %s\n", dv_error_message());
        return 1;
    }
    int64_t n_g = 0, n_g2 = 0;
    const int32_t *g1 = ref_i32(st, "greedy_ids", &n_g), *g2 = ref_i32(st, "greedy_ids_turn2", &n_g2);
    const float *gl1 = g1 ? ref_f32(st, "greedy_logits", 2, (int64_t[]){n_g, V}) : NULL;
    const float *gl2 = g2 ? ref_f32(st, "greedy_logits_turn2", 2, (int64_t[]){n_g2, V}) : NULL;
    const char *q1 = dv_safetensors_metadata(st, "question"), *q2 = dv_safetensors_metadata(st, "question_turn2");
    if (!g1 || !g2 || !gl1 || !gl2 || !q1 || !q2) return 1;
    DV_CHECK(n_g == 16 && n_g2 == 8);

    dv_backend *be = dv_backend_cpu_init(0);
    dv_vlm *v = open_model(MODEL, be, 256, NULL);
    if (!v) return 1;
    DV_CHECK(dv_vlm_template(v)->kind == DV_TEMPLATE_ONEVISION);
    check_texts(st, q1);
    check_ids(v, st, q1, q2);
    check_frames(v, st);

    // ---- the pipeline: context, logits, 16 greedy tokens, turn 2 in the same cache, /reset ----
    dv_video *video = NULL;
    dv_vlm_video_opts o = opts();
    dv_vlm_plan plan;
    dv_vlm_stats vs;
    int rc = dv_video_open(dv_test_path(CLIP), NULL, &video);
    if (!rc) rc = dv_vlm_plan_video(v, dv_video_get_info(video), &o, &plan);
    if (!rc) rc = dv_vlm_prefill_video(v, video, &plan, 0, NULL, &vs);
    DV_CHECK_MSG(rc == 0, "video context: %s", dv_error_message());
    if (!rc) {
        int32_t *pre = NULL;
        int n_pre = 0;
        DV_CHECK(dv_vlm_prefix_ids(v, &pre, &n_pre) == 0);
        DV_CHECK_MSG(dv_vlm_video_tokens(v) == n_pre + NV && plan.context_tokens == n_pre + NV,
                     "context %lld tokens (plan %lld), HF's video ends at %d", (long long)dv_vlm_video_tokens(v),
                     (long long)plan.context_tokens, n_pre + NV);
        free(pre);
        check_answer(v, q1, 1, (int)n_g, g1, gl1, "turn 1");
        check_answer(v, q2, 0, (int)n_g2, g2, gl2, "turn 2");
        DV_CHECK(dv_vlm_reset_conversation(v) == 0);
        check_answer(v, q1, 1, 4, g1, gl1, "turn 1 after reset");
    }
    dv_video_free(video);
    dv_vlm_free(v);

    check_cache(be, q1, g1, gl1, 4);
    check_errors(be);
    dv_backend_free(be);
    dv_safetensors_free(st);
    return dv_test_finish();
}
