// test_video_plan.c: dv_sample_plan_resolve / dv_plan_times_at against a brute-force rational
// reference, over a grid of fps (p/q), ranges and durations; caps, clamping and every error case.
#include "core/dv_error.h"
#include "tests/dv_test.h"
#include "video/dv_sample_plan.h"

#include <math.h>
#include <string.h>

static double maxerr;

// Reference fps plan over [s_ms, e_ms) with fps = p/q: t_k = s + k q / p, kept while t_k < e.
static int64_t ref_fps_count(int64_t s_ms, int64_t e_ms, int64_t p, int64_t q) {
    int64_t n = 0;
    while (s_ms * p + n * q * 1000 < e_ms * p) n++;
    return n;
}

static void check_fps_grid(void) {
    static const int64_t starts[] = {0, 100, 1500, 3333, 7001};
    static const int64_t ends[] = {-1, 2000, 3334, 7002, 9999, 10000, 12000};
    static const int64_t durs[] = {10000, 9999, 3600000};
    int bad = 0, cases = 0;
    for (int64_t p = 1; p <= 12; p++)
        for (int64_t q = 1; q <= 7; q++)
            for (size_t si = 0; si < sizeof starts / sizeof starts[0]; si++)
                for (size_t ei = 0; ei < sizeof ends / sizeof ends[0]; ei++)
                    for (size_t di = 0; di < sizeof durs / sizeof durs[0]; di++) {
                        int64_t s = starts[si], e = ends[ei], d = durs[di];
                        dv_sample_plan plan = dv_sample_plan_default();
                        plan.fps = (double)p / (double)q;
                        plan.start_sec = s / 1000.0;
                        plan.end_sec = e < 0 ? -1 : e / 1000.0;
                        dv_plan_times pt;
                        int rc = dv_sample_plan_resolve(&plan, d / 1000.0, &pt);
                        int64_t eff_end = e < 0 || e > d ? d : e;
                        cases++;
                        if (s >= eff_end) { // start past the end (or at/after an explicit end)
                            if (rc != DV_EINVAL && bad++ < 5) fprintf(stderr, "  expected an error: s %lld e %lld d %lld\n", (long long)s, (long long)e, (long long)d);
                            continue;
                        }
                        int64_t want = ref_fps_count(s, eff_end, p, q);
                        if (rc || pt.count != want || pt.uniform) {
                            if (bad++ < 5)
                                fprintf(stderr, "  fps %lld/%lld [%lld, %lld) dur %lld: count %lld want %lld (rc %d)\n",
                                        (long long)p, (long long)q, (long long)s, (long long)e, (long long)d,
                                        (long long)pt.count, (long long)want, rc);
                            continue;
                        }
                        for (int64_t k = 0; k < pt.count; k += 1 + pt.count / 50) {
                            double ref = (double)(s * p + k * q * 1000) / (double)(1000 * p);
                            double err = fabs(dv_plan_times_at(&pt, k) - ref);
                            if (err > maxerr) maxerr = err;
                        }
                    }
    printf("fps grid: %d cases, %d wrong, maxdiff of t_k vs rational reference = %.3e s\n", cases, bad, maxerr);
    DV_CHECK(bad == 0);
    DV_CHECK(maxerr < 1e-9);
}

static void check_uniform(void) {
    double err = 0;
    int bad = 0;
    for (int64_t n = 1; n <= 64; n++)
        for (int64_t s = 0; s <= 4000; s += 1000)
            for (int64_t e = 5000; e <= 11000; e += 3000) {
                dv_sample_plan plan = dv_sample_plan_default();
                plan.n_frames = n;
                plan.start_sec = s / 1000.0;
                plan.end_sec = e / 1000.0;
                dv_plan_times pt;
                int rc = dv_sample_plan_resolve(&plan, 10.0, &pt);
                int64_t eff_end = e > 10000 ? 10000 : e;
                if (rc || !pt.uniform || pt.count != n || fabs(pt.end_sec - eff_end / 1000.0) > 1e-12) {
                    bad++;
                    continue;
                }
                for (int64_t k = 0; k < n; k++) {
                    double ref = (double)(2 * n * s + (2 * k + 1) * (eff_end - s)) / (double)(2000 * n);
                    double d = fabs(dv_plan_times_at(&pt, k) - ref);
                    if (d > err) err = d;
                    // Strictly inside the range, increasing.
                    if (!(dv_plan_times_at(&pt, k) > s / 1000.0 && dv_plan_times_at(&pt, k) < eff_end / 1000.0)) bad++;
                }
            }
    printf("uniform grid: %d wrong, maxdiff vs rational reference = %.3e s\n", bad, err);
    DV_CHECK(bad == 0 && err < 1e-9);
}

