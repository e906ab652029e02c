// moe.c: the mixture-of-experts MLP of Qwen3.5 MoE (HF Qwen3_5MoeSparseMoeBlock), on any backend.
//
// For a chunk of T tokens, xb (T, H) the post-attention-normed input, k = n_experts_used:
//   router (T, E) = xb Wrouter ; p = softmax(router) ; the k largest p per token, divided by their sum
//   every expert e runs on the rows routed to it: y = (silu(x Wgate_e) * (x Wup_e)) Wdown_e
//   shared (T, H) = (silu(xb Wgate) * (xb Wup)) Wdown, scaled by sigmoid(xb Wshared_gate)
//   xb = sum of the k weighted expert rows + the scaled shared row
// The routing (softmax, top-k, the row order) is host work on the downloaded router logits; the rest
// is backend ops: embed gathers each expert's rows into one block per expert (so each expert is one
// matmul per chunk), gather_sum brings the outputs back to token order with their weights. Every
// buffer is allocated once, for n_batch tokens (dv_llm_moe_init).
#include "core/dv_error.h"
#include "llm/llm_internal.h"

#include <math.h>
#include <stdlib.h>

struct dv_llm_moe_host {
    float *logits;  // (B, E) router logits
    float *sgate;   // (B) shared expert gate logits
    float *prob;    // (E) one token's softmax
    int32_t *sel;   // (B, k) chosen expert of each (token, slot), by falling probability
    float *sel_w;   // (B, k) its renormalised weight
    int32_t *perm;  // (B*k) token of each gathered row (rows grouped by expert, experts ascending)
    int32_t *idx;   // (B, k+1) rows of moe_y each token sums
    float *w;       // (B, k+1) their weights
    int *count;     // (E) rows routed to each expert in this chunk
    int *off;       // (E + 1) first row of each expert's block
};

int dv_llm_moe_init(dv_llm *m) {
    const dv_llm_config *c = &m->cfg;
    const size_t B = (size_t)m->n_batch, E = (size_t)c->n_experts, k = (size_t)c->n_experts_used,
                 H = (size_t)c->hidden_size, Fe = (size_t)c->moe_intermediate_size;
    dv_backend *be = m->be;
    void **dev[] = {(void **)&m->moe_logits, (void **)&m->moe_sgate, (void **)&m->moe_xg, (void **)&m->moe_g,
                    (void **)&m->moe_u,      (void **)&m->moe_y,     (void **)&m->moe_perm, (void **)&m->moe_idx,
                    (void **)&m->moe_w};
    const size_t dev_bytes[] = {B * E * 4, B * 4, B * k * H * 4, B * k * Fe * 4, B * k * Fe * 4, (B * k + B) * H * 4,
                                B * k * 4, B * (k + 1) * 4, B * (k + 1) * 4};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (!(*dev[i] = be->ops->alloc(be, dev_bytes[i])))
            return dv_error_prefix(DV_ENOMEM, "allocating %.1f MiB of expert buffers", (double)dev_bytes[i] / (1 << 20));
    dv_llm_moe_host *h = m->moe_host = calloc(1, sizeof *h);
    if (!h) return dv_error_set(DV_ENOMEM, "out of memory");
    h->logits = malloc(B * E * sizeof(float));
    h->sgate = malloc(B * sizeof(float));
    h->prob = malloc(E * sizeof(float));
    h->sel = malloc(B * k * sizeof(int32_t));
    h->sel_w = malloc(B * k * sizeof(float));
    h->perm = malloc(B * k * sizeof(int32_t));
    h->idx = malloc(B * (k + 1) * sizeof(int32_t));
    h->w = malloc(B * (k + 1) * sizeof(float));
    h->count = malloc(E * sizeof(int));
    h->off = malloc((E + 1) * sizeof(int));
    if (!h->logits || !h->sgate || !h->prob || !h->sel || !h->sel_w || !h->perm || !h->idx || !h->w || !h->count ||
        !h->off)
        return dv_error_set(DV_ENOMEM, "out of memory");
    return 0;
}

void dv_llm_moe_free(dv_llm *m) {
    void *dev[] = {m->moe_logits, m->moe_sgate, m->moe_xg, m->moe_g, m->moe_u, m->moe_y, m->moe_perm, m->moe_idx, m->moe_w};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) m->be->ops->free(m->be, dev[i]);
    dv_llm_moe_host *h = m->moe_host;
    if (!h) return;
    free(h->logits), free(h->sgate), free(h->prob), free(h->sel), free(h->sel_w);
    free(h->perm), free(h->idx), free(h->w), free(h->count), free(h->off);
    free(h);
}

// HF Qwen3_5MoeTopKRouter for one token: softmax over the E logits (F32), the k largest probabilities
// (ties to the lower expert), renormalised to sum to 1.
static void route_token(const float *logit, int E, int k, float *prob, int32_t *sel, float *sel_w) {
    float mx = logit[0], sum = 0;
    for (int e = 1; e < E; e++) mx = logit[e] > mx ? logit[e] : mx;
    for (int e = 0; e < E; e++) sum += prob[e] = expf(logit[e] - mx);
    for (int e = 0; e < E; e++) prob[e] /= sum;
    float top = 0;
    for (int j = 0; j < k; j++) {
        int b = -1;
        for (int e = 0; e < E; e++)
            if (prob[e] >= 0 && (b < 0 || prob[e] > prob[b])) b = e;
        sel[j] = b;
        sel_w[j] = prob[b];
        top += prob[b];
        prob[b] = -1; // taken
    }
    for (int j = 0; j < k; j++) sel_w[j] /= top;
}

