// duo_identify.c: DuoAttention head identification on synthetic multi-passkey samples (see
// dv_duo_identify.h): sample construction, the ablation and attention-mass scores, pattern files.
#include "llm/dv_duo_identify.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "core/dv_progress.h"
#include "kernels/dv_attn_mask.h"
#include "llm/llm_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const nato[26] = {"alpha",   "bravo",  "charlie", "delta",  "echo",   "foxtrot", "golf",
                                     "hotel",   "india",  "juliett", "kilo",   "lima",   "mike",    "november",
                                     "oscar",   "papa",   "quebec",  "romeo",  "sierra", "tango",   "uniform",
                                     "victor",  "whiskey", "xray",   "yankee", "zulu"};
static const char *const ordinals[10] = {"first", "second", "third",   "fourth", "fifth",
                                         "sixth", "seventh", "eighth", "ninth",  "tenth"};

dv_duo_id_params dv_duo_id_default_params(void) {
    dv_duo_id_params p = {.method = DV_DUO_ID_ABLATION, .n_samples = 2, .length = 1024, .n_passkeys = 4,
                          .passkey_words = 8, .sink = 64, .recent = 256, .stride = 4, .steps = 128, .lr = 0.05, .reg = 0.05,
                          .supervise_all = 1, .seed = 1, .filler_path = NULL};
    return p;
}

// ---- a growable token list ----
typedef struct toks {
    int32_t *v;
    int n, cap;
} toks;

static int toks_reserve(toks *t, int extra) {
    if (t->n + extra <= t->cap) return 0;
    int cap = t->cap ? 2 * t->cap : 1024;
    while (cap < t->n + extra) cap *= 2;
    int32_t *nv = realloc(t->v, (size_t)cap * sizeof *nv);
    if (!nv) return dv_error_set(DV_ENOMEM, "out of memory");
    t->v = nv;
    t->cap = cap;
    return 0;
}

static int toks_push(toks *t, int32_t x) {
    int rc = toks_reserve(t, 1);
    if (!rc) t->v[t->n++] = x;
    return rc;
}

// Appends the tokens of `text` (no BOS); the first call only counts them.
static int toks_text(toks *t, dv_tokenizer *tok, const char *text) {
    int n = 0, rc = dv_tokenizer_encode(tok, text, 0, NULL, 0, &n);
    if (rc && rc != DV_EINVAL) return rc;
    if ((rc = toks_reserve(t, n))) return rc;
    rc = dv_tokenizer_encode(tok, text, 0, t->v + t->n, n, &n);
    if (!rc) t->n += n;
    return rc;
}

static uint64_t rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

void dv_duo_sample_free(dv_duo_sample *s) {
    if (!s) return;
    free(s->ids);
    free(s->answer);
    memset(s, 0, sizeof *s);
}

