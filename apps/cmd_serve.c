// cmd_serve.c: `duovid serve -m MODEL`: an OpenAI-compatible video chat server (POST
// /v1/chat/completions with video_url parts, streamed with progress events; /v1/models, /v1/files,
// /health, /metrics) and a browser page at /. One model per process, loaded at start; requests queue
// (bounded) and run one at a time (serve_worker.c). SIGTERM or SIGINT: stop accepting, refuse what
// waits, finish the running request, exit 0.
#include "apps/args.h"
#include "apps/cli.h"
#include "apps/serve.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "core/dv_log.h"

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: duovid serve -m MODEL_DIR [options]\n\n"
               "Serves the model over HTTP: an OpenAI-compatible API (POST /v1/chat/completions with video_url\n"
               "content parts, `stream: true` as server-sent events with progress before the first token;\n"
               "GET /v1/models, POST /v1/files, GET /v1/media, POST /v1/videos/plan, GET /health, GET /metrics)\n"
               "and a chat page at /. Requests run one at a time; conversations keep their KV cache between\n"
               "turns; video contexts come from the context cache when built before. Stops on SIGTERM.\n\n"
               "server:\n"
               "      --host ADDR          bind address (default 127.0.0.1: this machine only)\n"
               "      --port N             TCP port (default 8080; 0: any free port, printed on stderr)\n"
               "      --media-path DIR     file:// video URLs must lie inside DIR (default: none allowed)\n"
               "      --api-key KEY        require `Authorization: Bearer KEY` (default: $DUOVID_API_KEY, else none)\n"
               "      --queue N            requests waiting at most; more get 503 + Retry-After (default 16)\n"
               "      --conversations N    conversations kept in memory, least recently used dropped (default 8)\n"
               "      --max-body BYTES     request body limit (default 64 MiB; data: URLs count)\n"
               "      --max-upload BYTES   upload limit of POST /v1/files (default 2 GiB)\n"
               "      --upload-dir DIR     where uploads and contact sheets go (default: a temporary folder,\n"
               "                           removed at exit)\n"
               "      --timeout SEC        idle connection timeout (default 60)\n"
               "      --request-timeout SEC  a request running longer is cancelled, with a 504 (default 600; fractions allowed)\n"
               "      --model-id NAME      the model's name in the API (default: the folder's name)\n"
               "  -h, --help               this help\n"
               "The frame, budget and answer options below are the defaults; requests override them per call\n"
               "(fps, frames, max_frames, start, end, max_tokens_context, max_tokens, temperature, ...).\n\n");
    dv_vlm_cli_help(f);
}

enum { O_HOST = 1, O_PORT, O_MEDIA, O_KEY, O_QUEUE, O_CONVS, O_BODY, O_UPLOAD, O_UPDIR, O_TIMEOUT, O_RTIMEOUT,
       O_MODEL_ID };

static int own_opt(void *ctx, int code, const char *v) {
    dv_srv_opts *o = ctx;
    int bad = 0, x;
    int64_t y;
    switch (code) {
    case O_HOST: o->host = v; break;
    case O_PORT: bad = dv_arg_int("--port", v, 0, 65535, &o->port); break;
    case O_MEDIA: o->media_path = v; break;
    case O_KEY: o->api_key = v; break;
    case O_QUEUE: bad = dv_arg_int("--queue", v, 1, 4096, &o->queue); break;
    case O_CONVS: bad = dv_arg_int("--conversations", v, 1, 4096, &o->conversations); break;
    case O_BODY: bad = dv_arg_i64("--max-body", v, 1024, (int64_t)1 << 40, &y); o->max_body = y; break;
    case O_UPLOAD: bad = dv_arg_i64("--max-upload", v, 1024, (int64_t)1 << 50, &y); o->max_upload = y; break;
    case O_UPDIR: o->upload_dir = v; break;
    case O_TIMEOUT: bad = dv_arg_int("--timeout", v, 1, 86400, &x); o->timeout = x; break;
    case O_RTIMEOUT: bad = dv_arg_double("--request-timeout", v, 0.001, 7 * 86400, &o->request_timeout); break;
    case O_MODEL_ID: o->model_id = v; break;
    default: return 0;
    }
    return bad ? -1 : 1;
}

