// test_vlm_parity.c: the video-QA pipeline end to end against Hugging Face. The fixture
// (tests/fixtures/vlm/make_vlm_fixtures.py) ran LlavaNextVideoForConditionalGeneration on the frames
// duovid's video/ layer samples from clip.mp4; here our pipeline decodes the same clip itself and must
// reproduce the prompt ids, the chosen frames, the processor's pixels, the spliced video features,
// the logits after the prompt (rel L2 < 1e-4) and 16 greedy tokens exactly, then a second chat turn in
// the same KV cache (8 more greedy tokens). Also: chunked prefill of the same context, --timestamps,
// and a DuoAttention context with sparsity 0 equal to full attention. The llava-1.5 path (an image model,
// one image per frame, "\n" between frames; tests/fixtures/vlm/make_llava_fixture.py): ids, context
// length, frame times, logits and 8 greedy tokens. The KV cache is f32 for all of it; the pipeline and
// the llava-1.5 path also run with a bf16 KV cache, logits within 2^-9 (vlm_test_use_kv).
#include "vlm/dv_vlm.h"
#include "core/dv_error.h"
#include "core/dv_safetensors.h"
#include "tests/dv_test.h"
#include "tests/test_vlm_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/vlm/"
#define MODEL FIX "tiny-llava-next-video"
#define CLIP FIX "clip.mp4"
#define N_FRAMES 8
#define V 514

#define ref_f32 vlm_ref_f32
#define ref_i32 vlm_ref_i32

static dv_vlm *open_model(const char *dir, dv_backend *be, int n_batch, const dv_duo_pattern *pat) {
    return vlm_test_open(dir, be, n_batch, pat, NULL);
}

static dv_vlm *open_vlm(dv_backend *be, int n_batch, const dv_duo_pattern *pat) { return open_model(MODEL, be, n_batch, pat); }

// Builds the video context of the n_frames uniform plan.
static int build_frames_context(dv_vlm *v, int n_frames, int timestamps) {
    dv_video *video = NULL;
    int rc = dv_video_open(dv_test_path(CLIP), NULL, &video);
    dv_vlm_video_opts o = {.plan = dv_sample_plan_default(), .timestamps = timestamps, .reserve = 64};
    o.plan.n_frames = n_frames;
    dv_vlm_plan plan;
    dv_vlm_stats st;
    if (!rc) rc = dv_vlm_plan_video(v, dv_video_get_info(video), &o, &plan);
    if (!rc) rc = dv_vlm_prefill_video(v, video, &plan, timestamps, NULL, &st);
    if (rc) fprintf(stderr, "FAIL video context: %s\n", dv_error_message());
    else DV_CHECK(st.frames == n_frames);
    dv_video_free(video);
    return rc;
}

static int build_context(dv_vlm *v, int timestamps) { return build_frames_context(v, N_FRAMES, timestamps); }

static void check_answer(dv_vlm *v, const char *q, int first, int n, const int32_t *want_ids, const float *want_logits,
                         const char *label) {
    vlm_check_answer(v, V, q, first, n, want_ids, want_logits, label);
}

