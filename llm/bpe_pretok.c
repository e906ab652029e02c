// bpe_pretok.c: normalizers and pre-tokenizers of Hugging Face tokenizer.json files (see
// bpe_pretok.h), with utf8proc for Unicode normalization and categories and PCRE2 for the regexes.
//
// Each pre-tokenizer step maps a list of pieces to a new one, as HF's PreTokenizedString.split does:
// the step finds its matches in each piece, folds them by the delimiter behaviour, and drops empty
// pieces. Regexes are compiled in UTF mode with Unicode properties (PCRE2_UCP, so \p{L}, \s, (?i)
// follow Unicode as Oniguruma does in HF), JIT-compiled, and anchors ^ $ match at line breaks
// (Oniguruma's Ruby syntax). ByteLevel's byte -> character mapping is not applied: the BPE model
// in tokenizer_bpe.c works on the raw bytes, which is the same mapping undone.
#include "llm/bpe_pretok.h"

#include "core/dv_error.h"
#include "core/dv_json.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

// The regex of ByteLevel(use_regex=true), as HF tokenizers' byte_level.rs writes it
static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef enum { STEP_SPLIT, STEP_BYTE_LEVEL, STEP_DIGITS } step_kind;
// HF SplitDelimiterBehavior
typedef enum { BEH_REMOVED, BEH_ISOLATED, BEH_MERGED_PREVIOUS, BEH_MERGED_NEXT, BEH_CONTIGUOUS } behavior;

typedef struct step {
    step_kind kind;
    pcre2_code *re; // Split's pattern; ByteLevel's GPT-2 regex when use_regex; NULL otherwise
    int jit;        // re is JIT-compiled: pcre2_jit_match runs it without pcre2_match's checks
    behavior beh;
    int invert;           // Split: the pieces between matches are the delimiters
    int add_prefix_space; // ByteLevel: a piece not starting with ' ' gets one
    int individual;       // Digits: each digit alone (else runs of digits)
} step;

#define MAX_STEPS 16
#define MAX_NORM 16

struct dv_bpe_pretok {
    utf8proc_option_t norm[MAX_NORM]; // normalizers applied in order
    int n_norm;
    step steps[MAX_STEPS];
    int n_steps;
    pcre2_match_data *md;    // one match (ovector of 1 pair), reused
    pcre2_match_context *mc; // match limit and JIT stack
    pcre2_jit_stack *jit;
    dv_bpe_pieces tmp[2]; // the pieces between steps (scratch)
};

// ---- Unicode ----

int dv_bpe_utf8_next(const char *s, size_t n, int32_t *cp) {
    if ((uint8_t)s[0] < 0x80) { // the common case, without a library call
        *cp = (uint8_t)s[0];
        return 1;
    }
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
    if (k <= 0) { // cannot happen on valid UTF-8; treat the byte as a character of its own
        *cp = (uint8_t)s[0];
        return 1;
    }
    *cp = c;
    return (int)k;
}

