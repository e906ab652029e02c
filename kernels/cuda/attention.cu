// attention.cu: the plain fp32 attention kernels (one warp per (query row, query head), online
// softmax, no score matrix) and the dispatch of the attention / attention_kv ops to them, to
// flash_attn.cu (tensor-core prefill) or to flash_decode.cu (split-K decode), as
// kernels/cuda/attn_path.h's dv_cuda_attn_select chooses (DV_ATTN_FP32=1 forces the fp32 kernels).
// The CPU twins are kernels/cpu/attention.c and attention_kv.c. Over a KV cache (views with blocks)
// the key table is built on the device from a per-layer layout cached there (attention_kv_blocks).
// Cached rows are read in their stored KV row types (f32/bf16/f16/q8/q4, kernels/cuda/kv_rows.cuh).
#include "kernels/cuda/attn_path.h"
#include "kernels/cuda/attn_table.cuh"
#include "kernels/cuda/common.cuh"

#include <string.h>

#include <stdlib.h>

#define DV_MAX_PER_LANE 32 // head_dim <= 1024

struct online {
    float m, l;
};

// One key (row k of type kt, row v of type vt) into lane-local state; every lane holds dims lane,
// lane+32, ... The rows are read in their stored types (kv_rows.cuh), element by element.
__device__ __forceinline__ void attend_key(online &st, float *acc, const float *q_l, const char *k, int kt,
                                           const char *v, int vt, int D, float scale) {
    const int lane = threadIdx.x % 32;
    float d = 0.0f;
    for (int i = lane, j = 0; i < D; i += 32, j++) d += q_l[j] * dv_kv_elem(k, kt, i);
    const float s = dv_warp_sum(d) * scale;
    const float nm = fmaxf(st.m, s), corr = expf(st.m - nm), e = expf(s - nm);
    st.l = st.l * corr + e;
    for (int i = lane, j = 0; i < D; i += 32, j++) acc[j] = acc[j] * corr + e * dv_kv_elem(v, vt, i);
    st.m = nm;
}

static __global__ void attention_kernel(float *out, const float *q, const float *k, const float *v, long long Tq,
                                        int Hq, long long Tk, int Hkv, int D, long long qs0, long long qs1,
                                        long long ks0, long long ks1, long long vs0, long long vs1, long long os0,
                                        long long os1, float scale, int causal, long long pos0) {
    const long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (w >= Tq * Hq) return;
    const long long t = w / Hq;
    const int h = (int)(w % Hq), g = h / (Hq / Hkv), lane = threadIdx.x % 32;
    float q_l[DV_MAX_PER_LANE], acc[DV_MAX_PER_LANE];
    for (int i = lane, j = 0; i < D; i += 32, j++) {
        q_l[j] = q[t * qs0 + h * qs1 + i];
        acc[j] = 0.0f;
    }
    int64_t lo[2], hi[2];
    const long long n = dv_attn_mask_run(0, Tk, pos0 + t, pos0 + t, causal, 0, 0, lo, hi) ? hi[0] : 0;
    online st = {-INFINITY, 0.0f};
    for (long long r = 0; r < n; r++)
        attend_key(st, acc, q_l, (const char *)(k + r * ks0 + g * ks1), DV_KV_F32, (const char *)(v + r * vs0 + g * vs1),
                   DV_KV_F32, D, scale);
    const float inv = st.l > 0 ? 1.0f / st.l : 0.0f;
    for (int i = lane, j = 0; i < D; i += 32, j++) out[t * os0 + h * os1 + i] = acc[j] * inv;
}

// ---- the run-table path (fp32 kernel for the cases the tensor-core kernels do not take) ----

// keys at positions [pos0, pos0 + n) of one run, restricted to what position p sees
__device__ void attend_run(online &st, float *acc, const float *q_l, const dv_run_dev &run, long long p, int causal,
                           long long sink, long long window, int D, float scale) {
    int64_t lo[2], hi[2];
    const int ni = dv_attn_mask_run(run.pos0, run.n, p, p, causal, sink, window, lo, hi);
    for (int i = 0; i < ni; i++)
        for (long long r = lo[i] - run.pos0; r < hi[i] - run.pos0; r++)
            attend_key(st, acc, q_l, run.k + r * run.ks, run.kt, run.v + r * run.vs, run.vt, D, scale);
}

