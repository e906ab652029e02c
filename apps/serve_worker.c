// serve_worker.c: the model thread of `duovid serve`. Jobs wait in a bounded FIFO and run one at a
// time on the one model. Conversations are kept by id (LRU, --conversations): the one whose context
// is in the model is "resident"; switching to another saves the resident one to host memory
// (dv_vlm_state_save) and restores the other, so a later turn continues the same KV cache. A
// stateless client that re-sends the history finds its conversation by a hash of (video content,
// plan, turns so far). A new conversation's video context comes from the context cache when one was
// built before (another conversation, an earlier run), else it is decoded, encoded and prefilled.
#include "apps/serve.h"

#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"
#include "vlm/dv_context_cache.h"
#include "video/dv_sheet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>
#include <xxhash.h>

struct srv_conv {
    char id[64];          // "" : a free slot
    uint64_t key;         // hash of video, plan and the turns so far: what a client re-sends
    dv_vlm_state *state;  // the saved context (NULL while resident)
    uint64_t used;        // LRU tick
    int turns;
};

void srv_job_append(dv_srv *srv, srv_job *j, const char *s, size_t n) {
    (void)srv;
    if (j->len + n + 1 > j->cap) {
        size_t cap = 2 * (j->len + n + 1) + 4096;
        char *b = realloc(j->buf, cap);
        if (!b) return; // the client sees a truncated stream; the job goes on
        j->buf = b;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = 0;
    pthread_cond_broadcast(&j->cv);
}

// Finishes a job with a whole body (JSON) and a status.
static void job_finish(dv_srv *srv, srv_job *j, int status, char *body) {
    pthread_mutex_lock(&srv->mu);
    if (body) {
        if (j->stream && status == 200) srv_job_append(srv, j, body, strlen(body));
        else {
            free(j->buf); // nothing of a stream was sent yet: the error replaces it
            j->buf = body, j->len = strlen(body), j->cap = j->len + 1, j->sent = 0, body = NULL;
        }
    }
    if (status >= 400 && status != 499) srv->m_errors++;
    srv->m_cancelled += status == 499;
    j->status = status;
    j->done = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&srv->mu);
    free(body);
}

static void emit(dv_srv *srv, srv_job *j, cJSON *chunk) {
    char *s = cJSON_PrintUnformatted(chunk);
    cJSON_Delete(chunk);
    if (!s) return;
    pthread_mutex_lock(&srv->mu);
    srv_job_append(srv, j, "data: ", 6);
    srv_job_append(srv, j, s, strlen(s));
    srv_job_append(srv, j, "\n\n", 2);
    pthread_mutex_unlock(&srv->mu);
    free(s);
}

static cJSON *chunk_new(dv_srv *srv, const srv_job *j) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", j->id);
    cJSON_AddStringToObject(c, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(c, "created", (double)time(NULL));
    cJSON_AddStringToObject(c, "model", srv->model_id);
    return c;
}

// ---- the callbacks of one job ----

typedef struct run_ctx {
    dv_srv *srv;
    srv_job *j;
    double t_start, t_stage, deadline;
    dv_vlm_plan plan;
    int have_plan, first_text;
    char pend[8];  // the start of a UTF-8 character whose other bytes are in the next piece
    int n_pend;
} run_ctx;

// Copies valid UTF-8 (JSON strings must be), each invalid byte replaced by U+FFFD; returns malloc'd text.
static char *utf8_clean(const char *s, size_t n) {
    char *o = malloc(3 * n + 1), *w = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k > 0) {
            memcpy(w, s + i, (size_t)k), w += k, i += (size_t)k;
        } else {
            memcpy(w, "\xef\xbf\xbd", 3), w += 3, i++;
        }
    }
    *w = 0;
    return o;
}

