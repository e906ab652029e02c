// pipeline.c: the video-QA pipeline (dv_vlm.h): open the VLM, plan the frames that fit, stream
// decode -> encode -> prefill into the (DuoAttention) KV cache, then answer questions.
#include "vlm/dv_vlm.h"

#include "llm/dv_generate.h"
#include "vlm/frame_prefetch.h"
#include "vlm/qwen_video.h"
#include "vlm/vlm_internal.h"
#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dv_vlm {
    dv_backend *be;                // not owned: the encoder's and the LLM's
    dv_llm *llm;                   // owned
    dv_encoder *enc;               // owned (LLaVA-style models; NULL for Qwen-VL)
    dv_vlm_qwen *qwen;             // owned (Qwen-VL models; NULL otherwise)
    dv_tokenizer *tok;             // owned
    dv_sampler *smp;               // owned, re-made when the settings change
    dv_sampler_params smp_params;
    dv_template tpl;
    const char *tpl_why;
    const dv_llm_config *cfg;
    int n_ctx, n_batch, encode_batch, tpf, d_model;
    int video_model;               // 1: frames are <video> tokens back to back; 0: one <image> each
    int suffix;                    // rows after the last frame (OneVision's image_newline: 1; Qwen-VL: the
                                   // tokens of <|vision_end|>)

    // the prefill feeder: rows are gathered until a chunk of n_batch is full. Both buffers live on the
    // backend (device memory on a GPU): frame and text embeddings never visit the host.
    float *feed;                   // (n_batch, H) on the backend, owned
    int n_feed;
    float *text_emb;               // (n_batch, H) on the backend, owned: text tokens' embeddings on their way in
    int64_t stream_window;         // sink + recent of DuoAttention streaming heads (0: full attention)
    // M-RoPE (Qwen-VL): every fed row carries its (t, h, w) position; text rows take next_pos, next_pos,
    // next_pos and advance it; a video's rows come with theirs (dv_vlm_qwen_positions)
    int mrope;
    int32_t *feed_pos;             // (3, n_batch) host, owned: the positions of the rows in feed
    // DeepStack (Qwen3-VL): n_deep rows per fed row, added after the first decoder layers; text rows zero
    int n_deep;
    float *feed_deep;              // (n_deep, n_batch, H) on the backend, owned (NULL: no DeepStack)
    float *zeros;                  // (n_batch, H) on the backend, owned: the text rows' DeepStack rows
    int32_t *vid_pos;              // (3, vid_pos_cap) host, owned: one frame group's positions
    int64_t vid_pos_cap;
    int next_pos;                  // position of the next text row fed
    int video_next_pos;            // where the first question's text starts (HF: after the video's grid)
    int32_t *ids;                  // (n_ctx) token scratch, owned
    float *logits;                 // (V), owned
    int32_t *answer_ids;           // (n_ctx) this answer's tokens (repetition penalty), owned
    char *answer;                  // answer text, owned, grows
    size_t answer_cap;

    double *frame_t;               // (frame_t_cap) times of the frames in the context, owned
    int64_t n_frame_t, frame_t_cap;
    int64_t video_tokens;          // context length right after the video (the conversation starts here)
    FILE *snapshot;                // the context right after the video, for /reset with DuoAttention

    char *model_dir;               // owned copy, for the context cache's model hash
    char *cache_dir;               // owned copy ("" : no cache)
    uint64_t model_hash;           // dv_ctx_hash_model(model_dir), computed on first use
    int have_model_hash;
    uint64_t pattern_hash;         // dv_ctx_hash_pattern(pattern, duo_prefill), mixed with the KV row types
                                   // (a context of other KV types is another cache file)

    const dv_image *needle;        // V-NIAH: replaces the planned frame at needle_depth (NULL: none), not owned
    double needle_depth;
};

static int encode(dv_vlm *v, const char *text, int bos, int *n);

dv_vlm_params dv_vlm_default_params(void) {
    dv_vlm_params p = {.backend = NULL, .n_ctx = 0, .n_batch = 256, .pattern = NULL,
                       .duo_prefill = DV_DUO_PREFILL_REFERENCE, .kv_type_k = DV_LLM_KV_DEFAULT,
                       .kv_type_v = DV_LLM_KV_DEFAULT, .template_kind = -1, .system = NULL,
                       .encode_batch = 8, .cache_dir = NULL, .min_pixels = 0, .max_pixels = 0};
    return p;
}

// Callback helpers: each accepts cb == NULL or a NULL member.
static int dv_vlm_cb_cancel(const dv_vlm_callbacks *cb) { return cb && cb->cancel && cb->cancel(cb->user); }

static void dv_vlm_cb_progress(const dv_vlm_callbacks *cb, const char *stage, const char *unit,
                               dv_vlm_progress_state st, int64_t done, int64_t total, const char *note) {
    if (cb && cb->on_progress) cb->on_progress(cb->user, stage, unit, st, done, total, note ? note : "");
}

dv_llm *dv_vlm_llm(dv_vlm *v) { return v->llm; }
dv_tokenizer *dv_vlm_tokenizer(dv_vlm *v) { return v->tok; }
dv_encoder *dv_vlm_encoder(dv_vlm *v) { return v->enc; }
const char *dv_vlm_describe_vision(const dv_vlm *v) {
    return v->qwen ? dv_vlm_qwen_describe(v->qwen) : dv_encoder_describe(v->enc);
}
int dv_vlm_describe_folder(const char *model_dir, char *buf, size_t cap) {
    int rc;
    if (dv_vlm_qwen_detect(model_dir)) {
        dv_backend *be = dv_backend_cpu_init(1);
        dv_vlm_qwen *q = NULL;
        if (!be) return dv_error_set(DV_ENOMEM, "out of memory");
        if (!(rc = dv_vlm_qwen_open(model_dir, be, 0, 0, &q))) snprintf(buf, cap, "%s", dv_vlm_qwen_describe(q));
        dv_vlm_qwen_free(q);
        dv_backend_free(be);
        return rc;
    }
    dv_encoder_params ep = dv_encoder_default_params();
    ep.n_threads = 1;
    dv_encoder *e = NULL;
    if (!(rc = dv_encoder_open(model_dir, &ep, &e))) snprintf(buf, cap, "%s", dv_encoder_describe(e));
    dv_encoder_free(e);
    return rc;
}

int dv_vlm_video_position(const dv_vlm *v) { return v->video_next_pos; }
void dv_vlm_set_video_position(dv_vlm *v, int pos) { v->video_next_pos = pos; }
const dv_template *dv_vlm_template(const dv_vlm *v) { return &v->tpl; }
const char *dv_vlm_template_why(const dv_vlm *v) { return v->tpl_why; }
int64_t dv_vlm_video_tokens(const dv_vlm *v) { return v->video_tokens; }
int dv_vlm_cache_on(const dv_vlm *v) { return v->cache_dir[0] != 0 && !v->needle; }

