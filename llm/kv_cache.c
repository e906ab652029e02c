// kv_cache.c: DuoAttention hybrid KV cache: paged retrieval heads, sink + ring streaming heads.
#include "llm/dv_kv_cache.h"
#include "llm/kv_cache_internal.h"

#include "core/dv_error.h"
#include "kernels/dv_attn_mask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A new, process-unique generation for a layer whose blocks changed (dv_kv_head_view.layout_gen).
static uint64_t next_layout_gen(void) {
    static uint64_t gen;
    return __atomic_add_fetch(&gen, 1, __ATOMIC_RELAXED);
}

// Each head's blocks: retrieval heads one per allocated page, streaming heads the sink and the ring.
static void layer_blocks(const dv_kv_cache *c, kv_layer *ly) {
    const int64_t P = c->P, S = c->sink, R = c->recent, W = S + R, rk = c->rk, rv = c->rv;
    for (int h = 0; h < c->Hkv; h++) {
        dv_kv_block *b = ly->blocks + (size_t)h * (size_t)(c->max_pages + 2);
        const int64_t s = ly->slot[h];
        int n = 0;
        if (ly->is_ret[h]) {
            for (int i = 0; i < ly->n_pages; i++)
                b[n++] = (dv_kv_block){ly->k_pages[i] + s * P * rk, ly->v_pages[i] + s * P * rv, i * P, P, rk, rv, 0,
                                       c->kt, c->vt};
        } else {
            const char *kb = ly->k_str + s * W * rk, *vb = ly->v_str + s * W * rv;
            if (S) b[n++] = (dv_kv_block){kb, vb, 0, S, rk, rv, 0, c->kt, c->vt};
            if (R) // position q at slot S + (q - S) % R
                b[n++] = (dv_kv_block){kb + S * rk, vb + S * rv, S, R, rk, rv, 1, c->kt, c->vt};
        }
        ly->views[h].blocks = b;
        ly->views[h].n_blocks = n;
    }
    ly->layout_gen = next_layout_gen();
}

int dv_kv_cache_check_types(const dv_backend *be, int D, dv_kv_type k_type, dv_kv_type v_type) {
    for (int i = 0; i < 2; i++) {
        const dv_kv_type t = i ? v_type : k_type;
        const char *what = i ? "V" : "K";
        if ((unsigned)t >= DV_KV_TYPE_COUNT) return dv_error_set(DV_EINVAL, "KV cache: unknown %s type %d", what, (int)t);
        if (!dv_kv_type_fits(t, D))
            return dv_error_set(DV_EINVAL, "KV cache: %s type q4 needs a head dim that is a multiple of %d (it is %d)",
                                what, DV_KV_Q4_GROUP, D);
        if (t != DV_KV_F32 && !be->ops->kv_store)
            return dv_error_set(DV_EUNSUPPORTED, "KV cache: the %s backend stores keys and values only as f32 (%s type "
                                                 "%s asked for)", be->ops->name, what, dv_kv_type_name(t));
    }
    return 0;
}

