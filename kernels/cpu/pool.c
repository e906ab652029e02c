// pool.c: the CPU pool2d op: average / max pooling of square token grids, the gathering of a
// stride-s Conv2d's windows, or torch's bilinear downscale of each grid (dv_backend.h).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <float.h>
#include <math.h>
#include <string.h>

// Torch's linear interpolation weights along one axis (align_corners False, output size given: scale
// in / out in float): output o reads i0 with 1 - l and i0 + d with l (d = 0 at the last input).
static void bilinear_axis(int g, int pg, int o, int *i0, int *d, float *l) {
    const float scale = (float)g / (float)pg;
    float src = scale * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int)src;
    *d = *i0 < g - 1 ? 1 : 0;
    *l = src - (float)*i0;
}

// y (B * pg * pg, C) from x (B * g * g, C): each output token blends its 4 source neighbours.
static void pool_bilinear(dv_backend *be, const float *xs, float *ys, int64_t B, int g, int pg, int64_t C) {
    const int64_t rows = B * pg * pg;
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT(be))
    for (int64_t r = 0; r < rows; r++) {
        const int64_t b = r / ((int64_t)pg * pg);
        int y0, dy, x0, dx;
        float ly, lx;
        bilinear_axis(g, pg, (int)(r / pg % pg), &y0, &dy, &ly);
        bilinear_axis(g, pg, (int)(r % pg), &x0, &dx, &lx);
        const float *p00 = xs + ((b * g + y0) * g + x0) * C, *p01 = p00 + dx * C;
        const float *p10 = p00 + (int64_t)dy * g * C, *p11 = p10 + dx * C;
        float *o = ys + r * C;
        for (int64_t ch = 0; ch < C; ch++)
            o[ch] = (1.0f - ly) * ((1.0f - lx) * p00[ch] + lx * p01[ch]) + ly * ((1.0f - lx) * p10[ch] + lx * p11[ch]);
    }
}

void dv_cpu_pool2d(dv_backend *be, dv_tensor *y, const dv_tensor *x, int g, int s, dv_pool mode) {
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && dv_tensor_is_contiguous(x) &&
              dv_tensor_is_contiguous(y) && g >= 1 && s >= 1 && s <= g && x->ne[0] % ((int64_t)g * g) == 0);
    if (mode == DV_POOL_BILINEAR) {
        const int64_t C = x->ne[1], B = x->ne[0] / ((int64_t)g * g), pg = (g + s - 1) / s;
        DV_ASSERT(y->ne[0] == B * pg * pg && y->ne[1] == C);
        pool_bilinear(be, x->data, y->data, B, g, (int)pg, C);
        return;
    }
    const int64_t C = x->ne[1], B = x->ne[0] / ((int64_t)g * g), pg = g / s;
    const int64_t width = mode == DV_POOL_WINDOWS ? C * s * s : C;
    DV_ASSERT(y->ne[0] == B * pg * pg && y->ne[1] == width);
    const int64_t rows = B * pg * pg;
    const float *xs = x->data;
    float *ys = y->data;
#pragma omp parallel for schedule(static) num_threads(DV_CPU_NT(be))
    for (int64_t r = 0; r < rows; r++) {
        const int64_t b = r / (pg * pg), oy = (r / pg) % pg, ox = r % pg;
        const float *src = xs + b * g * g * C; // this frame's (g, g, C) grid
        float *o = ys + r * width;
        if (mode == DV_POOL_WINDOWS) {
            for (int64_t ch = 0; ch < C; ch++)
                for (int ky = 0; ky < s; ky++)
                    for (int kx = 0; kx < s; kx++)
                        o[(ch * s + ky) * s + kx] = src[((oy * s + ky) * g + ox * s + kx) * C + ch];
            continue;
        }
        for (int64_t ch = 0; ch < C; ch++) {
            float acc = mode == DV_POOL_MAX ? -FLT_MAX : 0.0f;
            for (int ky = 0; ky < s; ky++)
                for (int kx = 0; kx < s; kx++) {
                    const float v = src[((oy * s + ky) * g + ox * s + kx) * C + ch];
                    if (mode == DV_POOL_MAX) acc = v > acc || isnan(v) ? v : acc;
                    else acc += v;
                }
            o[ch] = mode == DV_POOL_MAX ? acc : acc / (float)(s * s);
        }
    }
}
