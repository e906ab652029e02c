// test_video_sizes.c: frame sizes and pixel formats that trip libswscale's SIMD paths.
//
// Part 1 drives the RGB converter (video/frame_convert.h) directly, on a flat colour frame of every
// width 1..160 and a list of odd, prime, tiny and extreme sizes, in 8 pixel formats, at the source
// size, scaled and rotated: the output buffer is exactly (h, w, 3) followed by guard bytes, so a
// write past its end (libswscale's yuv420p -> rgb24 path stores up to 42 bytes past a packed row)
// fails here in any build, not only as heap corruption at a later free (which ASan cannot see: the
// SIMD code is not instrumented). Every output pixel must be the expected colour.
//
// Part 2 makes 3-frame clips with the ffmpeg CLI in those sizes and formats with libx264, mpeg4,
// mjpeg, ffv1 and rawvideo (when the encoder exists), decodes every frame through the public API and
// checks every pixel. The clip is drawn flat in its own pixel format (geq on the planes: no colour
// conversion before the encoder, whose edge chroma at odd sizes would blur the expectation): frame n
// has Y = 80 + 40n, Cb = 100, Cr = 170 (RGB sources: (60 + 50n, 170 - 40n, 90 + 30n); gray: Y 113),
// and must come back as that colour within a tolerance for the codec (lossy) or the rounding.
#include "tests/test_video_util.h"

#include "core/dv_error.h"
#include "video/frame_convert.h"

#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>

#define GUARD 256
#define GUARD_BYTE 0xA7
#define UNSET_BYTE 0x5A

// ---- part 1: the converter with a guarded output buffer ----

// Flat colour, 8-bit YUV (BT.601): limited range Y 16..235, or full range for the yuvj formats.
#define C_Y 120
#define C_U 100
#define C_V 170
// RGB24 and gray sources.
#define C_R 200
#define C_G 40
#define C_B 90
// Gray: 113 is where limited and full range luma expansion agree to 1 level, so the expectation does
// not depend on which one libswscale assumes for gray (range handling is tested elsewhere).
#define C_GRAY 113

// RGB of a flat BT.601 colour (y, u, v 8-bit; full: JPEG range) or of the sources above.
static void yuv_to_rgb(double y, double u, double v, int full, int rgb[3]) {
    double r, g, b, k = full ? 1.0 : 255.0 / 224.0, yl = full ? y : (y - 16.0) * 255.0 / 219.0;
    u -= 128.0;
    v -= 128.0;
    r = yl + 1.402 * k * v;
    g = yl - 0.344136 * k * u - 0.714136 * k * v;
    b = yl + 1.772 * k * u;
    double c[3] = {r, g, b};
    for (int i = 0; i < 3; i++) rgb[i] = (int)lround(c[i] < 0 ? 0 : c[i] > 255 ? 255 : c[i]);
}

static void expected_rgb(enum AVPixelFormat fmt, int rgb[3]) {
    if (fmt == AV_PIX_FMT_RGB24) {
        rgb[0] = C_R, rgb[1] = C_G, rgb[2] = C_B;
        return;
    }
    if (fmt == AV_PIX_FMT_GRAY8) {
        rgb[0] = rgb[1] = rgb[2] = C_GRAY;
        return;
    }
    yuv_to_rgb(C_Y, C_U, C_V, fmt == AV_PIX_FMT_YUVJ420P, rgb);
}

// Fills a frame of `fmt` with the flat colour (libav's own allocation: aligned, padded).
static AVFrame *flat_frame(enum AVPixelFormat fmt, int w, int h) {
    AVFrame *f = av_frame_alloc();
    if (!f) return NULL;
    f->format = fmt;
    f->width = w;
    f->height = h;
    if (av_frame_get_buffer(f, 0) < 0) {
        av_frame_free(&f);
        return NULL;
    }
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt);
    int cw = -((-w) >> d->log2_chroma_w), ch = -((-h) >> d->log2_chroma_h);
    for (int y = 0; y < h; y++) {
        uint8_t *row = f->data[0] + (size_t)y * f->linesize[0];
        for (int x = 0; x < w; x++) {
            if (fmt == AV_PIX_FMT_RGB24) row[3 * x] = C_R, row[3 * x + 1] = C_G, row[3 * x + 2] = C_B;
            else if (fmt == AV_PIX_FMT_GRAY8) row[x] = C_GRAY;
            else if (fmt == AV_PIX_FMT_YUV420P10LE) ((uint16_t *)row)[x] = C_Y << 2;
            else row[x] = C_Y;
        }
    }
    if (fmt == AV_PIX_FMT_RGB24 || fmt == AV_PIX_FMT_GRAY8) return f;
    for (int y = 0; y < ch; y++) {
        uint8_t *u = f->data[1] + (size_t)y * f->linesize[1];
        uint8_t *v = fmt == AV_PIX_FMT_NV12 ? NULL : f->data[2] + (size_t)y * f->linesize[2];
        for (int x = 0; x < cw; x++) {
            if (fmt == AV_PIX_FMT_NV12) u[2 * x] = C_U, u[2 * x + 1] = C_V;
            else if (fmt == AV_PIX_FMT_YUV420P10LE) ((uint16_t *)u)[x] = C_U << 2, ((uint16_t *)v)[x] = C_V << 2;
            else u[x] = C_U, v[x] = C_V;
        }
    }
    return f;
}

