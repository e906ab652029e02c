// cmd_eval.c: `duovid perplexity` (llama.cpp's windowed perplexity over a text file) and `duovid eval
// niah` (passkey retrieval per prompt length x needle depth: table, JSON, heat map PNG), with or
// without DuoAttention (the shared --duo flags). The measures themselves live in llm/dv_eval.h.
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/cli.h"
#include "apps/duo_args.h"
#include "apps/vlm_args.h"

#include "core/dv_error.h"
#include "core/dv_progress.h"
#include "llm/dv_eval.h"
#include "llm/dv_llm.h"
#include "llm/dv_template.h"
#include "llm/dv_tokenizer.h"
#include "video/dv_png.h"
#include "video/dv_sheet.h"
#include "vlm/dv_vlm.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

// What both commands open: backend, tokenizer, model (with the --duo pattern applied).
typedef struct eval_model {
    dv_backend *be;
    dv_tokenizer *tok;
    dv_llm *llm;
    dv_duo_pattern *pattern;
} eval_model;

static void eval_model_free(eval_model *e) {
    dv_duo_pattern_free(e->pattern);
    dv_llm_free(e->llm);
    dv_tokenizer_free(e->tok);
    dv_backend_free(e->be);
    memset(e, 0, sizeof *e);
}

// Prints its one error line and returns -1 on failure.
static int eval_model_open(eval_model *e, const char *dir, const char *device, int threads, int n_ctx, int n_batch,
                           const dv_duo_args *duo) {
    memset(e, 0, sizeof *e);
    if (dv_app_check_model_dir(dir) || !(e->be = dv_app_backend_init(device, threads))) return -1;
    dv_llm_config cfg;
    if (dv_tokenizer_open(dir, &e->tok) || dv_llm_config_load(dir, &cfg)) goto fail_msg;
    if (dv_duo_args_load(duo, &cfg, &e->pattern)) goto fail;
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = e->be;
    lp.n_ctx = n_ctx;
    lp.n_batch = n_batch;
    lp.pattern = e->pattern;
    dv_duo_args_apply(duo, &lp); // prefill semantics and the KV row types
    if (dv_llm_open(dir, &lp, &e->llm)) goto fail_msg;
    if (dv_tokenizer_vocab_size(e->tok) > dv_llm_get_config(e->llm)->vocab_size) {
        dv_error_set(DV_EFORMAT, "%s: the tokenizer has %d tokens but the model only %d", dir,
                     dv_tokenizer_vocab_size(e->tok), dv_llm_get_config(e->llm)->vocab_size);
        goto fail_msg;
    }
    return 0;
fail_msg:
    dv_app_error();
fail:
    eval_model_free(e);
    return -1;
}