static __global__ void attention_runs_kernel(float *out, const float *q, const dv_run_dev *runs,
                                             const dv_head_dev *heads, long long T, int Hq, int Hkv, int D,
                                             long long qs0, long long qs1, long long os0, long long os1, float scale,
                                             int causal, long long pos0) {
    const long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (w >= T * Hq) return;
    const long long t = w / Hq, p = pos0 + t;
    const int h = (int)(w % Hq), g = h / (Hq / Hkv), lane = threadIdx.x % 32;
    float q_l[DV_MAX_PER_LANE], acc[DV_MAX_PER_LANE];
    for (int i = lane, j = 0; i < D; i += 32, j++) {
        q_l[j] = q[t * qs0 + h * qs1 + i];
        acc[j] = 0.0f;
    }
    online st = {-INFINITY, 0.0f};
    const dv_head_dev hd = heads[g];
    for (int s = 0; s < hd.cnt; s++) attend_run(st, acc, q_l, runs[hd.off + s], p, causal, hd.sink, hd.window, D, scale);
    const float inv = st.l > 0 ? 1.0f / st.l : 0.0f;
    for (int i = lane, j = 0; i < D; i += 32, j++) out[t * os0 + h * os1 + i] = acc[j] * inv;
}

// ---- host: tables ----

// Row / head strides (bytes) of a (T, H, D) F32 key and value pair.
typedef struct kv_strides {
    long long k0, k1, v0, v1;
} kv_strides;

static kv_strides kv_strides_of(const dv_tensor *k, const dv_tensor *v) {
    return {(long long)k->nb[0], (long long)k->nb[1], (long long)v->nb[0], (long long)v->nb[1]};
}

// Host staging buffer of the backend, reused across calls; growing keeps its contents (a failure is
// recorded, sticky).
static char *host_buf(dv_backend *be, size_t bytes) {
    dv_cuda_ctx *c = dv_cuda(be);
    if (c->host_table_bytes < bytes) {
        char *n = (char *)realloc(c->host_table, bytes);
        if (!n) {
            if (!c->status) c->status = dv_error_set(DV_ENOMEM, "attention: out of host memory for the key table");
            return NULL;
        }
        c->host_table = n;
        c->host_table_bytes = bytes;
    }
    return c->host_table;
}

// One upload of the staged table; returns its device copy.
static char *upload_table(dv_backend *be, const char *host, size_t bytes) {
    char *dev = (char *)dv_cuda_table(be, bytes);
    if (!dev) return NULL;
    // synchronous w.r.t. the host buffer: pageable memory is staged before cudaMemcpyAsync returns
    DV_CUDA_CHECK(be, cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, dv_cuda(be)->stream),
                  "attention key table");
    dv_backend_count_xfer(be, bytes, 0);
    return dev;
}

typedef struct attn_job {
    float *out;
    const float *q;
    long long os0, os1, qs0, qs1, T;
    int Hq, Hkv, D, causal;
    long long q_pos0;
    float scale;
} attn_job;

// The prefill kernels over a run table already on the device: the tensor-core kernel or the fp32 one,
// as dv_cuda_attn_select chose.
static void run_tables(dv_backend *be, const attn_job *j, const dv_run_dev *dr, const dv_head_dev *dh,
                       dv_cuda_attn_kernel kernel) {
    if (kernel == DV_CUDA_ATTN_FLASH_PREFILL) {
        dv_cuda_flash_attn(be, j->out, j->os0, j->os1, j->q, j->qs0, j->qs1, j->T, j->Hq, j->Hkv, j->D, dr, dh, j->scale,
                           j->causal, j->q_pos0);
        return;
    }
    const long long warps = j->T * j->Hq;
    attention_runs_kernel<<<(unsigned)DV_CEIL_DIV(warps * 32, 128), 128, 0, dv_cuda(be)->stream>>>(
        j->out, j->q, dr, dh, j->T, j->Hq, j->Hkv, j->D, j->qs0, j->qs1, j->os0, j->os1, j->scale, j->causal, j->q_pos0);
    DV_CUDA_LAUNCHED(be, "attention (fp32)");
}

