// tokenizer.c: added tokens on top of SentencePiece (HF tokenizer_config.json / added_tokens.json),
// encoding with special-token splitting, and streaming-safe UTF-8 decoding. See dv_tokenizer.h.
//
// Encoding is Hugging Face's legacy Llama behaviour: the text is split at literal added-token strings
// (leftmost match, longest at equal starts), every piece in between is encoded by SentencePiece on
// its own, so each gets a dummy-prefix "▁". Decoding is its inverse: the ids are cut into runs of
// SentencePiece pieces at BOS and at added tokens, and each run is decoded as sentencepiece's decode
// does (first piece loses its dummy-prefix space, byte pieces form UTF-8, invalid bytes -> U+FFFD).
// The batch decoder is the streaming decoder run over the whole sequence, so both agree by design.
#include "llm/dv_tokenizer.h"

#include "core/dv_error.h"
#include "core/dv_json.h"
#include "llm/dv_spm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct added_token {
    char *text; // owned, NUL-terminated
    size_t len;
    int id;
    int special;        // skipped by decode(skip_special) and by the stream
    int lstrip, rstrip; // HF AddedToken: swallow the whitespace before / after a literal match
} added_token;

struct dv_tokenizer {
    dv_spm *spm;
    int n_spm;          // SentencePiece pieces: ids [0, n_spm)
    added_token *added; // (n_added) owned
    int n_added;
    uint8_t first[256]; // first[c]: some added token starts with byte c (a cheap pre-filter for encode)
    int vocab, bos, eos, add_bos;
    int dummy_prefix; // the model prepends "▁", so decoding drops one leading space per run
    size_t max_piece; // longest piece/added text in bytes (sizes the stream buffer)
};

struct dv_tokenizer_stream {
    dv_tokenizer *t;
    int at_start;    // at the start of a SentencePiece run: its first "▁" is the dummy prefix
    uint8_t pend[4]; // bytes of an incomplete UTF-8 character (byte-fallback pieces)
    int n_pend;
    char *out; // (out_cap) the text returned by push/flush, owned, reused for every token
    size_t out_cap;
};

// ---- loading ----

static const added_token *find_added_id(const dv_tokenizer *t, int id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

static int add_token(dv_tokenizer *t, const char *text, int id, int special, int lstrip, int rstrip) {
    if (!text || !*text || id < 0) return 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return 0; // first definition wins (tokenizer_config.json)
    added_token *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
    if (!a) return dv_error_set(DV_ENOMEM, "out of memory");
    t->added = a;
    added_token *n = &a[t->n_added];
    if (!(n->text = strdup(text))) return dv_error_set(DV_ENOMEM, "out of memory");
    n->len = strlen(text);
    n->id = id;
    n->special = special;
    n->lstrip = lstrip;
    n->rstrip = rstrip;
    t->n_added++;
    t->first[(uint8_t)text[0]] = 1;
    if (id + 1 > t->vocab) t->vocab = id + 1;
    if (n->len > t->max_piece) t->max_piece = n->len;
    return 0;
}

// "bos_token": "<s>" or {"content": "<s>", ...}
static const char *token_string(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return dv_json_get_string(v, "content");
    return NULL;
}

static int flag(const cJSON *obj, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int read_hf_files(dv_tokenizer *t, const char *dir) {
    char path[4096];
    struct stat sb;
    int rc = 0;
    cJSON *cfg = NULL, *extra = NULL;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (stat(path, &sb) == 0) {
        if ((rc = dv_json_load(path, &cfg))) return rc;
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder"), *e;
        if (dec && !cJSON_IsObject(dec)) {
            rc = dv_error_set(DV_EFORMAT, "%s: added_tokens_decoder is not an object", path);
            goto done;
        }
        cJSON_ArrayForEach(e, dec) {
            char *end;
            long id = strtol(e->string, &end, 10);
            const char *content = dv_json_get_string(e, "content");
            if (!*e->string || *end || id < 0 || id > (1 << 24) || !content) {
                rc = dv_error_set(DV_EFORMAT, "%s: bad added token '%s'", path, e->string);
                goto done;
            }
            rc = add_token(t, content, (int)id, flag(e, "special", 1), flag(e, "lstrip", 0), flag(e, "rstrip", 0));
            if (rc) goto done;
        }
        int add_bos = 1;
        if ((rc = dv_json_get_bool_opt(cfg, "add_bos_token", path, &add_bos))) goto done;
        t->add_bos = add_bos;
        const char *b = token_string(cfg, "bos_token"), *s = token_string(cfg, "eos_token");
        if (b && dv_tokenizer_token_id(t, b) >= 0) t->bos = dv_tokenizer_token_id(t, b);
        if (s && dv_tokenizer_token_id(t, s) >= 0) t->eos = dv_tokenizer_token_id(t, s);
        // HF splits the text at every named special token too, even when an older config lists
        // them only as "bos_token": "<s>" without an added_tokens_decoder
        static const char *named[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
        for (size_t k = 0; k < sizeof named / sizeof *named; k++) {
            const char *str = token_string(cfg, named[k]);
            int id = str ? dv_tokenizer_token_id(t, str) : -1;
            if (id >= 0 && (rc = add_token(t, str, id, 1, 0, 0))) goto done;
        }
    }
    snprintf(path, sizeof path, "%s/added_tokens.json", dir);
    if (stat(path, &sb) == 0) {
        if ((rc = dv_json_load(path, &extra))) goto done;
        const cJSON *e;
        cJSON_ArrayForEach(e, extra) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (1 << 24)) {
                rc = dv_error_set(DV_EFORMAT, "%s: id of '%s' is not a token id", path, e->string);
                goto done;
            }
            if ((rc = add_token(t, e->string, (int)e->valuedouble, 1, 0, 0))) goto done;
        }
    }
done:
    cJSON_Delete(cfg);
    cJSON_Delete(extra);
    return rc;
}

int dv_tokenizer_open(const char *dir, dv_tokenizer **out) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    struct stat sb;
    if (stat(path, &sb)) return dv_error_set(DV_ENOTFOUND, "%s: not found (duovid needs a SentencePiece tokenizer)", path);
    dv_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return dv_error_set(DV_ENOMEM, "out of memory");
    int rc = dv_spm_load(path, &t->spm);
    if (rc) goto fail;
    t->vocab = t->n_spm = dv_spm_vocab_size(t->spm);
    t->bos = dv_spm_bos(t->spm);
    t->eos = dv_spm_eos(t->spm);
    t->add_bos = 1;
    t->dummy_prefix = dv_spm_adds_dummy_prefix(t->spm);
    for (int i = 0; i < t->n_spm; i++) {
        size_t n = strlen(dv_spm_piece(t->spm, i));
        if (n > t->max_piece) t->max_piece = n;
    }
    if ((rc = read_hf_files(t, dir))) goto fail;
    *out = t;
    return 0;
fail:
    dv_tokenizer_free(t);
    return rc;
}

