// bench_duo.c: `duovid bench duo`: what DuoAttention buys on this machine. For each context length,
// sparsity and prefill semantics: KV bytes, prefill seconds (chunked) and decode tokens/s at that
// context, next to full attention measured in the same run, and decode's memory floor: the bytes a
// step reads (weights + K/V) over the read bandwidth measured at the start of the run. Patterns are
// random gates binarized at the sparsity (speed and memory do not depend on which heads are chosen,
// only on how many).
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/cli.h"
#include "apps/duo_args.h"

#include "core/dv_error.h"
#include "core/dv_progress.h"
#include "llm/dv_llm.h"
#include "llm/dv_llm_synth.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: duovid bench duo [-m MODEL_DIR] [options]\n\n"
            "Measures KV bytes, chunked prefill time and decode speed with DuoAttention against full\n"
            "attention at several context lengths. Without -m, a random model built in memory: the\n"
            "--synthetic shape (default duo-bench, a small GQA model; no file is written).\n"
            "One table on stdout (or JSON lines with --json); progress on stderr. \"floor t/s\" is decode's\n"
            "memory floor (weights + K/V bytes read per step / the read bandwidth measured in this run),\n"
            "\"x floor\" the decode time over the floor's (1 = memory speed).\n\n"
            "  -m, --model DIR       model folder (default: a synthetic model)\n"
            "  --synthetic SHAPE     random bf16 weights of that shape, in memory (duo-bench, llama2-7b,\n"
            "                        llama3-8b, vicuna-7b, ...; default duo-bench)\n"
            "  --contexts LIST       context lengths (default 4096,16384,65536)\n"
            "  --sparsities LIST     streaming-head fractions (default 0.5,0.75; 0 = full is always run)\n"
            "  --chunk N             prefill chunk (default 4096)\n"
            "  --gen-tokens N        decode steps timed at each context (default 64)\n"
            "  --sink N, --recent N  streaming-head sizes (default 64, 256)\n"
            "  --kv-type T           KV cache row type: f32, bf16 (default), f16, q8, q4 (--kv-type-k,\n"
            "                        --kv-type-v: keys or values only)\n"
            "  -t, --threads N       CPU threads (default: all cores)\n"
            "  --device D            cpu (default) | cuda | auto\n"
            "  --json                JSON lines instead of the table\n"
            "  -h, --help            this help\n");
}

typedef struct run_result {
    double kv_mib, prefill_s, decode_tps;
    double prefill_cpu_s, decode_cpu_ms; // CPU seconds of the prefill, CPU ms per decode step (all threads)
    double read_bytes; // bytes one decode step reads (weights + K/V), at the timed steps' mean context
    size_t bytes_per_token; // K + V bytes a token adds to the retrieval heads
    char kv_types[16];      // "bf16/bf16"
} run_result;

