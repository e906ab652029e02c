// vlm_args.c: options and set-up shared by ask, chat and summarize (vlm_args.h).
#include "apps/vlm_args.h"

#include "apps/app_common.h"
#include "apps/args.h"
#include "vlm/dv_context_cache.h"

#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dv_vlm_cli_init(dv_vlm_cli *c) {
    memset(c, 0, sizeof *c);
    c->device = "auto";
    c->n_predict = 256;
    c->plan = dv_sample_plan_default();
    dv_sampler_args_init(&c->sampler, 0);
    dv_duo_args_init(&c->duo);
}

// One option code: 1 handled, 0 not a shared option, -1 bad value (error printed).
static int cli_parse(dv_vlm_cli *c, int code, const char *v) {
    int bad = 0;
    switch (code) {
    case 'm': c->model_dir = v; break;
    case 'n': bad = dv_arg_int("--n-predict", v, 1, 1 << 20, &c->n_predict); break;
    case 't': bad = dv_arg_threads(v, &c->threads); break;
    case DV_VLM_OPT_BASE + 0: bad = dv_arg_double("--fps", v, 1e-6, 1e4, &c->plan.fps); c->have_fps = 1; break;
    case DV_VLM_OPT_BASE + 1: bad = dv_arg_i64("--frames", v, 1, 100000000, &c->plan.n_frames); break;
    case DV_VLM_OPT_BASE + 2: bad = dv_arg_double("--start", v, 0, 1e9, &c->plan.start_sec); break;
    case DV_VLM_OPT_BASE + 3: bad = dv_arg_double("--end", v, 1e-9, 1e9, &c->plan.end_sec); break;
    case DV_VLM_OPT_BASE + 4: bad = dv_arg_i64("--max-frames", v, 1, 100000000, &c->plan.max_frames); break;
    case DV_VLM_OPT_BASE + 11: c->timestamps = 1; break;
    case DV_VLM_OPT_BASE + 12: bad = dv_arg_i64("--max-tokens-context", v, 1, 1 << 30, &c->max_tokens_context); break;
    case DV_VLM_OPT_BASE + 13: bad = dv_arg_int("--ctx", v, 16, 1 << 30, &c->n_ctx); break;
    case DV_VLM_OPT_BASE + 14: bad = dv_arg_int("--chunk", v, 1, 1 << 20, &c->n_batch); break;
    case DV_VLM_OPT_BASE + 15: c->template_name = v; break;
    case DV_VLM_OPT_BASE + 16: c->system = v; break;
    case DV_VLM_OPT_BASE + 17: c->cache_dir = v; break;
    case DV_VLM_OPT_BASE + 18: c->no_cache = 1; break;
    case DV_VLM_OPT_BASE + 19: c->device = v; break;
    case DV_VLM_OPT_BASE + 20: bad = dv_arg_int("--encode-batch", v, 1, 1024, &c->encode_batch); break;
    case DV_VLM_OPT_BASE + 21: c->verbose = 1; break;
    case DV_VLM_OPT_BASE + 23: bad = dv_arg_i64("--min-pixels", v, 1, 1ll << 40, &c->min_pixels); break;
    case DV_VLM_OPT_BASE + 24: bad = dv_arg_i64("--max-pixels", v, 1, 1ll << 40, &c->max_pixels); break;
    case DV_VLM_OPT_BASE + 22:
        if (!strcmp(v, "auto")) c->plan.mode = DV_SAMPLE_MODE_AUTO;
        else if (!strcmp(v, "seek")) c->plan.mode = DV_SAMPLE_MODE_SEEK;
        else if (!strcmp(v, "sequential")) c->plan.mode = DV_SAMPLE_MODE_SEQUENTIAL;
        else {
            fprintf(stderr, "duovid: error: --mode: '%s' is not one of auto, seek, sequential\n", v);
            return -1;
        }
        break;
    default: {
        int r = dv_sampler_args_parse(&c->sampler, code, v);
        return r ? r : dv_duo_args_parse(&c->duo, code, v);
    }
    }
    return bad ? -1 : 1;
}

