// serve_http.c: the HTTP side of `duovid serve` on libmicrohttpd (a thread per connection, so a
// handler may wait for its job): routes, the Bearer key, body and upload limits (a declared
// Content-Length over the limit is refused before a byte of the body is read), uploads (multipart
// as the OpenAI client sends them, or a raw body) streamed to disk, and the answer: one JSON body,
// or server-sent events read from the job as the model thread writes them. A client that goes away
// (its socket hangs up while it waits, or a write fails) cancels its job.
#include "apps/serve.h"

#include "core/dv_error.h"
#include "core/dv_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct srv_http {
    struct MHD_Daemon *d;
    int quiesced_fd;
};

typedef enum route { R_NONE = 0, R_PAGE, R_HEALTH, R_MODELS, R_METRICS, R_CHAT, R_FILES, R_MEDIA, R_PLAN, R_SHEET } route;

// One request's state across the handler's calls (MHD's con_cls).
typedef struct srv_req {
    dv_srv *srv;
    route r;
    char *body;                  // (len) the JSON body so far
    size_t len, cap;
    int too_big;
    int fd;                      // upload: the temporary file (-1: none)
    char tmp[4200];
    int64_t bytes;
    struct MHD_PostProcessor *pp;
    char filename[256];
    int got_file;
} srv_req;

static enum MHD_Result send_buf(struct MHD_Connection *c, int status, const char *type, char *body, size_t len,
                                int must_free) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, must_free ? MHD_RESPMEM_MUST_FREE
                                                                                    : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "2");
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, char *json) {
    if (!json) return MHD_NO;
    return send_buf(c, status, "application/json", json, strlen(json), 1);
}

#define SEND_ERR(c, status, code, ...) send_json(c, status, srv_error_json(status, code, NULL, __VA_ARGS__))

static route route_of(const char *url) {
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) return R_PAGE;
    if (!strcmp(url, "/health")) return R_HEALTH;
    if (!strcmp(url, "/v1/models")) return R_MODELS;
    if (!strcmp(url, "/metrics")) return R_METRICS;
    if (!strcmp(url, "/v1/chat/completions")) return R_CHAT;
    if (!strcmp(url, "/v1/files")) return R_FILES;
    if (!strcmp(url, "/v1/media")) return R_MEDIA;
    if (!strcmp(url, "/v1/videos/plan")) return R_PLAN;
    if (!strncmp(url, "/v1/sheets/", 11)) return R_SHEET;
    return R_NONE;
}

static int route_is_post(route r) { return r == R_CHAT || r == R_FILES || r == R_PLAN; }

// Bearer key check, constant time in the key's length.
static int authorized(dv_srv *srv, struct MHD_Connection *c) {
    if (!srv->o.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    size_t n = strlen(srv->o.api_key), m = strlen(h);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)srv->o.api_key[i] ^ (unsigned char)(i < m ? h[i] : 0);
    return diff == 0;
}

// ---- waiting for a job, and the event stream ----

static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

// Waits until the job is done (or, first_byte, has output); a hung-up client cancels it. Under no lock.
static void wait_job(dv_srv *srv, struct MHD_Connection *c, srv_job *j, int first_byte) {
    pthread_mutex_lock(&srv->mu);
    while (!j->done && !(first_byte && j->len)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&j->cv, &srv->mu, &ts);
        if (!j->done && !j->cancel) {
            pthread_mutex_unlock(&srv->mu);
            int gone = client_gone(c);
            pthread_mutex_lock(&srv->mu);
            if (gone) {
                j->cancel = 1;
                break;
            }
        }
    }
    pthread_mutex_unlock(&srv->mu);
}

