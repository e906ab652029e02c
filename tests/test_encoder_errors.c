// test_encoder_errors.c: bad input gives a clear error, not a crash or silent garbage.
//
// Each case copies the tiny-llava fixture into a temporary folder with one thing broken (a config
// without vision fields, an unknown model type, projector tensors dropped from the checkpoint, a
// processor whose crop is not the tower's size, a tower deeper than its tensors) and checks the code
// and that the message names the culprit; then frames of the wrong size/format at encode time.
#include "core/dv_json.h"
#include "tests/test_encoder_util.h"

#include <stdlib.h>
#include <unistd.h>

#define SRC ENC_FIX "tiny-llava"

static char tmp_dir[256];

static int write_json(const char *name, const cJSON *j) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    char *s = cJSON_Print(j);
    FILE *f = fopen(path, "w");
    int ok = s && f && fputs(s, f) >= 0;
    if (f) ok &= fclose(f) == 0;
    free(s);
    return ok ? 0 : -1;
}

static cJSON *load_src_json(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, SRC "/%s", name);
    cJSON *j = NULL;
    return dv_json_load(dv_test_path(rel), &j) ? NULL : j;
}

// model.safetensors of the fixture without the tensors whose name starts with `drop` (NULL: none).
static int write_weights(const char *drop) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(SRC "/model.safetensors"), &st)) return -1;
    const int n = dv_safetensors_count(st);
    dv_st_write_tensor *w = calloc((size_t)n, sizeof *w);
    int m = 0;
    for (int i = 0; w && i < n; i++) {
        const dv_st_tensor *t = dv_safetensors_at(st, i);
        if (drop && !strncmp(t->name, drop, strlen(drop))) continue;
        w[m] = (dv_st_write_tensor){.name = t->name, .dtype = t->dtype, .n_dims = t->n_dims, .data = t->data};
        memcpy(w[m].shape, t->shape, sizeof t->shape);
        m++;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp_dir);
    int rc = w ? dv_safetensors_write(path, w, m, NULL, NULL, 0) : -1;
    free(w);
    dv_safetensors_free(st);
    return rc;
}

// Fresh copy of the fixture: config and processor JSON (edited by the callers), weights minus `drop`.
static int make_model(cJSON **cfg, cJSON **proc, const char *drop) {
    *cfg = load_src_json("config.json");
    *proc = load_src_json("preprocessor_config.json");
    return *cfg && *proc && write_weights(drop) == 0 ? 0 : -1;
}

static int save_model(const cJSON *cfg, const cJSON *proc) {
    return write_json("config.json", cfg) || write_json("preprocessor_config.json", proc) ? -1 : 0;
}

// Opens tmp_dir, expects `code` and a message containing `needle`.
static void expect_open_error(const char *what, int code, const char *needle) {
    dv_encoder *e = NULL;
    dv_encoder_params p = dv_encoder_default_params();
    p.n_threads = 1;
    const int rc = dv_encoder_open(tmp_dir, &p, &e);
    const char *msg = dv_error_message();
    printf("%-34s -> %d: %s\n", what, rc, msg);
    DV_CHECK_MSG(rc == code, "%s: code %d, expected %d", what, rc, code);
    DV_CHECK_MSG(strstr(msg, needle) != NULL, "%s: message lacks '%s'", what, needle);
    DV_CHECK(e == NULL);
    dv_encoder_free(e);
}

