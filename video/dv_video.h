// dv_video.h: any file FFmpeg can read -> a stream of sampled RGB24 frames with exact timestamps.
//
//   dv_video *v;
//   if (dv_video_open("clip.mp4", NULL, &v)) { puts(dv_error_message()); ... }
//   const dv_video_info *info = dv_video_get_info(v);
//   dv_sample_plan plan = dv_sample_plan_default();  // 1 frame per second
//   plan.n_frames = 32;                               // ... or 32 uniform frames
//   dv_video_sampler *s;
//   dv_video_sampler_init(v, &plan, 224, 224, &s);    // 0, 0: the display size
//   dv_frame f;
//   for (int r; (r = dv_video_sampler_next(s, &f)) == 1;) use(f.rgb, f.w, f.h, f.t_sec, f.src_index);
//   dv_video_sampler_free(s);
//   dv_video_free(v);
//
// Nothing holds the whole video: the sampler keeps at most two decoded frames plus one RGB buffer,
// so memory does not grow with the length. Sparse plans (32 frames from an hour) seek to the keyframe
// before each target and decode forward; dense plans decode sequentially. Decoding uses FFmpeg's
// frame + slice threads; colour conversion and scaling use libswscale; the container's rotation
// (display matrix) and pixel aspect ratio are applied, so frames look as a player shows them.
//
// Time: t_sec = (pts - first_pts) * time_base, exact to the stream's time base, 0 at the first frame.
// A planned time t selects the frame shown at t: the last frame with pts <= t (the first frame when
// t precedes it). Frames come out in time order, each once: a target that selects a frame already
// returned (two targets in one timestamp gap, or more targets than the source rate gives) takes the
// next frame instead, the nearest one not returned yet, while one starts before the end of the
// range. When the range holds no more frames than the plan has targets (counted from the packets
// at init, reading at most count + 1 of them), the sampler returns every frame of the range in turn
// instead, so clustered frames are not skipped. So N uniform targets give N distinct frames whenever
// the range has N, fps above the source rate yields every source frame of the range once, and a
// one-frame file yields one frame. When the plan asked for more frames than it got,
// stats.frames_missing says how many, and one warning line (DV_LOG_WARN) names the file and the
// counts (unless the corrupt-data warning came first, one warning per sampler, or no frame came).
//
// Corrupt packets are skipped with one warning (DV_LOG_WARN) per sampler; decoding goes on.
#ifndef DV_VIDEO_H
#define DV_VIDEO_H

#include "video/dv_sample_plan.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_video dv_video;
typedef struct dv_video_sampler dv_video_sampler;

typedef struct dv_video_open_params {
    int n_threads;       // decoder threads (frame + slice); 0: one per core, at most 16 (default 0)
    int max_dimension;   // reject a stream wider or taller than this (default 16384)
    int64_t max_pixels;  // reject a stream with more pixels per frame than this (default 8192 * 8192)
} dv_video_open_params;

dv_video_open_params dv_video_open_params_default(void);

typedef struct dv_video_info {
    char codec[32];              // decoder name: "h264", "vp9", "mpeg4", "mjpeg", ...
    char container[64];          // demuxer name: "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ...
    char pix_fmt[32];            // decoded pixel format: "yuv420p", ...
    int width, height;           // coded frame size in pixels
    int display_width;           // size frames have after the pixel aspect ratio and rotation are
    int display_height;          //   applied: what dv_video_sampler_init(.., 0, 0, ..) returns
    int sar_num, sar_den;        // sample (pixel) aspect ratio; 1:1 when the file says nothing
    int rotation;                // clockwise degrees to display: 0, 90, 180 or 270 (display matrix)
    int fps_num, fps_den;        // average frame rate; 0/1 when unknown
    double fps;                  // fps_num / fps_den (0 when unknown)
    int vfr;                     // 1: timestamps are not on a constant-rate grid (see src_index)
    double duration_sec;         // stream length in seconds; -1 when the file does not say
    int64_t n_frames;            // frames in the stream when the container says; -1 when unknown
    int tb_num, tb_den;          // the stream's time base (pts unit = tb_num / tb_den seconds)
    int64_t first_pts;           // pts of the first frame (t_sec = 0), in time-base units
    int64_t bit_rate;            // bits per second of the stream (or the file); 0 when unknown
} dv_video_info;

// Opens `path` and its best video stream and readies the decoder (nothing is decoded yet).
// `params` may be NULL (defaults). Errors: missing file DV_ENOTFOUND; not a media file, no video
// stream, zero/absurd dimensions DV_EFORMAT; no decoder for the codec DV_EUNSUPPORTED.
int dv_video_open(const char *path, const dv_video_open_params *params, dv_video **out);
const dv_video_info *dv_video_get_info(const dv_video *v);
// Accepts NULL. Free every sampler of `v` first.
void dv_video_free(dv_video *v);

typedef struct dv_frame {
    uint8_t *rgb;       // (h, w, 3) RGB24, rows packed (stride 3 * w); owned by the sampler, reused:
                        // valid until the next dv_video_sampler_next / _free
    int w, h;
    double t_sec;       // presentation time: (pts - first_pts) * time base, seconds
    int64_t pts;        // the frame's pts in stream time-base units
    // Index of this frame in presentation order (0 = first frame). For constant-frame-rate streams it
    // is round(t_sec * fps) (robust to skipped corrupt frames); for variable-rate streams it is the
    // count of frames decoded since the first packet, which needs sequential decoding. When neither is
    // available (a VFR stream reached by seeking) it is the estimate round(t_sec * average fps) and
    // index_exact is 0.
    int64_t src_index;
    int index_exact;
    int64_t target;     // index k of the plan target that selected this frame
} dv_frame;

// Counters for tests and benchmarks.
typedef struct dv_video_sampler_stats {
    int64_t frames_decoded;  // frames the decoder produced
    int64_t frames_returned; // frames dv_video_sampler_next returned
    int64_t seeks;           // demuxer seeks (the initial positioning included)
    int64_t bad_packets;     // packets or frames the decoder rejected (skipped)
    int64_t frames_missing;  // set when the plan ended: targets left without a distinct frame of their
                             // own (the range has fewer frames than asked); 0 when none or not ended
} dv_video_sampler_stats;

// Resolves `plan` (dv_sample_plan_resolve) against the stream and prepares output frames of
// out_w x out_h pixels: both 0 -> the display size; one 0 -> that side follows the display aspect.
// One sampler per video at a time (they share the decoder). Errors: bad plan or size DV_EINVAL.
int dv_video_sampler_init(dv_video *v, const dv_sample_plan *plan, int out_w, int out_h,
                          dv_video_sampler **out);
// The resolved plan (count = upper bound on the frames returned; -1 when unbounded).
const dv_plan_times *dv_video_sampler_plan(const dv_video_sampler *s);
// 1: *frame filled; 0: no more frames; < 0: error (DV_EIO read failure, DV_ENOMEM, ...) with message.
int dv_video_sampler_next(dv_video_sampler *s, dv_frame *frame);
void dv_video_sampler_get_stats(const dv_video_sampler *s, dv_video_sampler_stats *stats);
// Accepts NULL.
void dv_video_sampler_free(dv_video_sampler *s);

#ifdef __cplusplus
}
#endif
#endif
