// attn_core.c: the online-softmax attention block shared by attention.c and attention_kv.c.
//
// A block holds up to DV_ATT_MAXQ query vectors that read the same kv head (the GQA heads of one
// group, for a few consecutive query rows). Keys are visited in steps of DV_ATT_KB: each key row is
// scored against every query of the block while it is in L1, then each query's running max/sum is
// rescaled once per step and the value rows are accumulated. Memory traffic for K/V is thus divided
// by the block size, and no score matrix is ever materialized (the step buffer is nq x DV_ATT_KB).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"
#include "kernels/dv_attn_mask.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>


size_t dv_cpu_attn_ws_floats(int64_t D) {
    return (size_t)DV_ATT_MAXQ * (size_t)(2 * D + DV_ATT_KB) + (size_t)(DV_ATT_KB + 1) * (size_t)D;
}

void dv_cpu_attn_begin(dv_cpu_attn *a, float *ws, int nq, int64_t D) {
    DV_ASSERT(nq >= 1 && nq <= DV_ATT_MAXQ);
    a->nq = nq;
    a->D = D;
    a->q = ws;
    a->acc = ws + (size_t)DV_ATT_MAXQ * (size_t)D;
    a->s = ws + 2 * (size_t)DV_ATT_MAXQ * (size_t)D;
    a->tile = a->s + (size_t)DV_ATT_MAXQ * DV_ATT_KB;
    a->row = a->tile + (size_t)DV_ATT_KB * (size_t)D;
    memset(a->acc, 0, (size_t)nq * (size_t)D * sizeof(float));
    for (int i = 0; i < nq; i++) {
        a->m[i] = -INFINITY;
        a->l[i] = 0.0f;
    }
}

// The step loop, once per instruction set (attn_rows.inc); the generic copy is built for the build's
// target (portable with DUOVID_NATIVE=OFF), the others only run where the CPU has them.
#define DV_ISA generic
#define DV_ISA_FMA DV_FMA
#include "kernels/cpu/attn_rows.inc"
#undef DV_ISA
#undef DV_ISA_FMA

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DV_ATTN_X86 1
#define DV_ISA_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define DV_ISA avx2
#include "kernels/cpu/attn_rows.inc"
#undef DV_ISA
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#define DV_ISA avx512
#include "kernels/cpu/attn_rows.inc"
#undef DV_ISA
#pragma GCC pop_options
#undef DV_ISA_FMA
#endif

typedef void (*attend_rows_fn)(dv_cpu_attn *a, const dv_cpu_kv_run *run, int64_t r0, int64_t r1);
typedef struct attn_isa {
    const char *name;
    attend_rows_fn fn;
} attn_isa;
static const attn_isa isas[] = {
    {"generic", attend_rows_generic},
#ifdef DV_ATTN_X86
    {"avx2", attend_rows_avx2},
    {"avx512", attend_rows_avx512},
#endif
};
static int isa_chosen = -1; // index into isas; set once (first use) or by dv_backend_cpu_set_isa

static int isa_supported(int i) {
#ifdef DV_ATTN_X86
    __builtin_cpu_init();
    if (!strcmp(isas[i].name, "avx2"))
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    if (!strcmp(isas[i].name, "avx512"))
        return isa_supported(1) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
    return i == 0;
}

int dv_backend_cpu_set_isa(const char *name) {
    for (int i = 0; i < (int)(sizeof isas / sizeof isas[0]); i++)
        if (!strcmp(isas[i].name, name) && isa_supported(i)) {
            __atomic_store_n(&isa_chosen, i, __ATOMIC_RELAXED);
            return 0;
        }
    return -1;
}

static const attn_isa *isa_get(void) {
    int i = __atomic_load_n(&isa_chosen, __ATOMIC_RELAXED);
    if (i < 0) {
        const char *env = getenv("DUOVID_CPU_ISA");
        i = 0;
        for (int c = 0; c < (int)(sizeof isas / sizeof isas[0]); c++)
            if (isa_supported(c) && (!env || !*env || !strcmp(env, isas[c].name))) i = c;
        if (env && *env && strcmp(env, isas[i].name)) i = 0; // asked for one the CPU lacks: generic
        __atomic_store_n(&isa_chosen, i, __ATOMIC_RELAXED);
    }
    return &isas[i];
}

const char *dv_backend_cpu_isa(void) { return isa_get()->name; }

