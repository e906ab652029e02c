// vlm_args.c: options and set-up shared by ask, chat and summarize (vlm_args.h).
#include "apps/vlm_args.h"

#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/context_cache.h"

#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void dv_vlm_cli_init(dv_vlm_cli *c) {
    memset(c, 0, sizeof *c);
    c->device = "auto";
    c->n_predict = 256;
    c->plan = dv_sample_plan_default();
    c->sampler = dv_sampler_default_params();
    c->sampler.temperature = 0; // answers are greedy unless --temp says otherwise (as HF generate)
    dv_duo_args_init(&c->duo);
}

int dv_vlm_cli_parse(dv_vlm_cli *c, int code, const char *v) {
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
    case DV_VLM_OPT_BASE + 5: bad = dv_arg_float("--temp", v, 0, 100, &c->sampler.temperature); break;
    case DV_VLM_OPT_BASE + 6: bad = dv_arg_int("--top-k", v, 0, 1 << 30, &c->sampler.top_k); break;
    case DV_VLM_OPT_BASE + 7: bad = dv_arg_float("--top-p", v, 1e-6, 1, &c->sampler.top_p); break;
    case DV_VLM_OPT_BASE + 8: bad = dv_arg_float("--repeat-penalty", v, 1e-3, 100, &c->sampler.repetition_penalty); break;
    case DV_VLM_OPT_BASE + 9: bad = dv_arg_u64("--seed", v, &c->sampler.seed); break;
    case DV_VLM_OPT_BASE + 10: c->ignore_eos = 1; break;
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
    case DV_VLM_OPT_BASE + 22:
        if (!strcmp(v, "auto")) c->plan.mode = DV_SAMPLE_MODE_AUTO;
        else if (!strcmp(v, "seek")) c->plan.mode = DV_SAMPLE_MODE_SEEK;
        else if (!strcmp(v, "sequential")) c->plan.mode = DV_SAMPLE_MODE_SEQUENTIAL;
        else {
            fprintf(stderr, "duovid: error: --mode: '%s' is not one of auto, seek, sequential\n", v);
            return -1;
        }
        break;
    default: return dv_duo_args_parse(&c->duo, code, v);
    }
    return bad ? -1 : 1;
}

void dv_vlm_cli_help(FILE *f) {
    fprintf(f,
            "model:\n"
            "  -m, --model DIR          LLaVA-style Hugging Face folder (LLaVA-NeXT-Video, llava-1.5): config.json,\n"
            "                           *.safetensors, tokenizer.model, preprocessor configs (`duovid pull` fetches one)\n"
            "      --device D           auto | cpu | cuda (default auto: CUDA when a GPU is present)\n"
            "  -t, --threads N          CPU threads (default: all cores)\n"
            "      --template T         prompt format: vicuna | mistral | llama2 | plain (default: the model's own,\n"
            "                           from its chat template or config)\n"
            "      --system TEXT        system prompt before the video\n"
            "frames (as `duovid frames`):\n"
            "      --fps F              F frames per second of video (default 1)\n"
            "      --frames N           N frames spread uniformly over the range\n"
            "      --start S, --end E   the range in seconds (default: the whole video)\n"
            "      --max-frames N       at most N frames (an --fps plan that would give more becomes N uniform)\n"
            "      --mode M             auto | seek | sequential frame access (default auto)\n"
            "      --timestamps         put each frame's time (\"t=12.0s:\") before its tokens\n"
            "context:\n"
            "      --max-tokens-context N  token budget of the whole context: the frame count is lowered to fit\n"
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
            "      --temp T             sampling temperature; 0 = greedy (default 0)\n"
            "      --top-k K, --top-p P, --repeat-penalty R, --seed S, --ignore-eos\n"
            "      --verbose            model summary and KV cache report on stderr\n");
    dv_duo_args_help(f);
}