// "full" or "PATH (sparsity 0.50, sink 64, recent 256)"
static void duo_label(const eval_model *e, const dv_duo_args *duo, char *buf, size_t cap) {
    if (!e->pattern) snprintf(buf, cap, "full attention");
    else {
        const dv_duo_pattern *p = e->pattern;
        snprintf(buf, cap, "%s (%d/%d retrieval heads, sink %d, recent %d, %s prefill)", duo->path, p->n_retrieval,
                 p->n_layers * p->n_kv_heads, p->sink, p->recent,
                 duo->prefill == DV_DUO_PREFILL_STRICT ? "strict" : "reference");
    }
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

// Reads and tokenizes a text file (no BOS). Prints the error and returns NULL on failure.
static int32_t *tokenize_file(dv_tokenizer *tok, const char *path, int *n_out) {
    size_t len = 0;
    char *text = dv_app_read_text(path, &len);
    int32_t *ids = NULL;
    int n = 0, rc = text ? 0 : -1;
    if (!rc && strlen(text) != len) rc = dv_error_set(DV_EFORMAT, "%s: the text holds NUL bytes", path);
    if (!rc) {
        rc = dv_tokenizer_encode(tok, text, 0, NULL, 0, &n);
        if (rc == DV_EINVAL) rc = 0; // counting only
    }
    if (!rc && !(ids = malloc((size_t)(n ? n : 1) * sizeof *ids))) rc = dv_error_set(DV_ENOMEM, "out of memory");
    if (!rc && (rc = dv_tokenizer_encode(tok, text, 0, ids, n, &n))) dv_error_prefix(rc, "%s", path);
    free(text);
    if (rc) {
        dv_app_error();
        free(ids);
        return NULL;
    }
    *n_out = n;
    return ids;
}

// ---- duovid perplexity ----

static void ppl_usage(FILE *f) {
    fprintf(f,
            "usage: duovid perplexity -m MODEL_DIR -f TEXT_FILE [options]\n\n"
            "Perplexity of the model on a text, by llama.cpp's rule: the tokens are cut into non-overlapping\n"
            "windows of --ctx tokens, each scored from an empty context with its first token replaced by BOS\n"
            "(when the tokenizer adds one); only the second half of each window is scored, so every scored\n"
            "token sees at least ctx/2 tokens. A line per window on stderr, the result on stdout.\n\n"
            "  -m, --model DIR        Hugging Face model folder (config.json, *.safetensors, tokenizer)\n"
            "  -f, --file FILE        the text ('-' = stdin)\n"
            "      --ctx N            window length in tokens (default 512)\n"
            "      --windows N        score at most the first N windows (default: all)\n"
            "      --chunk N          prompt tokens per forward chunk (default 256)\n"
            "      --json             one JSON object instead of the text summary\n"
            "  -t, --threads N        CPU threads (default: all cores)\n"
            "      --device D         auto | cpu | cuda (default auto)\n"
            "  -h, --help             this help\n\n");
    dv_duo_args_help(f);
}

static void ppl_progress(void *user, int done, int total, double ppl) {
    (void)user;
    fprintf(stderr, "duovid: perplexity: window %d/%d: running ppl %.4f\n", done, total, ppl);
}

int dv_cmd_perplexity(int argc, char **argv) {
    const char *model_dir = NULL, *file = NULL, *device = "auto";
    int n_ctx = 512, max_windows = 0, n_batch = 256, threads = 0, json = 0;
    dv_duo_args duo;
    dv_duo_args_init(&duo);
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"file", required_argument, 0, 'f'},
        {"ctx", required_argument, 0, 1},     {"windows", required_argument, 0, 2},
        {"chunk", required_argument, 0, 3},   {"json", no_argument, 0, 4},
        {"device", required_argument, 0, 5},  {"threads", required_argument, 0, 't'},
        DV_DUO_LONG_OPTIONS,                  {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:f:t:h", opts, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'f': file = optarg; break;
        case 1: bad = dv_arg_int("--ctx", optarg, 4, 1 << 24, &n_ctx); break;
        case 2: bad = dv_arg_int("--windows", optarg, 1, 1 << 30, &max_windows); break;
        case 3: bad = dv_arg_int("--chunk", optarg, 1, 1 << 20, &n_batch); break;
        case 4: json = 1; break;
        case 5: device = optarg; break;
        case 't': bad = dv_arg_threads(optarg, &threads); break;
        case 'h': ppl_usage(stdout); return 0;
        case ':': dv_app_usage_error("perplexity", "%s needs a value", argv[optind - 1]); return 1;
        default: {
            const int d = dv_duo_args_parse(&duo, c, optarg);
            if (d == 0) {
                dv_app_usage_error("perplexity", "unknown option '%s'", argv[optind - 1]);
                return 1;
            }
            bad = d < 0;
        }
        }
        if (bad) return 1;
    }
    if (optind < argc) {
        dv_app_usage_error("perplexity", "unexpected argument '%s'", argv[optind]);
        return 1;
    }
    if (!model_dir || !file) {
        dv_app_usage_error("perplexity", "-m MODEL_DIR and -f TEXT_FILE are required");
        return 1;
    }
    eval_model e;
    if (eval_model_open(&e, model_dir, device, threads, n_ctx, n_batch, &duo)) return 1;
    int ret = 1, n = 0;
    int32_t *ids = tokenize_file(e.tok, file, &n);
    if (!ids) goto done;
    if (n < n_ctx) {
        fprintf(stderr, "duovid: error: %s: %d tokens, fewer than one window of --ctx %d\n", file, n, n_ctx);
        goto done;
    }
    if (max_windows && (int64_t)n > (int64_t)max_windows * n_ctx) n = max_windows * n_ctx;
    const int bos = dv_tokenizer_add_bos(e.tok) ? dv_tokenizer_bos(e.tok) : -1;
    dv_ppl_result r;
    const double t0 = dv_time_now();
    if (dv_eval_perplexity(e.llm, ids, n, n_ctx, bos, n_batch, json ? NULL : ppl_progress, NULL, &r)) {
        dv_app_error();
        goto done;
    }
    const double secs = dv_time_now() - t0;
    char label[1200];
    duo_label(&e, &duo, label, sizeof label);
    if (json) {
        printf("{\"model\":");
        json_str(stdout, model_dir);
        printf(",\"file\":");
        json_str(stdout, file);
        printf(",\"attention\":");
        json_str(stdout, label);
        printf(",\"ctx\":%d,\"windows\":%d,\"scored\":%lld,\"nll\":%.6f,\"nll_se\":%.6f,\"ppl\":%.6f,"
               "\"ppl_lo\":%.6f,\"ppl_hi\":%.6f,\"top1\":%.6f,\"seconds\":%.2f}\n",
               n_ctx, r.n_windows, (long long)r.n_scored, r.nll, r.nll_se, r.ppl, exp(r.nll - 1.96 * r.nll_se),
               exp(r.nll + 1.96 * r.nll_se), r.top1, secs);
    } else {
        printf("perplexity %.4f (95%% interval %.4f .. %.4f), top-1 %.2f%%: %lld tokens scored in %d windows of %d "
               "(%s), %.1f s\n",
               r.ppl, exp(r.nll - 1.96 * r.nll_se), exp(r.nll + 1.96 * r.nll_se), 100 * r.top1,
               (long long)r.n_scored, r.n_windows, n_ctx, label, secs);
    }
    ret = 0;