// Converts a flat w x h frame to out_w x out_h (rotated) into a guarded buffer; returns the number of
// failures (0 ok) and prints the first few.
static int convert_case(enum AVPixelFormat fmt, int w, int h, int out_w, int out_h, int rotation, uint8_t *buf) {
    static int reported;
    const char *name = av_get_pix_fmt_name(fmt);
    AVFrame *f = flat_frame(fmt, w, h);
    dv_frame_convert *c = NULL;
    int fails = 0;
    if (!f || dv_frame_convert_init(out_w, out_h, rotation, &c)) {
        if (reported++ < 8) fprintf(stderr, "  %s %dx%d: setup failed: %s\n", name, w, h, dv_error_message());
        av_frame_free(&f);
        return 1;
    }
    size_t n = (size_t)out_w * out_h * 3;
    memset(buf, UNSET_BYTE, n);
    memset(buf + n, GUARD_BYTE, GUARD);
    int rc = dv_frame_convert_run(c, f, buf);
    if (rc) {
        if (reported++ < 8) fprintf(stderr, "  %s %dx%d: %s\n", name, w, h, dv_error_message());
        fails++;
    }
    int guard_hit = -1;
    for (int i = GUARD - 1; i >= 0; i--)
        if (buf[n + i] != GUARD_BYTE) {
            guard_hit = i;
            break;
        }
    if (guard_hit >= 0) {
        if (reported++ < 8)
            fprintf(stderr, "  %s %dx%d -> %dx%d rot %d: wrote %d bytes past the packed buffer\n", name, w, h, out_w,
                    out_h, rotation, guard_hit + 1);
        fails++;
    }
    int want[3], worst = 0;
    expected_rgb(fmt, want);
    for (size_t i = 0; !rc && i < n; i++) {
        int d = abs((int)buf[i] - want[i % 3]);
        if (d > worst) worst = d;
    }
    // 3 levels: libswscale's SIMD and C paths round differently; garbage or unset pixels are far off.
    if (worst > 3) {
        if (reported++ < 8)
            fprintf(stderr, "  %s %dx%d -> %dx%d rot %d: a pixel is %d levels off (%d,%d,%d)\n", name, w, h, out_w,
                    out_h, rotation, worst, want[0], want[1], want[2]);
        fails++;
    }
    dv_frame_convert_free(c);
    av_frame_free(&f);
    return fails;
}

static void test_convert(void) {
    static const enum AVPixelFormat fmts[] = {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV422P, AV_PIX_FMT_YUV444P,
                                              AV_PIX_FMT_NV12,    AV_PIX_FMT_RGB24,   AV_PIX_FMT_GRAY8,
                                              AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUV420P10LE};
    // Odd, prime, tiny, the sizes of the original report, very wide, very tall.
    static const int sizes[][2] = {{1, 1},    {2, 2},     {3, 5},    {16, 16},   {17, 13},  {97, 89},
                                   {127, 131}, {168, 112}, {170, 110}, {104, 112}, {171, 111}, {1279, 719},
                                   {4093, 3},  {3, 4093},  {8191, 2},  {2, 8191}};
    size_t cap = (size_t)6 << 20; // the largest case: 1279x719 doubled

    uint8_t *buf = malloc(cap);
    DV_CHECK(buf != NULL);
    if (!buf) return;
    for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
        int fails = 0, cases = 0;
        for (int w = 1; w <= 160; w++, cases++) fails += convert_case(fmts[fi], w, 7, w, 7, 0, buf);
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int w = sizes[si][0], h = sizes[si][1];
            fails += convert_case(fmts[fi], w, h, w, h, 0, buf);
            // Scaled down and up, and rotated (the pre-rotation buffer is strided too).
            int dw = w / 2 + 1, dh = h / 3 + 1;
            fails += convert_case(fmts[fi], w, h, dw, dh, 0, buf);
            if ((size_t)w * 2 * h * 3 + GUARD <= cap && w * 2 <= 16384)
                fails += convert_case(fmts[fi], w, h, w * 2 - 1, h + 1, 0, buf), cases++;
            if (w <= 4096 && h <= 4096) fails += convert_case(fmts[fi], w, h, h, w, 90, buf), cases++;
            cases += 2;
        }
        printf("convert %-12s %4d cases, %d failures\n", av_get_pix_fmt_name(fmts[fi]), cases, fails);
        DV_CHECK_MSG(fails == 0, "%s: %d conversions wrote past the buffer or gave wrong pixels",
                     av_get_pix_fmt_name(fmts[fi]), fails);
    }
    free(buf);
}

