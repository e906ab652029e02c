// llm_forward.c: the Llama/Mistral/Qwen/Qwen3.5 forward pass over a chunk of tokens, top to bottom.
//
// For a chunk of T tokens at positions p0 .. p0+T-1 (T <= n_batch):
//   x = embed(ids)                                   (or the caller's embeddings, host or device)
//   for each layer:
//     xb = rms_norm(x) ; q, k, v = xb Wq (+bq), xb Wk (+bk), xb Wv (+bv)
//     q, k = rms_norm of each head (Qwen3's q_norm / k_norm)
//     rope(q), rope(k) at their absolute positions (dynamic scaling: frequencies for this chunk's end;
//     M-RoPE: three positions per token, t / h / w sections of the frequencies)
//     att = attention of q over what each KV head's cache holds (all tokens for retrieval heads,
//           sink + recent for DuoAttention streaming heads) plus the chunk itself; append k, v
//     x += att Wo
//     (Qwen3.5: the Gated DeltaNet layers replace the attention step by linear_mixer() below; the
//      attention layers split q_proj into q and an output gate, rotate the first rotary_dim dims and
//      scale the attention output by sigmoid(gate); RMSNorm weights are 1 + w)
//     xb = rms_norm(x) ; x += (silu(xb Wgate) * (xb Wup)) Wdown   (MoE: llm/moe.c's experts)
//   logits = rms_norm(x) lm_head                     (last row, or every row)
#include "core/dv_error.h"
#include "llm/llm_internal.h"

#include <math.h>
#include <string.h>

// Tokens per chunk of the chunked delta rule in prefill (HF's chunk_size)
#define DV_LLM_DELTA_CHUNK 64

// A view of `n` rows of width `w` starting at row `r` of a row-major F32 buffer.
static dv_tensor rows_f32(float *buf, int64_t r, int64_t n, int64_t w) {
    return dv_tensor_2d(DV_DTYPE_F32, buf + r * w, n, w);
}

// Qwen3.5's Gated DeltaNet token mixer on xb (T, H), result into xb (HF Qwen3_5GatedDeltaNet):
//   qkv = conv1d_causal(xb Wqkv) (silu; carries the conv state) ; z = xb Wz ; a = xb Wa ; b = xb Wb
//   o = gated_delta_rule(q, k, v | a, b) (carries the delta state; chunked for prefill, recurrent for
//   one token, as HF) ; o = rms_norm(o per head) * silu(z) ; xb = o Wout
static int linear_mixer(dv_llm *m, const dv_llm_layer *w, int T) {
    const dv_llm_config *c = &m->cfg;
    dv_backend *be = m->be;
    const dv_backend_ops *op = be->ops;
    const int64_t H = c->hidden_size, Hk = c->lin.n_k_heads, Hv = c->lin.n_v_heads, dk = c->lin.k_head_dim,
                  dv = c->lin.v_head_dim, KD = Hk * dk, VD = Hv * dv, C = 2 * KD + VD;
    if (!op->conv1d_causal || !op->gated_delta_rule || !op->mul_sigmoid)
        return dv_error_set(DV_EUNSUPPORTED, "backend %s lacks the Gated DeltaNet ops", op->name);
    dv_tensor conv_state, delta_state;
    dv_linear_state_views(m->lin, w->lin_layer, &conv_state, &delta_state);
    dv_tensor xb = rows_f32(m->xb, 0, T, H), lx = rows_f32(m->lin_x, 0, T, C), lc = rows_f32(m->lin_c, 0, T, C);
    dv_tensor z = rows_f32(m->lin_z, 0, T, VD), a = rows_f32(m->lin_a, 0, T, Hv), b = rows_f32(m->lin_b, 0, T, Hv);
    op->matmul(be, &lx, &xb, &w->lin_qkv, NULL);
    op->matmul(be, &z, &xb, &w->lin_z, NULL);
    op->matmul(be, &a, &xb, &w->lin_a, NULL);
    op->matmul(be, &b, &xb, &w->lin_b, NULL);
    op->conv1d_causal(be, &lc, &lx, &w->lin_conv, &conv_state);
    // q, k, v: column ranges of the conv output (T, C), row stride C
    dv_tensor q = dv_tensor_3d(DV_DTYPE_F32, m->lin_c, T, Hk, dk), k = dv_tensor_3d(DV_DTYPE_F32, m->lin_c + KD, T, Hk, dk);
    dv_tensor v = dv_tensor_3d(DV_DTYPE_F32, m->lin_c + 2 * KD, T, Hv, dv);
    q.nb[0] = k.nb[0] = v.nb[0] = (size_t)C * sizeof(float);
    q.device = k.device = v.device = be->device;
    dv_tensor o = dv_tensor_3d(DV_DTYPE_F32, m->lin_o, T, Hv, dv);
    op->gated_delta_rule(be, &o, &q, &k, &v, &a, &b, &w->lin_a_log, &w->lin_dt_bias, &delta_state,
                         T > 1 ? DV_LLM_DELTA_CHUNK : 0);
    // gated RMSNorm per value head: rms_norm(o) * w, then * silu(z) (swiglu(z, o) = silu(z) * o)
    dv_tensor o_heads = dv_tensor_2d(DV_DTYPE_F32, m->lin_o, T * Hv, dv), z_heads = dv_tensor_2d(DV_DTYPE_F32, m->lin_z, T * Hv, dv);
    op->rms_norm(be, &o_heads, &o_heads, &w->lin_norm, (float)c->rms_norm_eps);
    op->swiglu(be, &o_heads, &z_heads, &o_heads);
    dv_tensor o2 = rows_f32(m->lin_o, 0, T, VD);
    op->matmul(be, &xb, &o2, &w->lin_out, NULL);
    return 0;
}

