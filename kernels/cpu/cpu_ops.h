// cpu_ops.h: the CPU backend's op functions (one .c file per op family), its private state and the
// small helpers they share. Internal to kernels/cpu/.
//
// Threading: every parallel region is `#pragma omp parallel for num_threads(DV_CPU_NT(be))` (or
// DV_CPU_NT_FOR(be, work): one thread for small work), so the backend's thread count holds whichever
// thread calls the op. OpenBLAS runs single-threaded inside
// our threads (see cpu_backend.c).
#ifndef DV_CPU_OPS_H
#define DV_CPU_OPS_H

#include "kernels/dv_backend.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dv_cpu_ctx {
    int n_threads;
    // bf16/f16 weight tiles converted for sgemm: (n_threads, tile, K) F32, grown rarely, owned
    float *mm_scratch;
    size_t mm_scratch_cap; // in floats
    // attention workspaces: (n_threads, att_ws_floats) F32, and the partial results of key-range
    // tasks (n_tasks, DV_ATT_MAXQ * (Dp + 2)) F32; grown rarely, owned
    float *att_scratch, *att_part;
    size_t att_scratch_cap, att_part_cap; // in floats
    // Gated DeltaNet: conv weights widened to F32 (C, K), and the delta rule's per-thread chunk
    // workspaces (n_threads, per-thread floats); grown rarely, owned
    float *lin_scratch, *gdn_scratch;
    size_t lin_scratch_cap, gdn_scratch_cap; // in floats
} dv_cpu_ctx;

#define DV_CPU_NT(be) (((dv_cpu_ctx *)(be)->ctx)->n_threads)

// Threads for a region of about `work` element operations: one below DV_CPU_MIN_WORK. A fork/join
// wakes every thread and waits for the slowest, which costs more than a decode row of a norm, an add
// or a rope; on a loaded machine each one can wait a whole scheduler slice for a descheduled thread.
#define DV_CPU_MIN_WORK 32768
#define DV_CPU_NT_FOR(be, work) ((int64_t)(work) >= DV_CPU_MIN_WORK ? DV_CPU_NT(be) : 1)

// Returns a 64-byte aligned buffer of at least n floats in *buf (reallocated only when it must grow;
// old contents are dropped). Aborts on out-of-memory: ops have no error path, and the sizes involved
// are a few MiB bounded by the model shape, reached at warm-up.
float *dv_cpu_grow(float **buf, size_t *cap, size_t n);

// a * b + c as one fused instruction where the target has FMA: ISO C mode (-std=c17) turns off
// gcc's contraction of a * b + c, and without hardware FMA fmaf() would be a slow libm call.
#ifdef __FMA__
#define DV_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define DV_FMA(a, b, c) ((a) * (b) + (c))
#endif

// Portable builds (DUOVID_NATIVE=OFF, the default: a binary built on an AVX-512 host runs on an
// AVX2-only one): the hot loops left to the vectorizer (gemv's dot products, the weight widening,
// the Gated DeltaNet heads) are compiled once per ISA level and picked at load time by the loader
// (gcc target_clones: AVX-512, AVX2 + FMA, baseline). A build for the host's ISA (-march=native),
// clang builds (the fuzz build) and sanitizer builds compile them once. Attention has its own
// run-time choice (attn_core.c). DV_FMA stays a*b+c in these copies: gemv is memory-bound.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX2__) && \
    !defined(__SANITIZE_ADDRESS__)
#define DV_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DV_CPU_CLONES
#endif

// Row i of a tensor whose dim 0 is the row (honours the row stride nb[0]).
static inline float *dv_cpu_row(const dv_tensor *t, int64_t i) {
    return (float *)((char *)t->data + (size_t)i * t->nb[0]);
}

static inline int dv_cpu_is_float(dv_dtype t) {
    return t == DV_DTYPE_F32 || t == DV_DTYPE_F16 || t == DV_DTYPE_BF16;
}

// Converts n contiguous elements of an F32/F16/BF16 buffer to F32 (the loops vectorize).
void dv_cpu_to_f32(float *dst, const void *src, dv_dtype dtype, size_t n);