int dv_kv_cache_init(const dv_kv_cache_params *p, dv_kv_cache **out) {
    *out = NULL;
    DV_ASSERT(p->backend && p->n_layers > 0 && p->n_kv_heads > 0 && p->head_dim > 0 && p->n_ctx > 0);
    if (p->pattern && (p->pattern->n_layers != p->n_layers || p->pattern->n_kv_heads != p->n_kv_heads))
        return dv_error_set(DV_ESHAPE, "DuoAttention pattern has %d layers x %d KV heads, the model has %d x %d",
                            p->pattern->n_layers, p->pattern->n_kv_heads, p->n_layers, p->n_kv_heads);
    int rc = dv_kv_cache_check_types(p->backend, p->head_dim, p->k_type, p->v_type);
    if (rc) return rc;
    dv_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return dv_error_set(DV_ENOMEM, "out of memory");
    c->be = p->backend;
    c->L = p->n_layers;
    c->Hkv = p->n_kv_heads;
    c->D = p->head_dim;
    c->P = p->page_size > 0 ? p->page_size : 256;
    c->n_ctx = p->n_ctx;
    c->max_pages = (int)((p->n_ctx + c->P - 1) / c->P);
    c->prefill = p->prefill;
    c->sink = p->pattern ? p->pattern->sink : 0;
    c->recent = p->pattern ? p->pattern->recent : 0;
    c->kt = p->k_type;
    c->vt = p->v_type;
    c->rk = dv_kv_row_bytes(c->kt, c->D);
    c->rv = dv_kv_row_bytes(c->vt, c->D);
    if (!(c->layers = calloc((size_t)c->L, sizeof *c->layers))) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto fail;
    }
    for (int l = 0; l < c->L; l++) {
        kv_layer *ly = &c->layers[l];
        ly->slot = calloc((size_t)c->Hkv, sizeof *ly->slot);
        ly->is_ret = calloc((size_t)c->Hkv, 1);
        ly->k_pages = calloc((size_t)c->max_pages, sizeof *ly->k_pages);
        ly->v_pages = calloc((size_t)c->max_pages, sizeof *ly->v_pages);
        ly->views = calloc((size_t)c->Hkv, sizeof *ly->views);
        ly->segs = calloc((size_t)c->Hkv * (size_t)(c->max_pages + 3), sizeof *ly->segs);
        ly->blocks = calloc((size_t)c->Hkv * (size_t)(c->max_pages + 2), sizeof *ly->blocks);
        if (!ly->slot || !ly->is_ret || !ly->k_pages || !ly->v_pages || !ly->views || !ly->segs || !ly->blocks) {
            rc = dv_error_set(DV_ENOMEM, "out of memory");
            goto fail;
        }
        for (int h = 0; h < c->Hkv; h++) {
            ly->is_ret[h] = !p->pattern || dv_duo_pattern_is_retrieval(p->pattern, l, h);
            ly->slot[h] = ly->is_ret[h] ? ly->n_ret++ : ly->n_str++;
        }
        if (ly->n_str) {
            ly->k_str = c->be->ops->alloc(c->be, dv_kv_str_bytes(c, ly, c->rk));
            ly->v_str = c->be->ops->alloc(c->be, dv_kv_str_bytes(c, ly, c->rv));
            if (!ly->k_str || !ly->v_str) {
                rc = dv_error_prefix(DV_ENOMEM, "streaming KV cache of layer %d", l);
                goto fail;
            }
        }
        layer_blocks(c, ly);
    }
    *out = c;
    return 0;
fail:
    dv_kv_cache_free(c);
    return rc;
}

void dv_kv_cache_free(dv_kv_cache *c) {
    if (!c) return;
    for (int l = 0; c->layers && l < c->L; l++) {
        kv_layer *ly = &c->layers[l];
        for (int i = 0; i < ly->n_pages; i++) {
            c->be->ops->free(c->be, ly->k_pages[i]);
            c->be->ops->free(c->be, ly->v_pages[i]);
        }
        if (ly->k_str) c->be->ops->free(c->be, ly->k_str);
        if (ly->v_str) c->be->ops->free(c->be, ly->v_str);
        free(ly->slot);
        free(ly->is_ret);
        free(ly->k_pages);
        free(ly->v_pages);
        free(ly->views);
        free(ly->segs);
        free(ly->blocks);
    }
    free(c->layers);
    free(c);
}


int dv_kv_cache_is_retrieval(const dv_kv_cache *c, int l, int h) { return c->layers[l].is_ret[h]; }