// Removes the temporary upload folder and what is in it (flat: the server writes no subfolders).
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int dv_cmd_serve(int argc, char **argv) {
    static dv_srv srv; // one server per process
    memset(&srv, 0, sizeof srv);
    dv_vlm_cli_init(&srv.cli);
    dv_srv_opts *o = &srv.o;
    *o = (dv_srv_opts){.host = "127.0.0.1", .port = 8080, .queue = 16, .conversations = 8, .timeout = 60,
                       .request_timeout = 600, .max_body = (int64_t)64 << 20, .max_upload = (int64_t)2 << 30,
                       .api_key = getenv("DUOVID_API_KEY")};
    if (o->api_key && !*o->api_key) o->api_key = NULL;
    static const struct option opts[] = {
        {"host", required_argument, 0, O_HOST}, {"port", required_argument, 0, O_PORT},
        {"media-path", required_argument, 0, O_MEDIA}, {"api-key", required_argument, 0, O_KEY},
        {"queue", required_argument, 0, O_QUEUE}, {"conversations", required_argument, 0, O_CONVS},
        {"max-body", required_argument, 0, O_BODY}, {"max-upload", required_argument, 0, O_UPLOAD},
        {"upload-dir", required_argument, 0, O_UPDIR}, {"timeout", required_argument, 0, O_TIMEOUT},
        {"request-timeout", required_argument, 0, O_RTIMEOUT}, {"model-id", required_argument, 0, O_MODEL_ID},
        {0, 0, 0, 0}};
    int pr = dv_vlm_cli_getopt(&srv.cli, "serve", argc, argv, opts, "", own_opt, o, usage);
    if (pr) return pr < 0;
    if (optind != argc) {
        dv_app_usage_error("serve", "unexpected argument '%s'", argv[optind]);
        return 1;
    }
    if (o->api_key && !*o->api_key) {
        dv_app_usage_error("serve", "--api-key is empty");
        return 1;
    }
    if (o->media_path) {
        struct stat st;
        if (!realpath(o->media_path, srv.media_real) || stat(srv.media_real, &st) || !S_ISDIR(st.st_mode)) {
            dv_app_usage_error("serve", "--media-path: %s: not a folder", o->media_path);
            return 1;
        }
    }
    if (o->upload_dir) {
        if (dv_fs_mkdirs(o->upload_dir) || !realpath(o->upload_dir, srv.upload_dir)) {
            dv_app_usage_error("serve", "--upload-dir: %s: cannot create the folder", o->upload_dir);
            return 1;
        }
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(srv.upload_dir, sizeof srv.upload_dir, "%s/duovid-serve-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(srv.upload_dir)) {
            dv_app_usage_error("serve", "cannot create a temporary folder under %s", t && *t ? t : "/tmp");
            return 1;
        }
        srv.own_upload_dir = 1;
    }
    const char *base = strrchr(srv.cli.model_dir, '/');
    snprintf(srv.model_id, sizeof srv.model_id, "%s", o->model_id ? o->model_id : base && base[1] ? base + 1 : srv.cli.model_dir);
    for (size_t n = strlen(srv.model_id); n > 1 && srv.model_id[n - 1] == '/'; n--) srv.model_id[n - 1] = 0;

    // the signals are taken by sigwait below: every thread started from here on has them blocked
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int ret = 1, port = 0, worker = 0;
    srv_http *http = NULL;
    pthread_mutex_init(&srv.mu, NULL);
    pthread_cond_init(&srv.work, NULL);
    if (dv_vlm_session_open(&srv.cli, &srv.s)) goto done;
    if (srv_worker_start(&srv)) goto fail;
    worker = 1;
    if (srv_http_start(&srv, &http, &port)) goto fail;
    DV_LOG_INFO("serving %s as '%s' on http://%s%s%s:%d/ (queue %d, %d conversations, media %s, API key %s)",
                srv.cli.model_dir, srv.model_id, strchr(o->host, ':') ? "[" : "", o->host, strchr(o->host, ':') ? "]" : "",
                port, o->queue, o->conversations, srv.media_real[0] ? srv.media_real : "none", o->api_key ? "on" : "off");
    fprintf(stderr, "duovid: listening on %s port %d\n", o->host, port);
    int sig = 0;
    sigwait(&sigs, &sig);
    DV_LOG_INFO("%s: stopping (finishing the running request)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_http_quiesce(http);
    ret = 0;
    goto done;
fail:
    dv_app_error();
done:
    if (worker) srv_worker_stop(&srv); // the running job ends, what waits gets 503
    if (http) srv_http_drain(&srv, 30);  // and their answers go out before the connections close
    srv_http_stop(http);
    dv_vlm_session_close(&srv.s);
    pthread_cond_destroy(&srv.work);
    pthread_mutex_destroy(&srv.mu);
    if (srv.own_upload_dir) remove_dir(srv.upload_dir);
    if (!ret) fprintf(stderr, "duovid: stopped\n");
    return ret;
}
