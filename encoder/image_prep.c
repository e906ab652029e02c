// image_prep.c: resize / center crop / normalize of RGB24 frames, matching torch's uint8 antialiased
// interpolation (what the default HF processors run) bit for bit. See dv_image_prep.h.
#include "encoder/dv_image_prep.h"

#include "core/dv_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- resize coefficients (one axis) ----

// Coefficients of one axis, as torch's _compute_indices_int16_weights_aa builds them.
typedef struct prep_axis {
    int in, out;  // sizes; in == 0: not computed yet
    int ksize;    // taps per output pixel (the most any pixel uses)
    int prec;     // fixed-point bits of k
    int *first;   // (out) first input index
    int *n;       // (out) taps used
    int16_t *k;   // (out, ksize) weights * 2^prec
    double *wd;   // (out, ksize) the same weights in double (scratch while computing)
    size_t cap;   // elements allocated in k / wd
    int cap_out;  // elements allocated in first / n
} prep_axis;

struct dv_prep {
    dv_prep_config c;
    prep_axis ax_h, ax_v;  // horizontal (width) and vertical (height) coefficients
    uint8_t *tmp;          // (rows, dw, 3) horizontal pass output, grown on demand
    size_t tmp_cap;
    uint8_t *resized;      // (rh, rw, 3) resize output before the crop, grown on demand
    size_t resized_cap;
    int32_t *acc;          // (dw * 3) vertical pass accumulators, grown on demand
    size_t acc_cap;        // bytes
};

// PIL's filters (Resample.c), also torch's aa_filter for bicubic / bilinear.
static double filter_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

static double filter_bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

// Fills ax for in -> out. Returns 0 or DV_ENOMEM.
static int axis_compute(prep_axis *ax, int in, int out, int resample) {
    if (ax->in == in && ax->out == out) return 0;
    const int bicubic = resample == DV_RESAMPLE_BICUBIC;
    const double base = bicubic ? 2.0 : 1.0; // torch: interp_size * 0.5
    const double scale = (double)in / (double)out;
    const double support = scale >= 1.0 ? base * scale : base;
    const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    const int ksize = (int)ceil(support) * 2 + 1;
    const size_t need = (size_t)out * (size_t)ksize;
    if (need > ax->cap) {
        int16_t *k = realloc(ax->k, need * sizeof *k);
        if (k) ax->k = k;
        double *wd = realloc(ax->wd, need * sizeof *wd);
        if (wd) ax->wd = wd;
        if (!k || !wd) return dv_error_set(DV_ENOMEM, "image resize: out of memory (%d taps x %d)", ksize, out);
        ax->cap = need;
    }
    if (out > ax->cap_out) {
        int *f = realloc(ax->first, (size_t)out * sizeof *f);
        if (f) ax->first = f;
        int *n = realloc(ax->n, (size_t)out * sizeof *n);
        if (n) ax->n = n;
        if (!f || !n) return dv_error_set(DV_ENOMEM, "image resize: out of memory (%d outputs)", out);
        ax->cap_out = out;
    }
    double wmax = 0.0;
    for (int i = 0; i < out; i++) {
        const double center = scale * (i + 0.5);
        // (int64) truncates toward zero, as torch's static_cast does, before the clamp to 0
        int64_t xmin = (int64_t)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int64_t xmax = (int64_t)(center + support + 0.5);
        if (xmax > in) xmax = in;
        int64_t xsize = xmax - xmin;
        if (xsize < 0) xsize = 0;
        if (xsize > ksize) xsize = ksize; // torch: rare rounding cases
        double *w = ax->wd + (size_t)i * ksize, total = 0.0;
        for (int j = 0; j < xsize; j++) {
            const double t = ((double)j + (double)xmin - center + 0.5) * invscale;
            w[j] = bicubic ? filter_bicubic(t) : filter_bilinear(t);
            total += w[j];
        }
        if (total != 0.0)
            for (int j = 0; j < xsize; j++) {
                w[j] /= total;
                if (w[j] > wmax) wmax = w[j];
            }
        for (int j = (int)xsize; j < ksize; j++) w[j] = 0.0;
        ax->first[i] = (int)xmin;
        ax->n[i] = (int)xsize;
    }
    // the most fractional bits that keep the largest weight (rounded) below 2^15
    int prec = 0;
    for (prec = 0; prec < 22; prec++) {
        const int next = (int)(0.5 + wmax * (double)(1 << (prec + 1)));
        if (next >= (1 << 15)) break;
    }
    for (size_t i = 0; i < need; i++) {
        const double v = ax->wd[i] * (double)(1 << prec);
        ax->k[i] = (int16_t)(v < 0 ? (int)(-0.5 + v) : (int)(0.5 + v));
    }
    ax->in = in;
    ax->out = out;
    ax->ksize = ksize;
    ax->prec = prec;
    return 0;
}