void dv_vlm_cli_help(FILE *f) {
    fprintf(f,
            "model:\n"
            "  -m, --model DIR          Hugging Face folder: LLaVA-style (LLaVA-NeXT-Video, OneVision, llava-1.5),\n"
            "                           Qwen2.5-VL, Qwen3-VL (dense) or Qwen3.5 (dense or MoE, with its vision tower):\n"
            "                           config.json, *.safetensors, tokenizer.json (or tokenizer.model),\n"
            "                           preprocessor configs (`duovid pull` fetches one)\n"
            "      --device D           auto | cpu | cuda (default auto: CUDA when a GPU is present)\n"
            "  -t, --threads N          CPU threads (default: all cores)\n"
            "      --template T         prompt format: vicuna | mistral | llama2 | plain | chatml | onevision\n"
            "                           (default: the model's own, from its chat template or config)\n"
            "      --system TEXT        system prompt before the video\n"
            "frames (as `duovid frames`):\n"
            "      --fps F              F frames per second of video (default 1)\n"
            "      --frames N           N frames spread uniformly over the range\n"
            "      --start S, --end E   the range in seconds (default: the whole video)\n"
            "      --max-frames N       at most N frames (an --fps plan that would give more becomes N uniform)\n"
            "      --mode M             auto | seek | sequential frame access (default auto)\n"
            "      --timestamps         put each frame's time (\"t=12.0s:\") before its tokens (LLaVA models only:\n"
            "                           Qwen2.5-VL's positions carry the time, Qwen3-VL and Qwen3.5 always put\n"
            "                           their own \"<t seconds>\" text before each 2-frame group)\n"
            "      --min-pixels N, --max-pixels N  Qwen-VL: bounds of a frame's pixels after smart_resize (default:\n"
            "                           video_preprocessor_config.json); Qwen-VL samples at the processor's fps\n"
            "                           unless --fps or --frames is given, with its rules (even count, min/max frames)\n"
            "context:\n"
            "      --max-tokens-context N  token budget of the whole context in KV cells (M-RoPE positions advance\n"
            "                           slower than cells): the frame count is lowered to fit\n"
            "                           (default: the context size); the plan is printed before work starts\n"
            "      --ctx N              LLM context size in tokens (default: the model's maximum)\n"
            "      --chunk N            prefill chunk in tokens (default 256)\n"
            "      --encode-batch N     frames per vision-encoder pass (default 8)\n"
            "      --cache-dir DIR      video context cache (default $XDG_CACHE_HOME/duovid, else ~/.cache/duovid):\n"
            "                           a later run with the same model, video, frames and pattern skips decode,\n"
            "                           encode and prefill\n"
            "      --no-cache           neither read nor write the context cache\n"
            "answer (as `duovid generate`):\n"
            "  -n, --n-predict N        answer tokens at most (default 256)\n"
            "      --verbose            model summary and KV cache report on stderr\n");
    dv_sampler_args c;
    dv_sampler_args_init(&c, 0);
    dv_sampler_args_help(&c, f);
    dv_duo_args_help(f);
}

// What parsing alone cannot check: 0, or -1 after printing the error for command `cmd`.
static int cli_check(const dv_vlm_cli *c, const char *cmd) {
    if (!c->model_dir) {
        dv_app_usage_error(cmd, "-m MODEL_DIR is required");
        return -1;
    }
    if (c->have_fps && c->plan.n_frames) {
        dv_app_usage_error(cmd, "give either --fps or --frames, not both");
        return -1;
    }
    if (c->min_pixels && c->max_pixels && c->min_pixels > c->max_pixels) {
        dv_app_usage_error(cmd, "--min-pixels %lld is above --max-pixels %lld", (long long)c->min_pixels,
                           (long long)c->max_pixels);
        return -1;
    }
    if (c->plan.end_sec > 0 && c->plan.end_sec <= c->plan.start_sec) {
        dv_app_usage_error(cmd, "--end %g must be after --start %g", c->plan.end_sec, c->plan.start_sec);
        return -1;
    }
    dv_template_kind k;
    if (c->template_name && dv_template_parse(c->template_name, &k)) {
        dv_app_error();
        return -1;
    }
    return dv_app_check_model_dir(c->model_dir);
}