int dv_duo_sample_make(dv_tokenizer *tok, const dv_duo_id_params *p, uint64_t seed, dv_duo_sample *out) {
    memset(out, 0, sizeof *out);
    if (!p->filler_path) return dv_error_set(DV_EINVAL, "identify: no filler text given");
    const char *path = p->filler_path;
    FILE *f = fopen(path, "rb");
    if (!f) return dv_error_set(DV_ENOTFOUND, "%s: cannot open the filler text (%s)", path, strerror(errno));
    const size_t max_text = 1 << 20; // filler is recycled cyclically: 1 MiB is plenty
    char *text = malloc(max_text);
    size_t len = text ? fread(text, 1, max_text - 1, f) : 0;
    fclose(f);
    if (!text) return dv_error_set(DV_ENOMEM, "out of memory");
    text[len] = 0;
    toks filler = {0}, t = {0}, ans = {0};
    char (*keys)[512] = calloc((size_t)p->n_passkeys, sizeof *keys);
    int rc = keys ? toks_text(&filler, tok, text) : dv_error_set(DV_ENOMEM, "out of memory");
    free(text);
    if (!rc && filler.n < 16) rc = dv_error_set(DV_EFORMAT, "%s: too little filler text", path);
    uint64_t s = seed * 2654435761u + 12345;
    for (int k = 0; !rc && k < p->n_passkeys; k++) {
        size_t o = 0;
        for (int w = 0; w < p->passkey_words; w++)
            o += (size_t)snprintf(keys[k] + o, sizeof keys[k] - o, "%s%s", w ? " " : "", nato[rnd(&s) % 26]);
    }
    if (!rc && dv_tokenizer_bos(tok) >= 0) rc = toks_push(&t, dv_tokenizer_bos(tok));
    if (!rc) rc = toks_text(&t, tok, "This is a very long story book: <book>");
    // filler, cyclically from a random offset, with a needle at each depth in [0.05, 0.95]
    int off = (int)(rnd(&s) % (uint64_t)filler.n), next = 0;
    for (int i = 0; !rc && i <= p->length; i++) {
        while (!rc && next < p->n_passkeys &&
               i == (int)((0.05 + 0.9 * (p->n_passkeys > 1 ? (double)next / (p->n_passkeys - 1) : 0.5)) * p->length)) {
            char needle[768];
            snprintf(needle, sizeof needle, "\n\nRemember this sequence of words, it's the %s passkey to the vault: %s\n\n",
                     ordinals[next % 10], keys[next]);
            rc = toks_text(&t, tok, needle);
            next++;
        }
        if (!rc && i < p->length) rc = toks_push(&t, filler.v[(off + i) % filler.n]);
    }
    if (!rc) rc = toks_text(&t, tok, " </book>.\n\n");
    for (int k = 0; !rc && k < p->n_passkeys; k++) {
        char q[256];
        snprintf(q, sizeof q, "Based on the content of the book, what is the %s passkey to the vault?\nPasskey:",
                 ordinals[k % 10]);
        rc = toks_text(&t, tok, q);
        int a0 = t.n;
        // no leading space: SentencePiece's dummy prefix gives "▁alpha" as in the needle
        if (!rc) rc = toks_text(&t, tok, keys[k]);
        for (int i = a0; !rc && i < t.n; i++) rc = toks_push(&ans, i);
        if (!rc) rc = toks_text(&t, tok, "\n\n");
    }
    free(filler.v);
    free(keys);
    if (rc) {
        free(t.v);
        free(ans.v);
        return rc;
    }
    *out = (dv_duo_sample){t.v, t.n, ans.v, ans.n};
    return 0;
}

// ---- final hidden states and their error ----

static int hidden_for(dv_llm *m, const dv_duo_sample *s, const dv_duo_pattern *pat, float *hidden) {
    int rc = dv_llm_set_duo(m, pat, DV_DUO_PREFILL_STRICT);
    if (!rc) rc = dv_llm_prefill_hidden(m, s->ids, s->n, hidden);
    return rc;
}

// One full-attention pass per sample with `obs` watching every layer; *is_answer (the observer context's
// field) points at the sample's answer flags while it runs. flags (max_n) and hidden (max_n, H) are the
// caller's scratch.
static int observe_samples(dv_llm *m, const dv_duo_sample *smp, int n_samples, int max_n, dv_llm_observer obs,
                           void *ctx, const uint8_t **is_answer, uint8_t *flags, float *hidden, const char *label) {
    int rc = 0;
    dv_progress *pg = dv_progress_init(label, n_samples, "samples");
    for (int i = 0; !rc && i < n_samples; i++) {
        memset(flags, 0, (size_t)max_n);
        for (int a = 0; a < smp[i].n_answer; a++) flags[smp[i].answer[a]] = 1;
        *is_answer = flags;
        m->observer = obs;
        m->observer_ctx = ctx;
        rc = hidden_for(m, &smp[i], NULL, hidden);
        m->observer = NULL;
        dv_progress_update(pg, i + 1);
    }
    dv_progress_finish(pg);
    return rc;
}

// mean over answer tokens of the mean squared difference of their hidden states
static double answer_error(const dv_duo_sample *s, const float *h, const float *ref, int H) {
    double e = 0;
    for (int a = 0; a < s->n_answer; a++) {
        const float *x = h + (size_t)s->answer[a] * H, *y = ref + (size_t)s->answer[a] * H;
        for (int d = 0; d < H; d++) e += ((double)x[d] - y[d]) * ((double)x[d] - y[d]);
    }
    return s->n_answer ? e / ((double)s->n_answer * H) : 0;
}