done:
    free(ids);
    eval_model_free(&e);
    return ret;
}

// ---- duovid eval niah ----

enum { NIAH_MAX_LEN = 8, NIAH_MAX_DEPTH = 16 };

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: duovid eval niah -m MODEL_DIR [options]\n"
            "       duovid eval vniah -m VLM_DIR -v VIDEO --needle IMG.png [options]  (see eval vniah --help)\n\n"
            "Passkey retrieval (needle in a haystack): for each prompt length and needle depth, --samples\n"
            "prompts in the model's chat format hide \"The pass key is NNNNN...\" in haystack text and ask for\n"
            "it; a trial is correct when the greedy answer holds the number. A table of accuracies per cell\n"
            "on stdout (or --json), trials on stderr with -v, a length x depth heat map with --png.\n\n"
            "  -m, --model DIR        Hugging Face chat model folder\n"
            "      --ctx LIST         prompt lengths in tokens (default 1k,2k,4k; k = 1024)\n"
            "      --depths LIST      needle depths in [0, 1] (default 0,0.25,0.5,0.75,1)\n"
            "      --samples N        prompts per cell, each with its own passkey and haystack offset (default 2)\n"
            "      --seed S           data seed (default 1)\n"
            "      --haystack FILE    haystack text, used cyclically (default assets/text/jargon-essays.txt beside\n"
            "                         the executable: essays of the public-domain Jargon File)\n"
            "      --json             one JSON object instead of the table\n"
            "      --png FILE         heat map: rows = lengths, columns = depths, dark blue 0%% .. yellow 100%%\n"
            "      --chunk N          prompt tokens per forward chunk (default 256)\n"
            "  -t, --threads N        CPU threads (default: all cores)\n"
            "      --device D         auto | cpu | cuda (default auto)\n"
            "  -v, --verbose          each trial's answer on stderr\n"
            "  -h, --help             this help\n\n");
    dv_duo_args_help(f);
}

