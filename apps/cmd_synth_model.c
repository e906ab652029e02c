// cmd_synth_model.c: `duovid synth-model`: write a random-weight Llama/Mistral/Qwen3.5 checkpoint of a
// named shape, for benchmarks (no download needed).
#include "apps/args.h"
#include "apps/cli.h"

#include "core/dv_error.h"
#include "core/dv_progress.h"
#include "llm/dv_llm_synth.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: duovid synth-model --shape NAME -o DIR [--dtype bf16|f16|f32] [--seed S]\n\n"
            "Writes DIR/config.json and DIR/model.safetensors with random weights (std 0.02) in the\n"
            "Hugging Face layout. The text it generates is meaningless; it exists for `duovid bench`.\n\n"
            "  --shape NAME   %s\n"
            "  -o, --output   output folder (created; existing files are replaced atomically)\n"
            "  --dtype T      weight dtype (default bf16)\n"
            "  --layers N     override the number of layers (quick small variants of big shapes)\n"
            "  --seed S       random seed (default 1)\n"
            "  --std X        weight standard deviation (default 0.02, HF's initializer_range)\n"
            "  -h, --help     this help\n",
            dv_llm_synth_preset_names());
}

int dv_cmd_synth_model(int argc, char **argv) {
    const char *shape = NULL, *out = NULL, *dtype_s = "bf16";
    uint64_t seed = 1;
    int layers = 0;
    double std = 0.02;
    static const struct option opts[] = {{"shape", required_argument, 0, 's'}, {"output", required_argument, 0, 'o'},
                                         {"dtype", required_argument, 0, 'd'}, {"seed", required_argument, 0, 'r'},
                                         {"layers", required_argument, 0, 'l'}, {"std", required_argument, 0, 'x'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1;) {
        switch (c) {
        case 's': shape = optarg; break;
        case 'o': out = optarg; break;
        case 'd': dtype_s = optarg; break;
        case 'r': if (dv_arg_u64("--seed", optarg, &seed)) return 1; break;
        case 'l': if (dv_arg_int("--layers", optarg, 1, 4096, &layers)) return 1; break;
        case 'x': if (dv_arg_double("--std", optarg, 0, 10, &std)) return 1; break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("synth-model", "%s needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("synth-model", "unknown option '%s'", argv[optind - 1]); return 1;
        }
    }
    if (!shape || !out || optind != argc) {
        dv_app_usage_error("synth-model", "--shape NAME and -o DIR are required");
        return 1;
    }
    dv_dtype dt;
    if (!strcmp(dtype_s, "bf16")) dt = DV_DTYPE_BF16;
    else if (!strcmp(dtype_s, "f16")) dt = DV_DTYPE_F16;
    else if (!strcmp(dtype_s, "f32")) dt = DV_DTYPE_F32;
    else {
        dv_app_usage_error("synth-model", "--dtype: '%s' is not one of bf16, f16, f32", dtype_s);
        return 1;
    }
    dv_llm_config cfg;
    if (dv_llm_synth_preset(shape, &cfg)) {
        dv_app_error();
        return 1;
    }
    if (layers && dv_llm_synth_set_layers(&cfg, layers)) {
        dv_app_error();
        return 1;
    }
    double t0 = dv_time_now();
    if (dv_llm_synth_write(out, &cfg, dt, seed, std)) {
        dv_app_error();
        return 1;
    }
    fprintf(stderr, "duovid: wrote %s (%s shape, %d layers, %s) in %.1f s\n", out, shape, cfg.n_layers, dtype_s,
            dv_time_now() - t0);
    return 0;
}
