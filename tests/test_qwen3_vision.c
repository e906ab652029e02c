// test_qwen3_vision.c: the Qwen3-VL / Qwen3.5 vision side's rules against Hugging Face transformers 5
// (Qwen3VLVideoProcessor, Qwen3VLProcessor, Qwen3VLModel.get_rope_index): the processor's class
// defaults, its frame sampling (int(total / video_fps * fps) clamped, round(linspace) half to even, no
// even count), its video-volume smart_resize (frames below the factor scaled up, the per-frame cap),
// the frame timestamps and their "<t seconds>" text, the per-frame prompt positions; the one-line
// errors (a frame smaller than one patch, a video too short for the temporal patch); the processor
// choice when video_processor_type is missing (AutoVideoProcessor's fallbacks); and the Qwen3.5
// tower (Qwen3-VL's without DeepStack, tests/fixtures/qwenvl/make_qwen35_vision_fixture.py) opened from
// a Qwen3_5ForConditionalGeneration folder: features rel L2 < 1e-4 from the Qwen3-VL fixture's pixels.
// The expected numbers are HF's outputs for the same inputs (written next to each check).
#include "encoder/dv_qwen_vision.h"
#include "core/dv_error.h"
#include "core/dv_safetensors.h"
#include "tests/dv_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/qwenvl/"

// dir/name holding `json`.
static int write_file(const char *dir, const char *name, const char *json) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(json, f);
    return fclose(f);
}

// A folder whose video_preprocessor_config.json holds `json`.
static int write_config(char *dir, const char *json) { return write_file(dir, "video_preprocessor_config.json", json); }

// The processor chosen for `proc` (video_preprocessor_config.json) and `cfg` (config.json; NULL: none),
// -1 on error.
static int kind_for(char *dir, const char *proc, const char *cfg) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    if (write_config(dir, proc) || (cfg && write_file(dir, "config.json", cfg))) return -2;
    dv_qwen_prep_config c;
    if (dv_qwen_prep_config_load(dir, 0, 0, &c)) return -1;
    return c.patch == (c.kind == DV_QWEN_PREP_QWEN3_VL ? 16 : 14) ? (int)c.kind : -3;
}

// AutoVideoProcessor.from_pretrained (transformers 5.24) on the same two files picked the class written
// next to each check.
static void test_fallback(char *dir) {
    const int q2 = DV_QWEN_PREP_QWEN2_VL, q3 = DV_QWEN_PREP_QWEN3_VL;
    // no type: config.json's model_type -> Qwen3VLVideoProcessor (qwen3_vl, qwen3_5), Qwen2VL (qwen2_5_vl)
    DV_CHECK_MSG(kind_for(dir, "{}", "{\"model_type\": \"qwen3_vl\"}") == q3, "%s", dv_error_message());
    DV_CHECK(kind_for(dir, "{}", "{\"model_type\": \"qwen3_5_moe\"}") == q3);
    DV_CHECK(kind_for(dir, "{}", "{\"model_type\": \"qwen2_5_vl\"}") == q2);
    // image_processor_type Qwen2VLImageProcessor -> Qwen2VLVideoProcessor, before the model_type
    DV_CHECK(kind_for(dir, "{\"image_processor_type\": \"Qwen2VLImageProcessor\"}", "{\"model_type\": \"qwen3_vl\"}") == q2);
    // Qwen2VLImageProcessorFast -> Qwen2VLVideoProcessorFast names no class: passed over -> Qwen3VL
    DV_CHECK(kind_for(dir, "{\"image_processor_type\": \"Qwen2VLImageProcessorFast\"}", "{\"model_type\": \"qwen3_5\"}") == q3);
    // config.json's video_processor_type before its model_type; the file's own type before both
    DV_CHECK(kind_for(dir, "{}", "{\"model_type\": \"qwen3_vl\", \"video_processor_type\": \"Qwen2VLVideoProcessor\"}") == q2);
    DV_CHECK(kind_for(dir, "{\"video_processor_type\": \"Qwen2VLVideoProcessor\"}", "{\"model_type\": \"qwen3_vl\"}") == q2);
    // errors, one line naming the file: a type naming another processor, a model_type naming none
    // (HF: "Unrecognized video processor"), no config.json to fall back on
    DV_CHECK(kind_for(dir, "{\"video_processor_type\": \"LlavaNextVideoVideoProcessor\"}", "{\"model_type\": \"qwen3_vl\"}") == -1);
    DV_CHECK(strstr(dv_error_message(), "video_preprocessor_config.json: video_processor_type 'LlavaNextVideoVideoProcessor'"));
    DV_CHECK(kind_for(dir, "{}", "{\"model_type\": \"qwen3_vl\", \"video_processor_type\": \"Foo\"}") == -1);
    DV_CHECK(strstr(dv_error_message(), "config.json: video_processor_type 'Foo'"));
    DV_CHECK(kind_for(dir, "{}", "{\"model_type\": \"llama\"}") == -1);
    DV_CHECK(strstr(dv_error_message(), "model_type 'llama' names no Qwen video processor") && !strchr(dv_error_message(), '\n'));
    DV_CHECK(kind_for(dir, "{\"image_processor_type\": \"GotOCR2ImageProcessor\"}", NULL) == -1);
    DV_CHECK(strstr(dv_error_message(), "video_preprocessor_config.json: no video_processor_type, and no model_type"));
    printf("fallback error: %s\n", dv_error_message());
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
}