int dv_kv_cache_reserve(dv_kv_cache *c, int64_t T) {
    if (c->len + T > c->n_ctx)
        return dv_error_set(DV_EINVAL, "context full: %lld cached + %lld new tokens exceed the context size %lld",
                            (long long)c->len, (long long)T, (long long)c->n_ctx);
    const int need = (int)((c->len + T + c->P - 1) / c->P);
    for (int l = 0; l < c->L; l++) {
        kv_layer *ly = &c->layers[l];
        if (!ly->n_ret) continue;
        const int had = ly->n_pages;
        while (ly->n_pages < need) {
            // pages are allocated once and kept (rewind reuses them): never per token
            char *k = c->be->ops->alloc(c->be, dv_kv_page_bytes(c, ly, c->rk));
            char *v = k ? c->be->ops->alloc(c->be, dv_kv_page_bytes(c, ly, c->rv)) : NULL;
            if (!k || !v) {
                if (k) c->be->ops->free(c->be, k);
                if (ly->n_pages != had) layer_blocks(c, ly); // the pages that were added stay
                return dv_error_prefix(DV_ENOMEM, "KV cache page %d of layer %d", ly->n_pages, l);
            }
            ly->k_pages[ly->n_pages] = k;
            ly->v_pages[ly->n_pages] = v;
            ly->n_pages++;
        }
        if (ly->n_pages != had) layer_blocks(c, ly);
    }
    return 0;
}

const dv_kv_head_view *dv_kv_cache_views(dv_kv_cache *c, int l) {
    kv_layer *ly = &c->layers[l];
    for (int h = 0; h < c->Hkv; h++) {
        dv_kv_seg *sg = ly->segs + (size_t)h * (size_t)(c->max_pages + 3);
        dv_kv_head_view *v = &ly->views[h];
        int n = 0;
        for (int i = 0; i < v->n_blocks; i++) n += dv_kv_block_segs(&v->blocks[i], c->len, sg + n);
        if (ly->is_ret[h]) {
            v->sink = 0;
            v->window = 0;
        } else {
            v->sink = c->sink;
            // reference: the chunk's own tokens are all visible (causally), the cache being sink + recent;
            // strict: every query sees only the sink and its `recent` predecessors
            v->window = dv_attn_mask_window(c->prefill == DV_DUO_PREFILL_STRICT, c->recent);
        }
        v->segs = sg;
        v->n_segs = n;
        v->layout_gen = ly->layout_gen;
    }
    return ly->views;
}

// n rows of D F32 values, src rows `src_pitch` floats apart, to consecutive dst rows of type t
// (`row` bytes each): f32 by one strided copy where the backend has one (else one copy per row),
// other types through the backend's kv_store.
static int store_rows(dv_kv_cache *c, char *dst, dv_kv_type t, int64_t row, const float *src, int64_t src_pitch,
                      int64_t n) {
    const dv_backend_ops *op = c->be->ops;
    const size_t pitch = (size_t)src_pitch * sizeof(float);
    if (t != DV_KV_F32) return op->kv_store(c->be, dst, (size_t)row, t, src, pitch, c->D, (size_t)n);
    if (op->copy_2d) return op->copy_2d(c->be, dst, (size_t)row, src, pitch, (size_t)row, (size_t)n);
    for (int64_t r = 0; r < n; r++) {
        int rc = op->copy(c->be, dst + r * row, src + r * src_pitch, (size_t)row);
        if (rc) return rc;
    }
    return 0;
}

