// png.c: RGB24 PNG encoder (libpng into memory), the one step that publishes a PNG file, a pool of
// encoder threads for frame sequences, and a small RGB24 PNG reader.
#include "video/dv_png.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"

#include <errno.h>
#include <png.h>
#include <pthread.h>
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

// ---- encoding into memory ----

// libpng allocates its structs and zlib's deflate state per image; routed through this arena they
// reuse one block, so a worker encoding frame after frame allocates nothing once the first image
// sized it. A request that does not fit falls back to malloc and grows the block for the next image.
typedef struct png_arena {
    uint8_t *base;       // (cap) bytes, bump-allocated, reset after each image
    size_t cap, used, spilled; // spilled: bytes the last image had to malloc beyond cap
} png_arena;

#define PNG_ARENA_ALIGN 64

static png_voidp arena_malloc(png_structp png, png_alloc_size_t n) {
    png_arena *a = png_get_mem_ptr(png);
    size_t need = (n + PNG_ARENA_ALIGN - 1) & ~(size_t)(PNG_ARENA_ALIGN - 1);
    if (a && a->base && a->cap - a->used >= need) {
        void *p = a->base + a->used;
        a->used += need;
        return p;
    }
    if (a) a->spilled += need;
    return malloc(n);
}

static void arena_free(png_structp png, png_voidp p) {
    png_arena *a = png_get_mem_ptr(png);
    if (a && a->base && (uint8_t *)p >= a->base && (uint8_t *)p < a->base + a->cap) return; // reset frees it
    free(p);
}

// After an image: forget its blocks; if it spilled, make the block big enough for next time.
static void arena_reset(png_arena *a) {
    if (a->spilled) {
        size_t cap = a->used + a->spilled + (a->used + a->spilled) / 4;
        uint8_t *b = malloc(cap);
        if (b) {
            free(a->base);
            a->base = b;
            a->cap = cap;
        }
    }
    a->used = a->spilled = 0;
}

// The encoded file, grown as needed and reused.
typedef struct png_bytes {
    uint8_t *data;
    size_t len, cap;
} png_bytes;

static void on_png_write(png_structp png, png_bytep data, size_t n) {
    png_bytes *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 3 / 2 + 4096;
        uint8_t *d = realloc(b->data, cap);
        if (!d) png_error(png, "out of memory");
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}
static void on_png_flush(png_structp png) { (void)png; }

// Encodes rgb (h, w, 3) packed into out (replacing its contents); 0 or -1 (message in *err).
// Zlib level 1 (Z_BEST_SPEED) with the "up" filter on every row: ~2x faster than level 6 without a
// filter (what ffmpeg's PNG encoder does) and smaller than it on video frames; the adaptive filter
// choice costs 3x the time for 2% smaller files. Lossless whatever the level.
static int encode(const uint8_t *rgb, int w, int h, png_arena *arena, png_bytes *out, png_err *err) {
    out->len = 0;
    png_structp png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, err, on_png_error, on_png_warning, arena,
                                                arena_malloc, arena_free);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        if (arena) arena_reset(arena);
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        if (arena) arena_reset(arena);
        return -1;
    }
    png_set_write_fn(png, out, on_png_write, on_png_flush);
    png_set_compression_level(png, 1);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (arena) arena_reset(arena);
    return 0;
}

// ---- publishing ----

// The one place a PNG file appears: `len` bytes of an encoded image are published with the project's
// one atomic write (core/dv_fs: temporary, fsync, rename, folder fsync), so a failure or an
// interrupted run never leaves a partial PNG behind. Errors: DV_EIO naming the path.
static int publish(const char *path, const uint8_t *data, size_t len) {
    return dv_fs_write_atomic(path, data, len);
}

int dv_png_write_rgb(const char *path, const uint8_t *rgb, int w, int h) {
    DV_ASSERT(path && rgb && w > 0 && h > 0);
    png_err err = {{0}};
    png_bytes out = {0};
    int rc = encode(rgb, w, h, NULL, &out, &err) ? dv_error_set(DV_EIO, "%s: cannot write PNG (%s)", path, err.msg)
                                                 : publish(path, out.data, out.len);
    free(out.data);
    return rc;
}

// ---- the writer pool ----

// A slot holds one queued frame: its pixels and file name. The producer fills slots in turn (waiting
// until the next one is no longer busy) and workers take them in the same order; workers may finish
// out of order, hence a busy flag per slot rather than a count.
typedef struct png_slot {
    uint8_t *rgb;     // (h, w, 3) packed
    char *path;       // (path_cap) bytes
    int busy;         // queued or being encoded (guarded by the writer's mutex)
} png_slot;

struct dv_png_writer {
    int w, h, n_threads, n_slots;
    size_t path_cap;
    png_slot *slots;          // (n_slots)
    int64_t submitted;        // frames handed to dv_png_writer_submit (slot = index % n_slots)
    int64_t taken;            // frames a worker has taken
    int64_t done;             // frames finished (written, failed or dropped)
    int stop;                 // workers exit once the queue is empty
    int err_code;             // first failure (0: none); its message:
    char err_msg[1024];
    pthread_mutex_t mu;
    pthread_cond_t cv_work;   // a slot was queued, or stop
    pthread_cond_t cv_done;   // a slot was freed
    pthread_t *threads;       // (n_threads)
    int n_started;
};

