// dv_tokenizer.h: the LLM tokenizer, one interface over two implementations chosen by the files in
// the model folder:
//   tokenizer.model                      SentencePiece plus the Hugging Face added tokens
//                                        (tokenizer_config.json "added_tokens_decoder", added_tokens.json)
//   tokenizer.json (no tokenizer.model)  Hugging Face tokenizers, model BPE with byte-level
//                                        pre-tokenization (Qwen2/2.5/3/3.5, GPT-2, SmolLM2, Llama-3)
//   vocab.json + merges.txt              the same, GPT-2 style (ByteLevel regex), added tokens from
//                                        tokenizer_config.json
// Everything above (templates, pipeline, streaming) is tokenizer-agnostic.
//
//   dv_tokenizer *t;  dv_tokenizer_open("models/llava", &t);
//   int32_t ids[256]; int n;
//   dv_tokenizer_encode(t, "USER: <video>\nWhat happens?", dv_tokenizer_add_bos(t), ids, 256, &n);
//   dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 0);
//   for (each generated id) fputs(dv_tokenizer_stream_push(s, id), stdout);
//   fputs(dv_tokenizer_stream_flush(s), stdout);
//   dv_tokenizer_stream_free(s); dv_tokenizer_free(t);
//
// SentencePiece: encoding follows Llama's legacy Hugging Face behaviour (LlamaTokenizer, legacy=True, as Llama-2 and
// LLaVA checkpoints use): the text is split at literal added-token strings (leftmost match, the
// longest at equal starts; lstrip/rstrip tokens swallow the ASCII whitespace beside them), each added
// token becomes its id, and every piece of plain text in between is encoded by SentencePiece on its
// own (with its own dummy-prefix space).
// Decoding is the inverse: the ids are cut into SentencePiece runs at BOS and at added tokens, and
// each run is decoded as sentencepiece's decode does (its first piece loses the dummy-prefix space,
// byte-fallback pieces are joined into UTF-8, bytes that form no valid character become U+FFFD), so
// decode(encode(text)) == text. The stream returns only complete UTF-8 text, holding back the bytes of
// a character split over byte-fallback tokens (<0xE2><0x82><0xAC> = "€").
//
// BPE (tokenizer_bpe.c) is the Hugging Face tokenizers pipeline: added tokens are cut out first
// (leftmost-longest; non-normalized ones on the raw text, normalized ones after the normalizer;
// lstrip/rstrip/single_word as HF), then the normalizer (NFC/NFD/NFKC/NFKD, utf8proc), the
// pre-tokenizers (Split regexes run by PCRE2 in UTF mode with Unicode properties, Digits, ByteLevel),
// the BPE merges (ignore_merges: a word in the vocabulary is one token), and the post-processor's
// special tokens (TemplateProcessing, e.g. Llama-3's BOS) when add_bos. Text that is not valid UTF-8
// is encoded as Python's bytes.decode(errors="replace") would make it (U+FFFD per maximal invalid
// subpart). Decoding is the ByteLevel decoder: token bytes joined, invalid UTF-8 -> U+FFFD per
// maximal subpart (as HF); the stream holds back the bytes of an unfinished character. Types the
// code does not implement (a Unigram model, a Metaspace pre-tokenizer, ...) are refused by name.
#ifndef DV_TOKENIZER_H
#define DV_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_tokenizer dv_tokenizer;
typedef struct dv_tokenizer_stream dv_tokenizer_stream;

// Reads DIR's tokenizer files (see above; tokenizer.model wins when several are present) and the
// optional HF json files. Errors name the file.
int dv_tokenizer_open(const char *dir, dv_tokenizer **out);
void dv_tokenizer_free(dv_tokenizer *t);

const char *dv_tokenizer_kind(const dv_tokenizer *t); // "sentencepiece" or "bpe"
int dv_tokenizer_vocab_size(const dv_tokenizer *t);   // model + added tokens (max id + 1)
int dv_tokenizer_bos(const dv_tokenizer *t);          // -1 when none
// SentencePiece: the model's EOS or tokenizer_config.json eos_token; BPE: eos_token's id; -1 when none
int dv_tokenizer_eos(const dv_tokenizer *t);
// SentencePiece: tokenizer_config.json add_bos_token (default 1); BPE: 1 when the post-processor
// adds special tokens (BOS = its first one; otherwise bos is tokenizer_config.json bos_token)
int dv_tokenizer_add_bos(const dv_tokenizer *t);
// Id of an added token spelled exactly `s` (e.g. "<|im_end|>"), else of the model's piece spelled
// `s` (SentencePiece "▁the", byte-level BPE "Ġthe"); -1 when none.
int dv_tokenizer_token_id(const dv_tokenizer *t, const char *s);
// The spelling of an id as the vocabulary writes it (the inverse of dv_tokenizer_token_id); NULL for
// ids out of range or without a token. Valid until dv_tokenizer_free.
const char *dv_tokenizer_piece(const dv_tokenizer *t, int id);

// Encodes `text`, prepending BOS (BPE: the post-processor's special tokens) when add_bos. Writes at most max_ids ids and the needed count to
// *n_ids; returns DV_EINVAL ("... needs N tokens") when max_ids is too small.
int dv_tokenizer_encode(dv_tokenizer *t, const char *text, int add_bos, int32_t *ids, int max_ids, int *n_ids);
// Decodes a whole sequence into buf (NUL-terminated; *len excludes the NUL). Added tokens are written
// as their text unless skip_special and they are special; control tokens (BOS/EOS) are never written.
// Out-of-range ids -> DV_EINVAL; buf too small -> DV_EINVAL with *len = the length needed.
int dv_tokenizer_decode(dv_tokenizer *t, const int32_t *ids, int n, int skip_special, char *buf, size_t cap,
                        size_t *len);

// Streaming decoder, one token at a time, with buffers sized here (nothing is allocated per token).
// at_start = 1 when the stream begins the sequence (SentencePiece: its first piece's dummy-prefix
// space is dropped, as decode does); 0 to continue after text already shown (a prompt). Special tokens are skipped, and
// the concatenated output equals dv_tokenizer_decode(.., skip_special = 1, ..) of the same ids.
// Returns NULL only when out of memory (message set).
dv_tokenizer_stream *dv_tokenizer_stream_init(dv_tokenizer *t, int at_start);
// Returns the text completed by this token ("" when none, and for invalid or special ids); the
// pointer stays valid until the next push/flush.
const char *dv_tokenizer_stream_push(dv_tokenizer_stream *s, int32_t id);
// Ends a byte run: returns the held-back bytes of an unfinished character as U+FFFD (SentencePiece:
// one per byte, as its decode shows a truncated character; BPE: one, as HF); "" when none.
const char *dv_tokenizer_stream_flush(dv_tokenizer_stream *s);
void dv_tokenizer_stream_free(dv_tokenizer_stream *s);

#ifdef __cplusplus
}
#endif
#endif
