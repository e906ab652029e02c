// test_hub.c: which repository files `duovid pull` fetches (dv_hub_select) and which names it accepts as
// local paths (dv_hub_name_ok), on hand-made listings; the network side is tests/cli/pull.sh.
#include "hub/dv_hub.h"
#include "core/dv_error.h"
#include "tests/dv_test.h"

#include <string.h>

#define MAXF 16

// Builds a listing from names and runs dv_hub_select; returns its status, *picked the chosen names
// joined by ' '.
static int select_names(const char *const *names, int n, const char *index, const char *const *inc, int n_inc,
                        char *picked, size_t cap) {
    dv_hub_file files[MAXF] = {{0}};
    unsigned char pick[MAXF];
    for (int i = 0; i < n; i++) files[i] = (dv_hub_file){.name = (char *)names[i], .size = 1};
    int rc = dv_hub_select(files, n, index, inc, n_inc, pick);
    picked[0] = 0;
    for (int i = 0; i < n; i++)
        if (pick[i]) {
            size_t l = strlen(picked);
            snprintf(picked + l, cap - l, "%s%s", l ? " " : "", names[i]);
        }
    return rc;
}

static void test_plain_repo(void) {
    const char *names[] = {"config.json", "generation_config.json", "model.safetensors", "pytorch_model.bin",
                           "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "added_tokens.json", "README.md", ".gitattributes", "onnx/model.onnx",
                           "preprocessor_config.json", "chat_template.jinja", "model.gguf", "sub/model.safetensors"};
    char got[1024];
    int rc = select_names(names, 16, NULL, NULL, 0, got, sizeof got);
    DV_CHECK(rc == 0);
    DV_CHECK_MSG(!strcmp(got, "config.json generation_config.json model.safetensors tokenizer.model tokenizer.json "
                              "tokenizer_config.json special_tokens_map.json added_tokens.json "
                              "preprocessor_config.json chat_template.jinja"),
                 "picked '%s'", got);
    const char *inc[] = {"README*", "onnx/*"};
    rc = select_names(names, 16, NULL, inc, 2, got, sizeof got);
    DV_CHECK(rc == 0 && strstr(got, "README.md") && strstr(got, "onnx/model.onnx") && !strstr(got, ".bin"));
}

static void test_sharded_repo(void) {
    const char *names[] = {"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
                           "model-00002-of-00002.safetensors", "consolidated.safetensors", "tokenizer.model"};
    const char *index = "{\"metadata\": {}, \"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", "
                        "\"b\": \"model-00002-of-00002.safetensors\", \"c\": \"model-00001-of-00002.safetensors\"}}";
    char got[1024];
    DV_CHECK(select_names(names, 6, index, NULL, 0, got, sizeof got) == 0);
    DV_CHECK_MSG(!strcmp(got, "config.json model.safetensors.index.json model-00001-of-00002.safetensors "
                              "model-00002-of-00002.safetensors tokenizer.model"),
                 "picked '%s'", got);
    const char *missing = "{\"weight_map\": {\"a\": \"model-00003-of-00003.safetensors\"}}";
    DV_CHECK(select_names(names, 6, missing, NULL, 0, got, sizeof got) == DV_ENOTFOUND);
    DV_CHECK(strstr(dv_error_message(), "model-00003-of-00003.safetensors") != NULL);
    DV_CHECK(select_names(names, 6, "{\"weight_map\": {}}", NULL, 0, got, sizeof got) == DV_EFORMAT);
    DV_CHECK(select_names(names, 6, "{\"weight_map\": [1]}", NULL, 0, got, sizeof got) == DV_EFORMAT);
    DV_CHECK(select_names(names, 6, "{\"weight_map\": {\"a\": 3}}", NULL, 0, got, sizeof got) == DV_EFORMAT);
    DV_CHECK(select_names(names, 6, "{not json", NULL, 0, got, sizeof got) == DV_EFORMAT);
}

static void test_no_safetensors(void) {
    const char *names[] = {"config.json", "pytorch_model.bin", "tokenizer.model", "sub/model.safetensors"};
    char got[256];
    DV_CHECK(select_names(names, 4, NULL, NULL, 0, got, sizeof got) == DV_EUNSUPPORTED);
    DV_CHECK(!strcmp(dv_error_message(), "no safetensors weights (duovid reads only safetensors)"));
    DV_CHECK(select_names(names, 0, NULL, NULL, 0, got, sizeof got) == DV_EUNSUPPORTED);
}

static void test_names(void) {
    const char *good[] = {"config.json", "sub/x.json", "a/b/c.safetensors", ".gitattributes", "a..b"};
    const char *bad[] = {"", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", ".", "..", "a\\b", "a\nb"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) DV_CHECK_MSG(dv_hub_name_ok(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) DV_CHECK_MSG(!dv_hub_name_ok(bad[i]), "'%s'", bad[i]);
}

int main(void) {
    test_plain_repo();
    test_sharded_repo();
    test_no_safetensors();
    test_names();
    return dv_test_finish();
}