void dv_cpu_attn_run(dv_cpu_attn *a, const dv_cpu_kv_run *run) {
    // only the rows some query of the block can see (the sink part and the window part, disjoint)
    int64_t lo[2], hi[2];
    const int ni = dv_attn_mask_run(run->pos0, run->n, a->p_lo, a->p_hi, a->causal, a->sink, a->window, lo, hi);
    const attend_rows_fn fn = isa_get()->fn;
    for (int i = 0; i < ni; i++) fn(a, run, lo[i] - run->pos0, hi[i] - run->pos0);
}

void dv_cpu_attn_end(const dv_cpu_attn *a, float *const *out) {
    for (int i = 0; i < a->nq; i++) {
        const float inv = a->l[i] > 0 ? 1.0f / a->l[i] : 0.0f;
        const float *acc = a->acc + i * a->D;
        for (int64_t d = 0; d < a->D; d++) out[i][d] = acc[d] * inv;
    }
}

void dv_cpu_attn_plan(int64_t T, int64_t Hq, int64_t Hkv, int n_threads, int64_t *qb, int64_t *hs) {
    const int64_t group = Hq / Hkv;
    int64_t h = group;
    while (h > DV_ATT_MAXQ || group % h) h--; // largest divisor of group that fits a block
    int64_t b = DV_ATT_MAXQ / h;
    if (b > T) b = T > 0 ? T : 1;
    // enough tasks to keep every thread busy (dynamic scheduling evens out causal imbalance)
    for (;;) {
        const int64_t tasks = (T + b - 1) / b * Hkv * (group / h);
        if (tasks >= 4 * (int64_t)n_threads) break;
        if (b > 1) {
            b = (b + 1) / 2;
        } else if (h > 1) {
            do h--;
            while (group % h);
        } else {
            break;
        }
    }
    *qb = b;
    *hs = h;
}

void dv_cpu_attn_tasks(dv_backend *be, dv_tensor *out, const dv_tensor *q, int64_t Hkv, const dv_attn_params *p,
                       dv_cpu_attn_keys_fn keys, const void *ctx) {
    const int64_t T = q->ne[0], Hq = q->ne[1], D = q->ne[2];
    if (T == 0) return;
    dv_cpu_ctx *c = be->ctx;
    const int nt = c->n_threads;
    const size_t ws_n = dv_cpu_attn_ws_floats(D);
    float *ws_all = dv_cpu_grow(&c->att_scratch, &c->att_scratch_cap, (size_t)nt * ws_n); // (nt, ws_n)
    const int64_t group = Hq / Hkv;
    int64_t qb, hs;
    dv_cpu_attn_plan(T, Hq, Hkv, nt, &qb, &hs);
    const int64_t n_tb = (T + qb - 1) / qb, n_hsub = group / hs, n_tasks = n_tb * Hkv * n_hsub;

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t task = 0; task < n_tasks; task++) {
        // causal rows near the end see the most keys: hand those out first
        const int64_t tb = n_tb - 1 - task / (Hkv * n_hsub), g = task / n_hsub % Hkv, hsub = task % n_hsub;
        const int64_t t0 = tb * qb, nrows = T - t0 < qb ? T - t0 : qb, h0 = g * group + hsub * hs;
        dv_cpu_attn a;
        dv_cpu_attn_begin(&a, ws_all + (size_t)omp_get_thread_num() * ws_n, (int)(nrows * hs), D);
        float *outp[DV_ATT_MAXQ];
        for (int64_t r = 0; r < nrows; r++)
            for (int64_t hh = 0; hh < hs; hh++) {
                const int64_t i = r * hs + hh, t = t0 + r, h = h0 + hh;
                const float *qv = (const float *)((const char *)q->data + (size_t)t * q->nb[0] + (size_t)h * q->nb[1]);
                for (int64_t d = 0; d < D; d++) a.q[i * D + d] = qv[d] * p->scale;
                a.pos[i] = p->q_pos0 + t;
                outp[i] = (float *)((char *)out->data + (size_t)t * out->nb[0] + (size_t)h * out->nb[1]);
            }
        a.p_lo = p->q_pos0 + t0;
        a.p_hi = p->q_pos0 + t0 + nrows - 1;
        keys(&a, g, ctx);
        dv_cpu_attn_end(&a, outp);
    }
}
