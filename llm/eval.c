// eval.c: perplexity windows and passkey-retrieval (NIAH) prompts and trials (see dv_eval.h).
#include "llm/dv_eval.h"

#include "core/dv_error.h"
#include "llm/dv_generate.h"
#include "llm/dv_sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- perplexity ----

int dv_eval_perplexity(dv_llm *m, const int32_t *ids, int n, int n_ctx, int bos, int n_batch,
                       void (*on_window)(void *user, int done, int total, double ppl), void *user,
                       dv_ppl_result *out) {
    memset(out, 0, sizeof *out);
    if (n_ctx < 4) return dv_error_set(DV_EINVAL, "perplexity: a window of %d tokens is too short (at least 4)", n_ctx);
    if (n_ctx > dv_llm_n_ctx(m))
        return dv_error_set(DV_EINVAL, "perplexity: a window of %d tokens exceeds the model's context (%d)", n_ctx,
                            dv_llm_n_ctx(m));
    if (n < n_ctx)
        return dv_error_set(DV_EINVAL, "perplexity: the text has %d tokens, fewer than one window of %d", n, n_ctx);
    if (n_batch <= 0) n_batch = 256;
    const int V = dv_llm_get_config(m)->vocab_size, n_win = n / n_ctx, first = n_ctx / 2;
    int32_t *win = malloc((size_t)n_ctx * sizeof *win);        // (n_ctx) the window's ids
    float *logits = malloc((size_t)n_batch * V * sizeof *logits); // (n_batch, V) one chunk's logits
    int rc = win && logits ? 0 : dv_error_set(DV_ENOMEM, "out of memory");
    double sum = 0, sum2 = 0;
    int64_t cnt = 0, hits = 0;
    for (int w = 0; !rc && w < n_win; w++) {
        memcpy(win, ids + (size_t)w * n_ctx, (size_t)n_ctx * sizeof *win);
        if (bos >= 0) win[0] = bos;
        if ((rc = dv_llm_rewind(m, 0))) break;
        for (int c0 = 0; !rc && c0 < n_ctx - 1; c0 += n_batch) {
            const int nc = c0 + n_batch < n_ctx ? n_batch : n_ctx - c0;
            if ((rc = dv_llm_prefill(m, win + c0, NULL, nc, logits, 1))) break;
            for (int j = c0 < first ? first : c0; j < c0 + nc && j < n_ctx - 1; j++) {
                const float *l = logits + (size_t)(j - c0) * V;
                int best = 0;
                double mx = l[0];
                for (int v = 1; v < V; v++)
                    if (l[v] > mx) mx = l[v], best = v;
                double z = 0;
                for (int v = 0; v < V; v++) z += exp((double)l[v] - mx);
                const double nll = mx + log(z) - (double)l[win[j + 1]];
                sum += nll;
                sum2 += nll * nll;
                hits += best == win[j + 1];
                cnt++;
            }
        }
        if (!rc && on_window) on_window(user, w + 1, n_win, exp(sum / (double)cnt));
    }
    free(win);
    free(logits);
    if (rc) return rc;
    const double mean = sum / (double)cnt, var = sum2 / (double)cnt - mean * mean;
    *out = (dv_ppl_result){.n_windows = n_win,
                           .n_scored = cnt,
                           .nll = mean,
                           .nll_se = cnt > 1 && var > 0 ? sqrt(var / (double)(cnt - 1)) : 0,
                           .ppl = exp(mean),
                           .top1 = (double)hits / (double)cnt};
    return 0;
}

// ---- needle in a haystack ----

static uint64_t niah_rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

// Appends the ids of `text` (no BOS) at ids + *n, within cap.
static int put_text(dv_tokenizer *tok, const char *text, int32_t *ids, int cap, int *n) {
    int k = 0, rc = dv_tokenizer_encode(tok, text, 0, ids + *n, cap - *n, &k);
    if (rc) return dv_error_prefix(rc, "niah: the prompt does not fit %d tokens", cap);
    *n += k;
    return 0;
}

void dv_niah_prompt_free(dv_niah_prompt *p) {
    if (!p) return;
    free(p->ids);
    memset(p, 0, sizeof *p);
}

