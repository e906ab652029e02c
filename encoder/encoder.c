// encoder.c: dv_encoder_open / encode / free: binds the checkpoint's tensors (views into the mmap,
// file dtype), sizes every buffer for max_batch frames once, and runs batches through vit.c.
#include "encoder/encoder_internal.h"

#include "core/dv_error.h"
#include "core/dv_log.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dv_encoder_params dv_encoder_default_params(void) {
    dv_encoder_params p = {.backend = NULL, .n_threads = 0, .max_batch = 8};
    return p;
}

// ---- weights ----

// Binds `name` (prefix + suffix) with the expected shape as a view of n_dims (view_shape). Half and
// full precision are accepted; anything else is refused with the tensor's name.
static int bind(const dv_safetensors *st, const char *prefix, const char *suffix, int n_dims, const int64_t *shape,
                int view_dims, const int64_t *view_shape, dv_tensor *out) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    const dv_st_tensor *t = NULL;
    int rc = dv_safetensors_get(st, name, n_dims, shape, &t);
    if (rc) return rc;
    if (t->dtype != DV_DTYPE_F32 && t->dtype != DV_DTYPE_F16 && t->dtype != DV_DTYPE_BF16)
        return dv_error_set(DV_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", t->file,
                            name, dv_dtype_name(t->dtype));
    *out = dv_tensor_make(t->dtype, (void *)t->data, view_dims ? view_dims : n_dims, view_dims ? view_shape : shape);
    out->name = t->name;
    return 0;
}

#define BIND1(pre, suf, n0, dst) bind(st, pre, suf, 1, (int64_t[]){n0}, 0, NULL, dst)
#define BIND2(pre, suf, n0, n1, dst) bind(st, pre, suf, 2, (int64_t[]){n0, n1}, 0, NULL, dst)

// The first of `prefixes` under which `probe` exists; NULL (and an error naming the first form) if none.
static const char *find_prefix(const dv_safetensors *st, const char *const *prefixes, int n, const char *probe) {
    char name[256];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", prefixes[i], probe);
        if (dv_safetensors_find(st, name)) return prefixes[i];
    }
    snprintf(name, sizeof name, "%s%s", prefixes[0], probe);
    const char *file = dv_safetensors_count(st) > 0 ? dv_safetensors_at(st, 0)->file : "model.safetensors";
    dv_error_set(DV_ENOTFOUND, "%s: missing tensor '%s'", file, name);
    return NULL;
}

