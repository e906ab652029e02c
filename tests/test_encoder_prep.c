// test_encoder_prep.c: frame preprocessing (encoder/dv_image_prep.h).
//
//  - the resize against a naive float64 reference written from PIL's definition (bicubic a = -0.5
//    and bilinear, support scaled on downscale, weights normalized per pixel, horizontal pass rounded
//    to uint8, then vertical): at most 1 level apart (ours uses int16 fixed-point weights as torch
//    does), on random images, up, down, one axis only, odd sizes;
//  - HF's CLIP processor on an upscale (a 64x48 window of a frame, read through a row stride, to
//    shortest_edge 80 and a 72x72 crop), from tests/fixtures/encoder/upscale.pixels.png;
//  - center crop larger than the image (zero padding as torchvision pads), the output size rule,
//    normalization, the processor configs of the fixture models, and bad frames.
#include "tests/test_encoder_util.h"

#include <math.h>

static double ref_filter(double x, int bicubic) {
    x = fabs(x);
    if (!bicubic) return x < 1.0 ? 1.0 - x : 0.0;
    const double a = -0.5;
    if (x < 1.0) return (a + 2.0) * x * x * x - (a + 3.0) * x * x + 1.0;
    if (x < 2.0) return a * x * x * x - 5.0 * a * x * x + 8.0 * a * x - 4.0 * a;
    return 0.0;
}

// One axis, in float64: out[i] = sum_j w_ij in[j] / sum_j w_ij over the input pixels of PIL's window
// around output pixel i's centre (the filter stretched by the downscale factor fs).
static void ref_axis(const double *in, int n_in, int step_in, double *out, int n_out, int step_out, int bicubic) {
    const double scale = (double)n_in / n_out, fs = scale > 1.0 ? scale : 1.0;
    const double support = (bicubic ? 2.0 : 1.0) * fs;
    for (int i = 0; i < n_out; i++) {
        const double centre = (i + 0.5) * scale;
        // PIL's window: input pixels [int(centre - support + 0.5), int(centre + support + 0.5))
        int lo = (int)(centre - support + 0.5), hi = (int)(centre + support + 0.5);
        lo = lo < 0 ? 0 : lo;
        hi = hi > n_in ? n_in : hi;
        double acc = 0, wsum = 0;
        for (int j = lo; j < hi; j++) {
            const double wt = ref_filter((j + 0.5 - centre) / fs, bicubic);
            acc += wt * in[(size_t)j * step_in];
            wsum += wt;
        }
        out[(size_t)i * step_out] = acc / wsum;
    }
}

static uint8_t round_u8(double v) {
    v = floor(v + 0.5);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

// src (sh, sw, 3) -> dst (dh, dw, 3), horizontal first, each pass rounded to uint8.
static void ref_resize(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh, int bicubic) {
    double *row = malloc(sizeof(double) * (size_t)(sw > sh ? sw : sh) * 3);
    double *o = malloc(sizeof(double) * (size_t)(dw > dh ? dw : dh) * 3);
    uint8_t *mid = malloc((size_t)sh * dw * 3);
    for (int y = 0; y < sh; y++) {
        for (int i = 0; i < sw * 3; i++) row[i] = src[(size_t)y * sw * 3 + i];
        for (int c = 0; c < 3; c++) {
            if (sw == dw) {
                for (int x = 0; x < dw; x++) o[x * 3 + c] = row[x * 3 + c];
            } else {
                ref_axis(row + c, sw, 3, o + c, dw, 3, bicubic);
            }
        }
        for (int i = 0; i < dw * 3; i++) mid[(size_t)y * dw * 3 + i] = round_u8(o[i]);
    }
    for (int x = 0; x < dw * 3; x++) {
        for (int y = 0; y < sh; y++) row[y] = mid[(size_t)y * dw * 3 + x];
        if (sh == dh) {
            for (int y = 0; y < dh; y++) o[y] = row[y];
        } else {
            ref_axis(row, sh, 1, o, dh, 1, bicubic);
        }
        for (int y = 0; y < dh; y++) dst[(size_t)y * dw * 3 + x] = round_u8(o[y]);
    }
    free(row);
    free(o);
    free(mid);
}

static void check_resize_vs_ref(int sw, int sh, int dw, int dh, int resample, uint64_t *seed) {
    uint8_t *src = malloc((size_t)sw * sh * 3), *a = malloc((size_t)dw * dh * 3), *b = malloc((size_t)dw * dh * 3);
    // smooth gradients plus noise: exercises both flat areas and edges
    float *noise = malloc(sizeof(float) * (size_t)sw * sh * 3);
    dv_test_rand(noise, (size_t)sw * sh * 3, 0.0f, 1.0f, seed);
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++)
            for (int c = 0; c < 3; c++) {
                const size_t i = ((size_t)y * sw + x) * 3 + c;
                const double g = 127.5 + 120 * sin(0.21 * x * (c + 1) + 0.13 * y);
                src[i] = (uint8_t)((x / 7 + y / 5 + c) % 3 == 0 ? 255.0f * noise[i] : g);
            }
    dv_prep_config c = {.do_resize = 1, .size_w = dw, .size_h = dh, .resample = resample};
    dv_prep *p = NULL;
    DV_CHECK(dv_prep_init(&c, &p) == 0);
    DV_CHECK(dv_prep_resize(p, src, sw, sh, sw * 3, a, dw, dh) == 0);
    ref_resize(src, sw, sh, b, dw, dh, resample == DV_RESAMPLE_BICUBIC);
    size_t nd = 0;
    const int m = enc_u8_maxdiff(a, b, (size_t)dw * dh * 3, &nd);
    printf("resize %s %dx%d -> %dx%d vs float64 reference: maxdiff = %d, %zu of %d differ\n",
           resample == DV_RESAMPLE_BICUBIC ? "bicubic" : "bilinear", sw, sh, dw, dh, m, nd, dw * dh * 3);
    DV_CHECK_MSG(m <= 1, "resize %dx%d -> %dx%d: maxdiff %d", sw, sh, dw, dh, m);
    DV_CHECK_MSG(nd * 50 <= (size_t)dw * dh * 3, "resize %dx%d -> %dx%d: %zu values off by one", sw, sh, dw, dh, nd);
    dv_prep_free(p);
    free(src);
    free(a);
    free(b);
    free(noise);
}

