// fuzz_bpe_load.c: libFuzzer target: arbitrary bytes as a tokenizer.json -> dv_tokenizer_open, and
// when the file is accepted, an encode, a decode and a streamed decode of a fixed mixed text (the
// stream must add up to the batch decode). Any crash, sanitizer report, leak or hang is a bug; a
// refusal is fine. Run by tests/fuzz/run.sh; the seeds are the committed fixtures
// (tests/fixtures/bpe/*/tokenizer.json).
#include "core/dv_error.h"
#include "core/dv_log.h"
#include "llm/dv_tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <unistd.h>

static char dir[64], path[96];

static void cleanup(void) {
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    dv_log_set_level(DV_LOG_LEVEL_QUIET);
    snprintf(dir, sizeof dir, "/tmp/dv_fuzz_bpe_%d", (int)getpid());
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (mkdir(dir, 0700) && errno != EEXIST) abort();
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    dv_tokenizer *t = NULL;
    if (dv_tokenizer_open(dir, &t)) {
        if (t) abort(); // a refusal leaves no tokenizer
        return 0;
    }
    static const char text[] = "Hello, world! I'm <|im_end|> 123 456 é\xCC\x81 \xF0\x9F\x91\x8B\xF0\x9F\x8F\xBD \t\n x\x80y";
    int32_t ids[512];
    int n = 0;
    if (dv_tokenizer_encode(t, text, 1, ids, 512, &n) == 0) {
        char buf[8192], sbuf[8192];
        size_t len = 0, sl = 0;
        if (dv_tokenizer_decode(t, ids, n, 1, buf, sizeof buf, &len) == 0) {
            dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 1);
            for (int i = 0; s && i <= n; i++) {
                const char *p = i < n ? dv_tokenizer_stream_push(s, ids[i]) : dv_tokenizer_stream_flush(s);
                size_t pl = strlen(p);
                if (sl + pl < sizeof sbuf) memcpy(sbuf + sl, p, pl + 1);
                sl += pl;
            }
            dv_tokenizer_stream_free(s);
            if (s && (sl != len || memcmp(sbuf, buf, len))) abort();
        }
    }
    for (int id = -1; id < 4; id++) (void)dv_tokenizer_piece(t, id);
    dv_tokenizer_free(t);
    return 0;
}