static int bind_weights(dv_encoder *e) {
    const enc_config *c = &e->c;
    enc_weights *w = &e->w;
    const dv_safetensors *st = e->st;
    static const char *const tower_pre[] = {"vision_tower.vision_model.", "vision_tower.",
                                            "model.vision_tower.vision_model.", "model.vision_tower."};
    static const char *const proj_pre[] = {"multi_modal_projector.", "model.multi_modal_projector."};
    static const char *const pool_pre[] = {"vision_resampler.pool.", "model.vision_resampler.pool."};
    const char *tp = find_prefix(st, tower_pre, 4, "embeddings.patch_embedding.weight");
    if (!tp) return DV_ENOTFOUND;
    const int64_t D = c->hidden, I = c->inter, P = c->patch;
    int rc;
    if ((rc = bind(st, tp, "embeddings.patch_embedding.weight", 4, (int64_t[]){D, 3, P, P}, 2,
                   (int64_t[]){D, 3 * P * P}, &w->patch_w)) ||
        (rc = BIND2(tp, "embeddings.position_embedding.weight", c->n_pos, D, &w->pos)))
        return rc;
    if (c->tower == ENC_TOWER_CLIP) {
        if ((rc = bind(st, tp, "embeddings.class_embedding", 1, (int64_t[]){D}, 2, (int64_t[]){1, D}, &w->cls)) ||
            (rc = BIND1(tp, "pre_layrnorm.weight", D, &w->pre_w)) || (rc = BIND1(tp, "pre_layrnorm.bias", D, &w->pre_b)))
            return rc;
    } else {
        if ((rc = BIND1(tp, "embeddings.patch_embedding.bias", D, &w->patch_b))) return rc;
        w->has_patch_b = 1;
    }
    w->layers = calloc((size_t)(c->n_run > 0 ? c->n_run : 1), sizeof *w->layers);
    if (!w->layers) return dv_error_set(DV_ENOMEM, "encoder: out of memory");
    for (int l = 0; l < c->n_run; l++) {
        char p[200];
        snprintf(p, sizeof p, "%sencoder.layers.%d.", tp, l);
        enc_layer *L = &w->layers[l];
        if ((rc = BIND1(p, "layer_norm1.weight", D, &L->ln1_w)) || (rc = BIND1(p, "layer_norm1.bias", D, &L->ln1_b)) ||
            (rc = BIND1(p, "layer_norm2.weight", D, &L->ln2_w)) || (rc = BIND1(p, "layer_norm2.bias", D, &L->ln2_b)) ||
            (rc = BIND2(p, "self_attn.q_proj.weight", D, D, &L->q_w)) || (rc = BIND1(p, "self_attn.q_proj.bias", D, &L->q_b)) ||
            (rc = BIND2(p, "self_attn.k_proj.weight", D, D, &L->k_w)) || (rc = BIND1(p, "self_attn.k_proj.bias", D, &L->k_b)) ||
            (rc = BIND2(p, "self_attn.v_proj.weight", D, D, &L->v_w)) || (rc = BIND1(p, "self_attn.v_proj.bias", D, &L->v_b)) ||
            (rc = BIND2(p, "self_attn.out_proj.weight", D, D, &L->o_w)) ||
            (rc = BIND1(p, "self_attn.out_proj.bias", D, &L->o_b)) || (rc = BIND2(p, "mlp.fc1.weight", I, D, &L->fc1_w)) ||
            (rc = BIND1(p, "mlp.fc1.bias", I, &L->fc1_b)) || (rc = BIND2(p, "mlp.fc2.weight", D, I, &L->fc2_w)) ||
            (rc = BIND1(p, "mlp.fc2.bias", D, &L->fc2_b)))
            return rc;
    }
    if (c->pool == ENC_POOL_CONV) {
        const char *pp = find_prefix(st, pool_pre, 2, "weight");
        if (!pp) return DV_ENOTFOUND;
        const int64_t s = c->pool_stride;
        if ((rc = bind(st, pp, "weight", 4, (int64_t[]){c->pool_out, c->d_sel, s, s}, 2,
                       (int64_t[]){c->pool_out, c->d_sel * s * s}, &w->pool_w)) ||
            (rc = BIND1(pp, "bias", c->pool_out, &w->pool_b)))
            return rc;
        w->has_pool_b = 1;
    }
    const char *pj = find_prefix(st, proj_pre, 2, "linear_1.weight");
    if (!pj) return DV_ENOTFOUND;
    // the projector's output width is the LLM's hidden size: read it from linear_2, then check
    char name[256];
    snprintf(name, sizeof name, "%slinear_2.weight", pj);
    const dv_st_tensor *l2 = NULL;
    if ((rc = dv_safetensors_get(st, name, 2, (int64_t[]){-1, -1}, &l2))) return rc;
    const int64_t dm = l2->shape[0];
    if ((rc = BIND2(pj, "linear_1.weight", dm, c->pool_out, &w->p1_w)) ||
        (rc = BIND2(pj, "linear_2.weight", dm, dm, &w->p2_w)))
        return rc;
    if (c->proj_bias) {
        if ((rc = BIND1(pj, "linear_1.bias", dm, &w->p1_b)) || (rc = BIND1(pj, "linear_2.bias", dm, &w->p2_b))) return rc;
        w->has_p_b = 1;
    }
    if (c->arch == ENC_ARCH_LLAVA_ONEVISION) { // the row after a video's frames
        static const char *const nl_pre[] = {"", "model."};
        const char *np = find_prefix(st, nl_pre, 2, "image_newline");
        if (!np || (rc = bind(st, np, "image_newline", 1, (int64_t[]){dm}, 2, (int64_t[]){1, dm}, &w->newline)))
            return np ? rc : DV_ENOTFOUND;
        w->has_newline = 1;
    }
    if (c->text_hidden && c->text_hidden != dm)
        return dv_error_set(DV_ESHAPE, "%s: projector output %lld != text_config.hidden_size %d", name, (long long)dm,
                            c->text_hidden);
    e->c.d_model = (int)dm;
    return 0;
}

