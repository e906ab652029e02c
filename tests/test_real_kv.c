// test_real_kv.c (ctest label "real"): the compact KV row types keep SmolLM2-135M-Instruct's
// perplexity, the bounds on real weights. One window of 2048 tokens of
// assets/text/jargon-essays.txt (the public-domain Jargon File, Debian jargon-text; the second half,
// 1023 tokens, is scored as llama-perplexity does), full attention, with the KV cache stored as f32,
// bf16, q8 and q4 (keys and values alike): bf16 within 0.1% of f32, q8 within 0.5%, q4 within 3%.
// Skipped (exit 77) without the model (scripts/fetch_smollm2.sh).
#include "core/dv_error.h"
#include "kernels/dv_backend.h"
#include "kernels/dv_kv_type.h"
#include "llm/dv_eval.h"
#include "llm/dv_llm.h"
#include "llm/dv_tokenizer.h"
#include "tests/dv_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N_CTX 2048

int main(void) {
    char dir[4096];
    dv_test_require_smollm2(dir, sizeof dir);

    static char text[1 << 17];
    FILE *f = fopen(dv_test_path("assets/text/jargon-essays.txt"), "rb");
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[len] = 0;
    DV_CHECK(len > 0);

    dv_backend *be = dv_backend_cpu_init(0);
    dv_tokenizer *tok = NULL;
    int32_t *ids = malloc(sizeof(int32_t) << 16);
    int n = 0;
    if (!be || !ids || dv_tokenizer_open(dir, &tok) || dv_tokenizer_encode(tok, text, 0, ids, 1 << 16, &n)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        goto done;
    }
    DV_CHECK(n >= N_CTX);
    const int bos = dv_tokenizer_add_bos(tok) ? dv_tokenizer_bos(tok) : -1;
    // the bounds on the relative change of perplexity against the f32 cache
    static const struct {
        dv_kv_type t;
        double max_rel;
    } types[] = {{DV_KV_F32, 0}, {DV_KV_BF16, 0.001}, {DV_KV_Q8, 0.005}, {DV_KV_Q4, 0.03}};
    double ppl_f32 = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        dv_llm_params lp = dv_llm_default_params();
        lp.backend = be;
        lp.n_ctx = N_CTX;
        lp.n_batch = 256;
        lp.kv_type_k = lp.kv_type_v = (int)types[i].t;
        dv_llm *m = NULL;
        dv_ppl_result r;
        if (dv_llm_open(dir, &lp, &m) || dv_eval_perplexity(m, ids, N_CTX, N_CTX, bos, 256, NULL, NULL, &r)) {
            DV_CHECK_MSG(0, "%s KV: %s", dv_kv_type_name(types[i].t), dv_error_message());
            dv_llm_free(m);
            continue;
        }
        dv_llm_free(m);
        if (types[i].t == DV_KV_F32) ppl_f32 = r.ppl;
        const double rel = ppl_f32 > 0 ? fabs(r.ppl / ppl_f32 - 1) : INFINITY;
        printf("KV %-4s perplexity %.6f (%+.3f%% vs f32, bound %.1f%%)\n", dv_kv_type_name(types[i].t), r.ppl,
               100 * (r.ppl / ppl_f32 - 1), 100 * types[i].max_rel);
        DV_CHECK_MSG(isfinite(r.ppl) && r.ppl > 1 && rel <= types[i].max_rel, "%s KV: perplexity %.6f vs f32 %.6f",
                     dv_kv_type_name(types[i].t), r.ppl, ppl_f32);
    }
done:
    free(ids);
    dv_tokenizer_free(tok);
    dv_backend_free(be);
    return dv_test_finish();
}
