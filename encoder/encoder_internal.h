// encoder_internal.h: the encoder's config, weight views and buffers, shared by encoder_config.c
// (config.json), encoder.c (open / API) and vit.c (the forward pass). Not a public header.
#ifndef DV_ENCODER_INTERNAL_H
#define DV_ENCODER_INTERNAL_H

#include "core/dv_safetensors.h"
#include "encoder/dv_encoder.h"
#include "kernels/dv_backend.h"

#define ENC_MAX_FEAT_LAYERS 8

typedef enum enc_arch { ENC_ARCH_LLAVA = 0, ENC_ARCH_LLAVA_NEXT_VIDEO, ENC_ARCH_LLAVA_ONEVISION } enc_arch;
typedef enum enc_tower { ENC_TOWER_CLIP = 0, ENC_TOWER_SIGLIP } enc_tower;
// AVG / MAX / CONV: NeXT-Video, before the projector; BILINEAR: OneVision, after it (on d_model tokens)
typedef enum enc_pool { ENC_POOL_NONE = 0, ENC_POOL_AVG, ENC_POOL_MAX, ENC_POOL_CONV, ENC_POOL_BILINEAR } enc_pool;

// Everything the forward pass needs from config.json (checked against the tensors at open).
typedef struct enc_config {
    enc_arch arch;
    enc_tower tower;
    int hidden, inter, n_layers, n_heads, head_dim; // tower
    int image_size, patch, grid, n_patches;          // grid = image_size / patch, n_patches = grid^2
    int has_cls, n_pos;                              // CLIP: class token; n_pos = n_patches + has_cls
    dv_act act;
    double ln_eps;
    int feat[ENC_MAX_FEAT_LAYERS]; // hidden_states indices (0 = embeddings, i = after layer i)
    int feat_cfg[ENC_MAX_FEAT_LAYERS]; // as the config wrote them (for messages)
    int n_feat;
    int n_run;     // layers actually run: the deepest feature layer
    int drop_cls;  // 'default' strategy: drop the class token
    int n_sel;     // tokens per frame after selection (n_pos - drop_cls)
    int d_sel;     // hidden * n_feat
    enc_pool pool; // LLaVA-NeXT-Video's vision_resampler, or OneVision's bilinear downscale
    int pool_stride, sel_grid, pool_grid, pool_out; // sel_grid^2 = n_sel; pool_out: the projector's input width
    dv_act proj_act;
    int proj_bias;
    int d_model; // projector output = LLM hidden size
    int tokens;  // per frame
    int text_hidden; // text_config.hidden_size when given (0 if absent), cross-checked with the weights
} enc_config;

typedef struct enc_layer {
    dv_tensor ln1_w, ln1_b, ln2_w, ln2_b;                   // (D)
    dv_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;       // (D, D), (D)
    dv_tensor fc1_w, fc1_b, fc2_w, fc2_b;                   // (I, D), (I), (D, I), (D)
} enc_layer;

// Views into the mmap'd checkpoint, file dtype.
typedef struct enc_weights {
    dv_tensor patch_w;             // (D, 3 * P * P): the conv kernel (D, 3, P, P) flattened
    dv_tensor patch_b;             // (D) SigLIP only
    dv_tensor cls;                 // (1, D) CLIP only
    dv_tensor pos;                 // (n_pos, D)
    dv_tensor pre_w, pre_b;        // (D) CLIP pre_layrnorm
    enc_layer *layers;             // (n_run)
    dv_tensor pool_w, pool_b;      // conv pooling: (C, d_sel * s * s), (C)
    dv_tensor p1_w, p1_b;          // (d_model, pool_out)
    dv_tensor p2_w, p2_b;          // (d_model, d_model)
    dv_tensor newline;             // (1, d_model) OneVision's image_newline: one row after a video's frames
    int has_patch_b, has_pool_b, has_p_b, has_newline;
} enc_weights;

