// test_video_util.h: helpers shared by the tests/test_video_*.c programs (header-only because each
// test is one .c file): make test videos with the ffmpeg CLI in a temp folder, read back the frame
// index every generated frame spells in its pixels, and compute expected frame choices with integer
// arithmetic (independent of the plan code under test).
//
// Pattern: the frame is a 4x4 grid of blocks; block b (row-major) is white when bit b of the frame
// number N is set, black otherwise (16 bits: up to 65535 frames). It is drawn by ffmpeg's geq filter.
#ifndef DV_TEST_VIDEO_UTIL_H
#define DV_TEST_VIDEO_UTIL_H

#include "tests/dv_test.h"
#include "core/dv_error.h"
#include "video/dv_video.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VT_PATTERN "geq=lum='if(mod(floor(N/pow(2,floor(Y*4/H)*4+floor(X*4/W))),2),235,16)':cb=128:cr=128"

static char vt_dir[256];

// Creates the temp folder; returns 0, or -1 when ffmpeg is missing (the caller skips).
__attribute__((unused)) static int vt_setup(void) {
    if (system("ffmpeg -hide_banner -version >/dev/null 2>&1") != 0) return -1;
    snprintf(vt_dir, sizeof vt_dir, "/tmp/dv_video_test.XXXXXX");
    if (!mkdtemp(vt_dir)) return -1;
    return 0;
}

__attribute__((unused)) static void vt_cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", vt_dir);
    if (vt_dir[0] && system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", vt_dir);
}

// "<tmpdir>/<name>" in a rotating static buffer (4 live at once).
__attribute__((unused)) static const char *vt_path(const char *name) {
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", vt_dir, name);
    return buf[i];
}

// Runs `ffmpeg -y -loglevel error <args>` in the temp folder; returns its exit status.
__attribute__((unused)) static int vt_ffmpeg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((unused)) static int vt_ffmpeg(const char *fmt, ...) {
    char args[2048], cmd[2600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && ffmpeg -nostdin -hide_banner -loglevel error -y %s", vt_dir, args);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "ffmpeg failed (%d): %s\n", rc, cmd);
    return rc;
}

// Mean luma-ish value (R+G+B)/3 over the central half of the block whose source-frame centre is at
// fractions (fx, fy), mapped through the clockwise `rotation` the sampler applied.
__attribute__((unused)) static double vt_block_mean(const dv_frame *f, double fx, double fy, int rotation, double half_w, double half_h) {
    double ox, oy; // fractions in the output frame
    if (rotation == 90) { ox = 1.0 - fy; oy = fx; }
    else if (rotation == 180) { ox = 1.0 - fx; oy = 1.0 - fy; }
    else if (rotation == 270) { ox = fy; oy = 1.0 - fx; }
    else { ox = fx; oy = fy; }
    if (rotation == 90 || rotation == 270) {
        double t = half_w;
        half_w = half_h;
        half_h = t;
    }
    int x0 = (int)((ox - half_w) * f->w + 0.5), x1 = (int)((ox + half_w) * f->w + 0.5);
    int y0 = (int)((oy - half_h) * f->h + 0.5), y1 = (int)((oy + half_h) * f->h + 0.5);
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1;
    double acc = 0;
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++, n++) {
            const uint8_t *p = f->rgb + ((size_t)y * f->w + x) * 3;
            acc += (p[0] + p[1] + p[2]) / 3.0;
        }
    return acc / n;
}

// The frame number the pattern spells; -1 when a block is neither clearly black nor clearly white.
__attribute__((unused)) static int64_t vt_read_index_rot(const dv_frame *f, int rotation) {
    int64_t idx = 0;
    for (int b = 0; b < 16; b++) {
        double fx = ((b % 4) + 0.5) / 4.0, fy = ((b / 4) + 0.5) / 4.0;
        double m = vt_block_mean(f, fx, fy, rotation, 1.0 / 16, 1.0 / 16);
        if (m > 170) idx |= (int64_t)1 << b;
        else if (m > 80) return -1;
    }
    return idx;
}
__attribute__((unused)) static int64_t vt_read_index(const dv_frame *f) { return vt_read_index_rot(f, 0); }

