// cmd_summarize.c: `duovid summarize -m MODEL -o OUT.jsonl VIDEO...`: a batch job. One JSON line per
// video (summary, status, frames, tokens, timings) is appended to OUT.jsonl as soon as the video is
// done (flushed and fsync'ed), so a crash loses at most the video in progress. Resumable: videos
// already in OUT.jsonl are skipped (--retry-errors redoes failed ones); a half-written last line is cut
// off. A bad video becomes an error line and the batch goes on. --shard i/n splits a list over
// machines (video k goes to shard k mod n); --shard auto takes i/n from a Slurm job array and writes a
// per-shard file, and `summarize --merge` joins the shard files into one (every video once). The
// model is loaded once for the whole batch.
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/cli.h"
#include "apps/vlm_args.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"
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
               "      --shard auto         I/N from the Slurm job array (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN\n"
               "                           out of SLURM_ARRAY_TASK_COUNT); writes OUT's per-shard file\n"
               "                           NAME.shard-I-of-N.jsonl for OUT = NAME.jsonl (see --merge below)\n"
               "      --prompt TEXT        the instruction (default \"" DV_SUMMARY_PROMPT "\")\n"
               "      --retry-errors       redo videos whose line in OUT.jsonl is an error\n"
               "  -h, --help               this help\n\n"
               "usage: duovid summarize --merge OUT.jsonl [--list FILE] SHARD.jsonl...\n\n"
               "Merges per-shard outputs into OUT.jsonl (published atomically), one line per video: within a\n"
               "file the last line of a video counts (a resumed run); across files the same result twice is a\n"
               "duplicate (kept once, reported), an ok line beats error lines, and two different summaries of\n"
               "one video are a conflict (nothing is written, exit 1). With --list, every listed video must have\n"
               "a line and no other video may (the output follows the list's order).\n\n");
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
    int shard_i, shard_n, shard_auto, retry_errors;
} sum_opts;

// An integer environment variable: 0 (set, *out), 1 (unset), -1 (not an integer: message printed).
static int env_long(const char *name, long *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 1;
    char *end;
    errno = 0;
    *out = strtol(v, &end, 10);
    if (errno || *end || *out < 0 || *out > 100000000) {
        dv_app_usage_error("summarize", "--shard auto: %s='%s' is not a task number", name, v);
        return -1;
    }
    return 0;
}

// --shard auto: this Slurm array task's shard. Slurm sets ID, MIN, MAX, COUNT and STEP for every task
// of an array; shard = (ID - MIN) / STEP of COUNT, which needs the ids to be one range (0-99, 1-7:3),
// not a list like 1,3,7.
static int slurm_shard(int *shard_i, int *shard_n) {
    static const char *names[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"};
    long v[3], max = -1, step = 1;
    for (int k = 0; k < 3; k++) {
        int r = env_long(names[k], &v[k]);
        if (r < 0) return -1;
        if (r) {
            dv_app_usage_error("summarize", "--shard auto: %s is not set (not a Slurm array task: submit with sbatch "
                               "--array=0-N, or give --shard I/N)", names[k]);
            return -1;
        }
    }
    int r1 = env_long("SLURM_ARRAY_TASK_MAX", &max), r2 = env_long("SLURM_ARRAY_TASK_STEP", &step);
    if (r1 < 0 || r2 < 0) return -1;
    const long id = v[0], count = v[1], min = v[2];
    if (count < 1 || step < 1 || id < min || (id - min) % step || (id - min) / step >= count ||
        (!r1 && max != min + (count - 1) * step)) {
        dv_app_usage_error("summarize", "--shard auto: inconsistent Slurm array (task %ld of %ld, ids %ld-%ld step %ld): "
                           "the array must be one range such as --array=0-%ld", id, count, min, r1 ? -1 : max, step, count - 1);
        return -1;
    }
    *shard_i = (int)((id - min) / step);
    *shard_n = (int)count;
    return 0;
}

// OUT's per-shard name: NAME.jsonl -> NAME.shard-I-of-N.jsonl (I zero-padded to N's width, so the
// files sort in shard order); a name without an extension gets .shard-I-of-N appended.
static int shard_path(const char *out, int i, int n, char *buf, size_t cap) {
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : out)) dot = out + strlen(out);
    const int width = snprintf(NULL, 0, "%d", n);
    int len = snprintf(buf, cap, "%.*s.shard-%0*d-of-%d%s", (int)(dot - out), out, width, i, n, dot);
    return len < 0 || (size_t)len >= cap ? dv_error_set(DV_EINVAL, "%s: the path is too long", out) : 0;
}