int dv_duo_pattern_error(dv_llm *m, const dv_duo_sample *samples, int n_samples, const dv_duo_pattern *pattern,
                         double *err) {
    const int H = m->cfg.hidden_size;
    int max_n = 0, rc = 0;
    for (int i = 0; i < n_samples; i++) max_n = samples[i].n > max_n ? samples[i].n : max_n;
    float *h = malloc((size_t)max_n * H * sizeof *h), *ref = malloc((size_t)max_n * H * sizeof *ref);
    if (!h || !ref) rc = dv_error_set(DV_ENOMEM, "out of memory");
    *err = 0;
    for (int i = 0; !rc && i < n_samples; i++) {
        if (!(rc = hidden_for(m, &samples[i], NULL, ref)) && !(rc = hidden_for(m, &samples[i], pattern, h)))
            *err += answer_error(&samples[i], h, ref, H) / n_samples;
    }
    free(h);
    free(ref);
    return rc;
}

// ---- attention mass outside the window, seen through the forward observer ----
typedef struct mass_ctx {
    const uint8_t *is_answer; // (n) 1 at answer positions
    double *sum;              // (L, Hkv)
    double *count;            // (L, Hkv)
    int Hkv, sink, recent;
    float scale;
    float *scores;            // (n) scratch
    float *krow;              // (D) one key row decoded to F32, scratch
} mass_ctx;

static void mass_observer(void *vctx, int layer, const dv_tensor *q, const dv_tensor *k_new, const dv_tensor *v_new,
                          const dv_kv_head_view *views, int64_t q_pos0) {
    (void)v_new;
    mass_ctx *c = vctx;
    const int64_t T = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = k_new->ne[1], grp = Hq / Hkv;
    for (int64_t t = 0; t < T; t++) {
        const int64_t p = q_pos0 + t;
        if (!c->is_answer[p]) continue;
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t g = h / grp;
            const float *qv = (const float *)((const char *)q->data + (size_t)t * q->nb[0] + (size_t)h * q->nb[1]);
            // gather scores of every key 0..p: the cache segments, then the chunk's keys 0..t
            int64_t n = 0;
            float mx = -INFINITY;
            for (int sgi = 0; sgi <= views[g].n_segs; sgi++) {
                const char *k;
                int64_t cnt, stride; // bytes between rows
                dv_kv_type kt = DV_KV_F32;
                if (sgi < views[g].n_segs) {
                    const dv_kv_seg *sg = &views[g].segs[sgi];
                    k = sg->k, cnt = sg->n, stride = sg->k_stride, kt = sg->kt;
                } else {
                    k = (const char *)((const float *)k_new->data + g * D), cnt = t + 1, stride = Hkv * D * 4;
                }
                for (int64_t j = 0; j < cnt; j++) {
                    dv_kv_dequantize_row(kt, k + j * stride, D, c->krow); // the cache's stored row type
                    float d = 0;
                    for (int64_t i = 0; i < D; i++) d += qv[i] * c->krow[i];
                    c->scores[n] = d * c->scale;
                    mx = c->scores[n] > mx ? c->scores[n] : mx;
                    n++;
                }
            }
            // all heads are retrieval heads in this pass, so key index == position
            double z = 0, out = 0;
            for (int64_t j = 0; j < n; j++) {
                double e = exp((double)c->scores[j] - mx);
                z += e;
                if (!dv_attn_mask_visible(p, j, 1, c->sink, c->recent)) out += e; // outside the strict window
            }
            c->sum[layer * c->Hkv + g] += out / z;
            c->count[layer * c->Hkv + g] += 1;
        }
    }
}

