// qwen_vit.c: the Qwen-VL vision towers on the backend ops, one handle for the families config.json's
// model_type names:
//   qwen2_5_vl (Qwen2_5_VisionTransformerPretrainedModel): the Conv3d patch embedding as a matmul over
//     the processor's patch rows, the 2-D rotary (rope_sections: row / column of each patch), RMSNorm +
//     SwiGLU blocks whose attention runs inside windows (window_size pixels square, in units of merged
//     tokens) except in the full-attention blocks (fullatt_block_indexes: the whole frame), and the
//     merger (RMSNorm, 2x2 tokens concatenated, MLP with GELU). As in HF the patch rows are put in
//     window order once (host side, before the upload), every block works in that order, and the
//     merged tokens are put back with a row gather (the embed op).
//   qwen3_vl / qwen3_5 (Qwen3VLVisionModel, Qwen3_5VisionModel): a biased patch embedding plus the
//     learned position table bilinearly resampled to the frame's grid (HF fast_pos_embed_interpolate,
//     align_corners), the same 2-D rotary, LayerNorm + GELU-MLP blocks attending over the whole frame,
//     the merger (LayerNorm before the 2x2 concatenation), and DeepStack: after each block listed in
//     deepstack_visual_indexes its own merger (LayerNorm after the concatenation) makes features that
//     the text model adds to its first layers' hidden states (Qwen3.5: no such list, no DeepStack).
#include "encoder/dv_qwen_vision.h"
#include "encoder/encoder_internal.h"

#include "core/dv_error.h"
#include "core/dv_json.h"
#include "core/dv_log.h"
#include "core/dv_safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QV_MAX_FULL 64
#define QV_MAX_DEEP 8

typedef struct qv_layer {
    dv_tensor n1, n2;                 // (D) RMSNorm / LayerNorm weights
    dv_tensor n1b, n2b;               // (D) LayerNorm biases (Qwen3; no data for Qwen2.5)
    dv_tensor q_w, k_w, v_w;          // (D, D) row blocks of qkv.weight (3D, D)
    dv_tensor q_b, k_b, v_b;          // (D) pieces of qkv.bias
    dv_tensor o_w, o_b;               // (D, D), (D)
    dv_tensor g_w, g_b, u_w, u_b;     // (I, D), (I): gate / up (Qwen3: g = linear_fc1, no up)
    dv_tensor d_w, d_b;               // (D, I), (D): down (Qwen3: linear_fc2)
} qv_layer;

// A patch merger: norm (of D before the 2x2 concatenation, or of 4D after it: `post`), fc1, GELU, fc2.
typedef struct qv_merger {
    int post;
    dv_tensor nw, nb;                 // (D) or (4D); nb: LayerNorm bias (no data: RMSNorm, Qwen2.5)
    dv_tensor w1, b1;                 // (4D, 4D), (4D)
    dv_tensor w2, b2;                 // (out_dim, 4D), (out_dim)
} qv_merger;

struct dv_qwen_vit {
    int qwen3;                        // Qwen3-VL / Qwen3.5 tower (LayerNorm, GELU MLP, position table, frame attention)
    dv_act act;                       // Qwen3's MLP activation (hidden_act)
    int depth, D, I, H, hd, P, tp, m, window, out_dim;
    int full[QV_MAX_FULL], n_full;
    int deep[QV_MAX_DEEP], n_deep;    // deepstack_visual_indexes
    int side;                         // Qwen3: the position table is side x side
    float *pos_table;                 // (side * side, D) host F32 (Qwen3)
    double theta, tokens_per_second;
    dv_rope rope;
    dv_rope_sec sec;
    dv_safetensors *st;
    dv_backend *be;
    int own_be, gpu;
    dv_tensor patch_w;                // (D, 3 * tp * P * P): the Conv3d kernel (D, 3, tp, P, P) flattened
    dv_tensor patch_b;                // (D) Qwen3's Conv3d bias (no data for Qwen2.5)
    qv_layer *layers;                 // (depth)
    qv_merger merger;                 // the main merger
    qv_merger deep_mergers[QV_MAX_DEEP];
    void **dev_weights;
    int n_dev_weights;
    // activations for N patches (grown when a larger video arrives, never per frame):
    int64_t cap_n;
    float *x;                         // (N, K) host: patches in window order
    float *xd;                        // (N, K) on the backend (== x on the CPU)
    int32_t *pos, *posd;              // (2, N) row / column of each patch in window order (host, backend)
    int32_t *rev, *revd;              // (N / m^2) window position of each merged token in the processor's order
    int32_t *win;                     // (N / m^2 + 1) window boundaries in patch rows (host only)
    int32_t *perm;                    // (N / m^2) merged token of each window slot (host only)
    float *h, *a, *q, *k, *v, *att;   // (N, D)
    float *f, *g;                     // (N, I)
    float *mh;                        // (N / m^2, 4D) merger hidden
    float *mo;                        // (N / m^2, out_dim) merger output in window order
    float *out;                       // (N / m^2, out_dim) in the processor's order
    float *ds;                        // (n_deep, N / m^2, out_dim) DeepStack features, processor's order
    int64_t cap_pe;                   // frame patches pe holds
    float *pe, *ped;                  // (gh * gw, D) the frame's interpolated position embeddings (host, backend)
    char desc[320];
};