// Bytes at the end of s[0..n) that start a UTF-8 character not finished yet (0..3).
static int utf8_tail(const char *s, size_t n) {
    for (int back = 1; back <= 3 && (size_t)back <= n; back++) {
        unsigned char c = (unsigned char)s[n - (size_t)back];
        if ((c & 0xC0) == 0x80) continue; // a continuation byte: look further back
        int need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

static int cb_cancel(void *user) {
    run_ctx *r = user;
    pthread_mutex_lock(&r->srv->mu);
    int c = r->j->cancel;
    pthread_mutex_unlock(&r->srv->mu);
    return c || dv_time_now() > r->deadline;
}

static void progress_event(run_ctx *r, const char *stage, int64_t done, int64_t total, const char *note) {
    if (!r->j->stream || !r->j->progress) return;
    cJSON *c = chunk_new(r->srv, r->j);
    cJSON_AddArrayToObject(c, "choices");
    cJSON *p = cJSON_AddObjectToObject(c, "progress");
    cJSON_AddStringToObject(p, "stage", stage);
    const double el = dv_time_now() - r->t_stage;
    if (!strcmp(stage, "video")) {
        // frames decoded, encoded and prefilled so far; tokens follow from the plan
        cJSON_AddStringToObject(p, "unit", "frames");
        cJSON_AddNumberToObject(p, "frames_done", (double)done);
        cJSON_AddNumberToObject(p, "frames_total", (double)total);
        if (r->have_plan) {
            int64_t per = r->plan.tokens_per_frame + r->plan.ts_tokens;
            cJSON_AddNumberToObject(p, "tokens_done", (double)(r->plan.prefix_tokens + done * per));
            cJSON_AddNumberToObject(p, "tokens_total", (double)r->plan.context_tokens);
        }
        cJSON_AddNumberToObject(p, "eta_sec", done > 0 && total > done ? el / (double)done * (double)(total - done) : 0);
    }
    cJSON_AddNumberToObject(p, "elapsed_sec", dv_time_now() - r->t_start);
    if (note && *note) cJSON_AddStringToObject(p, "note", note);
    emit(r->srv, r->j, c);
}

static void cb_plan(void *user, const dv_vlm_plan *plan, const char *text) {
    run_ctx *r = user;
    r->plan = *plan;
    r->have_plan = 1;
    if (!r->j->stream || !r->j->progress) return;
    cJSON *c = chunk_new(r->srv, r->j);
    cJSON_AddArrayToObject(c, "choices");
    cJSON *p = cJSON_AddObjectToObject(c, "progress");
    cJSON_AddStringToObject(p, "stage", "plan");
    cJSON_AddStringToObject(p, "text", text);
    cJSON_AddNumberToObject(p, "frames_total", (double)plan->n_frames);
    cJSON_AddNumberToObject(p, "tokens_per_frame", plan->tokens_per_frame);
    cJSON_AddNumberToObject(p, "tokens_total", (double)plan->context_tokens);
    cJSON_AddBoolToObject(p, "capped", plan->capped);
    emit(r->srv, r->j, c);
}

static void cb_progress(void *user, const char *stage, const char *unit, dv_vlm_progress_state st, int64_t done,
                        int64_t total, const char *note) {
    (void)unit;
    run_ctx *r = user;
    if (strcmp(stage, "video")) return; // answer tokens stream themselves
    if (st == DV_VLM_PROGRESS_BEGIN) r->t_stage = dv_time_now();
    if (st == DV_VLM_PROGRESS_ABORT) return;
    progress_event(r, "video", done, total, note);
}

static void delta_event(run_ctx *r, const char *content, const char *finish) {
    cJSON *c = chunk_new(r->srv, r->j);
    cJSON *ch = cJSON_CreateObject(), *d = cJSON_AddObjectToObject(ch, "delta");
    cJSON_AddNumberToObject(ch, "index", 0);
    if (r->first_text) cJSON_AddStringToObject(d, "role", "assistant");
    r->first_text = 0;
    if (content) cJSON_AddStringToObject(d, "content", content);
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "choices"), ch);
    emit(r->srv, r->j, c);
}

