// test_generate.c: llm/dv_generate.h, the one generation loop, on the tiny Llama checkpoint: greedy
// tokens equal a hand-written sample/decode loop; decode_last says whether the last token enters the
// context; cancel stops before a token (DV_GEN_STOP_CANCEL); on_token sees every id once and the text
// pieces concatenate to the decoded ids; an error from on_token is returned; EOS stops unless ignored.
#include "core/dv_error.h"
#include "llm/dv_generate.h"
#include "tests/dv_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "assets/models/tiny-llama"
#define N_NEW 12

typedef struct seen {
    int32_t ids[64];
    int n;
    char text[1024];
    int cancel_after; // cancel once this many tokens were seen (-1: never)
    int fail_at;      // on_token returns DV_EIO at this token (-1: never)
} seen;

static int on_token(void *user, int32_t id, const char *piece) {
    seen *s = user;
    if (id >= 0) {
        if (s->n == s->fail_at) return dv_error_set(DV_EIO, "on_token failed on purpose");
        s->ids[s->n++] = id;
    }
    strncat(s->text, piece, sizeof s->text - strlen(s->text) - 1);
    return 0;
}

static int cancel(void *user) {
    const seen *s = user;
    return s->cancel_after >= 0 && s->n >= s->cancel_after;
}

// Prefills the prompt; ids/logits filled, returns the prompt length.
static int prompt(dv_llm *m, dv_tokenizer *tok, int32_t *ids, float *logits) {
    int n = 0;
    DV_CHECK(dv_llm_rewind(m, 0) == 0);
    DV_CHECK(dv_tokenizer_encode(tok, "Once upon a time", 1, ids, 64, &n) == 0);
    DV_CHECK(dv_llm_prefill(m, ids, NULL, n, logits, 0) == 0);
    return n;
}

int main(void) {
    dv_backend *be = dv_backend_cpu_init(2);
    dv_tokenizer *tok = NULL;
    dv_llm *m = NULL;
    dv_sampler *smp = NULL;
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = be;
    lp.n_ctx = 128;
    if (!be || dv_tokenizer_open(dv_test_path(MODEL), &tok) || dv_llm_open(dv_test_path(MODEL), &lp, &m))
        DV_TEST_SKIP("%s: %s", MODEL, dv_error_message());
    dv_sampler_params sp = dv_sampler_default_params();
    sp.temperature = 0;
    DV_CHECK(dv_sampler_init(&sp, dv_llm_get_config(m)->vocab_size, &smp) == 0);
    const int V = dv_llm_get_config(m)->vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    int32_t ids[128], ref[128];

    // the reference: sample, decode, by hand (EOS ignored)
    int n0 = prompt(m, tok, ref, logits);
    for (int i = 0; i < N_NEW; i++) {
        ref[n0 + i] = dv_sampler_sample(smp, logits, ref, n0 + i);
        DV_CHECK(dv_llm_decode(m, ref[n0 + i], logits) == 0);
    }

    seen s = {.cancel_after = -1, .fail_at = -1};
    dv_llm_gen_params g = {.sampler = smp, .tokenizer = tok, .max_new = N_NEW, .ignore_eos = 1, .at_start = 1,
                           .decode_last = 1, .on_token = on_token, .cancel = cancel, .user = &s};
    dv_llm_gen_result r;
    int n = prompt(m, tok, ids, logits);
    DV_CHECK(dv_llm_generate(m, &g, logits, ids, n, 128, &r) == 0);
    DV_CHECK(r.n_tokens == N_NEW && r.stop == DV_GEN_STOP_LENGTH && s.n == N_NEW);
    DV_CHECK_MSG(!memcmp(ids + n, ref + n0, N_NEW * sizeof(int32_t)) && !memcmp(s.ids, ref + n0, N_NEW * sizeof(int32_t)),
                 "generated ids differ from the hand-written loop");
    DV_CHECK(dv_llm_n_past(m) == n + N_NEW); // decode_last: every token is in the context
    char want[1024];
    size_t wl = 0;
    DV_CHECK(dv_tokenizer_decode(tok, ids + n, N_NEW, 1, want, sizeof want, &wl) == 0);
    DV_CHECK_MSG(!strcmp(s.text, want), "pieces '%s' != decoded '%s'", s.text, want);

    // decode_last = 0: the last token is not decoded
    memset(&s, 0, sizeof s);
    s.cancel_after = s.fail_at = -1;
    g.decode_last = 0;
    n = prompt(m, tok, ids, logits);
    DV_CHECK(dv_llm_generate(m, &g, logits, ids, n, 128, &r) == 0);
    DV_CHECK(r.n_tokens == N_NEW && dv_llm_n_past(m) == n + N_NEW - 1);

    // cancel after 3 tokens
    memset(&s, 0, sizeof s);
    s.cancel_after = 3;
    s.fail_at = -1;
    n = prompt(m, tok, ids, logits);
    DV_CHECK(dv_llm_generate(m, &g, logits, ids, n, 128, &r) == 0);
    DV_CHECK(r.n_tokens == 3 && r.stop == DV_GEN_STOP_CANCEL && !memcmp(ids + n, ref + n0, 3 * sizeof(int32_t)));

    // an error from the callback comes back
    memset(&s, 0, sizeof s);
    s.cancel_after = -1;
    s.fail_at = 2;
    n = prompt(m, tok, ids, logits);
    DV_CHECK(dv_llm_generate(m, &g, logits, ids, n, 128, &r) == DV_EIO && strstr(dv_error_message(), "on purpose"));

    // EOS: a sampler that always picks it stops at once, unless ignored
    float *eos_logits = calloc((size_t)V, sizeof *eos_logits);
    const int32_t eos = dv_tokenizer_eos(tok);
    if (eos >= 0 && eos < V) {
        memset(&s, 0, sizeof s);
        s.cancel_after = s.fail_at = -1;
        g.ignore_eos = 0;
        g.max_new = 1;
        eos_logits[eos] = 100;
        n = prompt(m, tok, ids, logits);
        DV_CHECK(dv_llm_generate(m, &g, eos_logits, ids, n, 128, &r) == 0);
        DV_CHECK(r.n_tokens == 0 && r.stop == DV_GEN_STOP_EOS && s.n == 0);
    }
    free(eos_logits);
    free(logits);
    dv_sampler_free(smp);
    dv_llm_free(m);
    dv_tokenizer_free(tok);
    dv_backend_free(be);
    return dv_test_finish();
}
