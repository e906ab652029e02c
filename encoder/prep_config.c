// prep_config.c: reads a Hugging Face video_preprocessor_config.json / preprocessor_config.json into a
// dv_prep_config, with the defaults of the processor class the file names (CLIP-style, SigLIP or
// LLaVA-OneVision's video processor).
#include "encoder/dv_image_prep.h"

#include "core/dv_error.h"
#include "core/dv_json.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

// "size" / "crop_size": {"shortest_edge": s}, {"height": h, "width": w}, or a bare int (old configs).
// *edge gets shortest_edge (0 when the form is height/width).
static int read_size(const cJSON *root, const char *key, const char *what, int *edge, int *h, int *w) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0; // keep defaults
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble < 1 || v->valuedouble > 1 << 16 || v->valuedouble != (int)v->valuedouble)
            return dv_error_set(DV_EFORMAT, "%s: '%s' = %g is not a valid size", what, key, v->valuedouble);
        if (edge) {
            *edge = (int)v->valuedouble;
        } else {
            *h = *w = (int)v->valuedouble;
        }
        return 0;
    }
    if (!cJSON_IsObject(v)) return dv_error_set(DV_EFORMAT, "%s: '%s' must be an object or a number", what, key);
    int64_t se = 0, hh = 0, ww = 0;
    int rc;
    if ((rc = dv_json_get_int_opt(v, "shortest_edge", what, &se)) || (rc = dv_json_get_int_opt(v, "height", what, &hh)) ||
        (rc = dv_json_get_int_opt(v, "width", what, &ww)))
        return rc;
    if (cJSON_GetObjectItemCaseSensitive(v, "longest_edge") || cJSON_GetObjectItemCaseSensitive(v, "max_height"))
        return dv_error_set(DV_EUNSUPPORTED, "%s: '%s' with longest_edge/max_height is not supported", what, key);
    if (se > 0 && edge) {
        *edge = (int)se;
        return 0;
    }
    if (hh < 1 || ww < 1 || hh > 1 << 16 || ww > 1 << 16)
        return dv_error_set(DV_EFORMAT, "%s: '%s' needs %sheight and width", what, key,
                            edge ? "shortest_edge or " : "");
    if (edge) *edge = 0;
    *h = (int)hh;
    *w = (int)ww;
    return 0;
}

// "image_mean" / "image_std": 3 numbers (or one, for all channels).
static int read_triplet(const cJSON *root, const char *key, const char *what, double out[3]) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {
        out[0] = out[1] = out[2] = v->valuedouble;
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
        return dv_error_set(DV_EFORMAT, "%s: '%s' must be a list of 3 numbers", what, key);
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(x)) return dv_error_set(DV_EFORMAT, "%s: '%s' must be a list of 3 numbers", what, key);
        out[i] = x->valuedouble;
    }
    return 0;
}

int dv_prep_config_read_pixels(const cJSON *root, const char *path, dv_prep_config *c) {
    const char *name = c->source[0] ? c->source : path;
    int64_t resample = c->resample;
    int rc;
    if ((rc = dv_json_get_int_opt(root, "resample", name, &resample)) ||
        (rc = dv_json_get_bool_opt(root, "do_rescale", name, &c->do_rescale)) ||
        (rc = dv_json_get_double_opt(root, "rescale_factor", name, &c->rescale_factor)) ||
        (rc = dv_json_get_bool_opt(root, "do_normalize", name, &c->do_normalize)) ||
        (rc = read_triplet(root, "image_mean", name, c->mean)) || (rc = read_triplet(root, "image_std", name, c->std)))
        return rc;
    c->resample = (int)resample;
    if (c->resample != DV_RESAMPLE_BICUBIC && c->resample != DV_RESAMPLE_BILINEAR)
        return dv_error_set(DV_EUNSUPPORTED, "%s: resample %d is not supported (2 bilinear, 3 bicubic)", path,
                            c->resample);
    if (c->rescale_factor <= 0 || !(c->std[0] > 0 && c->std[1] > 0 && c->std[2] > 0))
        return dv_error_set(DV_EFORMAT, "%s: rescale_factor and image_std must be positive", path);
    return 0;
}

int dv_prep_config_find_file(const char *model_dir, char *path, size_t size, const char **name) {
    // transformers' get_video_processor_dict order: the video processor's file, else the image processor's
    static const char *const names[] = {"video_preprocessor_config.json", "preprocessor_config.json"};
    struct stat st;
    for (int i = 0; i < 2; i++) {
        snprintf(path, size, "%s/%s", model_dir, names[i]);
        if (stat(path, &st) == 0) {
            *name = names[i];
            return 0;
        }
    }
    return dv_error_set(DV_ENOTFOUND, "%s: no %s or %s", model_dir, names[0], names[1]);
}

int dv_prep_config_load(const char *model_dir, dv_prep_config *out) {
    char path[4096];
    const char *name = NULL;
    int rc = dv_prep_config_find_file(model_dir, path, sizeof path, &name);
    if (rc) return rc;
    cJSON *root = NULL;
    rc = dv_json_load(path, &root);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return dv_error_set(DV_EFORMAT, "%s: not a JSON object", path);
    }
    const char *type = dv_json_get_string(root, "video_processor_type");
    if (!type) type = dv_json_get_string(root, "image_processor_type");
    const int siglip = type && strstr(type, "Siglip");
    const int onevision = type && strstr(type, "LlavaOnevision"); // 384 x 384, no crop, CLIP mean/std
    // class defaults: CLIPImageProcessor / LlavaNextVideoVideoProcessor, SiglipImageProcessor, or
    // LlavaOnevisionVideoProcessor
    const int square = siglip || onevision, side = onevision ? 384 : 224;
    dv_prep_config c = {
        .do_resize = 1, .shortest_edge = square ? 0 : 224, .size_h = side, .size_w = side,
        .resample = DV_RESAMPLE_BICUBIC, .do_center_crop = !square,
        .crop_h = 224, .crop_w = 224, .do_rescale = 1, .rescale_factor = 1.0 / 255.0, .do_normalize = 1,
        .mean = {0.48145466, 0.4578275, 0.40821073}, .std = {0.26862954, 0.26130258, 0.27577711},
    };
    if (siglip)
        for (int i = 0; i < 3; i++) c.mean[i] = c.std[i] = 0.5;
    snprintf(c.source, sizeof c.source, "%s", name);
    if ((rc = dv_json_get_bool_opt(root, "do_resize", name, &c.do_resize)) ||
        (rc = read_size(root, "size", name, &c.shortest_edge, &c.size_h, &c.size_w)) ||
        (rc = dv_json_get_bool_opt(root, "do_center_crop", name, &c.do_center_crop)) ||
        (rc = read_size(root, "crop_size", name, NULL, &c.crop_h, &c.crop_w)) ||
        (rc = dv_prep_config_read_pixels(root, path, &c)))
        goto done;
    *out = c;
done:
    cJSON_Delete(root);
    return rc;
}