// ---- part 2: encoded clips through the public API ----

typedef struct clip_case {
    const char *encoder;   // ffmpeg encoder name (the case is skipped when ffmpeg lacks it)
    const char *ext;       // container
    const char *args;      // extra encoder arguments
    const char *pix_fmt;
    int w, h;
    int tol;               // max |decoded - expected| per channel
} clip_case;

// ffmpeg's encoder list, read once ("" when it cannot be read).
static char encoders[1 << 17];

static int have_encoder(const char *name) {
    if (!encoders[0]) {
        FILE *p = popen("ffmpeg -hide_banner -encoders 2>/dev/null", "r");
        size_t n = p ? fread(encoders, 1, sizeof encoders - 1, p) : 0;
        encoders[n] = 0;
        if (p) pclose(p);
    }
    char key[64];
    snprintf(key, sizeof key, " %s ", name);
    return strstr(encoders, key) != NULL;
}

// The source filter chain that draws frame N flat, and the RGB frame n must decode to. YUV targets
// are drawn in yuv444p (the lavfi sources round subsampled formats to even sizes) and converted by the
// ffmpeg CLI: a flat field converts exactly up to rounding, at any size, to any range.
static void clip_source(const char *pix_fmt, char *chain, size_t cap) {
    if (!strcmp(pix_fmt, "bgr24") || !strcmp(pix_fmt, "bgr0"))
        snprintf(chain, cap, "format=rgb24,geq=r='60+50*N':g='170-40*N':b='90+30*N'");
    else if (!strcmp(pix_fmt, "gray"))
        snprintf(chain, cap, "format=gray,geq=lum=113");
    else
        snprintf(chain, cap, "format=yuv444p,geq=lum='80+40*N':cb=100:cr=170");
}

static void clip_expected(const char *pix_fmt, int n, int rgb[3]) {
    if (!strcmp(pix_fmt, "bgr24") || !strcmp(pix_fmt, "bgr0")) {
        rgb[0] = 60 + 50 * n, rgb[1] = 170 - 40 * n, rgb[2] = 90 + 30 * n;
    } else if (!strcmp(pix_fmt, "gray")) {
        rgb[0] = rgb[1] = rgb[2] = C_GRAY;
    } else {
        yuv_to_rgb(80 + 40 * n, 100, 170, 0, rgb);
    }
}

// Makes clips cases[0..n) in one ffmpeg run (one input and one output per clip: process start-up is
// most of the cost of a small clip); 0 or ffmpeg's exit status.
static int make_clips(const clip_case *cases, int first, int n) {
    size_t cap = 4096 + (size_t)n * 512;
    char *args = malloc(cap), chain[160];
    if (!args) return -1;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        clip_source(cases[i].pix_fmt, chain, sizeof chain);
        len += (size_t)snprintf(args + len, cap - len, "-f lavfi -i \"color=c=black:s=%dx%d:r=10:d=0.3,%s\" ",
                                cases[i].w, cases[i].h, chain);
    }
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(args + len, cap - len, "-map %d -frames:v 3 -c:v %s %s -pix_fmt %s c%02d.%s ", i,
                                cases[i].encoder, cases[i].args, cases[i].pix_fmt, first + i, cases[i].ext);
    char *cmd = malloc(len + 600);
    int rc = -1;
    if (cmd) {
        snprintf(cmd, len + 600, "cd '%s' && ffmpeg -nostdin -hide_banner -loglevel error -y %s", vt_dir, args);
        rc = system(cmd);
        if (rc) fprintf(stderr, "ffmpeg failed (%d): %s\n", rc, cmd);
    }
    free(cmd);
    free(args);
    return rc;
}