int dv_kv_cache_append(dv_kv_cache *c, int l, const dv_tensor *k_new, const dv_tensor *v_new) {
    kv_layer *ly = &c->layers[l];
    const int64_t T = k_new->ne[0], D = c->D, P = c->P, S = c->sink, R = c->recent, W = S + R, Hkv = c->Hkv;
    const int64_t rk = c->rk, rv = c->rv;
    DV_ASSERT(k_new->ne[1] == c->Hkv && k_new->ne[2] == D && dv_tensor_is_contiguous(k_new));
    DV_ASSERT(v_new->ne[0] == T && dv_tensor_is_contiguous(v_new));
    DV_ASSERT(c->len + T <= (int64_t)ly->n_pages * P || !ly->n_ret); // reserve() ran
    const float *kn = k_new->data, *vn = v_new->data;
    const int64_t end = c->len + T;
    for (int h = 0; h < c->Hkv; h++) {
        const int64_t s = ly->slot[h];
        // runs of consecutive positions [p, p + cnt) that land in consecutive destination rows
        for (int64_t p = c->len; p < end;) {
            int64_t cnt, row; // row: index of p's row in the head's page / streaming buffer
            char *kb, *vb;
            if (ly->is_ret[h]) {
                cnt = P - p % P < end - p ? P - p % P : end - p; // to the end of the page
                row = s * P + p % P;
                kb = ly->k_pages[p / P];
                vb = ly->v_pages[p / P];
            } else if (p < S) {
                cnt = S - p < end - p ? S - p : end - p; // the sink
                row = s * W + p;
                kb = ly->k_str;
                vb = ly->v_str;
            } else {
                const int64_t keep = dv_attn_mask_ring_start(end, S, R);
                if (p < keep) { // overwritten later in this chunk
                    p = keep;
                    continue;
                }
                const int64_t slot = (p - S) % R;
                cnt = R - slot < end - p ? R - slot : end - p; // to the end of the ring
                row = s * W + S + slot;
                kb = ly->k_str;
                vb = ly->v_str;
            }
            const int64_t t = p - c->len;
            int rc = store_rows(c, kb + row * rk, c->kt, rk, kn + (t * Hkv + h) * D, Hkv * D, cnt);
            if (!rc) rc = store_rows(c, vb + row * rv, c->vt, rv, vn + (t * Hkv + h) * D, Hkv * D, cnt);
            if (rc) return rc;
            p += cnt;
        }
    }
    return 0;
}

int dv_kv_cache_fill_synthetic(dv_kv_cache *c, int64_t n, uint64_t seed) {
    if (n < c->len) return dv_kv_cache_rewind(c, n);
    int rc = dv_kv_cache_reserve(c, n - c->len);
    if (rc) return rc;
    // one random block of rows, as many as the largest page / streaming buffer holds, stored as K
    // rows and as V rows once, then copied into every page and every streaming buffer: attention's
    // work does not depend on the values
    int64_t nr = 0; // rows
    for (int l = 0; l < c->L; l++) {
        const kv_layer *ly = &c->layers[l];
        const int64_t pg = (int64_t)ly->n_ret * c->P, st = (int64_t)ly->n_str * (c->sink + c->recent);
        nr = pg > nr ? pg : nr;
        nr = st > nr ? st : nr;
    }
    if (!nr) {
        c->len = n;
        return 0;
    }
    const dv_backend_ops *op = c->be->ops;
    const size_t nf = (size_t)nr * (size_t)c->D;
    float *host = malloc(nf * sizeof(float)), *blk = op->alloc(c->be, nf * sizeof(float));
    char *kblk = op->alloc(c->be, (size_t)(nr * c->rk)), *vblk = op->alloc(c->be, (size_t)(nr * c->rv));
    if (!host || !blk || !kblk || !vblk) {
        rc = dv_error_set(DV_ENOMEM, "KV cache fill: out of memory (%.1f MiB)", (double)nf * 4 / (1 << 20));
        goto done;
    }
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < nf; i++) { // xorshift64*: values in [-1, 1)
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        host[i] = (float)((x * 0x2545f4914f6cdd1dull) >> 40) * (2.0f / 16777216.0f) - 1.0f;
    }
    rc = dv_backend_upload(c->be, blk, host, nf * sizeof(float));
    if (!rc) rc = store_rows(c, kblk, c->kt, c->rk, blk, c->D, nr);
    if (!rc) rc = store_rows(c, vblk, c->vt, c->rv, blk, c->D, nr);
    for (int l = 0; !rc && l < c->L; l++) {
        kv_layer *ly = &c->layers[l];
        for (int i = 0; !rc && i < ly->n_pages; i++) {
            rc = op->copy(c->be, ly->k_pages[i], kblk, dv_kv_page_bytes(c, ly, c->rk));
            if (!rc) rc = op->copy(c->be, ly->v_pages[i], vblk, dv_kv_page_bytes(c, ly, c->rv));
        }
        if (!rc && ly->n_str) rc = op->copy(c->be, ly->k_str, kblk, dv_kv_str_bytes(c, ly, c->rk));
        if (!rc && ly->n_str) rc = op->copy(c->be, ly->v_str, vblk, dv_kv_str_bytes(c, ly, c->rv));
    }
    if (!rc) rc = op->synchronize(c->be);