// Answer pieces are token strings: one character may be split over two tokens (byte fallback). The
// stream sends whole characters only, keeping an unfinished one for the next piece.
static void cb_text(void *user, const char *piece) {
    run_ctx *r = user;
    if (!r->j->stream) return;
    size_t n = strlen(piece), m = (size_t)r->n_pend + n;
    char *joined = malloc(m + 1);
    if (!joined) return;
    memcpy(joined, r->pend, (size_t)r->n_pend);
    memcpy(joined + r->n_pend, piece, n + 1);
    int keep = utf8_tail(joined, m);
    memcpy(r->pend, joined + m - (size_t)keep, (size_t)keep);
    r->n_pend = keep;
    char *clean = m - (size_t)keep ? utf8_clean(joined, m - (size_t)keep) : NULL;
    if (clean) delta_event(r, clean, NULL);
    free(clean);
    free(joined);
}

// ---- conversations ----

static uint64_t hash_str(uint64_t seed, const char *s) { return XXH3_64bits_withSeed(s, strlen(s) + 1, seed); }

// The key of a conversation before any turn: the video's content and everything that shapes its context.
static int base_key(const srv_job *j, uint64_t *out) {
    uint64_t vh;
    int rc = dv_ctx_hash_file(j->video, &vh);
    if (rc) return rc;
    char desc[256];
    const dv_sample_plan *p = &j->vo.plan;
    snprintf(desc, sizeof desc, "fps=%.9g;n=%lld;max=%lld;start=%.9g;end=%.9g;mode=%d;budget=%lld;ts=%d", p->fps,
             (long long)p->n_frames, (long long)p->max_frames, p->start_sec, p->end_sec, (int)p->mode,
             (long long)j->vo.max_tokens, j->vo.timestamps);
    *out = hash_str(vh, desc);
    return 0;
}

static uint64_t turn_key(uint64_t k, const char *user, const char *assistant) {
    return hash_str(hash_str(k, user), assistant);
}

static srv_conv *conv_find_id(dv_srv *srv, const char *id) {
    for (int i = 0; i < srv->n_convs; i++)
        if (srv->convs[i].id[0] && !strcmp(srv->convs[i].id, id)) return &srv->convs[i];
    return NULL;
}

static srv_conv *conv_find_key(dv_srv *srv, uint64_t key) {
    for (int i = 0; i < srv->n_convs; i++)
        if (srv->convs[i].id[0] && srv->convs[i].key == key) return &srv->convs[i];
    return NULL;
}

static void conv_drop(dv_srv *srv, srv_conv *c) {
    if (srv->resident == c - srv->convs) srv->resident = -1;
    dv_vlm_state_free(c->state);
    memset(c, 0, sizeof *c);
}

// A free slot (the least recently used conversation makes room).
static srv_conv *conv_slot(dv_srv *srv) {
    srv_conv *lru = &srv->convs[0];
    for (int i = 0; i < srv->n_convs; i++) {
        if (!srv->convs[i].id[0]) return &srv->convs[i];
        if (srv->convs[i].used < lru->used) lru = &srv->convs[i];
    }
    DV_LOG_DEBUG("conversation %s evicted (least recently used)", lru->id);
    conv_drop(srv, lru);
    return lru;
}

// Saves the resident conversation's context to memory (the model is about to hold another).
static int conv_swap_out(dv_srv *srv) {
    if (srv->resident < 0) return 0;
    srv_conv *c = &srv->convs[srv->resident];
    int rc = dv_vlm_state_save(srv->s.vlm, &c->state);
    if (rc) {
        DV_LOG_WARN("conversation %s dropped: %s", c->id, dv_error_message());
        conv_drop(srv, c);
    }
    srv->resident = -1;
    return 0;
}

static int conv_make_resident(dv_srv *srv, srv_conv *c) {
    if (srv->resident == c - srv->convs) return 0;
    conv_swap_out(srv);
    int rc = dv_vlm_state_restore(srv->s.vlm, c->state);
    dv_vlm_state_free(c->state);
    c->state = NULL;
    if (rc) {
        conv_drop(srv, c);
        return rc;
    }
    srv->resident = (int)(c - srv->convs);
    return 0;
}