// rows = lengths, columns = depths; the accuracy in percent is written in each cell
static int niah_png(const char *path, const double *acc, const double *lens, int n_len, const double *depths,
                    int n_dep) {
    const int cell = 40, left = 44, top = 22;
    const int w = left + n_dep * cell + 8, h = top + n_len * cell + 8;
    uint8_t *rgb = malloc((size_t)w * h * 3); // (h, w, 3)
    if (!rgb) return dv_error_set(DV_ENOMEM, "out of memory");
    memset(rgb, 255, (size_t)w * h * 3);
    const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255};
    char lab[32];
    for (int d = 0; d < n_dep; d++) { // depth in percent across the top
        snprintf(lab, sizeof lab, "%d", (int)(depths[d] * 100 + 0.5));
        dv_font_draw(rgb, w, h, left + d * cell + 4, 6, lab, 1, black);
    }
    for (int l = 0; l < n_len; l++) {
        snprintf(lab, sizeof lab, "%d", (int)lens[l]); // length in tokens down the left
        dv_font_draw(rgb, w, h, 2, top + l * cell + cell / 2 - 3, lab, 1, black);
        for (int d = 0; d < n_dep; d++) {
            const double a = acc[l * n_dep + d];
            uint8_t c[3];
            dv_app_ramp(a, c);
            for (int y = 0; y < cell; y++)
                for (int x = 0; x < cell; x++) {
                    uint8_t *px = rgb + ((size_t)(top + l * cell + y) * w + (size_t)(left + d * cell + x)) * 3;
                    memcpy(px, y == 0 || x == 0 || y == cell - 1 || x == cell - 1 ? white : c, 3);
                }
            snprintf(lab, sizeof lab, "%d", (int)(a * 100 + 0.5));
            dv_font_draw(rgb, w, h, left + d * cell + 4, top + l * cell + cell / 2 - 3, lab, 1, a > 0.6 ? black : white);
        }
    }
    const int rc = dv_png_write_rgb(path, rgb, w, h);
    free(rgb);
    return rc;
}