int dv_niah_prompt_make(dv_tokenizer *tok, const dv_template *tpl, const int32_t *hay, int n_hay, int length,
                        double depth, uint64_t seed, dv_niah_prompt *out) {
    memset(out, 0, sizeof *out);
    if (n_hay < 16) return dv_error_set(DV_EINVAL, "niah: the haystack has %d tokens (at least 16)", n_hay);
    if (!(depth >= 0 && depth <= 1)) return dv_error_set(DV_EINVAL, "niah: depth %g is not in [0, 1]", depth);
    uint64_t s = seed * 2654435761u + 977;
    niah_rnd(&s);
    snprintf(out->passkey, sizeof out->passkey, "%d", 10000 + (int)(niah_rnd(&s) % 90000));
    char pre[2560], needle[160], q[2560];
    const char *intro = "There is an important pass key hidden inside a lot of irrelevant text. Find it and "
                        "memorize it. I will quiz you about the pass key.\n\n";
    int rc = dv_template_prefix(tpl, pre, sizeof pre - strlen(intro) - 1);
    if (!rc) strcat(pre, intro);
    snprintf(needle, sizeof needle, "\nThe pass key is %s. Remember it. %s is the pass key.\n", out->passkey,
             out->passkey);
    if (!rc) rc = dv_template_first_question(tpl, "\nWhat is the pass key? Answer with the number only.", q, sizeof q);
    if (rc) return rc;
    // (length) the prompt: [BOS] prefix, haystack[0, at), needle, haystack[at, n_fill), question
    int32_t *ids = malloc((size_t)length * sizeof *ids);
    if (!ids) return dv_error_set(DV_ENOMEM, "out of memory");
    int n = 0;
    if (dv_tokenizer_add_bos(tok) && dv_tokenizer_bos(tok) >= 0 && length > 0) ids[n++] = dv_tokenizer_bos(tok);
    rc = put_text(tok, pre, ids, length, &n);
    const int n_pre = n;
    // encode the needle and the question once to count their tokens; they are re-encoded in place below
    if (!rc) rc = put_text(tok, needle, ids, length, &n);
    if (!rc) rc = put_text(tok, q, ids, length, &n);
    const int n_fill = length - n;
    if (!rc && n_fill < 1)
        rc = dv_error_set(DV_EINVAL, "niah: a prompt of %d tokens leaves no room for the haystack (%d needed "
                                     "for the instruction, needle and question)",
                          length, n);
    if (rc) {
        free(ids);
        return rc;
    }
    int at = (int)(depth * n_fill + 0.5);
    const int off = (int)(niah_rnd(&s) % (uint64_t)n_hay);
    // a sentence end within 64 tokens: the needle then starts a new sentence
    for (int k = 0; at > 0 && k < 64 && at + k < n_fill; k++) {
        const char *piece = dv_tokenizer_piece(tok, hay[(off + at + k - 1) % n_hay]);
        const size_t pl = piece ? strlen(piece) : 0;
        if (pl && (piece[pl - 1] == '.' || piece[pl - 1] == '\n')) {
            at += k;
            break;
        }
    }
    n = n_pre;
    for (int i = 0; i < at; i++) ids[n++] = hay[(off + i) % n_hay];
    out->needle_pos = n;
    rc = put_text(tok, needle, ids, length, &n);
    for (int i = at; !rc && i < n_fill; i++) ids[n++] = hay[(off + i) % n_hay];
    if (!rc) rc = put_text(tok, q, ids, length, &n);
    if (rc) {
        free(ids);
        return rc;
    }
    out->ids = ids;
    out->n = n;
    return 0;
}

typedef struct niah_answer {
    char *buf;
    size_t cap, len;
} niah_answer;

static int collect_piece(void *user, int32_t id, const char *piece) {
    (void)id;
    niah_answer *a = user;
    const size_t k = strlen(piece);
    if (a->len + k < a->cap) {
        memcpy(a->buf + a->len, piece, k);
        a->len += k;
        a->buf[a->len] = 0;
    }
    return 0;
}

int dv_niah_trial(dv_llm *m, dv_tokenizer *tok, const dv_template *tpl, const dv_niah_prompt *p, char *answer,
                  size_t cap, int *correct) {
    enum { MAX_NEW = 16 };
    *correct = 0;
    if (cap) answer[0] = 0;
    const int V = dv_llm_get_config(m)->vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);        // (V)
    int32_t *ids = malloc((size_t)(p->n + MAX_NEW) * sizeof *ids); // (n + MAX_NEW) history + answer
    dv_sampler *smp = NULL;
    dv_sampler_params sp = dv_sampler_default_params(); // greedy
    int rc = logits && ids ? 0 : dv_error_set(DV_ENOMEM, "out of memory");
    if (!rc) rc = dv_sampler_init(&sp, V, &smp);
    if (!rc) rc = dv_llm_rewind(m, 0);
    if (!rc) rc = dv_llm_prefill(m, p->ids, NULL, p->n, logits, 0);
    if (!rc) {
        memcpy(ids, p->ids, (size_t)p->n * sizeof *ids);
        const int32_t eot = dv_tokenizer_token_id(tok, dv_template_end_of_turn(tpl->kind));
        niah_answer a = {answer, cap, 0};
        dv_llm_gen_params gp = {.sampler = smp, .tokenizer = tok, .max_new = MAX_NEW, .stop_ids = &eot,
                                .n_stop_ids = eot >= 0, .on_token = collect_piece, .user = &a};
        dv_llm_gen_result gr;
        rc = dv_llm_generate(m, &gp, logits, ids, p->n, p->n + MAX_NEW, &gr);
        if (!rc) *correct = strstr(answer, p->passkey) != NULL;
    }
    dv_sampler_free(smp);
    free(ids);
    free(logits);
    return rc;
}