// ---- config ----

static int load_config(dv_qwen_vit *v, const char *model_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    cJSON *root = NULL;
    int rc = dv_json_load(path, &root);
    if (rc) return rc;
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    const char *mt = dv_json_get_string(root, "model_type");
    int64_t depth = 0, D = 0, I = 0, H = 0, P = 14, tp = 2, m = 2, win = 112, out = 0, inch = 3, npos = 2304;
    double tps = 4, theta = 10000;
    const int q3vl = mt && !strcmp(mt, "qwen3_vl"), q35 = mt && (!strcmp(mt, "qwen3_5") || !strcmp(mt, "qwen3_5_moe"));
    if (!mt || (strcmp(mt, "qwen2_5_vl") && !q3vl && !q35)) {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: model_type '%s' is not qwen2_5_vl, qwen3_vl or qwen3_5", path,
                          mt ? mt : "(none)");
        goto done;
    }
    v->qwen3 = q3vl || q35;
    if (v->qwen3) P = 16, tps = 0;
    if (!vc || !cJSON_IsObject(vc)) {
        rc = dv_error_set(DV_EFORMAT, "%s: no vision_config", path);
        goto done;
    }
    const char *act = dv_json_get_string(vc, "hidden_act");
    const char *want_act = v->qwen3 ? "gelu_pytorch_tanh" : "silu";
    if (!act) act = want_act; // the class default
    if (v->qwen3 ? (v->act = (dv_act)enc_act_from_name(act)) == (dv_act)-1 || v->act == DV_ACT_SILU : strcmp(act, "silu")) {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: vision_config.hidden_act '%s' (%s expected)", path, act,
                          v->qwen3 ? "a GELU" : "silu");
        goto done;
    }
    if ((rc = dv_json_get_int(vc, "depth", path, &depth)) || (rc = dv_json_get_int(vc, "hidden_size", path, &D)) ||
        (rc = dv_json_get_int(vc, "intermediate_size", path, &I)) || (rc = dv_json_get_int(vc, "num_heads", path, &H)) ||
        (rc = dv_json_get_int(vc, "out_hidden_size", path, &out)) ||
        (rc = dv_json_get_int_opt(vc, "patch_size", path, &P)) ||
        (rc = dv_json_get_int_opt(vc, "temporal_patch_size", path, &tp)) ||
        (rc = dv_json_get_int_opt(vc, "spatial_merge_size", path, &m)) ||
        (rc = dv_json_get_int_opt(vc, "window_size", path, &win)) ||
        (rc = dv_json_get_int_opt(vc, "in_channels", path, &inch)) ||
        (rc = dv_json_get_int_opt(vc, "in_chans", path, &inch)) ||
        (rc = dv_json_get_int_opt(vc, "num_position_embeddings", path, &npos)) ||
        (rc = dv_json_get_double_opt(vc, "tokens_per_second", path, &tps)))
        goto done;
    if (v->qwen3) win = P * m; // no window attention: unused
    v->side = (int)floor(sqrt((double)npos));
    if (v->qwen3 && (npos < 1 || npos > 1 << 20 || (int64_t)v->side * v->side != npos)) {
        rc = dv_error_set(DV_EFORMAT, "%s: vision_config.num_position_embeddings %lld is not a square", path,
                          (long long)npos);
        goto done;
    }
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(vc, "rope_parameters");
    if (rp && (rc = dv_json_get_double_opt(rp, "rope_theta", path, &theta))) goto done;
    if (depth < 1 || depth > 256 || D < 4 || H < 1 || D % H || (D / H) % 4 || I < 1 || P < 1 || tp < 1 || m < 1 ||
        out < 1 || inch != 3 || win < P * m) {
        rc = dv_error_set(DV_EFORMAT,
                          "%s: vision_config: bad shape (depth %lld, hidden %lld, heads %lld, patch %lld, window %lld, "
                          "in_channels %lld)",
                          path, (long long)depth, (long long)D, (long long)H, (long long)P, (long long)win, (long long)inch);
        goto done;
    }
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(vc, "fullatt_block_indexes");
    const cJSON *e;
    cJSON_ArrayForEach(e, fb) {
        if (!cJSON_IsNumber(e) || v->n_full >= QV_MAX_FULL || e->valueint < 0 || e->valueint >= depth) {
            rc = dv_error_set(DV_EFORMAT, "%s: vision_config.fullatt_block_indexes: bad entry", path);
            goto done;
        }
        v->full[v->n_full++] = e->valueint;
    }
    // DeepStack: the listed blocks (HF's default 8, 16, 24 when a Qwen3-VL config omits the key; Qwen3.5: none)
    const cJSON *ds = q35 ? NULL : cJSON_GetObjectItemCaseSensitive(vc, "deepstack_visual_indexes"); // HF drops it
    if (q3vl && !ds) {
        for (int i = 8; i <= 24; i += 8) v->deep[v->n_deep++] = i;
    }
    cJSON_ArrayForEach(e, ds) {
        if (!cJSON_IsNumber(e) || v->n_deep >= QV_MAX_DEEP || e->valueint < 0 || e->valueint >= depth) {
            rc = dv_error_set(DV_EFORMAT, "%s: vision_config.deepstack_visual_indexes: bad entry", path);
            goto done;
        }
        v->deep[v->n_deep++] = e->valueint;
    }
    for (int i = 0; i < v->n_deep; i++)
        if (v->deep[i] >= depth) {
            rc = dv_error_set(DV_EFORMAT, "%s: deepstack_visual_indexes: block %d of %lld", path, v->deep[i], (long long)depth);
            goto done;
        }
    v->depth = (int)depth, v->D = (int)D, v->I = (int)I, v->H = (int)H, v->hd = (int)(D / H), v->P = (int)P;
    v->tp = (int)tp, v->m = (int)m, v->window = (int)win, v->out_dim = (int)out;
    v->tokens_per_second = tps, v->theta = theta;
    rc = dv_rope_init_vision_2d(&v->rope, &v->sec, v->hd, theta);
