// frame_convert.c: AVFrame -> packed RGB24 at the output size via libswscale, then rotation.
// libswscale never writes into the caller's packed buffer: its SIMD paths store whole vectors and
// run up to 42 bytes past a row of 3 * w bytes (yuv420p -> rgb24 at about half of all widths), which
// corrupts the heap after a tightly packed last row. It writes into a libav-allocated frame instead
// (av_frame_get_buffer: linesize aligned for SIMD, padded end), from which the rows are copied out
// packed, or turned by a plain pixel copy for a rotated stream (libswscale cannot rotate; the copy is
// an exact permutation, no resampling).
#include "video/frame_convert.h"

#include "core/dv_error.h"

#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <stdlib.h>
#include <string.h>

struct dv_frame_convert {
    int out_w, out_h;        // final size (after rotation)
    int pre_w, pre_h;        // swscale's output size (before rotation): out swapped for 90/270
    int rotation;            // clockwise degrees
    AVFrame *pre;            // (pre_h, linesize) RGB24 that swscale writes: rows of pre_w * 3 bytes
                             // plus alignment padding, the buffer padded past the last row
    struct SwsContext *sws;  // cached; rebuilt when the source changes
    int src_w, src_h, src_fmt, src_cs, src_range;  // what `sws` was built for
};

int dv_frame_convert_init(int out_w, int out_h, int rotation, dv_frame_convert **out) {
    DV_ASSERT(out_w > 0 && out_h > 0 && out);
    DV_ASSERT(rotation == 0 || rotation == 90 || rotation == 180 || rotation == 270);
    dv_frame_convert *c = calloc(1, sizeof *c);
    if (!c) return dv_error_set(DV_ENOMEM, "frame converter: out of memory");
    c->out_w = out_w;
    c->out_h = out_h;
    c->rotation = rotation;
    int swap = rotation == 90 || rotation == 270;
    c->pre_w = swap ? out_h : out_w;
    c->pre_h = swap ? out_w : out_h;
    c->src_fmt = -1;
    c->pre = av_frame_alloc();
    if (c->pre) {
        c->pre->format = AV_PIX_FMT_RGB24;
        c->pre->width = c->pre_w;
        c->pre->height = c->pre_h;
    }
    // align 0: the alignment this libavutil build's SIMD wants (it also pads the buffer's end).
    if (!c->pre || av_frame_get_buffer(c->pre, 0) < 0) {
        dv_frame_convert_free(c);
        return dv_error_set(DV_ENOMEM, "frame converter: out of memory for a %dx%d frame", out_w, out_h);
    }
    *out = c;
    return DV_OK;
}

// The deprecated yuvj* formats mean "full range" without saying so in color_range.
static int is_full_range(const AVFrame *f) {
    if (f->color_range == AVCOL_RANGE_JPEG) return 1;
    switch (f->format) {
    case AV_PIX_FMT_YUVJ420P: case AV_PIX_FMT_YUVJ422P: case AV_PIX_FMT_YUVJ444P: case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P: return 1;
    default: return 0;
    }
}

// SWS_CS_* values equal the AVCOL_SPC_* values they name; anything unstated is BT.601 (swscale's
// default, and what untagged SD content uses).
static int sws_matrix(int colorspace) {
    switch (colorspace) {
    case AVCOL_SPC_BT709: case AVCOL_SPC_FCC: case AVCOL_SPC_BT470BG: case AVCOL_SPC_SMPTE170M:
    case AVCOL_SPC_SMPTE240M: case AVCOL_SPC_BT2020_NCL: case AVCOL_SPC_BT2020_CL: return colorspace;
    default: return SWS_CS_DEFAULT;
    }
}

static int rebuild(dv_frame_convert *c, const AVFrame *f) {
    int down = f->width > c->pre_w || f->height > c->pre_h;
    // Area averaging for reductions (no aliasing in thumbnails / ViT inputs), bilinear otherwise.
    int flags = down ? SWS_AREA : SWS_BILINEAR;
    c->sws = sws_getCachedContext(c->sws, f->width, f->height, (enum AVPixelFormat)f->format, c->pre_w, c->pre_h,
                                  AV_PIX_FMT_RGB24, flags, NULL, NULL, NULL);
    if (!c->sws) {
        const char *name = av_get_pix_fmt_name((enum AVPixelFormat)f->format);
        return dv_error_set(DV_EUNSUPPORTED, "cannot convert %dx%d %s frames to RGB", f->width, f->height,
                            name ? name : "unknown-format");
    }
    int range = is_full_range(f);
    const int *coefs = sws_getCoefficients(sws_matrix(f->colorspace));
    // Returns -1 for RGB/gray sources, where there is no matrix to set: nothing to do then.
    sws_setColorspaceDetails(c->sws, coefs, range, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    c->src_w = f->width;
    c->src_h = f->height;
    c->src_fmt = f->format;
    c->src_cs = f->colorspace;
    c->src_range = range;
    return DV_OK;
}

// Clockwise rotation of `src` (sh rows of `stride` bytes, sw pixels each) into `dst` (out_h, out_w, 3).
static void rotate_rgb(const uint8_t *src, int stride, int sw, int sh, int rotation, uint8_t *dst) {
    int dw = rotation == 180 ? sw : sh;
    for (int y = 0; y < sh; y++) {
        const uint8_t *row = src + (size_t)y * stride;
        for (int x = 0; x < sw; x++) {
            int dx, dy;
            if (rotation == 90) { dx = sh - 1 - y; dy = x; }
            else if (rotation == 180) { dx = sw - 1 - x; dy = sh - 1 - y; }
            else { dx = y; dy = sw - 1 - x; } // 270
            memcpy(dst + ((size_t)dy * dw + dx) * 3, row + (size_t)x * 3, 3);
        }
    }
}

int dv_frame_convert_run(dv_frame_convert *c, const AVFrame *f, uint8_t *rgb) {
    if (f->width <= 0 || f->height <= 0) return dv_error_set(DV_EFORMAT, "decoded frame has no pixels");
    if (!c->sws || f->width != c->src_w || f->height != c->src_h || f->format != c->src_fmt ||
        (int)f->colorspace != c->src_cs || is_full_range(f) != c->src_range) {
        int rc = rebuild(c, f);
        if (rc) return rc;
    }
    const uint8_t *pre = c->pre->data[0];
    int stride = c->pre->linesize[0];
    int h = sws_scale(c->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, c->pre->data,
                      c->pre->linesize);
    if (h != c->pre_h) return dv_error_set(DV_EFORMAT, "colour conversion produced %d of %d rows", h, c->pre_h);
    if (c->rotation) {
        rotate_rgb(pre, stride, c->pre_w, c->pre_h, c->rotation, rgb);
    } else {
        size_t row = (size_t)c->pre_w * 3;
        for (int y = 0; y < c->pre_h; y++) memcpy(rgb + (size_t)y * row, pre + (size_t)y * stride, row);
    }
    return DV_OK;
}

void dv_frame_convert_free(dv_frame_convert *c) {
    if (!c) return;
    sws_freeContext(c->sws);
    av_frame_free(&c->pre);
    free(c);
}