static void check_upscale_fixture(const enc_frames *fr) {
    int pw, ph;
    uint8_t *ref = enc_png_load(dv_test_path(ENC_FIX "upscale.pixels.png"), &pw, &ph);
    DV_CHECK_MSG(ref && pw == 72 && ph == 72, "upscale.pixels.png: %dx%d", ref ? pw : 0, ref ? ph : 0);
    if (!ref || pw != 72 || ph != 72) {
        free(ref);
        return;
    }
    dv_prep_config c = {.do_resize = 1, .shortest_edge = 80, .resample = DV_RESAMPLE_BICUBIC, .do_center_crop = 1,
                        .crop_h = 72, .crop_w = 72};
    // the window x 100..164, y 60..108 of frame 1, read in place through the frame's stride
    const dv_image *f = &fr->img[1];
    dv_image win = {.rgb = f->rgb + (size_t)60 * f->stride + 100 * 3, .w = 64, .h = 48, .stride = f->stride};
    int ow, oh;
    dv_prep_output_size(&c, 64, 48, &ow, &oh);
    DV_CHECK(ow == 72 && oh == 72);
    uint8_t out[72 * 72 * 3];
    dv_prep *p = NULL;
    DV_CHECK(dv_prep_init(&c, &p) == 0);
    DV_CHECK(dv_prep_run(p, &win, out) == 0);
    size_t nd = 0;
    const int m = enc_u8_maxdiff(out, ref, sizeof out, &nd);
    printf("upscale 64x48 -> 106x80 -> crop 72x72 vs HF CLIPImageProcessor: maxdiff = %d/255, %zu differ\n", m, nd);
    DV_CHECK_MSG(m <= 2, "upscale: maxdiff %d/255", m);
    dv_prep_free(p);
    free(ref);
}

static void check_crop_pad(void) {
    // a 4x2 image cropped to 2x6: columns 1..2, rows padded with one zero row on top, three below
    const uint8_t src[2][4][3] = {{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}},
                                  {{13, 14, 15}, {16, 17, 18}, {19, 20, 21}, {22, 23, 24}}};
    dv_prep_config c = {.do_resize = 0, .resample = DV_RESAMPLE_BICUBIC, .do_center_crop = 1, .crop_h = 6, .crop_w = 2};
    dv_image img = {.rgb = &src[0][0][0], .w = 4, .h = 2, .stride = 12};
    uint8_t out[6][2][3];
    memset(out, 0xff, sizeof out);
    dv_prep *p = NULL;
    DV_CHECK(dv_prep_init(&c, &p) == 0);
    DV_CHECK(dv_prep_run(p, &img, &out[0][0][0]) == 0);
    // torchvision pads (6 - 2) // 2 = 2 rows on top, 2 below
    int ok = 1;
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 2; x++)
            for (int ch = 0; ch < 3; ch++) {
                const int want = (y == 2 || y == 3) ? src[y - 2][x + 1][ch] : 0;
                ok &= out[y][x][ch] == want;
            }
    DV_CHECK_MSG(ok, "center crop with padding");
    dv_prep_free(p);
}

static void check_output_size(void) {
    dv_prep_config c = {.do_resize = 1, .shortest_edge = 336, .resample = DV_RESAMPLE_BICUBIC};
    int w, h;
    dv_prep_output_size(&c, 1280, 720, &w, &h);
    DV_CHECK_MSG(w == 597 && h == 336, "1280x720 -> %dx%d, expected 597x336 (int(336 * 1280 / 720))", w, h);
    dv_prep_output_size(&c, 480, 640, &w, &h);
    DV_CHECK_MSG(w == 336 && h == 448, "480x640 -> %dx%d", w, h);
    c.do_center_crop = 1;
    c.crop_h = c.crop_w = 336;
    dv_prep_output_size(&c, 1280, 720, &w, &h);
    DV_CHECK(w == 336 && h == 336);
}