static void check_clip(const clip_case *c, int idx) {
    char file[64], label[128];
    snprintf(file, sizeof file, "c%02d.%s", idx, c->ext);
    snprintf(label, sizeof label, "%s %s %dx%d", c->encoder, c->pix_fmt, c->w, c->h);
    dv_video *v = NULL;
    dv_video_sampler *s = NULL;
    dv_sample_plan p = dv_sample_plan_default();
    p.fps = 10; // the source rate: every frame once
    p.mode = DV_SAMPLE_MODE_SEQUENTIAL;
    int rc = dv_video_open(vt_path(file), NULL, &v);
    if (!rc) rc = dv_video_sampler_init(v, &p, 0, 0, &s);
    DV_CHECK_MSG(rc == 0, "%s: %s", label, dv_error_message());
    if (rc) {
        dv_video_free(v);
        return;
    }
    dv_frame f = {0};
    int n = 0, worst = 0, r, size_ok = 1;
    while ((r = dv_video_sampler_next(s, &f)) == 1) {
        int want[3];
        clip_expected(c->pix_fmt, n, want);
        size_ok &= f.w == c->w && f.h == c->h;
        for (size_t i = 0; size_ok && i < (size_t)f.w * f.h * 3; i++) {
            int d = abs((int)f.rgb[i] - want[i % 3]);
            if (d > worst) worst = d;
        }
        n++;
    }
    DV_CHECK_MSG(r == 0, "%s: %s", label, dv_error_message());
    DV_CHECK_MSG(size_ok, "%s: frames of %dx%d", label, f.w, f.h);
    DV_CHECK_MSG(n == 3, "%s: %d frames decoded, 3 made", label, n);
    DV_CHECK_MSG(worst <= c->tol, "%s: a pixel is %d levels off (tolerance %d)", label, worst, c->tol);
    printf("clip %-36s %d frames, max error %2d (tolerance %d)\n", label, n, worst, c->tol);
    dv_video_sampler_free(s);
    dv_video_free(v);
}

static void test_clips(void) {
    // Lossy: 12 levels (flat colours survive every codec far better; a broken row is far worse).
    // Lossless codecs: 3 levels of YUV -> RGB rounding (libswscale's SIMD and C paths differ), RGB exact.
    static const clip_case cases[] = {
        {"libx264", "mp4", "-preset ultrafast", "yuv420p", 168, 112, 12},
        {"libx264", "mp4", "-preset ultrafast", "yuv420p", 170, 110, 12},
        {"libx264", "mp4", "-preset ultrafast", "yuv420p", 104, 112, 12},
        {"libx264", "mp4", "-preset ultrafast", "yuv420p", 2, 2, 12},
        {"libx264", "mp4", "-preset ultrafast", "yuv420p", 2048, 16, 12},
        {"libx264", "mp4", "-preset ultrafast", "yuv420p", 16, 1024, 12},
        {"libx264", "mp4", "-preset ultrafast", "yuv422p", 98, 112, 12},
        {"libx264", "mp4", "-preset ultrafast", "yuv444p", 127, 131, 12},
        {"libx264", "mp4", "-preset ultrafast", "nv12", 170, 110, 12},
        {"libx264", "mp4", "-preset ultrafast", "yuvj420p", 202, 112, 12},
        {"libx264", "mp4", "-preset ultrafast", "yuv420p10le", 146, 112, 12},
        {"libx264", "mp4", "-preset ultrafast", "gray", 171, 111, 12},
        {"mpeg4", "avi", "-q:v 2", "yuv420p", 170, 110, 12},
        {"mpeg4", "avi", "-q:v 2", "yuv420p", 18, 14, 12},
        {"mjpeg", "avi", "-q:v 2", "yuvj420p", 171, 111, 12},
        {"mjpeg", "avi", "-q:v 2", "yuvj422p", 3, 3, 12},
        {"mjpeg", "avi", "-q:v 2", "yuvj444p", 1001, 7, 12},
        {"ffv1", "mkv", "", "yuv420p", 97, 89, 3},
        {"ffv1", "mkv", "", "yuv422p", 1, 1, 3},
        {"ffv1", "mkv", "", "yuv444p", 5003, 3, 3},
        {"ffv1", "mkv", "", "gray", 3, 3001, 3},
        {"ffv1", "mkv", "", "yuv420p10le", 131, 7, 3},
        {"ffv1", "mkv", "", "bgr0", 113, 61, 0},
        {"rawvideo", "avi", "", "bgr24", 131, 7, 0},
        {"rawvideo", "avi", "", "nv12", 170, 110, 3},
    };
    int n_cases = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0, j; i < n_cases; i = j) {
        // One ffmpeg run per encoder.
        for (j = i; j < n_cases && !strcmp(cases[j].encoder, cases[i].encoder); j++) {}
        if (!have_encoder(cases[i].encoder)) {
            printf("ffmpeg has no %s encoder: its cases are skipped\n", cases[i].encoder);
            continue;
        }
        if (make_clips(cases + i, i, j - i)) {
            DV_CHECK_MSG(0, "%s: ffmpeg could not make the clips", cases[i].encoder);
            continue;
        }
        for (int k = i; k < j; k++) check_clip(&cases[k], k);
    }
}

int main(void) {
    test_convert();
    if (vt_setup()) {
        printf("ffmpeg CLI not found: encoded clips skipped\n");
        return dv_test_finish();
    }
    test_clips();
    vt_cleanup();
    return dv_test_finish();
}
