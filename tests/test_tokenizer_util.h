// test_tokenizer_util.h: helpers shared by tests/test_tokenizer*.c: a UTF-8 validity check written
// from the Unicode table (not shared with the tokenizer), a small-file writer, and the streamed
// decode of a sequence (one token at a time, then flush) collected into one buffer.
#ifndef DV_TEST_TOKENIZER_UTIL_H
#define DV_TEST_TOKENIZER_UTIL_H

#include "llm/dv_tokenizer.h"
#include "tests/dv_test.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

// 1 when s is complete, valid UTF-8 (shortest forms, no surrogates, <= U+10FFFF). Written from the
// Unicode table (not shared with the tokenizer) to check that the stream never splits a character.
static inline int valid_utf8(const unsigned char *s) {
    while (*s) {
        unsigned c = *s, n = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 9;
        if (n == 9) return 0;
        unsigned cp = n == 0 ? c : c & (0x3F >> n);
        for (unsigned k = 1; k <= n; k++) {
            if ((s[k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[k] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        s += n + 1;
    }
    return 1;
}

static inline void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    DV_CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

// Streams ids through a fresh dv_tokenizer_stream (at_start = 1) into out (cap bytes, NUL-terminated
// when it fits); returns the total length and sets *whole = 0 when a piece was not whole UTF-8.
static inline size_t stream_all(dv_tokenizer *t, const int32_t *ids, int n, char *out, size_t cap, int *whole) {
    dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 1);
    size_t sl = 0;
    *whole = s != NULL;
    if (cap) out[0] = 0;
    for (int i = 0; s && i <= n; i++) {
        const char *piece = i < n ? dv_tokenizer_stream_push(s, ids[i]) : dv_tokenizer_stream_flush(s);
        size_t pl = strlen(piece);
        *whole &= valid_utf8((const unsigned char *)piece);
        if (sl + pl < cap) memcpy(out + sl, piece, pl + 1);
        sl += pl;
    }
    dv_tokenizer_stream_free(s);
    return sl;
}

#endif
