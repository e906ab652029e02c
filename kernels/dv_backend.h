// dv_backend.h: the compute backend interface, a small vtable in the ggml style.
//
// The CPU backend (kernels/cpu) implements every op and is the reference; the CUDA backend
// (kernels/cuda) fills the same table. A NULL entry means "not supported by this backend": the op
// test reports it as skipped. Ops assert their preconditions (dtype, shape, contiguity) and return
// nothing; device faults are sticky and reported by synchronize(). All tensors passed to one op live
// on that backend's device. Activations are F32 unless an op says otherwise; weights (`w`, `table`)
// may be F32, F16 or BF16 and are converted on the fly, accumulating in F32.
#ifndef DV_BACKEND_H
#define DV_BACKEND_H

#include "kernels/dv_attn_mask.h"
#include "kernels/dv_kv_type.h"
#include "kernels/dv_tensor.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dv_act {
    DV_ACT_SILU = 0,   // x * sigmoid(x)
    DV_ACT_GELU_ERF,   // 0.5 x (1 + erf(x / sqrt 2))          (HF "gelu")
    DV_ACT_GELU_TANH,  // 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))  ("gelu_pytorch_tanh")
    DV_ACT_QUICK_GELU, // x * sigmoid(1.702 x)                  (CLIP "quick_gelu")
    DV_ACT_COUNT
} dv_act;

// Pooling of square token grids (LLaVA-NeXT-Video's vision_resampler): kernel = stride, no padding;
// or LLaVA-OneVision's bilinear downscale of each frame's grid.
typedef enum dv_pool {
    DV_POOL_AVG = 0,  // nn.AvgPool2d
    DV_POOL_MAX,      // nn.MaxPool2d (a NaN in the window wins, as in torch)
    DV_POOL_WINDOWS,  // the windows of a stride-s Conv2d, gathered for a matmul with its (O, C*s*s) kernel
    DV_POOL_BILINEAR, // F.interpolate(size = ceil(g / s), mode "bilinear", align_corners False)
} dv_pool;

// Rotary embedding as Hugging Face Llama applies it ("rotate_half": element i pairs with i + d/2).
// inv_freq already includes rope_scaling (linear: divided by factor; llama3: the banded rule; yarn:
// the ramp between interpolated and extrapolated frequencies; dynamic: a larger base); attn_factor
// scales cos/sin as HF's attention_scaling does (yarn's attention factor; 1 for the other types).
#define DV_ROPE_MAX_HALF 512
typedef struct dv_rope {
    int head_dim;                      // rotary dim == head dim
    float attn_factor;                 // multiplies cos and sin
    float inv_freq[DV_ROPE_MAX_HALF];  // (head_dim / 2)
} dv_rope;

// Multi-section rotary (Qwen-VL): frequency i takes its position from row sec[i] of a (n_sec, T)
// position table. M-RoPE gives the LLM's frequencies to t / h / w in consecutive sections (Qwen2-VL,
// Qwen2.5-VL) or interleaved (Qwen3-VL); the vision towers' 2-D rotary gives the first half to the
// patch row and the second to its column. Filled by dv_rope_sec_* (kernels/backend.c).
#define DV_ROPE_MAX_SEC 4
typedef struct dv_rope_sec {
    int n_sec;                       // rows of the position table, 1 .. DV_ROPE_MAX_SEC
    uint8_t sec[DV_ROPE_MAX_HALF];   // (head_dim / 2) row index per frequency
} dv_rope_sec;

// Attention parameters: query row i sits at absolute position q_pos0 + i; key j at position j.
// causal: key j is visible to query i iff j <= q_pos0 + i. Non-causal: all keys visible (ViT).
typedef struct dv_attn_params {
    float scale;    // usually 1/sqrt(head_dim)
    int causal;
    int64_t q_pos0;
} dv_attn_params;