static int run_one(dv_backend *be, const char *dir, const dv_llm_config *cfg, int ctx, int chunk, int n_gen,
                   double sparsity, dv_duo_prefill mode, int sink, int recent, const dv_duo_args *kv, run_result *r) {
    dv_duo_pattern *pat = NULL;
    dv_llm *m = NULL;
    int32_t *ids = malloc((size_t)(ctx + n_gen) * sizeof *ids);
    float *logits = malloc((size_t)cfg->vocab_size * sizeof *logits);
    int rc = ids && logits ? 0 : dv_error_set(DV_ENOMEM, "out of memory");
    if (!rc && sparsity > 0) rc = dv_app_random_pattern(cfg->n_attn_layers, cfg->n_kv_heads, sparsity, sink, recent, &pat);
    dv_llm_params p = dv_llm_default_params();
    p.backend = be;
    p.n_ctx = ctx + n_gen;
    p.n_batch = chunk;
    p.pattern = pat;
    p.duo_prefill = mode;
    p.kv_type_k = kv->kv_type_k;
    p.kv_type_v = kv->kv_type_v;
    if (!rc) rc = dir ? dv_llm_open(dir, &p, &m) : dv_llm_open_synthetic(cfg, DV_DTYPE_BF16, 1, 0.02, &p, &m);
    for (int i = 0; !rc && i < ctx + n_gen; i++) ids[i] = 3 + (int32_t)((i * 2654435761u) % (uint32_t)(cfg->vocab_size - 3));
    if (!rc) {
        char label[96];
        snprintf(label, sizeof label, "prefill %d, sparsity %.2f %s", ctx, sparsity,
                 sparsity > 0 ? (mode == DV_DUO_PREFILL_STRICT ? "strict" : "reference") : "(full)");
        dv_progress *pg = dv_progress_init(label, ctx, "tok");
        double t0 = dv_time_now(), c0 = dv_app_cpu_seconds();
        for (int i = 0; !rc && i < ctx; i += chunk) {
            int n = ctx - i < chunk ? ctx - i : chunk;
            rc = dv_llm_prefill(m, ids + i, NULL, n, i + n == ctx ? logits : NULL, 0);
            dv_progress_update(pg, i + n);
        }
        r->prefill_s = dv_time_now() - t0;
        r->prefill_cpu_s = dv_app_cpu_seconds() - c0;
        dv_progress_free(pg);
        double t1 = dv_time_now(), c1 = dv_app_cpu_seconds();
        for (int i = 0; !rc && i < n_gen; i++) rc = dv_llm_decode(m, ids[ctx + i], logits);
        r->decode_tps = n_gen / (dv_time_now() - t1);
        r->decode_cpu_ms = 1000.0 * (dv_app_cpu_seconds() - c1) / n_gen;
        r->kv_mib = (double)dv_llm_kv_bytes(m) / (1 << 20);
        r->read_bytes = dv_app_decode_read_bytes(m, ctx + n_gen / 2.0);
        dv_kv_memory km;
        dv_kv_cache_memory(dv_llm_kv_cache(m), &km);
        r->bytes_per_token = km.bytes_per_token;
        snprintf(r->kv_types, sizeof r->kv_types, "%s/%s", dv_kv_type_name(km.k_type), dv_kv_type_name(km.v_type));
    }
    dv_llm_free(m);
    dv_duo_pattern_free(pat);
    free(ids);
    free(logits);
    return rc;
}

