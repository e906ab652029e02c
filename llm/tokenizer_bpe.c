// tokenizer_bpe.c: the byte-level BPE dv_tokenizer, from a Hugging Face tokenizer.json (model BPE)
// or from vocab.json + merges.txt (GPT-2 style). See dv_tokenizer.h for the pipeline.
//
// The vocabulary is held twice over: each id's spelling as the file writes it (byte-level
// characters, "Ġthe"), and the raw bytes it stands for (" the"). The pre-tokenizer ends with
// ByteLevel, whose byte -> character mapping is a bijection, so the model runs on raw bytes: a
// piece starts as one symbol per byte and the merges (a, b) -> ab are applied lowest rank first,
// leftmost first at equal rank, as HF's word merging does with its priority queue.
#include "llm/tokenizer_internal.h"

#include "core/dv_error.h"
#include "core/dv_json.h"
#include "llm/bpe_pretok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#define XXH_INLINE_ALL // the word cache hashes every piece: inline, not a library call
#include <xxhash.h>

#define MAX_VOCAB (1 << 22)

typedef struct bpe_added {
    char *text; // owned: the content as written
    size_t len;
    int id;
    int special, lstrip, rstrip, single_word, normalized;
    char *match; // owned: what is matched (the content, normalized when `normalized`)
    size_t match_len;
} bpe_added;

// open addressing over ids; the key of a slot is the id's spelling or bytes
typedef struct id_table {
    int32_t *slot; // (mask + 1) ids, -1 empty
    uint32_t mask;
} id_table;

typedef struct sym {
    int32_t id;
    int32_t prev, next; // -1 at the ends
    uint32_t len;       // bytes covered; 0 once merged into its left neighbour
} sym;

typedef struct merge_cand {
    int32_t rank, pos, id;
} merge_cand;

// A cache of short words and their ids: text repeats its words, and the merges of a word depend on
// its bytes alone (HF keeps such a cache too). Two-way set associative (the two entries of a set
// share 128 bytes), so two frequent words whose hashes meet both stay; one entry is one cache line.
#define CACHE_SETS 8192
#define CACHE_KEY 22
#define CACHE_IDS 8
typedef struct __attribute__((aligned(64))) cache_entry { // one cache line
    uint64_t hash;
    uint8_t len, n; // key bytes (0: empty), ids
    char key[CACHE_KEY];
    int32_t ids[CACHE_IDS];
} cache_entry;

// Words of at most SHORT_WORD symbols merge on flat arrays (a linear scan for the lowest rank, as
// tiktoken does): for the few symbols of a word that beats the heap, which longer words use.
#define SHORT_WORD 48

typedef struct bpe {
    int n_ids;        // max id + 1 over the model and the added tokens
    char **spell;     // (n_ids) owned spellings, NULL for holes
    uint32_t *boff;   // (n_ids) offset of each id's bytes in `bytes`
    uint32_t *blen;   // (n_ids) their length
    uint8_t *special; // (n_ids) 1 for special added tokens (skipped by decode(skip_special))
    char *bytes;      // (bytes_len) every id's decoded bytes
    size_t bytes_len;
    id_table by_spell, by_bytes; // model tokens by spelling; byte-level model tokens by bytes
    uint8_t *byte_level;         // (n_ids) the spelling is all byte-level characters
    int32_t byte_id[256];        // the one-byte token of each byte, -1 when missing
    // merges: (left id, right id) -> rank, merged id
    uint64_t *mkey; // (mmask + 1) key (left << 32 | right) + 1, 0 empty
    int32_t *mrank, *mnew;
    uint32_t mmask;
    int unk, fuse_unk, ignore_merges, byte_fallback;
    bpe_added *added; // (n_added)
    int n_added;
    uint8_t first_raw[256], first_norm[256]; // some raw / normalized added token starts with byte c
    int only_raw, only_norm; // the one byte that starts every token of the set; -1 none, -2 several
    int32_t *prefix, *suffix;                // post-processor special tokens around the text
    int n_prefix, n_suffix;
    dv_bpe_pretok *pre;
    // scratch, grown as needed and reused (allocated once, not per token)
    char *clean, *norm; // (clean_cap, norm_cap) repaired input, normalized segment
    size_t clean_cap, norm_cap;
    dv_bpe_pieces pieces;
    sym *syms; // (sym_cap)
    merge_cand *heap; // (3 * sym_cap)
    size_t sym_cap;
    cache_entry *cache; // (2 * CACHE_SETS) set i is entries 2i, 2i + 1
} bpe;

typedef struct out_ids {
    int32_t *ids;
    int max, n;
} out_ids;

static void put(out_ids *o, int32_t id) {
    if (o->n < o->max) o->ids[o->n] = id;
    o->n++;
}

// ---- the byte-level alphabet (GPT-2's bytes_to_unicode) ----

static int byte_of_char[324]; // code point -> byte, -1 when not in the alphabet
static int32_t char_of_byte[256];

static void alphabet_init(void) {
    if (char_of_byte['A']) return;
    int n = 0;
    for (int i = 0; i < 324; i++) byte_of_char[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        char_of_byte[b] = printable ? b : 256 + n++;
        byte_of_char[char_of_byte[b]] = b;
    }
}

