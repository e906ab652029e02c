// dv_tokenizer.h: the LLM tokenizer: a SentencePiece model (tokenizer.model) plus the Hugging Face
// added tokens (tokenizer_config.json "added_tokens_decoder", added_tokens.json), e.g. <image>/<video>.
//
//   dv_tokenizer *t;  dv_tokenizer_open("models/llava", &t);
//   int32_t ids[256]; int n;
//   dv_tokenizer_encode(t, "USER: <video>\nWhat happens?", dv_tokenizer_add_bos(t), ids, 256, &n);
//   dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 0);
//   for (each generated id) fputs(dv_tokenizer_stream_push(s, id), stdout);
//   fputs(dv_tokenizer_stream_flush(s), stdout);
//   dv_tokenizer_stream_free(s); dv_tokenizer_free(t);
//
// Encoding follows Llama's legacy Hugging Face behaviour (LlamaTokenizer, legacy=True, as Llama-2 and
// LLaVA checkpoints use): the text is split at literal added-token strings (leftmost match, the
// longest at equal starts; lstrip/rstrip tokens swallow the ASCII whitespace beside them), each added
// token becomes its id, and every piece of plain text in between is encoded by SentencePiece on its
// own (with its own dummy-prefix space).
// Decoding is the inverse: the ids are cut into SentencePiece runs at BOS and at added tokens, and
// each run is decoded as sentencepiece's decode does (its first piece loses the dummy-prefix space,
// byte-fallback pieces are joined into UTF-8, bytes that form no valid character become U+FFFD), so
// decode(encode(text)) == text. The stream returns only complete UTF-8 text, holding back the bytes of
// a character split over byte-fallback tokens (<0xE2><0x82><0xAC> = "€").
#ifndef DV_TOKENIZER_H
#define DV_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_tokenizer dv_tokenizer;
typedef struct dv_tokenizer_stream dv_tokenizer_stream;

// Reads DIR/tokenizer.model (required) and the optional HF json files. Errors name the file.
int dv_tokenizer_open(const char *dir, dv_tokenizer **out);
void dv_tokenizer_free(dv_tokenizer *t);

int dv_tokenizer_vocab_size(const dv_tokenizer *t); // SentencePiece + added tokens (max id + 1)
int dv_tokenizer_bos(const dv_tokenizer *t);        // -1 when none
int dv_tokenizer_eos(const dv_tokenizer *t);
int dv_tokenizer_add_bos(const dv_tokenizer *t);    // tokenizer_config.json add_bos_token (default 1)
// Id of an added token or SentencePiece piece spelled exactly `s`; -1 when none.
int dv_tokenizer_token_id(const dv_tokenizer *t, const char *s);

// Encodes `text`, prepending BOS when add_bos. Writes at most max_ids ids and the needed count to
// *n_ids; returns DV_EINVAL ("... needs N tokens") when max_ids is too small.
int dv_tokenizer_encode(dv_tokenizer *t, const char *text, int add_bos, int32_t *ids, int max_ids, int *n_ids);
// Decodes a whole sequence into buf (NUL-terminated; *len excludes the NUL). Added tokens are written
// as their text unless skip_special and they are special; control tokens (BOS/EOS) are never written.
// Out-of-range ids -> DV_EINVAL; buf too small -> DV_EINVAL with *len = the length needed.
int dv_tokenizer_decode(dv_tokenizer *t, const int32_t *ids, int n, int skip_special, char *buf, size_t cap,
                        size_t *len);

// Streaming decoder, one token at a time, with buffers sized here (nothing is allocated per token).
// at_start = 1 when the stream begins the sequence (its first piece's dummy-prefix space is dropped,
// as decode does); 0 to continue after text already shown (a prompt). Special tokens are skipped, and
// the concatenated output equals dv_tokenizer_decode(.., skip_special = 1, ..) of the same ids.
// Returns NULL only when out of memory (message set).
dv_tokenizer_stream *dv_tokenizer_stream_init(dv_tokenizer *t, int at_start);
// Returns the text completed by this token ("" when none, and for invalid or special ids); the
// pointer stays valid until the next push/flush.
const char *dv_tokenizer_stream_push(dv_tokenizer_stream *s, int32_t id);
// Ends a byte run: returns the held-back bytes of an unfinished character, each as U+FFFD (as
// sentencepiece's decode shows a truncated character); "" when none.
const char *dv_tokenizer_stream_flush(dv_tokenizer_stream *s);
void dv_tokenizer_stream_free(dv_tokenizer_stream *s);

#ifdef __cplusplus
}
#endif
#endif