// ---- buffers ----

static void *balloc(dv_encoder *e, size_t n, int *fail) {
    if (*fail) return NULL;
    void *p = e->be->ops->alloc(e->be, n ? n : 1);
    if (!p) *fail = 1;
    return p;
}

static void bfree(dv_encoder *e, void *p) {
    if (p) e->be->ops->free(e->be, p);
}

// GPU backends: every weight is copied once to device memory in its file dtype.
static int upload_weights(dv_encoder *e) {
    enc_weights *w = &e->w;
    const int n_max = 13 + 16 * e->c.n_run;
    dv_tensor **ts = calloc((size_t)n_max, sizeof *ts);
    e->dev_weights = calloc((size_t)n_max, sizeof *e->dev_weights);
    if (!ts || !e->dev_weights) {
        free(ts);
        return dv_error_set(DV_ENOMEM, "encoder: out of memory");
    }
    int n = 0;
    dv_tensor *top[] = {&w->patch_w, &w->patch_b, &w->cls,    &w->pos,  &w->pre_w, &w->pre_b,
                        &w->pool_w,  &w->pool_b,  &w->p1_w,   &w->p1_b, &w->p2_w,  &w->p2_b, &w->newline};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) ts[n++] = top[i];
    for (int l = 0; l < e->c.n_run; l++) {
        enc_layer *L = &w->layers[l];
        dv_tensor *lt[] = {&L->ln1_w, &L->ln1_b, &L->ln2_w, &L->ln2_b, &L->q_w,   &L->q_b,   &L->k_w,   &L->k_b,
                           &L->v_w,   &L->v_b,   &L->o_w,   &L->o_b,   &L->fc1_w, &L->fc1_b, &L->fc2_w, &L->fc2_b};
        for (size_t i = 0; i < sizeof lt / sizeof lt[0]; i++) ts[n++] = lt[i];
    }
    const int rc = enc_upload_tensors(e->be, ts, n, e->dev_weights, &e->n_dev_weights);
    free(ts);
    return rc;
}

int enc_upload_tensors(dv_backend *be, dv_tensor **ts, int n, void **dev, int *n_dev) {
    int rc = 0;
    for (int i = 0; !rc && i < n; i++) {
        dv_tensor *t = ts[i];
        if (!t->data) continue;
        const size_t nb = dv_tensor_nbytes(t);
        void *d = be->ops->alloc(be, nb);
        if (!d) {
            rc = dv_error_prefix(DV_ENOMEM, "encoder: uploading tensor '%s'", t->name ? t->name : "?");
            break;
        }
        dev[(*n_dev)++] = d;
        rc = dv_backend_upload_async(be, d, t->data, nb); // from the mmap: valid until the sync below
        t->data = d;
        t->device = be->device;
    }
    const int rs = be->ops->synchronize(be);
    return rc ? rc : rs;
}

void enc_attention_rows(dv_backend *be, float *q, float *k, float *v, float *out, int64_t r0, int64_t n, int n_heads,
                        int head_dim, const dv_attn_params *ap) {
    const int64_t shp[3] = {n, n_heads, head_dim};
    const size_t off = (size_t)r0 * n_heads * head_dim;
    dv_tensor qs = dv_tensor_make(DV_DTYPE_F32, q + off, 3, shp), ks = dv_tensor_make(DV_DTYPE_F32, k + off, 3, shp);
    dv_tensor vs = dv_tensor_make(DV_DTYPE_F32, v + off, 3, shp), os = dv_tensor_make(DV_DTYPE_F32, out + off, 3, shp);
    be->ops->attention(be, &os, &qs, &ks, &vs, ap);
}

// Host memory (GPU backends' host-side buffers); same failure protocol as balloc.
static void *halloc(size_t n, int *fail) {
    if (*fail) return NULL;
    void *p = malloc(n ? n : 1);
    if (!p) *fail = 1;
    return p;
}