// ---- one chat job ----

static const char *finish_reason(dv_vlm_stop s) {
    return s == DV_VLM_STOP_LENGTH || s == DV_VLM_STOP_CONTEXT ? "length" : "stop";
}

static int status_of(int rc) {
    return rc == DV_EINVAL || rc == DV_EFORMAT || rc == DV_ENOTFOUND || rc == DV_EUNSUPPORTED ? 400 : 500;
}

static void run_chat(dv_srv *srv, srv_job *j) {
    dv_vlm *v = srv->s.vlm;
    run_ctx r = {.srv = srv, .j = j, .t_start = dv_time_now(), .first_text = 1};
    r.t_stage = r.t_start;
    r.deadline = j->t_queued + srv->o.request_timeout;
    dv_vlm_callbacks cb = {.on_plan = cb_plan, .on_progress = cb_progress, .on_text = cb_text, .cancel = cb_cancel,
                           .user = &r};
    srv_conv *c = NULL;
    uint64_t key = 0;
    int rc = 0, resumed = 0, replayed = 0, status = 500;
    dv_vlm_video vc;
    memset(&vc, 0, sizeof vc);
    char *err = NULL;
    if (j->conv_id[0]) c = conv_find_id(srv, j->conv_id);
    if (!c && j->video) {
        if ((rc = base_key(j, &key))) {
            status = status_of(rc);
            err = srv_error_json(status, "invalid_video", "video_url", "%s", dv_error_message());
            goto fail;
        }
        for (int i = 0; i < j->n_turns; i++) key = turn_key(key, j->turns[i].user, j->turns[i].assistant);
        if (j->n_turns) c = conv_find_key(srv, key);
    } else if (!c) {
        status = 404;
        err = srv_error_json(404, "conversation_not_found", "conversation_id", "no conversation '%s' (evicted or "
                             "never started); send the video to start one", j->conv_id);
        goto fail;
    }
    int32_t *qids = NULL;
    int nq = 0;
    if ((rc = dv_vlm_question_ids(v, j->question, c ? c->turns == 0 : j->n_turns == 0, &qids, &nq))) goto fail_rc;
    free(qids);
    if (c) {
        resumed = 1;
        if ((rc = conv_make_resident(srv, c))) goto fail_rc;
    } else {
        conv_swap_out(srv);
        c = conv_slot(srv);
        j->vo.reserve = nq + j->gen.max_new;
        if ((rc = dv_vlm_load_video(v, j->video, &j->vo, &cb, &vc))) goto fail_rc;
        if (j->conv_id[0]) snprintf(c->id, sizeof c->id, "%s", j->conv_id);
        else snprintf(c->id, sizeof c->id, "conv-%016llx%04x", (unsigned long long)key, (unsigned)(srv->tick & 0xffff));
        c->key = key;
        srv->resident = (int)(c - srv->convs);
        if (vc.cache_hit) progress_event(&r, "cache", 1, 1, "video context from the context cache");
        // a history whose KV cache is gone (evicted, or another server run): prefilled again, as a
        // stateless server does
        for (int i = 0; i < j->n_turns; i++) {
            if ((rc = dv_vlm_add_turn(v, j->turns[i].user, j->turns[i].assistant, i == 0))) {
                conv_drop(srv, c);
                if (rc != DV_EINVAL) goto fail_rc;
                status = 400;
                err = srv_error_json(400, "context_length_exceeded", "messages", "%s", dv_error_message());
                goto fail;
            }
        }
        c->turns = replayed = j->n_turns;
        if (replayed) progress_event(&r, "history", replayed, replayed, "earlier turns prefilled again");
    }
    c->used = ++srv->tick;
    if (j->stream) delta_event(&r, "", NULL);
    dv_vlm_answer a;
    const int before = dv_llm_n_past(dv_vlm_llm(v));
    const double t_ask = dv_time_now();
    if ((rc = dv_vlm_ask(v, j->question, c->turns == 0, &j->gen, &cb, &a))) {
        if (rc == DV_EINVAL) { // the context is full: the conversation stays as it was
            status = 400;
            err = srv_error_json(400, "context_length_exceeded", "messages", "%s", dv_error_message());
            goto fail;
        }
        conv_drop(srv, c);
        goto fail_rc;
    }
    if (a.stop == DV_VLM_STOP_INTERRUPT) { // the client left or the time ran out: its context is half a turn
        conv_drop(srv, c);
        int gone = cb_cancel(&r);
        status = gone && !j->cancel ? 504 : 499;
        err = srv_error_json(status == 504 ? 504 : 400, status == 504 ? "timeout" : "cancelled", NULL,
                             status == 504 ? "the request ran past --request-timeout" : "cancelled by the client");
        goto fail;
    }
    // the client sends the answer back as it got it: valid UTF-8
    char *text = utf8_clean(a.text, strlen(a.text));
    c->key = turn_key(c->key, j->question, text ? text : a.text);
    c->turns++;
    if (j->stream && r.n_pend) { // the answer ended inside a character
        char *t = utf8_clean(r.pend, (size_t)r.n_pend);
        if (t) delta_event(&r, t, NULL);
        free(t);
    }
    const double t_total = dv_time_now() - j->t_queued;

    cJSON *tm = cJSON_CreateObject();
    const char *cache = resumed ? "conversation" : !dv_vlm_cache_on(v) ? "off" : vc.cache_hit ? "hit" : "miss";
    cJSON_AddStringToObject(tm, "cache", cache);
    cJSON_AddBoolToObject(tm, "cache_hit", vc.cache_hit);
    cJSON_AddBoolToObject(tm, "conversation_resumed", resumed);
    cJSON_AddNumberToObject(tm, "replayed_turns", replayed);
    cJSON_AddNumberToObject(tm, "frames", (double)vc.stats.frames);
    cJSON_AddNumberToObject(tm, "video_tokens", (double)dv_vlm_video_tokens(v));
    cJSON_AddNumberToObject(tm, "decode_sec", vc.stats.t_decode);
    cJSON_AddNumberToObject(tm, "encode_sec", vc.stats.t_encode);
    cJSON_AddNumberToObject(tm, "video_prefill_sec", vc.stats.t_prefill);
    cJSON_AddNumberToObject(tm, "cache_sec", vc.t_cache);
    cJSON_AddNumberToObject(tm, "prompt_tokens", a.n_prompt);
    cJSON_AddNumberToObject(tm, "prompt_prefill_sec", a.t_prefill);
    cJSON_AddNumberToObject(tm, "predicted_tokens", a.n_tokens);
    cJSON_AddNumberToObject(tm, "generate_sec", a.t_generate);
    cJSON_AddNumberToObject(tm, "predicted_per_second", a.t_generate > 0 ? a.n_tokens / a.t_generate : 0);
    cJSON_AddNumberToObject(tm, "queue_sec", r.t_start - j->t_queued);
    cJSON_AddNumberToObject(tm, "ttft_sec", t_ask - r.t_start + a.ttft); // from the start of the work
    cJSON_AddNumberToObject(tm, "total_sec", t_total);
    cJSON *usage = cJSON_CreateObject();
    cJSON_AddNumberToObject(usage, "prompt_tokens", before + a.n_prompt);
    cJSON_AddNumberToObject(usage, "completion_tokens", a.n_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", before + a.n_prompt + a.n_tokens);
    cJSON *det = cJSON_AddObjectToObject(usage, "prompt_tokens_details");
    cJSON_AddNumberToObject(det, "cached_tokens", resumed ? before : vc.cache_hit ? (double)dv_vlm_video_tokens(v) : 0);

    pthread_mutex_lock(&srv->mu);
    srv->m_prompt_tok += (uint64_t)(before + a.n_prompt);
    srv->m_completion_tok += (uint64_t)a.n_tokens;
    srv->m_cache_hit += vc.cache_hit;
    srv->m_cache_miss += !resumed && !vc.cache_hit;
    srv->m_resumed += resumed;
    srv->m_decode_s += vc.stats.t_decode;
    srv->m_encode_s += vc.stats.t_encode;
    srv->m_prefill_s += vc.stats.t_prefill + a.t_prefill;
    srv->m_generate_s += a.t_generate;
    srv->m_latency_s += t_total;
    pthread_mutex_unlock(&srv->mu);

    char *body = NULL;
    if (j->stream) {
        cJSON *fin = chunk_new(srv, j);
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", 0);
        cJSON_AddObjectToObject(ch, "delta");
        cJSON_AddStringToObject(ch, "finish_reason", finish_reason(a.stop));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(fin, "choices"), ch);
        cJSON_AddStringToObject(fin, "conversation_id", c->id);
        cJSON_AddItemToObject(fin, "timings", tm);
        if (j->include_usage) {
            emit(srv, j, fin);
            fin = chunk_new(srv, j);
            cJSON_AddArrayToObject(fin, "choices");
        }
        cJSON_AddItemToObject(fin, "usage", usage);
        emit(srv, j, fin);
        body = strdup("data: [DONE]\n\n");
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", j->id);
        cJSON_AddStringToObject(o, "object", "chat.completion");
        cJSON_AddNumberToObject(o, "created", (double)time(NULL));
        cJSON_AddStringToObject(o, "model", srv->model_id);
        cJSON *ch = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddNumberToObject(ch, "index", 0);
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text ? text : "");
        cJSON_AddStringToObject(ch, "finish_reason", finish_reason(a.stop));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
        cJSON_AddItemToObject(o, "usage", usage);
        cJSON_AddStringToObject(o, "conversation_id", c->id);
        cJSON_AddItemToObject(o, "timings", tm);
        body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    free(text);
    job_finish(srv, j, 200, body);
    return;
fail_rc:
    if (rc == DV_EINTR) {
        status = j->cancel ? 499 : 504;
        err = srv_error_json(status == 504 ? 504 : 400, status == 504 ? "timeout" : "cancelled", NULL, "%s",
                             status == 504 ? "the request ran past --request-timeout" : "cancelled by the client");
    } else {
        status = status_of(rc);
        err = srv_error_json(status, status == 400 ? "invalid_video" : "internal_error", NULL, "%s",
                             dv_error_message());
    }
fail:
    if (j->stream && j->len) { // headers went out already: the error travels in the stream
        emit(srv, j, cJSON_Parse(err));
        free(err);
        pthread_mutex_lock(&srv->mu);
        srv->m_cancelled += status == 499;
        srv->m_errors += status != 499;
        pthread_mutex_unlock(&srv->mu);
        job_finish(srv, j, 200, strdup("data: [DONE]\n\n"));
        return;
    }
    job_finish(srv, j, status, err); // 499: nobody is listening any more
}

