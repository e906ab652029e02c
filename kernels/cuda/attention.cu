// attention.cu: attention with an online softmax, one warp per (query row, query head): lanes split
// the head dim for the q.k dot products and the output accumulator, so no score matrix exists.
//  - dv_cuda_attention: q (Tq, Hq, D) over k, v (Tk, Hkv, D) with any strides; causal with a position
//    offset or not (ViT); GQA.
//  - dv_cuda_attention_kv: the DuoAttention cache path: per kv head, cached segments (retrieval
//    pages, or streaming sink + ring pieces with a window mask) then the chunk's own keys; invisible
//    keys are skipped, never scored (the CPU twin is kernels/cpu/attention_kv.c).
// Correct first: the tensor-core prefill kernel and split-K decode of the CUDA issue replace these
// once a GPU can verify them.
#include "kernels/cuda/common.cuh"

#define DV_MAX_PER_LANE 32 // head_dim <= 1024

struct online {
    float m, l;
};

// One key (row r of k/v) into lane-local state; every lane holds dims lane, lane+32, ...
__device__ __forceinline__ void attend_key(online &st, float *acc, const float *q_l, const float *k, const float *v,
                                           int D, float scale) {
    const int lane = threadIdx.x % 32;
    float d = 0.0f;
    for (int i = lane, j = 0; i < D; i += 32, j++) d += q_l[j] * k[i];
    const float s = dv_warp_sum(d) * scale;
    const float nm = fmaxf(st.m, s), corr = expf(st.m - nm), e = expf(s - nm);
    st.l = st.l * corr + e;
    for (int i = lane, j = 0; i < D; i += 32, j++) acc[j] = acc[j] * corr + e * v[i];
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
    long long n = Tk;
    if (causal) n = pos0 + t + 1 < Tk ? pos0 + t + 1 : Tk;
    online st = {-INFINITY, 0.0f};
    for (long long r = 0; r < n; r++) attend_key(st, acc, q_l, k + r * ks0 + g * ks1, v + r * vs0 + g * vs1, D, scale);
    const float inv = st.l > 0 ? 1.0f / st.l : 0.0f;
    for (int i = lane, j = 0; i < D; i += 32, j++) out[t * os0 + h * os1 + i] = acc[j] * inv;
}

void dv_cuda_attention(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k, const dv_tensor *v,
                       const dv_attn_params *p) {
    const long long Tq = q->ne[0], Hq = q->ne[1], D = q->ne[2], Tk = k->ne[0], Hkv = k->ne[1];
    DV_ASSERT(D <= 32 * DV_MAX_PER_LANE && Hq % Hkv == 0 && q->nb[2] == 4 && k->nb[2] == 4 && v->nb[2] == 4);
    if (!Tq) return;
    const long long warps = Tq * Hq;
    attention_kernel<<<(unsigned)DV_CEIL_DIV(warps * 32, 128), 128, 0, dv_cuda(be)->stream>>>(
        (float *)out->data, (const float *)q->data, (const float *)k->data, (const float *)v->data, Tq, (int)Hq, Tk,
        (int)Hkv, (int)D, (long long)q->nb[0] / 4, (long long)q->nb[1] / 4, (long long)k->nb[0] / 4,
        (long long)k->nb[1] / 4, (long long)v->nb[0] / 4, (long long)v->nb[1] / 4, (long long)out->nb[0] / 4,
        (long long)out->nb[1] / 4, p->scale, p->causal, (long long)p->q_pos0);
    DV_CUDA_LAUNCHED(be, "attention");
}

// ---- the KV-cache path ----
struct dv_seg_dev {
    const float *k, *v;
    long long pos0, n, stride;
};
struct dv_head_dev {
    int off, cnt;
    long long sink, window;
};

// keys at positions [pos0, pos0 + n) of one run, restricted to what position p sees
__device__ void attend_run(online &st, float *acc, const float *q_l, const float *k, const float *v, long long stride,
                           long long pos0, long long n, long long p, long long sink, long long window, int D,
                           float scale) {
    const long long end = pos0 + n < p + 1 ? pos0 + n : p + 1;
    if (end <= pos0) return;
    if (window <= 0) {
        for (long long r = 0; r < end - pos0; r++) attend_key(st, acc, q_l, k + r * stride, v + r * stride, D, scale);
        return;
    }
    const long long s_end = sink < end ? sink : end;
    for (long long r = 0; r < s_end - pos0; r++) attend_key(st, acc, q_l, k + r * stride, v + r * stride, D, scale);
    long long w0 = p - window;
    if (w0 < pos0) w0 = pos0;
    if (w0 < s_end) w0 = s_end;
    for (long long r = w0 - pos0; r < end - pos0; r++) attend_key(st, acc, q_l, k + r * stride, v + r * stride, D, scale);
}