static inline uint8_t clamp_u8(int32_t ss, int prec) {
    const int32_t v = ss >> prec; // arithmetic shift: floor, as _mm_srai_epi32
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    uint8_t *p = realloc(*buf, need);
    if (!p) return dv_error_set(DV_ENOMEM, "image resize: out of memory (%zu bytes)", need);
    *buf = p;
    *cap = need;
    return 0;
}

int dv_prep_resize(dv_prep *p, const uint8_t *src, int sw, int sh, int stride, uint8_t *dst, int dw, int dh) {
    DV_ASSERT(p && src && dst && sw > 0 && sh > 0 && dw > 0 && dh > 0 && stride >= 3 * sw);
    const int need_h = sw != dw, need_v = sh != dh;
    int rc;
    if (!need_h && !need_v) {
        for (int y = 0; y < sh; y++) memcpy(dst + (size_t)y * dw * 3, src + (size_t)y * stride, (size_t)dw * 3);
        return 0;
    }
    if (need_h && (rc = axis_compute(&p->ax_h, sw, dw, p->c.resample))) return rc;
    if (need_v && (rc = axis_compute(&p->ax_v, sh, dh, p->c.resample))) return rc;

    // horizontal pass over the rows the vertical pass reads (all rows when there is none)
    int y0 = 0, y1 = sh;
    if (need_v) {
        y0 = p->ax_v.first[0];
        y1 = p->ax_v.first[dh - 1] + p->ax_v.n[dh - 1];
        for (int i = 0; i < dh; i++) { // first/last output rows need not bound the others
            if (p->ax_v.first[i] < y0) y0 = p->ax_v.first[i];
            if (p->ax_v.first[i] + p->ax_v.n[i] > y1) y1 = p->ax_v.first[i] + p->ax_v.n[i];
        }
    }
    const uint8_t *vsrc = src; // what the vertical pass reads: rows y0.. at vstride
    size_t vstride = (size_t)stride;
    if (need_h) {
        uint8_t *hout = dst;
        if (need_v) {
            if ((rc = grow(&p->tmp, &p->tmp_cap, (size_t)(y1 - y0) * dw * 3))) return rc;
            hout = p->tmp;
        }
        const prep_axis *ax = &p->ax_h;
        const int prec = ax->prec, ks = ax->ksize;
        for (int y = y0; y < y1; y++) {
            const uint8_t *row = src + (size_t)y * stride;
            uint8_t *o = hout + (size_t)(y - y0) * dw * 3;
            for (int x = 0; x < dw; x++) {
                const uint8_t *s = row + (size_t)ax->first[x] * 3;
                const int16_t *k = ax->k + (size_t)x * ks;
                int32_t r = 1 << (prec - 1), g = r, b = r;
                for (int j = 0; j < ax->n[x]; j++) {
                    r += s[3 * j + 0] * k[j];
                    g += s[3 * j + 1] * k[j];
                    b += s[3 * j + 2] * k[j];
                }
                o[3 * x + 0] = clamp_u8(r, prec);
                o[3 * x + 1] = clamp_u8(g, prec);
                o[3 * x + 2] = clamp_u8(b, prec);
            }
        }
        if (!need_v) return 0;
        vsrc = p->tmp;
        vstride = (size_t)dw * 3;
    } else {
        vsrc = src + (size_t)y0 * stride;
    }
    const prep_axis *ax = &p->ax_v;
    const int prec = ax->prec, ks = ax->ksize;
    const int row_bytes = dw * 3;
    if ((size_t)row_bytes * sizeof(int32_t) > p->acc_cap) {
        int32_t *na = realloc(p->acc, (size_t)row_bytes * sizeof(int32_t));
        if (!na) return dv_error_set(DV_ENOMEM, "image resize: out of memory (%d accumulators)", row_bytes);
        p->acc = na;
        p->acc_cap = (size_t)row_bytes * sizeof(int32_t);
    }
    int32_t *acc = p->acc;
    for (int y = 0; y < dh; y++) {
        // tap-outer order: each tap adds one whole input row (vectorizes; the sums are exact integers,
        // so the order does not change the result)
        const int16_t *k = ax->k + (size_t)y * ks;
        const uint8_t *base = vsrc + (size_t)(ax->first[y] - y0) * vstride;
        for (int x = 0; x < row_bytes; x++) acc[x] = 1 << (prec - 1);
        for (int j = 0; j < ax->n[y]; j++) {
            const uint8_t *r = base + (size_t)j * vstride;
            const int32_t kj = k[j];
            for (int x = 0; x < row_bytes; x++) acc[x] += r[x] * kj;
        }
        uint8_t *o = dst + (size_t)y * row_bytes;
        for (int x = 0; x < row_bytes; x++) o[x] = clamp_u8(acc[x], prec);
    }
    return 0;
}

// ---- the processor steps ----