done:
    cJSON_Delete(root);
    return rc;
}

// ---- weights ----

#define B1(pre, suf, n0, dst) enc_bind(v->st, pre, suf, 1, (int64_t[]){n0}, 0, NULL, dst)
#define B2(pre, suf, n0, n1, dst) enc_bind(v->st, pre, suf, 2, (int64_t[]){n0, n1}, 0, NULL, dst)

// A merger under `p` ("merger." or "deepstack_merger_list.<i>."): Qwen2.5 ln_q + mlp.0 / mlp.2, Qwen3
// norm + linear_fc1 / linear_fc2.
static int bind_merger(dv_qwen_vit *v, const char *p, int post, qv_merger *M) {
    const int64_t D = v->D, M4 = D * v->m * v->m, O = v->out_dim;
    int rc;
    M->post = post;
    if (!v->qwen3)
        return (rc = B1(p, "ln_q.weight", D, &M->nw)) || (rc = B2(p, "mlp.0.weight", M4, M4, &M->w1)) ||
                       (rc = B1(p, "mlp.0.bias", M4, &M->b1)) || (rc = B2(p, "mlp.2.weight", O, M4, &M->w2)) ||
                       (rc = B1(p, "mlp.2.bias", O, &M->b2))
                   ? rc
                   : 0;
    const int64_t nd = post ? M4 : D;
    return (rc = B1(p, "norm.weight", nd, &M->nw)) || (rc = B1(p, "norm.bias", nd, &M->nb)) ||
                   (rc = B2(p, "linear_fc1.weight", M4, M4, &M->w1)) || (rc = B1(p, "linear_fc1.bias", M4, &M->b1)) ||
                   (rc = B2(p, "linear_fc2.weight", O, M4, &M->w2)) || (rc = B1(p, "linear_fc2.bias", O, &M->b2))
               ? rc
               : 0;
}

// The position table (side^2, D) in F32 on the host: the interpolation is computed there per grid.
static int load_pos_table(dv_qwen_vit *v, const char *vp) {
    const int64_t n = (int64_t)v->side * v->side, D = v->D;
    dv_tensor t;
    int rc = B2(vp, "pos_embed.weight", n, D, &t);
    if (rc) return rc;
    if (!(v->pos_table = malloc((size_t)(n * D) * sizeof(float))))
        return dv_error_set(DV_ENOMEM, "vision tower: out of memory");
    for (int64_t i = 0; i < n * D; i++) {
        const void *d = t.data;
        v->pos_table[i] = t.dtype == DV_DTYPE_F32    ? ((const float *)d)[i]
                          : t.dtype == DV_DTYPE_BF16 ? dv_bf16_to_f32(((const uint16_t *)d)[i])
                                                     : dv_f16_to_f32(((const uint16_t *)d)[i]);
    }
    return 0;
}