// A run of cached keys/values of ONE kv head at consecutive positions pos0 .. pos0+n-1: key row i
// at (char *)k + i * k_stride (bytes), stored as kt (kernels/dv_kv_type.h: f32, bf16, f16, q8, q4),
// value rows likewise. A KV cache hands attention_kv a list of these per kv head (pages of a
// retrieval head; sink + ring pieces of a streaming head); kernels read the stored type directly.
typedef struct dv_kv_seg {
    const void *k, *v;
    int64_t pos0, n;
    int64_t k_stride, v_stride; // bytes between rows
    dv_kv_type kt, vt;
} dv_kv_seg;

#ifdef __CUDACC__
#define DV_HOST_DEVICE __host__ __device__
#else
#define DV_HOST_DEVICE
#endif

// Where a KV cache stores keys of one kv head, whatever its length: a block of `cap` rows (row i at
// k + i * k_stride bytes, V likewise) holding positions pos0 .. pos0+cap-1 (a page, the sink), or with
// ring = 1 the last positions >= pos0 of the sequence, position q at row (q - pos0) % cap.
typedef struct dv_kv_block {
    const void *k, *v;
    int64_t pos0, cap, k_stride, v_stride;
    int ring;
    dv_kv_type kt, vt;
} dv_kv_block;

// The segments of block b that hold positions < len, in position order: at most two (a wrapped
// ring). The one rule for the host's views (llm/kv_cache.c) and a device's key tables (kernels/cuda).
static inline DV_HOST_DEVICE int dv_kv_block_segs(const dv_kv_block *b, int64_t len, dv_kv_seg *out) {
    const char *k = (const char *)b->k, *v = (const char *)b->v;
    if (!b->ring) {
        const int64_t n = len - b->pos0 < b->cap ? len - b->pos0 : b->cap;
        if (n <= 0) return 0;
        const dv_kv_seg s0 = {k, v, b->pos0, n, b->k_stride, b->v_stride, b->kt, b->vt};
        out[0] = s0;
        return 1;
    }
    const int64_t a = dv_attn_mask_ring_start(len, b->pos0, b->cap); // the ring holds [a, len)
    if (len <= a) return 0;
    const int64_t i0 = (a - b->pos0) % b->cap, first = len - a < b->cap - i0 ? len - a : b->cap - i0;
    const dv_kv_seg s0 = {k + i0 * b->k_stride, v + i0 * b->v_stride, a, first, b->k_stride, b->v_stride, b->kt, b->vt};
    out[0] = s0;
    if (len - a == first) return 1;
    const dv_kv_seg s1 = {k, v, a + first, len - a - first, b->k_stride, b->v_stride, b->kt, b->vt};
    out[1] = s1;
    return 2;
}

// What one kv head sees: its cached segments (all at positions < q_pos0), then the chunk's own new
// keys causally. window > 0 adds the streaming mask: a key at position j is visible to the query at
// position p only if j < sink or p - j <= window (the `window` keys before p, and p itself); the
// rule is kernels/dv_attn_mask.h's dv_attn_mask_visible, which every kernel uses.
// Optionally (blocks != NULL, filled by a KV cache) also the head's storage as blocks, whose segments
// at length q_pos0 are exactly segs: a device backend may keep its key table for them on the device
// and refresh it only when layout_gen changes (unique in the process for one layer's blocks and key:
// a new page makes a new one), instead of building and uploading a table per call.
typedef struct dv_kv_head_view {
    const dv_kv_seg *segs;
    int n_segs;
    int64_t sink, window;
    const dv_kv_block *blocks; // (n_blocks) or NULL
    int n_blocks;
    uint64_t layout_gen;       // the same for every head of one call
} dv_kv_head_view;

typedef struct dv_backend dv_backend;

