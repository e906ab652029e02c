// template.c: prompt formats (dv_template.h): detection from the checkpoint and the turn texts.
#include "llm/dv_template.h"

#include "core/dv_error.h"
#include "core/dv_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dv_template_names[DV_TEMPLATE_COUNT] = {"vicuna", "mistral", "llama2", "plain", "chatml",
                                                                          "onevision"};

const char *dv_template_name(dv_template_kind k) { return k >= 0 && k < DV_TEMPLATE_COUNT ? dv_template_names[k] : "?"; }

int dv_template_parse(const char *name, dv_template_kind *out) {
    for (int k = 0; k < DV_TEMPLATE_COUNT; k++)
        if (!strcmp(name, dv_template_names[k])) {
            *out = (dv_template_kind)k;
            return 0;
        }
    return dv_error_set(DV_EINVAL, "--template: '%s' is not one of vicuna, mistral, llama2, plain, chatml, onevision",
                        name);
}

// Classifies a Jinja chat template by the markers each format's template must print.
static int classify(const char *tpl, dv_template_kind *out) {
    // LLaVA-OneVision's variant writes the role, then a space (ChatML: a newline)
    if (strstr(tpl, "<|im_start|>' + message['role'] + ' '") && strstr(tpl, "<|im_end|>")) *out = DV_TEMPLATE_ONEVISION;
    else if (strstr(tpl, "<|im_start|>") && strstr(tpl, "<|im_end|>")) *out = DV_TEMPLATE_CHATML;
    else if (strstr(tpl, "<<SYS>>")) *out = DV_TEMPLATE_LLAMA2;
    else if (strstr(tpl, "[INST]")) *out = DV_TEMPLATE_MISTRAL;
    else if (strstr(tpl, "USER") && strstr(tpl, "ASSISTANT")) *out = DV_TEMPLATE_VICUNA;
    else return 0;
    return 1;
}

// The chat template text of DIR, from whichever file the checkpoint uses (NULL when none).
static char *read_chat_template(const char *dir) {
    char path[4096];
    cJSON *j = NULL;
    char *out = NULL;
    const char *jsons[] = {"tokenizer_config.json", "chat_template.json"};
    for (int i = 0; i < 2 && !out; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, jsons[i]);
        if (dv_json_load(path, &j)) {
            dv_error_clear();
            continue;
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
        if (cJSON_IsString(t)) out = strdup(t->valuestring);
        else if (cJSON_IsArray(t)) { // [{"name": "default", "template": "..."}, ...]
            const cJSON *e;
            cJSON_ArrayForEach(e, t) {
                const char *tt = dv_json_get_string(e, "template");
                if (tt && !out) out = strdup(tt);
            }
        }
        cJSON_Delete(j);
    }
    if (out) return out;
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16;
    out = calloc(1, cap + 1);
    if (out) (void)!fread(out, 1, cap, f);
    fclose(f);
    return out;
}

int dv_template_detect(const char *model_dir, dv_template_kind *out, const char **why) {
    char *tpl = read_chat_template(model_dir);
    int found = tpl && classify(tpl, out);
    free(tpl);
    if (found) {
        *why = "from the model's chat template";
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    cJSON *j = NULL;
    int rc = dv_json_load(path, &j);
    if (rc) return rc;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "text_config");
    const char *mt = dv_json_get_string(j, "model_type");
    const char *tmt = cJSON_IsObject(tc) ? dv_json_get_string(tc, "model_type") : NULL;
    if (mt && !strcmp(mt, "llava_onevision")) {
        *out = DV_TEMPLATE_ONEVISION;
        *why = "from config.json (model_type llava_onevision)";
    } else if (cJSON_IsObject(tc)) {
        // LLaVA checkpoints: vicuna-based unless the language model is Mistral
        *out = tmt && !strcmp(tmt, "mistral") ? DV_TEMPLATE_MISTRAL : DV_TEMPLATE_VICUNA;
        *why = "from config.json (LLaVA text model type)";
    } else if (mt && !strcmp(mt, "mistral")) {
        *out = DV_TEMPLATE_MISTRAL;
        *why = "from config.json (model_type mistral)";
    } else if (mt && (!strcmp(mt, "qwen2") || !strcmp(mt, "qwen3"))) {
        *out = DV_TEMPLATE_CHATML;
        *why = "from config.json (Qwen model type)";
    } else if (mt && !strcmp(mt, "llama")) {
        *out = DV_TEMPLATE_LLAMA2;
        *why = "from config.json (model_type llama)";
    } else {
        *out = DV_TEMPLATE_PLAIN;
        *why = "no chat format found";
    }
    cJSON_Delete(j);
    return 0;
}