struct dv_encoder {
    enc_config c;
    enc_weights w;
    dv_safetensors *st;
    dv_backend *be;
    int own_be;
    int n_threads;
    int max_batch;
    dv_prep_config prep_cfg;
    dv_prep **preps; // (n_threads) one per thread: frames of a batch are preprocessed in parallel
    int *prep_rc;    // (max_batch) per-frame status of the parallel preprocessing
    double flops;
    char desc[320];
    // activations, sized for B = max_batch frames at open (T = n_pos, NP = n_patches):
    uint8_t *u8;     // (B, S, S, 3) preprocessed frames before normalization
    float *pix;      // (B, 3, S, S) normalized pixel values
    float *patches;  // (B * NP, 3 * P * P) im2col of the pixels, rows in (py, px) order
    float *pos;      // (T, D) position embeddings + class embedding in row 0 (CLIP), F32
    int32_t *pos_ids; // (T) 0 .. T-1
    float *h;        // (B * T, D) residual stream
    float *a;        // (B * T, D) normed input / sublayer output
    float *q, *k, *v, *att; // (B * T, D) attention projections and output
    float *f;        // (B * T, I) MLP hidden
    float *sel;      // (B * n_sel, d_sel) selected feature layers, class token dropped if 'default'
    float *win;      // (B * tokens, d_sel * s * s) conv pooling windows (conv mode only)
    float *pooled;   // (B * tokens, pool_out) after pooling (NeXT-Video); OneVision: (B * n_sel, d_model),
                     // the projector output before its bilinear pooling into out
    float *proj;     // (B * tokens, d_model) projector hidden (OneVision: B * n_sel rows)
    float *newline;  // (1, d_model) F32 image_newline on the backend (OneVision), else NULL
    float *out;      // (B * tokens, d_model) projector output: the batch's features, on the backend
    // GPU backends (gpu = 1): u8, pix, patches and pos_ids above are host memory (malloc), the
    // weights are device copies, and these carry data between host steps and the device; all NULL
    // on the CPU backend, whose memory is host memory.
    int gpu;
    void **dev_weights;   // device copies of the weights, owned
    int n_dev_weights;
    float *patches_dev;   // (B * NP, 3 * P * P) device copy of patches
    int32_t *pos_ids_dev; // (T)
};

// encoder_config.c: parse MODEL_DIR/config.json into c (no tensors yet). Errors name config.json.
int enc_config_load(const char *model_dir, enc_config *c);
// "gelu" -> DV_ACT_GELU_ERF ...; -1 when unknown.
int enc_act_from_name(const char *s);

// vit.c: patches -> e->out (nb * tokens, d_model) for nb <= max_batch frames already in e->patches.
void enc_forward(dv_encoder *e, int nb);
// pixels (nb, 3, S, S) -> e->patches
void enc_im2col(dv_encoder *e, const float *pixels, int nb);
double enc_flops_per_frame(const enc_config *c);

// encoder.c, for every tower: bind `prefix suffix` with the expected shape (F32/F16/BF16, a view of
// view_dims / view_shape when view_dims > 0); the first of `prefixes` under which `probe` exists.
int enc_bind(const dv_safetensors *st, const char *prefix, const char *suffix, int n_dims, const int64_t *shape,
             int view_dims, const int64_t *view_shape, dv_tensor *out);
const char *enc_find_prefix(const dv_safetensors *st, const char *const *prefixes, int n, const char *probe);
// GPU backends: each tensor of ts (n; those with data) copied once to the device in its file dtype and
// re-pointed there; the device buffers are appended to dev (*n_dev counts them). Ends with a synchronize.
int enc_upload_tensors(dv_backend *be, dv_tensor **ts, int n, void **dev, int *n_dev);
// Non-causal attention of rows r0 .. r0 + n of q, k, v, out (rows of n_heads x head_dim floats): one
// frame (CLIP/SigLIP) or one window (Qwen2.5-VL) attending within itself.
void enc_attention_rows(dv_backend *be, float *q, float *k, float *v, float *out, int64_t r0, int64_t n, int n_heads,
                        int head_dim, const dv_attn_params *ap);

#endif
