// cmd_summarize.c: `duovid summarize -m MODEL -o OUT.jsonl VIDEO...`: a batch job. One JSON line per
// video (summary, status, frames, tokens, timings) is appended to OUT.jsonl as soon as the video is
// done (flushed and fsync'ed), so a crash loses at most the video in progress. Resumable: videos
// already in OUT.jsonl are skipped (--retry-errors redoes failed ones); a half-written last line is cut
// off. A bad video becomes an error line and the batch goes on. --shard i/n splits a list over
// machines (video k goes to shard k mod n). The model is loaded once for the whole batch.
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/cli.h"
#include "apps/vlm_args.h"

#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DV_SUMMARY_PROMPT "Describe what happens in this video in detail."

static void usage(FILE *f) {
    fprintf(f, "usage: duovid summarize -m MODEL_DIR -o OUT.jsonl [options] (VIDEO... | --list FILE)\n\n"
               "Summarizes many videos with one loaded model, appending one JSON line per video to OUT.jsonl:\n"
               "  {\"video\", \"status\": \"ok\", \"summary\", \"frames\", \"tokens\", \"timings_sec\", \"cache\"}\n"
               "  {\"video\", \"status\": \"error\", \"error\": \"one-line reason\"}\n"
               "Rerunning resumes: videos already in OUT.jsonl are skipped. Exit status 1 when any video failed.\n\n"
               "  -o, --out FILE           the JSON-lines output (appended to; created if missing)\n"
               "      --list FILE          read video paths from FILE, one per line ('#' comments, blank lines\n"
               "                           skipped; '-' = stdin), after any given as arguments\n"
               "      --shard I/N          process only videos k with k mod N == I (0 <= I < N), for N machines\n"
               "      --prompt TEXT        the instruction (default \"" DV_SUMMARY_PROMPT "\")\n"
               "      --retry-errors       redo videos whose line in OUT.jsonl is an error\n"
               "  -h, --help               this help\n");
    dv_vlm_cli_help(f);
}

static volatile sig_atomic_t dv_sum_stop;
static void on_sigint(int sig) {
    (void)sig;
    if (dv_sum_stop) _exit(130);
    dv_sum_stop = 1;
}

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static int strlist_add(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv) return dv_error_set(DV_ENOMEM, "out of memory");
        l->v = nv;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return dv_error_set(DV_ENOMEM, "out of memory");
    l->n++;
    return 0;
}

static int strlist_has(const strlist *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s)) return 1;
    return 0;
}

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static int read_list(const char *path, strlist *out) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return dv_error_set(DV_ENOTFOUND, "%s: cannot open the video list (%s)", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    for (ssize_t r; !rc && (r = getline(&line, &cap, f)) >= 0;) {
        while (r && (line[r - 1] == '\n' || line[r - 1] == '\r' || line[r - 1] == ' ' || line[r - 1] == '\t')) line[--r] = 0;
        const char *p = line + strspn(line, " \t");
        if (*p && *p != '#') rc = strlist_add(out, p);
    }
    if (!rc && ferror(f)) rc = dv_error_set(DV_EIO, "%s: read error", path);
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

// Reads OUT.jsonl: the videos done (ok lines; error lines too unless retrying). A last line without
// its newline was cut by a crash: the file is truncated to the last complete line.
static int read_done(const char *path, int retry_errors, strlist *done) {
    FILE *f = fopen(path, "r+");
    if (!f) return errno == ENOENT ? 0 : dv_error_set(DV_EIO, "%s: cannot open (%s)", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long good_end = 0;
    int rc = 0, n_bad = 0;
    for (ssize_t r; !rc && (r = getline(&line, &cap, f)) >= 0;) {
        if (line[r - 1] != '\n') break; // the torn last line
        good_end = ftell(f);
        cJSON *j = cJSON_Parse(line);
        const char *v = j ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "video")) : NULL;
        const char *st = j ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "status")) : NULL;
        if (!v || !st) n_bad++;
        else if (!strcmp(st, "ok") || !retry_errors) rc = strlist_add(done, v);
        cJSON_Delete(j);
    }
    free(line);
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    if (!rc && end != good_end) {
        DV_LOG_WARN("%s: the last line is incomplete (an interrupted run); dropping it", path);
        if (fflush(f) || ftruncate(fileno(f), good_end)) rc = dv_error_set(DV_EIO, "%s: cannot truncate (%s)", path, strerror(errno));
    }
    if (n_bad) DV_LOG_WARN("%s: %d lines are not duovid summary records; ignored", path, n_bad);
    fclose(f);
    return rc;
}

