// test_video_long.c: a 1-hour file (64x48, 2 fps, 1-minute GOP) made at test time: sparse plans must
// seek (decode far fewer frames than the file holds) and still return exactly the right frames with
// exact timestamps; the same plan decoded sequentially must agree; a dense window late in the file.
#include "tests/test_video_util.h"

#define RATE 2
#define SECONDS 3600
#define NFRAMES (RATE * SECONDS)

int main(void) {
    if (vt_setup()) DV_TEST_SKIP("ffmpeg CLI not found (needed to make test videos)");
    const char *path = vt_path("long.mp4");
    if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=%d:d=%d,format=yuv420p,%s\" -c:v libx264 -preset ultrafast "
                  "-g 120 long.mp4", RATE, SECONDS, VT_PATTERN)) {
        DV_CHECK_MSG(0, "could not make long.mp4");
        vt_cleanup();
        return dv_test_finish();
    }
    dv_video *v = NULL;
    DV_CHECK(dv_video_open(path, NULL, &v) == 0);
    if (v) {
        const dv_video_info *in = dv_video_get_info(v);
        printf("long: %dx%d, %.3f s, %lld frames\n", in->width, in->height, in->duration_sec, (long long)in->n_frames);
        DV_CHECK(fabs(in->duration_sec - SECONDS) < 1e-6 && in->n_frames == NFRAMES);
        dv_video_free(v);
    }
    int64_t exp[512];
    dv_video_sampler_stats st;

    // 32 uniform frames: every target is 225 frames after the previous one, 2 GOPs apart.
    dv_sample_plan p = dv_sample_plan_default();
    p.n_frames = 32;
    int n = vt_expect_uniform(RATE, NFRAMES, 0, SECONDS * 1000, 32, exp, 512);
    vt_check_frames("1 h, 32 uniform, auto", path, &p, 0, 0, exp, n, RATE, 1, &st);
    DV_CHECK_MSG(st.frames_decoded < NFRAMES / 2 && st.seeks >= 16, "sparse plan decoded %lld frames with %lld seeks",
                 (long long)st.frames_decoded, (long long)st.seeks);
    p.mode = DV_SAMPLE_MODE_SEQUENTIAL;
    vt_check_frames("1 h, 32 uniform, sequential", path, &p, 0, 0, exp, n, RATE, 1, &st);
    DV_CHECK(st.seeks == 0 && st.frames_decoded >= NFRAMES - 300);

    // One frame a minute, 16x12 output.
    p = dv_sample_plan_default();
    p.fps = 1.0 / 60;
    n = vt_expect_fps(RATE, NFRAMES, 0, SECONDS * 1000, 1, 60, exp, 512);
    DV_CHECK(n == 60);
    vt_check_frames("1 h, fps=1/60, 16x12", path, &p, 16, 12, exp, n, RATE, 1, NULL);

    // A dense window near the end: [3000, 3030) at 2 fps = every frame 6000..6059.
    p = dv_sample_plan_default();
    p.fps = 2;
    p.start_sec = 3000;
    p.end_sec = 3030;
    n = vt_expect_fps(RATE, NFRAMES, 3000000, 3030000, 2, 1, exp, 512);
    vt_check_frames("1 h, [3000,3030) fps=2", path, &p, 0, 0, exp, n, RATE, 1, &st);
    DV_CHECK(st.frames_decoded < 300);

    // The last seconds: targets past the last frame select it once.
    p = dv_sample_plan_default();
    p.fps = 4;
    p.start_sec = 3598.6;
    n = vt_expect_fps(RATE, NFRAMES, 3598600, 3600000, 4, 1, exp, 512);
    vt_check_frames("1 h, tail fps=4", path, &p, 0, 0, exp, n, RATE, 1, NULL);
    vt_cleanup();
    return dv_test_finish();
}