typedef struct sse_ctx {
    dv_srv *srv;
    srv_job *j;
} sse_ctx;

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse_ctx *s = cls;
    srv_job *j = s->j;
    pthread_mutex_lock(&s->srv->mu);
    for (;;) {
        if (j->sent < j->len) {
            size_t n = j->len - j->sent < max ? j->len - j->sent : max;
            memcpy(buf, j->buf + j->sent, n);
            j->sent += n;
            pthread_mutex_unlock(&s->srv->mu);
            return (ssize_t)n;
        }
        if (j->done) {
            pthread_mutex_unlock(&s->srv->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 2;
        if (pthread_cond_timedwait(&j->cv, &s->srv->mu, &ts) == ETIMEDOUT && j->sent == j->len && !j->done) {
            // an SSE comment: keeps proxies from timing out, and finds a client that left
            static const char ping[] = ": keep-alive\n\n";
            pthread_mutex_unlock(&s->srv->mu);
            size_t n = sizeof ping - 1 < max ? sizeof ping - 1 : max;
            memcpy(buf, ping, n);
            return (ssize_t)n;
        }
    }
}

static void sse_free(void *cls) {
    sse_ctx *s = cls;
    pthread_mutex_lock(&s->srv->mu);
    if (!s->j->done) s->j->cancel = 1; // the connection closed before the end: stop generating
    srv_job_unref(s->srv, s->j);
    pthread_mutex_unlock(&s->srv->mu);
    free(s);
}

// Submits the job and answers: 503 when the queue is full, else the result or the stream.
static enum MHD_Result run_job(dv_srv *srv, struct MHD_Connection *c, srv_job *j) {
    if (srv_submit(srv, j)) {
        pthread_mutex_lock(&srv->mu);
        int stopping = srv->stopping;
        srv_job_unref(srv, j);
        pthread_mutex_unlock(&srv->mu);
        return SEND_ERR(c, 503, stopping ? "shutting_down" : "queue_full",
                        stopping ? "the server is shutting down" : "the request queue is full; retry later");
    }
    wait_job(srv, c, j, j->stream);
    pthread_mutex_lock(&srv->mu);
    enum MHD_Result ret = MHD_NO;
    if (j->cancel && !j->done) {
        // the client is gone: nothing to send; the worker drops the job
    } else if (!j->stream || j->status != 200) {
        char *body = j->buf;
        size_t len = j->len;
        j->buf = NULL, j->len = j->cap = 0;
        int st = j->status;
        pthread_mutex_unlock(&srv->mu);
        ret = send_buf(c, st, "application/json", body ? body : strdup("{}"), body ? len : 2, 1);
        pthread_mutex_lock(&srv->mu);
    } else {
        sse_ctx *s = malloc(sizeof *s);
        struct MHD_Response *r = s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, s, sse_free)
                                   : NULL;
        if (r) {
            *s = (sse_ctx){.srv = srv, .j = j};
            j->refs++;
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
            MHD_add_response_header(r, "Cache-Control", "no-store");
            MHD_add_response_header(r, "X-Accel-Buffering", "no");
            pthread_mutex_unlock(&srv->mu);
            ret = MHD_queue_response(c, 200, r);
            MHD_destroy_response(r);
            pthread_mutex_lock(&srv->mu);
        } else {
            free(s);
        }
    }
    srv_job_unref(srv, j);
    pthread_mutex_unlock(&srv->mu);
    return ret;
}

// ---- uploads ----

static int upload_write(srv_req *q, const char *data, size_t n) {
    if (q->too_big || !n) return 0;
    if (q->bytes + (int64_t)n > q->srv->o.max_upload) {
        q->too_big = 1;
        return 0;
    }
    while (n) {
        ssize_t w = write(q->fd, data, n);
        if (w <= 0) return -1;
        data += w, n -= (size_t)w, q->bytes += w;
    }
    return 0;
}

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *content_type, const char *transfer_encoding, const char *data,
                                 uint64_t off, size_t size) {
    (void)kind, (void)content_type, (void)transfer_encoding, (void)off;
    srv_req *q = cls;
    if (strcmp(key, "file")) return MHD_YES; // "purpose" and the like
    q->got_file = 1;
    if (filename && !q->filename[0]) snprintf(q->filename, sizeof q->filename, "%s", filename);
    return upload_write(q, data, size) ? MHD_NO : MHD_YES;
}

static enum MHD_Result finish_upload(dv_srv *srv, struct MHD_Connection *c, srv_req *q) {
    if (q->pp) MHD_destroy_post_processor(q->pp);
    q->pp = NULL;
    close(q->fd);
    q->fd = -1;
    if (q->too_big) {
        unlink(q->tmp);
        return SEND_ERR(c, 413, "upload_too_large", "the upload is larger than --max-upload (%lld bytes)",
                        (long long)srv->o.max_upload);
    }
    char *json = NULL, *err = NULL;
    const char *name = q->filename[0] ? q->filename : NULL;
    int st = srv_media_keep_upload(srv, q->tmp, name, q->bytes, &json, &err);
    q->tmp[0] = 0;
    return st ? send_json(c, st, err) : send_json(c, 200, json);
}

// ---- static answers ----

