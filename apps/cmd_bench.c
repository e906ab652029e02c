// cmd_bench.c: `duovid bench llm`: prefill and decode throughput and peak memory of an LLM checkpoint
// (or of random weights of a named shape built in memory) on random token ids (no tokenizer needed).
// --fill N makes the KV cache hold N random tokens first (no model run), so decode can be timed at
// contexts whose full prefill would take too long; --sparsity runs DuoAttention.
#include "apps/app_common.h"
#include "apps/duo_args.h"
#include "apps/args.h"
#include "apps/cli.h"

#include "core/dv_error.h"
#include "core/dv_progress.h"
#include "llm/dv_duo_pattern.h"
#include "llm/dv_llm.h"
#include "llm/dv_llm_synth.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: duovid bench llm (-m MODEL_DIR | --synthetic SHAPE) [options]\n\n"
            "Measures prompt processing (prefill) and generation (decode) speed on random token ids,\n"
            "and the peak resident memory. Results go to stdout (one line, or JSON with --json).\n\n"
            "  -m, --model DIR     model folder (e.g. one written by `duovid synth-model`)\n"
            "  --synthetic SHAPE   random weights of that shape built in memory, no file (%s)\n"
            "  --dtype T           synthetic weight dtype: bf16 (default), f16, f32\n"
            "  --layers N          synthetic: N layers instead of the shape's (per-layer figures of big shapes)\n"
            "  --fill N            first fill the KV cache with N random tokens (no model run)\n"
            "  --sparsity S        DuoAttention: fraction S of streaming KV heads (default 0 = full)\n"
            "  --sink N, --recent N  streaming-head sizes (default 64, 256)\n"
            "  --duo-prefill M     reference (default) | strict\n"
            "  --kv-type T         KV cache row type: f32, bf16 (default), f16, q8, q4 (--kv-type-k,\n"
            "                      --kv-type-v: keys or values only)\n"
            "  --prompt-tokens N   prefill length (default 512; 0 with --fill: decode only)\n"
            "  --gen-tokens N      decode steps timed (default 32), after one untimed step (as llama-bench\n"
            "                      warms up: the first touch of the weights is not decode speed)\n"
            "  --batch N           prefill chunk size (default 256)\n"
            "  --repeat N          repeat and keep the best run (default 1)\n"
            "  -t, --threads N     CPU threads (default: all cores)\n"
            "  --device D          auto | cpu | cuda (default auto)\n"
            "  --json              print one JSON object\n"
            "  -h, --help          this help\n",
            dv_llm_synth_preset_names());
}

