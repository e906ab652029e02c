// serve_chat.c: the JSON of a request -> a job for the model thread. POST /v1/chat/completions takes
// the OpenAI schema (model, messages, stream, max_tokens, temperature, top_p, top_k, seed,
// stream_options) with video as vLLM sends it (a {"type": "video_url", "video_url": {"url": ...}}
// content part), plus duovid's own fields at the top level or inside the video_url object: fps,
// frames, max_frames, start, end, max_tokens_context, timestamps, conversation_id, return_progress,
// ignore_eos.
// Every field is type- and range-checked; anything wrong is a 4xx with an OpenAI error object.
#include "apps/serve.h"

#include "core/dv_error.h"
#include "core/dv_progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *srv_error_type(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429:
    case 503: return "overloaded_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

char *srv_error_json(int status, const char *code, const char *param, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", srv_error_type(status));
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    cJSON_AddStringToObject(e, "code", code);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

void srv_job_unref(dv_srv *srv, srv_job *j) {
    (void)srv;
    if (!j || --j->refs > 0) return;
    for (int i = 0; j->turns && i <= j->n_turns; i++) free(j->turns[i].user), free(j->turns[i].assistant);
    free(j->turns);
    free(j->question);
    free(j->video);
    free(j->buf);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static srv_job *job_new(dv_srv *srv, srv_job_kind kind) {
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    static unsigned counter;
    pthread_mutex_lock(&srv->mu);
    unsigned n = ++counter;
    pthread_mutex_unlock(&srv->mu);
    j->kind = kind;
    j->refs = 1;
    j->progress = 1;
    j->status = 200;
    snprintf(j->id, sizeof j->id, "chatcmpl-%08x%08x", (unsigned)time(NULL), n);
    j->vo = dv_vlm_cli_video_opts(&srv->cli, 0);
    j->gen = (dv_vlm_gen){.sampler = srv->cli.sampler.params, .max_new = srv->cli.n_predict,
                          .ignore_eos = srv->cli.sampler.ignore_eos};
    pthread_cond_init(&j->cv, NULL);
    return j;
}

// ---- typed field access: 0 ok (absent or valid), else 400 with *err set ----

#define BAD(param, ...) (*err = srv_error_json(400, "invalid_value", param, __VA_ARGS__), 400)

static int get_num(const cJSON *o, const char *name, double lo, double hi, int integer, int *have, double *out,
                   char **err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return BAD(name, "'%s' must be a number", name);
    if (integer && v->valuedouble != floor(v->valuedouble)) return BAD(name, "'%s' must be an integer", name);
    if (v->valuedouble < lo || v->valuedouble > hi) return BAD(name, "'%s' must be in [%g, %g]", name, lo, hi);
    *out = v->valuedouble;
    if (have) *have = 1;
    return 0;
}

static int get_bool(const cJSON *o, const char *name, int *out, char **err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return BAD(name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

// The sampling plan and budget fields (top level, or inside video_url).
static int get_video_opts(const cJSON *o, dv_vlm_video_opts *vo, char **err) {
    double x;
    int have_fps = 0, have_frames = 0, h = 0, rc;
    if ((rc = get_num(o, "fps", 1e-6, 1e4, 0, &have_fps, &x, err))) return rc;
    if (have_fps) vo->plan.fps = x, vo->plan.n_frames = 0;
    if ((rc = get_num(o, "frames", 1, 100000, 1, &have_frames, &x, err))) return rc;
    if (have_frames) vo->plan.n_frames = (int64_t)x;
    if (have_fps && have_frames) return BAD("frames", "give either 'fps' or 'frames', not both");
    if (have_fps || have_frames) vo->model_fps = 0; // Qwen-VL: the request's rate, not the processor's
    h = 0;
    if ((rc = get_num(o, "max_frames", 1, 100000, 1, &h, &x, err))) return rc;
    if (h) vo->plan.max_frames = (int64_t)x;
    h = 0;
    if ((rc = get_num(o, "start", 0, 1e9, 0, &h, &x, err))) return rc;
    if (h) vo->plan.start_sec = x;
    h = 0;
    if ((rc = get_num(o, "end", 1e-9, 1e9, 0, &h, &x, err))) return rc;
    if (h) vo->plan.end_sec = x;
    if (vo->plan.end_sec > 0 && vo->plan.end_sec <= vo->plan.start_sec)
        return BAD("end", "'end' (%g) must be after 'start' (%g)", vo->plan.end_sec, vo->plan.start_sec);
    h = 0;
    if ((rc = get_num(o, "max_tokens_context", 1, 1 << 30, 1, &h, &x, err))) return rc;
    if (h) vo->max_tokens = (int64_t)x;
    return get_bool(o, "timestamps", &vo->timestamps, err);
}

// A message's text: a string, or the text parts of an array (video parts go to *video_url).
static int message_text(const cJSON *content, int index, int allow_video, const cJSON **video_part, char **text,
                        char **err) {
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content", index);
    if (cJSON_IsString(content)) {
        *text = strdup(content->valuestring);
        return *text ? 0 : 500;
    }
    if (!cJSON_IsArray(content)) return BAD(param, "'%s' must be a string or an array of content parts", param);
    size_t len = 0, cap = 64;
    char *t = malloc(cap);
    if (!t) return 500;
    t[0] = 0;
    const cJSON *part;
    int k = 0;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type)) {
            free(t);
            return BAD(param, "'%s[%d]' must be an object with a string 'type'", param, k);
        }
        if (!strcmp(type->valuestring, "text")) {
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(tx)) {
                free(t);
                return BAD(param, "'%s[%d].text' must be a string", param, k);
            }
            size_t n = strlen(tx->valuestring);
            if (len + n + 2 > cap) {
                cap = 2 * (len + n + 2);
                char *nt = realloc(t, cap);
                if (!nt) {
                    free(t);
                    return 500;
                }
                t = nt;
            }
            if (len) t[len++] = '\n';
            memcpy(t + len, tx->valuestring, n + 1);
            len += n;
        } else if (!strcmp(type->valuestring, "video_url")) {
            if (!allow_video || *video_part) {
                free(t);
                return BAD(param, "one video per conversation, in the first user message");
            }
            *video_part = part;
        } else {
            free(t);
            return BAD(param, "content part type '%s' is not supported (text, video_url)", type->valuestring);
        }
        k++;
    }
    *text = t;
    return 0;
}

