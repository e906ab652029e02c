// cmd_chat.c: `duovid chat -m MODEL -v VIDEO`: a multi-turn conversation about one video. The video
// context is built (or loaded from the context cache) once; every turn appends to the same KV cache,
// so follow-up questions cost only their own tokens. Reads one question per line from stdin (a
// terminal or a pipe); answers go to stdout, one per turn; prompts and notes go to stderr.
// Commands: /reset (forget the conversation, keep the video), /save FILE (the transcript as JSON),
// /info, /help, /quit. Ctrl-C stops the current answer, not the session; Ctrl-D or /quit ends it.
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
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: duovid chat -m MODEL_DIR -v VIDEO [options]\n\n"
               "Talks about a video over many turns, keeping the conversation in the KV cache. Type a question\n"
               "and press Enter (or pipe questions, one per line); answers go to stdout.\n\n"
               "commands in the chat:\n"
               "  /reset        forget the conversation, keep the video\n"
               "  /save FILE    write the conversation so far as JSON to FILE\n"
               "  /info         frames, tokens used and left, KV cache size\n"
               "  /help         these commands\n"
               "  /quit         leave (also Ctrl-D); Ctrl-C stops the current answer\n\n"
               "  -v, --video FILE         the video (any format FFmpeg reads)\n"
               "  -h, --help               this help\n");
    dv_vlm_cli_help(f);
}

static volatile sig_atomic_t dv_chat_stop;
static void on_sigint(int sig) {
    (void)sig;
    dv_chat_stop = 1;
}

typedef struct turn {
    char *q, *a;
} turn;

typedef struct chat {
    const dv_vlm_cli *c;
    dv_vlm_session *s;
    const char *video;
    turn *turns;
    int n_turns, cap_turns;
    int first; // the next question is the first after the video
    dv_vlm_callbacks cb;
} chat;

static void forget_turns(chat *ch) {
    for (int i = 0; i < ch->n_turns; i++) {
        free(ch->turns[i].q);
        free(ch->turns[i].a);
    }
    ch->n_turns = 0;
}

static int add_turn(chat *ch, const char *q, const char *a) {
    if (ch->n_turns == ch->cap_turns) {
        int cap = ch->cap_turns ? 2 * ch->cap_turns : 16;
        turn *nt = realloc(ch->turns, (size_t)cap * sizeof *nt);
        if (!nt) return dv_error_set(DV_ENOMEM, "out of memory");
        ch->turns = nt;
        ch->cap_turns = cap;
    }
    turn t = {strdup(q), strdup(a)};
    if (!t.q || !t.a) {
        free(t.q);
        free(t.a);
        return dv_error_set(DV_ENOMEM, "out of memory");
    }
    ch->turns[ch->n_turns++] = t;
    return 0;
}

// /save FILE: the transcript, written atomically (never a partial file).
static int save_transcript(chat *ch, const char *path) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", ch->c->model_dir);
    cJSON_AddStringToObject(j, "video", ch->video);
    int64_t n;
    dv_vlm_frame_times(ch->s->vlm, &n);
    cJSON_AddNumberToObject(j, "frames", (double)n);
    cJSON *ts = cJSON_AddArrayToObject(j, "turns");
    for (int i = 0; i < ch->n_turns; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "question", ch->turns[i].q);
        cJSON_AddStringToObject(t, "answer", ch->turns[i].a);
        cJSON_AddItemToArray(ts, t);
    }
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    if (!txt) return dv_error_set(DV_ENOMEM, "out of memory");
    int rc = dv_fs_write_atomic(path, txt, strlen(txt));
    free(txt);
    return rc;
}

static void print_info(chat *ch) {
    dv_llm *llm = dv_vlm_llm(ch->s->vlm);
    dv_kv_memory mem;
    dv_kv_cache_memory(dv_llm_kv_cache(llm), &mem);
    int64_t nf;
    dv_vlm_frame_times(ch->s->vlm, &nf);
    fprintf(stderr, "duovid: %s: %lld frames, video context %lld tokens, conversation %d turns / %lld tokens, %d of %d "
                    "tokens left; KV cache %.1f MiB (%d retrieval + %d streaming heads)\n",
            ch->video, (long long)nf, (long long)dv_vlm_video_tokens(ch->s->vlm), ch->n_turns,
            (long long)(dv_llm_n_past(llm) - dv_vlm_video_tokens(ch->s->vlm)), dv_llm_n_ctx(llm) - dv_llm_n_past(llm),
            dv_llm_n_ctx(llm), (double)mem.total_bytes / (1 << 20), mem.n_retrieval_heads, mem.n_streaming_heads);
}