static int bind_weights(dv_qwen_vit *v) {
    static const char *const pre[] = {"model.visual.", "visual."};
    const char *vp = enc_find_prefix(v->st, pre, 2, "patch_embed.proj.weight");
    if (!vp) return DV_ENOTFOUND;
    const int64_t D = v->D, I = v->I, K = 3 * (int64_t)v->tp * v->P * v->P;
    int rc;
    if ((rc = enc_bind(v->st, vp, "patch_embed.proj.weight", 5, (int64_t[]){D, 3, v->tp, v->P, v->P}, 2,
                       (int64_t[]){D, K}, &v->patch_w)))
        return rc;
    if (v->qwen3 && ((rc = B1(vp, "patch_embed.proj.bias", D, &v->patch_b)) || (rc = load_pos_table(v, vp)))) return rc;
    v->layers = calloc((size_t)v->depth, sizeof *v->layers);
    if (!v->layers) return dv_error_set(DV_ENOMEM, "vision tower: out of memory");
    for (int l = 0; l < v->depth; l++) {
        char p[160];
        snprintf(p, sizeof p, "%sblocks.%d.", vp, l);
        qv_layer *L = &v->layers[l];
        dv_tensor qkv_w, qkv_b;
        if ((rc = B1(p, "norm1.weight", D, &L->n1)) || (rc = B1(p, "norm2.weight", D, &L->n2)) ||
            (rc = B2(p, "attn.qkv.weight", 3 * D, D, &qkv_w)) || (rc = B1(p, "attn.qkv.bias", 3 * D, &qkv_b)) ||
            (rc = B2(p, "attn.proj.weight", D, D, &L->o_w)) || (rc = B1(p, "attn.proj.bias", D, &L->o_b)))
            return rc;
        if (v->qwen3 ? (rc = B1(p, "norm1.bias", D, &L->n1b)) || (rc = B1(p, "norm2.bias", D, &L->n2b)) ||
                           (rc = B2(p, "mlp.linear_fc1.weight", I, D, &L->g_w)) ||
                           (rc = B1(p, "mlp.linear_fc1.bias", I, &L->g_b)) ||
                           (rc = B2(p, "mlp.linear_fc2.weight", D, I, &L->d_w)) ||
                           (rc = B1(p, "mlp.linear_fc2.bias", D, &L->d_b))
                     : (rc = B2(p, "mlp.gate_proj.weight", I, D, &L->g_w)) ||
                           (rc = B1(p, "mlp.gate_proj.bias", I, &L->g_b)) ||
                           (rc = B2(p, "mlp.up_proj.weight", I, D, &L->u_w)) ||
                           (rc = B1(p, "mlp.up_proj.bias", I, &L->u_b)) ||
                           (rc = B2(p, "mlp.down_proj.weight", D, I, &L->d_w)) ||
                           (rc = B1(p, "mlp.down_proj.bias", D, &L->d_b)))
            return rc;
        // q, k, v: consecutive row blocks of the fused projection (HF reshapes its output (T, 3, H, hd))
        L->q_w = dv_tensor_rows(&qkv_w, 0, D), L->k_w = dv_tensor_rows(&qkv_w, D, D), L->v_w = dv_tensor_rows(&qkv_w, 2 * D, D);
        L->q_b = dv_tensor_rows(&qkv_b, 0, D), L->k_b = dv_tensor_rows(&qkv_b, D, D), L->v_b = dv_tensor_rows(&qkv_b, 2 * D, D);
    }
    char p[160];
    snprintf(p, sizeof p, "%smerger.", vp);
    if ((rc = bind_merger(v, p, 0, &v->merger))) return rc;
    for (int i = 0; i < v->n_deep; i++) {
        snprintf(p, sizeof p, "%sdeepstack_merger_list.%d.", vp, i);
        if ((rc = bind_merger(v, p, 1, &v->deep_mergers[i]))) return rc;
    }
    return 0;
}

// GPU backends: every weight copied once in its file dtype; the views of the fused qkv are re-pointed.
static int upload_weights(dv_qwen_vit *v) {
    const int n_max = 7 + 7 * (1 + QV_MAX_DEEP) + 18 * v->depth;
    dv_tensor **ts = calloc((size_t)n_max, sizeof *ts);
    v->dev_weights = calloc((size_t)n_max, sizeof *v->dev_weights);
    if (!ts || !v->dev_weights) {
        free(ts);
        return dv_error_set(DV_ENOMEM, "vision tower: out of memory");
    }
    int n = 0;
    ts[n++] = &v->patch_w, ts[n++] = &v->patch_b;
    for (int i = -1; i < v->n_deep; i++) {
        qv_merger *M = i < 0 ? &v->merger : &v->deep_mergers[i];
        ts[n++] = &M->nw, ts[n++] = &M->nb, ts[n++] = &M->w1, ts[n++] = &M->b1, ts[n++] = &M->w2, ts[n++] = &M->b2;
    }
    for (int l = 0; l < v->depth; l++) {
        qv_layer *L = &v->layers[l];
        dv_tensor *lt[] = {&L->n1, &L->n2, &L->n1b, &L->n2b, &L->q_w, &L->k_w, &L->v_w, &L->q_b, &L->k_b,
                           &L->v_b, &L->o_w, &L->o_b, &L->g_w, &L->g_b, &L->u_w, &L->u_b, &L->d_w, &L->d_b};
        for (size_t i = 0; i < sizeof lt / sizeof lt[0] && n < n_max; i++) ts[n++] = lt[i];
    }
    const int rc = enc_upload_tensors(v->be, ts, n, v->dev_weights, &v->n_dev_weights);
    free(ts);
    return rc;
}

