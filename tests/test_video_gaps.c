// test_video_gaps.c: sampling across a timestamp gap. A WMV2/ASF file (the kind the report came
// from) and an H.264/MP4 file with B-frames, both 30 frames at 10 fps whose timestamps jump 1.1 s
// after frame 14 (frame n at 100 n ms, plus 1100 ms from n = 15). Asking for 8 uniform frames puts
// two targets in the gap: both must not fall on frame 14 — the second takes frame 15, and all 8
// come out distinct, in time order, each at its frame's own time, in every sampling mode. Asking for
// more frames than the file has returns every frame once and reports the shortfall
// (stats.frames_missing), also when the frames are clustered (ten in the first second, two at 10 s):
// targets sparser than the cluster would skip its frames, yet the file has fewer than asked.
#include "tests/test_video_util.h"

#include "core/dv_error.h"

#define NF 30
static int64_t gap_ms(int64_t n) { return 100 * n + (n >= 15 ? 1100 : 0); }

// The frame shown at t_ms: the last n with gap_ms(n) <= t (0 before the first).
static int64_t shown_at(double t_ms) {
    int64_t best = 0;
    for (int64_t n = 0; n < NF; n++)
        if ((double)gap_ms(n) <= t_ms + 1e-6) best = n;
    return best;
}

typedef struct run_result {
    int n;
    int64_t idx[64];  // frame numbers the pixels spell
    double t[64];
    dv_video_sampler_stats st;
    int ok;           // every frame's time is its frame's own time
} run_result;

static int sample(const char *path, int64_t n_frames, dv_sample_mode mode, run_result *res) {
    memset(res, 0, sizeof *res);
    res->ok = 1;
    dv_video *v = NULL;
    dv_video_sampler *s = NULL;
    dv_sample_plan p = dv_sample_plan_default();
    p.n_frames = n_frames;
    p.mode = mode;
    int rc = dv_video_open(path, NULL, &v);
    if (!rc) rc = dv_video_sampler_init(v, &p, 0, 0, &s);
    DV_CHECK_MSG(rc == 0, "%s: %s", path, dv_error_message());
    if (rc) {
        dv_video_free(v);
        return -1;
    }
    dv_frame f;
    int r;
    while ((r = dv_video_sampler_next(s, &f)) == 1 && res->n < 64) {
        int64_t px = vt_read_index(&f);
        res->idx[res->n] = px;
        res->t[res->n] = f.t_sec;
        if (px < 0 || px >= NF || fabs(f.t_sec - gap_ms(px) / 1000.0) > 1e-6) res->ok = 0;
        res->n++;
    }
    DV_CHECK_MSG(r == 0, "%s: %s", path, dv_error_message());
    dv_video_sampler_get_stats(s, &res->st);
    dv_video_sampler_free(s);
    dv_video_free(v);
    return 0;
}

