// pool.c: the CPU pool2d op: average / max pooling of square token grids, or the gathering of a
// stride-s Conv2d's windows (dv_backend.h).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"

#include <float.h>
#include <math.h>
#include <string.h>

void dv_cpu_pool2d(dv_backend *be, dv_tensor *y, const dv_tensor *x, int g, int s, dv_pool mode) {
    DV_ASSERT(x->dtype == DV_DTYPE_F32 && y->dtype == DV_DTYPE_F32 && dv_tensor_is_contiguous(x) &&
              dv_tensor_is_contiguous(y) && g >= 1 && s >= 1 && s <= g && x->ne[0] % ((int64_t)g * g) == 0);
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
