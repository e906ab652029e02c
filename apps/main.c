// main.c: the duovid command-line entry point: dispatches to one subcommand per file (cmd_*.c).
#include "apps/cli.h"

#include "core/dv_log.h"

#include <stdio.h>
#include <string.h>

static const struct dv_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} dv_cmds[] = {
    {"ask", dv_cmd_ask, "answer a question about a video (streams the answer; --json for one object)"},
    {"chat", dv_cmd_chat, "talk about a video over many turns (/reset, /save, /info, /quit)"},
    {"serve", dv_cmd_serve, "OpenAI-compatible video chat server with a browser page (127.0.0.1:8080)"},
    {"summarize", dv_cmd_summarize, "batch: one JSON line per video into OUT.jsonl (resumable, --shard i/n or auto for Slurm arrays, --merge)"},
    {"generate", dv_cmd_generate, "generate text from a prompt with an LLM checkpoint"},
    {"info", dv_cmd_info, "describe a model folder or a video file"},
    {"tokenize", dv_cmd_tokenize, "show the token ids of a text (-m MODEL_DIR [--ids | --pieces] TEXT|-)"},
    {"bench", dv_cmd_bench, "benchmarks: `bench llm|duo|encoder|tokenize` (tok/s, peak RSS, MB/s)"},
    {"pattern", dv_cmd_pattern, "show a DuoAttention pattern: retrieval heads per layer, KV fraction, heat map"},
    {"identify", dv_cmd_identify, "find a model's DuoAttention retrieval heads, write a pattern folder"},
    {"perplexity", dv_cmd_perplexity, "perplexity of a model on a text (llama.cpp's windows; with --duo patterns)"},
    {"eval", dv_cmd_eval, "long-context evaluations: `eval niah` (passkey retrieval per length x depth)"},
    {"frames", dv_cmd_frames, "sample frames from a video: numbered PNGs (-o DIR) or a contact sheet (--sheet)"},
    {"pull", dv_cmd_pull, "download a Hugging Face model (safetensors, configs, tokenizer; resumable)"},
    {"synth-model", dv_cmd_synth_model, "write a random-weight checkpoint of a named shape (for benchmarks)"},
};

static void usage(FILE *f) {
    fprintf(f, "duovid %s: answer questions about hours-long videos (FFmpeg + ViT + DuoAttention LLM)\n\n"
               "usage: duovid COMMAND [options]   (duovid COMMAND --help for details)\n\ncommands:\n",
            DUOVID_VERSION);
    for (size_t i = 0; i < sizeof dv_cmds / sizeof dv_cmds[0]; i++)
        fprintf(f, "  %-10s %s\n", dv_cmds[i].name, dv_cmds[i].help);
    fprintf(f, "\nenvironment: DUOVID_LOG=debug|info|warn|error sets the log level (stderr).\n");
}

int main(int argc, char **argv) {
    dv_log_init_from_env();
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("duovid %s\n", DUOVID_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof dv_cmds / sizeof dv_cmds[0]; i++)
        if (!strcmp(argv[1], dv_cmds[i].name)) return dv_cmds[i].run(argc - 1, argv + 1) ? 1 : 0;
    fprintf(stderr, "duovid: error: unknown command '%s' (see duovid --help)\n", argv[1]);
    return 1;
}
