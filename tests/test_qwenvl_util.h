// test_qwenvl_util.h: what the Qwen-VL library-level parity tests share (test_qwen25vl_parity.c,
// test_qwen3vl_parity.c): reading the HF reference tensors, the clip through duovid's own video/ and
// encoder/ (the processor's frames, preprocessing and the vision tower, DeepStack included), opening
// the text model with f32 KV, and one chat turn (prefill + greedy steps).
#ifndef TEST_QWENVL_UTIL_H
#define TEST_QWENVL_UTIL_H

#include "core/dv_error.h"
#include "core/dv_safetensors.h"
#include "encoder/dv_qwen_vision.h"
#include "llm/dv_duo_pattern.h"
#include "llm/dv_llm.h"
#include "tests/dv_test.h"
#include "video/dv_video.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QV_CLIP "tests/fixtures/vlm/clip.mp4"
#define QV_MAX_FRAMES 64

// The fixture tensor `name` (dtype dt, the given shape), NULL (and a FAIL line) when absent or different.
static inline const void *qv_ref(const dv_safetensors *st, const char *name, dv_dtype dt, int nd, const int64_t *shape) {
    const dv_st_tensor *t = NULL;
    if (dv_safetensors_get(st, name, nd, shape, &t) || t->dtype != dt) {
        fprintf(stderr, "FAIL fixture tensor %s: %s\n", name, dv_error_message());
        return NULL;
    }
    return t->data;
}

// The 1-D I32 tensor `name` (*n its length), NULL when absent.
static inline const int32_t *qv_ref_ids(const dv_safetensors *st, const char *name, int64_t *n) {
    const dv_st_tensor *t = dv_safetensors_find(st, name);
    if (!t || t->dtype != DV_DTYPE_I32 || t->n_dims != 1) return NULL;
    *n = t->shape[0];
    return t->data;
}

// The clip as the processor saw it: its config, the sampled frames, the grid and the patch rows.
typedef struct qv_clip {
    dv_qwen_prep_config c;
    int n, gt, gh, gw;             // sampled frames, grid (temporal patches, patch rows, patch columns)
    int32_t idx[QV_MAX_FRAMES];    // sampled frame indices
    double video_fps;
    float *patches;                // (gt * gh * gw, 3 * tp * P * P), freed by qv_clip_free
} qv_clip;

static inline void qv_clip_free(qv_clip *k) {
    free(k->patches);
    k->patches = NULL;
}

// The video's merged tokens feat (NT, out_dim) and DeepStack features deep (n_deep, NT, out_dim; may
// be NULL) from the clip, through duovid's own video/ + encoder/ for the model in `model` (relative).
static inline int qv_encode_clip(const char *model, qv_clip *k, float *feat, float *deep) {
    dv_video *video = NULL;
    dv_video_sampler *s = NULL;
    dv_prep *prep = NULL;
    dv_qwen_vit *vit = NULL;
    uint8_t *u8 = NULL;
    float *chw = NULL;
    int rw = 0, rh = 0, got = 0;
    memset(k, 0, sizeof *k);
    int rc = dv_qwen_prep_config_load(dv_test_path(model), 0, 0, &k->c);
    if (!rc) rc = dv_video_open(dv_test_path(QV_CLIP), NULL, &video);
    const dv_video_info *info = rc ? NULL : dv_video_get_info(video);
    if (!rc) rc = dv_qwen_sample_frames(&k->c, info->n_frames, info->fps, k->idx, QV_MAX_FRAMES, &k->n);
    if (!rc) rc = dv_qwen_frame_size(&k->c, info->display_width, info->display_height, k->n, &rw, &rh);
    if (!rc) rc = dv_prep_init(&k->c.px, &prep);
    if (!rc) rc = dv_qwen_vit_open(dv_test_path(model), NULL, 2, &vit);
    if (rc) goto done;
    const int n = k->n, tp = k->c.temporal_patch, P = k->c.patch;
    k->video_fps = info->fps;
    k->gt = (n + tp - 1) / tp, k->gh = rh / P, k->gw = rw / P;
    u8 = malloc((size_t)rw * rh * 3);
    chw = malloc((size_t)n * 3 * rw * rh * sizeof(float));
    k->patches = malloc((size_t)k->gt * k->gh * k->gw * 3 * tp * P * P * sizeof(float));
    dv_sample_plan plan = dv_sample_plan_default();
    plan.n_frames = info->n_frames;
    if ((rc = dv_video_sampler_init(video, &plan, 0, 0, &s))) goto done;
    dv_frame f;
    for (int r; got < n && (r = dv_video_sampler_next(s, &f)) == 1;) {
        while (got < n && f.src_index == k->idx[got]) { // a frame may be sampled once only, but be safe
            if ((rc = dv_prep_resize(prep, f.rgb, f.w, f.h, 3 * f.w, u8, rw, rh))) goto done;
            dv_prep_normalize(&k->c.px, u8, rw, rh, chw + (size_t)got++ * 3 * rw * rh);
        }
    }
    if (got != n) {
        rc = dv_error_set(DV_EINVAL, "decoded %d of %d frames", got, n);
        goto done;
    }
    dv_qwen_patchify(&k->c, chw, n, rh, rw, k->patches);
    rc = dv_qwen_vit_encode_deepstack(vit, k->patches, k->gt, k->gh, k->gw, feat, deep);
done:
    if (rc) fprintf(stderr, "FAIL encode clip: %s\n", dv_error_message());
    dv_qwen_vit_free(vit);
    dv_video_sampler_free(s);
    dv_video_free(video);
    dv_prep_free(prep);
    free(u8), free(chw);
    return rc;
}