// ---- open / free ----

int dv_qwen_vit_open(const char *model_dir, dv_backend *be, int n_threads, dv_qwen_vit **out) {
    *out = NULL;
    dv_qwen_vit *v = calloc(1, sizeof *v);
    if (!v) return dv_error_set(DV_ENOMEM, "vision tower: out of memory");
    int rc;
    if ((rc = load_config(v, model_dir)) || (rc = dv_safetensors_open(model_dir, &v->st)) || (rc = bind_weights(v)))
        goto fail;
    if (be) {
        v->be = be;
    } else {
        if (!(v->be = dv_backend_cpu_init(n_threads))) {
            rc = DV_EDEVICE;
            goto fail;
        }
        v->own_be = 1;
    }
    v->gpu = v->be->device != DV_DEVICE_CPU;
    if (v->gpu && (rc = upload_weights(v))) goto fail;
    if (v->qwen3)
        snprintf(v->desc, sizeof v->desc,
                 "qwen3 vision, %d blocks x %d (%d heads, frame attention), patch %d x %d frames, position table %dx%d, "
                 "merge %d -> %d, %d deepstack, weights %s",
                 v->depth, v->D, v->H, v->P, v->tp, v->side, v->side, v->m, v->out_dim, v->n_deep,
                 dv_dtype_name(v->patch_w.dtype));
    else
        snprintf(v->desc, sizeof v->desc,
                 "qwen2_5_vl vision, %d blocks x %d (%d heads, %d full-attention), patch %d x %d frames, window %d px, "
                 "merge %d -> %d, weights %s",
                 v->depth, v->D, v->H, v->n_full, v->P, v->tp, v->window, v->m, v->out_dim,
                 dv_dtype_name(v->patch_w.dtype));
    DV_LOG_DEBUG("encoder: %s", v->desc);
    *out = v;
    return 0;
fail:
    dv_qwen_vit_free(v);
    return rc;
}

static void free_acts(dv_qwen_vit *v) {
    void *bufs[] = {v->h, v->a, v->q, v->k, v->v, v->att, v->f, v->g, v->mh, v->mo, v->out, v->ds};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) v->be->ops->free(v->be, bufs[i]);
    if (v->gpu) {
        if (v->xd) v->be->ops->free(v->be, v->xd);
        if (v->posd) v->be->ops->free(v->be, v->posd);
        if (v->revd) v->be->ops->free(v->be, v->revd);
    }
    free(v->x), free(v->pos), free(v->rev), free(v->win), free(v->perm);
    v->h = v->a = v->q = v->k = v->v = v->att = v->f = v->g = v->mh = v->mo = v->out = v->ds = v->x = v->xd = NULL;
    v->pos = v->posd = v->rev = v->revd = v->win = v->perm = NULL;
    v->cap_n = 0;
}

void dv_qwen_vit_free(dv_qwen_vit *v) {
    if (!v) return;
    if (v->be) {
        free_acts(v);
        for (int i = 0; i < v->n_dev_weights; i++) v->be->ops->free(v->be, v->dev_weights[i]);
        if (v->own_be) dv_backend_free(v->be);
    }
    if (v->be && v->gpu && v->ped) v->be->ops->free(v->be, v->ped);
    free(v->pe);
    free(v->pos_table);
    free(v->dev_weights);
    free(v->layers);
    dv_safetensors_free(v->st);
    free(v);
}

int dv_qwen_vit_out_dim(const dv_qwen_vit *v) { return v->out_dim; }
int dv_qwen_vit_merge(const dv_qwen_vit *v) { return v->m; }
double dv_qwen_vit_tokens_per_second(const dv_qwen_vit *v) { return v->tokens_per_second; }
int dv_qwen_vit_n_deepstack(const dv_qwen_vit *v) { return v->n_deep; }
int dv_qwen_vit_is_qwen3(const dv_qwen_vit *v) { return v->qwen3; }
const char *dv_qwen_vit_describe(const dv_qwen_vit *v) { return v->desc; }

// ---- buffers ----

static void *balloc(dv_qwen_vit *v, size_t n, int *fail) {
    if (*fail) return NULL;
    void *p = v->be->ops->alloc(v->be, n ? n : 1);
    if (!p) *fail = 1;
    return p;
}