// llava-1.5 (an image model): each frame is one image, as HF's LlavaProcessor makes of
// "USER: <image>\n<image>\n<image>\nQ ASSISTANT:" (tests/fixtures/vlm/make_llava_fixture.py): prefix,
// frame 0's 36 tokens, then "\n" and the next frame's tokens, then "\nQ ASSISTANT:".
static void test_llava_image(dv_backend *be) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-llava.ref.safetensors"), &st)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return;
    }
    int64_t n_ids = 0, n_g = 0;
    const int32_t *ids = ref_i32(st, "input_ids", &n_ids), *g = ref_i32(st, "greedy_ids", &n_g);
    const float *gl = ref_f32(st, "greedy_logits", 2, (int64_t[]){n_g, V});
    const char *q = dv_safetensors_metadata(st, "question"), *nf = dv_safetensors_metadata(st, "n_frames");
    const char *tp = dv_safetensors_metadata(st, "tokens_per_frame"), *qs = dv_safetensors_metadata(st, "question_start");
    const char *starts = dv_safetensors_metadata(st, "image_token_starts");
    dv_vlm *v = NULL;
    int32_t *pre = NULL, *sep = NULL, *qid = NULL;
    DV_CHECK(ids && g && gl && q && nf && tp && qs && starts);
    if (!ids || !g || !gl || !q || !nf || !tp || !qs || !starts) goto done;
    const int n_frames = atoi(nf), tpf = atoi(tp);
    DV_CHECK(n_frames == 3 && tpf == 36 && n_g == 8);
    if (!(v = open_model(FIX "tiny-llava", be, 256, NULL))) goto done;
    DV_CHECK(dv_vlm_template(v)->kind == DV_TEMPLATE_VICUNA);
    DV_CHECK(dv_encoder_tokens_per_frame(dv_vlm_encoder(v)) == tpf);

    // ids: prefix, then per frame ["\n" after the first] + tpf x <image>, then the question run
    int n_pre = 0, n_sep = 0, n_q = 0;
    DV_CHECK(dv_vlm_prefix_ids(v, &pre, &n_pre) == 0);
    DV_CHECK(dv_vlm_question_ids(v, q, 1, &qid, &n_q) == 0);
    sep = malloc(16 * sizeof *sep);
    DV_CHECK(sep && dv_tokenizer_encode(dv_vlm_tokenizer(v), "\n", 0, sep, 16, &n_sep) == 0);
    if (!pre || !qid || !sep) goto done;
    const int64_t q_start = n_pre + (int64_t)n_frames * tpf + (int64_t)(n_frames - 1) * n_sep;
    int same = q_start + n_q == n_ids && q_start == atoll(qs), pos = 0;
    char want_starts[64] = "";
    for (int i = 0; same && i < n_pre; i++) same = ids[pos++] == pre[i];
    for (int k = 0; same && k < n_frames; k++) {
        for (int i = 0; same && k > 0 && i < n_sep; i++) same = ids[pos++] == sep[i];
        snprintf(want_starts + strlen(want_starts), sizeof want_starts - strlen(want_starts), "%s%d", k ? "," : "", pos);
        for (int i = 0; same && i < tpf; i++) same = ids[pos++] == 512;
    }
    for (int i = 0; same && i < n_q; i++) same = ids[pos++] == qid[i];
    DV_CHECK_MSG(same && !strcmp(want_starts, starts),
                 "llava-1.5 ids differ from the processor's (%d + %d x %d + %d x %d \\n + %d vs %lld; images at %s vs %s)",
                 n_pre, n_frames, tpf, n_frames - 1, n_sep, n_q, (long long)n_ids, want_starts, starts);
    printf("llava-1.5 prompt ids: %d prefix + %d x %d image + %d x %d separator + %d question = %lld, as the HF "
           "processor (images at %s)\n", n_pre, n_frames, tpf, n_frames - 1, n_sep, n_q, (long long)n_ids, starts);

    // the pipeline's own context: what it fed must end where HF's question run starts
    if (build_frames_context(v, n_frames, 0) == 0) {
        DV_CHECK_MSG(dv_vlm_video_tokens(v) == q_start, "llava-1.5 context %lld tokens, HF's question starts at %lld",
                     (long long)dv_vlm_video_tokens(v), (long long)q_start);
        int64_t n_t = 0;
        const double *ft = dv_vlm_frame_times(v, &n_t);
        const char *pts = dv_safetensors_metadata(st, "frame_pts");
        DV_CHECK(n_t == n_frames && pts);
        char *end = NULL;
        for (int k = 0; pts && k < n_t; k++, pts = *end == ',' ? end + 1 : end) {
            double t = strtod(pts, &end);
            DV_CHECK_MSG(fabs(ft[k] - t) < 1e-3, "llava-1.5 frame %d at %.3f s, HF took the one at %.3f s", k, ft[k], t);
        }
        check_answer(v, q, 1, (int)n_g, g, gl, "llava-1.5 3 frames");
    }
done:
    free(pre);
    free(sep);
    free(qid);
    dv_vlm_free(v);
    dv_safetensors_free(st);
}

