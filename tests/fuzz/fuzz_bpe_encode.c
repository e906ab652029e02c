// fuzz_bpe_encode.c: libFuzzer target: arbitrary bytes as text -> the BPE encoder of three fixed
// fixtures (Qwen3.5 style: NFC, the \p{M} regex, a normalized lstrip/rstrip token; Llama-3 style:
// ignore_merges, BOS; SmolLM2 style: Digits + GPT-2 regex). Checked: no crash, sanitizer report or
// hang; every id in the vocabulary; and on SmolLM2 (no normalizer, no stripping tokens)
// decode(encode(x)) == x, with x as the encoder sees it (up to a NUL, invalid UTF-8 -> U+FFFD).
#include "core/dv_error.h"
#include "core/dv_log.h"
#include "llm/dv_tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dv_tokenizer *tok[3];
static int32_t *ids;
static char *text, *buf, *want;
#define MAX_LEN 65536
#define MAX_IDS (3 * MAX_LEN + 8)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    dv_log_set_level(DV_LOG_LEVEL_QUIET);
    static const char *names[3] = {"qwen35", "llama3", "smollm2"};
    for (int i = 0; i < 3; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/tests/fixtures/bpe/%s", DUOVID_SOURCE_DIR, names[i]);
        if (dv_tokenizer_open(dir, &tok[i])) {
            fprintf(stderr, "fuzz_bpe_encode: %s\n", dv_error_message());
            abort();
        }
    }
    ids = malloc(MAX_IDS * sizeof *ids);
    text = malloc(MAX_LEN + 1);
    buf = malloc(3 * MAX_LEN + 8);
    want = malloc(3 * MAX_LEN + 8);
    if (!ids || !text || !buf || !want) abort();
    return 0;
}

// Python's bytes.decode("utf-8", "replace") of s, written independently of the tokenizer: a
// maximal subpart of an invalid sequence is one U+FFFD.
static size_t repaired(const unsigned char *s, char *out) {
    size_t o = 0;
    while (*s) {
        unsigned c = s[0], need = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF, k = 1;
        while (k < need && s[k] >= (k == 1 ? lo : 0x80) && s[k] <= (k == 1 ? hi : 0xBF)) k++;
        if (need && k == need) {
            memcpy(out + o, s, need);
            o += need;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
        s += need && k == need ? need : k;
    }
    out[o] = 0;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > MAX_LEN) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    for (int i = 0; i < 3; i++) {
        int n = 0;
        if (dv_tokenizer_encode(tok[i], text, 1, ids, MAX_IDS, &n)) abort();
        for (int k = 0; k < n; k++)
            if (ids[k] < 0 || ids[k] >= dv_tokenizer_vocab_size(tok[i])) abort();
        size_t len = 0;
        if (dv_tokenizer_decode(tok[i], ids, n, 0, buf, 3 * MAX_LEN + 8, &len)) abort();
        if (i == 2) {
            if (dv_tokenizer_encode(tok[i], text, 0, ids, MAX_IDS, &n) ||
                dv_tokenizer_decode(tok[i], ids, n, 0, buf, 3 * MAX_LEN + 8, &len))
                abort();
            size_t wl = repaired((const unsigned char *)text, want);
            if (wl != len || memcmp(want, buf, len)) abort();
        }
    }
    return 0;
}
