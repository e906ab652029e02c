// test_video_formats.c: H.264/MP4 (B-frames), VP9/WebM, MPEG-4/AVI and MJPEG/MOV files made at test
// time: stream info, and exactly which frames each sampling plan returns (pixels spell the frame
// number), with their timestamps, in AUTO, SEEK and SEQUENTIAL modes (which must agree).
#include "tests/test_video_util.h"

#include "core/dv_error.h"

#define RATE 10
#define NFRAMES 100 // 10 s at 10 fps

typedef struct fmt_case {
    const char *name, *file, *codec_args, *codec;
    int has_nb_frames;
} fmt_case;

static void check_info(const fmt_case *c, const char *path) {
    dv_video *v = NULL;
    int rc = dv_video_open(path, NULL, &v);
    DV_CHECK_MSG(rc == 0, "%s: %s", c->name, dv_error_message());
    if (rc) return;
    const dv_video_info *in = dv_video_get_info(v);
    printf("%-6s info: codec %s, %dx%d, display %dx%d, fps %d/%d, duration %.4f s, frames %lld, tb %d/%d, vfr %d\n",
           c->name, in->codec, in->width, in->height, in->display_width, in->display_height, in->fps_num, in->fps_den,
           in->duration_sec, (long long)in->n_frames, in->tb_num, in->tb_den, in->vfr);
    DV_CHECK(!strcmp(in->codec, c->codec));
    DV_CHECK(in->width == 64 && in->height == 48 && in->display_width == 64 && in->display_height == 48);
    DV_CHECK(in->fps_num == RATE * in->fps_den);
    DV_CHECK(in->vfr == 0 && in->rotation == 0);
    DV_CHECK_MSG(fabs(in->duration_sec - 10.0) <= 0.1 + 1e-9, "%s duration %f", c->name, in->duration_sec);
    if (c->has_nb_frames) DV_CHECK_MSG(in->n_frames == NFRAMES, "%s n_frames %lld", c->name, (long long)in->n_frames);
    dv_video_free(v);
}

static void check_plans(const fmt_case *c, const char *path) {
    int64_t exp[256];
    char label[96];
    static const dv_sample_mode modes[3] = {DV_SAMPLE_MODE_AUTO, DV_SAMPLE_MODE_SEEK, DV_SAMPLE_MODE_SEQUENTIAL};
    static const char *mode_names[3] = {"auto", "seek", "seq"};
    for (int m = 0; m < 3; m++) {
        dv_sample_plan p = dv_sample_plan_default(); // 1 fps over the whole file
        p.mode = modes[m];
        int n = vt_expect_fps(RATE, NFRAMES, 0, 10000, 1, 1, exp, 256);
        snprintf(label, sizeof label, "%s fps=1 %s", c->name, mode_names[m]);
        vt_check_frames(label, path, &p, 0, 0, exp, n, RATE, 1, NULL);

        p = dv_sample_plan_default(); // 3 fps over [1.5, 7.2): times between frames
        p.fps = 3;
        p.start_sec = 1.5;
        p.end_sec = 7.2;
        p.mode = modes[m];
        n = vt_expect_fps(RATE, NFRAMES, 1500, 7200, 3, 1, exp, 256);
        snprintf(label, sizeof label, "%s fps=3 [1.5,7.2) %s", c->name, mode_names[m]);
        vt_check_frames(label, path, &p, 0, 0, exp, n, RATE, 1, NULL);

        p = dv_sample_plan_default(); // 7 uniform frames over [0.35, 9.5)
        p.n_frames = 7;
        p.start_sec = 0.35;
        p.end_sec = 9.5;
        p.mode = modes[m];
        n = vt_expect_uniform(RATE, NFRAMES, 350, 9500, 7, exp, 256);
        snprintf(label, sizeof label, "%s frames=7 [0.35,9.5) %s", c->name, mode_names[m]);
        vt_check_frames(label, path, &p, 0, 0, exp, n, RATE, 1, NULL);
    }
    // Above the source rate: every frame of [2, 3.05) once.
    dv_sample_plan p = dv_sample_plan_default();
    p.fps = 25;
    p.start_sec = 2;
    p.end_sec = 3.05;
    int n = vt_expect_fps(RATE, NFRAMES, 2000, 3050, 25, 1, exp, 256);
    DV_CHECK(n == 11);
    snprintf(label, sizeof label, "%s fps=25 [2,3.05)", c->name);
    vt_check_frames(label, path, &p, 0, 0, exp, n, RATE, 1, NULL);
    // Fractional rate, scaled output (the pattern survives a 2x reduction), capped.
    p = dv_sample_plan_default();
    p.fps = 0.4;
    n = vt_expect_fps(RATE, NFRAMES, 0, 10000, 2, 5, exp, 256);
    snprintf(label, sizeof label, "%s fps=0.4 out 32x24", c->name);
    vt_check_frames(label, path, &p, 32, 24, exp, n, RATE, 1, NULL);
    // fps=2 would give 20 frames; max_frames 6 turns it into 6 uniform frames over the whole file.
    p = dv_sample_plan_default();
    p.fps = 2;
    p.max_frames = 6;
    n = vt_expect_uniform(RATE, NFRAMES, 0, 10000, 6, exp, 256);
    snprintf(label, sizeof label, "%s fps=2 max_frames=6", c->name);
    if (c->has_nb_frames) vt_check_frames(label, path, &p, 0, 0, exp, n, RATE, 1, NULL);
}

int main(void) {
    if (vt_setup()) DV_TEST_SKIP("ffmpeg CLI not found (needed to make test videos)");
    const fmt_case cases[] = {
        {"h264", "h264.mp4", "-c:v libx264 -preset veryfast -bf 2 -g 30 -pix_fmt yuv420p", "h264", 1},
        {"vp9", "vp9.webm", "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 30 -pix_fmt yuv420p", "vp9", 0},
        {"mpeg4", "mpeg4.avi", "-c:v mpeg4 -q:v 3 -g 30", "mpeg4", 1},
        {"mjpeg", "mjpeg.mov", "-c:v mjpeg -q:v 3 -pix_fmt yuvj420p", "mjpeg", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fmt_case *c = &cases[i];
        const char *path = vt_path(c->file);
        if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=%d:d=10,format=yuv420p,%s\" %s %s", RATE, VT_PATTERN,
                      c->codec_args, c->file)) {
            DV_CHECK_MSG(0, "could not make %s", c->file);
            continue;
        }
        check_info(c, path);
        check_plans(c, path);
    }
    vt_cleanup();
    return dv_test_finish();
}
