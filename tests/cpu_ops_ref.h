// cpu_ops_ref.h: helpers shared by tests/test_cpu_*.c: NaN poisoning, random weights in a dtype
// together with their exact values, bit-exact decoding of bf16/f16 written independently of
// core/dv_dtype.h, and the two CPU backends (1 and 2 threads) every test runs on.
#ifndef DV_CPU_OPS_REF_H
#define DV_CPU_OPS_REF_H

#include "core/dv_error.h"
#include "kernels/dv_backend.h"
#include "tests/dv_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t ref_seed = 12345;

// Fill with NaN so any element an op forgets to write fails the comparison.
static inline void ref_poison(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

static inline void *ref_xmalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1); // zeroed: nothing reads indeterminate bytes
    if (!p) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return p;
}

// bf16 bits -> value: the top 16 bits of an IEEE single.
static inline double ref_bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// f16 bits -> value, from the IEEE half layout (1 sign, 5 exponent, 10 mantissa bits).
static inline double ref_f16_value(uint16_t h) {
    const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

// Random (n) weights in [lo, hi) stored as `dt`; exact[i] receives the stored value. The f16/bf16
// bits come from the library's rounding, but the reference only uses the decoded exact values.
static inline void *ref_make_weights(dv_dtype dt, size_t n, double *exact, float lo, float hi) {
    float *f = ref_xmalloc(n * sizeof *f);
    dv_test_rand(f, n, lo, hi, &ref_seed);
    void *w = ref_xmalloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        if (dt == DV_DTYPE_F32) {
            ((float *)w)[i] = f[i];
            exact[i] = f[i];
        } else if (dt == DV_DTYPE_BF16) {
            uint16_t h = dv_f32_to_bf16(f[i]);
            ((uint16_t *)w)[i] = h;
            exact[i] = ref_bf16_value(h);
        } else {
            uint16_t h = dv_f32_to_f16(f[i]);
            ((uint16_t *)w)[i] = h;
            exact[i] = ref_f16_value(h);
        }
    }
    free(f);
    return w;
}

// Random F32 values with their double copies.
static inline float *ref_rand_f32(size_t n, float lo, float hi, double *exact) {
    float *f = ref_xmalloc(n * sizeof *f);
    dv_test_rand(f, n, lo, hi, &ref_seed);
    if (exact)
        for (size_t i = 0; i < n; i++) exact[i] = f[i];
    return f;
}

// The CPU backends under test: 1 thread and 2 threads.
static dv_backend *ref_backends[2];
static const int ref_threads[2] = {1, 2};

static inline int ref_backends_init(void) {
    for (int i = 0; i < 2; i++) {
        ref_backends[i] = dv_backend_cpu_init(ref_threads[i]);
        if (!ref_backends[i]) {
            fprintf(stderr, "dv_backend_cpu_init: %s\n", dv_error_message());
            return -1;
        }
    }
    return 0;
}

static inline void ref_backends_free(void) {
    for (int i = 0; i < 2; i++) dv_backend_free(ref_backends[i]);
}

#endif