typedef struct dv_backend_ops {
    const char *name;
    // ---- memory: device buffers (the CPU backend uses aligned host memory) ----
    void *(*alloc)(dv_backend *be, size_t nbytes); // NULL on failure (message set)
    void (*free)(dv_backend *be, void *ptr);
    // Call these through dv_backend_upload / _upload_async / _download (below), which count the bytes.
    // upload: returns once src_host may be reused or freed (the copy is done, or staged by the driver).
    // download: returns once dst_host holds the data (it waits for the queued work that produces it).
    int (*upload)(dv_backend *be, void *dst_dev, const void *src_host, size_t nbytes);
    int (*download)(dv_backend *be, void *dst_host, const void *src_dev, size_t nbytes);
    int (*copy)(dv_backend *be, void *dst_dev, const void *src_dev, size_t nbytes); // device to device
    int (*synchronize)(dv_backend *be); // waits for queued work; returns a sticky device error
    void (*destroy)(dv_backend *be);

    // ---- ops ----
    // y (M, N) = x (M, K) @ w (N, K)^T [+ bias (N)]   -- nn.Linear. bias may be NULL.
    void (*matmul)(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, const dv_tensor *bias);
    // y (M, D) = x / sqrt(mean(x^2) + eps) * w (D)     -- Llama RMSNorm, computed in F32
    void (*rms_norm)(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, float eps);
    // y (M, D) = (x - mean) / sqrt(var + eps) * w + b   -- nn.LayerNorm (biased variance)
    void (*layer_norm)(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w,
                       const dv_tensor *b, float eps);
    // x (T, H, D) rotated in place; pos (T) I32 absolute positions.
    void (*rope)(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope);
    // y = act(x), elementwise, any shape (y may alias x).
    void (*act)(dv_backend *be, dv_tensor *y, const dv_tensor *x, dv_act act);
    // y = silu(gate) * up, elementwise (the Llama MLP), y may alias gate.
    void (*swiglu)(dv_backend *be, dv_tensor *y, const dv_tensor *gate, const dv_tensor *up);
    // out (Tq, Hq, D) = softmax(q k^T * scale + mask) v, with online softmax (no score matrix).
    // q (Tq, Hq, D) F32; k, v (Tk, Hkv, D) F32 with any byte strides (cache layouts); GQA: query
    // head h reads kv head h / (Hq / Hkv).
    void (*attention)(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k,
                      const dv_tensor *v, const dv_attn_params *p);
    // Attention of a chunk over a KV cache: out (T, Hq, D) for queries q (T, Hq, D) at positions
    // q_pos0 .. q_pos0+T-1; k_new, v_new (T, Hkv, D) are the chunk's own keys/values (causal);
    // views (Hkv) give each kv head's cached segments and mask. Keys a query cannot see are never
    // scored. p->causal is ignored (always causal).
    void (*attention_kv)(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k_new,
                         const dv_tensor *v_new, const dv_kv_head_view *views, const dv_attn_params *p);
    // y (T, D) F32 = table (V, D)[ids (T) I32]; ids must be in [0, V).
    void (*embed)(dv_backend *be, dv_tensor *y, const dv_tensor *table, const dv_tensor *ids);
    // y = a + b elementwise, same shapes, y may alias a (residual connections).
    void (*add)(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b);

    // ---- optional (NULL when a backend does not provide it; callers fall back to `copy` per row) ----
    // Strided device-to-device copy: `rows` rows of `row_bytes` bytes, row i from src + i * src_pitch
    // to dst + i * dst_pitch (one call instead of one per row: KV-cache appends, feature gathering).
    int (*copy_2d)(dv_backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t row_bytes,
                   size_t rows);
    // Device memory in use (by the whole process on that device) and its total, in bytes.
    int (*mem_info)(dv_backend *be, size_t *used, size_t *total);

    // ---- appended: device-resident frame hand-off ----
    // x (B * g * g, C) F32: B frames, each a row-major (g, g) grid of C-wide tokens; pg = g / s
    // (floor). DV_POOL_AVG / _MAX: y (B * pg * pg, C). DV_POOL_WINDOWS: y (B * pg * pg, C * s * s), the
    // window of output token (oy, ox) with element (ch, ky, kx) at ch * s * s + ky * s + kx (Conv2d's
    // kernel layout). DV_POOL_BILINEAR: pg = ceil(g / s), y (B * pg * pg, C), torch's bilinear resize
    // (source coordinate (o + 0.5) * g / pg - 0.5, clamped at 0; the upper neighbour clamped at g - 1;
    // in float, as torch's CPU kernel). Rows of x and y contiguous; output tokens row-major over the
    // pooled grid.
    void (*pool2d)(dv_backend *be, dv_tensor *y, const dv_tensor *x, int grid, int stride, dv_pool mode);
    // Upload that may return before the copy is done (no wait on the stream): src_host must stay
    // valid and unchanged until the next synchronize() (the mmap'd weights, staging buffers that are
    // written again only after a synchronize). NULL: dv_backend_upload_async uses upload.
    int (*upload_async)(dv_backend *be, void *dst_dev, const void *src_host, size_t nbytes);

    // ---- appended: Gated DeltaNet (Qwen3.5's linear-attention layers) and the attention output gate ----
    // Causal depthwise conv1d over time, then SiLU, carrying its state across calls (HF
    // causal_conv1d_fn / causal_conv1d_update): x (T, C) F32 (any row stride, elements contiguous),
    // w (C, K) F32/F16/BF16, state (K-1, C) F32 contiguous: the K-1 inputs before x's first row (zeros
    // for a new sequence). With xx = [state; x] ((K-1+T), C): y[t][c] = silu(sum_j w[c][j] xx[t+j][c]);
    // afterwards state = the last K-1 rows of xx. y (T, C) F32 contiguous, not aliasing x.
    void (*conv1d_causal)(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *w, dv_tensor *state);
    // The gated delta rule over T tokens, carrying the fp32 state (HF torch_chunk_gated_delta_rule /
    // torch_recurrent_gated_delta_rule with use_qk_l2norm_in_kernel). q, k (T, Hk, dk), v (T, Hv, dv)
    // F32 (any row stride; heads contiguous); a, b (T, Hv) F32 (the in_proj_a / in_proj_b outputs);
    // a_log, dt_bias (Hv) F32/F16/BF16; state (Hv, dk, dv) F32 contiguous, in/out; out (T, Hv, dv) F32
    // contiguous. Value head h reads key head h / (Hv / Hk). Per token, in F32:
    //   q = l2norm(q) / sqrt(dk), k = l2norm(k)   (x * rsqrt(sum x^2 + 1e-6))
    //   g = -exp(a_log) * softplus(a + dt_bias),  beta = sigmoid(b)
    //   S = exp(g) S ;  S += k (beta (v - S^T k))^T ;  out = S^T q
    // chunk > 1: the chunked (WY / UT-transform) form over chunks of `chunk` tokens, the prefill path;
    // chunk <= 1: token by token (the decode path). Both give the recurrence up to rounding.
    void (*gated_delta_rule)(dv_backend *be, dv_tensor *out, const dv_tensor *q, const dv_tensor *k,
                             const dv_tensor *v, const dv_tensor *a, const dv_tensor *b, const dv_tensor *a_log,
                             const dv_tensor *dt_bias, dv_tensor *state, int chunk);
    // y (M, N) = x (M, N) * sigmoid(gate (M, N)), F32, any row strides (elements contiguous); y may
    // alias x (Qwen3.5's gated attention output).
    void (*mul_sigmoid)(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *gate);
    // ---- appended: multi-section rotary (Qwen-VL) ----
    // rope with positions per section: x (T, H, D) in place, pos (n_sec, T) I32 contiguous, frequency i
    // rotated by pos[sec->sec[i]][t] * inv_freq[i] (rope is this with one section).
    void (*rope_sections)(dv_backend *be, dv_tensor *x, const dv_tensor *pos, const dv_rope *rope,
                          const dv_rope_sec *sec);
    // ---- appended: compact KV caches ----
    // Stores `rows` rows of D F32 values (row i at src + i * src_pitch bytes, device memory) as KV rows
    // of type t (kernels/dv_kv_type.h) at dst + i * dst_pitch bytes: what a KV cache's append does for
    // a type other than f32. NULL: the backend keeps KV caches only as f32 (and its attention_kv
    // reads only f32 rows). 0 ok, <0 error (message set).
    int (*kv_store)(dv_backend *be, void *dst, size_t dst_pitch, dv_kv_type t, const float *src, size_t src_pitch,
                    int64_t D, size_t rows);
    // ---- appended: mixture-of-experts combine ----
    // y (T, N) = sum over j = 0 .. k-1 (in that order, F32) of w[t][j] * x[idx[t][j]]: x (R, N) F32,
    // idx (T, k) I32 in [0, R), w (T, k) F32, all contiguous; y (T, N) F32 contiguous, not aliasing x.
    // Brings the routed experts' output rows (and the shared expert's), weighted, back to token order.
    void (*gather_sum)(dv_backend *be, dv_tensor *y, const dv_tensor *x, const dv_tensor *idx, const dv_tensor *w);
} dv_backend_ops;