// ---- output deviation: what making a head streaming changes in the residual stream ----
// For each query (every `stride`-th position past sink + recent, and every answer token) and each
// query head: the full-attention output o_f and the streaming output o_s (softmax over the sink +
// recent keys only, strict rule), both from the same full-attention pass. The KV head's deviation is
// delta = Wo[:, group heads] (o_f - o_s): exactly the first-order change of the layer's residual
// update when its gate alpha moves from 1 (full) to 0 (streaming), out = alpha full + (1 - alpha)
// streaming, as the reference's gates mix them. Scored relative to the layer input's squared norm,
// since the next RMSNorm only sees the direction of the residual stream. (Qwen3.5's attention output
// gate, sigmoid(g) * o, is not applied: the scores then overstate gated-down heads.)
typedef struct dev_ctx {
    dv_llm *m;
    const uint8_t *is_answer; // (n) 1 at answer positions
    double *sum_all, *sum_ans; // (L, Hkv) sums of ||delta||^2 / ||x||^2 over scored / answer queries
    double *cnt_all, *cnt_ans; // (L, Hkv) their counts
    int sink, recent, stride;
    float scale;
    float *K, *V;   // (Hkv, n_max, D) the layer's keys / values at positions 0 .. p0+T-1, F32
    float *wo;      // (H, Hq*D) the layer's output projection, F32
    float *sc;      // (n_max) one query's scores
    float *diff;    // (grp, D) o_f - o_s of one query for the heads of one group
    float *delta;   // (H)
    int n_max;
} dev_ctx;

static void dev_observer(void *vctx, int layer, const dv_tensor *q, const dv_tensor *k_new, const dv_tensor *v_new,
                         const dv_kv_head_view *views, int64_t q_pos0) {
    dev_ctx *c = vctx;
    dv_llm *m = c->m;
    const int64_t T = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = k_new->ne[1], grp = Hq / Hkv,
                  H = m->cfg.hidden_size, N = c->n_max;
    const dv_tensor *wo = &m->layers[dv_llm_config_attn_layer(&m->cfg, layer)].wo; // (H, Hq*D)
    for (size_t i = 0; i < (size_t)(H * Hq * D); i++) c->wo[i] = dv_llm_weight_at(wo, i);
    for (int64_t g = 0; g < Hkv; g++) { // keys and values of the whole sequence so far, F32
        float *K = c->K + g * N * D, *V = c->V + g * N * D;
        for (int si = 0; si < views[g].n_segs; si++) {
            const dv_kv_seg *sg = &views[g].segs[si];
            for (int64_t j = 0; j < sg->n; j++) {
                dv_kv_dequantize_row(sg->kt, (const char *)sg->k + j * sg->k_stride, D, K + (sg->pos0 + j) * D);
                dv_kv_dequantize_row(sg->vt, (const char *)sg->v + j * sg->v_stride, D, V + (sg->pos0 + j) * D);
            }
        }
        for (int64_t t = 0; t < T; t++) {
            memcpy(K + (q_pos0 + t) * D, (const float *)k_new->data + (t * Hkv + g) * D, (size_t)D * sizeof(float));
            memcpy(V + (q_pos0 + t) * D, (const float *)v_new->data + (t * Hkv + g) * D, (size_t)D * sizeof(float));
        }
    }
    for (int64_t t = 0; t < T; t++) {
        const int64_t p = q_pos0 + t;
        const int ans = c->is_answer[p];
        if (p <= c->sink + c->recent || (!ans && p % c->stride)) continue; // streaming sees everything / skipped
        const float *xr = m->x + t * H; // the layer's input (CPU backend: host memory)
        double xn = 0;
        for (int64_t i = 0; i < H; i++) xn += (double)xr[i] * xr[i];
        for (int64_t g = 0; g < Hkv; g++) {
            const float *K = c->K + g * N * D, *V = c->V + g * N * D;
            for (int64_t hh = 0; hh < grp; hh++) {
                const float *qv = (const float *)((const char *)q->data + (size_t)t * q->nb[0] +
                                                  (size_t)(g * grp + hh) * q->nb[1]);
                float mf = -INFINITY, ms = -INFINITY;
                for (int64_t j = 0; j <= p; j++) {
                    float d = 0;
                    for (int64_t i = 0; i < D; i++) d += qv[i] * K[j * D + i];
                    c->sc[j] = d * c->scale;
                    mf = c->sc[j] > mf ? c->sc[j] : mf;
                    if (dv_attn_mask_visible(p, j, 1, c->sink, c->recent) && c->sc[j] > ms) ms = c->sc[j];
                }
                float *of = c->delta, *os = c->diff + hh * D; // delta: scratch for o_f here
                double zf = 0, zs = 0;
                for (int64_t i = 0; i < D; i++) of[i] = os[i] = 0;
                for (int64_t j = 0; j <= p; j++) {
                    const float ef = expf(c->sc[j] - mf);
                    zf += ef;
                    for (int64_t i = 0; i < D; i++) of[i] += ef * V[j * D + i];
                    if (dv_attn_mask_visible(p, j, 1, c->sink, c->recent)) {
                        const float es = expf(c->sc[j] - ms);
                        zs += es;
                        for (int64_t i = 0; i < D; i++) os[i] += es * V[j * D + i];
                    }
                }
                for (int64_t i = 0; i < D; i++) os[i] = (float)(of[i] / zf - os[i] / zs); // o_f - o_s
            }
            double dn = 0; // ||Wo[:, group] diff||^2
            for (int64_t r = 0; r < H; r++) {
                const float *w = c->wo + r * Hq * D + g * grp * D;
                float acc = 0;
                for (int64_t i = 0; i < grp * D; i++) acc += w[i] * c->diff[i];
                dn += (double)acc * acc;
            }
            const double rel = xn > 0 ? dn / xn : 0;
            c->sum_all[layer * Hkv + g] += rel;
            c->cnt_all[layer * Hkv + g] += 1;
            if (ans) {
                c->sum_ans[layer * Hkv + g] += rel;
                c->cnt_ans[layer * Hkv + g] += 1;
            }
        }
    }
}