// Runs the job over a host run table (runs, heads) staged at the front of the backend's host buffer,
// on the kernel dv_cuda_attn_select chose.
static void run_job(dv_backend *be, const attn_job *j, int n_runs, dv_cuda_attn_kernel kernel) {
    char *host = dv_cuda(be)->host_table;
    const size_t run_bytes = (size_t)n_runs * sizeof(dv_run_dev), head_bytes = (size_t)j->Hkv * sizeof(dv_head_dev);
    const dv_run_dev *hr = (const dv_run_dev *)host;
    const dv_head_dev *hh = (const dv_head_dev *)(host + run_bytes);
    if (kernel == DV_CUDA_ATTN_SPLITK_DECODE) {
        // visible intervals of each head for the one query position, numbered consecutively
        const size_t n_iv = 2 * (size_t)n_runs; // at most two visible intervals per run
        const size_t base = run_bytes + head_bytes, iv_bytes = n_iv * sizeof(dv_ival_dev);
        const size_t bytes = base + iv_bytes + (size_t)j->Hkv * sizeof(dv_dhead_dev);
        if (!(host = host_buf(be, bytes))) return;
        hr = (const dv_run_dev *)host;
        hh = (const dv_head_dev *)(host + run_bytes);
        dv_ival_dev *iv = (dv_ival_dev *)(host + base);
        dv_dhead_dev *dh = (dv_dhead_dev *)(host + base + iv_bytes);
        int k = 0;
        long long max_total = 0;
        for (int g = 0; g < j->Hkv; g++) {
            long long total = 0;
            dh[g].off = k;
            for (int r = 0; r < hh[g].cnt; r++) {
                const dv_run_dev &run = hr[hh[g].off + r];
                int64_t lo[2], hi[2];
                const int ni = dv_attn_mask_run(run.pos0, run.n, j->q_pos0, j->q_pos0, 1, hh[g].sink, hh[g].window, lo, hi);
                for (int i = 0; i < ni; i++) {
                    const long long r0 = lo[i] - run.pos0;
                    iv[k++] = {run.k + r0 * run.ks, run.v + r0 * run.vs, run.ks, run.vs, hi[i] - lo[i], total, run.kt,
                               run.vt};
                    total += hi[i] - lo[i];
                }
            }
            dh[g].cnt = k - dh[g].off;
            dh[g].total = total;
            max_total = total > max_total ? total : max_total;
        }
        char *dev = upload_table(be, host + base, iv_bytes + (size_t)j->Hkv * sizeof(dv_dhead_dev));
        if (!dev) return;
        dv_cuda_flash_decode(be, j->out, j->os1, j->q, j->qs1, j->Hq, j->Hkv, j->D, (const dv_ival_dev *)dev,
                             (const dv_dhead_dev *)(dev + iv_bytes), max_total, j->scale);
        return;
    }
    char *dev = upload_table(be, host, run_bytes + head_bytes);
    if (!dev) return;
    run_tables(be, j, (const dv_run_dev *)dev, (const dv_head_dev *)(dev + run_bytes), kernel);
}

static attn_job make_job(dv_tensor *out, const dv_tensor *q, long long Hkv, const dv_attn_params *p, int causal) {
    attn_job j;
    j.out = (float *)out->data;
    j.q = (const float *)q->data;
    j.os0 = (long long)out->nb[0] / 4;
    j.os1 = (long long)out->nb[1] / 4;
    j.qs0 = (long long)q->nb[0] / 4;
    j.qs1 = (long long)q->nb[1] / 4;
    j.T = q->ne[0];
    j.Hq = (int)q->ne[1];
    j.Hkv = (int)Hkv;
    j.D = (int)q->ne[2];
    j.causal = causal;
    j.q_pos0 = (long long)p->q_pos0;
    j.scale = p->scale;
    return j;
}

