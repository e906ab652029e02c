// dv_generate.h: the one token-generation loop (sample -> stop checks -> text piece -> decode), used
// by `duovid generate` and by the video-QA answers (vlm/). The prompt is prefilled by the caller;
// the loop starts from the logits of its last token.
//
//   dv_llm_prefill(m, ids, NULL, n, logits, 0);
//   dv_llm_gen_params g = {.sampler = smp, .tokenizer = tok, .max_new = 128, .on_token = print, .user = f};
//   dv_llm_gen_result r;
//   dv_llm_generate(m, &g, logits, ids, n, cap, &r);   // ids[n .. n + r.n_tokens) = the new tokens
#ifndef DV_GENERATE_H
#define DV_GENERATE_H

#include "llm/dv_llm.h"
#include "llm/dv_sampler.h"
#include "llm/dv_tokenizer.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dv_gen_stop { DV_GEN_STOP_EOS = 0, DV_GEN_STOP_LENGTH, DV_GEN_STOP_CANCEL } dv_gen_stop;

typedef struct dv_llm_gen_params {
    dv_sampler *sampler;      // not owned; required
    dv_tokenizer *tokenizer;  // not owned; required (EOS id, text pieces)
    int max_new;              // tokens at most
    int ignore_eos;           // 1: go on past end-of-sequence
    const int32_t *stop_ids;  // further tokens that end the answer (a chat format's end of turn), unless
    int n_stop_ids;           // ignore_eos; they are not appended. NULL / 0: none
    int at_start;             // 1: the text begins the sequence (its first dummy-prefix space is dropped)
    int decode_last;          // 1: the last token is decoded too, so it is in the context (a conversation
                              // goes on after it); 0: it is not (one-shot generation saves a forward pass)
    // after each new token: its text piece (may be "", complete UTF-8 only). Nonzero: stop (an error
    // code < 0 is returned as the loop's result).
    int (*on_token)(void *user, int32_t id, const char *piece);
    int (*cancel)(void *user);      // polled before each token; nonzero: stop with DV_GEN_STOP_CANCEL
    // polled before each token with the count so far (progress bars); may be NULL
    void (*on_step)(void *user, int done, int total);
    void *user;
    float *logits_trace;      // NULL, or (max_new, V): the logits each token was chosen from (tests)
} dv_llm_gen_params;

typedef struct dv_llm_gen_result {
    int n_tokens;             // new tokens, appended to ids
    dv_gen_stop stop;
    double t_first;           // seconds from the call to the first token (to the end when none)
} dv_llm_gen_result;

// Generates from `logits` (V floats: the last prefilled position's; overwritten). ids[0..n_ids) is the
// history the repetition penalty looks at; new tokens are appended (cap: its capacity, at least
// n_ids + max_new). The tail the tokenizer held back is passed to on_token (id -1) at the end.
int dv_llm_generate(dv_llm *m, const dv_llm_gen_params *p, float *logits, int32_t *ids, int n_ids, int cap,
                    dv_llm_gen_result *out);

#ifdef __cplusplus
}
#endif
#endif
