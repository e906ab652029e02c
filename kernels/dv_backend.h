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

// Attention parameters: query row i sits at absolute position q_pos0 + i; key j at position j.
// causal: key j is visible to query i iff j <= q_pos0 + i. Non-causal: all keys visible (ViT).
typedef struct dv_attn_params {
    float scale;    // usually 1/sqrt(head_dim)
    int causal;
    int64_t q_pos0;
} dv_attn_params;

// A run of cached keys/values of ONE kv head at consecutive positions pos0 .. pos0+n-1: row i at
// k + i * stride (floats), D floats each. A KV cache hands attention_kv a list of these per kv head
// (pages of a retrieval head; sink + ring pieces of a streaming head).
typedef struct dv_kv_seg {
    const float *k, *v;
    int64_t pos0, n;
    int64_t stride;
} dv_kv_seg;

// What one kv head sees: its cached segments (all at positions < q_pos0), then the chunk's own new
// keys causally. window > 0 adds the streaming mask: a key at position j is visible to the query at
// position p only if j < sink or p - j <= window (the `window` keys before p, and p itself).
typedef struct dv_kv_head_view {
    const dv_kv_seg *segs;
    int n_segs;
    int64_t sink, window;
} dv_kv_head_view;

typedef struct dv_backend dv_backend;

typedef struct dv_backend_ops {
    const char *name;
    // ---- memory: device buffers (the CPU backend uses aligned host memory) ----
    void *(*alloc)(dv_backend *be, size_t nbytes); // NULL on failure (message set)
    void (*free)(dv_backend *be, void *ptr);
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
    // y (M, N) = softmax over the last dim of x, in F32 (y may alias x).
    void (*softmax)(dv_backend *be, dv_tensor *y, const dv_tensor *x);
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
    // Elementwise, same shapes, y may alias a: y = a + b, y = a * b, y = a * s.
    void (*add)(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b);
    void (*mul)(dv_backend *be, dv_tensor *y, const dv_tensor *a, const dv_tensor *b);
    void (*scale)(dv_backend *be, dv_tensor *y, const dv_tensor *a, float s);
    // y = x converted to y's dtype (F32/F16/BF16), same shape; both contiguous.
    void (*convert)(dv_backend *be, dv_tensor *y, const dv_tensor *x);

    // ---- optional (NULL when a backend does not provide it; callers fall back to `copy` per row) ----
    // Strided device-to-device copy: `rows` rows of `row_bytes` bytes, row i from src + i * src_pitch
    // to dst + i * dst_pitch (one call instead of one per row: KV-cache appends, feature gathering).
    int (*copy_2d)(dv_backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t row_bytes,
                   size_t rows);
    // Device memory in use (by the whole process on that device) and its total, in bytes.
    int (*mem_info)(dv_backend *be, size_t *used, size_t *total);
} dv_backend_ops;

struct dv_backend {
    const dv_backend_ops *ops;
    dv_device device;
    int n_threads;
    void *ctx; // backend-private state
};

// CPU backend with n_threads worker threads (<= 0: one per core). NULL on failure (message set).
dv_backend *dv_backend_cpu_init(int n_threads);
// CUDA backend on `device` (an ordinal). Without CUDA support compiled in, or with no GPU, returns
// NULL with DV_EUNSUPPORTED/DV_EDEVICE in *status and a message.
dv_backend *dv_backend_cuda_init(int device, int *status);
// Frees the backend (NULL is a no-op).
void dv_backend_free(dv_backend *be);
// Number of cores, the default for --threads.
int dv_cpu_count(void);

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

#ifdef __cplusplus
}
#endif
#endif
