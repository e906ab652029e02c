// bpe_pretok.h: the text stages of the Hugging Face tokenizers pipeline ahead of the BPE model, as
// tokenizer.json describes them: the normalizer (NFC/NFD/NFKC/NFKD with utf8proc, or a Sequence of
// them) and the pre-tokenizers (Split with a PCRE2 regex or literal and its five delimiter
// behaviours, Digits, ByteLevel with GPT-2's regex), plus the Unicode character classes the added-token
// matcher needs. Types not implemented here are refused by name. Used by tokenizer_bpe.c only.
//
//   dv_bpe_pretok *p;  dv_bpe_pretok_parse(json_normalizer, json_pre_tokenizer, "tokenizer.json", &p);
//   dv_bpe_pieces out = {0};
//   dv_bpe_pretok_run(p, "Hello world", 11, &out);   // out: "Hello", " world" (bytes, not Ġ-chars)
#ifndef DV_BPE_PRETOK_H
#define DV_BPE_PRETOK_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dv_bpe_pretok dv_bpe_pretok;

// A list of byte ranges of one text buffer. Grown as needed, reused between calls (allocated once).
typedef struct dv_bpe_pieces {
    char *buf; // (cap) the text the pieces point into
    size_t len, cap;
    uint32_t (*span)[2]; // (n_cap) [offset, length] into buf
    int n, n_cap;
} dv_bpe_pieces;
void dv_bpe_pieces_free(dv_bpe_pieces *p);

// Parses the "normalizer" and "pre_tokenizer" values (either may be NULL or JSON null). The
// pre-tokenizer must end with ByteLevel (the model then works on raw bytes). Errors name `what`.
int dv_bpe_pretok_parse(const cJSON *normalizer, const cJSON *pre_tokenizer, const char *what, dv_bpe_pretok **out);
// GPT-2's setup for vocab.json + merges.txt: no normalizer, ByteLevel(add_prefix_space=false,
// use_regex=true).
int dv_bpe_pretok_gpt2(dv_bpe_pretok **out);
void dv_bpe_pretok_free(dv_bpe_pretok *p);

// 1 when there is a normalizer. dv_bpe_normalize writes the normalized form of valid UTF-8 text
// into *buf (grown, NUL-terminated) and returns its length, or <0 (message set).
int dv_bpe_has_normalizer(const dv_bpe_pretok *p);
long dv_bpe_normalize(const dv_bpe_pretok *p, const char *text, size_t len, char **buf, size_t *cap);

// Pre-tokenizes valid UTF-8 text: out receives the pieces the model encodes one by one, as bytes.
// 0 or <0 (message set: out of memory, a regex that failed to run).
int dv_bpe_pretok_run(dv_bpe_pretok *p, const char *text, size_t len, dv_bpe_pieces *out);

// HF's {"type": "Sequence", KEY: [...]}: calls fn on each item in order, stopping at an error.
// Returns 0 or fn's error; DV_EFORMAT naming `what` and `kind` when KEY is not a list.
int dv_bpe_json_sequence(const cJSON *seq, const char *key, const char *kind, const char *what,
                         int (*fn)(void *ctx, const cJSON *item, const char *what), void *ctx);

// Unicode classes as Rust's char methods define them, for HF's added-token matching:
// is_whitespace (the White_Space property) and is_alphanumeric || '_' (letters and numbers).
int dv_bpe_is_white_space(int32_t cp);
int dv_bpe_is_word_char(int32_t cp);
// Decodes the character at s (valid UTF-8, n > 0 bytes left) into *cp; returns its length.
int dv_bpe_utf8_next(const char *s, size_t n, int32_t *cp);

#endif
