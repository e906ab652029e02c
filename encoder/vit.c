// vit.c: the forward pass of a batch of frames: patch embedding (as a matmul over im2col rows),
// class + position embeddings, pre-norm transformer blocks (biased attention and MLP), feature layer
// selection, LLaVA-NeXT-Video's spatial pooling, and the two-layer projector (LLaVA-OneVision: the
// projector on every patch, then the bilinear downscale of each frame's grid). Everything after im2col
// (a short host loop) goes through the backend ops: on a GPU backend the patches are uploaded once per
// batch, feature rows are gathered with strided device copies, pooling is the pool2d op, and the
// projector output stays on the device.
#include "encoder/encoder_internal.h"

#include "core/dv_error.h"

#include <math.h>
#include <string.h>

// pixels (nb, 3, S, S) -> e->patches (nb * NP, 3 * P * P): row (b, py, px) holds the patch's values
// in (channel, ky, kx) order, the layout of the Conv2d kernel (D, 3, P, P) flattened.
void enc_im2col(dv_encoder *e, const float *pixels, int nb) {
    const int S = e->c.image_size, P = e->c.patch, G = e->c.grid, PP = 3 * P * P;
    const int rows = nb * G * G;
#pragma omp parallel for schedule(static) num_threads(e->n_threads)
    for (int r = 0; r < rows; r++) {
        const int b = r / (G * G), py = (r / G) % G, px = r % G;
        const float *img = pixels + (size_t)b * 3 * S * S;
        float *o = e->patches + (size_t)r * PP;
        for (int ch = 0; ch < 3; ch++)
            for (int ky = 0; ky < P; ky++)
                memcpy(o + (ch * P + ky) * P, img + ((size_t)ch * S + (size_t)py * P + ky) * S + (size_t)px * P,
                       (size_t)P * sizeof(float));
    }
    // async: e->patches is written again only after the batch's synchronize (a failure is sticky)
    if (e->gpu) dv_backend_upload_async(e->be, e->patches_dev, e->patches, (size_t)rows * PP * sizeof(float));
}

double enc_flops_per_frame(const enc_config *c) {
    const double T = c->n_pos, D = c->hidden, I = c->inter, NP = c->n_patches;
    double f = 2.0 * NP * 3.0 * c->patch * c->patch * D;                  // patch embedding
    f += c->n_run * (2.0 * T * D * D * 4 + 2.0 * T * D * I * 2 + 4.0 * T * T * D); // blocks
    if (c->pool == ENC_POOL_CONV)
        f += 2.0 * c->tokens * (double)c->d_sel * c->pool_stride * c->pool_stride * c->pool_out;
    const double proj_rows = c->pool == ENC_POOL_BILINEAR ? c->n_sel : c->tokens; // OneVision pools after it
    f += 2.0 * proj_rows * ((double)c->pool_out * c->d_model + (double)c->d_model * c->d_model); // projector
    return f;
}

// Copies hidden state `idx` (h, or the embeddings) into its column block of e->sel for every frame.
static void capture(dv_encoder *e, int idx, int nb) {
    const enc_config *c = &e->c;
    const int T = c->n_pos, D = c->hidden;
    for (int j = 0; j < c->n_feat; j++) {
        if (c->feat[j] != idx) continue;
        if (e->gpu) { // per frame: n_sel rows of D floats into a column block of sel
            const dv_backend_ops *op = e->be->ops;
            for (int b = 0; b < nb; b++) {
                float *dst = e->sel + (size_t)b * c->n_sel * c->d_sel + (size_t)j * D;
                const float *src = e->h + ((size_t)b * T + c->drop_cls) * D;
                if (op->copy_2d) {
                    op->copy_2d(e->be, dst, (size_t)c->d_sel * sizeof(float), src, (size_t)D * sizeof(float),
                                (size_t)D * sizeof(float), (size_t)c->n_sel);
                } else {
                    for (int t = 0; t < c->n_sel; t++)
                        op->copy(e->be, dst + (size_t)t * c->d_sel, src + (size_t)t * D, (size_t)D * sizeof(float));
                }
            }
            continue;
        }
        const int rows = nb * c->n_sel;
#pragma omp parallel for schedule(static) num_threads(e->n_threads)
        for (int r = 0; r < rows; r++) {
            const int b = r / c->n_sel, t = r % c->n_sel + c->drop_cls;
            memcpy(e->sel + (size_t)r * c->d_sel + (size_t)j * D, e->h + ((size_t)b * T + t) * D, (size_t)D * sizeof(float));
        }
    }
}

