// qwen_prep.c: Qwen2VLVideoProcessor and Qwen3VLVideoProcessor (transformers 5, torchvision backend)
// as duovid runs them: the processor config, fps-based frame sampling, smart_resize and patchify, and
// Qwen3-VL's frame timestamps and prompt positions. The resize itself and the rescale/normalise are
// image_prep.c's (torch's antialiased uint8 bicubic, the fused float32 normalise).
#include "encoder/dv_qwen_vision.h"

#include "core/dv_error.h"
#include "core/dv_json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// size: {"shortest_edge": min_pixels, "longest_edge": max_pixels}; older files: min_pixels / max_pixels.
static int read_pixels(const cJSON *root, const char *what, dv_qwen_prep_config *c) {
    int rc;
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size");
    if (size && cJSON_IsObject(size)) {
        if ((rc = dv_json_get_int_opt(size, "shortest_edge", what, &c->min_pixels)) ||
            (rc = dv_json_get_int_opt(size, "longest_edge", what, &c->max_pixels)))
            return rc;
    }
    if ((rc = dv_json_get_int_opt(root, "min_pixels", what, &c->min_pixels)) ||
        (rc = dv_json_get_int_opt(root, "max_pixels", what, &c->max_pixels)))
        return rc;
    return 0;
}

// The two processors duovid runs, by their Hugging Face class names.
static const char *const class_names[2] = {"Qwen2VLVideoProcessor", "Qwen3VLVideoProcessor"};
static const dv_qwen_prep_kind class_kinds[2] = {DV_QWEN_PREP_QWEN2_VL, DV_QWEN_PREP_QWEN3_VL};

// The processor a Hugging Face class name selects (-1: neither); `fast`: transformers 4's *Fast names too.
static int kind_of_class(const char *name, int fast) {
    for (int i = 0; name && i < 2; i++) {
        const size_t n = strlen(class_names[i]);
        if (!strncmp(name, class_names[i], n) && (!name[n] || (fast && !strcmp(name + n, "Fast"))))
            return (int)class_kinds[i];
    }
    return -1;
}

// *kind from a video_processor_type read in `file` (the processor file or config.json); a type naming
// neither processor is an error naming the file.
static int kind_of_type(const char *type, const char *file, dv_qwen_prep_kind *kind) {
    const int k = kind_of_class(type, 1);
    if (k < 0)
        return dv_error_set(DV_EUNSUPPORTED, "%s: video_processor_type '%s' is not %s or %s", file, type,
                            class_names[0], class_names[1]);
    *kind = (dv_qwen_prep_kind)k;
    return 0;
}

// AutoVideoProcessor's order (transformers 5): the processor file's video_processor_type; else its
// image_processor_type with "ImageProcessor" -> "VideoProcessor" when that names a processor (else
// passed over); else config.json's video_processor_type; else config.json's model_type. A type naming
// neither Qwen processor is an error (duovid runs only these two).
static int read_kind(const cJSON *root, const char *path, const char *model_dir, dv_qwen_prep_kind *kind) {
    const char *type = dv_json_get_string(root, "video_processor_type");
    const char *img = type ? NULL : dv_json_get_string(root, "image_processor_type");
    int k = -1;
    if (type) return kind_of_type(type, path, kind);
    const char *at = img ? strstr(img, "ImageProcessor") : NULL;
    if (at) {
        char inferred[128];
        snprintf(inferred, sizeof inferred, "%.*sVideoProcessor%s", (int)(at - img), img, at + 14);
        if ((k = kind_of_class(inferred, 0)) >= 0) {
            *kind = (dv_qwen_prep_kind)k;
            return 0;
        }
    }
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.json", model_dir);
    cJSON *cfg = NULL;
    int rc = dv_json_load(cpath, &cfg);
    if (rc) {
        char why[512];
        snprintf(why, sizeof why, "%s", dv_error_message());
        return dv_error_set(rc, "%s: no video_processor_type, and no model_type to infer it from (%s)", path, why);
    }
    const char *ctype = cJSON_IsObject(cfg) ? dv_json_get_string(cfg, "video_processor_type") : NULL;
    const char *mt = cJSON_IsObject(cfg) ? dv_json_get_string(cfg, "model_type") : NULL;
    // HF's VIDEO_PROCESSOR_MAPPING_NAMES entries for the Qwen processors
    static const struct {
        const char *model_type;
        dv_qwen_prep_kind kind;
    } by_model[] = {{"qwen2_vl", DV_QWEN_PREP_QWEN2_VL},     {"qwen2_5_vl", DV_QWEN_PREP_QWEN2_VL},
                    {"qwen2_5_omni", DV_QWEN_PREP_QWEN2_VL}, {"qwen3_omni_moe", DV_QWEN_PREP_QWEN2_VL},
                    {"qwen3_vl", DV_QWEN_PREP_QWEN3_VL},     {"qwen3_vl_moe", DV_QWEN_PREP_QWEN3_VL},
                    {"qwen3_5", DV_QWEN_PREP_QWEN3_VL},      {"qwen3_5_moe", DV_QWEN_PREP_QWEN3_VL}};
    if (ctype) {
        rc = kind_of_type(ctype, cpath, kind);
    } else {
        for (size_t i = 0; mt && i < sizeof by_model / sizeof by_model[0] && k < 0; i++)
            if (!strcmp(mt, by_model[i].model_type)) k = (int)by_model[i].kind;
        if (k < 0)
            rc = dv_error_set(DV_EUNSUPPORTED, "%s: no video_processor_type, and %s model_type '%s' names no Qwen "
                              "video processor", path, cpath, mt ? mt : "(none)");
        else
            *kind = (dv_qwen_prep_kind)k;
    }
    cJSON_Delete(cfg);
    return rc;
}