int dv_llm_forward_chunk(dv_llm *m, const int32_t *ids, const float *embd, const float *embd_dev, int T,
                         float *logits_out, int all_logits, float *hidden_out) {
    const dv_llm_config *c = &m->cfg;
    dv_backend *be = m->be;
    const dv_backend_ops *op = be->ops;
    const int64_t H = c->hidden_size, F = c->intermediate_size, D = c->head_dim, Hq = c->n_heads,
                  Hkv = c->n_kv_heads, V = c->vocab_size;
    const int64_t p0 = m->n_past;
    int rc;
    if ((rc = dv_kv_cache_reserve(m->kv, T))) return rc; // retrieval pages for the new tokens

    // ---- inputs: positions and token ids / embeddings ----
    // M-RoPE: (3, T) positions, explicit (m->pos_in) or text ones after the last (every row equal);
    // cells and positions part ways, so each cell records where text would resume after it
    const int n_pos = c->mrope ? 3 : 1;
    if (c->mrope) {
        int32_t next = dv_llm_next_position(m);
        for (int t = 0; t < T; t++) {
            int32_t mx = 0; // the token's largest position
            for (int r = 0; r < 3; r++) {
                const int32_t p = m->pos_in ? m->pos_in[r * m->pos_in_stride + t] : next;
                m->pos_host[r * T + t] = p;
                mx = r == 0 || p > mx ? p : mx;
            }
            next = m->pos_in ? (mx + 1 > next ? mx + 1 : next) : next + 1;
            m->cell_next[p0 + t] = next;
        }
    } else {
        for (int t = 0; t < T; t++) m->pos_host[t] = (int32_t)(p0 + t);
    }
    m->pos_in = NULL; // one chunk's
    const float *add_in = m->add_in; // DeepStack rows: one chunk's too
    const int add_layers = m->add_layers;
    m->add_in = NULL, m->add_layers = 0;
    // pos_host / ids_host are written again only after this chunk's synchronize: no wait here
    if ((rc = dv_backend_upload_async(be, m->pos, m->pos_host, (size_t)(n_pos * T) * sizeof(int32_t)))) goto fail;
    dv_tensor pos = n_pos == 1 ? dv_tensor_1d(DV_DTYPE_I32, m->pos, T) : dv_tensor_2d(DV_DTYPE_I32, m->pos, 3, T);
    dv_tensor x = rows_f32(m->x, 0, T, H);   // (T, H) residual stream
    dv_tensor xb = rows_f32(m->xb, 0, T, H); // (T, H)
    if (ids) {
        memcpy(m->ids_host, ids, (size_t)T * sizeof(int32_t));
        if ((rc = dv_backend_upload_async(be, m->ids, m->ids_host, (size_t)T * sizeof(int32_t)))) goto fail;
        dv_tensor idt = dv_tensor_1d(DV_DTYPE_I32, m->ids, T);
        op->embed(be, &x, &m->tok_embd, &idt);
    } else if (embd_dev) { // already on the device: no host round trip
        if ((rc = op->copy(be, m->x, embd_dev, (size_t)T * (size_t)H * sizeof(float)))) goto fail;
    } else {
        if ((rc = dv_backend_upload(be, m->x, embd, (size_t)T * (size_t)H * sizeof(float)))) goto fail;
    }

    dv_tensor q = dv_tensor_3d(DV_DTYPE_F32, m->q, T, Hq, D);     // (T, Hq, D)
    dv_tensor q2 = dv_tensor_2d(DV_DTYPE_F32, m->q, T, Hq * D);   // same memory, as (T, Hq*D)
    dv_tensor att = dv_tensor_3d(DV_DTYPE_F32, m->att, T, Hq, D); // (T, Hq, D)
    dv_tensor att2 = dv_tensor_2d(DV_DTYPE_F32, m->att, T, Hq * D);
    dv_tensor gate = dv_tensor_2d(DV_DTYPE_F32, m->gate, T, F); // (T, F)
    dv_tensor up = dv_tensor_2d(DV_DTYPE_F32, m->up, T, F);     // (T, F)
    dv_tensor k_new = dv_tensor_3d(DV_DTYPE_F32, m->k_new, T, Hkv, D); // (T, Hkv, D)
    dv_tensor v_new = dv_tensor_3d(DV_DTYPE_F32, m->v_new, T, Hkv, D);
    dv_tensor k2 = dv_tensor_2d(DV_DTYPE_F32, m->k_new, T, Hkv * D);   // same memory, as (T, Hkv*D)
    dv_tensor v2 = dv_tensor_2d(DV_DTYPE_F32, m->v_new, T, Hkv * D);
    dv_tensor q_heads = dv_tensor_2d(DV_DTYPE_F32, m->q, T * Hq, D);      // same memory, one row per head
    dv_tensor k_heads = dv_tensor_2d(DV_DTYPE_F32, m->k_new, T * Hkv, D);
    dv_attn_params ap = {.scale = 1.0f / sqrtf((float)D), .causal = 1, .q_pos0 = p0};
    // HF recomputes dynamic-NTK frequencies for the longest sequence a forward sees
    if (dv_llm_config_rope_is_dynamic(c) && (rc = dv_llm_config_rope_at(c, p0 + T, &m->rope))) return rc;

    // partial rotary (Qwen3.5): RoPE on the first rotary_dim dims of each head, the rest pass through
    dv_tensor q_rot = q, k_rot = k_new;
    q_rot.ne[2] = k_rot.ne[2] = c->rotary_dim;
    for (int l = 0; l < c->n_layers; l++) {
        const dv_llm_layer *w = &m->layers[l];
        op->rms_norm(be, &xb, &x, &w->attn_norm, (float)c->rms_norm_eps);
        if (w->lin_layer >= 0) { // ---- Gated DeltaNet (linear attention, recurrent state) ----
            if ((rc = linear_mixer(m, w, T))) goto fail;
        } else { // ---- attention (Qwen3.5: with an output gate) ----
            if (c->attn_output_gate) { // q_proj gives [q, gate] per head; q_norm de-interleaves q
                dv_tensor qg = dv_tensor_2d(DV_DTYPE_F32, m->qg, T, 2 * Hq * D);
                dv_tensor q_src = dv_tensor_2d(DV_DTYPE_F32, m->qg, T * Hq, D); // (T*Hq, D), row stride 2D
                q_src.nb[0] = (size_t)(2 * D) * sizeof(float);
                op->matmul(be, &qg, &xb, &w->wq, w->bq.data ? &w->bq : NULL);
                op->rms_norm(be, &q_heads, &q_src, &w->q_norm, (float)c->rms_norm_eps);
            } else {
                op->matmul(be, &q2, &xb, &w->wq, w->bq.data ? &w->bq : NULL);
                if (w->q_norm.data) op->rms_norm(be, &q_heads, &q_heads, &w->q_norm, (float)c->rms_norm_eps);
            }
            op->matmul(be, &k2, &xb, &w->wk, w->bk.data ? &w->bk : NULL);
            op->matmul(be, &v2, &xb, &w->wv, w->bv.data ? &w->bv : NULL);
            if (w->k_norm.data) op->rms_norm(be, &k_heads, &k_heads, &w->k_norm, (float)c->rms_norm_eps);
            if (c->mrope) { // M-RoPE (Qwen-VL): three position rows, frequencies by section
                op->rope_sections(be, &q_rot, &pos, &m->rope, &m->rope_sec);
                op->rope_sections(be, &k_rot, &pos, &m->rope, &m->rope_sec);
            } else {
                op->rope(be, &q_rot, &pos, &m->rope);
                op->rope(be, &k_rot, &pos, &m->rope);
            }
            const int kl = w->kv_layer; // the KV cache holds the attention layers only
            const dv_kv_head_view *views = dv_kv_cache_views(m->kv, kl);
            if (m->observer) m->observer(m->observer_ctx, kl, &q, &k_new, &v_new, views, p0);
            op->attention_kv(be, &att, &q, &k_new, &v_new, views, &ap);
            if ((rc = dv_kv_cache_append(m->kv, kl, &k_new, &v_new))) goto fail;
            if (c->attn_output_gate) { // att *= sigmoid(gate)
                dv_tensor a_heads = dv_tensor_2d(DV_DTYPE_F32, m->att, T * Hq, D);
                dv_tensor g_src = dv_tensor_2d(DV_DTYPE_F32, m->qg + D, T * Hq, D);
                g_src.nb[0] = (size_t)(2 * D) * sizeof(float);
                op->mul_sigmoid(be, &a_heads, &a_heads, &g_src);
            }
            op->matmul(be, &xb, &att2, &w->wo, w->bo.data ? &w->bo : NULL);
        }
        op->add(be, &x, &x, &xb);

        // ---- MLP (SwiGLU; MoE: routed experts + gated shared expert, llm/moe.c) ----
        op->rms_norm(be, &xb, &x, &w->ffn_norm, (float)c->rms_norm_eps);
        if (w->experts) {
            if ((rc = dv_llm_moe_ffn(m, w, T))) goto fail;
        } else {
            op->matmul(be, &gate, &xb, &w->w_gate, w->b_gate.data ? &w->b_gate : NULL);
            op->matmul(be, &up, &xb, &w->w_up, w->b_up.data ? &w->b_up : NULL);
            op->swiglu(be, &gate, &gate, &up);
            op->matmul(be, &xb, &gate, &w->w_down, w->b_down.data ? &w->b_down : NULL);
        }
        op->add(be, &x, &x, &xb);
        if (l < add_layers) { // DeepStack (Qwen3-VL): this layer's rows added to the output
            dv_tensor ad = rows_f32((float *)add_in + (size_t)l * (size_t)m->add_layer_stride, 0, T, H);
            op->add(be, &x, &x, &ad);
        }
    }

    // ---- head: only the rows whose logits were asked for ----
    if (hidden_out) { // final normed hidden states of every row
        dv_tensor xr = rows_f32(m->x, 0, T, H), xbr = rows_f32(m->xb, 0, T, H);
        op->rms_norm(be, &xbr, &xr, &m->out_norm, (float)c->rms_norm_eps);
        if ((rc = dv_backend_download(be, hidden_out, m->xb, (size_t)(T * H) * sizeof(float)))) goto fail;
    }
    if (logits_out) {
        int64_t r0 = all_logits ? 0 : T - 1, nr = all_logits ? T : 1;
        dv_tensor xr = rows_f32(m->x, r0, nr, H), xbr = rows_f32(m->xb, 0, nr, H);
        dv_tensor lg = rows_f32(m->logits, 0, nr, V);
        op->rms_norm(be, &xbr, &xr, &m->out_norm, (float)c->rms_norm_eps);
        op->matmul(be, &lg, &xbr, &m->lm_head, NULL);
        if ((rc = dv_backend_download(be, logits_out, m->logits, (size_t)(nr * V) * sizeof(float)))) goto fail;
    }
    if ((rc = op->synchronize(be))) return rc;
    dv_kv_cache_commit(m->kv, T);
    m->n_past += T;
    return 0;
fail: // queued copies from the staging buffers finish before they can be written again
    op->synchronize(be);
    return rc;
}

