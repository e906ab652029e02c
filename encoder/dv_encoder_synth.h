// dv_encoder_synth.h: writes a synthetic vision-encoder checkpoint (random weights with a real
// model's shapes) that dv_encoder_open accepts: config.json (llava_next_video with a CLIP tower),
// video_preprocessor_config.json and model.safetensors (vision tower + projector only, BF16).
// For benchmarks (`duovid bench encoder --synth vit-b16`), where a real checkpoint is not at hand.
#ifndef DV_ENCODER_SYNTH_H
#define DV_ENCODER_SYNTH_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_encoder_synth_params {
    int hidden, inter, n_layers, n_heads; // CLIP tower
    int image_size, patch;
    int d_model;                          // projector output (the LLM's hidden size)
    int pool_stride;                      // NeXT-Video average pooling
} dv_encoder_synth_params;

// Presets: "vit-b16" (768 x 12, 224 px / 16 -> 14x14 -> 49 tokens, d_model 4096) and "clip-l336"
// (1024 x 24, 336 px / 14 -> 144 tokens, d_model 4096: LLaVA-NeXT-Video-7B's tower). 0 or DV_EINVAL.
int dv_encoder_synth_preset(const char *name, dv_encoder_synth_params *out);
// Writes the three files into `dir` (which must exist). 0 or <0 with a message naming the file.
int dv_encoder_synth_write(const char *dir, const dv_encoder_synth_params *p);

#ifdef __cplusplus
}
#endif
#endif
