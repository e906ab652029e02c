// pipeline.h: the video-QA pipeline: video/ -> encoder/ -> llm/, streamed, for ask/chat/summarize.
//
//   dv_vlm *v;  dv_vlm_open("models/LLaVA-NeXT-Video-7B-hf", &params, &v);
//   dv_vlm_plan plan;  dv_vlm_plan_video(v, dv_video_get_info(video), &opts, &plan);   // frames, tokens, KV
//   dv_vlm_prefill_video(v, video, &plan, &stats);        // context = prompt prefix + every frame
//   dv_vlm_ask(v, "What happens?", 1, &gen, &answer);     // first question, streamed answer
//   dv_vlm_ask(v, "And then?", 0, &gen, &answer);         // a later turn of the same conversation
//
// The context is built exactly like the Hugging Face LLaVA models build it: the template's text
// before the video (BOS first), then each frame's projected tokens where the <video> placeholder
// stands (optionally preceded by a "t=12.0s:" text timestamp), then the question and "ASSISTANT:".
// Streaming: frames are decoded one at a time, encoded in batches of encode_batch, and their
// embeddings prefilled in chunks of n_batch tokens, so memory holds one frame batch and one chunk,
// never the video. Chunks are cut at fixed offsets from the start of the context, so the same
// inputs always give the same KV cache (DuoAttention's streaming heads see whole chunks).
#ifndef DV_PIPELINE_H
#define DV_PIPELINE_H

#include "encoder/dv_encoder.h"
#include "llm/dv_llm.h"
#include "llm/dv_sampler.h"
#include "llm/dv_template.h"
#include "llm/dv_tokenizer.h"
#include "video/dv_video.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct dv_vlm dv_vlm;

typedef struct dv_vlm_params {
    dv_backend *backend;           // not owned; required
    int n_ctx;                     // LLM context capacity in tokens (0: the model's maximum)
    int n_batch;                   // tokens per prefill chunk (0: 256)
    const dv_duo_pattern *pattern; // DuoAttention heads (NULL: full attention); copied
    dv_duo_prefill duo_prefill;
    int template_kind;             // a dv_template_kind, or -1: detect from the checkpoint
    const char *system;            // system prompt (NULL: none)
    int encode_batch;              // frames per vision-encoder pass (0: 8)
} dv_vlm_params;

dv_vlm_params dv_vlm_default_params(void);

// Opens the LLaVA-style checkpoint folder: vision tower + projector (encoder/), language model
// (llm/), tokenizer, prompt format. Errors name the file and the problem.
int dv_vlm_open(const char *model_dir, const dv_vlm_params *p, dv_vlm **out);
void dv_vlm_free(dv_vlm *v);

dv_llm *dv_vlm_llm(dv_vlm *v);
dv_tokenizer *dv_vlm_tokenizer(dv_vlm *v);
dv_encoder *dv_vlm_encoder(dv_vlm *v);
const dv_template *dv_vlm_template(const dv_vlm *v);
const char *dv_vlm_template_why(const dv_vlm *v); // how the format was chosen

// What the user asked for: sampling, timestamps, and the token budget of the video context.
typedef struct dv_vlm_video_opts {
    dv_sample_plan plan;
    int timestamps;      // 1: "t=12.0s:" text before each frame's tokens
    int64_t max_tokens;  // budget for the whole context incl. reserve (0: the LLM's n_ctx)
    int64_t reserve;     // tokens kept free for questions and answers
} dv_vlm_video_opts;

// The resolved plan, printed before any work starts.
typedef struct dv_vlm_plan {
    dv_sample_plan plan;      // the plan actually used (max_frames lowered when it had to fit)
    dv_plan_times times;      // its resolution against the video's duration
    int64_t n_frames;         // frames (upper bound: a frame selected twice is used once)
    int64_t asked_frames;     // what the user's plan would have given (-1: unbounded)
    int capped;               // 1: fewer frames than asked, to fit the budget
    int tokens_per_frame;     // encoder tokens per frame
    int ts_tokens;            // text tokens per frame besides its image tokens (at most): the timestamp
                              // (--timestamps) and, for image models, the "\n" between frames
    int64_t prefix_tokens;    // template text before the video (BOS included)
    int64_t context_tokens;   // prefix + frames (upper bound)
    int64_t budget;           // the budget it had to fit (max_tokens - reserve)
    size_t kv_bytes;          // KV cache bytes at context_tokens + reserve (DuoAttention aware)
    double duration_sec;
} dv_vlm_plan;

