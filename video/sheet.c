// sheet.c: contact sheet: box-filtered thumbnails in a grid with timestamp labels, one PNG.
#include "video/dv_sheet.h"

#include "core/dv_error.h"
#include "video/dv_png.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DV_SHEET_PAD 4

struct dv_sheet {
    int n_cells, n_cols, n_rows, used;
    int thumb_w, thumb_h;   // picture area of a cell
    int scale;              // font pixel size
    int cell_w, cell_h;     // cell pitch: picture + label strip + padding
    int w, h;               // whole sheet
    uint8_t *rgb;           // (h, w, 3) RGB24, owned
};

static const uint8_t bg[3] = {24, 24, 24}, fg[3] = {255, 255, 255};

int dv_sheet_init(int n_cells, int n_cols, int thumb_w, int thumb_h, dv_sheet **out) {
    DV_ASSERT(out);
    *out = NULL;
    if (n_cells < 1 || thumb_w < 16 || thumb_h < 16 || thumb_w > 4096 || thumb_h > 4096 || n_cols < 0)
        return dv_error_set(DV_EINVAL, "contact sheet: bad layout (%d cells of %dx%d)", n_cells, thumb_w, thumb_h);
    if (n_cols == 0) n_cols = (int)ceil(sqrt((double)n_cells));
    if (n_cols > n_cells) n_cols = n_cells;
    int scale = thumb_w >= 160 ? 2 : 1;
    int n_rows = (n_cells + n_cols - 1) / n_cols;
    int cell_w = thumb_w + DV_SHEET_PAD, cell_h = thumb_h + 7 * scale + 3 * DV_SHEET_PAD;
    int64_t w = (int64_t)n_cols * cell_w + DV_SHEET_PAD, h = (int64_t)n_rows * cell_h + DV_SHEET_PAD;
    if (w > 16384 || h > 16384 || w * h * 3 > ((int64_t)256 << 20))
        return dv_error_set(DV_EINVAL, "contact sheet: %d thumbnails of %dx%d make a %lldx%lld image (limit 16384 a side, "
                            "256 MiB); sample fewer frames (--frames / --max-frames)", n_cells, thumb_w, thumb_h,
                            (long long)w, (long long)h);
    dv_sheet *s = calloc(1, sizeof *s);
    if (!s || !(s->rgb = malloc((size_t)(w * h * 3)))) {
        free(s);
        return dv_error_set(DV_ENOMEM, "contact sheet: out of memory for %lldx%lld", (long long)w, (long long)h);
    }
    *s = (dv_sheet){.n_cells = n_cells, .n_cols = n_cols, .n_rows = n_rows, .thumb_w = thumb_w, .thumb_h = thumb_h,
                    .scale = scale, .cell_w = cell_w, .cell_h = cell_h, .w = (int)w, .h = (int)h, .rgb = s->rgb};
    for (int64_t i = 0; i < w * h; i++) memcpy(s->rgb + i * 3, bg, 3);
    *out = s;
    return DV_OK;
}

// Box-filter (reduction) / nearest (enlargement) resize of src (sh, sw, 3) into a dw x dh window of
// dst (row pitch dst_w pixels) at (ox, oy).
static void blit_resized(const uint8_t *src, int sw, int sh, uint8_t *dst, int dst_w, int ox, int oy, int dw, int dh) {
    for (int y = 0; y < dh; y++) {
        int y0 = (int)((int64_t)y * sh / dh), y1 = (int)((int64_t)(y + 1) * sh / dh);
        if (y1 <= y0) y1 = y0 + 1;
        for (int x = 0; x < dw; x++) {
            int x0 = (int)((int64_t)x * sw / dw), x1 = (int)((int64_t)(x + 1) * sw / dw);
            if (x1 <= x0) x1 = x0 + 1;
            uint32_t acc[3] = {0, 0, 0}, n = 0;
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++, n++)
                    for (int c = 0; c < 3; c++) acc[c] += src[((size_t)yy * sw + xx) * 3 + c];
            uint8_t *d = dst + ((size_t)(oy + y) * dst_w + ox + x) * 3;
            for (int c = 0; c < 3; c++) d[c] = (uint8_t)((acc[c] + n / 2) / n);
        }
    }
}

int dv_sheet_add(dv_sheet *s, const uint8_t *rgb, int w, int h, const char *label) {
    DV_ASSERT(s && rgb && w > 0 && h > 0);
    if (s->used >= s->n_cells) return dv_error_set(DV_EINVAL, "contact sheet: all %d cells are used", s->n_cells);
    int col = s->used % s->n_cols, row = s->used / s->n_cols;
    s->used++;
    // Fit inside the picture area keeping the aspect ratio, centred.
    int fw = s->thumb_w, fh = (int)lround((double)h * s->thumb_w / w);
    if (fh > s->thumb_h) {
        fh = s->thumb_h;
        fw = (int)lround((double)w * s->thumb_h / h);
    }
    if (fw < 1) fw = 1;
    if (fh < 1) fh = 1;
    int cx = DV_SHEET_PAD + col * s->cell_w, cy = DV_SHEET_PAD + row * s->cell_h;
    blit_resized(rgb, w, h, s->rgb, s->w, cx + (s->thumb_w - fw) / 2, cy + (s->thumb_h - fh) / 2, fw, fh);
    if (label) dv_font_draw(s->rgb, s->w, s->h, cx, cy + s->thumb_h + DV_SHEET_PAD, label, s->scale, fg);
    return DV_OK;
}

int dv_sheet_write(const dv_sheet *s, const char *path) {
    DV_ASSERT(s && path);
    if (!s->used) return dv_error_set(DV_EINVAL, "%s: no frames for the contact sheet", path);
    int rows = (s->used + s->n_cols - 1) / s->n_cols;
    return dv_png_write_rgb(path, s->rgb, s->w, rows * s->cell_h + DV_SHEET_PAD);
}

void dv_sheet_free(dv_sheet *s) {
    if (!s) return;
    free(s->rgb);
    free(s);
}

void dv_sheet_format_time(double t, char *buf, size_t n) {
    if (!(t >= 0)) t = 0;
    long long ms = llround(t * 1000.0);
    long long hh = ms / 3600000, mm = (ms / 60000) % 60, ss = (ms / 1000) % 60, rem = ms % 1000;
    if (hh) snprintf(buf, n, "%lld:%02lld:%02lld.%03lld", hh, mm, ss, rem);
    else snprintf(buf, n, "%lld:%02lld.%03lld", mm, ss, rem);
}
