// test_vlm_needle.c: dv_vlm_set_needle (V-NIAH) on the tiny LLaVA-NeXT-Video checkpoint: the needle image
// replaces one planned frame, so the first answer logits change with it and with its depth, are
// reproducible, and come back to the plain video's when the needle is removed; a bad depth is refused.
#include "core/dv_error.h"
#include "kernels/dv_backend.h"
#include "tests/dv_test.h"
#include "video/dv_png.h"
#include "video/dv_video.h"
#include "vlm/dv_vlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "assets/models/tiny-llava-next-video"
#define CLIP "assets/video/demo.mp4"
#define NEEDLE "tests/fixtures/encoder/frame0.png"

// the logits (V) of the first answer token after a 6-frame context
static int first_logits(dv_vlm *v, float *out) {
    dv_video *video = NULL;
    int rc = dv_video_open(dv_test_path(CLIP), NULL, &video);
    dv_vlm_video_opts o = {.plan = dv_sample_plan_default(), .reserve = 64};
    o.plan.n_frames = 6;
    dv_vlm_plan plan;
    dv_vlm_stats st;
    dv_vlm_answer a;
    dv_vlm_gen g = {.sampler = dv_sampler_default_params(), .max_new = 1, .ignore_eos = 1, .logits_trace = out};
    if (!rc) rc = dv_vlm_plan_video(v, dv_video_get_info(video), &o, &plan);
    if (!rc) rc = dv_vlm_prefill_video(v, video, &plan, 0, NULL, &st);
    if (!rc) rc = dv_vlm_ask(v, "What is in the video?", 1, &g, NULL, &a);
    if (rc) fprintf(stderr, "FAIL: %s\n", dv_error_message());
    dv_video_free(video);
    return rc;
}

static int same(const float *a, const float *b, int n) { return !memcmp(a, b, (size_t)n * sizeof *a); }

int main(void) {
    dv_backend *be = dv_backend_cpu_init(2);
    dv_vlm_params p = dv_vlm_default_params();
    p.backend = be;
    dv_vlm *v = NULL;
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    if (!be || dv_vlm_open(dv_test_path(MODEL), &p, &v) || dv_png_read_rgb(dv_test_path(NEEDLE), &rgb, &w, &h)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return dv_test_finish();
    }
    const int V = dv_llm_get_config(dv_vlm_llm(v))->vocab_size;
    float *plain = malloc((size_t)V * 4 * sizeof *plain), *d0 = plain + V, *d1 = d0 + V, *again = d1 + V;
    const dv_image needle = {.rgb = rgb, .w = w, .h = h, .stride = 3 * w};
    DV_CHECK(first_logits(v, plain) == 0);
    DV_CHECK(dv_vlm_set_needle(v, &needle, 0) == 0);
    DV_CHECK(first_logits(v, d0) == 0);
    DV_CHECK(first_logits(v, again) == 0 && same(d0, again, V)); // reproducible
    DV_CHECK(dv_vlm_set_needle(v, &needle, 1) == 0);
    DV_CHECK(first_logits(v, d1) == 0);
    DV_CHECK_MSG(!same(plain, d0, V) && !same(plain, d1, V) && !same(d0, d1, V),
                 "the needle changed nothing (or not with its depth)");
    DV_CHECK(dv_vlm_set_needle(v, &needle, 1.5) == DV_EINVAL);
    DV_CHECK(dv_vlm_set_needle(v, NULL, 0) == 0);
    DV_CHECK(first_logits(v, again) == 0 && same(plain, again, V)); // the plain video again
    free(plain);
    free(rgb);
    dv_vlm_free(v);
    dv_backend_free(be);
    return dv_test_finish();
}
