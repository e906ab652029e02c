// tokenizer_sp.c: the SentencePiece dv_tokenizer: added tokens on top of SentencePiece (HF
// tokenizer_config.json / added_tokens.json), encoding with special-token splitting, and the
// streaming decoder's per-token step. See dv_tokenizer.h.
//
// Encoding is Hugging Face's legacy Llama behaviour: the text is split at literal added-token strings
// (leftmost match, longest at equal starts), every piece in between is encoded by SentencePiece on
// its own, so each gets a dummy-prefix "▁". Decoding is its inverse: the ids are cut into runs of
// SentencePiece pieces at BOS and at added tokens, and each run is decoded as sentencepiece's decode
// does (first piece loses its dummy-prefix space, byte pieces form UTF-8, invalid bytes -> U+FFFD).
#include "llm/tokenizer_internal.h"

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

typedef struct sp_tokenizer {
    dv_spm *spm;
    int n_spm;          // SentencePiece pieces: ids [0, n_spm)
    added_token *added; // (n_added) owned
    int n_added;
    uint8_t first[256]; // first[c]: some added token starts with byte c (a cheap pre-filter for encode)
    int vocab, bos, eos, add_bos;
    int dummy_prefix; // the model prepends "▁", so decoding drops one leading space per run
    size_t max_piece; // longest piece/added text in bytes (sizes the stream buffer)
} sp_tokenizer;

// ---- loading ----

static int sp_token_id(const void *impl, const char *s);

static const added_token *find_added_id(const sp_tokenizer *t, int id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

static int add_token(sp_tokenizer *t, const char *text, int id, int special, int lstrip, int rstrip) {
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

static int read_hf_files(sp_tokenizer *t, const char *dir) {
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
            rc = add_token(t, content, (int)id, dv_tokenizer_cfg_flag(e, "special", 1), dv_tokenizer_cfg_flag(e, "lstrip", 0), dv_tokenizer_cfg_flag(e, "rstrip", 0));
            if (rc) goto done;
        }
        int add_bos = 1;
        if ((rc = dv_json_get_bool_opt(cfg, "add_bos_token", path, &add_bos))) goto done;
        t->add_bos = add_bos;
        const char *b = dv_tokenizer_cfg_token(cfg, "bos_token"), *s = dv_tokenizer_cfg_token(cfg, "eos_token");
        if (b && sp_token_id(t, b) >= 0) t->bos = sp_token_id(t, b);
        if (s && sp_token_id(t, s) >= 0) t->eos = sp_token_id(t, s);
        // HF splits the text at every named special token too, even when an older config lists
        // them only as "bos_token": "<s>" without an added_tokens_decoder
        static const char *named[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
        for (size_t k = 0; k < sizeof named / sizeof *named; k++) {
            const char *str = dv_tokenizer_cfg_token(cfg, named[k]);
            int id = str ? sp_token_id(t, str) : -1;
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

static void sp_free(void *impl) {
    sp_tokenizer *t = impl;
    if (!t) return;
    for (int i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->added);
    dv_spm_free(t->spm);
    free(t);
}

static int sp_token_id(const void *impl, const char *s) {
    const sp_tokenizer *t = impl;
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].text, s)) return t->added[i].id;
    for (int i = 0; i < t->n_spm; i++)
        if (!strcmp(dv_spm_piece(t->spm, i), s)) return i;
    return -1;
}

static const char *sp_piece(const void *impl, int id) {
    const sp_tokenizer *t = impl;
    const added_token *a = find_added_id(t, id);
    return a ? a->text : id < t->n_spm ? dv_spm_piece(t->spm, id) : NULL;
}

// ---- encoding ----

// Python's str.strip() set, ASCII part (HF strips with it for lstrip/rstrip added tokens)
static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

// The leftmost added token in [p, ...), the longest one where several start at the same byte.
static const added_token *next_added(const sp_tokenizer *t, const char *p, const char **at) {
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

static int sp_encode(void *impl, const char *text, int add_bos, int32_t *ids, int max_ids, int *n_ids) {
    sp_tokenizer *t = impl;
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

static void sp_push(dv_tokenizer_stream *s, int32_t id, int skip_special, size_t *o) {
    const sp_tokenizer *t = s->t->impl;
    uint8_t byte;
    if (id >= t->n_spm || (find_added_id(t, id) && !dv_spm_is_control(t->spm, id) &&
                                  strcmp(find_added_id(t, id)->text, dv_spm_piece(t->spm, id)))) {
        // an added token (ids past the SentencePiece vocabulary, or one that renames a piece):
        // it ends the byte run and the SentencePiece run; the next run has its own dummy prefix
        const added_token *a = find_added_id(t, id);
        dv_tokenizer_stream_drain(s, o, 1);
        if (a && !(skip_special && a->special)) dv_tokenizer_stream_emit(s, o, a->text, a->len);
        s->at_start = 1;
    } else if (dv_spm_is_byte(t->spm, id, &byte)) {
        if (s->n_pend == (int)sizeof s->pend) dv_tokenizer_stream_drain(s, o, 1); // cannot happen: drain keeps < 4
        s->pend[s->n_pend++] = byte;
        dv_tokenizer_stream_drain(s, o, 0);
    } else if (dv_spm_is_control(t->spm, id)) {
        // BOS/EOS/pad are invisible but end a byte run (as in sentencepiece); BOS starts a new run
        dv_tokenizer_stream_drain(s, o, 1);
        if (id == t->bos) s->at_start = 1;
    } else {
        dv_tokenizer_stream_drain(s, o, 1);
        const char *piece = dv_spm_is_unknown(t->spm, id) ? " \xE2\x81\x87 " : dv_spm_piece(t->spm, id);
        if (s->at_start && t->dummy_prefix && !strncmp(piece, "\xE2\x96\x81", 3)) piece += 3;
        for (const char *c = piece; *c;) {
            if (!strncmp(c, "\xE2\x96\x81", 3)) { // U+2581 "▁" is a space
                dv_tokenizer_stream_emit(s, o, " ", 1);
                c += 3;
            } else {
                dv_tokenizer_stream_emit(s, o, c++, 1);
            }
        }
        s->at_start = 0; // even "▁" alone: it consumed the dummy prefix
    }
}

static const dv_tokenizer_ops sp_ops = {
    .kind = "sentencepiece",
    .free = sp_free,
    .encode = sp_encode,
    .token_id = sp_token_id,
    .piece = sp_piece,
    .push = sp_push,
};

int dv_tokenizer_open_sp(const char *path, const char *dir, dv_tokenizer *out) {
    sp_tokenizer *t = calloc(1, sizeof *t);
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
    *out = (dv_tokenizer){.ops = &sp_ops, .impl = t, .vocab = t->vocab, .bos = t->bos, .eos = t->eos,
                          .add_bos = t->add_bos, .max_piece = t->max_piece, .repair = DV_UTF8_REPAIR_PER_BYTE};
    return 0;
fail:
    sp_free(t);
    return rc;
}

