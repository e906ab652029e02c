// sampler_args.c: parse and describe the sampling flags (sampler_args.h).
#include "apps/sampler_args.h"

#include "apps/args.h"

void dv_sampler_args_init(dv_sampler_args *a, float temperature) {
    a->params = dv_sampler_default_params();
    a->params.temperature = temperature;
    a->ignore_eos = 0;
}

int dv_sampler_args_parse(dv_sampler_args *a, int code, const char *v) {
    dv_sampler_params *p = &a->params;
    switch (code - DV_SAMPLER_OPT_BASE) {
    case 0: return dv_arg_float("--temp", v, 0, 100, &p->temperature) ? -1 : 1;
    case 1: return dv_arg_int("--top-k", v, 0, 1 << 30, &p->top_k) ? -1 : 1;
    case 2: return dv_arg_float("--top-p", v, 1e-6, 1, &p->top_p) ? -1 : 1;
    case 3: return dv_arg_float("--repeat-penalty", v, 1e-3, 100, &p->repetition_penalty) ? -1 : 1;
    case 4: return dv_arg_u64("--seed", v, &p->seed) ? -1 : 1;
    case 5: a->ignore_eos = 1; return 1;
    default: return 0;
    }
}

void dv_sampler_args_help(const dv_sampler_args *a, FILE *f) {
    const dv_sampler_params *p = &a->params;
    fprintf(f,
            "      --temp T           sampling temperature; 0 = greedy (default %g)\n"
            "      --top-k K          keep the K most likely tokens; 0 = all (default %d)\n"
            "      --top-p P          nucleus sampling mass in (0, 1] (default %g)\n"
            "      --repeat-penalty R penalty for tokens among the last %d (default %g = off)\n"
            "      --seed S           random seed (default: from the clock)\n"
            "      --ignore-eos       keep generating past end-of-sequence\n",
            p->temperature, p->top_k, p->top_p, p->repeat_last_n, p->repetition_penalty);
}
