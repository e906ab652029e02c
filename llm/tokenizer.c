// tokenizer.c: added tokens on top of SentencePiece (HF tokenizer_config.json / added_tokens.json),
// encoding with special-token splitting, and streaming-safe UTF-8 decoding. See dv_tokenizer.h.
#include "llm/dv_tokenizer.h"

#include "core/dv_error.h"
#include "core/dv_json.h"
#include "llm/dv_spm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct added_token {
    char *text;
    int id;
    int special;
} added_token;

struct dv_tokenizer {
    dv_spm *spm;
    added_token *added; // owned
    int n_added;
    int vocab, bos, eos, add_bos;
    size_t max_piece; // longest piece/added text in bytes
};

struct dv_tokenizer_stream {
    dv_tokenizer *t;
    int at_start;     // nothing emitted yet and the leading dummy space must go
    uint8_t pend[8];  // bytes of an incomplete UTF-8 character
    int n_pend;
    char *out;        // returned text, owned
    size_t out_cap;
};

static const added_token *find_added_id(const dv_tokenizer *t, int id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

static int add_token(dv_tokenizer *t, const char *text, int id, int special) {
    if (!text || !*text || id < 0) return 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return 0; // first definition wins (tokenizer_config.json)
    added_token *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
    if (!a) return dv_error_set(DV_ENOMEM, "out of memory");
    t->added = a;
    if (!(a[t->n_added].text = strdup(text))) return dv_error_set(DV_ENOMEM, "out of memory");
    a[t->n_added].id = id;
    a[t->n_added].special = special;
    t->n_added++;
    if (id + 1 > t->vocab) t->vocab = id + 1;
    if (strlen(text) > t->max_piece) t->max_piece = strlen(text);
    return 0;
}

// "bos_token": "<s>" or {"content": "<s>", ...}
static const char *token_string(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return dv_json_get_string(v, "content");
    return NULL;
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
            if (*end || id < 0 || id > (1 << 24) || !content) {
                rc = dv_error_set(DV_EFORMAT, "%s: bad added token '%s'", path, e->string);
                goto done;
            }
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "special");
            if ((rc = add_token(t, content, (int)id, !sp || cJSON_IsTrue(sp)))) goto done;
        }
        int add_bos = 1;
        if ((rc = dv_json_get_bool_opt(cfg, "add_bos_token", path, &add_bos))) goto done;
        t->add_bos = add_bos;
        const char *b = token_string(cfg, "bos_token"), *s = token_string(cfg, "eos_token");
        if (b && dv_tokenizer_token_id(t, b) >= 0) t->bos = dv_tokenizer_token_id(t, b);
        if (s && dv_tokenizer_token_id(t, s) >= 0) t->eos = dv_tokenizer_token_id(t, s);
    }
    snprintf(path, sizeof path, "%s/added_tokens.json", dir);
    if (stat(path, &sb) == 0) {
        if ((rc = dv_json_load(path, &extra))) goto done;
        const cJSON *e;
        cJSON_ArrayForEach(e, extra) {
            if (!cJSON_IsNumber(e)) {
                rc = dv_error_set(DV_EFORMAT, "%s: id of '%s' is not a number", path, e->string);
                goto done;
            }
            if ((rc = add_token(t, e->string, (int)e->valuedouble, 1))) goto done;
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
    t->vocab = dv_spm_vocab_size(t->spm);
    t->bos = dv_spm_bos(t->spm);
    t->eos = dv_spm_eos(t->spm);
    t->add_bos = 1;
    for (int i = 0; i < t->vocab; i++) {
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

int dv_tokenizer_token_id(const dv_tokenizer *t, const char *s) {
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].text, s)) return t->added[i].id;
    const int n = dv_spm_vocab_size(t->spm);
    for (int i = 0; i < n; i++)
        if (!strcmp(dv_spm_piece(t->spm, i), s)) return i;
    return -1;
}