static int parse_object(const char *body, size_t len, cJSON **out, char **err) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j) {
        *err = srv_error_json(400, "invalid_json", NULL, "the body is not valid JSON (near byte %zu)",
                              end ? (size_t)(end - body) : (size_t)0);
        return 400;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        *err = srv_error_json(400, "invalid_json", NULL, "the body must be a JSON object");
        return 400;
    }
    *out = j;
    return 0;
}

static int check_model(dv_srv *srv, const cJSON *j, int required, char **err) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!m && !required) return 0;
    if (!cJSON_IsString(m)) return BAD("model", "'model' must be a string");
    if (strcmp(m->valuestring, srv->model_id)) {
        *err = srv_error_json(404, "model_not_found", "model", "the model '%.200s' does not exist here (this server: '%s')",
                              m->valuestring, srv->model_id);
        return 404;
    }
    return 0;
}

// The video_url part -> the job's video path and options.
static int take_video(dv_srv *srv, const cJSON *part, srv_job *j, char **err) {
    const cJSON *vu = cJSON_GetObjectItemCaseSensitive(part, "video_url");
    const cJSON *url = cJSON_IsObject(vu) ? cJSON_GetObjectItemCaseSensitive(vu, "url") : vu;
    if (!cJSON_IsString(url)) return BAD("video_url", "'video_url' must be {\"url\": STRING} or a string");
    int rc = cJSON_IsObject(vu) ? get_video_opts(vu, &j->vo, err) : 0;
    return rc ? rc : srv_media_resolve(srv, url->valuestring, &j->video, err);
}

// The body as a JSON object and a new job of `kind` for it: 0, or a status (*err set when >= 400 and 500).
static int job_start(dv_srv *srv, const char *body, size_t len, srv_job_kind kind, cJSON **j, srv_job **job,
                     char **err) {
    int rc = parse_object(body, len, j, err);
    if (rc) return rc;
    if (!(*job = job_new(srv, kind))) {
        cJSON_Delete(*j);
        *err = srv_error_json(500, "internal_error", NULL, "out of memory");
        return 500;
    }
    return 0;
}