int dv_vlm_cli_check(const dv_vlm_cli *c, const char *cmd) {
    if (!c->model_dir) {
        dv_app_usage_error(cmd, "-m MODEL_DIR is required");
        return -1;
    }
    if (c->have_fps && c->plan.n_frames) {
        dv_app_usage_error(cmd, "give either --fps or --frames, not both");
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
        if (r == 0) r = dv_vlm_cli_parse(c, o, optarg);
        if (r == 0) dv_app_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        if (r <= 0) return -1;
    }
    return dv_vlm_cli_check(c, cmd);
}

int dv_vlm_session_open(const dv_vlm_cli *c, dv_vlm_session *s) {
    memset(s, 0, sizeof *s);
    dv_llm_config cfg;
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
    p.system = c->system;
    if (c->template_name) {
        dv_template_kind k;
        dv_template_parse(c->template_name, &k);
        p.template_kind = (int)k;
    }
    double t0 = dv_time_now();
    if (dv_vlm_open(c->model_dir, &p, &s->vlm)) goto fail;
    const dv_llm_config *mc = dv_llm_get_config(dv_vlm_llm(s->vlm));
    if (c->verbose)
        fprintf(stderr,
                "duovid: %s: %s; %s, %.1fM parameters, %d layers, hidden %d, heads %d (kv %d)\n"
                "duovid: context up to %d tokens, template %s (%s), backend %s (%d threads), loaded in %.2f s\n",
                c->model_dir, dv_encoder_describe(dv_vlm_encoder(s->vlm)), mc->arch_name,
                (double)dv_llm_param_count(dv_vlm_llm(s->vlm)) / 1e6, mc->n_layers, mc->hidden_size, mc->n_heads,
                mc->n_kv_heads, dv_llm_n_ctx(dv_vlm_llm(s->vlm)), dv_template_name(dv_vlm_template(s->vlm)->kind),
                dv_vlm_template_why(s->vlm), s->be->ops->name, s->be->n_threads, dv_time_now() - t0);
    s->cache_on = !c->no_cache;
    if (s->cache_on) {
        if (c->cache_dir) snprintf(s->cache_dir, sizeof s->cache_dir, "%s", c->cache_dir);
        else if (dv_ctx_cache_dir_default(s->cache_dir, sizeof s->cache_dir)) {
            DV_LOG_WARN("no context cache: %s", dv_error_message());
            s->cache_on = 0;
        }
    }
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

// The cache file's info text: the frames' times, so a cached context reports what it holds.
static char *context_info(dv_vlm *v, const dv_video_context *vc) {
    cJSON *j = cJSON_CreateObject(), *t = cJSON_CreateArray();
    int64_t n;
    const double *ft = dv_vlm_frame_times(v, &n);
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(t, cJSON_CreateNumber(ft[i]));
    cJSON_AddItemToObject(j, "frame_times", t);
    cJSON_AddNumberToObject(j, "video_tokens", (double)dv_vlm_video_tokens(v));
    cJSON_AddNumberToObject(j, "build_seconds", vc->stats.t_total);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

// Restores the frame list from a cache file's info text; 0 when it is not what we wrote.
static int restore_info(dv_vlm *v, const char *info, int64_t n_past, dv_video_context *vc) {
    cJSON *j = cJSON_Parse(info);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "frame_times");
    const cJSON *vt = cJSON_GetObjectItemCaseSensitive(j, "video_tokens");
    int ok = cJSON_IsArray(t) && cJSON_IsNumber(vt) && (int64_t)vt->valuedouble == n_past;
    int64_t n = ok ? cJSON_GetArraySize(t) : 0;
    double *ft = ok ? malloc((size_t)(n ? n : 1) * sizeof *ft) : NULL;
    ok = ok && ft;
    for (int64_t i = 0; ok && i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(t, (int)i);
        ok = cJSON_IsNumber(e);
        if (ok) ft[i] = e->valuedouble;
    }
    if (ok) {
        ok = dv_vlm_set_video_context(v, n_past, ft, n) == 0;
        vc->stats.frames = n;
        vc->stats.context_tokens = n_past;
        const cJSON *bs = cJSON_GetObjectItemCaseSensitive(j, "build_seconds");
        if (cJSON_IsNumber(bs)) DV_LOG_DEBUG("cached context was built in %.2f s", bs->valuedouble);
    }
    free(ft);
    cJSON_Delete(j);
    return ok;
}

int dv_vlm_video_context(const dv_vlm_cli *c, dv_vlm_session *s, const char *video_path, int64_t reserve,
                         volatile sig_atomic_t *stop, dv_video_context *out) {
    memset(out, 0, sizeof *out);
    dv_video *video = NULL;
    dv_vlm *v = s->vlm;
    dv_llm *llm = dv_vlm_llm(v);
    int rc;
    if ((rc = dv_video_open(video_path, NULL, &video))) return rc;
    out->info = *dv_video_get_info(video);
    dv_vlm_video_opts o = {.plan = c->plan, .timestamps = c->timestamps, .max_tokens = c->max_tokens_context,
                           .reserve = reserve};
    if ((rc = dv_vlm_plan_video(v, &out->info, &o, &out->plan))) {
        dv_error_prefix(rc, "%s", video_path);
        goto done;
    }
    if (dv_log_enabled(DV_LOG_LEVEL_INFO)) dv_vlm_print_plan(v, &out->plan, stderr);

    dv_ctx_key key;
    memset(&key, 0, sizeof key);
    if (s->cache_on) {
        if ((rc = dv_ctx_hash_model(c->model_dir, &key.model_hash)) || (rc = dv_ctx_hash_file(video_path, &key.video_hash)))
            goto done;
        key.pattern_hash = dv_ctx_hash_pattern(s->pattern, c->duo.prefill);
        dv_vlm_plan_key(v, &out->plan, c->timestamps, key.plan, sizeof key.plan);
        if ((rc = dv_ctx_cache_path(s->cache_dir, &key, out->cache_path, sizeof out->cache_path))) goto done;
        char *info = NULL;
        double t0 = dv_time_now();
        int r = dv_ctx_cache_load(out->cache_path, &key, llm, &info);
        if (r < 0) {
            rc = r;
            goto done;
        }
        if (r == 1 && restore_info(v, info, dv_llm_n_past(llm), out)) {
            out->cache_hit = 1;
            out->t_cache = dv_time_now() - t0;
            DV_LOG_INFO("context cache hit: %s (%lld tokens, %lld frames) in %.2f s", out->cache_path,
                        (long long)dv_llm_n_past(llm), (long long)out->stats.frames, out->t_cache);
            free(info);
            goto done;
        }
        if (r == 1) {
            DV_LOG_WARN("%s: context cache file has no usable frame list; ignored, rebuilding", out->cache_path);
            dv_llm_rewind(llm, 0);
        }
        free(info);
    }
    if ((rc = dv_vlm_prefill_video(v, video, &out->plan, c->timestamps, stop, &out->stats))) {
        dv_error_prefix(rc, "%s", video_path);
        goto done;
    }
    DV_LOG_INFO("video context: %lld frames, %lld tokens in %.2f s (decode %.2f s, encode %.2f s, prefill %.2f s)",
                (long long)out->stats.frames, (long long)out->stats.context_tokens, out->stats.t_total,
                out->stats.t_decode, out->stats.t_encode, out->stats.t_prefill);
    if (c->verbose && out->stats.frames > 0)
        fprintf(stderr, "duovid: host<->device per frame: %.0f bytes up, %.0f bytes down (%s backend)\n",
                (double)out->stats.h2d_bytes / (double)out->stats.frames,
                (double)out->stats.d2h_bytes / (double)out->stats.frames, s->be->ops->name);
    if (s->cache_on) {
        char *info = context_info(v, out);
        double t0 = dv_time_now();
        int r = info ? dv_ctx_cache_save(out->cache_path, &key, info, llm) : DV_ENOMEM;
        out->t_cache = dv_time_now() - t0;
        free(info);
        // a cache that cannot be written costs the next run time, not this answer
        if (r) DV_LOG_WARN("context cache not written: %s", dv_error_message());
        else DV_LOG_DEBUG("context cache written: %s in %.2f s", out->cache_path, out->t_cache);
    }
done:
    dv_video_free(video);
    return rc;
}