static int reserve(dv_qwen_vit *v, int64_t N) {
    if (N <= v->cap_n) return 0;
    free_acts(v);
    const size_t K = (size_t)3 * v->tp * v->P * v->P, D = (size_t)v->D, I = (size_t)v->I, m2 = (size_t)v->m * v->m;
    const size_t n = (size_t)N, nt = n / m2;
    int fail = 0;
    v->x = malloc(n * K * sizeof(float));
    v->pos = malloc(2 * n * sizeof(int32_t));
    v->rev = malloc(nt * sizeof(int32_t));
    v->win = malloc((nt + 1) * sizeof(int32_t));
    v->perm = malloc(nt * sizeof(int32_t));
    if (!v->x || !v->pos || !v->rev || !v->win || !v->perm) fail = 1;
    if (v->gpu) {
        v->xd = balloc(v, n * K * sizeof(float), &fail);
        v->posd = balloc(v, 2 * n * sizeof(int32_t), &fail);
        v->revd = balloc(v, nt * sizeof(int32_t), &fail);
    } else {
        v->xd = v->x, v->posd = v->pos, v->revd = v->rev;
    }
    v->h = balloc(v, n * D * sizeof(float), &fail);
    v->a = balloc(v, n * D * sizeof(float), &fail);
    v->q = balloc(v, n * D * sizeof(float), &fail);
    v->k = balloc(v, n * D * sizeof(float), &fail);
    v->v = balloc(v, n * D * sizeof(float), &fail);
    v->att = balloc(v, n * D * sizeof(float), &fail);
    v->f = balloc(v, n * I * sizeof(float), &fail);
    v->g = balloc(v, n * I * sizeof(float), &fail);
    v->mh = balloc(v, nt * m2 * D * sizeof(float), &fail);
    v->mo = balloc(v, nt * (size_t)v->out_dim * sizeof(float), &fail);
    v->out = balloc(v, nt * (size_t)v->out_dim * sizeof(float), &fail);
    if (v->n_deep) v->ds = balloc(v, (size_t)v->n_deep * nt * (size_t)v->out_dim * sizeof(float), &fail);
    if (fail) {
        free_acts(v);
        return dv_error_set(DV_ENOMEM, "vision tower: activations for %lld patches", (long long)N);
    }
    v->cap_n = N;
    return 0;
}

// HF get_vision_window_index: merged tokens of each frame grouped into windows of ws x ws merged tokens
// (ws = window / merge / patch; the last row / column of windows may be partial), frames in order.
// perm[slot] = merged token (processor order) at window slot `slot`; win[] = window boundaries in
// patch rows; returns the number of windows. Qwen3 towers have no windows: one per frame, perm the
// identity.
static int window_order(const dv_qwen_vit *v, int gt, int gh, int gw, int32_t *perm, int32_t *win) {
    const int lh = gh / v->m, lw = gw / v->m, m2 = v->m * v->m;
    const int ws = v->qwen3 ? (lh > lw ? lh : lw) : v->window / v->m / v->P;
    const int nwh = (lh + ws - 1) / ws, nww = (lw + ws - 1) / ws;
    int slot = 0, nw = 0;
    win[0] = 0;
    for (int t = 0; t < gt; t++)
        for (int wy = 0; wy < nwh; wy++)
            for (int wx = 0; wx < nww; wx++) {
                for (int y = wy * ws; y < (wy + 1) * ws && y < lh; y++)
                    for (int x = wx * ws; x < (wx + 1) * ws && x < lw; x++) perm[slot++] = (t * lh + y) * lw + x;
                win[++nw] = slot * m2;
            }
    return nw;
}

// HF get_vision_interpolation_indices_and_weights (bilinear, align_corners, border), one axis in
// float32 as torch computes it: the source coordinate of target index i of n on a side-long table,
// its two taps and their weights.
static void interp_axis(int i, int n, int side, int tap[2], float w[2]) {
    const float src = (float)i * (float)(side - 1) / (float)(n > 1 ? n - 1 : 1);
    const float fl = floorf(src);
    for (int o = 0; o < 2; o++) {
        const int t = (int)fl + o;
        tap[o] = t < 0 ? 0 : t > side - 1 ? side - 1 : t;
        const float d = fabsf(src - fl - (float)o);
        w[o] = fmaxf(1.0f - d, 0.0f);
    }
}

// v->pe (gh * gw, D): the position table resampled to the frame's grid, rows in the processor's
// patch order (pos: the (row, column) of each of the frame's patches, (2, stride) I32).
static void pos_embed_frame(dv_qwen_vit *v, int gh, int gw, const int32_t *pos, int64_t stride) {
    const int64_t n = (int64_t)gh * gw, D = v->D;
    for (int64_t j = 0; j < n; j++) {
        int th[2], tw[2];
        float wh[2], ww[2];
        interp_axis(pos[j], gh, v->side, th, wh);
        interp_axis(pos[stride + j], gw, v->side, tw, ww);
        float *o = v->pe + j * D;
        const float *r[4];
        float w[4];
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                r[2 * a + b] = v->pos_table + ((int64_t)th[a] * v->side + tw[b]) * D;
                w[2 * a + b] = wh[a] * ww[b];
            }
        for (int64_t d = 0; d < D; d++) o[d] = ((r[0][d] * w[0] + r[1][d] * w[1]) + r[2][d] * w[2]) + r[3][d] * w[3];
    }
}