int dv_vlm_set_needle(dv_vlm *v, const dv_image *img, double depth) {
    if (img && !(depth >= 0 && depth <= 1)) return dv_error_set(DV_EINVAL, "needle depth %g is not in [0, 1]", depth);
    v->needle = img;
    v->needle_depth = depth;
    return 0;
}
const char *dv_vlm_cache_dir(const dv_vlm *v) { return v->cache_dir; }

int dv_vlm_open(const char *model_dir, const dv_vlm_params *p, dv_vlm **out) {
    *out = NULL;
    DV_ASSERT(p && p->backend);
    int rc;
    dv_vlm *v = calloc(1, sizeof *v);
    if (!v) return dv_error_set(DV_ENOMEM, "out of memory");
    v->be = p->backend;
    v->encode_batch = p->encode_batch > 0 ? p->encode_batch : 8;
    v->model_dir = strdup(model_dir);
    v->cache_dir = strdup(p->cache_dir ? p->cache_dir : "");
    if (!v->model_dir || !v->cache_dir) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto fail;
    }
    v->pattern_hash = dv_ctx_hash_pattern(p->pattern, p->duo_prefill);

    dv_encoder_params ep = dv_encoder_default_params();
    ep.backend = p->backend;
    ep.n_threads = p->backend->n_threads;
    ep.max_batch = v->encode_batch;
    if (dv_vlm_qwen_detect(model_dir)) {
        if ((rc = dv_vlm_qwen_open(model_dir, p->backend, p->min_pixels, p->max_pixels, &v->qwen))) goto fail;
        // a group of temporal_patch frames is encoded at once: batches hold whole groups
        const int tp = dv_vlm_qwen_temporal_patch(v->qwen);
        v->encode_batch = (v->encode_batch + tp - 1) / tp * tp;
    } else if (p->min_pixels || p->max_pixels) {
        rc = dv_error_set(DV_EINVAL, "%s: --min-pixels / --max-pixels apply to Qwen-VL models only", model_dir);
        goto fail;
    } else if ((rc = dv_encoder_open(model_dir, &ep, &v->enc))) {
        goto fail;
    }
    if ((rc = dv_tokenizer_open(model_dir, &v->tok))) goto fail;
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = p->backend;
    lp.n_ctx = p->n_ctx;
    lp.n_batch = p->n_batch;
    lp.pattern = p->pattern;
    lp.duo_prefill = p->duo_prefill;
    lp.kv_type_k = p->kv_type_k;
    lp.kv_type_v = p->kv_type_v;
    if ((rc = dv_llm_open(model_dir, &lp, &v->llm))) goto fail;
    dv_kv_memory km;
    dv_kv_cache_memory(dv_llm_kv_cache(v->llm), &km);
    v->pattern_hash ^= 0x9e3779b97f4a7c15ull * (uint64_t)(1 + (int)km.k_type * DV_KV_TYPE_COUNT + (int)km.v_type);
    v->cfg = dv_llm_get_config(v->llm);
    v->n_ctx = dv_llm_n_ctx(v->llm);
    v->n_batch = p->n_batch > 0 ? p->n_batch : 256;
    if (v->n_batch > v->n_ctx) v->n_batch = v->n_ctx;
    if (v->qwen) { // tokens per frame depend on each video's size (smart_resize): the plan says
        v->d_model = dv_vlm_qwen_d_model(v->qwen);
        v->video_model = 1;
        v->mrope = 1;
        if (!v->cfg->mrope) {
            rc = dv_error_set(DV_EFORMAT, "%s/config.json: a Qwen-VL model whose text model has no mrope_section",
                              model_dir);
            goto fail;
        }
    } else {
        v->tpf = dv_encoder_tokens_per_frame(v->enc);
        v->d_model = dv_encoder_d_model(v->enc);
        v->video_model = dv_encoder_is_video_model(v->enc);
        v->suffix = dv_encoder_video_suffix_tokens(v->enc);
    }
    if (v->d_model != v->cfg->hidden_size) {
        rc = dv_error_set(DV_ESHAPE, "%s: the projector gives %d-wide tokens but the language model's hidden size is %d",
                          model_dir, v->d_model, v->cfg->hidden_size);
        goto fail;
    }
    if (dv_tokenizer_vocab_size(v->tok) > v->cfg->vocab_size) {
        rc = dv_error_set(DV_EFORMAT, "%s: the tokenizer has %d tokens but the model only %d", model_dir,
                          dv_tokenizer_vocab_size(v->tok), v->cfg->vocab_size);
        goto fail;
    }
    if ((rc = dv_template_load(model_dir, p->template_kind, p->system, &v->tpl, &v->tpl_why))) goto fail;

    const size_t H = (size_t)v->cfg->hidden_size;
    v->feed = v->be->ops->alloc(v->be, (size_t)v->n_batch * H * sizeof(float));
    v->text_emb = v->be->ops->alloc(v->be, (size_t)v->n_batch * H * sizeof(float));
    v->stream_window = p->pattern ? (int64_t)p->pattern->sink + p->pattern->recent : 0;
    v->ids = malloc((size_t)v->n_ctx * sizeof(int32_t));
    v->answer_ids = malloc((size_t)v->n_ctx * sizeof(int32_t));
    v->logits = malloc((size_t)v->cfg->vocab_size * sizeof(float));
    v->feed_pos = malloc((size_t)3 * v->n_batch * sizeof(int32_t));
    v->answer_cap = 4096;
    v->answer = malloc(v->answer_cap);
    if (!v->feed || !v->text_emb || !v->ids || !v->answer_ids || !v->logits || !v->answer || !v->feed_pos) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto fail;
    }
    if (v->qwen && (v->n_deep = dv_vlm_qwen_n_deepstack(v->qwen)) > 0) { // zeros uploaded once
        float *z = calloc((size_t)v->n_batch * H, sizeof(float));
        v->feed_deep = v->be->ops->alloc(v->be, (size_t)v->n_deep * v->n_batch * H * sizeof(float));
        v->zeros = v->be->ops->alloc(v->be, (size_t)v->n_batch * H * sizeof(float));
        rc = z && v->feed_deep && v->zeros ? v->be->ops->upload(v->be, v->zeros, z, (size_t)v->n_batch * H * sizeof(float))
                                            : dv_error_set(DV_ENOMEM, "out of memory");
        free(z);
        if (rc) goto fail;
    }
    if (v->qwen) { // the family's text closing the video (<|vision_end|>), counted like OneVision's closing row
        int n = 0;
        if (*dv_vlm_qwen_video_close(v->qwen) && (rc = encode(v, dv_vlm_qwen_video_close(v->qwen), 0, &n))) goto fail;
        v->suffix = n;
    }
    DV_LOG_DEBUG("%s: %s, %d tokens per frame, template %s (%s)", model_dir, dv_vlm_describe_vision(v),
                 v->tpf, dv_template_name(v->tpl.kind), v->tpl_why);
    *out = v;
    return 0;
fail:
    dv_vlm_free(v);
    return rc;
}

