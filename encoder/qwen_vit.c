// qwen_vit.c: the Qwen2.5-VL vision tower (Qwen2_5_VisionTransformerPretrainedModel) on the backend
// ops: the Conv3d patch embedding as a matmul over the processor's patch rows, the 2-D rotary
// (rope_sections: row / column of each patch), RMSNorm + SwiGLU blocks whose attention runs inside
// windows (window_size pixels square, in units of merged tokens) except in the full-attention blocks
// (fullatt_block_indexes: the whole frame), and the merger (RMSNorm, 2x2 tokens concatenated, MLP
// with GELU). As in HF the patch rows are put in window order once (host side, before the upload),
// every block works in that order, and the merged tokens are put back with a row gather (the embed op).
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

typedef struct qv_layer {
    dv_tensor n1, n2;                 // (D) RMSNorm weights
    dv_tensor q_w, k_w, v_w;          // (D, D) row blocks of qkv.weight (3D, D)
    dv_tensor q_b, k_b, v_b;          // (D) pieces of qkv.bias
    dv_tensor o_w, o_b;               // (D, D), (D)
    dv_tensor g_w, g_b, u_w, u_b;     // (I, D), (I)
    dv_tensor d_w, d_b;               // (D, I), (D)
} qv_layer;

struct dv_qwen_vit {
    int depth, D, I, H, hd, P, tp, m, window, out_dim;
    int full[QV_MAX_FULL], n_full;
    double theta, tokens_per_second;
    dv_rope rope;
    dv_rope_sec sec;
    dv_safetensors *st;
    dv_backend *be;
    int own_be, gpu;
    dv_tensor patch_w;                // (D, 3 * tp * P * P): the Conv3d kernel (D, 3, tp, P, P) flattened
    qv_layer *layers;                 // (depth)
    dv_tensor mq;                     // (D) merger ln_q
    dv_tensor m1_w, m1_b;             // (4D, 4D), (4D)
    dv_tensor m2_w, m2_b;             // (out_dim, 4D), (out_dim)
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
    char desc[256];
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
    int64_t depth = 0, D = 0, I = 0, H = 0, P = 14, tp = 2, m = 2, win = 112, out = 0, inch = 3;
    double tps = 4, theta = 10000;
    if (!mt || strcmp(mt, "qwen2_5_vl")) {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: model_type '%s' is not qwen2_5_vl", path, mt ? mt : "(none)");
        goto done;
    }
    if (!vc || !cJSON_IsObject(vc)) {
        rc = dv_error_set(DV_EFORMAT, "%s: no vision_config", path);
        goto done;
    }
    const char *act = dv_json_get_string(vc, "hidden_act");
    if (act && strcmp(act, "silu")) {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: vision_config.hidden_act '%s' (silu expected)", path, act);
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
        (rc = dv_json_get_double_opt(vc, "tokens_per_second", path, &tps)))
        goto done;
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

static int bind_weights(dv_qwen_vit *v) {
    static const char *const pre[] = {"model.visual.", "visual."};
    const char *vp = enc_find_prefix(v->st, pre, 2, "patch_embed.proj.weight");
    if (!vp) return DV_ENOTFOUND;
    const int64_t D = v->D, I = v->I, K = 3 * (int64_t)v->tp * v->P * v->P, M4 = D * v->m * v->m;
    int rc;
    if ((rc = enc_bind(v->st, vp, "patch_embed.proj.weight", 5, (int64_t[]){D, 3, v->tp, v->P, v->P}, 2,
                       (int64_t[]){D, K}, &v->patch_w)))
        return rc;
    v->layers = calloc((size_t)v->depth, sizeof *v->layers);
    if (!v->layers) return dv_error_set(DV_ENOMEM, "vision tower: out of memory");
    for (int l = 0; l < v->depth; l++) {
        char p[160];
        snprintf(p, sizeof p, "%sblocks.%d.", vp, l);
        qv_layer *L = &v->layers[l];
        dv_tensor qkv_w, qkv_b;
        if ((rc = B1(p, "norm1.weight", D, &L->n1)) || (rc = B1(p, "norm2.weight", D, &L->n2)) ||
            (rc = B2(p, "attn.qkv.weight", 3 * D, D, &qkv_w)) || (rc = B1(p, "attn.qkv.bias", 3 * D, &qkv_b)) ||
            (rc = B2(p, "attn.proj.weight", D, D, &L->o_w)) || (rc = B1(p, "attn.proj.bias", D, &L->o_b)) ||
            (rc = B2(p, "mlp.gate_proj.weight", I, D, &L->g_w)) || (rc = B1(p, "mlp.gate_proj.bias", I, &L->g_b)) ||
            (rc = B2(p, "mlp.up_proj.weight", I, D, &L->u_w)) || (rc = B1(p, "mlp.up_proj.bias", I, &L->u_b)) ||
            (rc = B2(p, "mlp.down_proj.weight", D, I, &L->d_w)) || (rc = B1(p, "mlp.down_proj.bias", D, &L->d_b)))
            return rc;
        // q, k, v: consecutive row blocks of the fused projection (HF reshapes its output (T, 3, H, hd))
        L->q_w = dv_tensor_rows(&qkv_w, 0, D), L->k_w = dv_tensor_rows(&qkv_w, D, D), L->v_w = dv_tensor_rows(&qkv_w, 2 * D, D);
        L->q_b = dv_tensor_rows(&qkv_b, 0, D), L->k_b = dv_tensor_rows(&qkv_b, D, D), L->v_b = dv_tensor_rows(&qkv_b, 2 * D, D);
    }
    if ((rc = B1(vp, "merger.ln_q.weight", D, &v->mq)) || (rc = B2(vp, "merger.mlp.0.weight", M4, M4, &v->m1_w)) ||
        (rc = B1(vp, "merger.mlp.0.bias", M4, &v->m1_b)) ||
        (rc = B2(vp, "merger.mlp.2.weight", v->out_dim, M4, &v->m2_w)) ||
        (rc = B1(vp, "merger.mlp.2.bias", v->out_dim, &v->m2_b)))
        return rc;
    return 0;
}

// GPU backends: every weight copied once in its file dtype; the views of the fused qkv are re-pointed.
static int upload_weights(dv_qwen_vit *v) {
    const int n_max = 5 + 15 * v->depth;
    dv_tensor **ts = calloc((size_t)n_max, sizeof *ts);
    v->dev_weights = calloc((size_t)n_max, sizeof *v->dev_weights);
    if (!ts || !v->dev_weights) {
        free(ts);
        return dv_error_set(DV_ENOMEM, "vision tower: out of memory");
    }
    int n = 0;
    ts[n++] = &v->patch_w, ts[n++] = &v->mq, ts[n++] = &v->m1_w, ts[n++] = &v->m1_b, ts[n++] = &v->m2_w, ts[n++] = &v->m2_b;
    for (int l = 0; l < v->depth; l++) {
        qv_layer *L = &v->layers[l];
        dv_tensor *lt[] = {&L->n1, &L->n2, &L->q_w, &L->k_w, &L->v_w, &L->q_b, &L->k_b, &L->v_b,
                           &L->o_w, &L->o_b, &L->g_w, &L->g_b, &L->u_w, &L->u_b, &L->d_w, &L->d_b};
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
    snprintf(v->desc, sizeof v->desc,
             "qwen2_5_vl vision, %d blocks x %d (%d heads, %d full-attention), patch %d x %d frames, window %d px, "
             "merge %d -> %d, weights %s",
             v->depth, v->D, v->H, v->n_full, v->P, v->tp, v->window, v->m, v->out_dim, dv_dtype_name(v->patch_w.dtype));
    DV_LOG_DEBUG("encoder: %s", v->desc);
    *out = v;
    return 0;
fail:
    dv_qwen_vit_free(v);
    return rc;
}

static void free_acts(dv_qwen_vit *v) {
    void *bufs[] = {v->h, v->a, v->q, v->k, v->v, v->att, v->f, v->g, v->mh, v->mo, v->out};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) v->be->ops->free(v->be, bufs[i]);
    if (v->gpu) {
        if (v->xd) v->be->ops->free(v->be, v->xd);
        if (v->posd) v->be->ops->free(v->be, v->posd);
        if (v->revd) v->be->ops->free(v->be, v->revd);
    }
    free(v->x), free(v->pos), free(v->rev), free(v->win), free(v->perm);
    v->h = v->a = v->q = v->k = v->v = v->att = v->f = v->g = v->mh = v->mo = v->out = v->x = v->xd = NULL;
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
    free(v->dev_weights);
    free(v->layers);
    dv_safetensors_free(v->st);
    free(v);
}

int dv_qwen_vit_out_dim(const dv_qwen_vit *v) { return v->out_dim; }
int dv_qwen_vit_merge(const dv_qwen_vit *v) { return v->m; }
double dv_qwen_vit_tokens_per_second(const dv_qwen_vit *v) { return v->tokens_per_second; }
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
// patch rows; returns the number of windows.
static int window_order(const dv_qwen_vit *v, int gt, int gh, int gw, int32_t *perm, int32_t *win) {
    const int ws = v->window / v->m / v->P, lh = gh / v->m, lw = gw / v->m, m2 = v->m * v->m;
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

int dv_qwen_vit_encode(dv_qwen_vit *v, const float *patches, int gt, int gh, int gw, float *out) {
    if (gt < 1 || gh < v->m || gw < v->m || gh % v->m || gw % v->m)
        return dv_error_set(DV_EINVAL, "vision tower: grid %d x %d x %d is not a whole number of %dx%d merge blocks", gt,
                            gh, gw, v->m, v->m);
    const int64_t N = (int64_t)gt * gh * gw, m2 = (int64_t)v->m * v->m, NT = N / m2, D = v->D, K = 3 * (int64_t)v->tp * v->P * v->P;
    int rc = reserve(v, N);
    if (rc) return rc;
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
    if (v->gpu && ((rc = dv_backend_upload_async(be, v->xd, v->x, (size_t)(N * K) * sizeof(float))) ||
                   (rc = dv_backend_upload_async(be, v->posd, v->pos, (size_t)(2 * N) * sizeof(int32_t))) ||
                   (rc = dv_backend_upload_async(be, v->revd, v->rev, (size_t)NT * sizeof(int32_t)))))
        return rc;

    dv_tensor x = dv_tensor_2d(DV_DTYPE_F32, v->xd, N, K);
    dv_tensor h = dv_tensor_2d(DV_DTYPE_F32, v->h, N, D), a = dv_tensor_2d(DV_DTYPE_F32, v->a, N, D);
    dv_tensor q = dv_tensor_2d(DV_DTYPE_F32, v->q, N, D), k = dv_tensor_2d(DV_DTYPE_F32, v->k, N, D);
    dv_tensor vv = dv_tensor_2d(DV_DTYPE_F32, v->v, N, D), att = dv_tensor_2d(DV_DTYPE_F32, v->att, N, D);
    dv_tensor f = dv_tensor_2d(DV_DTYPE_F32, v->f, N, v->I), g = dv_tensor_2d(DV_DTYPE_F32, v->g, N, v->I);
    dv_tensor q3 = dv_tensor_3d(DV_DTYPE_F32, v->q, N, v->H, v->hd), k3 = dv_tensor_3d(DV_DTYPE_F32, v->k, N, v->H, v->hd);
    dv_tensor pos = dv_tensor_2d(DV_DTYPE_I32, v->posd, 2, N);
    op->matmul(be, &h, &x, &v->patch_w, NULL);

    const dv_attn_params ap = {.scale = 1.0f / sqrtf((float)v->hd), .causal = 0, .q_pos0 = 0};
    const int64_t frame = (int64_t)gh * gw;
    for (int l = 0; l < v->depth; l++) {
        const qv_layer *L = &v->layers[l];
        int full = 0;
        for (int i = 0; i < v->n_full; i++) full |= v->full[i] == l;
        op->rms_norm(be, &a, &h, &L->n1, 1e-6f);
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
        op->rms_norm(be, &a, &h, &L->n2, 1e-6f);
        op->matmul(be, &f, &a, &L->g_w, &L->g_b);
        op->matmul(be, &g, &a, &L->u_w, &L->u_b);
        op->swiglu(be, &f, &f, &g);
        op->matmul(be, &a, &f, &L->d_w, &L->d_b);
        op->add(be, &h, &h, &a);
    }
    // ---- merger: ln_q, each 2x2 block's rows side by side (rows are consecutive), MLP; back in order ----
    op->rms_norm(be, &a, &h, &v->mq, 1e-6f);
    dv_tensor a4 = dv_tensor_2d(DV_DTYPE_F32, v->a, NT, D * m2), mh = dv_tensor_2d(DV_DTYPE_F32, v->mh, NT, D * m2);
    dv_tensor mo = dv_tensor_2d(DV_DTYPE_F32, v->mo, NT, v->out_dim), y = dv_tensor_2d(DV_DTYPE_F32, v->out, NT, v->out_dim);
    op->matmul(be, &mh, &a4, &v->m1_w, &v->m1_b);
    op->act(be, &mh, &mh, DV_ACT_GELU_ERF);
    op->matmul(be, &mo, &mh, &v->m2_w, &v->m2_b);
    dv_tensor rev = dv_tensor_1d(DV_DTYPE_I32, v->revd, NT);
    op->embed(be, &y, &mo, &rev); // out[i] = mo[rev[i]]
    if ((rc = op->synchronize(be))) return rc;
    return dv_backend_download(be, out, v->out, (size_t)(NT * v->out_dim) * sizeof(float));
}
