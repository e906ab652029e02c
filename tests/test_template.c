// test_template.c: the ChatML prompt texts duovid builds (llm/template.c) against what transformers'
// chat-template renderer makes of the models' own templates (tests/fixtures/llm/chat_templates.json,
// written by make_text_fixtures.py: SmolLM2-135M-Instruct's template, Qwen2.5's and Qwen3's), for
// one-turn, system-prompt and two-turn conversations; detection from chat_template in
// tokenizer_config.json and from config.json; --template chatml forced; the default system prompt;
// the Qwen-VL fixtures' templates (Qwen3-VL-Instruct's from the Hub: no default system turn).
#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "core/dv_json.h"
#include "llm/dv_template.h"
#include "tests/dv_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Writes DIR/tokenizer_config.json holding just this chat template.
static int write_template(const char *dir, const char *tpl) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "chat_template", tpl);
    char *text = cJSON_PrintUnformatted(j), path[4200];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    int rc = text ? dv_fs_write_atomic(path, text, strlen(text)) : -1;
    free(text);
    cJSON_Delete(j);
    return rc;
}

// The conversation as duovid's pipeline builds it: the first turn without a video, then for every
// answered turn the answer text and the next question.
static int build(const dv_template *t, const cJSON *turns, char *buf, size_t cap) {
    const int n = cJSON_GetArraySize(turns);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *turn = cJSON_GetArrayItem(turns, i);
        const char *q = cJSON_GetArrayItem(turn, 0)->valuestring;
        const cJSON *a = cJSON_GetArrayItem(turn, 1);
        int rc = i == 0 ? dv_template_chat_prompt(t, q, buf + len, cap - len)
                        : dv_template_next_question(t, q, buf + len, cap - len);
        if (rc) return rc;
        len += strlen(buf + len);
        if (cJSON_IsString(a)) len += (size_t)snprintf(buf + len, cap - len, "%s", a->valuestring);
    }
    return 0;
}

