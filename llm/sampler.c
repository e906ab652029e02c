// sampler.c: greedy / temperature / top-k / top-p sampling with a CTRL-style repetition penalty and
// a seeded xoshiro256** generator. Scratch is allocated once at init; sampling allocates nothing.
#include "llm/dv_sampler.h"

#include "core/dv_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct dv_sampler {
    dv_sampler_params p;
    int vocab;
    cand *c;          // (vocab) candidates, owned
    uint8_t *seen;    // (vocab) penalty marks, owned
    uint64_t rng[4];  // xoshiro256** state
};

dv_sampler_params dv_sampler_default_params(void) {
    dv_sampler_params p = {.temperature = 0.0f, .top_k = 40, .top_p = 0.95f, .repetition_penalty = 1.0f,
                           .repeat_last_n = 64, .seed = 0};
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t *s) {
    const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

int dv_sampler_init(const dv_sampler_params *p, int vocab, dv_sampler **out) {
    *out = NULL;
    if (!(p->temperature >= 0)) return dv_error_set(DV_EINVAL, "--temp must be >= 0 (got %g)", p->temperature);
    if (p->top_k < 0) return dv_error_set(DV_EINVAL, "--top-k must be >= 0 (got %d)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1)) return dv_error_set(DV_EINVAL, "--top-p must be in (0, 1] (got %g)", p->top_p);
    if (!(p->repetition_penalty > 0))
        return dv_error_set(DV_EINVAL, "--repeat-penalty must be > 0 (got %g)", p->repetition_penalty);
    if (p->repeat_last_n < 0) return dv_error_set(DV_EINVAL, "repeat_last_n must be >= 0");
    if (vocab <= 0) return dv_error_set(DV_EINVAL, "sampler: empty vocabulary");
    dv_sampler *s = calloc(1, sizeof *s);
    if (!s || !(s->c = malloc((size_t)vocab * sizeof *s->c)) || !(s->seen = calloc((size_t)vocab, 1))) {
        dv_sampler_free(s);
        return dv_error_set(DV_ENOMEM, "out of memory");
    }
    s->p = *p;
    s->vocab = vocab;
    uint64_t seed = p->seed ? p->seed : (uint64_t)time(NULL) ^ (uint64_t)clock();
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&seed);
    *out = s;
    return 0;
}

void dv_sampler_free(dv_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s->seen);
    free(s);
}

// The candidate order: higher logit first, lower id first on ties (a strict total order, so top-k
// and top-p sets are well defined even with tied logits).
static inline int cand_before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *a, const void *b) {
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

static inline void swap_cand(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

// Quickselect: reorders c so that c[0, k) are the k first candidates in cand_before order (in any
// order among themselves). O(n) on average, instead of sorting the whole vocabulary for top-k 40.
static void select_first(cand *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        // median of three as the pivot keeps sorted or reversed logits from going quadratic
        if (cand_before(&c[mid], &c[lo])) swap_cand(&c[mid], &c[lo]);
        if (cand_before(&c[hi], &c[lo])) swap_cand(&c[hi], &c[lo]);
        if (cand_before(&c[hi], &c[mid])) swap_cand(&c[hi], &c[mid]);
        const cand pivot = c[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (cand_before(&c[i], &pivot)) i++;
            while (cand_before(&pivot, &c[j])) j--;
            if (i <= j) swap_cand(&c[i++], &c[j--]);
        }
        // now c[lo, j] come before c[i, hi]; anything between equals the pivot and is in place
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

int32_t dv_sampler_sample(dv_sampler *s, float *logits, const int32_t *recent, int n_recent) {
    const int V = s->vocab;
    // repetition penalty: each distinct recent token once (HF's RepetitionPenaltyLogitsProcessor)
    if (s->p.repetition_penalty != 1.0f && recent) {
        int first = n_recent - s->p.repeat_last_n > 0 ? n_recent - s->p.repeat_last_n : 0;
        for (int i = first; i < n_recent; i++) {
            int32_t id = recent[i];
            if (id < 0 || id >= V || s->seen[id]) continue;
            s->seen[id] = 1;
            logits[id] = logits[id] > 0 ? logits[id] / s->p.repetition_penalty : logits[id] * s->p.repetition_penalty;
        }
        for (int i = first; i < n_recent; i++)
            if (recent[i] >= 0 && recent[i] < V) s->seen[recent[i]] = 0;
    }
    if (s->p.temperature <= 0) {
        // argmax, lowest id on ties; a NaN logit never wins (unless all are NaN: id 0)
        int32_t best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best] || (logits[best] != logits[best] && logits[i] == logits[i])) best = i;
        return best;
    }
    // candidates (NaN -> -inf so they sort last and get probability 0)
    for (int i = 0; i < V; i++) s->c[i] = (cand){logits[i] == logits[i] ? logits[i] / s->p.temperature : -INFINITY, i};
    int n = V;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_first(s->c, n, s->p.top_k);
        n = s->p.top_k;
        qsort(s->c, (size_t)n, sizeof *s->c, cmp_cand); // top-p needs them in order
    } else if (s->p.top_p < 1.0f) {
        qsort(s->c, (size_t)n, sizeof *s->c, cmp_cand);
    } else {
        // no truncation: only the maximum is needed (for a stable softmax); the id order is kept
        int m = 0;
        for (int i = 1; i < n; i++)
            if (cand_before(&s->c[i], &s->c[m])) m = i;
        swap_cand(&s->c[0], &s->c[m]);
    }
    // softmax over the survivors, in double; c[0] holds the largest logit
    const double mx = s->c[0].logit;
    if (mx == -INFINITY) return s->c[0].id; // every logit is -inf or NaN: nothing to weigh
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)s->c[i].logit - mx);
    // top-p: the smallest prefix whose mass reaches top_p (at least one token)
    if (s->p.top_p < 1.0f) {
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += exp((double)s->c[i].logit - mx) / sum;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = 0;
        for (int i = 0; i < n; i++) sum += exp((double)s->c[i].logit - mx);
    }
    // inverse CDF with a 53-bit uniform in [0, 1)
    const double u = (double)(next_u64(s->rng) >> 11) * (1.0 / 9007199254740992.0) * sum;
    double acc = 0;
    for (int i = 0; i < n; i++) {
        acc += exp((double)s->c[i].logit - mx);
        if (u < acc) return s->c[i].id;
    }
    // rounding left u at the very top: the last token with any weight
    for (int i = n - 1; i > 0; i--)
        if (s->c[i].logit > -INFINITY) return s->c[i].id;
    return s->c[0].id;
}