// Decodes a spelling into bytes (dst holds >= strlen(s) bytes): 1 when every character is in the
// byte-level alphabet; else 0 and dst gets the spelling's own bytes (HF's ByteLevel decoder does so).
static int spelling_bytes(const char *s, size_t n, char *dst, size_t *out_len) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = dv_utf8_char((const uint8_t *)s + i, n - i) > 0 ? dv_bpe_utf8_next(s + i, n - i, &cp) : 0;
        if (k <= 0 || cp >= 324 || byte_of_char[cp] < 0) {
            memcpy(dst, s, n);
            *out_len = n;
            return 0;
        }
        dst[o++] = (char)byte_of_char[cp];
        i += (size_t)k;
    }
    *out_len = o;
    return 1;
}

// ---- hash tables ----

static int table_init(id_table *t, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    t->slot = malloc(cap * sizeof *t->slot);
    if (!t->slot) return dv_error_set(DV_ENOMEM, "out of memory");
    memset(t->slot, 0xff, cap * sizeof *t->slot);
    t->mask = (uint32_t)(cap - 1);
    return 0;
}

static const char *key_of(const bpe *m, const id_table *t, int32_t id, size_t *len) {
    if (t == &m->by_spell) {
        *len = strlen(m->spell[id]);
        return m->spell[id];
    }
    *len = m->blen[id];
    return m->bytes + m->boff[id];
}

static int32_t table_find(const bpe *m, const id_table *t, const char *k, size_t n) {
    for (uint32_t h = (uint32_t)XXH3_64bits(k, n) & t->mask;; h = (h + 1) & t->mask) {
        int32_t id = t->slot[h];
        if (id < 0) return -1;
        size_t len;
        const char *key = key_of(m, t, id, &len);
        if (len == n && !memcmp(key, k, n)) return id;
    }
}

static void table_put(const bpe *m, id_table *t, int32_t id) { // the first id of a key stays
    size_t n;
    const char *k = key_of(m, t, id, &n);
    uint32_t h = (uint32_t)XXH3_64bits(k, n) & t->mask;
    for (; t->slot[h] >= 0; h = (h + 1) & t->mask) {
        size_t len;
        const char *key = key_of(m, t, t->slot[h], &len);
        if (len == n && !memcmp(key, k, n)) return;
    }
    t->slot[h] = id;
}

static uint32_t merge_hash(uint64_t k) { return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32); }

static int merge_find(const bpe *m, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    const uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (uint32_t h = merge_hash(k) & m->mmask;; h = (h + 1) & m->mmask) {
        if (!m->mkey[h]) return 0;
        if (m->mkey[h] == k) {
            *rank = m->mrank[h];
            *id = m->mnew[h];
            return 1;
        }
    }
}

static void merge_put(bpe *m, int32_t a, int32_t b, int32_t rank, int32_t id) { // a later duplicate wins (HF)
    const uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t h = merge_hash(k) & m->mmask;
    while (m->mkey[h] && m->mkey[h] != k) h = (h + 1) & m->mmask;
    m->mkey[h] = k;
    m->mrank[h] = rank;
    m->mnew[h] = id;
}

// ---- the model ----

static int scratch(bpe *m, size_t n) {
    if (n <= m->sym_cap) return 0;
    size_t cap = m->sym_cap ? m->sym_cap : 64;
    while (cap < n) cap *= 2;
    sym *s = realloc(m->syms, cap * sizeof *s);
    if (s) m->syms = s;
    merge_cand *h = s ? realloc(m->heap, 3 * cap * sizeof *h) : NULL;
    if (!h) return dv_error_set(DV_ENOMEM, "out of memory");
    m->heap = h;
    m->sym_cap = cap;
    return 0;
}