static void test_defaults(char *dir) {
    dv_qwen_prep_config c;
    DV_CHECK(write_config(dir, "{\"video_processor_type\": \"Qwen3VLVideoProcessor\"}") == 0);
    DV_CHECK_MSG(dv_qwen_prep_config_load(dir, 0, 0, &c) == 0, "%s", dv_error_message());
    // Qwen3VLVideoProcessor(): size {shortest_edge 131072, longest_edge 786432}, patch 16, mean = std = 0.5
    DV_CHECK(c.kind == DV_QWEN_PREP_QWEN3_VL && c.patch == 16 && c.temporal_patch == 2 && c.merge == 2);
    DV_CHECK(c.min_pixels == 131072 && c.max_pixels == 786432 && c.fps == 2.0 && c.max_video_tokens == 768);
    DV_CHECK(c.min_frames == 4 && c.max_frames == 768 && c.px.mean[0] == 0.5 && c.px.std[2] == 0.5);
    DV_CHECK(write_config(dir, "{\"video_processor_type\": \"Qwen2VLVideoProcessor\"}") == 0);
    DV_CHECK(dv_qwen_prep_config_load(dir, 0, 0, &c) == 0 && c.kind == DV_QWEN_PREP_QWEN2_VL && c.patch == 14);
}

static dv_qwen_prep_config q3(double fps, int64_t min_px, int64_t max_px, int cap) {
    dv_qwen_prep_config c = {.kind = DV_QWEN_PREP_QWEN3_VL, .patch = 16, .temporal_patch = 2, .merge = 2,
                             .min_pixels = min_px, .max_pixels = max_px, .fps = fps, .min_frames = 4,
                             .max_frames = 768, .cap_pixels_per_frame = cap, .max_video_tokens = 768};
    return c;
}

