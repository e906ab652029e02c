// frame_prefetch.c: the decoder thread and its frame ring (frame_prefetch.h).
//
// The ring has 2 * batch slots and is consumed one batch at a time from slot 0 or slot batch, so a
// batch is always contiguous. The producer writes slot `tail % cap` outside the lock: the consumer
// never reads a slot at or past `tail`, and the producer never writes a slot before `head + cap`.
#include "vlm/frame_prefetch.h"

#include "core/dv_error.h"
#include "core/dv_progress.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dv_prefetch {
    dv_video_sampler *s;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int batch, cap;           // cap = 2 * batch
    int w, h;                 // frame size (the display size)
    size_t frame_bytes;
    uint8_t *rgb;             // (cap, h, w, 3), owned
    dv_image *images;         // (cap)
    double *times;            // (cap)
    int64_t head, tail;       // frames taken / frames decoded
    int taken;                // frames of the batch handed out, not yet released
    int done, quit, err;
    char msg[1024];
    double t_decode;
};

static void *decode_loop(void *arg) {
    dv_prefetch *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->tail - p->head >= p->cap) pthread_cond_wait(&p->cv, &p->mu);
        const int quit = p->quit;
        pthread_mutex_unlock(&p->mu);
        if (quit) return NULL;
        dv_frame f;
        double t0 = dv_time_now();
        int r = dv_video_sampler_next(p->s, &f);
        if (r == 1 && (f.w != p->w || f.h != p->h))
            r = dv_error_set(DV_EFORMAT, "frame at %.3f s is %dx%d, the stream %dx%d", f.t_sec, f.w, f.h, p->w, p->h);
        const int slot = (int)(p->tail % p->cap);
        if (r == 1) {
            memcpy(p->rgb + (size_t)slot * p->frame_bytes, f.rgb, p->frame_bytes);
            p->times[slot] = f.t_sec;
        }
        pthread_mutex_lock(&p->mu);
        p->t_decode += dv_time_now() - t0;
        if (r == 1) p->tail++;
        else {
            p->done = 1;
            p->err = r;
            if (r < 0) snprintf(p->msg, sizeof p->msg, "%s", dv_error_message()); // messages are per thread
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (r != 1) return NULL;
    }
}

int dv_prefetch_start(dv_video *video, const dv_sample_plan *plan, int batch, dv_prefetch **out) {
    *out = NULL;
    DV_ASSERT(batch > 0);
    const dv_video_info *info = dv_video_get_info(video);
    dv_prefetch *p = calloc(1, sizeof *p);
    if (!p) return dv_error_set(DV_ENOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->batch = batch;
    p->cap = 2 * batch;
    p->w = info->display_width;
    p->h = info->display_height;
    p->frame_bytes = (size_t)p->w * (size_t)p->h * 3;
    int rc = dv_video_sampler_init(video, plan, p->w, p->h, &p->s);
    if (rc) goto fail;
    p->rgb = malloc(p->frame_bytes * (size_t)p->cap);
    p->images = calloc((size_t)p->cap, sizeof *p->images);
    p->times = calloc((size_t)p->cap, sizeof *p->times);
    if (!p->rgb || !p->images || !p->times) {
        rc = dv_error_set(DV_ENOMEM, "out of memory (%d frame buffers of %dx%d)", p->cap, p->w, p->h);
        goto fail;
    }
    for (int i = 0; i < p->cap; i++)
        p->images[i] = (dv_image){.rgb = p->rgb + (size_t)i * p->frame_bytes, .w = p->w, .h = p->h, .stride = 3 * p->w};
    if (pthread_create(&p->thread, NULL, decode_loop, p)) {
        rc = dv_error_set(DV_ENOMEM, "cannot start the decoder thread");
        goto fail;
    }
    p->started = 1;
    *out = p;
    return 0;
fail:
    dv_prefetch_free(p);
    return rc;
}

int dv_prefetch_next(dv_prefetch *p, const dv_image **images, const double **times, int *n) {
    DV_ASSERT(!p->taken); // release the previous batch first
    pthread_mutex_lock(&p->mu);
    while (!p->done && p->tail - p->head < p->batch) pthread_cond_wait(&p->cv, &p->mu);
    int avail = (int)(p->tail - p->head), err = p->done ? p->err : 0;
    pthread_mutex_unlock(&p->mu);
    if (err < 0) return dv_error_set(err, "%s", p->msg);
    const int k = avail < p->batch ? avail : p->batch, slot = (int)(p->head % p->cap);
    *images = p->images + slot;
    *times = p->times + slot;
    *n = k;
    p->taken = k;
    return 0;
}

void dv_prefetch_release(dv_prefetch *p) {
    pthread_mutex_lock(&p->mu);
    p->head += p->taken;
    p->taken = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

double dv_prefetch_decode_seconds(dv_prefetch *p) {
    pthread_mutex_lock(&p->mu);
    double t = p->t_decode;
    pthread_mutex_unlock(&p->mu);
    return t;
}

void dv_prefetch_free(dv_prefetch *p) {
    if (!p) return;
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    dv_video_sampler_free(p->s);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->rgb);
    free(p->images);
    free(p->times);
    free(p);
}