static int cand_less(const merge_cand *a, const merge_cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(merge_cand *h, int *n, merge_cand c) {
    int i = (*n)++;
    while (i > 0 && cand_less(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static merge_cand heap_pop(merge_cand *h, int *n) {
    merge_cand top = h[0], last = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(&h[c + 1], &h[c])) c++;
        if (!cand_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(const bpe *m, merge_cand *h, int *nh, int pos) {
    const sym *s = m->syms;
    int32_t rank, id;
    if (pos >= 0 && s[pos].next >= 0 && merge_find(m, s[pos].id, s[s[pos].next].id, &rank, &id))
        heap_push(h, nh, (merge_cand){rank, pos, id});
}

// The rank and result of merging ids a and b, rank INT32_MAX when no merge applies.
static int32_t pair_rank(const bpe *m, int32_t a, int32_t b, int32_t *id) {
    int32_t rank;
    return merge_find(m, a, b, &rank, id) ? rank : INT32_MAX;
}

// Merges ns <= SHORT_WORD symbols in place (id[], ns updated): the lowest rank first, the leftmost
// at equal rank, which is the order of HF's priority queue.
static void merge_short(const bpe *m, int32_t *id, int *ns) {
    int32_t rank[SHORT_WORD], nid[SHORT_WORD]; // (ns - 1) of pair i, i + 1
    int n = *ns;
    for (int i = 0; i + 1 < n; i++) rank[i] = pair_rank(m, id[i], id[i + 1], &nid[i]);
    while (n > 1) {
        int best = 0;
        for (int i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == INT32_MAX) break;
        id[best] = nid[best];
        n--;
        for (int i = best + 1; i < n; i++) id[i] = id[i + 1];
        for (int i = best + 1; i + 1 < n; i++) rank[i] = rank[i + 1], nid[i] = nid[i + 1];
        if (best > 0) rank[best - 1] = pair_rank(m, id[best - 1], id[best], &nid[best - 1]);
        if (best + 1 < n) rank[best] = pair_rank(m, id[best], id[best + 1], &nid[best]);
    }
    *ns = n;
}

// Merges ns symbols on the linked list m->syms with a heap of candidate pairs; returns the index of
// the first symbol (follow .next).
static int merge_long(bpe *m, int ns) {
    sym *s = m->syms;
    merge_cand *h = m->heap;
    int nh = 0;
    for (int i = 0; i + 1 < ns; i++) push_pair(m, h, &nh, i);
    while (nh) {
        merge_cand c = heap_pop(h, &nh);
        sym *a = &s[c.pos];
        if (!a->len || a->next < 0) continue;
        int32_t rank, id;
        if (!merge_find(m, a->id, s[a->next].id, &rank, &id) || id != c.id) continue; // stale
        sym *b = &s[a->next];
        a->id = c.id;
        a->len += b->len;
        a->next = b->next;
        b->len = 0;
        if (a->next >= 0) s[a->next].prev = c.pos;
        push_pair(m, h, &nh, a->prev);
        push_pair(m, h, &nh, c.pos);
    }
    return ns ? 0 : -1;
}

// Encodes one piece (raw bytes) into ids.
static int encode_word(bpe *m, const uint8_t *p, size_t n, out_ids *o) {
    if (m->ignore_merges) {
        int32_t id = table_find(m, &m->by_bytes, (const char *)p, n);
        if (id >= 0) {
            put(o, id);
            return 0;
        }
    }
    cache_entry *ce = NULL;
    if (n <= CACHE_KEY) {
        const uint64_t h = XXH3_64bits(p, n);
        cache_entry *set = &m->cache[2 * (h & (CACHE_SETS - 1))];
        for (int w = 0; w < 2; w++) {
            const cache_entry *e = &set[w];
            if (e->len == n && e->hash == h && !memcmp(e->key, p, n)) {
                for (int i = 0; i < e->n; i++) put(o, e->ids[i]);
                return 0;
            }
        }
        ce = !set[0].len ? &set[0] : !set[1].len ? &set[1] : &set[(h >> 40) & 1]; // an empty way, else either
        ce->hash = h;
        ce->len = 0; // filled below when the ids fit
    }
    int rc = scratch(m, n);
    if (rc) return rc;
    // one symbol per byte; a byte outside the vocabulary becomes the unknown token (fused), or
    // nothing (HF)
    int32_t ids[SHORT_WORD]; // (ns) the short path's symbols
    const int short_word = n <= SHORT_WORD;
    sym *s = m->syms;
    int ns = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = m->byte_id[p[i]];
        if (id < 0) {
            if (m->unk < 0) continue;
            if (m->fuse_unk && ns && (short_word ? ids[ns - 1] : s[ns - 1].id) == m->unk) {
                if (!short_word) s[ns - 1].len++;
                continue;
            }
            id = m->unk;
        }
        if (short_word) {
            ids[ns++] = id;
            continue;
        }
        s[ns] = (sym){.id = id, .prev = ns - 1, .next = -1, .len = 1};
        if (ns) s[ns - 1].next = ns;
        ns++;
    }
    int k = 0;
    if (short_word) {
        merge_short(m, ids, &ns);
        for (; k < ns; k++) put(o, ids[k]);
        if (ce && k <= CACHE_IDS) memcpy(ce->ids, ids, (size_t)k * sizeof *ids);
    } else {
        for (int i = merge_long(m, ns); i >= 0; i = s[i].next, k++) {
            put(o, s[i].id);
            if (ce && k < CACHE_IDS) ce->ids[k] = s[i].id;
        }
    }
    if (ce && k <= CACHE_IDS) {
        memcpy(ce->key, p, n);
        ce->len = (uint8_t)n;
        ce->n = (uint8_t)k;
    }
    return 0;
}

// Normalized text with no added tokens left: pre-tokenize, then BPE each piece.
static int encode_plain(bpe *m, const char *s, size_t n, out_ids *o) {
    if (!n) return 0;
    int rc = dv_bpe_pretok_run(m->pre, s, n, &m->pieces);
    for (int i = 0; !rc && i < m->pieces.n; i++)
        rc = encode_word(m, (const uint8_t *)m->pieces.buf + m->pieces.span[i][0], m->pieces.span[i][1], o);
    return rc;
}

// ---- added tokens (HF AddedVocabulary.find_matches) ----

static int32_t last_char(const char *s, size_t n) {
    size_t i = n - 1;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80) i--;
    int32_t cp;
    dv_bpe_utf8_next(s + i, n - i, &cp);
    return cp;
}

// The leftmost added token of the set at or after `from`, the longest at the same start.
static const bpe_added *next_added(const bpe *m, const char *s, size_t n, size_t from, int norm, size_t *at) {
    const uint8_t *first = norm ? m->first_norm : m->first_raw;
    const int only = norm ? m->only_norm : m->only_raw;
    for (size_t p = from; p < n; p++) {
        if (only >= 0) { // one first byte for the whole set (mostly '<'): memchr finds it
            const char *q = memchr(s + p, only, n - p);
            if (!q) return NULL;
            p = (size_t)(q - s);
        } else if (only == -1) {
            return NULL; // no added token in this set
        } else if (!first[(uint8_t)s[p]]) {
            continue;
        }
        const bpe_added *best = NULL;
        for (int i = 0; i < m->n_added; i++) {
            const bpe_added *a = &m->added[i];
            if (a->normalized == norm && (!best || a->match_len > best->match_len) && a->match_len <= n - p &&
                !memcmp(s + p, a->match, a->match_len))
                best = a;
        }
        if (best) {
            *at = p;
            return best;
        }
    }
    return NULL;
}

static int encode_raw_segment(bpe *m, const char *s, size_t n, out_ids *o);

// Cuts s at the added tokens of one set (norm: those matched on normalized text) and encodes the
// text between them: raw text goes on to normalization, normalized text to encode_plain.
static int split_added(bpe *m, const char *s, size_t n, int norm, out_ids *o) {
    size_t start_offset = 0, from = 0, ms;
    int rc = 0;
    const bpe_added *a;
    while (!rc && (a = next_added(m, s, n, from, norm, &ms))) {
        size_t me = ms + a->match_len, start = ms, stop = me;
        from = me;
        if (a->single_word) {
            int32_t after = 0;
            if (me < n) dv_bpe_utf8_next(s + me, n - me, &after);
            if ((ms > 0 && dv_bpe_is_word_char(last_char(s, ms))) || (me < n && dv_bpe_is_word_char(after))) continue;
        }
        if (a->lstrip) {
            size_t k = ms;
            while (k > 0) {
                size_t j = k - 1;
                while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
                int32_t cp;
                dv_bpe_utf8_next(s + j, k - j, &cp);
                if (!dv_bpe_is_white_space(cp)) break;
                k = j;
            }
            start = k;
        }
        if (start < start_offset) start = start_offset; // spaces an earlier match took already
        if (a->rstrip) {
            while (stop < n) {
                int32_t cp;
                int k = dv_bpe_utf8_next(s + stop, n - stop, &cp);
                if (!dv_bpe_is_white_space(cp)) break;
                stop += (size_t)k;
            }
        }
        if (start_offset < start)
            rc = norm ? encode_plain(m, s + start_offset, start - start_offset, o)
                      : encode_raw_segment(m, s + start_offset, start - start_offset, o);
        put(o, a->id);
        start_offset = stop;
        if (from < stop) from = stop;
    }
    if (!rc && start_offset < n)
        rc = norm ? encode_plain(m, s + start_offset, n - start_offset, o)
                  : encode_raw_segment(m, s + start_offset, n - start_offset, o);
    return rc;
}

// Text between raw added tokens: normalize, then cut at the normalized added tokens.
static int encode_raw_segment(bpe *m, const char *s, size_t n, out_ids *o) {
    if (!dv_bpe_has_normalizer(m->pre)) return split_added(m, s, n, 1, o);
    // the normalized text lives in m->norm until this segment is done (no nesting: the next
    // raw segment starts after it)
    long len = dv_bpe_normalize(m->pre, s, n, &m->norm, &m->norm_cap);
    if (len < 0) return (int)len;
    return split_added(m, m->norm, (size_t)len, 1, o);
}

static int bpe_encode(void *impl, const char *text, int add_special, int32_t *ids, int max_ids, int *n_ids) {
    bpe *m = impl;
    out_ids o = {.ids = ids, .max = max_ids};
    size_t n = strlen(text);
    const char *s = text;
    for (size_t i = 0; i < n;) { // invalid UTF-8: encode what Python's decode(errors="replace") makes
        uint64_t w;
        if (i + 8 <= n && (memcpy(&w, text + i, 8), !(w & 0x8080808080808080ull))) { // 8 ASCII bytes
            i += 8;
            continue;
        }
        int k = dv_utf8_char((const uint8_t *)text + i, n - i);
        if (k <= 0) {
            long len = dv_utf8_repair_copy(text, n, &m->clean, &m->clean_cap);
            if (len < 0) return dv_error_set(DV_ENOMEM, "out of memory");
            s = m->clean;
            n = (size_t)len;
            break;
        }
        i += (size_t)k;
    }
    if (add_special)
        for (int i = 0; i < m->n_prefix; i++) put(&o, m->prefix[i]);
    int rc = split_added(m, s, n, 0, &o);
    if (rc) return rc;
    if (add_special)
        for (int i = 0; i < m->n_suffix; i++) put(&o, m->suffix[i]);
    *n_ids = o.n;
    if (o.n > max_ids) return dv_error_set(DV_EINVAL, "the text needs %d tokens, room for %d", o.n, max_ids);
    return 0;
}

// ---- lookups and decoding ----

static const bpe_added *find_added(const bpe *m, int id) {
    for (int i = 0; i < m->n_added; i++)
        if (m->added[i].id == id) return &m->added[i];
    return NULL;
}

static int bpe_token_id(const void *impl, const char *s) {
    const bpe *m = impl;
    for (int i = 0; i < m->n_added; i++)
        if (!strcmp(m->added[i].text, s)) return m->added[i].id;
    return table_find(m, &m->by_spell, s, strlen(s));
}

static const char *bpe_piece(const void *impl, int id) {
    const bpe *m = impl;
    const bpe_added *a = find_added(m, id);
    return a ? a->text : m->spell[id];
}

// HF's ByteLevel decoder: every token's bytes join one byte run (special tokens that are skipped
// take no part); the run becomes text with U+FFFD per maximal invalid subpart.
static void bpe_push(dv_tokenizer_stream *s, int32_t id, int skip_special, size_t *o) {
    const bpe *m = s->t->impl;
    if (skip_special && m->special[id]) return;
    const char *b = m->bytes + m->boff[id];
    for (uint32_t i = 0; i < m->blen[id]; i++) {
        s->pend[s->n_pend++] = (uint8_t)b[i];
        dv_tokenizer_stream_drain(s, o, 0); // keeps at most 3 bytes pending
    }
}

static void bpe_free(void *impl) {
    bpe *m = impl;
    if (!m) return;
    for (int i = 0; m->spell && i < m->n_ids; i++) free(m->spell[i]);
    for (int i = 0; i < m->n_added; i++) {
        free(m->added[i].text);
        free(m->added[i].match);
    }
    free(m->added);
    free(m->spell);
    free(m->boff);
    free(m->blen);
    free(m->special);
    free(m->bytes);
    free(m->byte_level);
    free(m->by_spell.slot);
    free(m->by_bytes.slot);
    free(m->mkey);
    free(m->mrank);
    free(m->mnew);
    free(m->prefix);
    free(m->suffix);
    dv_bpe_pretok_free(m->pre);
    free(m->clean);
    free(m->norm);
    dv_bpe_pieces_free(&m->pieces);
    free(m->syms);
    free(m->heap);
    free(m->cache);
    free(m);
}

static const dv_tokenizer_ops bpe_ops = {
    .kind = "bpe",
    .free = bpe_free,
    .encode = bpe_encode,
    .token_id = bpe_token_id,
    .piece = bpe_piece,
    .push = bpe_push,
};

// ---- loading ----

typedef struct added_spec {
    const char *content;
    int id, special, lstrip, rstrip, single_word, normalized;
} added_spec;

// Builds the vocabulary arrays from (spelling, id) pairs of the model plus the added tokens.
static int build_vocab(bpe *m, const cJSON *vocab, const added_spec *added, int n_added, const char *what) {
    int n_ids = 0, n_vocab = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= MAX_VOCAB ||
            e->valuedouble != (double)(int)e->valuedouble)
            return dv_error_set(DV_EFORMAT, "%s: vocabulary entry '%s' has no valid id", what, e->string);
        if (e->valueint + 1 > n_ids) n_ids = e->valueint + 1;
        n_vocab++;
    }
    for (int i = 0; i < n_added; i++)
        if (added[i].id + 1 > n_ids) n_ids = added[i].id + 1;
    if (!n_vocab) return dv_error_set(DV_EFORMAT, "%s: the vocabulary is empty", what);
    m->n_ids = n_ids;
    m->spell = calloc((size_t)n_ids, sizeof *m->spell);
    m->boff = calloc((size_t)n_ids, sizeof *m->boff);
    m->blen = calloc((size_t)n_ids, sizeof *m->blen);
    m->special = calloc((size_t)n_ids, 1);
    m->byte_level = calloc((size_t)n_ids, 1);
    if (!m->spell || !m->boff || !m->blen || !m->special || !m->byte_level) return dv_error_set(DV_ENOMEM, "out of memory");
    size_t total = 0;
    cJSON_ArrayForEach(e, vocab) total += strlen(e->string);
    for (int i = 0; i < n_added; i++) total += strlen(added[i].content);
    if (!(m->bytes = malloc(total + 1))) return dv_error_set(DV_ENOMEM, "out of memory");
    int rc = table_init(&m->by_spell, (size_t)n_vocab);
    if (!rc) rc = table_init(&m->by_bytes, (size_t)n_vocab);
    if (rc) return rc;
    cJSON_ArrayForEach(e, vocab) {
        int id = e->valueint;
        if (m->spell[id]) continue; // a second spelling of an id: the first stays
        if (!(m->spell[id] = strdup(e->string))) return dv_error_set(DV_ENOMEM, "out of memory");
        size_t len;
        m->byte_level[id] = (uint8_t)spelling_bytes(e->string, strlen(e->string), m->bytes + m->bytes_len, &len);
        m->boff[id] = (uint32_t)m->bytes_len;
        m->blen[id] = (uint32_t)len;
        m->bytes_len += len;
        table_put(m, &m->by_spell, id);
        if (m->byte_level[id]) table_put(m, &m->by_bytes, id);
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        m->byte_id[b] = table_find(m, &m->by_bytes, &c, 1);
    }
    // added tokens decode through the same ByteLevel rule; their bytes override the model's
    if (!(m->added = calloc((size_t)n_added + 1, sizeof *m->added))) return dv_error_set(DV_ENOMEM, "out of memory");
    for (int i = 0; i < n_added; i++) {
        const added_spec *a = &added[i];
        if (!*a->content) return dv_error_set(DV_EFORMAT, "%s: added token %d is empty", what, a->id);
        bpe_added *t = &m->added[m->n_added++];
        *t = (bpe_added){.len = strlen(a->content), .id = a->id, .special = a->special, .lstrip = a->lstrip,
                         .rstrip = a->rstrip, .single_word = a->single_word, .normalized = a->normalized};
        if (!(t->text = strdup(a->content))) return dv_error_set(DV_ENOMEM, "out of memory");
        size_t len;
        spelling_bytes(a->content, t->len, m->bytes + m->bytes_len, &len);
        m->boff[a->id] = (uint32_t)m->bytes_len;
        m->blen[a->id] = (uint32_t)len;
        m->bytes_len += len;
        m->special[a->id] = (uint8_t)a->special;
    }
    return 0;
}

// Normalized added tokens are matched in normalized text, so their own text is normalized too.
static int prepare_added(bpe *m) {
    for (int i = 0; i < m->n_added; i++) {
        bpe_added *a = &m->added[i];
        if (a->normalized && dv_bpe_has_normalizer(m->pre)) {
            size_t cap = 0;
            long len = dv_bpe_normalize(m->pre, a->text, a->len, &a->match, &cap);
            if (len < 0) return (int)len;
            a->match_len = (size_t)len;
        } else {
            if (!(a->match = strdup(a->text))) return dv_error_set(DV_ENOMEM, "out of memory");
            a->match_len = a->len;
        }
        if (a->match_len) (a->normalized ? m->first_norm : m->first_raw)[(uint8_t)a->match[0]] = 1;
    }
    m->only_raw = m->only_norm = -1;
    for (int c = 0; c < 256; c++) {
        if (m->first_raw[c]) m->only_raw = m->only_raw == -1 ? c : -2;
        if (m->first_norm[c]) m->only_norm = m->only_norm == -1 ? c : -2;
    }
    return 0;
}

// One merge "a b" (or ["a", "b"]): the ids of a, b and of their concatenation.
static int add_merge(bpe *m, const char *a, size_t na, const char *b, size_t nb, int rank, const char *what,
                     char **buf, size_t *cap) {
    if (na + nb + 1 > *cap) {
        char *nbuf = realloc(*buf, *cap = 2 * (na + nb + 1));
        if (!nbuf) return dv_error_set(DV_ENOMEM, "out of memory");
        *buf = nbuf;
    }
    memcpy(*buf, a, na);
    memcpy(*buf + na, b, nb);
    int32_t ia = table_find(m, &m->by_spell, a, na), ib = table_find(m, &m->by_spell, b, nb),
            iab = table_find(m, &m->by_spell, *buf, na + nb);
    if (ia < 0 || ib < 0 || iab < 0)
        return dv_error_set(DV_EFORMAT, "%s: merge %d ('%.*s %.*s') uses a token that is not in the vocabulary", what,
                            rank, (int)na, a, (int)nb, b);
    merge_put(m, ia, ib, rank, iab);
    return 0;
}

static int merges_init(bpe *m, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    m->mkey = calloc(cap, sizeof *m->mkey);
    m->mrank = malloc(cap * sizeof *m->mrank);
    m->mnew = malloc(cap * sizeof *m->mnew);
    if (!m->mkey || !m->mrank || !m->mnew) return dv_error_set(DV_ENOMEM, "out of memory");
    m->mmask = (uint32_t)(cap - 1);
    return 0;
}

static int parse_merges_json(bpe *m, const cJSON *merges, const char *what) {
    if (!cJSON_IsArray(merges)) return dv_error_set(DV_EFORMAT, "%s: model.merges is not a list", what);
    int rc = merges_init(m, (size_t)cJSON_GetArraySize(merges)), rank = 0;
    char *buf = NULL;
    size_t cap = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        if (rc) break;
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (cJSON_IsString(e)) { // "a b"
            const char *sp = strchr(e->valuestring, ' ');
            if (sp && sp > e->valuestring && sp[1]) a = e->valuestring, na = (size_t)(sp - a), b = sp + 1, nb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) { // ["a", "b"]
            a = e->child->valuestring, na = strlen(a), b = e->child->next->valuestring, nb = strlen(b);
        }
        if (!a) rc = dv_error_set(DV_EFORMAT, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", what, rank);
        else rc = add_merge(m, a, na, b, nb, rank, what, &buf, &cap);
        rank++;
    }
    free(buf);
    return rc;
}

static int parse_merges_txt(bpe *m, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return dv_error_set(DV_EIO, "%s: cannot open", path);
    char *line = NULL, *buf = NULL;
    size_t lcap = 0, cap = 0, n_lines = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) n_lines++;
    rewind(f);
    int rc = merges_init(m, n_lines), rank = 0, lineno = 0;
    while (!rc && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if ((lineno == 1 && !strncmp(line, "#version", 8)) || !len) continue;
        char *sp = strchr(line, ' ');
        if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' '))
            rc = dv_error_set(DV_EFORMAT, "%s: line %d is not \"a b\"", path, lineno);
        else rc = add_merge(m, line, (size_t)(sp - line), sp + 1, strlen(sp + 1), rank++, path, &buf, &cap);
    }
    free(line);
    free(buf);
    fclose(f);
    return rc;
}

