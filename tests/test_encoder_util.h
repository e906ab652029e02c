// test_encoder_util.h: helpers shared by the tests/test_encoder_*.c programs: PNG loading (the
// fixture frames and the processors' reference pixels are PNG files written by
// tests/fixtures/encoder/make_encoder_fixtures.py) and a parity check of one fixture model.
#ifndef DV_TEST_ENCODER_UTIL_H
#define DV_TEST_ENCODER_UTIL_H

#include "core/dv_error.h"
#include "core/dv_safetensors.h"
#include "encoder/dv_encoder.h"
#include "tests/dv_test.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENC_FIX "tests/fixtures/encoder/"
#define ENC_N_FRAMES 3

// RGB24 pixels of a PNG file (w * h * 3 bytes, malloc'd), NULL on failure (message printed).
static inline uint8_t *enc_png_load(const char *path, int *w, int *h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) {
        fprintf(stderr, "%s: %s\n", path, img.message);
        return NULL;
    }
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        fprintf(stderr, "%s: %s\n", path, img.message);
        free(buf);
        png_image_free(&img);
        return NULL;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    return buf;
}

// The three fixture frames (320x240 testsrc2, decoded from H.264).
typedef struct enc_frames {
    uint8_t *rgb[ENC_N_FRAMES];
    dv_image img[ENC_N_FRAMES];
} enc_frames;

static inline int enc_frames_load(enc_frames *f) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < ENC_N_FRAMES; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, ENC_FIX "frame%d.png", i);
        int w, h;
        if (!(f->rgb[i] = enc_png_load(dv_test_path(rel), &w, &h))) return -1;
        f->img[i] = (dv_image){.rgb = f->rgb[i], .w = w, .h = h, .stride = 3 * w};
    }
    return 0;
}

static inline void enc_frames_free(enc_frames *f) {
    for (int i = 0; i < ENC_N_FRAMES; i++) free(f->rgb[i]);
}

// Max |a - b| over n bytes; *n_diff gets how many differ.
static inline int enc_u8_maxdiff(const uint8_t *a, const uint8_t *b, size_t n, size_t *n_diff) {
    int m = 0;
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        const int d = abs((int)a[i] - (int)b[i]);
        if (d) nd++;
        if (d > m) m = d;
    }
    if (n_diff) *n_diff = nd;
    return m;
}