static int reserve_pe(dv_qwen_vit *v, int64_t n) {
    if (n <= v->cap_pe) return 0;
    if (v->gpu && v->ped) v->be->ops->free(v->be, v->ped);
    free(v->pe);
    v->ped = NULL;
    v->cap_pe = 0;
    int fail = 0;
    if (!(v->pe = malloc((size_t)(n * v->D) * sizeof(float)))) fail = 1;
    if (v->gpu) v->ped = balloc(v, (size_t)(n * v->D) * sizeof(float), &fail);
    else v->ped = v->pe;
    if (fail) return dv_error_set(DV_ENOMEM, "vision tower: position embeddings for %lld patches", (long long)n);
    v->cap_pe = n;
    return 0;
}

// One merger over h (N, D) -> y (NT, out_dim) in the processor's order (through the window order).
static void run_merger(dv_qwen_vit *v, const qv_merger *M, int64_t N, float *y_dev) {
    dv_backend *be = v->be;
    const dv_backend_ops *op = be->ops;
    const int64_t D = v->D, m2 = (int64_t)v->m * v->m, NT = N / m2;
    dv_tensor h = dv_tensor_2d(DV_DTYPE_F32, v->h, N, D), a = dv_tensor_2d(DV_DTYPE_F32, v->a, N, D);
    dv_tensor h4 = dv_tensor_2d(DV_DTYPE_F32, v->h, NT, D * m2), a4 = dv_tensor_2d(DV_DTYPE_F32, v->a, NT, D * m2);
    dv_tensor mh = dv_tensor_2d(DV_DTYPE_F32, v->mh, NT, D * m2);
    dv_tensor mo = dv_tensor_2d(DV_DTYPE_F32, v->mo, NT, v->out_dim), y = dv_tensor_2d(DV_DTYPE_F32, y_dev, NT, v->out_dim);
    if (!M->nb.data) op->rms_norm(be, &a, &h, &M->nw, 1e-6f);               // Qwen2.5 ln_q
    else if (M->post) op->layer_norm(be, &a4, &h4, &M->nw, &M->nb, 1e-6f);  // after the 2x2 concatenation
    else op->layer_norm(be, &a, &h, &M->nw, &M->nb, 1e-6f);
    op->matmul(be, &mh, &a4, &M->w1, &M->b1); // each 2x2 block's rows side by side (rows are consecutive)
    op->act(be, &mh, &mh, DV_ACT_GELU_ERF);
    op->matmul(be, &mo, &mh, &M->w2, &M->b2);
    dv_tensor rev = dv_tensor_1d(DV_DTYPE_I32, v->revd, NT);
    op->embed(be, &y, &mo, &rev); // y[i] = mo[rev[i]]
}

int dv_qwen_vit_encode(dv_qwen_vit *v, const float *patches, int gt, int gh, int gw, float *out) {
    return dv_qwen_vit_encode_deepstack(v, patches, gt, gh, gw, out, NULL);
}