static void *writer_main(void *arg) {
    dv_png_writer *pw = arg;
    png_arena arena = {0};
    png_bytes out = {0};
    pthread_mutex_lock(&pw->mu);
    for (;;) {
        while (pw->taken == pw->submitted && !pw->stop) pthread_cond_wait(&pw->cv_work, &pw->mu);
        if (pw->taken == pw->submitted) break; // stop and nothing left
        png_slot *sl = &pw->slots[pw->taken % pw->n_slots];
        pw->taken++;
        int skip = pw->err_code != 0; // after a failure the rest is dropped: the run is failing
        pthread_mutex_unlock(&pw->mu);
        int rc = 0;
        if (!skip) {
            png_err err = {{0}};
            if (encode(sl->rgb, pw->w, pw->h, &arena, &out, &err))
                rc = dv_error_set(DV_EIO, "%s: cannot write PNG (%s)", sl->path, err.msg);
            else
                rc = publish(sl->path, out.data, out.len);
        }
        pthread_mutex_lock(&pw->mu);
        if (rc && !pw->err_code) {
            pw->err_code = rc;
            snprintf(pw->err_msg, sizeof pw->err_msg, "%s", dv_error_message());
        }
        sl->busy = 0;
        pw->done++;
        pthread_cond_broadcast(&pw->cv_done);
    }
    pthread_mutex_unlock(&pw->mu);
    free(arena.base);
    free(out.data);
    return NULL;
}

int dv_png_writer_init(int n_threads, int w, int h, size_t path_cap, dv_png_writer **out) {
    DV_ASSERT(out && w > 0 && h > 0 && path_cap > 0);
    *out = NULL;
    if (n_threads <= 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (int)ncpu;
    }
    dv_png_writer *pw = calloc(1, sizeof *pw);
    if (!pw) return dv_error_set(DV_ENOMEM, "PNG writer: out of memory");
    pw->w = w;
    pw->h = h;
    pw->n_threads = n_threads;
    pw->n_slots = n_threads + 1; // every worker busy and one frame being filled
    pw->path_cap = path_cap;
    pthread_mutex_init(&pw->mu, NULL);
    pthread_cond_init(&pw->cv_work, NULL);
    pthread_cond_init(&pw->cv_done, NULL);
    int rc = DV_OK;
    pw->slots = calloc((size_t)pw->n_slots, sizeof *pw->slots);
    pw->threads = calloc((size_t)n_threads, sizeof *pw->threads);
    if (!pw->slots || !pw->threads) goto oom;
    for (int i = 0; i < pw->n_slots; i++) {
        pw->slots[i].rgb = malloc((size_t)w * h * 3);
        pw->slots[i].path = malloc(path_cap);
        if (!pw->slots[i].rgb || !pw->slots[i].path) goto oom;
    }
    for (; pw->n_started < n_threads; pw->n_started++)
        if (pthread_create(&pw->threads[pw->n_started], NULL, writer_main, pw) != 0) {
            rc = dv_error_set(DV_ENOMEM, "PNG writer: cannot start a thread");
            goto fail;
        }
    *out = pw;
    return DV_OK;
oom:
    rc = dv_error_set(DV_ENOMEM, "PNG writer: out of memory for %d frames of %dx%d", pw->n_slots, w, h);
fail:
    dv_png_writer_free(pw);
    return rc;
}

// The first failure of a worker, as this thread's error; 0 when none.
static int writer_error(dv_png_writer *pw) {
    return pw->err_code ? dv_error_set(pw->err_code, "%s", pw->err_msg) : DV_OK;
}

int dv_png_writer_submit(dv_png_writer *pw, const char *path, const uint8_t *rgb) {
    DV_ASSERT(pw && path && rgb);
    if (strlen(path) >= pw->path_cap) return dv_error_set(DV_EINVAL, "%s: path too long", path);
    png_slot *sl = &pw->slots[pw->submitted % pw->n_slots];
    pthread_mutex_lock(&pw->mu);
    while (sl->busy && !pw->err_code) pthread_cond_wait(&pw->cv_done, &pw->mu);
    int rc = writer_error(pw);
    pthread_mutex_unlock(&pw->mu);
    if (rc) return rc;
    // The slot is ours until it is queued: no worker touches a slot that is not busy.
    memcpy(sl->rgb, rgb, (size_t)pw->w * pw->h * 3);
    memcpy(sl->path, path, strlen(path) + 1);
    pthread_mutex_lock(&pw->mu);
    sl->busy = 1;
    pw->submitted++;
    pthread_cond_signal(&pw->cv_work);
    pthread_mutex_unlock(&pw->mu);
    return DV_OK;
}

int dv_png_writer_finish(dv_png_writer *pw) {
    DV_ASSERT(pw);
    pthread_mutex_lock(&pw->mu);
    while (pw->done < pw->submitted) pthread_cond_wait(&pw->cv_done, &pw->mu);
    int rc = writer_error(pw);
    pthread_mutex_unlock(&pw->mu);
    return rc;
}

void dv_png_writer_free(dv_png_writer *pw) {
    if (!pw) return;
    pthread_mutex_lock(&pw->mu);
    pw->stop = 1;
    pthread_cond_broadcast(&pw->cv_work);
    pthread_mutex_unlock(&pw->mu);
    for (int i = 0; i < pw->n_started; i++) pthread_join(pw->threads[i], NULL);
    for (int i = 0; pw->slots && i < pw->n_slots; i++) {
        free(pw->slots[i].rgb);
        free(pw->slots[i].path);
    }
    free(pw->slots);
    free(pw->threads);
    pthread_mutex_destroy(&pw->mu);
    pthread_cond_destroy(&pw->cv_work);
    pthread_cond_destroy(&pw->cv_done);
    free(pw);
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
