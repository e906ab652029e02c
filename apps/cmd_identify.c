// cmd_identify.c: `duovid identify`: score every KV head of a model as retrieval vs streaming on
// synthetic multi-passkey data and write a DuoAttention pattern folder (the reference's format).
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/cli.h"

#include "core/dv_error.h"
#include "llm/dv_duo_identify.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: duovid identify -m MODEL_DIR -o PATTERN_DIR [options]\n\n"
            "Scores every KV head (1 = needs its full KV cache, 0 = a sink + recent window is enough) on\n"
            "synthetic passkey-retrieval samples and writes PATTERN_DIR/full_attention_heads.tsv and\n"
            "config.json, usable with --duo. Progress on stderr, a summary on stdout.\n\n"
            "  -m, --model DIR        Hugging Face model folder: a text model (Llama, Mistral, Qwen2, Qwen3,\n"
            "                         Qwen3.5 dense or MoE: its attention layers) or a VLM (LLaVA, Qwen2.5-VL,\n"
            "                         Qwen3-VL, Qwen3.5: its language model, scored on text)\n"
            "  -o, --output DIR       pattern folder to write (created)\n"
            "  --method M             deviation: one full-attention pass per sample (CPU); a head's score is\n"
            "                         |Wo (o_full - o_streaming)|^2 / |x|^2, the first-order change of the\n"
            "                         residual stream when its gate moves from full to streaming, over every\n"
            "                         --stride-th query and over the answers (the two halves averaged). Cost:\n"
            "                         ~2 forwards per sample (SmolLM2-135M: ~1.5 min CPU for 2 samples);\n"
            "                         recommended, it made the shipped SmolLM2 pattern;\n"
            "                         ablation (default): final-hidden error each head causes when it alone\n"
            "                         is made streaming; one forward per KV head and sample (90 x 2 for\n"
            "                         SmolLM2-135M: tens of minutes);\n"
            "                         gates: the DuoAttention reference's optimization: a gate per KV head\n"
            "                         mixing full and streaming attention, trained (AdamW, a fresh sample per\n"
            "                         step, forward + backward through the frozen model) to keep the answers'\n"
            "                         final hidden states equal to full attention's, with --reg pushing gates\n"
            "                         toward streaming; the trained gates are the scores (CPU; dense Llama-family\n"
            "                         text models; SmolLM2-135M: ~5 s a step, 11 min, on 2 cores);\n"
            "                         attention-mass: one pass, attention the answers put outside the window;\n"
            "                         random: uniform random gates from --seed (a baseline pattern)\n"
            "  --stride N             deviation: score every N-th query past the window (default 4)\n"
            "  --samples N            synthetic samples (default 2; gates: one per step)\n"
            "  --steps N              gates: training steps (default 128)\n"
            "  --lr X                 gates: AdamW learning rate (default 0.05; warm-up over the first fifth of\n"
            "                         the steps, decay over the last fifth, as the reference)\n"
            "  --reg X                gates: weight of the mean gate in the loss (default 0.05, the reference's)\n"
            "  --supervise S          gates: all (default): match full attention's hidden states at the answer\n"
            "                         tokens and, weighted equally, at every position past the streaming\n"
            "                         window (language modelling too; made the shipped SmolLM2 pattern);\n"
            "                         answers: at the answer tokens only (the reference's loss)\n"
            "  --length N             filler tokens per sample (default 1024)\n"
            "  --passkeys N           passkeys per sample (default 4)\n"
            "  --passkey-words N      NATO words per passkey (default 8)\n"
            "  --sink N, --recent N   the streaming window scored against (default 64, 256)\n"
            "  --filler FILE          filler text (default assets/text/filler.txt beside the executable, in its\n"
            "                         parent folder or in ../share/duovid)\n"
            "  --seed S               data seed (default 1)\n"
            "  -t, --threads N        CPU threads (default: all cores)\n"
            "  -h, --help             this help\n");
}

