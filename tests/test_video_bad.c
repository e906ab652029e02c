// test_video_bad.c: broken inputs give one clear error (code + one line naming the file) or decode
// what can be decoded, never crash or hang: missing file, directory, text named .mp4, zero bytes,
// truncated files, audio only, corrupt packets mid-file, absurd dimensions; API misuse.
#include "tests/test_video_util.h"

#include "core/dv_error.h"

#include <sys/stat.h>

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    DV_CHECK(f && fwrite(data, 1, n, f) == n);
    if (f) fclose(f);
}

static long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

// Copies the first `keep` bytes of src to dst.
static void truncate_copy(const char *src, const char *dst, long keep) {
    FILE *in = fopen(src, "rb");
    char *buf = malloc((size_t)keep);
    size_t got = in && buf ? fread(buf, 1, (size_t)keep, in) : 0;
    DV_CHECK(got == (size_t)keep);
    write_file(dst, buf, got);
    free(buf);
    if (in) fclose(in);
}

// Opening must fail with `code` and a single-line message that names the file and matches `needle`.
static void expect_open_error(const char *label, const char *path, int code, const char *needle) {
    dv_video *v = NULL;
    dv_error_clear();
    int rc = dv_video_open(path, NULL, &v);
    const char *m = dv_error_message();
    printf("%-22s -> %d: %s\n", label, rc, m);
    DV_CHECK_MSG(rc == code, "%s: got %d (%s), want %d", label, rc, m, code);
    DV_CHECK_MSG(strstr(m, path) && strstr(m, needle) && !strchr(m, '\n'), "%s: message '%s'", label, m);
    DV_CHECK(v == NULL);
    dv_video_free(v);
}

// Samples every frame (fps = 10 on a 10 fps file) and returns the count; checks that each returned
// frame whose pattern is readable shows the frame its src_index names.
static int sample_all(const char *label, const char *path, int64_t *last_index, int64_t *bad_packets, int *mismatch) {
    dv_video *v = NULL;
    dv_video_sampler *s = NULL;
    int n = 0;
    *mismatch = 0;
    *last_index = -1;
    dv_sample_plan p = dv_sample_plan_default();
    p.fps = 10;
    int rc = dv_video_open(path, NULL, &v);
    DV_CHECK_MSG(rc == 0, "%s: %s", label, dv_error_message());
    if (rc || dv_video_sampler_init(v, &p, 0, 0, &s)) {
        dv_video_free(v);
        return -1;
    }
    dv_frame f;
    int r;
    while ((r = dv_video_sampler_next(s, &f)) == 1) {
        int64_t px = vt_read_index(&f);
        // Readable but different: concealment shows an older picture. Count those outside the
        // damaged stretch (frames 10..69; the garbage sits at 40-60% of the bytes), where nothing may differ.
        if (px >= 0 && px != f.src_index) {
            if (getenv("VT_VERBOSE")) fprintf(stderr, "  %s: index %lld shows %lld\n", label, (long long)f.src_index, (long long)px);
            if (f.src_index < 10 || f.src_index >= 70) (*mismatch)++;
        }
        *last_index = f.src_index;
        n++;
    }
    DV_CHECK_MSG(r == 0, "%s: next returned %d (%s)", label, r, dv_error_message());
    dv_video_sampler_stats st;
    dv_video_sampler_get_stats(s, &st);
    *bad_packets = st.bad_packets;
    dv_video_sampler_free(s);
    dv_video_free(v);
    return n;
}

static void test_bad_files(void) {
    expect_open_error("missing file", vt_path("nope.mp4"), DV_ENOTFOUND, "No such file");
    expect_open_error("directory", vt_dir, DV_EINVAL, "directory");
    const char *txt = vt_path("notes.mp4");
    const char text[] = "this is a text file, not a video\nsecond line\n";
    write_file(txt, text, sizeof text - 1);
    expect_open_error("text named .mp4", txt, DV_EFORMAT, "not a video file");
    const char *empty = vt_path("empty.mp4");
    write_file(empty, "", 0);
    expect_open_error("zero bytes", empty, DV_EFORMAT, "empty");
    if (vt_ffmpeg("-f lavfi -i sine=frequency=440:duration=1 -c:a aac audio.m4a") == 0)
        expect_open_error("audio only", vt_path("audio.m4a"), DV_EFORMAT, "no video stream");
    else
        DV_CHECK_MSG(0, "could not make audio.m4a");
    // Y4M headers are plain text: claim absurd sizes.
    const char *huge = vt_path("huge.y4m");
    const char y4m[] = "YUV4MPEG2 W100000 H100000 F10:1 Ip A1:1 C420jpeg\nFRAME\n0123456789";
    write_file(huge, y4m, sizeof y4m - 1);
    dv_video *v = NULL;
    int rc = dv_video_open(huge, NULL, &v);
    printf("%-22s -> %d: %s\n", "absurd 100000x100000", rc, dv_error_message());
    DV_CHECK(rc == DV_EFORMAT && v == NULL && strstr(dv_error_message(), huge));
    const char *big = vt_path("big.y4m");
    const char y4m2[] = "YUV4MPEG2 W20000 H200 F10:1 Ip A1:1 C420jpeg\nFRAME\n0123456789";
    write_file(big, y4m2, sizeof y4m2 - 1);
    expect_open_error("absurd 20000x200", big, DV_EFORMAT, "absurd frame size 20000x200");
}