void dv_vlm_free(dv_vlm *v) {
    if (!v) return;
    dv_llm_free(v->llm);
    dv_encoder_free(v->enc);
    dv_vlm_qwen_free(v->qwen);
    dv_tokenizer_free(v->tok);
    dv_sampler_free(v->smp);
    if (v->snapshot) fclose(v->snapshot);
    if (v->feed) v->be->ops->free(v->be, v->feed);
    if (v->feed_deep) v->be->ops->free(v->be, v->feed_deep);
    if (v->zeros) v->be->ops->free(v->be, v->zeros);
    if (v->text_emb) v->be->ops->free(v->be, v->text_emb);
    free(v->ids);
    free(v->logits);
    free(v->feed_pos);
    free(v->vid_pos);
    free(v->answer_ids);
    free(v->answer);
    free(v->frame_t);
    free(v->model_dir);
    free(v->cache_dir);
    free(v);
}

// ---- tokens ----

// Encodes text into v->ids (BOS only when asked); *n set.
static int encode(dv_vlm *v, const char *text, int bos, int *n) {
    int rc = dv_tokenizer_encode(v->tok, text, bos && dv_tokenizer_add_bos(v->tok), v->ids, v->n_ctx, n);
    if (rc) return dv_error_prefix(rc, "prompt text does not fit the context of %d tokens", v->n_ctx);
    return 0;
}

static int copy_ids(dv_vlm *v, int n, int32_t **ids) {
    *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (!*ids) return dv_error_set(DV_ENOMEM, "out of memory");
    memcpy(*ids, v->ids, (size_t)n * sizeof(int32_t));
    return 0;
}

// The text before the video's rows: the template's, and Qwen-VL's (<|vision_start|>).
static int prefix_text(const dv_vlm *v, char *buf, size_t cap) {
    int rc = dv_template_prefix(&v->tpl, buf, cap);
    if (rc || !v->qwen) return rc;
    const size_t n = strlen(buf), m = strlen(dv_vlm_qwen_video_open(v->qwen));
    if (n + m >= cap) return dv_error_set(DV_EINVAL, "prompt text too long");
    memcpy(buf + n, dv_vlm_qwen_video_open(v->qwen), m + 1);
    return 0;
}

int dv_vlm_prefix_ids(dv_vlm *v, int32_t **ids, int *n) {
    char text[4096];
    int rc = prefix_text(v, text, sizeof text);
    if (!rc) rc = encode(v, text, 1, n);
    return rc ? rc : copy_ids(v, *n, ids);
}

static int question_text(dv_vlm *v, const char *q, int first, char *buf, size_t cap) {
    return first ? dv_template_first_question(&v->tpl, q, buf, cap) : dv_template_next_question(&v->tpl, q, buf, cap);
}

// The question turn's tokens into v->ids.
static int question_tokens(dv_vlm *v, const char *question, int first, int *n) {
    size_t cap = strlen(question) + 256;
    char *text = malloc(cap);
    if (!text) return dv_error_set(DV_ENOMEM, "out of memory");
    int rc = question_text(v, question, first, text, cap);
    if (!rc) rc = encode(v, text, 0, n);
    free(text);
    return rc;
}

int dv_vlm_question_ids(dv_vlm *v, const char *question, int first, int32_t **ids, int *n) {
    int rc = question_tokens(v, question, first, n);
    return rc ? rc : copy_ids(v, *n, ids);
}

static void timestamp_text(double t, char *buf, size_t cap) { snprintf(buf, cap, "t=%.1fs:", t); }

// ---- plan ----

// Context cells n_frames frames take (Qwen-VL: whole temporal-patch groups, their text as plan_qwen
// counted it for the plan's own frames, else at its widest; other models: each frame's tokens and its
// text).
static int64_t frames_cells(const dv_vlm *v, const dv_vlm_plan *p, int64_t n_frames) {
    if (v->qwen) {
        const int64_t groups = (n_frames + p->temporal_patch - 1) / p->temporal_patch;
        return groups * p->group_tokens + (n_frames == p->n_frames ? p->text_tokens : groups * p->ts_tokens);
    }
    return n_frames * (p->tokens_per_frame + p->ts_tokens);
}

// Qwen-VL: the text cells of plan p's groups, each group's text (Qwen3-VL: "<t seconds>" and its
// markers) from the planned times of its frames, tokenized as the feeder will.
static int qwen_text_tokens(dv_vlm *v, dv_vlm_plan *p) {
    const int tp = p->temporal_patch; // <= 8 (encoder/qwen_prep.c checks the processor config)
    double t[8];
    char before[128], after[128];
    p->text_tokens = 0;
    for (int64_t f0 = 0; f0 < p->n_frames; f0 += tp) {
        const int nf = p->n_frames - f0 < tp ? (int)(p->n_frames - f0) : tp;
        for (int i = 0; i < nf; i++) t[i] = dv_plan_times_at(&p->times, f0 + i);
        int nb = 0, na = 0, rc = dv_vlm_qwen_group_text(v->qwen, p, t, nf, before, after, sizeof before);
        if (rc || (*before && (rc = encode(v, before, 0, &nb))) || (*after && (rc = encode(v, after, 0, &na)))) return rc;
        p->text_tokens += nb + na;
    }
    return 0;
}

static int no_fit(int64_t max_tokens, int64_t reserve, int64_t prompt, int64_t per, const char *unit) {
    return dv_error_set(DV_EINVAL,
                        "not even one %s fits: the context budget is %lld tokens (%lld kept for the question and "
                        "answer), the prompt needs %lld and a %s %lld (raise --max-tokens-context or --ctx)",
                        unit, (long long)max_tokens, (long long)reserve, (long long)prompt, unit, (long long)per);
}

// Qwen-VL: the processor's frames (even count, min/max frames, smart_resize), as many groups as fit.
static int plan_qwen(dv_vlm *v, const dv_video_info *info, const dv_vlm_video_opts *o, int64_t max_tokens,
                     dv_vlm_plan *out) {
    int64_t asked = 0;
    int rc = dv_vlm_qwen_plan(v->qwen, info, &o->plan, o->model_fps, 0, out, &asked);
    if (rc) return rc;
    out->asked_frames = asked;
    char before[128], after[128];
    const double tend = info->duration_sec > 0 ? info->duration_sec : 1e5, tmax[2] = {tend, tend};
    if ((rc = dv_vlm_qwen_group_text(v->qwen, out, tmax, 2, before, after, sizeof before))) return rc;
    int nb = 0, na = 0; // the widest text a group gets (timestamps), one more for digit-run differences
    if ((*before && (rc = encode(v, before, 0, &nb))) || (*after && (rc = encode(v, after, 0, &na)))) return rc;
    out->ts_tokens = nb + na ? nb + na + 1 : 0;
    const int64_t per = out->group_tokens + out->ts_tokens;
    const int64_t fit = (out->budget - out->prefix_tokens - v->suffix) / per;
    if (fit < 1) return no_fit(max_tokens, o->reserve, out->prefix_tokens + v->suffix, per, "frame group");
    if (out->grid_t > fit) {
        if ((rc = dv_vlm_qwen_plan(v->qwen, info, &o->plan, o->model_fps, fit, out, &asked))) return rc;
        out->capped = 1;
    }
    return out->ts_tokens ? qwen_text_tokens(v, out) : 0;
}