static __global__ void attention_kv_kernel(float *out, const float *q, const float *kn, const float *vn,
                                           const dv_seg_dev *segs, const dv_head_dev *heads, long long T, int Hq,
                                           int Hkv, int D, long long qs0, long long qs1, long long os0, long long os1,
                                           float scale, long long pos0) {
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
    for (int s = 0; s < hd.cnt; s++) {
        const dv_seg_dev sg = segs[hd.off + s];
        attend_run(st, acc, q_l, sg.k, sg.v, sg.stride, sg.pos0, sg.n, p, hd.sink, hd.window, D, scale);
    }
    attend_run(st, acc, q_l, kn + (long long)g * D, vn + (long long)g * D, (long long)Hkv * D, pos0, T, p, hd.sink,
               hd.window, D, scale);
    const float inv = st.l > 0 ? 1.0f / st.l : 0.0f;
    for (int i = lane, j = 0; i < D; i += 32, j++) out[t * os0 + h * os1 + i] = acc[j] * inv;
}

void dv_cuda_attention_kv(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                          const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p) {
    const long long T = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = k_new->ne[1];
    DV_ASSERT(D <= 32 * DV_MAX_PER_LANE && Hq % Hkv == 0 && dv_tensor_is_contiguous(k_new) && q->nb[2] == 4);
    if (!T) return;
    // the segment table (host: the cache's views) goes to the device in one copy
    int n_segs = 0;
    for (int g = 0; g < Hkv; g++) n_segs += views[g].n_segs;
    const size_t seg_bytes = (size_t)n_segs * sizeof(dv_seg_dev), bytes = seg_bytes + (size_t)Hkv * sizeof(dv_head_dev);
    // host staging buffer owned by the backend, reused across calls
    dv_cuda_ctx *c = dv_cuda(be);
    if (c->host_table_bytes < bytes) {
        free(c->host_table);
        c->host_table = (char *)malloc(bytes);
        c->host_table_bytes = c->host_table ? bytes : 0;
        if (!c->host_table) {
            if (!c->status) c->status = dv_error_set(DV_ENOMEM, "attention_kv: out of host memory");
            return;
        }
    }
    char *host = c->host_table;
    dv_seg_dev *hs = (dv_seg_dev *)host;
    dv_head_dev *hh = (dv_head_dev *)(host + seg_bytes);
    int off = 0;
    for (int g = 0; g < Hkv; g++) {
        hh[g] = {off, views[g].n_segs, (long long)views[g].sink, (long long)views[g].window};
        for (int s = 0; s < views[g].n_segs; s++) {
            const dv_kv_seg *sg = &views[g].segs[s];
            hs[off++] = {sg->k, sg->v, (long long)sg->pos0, (long long)sg->n, (long long)sg->stride};
        }
    }
    char *dev = (char *)dv_cuda_table(be, bytes);
    if (!dev) return;
    // synchronous w.r.t. the host buffer: pageable memory is staged before cudaMemcpyAsync returns
    DV_CUDA_CHECK(be, cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, dv_cuda(be)->stream),
                  "attention_kv table");
    const long long warps = T * Hq;
    attention_kv_kernel<<<(unsigned)DV_CEIL_DIV(warps * 32, 128), 128, 0, dv_cuda(be)->stream>>>(
        (float *)out->data, (const float *)q->data, (const float *)k_new->data, (const float *)v_new->data,
        (const dv_seg_dev *)dev, (const dv_head_dev *)(dev + seg_bytes), T, (int)Hq, (int)Hkv, (int)D,
        (long long)q->nb[0] / 4, (long long)q->nb[1] / 4, (long long)out->nb[0] / 4, (long long)out->nb[1] / 4,
        p->scale, (long long)p->q_pos0);
    DV_CUDA_LAUNCHED(be, "attention_kv");
}