static int bench_llm(int argc, char **argv) {
    const char *model_dir = NULL, *device = "auto", *synthetic = NULL, *dtype_s = "bf16", *mode_s = "reference";
    int n_prompt = 512, n_gen = 32, n_batch = 256, threads = 0, json = 0, repeat = 1, fill = 0, sink = 64, recent = 256,
        layers = 0;
    double sparsity = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt-tokens", required_argument, 0, 1},
        {"gen-tokens", required_argument, 0, 2}, {"batch", required_argument, 0, 3},
        {"threads", required_argument, 0, 't'}, {"device", required_argument, 0, 4},
        {"json", no_argument, 0, 5}, {"repeat", required_argument, 0, 6}, {"synthetic", required_argument, 0, 7},
        {"dtype", required_argument, 0, 8}, {"fill", required_argument, 0, 9}, {"sparsity", required_argument, 0, 10},
        {"sink", required_argument, 0, 11}, {"recent", required_argument, 0, 12},
        {"duo-prefill", required_argument, 0, 13}, {"layers", required_argument, 0, 14}, {"kv-type", required_argument, 0, DV_DUO_OPT_BASE + 6},
        {"kv-type-k", required_argument, 0, DV_DUO_OPT_BASE + 7}, {"kv-type-v", required_argument, 0, DV_DUO_OPT_BASE + 8},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    dv_duo_args kv; // only its KV row types: bench llm has its own --sparsity / --sink / --recent
    dv_duo_args_init(&kv);
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:t:h", opts, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 1: bad = dv_arg_int("--prompt-tokens", optarg, 0, 1 << 24, &n_prompt); break;
        case 2: bad = dv_arg_int("--gen-tokens", optarg, 0, 1 << 20, &n_gen); break;
        case 3: bad = dv_arg_int("--batch", optarg, 1, 1 << 17, &n_batch); break;
        case 't': bad = dv_arg_threads(optarg, &threads); break;
        case 4: device = optarg; break;
        case 5: json = 1; break;
        case 6: bad = dv_arg_int("--repeat", optarg, 1, 100, &repeat); break;
        case 7: synthetic = optarg; break;
        case 8: dtype_s = optarg; break;
        case 9: bad = dv_arg_int("--fill", optarg, 0, 1 << 24, &fill); break;
        case 10: bad = dv_arg_double("--sparsity", optarg, 0, 1, &sparsity); break;
        case 11: bad = dv_arg_int("--sink", optarg, 0, 1 << 20, &sink); break;
        case 12: bad = dv_arg_int("--recent", optarg, 1, 1 << 24, &recent); break;
        case 13: mode_s = optarg; break;
        case 14: bad = dv_arg_int("--layers", optarg, 1, DV_LLM_MAX_LAYERS, &layers); break;
        case DV_DUO_OPT_BASE + 6:
        case DV_DUO_OPT_BASE + 7:
        case DV_DUO_OPT_BASE + 8: bad = dv_duo_args_parse(&kv, c, optarg) < 0; break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("bench llm", "%s needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("bench llm", "unknown option '%s'", argv[optind - 1]); return 1;
        }
        if (bad) return 1;
    }
    if ((!model_dir) == (!synthetic) || optind != argc) {
        dv_app_usage_error("bench llm", "exactly one of -m MODEL_DIR and --synthetic SHAPE is required");
        return 1;
    }
    dv_dtype dtype = !strcmp(dtype_s, "bf16") ? DV_DTYPE_BF16 : !strcmp(dtype_s, "f16") ? DV_DTYPE_F16
                     : !strcmp(dtype_s, "f32") ? DV_DTYPE_F32 : DV_DTYPE_COUNT;
    if (dtype == DV_DTYPE_COUNT) {
        dv_app_usage_error("bench llm", "--dtype: '%s' is not one of bf16, f16, f32", dtype_s);
        return 1;
    }
    if (strcmp(mode_s, "reference") && strcmp(mode_s, "strict")) {
        dv_app_usage_error("bench llm", "--duo-prefill: '%s' is not one of reference, strict", mode_s);
        return 1;
    }
    if (n_prompt == 0 && fill == 0) {
        dv_app_usage_error("bench llm", "--prompt-tokens 0 needs --fill N");
        return 1;
    }
    if (model_dir && dv_app_check_model_dir(model_dir)) return 1;
    int ret = 1;
    dv_backend *be = NULL;
    dv_llm *llm = NULL;
    dv_duo_pattern *pat = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    double peak_gib = 0;
    dv_llm_config scfg;
    if (synthetic && (dv_llm_synth_preset(synthetic, &scfg) || (layers && dv_llm_synth_set_layers(&scfg, layers)))) {
        dv_app_usage_error("bench llm", "--synthetic: %s", dv_error_message());
        return 1;
    }
    if (layers && !synthetic) {
        dv_app_usage_error("bench llm", "--layers needs --synthetic SHAPE");
        return 1;
    }
    if (!(be = dv_app_backend_init(device, threads))) goto done;
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = be;
    lp.n_ctx = fill + n_prompt + 1 + n_gen; // + the untimed warm-up step
    lp.n_batch = n_batch < n_prompt ? n_batch : (n_prompt > 0 ? n_prompt : 1);
    lp.duo_prefill = strcmp(mode_s, "strict") ? DV_DUO_PREFILL_REFERENCE : DV_DUO_PREFILL_STRICT;
    lp.kv_type_k = kv.kv_type_k;
    lp.kv_type_v = kv.kv_type_v;
    if (sparsity > 0) {
        const dv_llm_config *pc = synthetic ? &scfg : NULL;
        dv_llm_config fcfg;
        if (!pc) {
            if (dv_llm_config_load(model_dir, &fcfg)) goto fail_msg;
            pc = &fcfg;
        }
        if (dv_app_random_pattern(pc->n_attn_layers, pc->n_kv_heads, sparsity, sink, recent, &pat)) goto fail_msg;
        lp.pattern = pat;
    }
    if (synthetic ? dv_llm_open_synthetic(&scfg, dtype, 1, 0.02, &lp, &llm) : dv_llm_open(model_dir, &lp, &llm))
        goto fail_msg;
    const dv_llm_config *cfg = dv_llm_get_config(llm);
    const int n_ids = n_prompt > n_gen ? n_prompt : (n_gen > 0 ? n_gen : 1);
    ids = malloc((size_t)n_ids * sizeof *ids);
    logits = malloc((size_t)cfg->vocab_size * sizeof *logits);
    if (!ids || !logits) {
        dv_error_set(DV_ENOMEM, "out of memory");
        goto fail_msg;
    }
    uint64_t s = 12345;
    for (int i = 0; i < n_ids; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((s >> 33) % (uint64_t)cfg->vocab_size);
    }
    double best_pf = 1e30, best_dec = 1e30, cpu_pf = 0, cpu_dec = 0; // CPU seconds of the best runs
    for (int r = 0; r < repeat; r++) {
        if (dv_llm_rewind(llm, 0)) goto fail_msg;
        if (fill && dv_llm_fill_kv_synthetic(llm, fill, 7)) goto fail_msg;
        double t0 = dv_time_now(), c0 = dv_app_cpu_seconds();
        if (n_prompt && dv_llm_prefill(llm, ids, NULL, n_prompt, logits, 0)) goto fail_msg;
        double t1 = dv_time_now(), c1 = dv_app_cpu_seconds();
        double g = dv_app_device_used_gib(be);
        peak_gib = g > peak_gib ? g : peak_gib;
        // one untimed step first: it faults in the mapped weights (from disk when the page cache is
        // cold: 16 steps at 16K measured 31-47 tok/s cold against 73 warm) and wakes the threads
        if (n_gen > 0) {
            if (dv_llm_decode(llm, ids[n_gen % n_ids], logits)) goto fail_msg;
            t1 = dv_time_now(), c1 = dv_app_cpu_seconds();
        }
        for (int i = 0; i < n_gen; i++)
            if (dv_llm_decode(llm, ids[i % n_ids], logits)) goto fail_msg;
        double t2 = dv_time_now(), c2 = dv_app_cpu_seconds();
        g = dv_app_device_used_gib(be);
        peak_gib = g > peak_gib ? g : peak_gib;
        if (t1 - t0 < best_pf) best_pf = t1 - t0, cpu_pf = c1 - c0;
        if (t2 - t1 < best_dec) best_dec = t2 - t1, cpu_dec = c2 - c1;
    }
    double pf_tps = n_prompt > 0 ? n_prompt / best_pf : 0, dec_tps = n_gen > 0 ? n_gen / best_dec : 0;
    const char *name = synthetic ? synthetic : model_dir;
    // the memory floor of one decode step (at the mean context of the timed steps) over the
    // bandwidth measured now, in this run
    dv_kv_memory km;
    dv_kv_cache_memory(dv_llm_kv_cache(llm), &km);
    const double gbs = dv_app_read_gb_s(be), read_bytes = dv_app_decode_read_bytes(llm, fill + n_prompt + 1 + n_gen / 2.0);
    const double floor_tps = gbs > 0 ? gbs * 1e9 / read_bytes : 0;
    if (json) {
        // cJSON escapes the path (quotes, backslashes, control characters)
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", name);
        cJSON_AddBoolToObject(o, "synthetic", synthetic != NULL);
        cJSON_AddNumberToObject(o, "parameters", (double)dv_llm_param_count(llm));
        cJSON_AddStringToObject(o, "backend", be->ops->name);
        cJSON_AddNumberToObject(o, "threads", be->n_threads);
        cJSON_AddNumberToObject(o, "prompt_tokens", n_prompt);
        cJSON_AddNumberToObject(o, "gen_tokens", n_gen);
        cJSON_AddNumberToObject(o, "prefill_tok_s", pf_tps);
        cJSON_AddNumberToObject(o, "decode_tok_s", dec_tps);
        cJSON_AddNumberToObject(o, "fill_tokens", fill);
        cJSON_AddNumberToObject(o, "context", fill + n_prompt);
        cJSON_AddNumberToObject(o, "sparsity", sparsity);
        cJSON_AddNumberToObject(o, "prefill_s", n_prompt > 0 ? best_pf : 0);
        cJSON_AddNumberToObject(o, "decode_ms", dec_tps > 0 ? 1000.0 / dec_tps : 0);
        // CPU seconds (all threads, spinning included): with -t 1 the work itself on a shared machine
        cJSON_AddNumberToObject(o, "prefill_cpu_s", cpu_pf);
        cJSON_AddNumberToObject(o, "decode_cpu_ms", n_gen > 0 ? 1000.0 * cpu_dec / n_gen : 0);
        cJSON_AddNumberToObject(o, "weight_bytes", (double)dv_llm_weight_bytes(llm));
        cJSON_AddNumberToObject(o, "decode_weight_bytes", (double)dv_llm_decode_weight_bytes(llm)); // one step reads
        cJSON_AddNumberToObject(o, "kv_bytes", (double)dv_llm_kv_bytes(llm));
        const dv_linear_state *ls = dv_llm_linear_state(llm); // hybrid models: the Gated DeltaNet states
        cJSON_AddNumberToObject(o, "state_bytes", ls ? (double)dv_linear_state_bytes(ls) : 0);
        cJSON_AddNumberToObject(o, "layers", cfg->n_layers);
        cJSON_AddStringToObject(o, "kv_type_k", dv_kv_type_name(km.k_type));
        cJSON_AddStringToObject(o, "kv_type_v", dv_kv_type_name(km.v_type));
        cJSON_AddNumberToObject(o, "kv_bytes_per_token", (double)km.bytes_per_token);
        cJSON_AddNumberToObject(o, "decode_read_bytes", read_bytes);
        cJSON_AddNumberToObject(o, "read_gb_s", gbs);
        cJSON_AddNumberToObject(o, "memory_floor_tok_s", floor_tps);
        cJSON_AddNumberToObject(o, "floor_ratio", dec_tps > 0 ? floor_tps / dec_tps : 0); // 1 = at memory speed
        cJSON_AddStringToObject(o, "cpu_isa", dv_backend_cpu_isa());
        cJSON_AddNumberToObject(o, "device_peak_gib", peak_gib);
        cJSON_AddNumberToObject(o, "copy_gb_s", dv_app_copy_gb_s(be));
        cJSON_AddNumberToObject(o, "peak_rss_mib", dv_app_peak_rss_mib());
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!text) {
            dv_error_set(DV_ENOMEM, "out of memory");
            goto fail_msg;
        }
        printf("%s\n", text);
        free(text);
    } else
        printf("%s: %.1fM params, %s x%d threads: prefill %d tok %.1f tok/s, decode %d tok %.2f tok/s "
               "(%.1f ms/tok), peak RSS %.0f MiB; KV K %s V %s, %zu bytes per token; memory floor %.2f tok/s "
               "(%.1f GB/s read, decode at %.2fx the floor's time)\n",
               name, (double)dv_llm_param_count(llm) / 1e6, be->ops->name, be->n_threads, n_prompt, pf_tps,
               n_gen, dec_tps, dec_tps > 0 ? 1000.0 / dec_tps : 0, dv_app_peak_rss_mib(), dv_kv_type_name(km.k_type),
               dv_kv_type_name(km.v_type), km.bytes_per_token, floor_tps, gbs, dec_tps > 0 ? floor_tps / dec_tps : 0);
    ret = 0;
    goto done;
fail_msg:
    dv_app_error();
done:
    free(ids);
    free(logits);
    dv_llm_free(llm);
    dv_duo_pattern_free(pat);
    dv_backend_free(be);
    return ret;
}

int dv_cmd_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "llm")) return bench_llm(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "duo")) return dv_bench_duo(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "encoder")) return dv_bench_encoder(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "tokenize")) return dv_bench_tokenize(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: duovid bench WHAT [options]\n\n"
               "  llm   prefill/decode tokens per second and peak RSS (duovid bench llm --help)\n"
               "  duo   DuoAttention vs full attention: KV bytes, prefill, decode (duovid bench duo --help)\n"
               "  encoder  vision encoder frames/s and GFLOP/s next to sgemm (duovid bench encoder --help)\n"
               "  tokenize  tokenizer encoding MB/s of a text file (duovid bench tokenize --help)\n");
        return 0;
    }
    dv_app_usage_error("bench", "expected a benchmark name: llm, duo, encoder, tokenize");
    return 1;
}