int dv_vlm_plan_video(dv_vlm *v, const dv_video_info *info, const dv_vlm_video_opts *o, dv_vlm_plan *out) {
    memset(out, 0, sizeof *out);
    int rc, n;
    char text[4096];
    out->plan = o->plan;
    out->duration_sec = info->duration_sec;
    out->tokens_per_frame = v->tpf;
    if ((rc = prefix_text(v, text, sizeof text)) || (rc = encode(v, text, 1, &n))) return rc;
    out->prefix_tokens = n;
    const int64_t max_tokens = o->max_tokens > 0 && o->max_tokens < v->n_ctx ? o->max_tokens : v->n_ctx;
    out->budget = max_tokens - o->reserve;
    if (v->qwen) {
        if ((rc = plan_qwen(v, info, o, max_tokens, out))) return rc;
        goto kv;
    }
    if ((rc = dv_sample_plan_resolve(&out->plan, info->duration_sec, &out->times))) return rc;
    out->asked_frames = out->times.count;
    if (o->timestamps) { // the widest timestamp the plan can print
        double tmax = out->times.end_sec > 0 ? out->times.end_sec : (info->duration_sec > 0 ? info->duration_sec : 1e5);
        timestamp_text(tmax, text, sizeof text);
        if ((rc = encode(v, text, 0, &n))) return rc;
        out->ts_tokens = n + 1; // one more for digit-run tokenization differences
    }
    if (!v->video_model) { // the "\n" between frames of image models
        if ((rc = encode(v, "\n", 0, &n))) return rc;
        out->ts_tokens += n;
    }
    const int64_t per = out->tokens_per_frame + out->ts_tokens;
    const int64_t fit = (out->budget - out->prefix_tokens - v->suffix) / per;
    if (fit < 1) return no_fit(max_tokens, o->reserve, out->prefix_tokens + v->suffix, per, "frame");
    if (out->times.count < 0 || out->times.count > fit) {
        // too many (or unbounded): the uniform fallback of max_frames (dv_sample_plan.h)
        out->plan.max_frames = fit;
        out->capped = 1;
        if ((rc = dv_sample_plan_resolve(&out->plan, info->duration_sec, &out->times))) return rc;
    }
    out->n_frames = out->times.count;
kv:
    out->context_tokens = out->prefix_tokens + frames_cells(v, out, out->n_frames) + v->suffix;

    // KV estimate at the full budget: retrieval heads keep every token, streaming heads sink + recent
    const dv_kv_cache *kv = dv_llm_kv_cache(v->llm);
    const dv_llm_config *c = v->cfg;
    const int64_t tokens = out->context_tokens + o->reserve;
    dv_kv_memory km;
    dv_kv_cache_memory(kv, &km);
    const size_t row = (size_t)(dv_kv_row_bytes(km.k_type, c->head_dim) + dv_kv_row_bytes(km.v_type, c->head_dim));
    out->kv_bytes_per_token = km.bytes_per_token;
    out->kv_type_k = km.k_type;
    out->kv_type_v = km.v_type;
    for (int l = 0; l < c->n_attn_layers; l++) // the KV cache covers the attention layers only
        for (int h = 0; h < c->n_kv_heads; h++) {
            // streaming heads keep their constant window (allocated whole), retrieval heads every token
            const int64_t keep = dv_kv_cache_is_retrieval(kv, l, h) ? tokens : v->stream_window;
            out->kv_bytes += (size_t)keep * row; // one K row and one V row of the cache's types per token
        }
    const dv_linear_state *ls = dv_llm_linear_state(v->llm); // hybrid models: a fixed-size recurrent state
    if (ls) out->kv_bytes += dv_linear_state_bytes(ls);
    return 0;
}

static void fmt_time(double s, char *buf, size_t cap) {
    if (s < 0) {
        snprintf(buf, cap, "end");
        return;
    }
    int t = (int)floor(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%d:%02d", t / 60, t % 60);
}

// Appends to buf (of cap bytes, *len used so far), truncating.
static void text_add(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0) *len = *len + (size_t)n < cap ? *len + (size_t)n : cap;
}

void dv_vlm_plan_text(const dv_vlm *v, const dv_vlm_plan *p, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    char a[32], b[32], how[128];
    fmt_time(p->times.start_sec, a, sizeof a);
    fmt_time(p->times.end_sec, b, sizeof b);
    if (p->times.frame_step > 0) // Qwen3-VL: the processor's frame indices (a rounded linspace)
        snprintf(how, sizeof how, "%.3g fps, every %.3g frames, over %s-%s", p->times.frame_fps / p->times.frame_step,
                 p->times.frame_step, a, b);
    else if (p->times.uniform) snprintf(how, sizeof how, "uniform over %s-%s", a, b);
    else snprintf(how, sizeof how, "%g fps over %s-%s", p->times.fps, a, b);
    char extra[32] = "";
    if (p->ts_tokens) snprintf(extra, sizeof extra, " + %d text", p->ts_tokens);
    char attn[128] = "full attention";
    if (v->stream_window) { // say how much of the model streams: the point of DuoAttention
        const dv_kv_cache *kv = dv_llm_kv_cache(v->llm);
        int n_ret = 0;
        for (int l = 0; l < v->cfg->n_attn_layers; l++)
            for (int h = 0; h < v->cfg->n_kv_heads; h++) n_ret += dv_kv_cache_is_retrieval(kv, l, h);
        const int n_all = v->cfg->n_attn_layers * v->cfg->n_kv_heads;
        snprintf(attn, sizeof attn, "DuoAttention: %d of %d KV heads streaming, window %lld", n_all - n_ret, n_all,
                 (long long)v->stream_window);
    }
    char per[160];
    if (v->qwen) // frames go in temporal-patch groups; HF's video_grid_thw
        snprintf(per, sizeof per,
                 "grid %d x %d x %d (t x h x w patches, frames %dx%d), %d tokens/%d frames%s (%.1f/frame)", p->grid_t,
                 p->grid_h, p->grid_w, p->frame_w, p->frame_h, p->group_tokens, p->temporal_patch, extra,
                 (double)p->group_tokens / p->temporal_patch);
    else
        snprintf(per, sizeof per, "%d tokens/frame%s", p->tokens_per_frame, extra);
    text_add(buf, cap, &len, "plan: %lld frames (%s), %s, %lld context tokens, KV cache ~%.1f MiB "
               "(K %s + V %s, %zu bytes per token; %s, template %s)\n",
            (long long)p->n_frames, how, per,
            (long long)p->context_tokens, (double)p->kv_bytes / (1 << 20), dv_kv_type_name(p->kv_type_k),
            dv_kv_type_name(p->kv_type_v), p->kv_bytes_per_token, attn, dv_template_name(v->tpl.kind));
    if (p->capped) {
        if (p->asked_frames < 0)
            text_add(buf, cap, &len, "note: the video's length is unknown; sampling at most %lld frames (what fits %lld "
                       "tokens) from the start\n",
                    (long long)p->n_frames, (long long)p->budget);
        else
            text_add(buf, cap, &len, "note: %lld frames would need %lld tokens; %lld uniform frames fit the budget of %lld "
                       "(--max-tokens-context / --ctx raise it)\n",
                    (long long)p->asked_frames,
                    (long long)(p->prefix_tokens + frames_cells(v, p, p->asked_frames) + v->suffix),
                    (long long)p->n_frames, (long long)p->budget);
    }
}

