// encoder_synth.c: synthetic LLaVA-NeXT-Video vision checkpoints for benchmarks (random BF16 weights,
// streamed to disk tensor by tensor). See dv_encoder_synth.h.
#include "encoder/dv_encoder_synth.h"

#include "core/dv_dtype.h"
#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "core/dv_safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dv_encoder_synth_preset(const char *name, dv_encoder_synth_params *out) {
    if (!strcmp(name, "vit-b16")) {
        *out = (dv_encoder_synth_params){.hidden = 768, .inter = 3072, .n_layers = 12, .n_heads = 12,
                                         .image_size = 224, .patch = 16, .d_model = 4096, .pool_stride = 2};
        return 0;
    }
    if (!strcmp(name, "clip-l336")) {
        *out = (dv_encoder_synth_params){.hidden = 1024, .inter = 4096, .n_layers = 24, .n_heads = 16,
                                         .image_size = 336, .patch = 14, .d_model = 4096, .pool_stride = 2};
        return 0;
    }
    return dv_error_set(DV_EINVAL, "unknown synthetic encoder '%s' (vit-b16, clip-l336)", name);
}

// What a tensor is filled with: layer-norm weights 1, biases / norm biases small, matrices
// uniform(-r, r) with r ~ 1/sqrt(fan_in) so activations stay O(1) through the blocks.
typedef struct synth_fill {
    float lo, hi;
    uint64_t seed;
} synth_fill;

static void fill_bf16(void *buf, size_t n, size_t first, void *ctx) {
    const synth_fill *f = ctx;
    uint16_t *o = buf;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (f->seed + first + i) * 0x9E3779B97F4A7C15ull; // splitmix-style hash of the index
        x ^= x >> 31;
        x *= 0xBF58476D1CE4E5B9ull;
        x ^= x >> 29;
        const float u = (float)(x >> 40) / (float)(1u << 24);
        o[i] = dv_f32_to_bf16(f->lo + (f->hi - f->lo) * u);
    }
}

#define SYNTH_MAX_TENSORS 1024

typedef struct synth_list {
    dv_st_write_tensor t[SYNTH_MAX_TENSORS];
    synth_fill fill[SYNTH_MAX_TENSORS];
    char names[SYNTH_MAX_TENSORS][128];
    int n;
} synth_list;

static void add(synth_list *l, const char *name, int n_dims, const int64_t *shape, float lo, float hi) {
    DV_ASSERT(l->n < SYNTH_MAX_TENSORS);
    const int i = l->n++;
    snprintf(l->names[i], sizeof l->names[i], "%s", name);
    l->fill[i] = (synth_fill){.lo = lo, .hi = hi, .seed = (uint64_t)i << 32};
    l->t[i] = (dv_st_write_tensor){.name = l->names[i], .dtype = DV_DTYPE_BF16, .n_dims = n_dims,
                                   .fill = fill_bf16, .fill_ctx = &l->fill[i]};
    memcpy(l->t[i].shape, shape, (size_t)n_dims * sizeof *shape);
}

static int write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return dv_fs_write_atomic(path, text, strlen(text));
}