const char *dv_duo_id_method_name(dv_duo_id_method m) {
    return m == DV_DUO_ID_ABLATION         ? "ablation"
           : m == DV_DUO_ID_ATTENTION_MASS ? "attention-mass"
           : m == DV_DUO_ID_DEVIATION      ? "deviation"
           : m == DV_DUO_ID_GATES          ? "gates"
                                           : "random";
}

int dv_duo_identify(dv_llm *m, dv_tokenizer *tok, const dv_duo_id_params *p, double *scores) {
    const int L = m->cfg.n_attn_layers, Hkv = m->cfg.n_kv_heads, NH = L * Hkv, H = m->cfg.hidden_size; // attention layers
    if (p->method == DV_DUO_ID_RANDOM) {
        uint64_t s = p->seed * 2654435761u + 7;
        for (int i = 0; i < NH; i++) scores[i] = (double)(rnd(&s) & 0x3fffffff) / (double)0x40000000;
        return 0;
    }
    if (p->method == DV_DUO_ID_GATES) {
        int rc = dv_duo_gates_train(m, tok, p, scores), rc2 = dv_llm_set_duo(m, NULL, DV_DUO_PREFILL_REFERENCE);
        return rc ? rc : rc2;
    }
    if (p->n_samples < 1 || p->length < 16 || p->n_passkeys < 1 || p->passkey_words < 1 || p->sink < 0 ||
        p->recent < 1)
        return dv_error_set(DV_EINVAL, "identify: samples >= 1, length >= 16, passkeys >= 1, words >= 1, recent >= 1");
    dv_duo_sample *smp = calloc((size_t)p->n_samples, sizeof *smp);
    if (!smp) return dv_error_set(DV_ENOMEM, "out of memory");
    int rc = 0, max_n = 0;
    for (int i = 0; !rc && i < p->n_samples; i++) {
        rc = dv_duo_sample_make(tok, p, p->seed + (uint64_t)i, &smp[i]);
        if (!rc && smp[i].n > m->n_ctx)
            rc = dv_error_set(DV_EINVAL, "identify: a sample has %d tokens, more than the context (%d)", smp[i].n,
                              m->n_ctx);
        if (!rc && smp[i].n > max_n) max_n = smp[i].n;
    }
    for (int i = 0; i < NH; i++) scores[i] = 0;
    if (!rc && p->method == DV_DUO_ID_ATTENTION_MASS) {
        mass_ctx c = {.Hkv = Hkv, .sink = p->sink, .recent = p->recent,
                      .scale = 1.0f / sqrtf((float)m->cfg.head_dim)};
        c.sum = calloc((size_t)NH, sizeof *c.sum);
        c.count = calloc((size_t)NH, sizeof *c.count);
        c.scores = malloc((size_t)max_n * sizeof *c.scores);
        c.krow = malloc((size_t)m->cfg.head_dim * sizeof *c.krow);
        uint8_t *flags = calloc((size_t)max_n, 1);
        float *hidden = malloc((size_t)max_n * H * sizeof *hidden);
        if (!c.sum || !c.count || !c.scores || !c.krow || !flags || !hidden) rc = dv_error_set(DV_ENOMEM, "out of memory");
        if (!rc) rc = observe_samples(m, smp, p->n_samples, max_n, mass_observer, &c, &c.is_answer, flags, hidden, "identify (attention mass)");
        for (int i = 0; !rc && i < NH; i++) scores[i] = c.count[i] > 0 ? c.sum[i] / c.count[i] : 0;
        free(c.sum);
        free(c.count);
        free(c.scores);
        free(c.krow);
        free(flags);
        free(hidden);
    } else if (!rc && p->method == DV_DUO_ID_DEVIATION) {
        if (m->be->device != DV_DEVICE_CPU) rc = dv_error_set(DV_EUNSUPPORTED, "identify --method deviation runs on the CPU backend");
        const int64_t D = m->cfg.head_dim, Hq = m->cfg.n_heads;
        dev_ctx c = {.m = m, .sink = p->sink, .recent = p->recent, .stride = p->stride > 0 ? p->stride : 1,
                     .scale = 1.0f / sqrtf((float)D), .n_max = max_n};
        c.sum_all = calloc((size_t)NH, sizeof *c.sum_all);
        c.sum_ans = calloc((size_t)NH, sizeof *c.sum_ans);
        c.cnt_all = calloc((size_t)NH, sizeof *c.cnt_all);
        c.cnt_ans = calloc((size_t)NH, sizeof *c.cnt_ans);
        c.K = malloc((size_t)Hkv * max_n * D * sizeof *c.K);
        c.V = malloc((size_t)Hkv * max_n * D * sizeof *c.V);
        c.wo = malloc((size_t)H * Hq * D * sizeof *c.wo);
        c.sc = malloc((size_t)max_n * sizeof *c.sc);
        c.diff = malloc((size_t)Hq * D * sizeof *c.diff);
        c.delta = malloc((size_t)(H > D ? H : D) * sizeof *c.delta);
        uint8_t *flags = calloc((size_t)max_n, 1);
        float *hidden = malloc((size_t)max_n * H * sizeof *hidden);
        if (!rc && (!c.sum_all || !c.sum_ans || !c.cnt_all || !c.cnt_ans || !c.K || !c.V || !c.wo || !c.sc ||
                    !c.diff || !c.delta || !flags || !hidden))
            rc = dv_error_set(DV_ENOMEM, "out of memory");
        if (!rc) rc = observe_samples(m, smp, p->n_samples, max_n, dev_observer, &c, &c.is_answer, flags, hidden, "identify (output deviation)");
        // each half (all scored queries: the language model's needs; the answers: retrieval) scaled to
        // its largest head, then averaged: a head either kind of query depends on stays full
        double mx_all = 0, mx_ans = 0;
        for (int i = 0; !rc && i < NH; i++) {
            c.sum_all[i] = c.cnt_all[i] > 0 ? c.sum_all[i] / c.cnt_all[i] : 0;
            c.sum_ans[i] = c.cnt_ans[i] > 0 ? c.sum_ans[i] / c.cnt_ans[i] : 0;
            mx_all = c.sum_all[i] > mx_all ? c.sum_all[i] : mx_all;
            mx_ans = c.sum_ans[i] > mx_ans ? c.sum_ans[i] : mx_ans;
        }
        for (int i = 0; !rc && i < NH; i++)
            scores[i] = 0.5 * (mx_all > 0 ? c.sum_all[i] / mx_all : 0) + 0.5 * (mx_ans > 0 ? c.sum_ans[i] / mx_ans : 0);
        free(c.sum_all);
        free(c.sum_ans);
        free(c.cnt_all);
        free(c.cnt_ans);
        free(c.K);
        free(c.V);
        free(c.wo);
        free(c.sc);
        free(c.diff);
        free(c.delta);
        free(flags);
        free(hidden);
    } else if (!rc) {
        // ablation: the error each KV head causes when it alone is made streaming
        dv_duo_pattern *pat = NULL;
        float *ref = malloc((size_t)p->n_samples * (size_t)max_n * H * sizeof *ref),
              *h = malloc((size_t)max_n * H * sizeof *h);
        if (!ref || !h || (rc = dv_duo_pattern_full(L, Hkv, &pat)))
            rc = rc ? rc : dv_error_set(DV_ENOMEM, "out of memory");
        if (pat) {
            pat->sink = p->sink;
            pat->recent = p->recent;
        }
        for (int i = 0; !rc && i < p->n_samples; i++) rc = hidden_for(m, &smp[i], NULL, ref + (size_t)i * max_n * H);
        dv_progress *pg = dv_progress_init("identify (ablation)", NH, "heads");
        for (int k = 0; !rc && k < NH; k++) {
            for (int i = 0; i < NH; i++) pat->retrieval[i] = i != k;
            pat->n_retrieval = NH - 1;
            double e = 0;
            for (int i = 0; !rc && i < p->n_samples; i++)
                if (!(rc = hidden_for(m, &smp[i], pat, h)))
                    e += answer_error(&smp[i], h, ref + (size_t)i * max_n * H, H) / p->n_samples;
            scores[k] = e;
            dv_progress_update(pg, k + 1);
        }
        dv_progress_finish(pg);
        double mx = 0;
        for (int i = 0; i < NH; i++) mx = scores[i] > mx ? scores[i] : mx;
        for (int i = 0; i < NH; i++) scores[i] = mx > 0 ? scores[i] / mx : 0;
        dv_duo_pattern_free(pat);
        free(ref);
        free(h);
    }
    for (int i = 0; i < p->n_samples; i++) dv_duo_sample_free(&smp[i]);
    free(smp);
    int rc2 = dv_llm_set_duo(m, NULL, DV_DUO_PREFILL_REFERENCE); // leave the model on full attention
    return rc ? rc : rc2;
}