static void case_config(const char *what, const char *key_path, int code, const char *needle) {
    cJSON *cfg, *proc;
    if (make_model(&cfg, &proc, NULL)) {
        DV_CHECK_MSG(0, "%s: cannot copy the fixture", what);
    } else {
        // key_path: "vision_config.hidden_size" deletes a vision key, "vision_config" the whole object
        const char *dot = strchr(key_path, '.');
        if (dot) {
            char sub[64];
            snprintf(sub, sizeof sub, "%.*s", (int)(dot - key_path), key_path);
            cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, sub), dot + 1);
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(cfg, key_path);
        }
        if (save_model(cfg, proc) == 0) expect_open_error(what, code, needle);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(proc);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/duovid-enc-XXXXXX");
    if (!mkdtemp(tmp_dir)) DV_TEST_SKIP("cannot make a temporary folder");
    cJSON *cfg = NULL, *proc = NULL;

    // the untouched copy opens (the harness itself works)
    if (make_model(&cfg, &proc, NULL) == 0 && save_model(cfg, proc) == 0) {
        dv_encoder *e = NULL;
        DV_CHECK_MSG(dv_encoder_open(tmp_dir, NULL, &e) == 0, "copy: %s", dv_error_message());
        dv_encoder_free(e);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(proc);

    case_config("vision hidden_size missing", "vision_config.hidden_size", DV_EFORMAT, "missing 'hidden_size'");
    case_config("vision patch_size missing", "vision_config.patch_size", DV_EFORMAT, "'patch_size'");
    case_config("no vision_config", "vision_config", DV_EFORMAT, "vision_config");
    case_config("no model_type", "model_type", DV_EFORMAT, "model_type");

    // an LLM-only checkpoint
    if (make_model(&cfg, &proc, NULL) == 0) {
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "model_type", cJSON_CreateString("mistral"));
        if (save_model(cfg, proc) == 0) expect_open_error("model_type mistral", DV_EUNSUPPORTED, "'mistral'");
    }
    cJSON_Delete(cfg);
    cJSON_Delete(proc);

    // projector tensors missing: all of them, then one bias
    if (make_model(&cfg, &proc, "multi_modal_projector.") == 0 && save_model(cfg, proc) == 0)
        expect_open_error("no projector tensors", DV_ENOTFOUND, "multi_modal_projector.linear_1.weight");
    cJSON_Delete(cfg);
    cJSON_Delete(proc);
    if (make_model(&cfg, &proc, "multi_modal_projector.linear_2.bias") == 0 && save_model(cfg, proc) == 0)
        expect_open_error("no projector linear_2.bias", DV_ENOTFOUND, "multi_modal_projector.linear_2.bias");
    cJSON_Delete(cfg);
    cJSON_Delete(proc);

    // a tower deeper than its tensors (3 layers configured, layer -1 wanted, 2 stored)
    if (make_model(&cfg, &proc, NULL) == 0) {
        cJSON *vc = cJSON_GetObjectItemCaseSensitive(cfg, "vision_config");
        cJSON_ReplaceItemInObjectCaseSensitive(vc, "num_hidden_layers", cJSON_CreateNumber(3));
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "vision_feature_layer", cJSON_CreateNumber(-1));
        if (save_model(cfg, proc) == 0)
            expect_open_error("missing layer 2 tensors", DV_ENOTFOUND, "encoder.layers.2.");
    }
    cJSON_Delete(cfg);
    cJSON_Delete(proc);

    // feature layer outside the tower
    if (make_model(&cfg, &proc, NULL) == 0) {
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "vision_feature_layer", cJSON_CreateNumber(-5));
        if (save_model(cfg, proc) == 0) expect_open_error("vision_feature_layer -5", DV_EFORMAT, "-5");
    }
    cJSON_Delete(cfg);
    cJSON_Delete(proc);

    // processor crop not the tower's image size
    if (make_model(&cfg, &proc, NULL) == 0) {
        cJSON *crop = cJSON_GetObjectItemCaseSensitive(proc, "crop_size");
        cJSON_ReplaceItemInObjectCaseSensitive(crop, "height", cJSON_CreateNumber(100));
        if (save_model(cfg, proc) == 0) expect_open_error("crop 100x84 for image 84", DV_EFORMAT, "image_size");
    }
    cJSON_Delete(cfg);
    cJSON_Delete(proc);

    // no processor config at all
    if (make_model(&cfg, &proc, NULL) == 0 && save_model(cfg, proc) == 0) {
        char path[512];
        snprintf(path, sizeof path, "%s/preprocessor_config.json", tmp_dir);
        unlink(path);
        expect_open_error("no preprocessor_config.json", DV_ENOTFOUND, "preprocessor_config.json");
    }
    cJSON_Delete(cfg);
    cJSON_Delete(proc);

    // bad frames at encode time: the error names the frame and the problem
    if (make_model(&cfg, &proc, NULL) == 0 && save_model(cfg, proc) == 0) {
        dv_encoder *e = NULL;
        if (dv_encoder_open(tmp_dir, NULL, &e) == 0) {
            uint8_t px[32 * 24 * 3] = {0};
            float *out = malloc(sizeof(float) * 3 * (size_t)dv_encoder_tokens_per_frame(e) * dv_encoder_d_model(e));
            dv_image frames[3] = {{.rgb = px, .w = 32, .h = 24, .stride = 96},
                                  {.rgb = px, .w = 32, .h = 24, .stride = 64}, // stride of a 2-byte format
                                  {.rgb = px, .w = 0, .h = 24, .stride = 96}};
            int rc = dv_encoder_encode(e, frames, 2, out);
            printf("%-34s -> %d: %s\n", "frame with a 2-byte stride", rc, dv_error_message());
            DV_CHECK(rc == DV_EINVAL && strstr(dv_error_message(), "frame 1") && strstr(dv_error_message(), "stride"));
            rc = dv_encoder_encode(e, frames + 2, 1, out);
            printf("%-34s -> %d: %s\n", "empty frame", rc, dv_error_message());
            DV_CHECK(rc == DV_EINVAL && strstr(dv_error_message(), "frame 0"));
            rc = dv_encoder_encode(e, frames, 1, out); // and it still works afterwards
            DV_CHECK(rc == 0);
            free(out);
        }
        dv_encoder_free(e);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(proc);

    // not a folder
    dv_encoder *e = NULL;
    int rc = dv_encoder_open("/nonexistent/model", NULL, &e);
    printf("%-34s -> %d: %s\n", "no such folder", rc, dv_error_message());
    DV_CHECK(rc == DV_ENOTFOUND && e == NULL);

    const char *files[] = {"config.json", "preprocessor_config.json", "model.safetensors"};
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmp_dir, files[i]);
        unlink(path);
    }
    rmdir(tmp_dir);
    return dv_test_finish();
}
