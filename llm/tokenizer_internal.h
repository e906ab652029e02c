// tokenizer_internal.h: what the two dv_tokenizer implementations (SentencePiece in tokenizer_sp.c,
// byte-level BPE in tokenizer_bpe.c) plug into, and the UTF-8 stream they share (tokenizer.c).
// Only llm/tokenizer*.c include it.
#ifndef DV_TOKENIZER_INTERNAL_H
#define DV_TOKENIZER_INTERNAL_H

#include "llm/dv_tokenizer.h"

#include <stddef.h>
#include <stdint.h>

// How bytes that form no valid UTF-8 character become U+FFFD: one per byte (sentencepiece's decode),
// or one per maximal invalid subpart (Rust's from_utf8_lossy, as HF tokenizers' decoders, and
// Python's bytes.decode(errors="replace")).
typedef enum dv_utf8_repair { DV_UTF8_REPAIR_PER_BYTE = 0, DV_UTF8_REPAIR_SUBPART } dv_utf8_repair;

typedef struct dv_tokenizer_ops {
    const char *kind; // "sentencepiece", "bpe"
    void (*free)(void *impl);
    int (*encode)(void *impl, const char *text, int add_special, int32_t *ids, int max_ids, int *n_ids);
    int (*token_id)(const void *impl, const char *s); // -1 when none
    const char *(*piece)(const void *impl, int id);   // NULL when the id has no token
    // Appends the text `id` completes to s->out at *o (dv_tokenizer_stream_emit/_drain).
    void (*push)(dv_tokenizer_stream *s, int32_t id, int skip_special, size_t *o);
} dv_tokenizer_ops;

struct dv_tokenizer {
    const dv_tokenizer_ops *ops;
    void *impl; // owned, the implementation's state
    int vocab, bos, eos, add_bos;
    size_t max_piece;      // most bytes one id decodes to (sizes the stream buffer)
    dv_utf8_repair repair; // how decoding repairs invalid UTF-8
};

struct dv_tokenizer_stream {
    dv_tokenizer *t;
    int at_start;    // SentencePiece: at the start of a run, so its first "▁" is the dummy prefix
    uint8_t pend[4]; // bytes of an incomplete UTF-8 character
    int n_pend;
    char *out; // (out_cap) the text returned by push/flush, owned, reused for every token
    size_t out_cap;
};

// The UTF-8 character at b[0] (n bytes available): its length when complete and valid (shortest
// form, no surrogates, <= U+10FFFF); 0 when the n bytes are a valid but unfinished prefix; -k when
// the first k bytes (k >= 1, the maximal subpart) can start no valid character.
int dv_utf8_char(const uint8_t *b, size_t n);
// Copies len bytes of text into *buf (grown as needed, *cap bytes, NUL-terminated), every maximal
// invalid subpart replaced by U+FFFD. Returns the new length, or -1 when out of memory.
long dv_utf8_repair_copy(const char *text, size_t len, char **buf, size_t *cap);

// Appends n bytes to s->out at *o (the buffer is sized for any one push).
void dv_tokenizer_stream_emit(dv_tokenizer_stream *s, size_t *o, const char *bytes, size_t n);
// Moves complete characters from s->pend to the output, repairing invalid bytes as t->repair says;
// an unfinished tail stays pending unless `final` (the byte run ended).
void dv_tokenizer_stream_drain(dv_tokenizer_stream *s, size_t *o, int final);

// tokenizer_config.json helpers: "bos_token": "<s>" or {"content": "<s>", ...} (NULL when neither);
// a boolean flag with its default when absent or not a boolean.
#include <cjson/cJSON.h>
const char *dv_tokenizer_cfg_token(const cJSON *cfg, const char *key);
int dv_tokenizer_cfg_flag(const cJSON *obj, const char *key, int dflt);

// The implementations' openers: fill t (ops, impl, vocab, bos, eos, add_bos, max_piece, repair).
int dv_tokenizer_open_sp(const char *model_path, const char *dir, dv_tokenizer *t);
int dv_tokenizer_open_bpe(const char *dir, dv_tokenizer *t);

#endif