// "post_processor": ByteLevel, TemplateProcessing (the "single" template), or a Sequence of them.
static int parse_post(void *ctx, const cJSON *p, const char *what) {
    bpe *m = ctx;
    if (!p || cJSON_IsNull(p)) return 0;
    const char *t = dv_json_get_string(p, "type");
    if (!t) return dv_error_set(DV_EFORMAT, "%s: post_processor has no type", what);
    if (!strcmp(t, "ByteLevel")) return 0; // offsets only
    if (!strcmp(t, "Sequence")) return dv_bpe_json_sequence(p, "processors", "post_processor", what, parse_post, m);
    if (strcmp(t, "TemplateProcessing"))
        return dv_error_set(DV_EUNSUPPORTED, "%s: post-processor '%s' is not supported (ByteLevel, TemplateProcessing)",
                            what, t);
    if (m->n_prefix || m->n_suffix) return dv_error_set(DV_EUNSUPPORTED, "%s: two TemplateProcessing post-processors", what);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens"), *e;
    if (!cJSON_IsArray(single)) return dv_error_set(DV_EFORMAT, "%s: TemplateProcessing without a single template", what);
    int seen_a = 0;
    cJSON_ArrayForEach(e, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken"), *seq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
        if (seq) {
            const char *sid = dv_json_get_string(seq, "id");
            if (!sid || strcmp(sid, "A") || seen_a)
                return dv_error_set(DV_EFORMAT, "%s: the single template must hold $A once", what);
            seen_a = 1;
            continue;
        }
        const char *name = sp ? dv_json_get_string(sp, "id") : NULL;
        const cJSON *tok = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(tok, "ids"), *x;
        if (!cJSON_IsArray(ids)) return dv_error_set(DV_EFORMAT, "%s: template token '%s' has no ids", what, name ? name : "?");
        cJSON_ArrayForEach(x, ids) {
            if (!cJSON_IsNumber(x) || x->valueint < 0 || x->valueint >= m->n_ids)
                return dv_error_set(DV_EFORMAT, "%s: template token '%s' has an id outside the vocabulary", what, name);
            int32_t **arr = seen_a ? &m->suffix : &m->prefix;
            int *cnt = seen_a ? &m->n_suffix : &m->n_prefix;
            int32_t *na = realloc(*arr, (size_t)(*cnt + 1) * sizeof **arr);
            if (!na) return dv_error_set(DV_ENOMEM, "out of memory");
            na[(*cnt)++] = (int32_t)x->valueint;
            *arr = na;
        }
    }
    if (!seen_a) return dv_error_set(DV_EFORMAT, "%s: the single template has no $A", what);
    return 0;
}

