// serve.h: what the files of `duovid serve` share: the server's options and state, the job a request
// becomes (parsed on an HTTP thread, run on the one model thread), the conversation store, media
// resolution and the OpenAI-style error objects. Files: cmd_serve.c (flags, start, SIGTERM),
// serve_http.c (libmicrohttpd routes, auth, limits, SSE), serve_chat.c (request JSON -> job),
// serve_worker.c (the queue, conversations, running a job on the vlm), serve_media.c (video_url,
// uploads, --media-path), serve_page.c (the browser page, embedded at build time).
#ifndef DV_SERVE_H
#define DV_SERVE_H

#include "apps/vlm_args.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>

typedef struct dv_srv_opts {
    const char *host;         // bind address (default 127.0.0.1)
    int port;                 // 0: any free port (printed)
    const char *media_path;   // file:// URLs must resolve inside it (NULL: none allowed)
    const char *api_key;      // Bearer key (NULL: no auth)
    const char *upload_dir;   // uploads, data: URLs, contact sheets (NULL: a temporary folder)
    const char *model_id;     // the name in /v1/models (default: the model folder's base name)
    int queue;                // requests waiting at most (more: 503)
    int conversations;        // conversations kept in memory (LRU)
    int timeout;              // idle connection seconds
    double request_timeout;   // seconds a request may run before it is cancelled (fractions allowed)
    int64_t max_body;         // request body bytes at most (JSON)
    int64_t max_upload;       // upload bytes at most
} dv_srv_opts;

// One chat turn of the history a request carries.
typedef struct srv_turn {
    char *user, *assistant;
} srv_turn;

typedef enum srv_job_kind { SRV_JOB_CHAT = 0, SRV_JOB_PLAN } srv_job_kind;

// A request on its way through the model thread. Fields above `mu` are set by the HTTP thread before
// the job is queued and read-only after; the rest is guarded by the server's mutex.
typedef struct srv_job {
    srv_job_kind kind;
    int stream;                 // 1: server-sent events
    int progress;               // 1: progress chunks in the stream (default)
    char *video;                // real path of the video (NULL: continue conversation `conv_id`)
    char conv_id[64];           // "" : none given
    srv_turn *turns;            // (n_turns) history before this question, owned
    int n_turns;
    char *question;             // the last user message, owned
    dv_vlm_video_opts vo;       // sampling plan and budget (reserve filled by the worker)
    dv_vlm_gen gen;
    int include_usage;
    char id[40];                // chatcmpl-...
    double t_queued;

    // ---- guarded by srv->mu ----
    int refs;                   // the connection and the worker
    int cancel;                 // the client went away
    int done;
    int status;                 // HTTP status of the answer (200, or an error)
    char *buf;                  // stream: SSE bytes; else: the whole JSON body
    size_t len, cap, sent;
    pthread_cond_t cv;          // signalled on new bytes and on done
} srv_job;

typedef struct srv_conv srv_conv;

typedef struct dv_srv {
    dv_srv_opts o;
    dv_vlm_cli cli;
    dv_vlm_session s;
    char media_real[4096];      // realpath of --media-path ("" : none)
    char upload_dir[4096];
    int own_upload_dir;         // 1: a temporary folder, removed at exit
    char model_id[256];
    pthread_mutex_t mu;
    pthread_cond_t work;        // signalled when a job is queued or on stop
    srv_job **q;                // (o.queue) waiting jobs, FIFO ring
    int q_head, q_len;
    srv_job *running;
    int stopping;
    int in_flight;              // requests between their headers and their last byte
    pthread_t worker;
    srv_conv *convs;            // (o.conversations) the conversation store (worker thread only)
    int n_convs, resident;      // resident: the conversation whose context is in the model (-1: none)
    uint64_t tick;
    // metrics (guarded by mu)
    uint64_t m_requests, m_rejected, m_errors, m_prompt_tok, m_completion_tok, m_cache_hit, m_cache_miss,
        m_resumed, m_uploads, m_cancelled;
    double m_decode_s, m_encode_s, m_prefill_s, m_generate_s, m_latency_s;
} dv_srv;

// ---- errors: {"error": {"message", "type", "param", "code"}} ----
char *srv_error_json(int status, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *srv_error_type(int status);

// ---- serve_chat.c: a /v1/chat/completions body -> job (0), or an HTTP status >= 400 with *err set ----
int srv_chat_parse(dv_srv *srv, const char *body, size_t len, srv_job **out, char **err);
// /v1/videos/plan body {video_url, fps, ...} -> a plan job
int srv_plan_parse(dv_srv *srv, const char *body, size_t len, srv_job **out, char **err);
void srv_job_unref(dv_srv *srv, srv_job *j); // under srv->mu

// ---- serve_media.c ----
// A video_url's URL -> a real path (malloc'd). Status >= 400 and *err on refusal.
int srv_media_resolve(dv_srv *srv, const char *url, char **path, char **err);
// An uploaded file (tmp, bytes long, written by the HTTP thread) checked to be a video and kept as
// upload_dir/file-<hash>; *json: the OpenAI file object. Status >= 400 and *err on refusal (tmp removed).
int srv_media_keep_upload(dv_srv *srv, const char *tmp, const char *filename, int64_t bytes, char **json,
                          char **err);
// GET /v1/media: the videos under --media-path (a bounded list)
char *srv_media_list(dv_srv *srv);

// ---- serve_worker.c ----
int srv_worker_start(dv_srv *srv);
void srv_worker_stop(dv_srv *srv); // cancels what waits, finishes the running job, joins
// Queues a job (the queue takes a reference). 0, or -1 when full / stopping (the caller answers 503).
int srv_submit(dv_srv *srv, srv_job *j);
char *srv_metrics_text(dv_srv *srv);
void srv_job_append(dv_srv *srv, srv_job *j, const char *s, size_t n); // under srv->mu

// ---- serve_http.c ----
typedef struct srv_http srv_http;
int srv_http_start(dv_srv *srv, srv_http **out, int *port);
void srv_http_quiesce(srv_http *h); // stop accepting connections
// Waits (at most `secs`) until no request is in flight: the last answers are sent before the stop.
void srv_http_drain(dv_srv *srv, double secs);
void srv_http_stop(srv_http *h);

// ---- serve_page.c (generated from apps/serve_page.html) ----
extern const char dv_serve_page_html[];
extern const unsigned long dv_serve_page_html_len;

#endif
