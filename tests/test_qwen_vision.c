// test_qwen_vision.c: the Qwen2.5-VL vision side against Hugging Face
// (tests/fixtures/qwenvl/make_qwen25vl_fixture.py): the video processor's frame choice (fps 2 over the
// clip's 40 frames at 10 fps: an even count), smart_resize (320x240 -> 140x84 under max_pixels 15680),
// the patchified pixel values from frames duovid's video/ decodes, and the vision tower (window
// attention with a full-attention block, 2-D rotary, merger) from the processor's pixels: features
// rel L2 < 1e-4. Also smart_resize's rules on other sizes, the sampling rules (min/max frames, even
// count), the fallback to preprocessor_config.json when the video processor's file is absent (the
// same settings from the fixture's image processor file) and the one-line errors: a folder with neither
// file, a frame smaller than a patch, a video too short for the temporal patch.
#include "encoder/dv_qwen_vision.h"
#include "core/dv_error.h"
#include "core/dv_safetensors.h"
#include "tests/dv_test.h"
#include "video/dv_video.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/qwenvl/"
#define MODEL FIX "tiny-qwen2_5-vl"
#define CLIP "tests/fixtures/vlm/clip.mp4"

static const void *ref(const dv_safetensors *st, const char *name, dv_dtype dt, int nd, const int64_t *shape) {
    const dv_st_tensor *t = NULL;
    if (dv_safetensors_get(st, name, nd, shape, &t) || t->dtype != dt) {
        fprintf(stderr, "FAIL fixture tensor %s: %s\n", name, dv_error_message());
        return NULL;
    }
    return t->data;
}

static void test_rules(const dv_qwen_prep_config *c) {
    int rh = 0, rw = 0;
    // HF smart_resize (factor 28): round to multiples, else shrink by beta / grow to min_pixels
    DV_CHECK(dv_qwen_smart_resize(240, 320, 28, 3136, 15680, &rh, &rw) == 0 && rh == 84 && rw == 140);
    DV_CHECK(dv_qwen_smart_resize(1080, 1920, 28, 3136, 28 * 28 * 768, &rh, &rw) == 0 && rh == 560 && rw == 1008);
    DV_CHECK(dv_qwen_smart_resize(50, 60, 28, 56 * 56 * 4, 1 << 24, &rh, &rw) == 0 && rh == 112 && rw == 140);
    DV_CHECK(dv_qwen_smart_resize(42, 42, 28, 1, 1 << 24, &rh, &rw) == 0 && rh == 56 && rw == 56); // round half even: 1.5 -> 2
    DV_CHECK(dv_qwen_smart_resize(10, 2100, 28, 1, 1 << 24, &rh, &rw) == DV_EINVAL);              // aspect > 200
    // sampling: fps 2 of a 10 fps clip, clamped by min_frames / max_frames / total, even
    int32_t idx[64];
    int n = 0;
    DV_CHECK(dv_qwen_sample_frames(c, 40, 10.0, idx, 64, &n) == 0 && n == 8 && idx[1] == 5 && idx[7] == 35);
    // 7 frames: 1.4 at 2 fps, raised to min_frames 4 (even, <= 7): arange(0, 7, 1.75) -> 0 1 3 5
    DV_CHECK(dv_qwen_sample_frames(c, 7, 10.0, idx, 64, &n) == 0 && n == 4 && idx[1] == 1 && idx[2] == 3 && idx[3] == 5);
    dv_qwen_prep_config d = *c;
    d.max_frames = 5;
    DV_CHECK(dv_qwen_sample_frames(&d, 1000, 25.0, idx, 64, &n) == 0 && n == 4 && idx[1] == 250);
    DV_CHECK(dv_qwen_sample_frames(c, 1, 10.0, idx, 64, &n) == DV_EINVAL);
    printf("     one frame: %s\n", dv_error_message());
    DV_CHECK(strstr(dv_error_message(), "too short for the temporal patch") != NULL);
    DV_CHECK(dv_qwen_frame_size(c, 13, 240, 8, &rw, &rh) == DV_EINVAL);
    printf("     13x240 frame: %s\n", dv_error_message());
    DV_CHECK(strstr(dv_error_message(), "smaller than one 14x14 patch") != NULL);
    // llava's preprocessor_config.json (CLIPImageProcessor) read for want of a video one: no Qwen processor
    dv_qwen_prep_config bad;
    DV_CHECK(dv_qwen_prep_config_load(dv_test_path("tests/fixtures/vlm/tiny-llava"), 0, 0, &bad) == DV_EUNSUPPORTED);
    printf("     llava folder: %s\n", dv_error_message());
    DV_CHECK(strstr(dv_error_message(), "preprocessor_config.json: no video_processor_type") != NULL);
}