done:
    if (blk) op->free(c->be, blk);
    if (kblk) op->free(c->be, kblk);
    if (vblk) op->free(c->be, vblk);
    free(host);
    if (!rc) c->len = n;
    return rc;
}

void dv_kv_cache_commit(dv_kv_cache *c, int64_t T) { c->len += T; }

int dv_kv_cache_rewind(dv_kv_cache *c, int64_t n) {
    if (n < 0 || n > c->len) return dv_error_set(DV_EINVAL, "cannot rewind the KV cache to %lld tokens (it holds %lld)",
                                                 (long long)n, (long long)c->len);
    int has_str = 0;
    for (int l = 0; l < c->L; l++) has_str |= c->layers[l].n_str > 0;
    // a streaming ring has already dropped what a rewind into the window would need again
    if (has_str && n > c->sink && n < c->len)
        return dv_error_set(DV_EINVAL, "cannot rewind a DuoAttention cache to %lld tokens: streaming heads keep only "
                                       "the last %lld", (long long)n, (long long)c->recent);
    c->len = n;
    return 0;
}

void dv_kv_cache_memory(const dv_kv_cache *c, dv_kv_memory *m) {
    memset(m, 0, sizeof *m);
    m->n_tokens = c->len;
    m->k_type = c->kt;
    m->v_type = c->vt;
    for (int l = 0; l < c->L; l++) {
        const kv_layer *ly = &c->layers[l];
        m->retrieval_bytes += (size_t)ly->n_pages * (dv_kv_page_bytes(c, ly, c->rk) + dv_kv_page_bytes(c, ly, c->rv));
        m->streaming_bytes += dv_kv_str_bytes(c, ly, c->rk) + dv_kv_str_bytes(c, ly, c->rv);
        m->n_retrieval_heads += ly->n_ret;
        m->n_streaming_heads += ly->n_str;
    }
    m->total_bytes = m->retrieval_bytes + m->streaming_bytes;
    m->bytes_per_token = (size_t)m->n_retrieval_heads * (size_t)(c->rk + c->rv);
}

void dv_kv_cache_print_report(const dv_kv_cache *c, void *file) {
    FILE *f = file;
    dv_kv_memory m;
    dv_kv_cache_memory(c, &m);
    fprintf(f, "duovid: KV cache: %lld tokens, %d retrieval + %d streaming KV heads (sink %lld, recent %lld), "
               "K %s + V %s, %zu bytes per token, %.2f MiB retrieval + %.2f MiB streaming = %.2f MiB\n",
            (long long)m.n_tokens, m.n_retrieval_heads, m.n_streaming_heads, (long long)c->sink, (long long)c->recent,
            dv_kv_type_name(c->kt), dv_kv_type_name(c->vt), m.bytes_per_token, (double)m.retrieval_bytes / (1 << 20),
            (double)m.streaming_bytes / (1 << 20), (double)m.total_bytes / (1 << 20));
    for (int l = 0; l < c->L; l++) {
        const kv_layer *ly = &c->layers[l];
        fprintf(f, "duovid:   layer %3d: %2d retrieval (%.2f MiB), %2d streaming (%.2f MiB)\n", l, ly->n_ret,
                (double)ly->n_pages * (double)(dv_kv_page_bytes(c, ly, c->rk) + dv_kv_page_bytes(c, ly, c->rv)) /
                    (1 << 20),
                ly->n_str, (double)(dv_kv_str_bytes(c, ly, c->rk) + dv_kv_str_bytes(c, ly, c->rv)) / (1 << 20));
    }
}