// Host <-> device traffic of one backend since it was made: bytes and copies.
typedef struct dv_xfer_stats {
    uint64_t h2d_bytes, d2h_bytes;
    uint64_t h2d_copies, d2h_copies;
} dv_xfer_stats;

struct dv_backend {
    const dv_backend_ops *ops;
    dv_device device;
    int n_threads;
    void *ctx; // backend-private state
    dv_xfer_stats xfer; // kept by dv_backend_upload / _download / _count_xfer only
};

// CPU backend with n_threads worker threads (<= 0: one per core). NULL on failure (message set).
dv_backend *dv_backend_cpu_init(int n_threads);
// The instruction set the CPU attention kernels run with, chosen once at run time from what the CPU
// supports: "avx512bf16" (AVX-512 with BF16: bf16 K/V rows, and bf16 weights in the single-row
// matmul, read by bf16 dot products against the other operand split into bf16 terms), else "avx512"
// (F, BW, VL, DQ), else "avx2" (with FMA and F16C), else "generic" (the build's target; portable
// with DUOVID_NATIVE=OFF). $DUOVID_CPU_ISA names one to use instead (ignored when the CPU lacks it).
// dv_backend_cpu_set_isa: 0, or -1 when this CPU cannot run `name` (tests run every available one).
const char *dv_backend_cpu_isa(void);
int dv_backend_cpu_set_isa(const char *name);
// 1 when the CPU attention kernels, with the instruction set chosen, score cached keys of type kt
// (head dim D) in integers against the softmax-scaled queries rounded to int16, one scale per query
// vector (q16 = round(q / s), s = max|q| / 32767): the vector copies do for q8 keys when D is a
// multiple of 32 up to 512; "generic" always scores in F32. Else 0.
int dv_backend_cpu_attn_q16(dv_kv_type kt, int64_t D);
// CUDA backend on `device` (an ordinal), from the run-time module libduovid-cuda.so (loaded on the
// first call: $DUOVID_CUDA_MODULE, else next to the executable, else the install's module folder;
// kernels/dv_backend_module.h). NULL with *status and a message when it cannot be had:
// DV_EUNSUPPORTED (built without CUDA, no module anywhere), DV_ENOTFOUND (the module is missing),
// DV_EFORMAT (the module does not load or has another ABI), DV_EDEVICE (no usable GPU), DV_EINVAL
// (no such device).
dv_backend *dv_backend_cuda_init(int device, int *status);
// Whether an NVIDIA driver is visible on this machine (/proc/driver/nvidia, /dev/nvidiactl, or WSL's
// /dev/dxg), without loading the module. `--device auto` asks this first (unless $DUOVID_CUDA_MODULE names a
// module), so a machine without a GPU
// never maps the CUDA runtime and cuBLAS (about 180 MiB of libraries) just to be told there is none.
int dv_backend_cuda_driver_visible(void);
// Frees the backend (NULL is a no-op).
void dv_backend_free(dv_backend *be);
// Number of cores, the default for --threads.
int dv_cpu_count(void);

