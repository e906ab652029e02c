// dv_encoder.h: the vision encoder: sampled RGB frames -> the LLM's input embeddings, exactly as the
// Hugging Face implementation of the target model computes its video/image features.
//
// Supported checkpoints (config.json "model_type"):
//   llava_next_video  LlavaNextVideoForConditionalGeneration (e.g. LLaVA-NeXT-Video-7B-hf): vision
//                     tower, feature layer(s), select strategy, spatial pooling (average / max / conv,
//                     stride from the config), mlp2x projector. 576 patches -> 144 tokens per frame.
//   llava_onevision   LlavaOnevisionForConditionalGeneration (SigLIP + Qwen2) as a video model: tower,
//                     hidden_states[-1] ('full'), projector on every patch, then each frame's (g, g)
//                     grid bilinear to (ceil(g/2), ceil(g/2)) (27x27 -> 196 tokens at 384 px), and one
//                     image_newline row after the video's last frame (dv_encoder_video_suffix).
//   llava             LlavaForConditionalGeneration (llava-1.5): tower, feature layer(s), strategy,
//                     projector; every frame is one image (576 tokens for CLIP-L/336).
// Towers: CLIP (class token, pre-layernorm, quick_gelu) and SigLIP (no class token, patch bias,
// gelu_pytorch_tanh). Weights stay in the checkpoint's dtype (F32/F16/BF16), memory-mapped.
// Frames are preprocessed as the model's video (else image) processor config says (dv_image_prep.h).
//
// Usage:
//   dv_encoder_params p = dv_encoder_default_params();
//   dv_encoder *e; if (dv_encoder_open("models/llava-next-video", &p, &e)) { error: dv_error_message() }
//   float *emb = malloc(n * dv_encoder_tokens_per_frame(e) * dv_encoder_d_model(e) * sizeof(float));
//   dv_encoder_encode(e, frames, n, emb);   // emb: (n, tokens_per_frame, d_model)
//   dv_encoder_free(e);
#ifndef DV_ENCODER_H
#define DV_ENCODER_H

#include "encoder/dv_image_prep.h"
#include "kernels/dv_backend.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_encoder dv_encoder;

typedef struct dv_encoder_params {
    dv_backend *backend; // a CPU backend to run on (not owned); NULL: the encoder makes its own
    int n_threads;       // threads of that own backend and of preprocessing; <= 0: all cores
    int max_batch;       // frames per forward pass; buffers are sized for it at open (default 8)
} dv_encoder_params;

dv_encoder_params dv_encoder_default_params(void);

// Opens MODEL_DIR (config.json, *.safetensors, the processor config). Errors name the file and the
// problem: a config without vision fields, an unsupported architecture / activation / pooling mode,
// a missing or mis-shaped tensor (e.g. "model.safetensors: missing tensor
// 'multi_modal_projector.linear_1.weight'"), a processor whose output size is not the tower's.
int dv_encoder_open(const char *model_dir, const dv_encoder_params *p, dv_encoder **out);
void dv_encoder_free(dv_encoder *e);

int dv_encoder_tokens_per_frame(const dv_encoder *e); // tokens one frame becomes (144 for NeXT-Video-7B)
int dv_encoder_d_model(const dv_encoder *e);          // width of each token (the LLM's hidden size)
int dv_encoder_image_size(const dv_encoder *e);       // side of the square the tower sees (336)
// Multiply-add work of one frame through tower, pooling and projector, in FLOP (2 per MAC).
double dv_encoder_flops_per_frame(const dv_encoder *e);
// 1: a video model (llava_next_video, llava_onevision: frames are the <video> tokens, back to back); 0:
// an image model (llava: each frame is one <image>, and the prompt format puts "\n" after each).
int dv_encoder_is_video_model(const dv_encoder *e);
// Rows a video's tokens end with after its last frame (OneVision's image_newline: 1; else 0), and
// those rows: a (rows, d_model) F32 view on the encoder's backend, valid until dv_encoder_free.
int dv_encoder_video_suffix_tokens(const dv_encoder *e);
int dv_encoder_video_suffix(const dv_encoder *e, dv_tensor *out);
// One-line description: "llava_next_video, clip tower 24 x 1024, layer -2, ..." (static to e).
const char *dv_encoder_describe(const dv_encoder *e);

// Encodes n frames (any sizes, RGB24) into out (n, tokens_per_frame, d_model), in batches of
// max_batch. A frame with no pixels or a stride below 3 * w -> DV_EINVAL naming the frame.
int dv_encoder_encode(dv_encoder *e, const dv_image *frames, int n, float *out);

// Device-resident hand-off: encodes n <= dv_encoder_max_batch frames and sets *out to a view of the
// encoder's own output buffer on its backend (device memory on a GPU), (n * tokens_per_frame,
// d_model) F32, contiguous: what dv_llm_prefill_tensor takes, with no host round trip. Valid until
// the next encode call or dv_encoder_free. dv_encoder_encode is this, batch by batch, plus a download.
int dv_encoder_encode_tensor(dv_encoder *e, const dv_image *frames, int n, dv_tensor *out);
int dv_encoder_max_batch(const dv_encoder *e);

// The same from already preprocessed pixel values (n, 3, S, S), S = dv_encoder_image_size: what a HF
// processor returns (tests feed Python's pixel values through this).
int dv_encoder_encode_pixels(dv_encoder *e, const float *pixels, int n, float *out);

// Preprocessing only: frame -> (S, S, 3) uint8 before rescale/normalize (tests, debugging).
int dv_encoder_preprocess(dv_encoder *e, const dv_image *frame, uint8_t *out);
const dv_prep_config *dv_encoder_prep_config(const dv_encoder *e);

#ifdef __cplusplus
}
#endif
#endif