static int own_opt(void *ctx, int code, const char *v) {
    sum_opts *o = ctx;
    char tail;
    switch (code) {
    case 'o': o->out_path = v; return 1;
    case 1: o->list_path = v; return 1;
    case 2:
        if (!strcmp(v, "auto")) {
            o->shard_auto = 1;
            return slurm_shard(&o->shard_i, &o->shard_n) ? -1 : 1;
        }
        o->shard_auto = 0;
        if (sscanf(v, "%d/%d%c", &o->shard_i, &o->shard_n, &tail) != 2 || o->shard_n < 1 || o->shard_i < 0 ||
            o->shard_i >= o->shard_n) {
            dv_app_usage_error("summarize", "--shard: '%s' is not I/N with 0 <= I < N (e.g. 0/4) or auto", v);
            return -1;
        }
        return 1;
    case 3: o->prompt = v; return 1;
    case 4: o->retry_errors = 1; return 1;
    default: return 0;
    }
}

static int merge_main(int argc, char **argv);

int dv_cmd_summarize(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--merge") || !strncmp(argv[1], "--merge=", 8))) return merge_main(argc, argv);
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
    char shard_out[4096];
    if (so.shard_auto) {
        if (shard_path(out_path, shard_i, shard_n, shard_out, sizeof shard_out)) {
            dv_app_error();
            return 1;
        }
        out_path = shard_out;
        DV_LOG_INFO("Slurm array task: shard %d/%d -> %s", shard_i, shard_n, out_path);
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

// ---- duovid summarize --merge OUT.jsonl [--list FILE] SHARD.jsonl... ----

typedef struct merge_rec {
    char *line;    // owned: the JSON line as read, without its newline (written out as it is)
    char *video;   // owned: its "video" (the path as summarize was given it)
    char *outcome; // owned: status, '\n', summary or error: what two runs of the video agree on
    int ok;        // status "ok"
    int listed;    // already placed in the --list order
    int file, lineno; // where it was read: index into the shard files, line number from 1
} merge_rec;

typedef struct merge_set {
    merge_rec *r; // (n) in reading order
    int n, cap;
    char *const *files; // (n_files) the shard files
} merge_set;

static void merge_free(merge_set *m) {
    for (int i = 0; i < m->n; i++) {
        free(m->r[i].line);
        free(m->r[i].video);
        free(m->r[i].outcome);
    }
    free(m->r);
}

static int merge_grow(merge_set *m) {
    int cap = m->cap ? 2 * m->cap : 256;
    merge_rec *r = realloc(m->r, (size_t)cap * sizeof *r);
    if (!r) return -1;
    m->r = r;
    m->cap = cap;
    return 0;
}

static int merge_read(merge_set *m, int file) {
    const char *path = m->files[file];
    FILE *f = fopen(path, "r");
    if (!f) return dv_error_set(DV_ENOTFOUND, "%s: cannot open (%s)", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int rc = 0, lineno = 0;
    for (ssize_t len; !rc && (len = getline(&line, &cap, f)) >= 0;) {
        lineno++;
        if (line[len - 1] != '\n') {
            rc = dv_error_set(DV_EFORMAT, "%s: the last line is incomplete (a shard still running or killed: rerun it)", path);
            break;
        }
        line[--len] = 0;
        cJSON *j = cJSON_Parse(line);
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "video"));
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "status"));
        const char *sum = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "summary"));
        const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
        if (!v || !st) {
            rc = dv_error_set(DV_EFORMAT, "%s:%d: not a duovid summary line (it needs \"video\" and \"status\")", path, lineno);
        } else if (m->n == m->cap && merge_grow(m)) {
            rc = dv_error_set(DV_ENOMEM, "out of memory");
        } else {
            merge_rec *r = &m->r[m->n];
            const char *detail = sum ? sum : err ? err : "";
            *r = (merge_rec){.line = strdup(line), .video = strdup(v), .outcome = malloc(strlen(st) + strlen(detail) + 2),
                             .ok = !strcmp(st, "ok"), .file = file, .lineno = lineno};
            m->n++;
            if (!r->line || !r->video || !r->outcome) rc = dv_error_set(DV_ENOMEM, "out of memory");
            else sprintf(r->outcome, "%s\n%s", st, detail);
        }
        cJSON_Delete(j);
    }
    if (!rc && ferror(f)) rc = dv_error_set(DV_EIO, "%s: read error", path);
    free(line);
    fclose(f);
    return rc;
}

