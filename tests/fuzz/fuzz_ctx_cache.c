// fuzz_ctx_cache.c: libFuzzer target: arbitrary bytes as a video context cache file ->
// dv_ctx_cache_load into the tiny Llama (assets/models/tiny-llama) with a DuoAttention pattern, then
// one decode step, which must work whatever the file was (a rejected file leaves an empty context).
// The loader streams the state before it can check the trailing checksum, so its parser sees
// every corruption. Any crash, sanitizer report, leak or hang is a bug. Run by tests/fuzz/run.sh;
// DV_FUZZ_WRITE_SEED=FILE writes a valid cache file (the seed corpus) and exits.
#include "vlm/dv_context_cache.h"
#include "core/dv_error.h"
#include "core/dv_log.h"
#include "llm/dv_llm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fuzz_fd = -1;
static char fuzz_path[64];
static dv_backend *be;
static dv_llm *llm;
static dv_duo_pattern *pat;
static float *logits;
static dv_ctx_key key = {.model_hash = 0x1234, .video_hash = 0x5678, .plan = "fuzz plan"};

static int setup(void) {
    dv_log_set_level(DV_LOG_LEVEL_QUIET);
    if (!(be = dv_backend_cpu_init(1)) || dv_duo_pattern_full(2, 2, &pat)) return -1;
    for (int i = 0; i < 4; i++) pat->alpha[i] = (double)(i % 3) / 2.0;
    pat->sink = 3;
    pat->recent = 5;
    dv_duo_pattern_set_sparsity(pat, 0.5);
    dv_llm_params p = dv_llm_default_params();
    p.backend = be;
    p.n_ctx = 64;
    p.n_batch = 8;
    p.pattern = pat;
    if (dv_llm_open(DUOVID_SOURCE_DIR "/assets/models/tiny-llama", &p, &llm)) {
        fprintf(stderr, "fuzz_ctx_cache: %s\n", dv_error_message());
        return -1;
    }
    if (dv_duo_pattern_check(pat, "fuzz", dv_llm_get_config(llm)->n_layers, dv_llm_get_config(llm)->n_kv_heads)) {
        fprintf(stderr, "fuzz_ctx_cache: %s\n", dv_error_message());
        return -1;
    }
    key.pattern_hash = dv_ctx_hash_pattern(pat, DV_DUO_PREFILL_REFERENCE);
    logits = malloc((size_t)dv_llm_get_config(llm)->vocab_size * sizeof(float));
    return logits ? 0 : -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (setup()) abort();
    const char *seed = getenv("DV_FUZZ_WRITE_SEED");
    if (seed) { // a real context of 20 tokens: the corpus starts from a file the loader accepts
        int32_t ids[20];
        for (int i = 0; i < 20; i++) ids[i] = 3 + 7 * i;
        if (dv_llm_prefill(llm, ids, NULL, 20, NULL, 0) || dv_ctx_cache_save(seed, &key, "{\"fuzz\":1}", llm)) {
            fprintf(stderr, "fuzz_ctx_cache: %s\n", dv_error_message());
            exit(1);
        }
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_fd < 0) {
        fuzz_fd = memfd_create("dv_fuzz_ctx", 0);
        if (fuzz_fd < 0) return 0;
        snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d", fuzz_fd);
    }
    if (ftruncate(fuzz_fd, 0) != 0 || (size && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size)) return 0;
    char *info = NULL;
    int r = dv_ctx_cache_load(fuzz_path, &key, llm, &info);
    free(info);
    if (r != 1 && dv_llm_n_past(llm) != 0) abort(); // a rejected file must leave an empty context
    if (dv_llm_n_past(llm) < dv_llm_n_ctx(llm) && dv_llm_decode(llm, 5, logits)) abort();
    dv_llm_rewind(llm, 0);
    return 0;
}
