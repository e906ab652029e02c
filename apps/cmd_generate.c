// cmd_generate.c: `duovid generate`: stream a text continuation of a prompt with an LLM checkpoint.
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/duo_args.h"
#include "apps/sampler_args.h"
#include "apps/cli.h"

#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"
#include "llm/dv_generate.h"
#include "llm/dv_llm.h"
#include "llm/dv_sampler.h"
#include "llm/dv_template.h"
#include "llm/dv_tokenizer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: duovid generate -m MODEL_DIR -p PROMPT [options]\n\n"
            "Streams a continuation of PROMPT to stdout; timings go to stderr.\n\n"
            "  -m, --model DIR        Hugging Face Llama/Mistral/Qwen2/Qwen3/SmolLM2 or Qwen3.5 (dense or MoE)\n"
            "                         folder (config.json, *.safetensors, tokenizer); a VLM folder runs its\n"
            "                         language model\n"
            "  -p, --prompt TEXT      the prompt (use -f to read it from a file)\n"
            "  -f, --file FILE        read the prompt from FILE ('-' = stdin)\n"
            "      --chat             PROMPT is a user message: wrap it in the model's chat format and\n"
            "                         print only the answer (stops at the end of the model's turn)\n"
            "      --template NAME    chat format for --chat: vicuna, mistral, llama2, plain, chatml, onevision\n"
            "                         (default: detected from the model's chat_template)\n"
            "      --system TEXT      system prompt for --chat (default: the model's own, if any)\n"
            "  -n, --n-predict N      tokens to generate (default 128; stops early at end-of-sequence)\n"
            "      --no-bos           do not prepend the BOS token\n"
            "      --ctx N            context limit in tokens (default: the model's maximum; KV memory\n"
            "                         grows with the context actually used)\n"
            "      --chunk N          prompt tokens per forward chunk (default 256)\n"
            "  -t, --threads N        CPU threads (default: all cores)\n"
            "      --device D         auto | cpu | cuda (default auto)\n"
            "  -v, --verbose          print the model summary and KV cache size\n"
            "  -h, --help             this help\n");
    dv_sampler_args sa;
    dv_sampler_args_init(&sa, 0.8f);
    dv_sampler_args_help(&sa, f);
    fputc('\n', f);
    dv_duo_args_help(f);
}

static int put_piece(void *user, int32_t id, const char *piece) {
    (void)user, (void)id;
    if (*piece) {
        fputs(piece, stdout);
        fflush(stdout);
    }
    return 0;
}