static int eval_niah(int argc, char **argv) {
    const char *model_dir = NULL, *device = "auto", *hay_path = NULL, *png = NULL;
    double lens[NIAH_MAX_LEN] = {1024, 2048, 4096}, depths[NIAH_MAX_DEPTH] = {0, 0.25, 0.5, 0.75, 1};
    int n_len = 3, n_dep = 5, samples = 2, n_batch = 256, threads = 0, json = 0, verbose = 0;
    uint64_t seed = 1;
    dv_duo_args duo;
    dv_duo_args_init(&duo);
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"ctx", required_argument, 0, 1},
        {"depths", required_argument, 0, 2},   {"samples", required_argument, 0, 3},
        {"seed", required_argument, 0, 4},     {"haystack", required_argument, 0, 5},
        {"json", no_argument, 0, 6},           {"png", required_argument, 0, 7},
        {"chunk", required_argument, 0, 8},    {"device", required_argument, 0, 9},
        {"threads", required_argument, 0, 't'}, {"verbose", no_argument, 0, 'v'},
        DV_DUO_LONG_OPTIONS,                   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:t:vh", opts, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 1: bad = (n_len = dv_arg_list("--ctx", optarg, lens, NIAH_MAX_LEN, 64, 1 << 24)) < 0; break;
        case 2: bad = (n_dep = dv_arg_list("--depths", optarg, depths, NIAH_MAX_DEPTH, 0, 1)) < 0; break;
        case 3: bad = dv_arg_int("--samples", optarg, 1, 10000, &samples); break;
        case 4: bad = dv_arg_u64("--seed", optarg, &seed); break;
        case 5: hay_path = optarg; break;
        case 6: json = 1; break;
        case 7: png = optarg; break;
        case 8: bad = dv_arg_int("--chunk", optarg, 1, 1 << 20, &n_batch); break;
        case 9: device = optarg; break;
        case 't': bad = dv_arg_threads(optarg, &threads); break;
        case 'v': verbose = 1; break;
        case 'h': eval_usage(stdout); return 0;
        case ':': dv_app_usage_error("eval niah", "%s needs a value", argv[optind - 1]); return 1;
        default: {
            const int d = dv_duo_args_parse(&duo, c, optarg);
            if (d == 0) {
                dv_app_usage_error("eval niah", "unknown option '%s'", argv[optind - 1]);
                return 1;
            }
            bad = d < 0;
        }
        }
        if (bad) return 1;
    }
    if (optind < argc) {
        dv_app_usage_error("eval niah", "unexpected argument '%s'", argv[optind]);
        return 1;
    }
    if (!model_dir) {
        dv_app_usage_error("eval niah", "-m MODEL_DIR is required");
        return 1;
    }
    if (png) { // fail before the trials, not after them
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", png);
        char *slash = strrchr(dir, '/');
        struct stat st;
        if (slash) *slash = 0;
        if (slash && *dir && (stat(dir, &st) || !S_ISDIR(st.st_mode))) {
            fprintf(stderr, "duovid: error: --png %s: no folder %s\n", png, dir);
            return 1;
        }
    }
    char hay_buf[4096];
    if (!hay_path) {
        if (dv_app_find_data("assets/text/jargon-essays.txt", "--haystack", hay_buf, sizeof hay_buf)) return 1;
        hay_path = hay_buf;
    }
    int max_len = 0;
    for (int l = 0; l < n_len; l++) max_len = (int)lens[l] > max_len ? (int)lens[l] : max_len;
    eval_model e;
    if (eval_model_open(&e, model_dir, device, threads, max_len + 32, n_batch, &duo)) return 1;
    int ret = 1, n_hay = 0;
    double *acc = calloc((size_t)n_len * n_dep, sizeof *acc); // (n_len, n_dep)
    int32_t *hay = tokenize_file(e.tok, hay_path, &n_hay);
    dv_progress *pg = NULL;
    dv_template tpl;
    const char *why;
    if (!hay) goto done;
    if (!acc) {
        dv_error_set(DV_ENOMEM, "out of memory");
        goto fail_msg;
    }
    if (n_hay < 16) {
        dv_error_set(DV_EFORMAT, "%s: only %d tokens of haystack text (at least 16)", hay_path, n_hay);
        goto fail_msg;
    }
    if (dv_template_load(model_dir, -1, NULL, &tpl, &why)) goto fail_msg;
    const double t0 = dv_time_now();
    pg = dv_progress_init("niah", (int64_t)n_len * n_dep * samples, "trials");
    for (int l = 0, done = 0; l < n_len; l++)
        for (int d = 0; d < n_dep; d++) {
            int ok = 0;
            for (int s = 0; s < samples; s++, done++) {
                dv_niah_prompt pr;
                char answer[256];
                int correct = 0;
                // the seed depends on the sample only: every cell of a row sees the same passkeys
                if (dv_niah_prompt_make(e.tok, &tpl, hay, n_hay, (int)lens[l], depths[d], seed * 1000003u + s, &pr))
                    goto fail_msg;
                const int rc = dv_niah_trial(e.llm, e.tok, &tpl, &pr, answer, sizeof answer, &correct);
                if (!rc && verbose) {
                    for (char *q = answer; *q; q++)
                        if (*q == '\n') *q = ' ';
                    fprintf(stderr, "duovid: niah: len %d depth %.2f sample %d: key %s, answer \"%s\" %s\n",
                            (int)lens[l], depths[d], s, pr.passkey, answer, correct ? "ok" : "WRONG");
                }
                dv_niah_prompt_free(&pr);
                if (rc) goto fail_msg;
                ok += correct;
                dv_progress_update(pg, done + 1);
            }
            acc[l * n_dep + d] = (double)ok / samples;
        }
    dv_progress_finish(pg);
    pg = NULL;
    const double secs = dv_time_now() - t0;
    if (png && niah_png(png, acc, lens, n_len, depths, n_dep)) goto fail_msg;
    char label[1200];
    duo_label(&e, &duo, label, sizeof label);
    if (json) {
        printf("{\"model\":");
        json_str(stdout, model_dir);
        printf(",\"haystack\":");
        json_str(stdout, hay_path);
        printf(",\"attention\":");
        json_str(stdout, label);
        printf(",\"samples\":%d,\"seed\":%llu,\"lengths\":[", samples, (unsigned long long)seed);
        for (int l = 0; l < n_len; l++) printf("%s%d", l ? "," : "", (int)lens[l]);
        printf("],\"depths\":[");
        for (int d = 0; d < n_dep; d++) printf("%s%g", d ? "," : "", depths[d]);
        printf("],\"accuracy\":[");
        double all = 0;
        for (int l = 0; l < n_len; l++) {
            printf("%s[", l ? "," : "");
            for (int d = 0; d < n_dep; d++) printf("%s%g", d ? "," : "", acc[l * n_dep + d]), all += acc[l * n_dep + d];
            printf("]");
        }
        printf("],\"per_length\":[");
        for (int l = 0; l < n_len; l++) {
            double m = 0;
            for (int d = 0; d < n_dep; d++) m += acc[l * n_dep + d] / n_dep;
            printf("%s%g", l ? "," : "", m);
        }
        printf("],\"overall\":%g,\"seconds\":%.1f}\n", all / (n_len * n_dep), secs);
    } else {
        printf("niah: %s, %d sample%s per cell, haystack %s\n%8s", label, samples, samples == 1 ? "" : "s", hay_path,
               "length");
        for (int d = 0; d < n_dep; d++) printf("  d=%-5.2f", depths[d]);
        printf("   mean\n");
        for (int l = 0; l < n_len; l++) {
            double m = 0;
            printf("%8d", (int)lens[l]);
            for (int d = 0; d < n_dep; d++) printf("  %6.1f%%", 100 * acc[l * n_dep + d]), m += acc[l * n_dep + d];
            printf("  %5.1f%%\n", 100 * m / n_dep);
        }
    }
    if (png) fprintf(stderr, "duovid: wrote %s\n", png);
    ret = 0;
    goto done;