int dv_bpe_is_white_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_numeric(int32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

// The `\w` of the Rust regex crate, which HF tokenizers' single_word test uses: Alphabetic (letters,
// Nl and Other_Alphabetic), every mark, decimal digits, connector punctuation and Join_Control. Other
// numbers (No: '½', '²') are not word characters there. utf8proc has no Alphabetic property: its
// Other_Alphabetic code points outside the mark categories are the circled / squared Latin letters (So).
int dv_bpe_is_word_char(int32_t c) {
    if (c < 0x80) return c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    utf8proc_category_t k = utf8proc_category(c);
    if (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_NL) return 1; // L*, M*, Nd, Nl
    if (k == UTF8PROC_CATEGORY_PC || c == 0x200C || c == 0x200D) return 1;
    return (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
           (c >= 0x1F170 && c <= 0x1F189);
}

// ---- pieces ----

void dv_bpe_pieces_free(dv_bpe_pieces *p) {
    free(p->buf);
    free(p->span);
    memset(p, 0, sizeof *p);
}

// Appends n bytes (and a prefix byte when pre != 0) to p->buf; returns the offset or -1 (no memory).
static long pieces_text(dv_bpe_pieces *p, const char *s, size_t n, char pre) {
    size_t need = p->len + n + 2;
    if (need > p->cap) {
        size_t nc = p->cap ? p->cap : 256;
        while (nc < need) nc *= 2;
        char *b = realloc(p->buf, nc);
        if (!b) return -1;
        p->buf = b;
        p->cap = nc;
    }
    size_t off = p->len;
    if (pre) p->buf[p->len++] = pre;
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    return (long)off;
}

static int pieces_add(dv_bpe_pieces *p, size_t off, size_t len) {
    if (!len) return 0; // HF drops empty pieces
    if (p->n == p->n_cap) {
        int nc = p->n_cap ? 2 * p->n_cap : 64;
        void *s = realloc(p->span, (size_t)nc * sizeof *p->span);
        if (!s) return dv_error_set(DV_ENOMEM, "out of memory");
        p->span = s;
        p->n_cap = nc;
    }
    p->span[p->n][0] = (uint32_t)off;
    p->span[p->n][1] = (uint32_t)len;
    p->n++;
    return 0;
}

// ---- steps ----

// Folds the segments of one piece (in order, covering it) by the delimiter behaviour, as HF's
// NormalizedString::split. `base` is the piece's offset in out->buf.
typedef struct fold {
    dv_bpe_pieces *out;
    behavior beh;
    int n0;            // out->n before this input piece: pieces past it are this piece's
    int prev_match;    // the previous segment was a delimiter
    size_t pend_start; // MergedWithNext: a delimiter waiting for the segment after it
    int pend;
} fold;

static int fold_segment(fold *f, size_t start, size_t end, int match) {
    dv_bpe_pieces *o = f->out;
    const int have_last = o->n > f->n0;
    int rc = 0;
    switch (f->beh) {
    case BEH_REMOVED:
        if (!match) rc = pieces_add(o, start, end - start);
        break;
    case BEH_ISOLATED: rc = pieces_add(o, start, end - start); break;
    case BEH_MERGED_PREVIOUS:
        if (match && !f->prev_match && have_last) o->span[o->n - 1][1] = (uint32_t)(end - o->span[o->n - 1][0]);
        else rc = pieces_add(o, start, end - start);
        break;
    case BEH_CONTIGUOUS:
        if (match == f->prev_match && have_last) o->span[o->n - 1][1] = (uint32_t)(end - o->span[o->n - 1][0]);
        else rc = pieces_add(o, start, end - start);
        break;
    case BEH_MERGED_NEXT: // a delimiter joins the segment after it, unless that is a delimiter too
        if (f->pend && !match) {
            rc = pieces_add(o, f->pend_start, end - f->pend_start);
            f->pend = 0;
        } else {
            if (f->pend) rc = pieces_add(o, f->pend_start, start - f->pend_start);
            f->pend = match;
            f->pend_start = start;
            if (!match && !rc) rc = pieces_add(o, start, end - start);
        }
        break;
    }
    f->prev_match = match;
    return rc;
}

static int fold_end(fold *f, size_t end) {
    if (f->beh == BEH_MERGED_NEXT && f->pend) return pieces_add(f->out, f->pend_start, end - f->pend_start);
    return 0;
}

// Runs re over out->buf[base, base + n) and folds the matches (segments marked match ^ invert).
static int split_regex(dv_bpe_pretok *p, const step *st, behavior beh, size_t base, size_t n, dv_bpe_pieces *out) {
    fold f = {.out = out, .beh = beh, .n0 = out->n};
    size_t prev = 0, at = 0;
    while (at < n) {
        int rc = st->jit ? pcre2_jit_match(st->re, (PCRE2_SPTR)out->buf + base, n, at, 0, p->md, p->mc)
                         : pcre2_match(st->re, (PCRE2_SPTR)out->buf + base, n, at, PCRE2_NO_UTF_CHECK, p->md, p->mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return dv_error_set(DV_EINVAL, "pre-tokenizer regex failed on the text: %s", (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { // an empty match splits nothing: step over one character
            int32_t cp;
            at = ms + (size_t)dv_bpe_utf8_next(out->buf + base + ms, n - ms, &cp);
            continue;
        }
        if (prev < ms && (rc = fold_segment(&f, base + prev, base + ms, st->invert))) return rc;
        if ((rc = fold_segment(&f, base + ms, base + me, !st->invert))) return rc;
        prev = at = me;
    }
    if (prev < n) {
        int rc = fold_segment(&f, base + prev, base + n, st->invert);
        if (rc) return rc;
    }
    return fold_end(&f, base + n);
}

// Digits: every numeric character is a delimiter (each its own segment, HF's char pattern).
static int split_digits(const step *st, size_t base, size_t n, dv_bpe_pieces *out) {
    fold f = {.out = out, .beh = st->individual ? BEH_ISOLATED : BEH_CONTIGUOUS, .n0 = out->n};
    size_t last = 0;
    const uint8_t *b = (const uint8_t *)out->buf + base;
    for (size_t i = 0; i < n;) {
        if (b[i] < 0x80 && (b[i] < '0' || b[i] > '9')) { // the common case: ASCII, not a digit
            i++;
            continue;
        }
        int32_t cp;
        int k = dv_bpe_utf8_next(out->buf + base + i, n - i, &cp);
        if (is_numeric(cp)) {
            int rc;
                if (last < i && (rc = fold_segment(&f, base + last, base + i, 0))) return rc;
                if ((rc = fold_segment(&f, base + i, base + i + (size_t)k, 1))) return rc;
            last = i + (size_t)k;
        }
        i += (size_t)k;
    }
    return last < n ? fold_segment(&f, base + last, base + n, 0) : 0;
}

static int run_step(dv_bpe_pretok *p, const step *st, const dv_bpe_pieces *in, dv_bpe_pieces *out) {
    out->len = 0;
    out->n = 0;
    for (int i = 0; i < in->n; i++) {
        const char *s = in->buf + in->span[i][0];
        size_t n = in->span[i][1];
        char pre = st->kind == STEP_BYTE_LEVEL && st->add_prefix_space && s[0] != ' ' ? ' ' : 0;
        long base = pieces_text(out, s, n, pre);
        if (base < 0) return dv_error_set(DV_ENOMEM, "out of memory");
        n += pre != 0;
        int rc;
        if (st->kind == STEP_DIGITS) rc = split_digits(st, (size_t)base, n, out);
        else if (st->re) rc = split_regex(p, st, st->kind == STEP_SPLIT ? st->beh : BEH_ISOLATED, (size_t)base, n, out);
        else rc = pieces_add(out, (size_t)base, n);
        if (rc) return rc;
    }
    return 0;
}

int dv_bpe_pretok_run(dv_bpe_pretok *p, const char *text, size_t len, dv_bpe_pieces *out) {
    dv_bpe_pieces *in = &p->tmp[0];
    in->len = 0;
    in->n = 0;
    if (pieces_text(in, text, len, 0) < 0) return dv_error_set(DV_ENOMEM, "out of memory");
    int rc = pieces_add(in, 0, len);
    for (int i = 0; !rc && i < p->n_steps; i++) {
        const step *st = &p->steps[i];
        if (st->kind == STEP_BYTE_LEVEL && !st->add_prefix_space && !st->re) continue; // the identity on bytes
        dv_bpe_pieces *o = in == &p->tmp[0] ? &p->tmp[1] : &p->tmp[0];
        rc = run_step(p, st, in, o);
        in = o;
    }
    if (rc) return rc;
    // hand the result over by swapping buffers (no copy)
    dv_bpe_pieces t = *out;
    *out = *in;
    *in = t;
    return 0;
}

// ---- normalizers ----

int dv_bpe_has_normalizer(const dv_bpe_pretok *p) { return p->n_norm > 0; }

// A character that every normalization form leaves alone and that nothing before it composes or
// reorders with: combining class 0, no decomposition, not the second of a composition pair.
// Normalization can be split before such a character, so runs of them are copied as they are and
// only the spans between them go through utf8proc (conservative: Hangul is always normalized).
static int nf_stable(int32_t cp, utf8proc_option_t opt) {
    // below U+0300 NFC changes nothing (precomposed Latin stays); the other forms change U+00A0 and up
    if (cp < (opt == (UTF8PROC_STABLE | UTF8PROC_COMPOSE) ? 0x300 : 0xA0)) return 1;
    if (cp >= 0x4E00 && cp <= 0x9FFF) return 1; // CJK ideographs: no decompositions
    if ((cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xAC00 && cp <= 0xD7A3)) return 0; // algorithmic Hangul
    const utf8proc_property_t *pr = utf8proc_get_property(cp);
    return pr->combining_class == 0 && pr->decomp_seqindex == UINT16_MAX &&
           (pr->comb_index == UINT16_MAX || pr->comb_index < 0x8000);
}

static int grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    char *b = realloc(*buf, nc);
    if (!b) return dv_error_set(DV_ENOMEM, "out of memory");
    *buf = b;
    *cap = nc;
    return 0;
}

// One normalization form over text into out (NUL-terminated); returns the length or <0.
static long normalize_one(utf8proc_option_t opt, const char *text, size_t len, char **out, size_t *cap) {
    size_t o = 0, i = 0;
    while (i < len) {
        // copy stable characters; stop at the start of the last one before an unstable character
        size_t run = i, last = i;
        int32_t cp = 0;
        int k = 0;
        while (run < len) {
            uint64_t w;
            if (run + 8 <= len && (memcpy(&w, text + run, 8), !(w & 0x8080808080808080ull))) { // 8 ASCII: stable
                last = run + 7;
                run += 8;
                continue;
            }
            k = dv_bpe_utf8_next(text + run, len - run, &cp);
            if (!nf_stable(cp, opt)) break;
            last = run;
            run += (size_t)k;
        }
        size_t copy_end = run < len && last < run ? last : run; // the stable starter joins the span
        if (grow(out, cap, o + (copy_end - i) + 1)) return DV_ENOMEM;
        memcpy(*out + o, text + i, copy_end - i);
        o += copy_end - i;
        if (run >= len) break;
        size_t end = run; // the unstable span runs to the next stable character
        while (end < len) {
            k = dv_bpe_utf8_next(text + end, len - end, &cp);
            if (nf_stable(cp, opt)) break;
            end += (size_t)k;
        }
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)text + copy_end, (utf8proc_ssize_t)(end - copy_end),
                                          &dst, opt);
        if (r < 0) return dv_error_set(DV_EINVAL, "normalizer: %s", utf8proc_errmsg(r));
        if (grow(out, cap, o + (size_t)r + 1)) {
            free(dst);
            return DV_ENOMEM;
        }
        memcpy(*out + o, dst, (size_t)r);
        free(dst);
        o += (size_t)r;
        i = end;
    }
    if (grow(out, cap, o + 1)) return DV_ENOMEM;
    (*out)[o] = 0;
    return (long)o;
}

long dv_bpe_normalize(const dv_bpe_pretok *p, const char *text, size_t len, char **buf, size_t *cap) {
    if (p->n_norm == 1) return normalize_one(p->norm[0], text, len, buf, cap);
    // a Sequence: each form reads the previous one's output
    char *a = NULL;
    size_t acap = 0;
    long n = (long)len;
    if (grow(&a, &acap, len + 1)) return DV_ENOMEM;
    memcpy(a, text, len);
    a[len] = 0;
    for (int k = 0; k < p->n_norm; k++) {
        if ((n = normalize_one(p->norm[k], a, (size_t)n, buf, cap)) < 0) break;
        if (k + 1 == p->n_norm) break;
        const size_t m = (size_t)n;
        if (grow(&a, &acap, m + 1)) {
            n = DV_ENOMEM;
            break;
        }
        memcpy(a, *buf, m + 1);
    }
    free(a);
    return n;
}

// ---- parsing ----

static const char *type_of(const cJSON *o) {
    const char *t = dv_json_get_string(o, "type");
    return t ? t : "(no type)";
}

int dv_bpe_json_sequence(const cJSON *seq, const char *key, const char *kind, const char *what,
                         int (*fn)(void *ctx, const cJSON *item, const char *what), void *ctx) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(seq, key), *e;
    if (!cJSON_IsArray(list)) return dv_error_set(DV_EFORMAT, "%s: %s Sequence without a '%s' list", what, kind, key);
    cJSON_ArrayForEach(e, list) {
        int rc = fn(ctx, e, what);
        if (rc) return rc;
    }
    return 0;
}

static int parse_normalizer(void *ctx, const cJSON *n, const char *what);
static int parse_pre(void *ctx, const cJSON *n, const char *what);

static int parse_normalizer(void *ctx, const cJSON *n, const char *what) {
    dv_bpe_pretok *p = ctx;
    if (!n || cJSON_IsNull(n)) return 0;
    if (!cJSON_IsObject(n)) return dv_error_set(DV_EFORMAT, "%s: normalizer is not an object", what);
    const char *t = type_of(n);
    utf8proc_option_t o;
    if (!strcmp(t, "NFC")) o = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    else if (!strcmp(t, "NFD")) o = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    else if (!strcmp(t, "NFKC")) o = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    else if (!strcmp(t, "NFKD")) o = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    else if (!strcmp(t, "Sequence")) return dv_bpe_json_sequence(n, "normalizers", "normalizer", what, parse_normalizer, p);
    else {
        return dv_error_set(DV_EUNSUPPORTED, "%s: normalizer '%s' is not supported (NFC, NFD, NFKC, NFKD, Sequence)",
                            what, t);
    }
    if (p->n_norm == MAX_NORM) return dv_error_set(DV_EUNSUPPORTED, "%s: more than %d normalizers", what, MAX_NORM);
    p->norm[p->n_norm++] = o;
    return 0;
}

static int compile(const char *pat, size_t len, int literal, const char *what, step *st) {
    pcre2_code **out = &st->re;
    int err;
    PCRE2_SIZE off;
    uint32_t opt = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_MULTILINE);
    *out = pcre2_compile((PCRE2_SPTR)pat, len, opt, &err, &off, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return dv_error_set(DV_EFORMAT, "%s: pre-tokenizer pattern does not compile at offset %zu: %s", what,
                            (size_t)off, (const char *)msg);
    }
    st->jit = pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE) == 0; // else (JIT unavailable) the interpreter runs it
    return 0;
}

