// qwen_video.c: the Qwen-VL family's video path (qwen_video.h): the processor's frame sampling and
// smart_resize turned into a plan, frame batches through preprocessing, patchify and the vision
// tower (encoder/dv_qwen_vision.h), and the M-RoPE positions of their rows.
#include "vlm/qwen_video.h"

#include "core/dv_error.h"
#include "core/dv_json.h"
#include "encoder/dv_qwen_vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dv_vlm_qwen {
    dv_backend *be;         // not owned
    dv_qwen_prep_config pc; // the video processor's settings (pixel overrides applied)
    dv_qwen_vit *vit;       // owned
    dv_prep *prep;          // owned: the processor's resize filter
    int d_model, merge;
    int qwen3;              // 1: Qwen3-VL (frames sampled by linspace, timestamps, own grid per group)
    int n_deep;             // DeepStack inputs of the tower (Qwen3-VL; 0: none)
    double tokens_per_second;
    // per video (dv_vlm_qwen_begin): buffers for `batch` frames of rw x rh
    int rw, rh, batch, group_tokens;
    uint8_t *u8;            // (rh, rw, 3) one resized frame
    float *chw;             // (batch, 3, rh, rw) normalised frames
    float *patches;         // (batch / tp * gh * gw, 3 * tp * P * P)
    float *feat;            // (batch / tp * group_tokens, d_model) host
    float *rows;            // (batch / tp * group_tokens, d_model) on the backend
    float *deep_host;       // (n_deep, batch / tp * group_tokens, d_model) host (DeepStack; NULL: none)
    float *deep;            // (n_deep, batch / tp * group_tokens, d_model) on the backend
    char desc[320];
};

int dv_vlm_qwen_detect(const char *model_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    cJSON *j = NULL;
    if (dv_json_load(path, &j)) {
        dv_error_clear();
        return 0;
    }
    const char *mt = dv_json_get_string(j, "model_type");
    const size_t n = mt ? strlen(mt) : 0;
    // qwen2_5_vl, qwen3_vl; Qwen3.5 (qwen3_5, qwen3_5_moe: natively multimodal) when it has its vision
    // tower (a text-only Qwen3_5ForConditionalGeneration folder is an LLM)
    const int q35 = mt && (!strcmp(mt, "qwen3_5") || !strcmp(mt, "qwen3_5_moe")) &&
                    cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "vision_config"));
    const int yes = q35 || (n > 7 && !strncmp(mt, "qwen", 4) && !strcmp(mt + n - 3, "_vl"));
    cJSON_Delete(j);
    return yes;
}

int dv_vlm_qwen_open(const char *model_dir, dv_backend *be, int64_t min_pixels, int64_t max_pixels,
                     dv_vlm_qwen **out) {
    *out = NULL;
    dv_vlm_qwen *q = calloc(1, sizeof *q);
    if (!q) return dv_error_set(DV_ENOMEM, "out of memory");
    q->be = be;
    int rc = dv_qwen_prep_config_load(model_dir, min_pixels, max_pixels, &q->pc);
    if (!rc) rc = dv_prep_init(&q->pc.px, &q->prep);
    if (!rc) rc = dv_qwen_vit_open(model_dir, be, be->n_threads, &q->vit);
    if (rc) {
        dv_vlm_qwen_free(q);
        return rc;
    }
    q->d_model = dv_qwen_vit_out_dim(q->vit);
    q->merge = dv_qwen_vit_merge(q->vit);
    q->tokens_per_second = dv_qwen_vit_tokens_per_second(q->vit);
    q->qwen3 = q->pc.kind == DV_QWEN_PREP_QWEN3_VL;
    q->n_deep = dv_qwen_vit_n_deepstack(q->vit);
    if (q->merge != q->pc.merge) {
        rc = dv_error_set(DV_EFORMAT, "%s/%s: merge_size %d, but the vision tower merges %d x %d", model_dir,
                          q->pc.source, q->pc.merge, q->merge, q->merge);
        dv_vlm_qwen_free(q);
        return rc;
    }
    snprintf(q->desc, sizeof q->desc, "%s; pixels %lld..%lld", dv_qwen_vit_describe(q->vit),
             (long long)q->pc.min_pixels, (long long)q->pc.max_pixels);
    *out = q;
    return 0;
}

// Frees the per-video buffers.
static void qwen_end(dv_vlm_qwen *q) {
    free(q->u8);
    free(q->chw);
    free(q->patches);
    free(q->feat);
    free(q->deep_host);
    if (q->rows) q->be->ops->free(q->be, q->rows);
    if (q->deep) q->be->ops->free(q->be, q->deep);
    q->u8 = NULL, q->chw = q->patches = q->feat = q->rows = q->deep_host = q->deep = NULL;
    q->batch = 0;
}

void dv_vlm_qwen_free(dv_vlm_qwen *q) {
    if (!q) return;
    qwen_end(q);
    dv_prep_free(q->prep);
    dv_qwen_vit_free(q->vit);
    free(q);
}

