// dv_vlm.h: the video-QA library: a LLaVA-style model (vision tower + projector, language model,
// tokenizer, prompt format) that turns a video into a (DuoAttention) KV-cache context and answers
// questions about it, over many turns. Front ends (the `duovid` CLI, a server, a binding) sit on it.
//
//   dv_vlm_params p = dv_vlm_default_params();
//   p.backend = be;                   // kernels/: dv_backend_cpu_init(0), or CUDA
//   p.pattern = pattern;              // llm/: a DuoAttention pattern, or NULL for full attention
//   p.cache_dir = dir;                // the .dvctx context cache (dv_ctx_cache_dir_default), or NULL
//   dv_vlm *v;  dv_vlm_open("models/LLaVA-NeXT-Video-7B-hf", &p, &v);
//
//   dv_vlm_callbacks cb = {.on_text = print_piece, .cancel = ctrl_c_pressed, .user = app};
//   dv_vlm_video_opts o = {.plan = dv_sample_plan_default()};          // 1 fps, whole video
//   dv_vlm_video vc;  dv_vlm_load_video(v, "talk.mp4", &o, &cb, &vc);  // plan, then cache or build
//   dv_vlm_take_snapshot(v);                                            // (chat: /reset returns here)
//   dv_vlm_gen g = {.sampler = dv_sampler_default_params(), .max_new = 256};
//   dv_vlm_answer a;  dv_vlm_ask(v, "What happens?", 1, &g, &cb, &a);  // first turn, streamed
//   dv_vlm_ask(v, "And then?", 0, &g, &cb, &a);                         // a later turn, same KV cache
//   dv_vlm_reset_conversation(v);                                       // back to the video alone
//   dv_vlm_free(v);
//
// The context is built exactly like the Hugging Face LLaVA models build it: the template's text
// before the video (BOS first), then each frame's projected tokens where the <video> placeholder
// stands (optionally preceded by a "t=12.0s:" text timestamp; LLaVA-OneVision: then its image_newline
// row), then the question and the assistant's turn.
// Streaming: frames are decoded on a thread of their own, encoded in batches of encode_batch, and
// their embeddings prefilled in chunks of n_batch tokens, so memory holds one frame batch and one
// chunk, never the video. Chunks are cut at fixed offsets from the start of the context, so the same
// inputs always give the same KV cache (DuoAttention's streaming heads see whole chunks).
// Errors: functions return 0 or a negative DV_E* code with one message line (core/dv_error.h).
#ifndef DV_VLM_H
#define DV_VLM_H

#include "encoder/dv_encoder.h"
#include "llm/dv_llm.h"
#include "llm/dv_sampler.h"
#include "llm/dv_template.h"
#include "llm/dv_tokenizer.h"
#include "video/dv_video.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dv_vlm dv_vlm;

// ---- callbacks: how the library reports back; every member may be NULL ----

typedef enum dv_vlm_progress_state { DV_VLM_PROGRESS_BEGIN = 0, DV_VLM_PROGRESS_UPDATE, DV_VLM_PROGRESS_END,
                                     DV_VLM_PROGRESS_ABORT } dv_vlm_progress_state;

typedef struct dv_vlm_plan dv_vlm_plan;

typedef struct dv_vlm_callbacks {
    // the plan of a video, before any frame is decoded; text: dv_vlm_plan_text's lines
    void (*on_plan)(void *user, const dv_vlm_plan *plan, const char *text);
    // long work: stage "video" (unit "frames") or "answer" (unit "tok"); BEGIN, UPDATEs, then END (done)
    // or ABORT (error, cancel, early stop). total <= 0: unknown. note: per-stage rates, or "".
    void (*on_progress)(void *user, const char *stage, const char *unit, dv_vlm_progress_state state,
                        int64_t done, int64_t total, const char *note);
    // each piece of answer text as it is generated
    void (*on_text)(void *user, const char *piece);
    // polled between frame batches and answer tokens: nonzero stops the work (a video context with
    // DV_EINTR, an answer with DV_VLM_STOP_INTERRUPT). Safe to back with a flag a signal handler sets.
    int (*cancel)(void *user);
    void *user;
} dv_vlm_callbacks;

// ---- the model ----

typedef struct dv_vlm_params {
    dv_backend *backend;           // not owned; required
    int n_ctx;                     // LLM context capacity in tokens (0: the model's maximum)
    int n_batch;                   // tokens per prefill chunk (0: 256)
    const dv_duo_pattern *pattern; // DuoAttention heads (NULL: full attention); copied
    dv_duo_prefill duo_prefill;
    int kv_type_k, kv_type_v;      // KV cache row types (dv_llm_params'; DV_LLM_KV_DEFAULT: bf16 where it can)
    int template_kind;             // a dv_template_kind, or -1: detect from the checkpoint
    const char *system;            // system prompt (NULL: none)
    int encode_batch;              // frames per vision-encoder pass (0: 8)
    const char *cache_dir;         // video context cache folder (NULL: no cache); copied
    int64_t min_pixels, max_pixels; // Qwen-VL: > 0 override video_preprocessor_config.json's frame pixel bounds
} dv_vlm_params;

