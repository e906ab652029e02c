// dv_spm.h: the C view of a SentencePiece model (implemented in tokenizer_spm.cpp, the only C++
// file in duovid). Raw SentencePiece only: added tokens and streaming live in dv_tokenizer.
#ifndef DV_SPM_H
#define DV_SPM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_spm dv_spm;

// Loads a serialized model file. Returns 0, or <0 with a message naming the path.
int dv_spm_load(const char *path, dv_spm **out);
void dv_spm_free(dv_spm *s);
int dv_spm_vocab_size(const dv_spm *s);
int dv_spm_bos(const dv_spm *s); // -1 when the model has none
int dv_spm_eos(const dv_spm *s);
// Encodes len bytes of text (no BOS). Writes up to max ids and the full count to *n.
int dv_spm_encode(const dv_spm *s, const char *text, size_t len, int32_t *ids, int max, int *n);
// Piece text of an id (SentencePiece spelling, U+2581 for spaces; "<0x41>" for byte pieces). The
// pointer stays valid until dv_spm_free.
const char *dv_spm_piece(const dv_spm *s, int id);
// 1 when the id is a byte-fallback piece (*byte receives its value), a control or an unknown piece.
int dv_spm_is_byte(const dv_spm *s, int id, uint8_t *byte);
int dv_spm_is_control(const dv_spm *s, int id);
int dv_spm_is_unknown(const dv_spm *s, int id);
// 1 when the model adds a dummy "▁" prefix to the input (so decoders strip one leading space).
int dv_spm_adds_dummy_prefix(const dv_spm *s);

#ifdef __cplusplus
}
#endif
#endif