void dv_cuda_attention(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k, const dv_tensor *v,
                       const dv_attn_params *p) {
    const long long Tq = q->ne[0], Hq = q->ne[1], D = q->ne[2], Tk = k->ne[0], Hkv = k->ne[1];
    DV_ASSERT(D <= 32 * DV_MAX_PER_LANE && Hq % Hkv == 0 && q->nb[2] == 4 && k->nb[2] == 4 && v->nb[2] == 4);
    DV_ASSERT(out->nb[2] == 4 && k->nb[0] % 4 == 0 && k->nb[1] % 4 == 0 && v->nb[0] % 4 == 0 && v->nb[1] % 4 == 0);
    if (!Tq) return;
    const dv_cuda_attn_path path = dv_cuda_attn_select(out, q, k, v, NULL, p->causal);
    if (!p->causal || Tq > 1) {
        // one run per kv head: keys 0 .. Tk-1
        const size_t bytes = (size_t)Hkv * (sizeof(dv_run_dev) + sizeof(dv_head_dev));
        char *host = host_buf(be, bytes);
        if (!host) return;
        dv_run_dev *hr = (dv_run_dev *)host;
        dv_head_dev *hh = (dv_head_dev *)(host + (size_t)Hkv * sizeof(dv_run_dev));
        const kv_strides st = kv_strides_of(k, v);
        for (long long g = 0; g < Hkv; g++) {
            hr[g] = {(const char *)k->data + g * st.k1, (const char *)v->data + g * st.v1, 0, Tk, st.k0, st.v0,
                     DV_KV_F32, DV_KV_F32};
            hh[g] = {(int)g, 1, 0, 0};
        }
        attn_job j = make_job(out, q, Hkv, p, p->causal != 0);
        if (!p->causal) j.q_pos0 = 0;
        run_job(be, &j, (int)Hkv, path.kernel);
        return;
    }
    attention_kernel<<<(unsigned)DV_CEIL_DIV(Tq * Hq * 32, 128), 128, 0, dv_cuda(be)->stream>>>(
        (float *)out->data, (const float *)q->data, (const float *)k->data, (const float *)v->data, Tq, (int)Hq, Tk,
        (int)Hkv, (int)D, (long long)q->nb[0] / 4, (long long)q->nb[1] / 4, (long long)k->nb[0] / 4,
        (long long)k->nb[1] / 4, (long long)v->nb[0] / 4, (long long)v->nb[1] / 4, (long long)out->nb[0] / 4,
        (long long)out->nb[1] / 4, p->scale, p->causal, (long long)p->q_pos0);
    DV_CUDA_LAUNCHED(be, "attention");
}

// ---- attention_kv over a KV cache's blocks: the key table is built on the device ----
// Per layer (keyed by the cache's views array) the blocks and head masks live on the device, uploaded
// again only when the layer's layout_gen changes (a new page); each call a one-warp kernel turns them,
// at length q_pos0, into the run table (and the decode intervals) the kernels read. No host table.

struct dv_lhead_dev {
    int blk_off, blk_cnt;     // blocks [blk_off, blk_off + blk_cnt) of the layout
    long long sink, window;
};

struct dv_cuda_layout {
    const void *key;          // the views array (one per layer of a KV cache)
    uint64_t gen;
    int Hkv, n_blocks;
    char *dev;                // (n_blocks) dv_kv_block, then (Hkv) dv_lhead_dev
    size_t dev_bytes;
};

void dv_cuda_layouts_free(dv_backend *be) {
    dv_cuda_ctx *c = dv_cuda(be);
    for (int i = 0; i < c->n_layouts; i++)
        if (c->layouts[i].dev) cudaFree(c->layouts[i].dev);
    free(c->layouts);
    c->layouts = NULL;
    c->n_layouts = 0;
}