static int parse_added_list(const cJSON *list, int from_decoder, const char *what, added_spec **out, int *n) {
    const cJSON *e;
    int cnt = cJSON_GetArraySize(list), i = 0;
    *out = calloc((size_t)cnt + 1, sizeof **out);
    if (!*out) return dv_error_set(DV_ENOMEM, "out of memory");
    cJSON_ArrayForEach(e, list) {
        added_spec *a = &(*out)[i++];
        double id = -1;
        if (from_decoder) { // "added_tokens_decoder": {"151643": {...}}
            char *end;
            id = e->string && *e->string ? strtod(e->string, &end) : -1;
            if (id >= 0 && *end) id = -1;
        } else {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "id");
            id = cJSON_IsNumber(v) ? v->valuedouble : -1;
        }
        a->content = dv_json_get_string(e, "content");
        if (!cJSON_IsObject(e) || !a->content || id < 0 || id >= MAX_VOCAB || id != (double)(int)id)
            return dv_error_set(DV_EFORMAT, "%s: added token %d has no valid id and content", what, i - 1);
        a->id = (int)id;
        a->special = dv_tokenizer_cfg_flag(e, "special", 0);
        a->lstrip = dv_tokenizer_cfg_flag(e, "lstrip", 0);
        a->rstrip = dv_tokenizer_cfg_flag(e, "rstrip", 0);
        a->single_word = dv_tokenizer_cfg_flag(e, "single_word", 0);
        a->normalized = dv_tokenizer_cfg_flag(e, "normalized", !a->special);
    }
    *n = i;
    return 0;
}

