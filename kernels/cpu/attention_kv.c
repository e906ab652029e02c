// attention_kv.c: attention of a chunk of queries over a (DuoAttention) KV cache, online softmax.
//
// Each kv head brings its own cached segments (retrieval heads: pages; streaming heads: sink +
// ring) and an optional streaming window; the chunk's new keys follow causally. For a block of
// queries, only the keys some query can see are scored (attn_core.c: the sink interval and the
// window interval of each run), so a streaming head costs O(sink + window) per query whatever the
// context length. Cached rows are read in their stored KV row type (kernels/dv_kv_type.h), decoded a
// step at a time in L1 (attn_rows.inc); the chunk's own keys are F32. Parallel over (query rows,
// kv head, head subset), as attention.c.
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"


typedef struct kv_ctx {
    const dv_tensor *k_new, *v_new;
    const dv_kv_head_view *views;
    int64_t T, pos0;
} kv_ctx;

// kv head g: its cached segments, then the chunk's own keys (rows 0..T-1 at positions pos0 + row)
static void kv_keys(dv_cpu_attn *a, int64_t g, const void *vctx) {
    const kv_ctx *c = vctx;
    const dv_kv_head_view *view = &c->views[g];
    a->causal = 1;
    a->sink = view->sink;
    a->window = view->window;
    const dv_cpu_kv_run own = {(const char *)c->k_new->data + (size_t)g * c->k_new->nb[1],
                               (const char *)c->v_new->data + (size_t)g * c->v_new->nb[1],
                               c->pos0,
                               c->T,
                               (int64_t)c->k_new->nb[0],
                               (int64_t)c->v_new->nb[0],
                               DV_KV_F32,
                               DV_KV_F32};
    // each segment's last step prefetches the next segment's first rows (the chunk's own after the last)
    for (int s = 0; s < view->n_segs; s++) {
        const dv_kv_seg *sg = &view->segs[s], *nx = s + 1 < view->n_segs ? sg + 1 : NULL;
        const dv_cpu_kv_run run = {sg->k, sg->v, sg->pos0, sg->n, sg->k_stride, sg->v_stride, sg->kt, sg->vt};
        const dv_cpu_kv_run next = nx ? (dv_cpu_kv_run){nx->k, nx->v, nx->pos0, nx->n, nx->k_stride, nx->v_stride,
                                                        nx->kt, nx->vt}
                                      : own;
        a->next = &next;
        dv_cpu_attn_run(a, &run);
    }
    a->next = NULL;
    dv_cpu_attn_run(a, &own);
}

void dv_cpu_attention_kv(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                         const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p) {
    const int64_t T = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = k_new->ne[1];
    DV_ASSERT(q->dtype == DV_DTYPE_F32 && k_new->dtype == DV_DTYPE_F32 && v_new->dtype == DV_DTYPE_F32);
    DV_ASSERT(out->dtype == DV_DTYPE_F32 && q->n_dims == 3 && k_new->n_dims == 3 && v_new->n_dims == 3);
    DV_ASSERT(k_new->ne[0] == T && k_new->ne[2] == D && v_new->ne[0] == T && v_new->ne[1] == Hkv);
    DV_ASSERT(v_new->ne[2] == D && out->ne[0] == T && out->ne[1] == Hq && out->ne[2] == D && D > 0);
    DV_ASSERT(Hkv > 0 && Hq % Hkv == 0 && p->q_pos0 >= 0);
    DV_ASSERT(q->nb[2] == sizeof(float) && out->nb[2] == sizeof(float));
    DV_ASSERT(k_new->nb[2] == sizeof(float) && k_new->nb[0] % sizeof(float) == 0 && k_new->nb[1] % sizeof(float) == 0);
    DV_ASSERT(v_new->nb[2] == sizeof(float) && v_new->nb[0] % sizeof(float) == 0 && v_new->nb[1] % sizeof(float) == 0);
    for (int64_t g = 0; g < Hkv; g++)
        for (int s = 0; s < views[g].n_segs; s++)
            DV_ASSERT(views[g].segs[s].n >= 0 && views[g].segs[s].pos0 + views[g].segs[s].n <= p->q_pos0 &&
                      dv_kv_type_fits(views[g].segs[s].kt, D) && dv_kv_type_fits(views[g].segs[s].vt, D) &&
                      (views[g].segs[s].kt != DV_KV_F32 || views[g].segs[s].k_stride % 4 == 0) &&
                      (views[g].segs[s].vt != DV_KV_F32 || views[g].segs[s].v_stride % 4 == 0));
    kv_ctx ctx = {k_new, v_new, views, T, p->q_pos0};
    dv_cpu_attn_tasks(be, out, q, Hkv, p->q_pos0 + T, p, kv_keys, &ctx);
}
