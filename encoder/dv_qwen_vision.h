// dv_qwen_vision.h: the Qwen-VL vision side (Qwen2.5-VL, Qwen3-VL, Qwen3.5), as Hugging Face
// transformers computes it: the video processor (Qwen2VLVideoProcessor / Qwen3VLVideoProcessor, chosen
// by video_processor_type: fps-based frame sampling, smart_resize, normalisation, patchify into rows
// of temporal_patch x patch x patch pixels, Qwen3-VL's frame timestamps) and the vision tower, chosen
// by config.json's model_type (Qwen2.5-VL: Conv3d patch embedding as a matmul, 2-D rotary, window
// attention with full-attention blocks, RMSNorm/SwiGLU blocks, the 2x2 patch merger; Qwen3-VL /
// Qwen3.5: the learned position table interpolated to the grid, LayerNorm/GELU blocks, frame
// attention, the merger and Qwen3-VL's DeepStack mergers).
//
// Qwen3-VL's prompt for one video (HF Qwen3VLProcessor): for each temporal patch k of grid_t,
//   "<%.1f seconds>" (dv_qwen_timestamp_text of dv_qwen_frame_timestamps' k-th value)
//   <|vision_start|> <|video_pad|> x (gh/m * gw/m) <|vision_end|>
// inside the chat template's own <|vision_start|> .. <|vision_end|> around the video; positions by
// dv_qwen3_video_positions; the tower's features replace the <|video_pad|> rows in order, and its
// DeepStack features (dv_qwen_vit_encode_deepstack) are added after the text model's first layers
// at the same rows (dv_llm_prefill_deepstack).
//
// Usage:
//   dv_qwen_prep_config pc; dv_qwen_prep_config_load(dir, &pc);      // (video_)preprocessor_config.json
//   dv_qwen_sample_frames(&pc, total_frames, fps, idx, cap, &n);       // which frames
//   dv_qwen_frame_size(&pc, w, h, &rw, &rh);                           // smart_resize
//   dv_qwen_patchify(&pc, chw, n, rh, rw, patches);                    // (grid_t*gh*gw, 3*tp*P*P)
//   dv_qwen_vit *v; dv_qwen_vit_open(dir, NULL, 0, &v);
//   dv_qwen_vit_encode(v, patches, grid_t, gh, gw, out);               // (grid_t*gh*gw/4, out_dim)
#ifndef DV_QWEN_VISION_H
#define DV_QWEN_VISION_H

#include "encoder/dv_image_prep.h"
#include "kernels/dv_backend.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Which processor the folder names: its processor file's video_processor_type, else HF's
// fallbacks (its image_processor_type, config.json's video_processor_type, then model_type).
typedef enum dv_qwen_prep_kind {
    DV_QWEN_PREP_QWEN2_VL = 0, // Qwen2VLVideoProcessor (Qwen2-VL, Qwen2.5-VL)
    DV_QWEN_PREP_QWEN3_VL,     // Qwen3VLVideoProcessor (Qwen3-VL, Qwen3.5): linspace sampling, video-volume
                               // smart_resize, frame timestamps
} dv_qwen_prep_kind;

// The processor's settings (class defaults of the processor where the file omits a key).
typedef struct dv_qwen_prep_config {
    dv_qwen_prep_kind kind;
    int patch, temporal_patch, merge;  // 14, 2, 2 (Qwen3: 16, 2, 2)
    int64_t min_pixels, max_pixels;    // size.shortest_edge / size.longest_edge (or min_pixels / max_pixels)
    int do_sample_frames;              // the file's flag (duovid always samples: see dv_qwen_sample_frames)
    double fps;                        // frames per second to sample (2 when the file has none)
    int min_frames, max_frames;        // 4, 768
    int cap_pixels_per_frame;          // qwen-vl-utils' total-pixel cap (0: off, HF's current default)
    int64_t max_video_tokens;          // 128000: the budget of that cap (Qwen3: 768 tokens per frame)
    dv_prep_config px;                 // resample, rescale, mean/std (no crop; size set per video)
    char source[64];                   // the file read ("video_preprocessor_config.json"), for messages
} dv_qwen_prep_config;

// Reads MODEL_DIR/video_preprocessor_config.json, else preprocessor_config.json as AutoVideoProcessor
// does (dv_prep_config_find_file; neither -> DV_ENOTFOUND naming both); min_pixels / max_pixels > 0
// override the file's (the --min-pixels / --max-pixels flags). Bad values -> DV_EFORMAT.
int dv_qwen_prep_config_load(const char *model_dir, int64_t min_pixels, int64_t max_pixels, dv_qwen_prep_config *out);

// smart_resize: h x w -> multiples of factor = patch * merge with min_pixels <= rh * rw <= max_pixels,
// aspect kept as closely as possible (HF's rounding). Aspect > 200 or a side below 1 -> DV_EINVAL.
int dv_qwen_smart_resize(int h, int w, int factor, int64_t min_pixels, int64_t max_pixels, int *rh, int *rw);
// The frame size of a w x h video (smart_resize, with the per-frame cap of cap_pixels_per_frame for
// n_frames sampled frames; Qwen3: HF's video smart_resize, whose pixel bounds hold for the volume
// round(n_frames / tp) * tp * rh * rw). A frame smaller than one patch -> DV_EINVAL naming the size.
int dv_qwen_frame_size(const dv_qwen_prep_config *c, int w, int h, int n_frames, int *rw, int *rh);

