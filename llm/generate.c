// generate.c: the token-generation loop (dv_generate.h).
#include "llm/dv_generate.h"

#include "core/dv_error.h"
#include "core/dv_progress.h"

#include <string.h>

int dv_llm_generate(dv_llm *m, const dv_llm_gen_params *p, float *logits, int32_t *ids, int n_ids, int cap,
                    dv_llm_gen_result *out) {
    DV_ASSERT(p->sampler && p->tokenizer && n_ids + p->max_new <= cap);
    memset(out, 0, sizeof *out);
    const double t0 = dv_time_now();
    const dv_llm_config *cfg = dv_llm_get_config(m);
    const size_t V = (size_t)cfg->vocab_size;
    dv_tokenizer_stream *stream = dv_tokenizer_stream_init(p->tokenizer, p->at_start);
    if (!stream) return dv_error_set(DV_ENOMEM, "out of memory");
    int rc = 0;
    out->stop = DV_GEN_STOP_LENGTH;
    for (int i = 0; i < p->max_new; i++) {
        if (p->on_step) p->on_step(p->user, i, p->max_new);
        if (p->cancel && p->cancel(p->user)) {
            out->stop = DV_GEN_STOP_CANCEL;
            break;
        }
        if (p->logits_trace) memcpy(p->logits_trace + (size_t)i * V, logits, V * sizeof(float));
        int32_t next = dv_sampler_sample(p->sampler, logits, ids, n_ids);
        int stop = dv_llm_config_is_eos(cfg, next) || next == dv_tokenizer_eos(p->tokenizer);
        for (int k = 0; k < p->n_stop_ids && !stop; k++) stop = next == p->stop_ids[k];
        if (!p->ignore_eos && stop) {
            out->stop = DV_GEN_STOP_EOS;
            break;
        }
        if (i == 0) out->t_first = dv_time_now() - t0;
        ids[n_ids++] = next;
        out->n_tokens++;
        const char *piece = dv_tokenizer_stream_push(stream, next);
        if (p->on_token && (rc = p->on_token(p->user, next, piece ? piece : ""))) {
            if (rc > 0) out->stop = DV_GEN_STOP_CANCEL;
            break;
        }
        if ((p->decode_last || i + 1 < p->max_new) && (rc = dv_llm_decode(m, next, logits))) break;
    }
    if (!rc) {
        const char *tail = dv_tokenizer_stream_flush(stream);
        if (tail && *tail && p->on_token) rc = p->on_token(p->user, -1, tail);
    }
    if (!out->n_tokens) out->t_first = dv_time_now() - t0;
    dv_tokenizer_stream_free(stream);
    return rc < 0 ? rc : 0;
}
