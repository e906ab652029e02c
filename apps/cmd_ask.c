// cmd_ask.c: `duovid ask -m MODEL -v VIDEO "QUESTION"`: answer one question about a video. The answer
// streams to stdout; --json prints one object instead (answer, frames, tokens, per-stage timings, KV
// bytes, cache use). The video's context comes from the context cache when a run with the same
// model, video, frames and pattern built it before.
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/cli.h"
#include "apps/vlm_args.h"

#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: duovid ask -m MODEL_DIR -v VIDEO [options] \"QUESTION\"\n\n"
               "Answers a question about a video: samples frames, encodes them with the model's vision tower,\n"
               "prefills them into the language model's (DuoAttention) KV cache and streams the answer to\n"
               "stdout. Progress, the plan and timings go to stderr.\n\n"
               "  -v, --video FILE         the video (any format FFmpeg reads)\n"
               "      --json               print one JSON object (answer, frames, tokens, timings, KV bytes)\n"
               "  -h, --help               this help\n");
    dv_vlm_cli_help(f);
}

static volatile sig_atomic_t dv_ask_stop;
static void on_sigint(int sig) {
    (void)sig;
    if (dv_ask_stop) _exit(130); // a second Ctrl-C: stop at once
    dv_ask_stop = 1;
}

// Seconds since the command started: model load, context, question and first token.
typedef struct ask_times {
    double load, ask_start, total;
} ask_times;

static void print_json(const dv_vlm_cli *c, dv_vlm_session *s, const char *video, const dv_vlm_video *vc,
                       const dv_vlm_answer *a, const ask_times *at) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "answer", a->text);
    cJSON_AddStringToObject(j, "stop", dv_vlm_stop_name(a->stop));
    cJSON_AddStringToObject(j, "video", video);
    cJSON_AddStringToObject(j, "model", c->model_dir);
    cJSON_AddNumberToObject(j, "duration_sec", vc->info.duration_sec);
    int64_t n;
    const double *ft = dv_vlm_frame_times(s->vlm, &n);
    cJSON *fr = cJSON_AddObjectToObject(j, "frames");
    cJSON_AddNumberToObject(fr, "count", (double)n);
    cJSON_AddNumberToObject(fr, "tokens_per_frame", vc->plan.tokens_per_frame);
    cJSON_AddBoolToObject(fr, "capped_to_fit", vc->plan.capped);
    cJSON *times = cJSON_AddArrayToObject(fr, "times");
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(times, cJSON_CreateNumber(ft[i]));
    cJSON *tk = cJSON_AddObjectToObject(j, "tokens");
    cJSON_AddNumberToObject(tk, "video_context", (double)dv_vlm_video_tokens(s->vlm));
    cJSON_AddNumberToObject(tk, "question", a->n_prompt);
    cJSON_AddNumberToObject(tk, "answer", a->n_tokens);
    cJSON_AddNumberToObject(tk, "total", dv_llm_n_past(dv_vlm_llm(s->vlm)));
    cJSON *tm = cJSON_AddObjectToObject(j, "timings_sec");
    cJSON_AddNumberToObject(tm, "load", at->load);
    cJSON_AddNumberToObject(tm, "decode", vc->stats.t_decode);
    cJSON_AddNumberToObject(tm, "encode", vc->stats.t_encode);
    cJSON_AddNumberToObject(tm, "prefill", vc->stats.t_prefill + a->t_prefill);
    cJSON_AddNumberToObject(tm, vc->cache_hit ? "cache_load" : "cache_save", vc->t_cache);
    cJSON_AddNumberToObject(tm, "generate", a->t_generate);
    // from the start of the command: what a user waits for
    cJSON_AddNumberToObject(tm, "time_to_first_token", at->ask_start + a->ttft);
    cJSON_AddNumberToObject(tm, "total", at->total);
    cJSON_AddNumberToObject(j, "decode_tok_s", a->t_generate > 0 ? a->n_tokens / a->t_generate : 0);
    dv_kv_memory mem;
    dv_kv_cache_memory(dv_llm_kv_cache(dv_vlm_llm(s->vlm)), &mem);
    cJSON *kv = cJSON_AddObjectToObject(j, "kv_bytes");
    cJSON_AddNumberToObject(kv, "total", (double)mem.total_bytes);
    cJSON_AddNumberToObject(kv, "retrieval", (double)mem.retrieval_bytes);
    cJSON_AddNumberToObject(kv, "streaming", (double)mem.streaming_bytes);
    cJSON_AddNumberToObject(kv, "retrieval_heads", mem.n_retrieval_heads);
    cJSON_AddNumberToObject(kv, "streaming_heads", mem.n_streaming_heads);
    cJSON_AddNumberToObject(kv, "per_token", (double)mem.bytes_per_token);
    cJSON_AddStringToObject(kv, "k_type", dv_kv_type_name(mem.k_type));
    cJSON_AddStringToObject(kv, "v_type", dv_kv_type_name(mem.v_type));
    cJSON_AddStringToObject(j, "cache", !dv_vlm_cache_on(s->vlm) ? "off" : vc->cache_hit ? "hit" : "miss");
    if (dv_vlm_cache_on(s->vlm)) cJSON_AddStringToObject(j, "cache_file", vc->cache_path);
    char *txt = cJSON_PrintUnformatted(j);
    if (txt) puts(txt);
    free(txt);
    cJSON_Delete(j);
}