static void test_damaged(void) {
    // 100 frames of 160x120, 10 fps, moov at the front so a truncated copy still opens.
    if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=160x120:r=10:d=10,format=yuv420p,%s\" -c:v libx264 -preset veryfast "
                  "-g 10 -movflags +faststart good.mp4", VT_PATTERN) ||
        vt_ffmpeg("-f lavfi -i \"color=c=black:s=160x120:r=10:d=10,format=yuv420p,%s\" -c:v libx264 -preset veryfast "
                  "-g 10 tail.mp4", VT_PATTERN)) {
        DV_CHECK_MSG(0, "could not make damaged-file sources");
        return;
    }
    long size = file_size(vt_path("good.mp4"));
    int64_t last, bad;
    int mismatch;
    // Truncated with the index at the end: nothing to go on.
    truncate_copy(vt_path("tail.mp4"), vt_path("trunc_tail.mp4"), file_size(vt_path("tail.mp4")) / 2);
    expect_open_error("truncated (moov last)", vt_path("trunc_tail.mp4"), DV_EFORMAT, "trunc_tail.mp4");
    // Truncated with the index first: the frames that are there, then a clean end.
    truncate_copy(vt_path("good.mp4"), vt_path("trunc.mp4"), size * 6 / 10);
    int n = sample_all("truncated (faststart)", vt_path("trunc.mp4"), &last, &bad, &mismatch);
    printf("truncated to 60%%: %d frames, last index %lld, mismatches %d, bad packets %lld\n", n, (long long)last,
           mismatch, (long long)bad);
    DV_CHECK(n >= 40 && n < 100 && mismatch == 0);
    // Garbage over three stretches in the middle of the frame data.
    FILE *f = fopen(vt_path("good.mp4"), "rb");
    char *buf = malloc((size_t)size);
    DV_CHECK(f && buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
    if (f) fclose(f);
    uint64_t seed = 12345;
    for (int k = 4; k <= 6; k++)
        for (long i = size * k / 10; i < size * k / 10 + 300 && i < size; i++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            buf[i] = (char)(seed >> 24);
        }
    write_file(vt_path("corrupt.mp4"), buf, (size_t)size);
    free(buf);
    n = sample_all("corrupt middle", vt_path("corrupt.mp4"), &last, &bad, &mismatch);
    printf("corrupt middle: %d frames, last index %lld, wrong outside the damage %d, bad packets %lld\n", n, (long long)last,
           mismatch, (long long)bad);
    // Decoding goes on past the damage to the last frame; damaged frames may be missing or concealed,
    // but every frame outside the damaged stretch is the one its src_index names.
    DV_CHECK(n >= 70 && last == 99 && mismatch == 0 && bad > 0);
}

static void test_api_misuse(void) {
    if (vt_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=10:d=3,format=yuv420p,%s\" -c:v libx264 -preset veryfast "
                  "small.mp4", VT_PATTERN))
        return;
    dv_video *v = NULL;
    DV_CHECK(dv_video_open(vt_path("small.mp4"), NULL, &v) == 0);
    if (!v) return;
    dv_sample_plan p = dv_sample_plan_default();
    dv_video_sampler *a = NULL, *b = NULL;
    DV_CHECK(dv_video_sampler_init(v, &p, 0, 0, &a) == 0);
    DV_CHECK(dv_video_sampler_init(v, &p, 0, 0, &b) == DV_EINVAL && b == NULL);
    dv_frame f;
    DV_CHECK(dv_video_sampler_next(a, &f) == 1 && dv_video_sampler_next(a, &f) == 1 && f.src_index == 10);
    dv_video_sampler_free(a);
    // A second sampler starts from the beginning again.
    DV_CHECK(dv_video_sampler_init(v, &p, 0, 0, &b) == 0);
    int64_t idx[3] = {-1, -1, -1};
    for (int i = 0; i < 3 && b && dv_video_sampler_next(b, &f) == 1; i++) idx[i] = vt_read_index(&f);
    DV_CHECK(idx[0] == 0 && idx[1] == 10 && idx[2] == 20);
    dv_video_sampler_free(b);
    p.fps = -1;
    DV_CHECK(dv_video_sampler_init(v, &p, 0, 0, &b) == DV_EINVAL && strstr(dv_error_message(), "fps"));
    p = dv_sample_plan_default();
    p.start_sec = 5; // the file lasts 3 s
    DV_CHECK(dv_video_sampler_init(v, &p, 0, 0, &b) == DV_EINVAL && strstr(dv_error_message(), "past the end"));
    p.start_sec = 0;
    DV_CHECK(dv_video_sampler_init(v, &p, -3, 0, &b) == DV_EINVAL);
    DV_CHECK(dv_video_sampler_init(v, &p, 100000, 0, &b) == DV_EINVAL);
    dv_video_free(v);
    dv_video_free(NULL);
    dv_video_sampler_free(NULL);
}

int main(void) {
    if (vt_setup()) DV_TEST_SKIP("ffmpeg CLI not found (needed to make test videos)");
    test_bad_files();
    test_damaged();
    test_api_misuse();
    vt_cleanup();
    return dv_test_finish();
}