// Per-stage figures of one video context and one answer.
typedef struct dv_vlm_stats {
    int64_t frames;                   // frames encoded into the context
    int64_t context_tokens;           // tokens of the video context
    double t_decode, t_encode, t_prefill; // seconds in each stage of the video context (decoding runs on
                                          // its own thread, overlapping the others)
    double t_wait;                    // seconds the pipeline waited for decoded frames
    double t_total;                   // wall time of dv_vlm_prefill_video
    uint64_t h2d_bytes, d2h_bytes;    // host <-> device bytes while building it (0 on the CPU backend)
} dv_vlm_stats;

// Picks the frames that fit: errors (DV_EINVAL, one line) when not even one frame fits.
int dv_vlm_plan_video(dv_vlm *v, const dv_video_info *info, const dv_vlm_video_opts *o, dv_vlm_plan *out);
// "plan: 120 frames (1 fps over 0:00-2:00), 144 tokens/frame, 17296 tokens, KV cache ~2.3 GiB ..."
void dv_vlm_print_plan(const dv_vlm *v, const dv_vlm_plan *p, FILE *f);
// A canonical one-line description of everything besides the model, video and pattern that decides
// the video context's contents (plan, template prefix, timestamps): the context cache's key text.
void dv_vlm_plan_key(const dv_vlm *v, const dv_vlm_plan *p, int timestamps, char *buf, size_t cap);

// Clears the context and fills it with the prompt prefix and every planned frame, streamed.
// Progress on stderr (frames, with per-stage rates). *stop (may be NULL) set asynchronously ends it
// with DV_EINTR. Frame times are kept (dv_vlm_frame_times).
int dv_vlm_prefill_video(dv_vlm *v, dv_video *video, const dv_vlm_plan *p, int timestamps,
                         volatile sig_atomic_t *stop, dv_vlm_stats *st);
// Times (seconds) of the frames in the current video context; *n set. Valid until the next prefill.
const double *dv_vlm_frame_times(const dv_vlm *v, int64_t *n);
// Records the video context as restored from elsewhere (context cache): its token count and frames.
int dv_vlm_set_video_context(dv_vlm *v, int64_t n_tokens, const double *frame_times, int64_t n_frames);
// Saves the video context (DuoAttention only; with full attention a rewind is exact) to an unlinked
// temporary file, so dv_vlm_reset_conversation can return to it. Call right after the context is ready.
int dv_vlm_take_snapshot(dv_vlm *v);
// Forgets the conversation: back to the video context only. Full attention rewinds; DuoAttention
// reloads the snapshot (a rewind cannot restore the streaming heads' windows).
int dv_vlm_reset_conversation(dv_vlm *v);
int64_t dv_vlm_video_tokens(const dv_vlm *v);

// Generation settings of one answer.
typedef struct dv_vlm_gen {
    dv_sampler_params sampler;
    int max_new;                 // answer tokens at most
    int ignore_eos;
    volatile sig_atomic_t *stop; // may be NULL; set asynchronously (Ctrl-C) it ends the answer
    void (*on_text)(void *ctx, const char *piece); // streamed answer text (may be NULL)
    void *ctx;
    float *logits_trace;         // NULL, or (max_new, V): the logits each answer token was chosen from (tests)
} dv_vlm_gen;

typedef enum dv_vlm_stop { DV_VLM_STOP_EOS = 0, DV_VLM_STOP_LENGTH, DV_VLM_STOP_INTERRUPT, DV_VLM_STOP_CONTEXT } dv_vlm_stop;

typedef struct dv_vlm_answer {
    char *text;           // the whole answer (owned by the vlm, valid until the next ask)
    const int32_t *ids;   // (n_tokens) its token ids (owned by the vlm, valid until the next ask)
    int n_tokens;         // answer tokens
    int n_prompt;         // question tokens prefilled for this turn
    double t_prefill;     // question prefill seconds
    double t_generate;    // answer seconds
    double ttft;          // from the call to the first answer token
    dv_vlm_stop stop;
} dv_vlm_answer;

const char *dv_vlm_stop_name(dv_vlm_stop s); // "eos", "length", "interrupted", "context full"

// Appends a user turn (first = 1: the question right after the video; 0: after an answer) and
// generates the answer into the context. Context full before the question fits: DV_EINVAL.
int dv_vlm_ask(dv_vlm *v, const char *question, int first, const dv_vlm_gen *g, dv_vlm_answer *out);

// Tokenizes the first-turn text of `question` (after the video) — for tests and --json counts.
int dv_vlm_question_ids(dv_vlm *v, const char *question, int first, int32_t **ids, int *n);
// Tokenizes the text before the video (BOS included when the tokenizer adds one).
int dv_vlm_prefix_ids(dv_vlm *v, int32_t **ids, int *n);

#endif
