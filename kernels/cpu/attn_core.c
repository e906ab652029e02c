// attn_core.c: the online-softmax attention block shared by attention.c and attention_kv.c.
//
// A block holds up to DV_ATT_MAXQ query vectors that read the same kv head (the GQA heads of one
// group, for a few consecutive query rows). Keys are visited in steps of DV_ATT_KB: each key row is
// scored against every query of the block while it is in L1, then each query's running max/sum is
// rescaled once per step and the value rows are accumulated. Memory traffic for K/V is thus divided
// by the block size, and no score matrix is ever materialized (the step buffer is nq x DV_ATT_KB).
// Decode has one query row: there the tasks are (kv head, key range), each block holding the whole
// GQA group, and the ranges' partial softmax sums are merged (dv_cpu_attn_tasks).
#include "kernels/cpu/cpu_ops.h"

#include "core/dv_error.h"
#include "kernels/cpu/bf16_split.h"
#include "kernels/dv_attn_mask.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>


size_t dv_cpu_attn_ws_floats(int64_t D) {
    const size_t Dp = (size_t)dv_cpu_attn_dpad(D);
    // q, acc, s, tile, then q16 (int16: half a float per element), qbf and wbf (two bf16 halves each)
    return (size_t)DV_ATT_MAXQ * (2 * Dp + DV_ATT_KB) + (size_t)DV_ATT_KB * Dp + (size_t)DV_ATT_MAXQ * Dp / 2 +
           (size_t)DV_ATT_MAXQ * (Dp + DV_ATT_KB);
}

void dv_cpu_attn_begin(dv_cpu_attn *a, float *ws, int nq, int64_t D) {
    DV_ASSERT(nq >= 1 && nq <= DV_ATT_MAXQ);
    const int64_t Dp = dv_cpu_attn_dpad(D);
    a->nq = nq;
    a->D = D;
    a->Dp = Dp;
    a->q = ws; // every array starts on a 64-byte boundary (Dp and DV_ATT_KB are multiples of 16)
    a->acc = ws + (size_t)DV_ATT_MAXQ * (size_t)Dp;
    a->s = ws + 2 * (size_t)DV_ATT_MAXQ * (size_t)Dp;
    a->tile = a->s + (size_t)DV_ATT_MAXQ * DV_ATT_KB;
    a->q16 = (int16_t *)(a->tile + (size_t)DV_ATT_KB * (size_t)Dp);
    a->q16_ready = 0;
    a->qbf = (uint16_t *)(a->q16 + (size_t)DV_ATT_MAXQ * (size_t)Dp);
    a->wbf = a->qbf + 2 * (size_t)DV_ATT_MAXQ * (size_t)Dp;
    a->qbf_ready = 0;
    memset(a->acc, 0, (size_t)nq * (size_t)Dp * sizeof(float));
    for (int i = 0; i < nq; i++) {
        a->m[i] = -INFINITY;
        a->l[i] = 0.0f;
    }
    a->k_lo = 0;
    a->k_hi = INT64_MAX;
    a->next = NULL;
}

// The step loop, once per instruction set: the plain-C reference (attn_rows.inc) built for the
// build's target (portable with DUOVID_NATIVE=OFF), and the AVX2 / AVX-512 copies (attn_simd.inc)
// built for theirs by #pragma GCC target, run only where the CPU has them (clang builds, such as the
// fuzz build, have the reference alone).
#define DV_ISA generic
#define DV_ISA_FMA DV_FMA
#include "kernels/cpu/attn_rows.inc"
#undef DV_ISA
#undef DV_ISA_FMA

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DV_ATTN_X86 1
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
#define DV_ISA avx2
#define DV_VW 8
#include "kernels/cpu/attn_simd.inc"
#undef DV_VW
#undef DV_ISA
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#define DV_ISA avx512
#define DV_VW 16
#include "kernels/cpu/attn_simd.inc"
#undef DV_VW
#undef DV_ISA
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")
#define DV_ISA avx512bf16
#define DV_VW 16
#define DV_ATT_BF16DP 1
#include "kernels/cpu/attn_simd.inc"
#undef DV_ATT_BF16DP
#undef DV_VW
#undef DV_ISA
#pragma GCC pop_options
#endif

typedef void (*attend_rows_fn)(dv_cpu_attn *a, const dv_cpu_kv_run *run, int64_t r0, int64_t r1,
                               dv_cpu_kv_next nx);