int srv_chat_parse(dv_srv *srv, const char *body, size_t len, srv_job **out, char **err) {
    *out = NULL;
    cJSON *j = NULL;
    srv_job *job = NULL;
    int rc = job_start(srv, body, len, SRV_JOB_CHAT, &j, &job, err);
    if (rc) return rc;
    double x;
    int h = 0;
    const cJSON *video_part = NULL;
    if ((rc = check_model(srv, j, 1, err))) goto done;
    if ((rc = get_bool(j, "stream", &job->stream, err)) || (rc = get_bool(j, "return_progress", &job->progress, err)) ||
        (rc = get_bool(j, "ignore_eos", &job->gen.ignore_eos, err)))
        goto done;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    if (so && !cJSON_IsNull(so) && !cJSON_IsObject(so)) {
        rc = BAD("stream_options", "'stream_options' must be an object");
        goto done;
    }
    if (so && (rc = get_bool(so, "include_usage", &job->include_usage, err))) goto done;
    if ((rc = get_num(j, "max_tokens", 1, 1 << 20, 1, &h, &x, err))) goto done;
    if (h) job->gen.max_new = (int)x;
    h = 0;
    if ((rc = get_num(j, "max_completion_tokens", 1, 1 << 20, 1, &h, &x, err))) goto done;
    if (h) job->gen.max_new = (int)x;
    h = 0;
    if ((rc = get_num(j, "temperature", 0, 2, 0, &h, &x, err))) goto done;
    if (h) job->gen.sampler.temperature = (float)x;
    h = 0;
    if ((rc = get_num(j, "top_p", 1e-6, 1, 0, &h, &x, err))) goto done;
    if (h) job->gen.sampler.top_p = (float)x;
    h = 0;
    if ((rc = get_num(j, "top_k", 0, 1 << 20, 1, &h, &x, err))) goto done;
    if (h) job->gen.sampler.top_k = (int)x;
    h = 0;
    if ((rc = get_num(j, "seed", 0, 9007199254740991.0, 1, &h, &x, err))) goto done;
    if (h) job->gen.sampler.seed = (uint64_t)x;
    if ((rc = get_video_opts(j, &job->vo, err))) goto done;
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(j, "conversation_id");
    if (cid && !cJSON_IsNull(cid)) {
        if (!cJSON_IsString(cid) || !*cid->valuestring || strlen(cid->valuestring) >= sizeof job->conv_id ||
            strspn(cid->valuestring, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                strlen(cid->valuestring)) {
            rc = BAD("conversation_id", "'conversation_id' must be 1-63 characters of [A-Za-z0-9_.-]");
            goto done;
        }
        snprintf(job->conv_id, sizeof job->conv_id, "%s", cid->valuestring);
    }

    // messages: [system], user (with the video), assistant, user, ..., user (the question)
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
        rc = BAD("messages", "'messages' must be a non-empty array");
        goto done;
    }
    int n = cJSON_GetArraySize(msgs), idx = 0, want_user = 1;
    job->turns = calloc((size_t)n, sizeof *job->turns);
    if (!job->turns) {
        rc = 500;
        goto done;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        char param[48];
        snprintf(param, sizeof param, "messages[%d]", idx);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            rc = BAD(param, "'%s' must be an object with a string 'role'", param);
            goto done;
        }
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        char *text = NULL;
        const char *r = role->valuestring;
        if (!strcmp(r, "system") || !strcmp(r, "developer")) {
            if ((rc = message_text(content, idx, 0, &video_part, &text, err))) goto done;
            const char *sys = srv->cli.system ? srv->cli.system : "";
            int same = !strcmp(text, sys);
            free(text);
            if (!same) {
                rc = BAD(param, "the system prompt is fixed when the server starts (--system); leave it out");
                goto done;
            }
        } else if (!strcmp(r, "user") || !strcmp(r, "assistant")) {
            int is_user = !strcmp(r, "user");
            if (is_user != want_user) {
                rc = BAD(param, "messages must alternate user, assistant, user, ... and end with a user message");
                goto done;
            }
            if ((rc = message_text(content, idx, is_user && job->n_turns == 0 && !job->question, &video_part, &text,
                                   err)))
                goto done;
            if (is_user) {
                job->turns[job->n_turns].user = text;
            } else {
                job->turns[job->n_turns++].assistant = text;
            }
            want_user = !is_user;
        } else {
            rc = BAD(param, "role '%.40s' is not supported (system, user, assistant)", r);
            goto done;
        }
        idx++;
    }
    if (want_user) {
        rc = BAD("messages", "the last message must be the user's question");
        goto done;
    }
    job->question = job->turns[job->n_turns].user; // the last user message: the question
    job->turns[job->n_turns].user = NULL;
    if (!*job->question) {
        rc = BAD("messages", "the question is empty");
        goto done;
    }
    if (video_part && (rc = take_video(srv, video_part, job, err))) goto done;
    if (!job->video && !job->conv_id[0]) {
        rc = BAD("messages", "no video: give a video_url content part in the first user message, or a conversation_id");
        goto done;
    }
    job->t_queued = dv_time_now();
done:
    cJSON_Delete(j);
    if (rc) {
        if (rc >= 500 && !*err) *err = srv_error_json(500, "internal_error", NULL, "out of memory");
        srv_job_unref(srv, job);
        return rc;
    }
    *out = job;
    return 0;
}

int srv_plan_parse(dv_srv *srv, const char *body, size_t len, srv_job **out, char **err) {
    *out = NULL;
    cJSON *j = NULL;
    srv_job *job = NULL;
    int rc = job_start(srv, body, len, SRV_JOB_PLAN, &j, &job, err);
    if (rc) return rc;
    if (!(rc = check_model(srv, j, 0, err)) && !(rc = get_video_opts(j, &job->vo, err))) {
        const cJSON *part = cJSON_GetObjectItemCaseSensitive(j, "video_url") ? j : NULL;
        if (!part) rc = BAD("video_url", "'video_url' is required");
        else rc = take_video(srv, part, job, err);
    }
    cJSON_Delete(j);
    if (rc) {
        srv_job_unref(srv, job);
        return rc;
    }
    job->t_queued = dv_time_now();
    *out = job;
    return 0;
}