void dv_prep_output_size(const dv_prep_config *c, int w, int h, int *out_w, int *out_h) {
    int rw = w, rh = h;
    if (c->do_resize) {
        if (c->shortest_edge > 0) {
            // transformers get_resize_output_image_size(default_to_square=False): the long side is
            // int(size * long / short), a true division then truncation
            const int s = c->shortest_edge;
            if (w <= h) {
                rw = s;
                rh = (int)((double)s * (double)h / (double)w);
            } else {
                rh = s;
                rw = (int)((double)s * (double)w / (double)h);
            }
        } else {
            rw = c->size_w;
            rh = c->size_h;
        }
    }
    if (c->do_center_crop) {
        rw = c->crop_w;
        rh = c->crop_h;
    }
    *out_w = rw;
    *out_h = rh;
}

int dv_prep_init(const dv_prep_config *c, dv_prep **out) {
    *out = NULL;
    if (c->resample != DV_RESAMPLE_BICUBIC && c->resample != DV_RESAMPLE_BILINEAR)
        return dv_error_set(DV_EUNSUPPORTED, "%s: resample %d is not supported (2 bilinear, 3 bicubic)", c->source,
                            c->resample);
    dv_prep *p = calloc(1, sizeof *p);
    if (!p) return dv_error_set(DV_ENOMEM, "image preprocessing: out of memory");
    p->c = *c;
    *out = p;
    return 0;
}

static void axis_free(prep_axis *ax) {
    free(ax->first);
    free(ax->n);
    free(ax->k);
    free(ax->wd);
}

void dv_prep_free(dv_prep *p) {
    if (!p) return;
    axis_free(&p->ax_h);
    axis_free(&p->ax_v);
    free(p->tmp);
    free(p->resized);
    free(p->acc);
    free(p);
}

int dv_prep_run(dv_prep *p, const dv_image *img, uint8_t *out) {
    DV_ASSERT(p && out);
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0)
        return dv_error_set(DV_EINVAL, "RGB image: empty (%dx%d, no pixels)", img ? img->w : 0, img ? img->h : 0);
    const int stride = img->stride ? img->stride : 3 * img->w;
    if (stride < 3 * img->w)
        return dv_error_set(DV_EINVAL, "RGB image: row stride %d is smaller than 3 x width %d (expected RGB24)", stride,
                            img->w);
    const dv_prep_config *c = &p->c;
    int rw = img->w, rh = img->h;
    dv_prep_config rc = *c;
    rc.do_center_crop = 0;
    dv_prep_output_size(&rc, img->w, img->h, &rw, &rh);
    if (rw <= 0 || rh <= 0)
        return dv_error_set(DV_EINVAL, "RGB image: %dx%d resizes to nothing (%dx%d)", img->w, img->h, rw, rh);
    int ow, oh, ret;
    dv_prep_output_size(c, img->w, img->h, &ow, &oh);
    const int crop = c->do_center_crop && (ow != rw || oh != rh);
    uint8_t *dst = out;
    if (crop) {
        if ((ret = grow(&p->resized, &p->resized_cap, (size_t)rw * rh * 3))) return ret;
        dst = p->resized;
    }
    if ((ret = dv_prep_resize(p, img->rgb, img->w, img->h, stride, dst, rw, rh))) return ret;
    if (!crop) return 0;
    // torchvision center_crop: top = int((H - ch) / 2), or zero padding split (ch - H) // 2 on top
    const int top = oh <= rh ? (rh - oh) / 2 : -((oh - rh) / 2);
    const int left = ow <= rw ? (rw - ow) / 2 : -((ow - rw) / 2);
    for (int y = 0; y < oh; y++) {
        uint8_t *o = out + (size_t)y * ow * 3;
        const int sy = y + top;
        if (sy < 0 || sy >= rh) {
            memset(o, 0, (size_t)ow * 3);
            continue;
        }
        for (int x = 0; x < ow; x++) {
            const int sx = x + left;
            if (sx < 0 || sx >= rw) {
                o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = 0;
            } else {
                memcpy(o + 3 * x, p->resized + ((size_t)sy * rw + sx) * 3, 3);
            }
        }
    }
    return 0;
}

void dv_prep_normalize(const dv_prep_config *c, const uint8_t *u8, int w, int h, float *chw) {
    float m[3], s[3], r = (float)c->rescale_factor;
    for (int ch = 0; ch < 3; ch++) {
        m[ch] = (float)c->mean[ch];
        s[ch] = (float)c->std[ch];
        if (c->do_rescale && c->do_normalize) { // fused: mean, std scaled by 1/rescale_factor in float32
            const float inv = (float)(1.0 / c->rescale_factor);
            m[ch] *= inv;
            s[ch] *= inv;
        }
    }
    const size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane; i++)
        for (int ch = 0; ch < 3; ch++) {
            const float x = (float)u8[3 * i + ch];
            float v = x;
            if (c->do_normalize) v = (x - m[ch]) / s[ch];
            else if (c->do_rescale) v = x * r;
            chw[(size_t)ch * plane + i] = v;
        }
}