// A system text is literal when it holds no Jinja: no quote ends the string and no expression starts.
void dv_template_chatml_default_system(const char *tpl, char *buf, size_t cap) {
    static const char open[] = "<|im_start|>system", close[] = "<|im_end|>";
    buf[0] = 0;
    for (const char *p = tpl ? strstr(tpl, open) : NULL; p; p = strstr(p + 1, open)) {
        const char *s = p + sizeof open - 1;
        // the newline after the role: a real one (the JSON held "\n") or the two-character Jinja escape
        if (*s == '\n') s++;
        else if (s[0] == '\\' && s[1] == 'n') s += 2;
        else continue;
        const char *e = strstr(s, close);
        if (!e || e == s) continue;
        size_t n = 0;
        int literal = 1;
        for (const char *c = s; c < e && literal; c++) {
            if (*c == '\'' || *c == '"' || *c == '{' || *c == '}') literal = 0;
            else if (c[0] == '\\' && c + 1 < e && c[1] == 'n') { // Jinja escape in the string literal
                if (n + 1 < cap) buf[n++] = '\n';
                c++;
            } else if (n + 1 < cap) {
                buf[n++] = *c;
            }
        }
        if (literal) {
            buf[n] = 0;
            return;
        }
        buf[0] = 0;
    }
}

const char *dv_template_end_of_turn(dv_template_kind k) {
    return k == DV_TEMPLATE_CHATML || k == DV_TEMPLATE_ONEVISION ? "<|im_end|>" : "</s>";
}

int dv_template_load(const char *model_dir, int forced_kind, const char *system, dv_template *t, const char **why) {
    memset(t, 0, sizeof *t);
    if (forced_kind >= 0 && forced_kind < DV_TEMPLATE_COUNT) {
        t->kind = (dv_template_kind)forced_kind;
        *why = "set by --template";
    } else {
        int rc = dv_template_detect(model_dir, &t->kind, why);
        if (rc) return rc;
    }
    if (t->kind == DV_TEMPLATE_CHATML) {
        char *tpl = read_chat_template(model_dir);
        dv_template_chatml_default_system(tpl, t->default_system, sizeof t->default_system);
        t->video_inline = tpl && strstr(tpl, "<|vision_start|>") != NULL;
        free(tpl);
    }
    if (system) snprintf(t->system, sizeof t->system, "%s", system);
    return 0;
}

static int put(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int put(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) return dv_error_set(DV_EINVAL, "prompt text too long (%d bytes, at most %zu)", n, cap - 1);
    return 0;
}

int dv_template_prefix(const dv_template *t, char *buf, size_t cap) {
    const char *s = t->system;
    switch (t->kind) {
    case DV_TEMPLATE_VICUNA: return put(buf, cap, "%s%sUSER: ", s, *s ? " " : "");
    case DV_TEMPLATE_MISTRAL: return *s ? put(buf, cap, "[INST] %s\n\n", s) : put(buf, cap, "[INST] ");
    case DV_TEMPLATE_LLAMA2: return *s ? put(buf, cap, "[INST] <<SYS>>\n%s\n<</SYS>>\n\n", s) : put(buf, cap, "[INST] ");
    case DV_TEMPLATE_CHATML: {
        const char *sys = *s ? s : t->default_system;
        return *sys ? put(buf, cap, "<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n", sys)
                    : put(buf, cap, "<|im_start|>user\n");
    }
    case DV_TEMPLATE_ONEVISION:
        return *s ? put(buf, cap, "<|im_start|>system \n%s<|im_end|><|im_start|>user ", s) : put(buf, cap, "<|im_start|>user ");
    default: return *s ? put(buf, cap, "%s\n", s) : put(buf, cap, "%s", "");
    }
}

int dv_template_first_question(const dv_template *t, const char *q, char *buf, size_t cap) {
    switch (t->kind) {
    case DV_TEMPLATE_VICUNA: return put(buf, cap, "\n%s ASSISTANT:", q);
    case DV_TEMPLATE_MISTRAL:
    case DV_TEMPLATE_LLAMA2: return put(buf, cap, "\n%s [/INST]", q);
    case DV_TEMPLATE_CHATML:
        return put(buf, cap, "%s%s<|im_end|>\n<|im_start|>assistant\n", t->video_inline ? "" : "\n", q);
    case DV_TEMPLATE_ONEVISION: return put(buf, cap, "\n%s<|im_end|><|im_start|>assistant\n", q);
    default: return put(buf, cap, "\n%s\n", q);
    }
}

int dv_template_next_question(const dv_template *t, const char *q, char *buf, size_t cap) {
    switch (t->kind) {
    case DV_TEMPLATE_VICUNA: return put(buf, cap, "</s>USER: %s ASSISTANT:", q);
    case DV_TEMPLATE_MISTRAL: return put(buf, cap, "</s>[INST] %s [/INST]", q);
    case DV_TEMPLATE_LLAMA2: return put(buf, cap, "</s><s>[INST] %s [/INST]", q);
    case DV_TEMPLATE_CHATML: return put(buf, cap, "<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n", q);
    case DV_TEMPLATE_ONEVISION: return put(buf, cap, "<|im_end|><|im_start|>user \n%s<|im_end|><|im_start|>assistant\n", q);
    default: return put(buf, cap, "\n%s\n", q);
    }
}

int dv_template_chat_prompt(const dv_template *t, const char *q, char *buf, size_t cap) {
    int rc = dv_template_prefix(t, buf, cap);
    if (rc) return rc;
    const size_t n = strlen(buf);
    if ((rc = dv_template_first_question(t, q, buf + n, cap - n))) return rc;
    // no video to separate (OneVision's template writes "\n" before the text in any case)
    if (buf[n] == '\n' && t->kind != DV_TEMPLATE_ONEVISION) memmove(buf + n, buf + n + 1, strlen(buf + n + 1) + 1);
    return 0;
}
