// sampler_args.h: the sampling flags of every command that samples tokens (generate, ask, chat,
// summarize): --temp, --top-k, --top-p, --repeat-penalty, --seed, --ignore-eos.
#ifndef DV_SAMPLER_ARGS_H
#define DV_SAMPLER_ARGS_H

#include "llm/dv_sampler.h"

#include <getopt.h>
#include <stdio.h>

typedef struct dv_sampler_args {
    dv_sampler_params params;
    int ignore_eos;
} dv_sampler_args;

// getopt_long entries; their codes are DV_SAMPLER_OPT_BASE + 0..5
#define DV_SAMPLER_OPT_BASE 500
#define DV_SAMPLER_LONG_OPTIONS                                                                         \
    {"temp", required_argument, 0, DV_SAMPLER_OPT_BASE + 0}, {"top-k", required_argument, 0, DV_SAMPLER_OPT_BASE + 1}, \
        {"top-p", required_argument, 0, DV_SAMPLER_OPT_BASE + 2},                                       \
        {"repeat-penalty", required_argument, 0, DV_SAMPLER_OPT_BASE + 3},                              \
        {"seed", required_argument, 0, DV_SAMPLER_OPT_BASE + 4}, {"ignore-eos", no_argument, 0, DV_SAMPLER_OPT_BASE + 5}

// dv_sampler_default_params() with the command's default temperature (0 = greedy).
void dv_sampler_args_init(dv_sampler_args *a, float temperature);
// Handles one option code: 1 = handled, 0 = not a sampler option, -1 = bad value (error printed).
int dv_sampler_args_parse(dv_sampler_args *a, int code, const char *value);
// The --help lines, with the defaults of a.
void dv_sampler_args_help(const dv_sampler_args *a, FILE *f);

#endif
