// test_sampler.c: greedy, seeded reproducibility, the sampled distribution against softmax
// probabilities, top-k / top-p sets against a naive reference, repetition penalty, bad params.
#include "core/dv_error.h"
#include "llm/dv_sampler.h"
#include "tests/dv_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define V 50

static void fill_logits(float *l, uint64_t seed) {
    uint64_t s = seed;
    dv_test_rand(l, V, -3, 3, &s);
}

static int32_t draw(dv_sampler *s, const float *base) {
    float l[V];
    memcpy(l, base, sizeof l);
    return dv_sampler_sample(s, l, NULL, 0);
}

// Empirical frequencies vs the expected distribution over `allowed` (a mask) after temperature.
static void check_distribution(const char *label, dv_sampler_params p, const float *base, const uint8_t *allowed) {
    dv_sampler *s = NULL;
    DV_CHECK(dv_sampler_init(&p, V, &s) == 0);
    double prob[V] = {0}, z = 0, mx = -1e30;
    for (int i = 0; i < V; i++)
        if (allowed[i] && base[i] / p.temperature > mx) mx = base[i] / p.temperature;
    for (int i = 0; i < V; i++)
        if (allowed[i]) z += (prob[i] = exp(base[i] / p.temperature - mx));
    for (int i = 0; i < V; i++) prob[i] /= z;
    const int N = 200000;
    int count[V] = {0}, outside = 0;
    for (int k = 0; k < N; k++) {
        int32_t t = draw(s, base);
        count[t]++;
        outside += !allowed[t];
    }
    double chi2 = 0, maxdiff = 0;
    int dof = -1;
    for (int i = 0; i < V; i++) {
        if (!allowed[i]) continue;
        double e = prob[i] * N;
        chi2 += (count[i] - e) * (count[i] - e) / e;
        maxdiff = fmax(maxdiff, fabs(count[i] / (double)N - prob[i]));
        dof++;
    }
    // chi-square with dof degrees of freedom: mean dof, sd sqrt(2 dof); 6 sd is a fixed-seed sanity bound
    double bound = dof + 6 * sqrt(2.0 * dof);
    printf("%s: %d draws, chi2 = %.1f (dof %d, bound %.1f), max |freq - p| = %.4f, outside the set %d\n", label, N,
           chi2, dof, bound, maxdiff, outside);
    DV_CHECK(outside == 0 && chi2 < bound && maxdiff < 0.01);
    dv_sampler_free(s);
}