static void dv_vlm_plan_key(const dv_vlm *v, const dv_vlm_plan *p, int timestamps, char *buf, size_t cap) {
    // the system prompt goes in through its hash (it can be long); FNV-1a
    uint64_t sys = 1469598103934665603ull;
    for (const char *c = v->tpl.system; *c; c++) sys = (sys ^ (uint8_t)*c) * 1099511628211ull;
    // %.17g: every double round-trips exactly; the chunk size matters to DuoAttention's reference prefill
    int n = snprintf(buf, cap,
                     "v1 fps=%.17g n=%lld start=%.17g end=%.17g max=%lld mode=%d ts=%d tpl=%s sys=%016llx chunk=%d",
                     p->plan.fps, (long long)p->plan.n_frames, p->plan.start_sec, p->plan.end_sec,
                     (long long)p->plan.max_frames, (int)p->plan.mode, timestamps, dv_template_name(v->tpl.kind),
                     (unsigned long long)sys, v->n_batch);
    if (v->qwen && n > 0 && (size_t)n < cap) { // the pixel bounds (--min-pixels / --max-pixels) and the frame size
        char px[64];
        dv_vlm_qwen_key(v->qwen, px, sizeof px);
        int m = snprintf(buf + n, cap - (size_t)n, " %s size=%dx%d", px, p->frame_w, p->frame_h);
        if (p->plan.frame_step > 0 && m > 0 && (size_t)(n + m) < cap) // Qwen3-VL: the frame indices' step
            snprintf(buf + n + m, cap - (size_t)(n + m), " step=%.17g", p->plan.frame_step);
    }
}

int dv_vlm_cache_key(dv_vlm *v, const char *video_path, const dv_vlm_plan *p, int timestamps, dv_ctx_key *k) {
    memset(k, 0, sizeof *k);
    int rc;
    // the model folder is hashed once per dv_vlm (summarize reuses it for every video)
    if (!v->have_model_hash) {
        if ((rc = dv_ctx_hash_model(v->model_dir, &v->model_hash))) return rc;
        v->have_model_hash = 1;
    }
    k->model_hash = v->model_hash;
    if ((rc = dv_ctx_hash_file(video_path, &k->video_hash))) return rc;
    k->pattern_hash = v->pattern_hash;
    dv_vlm_plan_key(v, p, timestamps, k->plan, sizeof k->plan);
    return 0;
}

// ---- the prefill feeder ----

// (rows, H) F32 on the backend at `data`.
static dv_tensor dev_rows(const dv_vlm *v, float *data, int64_t rows) {
    dv_tensor t = dv_tensor_2d(DV_DTYPE_F32, data, rows, v->cfg->hidden_size);
    t.device = v->be->device;
    return t;
}

// feed_deep (n_deep, n_batch, H) -> (n_deep, n_feed, H) in place, as the LLM takes it: layer l moves
// down by l * (n_batch - n_feed) rows, in pieces no longer than that gap (no copy overlaps itself).
static int compact_deep(dv_vlm *v) {
    const size_t H = (size_t)v->cfg->hidden_size, nf = (size_t)v->n_feed, nb = (size_t)v->n_batch;
    for (size_t l = 1; l < (size_t)v->n_deep && nf < nb; l++) {
        const size_t gap = l * (nb - nf);
        for (size_t r = 0; r < nf; r += gap) {
            const size_t m = nf - r < gap ? nf - r : gap;
            int rc = v->be->ops->copy(v->be, v->feed_deep + (l * nf + r) * H, v->feed_deep + (l * nb + r) * H,
                                      m * H * sizeof(float));
            if (rc) return rc;
        }
    }
    return 0;
}

static int feed_flush(dv_vlm *v) {
    if (!v->n_feed) return 0;
    dv_tensor t = dev_rows(v, v->feed, v->n_feed);
    int rc;
    if (v->mrope) { // feed_pos (3, n_batch) -> (3, n_feed): rows n_feed apart, as the LLM takes them
        const int nf = v->n_feed, nb = v->n_batch;
        memmove(v->feed_pos + nf, v->feed_pos + nb, (size_t)nf * sizeof(int32_t));
        memmove(v->feed_pos + 2 * nf, v->feed_pos + 2 * nb, (size_t)nf * sizeof(int32_t));
        if (v->n_deep) {
            dv_tensor add = dv_tensor_3d(DV_DTYPE_F32, v->feed_deep, v->n_deep, nf, v->cfg->hidden_size);
            add.device = v->be->device;
            rc = compact_deep(v);
            if (!rc) rc = dv_llm_prefill_deepstack(v->llm, &t, v->feed_pos, &add, NULL, 0);
        } else {
            rc = dv_llm_prefill_pos(v->llm, NULL, &t, v->feed_pos, nf, NULL, 0);
        }
    } else {
        rc = dv_llm_prefill_tensor(v->llm, &t, NULL, 0);
    }
    v->n_feed = 0;
    return rc;
}

// M-RoPE: the positions of `take` rows entering the feeder at n_feed: pos (3 rows `stride` apart), or
// text positions from next_pos when pos is NULL.
static void feed_positions(dv_vlm *v, const int32_t *pos, int64_t stride, int take) {
    int32_t *dst = v->feed_pos + v->n_feed;
    for (int i = 0; i < take; i++)
        for (int r = 0; r < 3; r++) dst[(size_t)r * v->n_batch + i] = pos ? pos[r * stride + i] : v->next_pos + i;
    if (!pos) v->next_pos += take;
}

// Appends n rows (n, H) on the backend to the context (device-to-device copies into the feeder),
// prefilling every full chunk. M-RoPE models: pos (3, n; rows `stride` apart) their positions, NULL
// for text rows (ignored by other models). DeepStack models: deep (n_deep, deep_stride, H) on the
// backend, the rows' DeepStack inputs (NULL: text rows, zeros).
static int feed_rows(dv_vlm *v, const float *rows, int64_t n, const int32_t *pos, int64_t stride, const float *deep,
                     int64_t deep_stride, double *t_prefill) {
    const size_t H = (size_t)v->cfg->hidden_size;
    if (dv_llm_n_past(v->llm) + v->n_feed + n > v->n_ctx)
        return dv_error_set(DV_EINVAL, "context full: %lld tokens exceed the context size %d (raise --ctx)",
                            (long long)(dv_llm_n_past(v->llm) + v->n_feed + n), v->n_ctx);
    while (n > 0) {
        int take = v->n_batch - v->n_feed < n ? v->n_batch - v->n_feed : (int)n;
        int rc = v->be->ops->copy(v->be, v->feed + (size_t)v->n_feed * H, rows, (size_t)take * H * sizeof(float));
        if (rc) return rc;
        if (v->mrope) feed_positions(v, pos, stride, take);
        for (int l = 0; l < v->n_deep && !rc; l++)
            rc = v->be->ops->copy(v->be, v->feed_deep + ((size_t)l * v->n_batch + v->n_feed) * H,
                                  deep ? deep + (size_t)l * deep_stride * H : v->zeros, (size_t)take * H * sizeof(float));
        if (rc) return rc;
        if (pos) pos += take;
        if (deep) deep += (size_t)take * H;
        v->n_feed += take;
        rows += (size_t)take * H;
        n -= take;
        if (v->n_feed == v->n_batch) {
            double t0 = dv_time_now();
            rc = feed_flush(v);
            *t_prefill += dv_time_now() - t0;
            if (rc) return rc;
        }
    }
    return 0;
}

