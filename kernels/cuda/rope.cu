// rope.cu: rotary embedding, HF rotate_half layout, in place on x (T, H, D); one thread per pair.
// The angle is the float32 product pos * inv_freq as HF computes it; cos/sin in double for
// exactness (cheap next to the memory traffic).
#include "kernels/cuda/common.cuh"

struct dv_rope_dev {
    float inv_freq[DV_ROPE_MAX_HALF];
};

static __global__ void rope_kernel(float *x, const int32_t *pos, dv_rope_dev f, float attn, long long T, int H,
                                   int half, long long s_t, long long s_h) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= T * H * half) return;
    const int d = (int)(i % half);
    const long long th = i / half, t = th / H, h = th % H;
    const float ang = (float)pos[t] * f.inv_freq[d];
    const float c = (float)cos((double)ang) * attn, s = (float)sin((double)ang) * attn;
    float *v = x + t * s_t + h * s_h;
    const float a = v[d], b = v[d + half];
    v[d] = a * c - b * s;
    v[d + half] = b * c + a * s;
}

void dv_cuda_rope(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope) {
    const long long T = x->ne[0], H = x->ne[1], D = x->ne[2];
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && pos->dtype == DV_DTYPE_I32 && pos->ne[0] == T && D == rope->head_dim);
    DV_ASSERT(x->nb[2] == 4);
    if (!T) return;
    dv_rope_dev f;
    memcpy(f.inv_freq, rope->inv_freq, sizeof f.inv_freq); // passed by value: no device table to manage
    const long long n = T * H * (D / 2);
    rope_kernel<<<(unsigned)DV_CEIL_DIV(n, 256), 256, 0, dv_cuda(be)->stream>>>(
        (float *)x->data, (const int32_t *)pos->data, f, rope->attn_factor, T, (int)H, (int)(D / 2),
        (long long)(x->nb[0] / 4), (long long)(x->nb[1] / 4));
    DV_CUDA_LAUNCHED(be, "rope");
}