static int alloc_buffers(dv_encoder *e) {
    const enc_config *c = &e->c;
    const size_t B = (size_t)e->max_batch, T = (size_t)c->n_pos, D = (size_t)c->hidden, S = (size_t)c->image_size;
    const size_t PP = 3 * (size_t)c->patch * c->patch, tok = (size_t)c->tokens;
    const size_t s2 = (size_t)(c->pool_stride ? c->pool_stride * c->pool_stride : 1);
    int fail = 0;
    if (e->gpu) { // host-side steps (preprocessing, im2col) work in host memory
        e->u8 = halloc(B * S * S * 3, &fail);
        e->pix = halloc(B * 3 * S * S * sizeof(float), &fail);
        e->patches = halloc(B * c->n_patches * PP * sizeof(float), &fail);
        e->pos_ids = halloc(T * sizeof(int32_t), &fail);
        e->patches_dev = balloc(e, B * c->n_patches * PP * sizeof(float), &fail);
        e->pos_ids_dev = balloc(e, T * sizeof(int32_t), &fail);
    } else {
        e->u8 = balloc(e, B * S * S * 3, &fail);
        e->pix = balloc(e, B * 3 * S * S * sizeof(float), &fail);
        e->patches = balloc(e, B * c->n_patches * PP * sizeof(float), &fail);
        e->pos_ids = balloc(e, T * sizeof(int32_t), &fail);
    }
    e->pos = balloc(e, T * D * sizeof(float), &fail);
    e->h = balloc(e, B * T * D * sizeof(float), &fail);
    e->a = balloc(e, B * T * D * sizeof(float), &fail);
    e->q = balloc(e, B * T * D * sizeof(float), &fail);
    e->k = balloc(e, B * T * D * sizeof(float), &fail);
    e->v = balloc(e, B * T * D * sizeof(float), &fail);
    e->att = balloc(e, B * T * D * sizeof(float), &fail);
    e->f = balloc(e, B * T * (size_t)c->inter * sizeof(float), &fail);
    e->sel = balloc(e, B * c->n_sel * (size_t)c->d_sel * sizeof(float), &fail);
    if (c->pool == ENC_POOL_CONV) e->win = balloc(e, B * tok * c->d_sel * s2 * sizeof(float), &fail);
    // OneVision projects every selected token and pools afterwards: pooled and proj hold n_sel rows
    const int bilinear = c->pool == ENC_POOL_BILINEAR;
    const size_t proj_rows = B * (bilinear ? (size_t)c->n_sel : tok);
    if (c->pool != ENC_POOL_NONE)
        e->pooled = balloc(e, proj_rows * (size_t)(bilinear ? c->d_model : c->pool_out) * sizeof(float), &fail);
    e->proj = balloc(e, proj_rows * (size_t)c->d_model * sizeof(float), &fail);
    if (e->w.has_newline) e->newline = balloc(e, (size_t)c->d_model * sizeof(float), &fail);
    e->out = balloc(e, B * tok * (size_t)c->d_model * sizeof(float), &fail);
    if (fail)
        return dv_error_prefix(DV_ENOMEM, "encoder: activations for a batch of %d frames (%d tokens x %d)",
                               e->max_batch, c->n_pos, c->hidden);
    // position table (T, D) F32 = position_embedding, plus the class embedding in row 0 (CLIP): built
    // once with the embed op (which converts the file dtype), so the forward only adds it
    for (size_t i = 0; i < T; i++) e->pos_ids[i] = (int32_t)i;
    int32_t *ids_dev = e->pos_ids;
    if (e->gpu) {
        int rc = dv_backend_upload_async(e->be, e->pos_ids_dev, e->pos_ids, T * sizeof(int32_t)); // synced below
        if (rc) return rc;
        ids_dev = e->pos_ids_dev;
    }
    dv_tensor ids = dv_tensor_1d(DV_DTYPE_I32, ids_dev, (int64_t)T);
    dv_tensor pos = dv_tensor_2d(DV_DTYPE_F32, e->pos, (int64_t)T, (int64_t)D);
    e->be->ops->embed(e->be, &pos, &e->w.pos, &ids);
    if (c->has_cls) {
        dv_tensor row0 = dv_tensor_2d(DV_DTYPE_F32, e->a, 1, (int64_t)D); // scratch
        dv_tensor id0 = dv_tensor_1d(DV_DTYPE_I32, ids_dev, 1);
        e->be->ops->embed(e->be, &row0, &e->w.cls, &id0);
        dv_tensor p0 = dv_tensor_rows(&pos, 0, 1);
        e->be->ops->add(e->be, &p0, &p0, &row0);
    }
    if (e->newline) { // image_newline (file dtype) -> (1, d_model) F32, once
        dv_tensor id0 = dv_tensor_1d(DV_DTYPE_I32, ids_dev, 1);
        dv_tensor nl = dv_tensor_2d(DV_DTYPE_F32, e->newline, 1, c->d_model);
        e->be->ops->embed(e->be, &nl, &e->w.newline, &id0);
    }
    return e->be->ops->synchronize(e->be);
}

