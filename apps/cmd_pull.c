// cmd_pull.c: `duovid pull REPO_ID`: download the files of a Hugging Face model repository that duovid
// reads (configs, safetensors weights, tokenizer, processor configs) into a model folder, resumably.
#include "apps/args.h"
#include "apps/cli.h"
#include "hub/dv_hub.h"

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

#define PULL_MAX_INCLUDE 32

static volatile sig_atomic_t pull_interrupted;

static void on_signal(int sig) {
    (void)sig;
    pull_interrupted = 1;
}

static int pull_cancel(void *user) {
    (void)user;
    return pull_interrupted;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: duovid pull REPO_ID [-o DIR] [options]\n\n"
            "Downloads the files duovid reads from a Hugging Face model repository (ORG/NAME): config.json,\n"
            "generation_config.json, the safetensors weights (exactly the shards model.safetensors.index.json\n"
            "names, when there is one), tokenizer.model / tokenizer.json and their configs, and the\n"
            "processor and chat-template files. PyTorch .bin/.pt, ONNX, GGUF and other files are skipped.\n"
            "Each file is written to FILE.part first and renamed when its size and sha256 check out; an\n"
            "interrupted pull (Ctrl-C, a dropped connection) resumes where it stopped when run again, and\n"
            "files already complete are kept. Progress on stderr; nothing on stdout unless --json/--dry-run.\n\n"
            "  -o, --output DIR      model folder to fill (created; default ./NAME, NAME from ORG/NAME)\n"
            "  --revision REV        branch, tag or commit (default main)\n"
            "  --endpoint URL        Hub address (default $HF_ENDPOINT, else https://huggingface.co)\n"
            "  --token TOKEN         access token for gated/private repositories (default $HF_TOKEN);\n"
            "                        sent as Authorization: Bearer, never printed (prefer $HF_TOKEN:\n"
            "                        a flag shows in ps)\n"
            "  --include GLOB        also fetch files matching GLOB (fnmatch, whole path; repeatable)\n"
            "  --dry-run             print what would be fetched, with sizes, and download nothing\n"
            "  --retries N           retries of a failed transfer (network errors, HTTP 5xx), with backoff\n"
            "                        1, 2, 4 ... 30 s (default 5)\n"
            "  --json                print one JSON object on stdout: files, bytes, seconds\n"
            "  -h, --help            this help\n\n"
            "example: duovid pull llava-hf/LLaVA-NeXT-Video-7B-hf -o models/llava-next-video-7b\n");
}

// "ORG/NAME" or a legacy "NAME": letters, digits, '-', '_', '.'; no "..", no leading/trailing punctuation.
static int repo_id_ok(const char *id) {
    int slashes = 0;
    size_t n = strlen(id);
    if (!n || n > 96 || strstr(id, "..") || strstr(id, "--")) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (c == '/') {
            if (++slashes > 1 || i == 0 || i == n - 1) return 0;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                     c == '_' || c == '.')) {
            return 0;
        }
    }
    return id[0] != '.' && id[0] != '-' && id[n - 1] != '.' && id[n - 1] != '-';
}

// Weights and configs last, small files first: a pull stopped early still has a usable config.
static int weight_last(const void *a, const void *b) {
    const dv_hub_file *x = a, *y = b;
    size_t lx = strlen(x->name), ly = strlen(y->name);
    int wx = lx > 12 && !strcmp(x->name + lx - 12, ".safetensors");
    int wy = ly > 12 && !strcmp(y->name + ly - 12, ".safetensors");
    return wx != wy ? wx - wy : strcmp(x->name, y->name);
}

static int is_other_weights(const char *name) {
    static const char *const ext[] = {".bin", ".pt", ".pth", ".onnx", ".onnx_data", ".gguf", ".h5", ".msgpack",
                                      ".ckpt", ".tflite", ".ot", ".mlmodel"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t k = strlen(ext[i]);
        if (n > k && !strcmp(name + n - k, ext[i])) return 1;
    }
    return 0;
}

typedef struct pull_opts {
    const char *repo, *out, *token;
    const char *include[PULL_MAX_INCLUDE];
    int n_include, dry_run, json;
    dv_hub_params hp;
} pull_opts;

