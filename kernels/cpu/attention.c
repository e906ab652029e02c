// attention.c: scaled dot-product attention out (Tq, Hq, D) over k, v (Tk, Hkv, D), causal or not,
// GQA, keys/values with any row/head byte strides (cache layouts). Online softmax in blocks of
// queries that share each K/V load (attn_core.c); parallel over (query rows, kv head, head subset).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"


typedef struct attn_ctx {
    const dv_tensor *k, *v;
    int64_t Tk;
    int causal;
} attn_ctx;

// kv head g: all Tk keys at positions 0 .. Tk-1, causal or not
static void attn_keys(dv_cpu_attn *a, int64_t g, const void *vctx) {
    const attn_ctx *c = vctx;
    a->causal = c->causal;
    a->sink = 0;
    a->window = 0;
    const dv_cpu_kv_run run = {(const char *)c->k->data + (size_t)g * c->k->nb[1],
                               (const char *)c->v->data + (size_t)g * c->v->nb[1],
                               0,
                               c->Tk,
                               (int64_t)c->k->nb[0],
                               (int64_t)c->v->nb[0],
                               DV_KV_F32,
                               DV_KV_F32};
    dv_cpu_attn_run(a, &run);
}

void dv_cpu_attention(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k, const dv_tensor *v,
                      const dv_attn_params *p) {
    const int64_t Tq = q->ne[0], Hq = q->ne[1], D = q->ne[2], Tk = k->ne[0], Hkv = k->ne[1];
    DV_ASSERT(q->dtype == DV_DTYPE_F32 && k->dtype == DV_DTYPE_F32 && v->dtype == DV_DTYPE_F32);
    DV_ASSERT(out->dtype == DV_DTYPE_F32 && q->n_dims == 3 && k->n_dims == 3 && v->n_dims == 3 && out->n_dims == 3);
    DV_ASSERT(out->ne[0] == Tq && out->ne[1] == Hq && out->ne[2] == D && k->ne[2] == D && D > 0);
    DV_ASSERT(v->ne[0] == Tk && v->ne[1] == Hkv && v->ne[2] == D && Hkv > 0 && Hq % Hkv == 0);
    DV_ASSERT(q->nb[2] == sizeof(float) && k->nb[2] == sizeof(float) && v->nb[2] == sizeof(float));
    DV_ASSERT(out->nb[2] == sizeof(float));
    DV_ASSERT(k->nb[0] % sizeof(float) == 0 && k->nb[1] % sizeof(float) == 0);
    DV_ASSERT(v->nb[0] % sizeof(float) == 0 && v->nb[1] % sizeof(float) == 0);
    DV_ASSERT(!p->causal || p->q_pos0 >= 0);

    attn_ctx ctx = {k, v, Tk, p->causal != 0};
    dv_cpu_attn_tasks(be, out, q, Hkv, Tk, p, attn_keys, &ctx);
}