static int check_ids(const dv_llm *m, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return dv_error_set(DV_EINVAL, "token id %d at position %d is outside the vocabulary [0, %d)", ids[i], i,
                                m->cfg.vocab_size);
    return 0;
}

// The one prefill loop: n tokens from exactly one of ids, host embeddings, device embeddings (rows of
// H floats), in chunks of n_batch.
static int prefill(dv_llm *m, const int32_t *ids, const float *embd, const float *embd_dev, const int32_t *pos, int n,
                   const float *add, int add_layers, float *logits, int all_logits) {
    DV_ASSERT((ids != NULL) + (embd != NULL) + (embd_dev != NULL) == 1 && n >= 0);
    if (n == 0) return 0;
    if ((int64_t)m->n_past + n > m->n_ctx)
        return dv_error_set(DV_EINVAL, "context full: %d cached + %d new tokens exceed the context size %d (raise --ctx)",
                            m->n_past, n, m->n_ctx);
    int rc;
    if (ids && (rc = check_ids(m, ids, n))) return rc;
    const int64_t V = m->cfg.vocab_size, H = m->cfg.hidden_size;
    for (int i = 0; i < n; i += m->n_batch) {
        int T = n - i < m->n_batch ? n - i : m->n_batch;
        int last = i + T == n;
        float *lg = NULL;
        if (logits && all_logits) lg = logits + (size_t)i * (size_t)V;
        else if (logits && last) lg = logits;
        const size_t off = (size_t)i * (size_t)H;
        m->pos_in = pos ? pos + i : NULL, m->pos_in_stride = n; // (3, n): this chunk's columns
        m->add_in = add ? add + off : NULL, m->add_layers = add ? add_layers : 0, m->add_layer_stride = (int64_t)n * H;
        if ((rc = dv_llm_forward_chunk(m, ids ? ids + i : NULL, embd ? embd + off : NULL, embd_dev ? embd_dev + off : NULL,
                                       T, lg, all_logits, NULL)))
            return rc;
    }
    return 0;
}

