// dv_png.h: RGB24 images to and from PNG files (libpng). Writes are atomic: the image goes to a
// temporary file in the same folder that is renamed over `path` only when complete, so a failure or
// an interrupted run never leaves a partial PNG behind.
#ifndef DV_PNG_H
#define DV_PNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// rgb: (h, w, 3) packed RGB24. Errors: DV_EIO (cannot create/write/rename) naming the path.
int dv_png_write_rgb(const char *path, const uint8_t *rgb, int w, int h);
// Reads any 8-bit PNG as RGB24 into a malloc'd (h, w, 3) buffer (*out; free() it). For tests and
// tools. Errors: DV_ENOTFOUND, DV_EFORMAT.
int dv_png_read_rgb(const char *path, uint8_t **out, int *w, int *h);

#ifdef __cplusplus
}
#endif
#endif