typedef struct ask_opts {
    const char *video;
    int json;
} ask_opts;

static int own_opt(void *ctx, int code, const char *v) {
    ask_opts *o = ctx;
    if (code == 'v') o->video = v;
    else if (code == 1) o->json = 1;
    else return 0;
    return 1;
}

int dv_cmd_ask(int argc, char **argv) {
    dv_vlm_cli c;
    dv_vlm_cli_init(&c);
    ask_opts ao = {0};
    static const struct option opts[] = {{"video", required_argument, 0, 'v'}, {"json", no_argument, 0, 1}, {0, 0, 0, 0}};
    int pr = dv_vlm_cli_getopt(&c, "ask", argc, argv, opts, "v:", own_opt, &ao, usage);
    if (pr) return pr < 0;
    const char *video = ao.video;
    const int json = ao.json;
    if (!video) {
        dv_app_usage_error("ask", "-v VIDEO is required");
        return 1;
    }
    if (optind != argc - 1) {
        dv_app_usage_error("ask", optind == argc ? "the QUESTION is missing" : "give the question as one argument "
                                                                               "(quote it)");
        return 1;
    }
    const char *question = argv[optind];
    if (!*question) {
        dv_app_usage_error("ask", "the QUESTION is empty");
        return 1;
    }

    const double t0 = dv_time_now();
    dv_vlm_session s;
    ask_times at = {0};
    if (dv_vlm_session_open(&c, &s)) return 1;
    at.load = dv_time_now() - t0;
    int ret = 1;
    signal(SIGINT, on_sigint);
    dv_vlm_video vc;
    dv_app_cb cbs;
    dv_vlm_callbacks cb = dv_app_callbacks(&cbs, &dv_ask_stop, !json);
    // keep room for the question and the whole answer
    int nq = 0;
    int32_t *qids = NULL;
    if (dv_vlm_question_ids(s.vlm, question, 1, &qids, &nq)) goto fail;
    free(qids);
    dv_vlm_video_opts vo = dv_vlm_cli_video_opts(&c, nq + c.n_predict);
    if (dv_vlm_load_video(s.vlm, video, &vo, &cb, &vc)) goto fail;
    dv_vlm_cli_report_xfer(&c, &s, &vc);
    dv_vlm_gen g = {.sampler = c.sampler.params, .max_new = c.n_predict, .ignore_eos = c.sampler.ignore_eos};
    dv_vlm_answer a;
    at.ask_start = dv_time_now() - t0;
    if (dv_vlm_ask(s.vlm, question, 1, &g, &cb, &a)) goto fail;
    at.total = dv_time_now() - t0;
    if (json) {
        print_json(&c, &s, video, &vc, &a, &at);
    } else {
        fputc('\n', stdout);
        fflush(stdout);
    }
    if (a.stop == DV_VLM_STOP_INTERRUPT) DV_LOG_WARN("answer interrupted");
    if (dv_log_enabled(DV_LOG_LEVEL_INFO))
        fprintf(stderr, "duovid: %lld frames, %lld context tokens (%s), first token after %.2f s, answer %d tok at %.1f tok/s, "
                    "peak RSS %.0f MiB\n",
            (long long)vc.stats.frames, (long long)dv_vlm_video_tokens(s.vlm),
            !dv_vlm_cache_on(s.vlm) ? "cache off" : vc.cache_hit ? "from the cache" : "built", at.ask_start + a.ttft,
            a.n_tokens, a.t_generate > 0 ? a.n_tokens / a.t_generate : 0, dv_app_peak_rss_mib());
    if (c.verbose) dv_app_print_kv_report(dv_vlm_llm(s.vlm));
    ret = 0;
    goto done;
fail:
    dv_app_error();
done:
    dv_vlm_session_close(&s);
    return ret;
}