static int check_writable(const char *path) {
    if (access(path, F_OK) == 0)
        return access(path, W_OK) ? dv_error_set(DV_EIO, "%s: cannot write (%s)", path, strerror(errno)) : 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    struct stat sb;
    if (stat(dir, &sb) || !S_ISDIR(sb.st_mode)) return dv_error_set(DV_EIO, "%s: no such folder %s", path, dir);
    return access(dir, W_OK) ? dv_error_set(DV_EIO, "%s: cannot write in %s (%s)", path, dir, strerror(errno)) : 0;
}

static int write_line(FILE *out, const char *path, cJSON *j) {
    char *txt = cJSON_PrintUnformatted(j);
    if (!txt) return dv_error_set(DV_ENOMEM, "out of memory");
    int bad = fputs(txt, out) < 0 || fputc('\n', out) == EOF || fflush(out) != 0;
    free(txt);
    fsync(fileno(out)); // the line survives a crash of the machine, not only of duovid
    return bad ? dv_error_set(DV_EIO, "%s: write failed (%s)", path, strerror(errno)) : 0;
}

static cJSON *summarize_one(const dv_vlm_cli *c, dv_vlm_session *s, const char *video, const char *prompt) {
    const double t0 = dv_time_now();
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "video", video);
    int32_t *qids = NULL;
    int nq = 0;
    dv_vlm_video vc;
    dv_vlm_answer a;
    dv_vlm_gen g = {.sampler = c->sampler.params, .max_new = c->n_predict, .ignore_eos = c->sampler.ignore_eos};
    dv_app_cb cbs;
    dv_vlm_callbacks cb = dv_app_callbacks(&cbs, &dv_sum_stop, 0);
    int rc = dv_vlm_question_ids(s->vlm, prompt, 1, &qids, &nq);
    dv_vlm_video_opts vo = dv_vlm_cli_video_opts(c, nq + c->n_predict);
    if (rc || dv_vlm_load_video(s->vlm, video, &vo, &cb, &vc) || dv_vlm_ask(s->vlm, prompt, 1, &g, &cb, &a)) {
        free(qids);
        cJSON_AddStringToObject(j, "status", "error");
        cJSON_AddStringToObject(j, "error", dv_error_message());
        return j;
    }
    free(qids);
    cJSON_AddStringToObject(j, "status", a.stop == DV_VLM_STOP_INTERRUPT ? "interrupted" : "ok");
    cJSON_AddStringToObject(j, "summary", a.text);
    cJSON_AddStringToObject(j, "stop", dv_vlm_stop_name(a.stop));
    cJSON_AddNumberToObject(j, "duration_sec", vc.info.duration_sec);
    cJSON_AddNumberToObject(j, "frames", (double)vc.stats.frames);
    cJSON *tk = cJSON_AddObjectToObject(j, "tokens");
    cJSON_AddNumberToObject(tk, "video_context", (double)dv_vlm_video_tokens(s->vlm));
    cJSON_AddNumberToObject(tk, "prompt", a.n_prompt);
    cJSON_AddNumberToObject(tk, "summary", a.n_tokens);
    cJSON *tm = cJSON_AddObjectToObject(j, "timings_sec");
    cJSON_AddNumberToObject(tm, "decode", vc.stats.t_decode);
    cJSON_AddNumberToObject(tm, "encode", vc.stats.t_encode);
    cJSON_AddNumberToObject(tm, "prefill", vc.stats.t_prefill + a.t_prefill);
    cJSON_AddNumberToObject(tm, "generate", a.t_generate);
    cJSON_AddNumberToObject(tm, "total", dv_time_now() - t0);
    cJSON_AddStringToObject(j, "cache", !dv_vlm_cache_on(s->vlm) ? "off" : vc.cache_hit ? "hit" : "miss");
    return j;
}

typedef struct sum_opts {
    const char *out_path, *list_path, *prompt;
    int shard_i, shard_n, retry_errors;
} sum_opts;