// The text model of the folder `model` on be: n_batch-token chunks, a DuoAttention pattern or NULL,
// f32 KV (HF parity: the pipeline's own arithmetic, no KV rounding).
static inline dv_llm *qv_open_llm(const char *model, dv_backend *be, int n_batch, const dv_duo_pattern *pat) {
    dv_llm_params p = dv_llm_default_params();
    p.backend = be, p.n_batch = n_batch, p.pattern = pat, p.n_ctx = 1024;
    p.kv_type_k = p.kv_type_v = DV_KV_F32;
    dv_llm *m = NULL;
    if (dv_llm_open(dv_test_path(model), &p, &m)) fprintf(stderr, "FAIL open llm: %s\n", dv_error_message());
    return m;
}

// The prompt's input embeddings emb (n, hidden) host F32 (a CPU backend's memory): the token table's rows.
static inline int qv_embed_ids(dv_llm *m, dv_backend *be, const int32_t *ids, int n, int hidden, float *emb) {
    dv_tensor et = dv_tensor_2d(DV_DTYPE_F32, emb, n, hidden);
    const int rc = dv_llm_embed_tokens_tensor(m, ids, n, &et);
    return rc ? rc : be->ops->synchronize(be);
}

// One prompt: embeddings emb (n, hidden) with positions pos (3, n) and DeepStack rows add (n_add, n,
// hidden; NULL: none) -- or, when emb is NULL, text ids tail (n) at text positions.
typedef struct qv_turn {
    const float *emb;
    const int32_t *pos;
    const float *add;
    int n_add, n, hidden;
    const int32_t *tail;
} qv_turn;

// Prefill t, then n greedy tokens over a vocabulary of V: ids (n), logits (n, V); 0 or the first error.
static inline int qv_run_turn(dv_llm *m, const qv_turn *t, int V, int n, int32_t *ids, float *logits) {
    float *lg = malloc((size_t)V * sizeof(float));
    int rc = lg ? 0 : DV_ENOMEM;
    if (!rc && t->emb) {
        dv_tensor e = dv_tensor_2d(DV_DTYPE_F32, (void *)t->emb, t->n, t->hidden);
        dv_tensor a = dv_tensor_3d(DV_DTYPE_F32, (void *)t->add, t->n_add, t->n, t->hidden);
        rc = t->add ? dv_llm_prefill_deepstack(m, &e, t->pos, &a, lg, 0) : dv_llm_prefill_pos(m, NULL, &e, t->pos, t->n, lg, 0);
    } else if (!rc) {
        rc = dv_llm_prefill(m, t->tail, NULL, t->n, lg, 0);
    }
    for (int i = 0; !rc && i < n; i++) {
        int best = 0;
        for (int v = 1; v < V; v++) best = lg[v] > lg[best] ? v : best;
        ids[i] = best;
        memcpy(logits + (size_t)i * V, lg, (size_t)V * sizeof(float));
        rc = dv_llm_decode(m, best, lg);
    }
    if (rc) fprintf(stderr, "FAIL turn: %s\n", dv_error_message());
    free(lg);
    return rc;
}

// DuoAttention over the prompt t of the model in `model` (n_layers x n_kv KV heads), 16 greedy steps in
// 32-cell chunks: at sparsity 0 the logits equal full attention's ref_logits (16, V) within 1e-5 and
// the tokens are want_ids; at 0.5 (alphas 0.1, 0.2, ..; sink 4, recent 16 cells) two runs agree
// bitwise and differ from full attention (streaming heads really dropped cells).
static inline void qv_check_duo(dv_backend *be, const char *model, int n_layers, int n_kv, const qv_turn *t, int V,
                                const float *ref_logits, const int32_t *want_ids) {
    dv_duo_pattern *pat = NULL;
    int32_t g[2][16];
    float *lg = malloc((size_t)2 * 16 * V * sizeof(float));
    if (!lg || dv_duo_pattern_full(n_layers, n_kv, &pat)) {
        DV_CHECK_MSG(0, "duo pattern: %s", dv_error_message());
        free(lg);
        return;
    }
    pat->sink = 4, pat->recent = 16;
    dv_duo_pattern_set_sparsity(pat, 0);
    dv_llm *m = qv_open_llm(model, be, 32, pat);
    if (m && qv_run_turn(m, t, V, 16, g[0], lg) == 0) {
        dv_test_close("duo sparsity 0 vs full (chunk 32)", lg, ref_logits, 16 * (size_t)V, 1e-5);
        DV_CHECK(!memcmp(g[0], want_ids, sizeof g[0]));
    }
    dv_llm_free(m);
    for (int i = 0; i < n_layers * n_kv; i++) pat->alpha[i] = 0.1 * (i + 1);
    dv_duo_pattern_set_sparsity(pat, 0.5);
    DV_CHECK(pat->n_retrieval == n_layers * n_kv / 2);
    int ok = 1;
    for (int r = 0; r < 2; r++) {
        m = qv_open_llm(model, be, 32, pat);
        ok = ok && m && qv_run_turn(m, t, V, 16, g[r], lg + (size_t)r * 16 * V) == 0;
        dv_llm_free(m);
    }
    DV_CHECK(ok && !memcmp(lg, lg + (size_t)16 * V, (size_t)16 * V * sizeof(float)) && !memcmp(g[0], g[1], sizeof g[0]));
    double diff = 0;
    for (int i = 0; i < V; i++) diff = fmax(diff, fabs(lg[i] - ref_logits[i]));
    printf("     duo sparsity 0.5 (sink 4, recent 16 cells): deterministic, max |logit - full| %.3g, greedy", diff);
    for (int i = 0; i < 16; i++) printf(" %d", g[0][i]);
    printf("\n");
    DV_CHECK(diff > 0);
    dv_duo_pattern_free(pat);
    free(lg);
}

#endif