static int check_null(const cJSON *root, const char *key, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (v && !cJSON_IsNull(v)) return dv_error_set(DV_EUNSUPPORTED, "%s: '%s' is not supported (it must be null)", what, key);
    return 0;
}

static int parse_model(bpe *m, const cJSON *model, const char *what) {
    const char *type = dv_json_get_string(model, "type");
    if (!cJSON_IsObject(model)) return dv_error_set(DV_EFORMAT, "%s: no model", what);
    if (type && strcmp(type, "BPE"))
        return dv_error_set(DV_EUNSUPPORTED, "%s: model type '%s' is not supported (duovid reads BPE)", what, type);
    double dropout = 0;
    int rc = dv_json_get_double_opt(model, "dropout", what, &dropout);
    if (!rc && dropout > 0) rc = dv_error_set(DV_EUNSUPPORTED, "%s: BPE dropout is not supported", what);
    static const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; !rc && i < 2; i++) {
        const char *v = dv_json_get_string(model, affixes[i]);
        if (v && *v) rc = dv_error_set(DV_EUNSUPPORTED, "%s: BPE %s '%s' is not supported", what, affixes[i], v);
    }
    int fuse = 0, ignore = 0, fallback = 0;
    if (!rc) rc = dv_json_get_bool_opt(model, "fuse_unk", what, &fuse);
    if (!rc) rc = dv_json_get_bool_opt(model, "byte_fallback", what, &fallback);
    m->byte_fallback = fallback;
    if (!rc) rc = dv_json_get_bool_opt(model, "ignore_merges", what, &ignore);
    m->fuse_unk = fuse;
    m->ignore_merges = ignore;
    return rc;
}

