// cmd_tokenize.c: `duovid tokenize`: show how a model folder's tokenizer encodes a text, as
// llama.cpp's llama-tokenize does (one "id -> 'text'" line per token; --ids: the ids as a list;
// --pieces: the vocabulary spellings as a JSON list), and `duovid bench tokenize`: encoding speed.
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/cli.h"

#include "core/dv_error.h"
#include "core/dv_progress.h"
#include "llm/dv_tokenizer.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f, "usage: duovid tokenize -m MODEL_DIR [--ids | --pieces] [--no-bos] TEXT|-\n\n"
               "Encodes TEXT ('-' = read it from stdin) with the model folder's tokenizer (tokenizer.model,\n"
               "tokenizer.json, or vocab.json + merges.txt) and prints one line per token, `ID -> 'TEXT'`\n"
               "(the token decoded on its own; `(piece 'SPELLING')` for a control token or part of a character),\n"
               "on stdout. Special-token spellings in TEXT (<|im_end|>)\n"
               "become their ids. BOS (and other special tokens the tokenizer adds) come first unless\n"
               "--no-bos.\n\n"
               "  -m, --model DIR   model folder\n"
               "      --ids         print only the ids, as [1, 2, 3]\n"
               "      --pieces      print only the tokens as the vocabulary spells them, as a JSON list\n"
               "      --no-bos      do not add BOS / the post-processor's special tokens\n"
               "  -h, --help        this help\n");
}

// Encodes text into a malloc'd array sized by a first counting pass.
static int encode_all(dv_tokenizer *t, const char *text, int add_bos, int32_t **ids, int *n) {
    *ids = NULL;
    int rc = dv_tokenizer_encode(t, text, add_bos, NULL, 0, n);
    if (rc == DV_EINVAL && *n > 0) {
        dv_error_clear();
        if (!(*ids = malloc((size_t)*n * sizeof **ids))) return dv_error_set(DV_ENOMEM, "out of memory");
        rc = dv_tokenizer_encode(t, text, add_bos, *ids, *n, n);
    }
    return rc;
}

static int print_tokens(dv_tokenizer *t, const int32_t *ids, int n, int mode) {
    if (mode == 1) { // --ids
        printf("[");
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("]\n");
        return 0;
    }
    if (mode == 2) { // --pieces
        cJSON *arr = cJSON_CreateArray();
        for (int i = 0; arr && i < n; i++) {
            const char *p = dv_tokenizer_piece(t, ids[i]);
            if (!cJSON_AddItemToArray(arr, cJSON_CreateString(p ? p : ""))) break;
        }
        char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
        cJSON_Delete(arr);
        if (!s) return dv_error_set(DV_ENOMEM, "out of memory");
        puts(s);
        cJSON_free(s);
        return 0;
    }
    char buf[4096];
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        int rc = dv_tokenizer_decode(t, ids + i, 1, 0, buf, sizeof buf, &len);
        if (rc) return rc;
        // a control token decodes to nothing and part of a character to U+FFFD: show the spelling
        const char *piece = dv_tokenizer_piece(t, ids[i]);
        if ((!len || strstr(buf, "\xEF\xBF\xBD")) && piece) printf("%6d -> (piece '%s')\n", ids[i], piece);
        else printf("%6d -> '%s'\n", ids[i], buf);
    }
    return 0;
}

int dv_cmd_tokenize(int argc, char **argv) {
    const char *model_dir = NULL;
    int mode = 0, add_bos = 1;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"ids", no_argument, 0, 1},
                                         {"pieces", no_argument, 0, 2},        {"no-bos", no_argument, 0, 3},
                                         {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 1:
        case 2:
            if (mode && mode != c) {
                dv_app_usage_error("tokenize", "--ids and --pieces exclude each other");
                return 1;
            }
            mode = c;
            break;
        case 3: add_bos = 0; break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("tokenize", "%s needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("tokenize", "unknown option '%s'", argv[optind - 1]); return 1;
        }
    }
    if (!model_dir || optind != argc - 1) {
        dv_app_usage_error("tokenize", !model_dir ? "-m MODEL_DIR is required" : "expected one TEXT (or '-' for stdin)");
        return 1;
    }
    if (dv_app_check_model_dir(model_dir)) return 1;
    const char *arg = argv[optind];
    char *in = NULL;
    int32_t *ids = NULL;
    int n = 0, rc = 0;
    dv_tokenizer *t = NULL;
    if (!strcmp(arg, "-")) {
        size_t len = 0;
        if (!(in = dv_app_read_text("-", &len))) goto fail;
        if (strlen(in) != len) {
            rc = dv_error_set(DV_EINVAL, "stdin: the text holds a NUL byte at offset %zu", strlen(in));
            goto fail;
        }
    }
    if ((rc = dv_tokenizer_open(model_dir, &t)) || (rc = encode_all(t, in ? in : arg, add_bos && dv_tokenizer_add_bos(t), &ids, &n)) ||
        (rc = print_tokens(t, ids, n, mode)))
        goto fail;
    free(ids);
    free(in);
    dv_tokenizer_free(t);
    return 0;
