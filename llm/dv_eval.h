// dv_eval.h: long-context quality measures of an LLM (with or without DuoAttention): perplexity
// over a text, as llama.cpp's llama-perplexity computes it, and passkey retrieval in a haystack
// ("needle in a haystack", NIAH) at chosen prompt lengths and needle depths.
//
//   dv_ppl_result r;
//   dv_eval_perplexity(m, ids, n, 2048, dv_tokenizer_add_bos(tok) ? dv_tokenizer_bos(tok) : -1, 256, &r);
//   printf("%.3f\n", r.ppl);
//
//   dv_niah_prompt pr;                                   // one trial: prompt ids + the passkey
//   dv_niah_prompt_make(tok, &tpl, hay, n_hay, 2048, 0.5, seed, &pr);
//   dv_niah_trial(m, tok, &tpl, &pr, answer, sizeof answer, &correct);
#ifndef DV_EVAL_H
#define DV_EVAL_H

#include "llm/dv_llm.h"
#include "llm/dv_template.h"
#include "llm/dv_tokenizer.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- perplexity ----
// The rule of llama.cpp's perplexity tool: the token ids are cut into floor(n / n_ctx) non-overlapping
// windows of n_ctx tokens; each window starts an empty context, its first token is replaced by `bos`
// (when bos >= 0), and only the second half is scored: the log-likelihood of token j+1 from the
// logits at j for j in [n_ctx/2, n_ctx - 1), so every scored token has at least n_ctx/2 tokens of
// context. ppl = exp(mean negative log-likelihood); the standard error is the one of the mean NLL.
typedef struct dv_ppl_result {
    int n_windows;    // windows scored
    int64_t n_scored; // tokens scored (n_windows * (n_ctx - 1 - n_ctx / 2))
    double nll;       // mean negative log-likelihood (nats)
    double nll_se;    // its standard error
    double ppl;       // exp(nll)
    double top1;      // fraction of scored tokens that were the argmax
} dv_ppl_result;

// Prefills each window in chunks of n_batch tokens (the chunks DuoAttention's reference semantics
// see whole). `on_window` (may be NULL) is called after each window with its running perplexity.
// Errors: n < n_ctx (DV_EINVAL, saying both counts), n_ctx < 4 or above the model's context.
int dv_eval_perplexity(dv_llm *m, const int32_t *ids, int n, int n_ctx, int bos, int n_batch,
                       void (*on_window)(void *user, int done, int total, double ppl), void *user,
                       dv_ppl_result *out);

// ---- needle in a haystack (passkey retrieval) ----
// One user turn in the model's chat format: an instruction, then haystack text with the needle
// "The pass key is NNNNN. Remember it. NNNNN is the pass key." spliced in at `depth` (0 = at the
// start of the haystack, 1 = at its end; moved forward to the next sentence end within 64 tokens),
// then the question "What is the pass key?". The haystack tokens are taken cyclically from a
// seed-chosen offset of `hay` so the whole prompt is `length` tokens. A trial is correct when the
// greedy answer contains the passkey's digits.
typedef struct dv_niah_prompt {
    int32_t *ids; // (n), owned
    int n;
    int needle_pos; // token index where the needle starts
    char passkey[16];
} dv_niah_prompt;

int dv_niah_prompt_make(dv_tokenizer *tok, const dv_template *tpl, const int32_t *hay, int n_hay, int length,
                        double depth, uint64_t seed, dv_niah_prompt *out);
void dv_niah_prompt_free(dv_niah_prompt *p);
// Clears m's context, prefills the prompt, answers greedily (at most 16 tokens, until the end of the
// turn) into answer (NUL-terminated, truncated to cap) and sets *correct.
int dv_niah_trial(dv_llm *m, dv_tokenizer *tok, const dv_template *tpl, const dv_niah_prompt *p, char *answer,
                  size_t cap, int *correct);

#ifdef __cplusplus
}
#endif
#endif