// AutoVideoProcessor without video_preprocessor_config.json reads preprocessor_config.json (older
// Qwen2.5-VL checkpoints ship only the image processor's) and builds the video processor from it:
// Qwen2VLImageProcessor -> Qwen2VLVideoProcessor. The fixture's image file holds the video file's
// settings but its video keys, which take the same values as class defaults, except do_sample_frames
// (class default False). A folder with neither file is an error naming both.
static void test_image_processor_file(const dv_qwen_prep_config *c) {
    char dir[] = "/tmp/duovid_qwen_vision_XXXXXX", cmd[1024];
    DV_CHECK(mkdtemp(dir) != NULL);
    dv_qwen_prep_config g = {0}; // compared below even when a load fails
    DV_CHECK(dv_qwen_prep_config_load(dir, 0, 0, &g) == DV_ENOTFOUND);
    printf("     no processor file: %s\n", dv_error_message());
    DV_CHECK(strstr(dv_error_message(), ": no video_preprocessor_config.json or preprocessor_config.json") != NULL);
    snprintf(cmd, sizeof cmd, "cp '%s/preprocessor_config.json' '%s/'", dv_test_path(MODEL), dir);
    DV_CHECK(system(cmd) == 0); // no config.json: the type must come from image_processor_type
    DV_CHECK_MSG(dv_qwen_prep_config_load(dir, 0, 0, &g) == 0, "%s", dv_error_message());
    DV_CHECK(!strcmp(c->source, "video_preprocessor_config.json") && !strcmp(g.source, "preprocessor_config.json") &&
             !strcmp(g.px.source, "preprocessor_config.json"));
    DV_CHECK(g.kind == c->kind && g.patch == c->patch && g.temporal_patch == c->temporal_patch && g.merge == c->merge);
    DV_CHECK(g.min_pixels == c->min_pixels && g.max_pixels == c->max_pixels && g.fps == c->fps);
    DV_CHECK(g.min_frames == c->min_frames && g.max_frames == c->max_frames);
    DV_CHECK(g.cap_pixels_per_frame == c->cap_pixels_per_frame && g.max_video_tokens == c->max_video_tokens);
    DV_CHECK(c->do_sample_frames == 1 && g.do_sample_frames == 0);
    const dv_prep_config *a = &g.px, *b = &c->px;
    DV_CHECK(a->do_resize == b->do_resize && a->resample == b->resample && a->do_rescale == b->do_rescale &&
             a->rescale_factor == b->rescale_factor && a->do_normalize == b->do_normalize);
    for (int i = 0; i < 3; i++) DV_CHECK(a->mean[i] == b->mean[i] && a->std[i] == b->std[i]);
    // the same frames at the same size
    int32_t want[16], got[16];
    int nw = 0, ng = 0, ww = 0, wh = 0, gw = 0, gh = 0;
    DV_CHECK(dv_qwen_sample_frames(c, 40, 10.0, want, 16, &nw) == 0 && dv_qwen_sample_frames(&g, 40, 10.0, got, 16, &ng) == 0);
    DV_CHECK(nw == ng && nw <= 16 && !memcmp(want, got, (size_t)nw * sizeof want[0]));
    DV_CHECK(dv_qwen_frame_size(c, 320, 240, nw, &ww, &wh) == 0 && dv_qwen_frame_size(&g, 320, 240, ng, &gw, &gh) == 0);
    DV_CHECK(ww == gw && wh == gh);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    DV_CHECK(system(cmd) == 0);
}