int dv_cmd_identify(int argc, char **argv) {
    const char *model_dir = NULL, *out = NULL;
    int threads = 0;
    dv_duo_id_params p = dv_duo_id_default_params();
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"output", required_argument, 0, 'o'},
        {"method", required_argument, 0, 1},    {"samples", required_argument, 0, 2},
        {"length", required_argument, 0, 3},    {"passkeys", required_argument, 0, 4},
        {"passkey-words", required_argument, 0, 5}, {"sink", required_argument, 0, 6},
        {"recent", required_argument, 0, 7},    {"seed", required_argument, 0, 8},
        {"filler", required_argument, 0, 9},    {"threads", required_argument, 0, 't'},
        {"stride", required_argument, 0, 10},   {"steps", required_argument, 0, 11},
        {"lr", required_argument, 0, 12},       {"reg", required_argument, 0, 13},
        {"supervise", required_argument, 0, 14},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:o:t:h", opts, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'o': out = optarg; break;
        case 1:
            if (!strcmp(optarg, "ablation")) p.method = DV_DUO_ID_ABLATION;
            else if (!strcmp(optarg, "attention-mass")) p.method = DV_DUO_ID_ATTENTION_MASS;
            else if (!strcmp(optarg, "random")) p.method = DV_DUO_ID_RANDOM;
            else if (!strcmp(optarg, "deviation")) p.method = DV_DUO_ID_DEVIATION;
            else if (!strcmp(optarg, "gates")) p.method = DV_DUO_ID_GATES;
            else {
                dv_app_usage_error("identify", "--method: '%s' is not one of ablation, attention-mass, deviation, gates, random",
                                   optarg);
                return 1;
            }
            break;
        case 2: bad = dv_arg_int("--samples", optarg, 1, 1000, &p.n_samples); break;
        case 3: bad = dv_arg_int("--length", optarg, 16, 1 << 24, &p.length); break;
        case 4: bad = dv_arg_int("--passkeys", optarg, 1, 100, &p.n_passkeys); break;
        case 5: bad = dv_arg_int("--passkey-words", optarg, 1, 64, &p.passkey_words); break;
        case 6: bad = dv_arg_int("--sink", optarg, 0, 1 << 20, &p.sink); break;
        case 7: bad = dv_arg_int("--recent", optarg, 1, 1 << 24, &p.recent); break;
        case 8: bad = dv_arg_u64("--seed", optarg, &p.seed); break;
        case 9: p.filler_path = optarg; break;
        case 10: bad = dv_arg_int("--stride", optarg, 1, 1 << 20, &p.stride); break;
        case 11: bad = dv_arg_int("--steps", optarg, 1, 1000000, &p.steps); break;
        case 12: bad = dv_arg_double("--lr", optarg, 1e-6, 10, &p.lr); break;
        case 13: bad = dv_arg_double("--reg", optarg, 0, 100, &p.reg); break;
        case 14:
            if (!strcmp(optarg, "answers") || !strcmp(optarg, "all")) p.supervise_all = !strcmp(optarg, "all");
            else {
                dv_app_usage_error("identify", "--supervise: '%s' is not answers or all", optarg);
                return 1;
            }
            break;
        case 't': bad = dv_arg_threads(optarg, &threads); break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("identify", "%s needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("identify", "unknown option '%s'", argv[optind - 1]); return 1;
        }
        if (bad) return 1;
    }
    if (!model_dir || !out || optind != argc) {
        dv_app_usage_error("identify", "-m MODEL_DIR and -o PATTERN_DIR are required");
        return 1;
    }
    if (dv_app_check_model_dir(model_dir)) return 1;
    char filler[4096];
    if (!p.filler_path) {
        if (dv_app_find_data("assets/text/filler.txt", "--filler", filler, sizeof filler)) return 1;
        p.filler_path = filler;
    }
    int ret = 1;
    dv_backend *be = dv_app_backend_init("cpu", threads);
    dv_tokenizer *tok = NULL;
    dv_llm *m = NULL;
    double *scores = NULL;
    if (!be) goto done;
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = be;
    lp.n_ctx = p.length + p.n_passkeys * (64 + 8 * p.passkey_words) * 2 + 256; // filler + needles + questions
    // the gates' teacher is the model's own forward: F32 rows make it equal to the training forward at
    // gates 1 (loss 0 there, not bf16 rounding)
    if (p.method == DV_DUO_ID_GATES) lp.kv_type_k = lp.kv_type_v = DV_KV_F32;
    if (dv_tokenizer_open(model_dir, &tok) || dv_llm_open(model_dir, &lp, &m)) goto fail_msg;
    const dv_llm_config *cfg = dv_llm_get_config(m);
    const int L = cfg->n_attn_layers, NH = L * cfg->n_kv_heads; // a pattern covers the attention layers only
    if (!(scores = calloc((size_t)NH, sizeof *scores))) goto fail_msg;
    if (dv_duo_identify(m, tok, &p, scores) || dv_duo_pattern_write(out, scores, L, cfg->n_kv_heads, &p))
        goto fail_msg;
    int above = 0;
    for (int i = 0; i < NH; i++) above += scores[i] >= 0.5;
    printf("wrote %s: %d layers x %d KV heads (%s), %d of %d heads score >= 0.5\n", out, L, cfg->n_kv_heads,
           dv_duo_id_method_name(p.method), above, NH);
    if (cfg->n_linear_layers) {
        char lin[1024];
        printf("hybrid model: the pattern's %d layers are the attention layers; %d Gated DeltaNet layers (%s) are "
               "linear (a fixed-size state, no KV heads)\n",
               L, cfg->n_linear_layers, dv_llm_config_layers_str(cfg, 1, lin, sizeof lin));
    }
    for (int l = 0; l < L; l++) {
        if (cfg->n_linear_layers) printf("layer %3d (model layer %d):", l, dv_llm_config_attn_layer(cfg, l));
        else printf("layer %3d:", l);
        for (int h = 0; h < cfg->n_kv_heads; h++) printf(" %.3f", scores[l * cfg->n_kv_heads + h]);
        printf("\n");
    }
    ret = 0;
    goto done;
fail_msg:
    dv_app_error();
done:
    free(scores);
    dv_llm_free(m);
    dv_tokenizer_free(tok);
    dv_backend_free(be);
    return ret;
}
