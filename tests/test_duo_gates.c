// test_duo_gates.c: the gate training of `identify --method gates` (llm/duo_train.c) on tiny models:
// a synthetic GQA Llama (4 query / 2 KV heads), the Qwen3 fixture (per-head q/k norms) and the Qwen2
// fixture (q/k/v biases). For each:
//  - with every gate at 1 the training forward equals the model's own full-attention forward (loss ~ 0);
//  - with every gate at 0 its loss equals the error of the all-streaming pattern run through the model
//    (strict semantics): the two implementations of the streaming rule agree;
//  - at random gates in (0.2, 0.8) the backward pass's gradient equals central finite differences of
//    the loss, gate by gate.
#include "core/dv_error.h"
#include "llm/dv_duo_identify.h"
#include "llm/dv_llm_synth.h"
#include "tests/dv_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check_model(dv_backend *be, dv_tokenizer *tok, const char *dir, const char *what) {
    dv_llm *m = NULL;
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = be;
    lp.n_ctx = 512;
    lp.kv_type_k = lp.kv_type_v = DV_KV_F32; // the model's forward exactly: no KV rounding
    if (dv_llm_open(dir, &lp, &m)) {
        DV_CHECK_MSG(0, "%s: %s", what, dv_error_message());
        return;
    }
    const dv_llm_config *c = dv_llm_get_config(m);
    const int NH = c->n_layers * c->n_kv_heads, sink = 4, recent = 16;
    dv_duo_id_params p = dv_duo_id_default_params();
    char filler[4096];
    snprintf(filler, sizeof filler, "%s", dv_test_path("assets/text/filler.txt"));
    p.filler_path = filler, p.length = 120, p.n_passkeys = 2, p.passkey_words = 4;
    dv_duo_sample s;
    DV_CHECK(dv_duo_sample_make(tok, &p, 3, &s) == 0);
    for (int i = 0; i < s.n; i++) s.ids[i] %= c->vocab_size; // any ids serve a gradient check
    float *alpha = malloc((size_t)NH * sizeof *alpha);
    double *grad = malloc((size_t)NH * sizeof *grad);

    // gates at 1: full attention; gates at 0: the all-streaming pattern through the model
    double l1 = -1, l0 = -1, e0 = -1;
    for (int i = 0; i < NH; i++) alpha[i] = 1;
    DV_CHECK(dv_duo_gates_loss(m, &s, sink, recent, alpha, &l1, NULL) == 0);
    for (int i = 0; i < NH; i++) alpha[i] = 0;
    DV_CHECK(dv_duo_gates_loss(m, &s, sink, recent, alpha, &l0, NULL) == 0);
    dv_duo_pattern *pat = NULL;
    DV_CHECK(dv_duo_pattern_full(c->n_layers, c->n_kv_heads, &pat) == 0);
    pat->sink = sink, pat->recent = recent;
    for (int i = 0; i < NH; i++) pat->alpha[i] = 0;
    dv_duo_pattern_set_threshold(pat, 0.5);
    DV_CHECK(pat->n_retrieval == 0 && dv_duo_pattern_error(m, &s, 1, pat, &e0) == 0);
    printf("%s: %d tokens, loss at gates 1: %.3e, at gates 0: %.6e, all-streaming pattern's error %.6e\n", what, s.n,
           l1, l0, e0);
    DV_CHECK_MSG(l0 > 0 && l1 < 1e-6 * l0, "%s: the training forward differs from the model's", what);
    DV_CHECK_MSG(fabs(l0 - e0) < 1e-3 * e0, "%s: the streaming branch differs from the model's strict rule", what);

    // gradient against central differences at interior gates, then with the last layer's gates at 0
    // and 1 (where the backward skips the branch a gate mutes; the layers below see the result)
    uint64_t r = 17;
    for (int i = 0; i < NH; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        alpha[i] = 0.2f + 0.6f * (float)((r >> 11) / 9007199254740992.0);
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass) alpha[NH - 2] = 0, alpha[NH - 1] = 1; // the last layer (2 KV heads)
        double l = 0, gmax = 0, dmax = 0;
        DV_CHECK(dv_duo_gates_loss(m, &s, sink, recent, alpha, &l, grad) == 0);
        const float eps = 2.5e-3f;
        for (int i = 0; i < NH; i++) {
            const float a = alpha[i];
            double lp_ = 0, lm = 0;
            alpha[i] = a + eps;
            DV_CHECK(dv_duo_gates_loss(m, &s, sink, recent, alpha, &lp_, NULL) == 0);
            alpha[i] = a - eps;
            DV_CHECK(dv_duo_gates_loss(m, &s, sink, recent, alpha, &lm, NULL) == 0);
            alpha[i] = a;
            const double num = (lp_ - lm) / (2.0 * eps);
            gmax = fmax(gmax, fabs(grad[i]));
            dmax = fmax(dmax, fabs(num - grad[i]));
        }
        printf("%s: %d gates%s, largest |gradient| %.4e, largest |backward - finite difference| %.3e (%.2e of it)\n",
               what, NH, pass ? " (the last layer's at 0 and 1)" : "", gmax, dmax, dmax / gmax);
        DV_CHECK_MSG(gmax > 0 && dmax < 1e-3 * gmax, "%s: the gradient differs from finite differences", what);
    }
    dv_duo_pattern_free(pat);
    dv_duo_sample_free(&s);
    free(alpha);
    free(grad);
    dv_llm_free(m);
}

int main(void) {
    char dir[] = "/tmp/dv_gates_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    dv_llm_config cfg;
    dv_llm_synth_preset("tiny", &cfg); // 2 layers, 4 query / 2 KV heads
    DV_CHECK(dv_llm_synth_write(dir, &cfg, DV_DTYPE_F32, 7, 0.3) == 0);
    dv_backend *be = dv_backend_cpu_init(2);
    dv_tokenizer *tok = NULL;
    if (dv_tokenizer_open(dv_test_path("assets/tokenizer"), &tok)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return dv_test_finish();
    }
    check_model(be, tok, dir, "synthetic GQA Llama");
    check_model(be, tok, dv_test_path("tests/fixtures/llm/tiny-qwen3"), "tiny-qwen3 (q/k norms)");
    check_model(be, tok, dv_test_path("tests/fixtures/llm/tiny-qwen2"), "tiny-qwen2 (q/k/v biases)");
    dv_tokenizer_free(tok);
    dv_backend_free(be);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    DV_CHECK(system(cmd) == 0);
    return dv_test_finish();
}