int dv_encoder_synth_write(const char *dir, const dv_encoder_synth_params *p) {
    const int64_t D = p->hidden, I = p->inter, P = p->patch, G = p->image_size / p->patch, dm = p->d_model;
    if (D < 1 || I < 1 || p->n_layers < 1 || p->n_heads < 1 || D % p->n_heads || G < 1 || dm < 1 ||
        p->pool_stride < 1 || 4 + 16 * p->n_layers + 8 > SYNTH_MAX_TENSORS)
        return dv_error_set(DV_EINVAL, "synthetic encoder: inconsistent sizes");
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\n  \"architectures\": [\"LlavaNextVideoForConditionalGeneration\"],\n"
             "  \"model_type\": \"llava_next_video\",\n  \"torch_dtype\": \"bfloat16\",\n"
             "  \"vision_feature_layer\": -2,\n  \"vision_feature_select_strategy\": \"default\",\n"
             "  \"projector_hidden_act\": \"gelu\",\n  \"spatial_pool_mode\": \"average\",\n"
             "  \"spatial_pool_stride\": %d,\n  \"text_config\": {\"model_type\": \"llama\", \"hidden_size\": %lld},\n"
             "  \"vision_config\": {\"model_type\": \"clip_vision_model\", \"hidden_size\": %lld,\n"
             "    \"intermediate_size\": %lld, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,\n"
             "    \"image_size\": %d, \"patch_size\": %d, \"hidden_act\": \"quick_gelu\", \"layer_norm_eps\": 1e-05}\n}\n",
             p->pool_stride, (long long)dm, (long long)D, (long long)I, p->n_layers, p->n_heads, p->image_size,
             p->patch);
    int rc = write_text(dir, "config.json", buf);
    if (rc) return rc;
    snprintf(buf, sizeof buf,
             "{\n  \"video_processor_type\": \"LlavaNextVideoVideoProcessor\",\n  \"do_resize\": true,\n"
             "  \"size\": {\"shortest_edge\": %d},\n  \"resample\": 3,\n  \"do_center_crop\": true,\n"
             "  \"crop_size\": {\"height\": %d, \"width\": %d},\n  \"do_rescale\": true,\n"
             "  \"rescale_factor\": 0.00392156862745098,\n  \"do_normalize\": true,\n"
             "  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n"
             "  \"image_std\": [0.26862954, 0.26130258, 0.27577711]\n}\n",
             p->image_size, p->image_size, p->image_size);
    if ((rc = write_text(dir, "video_preprocessor_config.json", buf))) return rc;

    synth_list *l = calloc(1, sizeof *l);
    if (!l) return dv_error_set(DV_ENOMEM, "synthetic encoder: out of memory");
    const char *vt = "vision_tower.vision_model.";
    char n[128];
    const float rD = 1.0f / sqrtf((float)D), rI = 1.0f / sqrtf((float)I);
    snprintf(n, sizeof n, "%sembeddings.class_embedding", vt);
    add(l, n, 1, (int64_t[]){D}, -1.0f, 1.0f);
    snprintf(n, sizeof n, "%sembeddings.patch_embedding.weight", vt);
    add(l, n, 4, (int64_t[]){D, 3, P, P}, -0.05f, 0.05f);
    snprintf(n, sizeof n, "%sembeddings.position_embedding.weight", vt);
    add(l, n, 2, (int64_t[]){G * G + 1, D}, -0.5f, 0.5f);
    static const char *norms[] = {"pre_layrnorm", "post_layernorm"};
    for (int i = 0; i < 2; i++) {
        snprintf(n, sizeof n, "%s%s.weight", vt, norms[i]);
        add(l, n, 1, (int64_t[]){D}, 0.9f, 1.1f);
        snprintf(n, sizeof n, "%s%s.bias", vt, norms[i]);
        add(l, n, 1, (int64_t[]){D}, -0.1f, 0.1f);
    }
    for (int li = 0; li < p->n_layers; li++) {
        char pre[64];
        snprintf(pre, sizeof pre, "%sencoder.layers.%d.", vt, li);
        static const char *lns[] = {"layer_norm1", "layer_norm2"};
        for (int i = 0; i < 2; i++) {
            snprintf(n, sizeof n, "%s%s.weight", pre, lns[i]);
            add(l, n, 1, (int64_t[]){D}, 0.9f, 1.1f);
            snprintf(n, sizeof n, "%s%s.bias", pre, lns[i]);
            add(l, n, 1, (int64_t[]){D}, -0.1f, 0.1f);
        }
        static const char *projs[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int i = 0; i < 4; i++) {
            snprintf(n, sizeof n, "%sself_attn.%s.weight", pre, projs[i]);
            add(l, n, 2, (int64_t[]){D, D}, -rD, rD);
            snprintf(n, sizeof n, "%sself_attn.%s.bias", pre, projs[i]);
            add(l, n, 1, (int64_t[]){D}, -0.05f, 0.05f);
        }
        snprintf(n, sizeof n, "%smlp.fc1.weight", pre);
        add(l, n, 2, (int64_t[]){I, D}, -rD, rD);
        snprintf(n, sizeof n, "%smlp.fc1.bias", pre);
        add(l, n, 1, (int64_t[]){I}, -0.05f, 0.05f);
        snprintf(n, sizeof n, "%smlp.fc2.weight", pre);
        add(l, n, 2, (int64_t[]){D, I}, -rI, rI);
        snprintf(n, sizeof n, "%smlp.fc2.bias", pre);
        add(l, n, 1, (int64_t[]){D}, -0.05f, 0.05f);
    }
    add(l, "multi_modal_projector.linear_1.weight", 2, (int64_t[]){dm, D}, -rD, rD);
    add(l, "multi_modal_projector.linear_1.bias", 1, (int64_t[]){dm}, -0.05f, 0.05f);
    const float rM = 1.0f / sqrtf((float)dm);
    add(l, "multi_modal_projector.linear_2.weight", 2, (int64_t[]){dm, dm}, -rM, rM);
    add(l, "multi_modal_projector.linear_2.bias", 1, (int64_t[]){dm}, -0.05f, 0.05f);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    rc = dv_safetensors_write(path, l->t, l->n, mk, mv, 1);
    free(l);
    return rc;
}