int dv_llm_prefill(dv_llm *m, const int32_t *ids, const float *embd, int n, float *logits, int all_logits) {
    DV_ASSERT((ids == NULL) != (embd == NULL));
    return prefill(m, ids, embd, NULL, NULL, n, NULL, 0, logits, all_logits);
}

int dv_llm_prefill_pos(dv_llm *m, const int32_t *ids, const dv_tensor *embd, const int32_t *pos, int n, float *logits,
                       int all_logits) {
    DV_ASSERT((ids == NULL) != (embd == NULL) && pos);
    if (!m->cfg.mrope) return dv_error_set(DV_EINVAL, "%s: explicit positions need an M-RoPE model", m->cfg.arch_name);
    if (embd) {
        DV_ASSERT(embd->dtype == DV_DTYPE_F32 && embd->n_dims == 2 && embd->ne[1] == m->cfg.hidden_size &&
                  embd->ne[0] == n && dv_tensor_is_contiguous(embd) && embd->device == m->be->device);
        return prefill(m, NULL, NULL, embd->data, pos, n, NULL, 0, logits, all_logits);
    }
    return prefill(m, ids, NULL, NULL, pos, n, NULL, 0, logits, all_logits);
}

int dv_llm_prefill_deepstack(dv_llm *m, const dv_tensor *embd, const int32_t *pos, const dv_tensor *add, float *logits,
                             int all_logits) {
    DV_ASSERT(embd && embd->dtype == DV_DTYPE_F32 && embd->n_dims == 2 && embd->ne[1] == m->cfg.hidden_size &&
              dv_tensor_is_contiguous(embd) && embd->device == m->be->device);
    const int n = (int)embd->ne[0];
    DV_ASSERT(!add || (add->dtype == DV_DTYPE_F32 && add->n_dims == 3 && add->ne[1] == n &&
                       add->ne[2] == m->cfg.hidden_size && dv_tensor_is_contiguous(add) && add->device == m->be->device));
    if (pos && !m->cfg.mrope) return dv_error_set(DV_EINVAL, "%s: explicit positions need an M-RoPE model", m->cfg.arch_name);
    const int n_add = add ? (int)add->ne[0] : 0;
    if (n_add > m->cfg.n_layers)
        return dv_error_set(DV_EINVAL, "%d DeepStack inputs for a text model of %d layers", n_add, m->cfg.n_layers);
    return prefill(m, NULL, NULL, embd->data, pos, n, add ? add->data : NULL, n_add, logits, all_logits);
}