static void check_caps_and_errors(void) {
    dv_plan_times pt;
    dv_sample_plan p = dv_sample_plan_default();
    DV_CHECK(p.fps == 1 && p.n_frames == 0 && p.start_sec == 0 && p.end_sec < 0 && p.max_frames == 0 &&
             p.mode == DV_SAMPLE_MODE_AUTO);
    // 1 fps over an hour = 3600 > 32: becomes 32 uniform frames over the whole hour.
    p.max_frames = 32;
    DV_CHECK(dv_sample_plan_resolve(&p, 3600, &pt) == 0 && pt.uniform && pt.count == 32);
    DV_CHECK(fabs(dv_plan_times_at(&pt, 0) - 3600.0 / 64) < 1e-9 && fabs(dv_plan_times_at(&pt, 31) - 3600.0 * 63 / 64) < 1e-9);
    // Within the cap: unchanged.
    DV_CHECK(dv_sample_plan_resolve(&p, 30, &pt) == 0 && !pt.uniform && pt.count == 30);
    DV_CHECK(dv_sample_plan_resolve(&p, 32, &pt) == 0 && !pt.uniform && pt.count == 32);
    DV_CHECK(dv_sample_plan_resolve(&p, 32.5, &pt) == 0 && pt.uniform && pt.count == 32);
    // The cap applies to uniform plans too.
    p = dv_sample_plan_default();
    p.n_frames = 100;
    p.max_frames = 10;
    DV_CHECK(dv_sample_plan_resolve(&p, 60, &pt) == 0 && pt.count == 10);
    // Unknown duration: fps runs until the stream ends (or the cap); uniform needs an end.
    p = dv_sample_plan_default();
    DV_CHECK(dv_sample_plan_resolve(&p, -1, &pt) == 0 && pt.count == -1 && dv_plan_times_at(&pt, 1000000) == 1e6);
    p.max_frames = 7;
    DV_CHECK(dv_sample_plan_resolve(&p, -1, &pt) == 0 && pt.count == 7 && !pt.uniform);
    p = dv_sample_plan_default();
    p.n_frames = 4;
    DV_CHECK(dv_sample_plan_resolve(&p, -1, &pt) == DV_EINVAL && strstr(dv_error_message(), "duration"));
    p.end_sec = 8;
    DV_CHECK(dv_sample_plan_resolve(&p, -1, &pt) == 0 && pt.count == 4 && dv_plan_times_at(&pt, 0) == 1.0);
    // Boundaries: t exactly at end is excluded, one tick before is kept.
    p = dv_sample_plan_default();
    p.fps = 10;
    p.start_sec = 0.7;
    p.end_sec = 1.0;
    DV_CHECK(dv_sample_plan_resolve(&p, 5, &pt) == 0 && pt.count == 3);
    p.end_sec = 1.0001;
    DV_CHECK(dv_sample_plan_resolve(&p, 5, &pt) == 0 && pt.count == 4);
    // Errors, each with a one-line message naming the problem.
    struct {
        double fps, start, end;
        int64_t n, cap;
        double dur;
        const char *needle;
    } errs[] = {
        {0, 0, -1, 0, 0, 10, "fps"},          {-2, 0, -1, 0, 0, 10, "fps"},        {NAN, 0, -1, 0, 0, 10, "fps"},
        {INFINITY, 0, -1, 0, 0, 10, "fps"},   {1, -1, -1, 0, 0, 10, "start"},      {1, NAN, -1, 0, 0, 10, "start"},
        {1, 5, 5, 0, 0, 10, "before end"},    {1, 6, 5, 0, 0, 10, "before end"},   {1, 10, -1, 0, 0, 10, "past the end"},
        {1, 11, 12, 0, 0, 10, "past the end"}, {1, 0, -1, -1, 0, 10, "frames"},    {1, 0, -1, 0, -1, 10, "max_frames"},
        {1e300, 0, -1, 0, 0, 3600, "too many"}, {1, 0, NAN, 0, 0, 10, "end"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        p = dv_sample_plan_default();
        p.fps = errs[i].fps;
        p.start_sec = errs[i].start;
        p.end_sec = errs[i].end;
        p.n_frames = errs[i].n;
        p.max_frames = errs[i].cap;
        int rc = dv_sample_plan_resolve(&p, errs[i].dur, &pt);
        DV_CHECK_MSG(rc == DV_EINVAL && strstr(dv_error_message(), errs[i].needle) && !strchr(dv_error_message(), '\n'),
                     "error case %zu: rc %d, '%s'", i, rc, dv_error_message());
    }
    // n_frames set: fps is ignored even when invalid.
    p = dv_sample_plan_default();
    p.fps = 0;
    p.n_frames = 3;
    DV_CHECK(dv_sample_plan_resolve(&p, 9, &pt) == 0 && pt.count == 3 && dv_plan_times_at(&pt, 1) == 4.5);
}

int main(void) {
    check_fps_grid();
    check_uniform();
    check_caps_and_errors();
    return dv_test_finish();
}
