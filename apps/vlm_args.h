// vlm_args.h: the options shared by the video-QA commands (ask, chat, summarize): model and device,
// frame sampling (as `duovid frames`), sampling of the answer (as `duovid generate`), DuoAttention,
// the token budget, the prompt format and the context cache; and the glue from flags to the vlm/
// library (backend, pattern, callbacks that print).
#ifndef DV_VLM_ARGS_H
#define DV_VLM_ARGS_H

#include "apps/duo_args.h"
#include "apps/sampler_args.h"
#include "core/dv_progress.h"
#include "vlm/dv_vlm.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>

typedef struct dv_vlm_cli {
    const char *model_dir, *device, *template_name, *system, *cache_dir;
    int threads, n_ctx, n_batch, encode_batch, n_predict, timestamps, no_cache, verbose;
    int have_fps; // --fps was given (it conflicts with --frames)
    int64_t max_tokens_context;
    int64_t min_pixels, max_pixels; // Qwen-VL frame pixel bounds (0: video_preprocessor_config.json's)
    dv_sample_plan plan;
    dv_sampler_args sampler; // answers are greedy unless --temp says otherwise (as HF generate)
    dv_duo_args duo;
} dv_vlm_cli;

// getopt_long codes of the shared options start here (each command's own codes stay below 300;
// DuoAttention flags use 300.., sampler flags 500..)
#define DV_VLM_OPT_BASE 400
#define DV_VLM_LONG_OPTIONS                                                                                    \
    {"model", required_argument, 0, 'm'}, {"fps", required_argument, 0, DV_VLM_OPT_BASE + 0},                 \
        {"frames", required_argument, 0, DV_VLM_OPT_BASE + 1}, {"start", required_argument, 0, DV_VLM_OPT_BASE + 2}, \
        {"end", required_argument, 0, DV_VLM_OPT_BASE + 3}, {"max-frames", required_argument, 0, DV_VLM_OPT_BASE + 4}, \
        {"n-predict", required_argument, 0, 'n'}, DV_SAMPLER_LONG_OPTIONS,                                   \
        {"timestamps", no_argument, 0, DV_VLM_OPT_BASE + 11},                                                \
        {"max-tokens-context", required_argument, 0, DV_VLM_OPT_BASE + 12},                                  \
        {"ctx", required_argument, 0, DV_VLM_OPT_BASE + 13}, {"chunk", required_argument, 0, DV_VLM_OPT_BASE + 14}, \
        {"template", required_argument, 0, DV_VLM_OPT_BASE + 15}, {"system", required_argument, 0, DV_VLM_OPT_BASE + 16}, \
        {"cache-dir", required_argument, 0, DV_VLM_OPT_BASE + 17}, {"no-cache", no_argument, 0, DV_VLM_OPT_BASE + 18}, \
        {"device", required_argument, 0, DV_VLM_OPT_BASE + 19}, {"threads", required_argument, 0, 't'},      \
        {"encode-batch", required_argument, 0, DV_VLM_OPT_BASE + 20}, {"verbose", no_argument, 0, DV_VLM_OPT_BASE + 21}, \
        {"mode", required_argument, 0, DV_VLM_OPT_BASE + 22},                                                \
        {"min-pixels", required_argument, 0, DV_VLM_OPT_BASE + 23},                                          \
        {"max-pixels", required_argument, 0, DV_VLM_OPT_BASE + 24}, DV_DUO_LONG_OPTIONS

// Defaults: 1 fps, greedy answers of up to 256 tokens, the model's context, cache on.
void dv_vlm_cli_init(dv_vlm_cli *c);
// The shared --help sections.
void dv_vlm_cli_help(FILE *f);
// The whole command line: the command's own options first (`own` returns 1 handled, -1 bad value
// already printed, 0 not its), then the shared ones, then the checks parsing alone cannot make (model
// dir given, --template name, --fps with --frames). Positional arguments
// are left at argv[optind..]. Returns 0 to go on, 1 after --help was printed (exit 0), -1 after an
// error was printed (exit 1).
typedef int (*dv_vlm_own_opt)(void *ctx, int code, const char *value);
int dv_vlm_cli_getopt(dv_vlm_cli *c, const char *cmd, int argc, char **argv, const struct option *own_opts,
                      const char *own_short, dv_vlm_own_opt own, void *ctx, void (*usage)(FILE *));

// Everything a command holds while it runs: the library objects the flags chose.
typedef struct dv_vlm_session {
    dv_backend *be;
    dv_duo_pattern *pattern;
    dv_vlm *vlm;
} dv_vlm_session;

// Opens backend, pattern and model (with the context cache folder the flags chose). Prints the
// one-line error and returns -1 on failure (the session is then freed).
int dv_vlm_session_open(const dv_vlm_cli *c, dv_vlm_session *s);
void dv_vlm_session_close(dv_vlm_session *s);

// The video options the flags give, keeping `reserve` tokens for questions and answers.
dv_vlm_video_opts dv_vlm_cli_video_opts(const dv_vlm_cli *c, int64_t reserve);
// --verbose: the host <-> device bytes per frame that building the video context moved (stderr; 0 on
// the CPU backend, where nothing crosses).
void dv_vlm_cli_report_xfer(const dv_vlm_cli *c, const dv_vlm_session *s, const dv_vlm_video *vc);

// The CLI's side of the library callbacks: the plan and progress bars on stderr, the answer on
// stdout (stream_text) or a progress bar instead, and Ctrl-C through `stop` (a signal handler sets it).
typedef struct dv_app_cb {
    volatile sig_atomic_t *stop;
    int stream_text;
    dv_progress *prog;
} dv_app_cb;
dv_vlm_callbacks dv_app_callbacks(dv_app_cb *state, volatile sig_atomic_t *stop, int stream_text);

#endif
