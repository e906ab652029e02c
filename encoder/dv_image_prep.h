// dv_image_prep.h: frame preprocessing exactly as the Hugging Face image/video processors of the
// LLaVA family do it by default (transformers 5, torchvision backend): resize (bicubic or bilinear,
// antialiased on downscale), center crop (zero padding when the crop is larger), rescale, normalize.
//
// The resize reproduces torch's uint8 antialiased path (`interpolate(..., antialias=True)` on a uint8
// tensor, which torchvision's resize uses): PIL's filters (bicubic a = -0.5, support scaled by the
// downscale factor), weights normalized per output pixel in double, then rounded to int16 fixed point
// with the largest precision that keeps the biggest weight below 2^15; a horizontal pass then a
// vertical pass, each rounded and clamped to uint8. PIL's own resize (the processors' PIL backend)
// uses 22-bit coefficients and differs from it by at most 1-2 levels on a few pixels.
//
// Usage:
//   dv_prep_config c; dv_prep_config_load(model_dir, &c);   // or fill c by hand
//   dv_prep *p; dv_prep_init(&c, &p);
//   dv_prep_run(p, &img, u8);                 // u8: (out_h, out_w, 3), before normalization
//   dv_prep_normalize(&c, u8, out_w, out_h, chw);   // chw: (3, out_h, out_w) float
//   dv_prep_free(p);
#ifndef DV_IMAGE_PREP_H
#define DV_IMAGE_PREP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// One RGB24 frame as the video layer yields it: h rows of w pixels, 3 bytes each (R, G, B); row r
// starts at rgb + r * stride (stride in bytes; 0 means 3 * w). Not owned.
typedef struct dv_image {
    const uint8_t *rgb;
    int w, h;
    int stride;
} dv_image;

// PIL resample codes, as processor configs write them ("resample": 3).
enum { DV_RESAMPLE_BILINEAR = 2, DV_RESAMPLE_BICUBIC = 3 };

typedef struct dv_prep_config {
    int do_resize;
    int shortest_edge;      // > 0: scale so the short side is this, keeping the aspect ratio
    int size_h, size_w;     // shortest_edge == 0: resize to exactly size_h x size_w
    int resample;           // DV_RESAMPLE_*
    int do_center_crop;
    int crop_h, crop_w;
    int do_rescale;
    double rescale_factor;  // usually 1/255
    int do_normalize;
    double mean[3], std[3];
    char source[32];        // the file it came from ("video_preprocessor_config.json"), for messages
} dv_prep_config;

// Reads MODEL_DIR/video_preprocessor_config.json when present, else preprocessor_config.json.
// Missing both -> DV_ENOTFOUND; an unsupported resample or size form -> DV_EUNSUPPORTED; bad values
// -> DV_EFORMAT. Keys a file omits take the defaults of the CLIP processors (bicubic, 1/255, the
// OpenAI CLIP mean/std, resize + crop on).
int dv_prep_config_load(const char *model_dir, dv_prep_config *out);

// The processor file AutoVideoProcessor reads in MODEL_DIR: video_preprocessor_config.json when present,
// else preprocessor_config.json (older checkpoints ship only the image processor's, and the video
// processor is built from it). path (size bytes) gets its path, *name its file name (static storage).
// Neither -> DV_ENOTFOUND naming both. dv_prep_config_load and the Qwen-VL processor config use it.
int dv_prep_config_find_file(const char *model_dir, char *path, size_t size, const char **name);

// The keys every processor family shares (resample, do_rescale, rescale_factor, do_normalize,
// image_mean, image_std) from a parsed config into c (keys absent keep c's values); errors name path.
// dv_prep_config_load uses it; so does the Qwen-VL processor config (encoder/qwen_prep.c).
struct cJSON;
int dv_prep_config_read_pixels(const struct cJSON *root, const char *path, dv_prep_config *c);

// Output size of dv_prep_run for a w x h input.
void dv_prep_output_size(const dv_prep_config *c, int w, int h, int *out_w, int *out_h);

typedef struct dv_prep dv_prep;

// One frame at a time, single-threaded (callers run one dv_prep per thread to process frames in
// parallel). The resize coefficients are cached per input size; scratch grows only when a larger
// input arrives.
int dv_prep_init(const dv_prep_config *c, dv_prep **out);
void dv_prep_free(dv_prep *p);

// Resize + crop one frame into out (out_h, out_w, 3) uint8 (the values before rescale/normalize).
// A NULL/empty image or a stride smaller than 3 * w -> DV_EINVAL naming the problem.
int dv_prep_run(dv_prep *p, const dv_image *img, uint8_t *out);

// The float a processor hands the model: (3, h, w) channel-major from (h, w, 3) uint8, computed as
// the torchvision backend does (mean and std scaled by 1 / rescale_factor in float32, then
// (x - mean) / std in float32).
void dv_prep_normalize(const dv_prep_config *c, const uint8_t *u8, int w, int h, float *chw);

// The bare resize (no crop) with p's filter and scratch: src (sh rows of sw pixels, `stride` bytes
// apart) to dst (dh, dw, 3). Used by dv_prep_run; exposed for tests.
int dv_prep_resize(dv_prep *p, const uint8_t *src, int sw, int sh, int stride, uint8_t *dst, int dw, int dh);

#ifdef __cplusplus
}
#endif
#endif