// ---- a plan job: the sampling plan and a contact sheet of its frames, for the page ----

#define SHEET_MAX 48

static void run_plan(dv_srv *srv, srv_job *j) {
    dv_vlm *v = srv->s.vlm;
    dv_video *video = NULL;
    dv_video_sampler *s = NULL;
    dv_sheet *sheet = NULL;
    cJSON *o = NULL;
    int rc;
    dv_vlm_plan p;
    char text[1024], name[64], path[4200];
    j->vo.reserve = j->gen.max_new + 64;
    if ((rc = dv_video_open(j->video, NULL, &video)) || (rc = dv_vlm_plan_video(v, dv_video_get_info(video), &j->vo, &p)))
        goto fail;
    dv_vlm_plan_text(v, &p, text, sizeof text);
    // the sheet shows the plan's frames (or SHEET_MAX spread over the same range)
    dv_sample_plan sp = p.plan;
    if (p.n_frames > SHEET_MAX) sp.n_frames = SHEET_MAX, sp.max_frames = 0;
    if ((rc = dv_video_sampler_init(video, &sp, 160, 0, &s))) goto fail;
    int64_t count = dv_video_sampler_plan(s)->count;
    const dv_video_info *in = dv_video_get_info(video);
    int th = in->display_width > 0 ? (int)lround(160.0 * in->display_height / in->display_width) : 90;
    if (th < 16) th = 16;
    if (th > 640) th = 640;
    if ((rc = dv_sheet_init((int)(count > 0 ? count : 1), 0, 160, th, &sheet))) goto fail;
    o = cJSON_CreateObject();
    cJSON *times = cJSON_AddArrayToObject(o, "sheet_times");
    dv_frame f;
    int r;
    while ((r = dv_video_sampler_next(s, &f)) == 1) {
        char label[32];
        dv_sheet_format_time(f.t_sec, label, sizeof label);
        if ((rc = dv_sheet_add(sheet, f.rgb, f.w, f.h, label))) goto fail;
        cJSON_AddItemToArray(times, cJSON_CreateNumber(f.t_sec));
    }
    if ((rc = r)) goto fail;
    uint64_t h = 0;
    dv_ctx_hash_file(j->video, &h);
    snprintf(name, sizeof name, "sheet-%016llx-%08x.png", (unsigned long long)h,
             (unsigned)XXH3_64bits(text, strlen(text)));
    snprintf(path, sizeof path, "%s/%s", srv->upload_dir, name);
    if ((rc = dv_sheet_write(sheet, path))) goto fail;
    char url[128];
    snprintf(url, sizeof url, "/v1/sheets/%s", name);
    cJSON_AddStringToObject(o, "object", "video.plan");
    cJSON_AddStringToObject(o, "plan", text);
    cJSON_AddNumberToObject(o, "frames", (double)p.n_frames);
    cJSON_AddNumberToObject(o, "tokens_per_frame", p.tokens_per_frame);
    cJSON_AddNumberToObject(o, "context_tokens", (double)p.context_tokens);
    cJSON_AddNumberToObject(o, "kv_bytes", (double)p.kv_bytes);
    cJSON_AddBoolToObject(o, "capped", p.capped);
    cJSON_AddNumberToObject(o, "duration_sec", p.duration_sec);
    cJSON_AddStringToObject(o, "sheet_url", url);
    job_finish(srv, j, 200, cJSON_PrintUnformatted(o));
    goto done;
fail:;
    int st = status_of(rc);
    job_finish(srv, j, st, srv_error_json(st, st == 400 ? "invalid_video" : "internal_error", "video_url", "%s",
                                          dv_error_message()));
done:
    cJSON_Delete(o);
    dv_sheet_free(sheet);
    dv_video_sampler_free(s);
    dv_video_free(video);
}