int dv_vlm_qwen_d_model(const dv_vlm_qwen *q) { return q->d_model; }
int dv_vlm_qwen_temporal_patch(const dv_vlm_qwen *q) { return q->pc.temporal_patch; }
int dv_vlm_qwen_n_deepstack(const dv_vlm_qwen *q) { return q->n_deep; }
const char *dv_vlm_qwen_describe(const dv_vlm_qwen *q) { return q->desc; }

void dv_vlm_qwen_key(const dv_vlm_qwen *q, char *buf, size_t cap) {
    snprintf(buf, cap, "px=%lld-%lld", (long long)q->pc.min_pixels, (long long)q->pc.max_pixels);
}

int dv_vlm_qwen_plan(const dv_vlm_qwen *q, const dv_video_info *info, const dv_sample_plan *user, int model_fps,
                     int64_t max_groups, dv_vlm_plan *p, int64_t *asked) {
    dv_qwen_prep_config c = q->pc;
    const int tp = c.temporal_patch;
    const double vfps = info->fps;
    if (!(vfps > 0))
        return dv_error_set(DV_EINVAL, "the video states no frame rate (the Qwen-VL processor samples by it)");
    // the frames of the range [start, end): the processor samples from a frame count
    const double start = user->start_sec > 0 ? user->start_sec : 0;
    double end = info->duration_sec > 0 ? info->duration_sec : -1;
    if (end < 0 && info->n_frames > 0) end = (double)info->n_frames / vfps;
    if (user->end_sec >= 0 && (end < 0 || user->end_sec < end)) end = user->end_sec;
    if (end < 0)
        return dv_error_set(DV_EINVAL, "the video states no length (the Qwen-VL processor samples from it): give --end");
    if (!(end > start))
        return dv_error_set(DV_EINVAL, "start %g s is at or past the end of the video (%.3f s)", start, end);
    int64_t total = (int64_t)floor((end - start) * vfps + 0.5);
    if (start == 0 && user->end_sec < 0 && info->n_frames > 0) total = info->n_frames;
    // the user's rate (or frame count) through the processor's rules: even count, min/max frames
    if (user->n_frames > 0) c.fps = (double)user->n_frames * vfps / (double)(total > 0 ? total : 1);
    else if (!model_fps) c.fps = user->fps;
    if (user->max_frames > 0 && user->max_frames < c.max_frames) c.max_frames = (int)user->max_frames;
    int n = 0, n_asked = 0;
    int rc = dv_qwen_sample_frames(&c, total, vfps, NULL, 0, &n_asked);
    if (rc) return rc;
    n = n_asked;
    if (max_groups > 0 && n / tp > max_groups) {
        c.max_frames = (int)(max_groups * tp);
        if ((rc = dv_qwen_sample_frames(&c, total, vfps, NULL, 0, &n))) return rc;
    }
    *asked = n_asked;
    int rw, rh;
    if ((rc = dv_qwen_frame_size(&c, info->display_width, info->display_height, n, &rw, &rh))) return rc;
    p->n_frames = n;
    p->frame_w = rw, p->frame_h = rh;
    p->temporal_patch = tp;
    p->merge = c.merge;
    p->grid_t = (n + tp - 1) / tp, p->grid_h = rh / c.patch, p->grid_w = rw / c.patch;
    p->group_tokens = (p->grid_h / c.merge) * (p->grid_w / c.merge);
    p->tokens_per_frame = (p->group_tokens + tp - 1) / tp;
    p->t_interval = q->tokens_per_second * (double)tp / c.fps; // HF: tokens_per_second x second_per_grid_t
    // decode exactly frames int(k * total / n) of the range: an fps plan whose k-th target lies just
    // after the start of that frame (a thousandth of a frame in, clear of rounding)
    dv_sample_plan sp = dv_sample_plan_default();
    sp.fps = (double)n * vfps / (double)total;
    sp.start_sec = start + 1e-3 / vfps;
    sp.end_sec = sp.start_sec + ((double)n - 0.5) / sp.fps;
    if (q->qwen3) { // Qwen3-VL: frames round(k * (total - 1) / (n - 1)), as dv_qwen_sample_frames
        sp.n_frames = n;
        sp.frame_step = n > 1 ? (double)(total - 1) / (n - 1) : 1; // (one frame: frame 0)
        sp.frame_fps = vfps;
        sp.start_sec = start;
        sp.end_sec = end;
    }
    sp.mode = user->mode;
    p->plan = sp;
    return dv_sample_plan_resolve(&p->plan, info->duration_sec, &p->times);
}