// ---- open / free ----

static const char *act_name(dv_act a) {
    static const char *n[] = {"silu", "gelu", "gelu_tanh", "quick_gelu"};
    return (unsigned)a < DV_ACT_COUNT ? n[a] : "?";
}

int dv_encoder_open(const char *model_dir, const dv_encoder_params *params, dv_encoder **out) {
    *out = NULL;
    dv_encoder_params p = params ? *params : dv_encoder_default_params();
    if (p.max_batch < 1 || p.max_batch > 4096) return dv_error_set(DV_EINVAL, "encoder: max_batch %d out of range", p.max_batch);
    dv_encoder *e = calloc(1, sizeof *e);
    if (!e) return dv_error_set(DV_ENOMEM, "encoder: out of memory");
    int rc;
    if ((rc = enc_config_load(model_dir, &e->c))) goto fail;
    if ((rc = dv_prep_config_load(model_dir, &e->prep_cfg))) goto fail;
    if (e->c.arch == ENC_ARCH_LLAVA_ONEVISION && strcmp(e->prep_cfg.source, "video_preprocessor_config.json")) {
        // preprocessor_config.json is OneVision's anyres image processor: not how its videos are prepared
        rc = dv_error_set(DV_ENOTFOUND, "%s/video_preprocessor_config.json: missing (LLaVA-OneVision prepares video "
                          "frames with its video processor; %s is the image processor)", model_dir, e->prep_cfg.source);
        goto fail;
    }
    int ow, oh;
    dv_prep_output_size(&e->prep_cfg, 640, 480, &ow, &oh);
    if (ow != e->c.image_size || oh != e->c.image_size) {
        rc = dv_error_set(DV_EFORMAT, "%s/%s: frames come out %dx%d but the vision tower takes %dx%d (image_size)",
                          model_dir, e->prep_cfg.source, ow, oh, e->c.image_size, e->c.image_size);
        goto fail;
    }
    if ((rc = dv_safetensors_open(model_dir, &e->st))) goto fail;
    if ((rc = bind_weights(e))) goto fail;
    if (p.backend) {
        e->be = p.backend;
    } else {
        if (!(e->be = dv_backend_cpu_init(p.n_threads))) {
            rc = DV_EDEVICE;
            goto fail;
        }
        e->own_be = 1;
    }
    e->gpu = e->be->device != DV_DEVICE_CPU;
    if (e->gpu && (rc = upload_weights(e))) goto fail;
    // host steps (preprocessing, im2col) use every core also when the backend is a GPU
    e->n_threads = e->be->n_threads > 0 && !e->gpu ? e->be->n_threads : omp_get_max_threads();
    e->max_batch = p.max_batch;
    e->preps = calloc((size_t)e->n_threads, sizeof *e->preps);
    e->prep_rc = calloc((size_t)e->max_batch, sizeof *e->prep_rc);
    if (!e->preps || !e->prep_rc) {
        rc = dv_error_set(DV_ENOMEM, "encoder: out of memory");
        goto fail;
    }
    for (int i = 0; i < e->n_threads; i++)
        if ((rc = dv_prep_init(&e->prep_cfg, &e->preps[i]))) goto fail;
    if ((rc = alloc_buffers(e))) goto fail;
    e->flops = enc_flops_per_frame(&e->c);
    const enc_config *c = &e->c;
    char layers[64] = "";
    for (int i = 0; i < c->n_feat; i++)
        snprintf(layers + strlen(layers), sizeof layers - strlen(layers), "%s%d", i ? "," : "", c->feat_cfg[i]);
    static const char *pools[] = {"none", "average", "max", "conv", "bilinear"};
    static const char *archs[] = {"llava", "llava_next_video", "llava_onevision"};
    snprintf(e->desc, sizeof e->desc,
             "%s, %s tower %d x %d (%d heads, %s), %dx%d px / %d patch, layer %s (%d run), %s, pool %s/%d, "
             "projector %s -> %d tokens x %d, weights %s",
             archs[c->arch],
             c->tower == ENC_TOWER_CLIP ? "clip" : "siglip", c->n_layers, c->hidden, c->n_heads, act_name(c->act),
             c->image_size, c->image_size, c->patch, layers, c->n_run, c->drop_cls ? "default" : "full",
             pools[c->pool], c->pool_stride, act_name(c->proj_act), c->tokens, c->d_model,
             dv_dtype_name(e->w.patch_w.dtype));
    DV_LOG_DEBUG("encoder: %s", e->desc); // `info`, `ask --verbose` and the benches print it
    *out = e;
    return 0;
fail: // the messages already name the file (config.json, the processor config, the checkpoint)
    dv_encoder_free(e);
    return rc;
}