int dv_llm_prefill_tensor(dv_llm *m, const dv_tensor *embd, float *logits, int all_logits) {
    DV_ASSERT(embd && embd->dtype == DV_DTYPE_F32 && embd->n_dims == 2 && embd->ne[1] == m->cfg.hidden_size &&
              dv_tensor_is_contiguous(embd) && embd->device == m->be->device);
    return prefill(m, NULL, NULL, embd->data, NULL, (int)embd->ne[0], NULL, 0, logits, all_logits);
}

int dv_llm_decode(dv_llm *m, int32_t id, float *logits) { return dv_llm_prefill(m, &id, NULL, 1, logits, 0); }

int dv_llm_prefill_hidden(dv_llm *m, const int32_t *ids, int n, float *hidden) {
    DV_ASSERT(ids && hidden && n >= 0);
    if ((int64_t)m->n_past + n > m->n_ctx)
        return dv_error_set(DV_EINVAL, "context full: %d cached + %d new tokens exceed the context size %d", m->n_past,
                            n, m->n_ctx);
    int rc = check_ids(m, ids, n);
    for (int i = 0; !rc && i < n; i += m->n_batch) {
        int T = n - i < m->n_batch ? n - i : m->n_batch;
        rc = dv_llm_forward_chunk(m, ids + i, NULL, NULL, T, NULL, 0, hidden + (size_t)i * (size_t)m->cfg.hidden_size);
    }
    return rc;
}

int dv_llm_embed_tokens_tensor(dv_llm *m, const int32_t *ids, int n, dv_tensor *out) {
    DV_ASSERT(ids && out && n >= 0 && out->dtype == DV_DTYPE_F32 && out->n_dims == 2 && out->ne[0] == n &&
              out->ne[1] == m->cfg.hidden_size && out->device == m->be->device);
    int rc = check_ids(m, ids, n);
    // the ids go up in chunks of n_batch through the staging buffer; the rows never leave the device
    for (int i = 0; !rc && i < n; i += m->n_batch) {
        const int T = n - i < m->n_batch ? n - i : m->n_batch;
        memcpy(m->ids_host, ids + i, (size_t)T * sizeof(int32_t));
        if ((rc = dv_backend_upload(m->be, m->ids, m->ids_host, (size_t)T * sizeof(int32_t)))) break;
        dv_tensor idt = dv_tensor_1d(DV_DTYPE_I32, m->ids, T), rows = dv_tensor_rows(out, i, T);
        m->be->ops->embed(m->be, &rows, &m->tok_embd, &idt);
    }
    return rc;
}