static enum MHD_Result send_models(dv_srv *srv, struct MHD_Connection *c) {
    cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "data"), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "object", "list");
    cJSON_AddStringToObject(m, "id", srv->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "duovid");
    cJSON_AddNumberToObject(m, "context_length", dv_llm_n_ctx(dv_vlm_llm(srv->s.vlm)));
    cJSON_AddItemToArray(a, m);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return send_json(c, 200, s);
}

static enum MHD_Result send_sheet(dv_srv *srv, struct MHD_Connection *c, const char *url) {
    const char *name = url + 11;
    // sheet-<16 hex>-<8 hex>.png, nothing else (no path can be named)
    if (strlen(name) != 35 || strncmp(name, "sheet-", 6) || strspn(name + 6, "0123456789abcdef") != 16 ||
        name[22] != '-' || strspn(name + 23, "0123456789abcdef") != 8 || strcmp(name + 31, ".png"))
        return SEND_ERR(c, 404, "not_found", "no such contact sheet");
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", srv->upload_dir, name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return SEND_ERR(c, 404, "not_found", "no such contact sheet");
    off_t size = lseek(fd, 0, SEEK_END);
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "image/png");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_health(dv_srv *srv, struct MHD_Connection *c) {
    pthread_mutex_lock(&srv->mu);
    int stopping = srv->stopping, ql = srv->q_len;
    pthread_mutex_unlock(&srv->mu);
    char buf[128];
    snprintf(buf, sizeof buf, "{\"status\":\"%s\",\"queue_length\":%d}", stopping ? "stopping" : "ok", ql);
    return send_json(c, stopping ? 503 : 200, strdup(buf));
}

// ---- the handler ----

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    dv_srv *srv = cls;
    srv_req *q = *con_cls;
    if (!q) { // the headers are in: refuse early what can be refused before the body
        q = calloc(1, sizeof *q);
        if (!q) return MHD_NO;
        q->srv = srv;
        q->fd = -1;
        pthread_mutex_lock(&srv->mu);
        srv->in_flight++;
        pthread_mutex_unlock(&srv->mu);
        q->r = route_of(url);
        *con_cls = q;
        const int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
        if (q->r == R_NONE) return SEND_ERR(c, 404, "not_found", "no route %.200s %.300s", method, url);
        if ((route_is_post(q->r) && !post) || (!route_is_post(q->r) && !get))
            return SEND_ERR(c, 405, "method_not_allowed", "%.20s is not allowed on %.300s", method, url);
        if (q->r != R_PAGE && q->r != R_HEALTH && !authorized(srv, c))
            return SEND_ERR(c, 401, "invalid_api_key", "a valid API key is required (Authorization: Bearer KEY)");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const int64_t limit = q->r == R_FILES ? srv->o.max_upload : srv->o.max_body;
        if (cl && strtoll(cl, NULL, 10) > limit)
            return SEND_ERR(c, 413, q->r == R_FILES ? "upload_too_large" : "body_too_large",
                            "the %s is larger than %s (%lld bytes)", q->r == R_FILES ? "upload" : "body",
                            q->r == R_FILES ? "--max-upload" : "--max-body", (long long)limit);
        if (q->r == R_FILES) {
            snprintf(q->tmp, sizeof q->tmp, "%s/upload-XXXXXX", srv->upload_dir);
            if ((q->fd = mkstemp(q->tmp)) < 0) {
                q->tmp[0] = 0;
                return SEND_ERR(c, 500, "internal_error", "cannot store the upload");
            }
            const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
            if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
                q->pp = MHD_create_post_processor(c, 64 * 1024, post_iter, q);
                if (!q->pp) return SEND_ERR(c, 400, "invalid_upload", "malformed multipart/form-data header");
            } else {
                const char *fn = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "filename");
                snprintf(q->filename, sizeof q->filename, "%s", fn ? fn : "upload");
                q->got_file = 1;
            }
        }
        return MHD_YES;
    }
    if (*upload_size) { // a piece of the body
        size_t n = *upload_size;
        *upload_size = 0;
        if (q->r == R_FILES) {
            if (q->pp ? MHD_post_process(q->pp, upload_data, n) != MHD_YES : upload_write(q, upload_data, n) != 0)
                q->too_big = q->too_big ? 1 : 2; // 2: malformed or unwritable
            return MHD_YES;
        }
        if (q->too_big || q->len + n > (size_t)srv->o.max_body) {
            q->too_big = 1; // read and dropped: the answer is 413
            return MHD_YES;
        }
        if (q->len + n + 1 > q->cap) {
            size_t cap = 2 * (q->len + n + 1);
            char *b = realloc(q->body, cap);
            if (!b) return MHD_NO;
            q->body = b, q->cap = cap;
        }
        memcpy(q->body + q->len, upload_data, n);
        q->len += n;
        q->body[q->len] = 0;
        return MHD_YES;
    }
    // the whole request is in
    switch (q->r) {
    case R_PAGE: return send_buf(c, 200, "text/html; charset=utf-8", (char *)dv_serve_page_html, dv_serve_page_html_len, 0);
    case R_HEALTH: return send_health(srv, c);
    case R_MODELS: return send_models(srv, c);
    case R_METRICS: {
        char *m = srv_metrics_text(srv);
        return m ? send_buf(c, 200, "text/plain; version=0.0.4", m, strlen(m), 1) : MHD_NO;
    }
    case R_MEDIA: return send_json(c, 200, srv_media_list(srv));
    case R_SHEET: return send_sheet(srv, c, url);
    case R_FILES:
        if (q->too_big == 2 || !q->got_file) {
            if (q->pp) MHD_destroy_post_processor(q->pp);
            q->pp = NULL;
            return SEND_ERR(c, 400, "invalid_upload", "the upload needs a 'file' part (multipart/form-data) or a raw body");
        }
        return finish_upload(srv, c, q);
    default: break;
    }
    if (q->too_big)
        return SEND_ERR(c, 413, "body_too_large", "the body is larger than --max-body (%lld bytes)",
                        (long long)srv->o.max_body);
    srv_job *j = NULL;
    char *err = NULL;
    int st = q->r == R_CHAT ? srv_chat_parse(srv, q->body ? q->body : "", q->len, &j, &err)
                            : srv_plan_parse(srv, q->body ? q->body : "", q->len, &j, &err);
    if (st) {
        pthread_mutex_lock(&srv->mu);
        srv->m_errors++;
        srv->m_requests += q->r == R_CHAT;
        pthread_mutex_unlock(&srv->mu);
        return send_json(c, st, err ? err : srv_error_json(st, "internal_error", NULL, "out of memory"));
    }
    return run_job(srv, c, j);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    srv_req *q = *con_cls;
    if (!q) return;
    if (q->pp) MHD_destroy_post_processor(q->pp);
    if (q->fd >= 0) close(q->fd);
    if (q->tmp[0]) unlink(q->tmp); // an upload that did not finish
    free(q->body);
    pthread_mutex_lock(&q->srv->mu);
    q->srv->in_flight--;
    pthread_mutex_unlock(&q->srv->mu);
    free(q);
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    if (!dv_log_enabled(DV_LOG_LEVEL_DEBUG)) return;
    fprintf(stderr, "duovid: http: ");
    vfprintf(stderr, fmt, ap);
}