static int parse_pre(void *ctx, const cJSON *n, const char *what) {
    dv_bpe_pretok *p = ctx;
    if (!cJSON_IsObject(n)) return dv_error_set(DV_EFORMAT, "%s: pre_tokenizer is not an object", what);
    const char *t = type_of(n);
    if (!strcmp(t, "Sequence")) return dv_bpe_json_sequence(n, "pretokenizers", "pre_tokenizer", what, parse_pre, p);
    if (p->n_steps == MAX_STEPS) return dv_error_set(DV_EUNSUPPORTED, "%s: more than %d pre-tokenizers", what, MAX_STEPS);
    step *st = &p->steps[p->n_steps];
    memset(st, 0, sizeof *st);
    if (!strcmp(t, "ByteLevel")) {
        st->kind = STEP_BYTE_LEVEL;
        int aps = 1, regex = 1; // HF's defaults
        int rc = dv_json_get_bool_opt(n, "add_prefix_space", what, &aps);
        if (!rc) rc = dv_json_get_bool_opt(n, "use_regex", what, &regex);
        if (!rc && regex) rc = compile(GPT2_REGEX, sizeof GPT2_REGEX - 1, 0, what, st);
        if (rc) return rc;
        st->add_prefix_space = aps;
    } else if (!strcmp(t, "Split")) {
        st->kind = STEP_SPLIT;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex"), *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const char *beh = dv_json_get_string(n, "behavior");
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        int b = -1;
        for (int i = 0; beh && i < 5; i++)
            if (!strcmp(beh, names[i])) b = i;
        if (b < 0)
            return dv_error_set(DV_EUNSUPPORTED, "%s: Split behavior '%s' is not supported", what, beh ? beh : "(none)");
        st->beh = (behavior)b;
        int inv = 0, rc = dv_json_get_bool_opt(n, "invert", what, &inv);
        if (rc) return rc;
        st->invert = inv;
        const cJSON *src = cJSON_IsString(rx) ? rx : lit;
        if (!cJSON_IsString(src))
            return dv_error_set(DV_EFORMAT, "%s: Split pattern is neither {\"Regex\": ...} nor {\"String\": ...}", what);
        if (!*src->valuestring) return dv_error_set(DV_EFORMAT, "%s: Split pattern is empty", what);
        if ((rc = compile(src->valuestring, strlen(src->valuestring), src == lit, what, st))) return rc;
    } else if (!strcmp(t, "Digits")) {
        st->kind = STEP_DIGITS;
        int ind = 0, rc = dv_json_get_bool_opt(n, "individual_digits", what, &ind);
        if (rc) return rc;
        st->individual = ind;
    } else {
        return dv_error_set(DV_EUNSUPPORTED,
                            "%s: pre-tokenizer '%s' is not supported (ByteLevel, Split, Digits, Sequence)", what, t);
    }
    p->n_steps++;
    return 0;
}

