// test_eval.c: llm/dv_eval.h on the tiny SmolLM2-shaped fixture (random weights). Perplexity: the
// llama.cpp window rule (which tokens are scored, how many) against a naive float64 recomputation from
// one all-logits prefill per window, and independence from the chunk size. NIAH prompts: exact length,
// the needle where the depth says, the passkey in the decoded prompt, errors for impossible lengths.
#include "core/dv_error.h"
#include "kernels/dv_backend.h"
#include "llm/dv_eval.h"
#include "llm/dv_llm.h"
#include "llm/dv_template.h"
#include "llm/dv_tokenizer.h"
#include "tests/dv_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "tests/fixtures/llm/tiny-smollm2"

// mean NLL of tokens first+1 .. n_ctx-1 of each window, in float64 from whole-window logits
static double naive_nll(dv_llm *m, const int32_t *ids, int n_win, int n_ctx, int bos, int64_t *count) {
    const int V = dv_llm_get_config(m)->vocab_size;
    float *logits = malloc((size_t)n_ctx * V * sizeof *logits); // (n_ctx, V)
    int32_t *w = malloc((size_t)n_ctx * sizeof *w);
    double sum = 0;
    *count = 0;
    for (int k = 0; k < n_win; k++) {
        memcpy(w, ids + (size_t)k * n_ctx, (size_t)n_ctx * sizeof *w);
        if (bos >= 0) w[0] = bos;
        if (dv_llm_rewind(m, 0) || dv_llm_prefill(m, w, NULL, n_ctx, logits, 1)) return NAN;
        for (int j = n_ctx / 2; j < n_ctx - 1; j++) {
            double z = 0;
            for (int v = 0; v < V; v++) z += exp((double)logits[(size_t)j * V + v]);
            sum += log(z) - logits[(size_t)j * V + w[j + 1]];
            ++*count;
        }
    }
    free(logits);
    free(w);
    return sum / (double)*count;
}

int main(void) {
    dv_backend *be = dv_backend_cpu_init(2);
    dv_tokenizer *tok = NULL;
    dv_llm *m = NULL;
    const char *dir = dv_test_path(MODEL);
    char dir_copy[4096];
    snprintf(dir_copy, sizeof dir_copy, "%s", dir);
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = be;
    lp.n_ctx = 1024;
    lp.n_batch = 64;
    if (!be || dv_tokenizer_open(dir_copy, &tok) || dv_llm_open(dir_copy, &lp, &m)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return dv_test_finish();
    }
    // ids: arbitrary in-vocabulary tokens (the rule, not the text, is under test)
    enum { N = 200 };
    int32_t ids[N];
    uint64_t s = 7;
    for (int i = 0; i < N; i++) s = s * 6364136223846793005ull + 1, ids[i] = (int32_t)((s >> 33) % 500) + 3;

    // 3 windows of 64 (the last 8 tokens are left out), 31 scored each; chunks of 64 and of 5
    dv_ppl_result a, b;
    DV_CHECK(dv_eval_perplexity(m, ids, N, 64, 1, 64, NULL, NULL, &a) == 0);
    DV_CHECK(a.n_windows == 3 && a.n_scored == 3 * 31);
    DV_CHECK(dv_eval_perplexity(m, ids, N, 64, 1, 5, NULL, NULL, &b) == 0);
    DV_CHECK_MSG(fabs(a.nll - b.nll) < 1e-4 * a.nll, "chunk 64 %.6f vs chunk 5 %.6f", a.nll, b.nll);
    int64_t cnt = 0;
    const double ref = naive_nll(m, ids, 3, 64, 1, &cnt);
    DV_CHECK_MSG(cnt == a.n_scored && fabs(a.nll - ref) < 1e-4 * ref, "nll %.6f, naive %.6f", a.nll, ref);
    DV_CHECK(fabs(a.ppl - exp(a.nll)) < 1e-9 * a.ppl && a.nll_se > 0 && a.top1 >= 0 && a.top1 <= 1);
    // without a BOS the window's own first token stays: a different (still finite) value
    DV_CHECK(dv_eval_perplexity(m, ids, N, 64, -1, 64, NULL, NULL, &b) == 0 && isfinite(b.nll) && b.nll != a.nll);
    DV_CHECK(dv_eval_perplexity(m, ids, 50, 64, 1, 64, NULL, NULL, &b) == DV_EINVAL);   // shorter than a window
    DV_CHECK(dv_eval_perplexity(m, ids, N, 2048, 1, 64, NULL, NULL, &b) == DV_EINVAL); // above n_ctx
    DV_CHECK(dv_eval_perplexity(m, ids, N, 2, 1, 64, NULL, NULL, &b) == DV_EINVAL);

    // NIAH prompts over a haystack of the same ids
    dv_template tpl;
    const char *why;
    DV_CHECK(dv_template_load(dir_copy, -1, NULL, &tpl, &why) == 0);
    int needle_at[3];
    for (int d = 0; d < 3; d++) {
        dv_niah_prompt p;
        DV_CHECK(dv_niah_prompt_make(tok, &tpl, ids, N, 700, d * 0.5, 42, &p) == 0);
        DV_CHECK(p.n == 700 && strlen(p.passkey) == 5);
        needle_at[d] = p.needle_pos;
        char text[16384];
        size_t len = 0;
        DV_CHECK(dv_tokenizer_decode(tok, p.ids, p.n, 1, text, sizeof text, &len) == 0);
        char want[64];
        snprintf(want, sizeof want, "The pass key is %s.", p.passkey);
        DV_CHECK_MSG(strstr(text, want) != NULL, "no needle '%s' in the prompt", want);
        DV_CHECK(strstr(text, "What is the pass key?") != NULL);
        dv_niah_prompt_free(&p);
    }
    // depth 0: right after the instruction; 1: just before the question; 0.5: halfway, or up to 64
    // tokens later (the next sentence end)
    const int mid = (needle_at[0] + needle_at[2]) / 2;
    DV_CHECK_MSG(needle_at[0] < 200 && needle_at[2] > 550 && needle_at[1] >= mid - 1 && needle_at[1] <= mid + 64,
                 "needle at %d, %d, %d", needle_at[0], needle_at[1], needle_at[2]);
    dv_niah_prompt p;
    DV_CHECK(dv_niah_prompt_make(tok, &tpl, ids, N, 40, 0.5, 42, &p) == DV_EINVAL && p.ids == NULL);
    DV_CHECK(dv_niah_prompt_make(tok, &tpl, ids, N, 700, 1.5, 42, &p) == DV_EINVAL);
    DV_CHECK(dv_niah_prompt_make(tok, &tpl, ids, 8, 700, 0.5, 42, &p) == DV_EINVAL);
    dv_niah_prompt_free(NULL);

    dv_llm_free(m);
    dv_tokenizer_free(tok);
    dv_backend_free(be);
    return dv_test_finish();
}