int dv_vlm_qwen_begin(dv_vlm_qwen *q, const dv_vlm_plan *p, int batch) {
    qwen_end(q);
    const int tp = q->pc.temporal_patch, P = q->pc.patch;
    const int groups = (batch + tp - 1) / tp;
    const size_t plane = (size_t)p->frame_w * p->frame_h, K = (size_t)3 * tp * P * P;
    const size_t nrow = (size_t)groups * p->group_tokens * q->d_model;
    q->rw = p->frame_w, q->rh = p->frame_h, q->batch = batch, q->group_tokens = p->group_tokens;
    q->u8 = malloc(plane * 3);
    q->chw = malloc((size_t)batch * 3 * plane * sizeof(float));
    q->patches = malloc((size_t)groups * p->grid_h * p->grid_w * K * sizeof(float));
    q->feat = malloc(nrow * sizeof(float));
    q->rows = q->be->ops->alloc(q->be, nrow * sizeof(float));
    if (q->n_deep) {
        q->deep_host = malloc((size_t)q->n_deep * nrow * sizeof(float));
        q->deep = q->be->ops->alloc(q->be, (size_t)q->n_deep * nrow * sizeof(float));
    }
    if (!q->u8 || !q->chw || !q->patches || !q->feat || !q->rows || (q->n_deep && (!q->deep_host || !q->deep))) {
        qwen_end(q);
        return dv_error_set(DV_ENOMEM, "out of memory for a batch of %d frames of %dx%d", batch, p->frame_w,
                            p->frame_h);
    }
    return 0;
}

int dv_vlm_qwen_encode(dv_vlm_qwen *q, const dv_image *frames, int n, const float **rows, const float **deep,
                       int *n_groups) {
    DV_ASSERT(n > 0 && n <= q->batch);
    const int tp = q->pc.temporal_patch, P = q->pc.patch;
    const size_t plane = (size_t)q->rw * q->rh;
    for (int i = 0; i < n; i++) {
        const dv_image *f = &frames[i];
        int rc = dv_prep_resize(q->prep, f->rgb, f->w, f->h, f->stride, q->u8, q->rw, q->rh);
        if (rc) return rc;
        dv_prep_normalize(&q->pc.px, q->u8, q->rw, q->rh, q->chw + (size_t)i * 3 * plane);
    }
    const int gt = (n + tp - 1) / tp;
    dv_qwen_patchify(&q->pc, q->chw, n, q->rh, q->rw, q->patches);
    int rc = dv_qwen_vit_encode_deepstack(q->vit, q->patches, gt, q->rh / P, q->rw / P, q->feat, q->deep_host);
    const size_t bytes = (size_t)gt * q->group_tokens * q->d_model * sizeof(float);
    if (!rc) rc = q->be->ops->upload(q->be, q->rows, q->feat, bytes);
    if (!rc && q->n_deep) rc = q->be->ops->upload(q->be, q->deep, q->deep_host, (size_t)q->n_deep * bytes);
    if (rc) return rc;
    *rows = q->rows;
    *deep = q->n_deep ? q->deep : NULL;
    *n_groups = gt;
    return 0;
}

const char *dv_vlm_qwen_video_open(const dv_vlm_qwen *q) { return (void)q, "<|vision_start|>"; }
const char *dv_vlm_qwen_video_close(const dv_vlm_qwen *q) { return (void)q, "<|vision_end|>"; }

int dv_vlm_qwen_group_text(const dv_vlm_qwen *q, const dv_vlm_plan *p, const double *t, int n, char *before,
                           char *after, size_t cap) {
    if (cap) before[0] = after[0] = 0;
    if (!q->qwen3 || n < 1) return 0;
    // Qwen3VLProcessor: the mean of the group's first and last frame times (the last frame repeated),
    // each frame index / fps as HF computes it (decoded times snapped to their frame)
    const double fps = p->plan.frame_fps;
    const int last = n < q->pc.temporal_patch ? n - 1 : q->pc.temporal_patch - 1;
    const double a = fps > 0 ? (double)llround(t[0] * fps) / fps : t[0];
    const double b = fps > 0 ? (double)llround(t[last] * fps) / fps : t[last];
    char ts[64];
    dv_qwen_timestamp_text((a + b) / 2, ts, sizeof ts);
    snprintf(before, cap, "%s<|vision_start|>", ts);
    snprintf(after, cap, "<|vision_end|>");
    return 0;
}

int dv_vlm_qwen_positions(const dv_vlm_qwen *q, const dv_vlm_plan *p, int video_start, int text_pos, int g,
                          int32_t *pos, int64_t stride) {
    if (q->qwen3) { // Qwen3-VL get_rope_index: each group its own grid where the text left off
        const int none = 0;
        return dv_qwen3_video_positions(text_pos, 1, p->grid_h, p->grid_w, p->merge, &none, 0, pos, stride);
    }
    (void)text_pos; // Qwen2.5-VL: every group on the video's one grid (HF get_rope_index)
    return dv_qwen_video_positions_part(video_start, g, 1, p->grid_h, p->grid_w, p->merge, p->t_interval, pos, stride);
}
