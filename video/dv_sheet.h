// dv_sheet.h: a contact sheet: a grid of thumbnails, each with a text label (its timestamp) drawn in
// a built-in 5x7 bitmap font, written as one PNG.
#ifndef DV_SHEET_H
#define DV_SHEET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_sheet dv_sheet;

// Room for n_cells thumbnails in n_cols columns (0: about square). Each cell is thumb_w x thumb_h
// pixels plus a label strip below it; frames are fitted inside keeping their aspect ratio.
// DV_EINVAL when the sheet would exceed 16384 pixels a side or 256 MiB.
int dv_sheet_init(int n_cells, int n_cols, int thumb_w, int thumb_h, dv_sheet **out);
// Draws `rgb` (h, w, 3) into the next free cell with `label` under it (characters the font lacks are
// blank). DV_EINVAL when all cells are used.
int dv_sheet_add(dv_sheet *s, const uint8_t *rgb, int w, int h, const char *label);
// Writes the rows used so far (atomic, dv_png_write_rgb). DV_EINVAL when no cell was filled.
int dv_sheet_write(const dv_sheet *s, const char *path);
void dv_sheet_free(dv_sheet *s);

// "M:SS.mmm" or "H:MM:SS.mmm" for t >= 1 hour.
void dv_sheet_format_time(double t_sec, char *buf, size_t n);

// The bitmap font: draws `text` at (x, y) (top-left) into rgb (h, w, 3), each font pixel scale x scale,
// clipped to the image. Glyphs are 5x7 in 6-pixel advances. Returns the width drawn in pixels.
int dv_font_draw(uint8_t *rgb, int w, int h, int x, int y, const char *text, int scale, const uint8_t color[3]);
// 1 when `c` has a glyph; fills rows[7] (bit 4 = leftmost pixel).
int dv_font_glyph(char c, uint8_t rows[7]);

#ifdef __cplusplus
}
#endif
#endif
