// sample_plan.c: resolves a sampling plan (fps / N uniform / range / cap) against a duration; pure.
#include "video/dv_sample_plan.h"

#include "core/dv_error.h"

#include <math.h>

// Two times closer than this are the same instant: keeps "t < end" stable when (end - start) * fps
// lands a rounding error away from an integer (0.3 * 10 = 2.9999999999999996).
#define DV_PLAN_EPS 1e-9

dv_sample_plan dv_sample_plan_default(void) {
    return (dv_sample_plan){.fps = 1.0, .n_frames = 0, .start_sec = 0.0, .end_sec = -1.0, .max_frames = 0,
                            .mode = DV_SAMPLE_MODE_AUTO};
}

double dv_plan_times_at(const dv_plan_times *pt, int64_t k) {
    DV_ASSERT(k >= 0 && (pt->count < 0 || k < pt->count));
    if (pt->frame_step > 0) // a thousandth of a frame in, clear of rounding
        return pt->start_sec + (nearbyint((double)k * pt->frame_step) + 1e-3) / pt->frame_fps;
    if (pt->uniform) return pt->start_sec + ((double)k + 0.5) * (pt->end_sec - pt->start_sec) / (double)pt->count;
    // k / fps rather than k * (1 / fps): exact for integer fps, so t_k lands on frame times.
    return pt->start_sec + (double)k / pt->fps;
}

// Number of k >= 0 with start + k / fps < end (up to DV_PLAN_EPS), for a finite range.
static int64_t fps_count(double start, double end, double fps) {
    double x = (end - start) * fps;
    if (x > 9e15) return INT64_MAX; // absurd (fps 1e12 over an hour): callers cap or reject it
    int64_t n = (int64_t)ceil(x);
    while (n > 0 && start + (double)(n - 1) / fps >= end - DV_PLAN_EPS) n--;
    while (start + (double)n / fps < end - DV_PLAN_EPS) n++;
    return n;
}

int dv_sample_plan_resolve(const dv_sample_plan *plan, double duration_sec, dv_plan_times *out) {
    DV_ASSERT(plan && out);
    if (plan->n_frames < 0) return dv_error_set(DV_EINVAL, "sample plan: frames must be > 0 (got %lld)", (long long)plan->n_frames);
    if (plan->max_frames < 0)
        return dv_error_set(DV_EINVAL, "sample plan: max_frames must be > 0 (got %lld)", (long long)plan->max_frames);
    if (plan->n_frames == 0 && !(isfinite(plan->fps) && plan->fps > 0))
        return dv_error_set(DV_EINVAL, "sample plan: fps must be a positive number (got %g)", plan->fps);
    if (!isfinite(plan->start_sec) || plan->start_sec < 0)
        return dv_error_set(DV_EINVAL, "sample plan: start must be >= 0 s (got %g)", plan->start_sec);
    if (isnan(plan->end_sec)) return dv_error_set(DV_EINVAL, "sample plan: end is not a number");
    int has_end = plan->end_sec >= 0;
    if (has_end && plan->end_sec <= plan->start_sec)
        return dv_error_set(DV_EINVAL, "sample plan: start (%g s) must be before end (%g s)", plan->start_sec, plan->end_sec);
    int known = isfinite(duration_sec) && duration_sec >= 0;
    if (known && plan->start_sec >= duration_sec - DV_PLAN_EPS)
        return dv_error_set(DV_EINVAL, "sample plan: start %g s is at or past the end of the video (%.3f s)",
                            plan->start_sec, duration_sec);
    double end = has_end ? plan->end_sec : -1.0;
    if (known && (!has_end || end > duration_sec)) end = duration_sec;

    *out = (dv_plan_times){.start_sec = plan->start_sec, .end_sec = end};
    if (plan->n_frames > 0 && plan->frame_step > 0) { // frame indices: known without the duration
        if (!(isfinite(plan->frame_fps) && plan->frame_fps > 0))
            return dv_error_set(DV_EINVAL, "sample plan: frame indices need the stream's frame rate (got %g)", plan->frame_fps);
        out->count = plan->n_frames;
        out->frame_step = plan->frame_step, out->frame_fps = plan->frame_fps;
        return DV_OK;
    }
    if (plan->n_frames > 0) {
        if (end < 0) return dv_error_set(DV_EINVAL, "sample plan: uniform frames need the duration, which this video does not state; give an end time");
        out->uniform = 1;
        out->count = plan->max_frames > 0 && plan->max_frames < plan->n_frames ? plan->max_frames : plan->n_frames;
        return DV_OK;
    }
    out->fps = plan->fps;
    if (end < 0) {
        // Unknown length: sample until the stream ends (or max_frames targets).
        out->count = plan->max_frames > 0 ? plan->max_frames : -1;
        return DV_OK;
    }
    out->count = fps_count(plan->start_sec, end, plan->fps);
    if (plan->max_frames > 0 && out->count > plan->max_frames) {
        // Too many: the same number of frames the cap allows, spread over the whole range instead of
        // the first max_frames seconds.
        out->uniform = 1;
        out->fps = 0;
        out->count = plan->max_frames;
    } else if (out->count == INT64_MAX) {
        return dv_error_set(DV_EINVAL, "sample plan: fps %g gives too many frames; lower it or set max_frames", plan->fps);
    }
    return DV_OK;
}