static int finish(bpe *m, const char *dir, const char *what, dv_tokenizer *out) {
    int rc = prepare_added(m);
    if (rc) return rc;
    // a byte-level model has a token for every byte; one that lacks some and falls back to
    // <0xXX> pieces instead is a SentencePiece-style BPE, which this code does not implement
    for (int b = 0; b < 256; b++)
        if (m->byte_fallback && m->byte_id[b] < 0)
            return dv_error_set(DV_EUNSUPPORTED, "%s: byte_fallback BPE without a token for byte 0x%02X is not supported",
                                what, b);
    out->ops = &bpe_ops;
    out->impl = m;
    out->vocab = m->n_ids;
    out->repair = DV_UTF8_REPAIR_SUBPART;
    for (int i = 0; i < m->n_ids; i++)
        if (m->blen[i] > out->max_piece) out->max_piece = m->blen[i];
    out->add_bos = m->n_prefix + m->n_suffix > 0;
    out->bos = m->n_prefix ? m->prefix[0] : -1;
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (stat(path, &sb) == 0) {
        cJSON *cfg = NULL;
        if ((rc = dv_json_load(path, &cfg))) return rc;
        const char *b = dv_tokenizer_cfg_token(cfg, "bos_token"), *e = dv_tokenizer_cfg_token(cfg, "eos_token");
        if (b && out->bos < 0) out->bos = bpe_token_id(m, b);
        if (e) out->eos = bpe_token_id(m, e);
        cJSON_Delete(cfg);
    }
    return 0;
}