void dv_encoder_free(dv_encoder *e) {
    if (!e) return;
    if (e->be) {
        void *bufs[] = {e->pos, e->h, e->a, e->q, e->k, e->v, e->att, e->f, e->sel, e->win, e->pooled, e->proj,
                        e->out, e->newline, e->patches_dev, e->pos_ids_dev};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) bfree(e, bufs[i]);
        void *host[] = {e->u8, e->pix, e->patches, e->pos_ids};
        for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) {
            if (e->gpu) free(host[i]);
            else bfree(e, host[i]);
        }
        for (int i = 0; i < e->n_dev_weights; i++) bfree(e, e->dev_weights[i]);
        if (e->own_be) dv_backend_free(e->be);
    }
    for (int i = 0; e->preps && i < e->n_threads; i++) dv_prep_free(e->preps[i]);
    free(e->preps);
    free(e->prep_rc);
    free(e->dev_weights);
    free(e->w.layers);
    dv_safetensors_free(e->st);
    free(e);
}

// ---- queries ----

int dv_encoder_tokens_per_frame(const dv_encoder *e) { return e->c.tokens; }
int dv_encoder_d_model(const dv_encoder *e) { return e->c.d_model; }
int dv_encoder_image_size(const dv_encoder *e) { return e->c.image_size; }
double dv_encoder_flops_per_frame(const dv_encoder *e) { return e->flops; }
const char *dv_encoder_describe(const dv_encoder *e) { return e->desc; }
int dv_encoder_is_video_model(const dv_encoder *e) { return e->c.arch != ENC_ARCH_LLAVA; }
int dv_encoder_video_suffix_tokens(const dv_encoder *e) { return e->newline ? 1 : 0; }

int dv_encoder_video_suffix(const dv_encoder *e, dv_tensor *out) {
    if (!e->newline) return dv_error_set(DV_EINVAL, "encoder: this model puts nothing after a video's frames");
    *out = dv_tensor_2d(DV_DTYPE_F32, e->newline, 1, e->c.d_model);
    out->device = e->be->device;
    return 0;
}
const dv_prep_config *dv_encoder_prep_config(const dv_encoder *e) { return &e->prep_cfg; }

// ---- encoding ----

int dv_encoder_preprocess(dv_encoder *e, const dv_image *frame, uint8_t *out) {
    return dv_prep_run(e->preps[0], frame, out);
}

int dv_encoder_max_batch(const dv_encoder *e) { return e->max_batch; }

// The encoder's output buffer as a tensor of nb frames' tokens (on the backend).
static dv_tensor out_view(const dv_encoder *e, int nb) {
    dv_tensor t = dv_tensor_2d(DV_DTYPE_F32, e->out, (int64_t)nb * e->c.tokens, e->c.d_model);
    t.device = e->be->device;
    return t;
}