int main(void) {
    cJSON *fx = NULL;
    if (dv_json_load(dv_test_path("tests/fixtures/llm/chat_templates.json"), &fx)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return dv_test_finish();
    }
    char dir[] = "/tmp/dv_test_template.XXXXXX";
    DV_CHECK(mkdtemp(dir) != NULL);
    const cJSON *tpl;
    int n_cases = 0;
    cJSON_ArrayForEach(tpl, cJSON_GetObjectItemCaseSensitive(fx, "templates")) {
        const char *name = dv_json_get_string(tpl, "name"), *src = dv_json_get_string(tpl, "chat_template");
        DV_CHECK(write_template(dir, src) == 0);
        dv_template t;
        const char *why = NULL;
        DV_CHECK(dv_template_load(dir, -1, NULL, &t, &why) == 0);
        DV_CHECK_MSG(t.kind == DV_TEMPLATE_CHATML, "%s detected as %s (%s)", name, dv_template_name(t.kind), why);
        printf("%s: %s (%s), default system prompt \"%s\"\n", name, dv_template_name(t.kind), why, t.default_system);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(tpl, "cases")) {
            const char *sys = dv_json_get_string(c, "system"), *want = dv_json_get_string(c, "text");
            DV_CHECK(dv_template_load(dir, -1, sys, &t, &why) == 0);
            char got[4096];
            int ok = build(&t, cJSON_GetObjectItemCaseSensitive(c, "turns"), got, sizeof got) == 0 && !strcmp(got, want);
            DV_CHECK_MSG(ok, "%s: duovid built\n%s\n-- HF renders --\n%s", name, got, want);
            n_cases++;
        }
    }
    printf("%d conversations equal transformers' rendering\n", n_cases);
    DV_CHECK(n_cases == 9);

    // default system prompts: a literal text is one, an expression is not
    char sys[256];
    dv_template_chatml_default_system("{{ '<|im_start|>system\\nBe brief.\\nReally.<|im_end|>\\n' }}", sys, sizeof sys);
    DV_CHECK(!strcmp(sys, "Be brief.\nReally."));
    dv_template_chatml_default_system("{{ '<|im_start|>system\\n' + m + '<|im_end|>' }}", sys, sizeof sys);
    DV_CHECK(!strcmp(sys, ""));
    dv_template_chatml_default_system(NULL, sys, sizeof sys);
    DV_CHECK(!strcmp(sys, ""));

    // no chat template: a Qwen config.json means ChatML (without a default system prompt); forcing
    // chatml on another model works; the name parses; the end-of-turn token
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char qwen_cfg[] = "{\"model_type\": \"qwen2\"}", llama_cfg[] = "{\"model_type\": \"llama\"}";
    DV_CHECK(dv_fs_write_atomic(path, qwen_cfg, sizeof qwen_cfg - 1) == 0);
    dv_template t;
    const char *why;
    DV_CHECK(dv_template_load(dir, -1, NULL, &t, &why) == 0 && t.kind == DV_TEMPLATE_CHATML && !*t.default_system);
    char got[512];
    DV_CHECK(dv_template_chat_prompt(&t, "Hi", got, sizeof got) == 0 &&
             !strcmp(got, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    DV_CHECK(dv_fs_write_atomic(path, llama_cfg, sizeof llama_cfg - 1) == 0);
    DV_CHECK(dv_template_load(dir, -1, NULL, &t, &why) == 0 && t.kind == DV_TEMPLATE_LLAMA2);
    dv_template_kind k;
    DV_CHECK(dv_template_parse("chatml", &k) == 0 && k == DV_TEMPLATE_CHATML);
    DV_CHECK(dv_template_load(dir, (int)k, "Sys.", &t, &why) == 0 && t.kind == DV_TEMPLATE_CHATML);
    DV_CHECK(dv_template_chat_prompt(&t, "Hi", got, sizeof got) == 0 &&
             !strcmp(got, "<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    DV_CHECK(!strcmp(dv_template_end_of_turn(DV_TEMPLATE_CHATML), "<|im_end|>"));
    DV_CHECK(dv_template_parse("chatml2", &k) == DV_EINVAL);
    // LLaVA-OneVision without a chat template: from config.json; its text-only turn keeps the "\n"
    const char ov_cfg[] = "{\"model_type\": \"llava_onevision\", \"text_config\": {\"model_type\": \"qwen2\"}}";
    DV_CHECK(dv_fs_write_atomic(path, ov_cfg, sizeof ov_cfg - 1) == 0);
    DV_CHECK(dv_template_load(dir, -1, NULL, &t, &why) == 0 && t.kind == DV_TEMPLATE_ONEVISION);
    DV_CHECK(dv_template_chat_prompt(&t, "Hi", got, sizeof got) == 0 &&
             !strcmp(got, "<|im_start|>user \nHi<|im_end|><|im_start|>assistant\n"));
    DV_CHECK(!strcmp(dv_template_end_of_turn(DV_TEMPLATE_ONEVISION), "<|im_end|>"));
    DV_CHECK(dv_template_parse("onevision", &k) == 0 && k == DV_TEMPLATE_ONEVISION);
    // the Qwen-VL fixtures: Qwen3-VL-Instruct's Hub template (chat_template.json; its system strings are
    // Jinja, so no default system turn) and the Qwen2.5-VL one (chat_template.jinja, a literal default)
    DV_CHECK(dv_template_load(dv_test_path("tests/fixtures/qwenvl/tiny-qwen3-vl"), -1, NULL, &t, &why) == 0 &&
             t.kind == DV_TEMPLATE_CHATML && !*t.default_system && t.video_inline);
    DV_CHECK(dv_template_prefix(&t, got, sizeof got) == 0 && !strcmp(got, "<|im_start|>user\n"));
    DV_CHECK(dv_template_load(dv_test_path("tests/fixtures/qwenvl/tiny-qwen2_5-vl"), -1, NULL, &t, &why) == 0 &&
             t.kind == DV_TEMPLATE_CHATML && !strcmp(t.default_system, "You are a helpful assistant.") && t.video_inline);
    // a vicuna chat prompt without a video has no stray newline
    t.kind = DV_TEMPLATE_VICUNA;
    t.system[0] = 0;
    DV_CHECK(dv_template_chat_prompt(&t, "Hi", got, sizeof got) == 0 && !strcmp(got, "USER: Hi ASSISTANT:"));
    unlink(path);
    rmdir(dir);
    cJSON_Delete(fx);
    return dv_test_finish();
}
