// test_duo_identify.c: DuoAttention head identification on a tiny random model (4 layers x 4 KV
// heads, weights std 0.3 so attention is far from uniform):
//  - the synthetic samples hold each answer's passkey earlier in the text (the needle);
//  - a pattern chosen from the ablation scores at sparsity 0.5 loses less (final-hidden error at
//    the answer tokens) than the mean of 10 random patterns at the same sparsity;
//  - the same for the output-deviation scores;
//  - all methods give scores in [0, 1] (ablation's maximum is 1). On random weights their Spearman
//    correlation is noise (printed only: no head has learned anything), so
//  - a second model has planted heads: "local" heads whose RoPE'd queries and keys come from one
//    shared direction, so each token attends to itself and its neighbours, and "global" heads with
//    zero queries (uniform attention over the whole context). There all three methods must put every
//    global head above every local head, and their Spearman correlations with ablation must be positive;
//    the trained gates (--method gates, 40 steps) too.
//  - written pattern folders read back identically.
#include "core/dv_error.h"
#include "llm/dv_duo_identify.h"
#include "llm/dv_llm_synth.h"
#include "tests/dv_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void ranks(const double *x, int n, double *r) {
    for (int i = 0; i < n; i++) {
        double less = 0, eq = 0;
        for (int j = 0; j < n; j++) {
            less += x[j] < x[i];
            eq += x[j] == x[i];
        }
        r[i] = less + (eq + 1) / 2; // average rank for ties
    }
}

static double spearman(const double *a, const double *b, int n) {
    double ra[64], rb[64], ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    ranks(a, n, ra);
    ranks(b, n, rb);
    for (int i = 0; i < n; i++) ma += ra[i] / n, mb += rb[i] / n;
    for (int i = 0; i < n; i++) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    return sab / sqrt(saa * sbb);
}

#include "core/dv_safetensors.h"

