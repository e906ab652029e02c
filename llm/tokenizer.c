// tokenizer.c: the one dv_tokenizer interface over two implementations, chosen by the files in the
// model folder: tokenizer.model -> SentencePiece (tokenizer_sp.c); else tokenizer.json, or
// vocab.json + merges.txt -> byte-level BPE (tokenizer_bpe.c). Also what both share: UTF-8
// validation and repair, the streaming decoder's buffer, and batch decoding (the stream run over the
// whole sequence, so both agree by design). See dv_tokenizer.h.
#include "llm/tokenizer_internal.h"

#include "core/dv_error.h"
#include "core/dv_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int exists(const char *dir, const char *name) {
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &sb) == 0;
}

int dv_tokenizer_open(const char *dir, dv_tokenizer **out) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    const int spm = exists(dir, "tokenizer.model");
    if (!spm && !exists(dir, "tokenizer.json") && !(exists(dir, "vocab.json") && exists(dir, "merges.txt")))
        return dv_error_set(DV_ENOTFOUND, "%s: not found, nor tokenizer.json, nor vocab.json + merges.txt", path);
    dv_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return dv_error_set(DV_ENOMEM, "out of memory");
    t->bos = t->eos = -1;
    int rc = spm ? dv_tokenizer_open_sp(path, dir, t) : dv_tokenizer_open_bpe(dir, t);
    if (rc) {
        dv_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void dv_tokenizer_free(dv_tokenizer *t) {
    if (!t) return;
    if (t->ops) t->ops->free(t->impl);
    free(t);
}

const char *dv_tokenizer_kind(const dv_tokenizer *t) { return t->ops->kind; }
int dv_tokenizer_vocab_size(const dv_tokenizer *t) { return t->vocab; }
int dv_tokenizer_bos(const dv_tokenizer *t) { return t->bos; }
int dv_tokenizer_eos(const dv_tokenizer *t) { return t->eos; }
int dv_tokenizer_add_bos(const dv_tokenizer *t) { return t->add_bos; }
int dv_tokenizer_token_id(const dv_tokenizer *t, const char *s) { return t->ops->token_id(t->impl, s); }

const char *dv_tokenizer_piece(const dv_tokenizer *t, int id) {
    return id >= 0 && id < t->vocab ? t->ops->piece(t->impl, id) : NULL;
}

int dv_tokenizer_encode(dv_tokenizer *t, const char *text, int add_bos, int32_t *ids, int max_ids, int *n_ids) {
    return t->ops->encode(t->impl, text, add_bos, ids, max_ids, n_ids);
}

const char *dv_tokenizer_cfg_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return dv_json_get_string(v, "content");
    return NULL;
}

int dv_tokenizer_cfg_flag(const cJSON *obj, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

// ---- UTF-8 ----

int dv_utf8_char(const uint8_t *b, size_t n) {
    const uint8_t c = b[0];
    int need;
    uint8_t lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return -1;
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= n) return 0;
        if (k == 1 ? b[1] < lo || b[1] > hi : (b[k] & 0xC0) != 0x80) return -k;
    }
    return need;
}

