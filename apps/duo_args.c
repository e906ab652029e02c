// duo_args.c: parse, validate and apply the DuoAttention flags (see duo_args.h).
#include "apps/duo_args.h"

#include "apps/args.h"

#include <string.h>

void dv_duo_args_init(dv_duo_args *a) {
    *a = (dv_duo_args){.path = NULL, .sparsity = -1, .threshold = -1, .sink = -1, .recent = -1,
                       .prefill = DV_DUO_PREFILL_REFERENCE, .kv_type_k = DV_LLM_KV_DEFAULT,
                       .kv_type_v = DV_LLM_KV_DEFAULT};
}

int dv_duo_args_parse(dv_duo_args *a, int code, const char *v) {
    switch (code - DV_DUO_OPT_BASE) {
    case 0: a->path = v; return 1;
    case 1: return dv_arg_double("--duo-sparsity", v, 0, 1, &a->sparsity) ? -1 : 1;
    case 2: return dv_arg_double("--duo-threshold", v, 0, 1, &a->threshold) ? -1 : 1;
    case 3: return dv_arg_int("--sink", v, 0, 1 << 20, &a->sink) ? -1 : 1;
    case 4: return dv_arg_int("--recent", v, 1, 1 << 24, &a->recent) ? -1 : 1;
    case 5:
        if (!strcmp(v, "reference")) a->prefill = DV_DUO_PREFILL_REFERENCE;
        else if (!strcmp(v, "strict")) a->prefill = DV_DUO_PREFILL_STRICT;
        else {
            fprintf(stderr, "duovid: error: --duo-prefill: '%s' is not one of reference, strict\n", v);
            return -1;
        }
        return 1;
    case 6:
    case 7:
    case 8: {
        static const char *const names[] = {"--kv-type", "--kv-type-k", "--kv-type-v"};
        const int t = dv_kv_type_parse(v), which = code - DV_DUO_OPT_BASE - 6;
        if (t < 0) {
            fprintf(stderr, "duovid: error: %s: '%s' is not one of f32, bf16, f16, q8, q4\n", names[which], v);
            return -1;
        }
        if (which != 2) a->kv_type_k = t;
        if (which != 1) a->kv_type_v = t;
        return 1;
    }
    default: return 0;
    }
}

void dv_duo_args_apply(const dv_duo_args *a, dv_llm_params *p) {
    p->duo_prefill = a->prefill;
    p->kv_type_k = a->kv_type_k;
    p->kv_type_v = a->kv_type_v;
}

void dv_duo_args_help(FILE *f) {
    fprintf(f,
            "DuoAttention (without --duo every head keeps its full KV cache):\n"
            "      --duo PATH         pattern folder (full_attention_heads.tsv + config.json) or .tsv file\n"
            "      --duo-sparsity S   fraction of KV heads made streaming, in [0, 1] (default 0.75 for MHA\n"
            "                         models, 0.5 for GQA: the reference's deployed settings)\n"
            "      --duo-threshold T  instead: heads with gate >= T keep a full cache\n"
            "      --sink N           tokens streaming heads keep from the start (default 64)\n"
            "      --recent N         tokens streaming heads keep from the end (default 256)\n"
            "      --duo-prefill M    reference: tokens of one prefill chunk see each other (the published\n"
            "                         accuracy); strict: streaming heads see only sink + recent, also\n"
            "                         inside a chunk (cost linear in the context). Default reference.\n"
            "KV cache (retrieval pages and streaming rings alike; docs/FORMATS.md):\n"
            "      --kv-type T        row type of keys and values: f32, bf16, f16, q8 (int8, one scale per\n"
            "                         token and head), q4 (4-bit, scale + offset per 32 values; head dim a\n"
            "                         multiple of 32). Default bf16 (f32 on a backend without compact rows)\n"
            "      --kv-type-k T      the keys' type only (after --kv-type)\n"
            "      --kv-type-v T      the values' type only (after --kv-type)\n");
}

int dv_duo_args_load(const dv_duo_args *a, const dv_llm_config *cfg, dv_duo_pattern **out) {
    *out = NULL;
    if (!a->path) {
        if (a->sparsity >= 0 || a->threshold >= 0 || a->sink >= 0 || a->recent >= 0) {
            fprintf(stderr, "duovid: error: --duo-sparsity/--duo-threshold/--sink/--recent need --duo PATTERN\n");
            return -1;
        }
        return 0;
    }
    if (a->sparsity >= 0 && a->threshold >= 0) {
        fprintf(stderr, "duovid: error: give either --duo-sparsity or --duo-threshold, not both\n");
        return -1;
    }
    dv_duo_pattern *p = NULL;
    if (dv_duo_pattern_load(a->path, &p) || dv_duo_pattern_check(p, a->path, cfg->n_attn_layers, cfg->n_kv_heads)) {
        dv_app_error();
        dv_duo_pattern_free(p);
        return -1;
    }
    if (a->threshold >= 0) {
        dv_duo_pattern_set_threshold(p, a->threshold);
    } else {
        double s = a->sparsity >= 0 ? a->sparsity : (cfg->n_kv_heads == cfg->n_heads ? 0.75 : 0.5);
        dv_duo_pattern_set_sparsity(p, s);
    }
    if (a->sink >= 0) p->sink = a->sink;
    if (a->recent >= 0) p->recent = a->recent;
    *out = p;
    return 0;
}