static float gauss(uint64_t *s) { // Box-Muller from two LCG draws
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = ((*s >> 11) + 1.0) / 9007199254740993.0;
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = (*s >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

// 2 layers x 4 heads (MHA, head dim 16, hidden 64); local heads: layer 0 heads 0, 2 and layer 1
// heads 1, 3; the others are global. Written over a synth-model folder's weights.
static int is_local(int l, int h) { return (l == 0) == (h % 2 == 0); }

static int write_planted(const char *dir) {
    dv_llm_config cfg;
    dv_llm_synth_preset("tiny", &cfg);
    cfg.n_kv_heads = 4;
    if (dv_llm_synth_write(dir, &cfg, DV_DTYPE_F32, 3, 0.1)) return -1; // config.json (+ weights replaced)
    enum { V = 514, H = 64, F = 176, D = 16 };
    uint64_t s = 11;
    static float emb[V * H], head[V * H], wq[2][H * H], wk[2][H * H], wv[2][H * H], wo[2][H * H], gate[2][F * H],
        up[2][F * H], down[2][H * F], ones[H];
    float c[H];
    for (int i = 0; i < H; i++) c[i] = gauss(&s), ones[i] = 1.0f;
    for (int i = 0; i < V * H; i++) emb[i] = c[i % H] + 0.1f * gauss(&s), head[i] = 0.1f * gauss(&s);
    for (int l = 0; l < 2; l++) {
        for (int i = 0; i < H * H; i++) wv[l][i] = 0.3f * gauss(&s), wo[l][i] = 0.03f * gauss(&s); // small: the residual stays ~c
        for (int i = 0; i < F * H; i++) gate[l][i] = 0.1f * gauss(&s), up[l][i] = 0.1f * gauss(&s), down[l][i] = 0;
        // local head: q = k = u (c . x) / |c|^2 ~ u for every token, |u_i| = 3 in every rotary pair, so
        // after RoPE the score depends on the distance only and peaks at 0 (every frequency in phase)
        double cc = 0;
        for (int i = 0; i < H; i++) cc += (double)c[i] * c[i];
        for (int h = 0; h < 4; h++)
            for (int r = 0; r < D; r++) {
                const float u = (gauss(&s) > 0 ? 3.0f : -3.0f) * (is_local(l, h) ? 1.0f : 0.0f);
                for (int col = 0; col < H; col++) {
                    const float a = (float)(u * c[col] / cc * sqrt(cc / H)); // (c . x) ~ |c| sqrt(H) for rms-1 x
                    wq[l][(h * D + r) * H + col] = a;
                    wk[l][(h * D + r) * H + col] = a;
                }
            }
    }
    char names[24][64];
    dv_st_write_tensor t[24];
    int n = 0;
#define T2(nm, ptr, d0, d1) (snprintf(names[n], 64, "%s", nm), t[n] = (dv_st_write_tensor){names[n], DV_DTYPE_F32, (d1) ? 2 : 1, {d0, d1}, ptr, NULL, NULL}, n++)
    T2("model.embed_tokens.weight", emb, V, H);
    T2("lm_head.weight", head, V, H);
    T2("model.norm.weight", ones, H, 0);
    for (int l = 0; l < 2; l++) {
        char b[64];
#define TL(suffix, ptr, d0, d1) (snprintf(b, sizeof b, "model.layers.%d.%s", l, suffix), T2(b, ptr, d0, d1))
        TL("input_layernorm.weight", ones, H, 0);
        TL("post_attention_layernorm.weight", ones, H, 0);
        TL("self_attn.q_proj.weight", wq[l], H, H);
        TL("self_attn.k_proj.weight", wk[l], H, H);
        TL("self_attn.v_proj.weight", wv[l], H, H);
        TL("self_attn.o_proj.weight", wo[l], H, H);
        TL("mlp.gate_proj.weight", gate[l], F, H);
        TL("mlp.up_proj.weight", up[l], F, H);
        TL("mlp.down_proj.weight", down[l], H, F);
#undef TL
    }
#undef T2
    char path[400];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return dv_safetensors_write(path, t, n, NULL, NULL, 0);
}

static void planted(dv_backend *be, dv_tokenizer *tok, const dv_duo_id_params *base) {
    char dir[] = "/tmp/dv_planted_XXXXXX";
    if (!mkdtemp(dir) || write_planted(dir)) {
        DV_CHECK_MSG(0, "planted model: %s", dv_error_message());
        return;
    }
    dv_llm *m = NULL;
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = be;
    lp.n_ctx = 1024;
    DV_CHECK(dv_llm_open(dir, &lp, &m) == 0);
    double abl[8], mass[8], dev[8];
    dv_duo_id_params p = *base;
    p.method = DV_DUO_ID_ABLATION;
    DV_CHECK(m && dv_duo_identify(m, tok, &p, abl) == 0);
    p.method = DV_DUO_ID_ATTENTION_MASS;
    DV_CHECK(m && dv_duo_identify(m, tok, &p, mass) == 0);
    p.method = DV_DUO_ID_DEVIATION;
    DV_CHECK(m && dv_duo_identify(m, tok, &p, dev) == 0);
    double gates[8];
    p.method = DV_DUO_ID_GATES;
    p.steps = 40;
    p.supervise_all = 0; // the reference's loss: the answers only
    // the planted heads write small updates (Wo ~ 0.03), so the distillation loss is ~1e-4 of a
    // real model's: the push toward streaming is scaled with it (--reg is relative to that loss)
    p.reg = 3e-5;
    DV_CHECK(m && dv_duo_identify(m, tok, &p, gates) == 0);
    double min_global_a = 1e9, max_local_a = -1, min_global_m = 1e9, max_local_m = -1, min_global_d = 1e9,
           max_local_d = -1, min_global_g = 1e9, max_local_g = -1;
    for (int i = 0; i < 8; i++) {
        const int local = is_local(i / 4, i % 4);
        printf("  planted layer %d head %d (%s): ablation %.4f, attention mass %.4f, deviation %.4f, gates %.4f\n",
               i / 4, i % 4, local ? "local" : "global", abl[i], mass[i], dev[i], gates[i]);
        DV_CHECK(gates[i] >= 0 && gates[i] <= 1);
        if (local)
            max_local_a = fmax(max_local_a, abl[i]), max_local_m = fmax(max_local_m, mass[i]),
            max_local_d = fmax(max_local_d, dev[i]), max_local_g = fmax(max_local_g, gates[i]);
        else
            min_global_a = fmin(min_global_a, abl[i]), min_global_m = fmin(min_global_m, mass[i]),
            min_global_d = fmin(min_global_d, dev[i]), min_global_g = fmin(min_global_g, gates[i]);
    }
    double rho = spearman(abl, mass, 8), rho_d = spearman(abl, dev, 8);
    printf("planted heads: Spearman(ablation, attention-mass) = %.3f, Spearman(ablation, deviation) = %.3f\n", rho,
           rho_d);
    DV_CHECK_MSG(min_global_a > max_local_a, "ablation: a local head scores above a global one");
    DV_CHECK_MSG(min_global_m > max_local_m, "attention mass: a local head scores above a global one");
    DV_CHECK_MSG(min_global_d > max_local_d, "deviation: a local head scores above a global one");
    DV_CHECK_MSG(min_global_g > max_local_g, "gates: a local head's trained gate is above a global one's");
    DV_CHECK(rho > 0.5 && rho_d > 0.5);
    dv_llm_free(m);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    DV_CHECK(system(cmd) == 0);
}

int main(void) {
    char dir[] = "/tmp/dv_identify_XXXXXX", pdir[300];
    if (!mkdtemp(dir)) return 1;
    snprintf(pdir, sizeof pdir, "%s/pattern", dir);
    dv_llm_config cfg;
    dv_llm_synth_preset("tiny", &cfg);
    dv_llm_synth_set_layers(&cfg, 4);
    cfg.n_kv_heads = 4; // MHA: 16 KV heads in all
    DV_CHECK(dv_llm_synth_write(dir, &cfg, DV_DTYPE_F32, 7, 0.3) == 0);
    dv_backend *be = dv_backend_cpu_init(2);
    dv_tokenizer *tok = NULL;
    dv_llm *m = NULL;
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = be;
    lp.n_ctx = 1024;
    if (dv_tokenizer_open(dv_test_path("assets/tokenizer"), &tok) || dv_llm_open(dir, &lp, &m)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return dv_test_finish();
    }
    dv_duo_id_params p = dv_duo_id_default_params();
    p.length = 200;
    p.sink = 4;
    p.recent = 24;
    p.passkey_words = 4;
    p.n_passkeys = 2;
    p.filler_path = dv_test_path("assets/text/filler.txt");
    char filler[4096];
    snprintf(filler, sizeof filler, "%s", p.filler_path);
    p.filler_path = filler;

    // the data: answers repeat a passkey that appeared earlier (as the needle)
    dv_duo_sample smp[2];
    for (int i = 0; i < 2; i++) DV_CHECK(dv_duo_sample_make(tok, &p, 100 + (uint64_t)i, &smp[i]) == 0);
    DV_CHECK(smp[0].n_answer >= p.n_passkeys * p.passkey_words && smp[0].n > p.length);
    int found = 0;
    int alen = 1; // the first answer: a run of consecutive positions
    while (alen < smp[0].n_answer && smp[0].answer[alen] == smp[0].answer[0] + alen) alen++;
    const int a0 = smp[0].answer[0];
    for (int i = 1; i + alen < a0 && !found; i++) found = !memcmp(smp[0].ids + i, smp[0].ids + a0, (size_t)alen * 4);
    DV_CHECK_MSG(found, "the first answer's tokens do not appear earlier in the sample");
    printf("sample: %d tokens, %d answer tokens, the answer's passkey found earlier: %s\n", smp[0].n, smp[0].n_answer,
           found ? "yes" : "no");

    const int NH = cfg.n_layers * cfg.n_kv_heads;
    double abl[16], mass[16], dev[16];
    p.method = DV_DUO_ID_ABLATION;
    DV_CHECK(dv_duo_identify(m, tok, &p, abl) == 0);
    p.method = DV_DUO_ID_ATTENTION_MASS;
    DV_CHECK(dv_duo_identify(m, tok, &p, mass) == 0);
    p.method = DV_DUO_ID_DEVIATION;
    DV_CHECK(dv_duo_identify(m, tok, &p, dev) == 0);
    double rho = spearman(abl, mass, NH), mx = 0;
    for (int i = 0; i < NH; i++) mx = fmax(mx, abl[i]);
    printf("ablation vs attention-mass: Spearman %.3f over %d heads (ablation max %.3f)\n", rho, NH, mx);
    DV_CHECK(isfinite(rho) && fabs(mx - 1.0) < 1e-12);
    for (int i = 0; i < NH; i++)
        DV_CHECK(abl[i] >= 0 && abl[i] <= 1 && mass[i] >= 0 && mass[i] <= 1 && dev[i] >= 0 && dev[i] <= 1);

    // identified vs random patterns at sparsity 0.5
    dv_duo_pattern *pat = NULL;
    dv_duo_pattern_full(cfg.n_layers, cfg.n_kv_heads, &pat);
    pat->sink = p.sink;
    pat->recent = p.recent;
    for (int i = 0; i < NH; i++) pat->alpha[i] = abl[i];
    dv_duo_pattern_set_sparsity(pat, 0.5);
    double e_id = 0, e_dev = 0, e_rand = 0, e;
    DV_CHECK(dv_duo_pattern_error(m, smp, 2, pat, &e_id) == 0);
    for (int i = 0; i < NH; i++) pat->alpha[i] = dev[i];
    dv_duo_pattern_set_sparsity(pat, 0.5);
    DV_CHECK(dv_duo_pattern_error(m, smp, 2, pat, &e_dev) == 0);
    uint64_t s = 5;
    for (int r = 0; r < 10; r++) {
        for (int i = 0; i < NH; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            pat->alpha[i] = (double)(s >> 11) / 9007199254740992.0;
        }
        dv_duo_pattern_set_sparsity(pat, 0.5);
        DV_CHECK(dv_duo_pattern_error(m, smp, 2, pat, &e) == 0);
        e_rand += e / 10;
    }
    printf("final-hidden error at sparsity 0.5: ablation %.4e, deviation %.4e, mean of 10 random patterns %.4e "
           "(%.1fx, %.1fx)\n", e_id, e_dev, e_rand, e_rand / e_id, e_rand / e_dev);
    DV_CHECK(e_id < e_rand && e_dev < e_rand);

    // the written folder reads back to the same gates
    DV_CHECK(dv_duo_pattern_write(pdir, abl, cfg.n_layers, cfg.n_kv_heads, &p) == 0);
    dv_duo_pattern *back = NULL;
    DV_CHECK(dv_duo_pattern_load(pdir, &back) == 0);
    if (back) {
        double md = 0;
        for (int i = 0; i < NH; i++) md = fmax(md, fabs(back->alpha[i] - abl[i]));
        DV_CHECK(back->n_layers == cfg.n_layers && back->n_kv_heads == cfg.n_kv_heads && md < 1e-15);
        DV_CHECK(back->cfg_sink == p.sink && back->cfg_recent == p.recent);
    }
    dv_duo_pattern_free(back);
    dv_duo_pattern_free(pat);
    planted(be, tok, &p);
    for (int i = 0; i < 2; i++) dv_duo_sample_free(&smp[i]);
    dv_llm_free(m);
    dv_tokenizer_free(tok);
    dv_backend_free(be);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    DV_CHECK(system(cmd) == 0);
    return dv_test_finish();
}