int dv_vlm_cli_getopt(dv_vlm_cli *c, const char *cmd, int argc, char **argv, const struct option *own_opts,
                      const char *own_short, dv_vlm_own_opt own, void *ctx, void (*usage)(FILE *)) {
    static const struct option shared[] = {DV_VLM_LONG_OPTIONS, {"help", no_argument, 0, 'h'}};
    struct option opts[64];
    size_t n = 0;
    for (; own_opts && own_opts[n].name; n++) opts[n] = own_opts[n];
    DV_ASSERT(n + sizeof shared / sizeof shared[0] < sizeof opts / sizeof opts[0]);
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) opts[n++] = shared[i];
    opts[n] = (struct option){0, 0, 0, 0};
    char shorts[64];
    snprintf(shorts, sizeof shorts, ":m:n:t:h%s", own_short ? own_short : "");
    optind = 1;
    opterr = 0;
    for (int o; (o = getopt_long(argc, argv, shorts, opts, NULL)) != -1;) {
        if (o == 'h') {
            usage(stdout);
            return 1;
        }
        if (o == ':') {
            dv_app_usage_error(cmd, "%s needs a value", argv[optind - 1]);
            return -1;
        }
        int r = own ? own(ctx, o, optarg) : 0;
        if (r == 0) r = cli_parse(c, o, optarg);
        if (r == 0) dv_app_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        if (r <= 0) return -1;
    }
    return cli_check(c, cmd);
}

int dv_vlm_session_open(const dv_vlm_cli *c, dv_vlm_session *s) {
    memset(s, 0, sizeof *s);
    dv_llm_config cfg;
    char cache_dir[4096];
    if (!(s->be = dv_app_backend_init(c->device, c->threads))) goto fail_quiet;
    if (dv_llm_config_load(c->model_dir, &cfg)) goto fail;
    if (dv_duo_args_load(&c->duo, &cfg, &s->pattern)) goto fail_quiet;
    dv_vlm_params p = dv_vlm_default_params();
    p.backend = s->be;
    p.n_ctx = c->n_ctx;
    if (c->n_batch) p.n_batch = c->n_batch;
    if (c->encode_batch) p.encode_batch = c->encode_batch;
    p.pattern = s->pattern;
    p.duo_prefill = c->duo.prefill;
    p.kv_type_k = c->duo.kv_type_k;
    p.kv_type_v = c->duo.kv_type_v;
    p.system = c->system;
    p.min_pixels = c->min_pixels;
    p.max_pixels = c->max_pixels;
    if (c->template_name) {
        dv_template_kind k;
        dv_template_parse(c->template_name, &k);
        p.template_kind = (int)k;
    }
    if (!c->no_cache) {
        if (c->cache_dir) p.cache_dir = c->cache_dir;
        else if (dv_ctx_cache_dir_default(cache_dir, sizeof cache_dir) == 0) p.cache_dir = cache_dir;
        else DV_LOG_WARN("no context cache: %s", dv_error_message());
    }
    double t0 = dv_time_now();
    if (dv_vlm_open(c->model_dir, &p, &s->vlm)) goto fail;
    const dv_llm_config *mc = dv_llm_get_config(dv_vlm_llm(s->vlm));
    if (c->verbose)
        fprintf(stderr,
                "duovid: %s: %s; %s, %.1fM parameters, %d layers, hidden %d, heads %d (kv %d)\n"
                "duovid: context up to %d tokens, template %s (%s), backend %s (%d threads), loaded in %.2f s\n",
                c->model_dir, dv_vlm_describe_vision(s->vlm), mc->arch_name,
                (double)dv_llm_param_count(dv_vlm_llm(s->vlm)) / 1e6, mc->n_layers, mc->hidden_size, mc->n_heads,
                mc->n_kv_heads, dv_llm_n_ctx(dv_vlm_llm(s->vlm)), dv_template_name(dv_vlm_template(s->vlm)->kind),
                dv_vlm_template_why(s->vlm), s->be->ops->name, s->be->n_threads, dv_time_now() - t0);
    return 0;
fail:
    dv_app_error();
fail_quiet:
    dv_vlm_session_close(s);
    return -1;
}