static void check_file(const char *label, const char *path) {
    dv_video *v = NULL;
    DV_CHECK(dv_video_open(path, NULL, &v) == 0);
    if (!v) return;
    double dur = dv_video_get_info(v)->duration_sec;
    dv_video_free(v);
    printf("%s: duration %.3f s\n", label, dur);
    // 8 uniform targets over the file: two land in the 1.1 s gap after frame 14 (1.4 s).
    int in_gap = 0;
    for (int k = 0; k < 8; k++) {
        double t = (k + 0.5) * dur * 1000.0 / 8;
        if (shown_at(t) == 14) in_gap++;
    }
    DV_CHECK_MSG(in_gap >= 2, "%s: the test file does not put two targets on frame 14 (%d)", label, in_gap);

    static const dv_sample_mode modes[3] = {DV_SAMPLE_MODE_AUTO, DV_SAMPLE_MODE_SEEK, DV_SAMPLE_MODE_SEQUENTIAL};
    static const char *names[3] = {"auto", "seek", "sequential"};
    for (int m = 0; m < 3; m++) {
        run_result r;
        if (sample(path, 8, modes[m], &r)) continue;
        int ordered = 1, has14 = 0, has15 = 0;
        for (int i = 0; i < r.n; i++) {
            if (i && !(r.idx[i] > r.idx[i - 1] && r.t[i] > r.t[i - 1])) ordered = 0;
            has14 |= r.idx[i] == 14;
            has15 |= r.idx[i] == 15;
        }
        printf("%s %-10s 8 asked: %d frames:", label, names[m], r.n);
        for (int i = 0; i < r.n; i++) printf(" %lld", (long long)r.idx[i]);
        printf("  (missing %lld)\n", (long long)r.st.frames_missing);
        DV_CHECK_MSG(r.n == 8, "%s %s: %d frames, 8 asked", label, names[m], r.n);
        DV_CHECK_MSG(ordered, "%s %s: frames not distinct and in time order", label, names[m]);
        DV_CHECK_MSG(r.ok, "%s %s: a frame's time is not its own", label, names[m]);
        DV_CHECK_MSG(has14 && has15, "%s %s: the gap targets should give frames 14 and 15", label, names[m]);
        DV_CHECK(r.st.frames_missing == 0);

        // More than the file has: all 30 frames, once each, in order; 10 reported missing.
        if (sample(path, 40, modes[m], &r)) continue;
        int all = r.n == NF;
        for (int i = 0; all && i < NF; i++) all = r.idx[i] == i;
        printf("%s %-10s 40 asked: %d frames, missing %lld\n", label, names[m], r.n, (long long)r.st.frames_missing);
        DV_CHECK_MSG(all && r.ok, "%s %s: 40 asked: %d frames, expected all %d in order", label, names[m], r.n, NF);
        DV_CHECK_MSG(r.st.frames_missing == 40 - NF, "%s %s: frames_missing %lld", label, names[m],
                     (long long)r.st.frames_missing);
    }
}

// Frames 0..9 at 100 n ms, frames 10 and 11 at 10.0 and 10.1 s; 16 asked -> all 12.
static void check_cluster(void) {
    if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=10:d=1.2,format=yuv420p," VT_PATTERN
                  ",settb=1/1000,setpts='N*100+if(gte(N,10),9000,0)'\" -fps_mode passthrough -c:v wmv2 -q:v 2 "
                  "-f asf cluster.wmv")) {
        DV_CHECK_MSG(0, "could not make cluster.wmv");
        return;
    }
    static const dv_sample_mode modes[3] = {DV_SAMPLE_MODE_AUTO, DV_SAMPLE_MODE_SEEK, DV_SAMPLE_MODE_SEQUENTIAL};
    for (int m = 0; m < 3; m++) {
        run_result r;
        if (sample(vt_path("cluster.wmv"), 16, modes[m], &r)) continue;
        int all = r.n == 12;
        for (int i = 0; all && i < 12; i++) {
            int64_t want_ms = i < 10 ? 100 * i : 10000 + 100 * (i - 10);
            all = r.idx[i] == i && fabs(r.t[i] - want_ms / 1000.0) < 1e-6;
        }
        printf("cluster mode %d: 16 asked: %d frames, missing %lld\n", m, r.n, (long long)r.st.frames_missing);
        DV_CHECK_MSG(all, "cluster mode %d: %d frames, expected all 12 in order", m, r.n);
        DV_CHECK(r.st.frames_missing == 4);
    }
}

int main(void) {
    if (vt_setup()) DV_TEST_SKIP("ffmpeg CLI not found (needed to make test videos)");
    const char *src = "-f lavfi -i \"color=c=black:s=64x48:r=10:d=3,format=yuv420p," VT_PATTERN
                      ",settb=1/1000,setpts='N*100+if(gte(N,15),1100,0)'\" -fps_mode passthrough";
    if (vt_ffmpeg("%s -c:v wmv2 -q:v 2 -f asf gap.wmv", src) == 0) check_file("wmv2/asf", vt_path("gap.wmv"));
    else DV_CHECK_MSG(0, "could not make gap.wmv");
    if (vt_ffmpeg("%s -c:v libx264 -preset veryfast -bf 2 -g 8 gap.mp4", src) == 0) check_file("h264/mp4", vt_path("gap.mp4"));
    else DV_CHECK_MSG(0, "could not make gap.mp4");
    check_cluster();
    vt_cleanup();
    return dv_test_finish();
}