// One input line: a command or a question. Returns 1 to quit, 0 to go on, <0 on a fatal error.
static int handle_line(chat *ch, char *line) {
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = 0;
    char *q = line + strspn(line, " \t");
    if (!*q) return 0;
    if (*q == '/') {
        char *arg = q + strcspn(q, " \t");
        if (*arg) *arg++ = 0;
        arg += strspn(arg, " \t");
        if (!strcmp(q, "/quit") || !strcmp(q, "/exit")) return 1;
        if (!strcmp(q, "/help")) {
            fprintf(stderr, "commands: /reset, /save FILE, /info, /help, /quit (Ctrl-C stops an answer)\n");
        } else if (!strcmp(q, "/info")) {
            print_info(ch);
        } else if (!strcmp(q, "/reset")) {
            if (dv_vlm_reset_conversation(ch->s->vlm)) return -1;
            forget_turns(ch);
            ch->first = 1;
            fprintf(stderr, "duovid: conversation cleared (the video stays in context)\n");
        } else if (!strcmp(q, "/save")) {
            if (!*arg) fprintf(stderr, "duovid: /save needs a file name\n");
            else if (save_transcript(ch, arg)) dv_app_error();
            else fprintf(stderr, "duovid: saved %d turns to %s\n", ch->n_turns, arg);
        } else {
            fprintf(stderr, "duovid: unknown command '%s' (/help lists them)\n", q);
        }
        return 0;
    }
    dv_vlm_gen g = {.sampler = ch->c->sampler.params, .max_new = ch->c->n_predict, .ignore_eos = ch->c->sampler.ignore_eos};
    dv_vlm_answer a;
    dv_chat_stop = 0;
    int rc = dv_vlm_ask(ch->s->vlm, q, ch->first, &g, &ch->cb, &a);
    if (rc == DV_EINVAL) { // context full: the session goes on, the user can /reset
        dv_app_error();
        return 0;
    }
    if (rc) return rc;
    fputc('\n', stdout);
    fflush(stdout);
    ch->first = 0;
    if (a.stop == DV_VLM_STOP_INTERRUPT) fprintf(stderr, "duovid: (answer stopped)\n");
    if (a.stop == DV_VLM_STOP_CONTEXT) fprintf(stderr, "duovid: the context is full: /reset to go on\n");
    DV_LOG_DEBUG("answer: %d tokens, first after %.2f s, %.1f tok/s", a.n_tokens, a.ttft,
                 a.t_generate > 0 ? a.n_tokens / a.t_generate : 0);
    return add_turn(ch, q, a.text);
}

static int own_opt(void *ctx, int code, const char *v) {
    if (code != 'v') return 0;
    *(const char **)ctx = v;
    return 1;
}

int dv_cmd_chat(int argc, char **argv) {
    dv_vlm_cli c;
    dv_vlm_cli_init(&c);
    const char *video = NULL;
    static const struct option opts[] = {{"video", required_argument, 0, 'v'}, {0, 0, 0, 0}};
    int pr = dv_vlm_cli_getopt(&c, "chat", argc, argv, opts, "v:", own_opt, &video, usage);
    if (pr) return pr < 0;
    if (!video) {
        dv_app_usage_error("chat", "-v VIDEO is required");
        return 1;
    }
    if (optind < argc) {
        dv_app_usage_error("chat", "unexpected argument '%s' (questions are read from stdin)", argv[optind]);
        return 1;
    }
    dv_vlm_session s;
    if (dv_vlm_session_open(&c, &s)) return 1;
    int ret = 1;
    dv_app_cb cbs;
    chat ch = {.c = &c, .s = &s, .video = video, .first = 1, .cb = dv_app_callbacks(&cbs, &dv_chat_stop, 1)};
    char *line = NULL;
    size_t cap = 0;
    // Ctrl-C: without SA_RESTART a blocked read returns EINTR, so the prompt comes back
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    dv_vlm_video vc;
    // room for a few turns: a budget that leaves a quarter of the context (at least 2 answers) free
    const int64_t n_ctx = dv_llm_n_ctx(dv_vlm_llm(s.vlm));
    int64_t reserve = n_ctx / 4 > 2 * (int64_t)c.n_predict ? n_ctx / 4 : 2 * (int64_t)c.n_predict;
    if (reserve > n_ctx / 2) reserve = n_ctx / 2;
    dv_vlm_video_opts vo = dv_vlm_cli_video_opts(&c, reserve);
    if (dv_vlm_load_video(s.vlm, video, &vo, &ch.cb, &vc)) goto fail;
    dv_vlm_cli_report_xfer(&c, &s, &vc);
    if (dv_vlm_take_snapshot(s.vlm)) goto fail;
    const int tty = isatty(STDIN_FILENO);
    fprintf(stderr, "duovid: %lld frames in context (%lld tokens). Ask about the video; /help for commands.\n",
            (long long)vc.stats.frames, (long long)dv_vlm_video_tokens(s.vlm));
    for (;;) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        dv_chat_stop = 0;
        errno = 0;
        ssize_t r = getline(&line, &cap, stdin);
        if (r < 0) {
            if (errno == EINTR || dv_chat_stop) { // Ctrl-C at the prompt
                clearerr(stdin);
                fputs("\n(type /quit or press Ctrl-D to leave)\n", stderr);
                continue;
            }
            break; // end of input
        }
        int h = handle_line(&ch, line);
        if (h < 0) goto fail;
        if (h == 1) break;
    }
    if (tty) fputc('\n', stderr);
    ret = 0;
    goto done;
fail:
    dv_app_error();
done:
    forget_turns(&ch);
    free(ch.turns);
    free(line);
    dv_vlm_session_close(&s);
    return ret;
}
