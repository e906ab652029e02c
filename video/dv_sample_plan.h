// dv_sample_plan.h: which instants of a video to sample, as a pure function of the stream's duration.
//
// A plan is combinable: `fps` (default 1 frame per second of video) or `n_frames` (N instants spread
// uniformly), restricted to [start_sec, end_sec), capped by `max_frames` (an fps plan that would give
// more falls back to max_frames uniform instants). The resolved plan is lazy: target k is computed on
// demand (dv_plan_times_at), so an hour sampled at 30 fps needs no list.
//
//   fps plan:      t_k = start + k / fps            k = 0 .. count-1, t_k < end
//   uniform plan:  t_k = start + (k + 0.5) * (end - start) / N   (the middle of N equal slices)
//
// Times are seconds from the stream's first frame. Which frame a time selects (the frame shown at that
// time) is the sampler's business (dv_video.h), not the plan's.
#ifndef DV_SAMPLE_PLAN_H
#define DV_SAMPLE_PLAN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// How the sampler reaches each target: AUTO seeks to the keyframe before a target when that skips
// frames (sparse plans) and decodes sequentially otherwise (dense plans); SEEK always seeks (unless
// the target is already decoded); SEQUENTIAL never seeks and decodes from the first packet.
typedef enum dv_sample_mode {
    DV_SAMPLE_MODE_AUTO = 0,
    DV_SAMPLE_MODE_SEEK,
    DV_SAMPLE_MODE_SEQUENTIAL,
} dv_sample_mode;

typedef struct dv_sample_plan {
    double fps;          // samples per second of video time (> 0); used when n_frames == 0; default 1
    int64_t n_frames;    // > 0: this many uniform samples over [start, end) instead of fps; default 0
    double start_sec;    // >= 0; default 0
    double end_sec;      // < 0: the end of the video (default -1); clamped to the duration
    int64_t max_frames;  // > 0: cap on the number of samples (see above); 0 = no cap (default)
    dv_sample_mode mode; // default DV_SAMPLE_MODE_AUTO
    // > 0 (with n_frames, and frame_fps the stream's rate): target k is frame nearbyint(k * frame_step)
    // after start instead of a uniform instant (np.linspace(...).round(), the Qwen3-VL processor's
    // frames: not evenly spaced, ties to even); default 0
    double frame_step, frame_fps;
} dv_sample_plan;

// fps = 1, everything else off.
dv_sample_plan dv_sample_plan_default(void);

// A resolved plan: count targets, t_k computed by dv_plan_times_at.
typedef struct dv_plan_times {
    double start_sec, end_sec; // the range actually sampled (end clamped to the duration)
    double fps;                // fps plans: samples per second; 0 for uniform plans
    int64_t count;             // number of targets; -1: unbounded (fps plan, duration unknown, no end)
    int uniform;               // 1: t_k = start + (k + 0.5) * (end - start) / count
    double frame_step, frame_fps; // frame_step > 0: t_k just after the start of frame nearbyint(k * frame_step)
} dv_plan_times;

// Resolves `plan` against a stream of `duration_sec` (< 0 when unknown). Errors (DV_EINVAL, one
// line): fps <= 0 or not finite, n_frames < 0, max_frames < 0, start < 0, end <= start, start at or
// past the end of the video, a uniform plan on a stream of unknown duration without end_sec.
int dv_sample_plan_resolve(const dv_sample_plan *plan, double duration_sec, dv_plan_times *out);
// Target k (0 <= k < count, or any k >= 0 when count < 0), seconds from the first frame.
double dv_plan_times_at(const dv_plan_times *pt, int64_t k);

#ifdef __cplusplus
}
#endif
#endif
