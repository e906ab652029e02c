// duo_args.h: the DuoAttention flags shared by every command that runs the LLM
// (--duo, --duo-sparsity, --duo-threshold, --sink, --recent, --duo-prefill).
#ifndef DV_DUO_ARGS_H
#define DV_DUO_ARGS_H

#include "llm/dv_duo_pattern.h"
#include "llm/dv_kv_cache.h"
#include "llm/dv_llm_config.h"

#include <getopt.h>
#include <stdio.h>

typedef struct dv_duo_args {
    const char *path;   // pattern folder or .tsv; NULL = full attention
    double sparsity;    // < 0: unset
    double threshold;   // < 0: unset
    int sink, recent;   // < 0: unset
    dv_duo_prefill prefill;
} dv_duo_args;

// getopt_long entries; their codes are DV_DUO_OPT_BASE + 0..5
#define DV_DUO_OPT_BASE 300
#define DV_DUO_LONG_OPTIONS                                                                             \
    {"duo", required_argument, 0, DV_DUO_OPT_BASE}, {"duo-sparsity", required_argument, 0, DV_DUO_OPT_BASE + 1}, \
        {"duo-threshold", required_argument, 0, DV_DUO_OPT_BASE + 2},                                   \
        {"sink", required_argument, 0, DV_DUO_OPT_BASE + 3}, {"recent", required_argument, 0, DV_DUO_OPT_BASE + 4}, \
        {"duo-prefill", required_argument, 0, DV_DUO_OPT_BASE + 5}

void dv_duo_args_init(dv_duo_args *a);
// Handles one option code: 1 = handled, 0 = not a duo option, -1 = bad value (error printed).
int dv_duo_args_parse(dv_duo_args *a, int code, const char *value);
// The --help lines.
void dv_duo_args_help(FILE *f);
// Loads and binarizes the pattern for a model (NULL *out when no --duo). Prints one error line and
// returns -1 on failure (missing file, wrong layer/head counts, flags without --duo).
int dv_duo_args_load(const dv_duo_args *a, const dv_llm_config *cfg, dv_duo_pattern **out);

#endif