fail:
    dv_app_error();
    free(ids);
    free(in);
    dv_tokenizer_free(t);
    return 1;
}

// ---- duovid bench tokenize ----

static void bench_usage(FILE *f) {
    fprintf(f, "usage: duovid bench tokenize -m MODEL_DIR -f FILE [--repeat N] [--json]\n\n"
               "Encodes the whole of FILE with the model folder's tokenizer (one thread) N times and reports\n"
               "the best run: MB/s of input text (wall clock and per CPU second of the thread, the speed of one\n"
               "core on a shared machine) and tokens/s (stdout, one line or JSON).\n\n"
               "  -m, --model DIR   model folder\n"
               "  -f, --file FILE   text to encode ('-' = stdin)\n"
               "      --repeat N    runs, the best is kept (default 5)\n"
               "      --json        one JSON object\n"
               "  -h, --help        this help\n");
}

// CPU time of this thread: on a machine shared with other jobs, the speed of one core
static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dv_bench_tokenize(int argc, char **argv) {
    const char *model_dir = NULL, *file = NULL;
    int repeat = 5, json = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"file", required_argument, 0, 'f'},
                                         {"repeat", required_argument, 0, 1},  {"json", no_argument, 0, 2},
                                         {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:f:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'f': file = optarg; break;
        case 1:
            if (dv_arg_int("--repeat", optarg, 1, 1000, &repeat)) return 1;
            break;
        case 2: json = 1; break;
        case 'h': bench_usage(stdout); return 0;
        case ':': dv_app_usage_error("bench tokenize", "%s needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("bench tokenize", "unknown option '%s'", argv[optind - 1]); return 1;
        }
    }
    if (!model_dir || !file || optind != argc) {
        dv_app_usage_error("bench tokenize", "-m MODEL_DIR and -f FILE are required (and nothing else)");
        return 1;
    }
    if (dv_app_check_model_dir(model_dir)) return 1;
    size_t len = 0;
    char *text = dv_app_read_text(file, &len);
    dv_tokenizer *t = NULL;
    int32_t *ids = NULL;
    int n = 0, rc = text ? 0 : DV_EIO;
    if (!rc && strlen(text) != len) rc = dv_error_set(DV_EINVAL, "%s: the text holds a NUL byte", file);
    if (!rc) rc = dv_tokenizer_open(model_dir, &t);
    if (!rc) rc = encode_all(t, text, 0, &ids, &n); // also the warm-up run
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; !rc && r < repeat; r++) {
        int m = 0;
        double t0 = dv_time_now(), c0 = thread_cpu_s();
        rc = dv_tokenizer_encode(t, text, 0, ids, n, &m);
        double dt = dv_time_now() - t0, dc = thread_cpu_s() - c0;
        if (dt < best) best = dt;
        if (dc < best_cpu) best_cpu = dc;
    }
    if (rc) {
        dv_app_error();
    } else if (json) {
        printf("{\"tokenizer\": \"%s\", \"bytes\": %zu, \"tokens\": %d, \"seconds\": %.6f, \"cpu_seconds\": %.6f, "
               "\"mb_per_s\": %.2f, \"mb_per_cpu_s\": %.2f, \"tokens_per_s\": %.0f}\n",
               dv_tokenizer_kind(t), len, n, best, best_cpu, (double)len / best / 1e6, (double)len / best_cpu / 1e6,
               n / best);
    } else {
        printf("tokenize (%s): %zu bytes -> %d tokens in %.4f s (%.4f s CPU): %.2f MB/s, %.2f MB per CPU second, "
               "%.0f tokens/s (best of %d)\n",
               dv_tokenizer_kind(t), len, n, best, best_cpu, (double)len / best / 1e6, (double)len / best_cpu / 1e6,
               n / best, repeat);
    }
    free(ids);
    free(text);
    dv_tokenizer_free(t);
    return rc ? 1 : 0;
}