fail_msg:
    dv_app_error();
done:
    dv_progress_free(pg);
    free(hay);
    free(acc);
    eval_model_free(&e);
    return ret;
}

// ---- duovid eval vniah ----

static void vniah_usage(FILE *f) {
    fprintf(f,
            "usage: duovid eval vniah -m VLM_DIR -v VIDEO --needle IMG.png [options]\n\n"
            "Video needle in a haystack (as LongVA's V-NIAH): for each depth, the planned frame at that depth\n"
            "of the video's frame sequence is replaced by the needle image, the video context is built (the\n"
            "context cache is off) and --question is asked. A line per depth on stdout (or --json); with\n"
            "--expect, a depth counts as found when the answer holds that text (case-insensitive).\n\n"
            "  -v, --video FILE       the haystack video\n"
            "      --needle FILE      the needle image (PNG)\n"
            "      --depths LIST      depths in [0, 1] (default 0,0.25,0.5,0.75,1)\n"
            "      --question TEXT    default \"What is shown in the frame that does not belong to the video?\"\n"
            "      --expect TEXT      the text a right answer holds\n"
            "      --json             one JSON object\n\n");
    dv_vlm_cli_help(f);
}

typedef struct vniah_opts {
    const char *video, *needle, *question, *expect;
    double depths[NIAH_MAX_DEPTH];
    int n_dep, json, bad;
} vniah_opts;

static int vniah_opt(void *ctx, int code, const char *v) {
    vniah_opts *o = ctx;
    switch (code) {
    case 'v': o->video = v; return 1;
    case 1: o->needle = v; return 1;
    case 2: return (o->n_dep = dv_arg_list("--depths", v, o->depths, NIAH_MAX_DEPTH, 0, 1)) < 0 ? -1 : 1;
    case 3: o->question = v; return 1;
    case 4: o->expect = v; return 1;
    case 5: o->json = 1; return 1;
    default: return 0;
    }
}

static int contains_nocase(const char *hay, const char *needle) {
    const size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n)) return 1;
    return n == 0;
}