static int rec_by_video(const void *a, const void *b) { // then by file, then by line: reading order
    const merge_rec *x = *(merge_rec *const *)a, *y = *(merge_rec *const *)b;
    int c = strcmp(x->video, y->video);
    return c ? c : x->file != y->file ? x->file - y->file : x->lineno - y->lineno;
}

static int rec_by_order(const void *a, const void *b) {
    const merge_rec *x = *(merge_rec *const *)a, *y = *(merge_rec *const *)b;
    return x->file != y->file ? x->file - y->file : x->lineno - y->lineno;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int rec_key_cmp(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(merge_rec *const *)elem)->video);
}

// Picks one record per video (the rules of the usage text) into keep (sorted by video); counts what
// it resolved. A conflict sets the error and returns < 0.
static int merge_pick(const merge_set *m, merge_rec **sorted, merge_rec **keep, int *n_keep, int *n_dup, int *n_replaced) {
    int n_conf = 0;
    const merge_rec *c1 = NULL, *c2 = NULL;
    *n_keep = *n_dup = *n_replaced = 0;
    for (int g = 0; g < m->n;) {
        int end = g;
        while (end < m->n && !strcmp(sorted[end]->video, sorted[g]->video)) end++;
        merge_rec *k = NULL;
        for (int i = g; i < end; i++) {
            if (i + 1 < end && sorted[i + 1]->file == sorted[i]->file) continue; // a later line of this file counts
            merge_rec *p = sorted[i];
            if (!k) k = p;
            else if (!strcmp(p->outcome, k->outcome) || (!p->ok && !k->ok)) {
                if ((*n_dup)++ < 3) DV_LOG_WARN("%s: in %s and %s (kept once)", p->video, m->files[k->file], m->files[p->file]);
            } else if (p->ok && k->ok) {
                if (!n_conf++) c1 = k, c2 = p;
            } else {
                if (p->ok) k = p;
                (*n_replaced)++;
            }
        }
        keep[(*n_keep)++] = k;
        g = end;
    }
    if (n_conf) {
        char more[64] = "";
        if (n_conf > 1) snprintf(more, sizeof more, " (and %d more videos)", n_conf - 1);
        return dv_error_set(DV_EFORMAT, "%s: two different summaries, %s:%d and %s:%d%s; nothing written", c1->video,
                            m->files[c1->file], c1->lineno, m->files[c2->file], c2->lineno, more);
    }
    return 0;
}