static void test_sampling(void) {
    static int32_t idx[1024];
    int n = 0;
    dv_qwen_prep_config c = q3(2, 131072, 786432, 0);
    // HF sample_frames(VideoMetadata(total, fps)): 40 @ 10 fps -> 8: 0 6 11 17 22 28 33 39
    DV_CHECK(dv_qwen_sample_frames(&c, 40, 10.0, idx, 1024, &n) == 0 && n == 8);
    DV_CHECK(idx[0] == 0 && idx[1] == 6 && idx[2] == 11 && idx[3] == 17 && idx[5] == 28 && idx[6] == 33 && idx[7] == 39);
    // 1000 @ 25 -> 80: 0 13 25 38 51 63 .. 974 986 999
    DV_CHECK(dv_qwen_sample_frames(&c, 1000, 25.0, idx, 1024, &n) == 0 && n == 80);
    DV_CHECK(idx[1] == 13 && idx[2] == 25 && idx[3] == 38 && idx[4] == 51 && idx[77] == 974 && idx[78] == 986 && idx[79] == 999);
    // 7 @ 10 -> min_frames 4: 0 2 4 6; 3 @ 30 -> all 3 (odd: patchify repeats the last)
    DV_CHECK(dv_qwen_sample_frames(&c, 7, 10.0, idx, 1024, &n) == 0 && n == 4 && idx[1] == 2 && idx[3] == 6);
    DV_CHECK(dv_qwen_sample_frames(&c, 3, 30.0, idx, 1024, &n) == 0 && n == 3 && idx[2] == 2);
    // 100000 @ 30 -> max_frames 768: 0 130 261 391 522 652 .. 99738 99869 99999
    DV_CHECK(dv_qwen_sample_frames(&c, 100000, 30.0, idx, 1024, &n) == 0 && n == 768);
    DV_CHECK(idx[1] == 130 && idx[2] == 261 && idx[3] == 391 && idx[5] == 652 && idx[766] == 99869 && idx[767] == 99999);
    // 41 @ 10 at 1.75 fps -> 7: 0 7 13 20 27 33 40
    c.fps = 1.75;
    DV_CHECK(dv_qwen_sample_frames(&c, 41, 10.0, idx, 1024, &n) == 0 && n == 7);
    DV_CHECK(idx[1] == 7 && idx[2] == 13 && idx[3] == 20 && idx[4] == 27 && idx[5] == 33 && idx[6] == 40);
    // bad input: one frame
    DV_CHECK(dv_qwen_sample_frames(&c, 1, 10.0, idx, 1024, &n) == DV_EINVAL);
    DV_CHECK(strstr(dv_error_message(), "too short for the temporal patch") != NULL);
}

static void check_size(const dv_qwen_prep_config *c, int w, int h, int n, int want_w, int want_h) {
    int rw = 0, rh = 0;
    const int rc = dv_qwen_frame_size(c, w, h, n, &rw, &rh);
    DV_CHECK_MSG(rc == 0 && rw == want_w && rh == want_h, "%d frames %dx%d -> %dx%d (rc %d), HF %dx%d", n, w, h, rw, rh,
                 rc, want_w, want_h);
}

static void test_resize(void) {
    // HF smart_resize(num_frames, height, width, 2, 32, min_pixels, max_pixels) -> (h, w)
    dv_qwen_prep_config c = q3(2, 131072, 786432, 0);
    check_size(&c, 320, 240, 8, 320, 256);             // (256, 320): 7.5 rounds to 8
    c.min_pixels = 8192, c.max_pixels = 110000;
    check_size(&c, 320, 240, 7, 128, 96);              // (96, 128): the volume of round(7 / 2) * 2 = 8 frames
    c.min_pixels = 1, c.max_pixels = 1 << 30;
    check_size(&c, 24, 20, 4, 32, 32);                 // (32, 32): scaled up to the factor first
    c.min_pixels = 131072, c.max_pixels = 32 * 32 * 768 * 4;
    check_size(&c, 1920, 1080, 16, 576, 320);          // (320, 576)
    c.min_pixels = 4 * 64 * 64 * 4, c.max_pixels = 1 << 30;
    check_size(&c, 60, 50, 4, 160, 128);               // (128, 160): the lower bound
    c.min_pixels = 4096, c.max_pixels = 25165824;
    check_size(&c, 1280, 720, 768, 224, 128);          // (128, 224)
    c.cap_pixels_per_frame = 1;                         // get_num_of_video_patches(8, 720, 1280) = 11520 = 4 x 40 x 72
    check_size(&c, 1280, 720, 8, 1152, 640);
    check_size(&c, 1280, 720, 768, 224, 128);          // 43008 = 384 x 8 x 14
    // bad input: a frame smaller than one patch
    int rw, rh;
    DV_CHECK(dv_qwen_frame_size(&c, 15, 240, 8, &rw, &rh) == DV_EINVAL);
    DV_CHECK(strstr(dv_error_message(), "smaller than one 16x16 patch") != NULL);
}