typedef struct attn_isa {
    const char *name;
    attend_rows_fn fn;
} attn_isa;
static const attn_isa isas[] = {
    {"generic", attend_rows_generic},
#ifdef DV_ATTN_X86
    {"avx2", attend_rows_avx2},
    {"avx512", attend_rows_avx512},
    {"avx512bf16", attend_rows_avx512bf16},
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
    if (!strcmp(isas[i].name, "avx512bf16")) return isa_supported(2) && __builtin_cpu_supports("avx512bf16");
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

int dv_cpu_bf16dp(void) { return !strcmp(isa_get()->name, "avx512bf16"); }

int dv_backend_cpu_attn_q16(dv_kv_type kt, int64_t D) { return strcmp(isa_get()->name, "generic") && DV_ATT_Q8I(kt, D); }

void dv_cpu_attn_run(dv_cpu_attn *a, const dv_cpu_kv_run *run) {
    // only the rows some query of the block can see (the sink part and the window part, disjoint)
    int64_t lo[2], hi[2];
    const int ni = dv_attn_mask_run(run->pos0, run->n, a->p_lo, a->p_hi, a->causal, a->sink, a->window, lo, hi);
    const attend_rows_fn fn = isa_get()->fn;
    int64_t l[2], h[2];
    for (int i = 0; i < ni; i++) { // this task's range
        l[i] = lo[i] > a->k_lo ? lo[i] : a->k_lo;
        h[i] = hi[i] < a->k_hi ? hi[i] : a->k_hi;
    }
    for (int i = 0; i < ni; i++) {
        if (l[i] >= h[i]) continue;
        // after this interval: the run's second one, else the caller's next run
        const dv_cpu_kv_next nx = i + 1 < ni && l[i + 1] < h[i + 1] ? (dv_cpu_kv_next){run, l[i + 1] - run->pos0}
                                                                     : (dv_cpu_kv_next){a->next, 0};
        fn(a, run, l[i] - run->pos0, h[i] - run->pos0, nx);
    }
}

void dv_cpu_attn_end(const dv_cpu_attn *a, float *const *out) {
    for (int i = 0; i < a->nq; i++) {
        const float inv = a->l[i] > 0 ? 1.0f / a->l[i] : 0.0f;
        const float *acc = a->acc + i * a->Dp;
        for (int64_t d = 0; d < a->D; d++) out[i][d] = acc[d] * inv;
    }
}

void dv_cpu_attn_plan(int64_t T, int64_t Hq, int64_t Hkv, int64_t n_pos, int n_threads, int64_t *qb, int64_t *hs,
                      int64_t *ns) {
    const int64_t group = Hq / Hkv;
    int64_t h = group;
    while (h > DV_ATT_MAXQ || group % h) h--; // largest divisor of group that fits a block
    int64_t b = DV_ATT_MAXQ / h;
    if (b > T) b = T > 0 ? T : 1;
    // too few blocks for the threads (decode): cut the keys into ranges first, which keeps every
    // K/V row read once per block; enough tasks that dynamic scheduling evens out the ranges'
    // unequal work (streaming heads see keys only near the start and the end)
    int64_t s = 1;
    const int64_t tasks0 = (T + b - 1) / b * Hkv * (group / h), want = 8 * (int64_t)n_threads;
    if (tasks0 < want && n_pos >= 2 * DV_ATT_SPLIT_MIN) {
        s = (want + tasks0 - 1) / tasks0;
        if (s > n_pos / DV_ATT_SPLIT_MIN) s = n_pos / DV_ATT_SPLIT_MIN;
    }
    // still too few (short contexts): fewer query rows, then fewer heads per block
    for (;;) {
        const int64_t tasks = (T + b - 1) / b * Hkv * (group / h) * s;
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
    *ns = s;
}

// One task's block: query rows t0 .. t0+nrows-1, heads h0 .. h0+hs-1 (kv head g), key range ks of ns.
typedef struct attn_task {
    int64_t t0, nrows, h0, g, ks;
} attn_task;

static attn_task task_of(int64_t task, int64_t T, int64_t Hkv, int64_t group, int64_t qb, int64_t hs, int64_t ns) {
    // causal rows near the end see the most keys: hand those out first
    const int64_t n_tb = (T + qb - 1) / qb, n_hsub = group / hs, per_tb = Hkv * n_hsub * ns;
    const int64_t tb = n_tb - 1 - task / per_tb, r = task % per_tb, g = r / (n_hsub * ns), hsub = r / ns % n_hsub;
    attn_task t = {tb * qb, 0, g * group + hsub * hs, g, r % ns};
    t.nrows = T - t.t0 < qb ? T - t.t0 : qb;
    return t;
}

void dv_cpu_attn_tasks(dv_backend *be, dv_tensor *out, const dv_tensor *q, int64_t Hkv, int64_t n_pos,
                       const dv_attn_params *p, dv_cpu_attn_keys_fn keys, const void *ctx) {
    const int64_t T = q->ne[0], Hq = q->ne[1], D = q->ne[2], Dp = dv_cpu_attn_dpad(D);
    if (T == 0) return;
    dv_cpu_ctx *c = be->ctx;
    const int nt = c->n_threads;
    const size_t ws_n = dv_cpu_attn_ws_floats(D);
    float *ws_all = dv_cpu_grow(&c->att_scratch, &c->att_scratch_cap, (size_t)nt * ws_n); // (nt, ws_n)
    const int64_t group = Hq / Hkv;
    int64_t qb, hs, ns;
    dv_cpu_attn_plan(T, Hq, Hkv, n_pos, nt, &qb, &hs, &ns);
    const int64_t n_tasks = (T + qb - 1) / qb * Hkv * (group / hs) * ns;
    const int64_t span = (n_pos + ns - 1) / ns; // key positions per range
    // key ranges: each task's (m, l, acc) -> part (n_tasks, DV_ATT_MAXQ * (Dp + 2)), merged below
    const size_t part_n = (size_t)DV_ATT_MAXQ * (size_t)(Dp + 2);
    float *part = ns > 1 ? dv_cpu_grow(&c->att_part, &c->att_part_cap, (size_t)n_tasks * part_n) : NULL;

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t task = 0; task < n_tasks; task++) {
        const attn_task tk = task_of(task, T, Hkv, group, qb, hs, ns);
        dv_cpu_attn a;
        dv_cpu_attn_begin(&a, ws_all + (size_t)omp_get_thread_num() * ws_n, (int)(tk.nrows * hs), D);
        float *outp[DV_ATT_MAXQ];
        for (int64_t r = 0; r < tk.nrows; r++)
            for (int64_t hh = 0; hh < hs; hh++) {
                const int64_t i = r * hs + hh, t = tk.t0 + r, h = tk.h0 + hh;
                const float *qv = (const float *)((const char *)q->data + (size_t)t * q->nb[0] + (size_t)h * q->nb[1]);
                float *qi = a.q + i * Dp;
                for (int64_t d = 0; d < D; d++) qi[d] = qv[d] * p->scale;
                for (int64_t d = D; d < Dp; d++) qi[d] = 0.0f;
                a.pos[i] = p->q_pos0 + t;
                outp[i] = (float *)((char *)out->data + (size_t)t * out->nb[0] + (size_t)h * out->nb[1]);
            }
        a.p_lo = p->q_pos0 + tk.t0;
        a.p_hi = p->q_pos0 + tk.t0 + tk.nrows - 1;
        if (ns > 1) {
            a.k_lo = tk.ks * span;
            a.k_hi = tk.ks == ns - 1 ? INT64_MAX : (tk.ks + 1) * span;
        }
        keys(&a, tk.g, ctx);
        if (ns == 1) {
            dv_cpu_attn_end(&a, outp);
            continue;
        }
        float *pt = part + (size_t)task * part_n; // m (MAXQ), l (MAXQ), acc (MAXQ, Dp)
        for (int i = 0; i < a.nq; i++) {
            pt[i] = a.m[i];
            pt[DV_ATT_MAXQ + i] = a.l[i];
        }
        memcpy(pt + 2 * DV_ATT_MAXQ, a.acc, (size_t)a.nq * (size_t)Dp * sizeof(float));
    }
    if (ns == 1) return;
    // merge the ranges of each block: m = max m_r, l = sum l_r e^(m_r - m), out = sum acc_r e^(m_r - m) / l
    // (a few blocks of one query row in decode: on this thread, no second parallel region to wait for)
    const int64_t n_blk = n_tasks / ns;
#pragma omp parallel for schedule(static) num_threads(n_blk * hs * qb >= 64 ? nt : 1)
    for (int64_t blk = 0; blk < n_blk; blk++) {
        const attn_task tk = task_of(blk * ns, T, Hkv, group, qb, hs, ns);
        for (int64_t r = 0; r < tk.nrows; r++)
            for (int64_t hh = 0; hh < hs; hh++) {
                const int64_t i = r * hs + hh;
                float *o = (float *)((char *)out->data + (size_t)(tk.t0 + r) * out->nb[0] +
                                     (size_t)(tk.h0 + hh) * out->nb[1]);
                const float *pb = part + (size_t)blk * (size_t)ns * part_n;
                float m = -INFINITY, l = 0.0f;
                for (int64_t k = 0; k < ns; k++) m = pb[k * part_n + i] > m ? pb[k * part_n + i] : m;
                for (int64_t d = 0; d < D; d++) o[d] = 0.0f;
                if (m == -INFINITY) continue; // no key visible in any range
                for (int64_t k = 0; k < ns; k++) {
                    const float *pk = pb + k * part_n;
                    if (pk[i] == -INFINITY) continue;
                    const float w = expf(pk[i] - m), *acc = pk + 2 * DV_ATT_MAXQ + i * Dp;
                    l += pk[DV_ATT_MAXQ + i] * w;
                    for (int64_t d = 0; d < D; d++) o[d] += w * acc[d];
                }
                const float inv = l > 0 ? 1.0f / l : 0.0f;
                for (int64_t d = 0; d < D; d++) o[d] *= inv;
            }
    }
}