// Text tokens go in as their embeddings, so text and frames share one chunking.
static int feed_text(dv_vlm *v, const char *text, int bos, double *t_prefill) {
    int n, rc;
    if ((rc = encode(v, text, bos, &n))) return rc;
    for (int i = 0; i < n; i += v->n_batch) {
        const int m = n - i < v->n_batch ? n - i : v->n_batch;
        dv_tensor t = dev_rows(v, v->text_emb, m);
        if ((rc = dv_llm_embed_tokens_tensor(v->llm, v->ids + i, m, &t)) ||
            (rc = feed_rows(v, v->text_emb, m, NULL, 0, NULL, 0, t_prefill)))
            return rc;
    }
    return 0;
}

static int remember_frame(dv_vlm *v, double t) {
    if (v->n_frame_t == v->frame_t_cap) {
        int64_t cap = v->frame_t_cap ? 2 * v->frame_t_cap : 256;
        double *nt = realloc(v->frame_t, (size_t)cap * sizeof *nt);
        if (!nt) return dv_error_set(DV_ENOMEM, "out of memory");
        v->frame_t = nt;
        v->frame_t_cap = cap;
    }
    v->frame_t[v->n_frame_t++] = t;
    return 0;
}

// Qwen-VL: n frames (the last ones of v->frame_t) through the processor and tower, their rows fed
// with their M-RoPE positions (the video's first row at position video_pos0).
static int encode_batch_qwen(dv_vlm *v, const dv_vlm_plan *p, const dv_image *images, int n, int video_pos0,
                             dv_vlm_stats *st) {
    double t0 = dv_time_now();
    const float *rows, *deep; // (ng * group_tokens, d_model), (n_deep, ng * group_tokens, d_model) on the backend
    int ng;
    int rc = dv_vlm_qwen_encode(v->qwen, images, n, &rows, &deep, &ng);
    st->t_encode += dv_time_now() - t0;
    if (rc) return rc;
    const int tp = p->temporal_patch, T = p->group_tokens;
    const int64_t f0 = v->n_frame_t - n; // this batch's first frame in the video
    for (int j = 0; j < ng; j++) { // each group: its text, its rows with the family's positions, its text
        char before[128], after[128];
        const int nf = n - j * tp < tp ? n - j * tp : tp;
        const double *times = v->frame_t + f0 + (int64_t)j * tp;
        if ((rc = dv_vlm_qwen_group_text(v->qwen, p, times, nf, before, after, sizeof before)) ||
            (*before && (rc = feed_text(v, before, 0, &st->t_prefill))))
            return rc;
        const int g = (int)(f0 / tp) + j;
        const int next = dv_vlm_qwen_positions(v->qwen, p, video_pos0, v->next_pos, g, v->vid_pos, T);
        const size_t off = (size_t)j * T * v->d_model;
        if ((rc = feed_rows(v, rows + off, T, v->vid_pos, T, deep ? deep + off : NULL, (int64_t)ng * T, &st->t_prefill)))
            return rc;
        v->next_pos = next;
        if (*after && (rc = feed_text(v, after, 0, &st->t_prefill))) return rc;
    }
    return 0;
}

// Encodes the n frames gathered and feeds their tokens (each after its timestamp).
static int encode_batch(dv_vlm *v, const dv_image *images, int n, const double *times, int timestamps,
                        dv_vlm_stats *st) {
    double t0 = dv_time_now();
    dv_tensor emb; // (n * tpf, d_model) on the backend, the encoder's buffer
    int rc = dv_encoder_encode_tensor(v->enc, images, n, &emb);
    st->t_encode += dv_time_now() - t0;
    if (rc) return rc;
    const size_t per = (size_t)v->tpf * (size_t)v->d_model;
    const float *feat = emb.data;
    for (int i = 0; i < n; i++) {
        // image models (llava-1.5) see one "<image>\n" per frame: the newline goes between frames (the
        // first question starts with the one after the last)
        if (!v->video_model && v->n_frame_t - n + i > 0 && (rc = feed_text(v, "\n", 0, &st->t_prefill))) return rc;
        if (timestamps) {
            char ts[64];
            timestamp_text(times[i], ts, sizeof ts);
            if ((rc = feed_text(v, ts, 0, &st->t_prefill))) return rc;
        }
        if ((rc = feed_rows(v, feat + per * (size_t)i, v->tpf, NULL, 0, NULL, 0, &st->t_prefill))) return rc;
    }
    return 0;
}

static int drop_snapshot(dv_vlm *v) {
    if (v->snapshot) fclose(v->snapshot);
    v->snapshot = NULL;
    return 0;
}