int dv_qwen_prep_config_load(const char *model_dir, int64_t min_pixels, int64_t max_pixels, dv_qwen_prep_config *out) {
    char path[4096];
    const char *name = NULL;
    int rc = dv_prep_config_find_file(model_dir, path, sizeof path, &name);
    if (rc) return rc;
    cJSON *root = NULL;
    rc = dv_json_load(path, &root);
    if (rc) return rc;
    // Qwen2VLVideoProcessor's class defaults (Qwen3VLVideoProcessor's below)
    dv_qwen_prep_config c = {
        .patch = 14, .temporal_patch = 2, .merge = 2, .min_pixels = 128 * 28 * 28, .max_pixels = 28 * 28 * 768,
        .fps = 2.0, .min_frames = 4, .max_frames = 768, .max_video_tokens = 128000,
        .px = {.do_resize = 1, .resample = DV_RESAMPLE_BICUBIC, .do_rescale = 1, .rescale_factor = 1.0 / 255.0,
               .do_normalize = 1, .mean = {0.48145466, 0.4578275, 0.40821073},
               .std = {0.26862954, 0.26130258, 0.27577711}},
    };
    snprintf(c.source, sizeof c.source, "%s", name);
    snprintf(c.px.source, sizeof c.px.source, "%s", name);
    if (!cJSON_IsObject(root)) {
        rc = dv_error_set(DV_EFORMAT, "%s: not a JSON object", path);
        goto done;
    }
    if ((rc = read_kind(root, path, model_dir, &c.kind))) goto done;
    if (c.kind == DV_QWEN_PREP_QWEN3_VL) {
        c.patch = 16, c.min_pixels = 128 * 32 * 32, c.max_pixels = 32 * 32 * 768, c.max_video_tokens = 768;
        for (int i = 0; i < 3; i++) c.px.mean[i] = c.px.std[i] = 0.5; // IMAGENET_STANDARD
    }
    int64_t patch = c.patch, tp = c.temporal_patch, merge = c.merge, minf = c.min_frames, maxf = c.max_frames;
    if ((rc = read_pixels(root, name, &c)) || (rc = dv_json_get_int_opt(root, "patch_size", name, &patch)) ||
        (rc = dv_json_get_int_opt(root, "temporal_patch_size", name, &tp)) ||
        (rc = dv_json_get_int_opt(root, "merge_size", name, &merge)) ||
        (rc = dv_json_get_int_opt(root, "min_frames", name, &minf)) ||
        (rc = dv_json_get_int_opt(root, "max_frames", name, &maxf)) ||
        (rc = dv_json_get_bool_opt(root, "do_sample_frames", name, &c.do_sample_frames)) ||
        (rc = dv_json_get_bool_opt(root, "cap_pixels_per_frame", name, &c.cap_pixels_per_frame)) ||
        (rc = dv_json_get_int_opt(root, "max_video_tokens", name, &c.max_video_tokens)) ||
        (rc = dv_prep_config_read_pixels(root, path, &c.px)))
        goto done;
    const cJSON *fps = cJSON_GetObjectItemCaseSensitive(root, "fps");
    if (fps && cJSON_IsNumber(fps)) c.fps = fps->valuedouble; // null / absent: qwen-vl-utils' 2 fps
    if (min_pixels > 0) c.min_pixels = min_pixels;
    if (max_pixels > 0) c.max_pixels = max_pixels;
    if (patch < 1 || patch > 64 || tp < 1 || tp > 8 || merge < 1 || merge > 8 || minf < 0 || maxf < 1 ||
        !(c.fps > 0 && c.fps <= 240) || c.min_pixels < 1 || c.max_pixels < c.min_pixels) {
        rc = dv_error_set(DV_EFORMAT,
                          "%s: bad values (patch_size %lld, temporal_patch_size %lld, merge_size %lld, frames %lld..%lld, "
                          "fps %g, pixels %lld..%lld)",
                          path, (long long)patch, (long long)tp, (long long)merge, (long long)minf, (long long)maxf,
                          c.fps, (long long)c.min_pixels, (long long)c.max_pixels);
        goto done;
    }
    c.patch = (int)patch, c.temporal_patch = (int)tp, c.merge = (int)merge;
    c.min_frames = (int)minf, c.max_frames = (int)maxf;
    *out = c;
done:
    cJSON_Delete(root);
    return rc;
}