void dv_tokenizer_free(dv_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->added);
    dv_spm_free(t->spm);
    free(t);
}

int dv_tokenizer_vocab_size(const dv_tokenizer *t) { return t->vocab; }
int dv_tokenizer_bos(const dv_tokenizer *t) { return t->bos; }
int dv_tokenizer_eos(const dv_tokenizer *t) { return t->eos; }
int dv_tokenizer_add_bos(const dv_tokenizer *t) { return t->add_bos; }

int dv_tokenizer_token_id(const dv_tokenizer *t, const char *s) {
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].text, s)) return t->added[i].id;
    for (int i = 0; i < t->n_spm; i++)
        if (!strcmp(dv_spm_piece(t->spm, i), s)) return i;
    return -1;
}

// ---- encoding ----

// Python's str.strip() set, ASCII part (HF strips with it for lstrip/rstrip added tokens)
static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

// The leftmost added token in [p, ...), the longest one where several start at the same byte.
static const added_token *next_added(const dv_tokenizer *t, const char *p, const char **at) {
    for (; *p; p++) {
        if (!t->first[(uint8_t)*p]) continue;
        const added_token *best = NULL;
        for (int i = 0; i < t->n_added; i++) {
            const added_token *a = &t->added[i];
            if ((!best || a->len > best->len) && !strncmp(p, a->text, a->len)) best = a;
        }
        if (best) {
            *at = p;
            return best;
        }
    }
    return NULL;
}

int dv_tokenizer_encode(dv_tokenizer *t, const char *text, int add_bos, int32_t *ids, int max_ids, int *n_ids) {
    int n = 0, rc;
    if (add_bos && t->bos >= 0) {
        if (n < max_ids) ids[n] = t->bos;
        n++;
    }
    const char *p = text;
    while (*p) {
        const char *hit = NULL;
        const added_token *a = next_added(t, p, &hit);
        const char *seg_end = a ? hit : p + strlen(p);
        if (a && a->lstrip)
            while (seg_end > p && is_space(seg_end[-1])) seg_end--;
        if (seg_end > p) {
            // past max_ids only the count matters: let SentencePiece write nothing
            int m = 0, room = max_ids - n > 0 ? max_ids - n : 0;
            if ((rc = dv_spm_encode(t->spm, p, (size_t)(seg_end - p), room ? ids + n : NULL, room, &m))) return rc;
            n += m;
        }
        if (!a) break;
        if (n < max_ids) ids[n] = a->id;
        n++;
        p = hit + a->len;
        if (a->rstrip)
            while (is_space(*p)) p++;
    }
    *n_ids = n;
    if (n > max_ids) return dv_error_set(DV_EINVAL, "the text needs %d tokens, room for %d", n, max_ids);
    return 0;
}