int dv_vlm_prefill_video(dv_vlm *v, dv_video *video, const dv_vlm_plan *p, int timestamps,
                         const dv_vlm_callbacks *cb, dv_vlm_stats *st) {
    memset(st, 0, sizeof *st);
    const double t_start = dv_time_now();
    dv_backend *be = v->be;
    const dv_xfer_stats x0 = be->xfer;
    int rc;
    char text[4096];
    dv_prefetch *pf = NULL;
    dv_image *swap = NULL; // (encode_batch) a batch with the needle in it
    int began = 0, needle_done = 0;
    drop_snapshot(v);
    v->n_frame_t = 0;
    v->video_tokens = 0;
    v->n_feed = 0;
    v->next_pos = v->video_next_pos = 0;
    if ((rc = dv_llm_rewind(v->llm, 0))) return rc;
    if (v->qwen) { // buffers for one batch of this video's frame size, and its rows' positions
        const int64_t rows = p->group_tokens; // positions go in one group at a time
        if ((rc = dv_vlm_qwen_begin(v->qwen, p, v->encode_batch))) return rc;
        if (rows > v->vid_pos_cap) {
            int32_t *np = realloc(v->vid_pos, (size_t)3 * rows * sizeof(int32_t));
            if (!np) return dv_error_set(DV_ENOMEM, "out of memory");
            v->vid_pos = np;
            v->vid_pos_cap = rows;
        }
    }
    if ((rc = prefix_text(v, text, sizeof text)) || (rc = feed_text(v, text, 1, &st->t_prefill)))
        goto done;
    const int video_pos0 = v->next_pos; // the video's rows start here (Qwen-VL's positions)
    // V-NIAH: the frame index the needle replaces, and the batch it is swapped into
    const int64_t needle_at = v->needle ? llround(v->needle_depth * (double)(p->n_frames - 1)) : -1;
    if (v->needle && !(swap = malloc((size_t)v->encode_batch * sizeof *swap))) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto done;
    }
    // frames are decoded on their own thread while the previous batch is encoded and prefilled
    if ((rc = dv_prefetch_start(video, &p->plan, v->encode_batch, &pf))) goto done;
    dv_vlm_cb_progress(cb, "video", "frames", DV_VLM_PROGRESS_BEGIN, 0, p->n_frames, "");
    began = 1;
    for (;;) {
        if (dv_vlm_cb_cancel(cb)) {
            rc = dv_error_set(DV_EINTR, "interrupted");
            goto done;
        }
        const dv_image *images;
        const double *times;
        int nb;
        double tw = dv_time_now();
        if ((rc = dv_prefetch_next(pf, &images, &times, &nb))) goto done;
        st->t_wait += dv_time_now() - tw;
        if (!nb) break;
        for (int i = 0; i < nb; i++)
            if ((rc = remember_frame(v, times[i]))) goto done;
        if (needle_at >= st->frames && needle_at < st->frames + nb) {
            memcpy(swap, images, (size_t)nb * sizeof *swap);
            swap[needle_at - st->frames] = *v->needle;
            images = swap;
            needle_done = 1;
        }
        rc = v->qwen ? encode_batch_qwen(v, p, images, nb, video_pos0, st)
                     : encode_batch(v, images, nb, times, timestamps, st);
        dv_prefetch_release(pf);
        if (rc) goto done;
        st->frames += nb;
        st->t_decode = dv_prefetch_decode_seconds(pf);
        char note[160];
        snprintf(note, sizeof note, "decode %.1f f/s, encode %.1f f/s, prefill %.0f tok/s",
                 st->t_decode > 0 ? (double)st->frames / st->t_decode : 0,
                 st->t_encode > 0 ? (double)st->frames / st->t_encode : 0,
                 st->t_prefill > 0 ? (double)dv_llm_n_past(v->llm) / st->t_prefill : 0);
        dv_vlm_cb_progress(cb, "video", "frames", DV_VLM_PROGRESS_UPDATE, st->frames, p->n_frames, note);
    }
    st->t_decode = dv_prefetch_decode_seconds(pf);
    if (st->frames == 0) {
        rc = dv_error_set(DV_EFORMAT, "the video gave no frames for the plan");
        goto done;
    }
    if (needle_at >= 0 && !needle_done) {
        rc = dv_error_set(DV_EINVAL, "the needle's frame %lld is beyond the video's %lld frames", (long long)needle_at,
                          (long long)st->frames);
        goto done;
    }
    if (v->qwen) { // <|vision_end|>, text at the position after the video's grid
        const char *close = dv_vlm_qwen_video_close(v->qwen);
        if (*close && (rc = feed_text(v, close, 0, &st->t_prefill))) goto done;
    } else if (v->suffix) { // OneVision: one image_newline row closes the video
        dv_tensor sfx;
        if ((rc = dv_encoder_video_suffix(v->enc, &sfx)) ||
            (rc = feed_rows(v, sfx.data, sfx.ne[0], NULL, 0, NULL, 0, &st->t_prefill)))
            goto done;
    }
    double t0 = dv_time_now();
    rc = feed_flush(v);
    st->t_prefill += dv_time_now() - t0;
    if (rc) goto done;
    v->video_tokens = dv_llm_n_past(v->llm);
    v->video_next_pos = v->next_pos;
    st->context_tokens = v->video_tokens;
done:
    if (began)
        dv_vlm_cb_progress(cb, "video", "frames", rc ? DV_VLM_PROGRESS_ABORT : DV_VLM_PROGRESS_END, st->frames,
                           p->n_frames, "");
    dv_prefetch_free(pf);
    free(swap);
    st->t_total = dv_time_now() - t_start;
    st->h2d_bytes = be->xfer.h2d_bytes - x0.h2d_bytes;
    st->d2h_bytes = be->xfer.d2h_bytes - x0.d2h_bytes;
    if (rc) {
        v->n_feed = 0;
        v->video_tokens = 0;
        dv_llm_rewind(v->llm, 0);
    }
    return rc;
}

const double *dv_vlm_frame_times(const dv_vlm *v, int64_t *n) {
    *n = v->n_frame_t;
    return v->frame_t;
}

int dv_vlm_set_video_context(dv_vlm *v, int64_t n_tokens, const double *frame_times, int64_t n_frames) {
    drop_snapshot(v);
    v->n_frame_t = 0;
    for (int64_t i = 0; i < n_frames; i++) {
        int rc = remember_frame(v, frame_times[i]);
        if (rc) return rc;
    }
    v->video_tokens = n_tokens;
    return 0;
}

int dv_vlm_take_snapshot(dv_vlm *v) {
    drop_snapshot(v);
    // full attention: a rewind restores the video context exactly (not a recurrent state: hybrid models)
    if (!v->stream_window && dv_llm_can_rewind(v->llm)) return 0;
    if (dv_llm_n_past(v->llm) != v->video_tokens)
        return dv_error_set(DV_EINVAL, "context snapshot: the conversation has already started");
    FILE *f = tmpfile(); // unlinked at once: nothing is left behind, whatever happens
    if (!f) return dv_error_set(DV_EIO, "context snapshot: cannot create a temporary file");
    int rc = dv_llm_state_write(v->llm, dv_io_write_stdio, f);
    if (!rc && fflush(f)) rc = dv_error_set(DV_EIO, "context snapshot: write failed (disk full?)");
    if (rc) {
        fclose(f);
        return rc;
    }
    v->snapshot = f;
    return 0;
}

int dv_vlm_reset_conversation(dv_vlm *v) {
    if (dv_llm_n_past(v->llm) == v->video_tokens) return 0;
    if (!v->stream_window && dv_llm_can_rewind(v->llm)) return dv_llm_rewind(v->llm, (int)v->video_tokens);
    // DuoAttention: the streaming heads' rings have moved on; a hybrid model's recurrent state has
    // folded the conversation in: reload the saved context
    if (!v->snapshot) return dv_error_set(DV_EINVAL, "no snapshot of the video context to reset to");
    rewind(v->snapshot);
    int rc = dv_llm_state_read(v->llm, dv_io_read_stdio, v->snapshot, "context snapshot");
    if (!rc && dv_llm_n_past(v->llm) != v->video_tokens)
        rc = dv_error_set(DV_EFORMAT, "context snapshot: holds %d tokens, the video context %lld", dv_llm_n_past(v->llm),
                          (long long)v->video_tokens);
    return rc;
}

// ---- answers ----

const char *dv_vlm_stop_name(dv_vlm_stop s) {
    switch (s) {
    case DV_VLM_STOP_EOS: return "eos";
    case DV_VLM_STOP_LENGTH: return "length";
    case DV_VLM_STOP_INTERRUPT: return "interrupted";
    default: return "context full";
    }
}

