// frame_prefetch.h: decodes a video's planned frames on a thread of its own, a bounded ring ahead of
// the consumer, so decoding frame batch i+1 overlaps encoding and prefilling batch i (on a GPU the
// stages then cost their maximum, not their sum). Memory: `cap` frames, allocated once.
#ifndef DV_FRAME_PREFETCH_H
#define DV_FRAME_PREFETCH_H

#include "encoder/dv_image_prep.h"
#include "video/dv_video.h"

#include <stdint.h>

typedef struct dv_prefetch dv_prefetch;

// Starts decoding `plan` of `video` (frames of the display size) into a ring of 2 * batch frames.
int dv_prefetch_start(dv_video *video, const dv_sample_plan *plan, int batch, dv_prefetch **out);
// Waits for the next batch: up to `batch` frames (fewer only at the end). *n = 0 at the end.
// images/times point into the ring and stay valid until dv_prefetch_release. Errors of the decoder
// thread come back here with their message.
int dv_prefetch_next(dv_prefetch *p, const dv_image **images, const double **times, int *n);
// Hands the last batch's slots back to the decoder.
void dv_prefetch_release(dv_prefetch *p);
// Seconds the decoder thread spent decoding (not waiting).
double dv_prefetch_decode_seconds(dv_prefetch *p);
// Stops the thread (also mid-video) and frees. Accepts NULL.
void dv_prefetch_free(dv_prefetch *p);

#endif