// nb <= max_batch preprocessed frames (nb, 3, S, S) through the tower into e->out.
static int run_batch(dv_encoder *e, const float *pixels, int nb) {
    enc_im2col(e, pixels, nb);
    enc_forward(e, nb);
    return e->be->ops->synchronize(e->be);
}

// Preprocesses frames[0 .. nb) (nb <= max_batch) and runs them; errors name frame first + b.
static int encode_frames(dv_encoder *e, const dv_image *frames, int nb, int first) {
    const int S = e->c.image_size;
    const size_t frame_u8 = (size_t)S * S * 3, frame_px = (size_t)3 * S * S;
    // one frame per thread (error messages are thread-local: a failed frame is redone below)
#pragma omp parallel for schedule(dynamic, 1) num_threads(e->n_threads)
    for (int b = 0; b < nb; b++) {
        dv_prep *p = e->preps[omp_get_thread_num()];
        e->prep_rc[b] = dv_prep_run(p, &frames[b], e->u8 + b * frame_u8);
        if (!e->prep_rc[b]) dv_prep_normalize(&e->prep_cfg, e->u8 + b * frame_u8, S, S, e->pix + b * frame_px);
    }
    for (int b = 0; b < nb; b++)
        if (e->prep_rc[b]) {
            int rc = dv_prep_run(e->preps[0], &frames[b], e->u8 + b * frame_u8);
            return dv_error_prefix(rc ? rc : e->prep_rc[b], "frame %d", first + b);
        }
    return run_batch(e, e->pix, nb);
}

int dv_encoder_encode_tensor(dv_encoder *e, const dv_image *frames, int nb, dv_tensor *out) {
    DV_ASSERT(e && out && nb >= 1 && nb <= e->max_batch && frames);
    int rc = encode_frames(e, frames, nb, 0);
    if (!rc) *out = out_view(e, nb);
    return rc;
}

// The host APIs: batches through e->out, then one download each (a copy on the CPU backend).
static int fetch(dv_encoder *e, int nb, float *dst) {
    dv_tensor t = out_view(e, nb);
    return dv_backend_download(e->be, dst, t.data, dv_tensor_nbytes(&t));
}

int dv_encoder_encode(dv_encoder *e, const dv_image *frames, int n, float *out) {
    DV_ASSERT(e && (n == 0 || (frames && out)) && n >= 0);
    const size_t per_out = (size_t)e->c.tokens * e->c.d_model;
    for (int i0 = 0; i0 < n; i0 += e->max_batch) {
        const int nb = n - i0 < e->max_batch ? n - i0 : e->max_batch;
        int rc = encode_frames(e, frames + i0, nb, i0);
        if (rc || (rc = fetch(e, nb, out + (size_t)i0 * per_out))) return rc;
    }
    return 0;
}

int dv_encoder_encode_pixels(dv_encoder *e, const float *pixels, int n, float *out) {
    DV_ASSERT(e && (n == 0 || (pixels && out)) && n >= 0);
    const size_t frame_px = (size_t)3 * e->c.image_size * e->c.image_size;
    const size_t per_out = (size_t)e->c.tokens * e->c.d_model;
    for (int i0 = 0; i0 < n; i0 += e->max_batch) {
        const int nb = n - i0 < e->max_batch ? n - i0 : e->max_batch;
        int rc = run_batch(e, pixels + (size_t)i0 * frame_px, nb);
        if (rc || (rc = fetch(e, nb, out + (size_t)i0 * per_out))) return rc;
    }
    return 0;
}

// ---- shared with the other towers' files (encoder_internal.h) ----

int enc_bind(const dv_safetensors *st, const char *prefix, const char *suffix, int n_dims, const int64_t *shape,
             int view_dims, const int64_t *view_shape, dv_tensor *out) {
    return bind(st, prefix, suffix, n_dims, shape, view_dims, view_shape, out);
}

const char *enc_find_prefix(const dv_safetensors *st, const char *const *prefixes, int n, const char *probe) {
    return find_prefix(st, prefixes, n, probe);
}