int main(void) {
    float base[V];
    fill_logits(base, 7);
    uint8_t all[V];
    memset(all, 1, sizeof all);
    dv_sampler_params p = dv_sampler_default_params();

    // greedy: argmax, lowest id on ties
    dv_sampler *g = NULL;
    p.temperature = 0;
    DV_CHECK(dv_sampler_init(&p, V, &g) == 0);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (base[i] > base[best]) best = i;
    DV_CHECK(draw(g, base) == best);
    float ties[V] = {0};
    ties[7] = ties[3] = 1.0f;
    DV_CHECK(draw(g, ties) == 3);
    dv_sampler_free(g);

    // same seed -> same sequence; another seed -> another sequence
    p = dv_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.seed = 99;
    dv_sampler *a = NULL, *b = NULL, *c = NULL;
    dv_sampler_init(&p, V, &a);
    dv_sampler_init(&p, V, &b);
    p.seed = 100;
    dv_sampler_init(&p, V, &c);
    int same = 1, differ = 0;
    for (int k = 0; k < 64; k++) {
        int32_t x = draw(a, base), y = draw(b, base), z = draw(c, base);
        same &= x == y;
        differ |= x != z;
    }
    DV_CHECK(same && differ);
    dv_sampler_free(a);
    dv_sampler_free(b);
    dv_sampler_free(c);

    // the distribution: plain, with temperature, top-k, top-p
    p.seed = 1;
    check_distribution("temperature 1", p, base, all);
    p.temperature = 0.5f;
    check_distribution("temperature 0.5", p, base, all);
    {
        // top-k 5: the 5 largest logits (naive selection)
        uint8_t mask[V] = {0};
        for (int k = 0; k < 5; k++) {
            int m = -1;
            for (int i = 0; i < V; i++)
                if (!mask[i] && (m < 0 || base[i] > base[m])) m = i;
            mask[m] = 1;
        }
        p.temperature = 1.0f;
        p.top_k = 5;
        check_distribution("top-k 5", p, base, mask);
        p.top_k = 1;
        dv_sampler *k1 = NULL;
        dv_sampler_init(&p, V, &k1);
        int all_best = 1;
        for (int k = 0; k < 100; k++) all_best &= draw(k1, base) == best;
        DV_CHECK(all_best); // top-k 1 is greedy
        dv_sampler_free(k1);
    }
    {
        // top-p 0.6: smallest prefix (by probability) with mass >= 0.6, computed naively
        double pr[V], z = 0;
        for (int i = 0; i < V; i++) z += (pr[i] = exp(base[i]));
        uint8_t mask[V] = {0};
        double cum = 0;
        while (cum < 0.6) {
            int m = -1;
            for (int i = 0; i < V; i++)
                if (!mask[i] && (m < 0 || pr[i] > pr[m])) m = i;
            mask[m] = 1;
            cum += pr[m] / z;
        }
        p.top_k = 0;
        p.top_p = 0.6f;
        check_distribution("top-p 0.6", p, base, mask);
    }
    {
        // top-p after temperature 0.7, then top-k 3 and top-p together (top-k first, then top-p
        // over the renormalised survivors), each set computed naively
        double pr[V], z = 0;
        for (int i = 0; i < V; i++) z += (pr[i] = exp(base[i] / 0.7));
        uint8_t mask[V] = {0};
        double cum = 0;
        while (cum < 0.8) {
            int m = -1;
            for (int i = 0; i < V; i++)
                if (!mask[i] && (m < 0 || pr[i] > pr[m])) m = i;
            mask[m] = 1;
            cum += pr[m] / z;
        }
        p.temperature = 0.7f;
        p.top_p = 0.8f;
        check_distribution("temperature 0.7 + top-p 0.8", p, base, mask);
        int top3[3], nm = 0;
        memset(mask, 0, sizeof mask);
        for (int k = 0; k < 3; k++) {
            int m = -1;
            for (int i = 0; i < V; i++)
                if (!mask[i] && (m < 0 || base[i] > base[m])) m = i;
            mask[m] = 1;
            top3[k] = m;
        }
        // top_p half way into the second token's mass: top-p must cut the 3 survivors to 2
        double z3 = exp(base[top3[0]]) + exp(base[top3[1]]) + exp(base[top3[2]]);
        const float top_p = (float)((exp(base[top3[0]]) + 0.5 * exp(base[top3[1]])) / z3);
        memset(mask, 0, sizeof mask);
        for (cum = 0; nm < 3 && cum < top_p; nm++) {
            mask[top3[nm]] = 1;
            cum += exp(base[top3[nm]]) / z3;
        }
        p.temperature = 1.0f;
        p.top_k = 3;
        p.top_p = top_p;
        printf("top-k 3 + top-p %.3f keeps %d tokens\n", top_p, nm);
        DV_CHECK(nm == 2);
        check_distribution("top-k 3 + top-p", p, base, mask);
    }
    {
        // a larger vocabulary with many tied logits: top-k must keep exactly the k first by (logit
        // desc, id asc), as a naive full sort says; a high temperature makes every survivor likely
        enum { BV = 4096, K = 64 };
        static float big[BV], work[BV];
        static uint8_t in_set[BV];
        static int hits[BV];
        uint64_t seed = 5;
        dv_test_rand(big, BV, 0, 1, &seed);
        for (int i = 0; i < BV; i++) big[i] = floorf(big[i] * 40) / 4; // 40 distinct values
        for (int k = 0; k < K; k++) {
            int m = -1;
            for (int i = 0; i < BV; i++)
                if (!in_set[i] && (m < 0 || big[i] > big[m])) m = i; // strict >: lowest id on ties
            in_set[m] = 1;
        }
        dv_sampler_params bp = dv_sampler_default_params();
        bp.temperature = 1000.0f;
        bp.top_k = K;
        bp.top_p = 1.0f;
        bp.seed = 11;
        dv_sampler *bs = NULL;
        DV_CHECK(dv_sampler_init(&bp, BV, &bs) == 0);
        int outside = 0, seen = 0;
        for (int d = 0; d < 20000; d++) {
            memcpy(work, big, sizeof work);
            int32_t t = dv_sampler_sample(bs, work, NULL, 0);
            outside += !in_set[t];
            seen += hits[t]++ == 0;
        }
        printf("top-k %d of %d tied logits: %d distinct tokens drawn, %d outside the naive set\n", K, BV, seen, outside);
        DV_CHECK(outside == 0 && seen == K);
        dv_sampler_free(bs);

        // speed at a Llama vocabulary (informational): top-k 40 + top-p 0.95 per token
        enum { LV = 32000 };
        static float lv[LV], lw[LV];
        dv_test_rand(lv, LV, -10, 10, &seed);
        bp = dv_sampler_default_params();
        bp.temperature = 0.8f;
        bp.seed = 3;
        DV_CHECK(dv_sampler_init(&bp, LV, &bs) == 0);
        clock_t c0 = clock();
        for (int d = 0; d < 200; d++) {
            memcpy(lw, lv, sizeof lw);
            dv_sampler_sample(bs, lw, NULL, 0);
        }
        printf("vocab %d, top-k 40, top-p 0.95: %.1f us per sample\n", LV, (double)(clock() - c0) / CLOCKS_PER_SEC / 200 * 1e6);
        dv_sampler_free(bs);
    }

    // repetition penalty: positive logits divided, negative multiplied, each token once
    {
        dv_sampler_params rp = dv_sampler_default_params();
        rp.repetition_penalty = 2.0f;
        dv_sampler *r = NULL;
        DV_CHECK(dv_sampler_init(&rp, V, &r) == 0);
        float l[V];
        for (int i = 0; i < V; i++) l[i] = 0;
        l[4] = 3.0f;
        l[9] = 2.0f;
        l[11] = -1.0f;
        int32_t recent[4] = {4, 4, 11, 30};
        int32_t t = dv_sampler_sample(r, l, recent, 4);
        DV_CHECK(l[4] == 1.5f && l[11] == -2.0f && l[9] == 2.0f && t == 9);
        dv_sampler_free(r);
        // only the last repeat_last_n tokens count: 4 is outside a window of 2
        rp.repeat_last_n = 2;
        DV_CHECK(dv_sampler_init(&rp, V, &r) == 0);
        for (int i = 0; i < V; i++) l[i] = 0;
        l[4] = 3.0f;
        l[11] = -1.0f;
        t = dv_sampler_sample(r, l, recent, 4);
        DV_CHECK(l[4] == 3.0f && l[11] == -2.0f && t == 4);
        // ids past the vocabulary in the history are ignored, and the marks do not leak into the next call
        int32_t odd[3] = {V + 5, -1, 4};
        l[4] = 3.0f;
        t = dv_sampler_sample(r, l, odd, 3);
        DV_CHECK(l[4] == 1.5f);
        l[4] = 3.0f;
        t = dv_sampler_sample(r, l, odd, 3);
        DV_CHECK(l[4] == 1.5f && t == 4);
        dv_sampler_free(r);
    }
    {
        // NaN logits never win
        dv_sampler_params np = dv_sampler_default_params();
        dv_sampler *r = NULL;
        DV_CHECK(dv_sampler_init(&np, V, &r) == 0);
        float l[V];
        for (int i = 0; i < V; i++) l[i] = NAN;
        l[17] = -5.0f;
        DV_CHECK(dv_sampler_sample(r, l, NULL, 0) == 17);
        dv_sampler_free(r);
        np.temperature = 1.0f;
        np.seed = 2;
        DV_CHECK(dv_sampler_init(&np, V, &r) == 0);
        int ok = 1;
        for (int k = 0; k < 50; k++) {
            for (int i = 0; i < V; i++) l[i] = i % 3 ? NAN : -1.0f;
            ok &= dv_sampler_sample(r, l, NULL, 0) % 3 == 0;
        }
        DV_CHECK(ok);
        dv_sampler_free(r);
    }

    // bad parameters
    dv_sampler *bad = NULL;
    dv_sampler_params bp = dv_sampler_default_params();
    bp.temperature = -1;
    DV_CHECK(dv_sampler_init(&bp, V, &bad) == DV_EINVAL && strstr(dv_error_message(), "--temp"));
    bp = dv_sampler_default_params();
    bp.top_p = 0;
    DV_CHECK(dv_sampler_init(&bp, V, &bad) == DV_EINVAL && strstr(dv_error_message(), "--top-p"));
    bp = dv_sampler_default_params();
    bp.repetition_penalty = 0;
    DV_CHECK(dv_sampler_init(&bp, V, &bad) == DV_EINVAL);
    bp = dv_sampler_default_params();
    bp.top_k = -2;
    DV_CHECK(dv_sampler_init(&bp, V, &bad) == DV_EINVAL && !bad);
    dv_sampler_free(NULL);
    return dv_test_finish();
}