void dv_vlm_session_close(dv_vlm_session *s) {
    dv_vlm_free(s->vlm);
    dv_duo_pattern_free(s->pattern);
    dv_backend_free(s->be);
    memset(s, 0, sizeof *s);
}

dv_vlm_video_opts dv_vlm_cli_video_opts(const dv_vlm_cli *c, int64_t reserve) {
    return (dv_vlm_video_opts){.plan = c->plan, .timestamps = c->timestamps, .max_tokens = c->max_tokens_context,
                               .reserve = reserve, .model_fps = !c->have_fps && !c->plan.n_frames};
}

void dv_vlm_cli_report_xfer(const dv_vlm_cli *c, const dv_vlm_session *s, const dv_vlm_video *vc) {
    if (!c->verbose || vc->stats.frames <= 0) return;
    fprintf(stderr, "duovid: host<->device per frame: %.0f bytes up, %.0f bytes down (%s backend)\n",
            (double)vc->stats.h2d_bytes / (double)vc->stats.frames,
            (double)vc->stats.d2h_bytes / (double)vc->stats.frames, s->be->ops->name);
}

// ---- the callbacks ----

static void cb_plan(void *user, const dv_vlm_plan *plan, const char *text) {
    (void)user, (void)plan;
    if (!dv_log_enabled(DV_LOG_LEVEL_INFO)) return;
    for (const char *l = text; *l;) { // each line as "duovid: ..."
        size_t n = strcspn(l, "\n");
        fprintf(stderr, "duovid: %.*s\n", (int)n, l);
        l += n + (l[n] == '\n');
    }
}

static void cb_progress(void *user, const char *stage, const char *unit, dv_vlm_progress_state st, int64_t done,
                        int64_t total, const char *note) {
    dv_app_cb *a = user;
    // an answer streaming to the terminal shows itself; otherwise (--json, batch jobs) a bar does
    if (a->stream_text && !strcmp(stage, "answer")) return;
    switch (st) {
    case DV_VLM_PROGRESS_BEGIN:
        dv_progress_free(a->prog);
        a->prog = dv_progress_init(stage, total, unit);
        break;
    case DV_VLM_PROGRESS_UPDATE:
        dv_progress_set_note(a->prog, note);
        dv_progress_update(a->prog, done);
        break;
    case DV_VLM_PROGRESS_END:
        // the video's stages get their final line; an answer's rate is in the command's summary line
        if (strcmp(stage, "answer")) dv_progress_finish(a->prog);
        else dv_progress_free(a->prog);
        a->prog = NULL;
        break;
    case DV_VLM_PROGRESS_ABORT:
        dv_progress_free(a->prog);
        a->prog = NULL;
        break;
    }
}

static void cb_text(void *user, const char *piece) {
    (void)user;
    fputs(piece, stdout);
    fflush(stdout);
}

static int cb_cancel(void *user) {
    dv_app_cb *a = user;
    return a->stop && *a->stop;
}

dv_vlm_callbacks dv_app_callbacks(dv_app_cb *state, volatile sig_atomic_t *stop, int stream_text) {
    *state = (dv_app_cb){.stop = stop, .stream_text = stream_text, .prog = NULL};
    return (dv_vlm_callbacks){.on_plan = cb_plan, .on_progress = cb_progress,
                              .on_text = stream_text ? cb_text : NULL, .cancel = cb_cancel, .user = state};
}
