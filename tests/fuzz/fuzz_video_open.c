// fuzz_video_open.c: libFuzzer target: arbitrary bytes as a video file -> dv_video_open, then two
// short sampling passes (a few uniform frames auto, a few fps frames seeking) at a small output size.
// Any crash, sanitizer report, leak or hang (libFuzzer -timeout) is a bug. Run by tests/fuzz/run.sh.
#include "core/dv_log.h"
#include "video/dv_video.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static int fuzz_fd = -1;
static char fuzz_path[64];

static void sample(dv_video *v, dv_sample_plan plan) {
    dv_video_sampler *s = NULL;
    if (dv_video_sampler_init(v, &plan, 32, 0, &s)) return;
    dv_frame f;
    for (int i = 0; i < 6 && dv_video_sampler_next(s, &f) == 1; i++) {
        // Touch the pixels so a short buffer would be caught by ASan.
        volatile uint8_t sink = f.rgb[(size_t)f.w * f.h * 3 - 1];
        (void)sink;
    }
    dv_video_sampler_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_fd < 0) {
        // One in-memory file, rewritten per input; FFmpeg opens it by path like any user file.
        fuzz_fd = memfd_create("dv_fuzz_video", 0);
        if (fuzz_fd < 0) return 0;
        snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d", fuzz_fd);
        dv_log_set_level(DV_LOG_LEVEL_QUIET);
    }
    if (ftruncate(fuzz_fd, 0) != 0 || (size && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size)) return 0;
    dv_video_open_params p = dv_video_open_params_default();
    p.n_threads = 1;                // deterministic, and libFuzzer's timeout sees the work
    p.max_dimension = 4096;         // bounded memory per input
    p.max_pixels = 2048 * 2048;
    dv_video *v = NULL;
    if (dv_video_open(fuzz_path, &p, &v)) return 0;
    dv_sample_plan plan = dv_sample_plan_default();
    plan.max_frames = 4;
    sample(v, plan);
    plan = dv_sample_plan_default();
    plan.fps = 7;
    plan.max_frames = 5;
    plan.mode = DV_SAMPLE_MODE_SEEK;
    sample(v, plan);
    dv_video_free(v);
    return 0;
}
