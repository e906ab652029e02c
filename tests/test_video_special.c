// test_video_special.c: a variable-frame-rate file, rotation metadata (checked against ffmpeg's own
// autorotated decode), non-square pixels, odd dimensions and a one-frame file.
#include "tests/test_video_util.h"

#include "core/dv_error.h"

// VFR: frame n is shown at 100 n ms for n < 20, then at 2000 + 250 (n - 20) ms (50 frames).
static int64_t vfr_ms(int64_t n) { return n < 20 ? 100 * n : 2000 + 250 * (n - 20); }

static void test_vfr(void) {
    const char *path = vt_path("vfr.mp4");
    if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=10:d=5,format=yuv420p,%s,settb=1/1000,"
                  "setpts='if(lt(N,20),N*100,2000+(N-20)*250)'\" -fps_mode passthrough -c:v libx264 -preset veryfast "
                  "-bf 2 -g 12 vfr.mp4", VT_PATTERN)) {
        DV_CHECK_MSG(0, "could not make vfr.mp4");
        return;
    }
    dv_video *v = NULL;
    DV_CHECK(dv_video_open(path, NULL, &v) == 0);
    if (!v) return;
    DV_CHECK(dv_video_get_info(v)->vfr == 1);
    dv_video_free(v);
    // 4 fps over [0, 8): the frame shown at k * 250 ms is the last n with vfr_ms(n) <= 250 k.
    static const dv_sample_mode modes[3] = {DV_SAMPLE_MODE_SEQUENTIAL, DV_SAMPLE_MODE_AUTO, DV_SAMPLE_MODE_SEEK};
    for (int m = 0; m < 3; m++) {
        dv_sample_plan p = dv_sample_plan_default();
        p.fps = 4;
        p.end_sec = 8;
        p.mode = modes[m];
        int64_t exp[64];
        int n_exp = 0;
        for (int64_t k = 0; k < 32; k++) {
            int64_t best = 0;
            for (int64_t n = 0; n < 50; n++)
                if (vfr_ms(n) <= 250 * k) best = n;
            if (!n_exp || exp[n_exp - 1] != best) exp[n_exp++] = best;
        }
        dv_video_open(path, NULL, &v);
        dv_video_sampler *s = NULL;
        DV_CHECK(v && dv_video_sampler_init(v, &p, 0, 0, &s) == 0);
        if (!s) {
            dv_video_free(v);
            return;
        }
        dv_frame f;
        int n = 0, bad = 0, r;
        while ((r = dv_video_sampler_next(s, &f)) == 1) {
            int64_t want = n < n_exp ? exp[n] : -1;
            int64_t px = vt_read_index(&f);
            // Time exact to the millisecond grid; the index is exact when decoding sequentially.
            int ok = px == want && fabs(f.t_sec - vfr_ms(want) / 1000.0) < 1e-9;
            if (modes[m] == DV_SAMPLE_MODE_SEQUENTIAL) ok = ok && f.src_index == want && f.index_exact;
            if (modes[m] == DV_SAMPLE_MODE_SEEK) ok = ok && (!f.index_exact || f.src_index == want);
            if (!ok && bad++ < 5)
                fprintf(stderr, "  vfr mode %d frame %d: pixels %lld src_index %lld exact %d t %.4f; want %lld\n", m, n,
                        (long long)px, (long long)f.src_index, f.index_exact, f.t_sec, (long long)want);
            n++;
        }
        DV_CHECK(r == 0);
        DV_CHECK_MSG(bad == 0 && n == n_exp, "vfr mode %d: %d frames (%d expected), %d wrong", m, n, n_exp, bad);
        printf("vfr fps=4 mode %d: %d/%d frames, %d wrong\n", m, n, n_exp, bad);
        dv_video_sampler_free(s);
        dv_video_free(v);
    }
}

// Our frame at 0.5 s (pattern 5 = blocks 0 and 2: not symmetric under rotation) against ffmpeg's
// autorotated decode of the same frame, as gray.
static void test_rotation(const char *tag, int degrees_tag, int want_rotation) {
    char name[64], cmp[64];
    snprintf(name, sizeof name, "rot%s.mp4", tag);
    snprintf(cmp, sizeof cmp, "rot%s.gray", tag);
    if (vt_ffmpeg("-i h264src.mp4 -c copy -metadata:s:v:0 rotate=%d %s", degrees_tag, name) ||
        vt_ffmpeg("-i %s -vf select='eq(n\\,5)' -frames:v 1 -f rawvideo -pix_fmt gray %s", name, cmp)) {
        DV_CHECK_MSG(0, "could not make %s", name);
        return;
    }
    dv_video *v = NULL;
    DV_CHECK(dv_video_open(vt_path(name), NULL, &v) == 0);
    if (!v) return;
    const dv_video_info *in = dv_video_get_info(v);
    int swap = want_rotation % 180 != 0;
    DV_CHECK_MSG(in->rotation == want_rotation, "%s: rotation %d, want %d", name, in->rotation, want_rotation);
    DV_CHECK(in->display_width == (swap ? 48 : 64) && in->display_height == (swap ? 64 : 48));
    dv_sample_plan p = dv_sample_plan_default();
    p.start_sec = 0.5;
    p.end_sec = 0.55;
    dv_video_sampler *s = NULL;
    dv_frame f;
    DV_CHECK(dv_video_sampler_init(v, &p, 0, 0, &s) == 0 && dv_video_sampler_next(s, &f) == 1);
    if (s && f.rgb) {
        DV_CHECK(f.w == in->display_width && f.h == in->display_height);
        DV_CHECK(vt_read_index_rot(&f, in->rotation) == 5);
        FILE *fp = fopen(vt_path(cmp), "rb");
        uint8_t ref[64 * 48];
        size_t got = fp ? fread(ref, 1, sizeof ref, fp) : 0;
        if (fp) fclose(fp);
        DV_CHECK(got == sizeof ref);
        double maxdiff = 0;
        for (int i = 0; i < f.w * f.h && got == sizeof ref; i++) {
            // BT.601 luma of our RGB vs ffmpeg's limited-range gray: map ours to the same range.
            const uint8_t *q = f.rgb + 3 * i;
            double y = 16 + (0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2]) * 219.0 / 255.0;
            double d = fabs(y - ref[i]);
            if (d > maxdiff) maxdiff = d;
        }
        // Blocks are 16 vs 235: a wrong orientation differs by ~200 somewhere; codec/scaler rounding
        // at block edges stays well below 60.
        printf("rotation %s (tag %d): rotation %d, %dx%d, maxdiff vs ffmpeg autorotate = %.1f\n", tag, degrees_tag,
               in->rotation, f.w, f.h, maxdiff);
        DV_CHECK(maxdiff < 60);
    }
    dv_video_sampler_free(s);
    dv_video_free(v);
}