dv_vlm_params dv_vlm_default_params(void);

// Opens the checkpoint folder: a LLaVA-style vision tower + projector (encoder/dv_encoder.h), or a
// Qwen-VL one (config.json model_type qwen*_vl: encoder/dv_qwen_vision.h, its video processor and
// M-RoPE positions), the language model (llm/), tokenizer, prompt format. Errors name the file and
// the problem.
int dv_vlm_open(const char *model_dir, const dv_vlm_params *p, dv_vlm **out);
void dv_vlm_free(dv_vlm *v); // accepts NULL

dv_llm *dv_vlm_llm(dv_vlm *v);
dv_tokenizer *dv_vlm_tokenizer(dv_vlm *v);
dv_encoder *dv_vlm_encoder(dv_vlm *v);          // NULL for a Qwen-VL model
const char *dv_vlm_describe_vision(const dv_vlm *v); // one line: the vision side
// The same for a folder, opening only its vision side (`duovid info`): 0 and the line in buf, or an
// error (the folder's vision side is unusable: the message says why).
int dv_vlm_describe_folder(const char *model_dir, char *buf, size_t cap);
const dv_template *dv_vlm_template(const dv_vlm *v);
const char *dv_vlm_template_why(const dv_vlm *v); // how the format was chosen
int dv_vlm_cache_on(const dv_vlm *v);             // 1: a cache folder was given

// ---- the video context ----

// What the user asked for: sampling, timestamps, and the token budget of the video context.
typedef struct dv_vlm_video_opts {
    dv_sample_plan plan;
    int timestamps;      // 1: "t=12.0s:" text before each frame's tokens
    int64_t max_tokens;  // budget for the whole context incl. reserve (0: the LLM's n_ctx)
    int64_t reserve;     // tokens kept free for questions and answers
    int model_fps;       // Qwen-VL: 1 samples at the video processor's fps (plan.fps ignored; the CLI without
                         // --fps / --frames), 0 at plan.fps or plan.n_frames. Other models ignore it.
} dv_vlm_video_opts;

// The resolved plan, reported before any work starts.
struct dv_vlm_plan {
    dv_sample_plan plan;      // the plan actually used (max_frames lowered when it had to fit)
    dv_plan_times times;      // its resolution against the video's duration
    int64_t n_frames;         // frames (upper bound: a frame selected twice is used once)
    int64_t asked_frames;     // what the user's plan would have given (-1: unbounded)
    int capped;               // 1: fewer frames than asked, to fit the budget
    int tokens_per_frame;     // encoder tokens per frame (Qwen-VL: per temporal patch / its frames, rounded up)
    // Qwen-VL (else 0): frames go in groups of temporal_patch; HF's video_grid_thw in patches
    int temporal_patch, merge, group_tokens; // group_tokens: LLM rows per group (grid_h * grid_w / merge^2)
    int grid_t, grid_h, grid_w;
    int frame_w, frame_h;     // smart_resize'd frame size
    double t_interval;        // M-RoPE temporal position step per group
    int ts_tokens;            // text tokens per frame (Qwen-VL: per group) besides its image tokens (at most):
                              // the timestamp (--timestamps) and, for image models, the "\n" between frames
    int64_t text_tokens;      // Qwen-VL: the text cells of all groups, exact (Qwen3-VL's timestamps and markers;
                              // ts_tokens, the widest, is what the budget fit assumed)
    int64_t prefix_tokens;    // template text before the video (BOS included)
    int64_t context_tokens;   // KV cells: prefix + frames (upper bound; Qwen-VL: exact) + the rows closing a video (OneVision's
                              // image_newline, Qwen-VL's <|vision_end|>). M-RoPE positions advance slower
                              // than cells; budgets and the KV estimate count cells.
    int64_t budget;           // the budget it had to fit (max_tokens - reserve)
    size_t kv_bytes;          // KV cache bytes at context_tokens + reserve (DuoAttention aware)
    size_t kv_bytes_per_token; // K + V bytes one more token adds to the retrieval heads (all layers)
    dv_kv_type kv_type_k, kv_type_v; // the KV cache's row types
    double duration_sec;
};

// Per-stage figures of one video context.
typedef struct dv_vlm_stats {
    int64_t frames;                   // frames encoded into the context
    int64_t context_tokens;           // tokens of the video context
    double t_decode, t_encode, t_prefill; // seconds in each stage of the video context (decoding runs on
                                          // its own thread, overlapping the others)
    double t_wait;                    // seconds the pipeline waited for decoded frames
    double t_total;                   // wall time of dv_vlm_prefill_video
    uint64_t h2d_bytes, d2h_bytes;    // host <-> device bytes while building it (0 on the CPU backend)
} dv_vlm_stats;