static void check_normalize(void) {
    dv_prep_config c = {.do_rescale = 1, .rescale_factor = 1.0 / 255.0, .do_normalize = 1,
                        .mean = {0.48145466, 0.4578275, 0.40821073}, .std = {0.26862954, 0.26130258, 0.27577711}};
    const uint8_t px[2 * 3] = {0, 128, 255, 17, 200, 90};
    float chw[6];
    dv_prep_normalize(&c, px, 2, 1, chw);
    double md = 0;
    for (int i = 0; i < 2; i++)
        for (int ch = 0; ch < 3; ch++) {
            const double want = (px[i * 3 + ch] / 255.0 - c.mean[ch]) / c.std[ch];
            md = fmax(md, fabs(chw[ch * 2 + i] - want));
        }
    printf("normalize vs float64: maxdiff = %.3g\n", md);
    DV_CHECK(md < 1e-5);
}

static void check_configs(void) {
    dv_prep_config c;
    int rc = dv_prep_config_load(dv_test_path(ENC_FIX "tiny-llava-next-video"), &c);
    DV_CHECK_MSG(rc == 0, "%s", dv_error_message());
    DV_CHECK(!strcmp(c.source, "video_preprocessor_config.json"));
    DV_CHECK(c.shortest_edge == 180 && c.do_center_crop && c.crop_h == 168 && c.crop_w == 168);
    DV_CHECK(c.resample == DV_RESAMPLE_BICUBIC && fabs(c.mean[0] - 0.48145466) < 1e-12 && fabs(c.std[2] - 0.27577711) < 1e-12);
    rc = dv_prep_config_load(dv_test_path(ENC_FIX "tiny-llava-siglip"), &c);
    DV_CHECK_MSG(rc == 0, "%s", dv_error_message());
    DV_CHECK(!strcmp(c.source, "preprocessor_config.json"));
    DV_CHECK(c.shortest_edge == 0 && c.size_h == 28 && c.size_w == 28 && !c.do_center_crop && c.mean[1] == 0.5);
    rc = dv_prep_config_load(dv_test_path(ENC_FIX), &c);
    DV_CHECK_MSG(rc == DV_ENOTFOUND, "no processor config -> DV_ENOTFOUND, got %d", rc);
    printf("no processor config: %s\n", dv_error_message());
}

static void check_bad_frames(void) {
    dv_prep_config c = {.do_resize = 1, .shortest_edge = 8, .resample = DV_RESAMPLE_BICUBIC, .do_center_crop = 1,
                        .crop_h = 8, .crop_w = 8};
    dv_prep *p = NULL;
    DV_CHECK(dv_prep_init(&c, &p) == 0);
    uint8_t px[16 * 16 * 3] = {0}, out[8 * 8 * 3];
    dv_image bad_stride = {.rgb = px, .w = 16, .h = 16, .stride = 16 * 2};
    int rc = dv_prep_run(p, &bad_stride, out);
    DV_CHECK_MSG(rc == DV_EINVAL, "stride 32 for 16 RGB pixels -> DV_EINVAL, got %d", rc);
    printf("bad stride: %s\n", dv_error_message());
    dv_image empty = {.rgb = px, .w = 0, .h = 16};
    DV_CHECK(dv_prep_run(p, &empty, out) == DV_EINVAL);
    dv_image null = {.rgb = NULL, .w = 16, .h = 16};
    DV_CHECK(dv_prep_run(p, &null, out) == DV_EINVAL);
    dv_prep_free(p);
    c.resample = 1; // LANCZOS
    DV_CHECK(dv_prep_init(&c, &p) == DV_EUNSUPPORTED && p == NULL);
}

int main(void) {
    uint64_t seed = 42;
    check_resize_vs_ref(37, 23, 80, 50, DV_RESAMPLE_BICUBIC, &seed);   // upscale
    check_resize_vs_ref(320, 240, 149, 112, DV_RESAMPLE_BICUBIC, &seed); // downscale 2.1x
    check_resize_vs_ref(301, 97, 33, 61, DV_RESAMPLE_BICUBIC, &seed);  // down 9x in x, up in y
    check_resize_vs_ref(64, 48, 64, 20, DV_RESAMPLE_BICUBIC, &seed);   // vertical only
    check_resize_vs_ref(100, 10, 33, 10, DV_RESAMPLE_BICUBIC, &seed);  // horizontal only
    check_resize_vs_ref(120, 90, 50, 130, DV_RESAMPLE_BILINEAR, &seed);
    enc_frames fr;
    if (enc_frames_load(&fr) == 0) {
        check_upscale_fixture(&fr);
        enc_frames_free(&fr);
    } else {
        DV_CHECK_MSG(0, "cannot load the fixture frames");
    }
    check_crop_pad();
    check_output_size();
    check_normalize();
    check_configs();
    check_bad_frames();
    return dv_test_finish();
}