int dv_duo_pattern_write(const char *dir, const double *scores, int L, int H, const dv_duo_id_params *p) {
    if (mkdir(dir, 0777) && errno != EEXIST) return dv_error_set(DV_EIO, "%s: cannot create (%s)", dir, strerror(errno));
    size_t cap = (size_t)L * H * 32 + 16, o = 0;
    char *tsv = malloc(cap);
    if (!tsv) return dv_error_set(DV_ENOMEM, "out of memory");
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
            o += (size_t)snprintf(tsv + o, cap - o, "%.18e%s", scores[l * H + h], h + 1 < H ? "\t" : "\n");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "sink_size", p->sink);
    cJSON_AddNumberToObject(j, "recent_size", p->recent);
    cJSON_AddStringToObject(j, "method", dv_duo_id_method_name(p->method));
    if (p->method == DV_DUO_ID_DEVIATION) cJSON_AddNumberToObject(j, "query_stride", p->stride);
    if (p->method == DV_DUO_ID_GATES) { // the reference's names
        cJSON_AddNumberToObject(j, "num_steps", p->steps);
        cJSON_AddNumberToObject(j, "lr", p->lr);
        cJSON_AddNumberToObject(j, "reg_weight", p->reg);
        cJSON_AddStringToObject(j, "supervision", p->supervise_all ? "distill-all" : "distill");
    } else {
        cJSON_AddNumberToObject(j, "samples", p->n_samples);
    }
    cJSON_AddNumberToObject(j, "context_length", p->length);
    cJSON_AddNumberToObject(j, "num_passkeys", p->n_passkeys);
    cJSON_AddNumberToObject(j, "passkey_words", p->passkey_words);
    cJSON_AddNumberToObject(j, "seed", (double)p->seed);
    cJSON_AddStringToObject(j, "generator", "duovid identify");
    char *cfg = cJSON_Print(j);
    cJSON_Delete(j);
    char path[4096];
    int rc = cfg ? 0 : dv_error_set(DV_ENOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/full_attention_heads.tsv", dir);
    if (!rc) rc = dv_fs_write_atomic(path, tsv, strlen(tsv));
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!rc) rc = dv_fs_write_atomic(path, cfg, strlen(cfg));
    free(tsv);
    free(cfg);
    return rc;
}
