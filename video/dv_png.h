// dv_png.h: RGB24 images to and from PNG files (libpng, zlib level 1 with the "up" filter: lossless
// and fast). Writes are atomic: the image goes to a temporary file in the same folder that is renamed
// over `path` only when complete, so a failure or an interrupted run never leaves a partial PNG.
//
// A sequence of frames (`duovid frames -o DIR`) goes through a dv_png_writer: a few encoder threads
// behind a bounded queue, so PNG encoding runs beside decoding. All memory is allocated at init:
//   dv_png_writer *pw;
//   dv_png_writer_init(0, w, h, 4096, &pw);
//   for (each frame) if (dv_png_writer_submit(pw, name, rgb)) goto fail;  // copies rgb, may wait
//   if (dv_png_writer_finish(pw)) goto fail;                              // all written?
//   dv_png_writer_free(pw);
#ifndef DV_PNG_H
#define DV_PNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// rgb: (h, w, 3) packed RGB24. Errors: DV_EIO (cannot create/write/rename) naming the path.
int dv_png_write_rgb(const char *path, const uint8_t *rgb, int w, int h);
typedef struct dv_png_writer dv_png_writer;
// n_threads encoder threads (0: one per core, at most 16) for frames of w x h; paths shorter than
// path_cap bytes. Errors: DV_ENOMEM.
int dv_png_writer_init(int n_threads, int w, int h, size_t path_cap, dv_png_writer **out);
// Copies `rgb` (h, w, 3) and queues it for `path`; waits while the queue is full. Returns the first
// error of an earlier write (DV_EIO naming its path) instead, after which nothing more is written.
int dv_png_writer_submit(dv_png_writer *pw, const char *path, const uint8_t *rgb);
// Waits until every queued frame is written; returns the first error, if any.
int dv_png_writer_finish(dv_png_writer *pw);
// Writes what is still queued, stops the threads, frees. Accepts NULL.
void dv_png_writer_free(dv_png_writer *pw);

// Reads any 8-bit PNG as RGB24 into a malloc'd (h, w, 3) buffer (*out; free() it). For tests and
// tools. Errors: DV_ENOTFOUND, DV_EFORMAT.
int dv_png_read_rgb(const char *path, uint8_t **out, int *w, int *h);

#ifdef __cplusplus
}
#endif
#endif