// Run r of head g sits at 2 * blk_off + g + r (two segments per block, then the chunk's own keys);
// decode intervals at twice that (two per run).
static __global__ void build_tables_kernel(const dv_kv_block *blocks, const dv_lhead_dev *lh, int Hkv, long long len,
                                           const char *kn, const char *vn, long long k0, long long k1, long long v0,
                                           long long v1, long long T, dv_run_dev *runs, dv_head_dev *heads,
                                           dv_ival_dev *iv, dv_dhead_dev *dd) {
    const int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= Hkv) return;
    const dv_lhead_dev L = lh[g];
    const int off = 2 * L.blk_off + g;
    int n = 0;
    for (int b = 0; b < L.blk_cnt; b++) {
        dv_kv_seg s[2];
        const int ns = dv_kv_block_segs(&blocks[L.blk_off + b], len, s);
        for (int i = 0; i < ns; i++)
            runs[off + n++] = {(const char *)s[i].k, (const char *)s[i].v, (long long)s[i].pos0, (long long)s[i].n,
                               (long long)s[i].k_stride, (long long)s[i].v_stride, (int)s[i].kt, (int)s[i].vt};
    }
    runs[off + n++] = {kn + g * k1, vn + g * v1, len, T, k0, v0, DV_KV_F32, DV_KV_F32};
    heads[g] = {off, n, L.sink, L.window};
    if (!iv) return;
    // decode: what the one query at position len sees, as intervals numbered consecutively
    const int ioff = 2 * off;
    int k = 0;
    long long total = 0;
    for (int r = 0; r < n; r++) {
        const dv_run_dev run = runs[off + r];
        int64_t lo[2], hi[2];
        const int ni = dv_attn_mask_run(run.pos0, run.n, len, len, 1, L.sink, L.window, lo, hi);
        for (int i = 0; i < ni; i++) {
            const long long r0 = lo[i] - run.pos0;
            iv[ioff + k++] = {run.k + r0 * run.ks, run.v + r0 * run.vs, run.ks, run.vs, hi[i] - lo[i], total, run.kt,
                              run.vt};
            total += hi[i] - lo[i];
        }
    }
    dd[g] = {ioff, k, total};
}

// The layer's layout on the device, refreshed when its generation changed; NULL on failure (sticky).
static dv_cuda_layout *layout_of(dv_backend *be, const dv_kv_head_view *views, int Hkv) {
    dv_cuda_ctx *c = dv_cuda(be);
    dv_cuda_layout *e = NULL;
    for (int i = 0; i < c->n_layouts && !e; i++)
        if (c->layouts[i].key == (const void *)views) e = &c->layouts[i];
    if (e && e->gen == views[0].layout_gen && e->Hkv == Hkv) return e;
    if (!e && c->n_layouts >= 1024) { // caches come and go (identify, /reset): start over, bounded
        DV_CUDA_CHECK(be, cudaStreamSynchronize(c->stream), "KV layout sync");
        dv_cuda_layouts_free(be);
    }
    if (!e) {
        dv_cuda_layout *nl = (dv_cuda_layout *)realloc(c->layouts, (size_t)(c->n_layouts + 1) * sizeof *nl);
        if (!nl) {
            if (!c->status) c->status = dv_error_set(DV_ENOMEM, "attention: out of host memory for a KV layout");
            return NULL;
        }
        c->layouts = nl;
        e = &c->layouts[c->n_layouts++];
        memset(e, 0, sizeof *e);
        e->key = views;
    }
    int nb = 0;
    for (int g = 0; g < Hkv; g++) nb += views[g].n_blocks;
    const size_t blk_bytes = (size_t)nb * sizeof(dv_kv_block), bytes = blk_bytes + (size_t)Hkv * sizeof(dv_lhead_dev);
    char *host = host_buf(be, bytes);
    if (!host) return NULL;
    dv_kv_block *hb = (dv_kv_block *)host;
    dv_lhead_dev *hl = (dv_lhead_dev *)(host + blk_bytes);
    for (int g = 0, o = 0; g < Hkv; g++) {
        hl[g] = {o, views[g].n_blocks, (long long)views[g].sink, (long long)views[g].window};
        for (int b = 0; b < views[g].n_blocks; b++, o++) hb[o] = views[g].blocks[b];
    }
    if (e->dev_bytes < bytes) { // grows by doubling (a page at a time otherwise); queued work may read the old one
        DV_CUDA_CHECK(be, cudaStreamSynchronize(c->stream), "KV layout sync");
        if (e->dev) cudaFree(e->dev);
        e->dev = NULL;
        e->dev_bytes = 0;
        const size_t cap = bytes > 2 * e->dev_bytes ? 2 * bytes : 2 * e->dev_bytes;
        DV_CUDA_CHECK(be, cudaMalloc((void **)&e->dev, cap), "KV layout alloc");
        if (!e->dev) return NULL;
        e->dev_bytes = cap;
    }
    // pageable source: staged before cudaMemcpyAsync returns, so the host buffer may be reused at once
    DV_CUDA_CHECK(be, cudaMemcpyAsync(e->dev, host, bytes, cudaMemcpyHostToDevice, c->stream), "KV layout upload");
    dv_backend_count_xfer(be, bytes, 0);
    e->gen = views[0].layout_gen;
    e->Hkv = Hkv;
    e->n_blocks = nb;
    return c->status ? NULL : e;
}

