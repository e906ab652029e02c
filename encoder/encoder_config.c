// encoder_config.c: reads the vision side of a LLaVA-family config.json (vision_config, feature
// layer and strategy, pooling, projector) with the defaults transformers applies to absent keys.
// The tower's sizes are required: a config without them is refused rather than guessed.
#include "encoder/encoder_internal.h"

#include "core/dv_error.h"
#include "core/dv_json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int enc_act_from_name(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "gelu")) return DV_ACT_GELU_ERF;
    if (!strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_new") || !strcmp(s, "gelu_fast"))
        return DV_ACT_GELU_TANH;
    if (!strcmp(s, "quick_gelu")) return DV_ACT_QUICK_GELU;
    if (!strcmp(s, "silu") || !strcmp(s, "swish")) return DV_ACT_SILU;
    return -1;
}

static int get_pos_int(const cJSON *o, const char *key, const char *what, int max, int *out) {
    int64_t v = 0;
    int rc = dv_json_get_int(o, key, what, &v);
    if (rc) return rc;
    if (v < 1 || v > max) return dv_error_set(DV_EFORMAT, "%s: '%s' = %lld is out of range", what, key, (long long)v);
    *out = (int)v;
    return 0;
}

int enc_config_load(const char *model_dir, enc_config *c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    cJSON *root = NULL;
    int rc = dv_json_load(path, &root);
    if (rc) return rc;
    memset(c, 0, sizeof *c);
    char vw[4200];
    snprintf(vw, sizeof vw, "%s: vision_config", path);
    const char *W = path, *VW = vw;
    const cJSON *vc = NULL;
    const char *mt = dv_json_get_string(root, "model_type");
    if (!mt) {
        rc = dv_error_set(DV_EFORMAT, "%s: missing 'model_type'", path);
        goto done;
    }
    if (!strcmp(mt, "llava_next_video")) {
        c->arch = ENC_ARCH_LLAVA_NEXT_VIDEO;
    } else if (!strcmp(mt, "llava")) {
        c->arch = ENC_ARCH_LLAVA;
    } else if (!strcmp(mt, "llava_onevision")) {
        c->arch = ENC_ARCH_LLAVA_ONEVISION;
    } else if (!strcmp(mt, "qwen3_5") || !strcmp(mt, "qwen3_5_moe")) {
        // Qwen3.5's vision side is the Qwen-VL family's (encoder/dv_qwen_vision.h through vlm/qwen_video)
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: model_type '%s': a Qwen-VL family model (its vision tower is "
                          "encoder/dv_qwen_vision.h, run by the video commands), not a LLaVA encoder", path, mt);
        goto done;
    } else {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: model_type '%s' has no supported vision encoder "
                          "(llava_next_video, llava_onevision, llava)", path, mt);
        goto done;
    }
    vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (!cJSON_IsObject(vc)) {
        rc = dv_error_set(DV_EFORMAT, "%s: missing 'vision_config' (the vision tower's description)", path);
        goto done;
    }
    // ---- tower ----
    const char *vmt = dv_json_get_string(vc, "model_type");
    if (!vmt || !strcmp(vmt, "clip_vision_model")) {
        c->tower = ENC_TOWER_CLIP;
    } else if (!strcmp(vmt, "siglip_vision_model")) {
        c->tower = ENC_TOWER_SIGLIP;
    } else {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: vision_config.model_type '%s' is not supported "
                          "(clip_vision_model, siglip_vision_model)", path, vmt);
        goto done;
    }
    if ((rc = get_pos_int(vc, "hidden_size", VW, 1 << 16, &c->hidden)) ||
        (rc = get_pos_int(vc, "intermediate_size", VW, 1 << 18, &c->inter)) ||
        (rc = get_pos_int(vc, "num_hidden_layers", VW, 1024, &c->n_layers)) ||
        (rc = get_pos_int(vc, "num_attention_heads", VW, 1024, &c->n_heads)) ||
        (rc = get_pos_int(vc, "image_size", VW, 1 << 14, &c->image_size)) ||
        (rc = get_pos_int(vc, "patch_size", VW, 1 << 10, &c->patch)))
        goto done;
    int64_t nch = 3;
    if ((rc = dv_json_get_int_opt(vc, "num_channels", VW, &nch))) goto done;
    if (nch != 3) {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: vision_config.num_channels = %lld (only RGB, 3)", path, (long long)nch);
        goto done;
    }
    if (c->hidden % c->n_heads || c->hidden / c->n_heads > 2 * DV_ROPE_MAX_HALF) {
        rc = dv_error_set(DV_EFORMAT, "%s: vision hidden_size %d is not a multiple of num_attention_heads %d "
                          "(or heads wider than %d)", path, c->hidden, c->n_heads, 2 * DV_ROPE_MAX_HALF);
        goto done;
    }
    c->head_dim = c->hidden / c->n_heads;
    if (c->image_size % c->patch) {
        rc = dv_error_set(DV_EFORMAT, "%s: vision image_size %d is not a multiple of patch_size %d", path,
                          c->image_size, c->patch);
        goto done;
    }
    c->grid = c->image_size / c->patch;
    c->n_patches = c->grid * c->grid;
    c->has_cls = c->tower == ENC_TOWER_CLIP;
    c->n_pos = c->n_patches + c->has_cls;
    const char *act = dv_json_get_string(vc, "hidden_act");
    if (!act) act = c->tower == ENC_TOWER_CLIP ? "quick_gelu" : "gelu_pytorch_tanh";
    int a = enc_act_from_name(act);
    if (a < 0) {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: vision_config.hidden_act '%s' is not supported", path, act);
        goto done;
    }
    c->act = (dv_act)a;
    c->ln_eps = c->tower == ENC_TOWER_CLIP ? 1e-5 : 1e-6;
    if ((rc = dv_json_get_double_opt(vc, "layer_norm_eps", VW, &c->ln_eps))) goto done;

    // ---- feature layer(s) and strategy ----
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(root, "vision_feature_layer");
    int layers[ENC_MAX_FEAT_LAYERS], nl = 0;
    const int ov = c->arch == ENC_ARCH_LLAVA_ONEVISION; // LlavaOnevisionConfig: layer -1, 'full'
    if (!fl || cJSON_IsNull(fl)) {
        layers[nl++] = ov ? -1 : -2;
    } else if (cJSON_IsNumber(fl)) {
        layers[nl++] = (int)fl->valuedouble;
    } else if (cJSON_IsArray(fl) && cJSON_GetArraySize(fl) >= 1 && cJSON_GetArraySize(fl) <= ENC_MAX_FEAT_LAYERS) {
        for (int i = 0; i < cJSON_GetArraySize(fl); i++) {
            const cJSON *x = cJSON_GetArrayItem(fl, i);
            if (!cJSON_IsNumber(x)) break;
            layers[nl++] = (int)x->valuedouble;
        }
        if (nl != cJSON_GetArraySize(fl)) nl = 0;
    }
    if (nl == 0) {
        rc = dv_error_set(DV_EFORMAT, "%s: 'vision_feature_layer' must be an integer or a list of 1-%d integers",
                          path, ENC_MAX_FEAT_LAYERS);
        goto done;
    }
    for (int i = 0; i < nl; i++) {
        // hidden_states has n_layers + 1 entries (embeddings first); Python indexing
        const int idx = layers[i] < 0 ? c->n_layers + 1 + layers[i] : layers[i];
        if (idx < 0 || idx > c->n_layers) {
            rc = dv_error_set(DV_EFORMAT, "%s: vision_feature_layer %d is outside the %d hidden states of a "
                              "%d-layer tower", path, layers[i], c->n_layers + 1, c->n_layers);
            goto done;
        }
        c->feat[i] = idx;
        c->feat_cfg[i] = layers[i];
        if (idx > c->n_run) c->n_run = idx;
    }
    c->n_feat = nl;
    const char *strat = dv_json_get_string(root, "vision_feature_select_strategy");
    if (!strat) strat = ov ? "full" : "default";
    if (!strcmp(strat, "default")) {
        c->drop_cls = 1;
    } else if (!strcmp(strat, "full")) {
        c->drop_cls = 0;
    } else {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: vision_feature_select_strategy '%s' (default, full)", path, strat);
        goto done;
    }
    // HF's 'default' drops the first token whatever the tower (a SigLIP tower loses a patch)
    c->n_sel = c->n_pos - c->drop_cls;
    c->d_sel = c->hidden * c->n_feat;

    // ---- pooling (LLaVA-NeXT-Video's vision_resampler) ----
    c->pool_out = c->d_sel;
    c->tokens = c->n_sel;
    if (c->arch == ENC_ARCH_LLAVA_NEXT_VIDEO) {
        const char *mode = dv_json_get_string(root, "spatial_pool_mode");
        if (!mode) mode = "average";
        if (!strcmp(mode, "average")) {
            c->pool = ENC_POOL_AVG;
        } else if (!strcmp(mode, "max")) {
            c->pool = ENC_POOL_MAX;
        } else if (!strcmp(mode, "conv")) {
            c->pool = ENC_POOL_CONV;
        } else {
            rc = dv_error_set(DV_EUNSUPPORTED, "%s: spatial_pool_mode '%s' (average, max, conv)", path, mode);
            goto done;
        }
        int64_t stride = 2, outc = c->hidden;
        if ((rc = dv_json_get_int_opt(root, "spatial_pool_stride", W, &stride)) ||
            (rc = dv_json_get_int_opt(root, "spatial_pool_out_channels", W, &outc)))
            goto done;
        c->sel_grid = (int)lround(sqrt((double)c->n_sel));
        if (c->sel_grid * c->sel_grid != c->n_sel) {
            rc = dv_error_set(DV_EFORMAT, "%s: %d selected tokens per frame do not form a square grid for "
                              "spatial pooling (strategy '%s')", path, c->n_sel, strat);
            goto done;
        }
        if (stride < 1 || stride > c->sel_grid || outc < 1 || outc > 1 << 16) {
            rc = dv_error_set(DV_EFORMAT, "%s: spatial_pool_stride %lld / out_channels %lld invalid for a %dx%d grid",
                              path, (long long)stride, (long long)outc, c->sel_grid, c->sel_grid);
            goto done;
        }
        c->pool_stride = (int)stride;
        c->pool_grid = c->sel_grid / c->pool_stride; // nn.*Pool2d / Conv2d, no padding: floor
        c->tokens = c->pool_grid * c->pool_grid;
        if (c->pool == ENC_POOL_CONV) c->pool_out = (int)outc;
    }

    if (ov) { // the projector first, then each frame's (g, g) grid bilinear to (ceil(g/2), ceil(g/2))
        if (c->n_sel != c->n_patches) {
            rc = dv_error_set(DV_EFORMAT, "%s: LLaVA-OneVision pools a %dx%d patch grid, but strategy '%s' keeps %d "
                              "tokens per frame", path, c->grid, c->grid, strat, c->n_sel);
            goto done;
        }
        c->pool = ENC_POOL_BILINEAR;
        c->pool_stride = 2;
        c->sel_grid = c->grid;
        c->pool_grid = (c->grid + 1) / 2;
        c->tokens = c->pool_grid * c->pool_grid;
    }

    // ---- projector ----
    const char *pact = dv_json_get_string(root, "projector_hidden_act");
    if (!pact) pact = "gelu";
    if ((a = enc_act_from_name(pact)) < 0) {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: projector_hidden_act '%s' is not supported", path, pact);
        goto done;
    }
    c->proj_act = (dv_act)a;
    c->proj_bias = 1;
    if ((rc = dv_json_get_bool_opt(root, "multimodal_projector_bias", W, &c->proj_bias))) goto done;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    int64_t th = 0;
    if (cJSON_IsObject(tc) && (rc = dv_json_get_int_opt(tc, "hidden_size", path, &th))) goto done;
    c->text_hidden = (int)th;
done:
    cJSON_Delete(root);
    return rc;
}