static int eval_vniah(int argc, char **argv) {
    dv_vlm_cli c;
    dv_vlm_cli_init(&c);
    vniah_opts o = {.question = "What is shown in the frame that does not belong to the video?",
                    .depths = {0, 0.25, 0.5, 0.75, 1}, .n_dep = 5};
    static const struct option opts[] = {{"video", required_argument, 0, 'v'}, {"needle", required_argument, 0, 1},
                                         {"depths", required_argument, 0, 2},  {"question", required_argument, 0, 3},
                                         {"expect", required_argument, 0, 4},  {"json", no_argument, 0, 5},
                                         {0, 0, 0, 0}};
    const int pr = dv_vlm_cli_getopt(&c, "eval vniah", argc, argv, opts, "v:", vniah_opt, &o, vniah_usage);
    if (pr) return pr < 0;
    if (!o.video || !o.needle || optind != argc) {
        dv_app_usage_error("eval vniah", optind != argc ? "unexpected argument" : "-v VIDEO and --needle IMG.png are required");
        return 1;
    }
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    if (dv_png_read_rgb(o.needle, &rgb, &w, &h)) {
        dv_app_error();
        return 1;
    }
    const dv_image needle = {.rgb = rgb, .w = w, .h = h, .stride = 3 * w};
    c.no_cache = 1;
    dv_vlm_session s;
    if (dv_vlm_session_open(&c, &s)) {
        free(rgb);
        return 1;
    }
    int ret = 1, found = 0;
    static volatile sig_atomic_t stop = 0;
    dv_app_cb cbs;
    const dv_vlm_callbacks cb = dv_app_callbacks(&cbs, &stop, 0);
    int nq = 0;
    int32_t *qids = NULL;
    if (dv_vlm_question_ids(s.vlm, o.question, 1, &qids, &nq)) goto fail;
    free(qids);
    const dv_vlm_video_opts vo = dv_vlm_cli_video_opts(&c, nq + c.n_predict);
    if (o.json) {
        printf("{\"model\":");
        json_str(stdout, c.model_dir);
        printf(",\"video\":");
        json_str(stdout, o.video);
        printf(",\"needle\":");
        json_str(stdout, o.needle);
        printf(",\"results\":[");
    }
    for (int d = 0; d < o.n_dep; d++) {
        dv_vlm_video vc;
        dv_vlm_answer a;
        const dv_vlm_gen g = {.sampler = c.sampler.params, .max_new = c.n_predict, .ignore_eos = c.sampler.ignore_eos};
        if (dv_vlm_set_needle(s.vlm, &needle, o.depths[d]) || dv_vlm_load_video(s.vlm, o.video, &vo, &cb, &vc) ||
            dv_vlm_ask(s.vlm, o.question, 1, &g, &cb, &a))
            goto fail;
        const long long at = llround(o.depths[d] * (double)(vc.plan.n_frames - 1));
        const int ok = o.expect && contains_nocase(a.text, o.expect);
        found += ok;
        if (o.json) {
            printf("%s{\"depth\":%g,\"frame\":%lld,\"frames\":%lld,\"answer\":", d ? "," : "", o.depths[d], at,
                   (long long)vc.stats.frames);
            json_str(stdout, a.text);
            if (o.expect) printf(",\"found\":%s", ok ? "true" : "false");
            printf("}");
        } else {
            for (char *q = a.text; *q; q++)
                if (*q == '\n') *q = ' ';
            printf("depth %.2f: needle as frame %lld of %lld: %s%s\n", o.depths[d], at, (long long)vc.stats.frames,
                   a.text, o.expect ? (ok ? "   [found]" : "   [missed]") : "");
        }
        fflush(stdout);
    }
    if (o.json) {
        printf("]");
        if (o.expect) printf(",\"accuracy\":%g", (double)found / o.n_dep);
        printf("}\n");
    } else if (o.expect) {
        printf("accuracy %.1f%% (%d of %d depths)\n", 100.0 * found / o.n_dep, found, o.n_dep);
    }
    ret = 0;
    goto done;
fail:
    if (o.json) printf("\n");
    dv_app_error();
done:
    dv_vlm_session_close(&s);
    free(rgb);
    return ret;
}

int dv_cmd_eval(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        eval_usage(argc < 2 ? stderr : stdout);
        return argc < 2;
    }
    if (!strcmp(argv[1], "niah")) return eval_niah(argc - 1, argv + 1);
    if (!strcmp(argv[1], "vniah")) return eval_vniah(argc - 1, argv + 1);
    dv_app_usage_error("eval", "unknown evaluation '%s' (one of: niah, vniah)", argv[1]);
    return 1;
}