int dv_qwen_vit_encode_deepstack(dv_qwen_vit *v, const float *patches, int gt, int gh, int gw, float *out, float *deep) {
    if (gt < 1 || gh < v->m || gw < v->m || gh % v->m || gw % v->m)
        return dv_error_set(DV_EINVAL, "vision tower: grid %d x %d x %d is not a whole number of %dx%d merge blocks", gt,
                            gh, gw, v->m, v->m);
    const int64_t N = (int64_t)gt * gh * gw, m2 = (int64_t)v->m * v->m, NT = N / m2, D = v->D, K = 3 * (int64_t)v->tp * v->P * v->P;
    int rc = reserve(v, N);
    if (rc) return rc;
    const int64_t frame = (int64_t)gh * gw;
    if (v->qwen3 && (rc = reserve_pe(v, frame))) return rc;
    dv_backend *be = v->be;
    const dv_backend_ops *op = be->ops;

    // ---- host: window order of the merged tokens, the patch rows and their (row, column) in it ----
    const int nw = window_order(v, gt, gh, gw, v->perm, v->win);
    const int lw = gw / v->m, lh = gh / v->m;
    for (int64_t s = 0; s < NT; s++) {
        const int32_t tok = v->perm[s];
        v->rev[tok] = (int32_t)s;
        const int by = (tok / lw) % lh, bx = tok % lw;
        memcpy(v->x + (size_t)s * m2 * K, patches + (size_t)tok * m2 * K, (size_t)(m2 * K) * sizeof(float));
        for (int j = 0; j < m2; j++) {
            v->pos[s * m2 + j] = by * v->m + j / v->m;         // patch row
            v->pos[N + s * m2 + j] = bx * v->m + j % v->m;     // patch column
        }
    }
    if (v->qwen3) pos_embed_frame(v, gh, gw, v->pos, N); // the first frame's rows (identity order)
    if (v->gpu && ((rc = dv_backend_upload_async(be, v->xd, v->x, (size_t)(N * K) * sizeof(float))) ||
                   (rc = dv_backend_upload_async(be, v->posd, v->pos, (size_t)(2 * N) * sizeof(int32_t))) ||
                   (rc = dv_backend_upload_async(be, v->revd, v->rev, (size_t)NT * sizeof(int32_t))) ||
                   (v->qwen3 && (rc = dv_backend_upload_async(be, v->ped, v->pe, (size_t)(frame * D) * sizeof(float))))))
        return rc;

    dv_tensor x = dv_tensor_2d(DV_DTYPE_F32, v->xd, N, K);
    dv_tensor h = dv_tensor_2d(DV_DTYPE_F32, v->h, N, D), a = dv_tensor_2d(DV_DTYPE_F32, v->a, N, D);
    dv_tensor q = dv_tensor_2d(DV_DTYPE_F32, v->q, N, D), k = dv_tensor_2d(DV_DTYPE_F32, v->k, N, D);
    dv_tensor vv = dv_tensor_2d(DV_DTYPE_F32, v->v, N, D), att = dv_tensor_2d(DV_DTYPE_F32, v->att, N, D);
    dv_tensor f = dv_tensor_2d(DV_DTYPE_F32, v->f, N, v->I), g = dv_tensor_2d(DV_DTYPE_F32, v->g, N, v->I);
    dv_tensor q3 = dv_tensor_3d(DV_DTYPE_F32, v->q, N, v->H, v->hd), k3 = dv_tensor_3d(DV_DTYPE_F32, v->k, N, v->H, v->hd);
    dv_tensor pos = dv_tensor_2d(DV_DTYPE_I32, v->posd, 2, N);
    op->matmul(be, &h, &x, &v->patch_w, v->patch_b.data ? &v->patch_b : NULL);
    if (v->qwen3) { // + the interpolated position table, the same for every frame
        dv_tensor pe = dv_tensor_2d(DV_DTYPE_F32, v->ped, frame, D);
        for (int t = 0; t < gt; t++) {
            dv_tensor ht = dv_tensor_2d(DV_DTYPE_F32, v->h + (size_t)(t * frame * D), frame, D);
            op->add(be, &ht, &ht, &pe);
        }
    }

    const dv_attn_params ap = {.scale = 1.0f / sqrtf((float)v->hd), .causal = 0, .q_pos0 = 0};
    for (int l = 0; l < v->depth; l++) {
        const qv_layer *L = &v->layers[l];
        int full = v->qwen3;
        for (int i = 0; i < v->n_full; i++) full |= v->full[i] == l;
        if (v->qwen3) op->layer_norm(be, &a, &h, &L->n1, &L->n1b, 1e-6f);
        else op->rms_norm(be, &a, &h, &L->n1, 1e-6f);
        op->matmul(be, &q, &a, &L->q_w, &L->q_b);
        op->matmul(be, &k, &a, &L->k_w, &L->k_b);
        op->matmul(be, &vv, &a, &L->v_w, &L->v_b);
        op->rope_sections(be, &q3, &pos, &v->rope, &v->sec);
        op->rope_sections(be, &k3, &pos, &v->rope, &v->sec);
        const int nseg = full ? gt : nw;
        for (int s = 0; s < nseg; s++) { // full: one frame; else one window (frames stay contiguous)
            const int64_t r0 = full ? s * frame : v->win[s], n = full ? frame : v->win[s + 1] - v->win[s];
            if (n > 0) enc_attention_rows(be, v->q, v->k, v->v, v->att, r0, n, v->H, v->hd, &ap);
        }
        op->matmul(be, &a, &att, &L->o_w, &L->o_b);
        op->add(be, &h, &h, &a);
        if (v->qwen3) { // LayerNorm, fc1, GELU, fc2
            op->layer_norm(be, &a, &h, &L->n2, &L->n2b, 1e-6f);
            op->matmul(be, &f, &a, &L->g_w, &L->g_b);
            op->act(be, &f, &f, v->act);
        } else { // RMSNorm, SwiGLU
            op->rms_norm(be, &a, &h, &L->n2, 1e-6f);
            op->matmul(be, &f, &a, &L->g_w, &L->g_b);
            op->matmul(be, &g, &a, &L->u_w, &L->u_b);
            op->swiglu(be, &f, &f, &g);
        }
        op->matmul(be, &a, &f, &L->d_w, &L->d_b);
        op->add(be, &h, &h, &a);
        for (int i = 0; i < v->n_deep; i++) // DeepStack: this block's features through its own merger
            if (v->deep[i] == l && deep) run_merger(v, &v->deep_mergers[i], N, v->ds + (size_t)i * NT * v->out_dim);
    }
    run_merger(v, &v->merger, N, v->out);
    if ((rc = op->synchronize(be))) return rc;
    if (deep && v->n_deep &&
        (rc = dv_backend_download(be, deep, v->ds, (size_t)(v->n_deep * NT * v->out_dim) * sizeof(float))))
        return rc;
    return dv_backend_download(be, out, v->out, (size_t)(NT * v->out_dim) * sizeof(float));
}