// ---- the queue ----

static void *worker_main(void *arg) {
    dv_srv *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->mu);
        while (!srv->q_len && !srv->stopping) pthread_cond_wait(&srv->work, &srv->mu);
        if (!srv->q_len) { // stopping and nothing left
            pthread_mutex_unlock(&srv->mu);
            return NULL;
        }
        srv_job *j = srv->q[srv->q_head];
        srv->q_head = (srv->q_head + 1) % srv->o.queue;
        srv->q_len--;
        srv->running = j;
        int skip = j->cancel || srv->stopping;
        pthread_mutex_unlock(&srv->mu);
        if (skip) // the client left while it waited, or the server stops: nothing to compute
            job_finish(srv, j, 503, srv_error_json(503, j->cancel ? "cancelled" : "shutting_down", NULL,
                                                   "the server is shutting down"));
        else if (j->kind == SRV_JOB_CHAT) run_chat(srv, j);
        else run_plan(srv, j);
        pthread_mutex_lock(&srv->mu);
        srv->running = NULL;
        srv_job_unref(srv, j);
        pthread_mutex_unlock(&srv->mu);
    }
}

int srv_submit(dv_srv *srv, srv_job *j) {
    pthread_mutex_lock(&srv->mu);
    srv->m_requests += j->kind == SRV_JOB_CHAT;
    if (srv->stopping || srv->q_len >= srv->o.queue) {
        srv->m_rejected++;
        pthread_mutex_unlock(&srv->mu);
        return -1;
    }
    j->refs++;
    srv->q[(srv->q_head + srv->q_len) % srv->o.queue] = j;
    srv->q_len++;
    pthread_cond_signal(&srv->work);
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

int srv_worker_start(dv_srv *srv) {
    srv->q = calloc((size_t)srv->o.queue, sizeof *srv->q);
    srv->convs = calloc((size_t)srv->o.conversations, sizeof *srv->convs);
    srv->n_convs = srv->o.conversations;
    srv->resident = -1;
    if (!srv->q || !srv->convs) return dv_error_set(DV_ENOMEM, "out of memory");
    if (pthread_create(&srv->worker, NULL, worker_main, srv)) return dv_error_set(DV_ENOMEM, "cannot start the model thread");
    return 0;
}

void srv_worker_stop(dv_srv *srv) {
    pthread_mutex_lock(&srv->mu);
    srv->stopping = 1;
    pthread_cond_broadcast(&srv->work);
    pthread_mutex_unlock(&srv->mu);
    pthread_join(srv->worker, NULL);
    for (int i = 0; i < srv->n_convs; i++) dv_vlm_state_free(srv->convs[i].state);
    free(srv->convs);
    free(srv->q);
}

char *srv_metrics_text(dv_srv *srv) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    pthread_mutex_lock(&srv->mu);
    int n_conv = 0;
    for (int i = 0; i < srv->n_convs; i++) n_conv += srv->convs[i].id[0] != 0;
#define C(name, help, v) fprintf(f, "# HELP duovid_" name " " help "\n# TYPE duovid_" name " counter\nduovid_" name " %.6g\n", (double)(v))
#define G(name, help, v) fprintf(f, "# HELP duovid_" name " " help "\n# TYPE duovid_" name " gauge\nduovid_" name " %.6g\n", (double)(v))
    C("requests_total", "chat completion requests received", srv->m_requests);
    C("requests_rejected_total", "requests refused with 503 (queue full or shutting down)", srv->m_rejected);
    C("requests_failed_total", "requests answered with an error", srv->m_errors);
    C("prompt_tokens_total", "context tokens of answered requests", srv->m_prompt_tok);
    C("completion_tokens_total", "answer tokens generated", srv->m_completion_tok);
    C("context_cache_hits_total", "video contexts loaded from the context cache", srv->m_cache_hit);
    C("context_cache_misses_total", "video contexts built (decode, encode, prefill)", srv->m_cache_miss);
    C("conversation_resumes_total", "turns that continued a kept conversation", srv->m_resumed);
    C("requests_cancelled_total", "requests stopped because the client went away", srv->m_cancelled);
    C("uploads_total", "video files uploaded", srv->m_uploads);
    C("video_decode_seconds_total", "seconds decoding video frames", srv->m_decode_s);
    C("video_encode_seconds_total", "seconds in the vision encoder", srv->m_encode_s);
    C("prefill_seconds_total", "seconds prefilling video and question tokens", srv->m_prefill_s);
    C("decode_seconds_total", "seconds generating answer tokens", srv->m_generate_s);
    C("request_seconds_total", "seconds from queueing to the last byte of answered requests", srv->m_latency_s);
    G("queue_length", "requests waiting for the model", srv->q_len);
    G("busy", "1 while a request runs on the model", srv->running != NULL);
    G("conversations", "conversations kept in memory", n_conv);
#undef C
#undef G
    pthread_mutex_unlock(&srv->mu);
    fclose(f);
    return buf;
}