// Keys the one query at position q_pos0 can see, most over the heads (split-K sizing), from the views.
static long long decode_max_total(const dv_kv_head_view *views, int Hkv, long long q_pos0) {
    long long most = 0;
    for (int g = 0; g < Hkv; g++) {
        long long total = 1; // the query's own key
        for (int s = 0; s < views[g].n_segs; s++) {
            int64_t lo[2], hi[2];
            const dv_kv_seg *sg = &views[g].segs[s];
            const int ni = dv_attn_mask_run((long long)sg->pos0, (long long)sg->n, q_pos0, q_pos0, 1,
                                          (long long)views[g].sink, (long long)views[g].window, lo, hi);
            for (int i = 0; i < ni; i++) total += hi[i] - lo[i];
        }
        most = total > most ? total : most;
    }
    return most;
}

static void attention_kv_blocks(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                                const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p) {
    const int Hkv = (int)k_new->ne[1];
    const long long T = q->ne[0];
    const dv_cuda_layout *L = layout_of(be, views, Hkv);
    if (!L) return;
    const kv_strides st = kv_strides_of(k_new, v_new);
    attn_job j = make_job(out, q, Hkv, p, 1);
    const dv_cuda_attn_kernel kernel = dv_cuda_attn_select(out, q, k_new, v_new, views, 1).kernel;
    const int decode = kernel == DV_CUDA_ATTN_SPLITK_DECODE;
    const size_t n_runs = 2 * (size_t)L->n_blocks + (size_t)Hkv;
    const size_t run_b = n_runs * sizeof(dv_run_dev), head_b = (size_t)Hkv * sizeof(dv_head_dev);
    const size_t iv_b = decode ? 2 * n_runs * sizeof(dv_ival_dev) : 0, dd_b = decode ? (size_t)Hkv * sizeof(dv_dhead_dev) : 0;
    char *dev = (char *)dv_cuda_table(be, run_b + head_b + iv_b + dd_b);
    if (!dev) return;
    dv_run_dev *dr = (dv_run_dev *)dev;
    dv_head_dev *dh = (dv_head_dev *)(dev + run_b);
    dv_ival_dev *iv = decode ? (dv_ival_dev *)(dev + run_b + head_b) : NULL;
    dv_dhead_dev *dd = decode ? (dv_dhead_dev *)(dev + run_b + head_b + iv_b) : NULL;
    const dv_kv_block *blocks = (const dv_kv_block *)L->dev;
    const dv_lhead_dev *lh = (const dv_lhead_dev *)(L->dev + (size_t)L->n_blocks * sizeof(dv_kv_block));
    build_tables_kernel<<<(unsigned)DV_CEIL_DIV(Hkv, 32), 32, 0, dv_cuda(be)->stream>>>(
        blocks, lh, Hkv, (long long)p->q_pos0, (const char *)k_new->data, (const char *)v_new->data, st.k0, st.k1,
        st.v0, st.v1, T, dr, dh, iv, dd);
    DV_CUDA_LAUNCHED(be, "attention key table");
    if (decode) {
        dv_cuda_flash_decode(be, j.out, j.os1, j.q, j.qs1, j.Hq, j.Hkv, j.D, iv, dd,
                             decode_max_total(views, Hkv, (long long)p->q_pos0), j.scale);
        return;
    }
    run_tables(be, &j, dr, dh, kernel);
}