int dv_tokenizer_encode(dv_tokenizer *t, const char *text, int add_bos, int32_t *ids, int max_ids, int *n_ids) {
    int n = 0, rc;
    if (add_bos && t->bos >= 0) {
        if (n < max_ids) ids[n] = t->bos;
        n++;
    }
    const char *p = text;
    while (*p) {
        // the leftmost added token; at equal positions the longest
        const char *best = NULL;
        const added_token *bt = NULL;
        for (int i = 0; i < t->n_added; i++) {
            const char *hit = strstr(p, t->added[i].text);
            if (hit && (!best || hit < best || (hit == best && strlen(t->added[i].text) > strlen(bt->text)))) {
                best = hit;
                bt = &t->added[i];
            }
        }
        const char *seg_end = best ? best : p + strlen(p);
        if (seg_end > p) {
            int m = 0, room = max_ids - n > 0 ? max_ids - n : 0;
            if ((rc = dv_spm_encode(t->spm, p, (size_t)(seg_end - p), ids + (room ? n : 0), room, &m))) return rc;
            n += m;
        }
        if (!best) break;
        if (n < max_ids) ids[n] = bt->id;
        n++;
        p = best + strlen(bt->text);
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
        s->at_start = at_start && dv_spm_adds_dummy_prefix(t->spm);
        // a piece expands to at most 3 bytes per byte of its spelling (U+2581 -> ' ' shrinks), plus
        // held-back bytes as U+FFFD (3 bytes each)
        s->out_cap = 3 * t->max_piece + 3 * sizeof s->pend + 16;
        s->out = malloc(s->out_cap);
    }
    if (!s || !s->out) {
        if (s) free(s);
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

// Expected length of a UTF-8 sequence from its lead byte; 0 for an invalid lead.
static int utf8_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

static void emit(dv_tokenizer_stream *s, size_t *o, const char *bytes, size_t n) {
    DV_ASSERT(*o + n < s->out_cap);
    memcpy(s->out + *o, bytes, n);
    *o += n;
}

// Moves complete characters from pend to out; invalid bytes become U+FFFD; an incomplete tail
// stays pending unless `final`.
static void drain(dv_tokenizer_stream *s, size_t *o, int final) {
    int i = 0;
    while (i < s->n_pend) {
        int need = utf8_len(s->pend[i]);
        if (need == 0) {
            emit(s, o, "\xEF\xBF\xBD", 3);
            i++;
            continue;
        }
        if (i + need > s->n_pend) {
            // check the continuation bytes we have; an early invalid one makes the lead invalid
            int ok = 1;
            for (int k = i + 1; k < s->n_pend; k++) ok &= (s->pend[k] & 0xC0) == 0x80;
            if (ok && !final) break;
            emit(s, o, "\xEF\xBF\xBD", 3);
            i++;
            continue;
        }
        int ok = 1;
        for (int k = 1; k < need; k++) ok &= (s->pend[i + k] & 0xC0) == 0x80;
        if (!ok) {
            emit(s, o, "\xEF\xBF\xBD", 3);
            i++;
            continue;
        }
        emit(s, o, (const char *)s->pend + i, (size_t)need);
        i += need;
    }
    memmove(s->pend, s->pend + i, (size_t)(s->n_pend - i));
    s->n_pend -= i;
}

static void push_byte(dv_tokenizer_stream *s, size_t *o, uint8_t b) {
    if (s->n_pend == (int)sizeof s->pend) drain(s, o, 1);
    s->pend[s->n_pend++] = b;
    drain(s, o, 0);
}

static const char *push(dv_tokenizer_stream *s, int32_t id, int skip_special) {
    size_t o = 0;
    dv_tokenizer *t = s->t;
    const int n_spm = dv_spm_vocab_size(t->spm);
    const added_token *a = find_added_id(t, id);
    uint8_t byte;
    if (id < 0 || id >= t->vocab) {
        // invalid ids produce nothing
    } else if (id < n_spm && dv_spm_is_control(t->spm, id)) {
        // BOS/EOS/pad: never text
    } else if (id >= n_spm || (a && !dv_spm_is_unknown(t->spm, id) && !dv_spm_is_byte(t->spm, id, &byte) &&
                               strcmp(a->text, dv_spm_piece(t->spm, id)))) {
        if (a && !(skip_special && a->special)) {
            drain(s, &o, 1);
            emit(s, &o, a->text, strlen(a->text));
            s->at_start = 0;
        }
    } else if (dv_spm_is_byte(t->spm, id, &byte)) {
        push_byte(s, &o, byte);
        if (o) s->at_start = 0;
    } else {
        const char *piece = dv_spm_is_unknown(t->spm, id) ? " \xE2\x81\x87 " : dv_spm_piece(t->spm, id);
        drain(s, &o, 1);
        for (const char *c = piece; *c;) {
            if (!strncmp(c, "\xE2\x96\x81", 3)) { // U+2581 "▁" is a space
                if (!s->at_start) emit(s, &o, " ", 1);
                c += 3;
            } else {
                emit(s, &o, c, 1);
                c++;
            }
            s->at_start = 0;
        }
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
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab)
            return dv_error_set(DV_EINVAL, "token id %d at position %d is outside the vocabulary [0, %d)", ids[i], i,
                                t->vocab);
    dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 1);
    if (!s) return DV_ENOMEM;
    size_t o = 0;
    int rc = 0;
    for (int i = 0; i <= n && !rc; i++) {
        const char *piece = i < n ? push(s, ids[i], skip_special) : dv_tokenizer_stream_flush(s);
        size_t m = strlen(piece);
        if (o + m + 1 > cap) rc = dv_error_set(DV_EINVAL, "decoded text does not fit %zu bytes", cap);
        else memcpy(buf + o, piece, m);
        o += m;
    }
    if (!rc) buf[o] = 0;
    *len = o;
    dv_tokenizer_stream_free(s);
    return rc;
}