int main(void) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-llava-next-video.ref.safetensors"), &st)) {
        fprintf(stderr, "FAIL %s\n", dv_error_message());
        return 1;
    }
    const int tpf = 36, nv = N_FRAMES * tpf;
    int64_t n_ids = 0, n_ids2 = 0, n_g = 0, n_g2 = 0;
    const int32_t *ids = ref_i32(st, "input_ids", &n_ids), *ids2 = ref_i32(st, "input_ids_turn2", &n_ids2);
    const int32_t *g1 = ref_i32(st, "greedy_ids", &n_g), *g2 = ref_i32(st, "greedy_ids_turn2", &n_g2);
    const float *feats = ref_f32(st, "video_features", 2, (int64_t[]){nv, 64});
    const float *pix = ref_f32(st, "pixel_values_videos", 4, (int64_t[]){N_FRAMES, 3, 168, 168});
    const float *pts = ref_f32(st, "frame_pts", 1, (int64_t[]){N_FRAMES});
    const float *gl1 = ref_f32(st, "greedy_logits", 2, (int64_t[]){n_g, V});
    const float *gl2 = ref_f32(st, "greedy_logits_turn2", 2, (int64_t[]){n_g2, V});
    const char *q1 = dv_safetensors_metadata(st, "prompt"), *q2 = dv_safetensors_metadata(st, "question_turn2");
    if (!ids || !ids2 || !g1 || !g2 || !feats || !pix || !pts || !gl1 || !gl2 || !q1 || !q2) return 1;
    // the question is the prompt's text between "<video>\n" and " ASSISTANT:"
    char question[256];
    const char *qs = strstr(q1, "<video>\n"), *qe = strstr(q1, " ASSISTANT:");
    DV_CHECK(qs && qe && qe > qs);
    if (!qs || !qe) return dv_test_finish();
    snprintf(question, sizeof question, "%.*s", (int)(qe - qs - 8), qs + 8);

    dv_backend *be = dv_backend_cpu_init(0);
    vlm_test_use_kv(DV_KV_BF16);
    test_llava_image(be);
    vlm_test_use_kv(DV_KV_F32);
    test_llava_image(be);
    dv_vlm *v = open_vlm(be, 256, NULL);
    if (!v) return 1;
    DV_CHECK(dv_vlm_template(v)->kind == DV_TEMPLATE_VICUNA);

    // ---- prompt ids: prefix + <video> x (frames * 36) + question, as the processor expands it ----
    int32_t *pre = NULL, *qid = NULL, *nq2 = NULL;
    int n_pre = 0, n_q = 0, n_q2 = 0;
    DV_CHECK(dv_vlm_prefix_ids(v, &pre, &n_pre) == 0);
    DV_CHECK(dv_vlm_question_ids(v, question, 1, &qid, &n_q) == 0);
    DV_CHECK(dv_vlm_question_ids(v, q2, 0, &nq2, &n_q2) == 0);
    int same = n_pre + nv + n_q == n_ids;
    for (int i = 0; same && i < n_ids; i++) {
        int32_t want = i < n_pre ? pre[i] : i < n_pre + nv ? 513 : qid[i - n_pre - nv];
        same = ids[i] == want;
    }
    DV_CHECK_MSG(same, "prompt ids differ from the processor's (%d + %d + %d vs %lld)", n_pre, nv, n_q, (long long)n_ids);
    // turn 2 = turn 1 + the answer + the next user turn
    same = n_ids + n_g + n_q2 == n_ids2;
    for (int i = 0; same && i < n_ids2; i++) {
        int32_t want = i < n_ids ? ids[i] : i < n_ids + n_g ? g1[i - n_ids] : nq2[i - n_ids - n_g];
        same = ids2[i] == want;
    }
    DV_CHECK_MSG(same, "turn-2 ids differ from the processor's");
    printf("prompt ids: %d prefix + %d video + %d question = %lld, as the HF processor\n", n_pre, nv, n_q, (long long)n_ids);

    // ---- frames, pixels and features from our own decode of the clip ----
    {
        dv_video *video = NULL;
        dv_video_sampler *s = NULL;
        dv_sample_plan plan = dv_sample_plan_default();
        plan.n_frames = N_FRAMES;
        DV_CHECK(dv_video_open(dv_test_path(CLIP), NULL, &video) == 0);
        DV_CHECK(video && dv_video_sampler_init(video, &plan, 0, 0, &s) == 0);
        dv_encoder *enc = dv_vlm_encoder(v);
        const dv_prep_config *pc = dv_encoder_prep_config(enc);
        uint8_t *rgb = NULL, *prep = malloc(168 * 168 * 3);
        dv_image img[N_FRAMES];
        int k = 0, maxd = 0;
        dv_frame f;
        while (s && k < N_FRAMES && dv_video_sampler_next(s, &f) == 1) {
            DV_CHECK_MSG(fabs(f.t_sec - pts[k]) < 1e-4, "frame %d at %.3f s, HF got the one at %.3f s", k, f.t_sec, pts[k]);
            if (!rgb) rgb = malloc((size_t)N_FRAMES * f.w * f.h * 3);
            memcpy(rgb + (size_t)k * f.w * f.h * 3, f.rgb, (size_t)f.w * f.h * 3);
            img[k] = (dv_image){rgb + (size_t)k * f.w * f.h * 3, f.w, f.h, 3 * f.w};
            // the processor's pixels before normalization are whole numbers /255
            DV_CHECK(dv_encoder_preprocess(enc, &img[k], prep) == 0);
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 168 * 168; i++) {
                    double x = pix[((size_t)k * 3 + c) * 168 * 168 + i] * pc->std[c] + pc->mean[c];
                    int d = abs((int)lrint(x * 255.0) - prep[(size_t)i * 3 + c]);
                    if (d > maxd) maxd = d;
                }
            k++;
        }
        DV_CHECK(k == N_FRAMES);
        printf("pixels vs the HF processor: max diff %d/255\n", maxd);
        DV_CHECK(maxd <= 1);
        float *emb = malloc((size_t)nv * 64 * sizeof(float));
        DV_CHECK(k == N_FRAMES && dv_encoder_encode(enc, img, N_FRAMES, emb) == 0);
        dv_test_close("video features vs HF", emb, feats, (size_t)nv * 64, 1e-4);
        free(emb);
        free(rgb);
        free(prep);
        dv_video_sampler_free(s);
        dv_video_free(video);
    }

    // ---- the whole pipeline: context, logits, 16 greedy tokens, then turn 2 in the same cache;
    // with f32 KV (the model above), then bf16 KV ----
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            dv_vlm_free(v);
            vlm_test_use_kv(DV_KV_BF16);
            if (!(v = open_vlm(be, 256, NULL))) break;
        }
        if (build_context(v, 0) == 0) {
            int64_t nf;
            const double *ft = dv_vlm_frame_times(v, &nf);
            DV_CHECK(nf == N_FRAMES && fabs(ft[N_FRAMES - 1] - pts[N_FRAMES - 1]) < 1e-4);
            DV_CHECK(dv_vlm_video_tokens(v) == n_pre + nv);
            check_answer(v, question, 1, (int)n_g, g1, gl1, "turn 1");
            check_answer(v, q2, 0, (int)n_g2, g2, gl2, "turn 2");
            // /reset returns to the video context: turn 1 again gives the same answer
            DV_CHECK(dv_vlm_reset_conversation(v) == 0);
            check_answer(v, question, 1, (int)n_g, g1, gl1, "turn 1 after reset");
        }
    }
    dv_vlm_free(v);
    vlm_test_use_kv(DV_KV_F32); // the rest: exact

    // ---- chunking: 7-token chunks cut frames and text anywhere; same logits ----
    if ((v = open_vlm(be, 7, NULL)) && build_context(v, 0) == 0) check_answer(v, question, 1, 4, g1, gl1, "chunk 7");
    dv_vlm_free(v);

    // ---- DuoAttention with every head a retrieval head (sparsity 0) is full attention ----
    dv_duo_pattern *pat = NULL;
    if (dv_duo_pattern_full(2, 2, &pat) == 0) {
        for (int i = 0; i < 4; i++) pat->alpha[i] = 0.5 + 0.1 * i;
        pat->sink = 4;
        pat->recent = 16;
        dv_duo_pattern_set_sparsity(pat, 0);
        if ((v = open_vlm(be, 64, pat)) && build_context(v, 0) == 0)
            check_answer(v, question, 1, 4, g1, gl1, "duo sparsity 0");
        dv_vlm_free(v);
        // sparsity 0.5: a real hybrid cache; reset must bring back exactly the video context
        dv_duo_pattern_set_sparsity(pat, 0.5);
        if ((v = open_vlm(be, 64, pat)) && build_context(v, 0) == 0 && dv_vlm_take_snapshot(v) == 0) {
            float *a = malloc(4 * V * sizeof(float)), *b = malloc(4 * V * sizeof(float));
            dv_vlm_gen g = {.sampler = dv_sampler_default_params(), .max_new = 4, .ignore_eos = 1};
            g.sampler.temperature = 0;
            dv_vlm_answer ans;
            g.logits_trace = a;
            DV_CHECK(dv_vlm_ask(v, question, 1, &g, NULL, &ans) == 0);
            g.logits_trace = NULL;
            DV_CHECK(dv_vlm_ask(v, q2, 0, &g, NULL, &ans) == 0);
            DV_CHECK(dv_vlm_reset_conversation(v) == 0);
            g.logits_trace = b;
            DV_CHECK(dv_vlm_ask(v, question, 1, &g, NULL, &ans) == 0);
            DV_CHECK_MSG(memcmp(a, b, 4 * V * sizeof(float)) == 0, "duo: answer after /reset differs");
            free(a);
            free(b);
        }
        dv_vlm_free(v);
        dv_duo_pattern_free(pat);
    }

    // ---- timestamps: one text run per frame before its tokens ----
    if ((v = open_vlm(be, 256, NULL)) && build_context(v, 1) == 0)
        DV_CHECK_MSG(dv_vlm_video_tokens(v) > n_pre + nv + N_FRAMES, "timestamps add tokens (%lld)",
                     (long long)dv_vlm_video_tokens(v));
    dv_vlm_free(v);

    free(pre);
    free(qid);
    free(nq2);
    dv_backend_free(be);
    dv_safetensors_free(st);
    return dv_test_finish();
}
