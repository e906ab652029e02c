// vlm_internal.h: what the files of vlm/ share besides the public dv_vlm.h: the video context
// cache's view of a dv_vlm (its key, its frame list).
#ifndef DV_VLM_INTERNAL_H
#define DV_VLM_INTERNAL_H

#include "vlm/dv_context_cache.h"
#include "vlm/dv_vlm.h"

// The cache folder given to dv_vlm_open ("" when none).
const char *dv_vlm_cache_dir(const dv_vlm *v);
// The context cache key of `video_path` under plan p: model folder hash (computed once per dv_vlm),
// video content hash, attention layout hash and the plan text: a canonical line of everything else
// that decides the context's contents (sampling plan, template, system prompt hash, timestamps, chunk).
int dv_vlm_cache_key(dv_vlm *v, const char *video_path, const dv_vlm_plan *p, int timestamps, dv_ctx_key *k);
// Records the video context as restored from elsewhere (context cache): its token count and frames.
int dv_vlm_set_video_context(dv_vlm *v, int64_t n_tokens, const double *frame_times, int64_t n_frames);
// M-RoPE (Qwen-VL): the text position the first question starts at, saved and restored with the
// video context (it lies below the LLM's next position when the video's temporal positions ran ahead).
int dv_vlm_video_position(const dv_vlm *v);
void dv_vlm_set_video_position(dv_vlm *v, int pos);

#endif
