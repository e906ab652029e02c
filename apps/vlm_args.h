// vlm_args.h: the options shared by the video-QA commands (ask, chat, summarize): model and device,
// frame sampling (as `duovid frames`), sampling of the answer (as `duovid generate`), DuoAttention,
// the token budget, the prompt format and the context cache; and the set-up they share (open the
// model, build a video's context or load it from the cache).
#ifndef DV_VLM_ARGS_H
#define DV_VLM_ARGS_H

#include "apps/duo_args.h"
#include "vlm/dv_vlm.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>

typedef struct dv_vlm_cli {
    const char *model_dir, *device, *template_name, *system, *cache_dir;
    int threads, n_ctx, n_batch, encode_batch, n_predict, ignore_eos, timestamps, no_cache, verbose;
    int have_fps; // --fps was given (it conflicts with --frames)
    int64_t max_tokens_context;
    dv_sample_plan plan;
    dv_sampler_params sampler;
    dv_duo_args duo;
} dv_vlm_cli;

// getopt_long codes of the shared options start here (each command's own codes stay below 400)
#define DV_VLM_OPT_BASE 400
#define DV_VLM_LONG_OPTIONS                                                                                    \
    {"model", required_argument, 0, 'm'}, {"fps", required_argument, 0, DV_VLM_OPT_BASE + 0},                 \
        {"frames", required_argument, 0, DV_VLM_OPT_BASE + 1}, {"start", required_argument, 0, DV_VLM_OPT_BASE + 2}, \
        {"end", required_argument, 0, DV_VLM_OPT_BASE + 3}, {"max-frames", required_argument, 0, DV_VLM_OPT_BASE + 4}, \
        {"n-predict", required_argument, 0, 'n'}, {"temp", required_argument, 0, DV_VLM_OPT_BASE + 5},        \
        {"top-k", required_argument, 0, DV_VLM_OPT_BASE + 6}, {"top-p", required_argument, 0, DV_VLM_OPT_BASE + 7}, \
        {"repeat-penalty", required_argument, 0, DV_VLM_OPT_BASE + 8},                                        \
        {"seed", required_argument, 0, DV_VLM_OPT_BASE + 9}, {"ignore-eos", no_argument, 0, DV_VLM_OPT_BASE + 10}, \
        {"timestamps", no_argument, 0, DV_VLM_OPT_BASE + 11},                                                \
        {"max-tokens-context", required_argument, 0, DV_VLM_OPT_BASE + 12},                                  \
        {"ctx", required_argument, 0, DV_VLM_OPT_BASE + 13}, {"chunk", required_argument, 0, DV_VLM_OPT_BASE + 14}, \
        {"template", required_argument, 0, DV_VLM_OPT_BASE + 15}, {"system", required_argument, 0, DV_VLM_OPT_BASE + 16}, \
        {"cache-dir", required_argument, 0, DV_VLM_OPT_BASE + 17}, {"no-cache", no_argument, 0, DV_VLM_OPT_BASE + 18}, \
        {"device", required_argument, 0, DV_VLM_OPT_BASE + 19}, {"threads", required_argument, 0, 't'},      \
        {"encode-batch", required_argument, 0, DV_VLM_OPT_BASE + 20}, {"verbose", no_argument, 0, DV_VLM_OPT_BASE + 21}, \
        {"mode", required_argument, 0, DV_VLM_OPT_BASE + 22}, DV_DUO_LONG_OPTIONS

// Defaults: 1 fps, greedy answers of up to 256 tokens, the model's context, cache on.
void dv_vlm_cli_init(dv_vlm_cli *c);
// One option code (from getopt_long with DV_VLM_LONG_OPTIONS and "m:n:t:" in the short string):
// 1 handled, 0 not a shared option, -1 bad value (error printed).
int dv_vlm_cli_parse(dv_vlm_cli *c, int code, const char *value);
// The shared --help sections.
void dv_vlm_cli_help(FILE *f);
// The whole command line: the command's own options first (`own` returns 1 handled, -1 bad value
// already printed, 0 not its), then the shared ones, then dv_vlm_cli_check. Positional arguments
// are left at argv[optind..]. Returns 0 to go on, 1 after --help was printed (exit 0), -1 after an
// error was printed (exit 1).
typedef int (*dv_vlm_own_opt)(void *ctx, int code, const char *value);
int dv_vlm_cli_getopt(dv_vlm_cli *c, const char *cmd, int argc, char **argv, const struct option *own_opts,
                      const char *own_short, dv_vlm_own_opt own, void *ctx, void (*usage)(FILE *));
// Checks what parsing alone cannot (model dir given, --template name, --fps with --frames): 0 or -1
// after printing the error for command `cmd`.
int dv_vlm_cli_check(const dv_vlm_cli *c, const char *cmd);

// Everything a command holds while it runs.
typedef struct dv_vlm_session {
    dv_backend *be;
    dv_duo_pattern *pattern;
    dv_vlm *vlm;
    char cache_dir[4096];
    int cache_on;
} dv_vlm_session;

// Opens backend, pattern and model. Prints the one-line error and returns -1 on failure (the
// session is then freed).
int dv_vlm_session_open(const dv_vlm_cli *c, dv_vlm_session *s);
void dv_vlm_session_close(dv_vlm_session *s);

// How a video's context came to be.
typedef struct dv_video_context {
    dv_vlm_plan plan;
    dv_vlm_stats stats;
    int cache_hit;           // 1: loaded from the context cache
    double t_cache;          // seconds loading or saving the cache file
    char cache_path[4200];   // "" when the cache is off
    dv_video_info info;
} dv_video_context;

// Opens VIDEO, plans the frames that fit (printing the plan), then loads the context from the cache
// or builds it (decode, encode, prefill) and saves it. `reserve` = tokens kept for questions and
// answers. Returns 0 or <0 with the message set (the caller prints it).
int dv_vlm_video_context(const dv_vlm_cli *c, dv_vlm_session *s, const char *video_path, int64_t reserve,
                         volatile sig_atomic_t *stop, dv_video_context *out);

#endif