// ---- attention core (attn_core.c), shared by attention.c and attention_kv.c ----
// A block of up to DV_ATT_MAXQ query vectors, all reading one kv head, attends to runs of keys with
// an online softmax: every key row loaded is scored against all of them (GQA heads of one group and
// neighbouring query rows share each load), and keys no query of the block can see are never scored.
// A block may cover only a range of key positions [k_lo, k_hi) (decode: the keys of one kv head are
// split over the threads); its partial (m, l, acc) are then merged with the other ranges'.
#define DV_ATT_MAXQ 16        // query vectors per block
#define DV_ATT_KB 64          // keys scored per online-softmax step
#define DV_ATT_SPLIT_MIN 512  // fewest key positions a key-range task gets

// Head dim D padded to whole 16-float vectors: the row stride of every workspace array (the pad
// lanes hold zeros, so the vector loops need no tails).
static inline int64_t dv_cpu_attn_dpad(int64_t D) { return (D + 15) & ~(int64_t)15; }

// The vector step loops (attn_simd.inc: AVX2, AVX-512) score keys of type kt in integers against
// the queries rounded to int16 (a scale per query) when this holds; the plain-C reference
// (attn_rows.inc) always scores in F32. D <= DV_ATT_Q8I_MAXD keeps the integer dot within int32.
#define DV_ATT_Q8I_MAXD 512
#define DV_ATT_Q8I(kt, D) ((kt) == DV_KV_Q8 && (D) % 32 == 0 && (D) <= DV_ATT_Q8I_MAXD)
// 1 when the instruction set chosen (dv_backend_cpu_isa) is "avx512bf16": the attention step loop
// and the single-row bf16 matmul then use bf16 dot products (attn_simd.inc, matmul.c).
int dv_cpu_bf16dp(void);
// The AVX-512 BF16 step loop reads rows of type kt (keys or values) in bf16 dot products, without
// decoding them to F32, when this holds (D <= DV_ATT_Q8I_MAXD: the shared zero row's size).
#define DV_ATT_BFDP(t, D) ((t) == DV_KV_BF16 && (D) % 32 == 0 && (D) <= DV_ATT_Q8I_MAXD)
// ... and value rows of type t so, q8 too (their int8 are bf16 exactly; the scale goes to the weights).
#define DV_ATT_BFDP_V(t, D) (((t) == DV_KV_BF16 || (t) == DV_KV_Q8) && (D) % 32 == 0 && (D) <= DV_ATT_Q8I_MAXD)

typedef struct dv_cpu_kv_run dv_cpu_kv_run;

typedef struct dv_cpu_attn {
    int nq;                     // query vectors in the block
    int64_t D, Dp;              // head dim, and padded (dv_cpu_attn_dpad)
    float *q;                   // (nq, Dp) queries multiplied by the softmax scale, zero pad (workspace)
    float *acc;                 // (nq, Dp) running sum of exp(s - m) * v (workspace)
    float *s;                   // (nq, DV_ATT_KB) scores, then weights, of the current key step (workspace)
    float *tile;                // (DV_ATT_KB, Dp) one step's key rows, then its value rows, decoded to
                                // F32 (workspace)
    int16_t *q16;               // (nq, Dp) q as int16 with a scale per query, q ~ q16 * q16_scale
    float q16_scale[DV_ATT_MAXQ]; // (workspace): the AVX2 step loop scores q8 keys in integers; set
    int q16_ready;              // at the block's first q8 run, cleared by dv_cpu_attn_begin
    uint16_t *qbf;              // (2, DV_ATT_MAXQ, Dp) q as bf16 halves, q ~ hi + lo (workspace; the
    int qbf_ready;              // AVX-512 BF16 loop, at the block's first bf16 key run)
    uint16_t *wbf;              // (nq, DV_ATT_KB / 2, 2, 2) a step's weights as bf16 halves: per query and
                                // key pair, the pair's two hi halves, then its two lo halves (workspace)
    float m[DV_ATT_MAXQ];       // running max score per query
    float l[DV_ATT_MAXQ];       // running sum of exp(s - m) per query
    int64_t pos[DV_ATT_MAXQ];   // absolute position per query
    int64_t p_lo, p_hi;         // min / max of pos
    int64_t k_lo, k_hi;         // key positions this block attends to: [k_lo, k_hi)
    int causal;                 // the mask, as kernels/dv_attn_mask.h states it: key j visible to query p
    int64_t sink, window;       // iff dv_attn_mask_visible(p, j, causal, sink, window)
    const dv_cpu_kv_run *next;  // the run the caller attends to after the current one, or NULL: its
                                // first rows are prefetched during the current run's last step
} dv_cpu_attn;