int srv_http_start(dv_srv *srv, srv_http **out, int *port) {
    *out = NULL;
    srv_http *h = calloc(1, sizeof *h);
    if (!h) return dv_error_set(DV_ENOMEM, "out of memory");
    h->quiesced_fd = -1;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, srv->o.host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)srv->o.port);
    } else if (inet_pton(AF_INET6, srv->o.host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)srv->o.port);
        flags |= MHD_USE_IPv6;
    } else {
        free(h);
        return dv_error_set(DV_EINVAL, "--host: '%s' is not an IPv4 or IPv6 address", srv->o.host);
    }
    h->d = MHD_start_daemon(flags, (uint16_t)srv->o.port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, &ss,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->o.timeout, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)(4 * srv->o.queue + 32), MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                            MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return dv_error_set(DV_EIO, "cannot listen on %s port %d: %s", srv->o.host, srv->o.port, strerror(errno));
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : srv->o.port;
    *out = h;
    return 0;
}

void srv_http_quiesce(srv_http *h) {
    if (h && h->d && h->quiesced_fd < 0) h->quiesced_fd = MHD_quiesce_daemon(h->d);
}

void srv_http_drain(dv_srv *srv, double secs) {
    for (int i = 0; i < (int)(secs * 50); i++) {
        pthread_mutex_lock(&srv->mu);
        int n = srv->in_flight;
        pthread_mutex_unlock(&srv->mu);
        if (!n) return;
        usleep(20 * 1000);
    }
    DV_LOG_WARN("stopping with requests still in flight");
}

void srv_http_stop(srv_http *h) {
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    if (h->quiesced_fd >= 0) close(h->quiesced_fd);
    free(h);
}
