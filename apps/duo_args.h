// duo_args.h: the DuoAttention and KV cache flags shared by every command that runs the LLM
// (--duo, --duo-sparsity, --duo-threshold, --sink, --recent, --duo-prefill, --kv-type, --kv-type-k,
// --kv-type-v).
#ifndef DV_DUO_ARGS_H
#define DV_DUO_ARGS_H

#include "llm/dv_duo_pattern.h"
#include "llm/dv_kv_cache.h"
#include "llm/dv_llm.h"
#include "llm/dv_llm_config.h"

#include <getopt.h>
#include <stdio.h>

typedef struct dv_duo_args {
    const char *path;   // pattern folder or .tsv; NULL = full attention
    double sparsity;    // < 0: unset
    double threshold;   // < 0: unset
    int sink, recent;   // < 0: unset
    dv_duo_prefill prefill;
    int kv_type_k, kv_type_v; // dv_kv_type, or DV_LLM_KV_DEFAULT (bf16 where the backend can)
} dv_duo_args;

// getopt_long entries; their codes are DV_DUO_OPT_BASE + 0..8
#define DV_DUO_OPT_BASE 300
#define DV_DUO_LONG_OPTIONS                                                                             \
    {"duo", required_argument, 0, DV_DUO_OPT_BASE}, {"duo-sparsity", required_argument, 0, DV_DUO_OPT_BASE + 1}, \
        {"duo-threshold", required_argument, 0, DV_DUO_OPT_BASE + 2},                                   \
        {"sink", required_argument, 0, DV_DUO_OPT_BASE + 3}, {"recent", required_argument, 0, DV_DUO_OPT_BASE + 4}, \
        {"duo-prefill", required_argument, 0, DV_DUO_OPT_BASE + 5},                                     \
        {"kv-type", required_argument, 0, DV_DUO_OPT_BASE + 6}, {"kv-type-k", required_argument, 0, DV_DUO_OPT_BASE + 7}, \
        {"kv-type-v", required_argument, 0, DV_DUO_OPT_BASE + 8}

void dv_duo_args_init(dv_duo_args *a);
// Handles one option code: 1 = handled, 0 = not a duo option, -1 = bad value (error printed).
int dv_duo_args_parse(dv_duo_args *a, int code, const char *value);
// The --help lines.
void dv_duo_args_help(FILE *f);
// Loads and binarizes the pattern for a model (NULL *out when no --duo). Prints one error line and
// returns -1 on failure (missing file, wrong layer/head counts, flags without --duo).
int dv_duo_args_load(const dv_duo_args *a, const dv_llm_config *cfg, dv_duo_pattern **out);
// Carries the prefill semantics and the KV row types into the LLM's parameters (the pattern comes
// from dv_duo_args_load).
void dv_duo_args_apply(const dv_duo_args *a, dv_llm_params *p);

#endif