// A run of keys/values at positions pos0 .. pos0+n-1 in their stored types: row r of K at
// (char *)k + r * k_stride (bytes), V likewise (dv_kv_seg's fields; f32 strides multiples of 4).
struct dv_cpu_kv_run {
    const void *k, *v;
    int64_t pos0, n, k_stride, v_stride;
    dv_kv_type kt, vt;
};

// Rows the step loop prefetches after its range: rows r0 .. of run (NULL: nothing).
typedef struct dv_cpu_kv_next {
    const dv_cpu_kv_run *run;
    int64_t r0;
} dv_cpu_kv_next;

// Workspace floats one block needs for head dim D.
size_t dv_cpu_attn_ws_floats(int64_t D);
// Starts a block over workspace ws (64-byte aligned): sets the pointers, clears the running state,
// opens the whole key range. The caller then fills q (already scaled, rows of Dp with the pad
// zeroed), pos, p_lo/p_hi and the mask fields.
void dv_cpu_attn_begin(dv_cpu_attn *a, float *ws, int nq, int64_t D);
// Attends to the keys of a run (only the rows some query of the block can see are read).
void dv_cpu_attn_run(dv_cpu_attn *a, const dv_cpu_kv_run *run);
// out[i] (D) = acc_i / l_i (0 for a query that saw no key).
void dv_cpu_attn_end(const dv_cpu_attn *a, float *const *out);
// Splits Hq query heads in groups of Hq/Hkv over tasks of (query rows, kv head, head subset, key
// range) for n_threads, keys at positions 0 .. n_pos-1: *qb query rows and *hs heads of one group
// per task (qb * hs <= DV_ATT_MAXQ), the positions cut in *ns ranges. Few query rows (decode) split
// the keys rather than the group, so each stored K/V row is still read once per group.
void dv_cpu_attn_plan(int64_t T, int64_t Hq, int64_t Hkv, int64_t n_pos, int n_threads, int64_t *qb, int64_t *hs,
                      int64_t *ns);
// The parallel driver both attention ops share: splits out (T, Hq, D) / q (T, Hq, D) into blocks
// (dv_cpu_attn_plan; keys at positions below n_pos), loads each block's scaled queries at positions
// q_pos0 + t, calls keys(a, g, ctx) to set the mask fields and attend to kv head g's keys, and writes
// the outputs (merging the key ranges' partial softmax sums).
typedef void (*dv_cpu_attn_keys_fn)(dv_cpu_attn *a, int64_t g, const void *ctx);
void dv_cpu_attn_tasks(dv_backend *be, dv_tensor *out, const dv_tensor *q, int64_t Hkv, int64_t n_pos,
                       const dv_attn_params *p, dv_cpu_attn_keys_fn keys, const void *ctx);

void dv_cpu_matmul(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *bias);
void dv_cpu_rms_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, float eps);
void dv_cpu_layer_norm(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *b,
                       float eps);
void dv_cpu_rope(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope);
void dv_cpu_rope_sections(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope,
                          const dv_rope_sec *sec);
void dv_cpu_act(dv_backend *be, dv_tensor *y, const dv_tensor *x, dv_act act);
void dv_cpu_swiglu(dv_backend *be, dv_tensor *y, const dv_tensor *gate, const dv_tensor *up);
void dv_cpu_attention(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k, const dv_tensor *v,
                      const dv_attn_params *p);
void dv_cpu_attention_kv(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                         const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p);
void dv_cpu_embed(dv_backend *be, dv_tensor *y, const dv_tensor *table, const dv_tensor *ids);
void dv_cpu_add(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b);
void dv_cpu_conv1d_causal(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, dv_tensor *state);
void dv_cpu_gated_delta_rule(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k,
                             const dv_tensor *v, const dv_tensor *a, const dv_tensor *b, const dv_tensor *a_log,
                             const dv_tensor *dt_bias, dv_tensor *state, int chunk);
void dv_cpu_mul_sigmoid(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *gate);
void dv_cpu_gather_sum(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *idx, const dv_tensor *w);
void dv_cpu_pool2d(dv_backend *be, dv_tensor *y, const dv_tensor *x, int grid, int stride, dv_pool mode);

#endif