// How a video's context came to be (dv_vlm_load_video).
typedef struct dv_vlm_video {
    dv_video_info info;
    dv_vlm_plan plan;
    dv_vlm_stats stats;
    int cache_hit;           // 1: loaded from the context cache
    double t_cache;          // seconds loading or saving the cache file
    char cache_path[4200];   // "" when the cache is off
} dv_vlm_video;

// The whole job: opens the video, plans the frames that fit (cb->on_plan), then loads the context
// from the cache or builds it (decode, encode, prefill; cb->on_progress, cb->cancel) and saves it.
// A cache file that cannot be used or written costs a warning, never the answer.
int dv_vlm_load_video(dv_vlm *v, const char *video_path, const dv_vlm_video_opts *o, const dv_vlm_callbacks *cb,
                      dv_vlm_video *out);

// The steps under it, for callers that bring their own video or skip the cache:
// picks the frames that fit (DV_EINVAL, one line, when not even one frame fits);
int dv_vlm_plan_video(dv_vlm *v, const dv_video_info *info, const dv_vlm_video_opts *o, dv_vlm_plan *out);
// "plan: 120 frames (1 fps over 0:00-2:00), 144 tokens/frame, ... KV cache ~2.3 MiB (DuoAttention, ...)"
// (one or two lines, '\n'-terminated);
void dv_vlm_plan_text(const dv_vlm *v, const dv_vlm_plan *p, char *buf, size_t cap);
// clears the context and fills it with the prompt prefix and every planned frame, streamed.
int dv_vlm_prefill_video(dv_vlm *v, dv_video *video, const dv_vlm_plan *p, int timestamps,
                         const dv_vlm_callbacks *cb, dv_vlm_stats *st);

// Times (seconds) of the frames in the current video context; *n set. Valid until the next video.
const double *dv_vlm_frame_times(const dv_vlm *v, int64_t *n);
int64_t dv_vlm_video_tokens(const dv_vlm *v); // context length right after the video

// ---- the conversation ----

// Saves the video context (DuoAttention only; with full attention a rewind is exact) to an unlinked
// temporary file, so dv_vlm_reset_conversation can return to it. Call right after the context is ready.
int dv_vlm_take_snapshot(dv_vlm *v);
// Forgets the conversation: back to the video context only. Full attention rewinds; DuoAttention
// reloads the snapshot (a rewind cannot restore the streaming heads' windows).
int dv_vlm_reset_conversation(dv_vlm *v);

// Swapping conversations (a server holding many on one model): the whole state of the context
// (KV cache incl. the streaming heads' windows, the video context's length and frame times) copied
// to memory, and put back later, so a conversation can leave the model and come back exactly.
typedef struct dv_vlm_state dv_vlm_state;
// Copies the current context into a new state (*out; the caller frees it).
int dv_vlm_state_save(dv_vlm *v, dv_vlm_state **out);
// Replaces the context with a saved one (the /reset snapshot is dropped). On error the context is empty.
int dv_vlm_state_restore(dv_vlm *v, const dv_vlm_state *s);
size_t dv_vlm_state_bytes(const dv_vlm_state *s); // host memory the state holds
void dv_vlm_state_free(dv_vlm_state *s);           // accepts NULL

// Generation settings of one answer.
typedef struct dv_vlm_gen {
    dv_sampler_params sampler;
    int max_new;                 // answer tokens at most
    int ignore_eos;
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

// V-NIAH (a needle frame in the video, as LongVA evaluates): from the next video context built on, the
// planned frame at `depth` in [0, 1] (index round(depth * (n_frames - 1)) of the plan) is replaced by
// `img` (any size: it goes through the encoder's preprocessing; not copied: keep it valid). NULL turns
// it off. While a needle is set the context cache is off (its key does not know the needle).
int dv_vlm_set_needle(dv_vlm *v, const dv_image *img, double depth);

// Appends a user turn (first = 1: the question right after the video; 0: after an answer) and
// generates the answer into the context (cb->on_text streams it; cb->cancel stops it). Context full
// before the question fits: DV_EINVAL (the conversation can go on after a reset).
int dv_vlm_ask(dv_vlm *v, const char *question, int first, const dv_vlm_gen *g, const dv_vlm_callbacks *cb,
               dv_vlm_answer *out);

// Appends a finished turn without generating: the question (first = 1: right after the video) and
// the answer text as given, prefilled as they would stand had dv_vlm_ask produced them (the answer is
// re-tokenized). For a stateless client's history when its conversation's KV cache is gone. Context
// full: DV_EINVAL, context unchanged.
int dv_vlm_add_turn(dv_vlm *v, const char *question, const char *answer, int first);

// Token counts, for budgets and tests: the first-turn (first = 1) or later-turn text of `question`,
// and the text before the video (BOS included when the tokenizer adds one). *ids: the caller frees.
int dv_vlm_question_ids(dv_vlm *v, const char *question, int first, int32_t **ids, int *n);
int dv_vlm_prefix_ids(dv_vlm *v, int32_t **ids, int *n);

#endif