// LLaVA-NeXT-Video's pooling of e->sel (each frame's (g, g, d_sel) grid) into e->pooled (average /
// max), or into e->win (the conv's windows, for the matmul that follows), on the backend.
static void pool(dv_encoder *e, int nb) {
    const enc_config *c = &e->c;
    const int s = c->pool_stride, s2 = s * s;
    const int64_t rows = (int64_t)nb * c->tokens;
    dv_tensor x = dv_tensor_2d(DV_DTYPE_F32, e->sel, (int64_t)nb * c->n_sel, c->d_sel);
    if (c->pool == ENC_POOL_CONV) {
        dv_tensor y = dv_tensor_2d(DV_DTYPE_F32, e->win, rows, (int64_t)c->d_sel * s2);
        e->be->ops->pool2d(e->be, &y, &x, c->sel_grid, s, DV_POOL_WINDOWS);
    } else {
        dv_tensor y = dv_tensor_2d(DV_DTYPE_F32, e->pooled, rows, c->pool_out);
        e->be->ops->pool2d(e->be, &y, &x, c->sel_grid, s, c->pool == ENC_POOL_MAX ? DV_POOL_MAX : DV_POOL_AVG);
    }
}

void enc_forward(dv_encoder *e, int nb) {
    const enc_config *c = &e->c;
    const enc_weights *w = &e->w;
    dv_backend *be = e->be;
    const dv_backend_ops *op = be->ops;
    DV_ASSERT(nb >= 1 && nb <= e->max_batch);
    const int64_t T = c->n_pos, D = c->hidden, NP = c->n_patches, M = (int64_t)nb * T;
    const int64_t PP = 3 * (int64_t)c->patch * c->patch;

    dv_tensor h = dv_tensor_2d(DV_DTYPE_F32, e->h, M, D);   // (nb * T, D)
    dv_tensor a = dv_tensor_2d(DV_DTYPE_F32, e->a, M, D);
    dv_tensor q = dv_tensor_2d(DV_DTYPE_F32, e->q, M, D);
    dv_tensor k = dv_tensor_2d(DV_DTYPE_F32, e->k, M, D);
    dv_tensor v = dv_tensor_2d(DV_DTYPE_F32, e->v, M, D);
    dv_tensor att = dv_tensor_2d(DV_DTYPE_F32, e->att, M, D);
    dv_tensor f = dv_tensor_2d(DV_DTYPE_F32, e->f, M, c->inter);
    dv_tensor pos = dv_tensor_2d(DV_DTYPE_F32, e->pos, T, D);
    const dv_tensor *pb = w->has_patch_b ? &w->patch_b : NULL;

    // ---- embeddings: per frame, patch rows after the class row, then + positions ----
    for (int b = 0; b < nb; b++) {
        dv_tensor hb = dv_tensor_rows(&h, (int64_t)b * T, T);
        dv_tensor y = dv_tensor_rows(&hb, c->has_cls, NP);
        float *patches = e->gpu ? e->patches_dev : e->patches;
        dv_tensor x = dv_tensor_2d(DV_DTYPE_F32, patches + (size_t)b * NP * PP, NP, PP);
        op->matmul(be, &y, &x, &w->patch_w, pb);
        if (c->has_cls && e->gpu) { // the class row is cls + pos[0] (the host path's 0 + (cls + pos[0]))
            dv_tensor p1 = dv_tensor_rows(&pos, 1, NP);
            op->add(be, &y, &y, &p1);
            op->copy(be, hb.data, pos.data, (size_t)D * sizeof(float));
            continue;
        }
        if (c->has_cls) memset(hb.data, 0, (size_t)D * sizeof(float)); // the class row: 0 + (cls + pos[0])
        op->add(be, &hb, &hb, &pos);
    }
    if (c->tower == ENC_TOWER_CLIP) op->layer_norm(be, &h, &h, &w->pre_w, &w->pre_b, (float)c->ln_eps);
    capture(e, 0, nb);

    // ---- blocks: h += attn(ln1(h)); h += mlp(ln2(h)) ----
    const dv_attn_params ap = {.scale = 1.0f / sqrtf((float)c->head_dim), .causal = 0, .q_pos0 = 0};
    for (int l = 0; l < c->n_run; l++) {
        const enc_layer *L = &w->layers[l];
        op->layer_norm(be, &a, &h, &L->ln1_w, &L->ln1_b, (float)c->ln_eps);
        op->matmul(be, &q, &a, &L->q_w, &L->q_b);
        op->matmul(be, &k, &a, &L->k_w, &L->k_b);
        op->matmul(be, &v, &a, &L->v_w, &L->v_b);
        for (int b = 0; b < nb; b++) // frames attend only within themselves
            enc_attention_rows(be, e->q, e->k, e->v, e->att, (int64_t)b * T, T, c->n_heads, c->head_dim, &ap);
        op->matmul(be, &a, &att, &L->o_w, &L->o_b);
        op->add(be, &h, &h, &a);
        op->layer_norm(be, &a, &h, &L->ln2_w, &L->ln2_b, (float)c->ln_eps);
        op->matmul(be, &f, &a, &L->fc1_w, &L->fc1_b);
        op->act(be, &f, &f, c->act);
        op->matmul(be, &a, &f, &L->fc2_w, &L->fc2_b);
        op->add(be, &h, &h, &a);
        capture(e, l + 1, nb);
    }

    if (c->pool == ENC_POOL_BILINEAR) { // OneVision: project every patch, then pool the d_model grid
        const int64_t n = (int64_t)nb * c->n_sel;
        dv_tensor x = dv_tensor_2d(DV_DTYPE_F32, e->sel, n, c->d_sel);
        dv_tensor hid = dv_tensor_2d(DV_DTYPE_F32, e->proj, n, c->d_model);
        dv_tensor pr = dv_tensor_2d(DV_DTYPE_F32, e->pooled, n, c->d_model);
        dv_tensor y = dv_tensor_2d(DV_DTYPE_F32, e->out, (int64_t)nb * c->tokens, c->d_model);
        op->matmul(be, &hid, &x, &w->p1_w, w->has_p_b ? &w->p1_b : NULL);
        op->act(be, &hid, &hid, c->proj_act);
        op->matmul(be, &pr, &hid, &w->p2_w, w->has_p_b ? &w->p2_b : NULL);
        op->pool2d(be, &y, &pr, c->sel_grid, c->pool_stride, DV_POOL_BILINEAR);
        return;
    }
    // ---- pooling (NeXT-Video), then projector: linear_2(act(linear_1(x))) ----
    const int64_t rows = (int64_t)nb * c->tokens;
    dv_tensor x;
    if (c->pool == ENC_POOL_NONE) {
        x = dv_tensor_2d(DV_DTYPE_F32, e->sel, rows, c->d_sel);
    } else {
        pool(e, nb);
        x = dv_tensor_2d(DV_DTYPE_F32, e->pooled, rows, c->pool_out);
        if (c->pool == ENC_POOL_CONV) {
            const int64_t s2 = (int64_t)c->pool_stride * c->pool_stride;
            dv_tensor wn = dv_tensor_2d(DV_DTYPE_F32, e->win, rows, c->d_sel * s2);
            op->matmul(be, &x, &wn, &w->pool_w, &w->pool_b);
        }
    }
    dv_tensor hid = dv_tensor_2d(DV_DTYPE_F32, e->proj, rows, c->d_model);
    dv_tensor y = dv_tensor_2d(DV_DTYPE_F32, e->out, rows, c->d_model);
    op->matmul(be, &hid, &x, &w->p1_w, w->has_p_b ? &w->p1_b : NULL);
    op->act(be, &hid, &hid, c->proj_act);
    op->matmul(be, &y, &hid, &w->p2_w, w->has_p_b ? &w->p2_b : NULL);
}
