// dv_sampler.h: next-token choice from logits: greedy, or repetition penalty -> temperature ->
// top-k -> top-p -> a seeded random draw (the order llama.cpp and HF generate() use).
#ifndef DV_SAMPLER_H
#define DV_SAMPLER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_sampler_params {
    float temperature;        // <= 0: greedy (argmax, lowest id on ties)
    int top_k;                // 0: no limit
    float top_p;              // in (0, 1]; 1: no limit
    float repetition_penalty; // 1: off; > 1 discourages tokens among the last repeat_last_n
    int repeat_last_n;        // how many recent tokens the penalty looks at (0: none)
    uint64_t seed;            // 0: seeded from the clock
} dv_sampler_params;

typedef struct dv_sampler dv_sampler;

dv_sampler_params dv_sampler_default_params(void); // greedy, top_k 40, top_p 0.95, penalty 1, last 64
// Validates params (DV_EINVAL with the flag name) and allocates vocab-sized scratch once.
int dv_sampler_init(const dv_sampler_params *p, int vocab, dv_sampler **out);
void dv_sampler_free(dv_sampler *s);
// Picks a token from logits (vocab), which are modified in place (the penalty is applied to them).
// recent: the context so far (the penalty uses its last repeat_last_n entries, ignoring ids outside
// [0, vocab)); may be NULL with n_recent 0. NaN logits are never picked. Allocates nothing.
// Top-k keeps the k largest logits (lowest id on ties); top-p then keeps the smallest prefix of those,
// by probability, whose mass reaches top_p; the draw uses the sampler's own xoshiro256** stream,
// so a fixed seed gives a fixed sequence.
int32_t dv_sampler_sample(dv_sampler *s, float *logits, const int32_t *recent, int n_recent);

#ifdef __cplusplus
}
#endif
#endif
