// vlm_internal.h: what the files of vlm/ share besides the public dv_vlm.h: the video context
// cache's view of a dv_vlm (its key, its frame list) and the callback helpers.
#ifndef DV_VLM_INTERNAL_H
#define DV_VLM_INTERNAL_H

#include "vlm/dv_context_cache.h"
#include "vlm/dv_vlm.h"

// The cache folder given to dv_vlm_open ("" when none).
const char *dv_vlm_cache_dir(const dv_vlm *v);
// The context cache key of `video_path` under plan p: model folder hash (computed once per dv_vlm),
// video content hash, attention layout hash and the plan text (dv_vlm_plan_key).
int dv_vlm_cache_key(dv_vlm *v, const char *video_path, const dv_vlm_plan *p, int timestamps, dv_ctx_key *k);
// A canonical one-line description of everything besides the model, video and pattern that decides
// the video context's contents (plan, template prefix, timestamps): the context cache's key text.
void dv_vlm_plan_key(const dv_vlm *v, const dv_vlm_plan *p, int timestamps, char *buf, size_t cap);
// Records the video context as restored from elsewhere (context cache): its token count and frames.
int dv_vlm_set_video_context(dv_vlm *v, int64_t n_tokens, const double *frame_times, int64_t n_frames);

// Callback helpers: each accepts cb == NULL or a NULL member.
int dv_vlm_cb_cancel(const dv_vlm_callbacks *cb);
void dv_vlm_cb_progress(const dv_vlm_callbacks *cb, const char *stage, const char *unit, dv_vlm_progress_state st,
                        int64_t done, int64_t total, const char *note);

#endif
