// rope.cu: rotary embedding, HF rotate_half layout, in place on x (T, H, D); one thread per pair.
// The angle is the float32 product pos * inv_freq as HF computes it; cos/sin in double for
// exactness (cheap next to the memory traffic). One kernel serves plain RoPE (one position row) and
// the multi-section form (M-RoPE, 2-D vision rotary: frequency d reads row sec[d] of pos (n_sec, T)).
#include "kernels/cuda/common.cuh"

struct dv_rope_dev {
    float inv_freq[DV_ROPE_MAX_HALF];
    unsigned char sec[DV_ROPE_MAX_HALF];
};

static __global__ void rope_kernel(float *x, const int32_t *pos, dv_rope_dev f, float attn, long long T, int H,
                                   int half, long long s_t, long long s_h) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= T * H * half) return;
    const int d = (int)(i % half);
    const long long th = i / half, t = th / H, h = th % H;
    const float ang = (float)pos[(long long)f.sec[d] * T + t] * f.inv_freq[d];
    const float c = (float)cos((double)ang) * attn, s = (float)sin((double)ang) * attn;
    float *v = x + t * s_t + h * s_h;
    const float a = v[d], b = v[d + half];
    v[d] = a * c - b * s;
    v[d + half] = b * c + a * s;
}

static void rope_launch(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope, const dv_rope_sec *sec) {
    const long long T = x->ne[0], H = x->ne[1], D = x->ne[2];
    const int n_sec = sec ? sec->n_sec : 1;
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && pos->dtype == DV_DTYPE_I32 && D == rope->head_dim);
    DV_ASSERT(x->nb[2] == 4 && n_sec >= 1 && n_sec <= DV_ROPE_MAX_SEC && dv_tensor_nelem(pos) == n_sec * T);
    if (!T) return;
    dv_rope_dev f; // passed by value: no device table to manage
    memcpy(f.inv_freq, rope->inv_freq, sizeof f.inv_freq);
    memset(f.sec, 0, sizeof f.sec);
    if (sec) {
        for (int d = 0; d < D / 2; d++) DV_ASSERT(sec->sec[d] < n_sec);
        memcpy(f.sec, sec->sec, sizeof f.sec);
    }
    const long long n = T * H * (D / 2);
    rope_kernel<<<(unsigned)DV_CEIL_DIV(n, 256), 256, 0, dv_cuda(be)->stream>>>(
        (float *)x->data, (const int32_t *)pos->data, f, rope->attn_factor, T, (int)H, (int)(D / 2),
        (long long)(x->nb[0] / 4), (long long)(x->nb[1] / 4));
    DV_CUDA_LAUNCHED(be, "rope");
}

void dv_cuda_rope(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope) {
    rope_launch(be, x, pos, rope, NULL);
}

void dv_cuda_rope_sections(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope,
                           const dv_rope_sec *sec) {
    rope_launch(be, x, pos, rope, sec);
}