static int merge_main(int argc, char **argv) {
    const char *out_path = NULL, *list_path = NULL;
    static const struct option opts[] = {{"merge", required_argument, 0, 1}, {"list", required_argument, 0, 2},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        switch (c) {
        case 1: out_path = optarg; break;
        case 2: list_path = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("summarize", "%s needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("summarize", "--merge: unknown option '%s'", argv[optind - 1]); return 1;
        }
    }
    if (!out_path || !*out_path || optind == argc) {
        dv_app_usage_error("summarize", "--merge OUT.jsonl needs the shard files to merge");
        return 1;
    }
    merge_set m = {.files = argv + optind};
    strlist list = {0};
    merge_rec **sorted = NULL, **keep = NULL;
    dv_fs_atomic *a = NULL;
    int ret = 1, n_keep = 0, n_dup = 0, n_rep = 0, n_ok = 0, n_out = 0;
    if (list_path && read_list(list_path, &list)) goto fail;
    if (check_writable(out_path)) goto fail;
    for (int i = 0; i < argc - optind; i++)
        if (merge_read(&m, i)) goto fail;
    sorted = malloc((size_t)(m.n + 1) * sizeof *sorted);
    keep = malloc((size_t)(m.n + 1) * sizeof *keep);
    if (!sorted || !keep) {
        dv_error_set(DV_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < m.n; i++) sorted[i] = &m.r[i];
    qsort(sorted, (size_t)m.n, sizeof *sorted, rec_by_video);
    if (merge_pick(&m, sorted, keep, &n_keep, &n_dup, &n_rep)) goto fail;
    merge_rec **order = keep; // what is written, in order
    if (list.n) { // every listed video once, in the list's order; nothing else
        char **want = malloc((size_t)list.n * sizeof *want);
        order = want ? malloc((size_t)list.n * sizeof *order) : NULL;
        if (!order) {
            free(want);
            dv_error_set(DV_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(want, list.v, (size_t)list.n * sizeof *want);
        qsort(want, (size_t)list.n, sizeof *want, str_cmp);
        int n_missing = 0;
        const char *first_missing = NULL;
        for (int i = 0; i < list.n; i++) {
            merge_rec **r = bsearch(list.v[i], keep, (size_t)n_keep, sizeof *keep, rec_key_cmp);
            if (!r) {
                if (!n_missing++) first_missing = list.v[i];
            } else if (!(*r)->listed) { // a video listed twice is written once
                (*r)->listed = 1;
                order[n_out++] = *r;
            }
        }
        const merge_rec *extra = NULL;
        for (int i = 0; !extra && i < n_keep; i++)
            if (!bsearch(&keep[i]->video, want, (size_t)list.n, sizeof *want, str_cmp)) extra = keep[i];
        free(want);
        if (n_missing || extra) {
            free(order);
            if (n_missing)
                dv_error_set(DV_EFORMAT, "%s: %d listed videos have no line in the shard files (first: %s); nothing written",
                             list_path, n_missing, first_missing);
            else
                dv_error_set(DV_EFORMAT, "%s:%d: %s is not in %s; nothing written", m.files[extra->file], extra->lineno,
                             extra->video, list_path);
            goto fail;
        }
    } else {
        n_out = n_keep;
        qsort(keep, (size_t)n_keep, sizeof *keep, rec_by_order);
    }
    int rc = dv_fs_atomic_open(out_path, &a);
    FILE *f = rc ? NULL : dv_fs_atomic_file(a);
    for (int i = 0; f && i < n_out; i++) {
        fputs(order[i]->line, f);
        fputc('\n', f);
        n_ok += order[i]->ok;
    }
    if (order != keep) free(order);
    if (rc || (rc = dv_fs_atomic_commit(a))) goto fail;
    fprintf(stderr, "duovid: merged %d videos (%d ok, %d failed) from %d files (%d duplicates, %d error lines replaced) -> %s\n",
            n_out, n_ok, n_out - n_ok, argc - optind, n_dup, n_rep, out_path);
    ret = 0;
    goto done;
fail:
    dv_app_error();
done:
    merge_free(&m);
    strlist_free(&list);
    free(sorted);
    free(keep);
    return ret;
}