// Parity of one fixture model against HF: preprocessing of the three frames (max diff <= 2/255
// before normalization), features from HF's own pixel values (rel L2 < 1e-4), features end to end
// from the RGB frames (rel L2 < 1e-4), and the same with a batch size that splits the frames.
static inline void enc_check_model(const char *name, int want_tokens, int want_d_model, const enc_frames *fr) {
    char rel[256], dir[4096];
    snprintf(rel, sizeof rel, ENC_FIX "%s", name);
    snprintf(dir, sizeof dir, "%s", dv_test_path(rel));
    dv_encoder_params p = dv_encoder_default_params();
    p.n_threads = 2;
    p.max_batch = 4;
    dv_encoder *e = NULL;
    int rc = dv_encoder_open(dir, &p, &e);
    DV_CHECK_MSG(rc == 0, "%s: open: %s", name, dv_error_message());
    if (rc) return;
    printf("%s: %s\n", name, dv_encoder_describe(e));
    const int tok = dv_encoder_tokens_per_frame(e), dm = dv_encoder_d_model(e), S = dv_encoder_image_size(e);
    DV_CHECK_MSG(tok == want_tokens, "%s: %d tokens per frame, expected %d", name, tok, want_tokens);
    DV_CHECK_MSG(dm == want_d_model, "%s: d_model %d, expected %d", name, dm, want_d_model);

    // reference pixels (n * S, S, 3) and features (n, tok, dm)
    snprintf(rel, sizeof rel, ENC_FIX "%s.pixels.png", name);
    int pw = 0, ph = 0;
    uint8_t *ref_px = enc_png_load(dv_test_path(rel), &pw, &ph);
    snprintf(rel, sizeof rel, ENC_FIX "%s.ref.safetensors", name);
    dv_safetensors *st = NULL;
    const dv_st_tensor *feat = NULL;
    rc = dv_safetensors_open(dv_test_path(rel), &st);
    if (!rc) rc = dv_safetensors_get(st, "features", 3, (int64_t[]){ENC_N_FRAMES, tok, dm}, &feat);
    DV_CHECK_MSG(rc == 0 && feat && feat->dtype == DV_DTYPE_F32, "%s: reference: %s", name, dv_error_message());
    DV_CHECK_MSG(ref_px && pw == S && ph == S * ENC_N_FRAMES, "%s: reference pixels %dx%d, expected %dx%d", name, pw,
                 ph, S, S * ENC_N_FRAMES);
    if (!ref_px || pw != S || ph != S * ENC_N_FRAMES || !feat || feat->dtype != DV_DTYPE_F32) goto done;
    const size_t fpx = (size_t)S * S * 3, nout = (size_t)ENC_N_FRAMES * tok * dm;
    uint8_t *u8 = malloc(fpx * ENC_N_FRAMES);
    float *pix = malloc(fpx * ENC_N_FRAMES * sizeof(float));
    float *out = malloc(nout * sizeof(float)), *out2 = malloc(nout * sizeof(float));
    if (!u8 || !pix || !out || !out2) goto done2;

    // 1. preprocessing
    int worst = 0;
    size_t nd = 0;
    for (int i = 0; i < ENC_N_FRAMES; i++) {
        rc = dv_encoder_preprocess(e, &fr->img[i], u8 + i * fpx);
        DV_CHECK_MSG(rc == 0, "%s: preprocess: %s", name, dv_error_message());
        size_t n1 = 0;
        const int m = enc_u8_maxdiff(u8 + i * fpx, ref_px + i * fpx, fpx, &n1);
        worst = m > worst ? m : worst;
        nd += n1;
    }
    printf("%s: preprocessing vs HF: maxdiff = %d/255, %zu of %zu values differ\n", name, worst, nd,
           fpx * ENC_N_FRAMES);
    DV_CHECK_MSG(worst <= 2, "%s: preprocessing differs from HF by %d/255", name, worst);

    // 2. features from HF's pixel values
    for (int i = 0; i < ENC_N_FRAMES; i++)
        dv_prep_normalize(dv_encoder_prep_config(e), ref_px + i * fpx, S, S, pix + i * 3 * (size_t)S * S);
    rc = dv_encoder_encode_pixels(e, pix, ENC_N_FRAMES, out);
    DV_CHECK_MSG(rc == 0, "%s: encode_pixels: %s", name, dv_error_message());
    char label[160];
    snprintf(label, sizeof label, "%s: features from HF pixel values", name);
    dv_test_close(label, out, feat->data, nout, 1e-4);

    // 3. end to end from the RGB frames
    rc = dv_encoder_encode(e, fr->img, ENC_N_FRAMES, out);
    DV_CHECK_MSG(rc == 0, "%s: encode: %s", name, dv_error_message());
    snprintf(label, sizeof label, "%s: features from RGB frames", name);
    dv_test_close(label, out, feat->data, nout, 1e-4);
    dv_encoder_free(e);
    e = NULL;

    // 4. batches of 2 (a full batch, then a partial one) give the same features
    p.max_batch = 2;
    rc = dv_encoder_open(dir, &p, &e);
    DV_CHECK_MSG(rc == 0, "%s: open (batch 2): %s", name, dv_error_message());
    if (!rc) {
        rc = dv_encoder_encode(e, fr->img, ENC_N_FRAMES, out2);
        DV_CHECK(rc == 0);
        double md = 0;
        dv_test_rel_l2(out2, out, nout, &md);
        printf("%s: batch 2 vs batch 4: maxdiff = %.3g\n", name, md);
        DV_CHECK_MSG(md < 1e-5, "%s: batching changes the features by %g", name, md);
    }
done2:
    free(u8);
    free(pix);
    free(out);
    free(out2);
done:
    free(ref_px);
    dv_safetensors_free(st);
    dv_encoder_free(e);
}

// One tiny encoder fixture on two backends (the reference `ref`, e.g. the CPU, and `dev`): the same
// random pixel values through both, in two batches (5 frames, max_batch 3), outputs poisoned with NaN
// first; features compared with dv_test_close(label, .., tol). `what` names the second backend.
static inline void enc_compare_backends(const char *name, dv_backend *ref, dv_backend *dev, const char *what,
                                        double tol, uint64_t seed) {
    char rel[256];
    snprintf(rel, sizeof rel, ENC_FIX "%s", name);
    float *feat[2] = {NULL, NULL}, *pix = NULL;
    size_t n_out = 0;
    const int n = 5; // > max_batch: two batches
    for (int b = 0; b < 2; b++) {
        dv_encoder_params p = dv_encoder_default_params();
        p.backend = b ? dev : ref;
        p.max_batch = 3;
        dv_encoder *e = NULL;
        if (dv_encoder_open(dv_test_path(rel), &p, &e)) {
            DV_CHECK_MSG(0, "%s on %s: %s", name, b ? what : "the reference backend", dv_error_message());
            break;
        }
        const int S = dv_encoder_image_size(e);
        n_out = (size_t)n * dv_encoder_tokens_per_frame(e) * dv_encoder_d_model(e);
        if (!pix && (pix = malloc((size_t)n * 3 * S * S * sizeof(float)))) dv_test_rand(pix, (size_t)n * 3 * S * S, -2, 2, &seed);
        feat[b] = malloc(n_out * sizeof(float));
        for (size_t i = 0; feat[b] && i < n_out; i++) feat[b][i] = NAN;
        DV_CHECK_MSG(pix && feat[b] && dv_encoder_encode_pixels(e, pix, n, feat[b]) == 0, "%s: %s", name, dv_error_message());
        dv_encoder_free(e);
    }
    if (feat[0] && feat[1]) {
        char label[160];
        snprintf(label, sizeof label, "encoder %s: %s vs the reference backend", name, what);
        dv_test_close(label, feat[1], feat[0], n_out, tol);
    }
    free(feat[0]);
    free(feat[1]);
    free(pix);
}

#endif