// ---- decoding ----

dv_tokenizer_stream *dv_tokenizer_stream_init(dv_tokenizer *t, int at_start) {
    dv_tokenizer_stream *s = calloc(1, sizeof *s);
    if (s) {
        s->t = t;
        s->at_start = at_start;
        // one push emits at most: the held-back bytes as U+FFFD (3 bytes each) and then one piece
        // (U+2581 shrinks to a space) or added-token text, or " ⁇ " (5 bytes) for <unk>
        s->out_cap = 3 * sizeof s->pend + t->max_piece + 16;
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

// Checks the UTF-8 character starting at b[0] (n bytes available), as sentencepiece's
// IsValidDecodeUTF8 does: shortest form, no surrogates, at most U+10FFFF. Returns its length when
// complete and valid, 0 when the bytes so far are a valid prefix, -1 when b[0] cannot start one.
static int utf8_char(const uint8_t *b, int n) {
    const uint8_t c = b[0];
    int need;
    uint8_t lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return -1;
    for (int k = 1; k < need; k++) {
        if (k >= n) return 0;
        if (k == 1 ? b[1] < lo || b[1] > hi : (b[k] & 0xC0) != 0x80) return -1;
    }
    return need;
}

static void emit(dv_tokenizer_stream *s, size_t *o, const char *bytes, size_t n) {
    DV_ASSERT(*o + n < s->out_cap);
    memcpy(s->out + *o, bytes, n);
    *o += n;
}

// Moves complete characters from pend to out; a byte that cannot start a valid character becomes
// U+FFFD. An incomplete tail stays pending unless `final` (the byte run ended).
static void drain(dv_tokenizer_stream *s, size_t *o, int final) {
    int i = 0;
    const size_t o0 = *o;
    while (i < s->n_pend) {
        int len = utf8_char(s->pend + i, s->n_pend - i);
        if (len == 0 && !final) break;
        if (len <= 0) {
            emit(s, o, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            emit(s, o, (const char *)s->pend + i, (size_t)len);
            i += len;
        }
    }
    memmove(s->pend, s->pend + i, (size_t)(s->n_pend - i));
    s->n_pend -= i;
    if (*o > o0) s->at_start = 0; // text came out, so a later "▁" is a real space
}

static const char *push(dv_tokenizer_stream *s, int32_t id, int skip_special) {
    size_t o = 0;
    dv_tokenizer *t = s->t;
    uint8_t byte;
    if (id < 0 || id >= t->vocab) {
        // invalid ids produce nothing (decode rejects them up front)
    } else if (id >= t->n_spm || (find_added_id(t, id) && !dv_spm_is_control(t->spm, id) &&
                                  strcmp(find_added_id(t, id)->text, dv_spm_piece(t->spm, id)))) {
        // an added token (ids past the SentencePiece vocabulary, or one that renames a piece):
        // it ends the byte run and the SentencePiece run; the next run has its own dummy prefix
        const added_token *a = find_added_id(t, id);
        drain(s, &o, 1);
        if (a && !(skip_special && a->special)) emit(s, &o, a->text, a->len);
        s->at_start = 1;
    } else if (dv_spm_is_byte(t->spm, id, &byte)) {
        if (s->n_pend == (int)sizeof s->pend) drain(s, &o, 1); // cannot happen: drain keeps < 4
        s->pend[s->n_pend++] = byte;
        drain(s, &o, 0);
    } else if (dv_spm_is_control(t->spm, id)) {
        // BOS/EOS/pad are invisible but end a byte run (as in sentencepiece); BOS starts a new run
        drain(s, &o, 1);
        if (id == t->bos) s->at_start = 1;
    } else {
        drain(s, &o, 1);
        const char *piece = dv_spm_is_unknown(t->spm, id) ? " \xE2\x81\x87 " : dv_spm_piece(t->spm, id);
        if (s->at_start && t->dummy_prefix && !strncmp(piece, "\xE2\x96\x81", 3)) piece += 3;
        for (const char *c = piece; *c;) {
            if (!strncmp(c, "\xE2\x96\x81", 3)) { // U+2581 "▁" is a space
                emit(s, &o, " ", 1);
                c += 3;
            } else {
                emit(s, &o, c++, 1);
            }
        }
        s->at_start = 0; // even "▁" alone: it consumed the dummy prefix
    }
    s->out[o] = 0;
    return s->out;
}

const char *dv_tokenizer_stream_push(dv_tokenizer_stream *s, int32_t id) { return push(s, id, 1); }

const char *dv_tokenizer_stream_flush(dv_tokenizer_stream *s) {
    size_t o = 0;
    drain(s, &o, 1);
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