long dv_utf8_repair_copy(const char *text, size_t len, char **buf, size_t *cap) {
    const uint8_t *s = (const uint8_t *)text;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (o + 8 > *cap) {
            size_t nc = *cap * 2 > len * 3 + 8 ? *cap * 2 : len * 3 + 8;
            char *nb = realloc(*buf, nc);
            if (!nb) return -1;
            *buf = nb;
            *cap = nc;
        }
        int k = dv_utf8_char(s + i, len - i);
        if (k > 0) {
            memcpy(*buf + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else { // a maximal invalid subpart, or an unfinished character at the end
            memcpy(*buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += k < 0 ? (size_t)-k : len - i;
        }
    }
    if (!*buf && !(*buf = malloc(*cap = 8))) return -1;
    (*buf)[o] = 0;
    return (long)o;
}

// ---- streaming and batch decoding ----

dv_tokenizer_stream *dv_tokenizer_stream_init(dv_tokenizer *t, int at_start) {
    dv_tokenizer_stream *s = calloc(1, sizeof *s);
    if (s) {
        s->t = t;
        s->at_start = at_start;
        // one push emits at most: its bytes and the held-back ones, each as U+FFFD (3 bytes), or a
        // piece, or " ⁇ " (5 bytes) for SentencePiece's <unk>
        s->out_cap = 3 * (sizeof s->pend + t->max_piece) + 16;
        s->out = malloc(s->out_cap);
    }
    if (!s || !s->out) {
        free(s);
        dv_error_set(DV_ENOMEM, "out of memory");
        return NULL;
    }
    return s;
}

void dv_tokenizer_stream_free(dv_tokenizer_stream *s) {
    if (!s) return;
    free(s->out);
    free(s);
}

void dv_tokenizer_stream_emit(dv_tokenizer_stream *s, size_t *o, const char *bytes, size_t n) {
    DV_ASSERT(*o + n < s->out_cap);
    memcpy(s->out + *o, bytes, n);
    *o += n;
}

void dv_tokenizer_stream_drain(dv_tokenizer_stream *s, size_t *o, int final) {
    int i = 0;
    const size_t o0 = *o;
    while (i < s->n_pend) {
        int len = dv_utf8_char(s->pend + i, (size_t)(s->n_pend - i));
        if (len == 0 && !final) break;
        if (len <= 0) {
            dv_tokenizer_stream_emit(s, o, "\xEF\xBF\xBD", 3);
            // an unfinished character at the end of a run is one maximal subpart
            i += s->t->repair == DV_UTF8_REPAIR_PER_BYTE ? 1 : len < 0 ? -len : s->n_pend - i;
        } else {
            dv_tokenizer_stream_emit(s, o, (const char *)s->pend + i, (size_t)len);
            i += len;
        }
    }
    memmove(s->pend, s->pend + i, (size_t)(s->n_pend - i));
    s->n_pend -= i;
    if (*o > o0) s->at_start = 0; // text came out, so a later "▁" is a real space
}

static const char *push(dv_tokenizer_stream *s, int32_t id, int skip_special) {
    size_t o = 0;
    if (id >= 0 && id < s->t->vocab) s->t->ops->push(s, id, skip_special, &o); // invalid ids: nothing
    s->out[o] = 0;
    return s->out;
}

const char *dv_tokenizer_stream_push(dv_tokenizer_stream *s, int32_t id) { return push(s, id, 1); }

const char *dv_tokenizer_stream_flush(dv_tokenizer_stream *s) {
    size_t o = 0;
    dv_tokenizer_stream_drain(s, &o, 1);
    s->out[o] = 0;
    return s->out;
}

int dv_tokenizer_decode(dv_tokenizer *t, const int32_t *ids, int n, int skip_special, char *buf, size_t cap,
                        size_t *len) {
    *len = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab)
            return dv_error_set(DV_EINVAL, "token id %d at position %d is outside the vocabulary [0, %d)", ids[i], i,
                                t->vocab);
    dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 1);
    if (!s) return DV_ENOMEM;
    size_t o = 0;
    int rc = 0;
    for (int i = 0; i <= n; i++) {
        const char *piece = i < n ? push(s, ids[i], skip_special) : dv_tokenizer_stream_flush(s);
        size_t m = strlen(piece);
        if (!rc && o + m + 1 > cap) rc = dv_error_set(DV_EINVAL, "decoded text does not fit %zu bytes", cap);
        if (!rc) memcpy(buf + o, piece, m);
        o += m;
    }
    if (!rc) buf[o] = 0;
    *len = o; // on overflow: the size needed, less the NUL
    dv_tokenizer_stream_free(s);
    return rc;
}