// Python's round() on a double: half to even.
static double py_round(double x) { return nearbyint(x); }

int dv_qwen_smart_resize(int h, int w, int factor, int64_t min_pixels, int64_t max_pixels, int *rh, int *rw) {
    if (h < 1 || w < 1 || factor < 1) return dv_error_set(DV_EINVAL, "smart_resize: frame %dx%d", w, h);
    const double hi = h > w ? h : w, lo = h > w ? w : h;
    if (hi / lo > 200) return dv_error_set(DV_EINVAL, "frame %dx%d: aspect ratio above 200", w, h);
    double hb = py_round((double)h / factor) * factor, wb = py_round((double)w / factor) * factor;
    if (hb * wb > (double)max_pixels) {
        const double beta = sqrt((double)h * w / (double)max_pixels);
        hb = fmax(factor, floor(h / beta / factor) * factor);
        wb = fmax(factor, floor(w / beta / factor) * factor);
    } else if (hb * wb < (double)min_pixels) {
        const double beta = sqrt((double)min_pixels / ((double)h * w));
        hb = ceil(h * beta / factor) * factor;
        wb = ceil(w * beta / factor) * factor;
    }
    if (hb < factor || wb < factor || hb > 1 << 16 || wb > 1 << 16)
        return dv_error_set(DV_EINVAL, "frame %dx%d resizes to %.0fx%.0f (outside %d .. 65536)", w, h, wb, hb, factor);
    *rh = (int)hb;
    *rw = (int)wb;
    return 0;
}