static int pretok_new(dv_bpe_pretok **out) {
    dv_bpe_pretok *p = calloc(1, sizeof *p);
    if (!p) return dv_error_set(DV_ENOMEM, "out of memory");
    *out = p;
    p->md = pcre2_match_data_create(1, NULL);
    p->mc = pcre2_match_context_create(NULL);
    p->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!p->md || !p->mc || !p->jit) return dv_error_set(DV_ENOMEM, "out of memory");
    pcre2_jit_stack_assign(p->mc, NULL, p->jit);
    pcre2_set_match_limit(p->mc, 10 * 1000 * 1000); // a pathological pattern fails instead of hanging
    return 0;
}

int dv_bpe_pretok_parse(const cJSON *normalizer, const cJSON *pre, const char *what, dv_bpe_pretok **out) {
    dv_bpe_pretok *p = NULL;
    int rc = pretok_new(&p);
    if (!rc) rc = parse_normalizer(p, normalizer, what);
    if (!rc && (!pre || cJSON_IsNull(pre)))
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: no pre_tokenizer (duovid reads byte-level BPE: ByteLevel)", what);
    if (!rc) rc = parse_pre(p, pre, what);
    for (int i = 0; !rc && i < p->n_steps; i++)
        if (p->steps[i].kind == STEP_BYTE_LEVEL && i != p->n_steps - 1)
            rc = dv_error_set(DV_EUNSUPPORTED, "%s: a pre-tokenizer after ByteLevel is not supported", what);
    if (!rc && (!p->n_steps || p->steps[p->n_steps - 1].kind != STEP_BYTE_LEVEL))
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: the pre-tokenizer has no ByteLevel step (duovid reads byte-level BPE)",
                          what);
    if (rc) {
        dv_bpe_pretok_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int dv_bpe_pretok_gpt2(dv_bpe_pretok **out) {
    dv_bpe_pretok *p = NULL;
    int rc = pretok_new(&p);
    if (!rc) {
        p->steps[0] = (step){.kind = STEP_BYTE_LEVEL};
        p->n_steps = 1;
        rc = compile(GPT2_REGEX, sizeof GPT2_REGEX - 1, 0, "GPT-2 regex", &p->steps[0]);
    }
    if (rc) {
        dv_bpe_pretok_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void dv_bpe_pretok_free(dv_bpe_pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n_steps; i++) pcre2_code_free(p->steps[i].re);
    pcre2_match_data_free(p->md);
    pcre2_match_context_free(p->mc);
    pcre2_jit_stack_free(p->jit);
    dv_bpe_pieces_free(&p->tmp[0]);
    dv_bpe_pieces_free(&p->tmp[1]);
    free(p);
}
