// qwen_video.h: the Qwen-VL family's side of the video pipeline (vlm/pipeline.c): which frames the
// model's video processor samples, at which size, how a batch of them becomes LLM rows (the vision
// tower of encoder/dv_qwen_vision.h) and the 3 x N M-RoPE positions of those rows. Everything that
// differs between Qwen-VL generations stays behind this interface and dv_qwen_*; the pipeline's
// feeder, context cache and conversation code are the LLaVA models' own, given positions.
#ifndef DV_VLM_QWEN_VIDEO_H
#define DV_VLM_QWEN_VIDEO_H

#include "vlm/dv_vlm.h"

#include <stdint.h>

typedef struct dv_vlm_qwen dv_vlm_qwen;

// 1: MODEL_DIR/config.json names a Qwen-VL model (model_type qwen*_vl, or Qwen3.5's qwen3_5 /
// qwen3_5_moe with a vision_config: the Qwen3-VL path without DeepStack), which dv_vlm_qwen_open opens.
int dv_vlm_qwen_detect(const char *model_dir);
// The vision tower on `be` (not owned) and the video processor config (video_preprocessor_config.json;
// min_pixels / max_pixels > 0 override it). Errors name the file.
int dv_vlm_qwen_open(const char *model_dir, dv_backend *be, int64_t min_pixels, int64_t max_pixels,
                     dv_vlm_qwen **out);
void dv_vlm_qwen_free(dv_vlm_qwen *q); // accepts NULL
int dv_vlm_qwen_d_model(const dv_vlm_qwen *q);
int dv_vlm_qwen_temporal_patch(const dv_vlm_qwen *q);
int dv_vlm_qwen_n_deepstack(const dv_vlm_qwen *q); // Qwen3-VL's DeepStack inputs (0: none)
const char *dv_vlm_qwen_describe(const dv_vlm_qwen *q);
// "px=MIN-MAX": the pixel bounds in force, for the context cache key.
void dv_vlm_qwen_key(const dv_vlm_qwen *q, char *buf, size_t cap);

// The processor's frames of a video under the user's plan (its fps or frame count, or the processor's
// fps when model_fps, start/end range,
// max_frames) with at most max_groups temporal patches (<= 0: no limit): fills p's plan (the sample
// plan that decodes exactly those frames), times, n_frames, frame_w/h (smart_resize), grid_t/h/w,
// temporal_patch, group_tokens, tokens_per_frame and t_interval. *asked: the frame count without
// max_groups. Errors (DV_EINVAL, one line): unknown frame rate or length, too short for the temporal
// patch, a frame smaller than one patch.
int dv_vlm_qwen_plan(const dv_vlm_qwen *q, const dv_video_info *info, const dv_sample_plan *user, int model_fps,
                     int64_t max_groups, dv_vlm_plan *p, int64_t *asked);

// Before a video: sizes the buffers for batches of `batch` frames (a multiple of the temporal patch)
// of plan p (once per video, nothing per frame).
int dv_vlm_qwen_begin(dv_vlm_qwen *q, const dv_vlm_plan *p, int batch);
// n <= batch decoded frames (any size: resized to the plan's) -> *rows, a view (n_groups *
// group_tokens, d_model) F32 on the backend, valid until the next call; *n_groups = ceil(n / tp)
// (a short last group repeats its last frame, as the processor does). *deep: the DeepStack rows
// (n_deepstack, n_groups * group_tokens, d_model) F32 on the backend, valid as long (NULL: none).
int dv_vlm_qwen_encode(dv_vlm_qwen *q, const dv_image *frames, int n, const float **rows, const float **deep,
                       int *n_groups);
// The family's text around the video, as its processor expands the chat template's
// "<|vision_start|><|video_pad|><|vision_end|>": before the first row and after the last (static
// strings; Qwen2.5-VL: the two markers), and before / after each temporal group whose n frames were
// sampled at times t of plan p (Qwen2.5-VL: none, time is in the positions; Qwen3-VL: "<t seconds>"
// and <|vision_start|> before, <|vision_end|> after, the template's markers staying around the whole
// video). Each text goes in at the text positions.
const char *dv_vlm_qwen_video_open(const dv_vlm_qwen *q);
const char *dv_vlm_qwen_video_close(const dv_vlm_qwen *q);
int dv_vlm_qwen_group_text(const dv_vlm_qwen *q, const dv_vlm_plan *p, const double *t, int n, char *before,
                           char *after, size_t cap);
// Positions of temporal group g of the video: pos (3 rows, `stride` apart, group_tokens columns), given
// the text position of the video's first row (video_start) and of the row about to be fed (text_pos);
// the family's rule picks (Qwen2.5-VL: one grid from video_start, t scaled by t_interval; Qwen3-VL:
// each group its own grid at text_pos, after its timestamp). Returns
// the text position after the group.
int dv_vlm_qwen_positions(const dv_vlm_qwen *q, const dv_vlm_plan *p, int video_start, int text_pos, int g,
                          int32_t *pos, int64_t stride);

#endif