// Qwen3VLVideoProcessor.resize + its smart_resize: frames below factor scaled up first, the pixel
// bounds for the video volume t_bar * h_bar * w_bar (t_bar = round(n / tp) * tp), beta from n itself;
// cap_pixels_per_frame: an even share of longest_edge per frame, at most max_video_tokens tokens.
static int smart_resize_video(const dv_qwen_prep_config *c, int w, int h, int n, int *rw, int *rh) {
    const int factor = c->patch * c->merge, tp = c->temporal_patch;
    if (n < tp) return dv_error_set(DV_EINVAL, "%d frames: fewer than the temporal patch of %d", n, tp);
    int64_t max_px = c->max_pixels;
    if (c->cap_pixels_per_frame) {
        int64_t ppf = (int64_t)c->max_video_tokens * factor * factor, share = c->max_pixels / n;
        ppf = ppf < share ? ppf : share;
        const int64_t floor_px = (int64_t)((double)c->min_pixels * 1.05);
        max_px = (ppf > floor_px ? ppf : floor_px) * n;
    }
    double hh = h, ww = w;
    if (h < factor || w < factor) { // Python: int(height * scale)
        const double scale = fmax((double)factor / h, (double)factor / w);
        hh = floor(h * scale), ww = floor(w * scale);
    }
    if (fmax(hh, ww) / fmin(hh, ww) > 200) return dv_error_set(DV_EINVAL, "frame %dx%d: aspect ratio above 200", w, h);
    double hb = py_round(hh / factor) * factor, wb = py_round(ww / factor) * factor;
    const double tb = py_round((double)n / tp) * tp;
    if (tb * hb * wb > (double)max_px) {
        const double beta = sqrt((double)n * hh * ww / (double)max_px);
        hb = fmax(factor, floor(hh / beta / factor) * factor);
        wb = fmax(factor, floor(ww / beta / factor) * factor);
    } else if (tb * hb * wb < (double)c->min_pixels) {
        const double beta = sqrt((double)c->min_pixels / ((double)n * hh * ww));
        hb = ceil(hh * beta / factor) * factor;
        wb = ceil(ww * beta / factor) * factor;
    }
    if (hb < factor || wb < factor || hb > 1 << 16 || wb > 1 << 16)
        return dv_error_set(DV_EINVAL, "frame %dx%d resizes to %.0fx%.0f (outside %d .. 65536)", w, h, wb, hb, factor);
    *rh = (int)hb;
    *rw = (int)wb;
    return 0;
}

int dv_qwen_frame_size(const dv_qwen_prep_config *c, int w, int h, int n_frames, int *rw, int *rh) {
    if (w < c->patch || h < c->patch)
        return dv_error_set(DV_EINVAL, "frame %dx%d is smaller than one %dx%d patch", w, h, c->patch, c->patch);
    const int factor = c->patch * c->merge;
    if (c->kind == DV_QWEN_PREP_QWEN3_VL) return smart_resize_video(c, w, h, n_frames, rw, rh);
    int64_t max_px = c->max_pixels;
    if (c->cap_pixels_per_frame && n_frames > 0) { // HF resize(): an even share of the video's budget
        const int64_t total = (int64_t)((double)c->max_video_tokens * factor * factor * 0.9);
        int64_t share = total * c->temporal_patch / n_frames;
        if (share > max_px) share = max_px;
        const int64_t floor_px = (int64_t)((double)c->min_pixels * 1.05);
        max_px = share > floor_px ? share : floor_px;
    }
    return dv_qwen_smart_resize(h, w, factor, c->min_pixels, max_px, rh, rw);
}

int dv_qwen_sample_frames(const dv_qwen_prep_config *c, int64_t total, double video_fps, int32_t *idx, int cap,
                          int *n_out) {
    const int tp = c->temporal_patch;
    if (total < tp)
        return dv_error_set(DV_EINVAL, "video has %lld frame%s: too short for the temporal patch of %d", (long long)total,
                            total == 1 ? "" : "s", tp);
    if (!(video_fps > 0)) return dv_error_set(DV_EINVAL, "video frame rate %g: cannot sample at %g fps", video_fps, c->fps);
    if (c->kind == DV_QWEN_PREP_QWEN3_VL) { // int(), clamped; np.linspace(0, total - 1, n).round()
        double n = trunc((double)total / video_fps * c->fps);
        n = fmin(fmin(fmax(n, c->min_frames), c->max_frames), (double)total);
        if (n < tp) return dv_error_set(DV_EINVAL, "video too short: %g frames to sample with a temporal patch of %d", n, tp);
        const int count = (int)n;
        const double step = count > 1 ? (double)(total - 1) / (count - 1) : 0;
        for (int k = 0; k < count && idx && k < cap; k++)
            idx[k] = (int32_t)py_round(k == count - 1 && count > 1 ? (double)(total - 1) : k * step);
        *n_out = count;
        return 0;
    }
    const double max_frames = floor((double)(c->max_frames < total ? c->max_frames : total) / tp) * tp;
    double n = (double)total / video_fps * c->fps;
    n = fmin(fmin(fmax(n, c->min_frames), max_frames), (double)total);
    n = floor(n / tp) * tp;
    if (n < tp) return dv_error_set(DV_EINVAL, "video too short: %g frames to sample with a temporal patch of %d", n, tp);
    // torch.arange(0, total, total / n).int(): float32 values k * step, truncated
    const double step = (double)total / n;
    const int count = (int)ceil((double)total / step);
    for (int k = 0; k < count && idx && k < cap; k++) idx[k] = (int32_t)(float)(k * step);
    *n_out = count;
    return 0;
}

