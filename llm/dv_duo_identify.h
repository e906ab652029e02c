// dv_duo_identify.h: find DuoAttention retrieval heads of a model ourselves, on synthetic
// multi-passkey data: passkeys of random NATO-alphabet words hidden at spread depths in filler text
// (assets/text/filler.txt), followed by one question per passkey with its answer (teacher forcing).
// Scores are per (layer, KV head), in [0, 1], higher = more retrieval, in the reference's file format.
//   ablation:        make one KV head streaming (strict semantics); score = increase of the squared
//                    error of the final hidden states at the answer tokens against full attention,
//                    divided by the largest increase
//   attention-mass:  one full-attention pass; score = attention mass the answer tokens' queries put
//                    outside the sink + recent window, averaged over answers and the head's query group
//   deviation:       one full-attention pass (CPU backend); score = squared norm of Wo (o_full - o_streaming)
//                    relative to the layer input's, i.e. the first-order change of the residual stream
//                    when the head's gate goes from full to streaming; averaged over every stride-th query
//                    and, separately, over the answer tokens; the two halves each scaled to their largest
//                    head and averaged
//   gates:           the reference's optimization (llm/duo_train.c): a gate per KV head mixing full and
//                    streaming attention, trained with AdamW on a fresh sample per step to keep the
//                    answers' final hidden states equal to full attention's, plus reg * mean gate;
//                    score = the trained gate (CPU backend, dense Llama-family text models)
//   random:          uniform random gates from the seed, no forward pass: the baseline a method must
//                    beat (a random pattern of the same sparsity)
#ifndef DV_DUO_IDENTIFY_H
#define DV_DUO_IDENTIFY_H

#include "kernels/dv_backend.h"
#include "llm/dv_llm.h"
#include "llm/dv_tokenizer.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dv_duo_id_method {
    DV_DUO_ID_ABLATION = 0,
    DV_DUO_ID_ATTENTION_MASS,
    DV_DUO_ID_RANDOM,
    DV_DUO_ID_DEVIATION,
    DV_DUO_ID_GATES
} dv_duo_id_method;

// "ablation", "attention-mass", "random", "deviation", "gates"
const char *dv_duo_id_method_name(dv_duo_id_method m);

typedef struct dv_duo_id_params {
    dv_duo_id_method method;
    int n_samples;      // synthetic samples averaged (default 2)
    int length;         // filler tokens per sample (default 1024)
    int n_passkeys;     // passkeys per sample (default 4)
    int passkey_words;  // NATO words per passkey (default 8)
    int sink, recent;   // the streaming window the scores assume (default 64, 256)
    int stride;         // deviation: score every stride-th query past the window, and every answer (default 4)
    int steps;          // gates: training steps, one fresh sample each (default 128)
    double lr, reg;     // gates: AdamW learning rate (default 0.05), weight of the mean gate (default 0.05)
    int supervise_all;  // gates: 0 = the answers' hidden states (the reference); 1 (default) = and, equally
                        // weighted, every position past the streaming window (made the shipped pattern)
    uint64_t seed;
    const char *filler_path; // the filler text (required; duovid ships assets/text/filler.txt)
} dv_duo_id_params;

dv_duo_id_params dv_duo_id_default_params(void);

// One sample's tokens and the positions of its answer tokens (built from the tokenizer).
typedef struct dv_duo_sample {
    int32_t *ids;    // (n), owned
    int n;
    int32_t *answer; // (n_answer) positions, owned
    int n_answer;
} dv_duo_sample;

int dv_duo_sample_make(dv_tokenizer *tok, const dv_duo_id_params *p, uint64_t seed, dv_duo_sample *out);
void dv_duo_sample_free(dv_duo_sample *s);

// Scores (n_layers, n_kv_heads) for the model `m` (its KV cache is replaced and cleared).
int dv_duo_identify(dv_llm *m, dv_tokenizer *tok, const dv_duo_id_params *p, double *scores);
// Squared error of the final hidden states at the answer tokens, pattern vs full attention, averaged
// over the samples (strict semantics): how much a pattern loses.
int dv_duo_pattern_error(dv_llm *m, const dv_duo_sample *samples, int n_samples, const dv_duo_pattern *pattern,
                         double *err);
// --method gates (llm/duo_train.c): trains the gates; scores = the trained gates in [0, 1].
int dv_duo_gates_train(dv_llm *m, dv_tokenizer *tok, const dv_duo_id_params *p, double *scores);
// Its loss on one sample at the gates `alpha` (n_layers, n_kv_heads): the mean squared difference of
// the final hidden states at the answer tokens against the model's full attention (no regularizer),
// and, when grad is not NULL, its gradient with respect to every gate (for tests).
int dv_duo_gates_loss(dv_llm *m, const dv_duo_sample *s, int sink, int recent, const float *alpha, double *loss,
                      double *grad);
// Writes DIR/full_attention_heads.tsv (%.18e, tab-separated, a line per layer) and DIR/config.json
// (sink_size, recent_size, method, samples, ...) atomically.
int dv_duo_pattern_write(const char *dir, const double *scores, int n_layers, int n_kv_heads,
                         const dv_duo_id_params *p);

#ifdef __cplusplus
}
#endif
#endif
