// png.c: atomic RGB24 PNG writer and a small RGB24 PNG reader, on libpng.
#include "video/dv_png.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// libpng reports errors by longjmp; keep its message for ours.
typedef struct png_err {
    char msg[256];
} png_err;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_err *e = png_get_error_ptr(png);
    if (e) snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}
static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

// Writes the image to an open FILE; 0 or -1 (message in *err).
static int write_stream(FILE *f, const uint8_t *rgb, int w, int h, png_err *err) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    // Level 3 is ~3x faster than the default 6 for a few % larger files: frames are many.
    png_set_compression_level(png, 3);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int dv_png_write_rgb(const char *path, const uint8_t *rgb, int w, int h) {
    DV_ASSERT(path && rgb && w > 0 && h > 0);
    dv_fs_atomic *a;
    int rc = dv_fs_atomic_open(path, &a);
    if (rc) return rc;
    png_err err = {{0}};
    if (write_stream(dv_fs_atomic_file(a), rgb, w, h, &err)) {
        dv_fs_atomic_abort(a);
        return dv_error_set(DV_EIO, "%s: cannot write PNG (%s)", path, err.msg);
    }
    return dv_fs_atomic_commit(a);
}

int dv_png_read_rgb(const char *path, uint8_t **out, int *w, int *h) {
    DV_ASSERT(path && out && w && h);
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dv_error_set(errno == ENOENT ? DV_ENOTFOUND : DV_EIO, "%s: cannot open (%s)", path, strerror(errno));
    png_err err = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile buf = NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, NULL, NULL);
        fclose(f);
        return dv_error_set(DV_ENOMEM, "%s: out of memory", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(buf);
        return dv_error_set(DV_EFORMAT, "%s: bad PNG (%s)", path, err.msg);
    }
    png_init_io(png, f);
    png_read_info(png, info);
    // Normalise every 8/16-bit gray/palette/alpha variant to RGB24.
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_palette_to_rgb(png);
    png_set_gray_to_rgb(png);
    png_set_expand_gray_1_2_4_to_8(png);
    png_read_update_info(png, info);
    int iw = (int)png_get_image_width(png, info), ih = (int)png_get_image_height(png, info);
    if (png_get_rowbytes(png, info) != (size_t)iw * 3) png_error(png, "unexpected row size");
    buf = malloc((size_t)iw * ih * 3);
    if (!buf) png_error(png, "out of memory");
    for (int y = 0; y < ih; y++) png_read_row(png, (png_bytep)(buf + (size_t)y * iw * 3), NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    *out = buf;
    *w = iw;
    *h = ih;
    return DV_OK;
}