int dv_llm_moe_ffn(dv_llm *m, const dv_llm_layer *w, int T) {
    const dv_llm_config *c = &m->cfg;
    dv_backend *be = m->be;
    const dv_backend_ops *op = be->ops;
    const int E = c->n_experts, k = c->n_experts_used;
    const int64_t H = c->hidden_size, F = c->intermediate_size, Fe = c->moe_intermediate_size, Tk = (int64_t)T * k;
    dv_llm_moe_host *h = m->moe_host;
    if (!op->gather_sum) return dv_error_set(DV_EUNSUPPORTED, "backend %s lacks the gather_sum op (MoE)", op->name);
    int rc;

    // ---- routing, on the host ----
    dv_tensor xb = dv_tensor_2d(DV_DTYPE_F32, m->xb, T, H);
    dv_tensor lg = dv_tensor_2d(DV_DTYPE_F32, m->moe_logits, T, E), sg = dv_tensor_2d(DV_DTYPE_F32, m->moe_sgate, T, 1);
    op->matmul(be, &lg, &xb, &w->moe_router, NULL);
    op->matmul(be, &sg, &xb, &w->moe_shared_gate, NULL);
    if ((rc = dv_backend_download(be, h->logits, m->moe_logits, (size_t)T * (size_t)E * sizeof(float))) ||
        (rc = dv_backend_download(be, h->sgate, m->moe_sgate, (size_t)T * sizeof(float))))
        return rc;
    for (int e = 0; e < E; e++) h->count[e] = 0;
    for (int t = 0; t < T; t++) {
        route_token(h->logits + (size_t)t * E, E, k, h->prob, h->sel + (size_t)t * k, h->sel_w + (size_t)t * k);
        for (int j = 0; j < k; j++) h->count[h->sel[(size_t)t * k + j]]++;
    }
    h->off[0] = 0;
    for (int e = 0; e < E; e++) h->off[e + 1] = h->off[e] + h->count[e], h->count[e] = 0; // count: fill level now
    for (int t = 0; t < T; t++) {
        int32_t *ix = h->idx + (size_t)t * (k + 1);
        float *wt = h->w + (size_t)t * (k + 1);
        for (int j = 0; j < k; j++) {
            const int e = h->sel[(size_t)t * k + j], r = h->off[e] + h->count[e]++;
            h->perm[r] = t;
            ix[j] = r;
            wt[j] = h->sel_w[(size_t)t * k + j];
        }
        ix[k] = (int32_t)(Tk + t); // the shared expert's row
        wt[k] = 1.0f / (1.0f + expf(-h->sgate[t]));
    }
    if ((rc = dv_backend_upload(be, m->moe_perm, h->perm, (size_t)Tk * sizeof(int32_t))) ||
        (rc = dv_backend_upload(be, m->moe_idx, h->idx, (size_t)T * (size_t)(k + 1) * sizeof(int32_t))) ||
        (rc = dv_backend_upload(be, m->moe_w, h->w, (size_t)T * (size_t)(k + 1) * sizeof(float))))
        return rc;

    // ---- the shared expert: rows Tk .. Tk+T-1 of moe_y ----
    dv_tensor gate = dv_tensor_2d(DV_DTYPE_F32, m->gate, T, F), up = dv_tensor_2d(DV_DTYPE_F32, m->up, T, F);
    dv_tensor ys = dv_tensor_2d(DV_DTYPE_F32, m->moe_y + Tk * H, T, H);
    op->matmul(be, &gate, &xb, &w->w_gate, NULL);
    op->matmul(be, &up, &xb, &w->w_up, NULL);
    op->swiglu(be, &gate, &gate, &up);
    op->matmul(be, &ys, &gate, &w->w_down, NULL);

    // ---- the routed experts, one block of rows each ----
    dv_tensor perm = dv_tensor_1d(DV_DTYPE_I32, m->moe_perm, Tk), xg = dv_tensor_2d(DV_DTYPE_F32, m->moe_xg, Tk, H);
    op->embed(be, &xg, &xb, &perm);
    for (int e = 0; e < E; e++) {
        const int64_t r0 = h->off[e], n = h->off[e + 1] - r0;
        if (!n) continue;
        dv_tensor x = dv_tensor_2d(DV_DTYPE_F32, m->moe_xg + r0 * H, n, H);
        dv_tensor g = dv_tensor_2d(DV_DTYPE_F32, m->moe_g + r0 * Fe, n, Fe), u = dv_tensor_2d(DV_DTYPE_F32, m->moe_u + r0 * Fe, n, Fe);
        dv_tensor y = dv_tensor_2d(DV_DTYPE_F32, m->moe_y + r0 * H, n, H);
        op->matmul(be, &g, &x, &w->experts[3 * e], NULL);
        op->matmul(be, &u, &x, &w->experts[3 * e + 1], NULL);
        op->swiglu(be, &g, &g, &u);
        op->matmul(be, &y, &g, &w->experts[3 * e + 2], NULL);
    }

    // ---- combine: xb (T, H) = the weighted sum of each token's k + 1 rows ----
    dv_tensor yall = dv_tensor_2d(DV_DTYPE_F32, m->moe_y, Tk + T, H);
    dv_tensor idx = dv_tensor_2d(DV_DTYPE_I32, m->moe_idx, T, k + 1), wt = dv_tensor_2d(DV_DTYPE_F32, m->moe_w, T, k + 1);
    op->gather_sum(be, &xb, &yall, &idx, &wt);
    return 0;
}