// DV_ATTN_HOST_TABLE=1: attention_kv builds and uploads its table on the host also for a KV cache's
// views (the old path, for comparisons on a GPU).
static int host_tables(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("DV_ATTN_HOST_TABLE");
        v = e && *e && *e != '0';
    }
    return v;
}

void dv_cuda_attention_kv(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                          const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p) {
    const long long T = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = k_new->ne[1];
    DV_ASSERT(D <= 32 * DV_MAX_PER_LANE && Hq % Hkv == 0 && q->nb[2] == 4 && out->nb[2] == 4);
    DV_ASSERT(k_new->nb[2] == 4 && v_new->nb[2] == 4 && k_new->nb[0] % 4 == 0 && v_new->nb[0] % 4 == 0);
    if (!T) return;
    // cached rows of any KV type (the kernels dequantize as they load); f32 rows 4-byte aligned
    for (int g = 0; g < Hkv; g++) {
        for (int s = 0; s < views[g].n_segs; s++) {
            const dv_kv_seg *sg = &views[g].segs[s];
            DV_ASSERT(dv_kv_type_fits(sg->kt, D) && dv_kv_type_fits(sg->vt, D));
            DV_ASSERT((sg->kt != DV_KV_F32 || sg->k_stride % 4 == 0) && (sg->vt != DV_KV_F32 || sg->v_stride % 4 == 0));
        }
        for (int b = 0; views[g].blocks && b < views[g].n_blocks; b++)
            DV_ASSERT(dv_kv_type_fits(views[g].blocks[b].kt, D) && dv_kv_type_fits(views[g].blocks[b].vt, D));
    }
    int blocks = 1; // a KV cache's views: the table is built on the device from its cached layout
    for (int g = 0; g < Hkv; g++) blocks &= views[g].blocks != NULL && views[g].layout_gen == views[0].layout_gen;
    if (blocks && !host_tables()) {
        attention_kv_blocks(be, out, q, k_new, v_new, views, p);
        return;
    }
    // else the run table (host: the views, then each head's new keys) goes to the device in one copy
    int n_runs = 0;
    for (int g = 0; g < Hkv; g++) n_runs += views[g].n_segs + 1;
    const size_t bytes = (size_t)n_runs * sizeof(dv_run_dev) + (size_t)Hkv * sizeof(dv_head_dev);
    char *host = host_buf(be, bytes);
    if (!host) return;
    dv_run_dev *hr = (dv_run_dev *)host;
    dv_head_dev *hh = (dv_head_dev *)(host + (size_t)n_runs * sizeof(dv_run_dev));
    const kv_strides st = kv_strides_of(k_new, v_new);
    int off = 0;
    for (int g = 0; g < Hkv; g++) {
        hh[g] = {off, views[g].n_segs + 1, (long long)views[g].sink, (long long)views[g].window};
        for (int s = 0; s < views[g].n_segs; s++) {
            const dv_kv_seg *sg = &views[g].segs[s];
            DV_ASSERT(sg->n >= 0 && sg->pos0 + sg->n <= p->q_pos0);
            hr[off++] = {(const char *)sg->k, (const char *)sg->v, (long long)sg->pos0, (long long)sg->n,
                         (long long)sg->k_stride, (long long)sg->v_stride, (int)sg->kt, (int)sg->vt};
        }
        hr[off++] = {(const char *)k_new->data + g * st.k1, (const char *)v_new->data + g * st.v1,
                     (long long)p->q_pos0, T, st.k0, st.v0, DV_KV_F32, DV_KV_F32};
    }
    attn_job j = make_job(out, q, Hkv, p, 1);
    run_job(be, &j, n_runs, dv_cuda_attn_select(out, q, k_new, v_new, views, 1).kernel);
}