static void test_timestamps_positions(void) {
    const dv_qwen_prep_config c = q3(1.75, 8192, 110000, 0);
    // Qwen3VLProcessor._calculate_timestamps([0, 6, 13, 20, 26, 32, 39], 10, 2)
    const int32_t idx[7] = {0, 6, 13, 20, 26, 32, 39};
    double ts[4];
    dv_qwen_frame_timestamps(&c, idx, 7, 10.0, ts);
    DV_CHECK(ts[0] == 0.3 && ts[1] == 1.65 && ts[2] == 2.9000000000000004 && ts[3] == 3.9);
    char text[32];
    dv_qwen_timestamp_text(ts[1], text, sizeof text); // f"<{1.65:.1f} seconds>": 1.65 is below 1.65 in binary
    DV_CHECK(!strcmp(text, "<1.6 seconds>"));
    dv_qwen_timestamp_text(ts[2], text, sizeof text);
    DV_CHECK(!strcmp(text, "<2.9 seconds>"));
    // get_rope_index for "t t t <f0: 2x3> e  t t <f1: 2x3> e" from position 5 (grid 1 x 4 x 6 per frame)
    enum { N = 3 + 6 + 1 + 2 + 6 + 1 };
    int32_t pos[3 * N];
    const int before[2] = {3, 2};
    const int next = dv_qwen3_video_positions(5, 2, 4, 6, 2, before, 1, pos, N);
    const int32_t want_t[N] = {5, 6, 7, 8, 8, 8, 8, 8, 8, 11, 12, 13, 14, 14, 14, 14, 14, 14, 17};
    const int32_t want_h[N] = {5, 6, 7, 8, 8, 8, 9, 9, 9, 11, 12, 13, 14, 14, 14, 15, 15, 15, 17};
    const int32_t want_w[N] = {5, 6, 7, 8, 9, 10, 8, 9, 10, 11, 12, 13, 14, 15, 16, 14, 15, 16, 17};
    DV_CHECK(next == 18);
    DV_CHECK(!memcmp(pos, want_t, sizeof want_t) && !memcmp(pos + N, want_h, sizeof want_h) &&
             !memcmp(pos + 2 * N, want_w, sizeof want_w));
}

static void test_qwen35_tower(void) {
    dv_safetensors *st = NULL, *st3 = NULL;
    dv_qwen_vit *v = NULL;
    const dv_st_tensor *want = NULL, *px = NULL;
    static float feat[48 * 64];
    DV_CHECK(dv_safetensors_open(dv_test_path(FIX "tiny-qwen3_5-vision.ref.safetensors"), &st) == 0);
    DV_CHECK(dv_safetensors_open(dv_test_path(FIX "tiny-qwen3-vl.ref.safetensors"), &st3) == 0);
    DV_CHECK(st && dv_safetensors_get(st, "video_features", 2, (int64_t[]){48, 64}, &want) == 0);
    DV_CHECK(st3 && dv_safetensors_get(st3, "pixel_values_videos", 2, (int64_t[]){192, 1536}, &px) == 0);
    DV_CHECK_MSG(dv_qwen_vit_open(dv_test_path(FIX "tiny-qwen3_5-vision"), NULL, 2, &v) == 0, "%s", dv_error_message());
    if (v && want && px) {
        printf("     %s\n", dv_qwen_vit_describe(v));
        DV_CHECK(dv_qwen_vit_is_qwen3(v) && dv_qwen_vit_n_deepstack(v) == 0 && dv_qwen_vit_out_dim(v) == 64);
        DV_CHECK(dv_qwen_vit_encode(v, px->data, 4, 6, 8, feat) == 0);
        dv_test_close("qwen3.5 tower features (HF pixels)", feat, want->data, 48 * 64, 1e-4);
        DV_CHECK(dv_qwen_vit_encode(v, px->data, 4, 6, 7, feat) == DV_EINVAL); // odd grid
    }
    dv_qwen_vit_free(v);
    dv_safetensors_free(st);
    dv_safetensors_free(st3);
}

int main(void) {
    char dir[] = "/tmp/duovid_qwen3_vision_XXXXXX";
    DV_CHECK(mkdtemp(dir) != NULL);
    test_defaults(dir);
    test_fallback(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/video_preprocessor_config.json", dir);
    unlink(path);
    rmdir(dir);
    test_sampling();
    test_resize();
    test_timestamps_positions();
    test_qwen35_tower();
    return dv_test_finish();
}
