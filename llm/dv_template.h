// dv_template.h: prompt formats of the chat models duovid runs, as the models were trained on them.
//
// A video question is one user turn whose content is the video followed by the question; the
// pipeline splices the video's embeddings between the text before it (prefix) and after it (first
// question). Later turns follow the model's answer. Texts use the literal special-token spellings
// ("</s>", "<s>"), which the tokenizer turns into their ids.
//
//   vicuna  (LLaVA-NeXT-Video-7B, llava-1.5):  "{system }USER: " VIDEO "\n{q} ASSISTANT:"
//           next turn after the answer:        "</s>USER: {q} ASSISTANT:"
//   mistral (llava-v1.6-mistral, Mistral-Instruct): "[INST] " VIDEO "\n{q} [/INST]"     next: "</s>[INST] {q} [/INST]"
//   llama2  (Llama-2-chat):  "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n" VIDEO "\n{q} [/INST]"
//           next: "</s><s>[INST] {q} [/INST]"
//   plain   (no chat format): VIDEO "\n{q}\n"                                   next: "\n{q}\n"
//   chatml  (Qwen2/2.5/3, SmolLM2): "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n" VIDEO
//           "\n{q}<|im_end|>\n<|im_start|>assistant\n"
//           next: "<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
//           The system block is left out when there is no system prompt; the model's default one (a
//           literal system text in its chat template: SmolLM2's "You are a helpful AI assistant named
//           SmolLM...", Qwen2.5's "You are Qwen...") is used unless the caller gives one, as the
//           template itself does.
//   onevision (LLaVA-OneVision's chat template: ChatML with a space after the role, the text after "\n",
//           no newline after <|im_end|>, no default system turn):
//           "{<|im_start|>system \n{system}<|im_end|>}<|im_start|>user " VIDEO "\n{q}<|im_end|><|im_start|>assistant\n"
//           next: "<|im_end|><|im_start|>user \n{q}<|im_end|><|im_start|>assistant\n"
// BOS is added by the tokenizer when it encodes the prefix (tokenizer_config add_bos_token).
// A text-only chat turn (generate --chat) is dv_template_chat_prompt: the same texts without a video.
#ifndef DV_TEMPLATE_H
#define DV_TEMPLATE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dv_template_kind {
    DV_TEMPLATE_VICUNA = 0,
    DV_TEMPLATE_MISTRAL,
    DV_TEMPLATE_LLAMA2,
    DV_TEMPLATE_PLAIN,
    DV_TEMPLATE_CHATML,
    DV_TEMPLATE_ONEVISION,
    DV_TEMPLATE_COUNT
} dv_template_kind;

typedef struct dv_template {
    dv_template_kind kind;
    char system[2048]; // system prompt ("" = none); vicuna puts it before "USER:", llama2 in <<SYS>>
    char default_system[1024]; // chatml: the model's default system prompt, used when system is ""
    int video_inline;  // chatml: 1 when the question follows the video directly, no "\n" between (the
                       // Qwen-VL chat templates: "<|vision_end|>{q}"; their video markers are the pipeline's)
} dv_template;

const char *dv_template_name(dv_template_kind k); // "vicuna", ...
// Parses a --template value; DV_EINVAL listing the names.
int dv_template_parse(const char *name, dv_template_kind *out);
// The model's format: from its chat template (tokenizer_config.json "chat_template",
// chat_template.json or chat_template.jinja), else from config.json (LLaVA with a Llama text model:
// vicuna; a Mistral text model: mistral; a plain Llama: llama2). *why says which (static text).
int dv_template_detect(const char *model_dir, dv_template_kind *out, const char **why);
// Fills t for MODEL_DIR: kind (forced >= 0, e.g. from --template, or detected when < 0), the default
// system prompt of a ChatML chat template, video_inline (a chat template with "<|vision_start|>"),
// and system ("" when NULL). *why as for detect.
int dv_template_load(const char *model_dir, int forced_kind, const char *system, dv_template *t, const char **why);
// The default system prompt a ChatML chat template writes when the conversation has none: the literal
// text of a '<|im_start|>system\n...<|im_end|>' string in it ("" when none). Exposed for the tests.
void dv_template_chatml_default_system(const char *chat_template, char *buf, size_t cap);
// The text of the token that ends a model turn ("<|im_end|>" for chatml and onevision, "</s>" otherwise): callers
// stop generating at its id (dv_tokenizer_token_id) as well as at the config's EOS ids.
const char *dv_template_end_of_turn(dv_template_kind k);

// The texts around the video (NUL-terminated into buf; DV_EINVAL when cap is too small).
int dv_template_prefix(const dv_template *t, char *buf, size_t cap);                      // before the video
int dv_template_first_question(const dv_template *t, const char *q, char *buf, size_t cap); // right after it
int dv_template_next_question(const dv_template *t, const char *q, char *buf, size_t cap);  // after an answer
// A whole first turn without a video: prefix + first question, without the separator after the video.
int dv_template_chat_prompt(const dv_template *t, const char *q, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