// Host <-> device copies, counted in be->xfer (the one place that counts them). A backend whose
// device is DV_DEVICE_CPU moves nothing across a bus (its buffers are host memory), so nothing is
// counted there; the CPU backend posing as a device (tests) is counted like a GPU.
int dv_backend_upload(dv_backend *be, void *dst_dev, const void *src_host, size_t nbytes);
int dv_backend_download(dv_backend *be, void *dst_host, const void *src_dev, size_t nbytes);
// ops->upload_async's contract: src_host untouched until the next synchronize().
int dv_backend_upload_async(dv_backend *be, void *dst_dev, const void *src_host, size_t nbytes);
// For a backend's own host <-> device copies that do not go through upload/download (staging tables).
// Inline so the CUDA module (which links nothing of the host) counts through the same rule.
static inline void dv_backend_count_xfer(dv_backend *be, size_t h2d_bytes, size_t d2h_bytes) {
    if (be->device == DV_DEVICE_CPU) return; // host memory: nothing crossed
    be->xfer.h2d_bytes += h2d_bytes;
    be->xfer.d2h_bytes += d2h_bytes;
    be->xfer.h2d_copies += h2d_bytes > 0;
    be->xfer.d2h_copies += d2h_bytes > 0;
}

// dv_rope_init: fill inv_freq for a head dim, base theta, and HF rope_scaling (type may be NULL or
// "default", "linear" with factor, "llama3" with factor, low_freq_factor, high_freq_factor,
// original_max_position_embeddings, "yarn" with factor and the optional fields below, or "dynamic"
// with factor, for sequence length seq_len). Returns 0 or DV_EUNSUPPORTED for another type.
// Fields a config does not give are 0 and take HF's defaults.
typedef struct dv_rope_scaling {
    const char *type;
    double factor, low_freq_factor, high_freq_factor;
    double original_max_position_embeddings; // 0 = absent (yarn: max_position_embeddings then)
    double max_position_embeddings;          // the config's (yarn, dynamic)
    double attention_factor;                 // yarn: 0 = from the factor (0.1 ln(factor) + 1, or mscale's)
    double beta_fast, beta_slow;             // yarn: 0 = 32 and 1
    double mscale, mscale_all_dim;           // yarn: 0 = absent
    int no_truncate;                         // yarn "truncate": false (HF default true)
    double seq_len;                          // dynamic: the sequence length (<= max: the plain base)
} dv_rope_scaling;
int dv_rope_init(dv_rope *rope, int head_dim, double theta, const dv_rope_scaling *scaling);
// M-RoPE sections over head_dim / 2 frequencies from the config's mrope_section (n of them, summing to
// head_dim / 2; 3 for t/h/w): consecutive (Qwen2/2.5-VL: section j covers the j-th run, taking rows
// j % 3) or interleaved (Qwen3-VL: frequency i takes h when i % 3 == 1 and i < 3 * sections[1], w when
// i % 3 == 2 and i < 3 * sections[2], else t). Errors name the mismatch.
int dv_rope_sec_mrope(dv_rope_sec *sec, int head_dim, const int *sections, int n, int interleaved);
// The vision towers' 2-D rotary over head_dim: inv_freq[i] = theta^(-2 (i mod q) / (head_dim / 2)) with
// q = head_dim / 4, rows 0 (patch row) for i < q and 1 (column) after, as Qwen2-VL's VisionRotaryEmbedding.
int dv_rope_init_vision_2d(dv_rope *rope, dv_rope_sec *sec, int head_dim, double theta);

#ifdef __cplusplus
}
#endif
#endif