static int answer_append(dv_vlm *v, size_t *len, const char *piece) {
    size_t n = strlen(piece);
    if (*len + n + 1 > v->answer_cap) {
        size_t cap = 2 * (*len + n + 1);
        char *na = realloc(v->answer, cap);
        if (!na) return dv_error_set(DV_ENOMEM, "out of memory");
        v->answer = na;
        v->answer_cap = cap;
    }
    memcpy(v->answer + *len, piece, n + 1);
    *len += n;
    return 0;
}

// dv_llm_generate's callbacks: the answer text is kept and streamed; cancel and progress pass through
typedef struct answer_ctx {
    dv_vlm *v;
    const dv_vlm_callbacks *cb;
    size_t len;
    int max_new;
} answer_ctx;

static int answer_token(void *user, int32_t id, const char *piece) {
    (void)id;
    answer_ctx *a = user;
    if (!*piece) return 0;
    int rc = answer_append(a->v, &a->len, piece);
    if (!rc && a->cb && a->cb->on_text) a->cb->on_text(a->cb->user, piece);
    return rc;
}

static int answer_cancel(void *user) { return dv_vlm_cb_cancel(((answer_ctx *)user)->cb); }

static void answer_step(void *user, int done, int total) {
    dv_vlm_cb_progress(((answer_ctx *)user)->cb, "answer", "tok", DV_VLM_PROGRESS_UPDATE, done, total, "");
}

// Prefills a turn's n tokens (logits: the last one's, or NULL). The first question of an M-RoPE model
// continues the text positions where the video context left them (HF: after the video's grid, which
// may lie below its largest temporal position); later turns, answers and all other models go on
// after the largest position so far (the LLM's rule).
static int prefill_turn(dv_vlm *v, const int32_t *ids, int n, int first, float *logits) {
    if (!v->mrope || !first) return dv_llm_prefill(v->llm, ids, NULL, n, logits, 0);
    int rc = 0;
    for (int i = 0; !rc && i < n; i += v->n_batch) {
        const int m = n - i < v->n_batch ? n - i : v->n_batch;
        for (int k = 0; k < m; k++) // (3, m): text rows t = h = w
            v->feed_pos[k] = v->feed_pos[m + k] = v->feed_pos[2 * m + k] = v->video_next_pos + i + k;
        rc = dv_llm_prefill_pos(v->llm, ids + i, NULL, v->feed_pos, m, i + m == n ? logits : NULL, 0);
    }
    return rc;
}

int dv_vlm_add_turn(dv_vlm *v, const char *question, const char *answer, int first) {
    int nq, na;
    int rc = question_tokens(v, question, first, &nq);
    if (rc) return rc;
    const int room = v->n_ctx - dv_llm_n_past(v->llm);
    if (nq >= room) return dv_error_set(DV_EINVAL, "context full: the history does not fit (%d tokens left)", room);
    memcpy(v->answer_ids, v->ids, (size_t)nq * sizeof(int32_t)); // v->ids is the encoder's scratch
    if ((rc = dv_tokenizer_encode(v->tok, answer, 0, v->answer_ids + nq, room - nq, &na)))
        return dv_error_set(DV_EINVAL, "context full: the history does not fit (%d tokens left)", room);
    if (nq + na >= room) return dv_error_set(DV_EINVAL, "context full: the history does not fit (%d tokens left)", room);
    if (!v->mrope || !first) return prefill_turn(v, v->answer_ids, nq + na, first, v->logits);
    if ((rc = prefill_turn(v, v->answer_ids, nq, first, NULL))) return rc; // the question's positions, then text
    return na ? dv_llm_prefill(v->llm, v->answer_ids + nq, NULL, na, v->logits, 0) : 0;
}

int dv_vlm_ask(dv_vlm *v, const char *question, int first, const dv_vlm_gen *g, const dv_vlm_callbacks *cb,
               dv_vlm_answer *out) {
    memset(out, 0, sizeof *out);
    const double t0 = dv_time_now();
    int n;
    int rc = question_tokens(v, question, first, &n);
    if (rc) return rc;
    const int room = v->n_ctx - dv_llm_n_past(v->llm);
    if (n >= room)
        return dv_error_set(DV_EINVAL, "context full: the question needs %d tokens, %d are left of %d (start over with "
                                       "/reset, or raise --ctx)", n, room, v->n_ctx);
    if (!v->smp || memcmp(&v->smp_params, &g->sampler, sizeof g->sampler)) {
        dv_sampler_free(v->smp);
        v->smp = NULL;
        if ((rc = dv_sampler_init(&g->sampler, v->cfg->vocab_size, &v->smp))) return rc;
        v->smp_params = g->sampler;
    }
    // the question's tokens count for the repetition penalty, as in generate
    memcpy(v->answer_ids, v->ids, (size_t)n * sizeof(int32_t));
    double tp = dv_time_now();
    if ((rc = prefill_turn(v, v->answer_ids, n, first, v->logits))) return rc;
    out->t_prefill = dv_time_now() - tp;
    out->n_prompt = n;
    v->answer[0] = 0;

    const double tg = dv_time_now();
    int max_new = g->max_new;
    out->stop = DV_VLM_STOP_LENGTH;
    if (max_new > v->n_ctx - dv_llm_n_past(v->llm)) {
        max_new = v->n_ctx - dv_llm_n_past(v->llm);
        out->stop = DV_VLM_STOP_CONTEXT;
    }
    answer_ctx ac = {.v = v, .cb = cb, .len = 0, .max_new = max_new};
    // every answer token enters the context (decode_last), so the conversation can go on after it
    dv_llm_gen_params gp = {.sampler = v->smp, .tokenizer = v->tok, .max_new = max_new, .ignore_eos = g->ignore_eos,
                            .at_start = 1, .decode_last = 1, .on_token = answer_token, .cancel = answer_cancel,
                            .on_step = answer_step, .user = &ac, .logits_trace = g->logits_trace};
    dv_llm_gen_result r;
    dv_vlm_cb_progress(cb, "answer", "tok", DV_VLM_PROGRESS_BEGIN, 0, max_new, "");
    rc = dv_llm_generate(v->llm, &gp, v->logits, v->answer_ids, n, v->n_ctx, &r);
    dv_vlm_cb_progress(cb, "answer", "tok", rc ? DV_VLM_PROGRESS_ABORT : DV_VLM_PROGRESS_END, r.n_tokens, max_new, "");
    if (rc) return rc;
    if (r.stop == DV_GEN_STOP_EOS) out->stop = DV_VLM_STOP_EOS;
    else if (r.stop == DV_GEN_STOP_CANCEL) out->stop = DV_VLM_STOP_INTERRUPT;
    out->ttft = (tg - t0) + r.t_first;
    out->t_generate = dv_time_now() - tg;
    out->n_tokens = r.n_tokens;
    out->ids = v->answer_ids + n;
    out->text = v->answer;
    return 0;
}