// Returns 0 to go on, 1 after --help (exit 0), -1 after a usage error.
static int parse(int argc, char **argv, pull_opts *o) {
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},  {"revision", required_argument, 0, 1},
        {"endpoint", required_argument, 0, 2},  {"token", required_argument, 0, 3},
        {"include", required_argument, 0, 4},   {"dry-run", no_argument, 0, 5},
        {"json", no_argument, 0, 6},            {"retries", required_argument, 0, 7},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'o': o->out = optarg; break;
        case 1: o->hp.revision = optarg; break;
        case 2: o->hp.endpoint = optarg; break;
        case 3: o->token = optarg; break;
        case 4:
            if (o->n_include == PULL_MAX_INCLUDE) {
                dv_app_usage_error("pull", "--include: at most %d patterns", PULL_MAX_INCLUDE);
                return -1;
            }
            o->include[o->n_include++] = optarg;
            break;
        case 5: o->dry_run = 1; break;
        case 6: o->json = 1; break;
        case 7:
            if (dv_arg_int("--retries", optarg, 0, 20, &o->hp.max_retries)) return -1;
            break;
        case 'h': usage(stdout); return 1;
        case ':': dv_app_usage_error("pull", "%s needs a value", argv[optind - 1]); return -1;
        default: dv_app_usage_error("pull", "unknown option '%s'", argv[optind - 1]); return -1;
        }
    }
    if (optind != argc - 1) {
        dv_app_usage_error("pull", optind == argc ? "REPO_ID is required" : "one REPO_ID only");
        return -1;
    }
    o->repo = argv[optind];
    if (!repo_id_ok(o->repo)) {
        dv_app_usage_error("pull", "'%s' is not a model repository id (ORG/NAME)", o->repo);
        return -1;
    }
    if (!*o->hp.revision || strstr(o->hp.revision, "..")) {
        dv_app_usage_error("pull", "--revision: '%s' is not a branch, tag or commit", o->hp.revision);
        return -1;
    }
    if (strncmp(o->hp.endpoint, "http://", 7) && strncmp(o->hp.endpoint, "https://", 8)) {
        dv_app_usage_error("pull", "--endpoint: '%s' is not an http:// or https:// URL", o->hp.endpoint);
        return -1;
    }
    if (!o->out) {
        const char *slash = strrchr(o->repo, '/');
        o->out = slash ? slash + 1 : o->repo;
    }
    if (!*o->out) {
        dv_app_usage_error("pull", "-o: an empty folder name");
        return -1;
    }
    return 0;
}

static void print_dry_run(const pull_opts *o, const dv_hub_file *f, const unsigned char *pick, int n) {
    int64_t total = 0;
    int k = 0;
    char b[32];
    for (int i = 0; i < n; i++) {
        if (!pick[i]) continue;
        if (f[i].size >= 0) dv_format_bytes(b, sizeof b, (double)f[i].size);
        else snprintf(b, sizeof b, "?");
        if (!o->json) printf("%10s  %s\n", b, f[i].name);
        total += f[i].size > 0 ? f[i].size : 0;
        k++;
    }
    dv_format_bytes(b, sizeof b, (double)total);
    if (!o->json) printf("%10s  total, %d files from %s@%s into %s (dry run: nothing downloaded)\n", b, k,
                         o->repo, o->hp.revision, o->out);
}

static int print_json(const pull_opts *o, const dv_hub_file *f, const unsigned char *pick, int n,
                      const enum dv_hub_outcome *outcome, int64_t fetched, double seconds) {
    static const char *const status[] = {"downloaded", "resumed", "present"};
    cJSON *root = cJSON_CreateObject(), *files = NULL;
    int64_t total = 0;
    if (!root) return -1;
    cJSON_AddStringToObject(root, "repo", o->repo);
    cJSON_AddStringToObject(root, "revision", o->hp.revision);
    cJSON_AddStringToObject(root, "dir", o->out);
    cJSON_AddBoolToObject(root, "dry_run", o->dry_run);
    files = cJSON_AddArrayToObject(root, "files");
    for (int i = 0; files && i < n; i++) {
        if (!pick[i]) continue;
        cJSON *e = cJSON_CreateObject();
        if (!e) break;
        cJSON_AddStringToObject(e, "name", f[i].name);
        cJSON_AddNumberToObject(e, "size", (double)f[i].size);
        if (f[i].sha256[0]) cJSON_AddStringToObject(e, "sha256", f[i].sha256);
        cJSON_AddStringToObject(e, "status", o->dry_run ? "planned" : status[outcome[i]]);
        cJSON_AddItemToArray(files, e);
        total += f[i].size > 0 ? f[i].size : 0;
    }
    cJSON_AddNumberToObject(root, "bytes", (double)total);
    cJSON_AddNumberToObject(root, "bytes_downloaded", (double)fetched);
    cJSON_AddNumberToObject(root, "seconds", seconds);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) return -1;
    printf("%s\n", s);
    cJSON_free(s);
    return 0;
}

// Lists the repository and marks the files to fetch in *pick.
static int plan(dv_hub *h, const pull_opts *o, dv_hub_file **files, int *n, unsigned char **pick) {
    int e = dv_hub_list(h, files, n);
    if (e) return e;
    qsort(*files, (size_t)*n, sizeof **files, weight_last);
    if (!(*pick = calloc((size_t)*n + 1, 1))) return dv_error_set(DV_ENOMEM, "pull: out of memory");
    char *index = NULL;
    size_t len = 0;
    for (int i = 0; i < *n; i++)
        if (!strcmp((*files)[i].name, "model.safetensors.index.json") &&
            (e = dv_hub_get(h, "model.safetensors.index.json", 64u << 20, &index, &len)))
            return e;
    e = dv_hub_select(*files, *n, index, o->include, o->n_include, *pick);
    free(index);
    // Name the weights left out (a few), so nobody wonders where pytorch_model.bin went.
    int skipped = 0;
    char names[256] = "";
    for (int i = 0; i < *n; i++) {
        if ((*pick)[i] || !is_other_weights((*files)[i].name)) continue;
        size_t l = strlen(names);
        if (skipped < 3) snprintf(names + l, sizeof names - l, "%s%s", skipped ? ", " : "", (*files)[i].name);
        else if (skipped == 3) snprintf(names + l, sizeof names - l, ", ...");
        skipped++;
    }
    if (skipped)
        DV_LOG_INFO("%s: skipping %d weight file(s) in other formats (%s): duovid reads only safetensors", o->repo,
                    skipped, names);
    if (e) return dv_error_prefix(e, "%s", o->repo);
    return 0;
}