// Expected frame choices for a CFR stream of `rate` fps with `n_total` frames (frame i at i / rate s):
// the frame shown at time t is floor(t * rate), clamped to the last frame; consecutive repeats
// dropped. Times are rationals so nothing here shares rounding with the code under test.
// fps plan: t_k = s_ms / 1000 + k * fq / fp  for k with t_k < e_ms / 1000.
__attribute__((unused)) static int vt_expect_fps(int64_t rate, int64_t n_total, int64_t s_ms, int64_t e_ms, int64_t fp, int64_t fq,
                         int64_t *out, int cap) {
    int n = 0;
    int64_t last = -1;
    for (int64_t k = 0;; k++) {
        // t_k in ms * fp: s_ms * fp + k * fq * 1000
        int64_t num = s_ms * fp + k * fq * 1000; // t_k = num / (1000 fp)
        if (num >= e_ms * fp) break;
        int64_t idx = num * rate / (1000 * fp);
        if (idx > n_total - 1) idx = n_total - 1;
        if (idx != last && n < cap) out[n++] = idx;
        last = idx;
    }
    return n;
}
// Uniform plan: t_k = s + (k + 0.5) * (e - s) / N.
__attribute__((unused)) static int vt_expect_uniform(int64_t rate, int64_t n_total, int64_t s_ms, int64_t e_ms, int64_t N, int64_t *out,
                             int cap) {
    int n = 0;
    int64_t last = -1;
    for (int64_t k = 0; k < N; k++) {
        // t_k (ms) = (2 N s + (2k + 1)(e - s)) / (2N)
        int64_t num = 2 * N * s_ms + (2 * k + 1) * (e_ms - s_ms);
        int64_t idx = num * rate / (2000 * N);
        if (idx > n_total - 1) idx = n_total - 1;
        if (idx != last && n < cap) out[n++] = idx;
        last = idx;
    }
    return n;
}

// Samples `path` with `plan` at out_w x out_h and checks, for every frame: the pixels spell the
// expected index, src_index equals it (exactly, when exact_index), t_sec == index / rate (CFR, when
// rate > 0). Returns the number of frames seen (-1 on an API error). Prints a one-line summary.
__attribute__((unused)) static int vt_check_frames(const char *label, const char *path, const dv_sample_plan *plan, int out_w, int out_h,
                           const int64_t *expect, int n_expect, int64_t rate, int exact_index,
                           dv_video_sampler_stats *stats_out) {
    dv_video *v = NULL;
    dv_video_sampler *s = NULL;
    int rc = dv_video_open(path, NULL, &v);
    DV_CHECK_MSG(rc == 0, "%s: open: %s", label, dv_error_message());
    if (rc) return -1;
    rc = dv_video_sampler_init(v, plan, out_w, out_h, &s);
    DV_CHECK_MSG(rc == 0, "%s: sampler: %s", label, dv_error_message());
    if (rc) {
        dv_video_free(v);
        return -1;
    }
    int n = 0, bad = 0;
    double max_dt = 0;
    dv_frame f;
    int r;
    while ((r = dv_video_sampler_next(s, &f)) == 1) {
        int64_t px = vt_read_index(&f);
        int64_t want = n < n_expect ? expect[n] : -2;
        int ok = px == want && (!exact_index || (f.src_index == want && f.index_exact));
        if (rate > 0) {
            double dt = fabs(f.t_sec - (double)want / (double)rate);
            if (dt > max_dt) max_dt = dt;
            ok = ok && dt < 1e-9;
        }
        if (!ok && bad++ < 5)
            fprintf(stderr, "  %s: frame %d: pixels say %lld, src_index %lld (exact %d), t %.6f; expected %lld\n", label,
                    n, (long long)px, (long long)f.src_index, f.index_exact, f.t_sec, (long long)want);
        DV_CHECK(f.w == (out_w ? out_w : f.w) && f.h == (out_h ? out_h : f.h));
        n++;
    }
    DV_CHECK_MSG(r == 0, "%s: next: %s", label, dv_error_message());
    DV_CHECK_MSG(bad == 0, "%s: %d frames differ", label, bad);
    DV_CHECK_MSG(n == n_expect, "%s: %d frames, expected %d", label, n, n_expect);
    dv_video_sampler_stats st;
    dv_video_sampler_get_stats(s, &st);
    if (stats_out) *stats_out = st;
    printf("%-44s frames %3d/%3d  wrong %d  max |dt| %.1e s  decoded %lld  seeks %lld\n", label, n, n_expect, bad,
           max_dt, (long long)st.frames_decoded, (long long)st.seeks);
    dv_video_sampler_free(s);
    dv_video_free(v);
    return n;
}

#endif