int dv_bench_duo(int argc, char **argv) {
    const char *model_dir = NULL, *device = "cpu", *synthetic = "duo-bench";
    double ctxs[8] = {4096, 16384, 65536}, sps[8] = {0.5, 0.75};
    int n_ctx = 3, n_sp = 2, chunk = 4096, n_gen = 64, sink = 64, recent = 256, threads = 0, json = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"contexts", required_argument, 0, 1},
        {"sparsities", required_argument, 0, 2}, {"chunk", required_argument, 0, 3},
        {"gen-tokens", required_argument, 0, 4}, {"sink", required_argument, 0, 5},
        {"recent", required_argument, 0, 6},   {"threads", required_argument, 0, 't'},
        {"json", no_argument, 0, 7},           {"device", required_argument, 0, 8},
        {"synthetic", required_argument, 0, 9}, {"kv-type", required_argument, 0, DV_DUO_OPT_BASE + 6},
        {"kv-type-k", required_argument, 0, DV_DUO_OPT_BASE + 7}, {"kv-type-v", required_argument, 0, DV_DUO_OPT_BASE + 8},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    dv_duo_args kv; // only its KV row types: bench duo has its own --sink / --recent
    dv_duo_args_init(&kv);
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:t:h", opts, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 1: bad = (n_ctx = dv_arg_list("--contexts", optarg, ctxs, 8, 16, 1 << 24)) < 0; break;
        case 2: bad = (n_sp = dv_arg_list("--sparsities", optarg, sps, 8, 0, 1)) < 0; break;
        case 3: bad = dv_arg_int("--chunk", optarg, 1, 1 << 20, &chunk); break;
        case 4: bad = dv_arg_int("--gen-tokens", optarg, 1, 1 << 16, &n_gen); break;
        case 5: bad = dv_arg_int("--sink", optarg, 0, 1 << 20, &sink); break;
        case 6: bad = dv_arg_int("--recent", optarg, 1, 1 << 24, &recent); break;
        case 't': bad = dv_arg_threads(optarg, &threads); break;
        case 7: json = 1; break;
        case 8: device = optarg; break;
        case 9: synthetic = optarg; break;
        case DV_DUO_OPT_BASE + 6:
        case DV_DUO_OPT_BASE + 7:
        case DV_DUO_OPT_BASE + 8: bad = dv_duo_args_parse(&kv, c, optarg) < 0; break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("bench duo", "%s needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("bench duo", "unknown option '%s'", argv[optind - 1]); return 1;
        }
        if (bad) return 1;
    }
    if (optind != argc) {
        dv_app_usage_error("bench duo", "unexpected argument '%s'", argv[optind]);
        return 1;
    }
    if (model_dir && dv_app_check_model_dir(model_dir)) return 1;
    int ret = 1;
    dv_backend *be = dv_app_backend_init(device, threads);
    dv_llm_config cfg;
    if (!be) goto done;
    if (model_dir ? dv_llm_config_load(model_dir, &cfg) : dv_llm_synth_preset(synthetic, &cfg)) goto fail_msg;
    char what[160];
    snprintf(what, sizeof what, model_dir ? "%s" : "synthetic %s model", model_dir ? model_dir : synthetic);
    const double gbs = dv_app_read_gb_s(be); // the memory floor's bandwidth, measured in this run
    if (!json)
        printf("DuoAttention on %s (%d layers, %d/%d heads), chunk %d, sink %d, recent %d, %s x%d, %s, "
               "read %.1f GB/s\n"
               "%8s %8s %-9s %10s %7s %8s %10s %7s %10s %7s %9s %7s\n",
               what, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, chunk, sink, recent, be->ops->name, be->n_threads,
               be->device == DV_DEVICE_CPU ? dv_backend_cpu_isa() : "device", gbs, "context", "sparsity", "prefill",
               "KV MiB", "x full", "B/token", "prefill s", "speedup", "decode t/s", "speedup", "floor t/s", "x floor");
    for (int ci = 0; ci < n_ctx; ci++) {
        run_result full;
        if (run_one(be, model_dir, &cfg, (int)ctxs[ci], chunk, n_gen, 0, DV_DUO_PREFILL_REFERENCE, sink, recent, &kv,
                    &full))
            goto fail_msg;
        for (int si = -1; si < n_sp; si++)
            for (int mode = 0; mode < (si < 0 ? 1 : 2); mode++) {
                run_result r = full;
                if (si >= 0 && run_one(be, model_dir, &cfg, (int)ctxs[ci], chunk, n_gen, sps[si], (dv_duo_prefill)mode,
                                       sink, recent, &kv, &r))
                    goto fail_msg;
                const double sp = si < 0 ? 0 : sps[si];
                const double floor_tps = gbs > 0 ? gbs * 1e9 / r.read_bytes : 0;
                const char *mname = si < 0 ? "full" : mode ? "strict" : "reference";
                if (json)
                    printf("{\"context\":%d,\"sparsity\":%.3f,\"prefill\":\"%s\",\"kv_types\":\"%s\",\"kv_mib\":%.3f,"
                           "\"kv_bytes_per_token\":%zu,\"prefill_s\":%.3f,\"decode_tok_s\":%.2f,\"kv_ratio\":%.4f,"
                           "\"prefill_speedup\":%.3f,\"decode_speedup\":%.3f,\"decode_read_bytes\":%.0f,"
                           "\"read_gb_s\":%.3f,\"memory_floor_tok_s\":%.2f,\"floor_ratio\":%.3f,\"prefill_cpu_s\":%.3f,"
                           "\"decode_cpu_ms\":%.3f}\n",
                           (int)ctxs[ci], sp, mname, r.kv_types, r.kv_mib, r.bytes_per_token, r.prefill_s, r.decode_tps,
                           r.kv_mib / full.kv_mib, full.prefill_s / r.prefill_s, r.decode_tps / full.decode_tps,
                           r.read_bytes, gbs, floor_tps, floor_tps / r.decode_tps, r.prefill_cpu_s, r.decode_cpu_ms);
                else
                    printf("%8d %8.2f %-9s %10.2f %7.3f %8zu %10.2f %7.2f %10.2f %7.2f %9.2f %7.2f\n", (int)ctxs[ci], sp,
                           mname, r.kv_mib, r.kv_mib / full.kv_mib, r.bytes_per_token, r.prefill_s,
                           full.prefill_s / r.prefill_s, r.decode_tps, r.decode_tps / full.decode_tps, floor_tps,
                           floor_tps / r.decode_tps);
                fflush(stdout);
            }
    }
    ret = 0;
    goto done;
fail_msg:
    dv_app_error();
done:
    dv_backend_free(be);
    return ret;
}