// Qwen2VLVideoProcessor.sample_frames with fps: n = total / video_fps * fps clamped to [min_frames,
// max_frames], to total, floored to a multiple of temporal_patch; indices int(k * total / n).
// Qwen3VLVideoProcessor: n = int(total / video_fps * fps) clamped the same way but not floored;
// indices round(linspace(0, total - 1, n)) (half to even); patchify repeats the last frame. Writes
// up to cap indices to idx (may be NULL) and the count to *n. A video with fewer frames than one
// temporal patch -> DV_EINVAL ("too short for the temporal patch").
int dv_qwen_sample_frames(const dv_qwen_prep_config *c, int64_t total_frames, double video_fps, int32_t *idx,
                          int cap, int *n);

// Patchify: chw (n, 3, H, W) normalised frames -> out (grid_t * gh * gw, 3 * tp * P * P) with grid_t =
// ceil(n / tp) (the last frame repeated to fill), gh = H / P, gw = W / P; rows in merge-block order
// (t, bh, bw, my, mx), each row (channel, frame-in-patch, py, px): the processor's layout.
void dv_qwen_patchify(const dv_qwen_prep_config *c, const float *chw, int n, int H, int W, float *out);

// The M-RoPE positions of one video's merged tokens (HF Qwen2.5-VL get_rope_index): pos (3 rows,
// `stride` apart) for grid_t x (gh / merge) x (gw / merge) tokens starting at text position `start`:
// t = start + (int64)(k * time_interval) (time_interval = tokens_per_second x seconds per temporal
// patch), h = start + row, w = start + column. Returns the position text after the video resumes at:
// start + max(gh, gw) / merge (HF's rule, even when t ran past it).
int dv_qwen_video_positions(int start, int grid_t, int gh, int gw, int merge, double time_interval, int32_t *pos,
                            int64_t stride);
// The same for temporal patches t0 .. t0 + nt - 1 of that video only (a streamed batch of frames):
// pos (3 rows, `stride` apart) for nt x (gh / merge) x (gw / merge) tokens. Returns what the whole does.
int dv_qwen_video_positions_part(int start, int t0, int nt, int gh, int gw, int merge, double time_interval,
                                 int32_t *pos, int64_t stride);

// Qwen3VLProcessor._calculate_timestamps: the time of each temporal patch of the n sampled frames idx
// (the last index repeated to a multiple of temporal_patch): the mean of its first and last frames'
// idx / video_fps seconds. Writes ceil(n / temporal_patch) values to sec.
void dv_qwen_frame_timestamps(const dv_qwen_prep_config *c, const int32_t *idx, int n, double video_fps, double *sec);
// The text HF puts before each frame: "<%.1f seconds>" (Python's format: the double correctly rounded).
void dv_qwen_timestamp_text(double sec, char *buf, size_t size);

// Qwen3-VL get_rope_index for one video laid out frame by frame: frame k (of grid_t) is n_before[k]
// text tokens (its timestamp's tokens and <|vision_start|>), then its (gh / merge) x (gw / merge)
// tokens at t = p, h = p + row, w = p + column, then n_after text tokens (<|vision_end|>); text
// tokens take one position each (all three rows equal), a frame advances p by max(gh, gw) / merge.
// pos: 3 rows `stride` apart, starting at text position `start`; returns the position after.
int dv_qwen3_video_positions(int start, int grid_t, int gh, int gw, int merge, const int *n_before, int n_after,
                             int32_t *pos, int64_t stride);

typedef struct dv_qwen_vit dv_qwen_vit;

// Opens the vision tower of a Qwen2.5-VL, Qwen3-VL or Qwen3.5 folder (config.json model_type and
// vision_config, the safetensors under "visual." or "model.visual."). be: the backend to run on (not
// owned); NULL: an own CPU backend.
int dv_qwen_vit_open(const char *model_dir, dv_backend *be, int n_threads, dv_qwen_vit **out);
void dv_qwen_vit_free(dv_qwen_vit *v);
int dv_qwen_vit_out_dim(const dv_qwen_vit *v);          // out_hidden_size (the LLM's hidden size)
int dv_qwen_vit_merge(const dv_qwen_vit *v);            // spatial_merge_size
double dv_qwen_vit_tokens_per_second(const dv_qwen_vit *v); // Qwen2.5-VL's (0 for Qwen3 towers: timestamps instead)
int dv_qwen_vit_n_deepstack(const dv_qwen_vit *v);           // len(deepstack_visual_indexes) (0: none)
int dv_qwen_vit_is_qwen3(const dv_qwen_vit *v);              // a Qwen3-VL / Qwen3.5 tower
const char *dv_qwen_vit_describe(const dv_qwen_vit *v);

// patches (grid_t * gh * gw, 3 * tp * P * P) host F32, as dv_qwen_patchify writes them -> out
// (grid_t * gh * gw / merge^2, out_dim) host F32: the merged tokens in the processor's order
// (frame-major, each frame's (gh / m, gw / m) grid row-major). gh, gw not multiples of merge -> DV_EINVAL.
int dv_qwen_vit_encode(dv_qwen_vit *v, const float *patches, int grid_t, int gh, int gw, float *out);
// The same, and deep (n_deepstack, grid_t * gh * gw / merge^2, out_dim) host F32: the DeepStack
// features (deep may be NULL; nothing is written when the tower has none).
int dv_qwen_vit_encode_deepstack(dv_qwen_vit *v, const float *patches, int grid_t, int gh, int gw, float *out,
                                 float *deep);

#ifdef __cplusplus
}
#endif
#endif