int main(void) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-qwen2_5-vl.ref.safetensors"), &st)) {
        fprintf(stderr, "FAIL fixture: %s\n", dv_error_message());
        return 1;
    }
    dv_qwen_prep_config c;
    DV_CHECK_MSG(dv_qwen_prep_config_load(dv_test_path(MODEL), 0, 0, &c) == 0, "%s", dv_error_message());
    DV_CHECK(c.min_pixels == 3136 && c.max_pixels == 15680 && c.fps == 2.0 && c.temporal_patch == 2);
    test_rules(&c);
    test_image_processor_file(&c);
    dv_qwen_prep_config o;
    DV_CHECK(dv_qwen_prep_config_load(dv_test_path(MODEL), 1000, 50000, &o) == 0 && o.min_pixels == 1000 &&
             o.max_pixels == 50000);

    // ---- frames: the processor's choice, decoded by video/, resized, normalised, patchified ----
    const int32_t *want_idx = ref(st, "frame_indices", DV_DTYPE_I32, 1, (int64_t[]){8});
    const int32_t *grid = ref(st, "video_grid_thw", DV_DTYPE_I32, 1, (int64_t[]){3});
    const int64_t K = 3 * 2 * 14 * 14, N = 4 * 6 * 10;
    const float *want_px = ref(st, "pixel_values_videos", DV_DTYPE_F32, 2, (int64_t[]){N, K});
    const float *want_feat = ref(st, "video_features", DV_DTYPE_F32, 2, (int64_t[]){N / 4, 64});
    if (!want_idx || !grid || !want_px || !want_feat) return 1;
    DV_CHECK(grid[0] == 4 && grid[1] == 6 && grid[2] == 10);
    dv_video *video = NULL;
    DV_CHECK_MSG(dv_video_open(dv_test_path(CLIP), NULL, &video) == 0, "%s", dv_error_message());
    const dv_video_info *info = dv_video_get_info(video);
    int32_t idx[16];
    int n = 0;
    DV_CHECK(dv_qwen_sample_frames(&c, info->n_frames, info->fps, idx, 16, &n) == 0 && n == 8);
    for (int i = 0; i < n; i++) DV_CHECK(idx[i] == want_idx[i]);
    int rw = 0, rh = 0;
    DV_CHECK(dv_qwen_frame_size(&c, info->display_width, info->display_height, n, &rw, &rh) == 0 && rw == 140 && rh == 84);
    dv_prep *prep = NULL;
    DV_CHECK(dv_prep_init(&c.px, &prep) == 0);
    uint8_t *u8 = malloc((size_t)rw * rh * 3);
    float *chw = malloc((size_t)n * 3 * rw * rh * sizeof(float)), *patches = malloc((size_t)(N * K) * sizeof(float));
    dv_sample_plan plan = dv_sample_plan_default();
    plan.n_frames = info->n_frames; // every frame; keep the sampled ones
    dv_video_sampler *s = NULL;
    DV_CHECK(dv_video_sampler_init(video, &plan, 0, 0, &s) == 0);
    dv_frame f;
    int got = 0;
    for (int r; got < n && (r = dv_video_sampler_next(s, &f)) == 1;) {
        if (f.src_index != idx[got]) continue;
        DV_CHECK(dv_prep_resize(prep, f.rgb, f.w, f.h, 3 * f.w, u8, rw, rh) == 0);
        dv_prep_normalize(&c.px, u8, rw, rh, chw + (size_t)got * 3 * rw * rh);
        got++;
    }
    DV_CHECK(got == n);
    dv_qwen_patchify(&c, chw, n, rh, rw, patches);
    dv_test_close("pixel_values_videos (duovid frames vs HF)", patches, want_px, (size_t)(N * K), 1e-6);

    // ---- the tower from HF's pixels, and from ours ----
    dv_qwen_vit *v = NULL;
    DV_CHECK_MSG(dv_qwen_vit_open(dv_test_path(MODEL), NULL, 2, &v) == 0, "%s", dv_error_message());
    if (v) {
        printf("     %s\n", dv_qwen_vit_describe(v));
        float *feat = malloc((size_t)(N / 4 * 64) * sizeof(float));
        DV_CHECK(dv_qwen_vit_encode(v, want_px, 4, 6, 10, feat) == 0);
        dv_test_close("video_features (HF pixels)", feat, want_feat, (size_t)(N / 4 * 64), 1e-4);
        DV_CHECK(dv_qwen_vit_encode(v, patches, 4, 6, 10, feat) == 0);
        dv_test_close("video_features (duovid pixels)", feat, want_feat, (size_t)(N / 4 * 64), 1e-4);
        DV_CHECK(dv_qwen_vit_encode(v, patches, 4, 5, 10, feat) == DV_EINVAL); // odd grid
        free(feat);
    }
    dv_qwen_vit_free(v);
    dv_video_sampler_free(s);
    dv_video_free(video);
    dv_prep_free(prep);
    free(u8), free(chw), free(patches);
    dv_safetensors_free(st);
    return dv_test_finish();
}
