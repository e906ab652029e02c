// pool.cu: the CUDA pool2d op (average / max pooling of square token grids, a stride-s Conv2d's
// windows, or torch's bilinear downscale), one thread per output element; the twin of
// kernels/cpu/pool.c, summing in the same order.
#include "kernels/cuda/common.cuh"

static __global__ void pool2d_kernel(float *y, const float *x, long long n, long long C, int g, int s, int pg,
                                     int mode) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (mode == DV_POOL_WINDOWS) { // y (rows, C * s * s): element (ch, ky, kx) of window r
        const long long w = C * s * s, r = i / w, e = i % w;
        const long long ch = e / (s * s), ky = e / s % s, kx = e % s;
        const long long b = r / ((long long)pg * pg), oy = r / pg % pg, ox = r % pg;
        y[i] = x[(b * g * g + (oy * s + ky) * g + ox * s + kx) * C + ch];
        return;
    }
    const long long r = i / C, ch = i % C;
    const long long b = r / ((long long)pg * pg), oy = r / pg % pg, ox = r % pg;
    const float *src = x + b * g * g * C;
    float acc = mode == DV_POOL_MAX ? -3.402823466e38f : 0.0f;
    for (int ky = 0; ky < s; ky++)
        for (int kx = 0; kx < s; kx++) {
            const float v = src[((oy * s + ky) * g + ox * s + kx) * C + ch];
            if (mode == DV_POOL_MAX) acc = v > acc || isnan(v) ? v : acc;
            else acc += v;
        }
    y[i] = mode == DV_POOL_MAX ? acc : acc / (float)(s * s);
}

// torch's linear weights along one axis (as bilinear_axis in kernels/cpu/pool.c)
static __device__ void bilinear_axis(int g, int pg, int o, int *i0, int *d, float *l) {
    const float scale = (float)g / (float)pg;
    float src = scale * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int)src;
    *d = *i0 < g - 1 ? 1 : 0;
    *l = src - (float)*i0;
}

// y (B * pg * pg, C): element i = (r, ch) blends the 4 source neighbours of output token r.
static __global__ void bilinear_kernel(float *y, const float *x, long long n, long long C, int g, int pg) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const long long r = i / C, ch = i % C, b = r / ((long long)pg * pg);
    int y0, dy, x0, dx;
    float ly, lx;
    bilinear_axis(g, pg, (int)(r / pg % pg), &y0, &dy, &ly);
    bilinear_axis(g, pg, (int)(r % pg), &x0, &dx, &lx);
    const float *p00 = x + ((b * g + y0) * g + x0) * C + ch, *p01 = p00 + dx * C;
    const float *p10 = p00 + (long long)dy * g * C, *p11 = p10 + dx * C;
    y[i] = (1.0f - ly) * ((1.0f - lx) * *p00 + lx * *p01) + ly * ((1.0f - lx) * *p10 + lx * *p11);
}

void dv_cuda_pool2d(dv_backend *be, dv_tensor *y, const dv_tensor *x, int g, int s, dv_pool mode) {
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && dv_tensor_is_contiguous(x) &&
              dv_tensor_is_contiguous(y) && g >= 1 && s >= 1 && s <= g && x->ne[0] % ((long long)g * g) == 0);
    if (mode == DV_POOL_BILINEAR) {
        const long long C = x->ne[1], B = x->ne[0] / ((long long)g * g), pg = (g + s - 1) / s;
        DV_ASSERT(y->ne[0] == B * pg * pg && y->ne[1] == C);
        const long long n = y->ne[0] * C;
        if (!n) return;
        bilinear_kernel<<<(unsigned)DV_CEIL_DIV(n, 256), 256, 0, dv_cuda(be)->stream>>>(
            (float *)y->data, (const float *)x->data, n, C, g, (int)pg);
        DV_CUDA_LAUNCHED(be, "pool2d bilinear");
        return;
    }
    const long long C = x->ne[1], B = x->ne[0] / ((long long)g * g), pg = g / s;
    DV_ASSERT(y->ne[0] == B * pg * pg && y->ne[1] == (mode == DV_POOL_WINDOWS ? C * s * s : C));
    const long long n = y->ne[0] * y->ne[1];
    if (!n) return;
    pool2d_kernel<<<(unsigned)DV_CEIL_DIV(n, 256), 256, 0, dv_cuda(be)->stream>>>(
        (float *)y->data, (const float *)x->data, n, C, g, s, (int)pg, (int)mode);
    DV_CUDA_LAUNCHED(be, "pool2d");
}