int dv_cmd_pull(int argc, char **argv) {
    pull_opts o = {.hp = dv_hub_default_params()};
    const char *env = getenv("HF_ENDPOINT");
    if (env && *env) o.hp.endpoint = env;
    int r = parse(argc, argv, &o);
    if (r) return r > 0 ? 0 : 1;
    if (!o.token) o.token = getenv("HF_TOKEN");
    o.hp.token = o.token;
    o.hp.cancel = pull_cancel;
    pull_interrupted = 0;

    int ret = 1, n = 0, e = 0, made_dir = 0;
    dv_hub *h = NULL;
    dv_hub_file *files = NULL;
    unsigned char *pick = NULL;
    enum dv_hub_outcome *outcome = NULL;
    int64_t fetched = 0, total = 0, done_bytes = 0;
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    double t0 = dv_time_now();

    if ((e = dv_hub_open(o.repo, &o.hp, &h)) || (e = plan(h, &o, &files, &n, &pick))) goto fail;
    if (!(outcome = calloc((size_t)n + 1, sizeof *outcome))) {
        e = dv_error_set(DV_ENOMEM, "pull: out of memory");
        goto fail;
    }
    int n_pick = 0;
    for (int i = 0; i < n; i++)
        if (pick[i]) n_pick++, total += files[i].size > 0 ? files[i].size : 0;
    if (o.dry_run) {
        print_dry_run(&o, files, pick, n);
        ret = o.json ? (print_json(&o, files, pick, n, outcome, 0, dv_time_now() - t0) ? 1 : 0) : 0;
        goto done;
    }
    struct stat sb;
    made_dir = stat(o.out, &sb) != 0;
    if ((e = dv_fs_mkdirs(o.out))) goto fail;
    char tb[32];
    dv_format_bytes(tb, sizeof tb, (double)total);
    DV_LOG_INFO("pulling %s@%s into %s: %d files, %s", o.repo, o.hp.revision, o.out, n_pick, tb);
    for (int i = 0, k = 0; i < n; i++) {
        if (!pick[i]) continue;
        char label[96];
        snprintf(label, sizeof label, "(%d/%d) %s", ++k, n_pick, files[i].name);
        int64_t got = 0;
        double tf = dv_time_now();
        e = dv_hub_download(h, &files[i], o.out, label, &outcome[i], &got);
        fetched += got;
        if (e) goto fail;
        done_bytes += files[i].size > 0 ? files[i].size : 0;
        if (outcome[i] == DV_HUB_PRESENT) DV_LOG_DEBUG("%s: already complete", files[i].name);
        double now = dv_time_now();
        if (now - tf >= 0.5 && k < n_pick && total > 0) {  // overall progress after each slow file
            double rate = (double)fetched / (now - t0);
            char d[32], r8[32];
            dv_format_bytes(d, sizeof d, (double)done_bytes);
            dv_format_bytes(r8, sizeof r8, rate);
            DV_LOG_INFO("overall: %s of %s (%.0f%%), %s/s, ETA %.0f s", d, tb, 100.0 * (double)done_bytes / (double)total,
                        r8, rate > 0 ? (double)(total - done_bytes) / rate : 0.0);
        }
    }
    double secs = dv_time_now() - t0;
    int present = 0;
    for (int i = 0; i < n; i++) present += pick[i] && outcome[i] == DV_HUB_PRESENT;
    char fb[32], rb[32];
    dv_format_bytes(fb, sizeof fb, (double)fetched);
    dv_format_bytes(rb, sizeof rb, secs > 0 ? (double)fetched / secs : 0);
    DV_LOG_INFO("pulled %s into %s: %d files (%d already complete), %s downloaded in %.1f s (%s/s)", o.repo, o.out,
                n_pick, present, fb, secs, rb);
    ret = o.json ? (print_json(&o, files, pick, n, outcome, fetched, secs) ? 1 : 0) : 0;
    goto done;
fail:
    if (e == DV_EINTR)
        fprintf(stderr, "duovid: error: %s: interrupted; run the same command again to resume\n", o.repo);
    else
        dv_app_error();
    if (made_dir) rmdir(o.out);  // only when empty: .part files to resume keep it
done:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(outcome);
    free(pick);
    dv_hub_files_free(files, n);
    dv_hub_free(h);
    return ret;
}