static int own_opt(void *ctx, int code, const char *v) {
    sum_opts *o = ctx;
    char tail;
    switch (code) {
    case 'o': o->out_path = v; return 1;
    case 1: o->list_path = v; return 1;
    case 2:
        if (sscanf(v, "%d/%d%c", &o->shard_i, &o->shard_n, &tail) != 2 || o->shard_n < 1 || o->shard_i < 0 ||
            o->shard_i >= o->shard_n) {
            dv_app_usage_error("summarize", "--shard: '%s' is not I/N with 0 <= I < N (e.g. 0/4)", v);
            return -1;
        }
        return 1;
    case 3: o->prompt = v; return 1;
    case 4: o->retry_errors = 1; return 1;
    default: return 0;
    }
}

int dv_cmd_summarize(int argc, char **argv) {
    dv_vlm_cli c;
    dv_vlm_cli_init(&c);
    sum_opts so = {.prompt = DV_SUMMARY_PROMPT, .shard_n = 1};
    static const struct option opts[] = {{"out", required_argument, 0, 'o'}, {"list", required_argument, 0, 1},
                                         {"shard", required_argument, 0, 2},  {"prompt", required_argument, 0, 3},
                                         {"retry-errors", no_argument, 0, 4}, {0, 0, 0, 0}};
    int pr = dv_vlm_cli_getopt(&c, "summarize", argc, argv, opts, "o:", own_opt, &so, usage);
    if (pr) return pr < 0;
    const char *out_path = so.out_path, *list_path = so.list_path, *prompt = so.prompt;
    const int shard_i = so.shard_i, shard_n = so.shard_n, retry_errors = so.retry_errors;
    if (!out_path) {
        dv_app_usage_error("summarize", "-o OUT.jsonl is required");
        return 1;
    }
    if (!*prompt) {
        dv_app_usage_error("summarize", "--prompt is empty");
        return 1;
    }
    strlist all = {0}, done = {0};
    int ret = 1, n_ok = 0, n_err = 0, n_skip = 0, n_mine = 0;
    FILE *out = NULL;
    dv_vlm_session s;
    memset(&s, 0, sizeof s);
    for (int i = optind; i < argc; i++)
        if (strlist_add(&all, argv[i])) goto fail;
    if (list_path && read_list(list_path, &all)) goto fail;
    if (!all.n) {
        dv_app_usage_error("summarize", "no videos given (arguments or --list FILE)");
        goto done;
    }
    if (read_done(out_path, retry_errors, &done)) goto fail;
    // an unwritable output fails before the model loads; the file itself appears with its first line
    if (check_writable(out_path)) goto fail;
    if (dv_vlm_session_open(&c, &s)) goto done;
    signal(SIGINT, on_sigint);
    for (int k = 0; k < all.n; k++) {
        if (k % shard_n != shard_i) continue;
        n_mine++;
        if (strlist_has(&done, all.v[k])) {
            n_skip++;
            continue;
        }
        DV_LOG_INFO("[%d/%d] %s", k + 1, all.n, all.v[k]);
        cJSON *j = summarize_one(&c, &s, all.v[k], prompt);
        if (dv_sum_stop) { // Ctrl-C: nothing is written for the video in progress; a rerun resumes
            cJSON_Delete(j);
            fprintf(stderr, "duovid: interrupted; %d summarized this run, rerun the same command to resume\n", n_ok);
            goto done;
        }
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "status"));
        int ok = st && !strcmp(st, "ok");
        if (!ok) DV_LOG_WARN("%s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error")));
        if (!out && !(out = fopen(out_path, "a"))) {
            cJSON_Delete(j);
            dv_error_set(DV_EIO, "%s: cannot write (%s)", out_path, strerror(errno));
            goto fail;
        }
        int rc = write_line(out, out_path, j);
        cJSON_Delete(j);
        if (rc) goto fail;
        if (ok) n_ok++;
        else n_err++;
        strlist_add(&done, all.v[k]); // a path listed twice is summarized once
    }
    fprintf(stderr, "duovid: %d videos%s: %d summarized, %d failed, %d already done -> %s\n", n_mine,
            shard_n > 1 ? " in this shard" : "", n_ok, n_err, n_skip, out_path);
    ret = n_err ? 1 : 0;
    goto done;
fail:
    dv_app_error();
done:
    if (out) fclose(out);
    dv_vlm_session_close(&s);
    strlist_free(&all);
    strlist_free(&done);
    return ret;
}