static void test_sar_and_odd(void) {
    // Pixels twice as wide as tall: displayed 128x48.
    if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=10:d=2,format=yuv420p,%s,setsar=2\" -c:v libx264 "
                  "-preset veryfast sar.mp4", VT_PATTERN) == 0) {
        dv_video *v = NULL;
        DV_CHECK(dv_video_open(vt_path("sar.mp4"), NULL, &v) == 0);
        if (v) {
            const dv_video_info *in = dv_video_get_info(v);
            DV_CHECK(in->sar_num == 2 && in->sar_den == 1 && in->display_width == 128 && in->display_height == 48);
            dv_video_free(v);
        }
        int64_t exp[8];
        int n = vt_expect_fps(10, 20, 0, 2000, 1, 1, exp, 8);
        dv_sample_plan p = dv_sample_plan_default();
        vt_check_frames("sar 2:1 -> 128x48", vt_path("sar.mp4"), &p, 0, 0, exp, n, 10, 1, NULL);
    } else {
        DV_CHECK_MSG(0, "could not make sar.mp4");
    }
    // Odd sizes (VP9 allows them in 4:2:0), also resampled to another odd size.
    if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=10:d=3,format=yuv444p,crop=63:47:0:0,%s\" -c:v libvpx-vp9 -pix_fmt yuv420p -deadline "
                  "realtime -cpu-used 8 odd.webm", VT_PATTERN) == 0) {
        dv_video *v = NULL;
        DV_CHECK(dv_video_open(vt_path("odd.webm"), NULL, &v) == 0);
        if (v) {
            DV_CHECK(dv_video_get_info(v)->display_width == 63 && dv_video_get_info(v)->display_height == 47);
            dv_video_free(v);
        }
        int64_t exp[32];
        dv_sample_plan p = dv_sample_plan_default();
        p.fps = 5;
        int n = vt_expect_fps(10, 30, 0, 3000, 5, 1, exp, 32);
        vt_check_frames("odd 63x47", vt_path("odd.webm"), &p, 0, 0, exp, n, 10, 1, NULL);
        vt_check_frames("odd 63x47 -> 37x29", vt_path("odd.webm"), &p, 37, 29, exp, n, 10, 1, NULL);
        vt_check_frames("odd 63x47 -> w 31 (aspect)", vt_path("odd.webm"), &p, 31, 0, exp, n, 10, 1, NULL);
    } else {
        DV_CHECK_MSG(0, "could not make odd.webm");
    }
}

static void test_one_frame(void) {
    if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=10:d=1,format=yuv420p,%s\" -frames:v 1 -c:v libx264 "
                  "one.mp4", VT_PATTERN)) {
        DV_CHECK_MSG(0, "could not make one.mp4");
        return;
    }
    int64_t exp[1] = {0};
    dv_sample_plan p = dv_sample_plan_default();
    vt_check_frames("one frame fps=1", vt_path("one.mp4"), &p, 0, 0, exp, 1, 10, 1, NULL);
    p.n_frames = 8; // 8 uniform targets all select the only frame: returned once
    vt_check_frames("one frame frames=8", vt_path("one.mp4"), &p, 0, 0, exp, 1, 10, 1, NULL);
    p = dv_sample_plan_default();
    p.fps = 30;
    p.mode = DV_SAMPLE_MODE_SEEK;
    vt_check_frames("one frame fps=30 seek", vt_path("one.mp4"), &p, 0, 0, exp, 1, 10, 1, NULL);
}

int main(void) {
    if (vt_setup()) DV_TEST_SKIP("ffmpeg CLI not found (needed to make test videos)");
    test_vfr();
    if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=10:d=1,format=yuv420p,%s\" -c:v libx264 -preset veryfast "
                  "h264src.mp4", VT_PATTERN) == 0) {
        test_rotation("90", 90, 270);  // ffmpeg 5.x reads a rotate=90 tag as a 90-degree CCW matrix
        test_rotation("180", 180, 180);
        test_rotation("270", 270, 90);
    } else {
        DV_CHECK_MSG(0, "could not make h264src.mp4");
    }
    test_sar_and_odd();
    test_one_frame();
    vt_cleanup();
    return dv_test_finish();
}