static int open_json(bpe *m, const char *dir, dv_tokenizer *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *root = NULL;
    added_spec *added = NULL;
    int n_added = 0, rc = dv_json_load(path, &root);
    if (rc) return rc;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder"), *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(root)) rc = dv_error_set(DV_EFORMAT, "%s: not a JSON object", path);
    if (!rc) rc = parse_model(m, model, path);
    if (!rc) rc = check_null(root, "truncation", path);
    if (!rc) rc = check_null(root, "padding", path);
    if (!rc && (!cJSON_IsObject(dec) || !dv_json_get_string(dec, "type") || strcmp(dv_json_get_string(dec, "type"), "ByteLevel")))
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: decoder '%s' is not supported (duovid reads byte-level BPE: ByteLevel)", path,
                          cJSON_IsObject(dec) && dv_json_get_string(dec, "type") ? dv_json_get_string(dec, "type") : "none");
    if (!rc && list && !cJSON_IsArray(list)) rc = dv_error_set(DV_EFORMAT, "%s: added_tokens is not a list", path);
    if (!rc && list) rc = parse_added_list(list, 0, path, &added, &n_added);
    if (!rc && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(model, "vocab")))
        rc = dv_error_set(DV_EFORMAT, "%s: model.vocab is not an object", path);
    if (!rc) rc = build_vocab(m, cJSON_GetObjectItemCaseSensitive(model, "vocab"), added, n_added, path);
    if (!rc) rc = parse_merges_json(m, cJSON_GetObjectItemCaseSensitive(model, "merges"), path);
    const char *unk = dv_json_get_string(model, "unk_token");
    m->unk = unk ? table_find(m, &m->by_spell, unk, strlen(unk)) : -1;
    if (!rc && unk && m->unk < 0) rc = dv_error_set(DV_EFORMAT, "%s: unk_token '%s' is not in the vocabulary", path, unk);
    if (!rc) rc = dv_bpe_pretok_parse(cJSON_GetObjectItemCaseSensitive(root, "normalizer"),
                                      cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), path, &m->pre);
    if (!rc) rc = parse_post(m, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), path);
    free(added);
    cJSON_Delete(root);
    return rc ? rc : finish(m, dir, path, out);
}

static int open_pair(bpe *m, const char *dir, dv_tokenizer *out) {
    char vpath[4096], mpath[4096], cpath[4096];
    snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
    snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    cJSON *vocab = NULL, *cfg = NULL;
    added_spec *added = NULL;
    int n_added = 0, rc = dv_json_load(vpath, &vocab);
    struct stat sb;
    if (!rc && stat(cpath, &sb) == 0) rc = dv_json_load(cpath, &cfg);
    const char *cls = cfg ? dv_json_get_string(cfg, "tokenizer_class") : NULL;
    if (!rc && cls && strcmp(cls, "GPT2Tokenizer") && strcmp(cls, "GPT2TokenizerFast"))
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: tokenizer_class '%s' needs its tokenizer.json (vocab.json + merges.txt "
                          "are read as GPT-2's)", cpath, cls);
    const cJSON *dec = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder") : NULL;
    if (!rc && dec && !cJSON_IsObject(dec)) rc = dv_error_set(DV_EFORMAT, "%s: added_tokens_decoder is not an object", cpath);
    if (!rc && dec) rc = parse_added_list(dec, 1, cpath, &added, &n_added);
    if (!rc && !cJSON_IsObject(vocab)) rc = dv_error_set(DV_EFORMAT, "%s: not a JSON object", vpath);
    if (!rc) rc = build_vocab(m, vocab, added, n_added, vpath);
    if (!rc) rc = parse_merges_txt(m, mpath);
    if (!rc) rc = dv_bpe_pretok_gpt2(&m->pre);
    m->unk = -1;
    free(added);
    cJSON_Delete(vocab);
    cJSON_Delete(cfg);
    return rc ? rc : finish(m, dir, mpath, out);
}

int dv_tokenizer_open_bpe(const char *dir, dv_tokenizer *out) {
    alphabet_init();
    bpe *m = calloc(1, sizeof *m);
    if (m && !(m->cache = aligned_alloc(64, 2 * CACHE_SETS * sizeof *m->cache))) {
        free(m);
        m = NULL;
    }
    if (!m) return dv_error_set(DV_ENOMEM, "out of memory");
    memset(m->cache, 0, 2 * CACHE_SETS * sizeof *m->cache);
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    int rc = stat(path, &sb) == 0 ? open_json(m, dir, out) : open_pair(m, dir, out);
    if (rc) {
        out->ops = NULL;
        bpe_free(m);
    }
    return rc;
}