void dv_qwen_patchify(const dv_qwen_prep_config *c, const float *chw, int n, int H, int W, float *out) {
    const int P = c->patch, tp = c->temporal_patch, m = c->merge;
    const int gt = (n + tp - 1) / tp, gh = H / P, gw = W / P;
    const size_t K = (size_t)3 * tp * P * P, plane = (size_t)H * W;
    for (int t = 0; t < gt; t++)
        for (int bh = 0; bh < gh / m; bh++)
            for (int bw = 0; bw < gw / m; bw++)
                for (int my = 0; my < m; my++)
                    for (int mx = 0; mx < m; mx++) {
                        const int py = bh * m + my, px = bw * m + mx;
                        const size_t row = (((size_t)t * (gh / m) + bh) * (gw / m) + bw) * m * m + (size_t)my * m + mx;
                        float *o = out + row * K;
                        for (int ch = 0; ch < 3; ch++)
                            for (int f = 0; f < tp; f++) {
                                int fr = t * tp + f;
                                if (fr >= n) fr = n - 1; // the processor repeats the last frame
                                const float *src = chw + (size_t)fr * 3 * plane + (size_t)ch * plane;
                                for (int y = 0; y < P; y++, o += P)
                                    memcpy(o, src + (size_t)(py * P + y) * W + (size_t)px * P, (size_t)P * sizeof(float));
                            }
                    }
}

int dv_qwen_video_positions_part(int start, int t0, int nt, int gh, int gw, int m, double interval, int32_t *pos,
                                 int64_t stride) {
    const int lh = gh / m, lw = gw / m;
    int64_t i = 0;
    for (int t = t0; t < t0 + nt; t++) {
        const int32_t tp = start + (int32_t)(int64_t)((float)t * (float)interval); // torch: float32, .long()
        for (int y = 0; y < lh; y++)
            for (int x = 0; x < lw; x++, i++) {
                pos[i] = tp;
                pos[stride + i] = start + y;
                pos[2 * stride + i] = start + x;
            }
    }
    return start + (lh > lw ? lh : lw);
}

int dv_qwen_video_positions(int start, int gt, int gh, int gw, int m, double interval, int32_t *pos, int64_t stride) {
    return dv_qwen_video_positions_part(start, 0, gt, gh, gw, m, interval, pos, stride);
}

void dv_qwen_frame_timestamps(const dv_qwen_prep_config *c, const int32_t *idx, int n, double video_fps, double *sec) {
    const int tp = c->temporal_patch, gt = (n + tp - 1) / tp;
    for (int k = 0; k < gt; k++) {
        const int a = k * tp, b = k * tp + tp - 1 < n ? k * tp + tp - 1 : n - 1; // the last frame repeated
        sec[k] = (idx[a] / video_fps + idx[b] / video_fps) / 2;
    }
}

void dv_qwen_timestamp_text(double sec, char *buf, size_t size) { snprintf(buf, size, "<%.1f seconds>", sec); }

int dv_qwen3_video_positions(int start, int gt, int gh, int gw, int m, const int *n_before, int n_after, int32_t *pos,
                             int64_t stride) {
    int64_t i = 0;
    int p = start;
    for (int t = 0; t < gt; t++) {
        for (int j = 0; j < n_before[t]; j++, i++) pos[i] = pos[stride + i] = pos[2 * stride + i] = p++;
        p = dv_qwen_video_positions(p, 1, gh, gw, m, 0, pos + i, stride);
        i += (int64_t)(gh / m) * (gw / m);
        for (int j = 0; j < n_after; j++, i++) pos[i] = pos[stride + i] = pos[2 * stride + i] = p++;
    }
    return p;
}