int dv_cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = NULL, *prompt_file = NULL, *device = "auto";
    const char *template_name = NULL, *system = NULL;
    int n_predict = 128, threads = 0, n_ctx = 0, n_batch = 0, verbose = 0, add_bos = 1, chat = 0;
    dv_sampler_args sa;
    dv_sampler_args_init(&sa, 0.8f);
    dv_duo_args duo;
    dv_duo_args_init(&duo);
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"prompt", required_argument, 0, 'p'},
        {"file", required_argument, 0, 'f'},   {"n-predict", required_argument, 0, 'n'},
        DV_SAMPLER_LONG_OPTIONS,               {"no-bos", no_argument, 0, 7},         {"ctx", required_argument, 0, 8},
        {"chunk", required_argument, 0, 9},    {"batch", required_argument, 0, 9},
        {"threads", required_argument, 0, 't'}, DV_DUO_LONG_OPTIONS,
        {"device", required_argument, 0, 10},  {"verbose", no_argument, 0, 'v'},
        {"chat", no_argument, 0, 11},          {"template", required_argument, 0, 12},
        {"system", required_argument, 0, 13},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:p:f:n:t:vh", opts, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': prompt_file = optarg; break;
        case 'n': bad = dv_arg_int("--n-predict", optarg, 0, 1 << 24, &n_predict); break;
        case 7: add_bos = 0; break;
        case 8: bad = dv_arg_int("--ctx", optarg, 1, 1 << 30, &n_ctx); break;
        case 9: bad = dv_arg_int("--chunk", optarg, 1, 1 << 20, &n_batch); break;
        case 't': bad = dv_arg_threads(optarg, &threads); break;
        case 10: device = optarg; break;
        case 11: chat = 1; break;
        case 12: template_name = optarg; break;
        case 13: system = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("generate", "%s needs a value", argv[optind - 1]); return 1;
        default: {
            int d = dv_sampler_args_parse(&sa, c, optarg);
            if (d == 0) d = dv_duo_args_parse(&duo, c, optarg);
            if (d == 0) {
                dv_app_usage_error("generate", "unknown option '%s'", argv[optind - 1]);
                return 1;
            }
            bad = d < 0;
        }
        }
        if (bad) return 1;
    }
    if (optind < argc) {
        dv_app_usage_error("generate", "unexpected argument '%s'", argv[optind]);
        return 1;
    }
    if (!model_dir) {
        dv_app_usage_error("generate", "-m MODEL_DIR is required");
        return 1;
    }
    if (!prompt == !prompt_file) {
        dv_app_usage_error("generate", "give the prompt with exactly one of -p TEXT or -f FILE");
        return 1;
    }
    int template_kind = -1;
    if (template_name) {
        dv_template_kind k;
        if (dv_template_parse(template_name, &k)) {
            dv_app_error();
            return 1;
        }
        template_kind = (int)k;
    }
    if ((template_name || system) && !chat) {
        dv_app_usage_error("generate", "--template and --system need --chat");
        return 1;
    }

    if (dv_app_check_model_dir(model_dir)) return 1;
    int ret = 1, rc;
    char *prompt_buf = NULL;
    dv_backend *be = NULL;
    dv_tokenizer *tok = NULL;
    dv_llm *llm = NULL;
    dv_sampler *smp = NULL;
    dv_duo_pattern *pattern = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    char *chat_text = NULL;
    int32_t end_of_turn = -1; // --chat: the id of the template's end-of-turn token, if the vocabulary has it

    if (prompt_file && !(prompt = prompt_buf = dv_app_read_text(prompt_file, NULL))) goto fail_msg;
    if (!(be = dv_app_backend_init(device, threads))) goto done;
    if ((rc = dv_tokenizer_open(model_dir, &tok))) goto fail_msg;
    dv_llm_config mcfg;
    if ((rc = dv_llm_config_load(model_dir, &mcfg))) goto fail_msg;
    if (dv_duo_args_load(&duo, &mcfg, &pattern)) goto done;
    dv_llm_params lp = dv_llm_default_params();
    lp.backend = be;
    lp.n_ctx = n_ctx;
    lp.pattern = pattern;
    dv_duo_args_apply(&duo, &lp);
    if (n_batch) lp.n_batch = n_batch;
    double t0 = dv_time_now();
    if ((rc = dv_llm_open(model_dir, &lp, &llm))) goto fail_msg;
    const dv_llm_config *cfg = dv_llm_get_config(llm);
    if (dv_tokenizer_vocab_size(tok) > cfg->vocab_size) {
        dv_error_set(DV_EFORMAT, "%s: the tokenizer has %d tokens but the model only %d", model_dir,
                     dv_tokenizer_vocab_size(tok), cfg->vocab_size);
        goto fail_msg;
    }
    if (verbose)
        fprintf(stderr,
                "duovid: %s: %s, %.1fM parameters, %d layers, hidden %d, heads %d (kv %d), vocab %d\n"
                "duovid: context up to %d tokens, backend %s (%d threads), loaded in %.2f s\n",
                model_dir, cfg->arch_name, (double)dv_llm_param_count(llm) / 1e6, cfg->n_layers, cfg->hidden_size,
                cfg->n_heads, cfg->n_kv_heads, cfg->vocab_size, dv_llm_n_ctx(llm), be->ops->name, be->n_threads,
                dv_time_now() - t0);

    // ---- chat format ----
    if (chat) {
        dv_template tpl;
        const char *why;
        const size_t cap = strlen(prompt) + sizeof tpl.system + sizeof tpl.default_system + 256;
        if ((rc = dv_template_load(model_dir, template_kind, system, &tpl, &why))) goto fail_msg;
        if (!(chat_text = malloc(cap))) {
            dv_error_set(DV_ENOMEM, "out of memory");
            goto fail_msg;
        }
        if ((rc = dv_template_chat_prompt(&tpl, prompt, chat_text, cap))) goto fail_msg;
        end_of_turn = dv_tokenizer_token_id(tok, dv_template_end_of_turn(tpl.kind));
        if (verbose) fprintf(stderr, "duovid: chat format %s (%s)\n", dv_template_name(tpl.kind), why);
        prompt = chat_text;
        add_bos = add_bos && dv_tokenizer_add_bos(tok);
    }

    // ---- tokenize ----
    int n_ctx_eff = dv_llm_n_ctx(llm), n_ids = 0;
    ids = malloc((size_t)n_ctx_eff * sizeof *ids);
    logits = malloc((size_t)cfg->vocab_size * sizeof *logits);
    if (!ids || !logits) {
        dv_error_set(DV_ENOMEM, "out of memory");
        goto fail_msg;
    }
    if ((rc = dv_tokenizer_encode(tok, prompt, add_bos, ids, n_ctx_eff, &n_ids))) {
        dv_error_prefix(rc, "prompt (%d tokens) does not fit the context of %d tokens", n_ids, n_ctx_eff);
        goto fail_msg;
    }
    if (n_ids == 0) {
        dv_error_set(DV_EINVAL, "the prompt is empty (and --no-bos was given)");
        goto fail_msg;
    }
    if (n_ids + n_predict > n_ctx_eff) {
        int fit = n_ctx_eff - n_ids;
        DV_LOG_WARN("prompt %d + %d new tokens exceed the context (%d); generating at most %d", n_ids, n_predict,
                    n_ctx_eff, fit);
        n_predict = fit;
    }
    if ((rc = dv_sampler_init(&sa.params, cfg->vocab_size, &smp))) goto fail_msg;

    // ---- prefill the prompt ----
    double tp = dv_time_now();
    if ((rc = dv_llm_prefill(llm, ids, NULL, n_ids, logits, 0))) goto fail_msg;
    double t_prefill = dv_time_now() - tp;

    // ---- decode ----
    if (!chat) fputs(prompt, stdout); // --chat prints only the answer
    fflush(stdout);
    double td = dv_time_now();
    // the last token is not decoded: nothing comes after it
    dv_llm_gen_params gp = {.sampler = smp, .tokenizer = tok, .max_new = n_predict, .ignore_eos = sa.ignore_eos,
                            .at_start = 0, .decode_last = 0, .on_token = put_piece,
                            .stop_ids = &end_of_turn, .n_stop_ids = end_of_turn >= 0};
    dv_llm_gen_result gr;
    if ((rc = dv_llm_generate(llm, &gp, logits, ids, n_ids, n_ctx_eff, &gr))) goto fail_msg;
    const int n_gen = gr.n_tokens;
    n_ids += n_gen;
    fputc('\n', stdout);
    fflush(stdout);
    double t_dec = dv_time_now() - td;
    fprintf(stderr, "duovid: prompt %d tok in %.2f s (%.1f tok/s), generated %d tok in %.2f s (%.1f tok/s), peak RSS %.0f MiB\n",
            n_ids - n_gen, t_prefill, t_prefill > 0 ? (n_ids - n_gen) / t_prefill : 0, n_gen, t_dec,
            t_dec > 0 ? n_gen / t_dec : 0, dv_app_peak_rss_mib());
    if (verbose) dv_app_print_kv_report(llm);
    ret = 0;
    goto done;
fail_msg:
    dv_app_error();
done:
    free(ids);
    free(logits);
    free(prompt_buf);
    free(chat_text);
    dv_sampler_free(smp);
    dv_duo_pattern_free(pattern);
    dv_llm_free(llm);
    dv_tokenizer_free(tok);
    dv_backend_free(be);
    return ret;
}
