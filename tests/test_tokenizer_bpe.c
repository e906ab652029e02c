// test_tokenizer_bpe.c: the byte-level BPE tokenizer against the Python tokenizers package
// (tests/fixtures/bpe/make_bpe_fixtures.py): for every string of corpus.json and each tokenizer style
// (Qwen2, Qwen3.5, GPT-2, GPT-2 as vocab.json + merges.txt, SmolLM2, Llama-3, and "mixed": every
// other normalizer / Split behaviour / pre-tokenizer option / template) the ids are identical,
// decode with and without special tokens equals HF's, decode(encode(x)) == x wherever HF's is, and
// the stream, one token at a time, gives whole characters adding up to the batch decode. Then the
// special-token lookups, streaming of a character split over tokens, and bad tokenizer files.
#include "core/dv_error.h"
#include "core/dv_json.h"
#include "llm/dv_tokenizer.h"
#include "tests/dv_test.h"
#include "tests/test_tokenizer_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_IDS 4096
#define MAX_TEXT 65536

// The corpus entry as bytes: a JSON string, or {"hex": "..."} for invalid UTF-8 (into buf).
static const char *entry_bytes(const cJSON *e, char *buf, size_t cap) {
    if (cJSON_IsString(e)) return e->valuestring;
    const char *hex = dv_json_get_string(e, "hex");
    size_t n = hex ? strlen(hex) / 2 : 0;
    DV_CHECK(hex && n < cap);
    if (!hex || n >= cap) return "";
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        buf[i] = (char)v;
    }
    buf[n] = 0;
    return buf;
}


static int in_list(const cJSON *list, int i) {
    const cJSON *e;
    cJSON_ArrayForEach(e, list) if (e->valueint == i) return 1;
    return 0;
}

static void check_style(const char *name, const char *ref_name, const cJSON *corpus) {
    char dir[256], ref_path[256];
    snprintf(dir, sizeof dir, "tests/fixtures/bpe/%s", name);
    snprintf(ref_path, sizeof ref_path, "tests/fixtures/bpe/ref_%s.json", ref_name);
    dv_tokenizer *t = NULL;
    cJSON *ref = NULL;
    if (dv_tokenizer_open(dv_test_path(dir), &t) || dv_json_load(dv_test_path(ref_path), &ref)) {
        DV_CHECK_MSG(0, "%s: %s", name, dv_error_message());
        dv_tokenizer_free(t);
        return;
    }
    DV_CHECK(!strcmp(dv_tokenizer_kind(t), "bpe"));
    const cJSON *ids_all = cJSON_GetObjectItem(ref, "ids"), *dec = cJSON_GetObjectItem(ref, "decoded"),
                *dec_skip = cJSON_GetObjectItem(ref, "decoded_skip"), *no_rt = cJSON_GetObjectItem(ref, "no_roundtrip");
    static int32_t got[MAX_IDS], want[MAX_IDS];
    static char raw[MAX_TEXT], buf[MAX_TEXT], sbuf[MAX_TEXT];
    int n = 0, ids_ok = 0, dec_ok = 0, skip_ok = 0, rt = 0, rt_ok = 0, stream_ok = 0;
    const cJSON *e = corpus->child, *r = ids_all->child;
    for (; e && r; e = e->next, r = r->next, n++) {
        const char *text = entry_bytes(e, raw, sizeof raw);
        int n_want = 0, n_got = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, r) if (n_want < MAX_IDS) want[n_want++] = (int32_t)x->valueint;
        int rc = dv_tokenizer_encode(t, text, 1, got, MAX_IDS, &n_got);
        int ok = rc == 0 && n_got == n_want && !memcmp(got, want, (size_t)n_want * sizeof *want);
        if (!ok) {
            fprintf(stderr, "%s: string %d \"%s\": ids differ (rc %d)\n  got ", name, n, text, rc);
            for (int i = 0; i < n_got && i < 40; i++) fprintf(stderr, " %d", got[i]);
            fprintf(stderr, "\n  want");
            for (int i = 0; i < n_want && i < 40; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n");
        }
        DV_CHECK(ok);
        ids_ok += ok;
        char key[16];
        snprintf(key, sizeof key, "%d", n);
        for (int skip = 0; skip < 2; skip++) {
            const cJSON *d = cJSON_GetObjectItem(skip ? dec_skip : dec, key);
            const char *expect = cJSON_IsString(d) ? d->valuestring : text;
            size_t len = 0;
            ok = dv_tokenizer_decode(t, want, n_want, skip, buf, sizeof buf, &len) == 0 && !strcmp(buf, expect);
            DV_CHECK_MSG(ok, "%s: decode(skip_special=%d) of string %d = \"%s\", HF \"%s\"", name, skip, n, buf, expect);
            *(skip ? &skip_ok : &dec_ok) += ok;
        }
        // decode(encode(x)) == x without the post-processor's tokens, wherever HF's is
        if (!in_list(no_rt, n)) {
            size_t len = 0;
            rt++;
            ok = dv_tokenizer_encode(t, text, 0, got, MAX_IDS, &n_got) == 0 &&
                 dv_tokenizer_decode(t, got, n_got, 0, buf, sizeof buf, &len) == 0 && !strcmp(buf, text);
            DV_CHECK_MSG(ok, "%s: decode(encode(string %d)) = \"%s\"", name, n, buf);
            rt_ok += ok;
        }
        // the stream: whole characters only, adding up to decode(skip_special = 1)
        size_t len = 0, sl = 0;
        dv_tokenizer_decode(t, want, n_want, 1, buf, sizeof buf, &len);
        int whole = 1;
        sl = stream_all(t, want, n_want, sbuf, sizeof sbuf, &whole);
        ok = whole && sl == len && !strcmp(sbuf, buf);
        DV_CHECK_MSG(ok, "%s: stream of string %d \"%s\" != batch \"%s\" (whole %d)", name, n, sbuf, buf, whole);
        stream_ok += ok;
    }
    DV_CHECK(n >= 300 && !e && !r);
    printf("%s: %d/%d strings with HF's ids, decodes %d/%d, skipping specials %d/%d, decode(encode(x)) == x %d/%d, "
           "streams == batch %d/%d\n",
           name, ids_ok, n, dec_ok, n, skip_ok, n, rt_ok, rt, stream_ok, n);
    cJSON_Delete(ref);
    dv_tokenizer_free(t);
}


static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

// tokenizer.json with `from` replaced by `to` in a copy of the qwen2 fixture: open must fail with
// `code` and a one-line message naming the file and containing `msg`.
static void refused(const char *dir, const char *json, const char *from, const char *to, int code, const char *msg) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    const char *at = strstr(json, from);
    DV_CHECK_MSG(at != NULL, "fixture lacks \"%s\"", from);
    if (!at) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    fwrite(json, 1, (size_t)(at - json), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    dv_tokenizer *t = NULL;
    int rc = dv_tokenizer_open(dir, &t);
    const char *m = dv_error_message();
    DV_CHECK_MSG(rc == code && !t && strstr(m, path) && strstr(m, msg) && !strchr(m, '\n'),
                 "rc %d, message \"%s\" (want \"%s\")", rc, m, msg);
    printf("refused: %s\n", m);
    dv_tokenizer_free(t);
}

static void bad_input(void) {
    char dir[] = "/tmp/dv_bpe_XXXXXX", path[512];
    if (!mkdtemp(dir)) return;
    char *json = read_all(dv_test_path("tests/fixtures/bpe/qwen2/tokenizer.json"));
    DV_CHECK(json != NULL);
    if (!json) return;
    refused(dir, json, "\"type\":\"BPE\"", "\"type\":\"Unigram\"", DV_EUNSUPPORTED, "model type 'Unigram'");
    refused(dir, json, "\"type\":\"Split\"", "\"type\":\"Metaspace\"", DV_EUNSUPPORTED, "pre-tokenizer 'Metaspace'");
    refused(dir, json, "\"type\":\"NFC\"", "\"type\":\"Lowercase\"", DV_EUNSUPPORTED, "normalizer 'Lowercase'");
    refused(dir, json, "\"decoder\":{\"type\":\"ByteLevel\"", "\"decoder\":{\"type\":\"WordPiece\"", DV_EUNSUPPORTED,
            "decoder 'WordPiece'");
    refused(dir, json, "\"post_processor\":{\"type\":\"ByteLevel\"", "\"post_processor\":{\"type\":\"BertProcessing\"",
            DV_EUNSUPPORTED, "post-processor 'BertProcessing'");
    refused(dir, json, "(?i:'s", "(?i:'s(", DV_EFORMAT, "does not compile");
    refused(dir, json, "\"behavior\":\"Isolated\"", "\"behavior\":\"Sideways\"", DV_EUNSUPPORTED, "'Sideways'");
    refused(dir, json, "\"ignore_merges\":false", "\"ignore_merges\":7", DV_EFORMAT, "ignore_merges");
    refused(dir, json, "\"merges\":[\"", "\"merges\":[\"zzzq zzzr\",\"", DV_EFORMAT, "merge 0 ('zzzq zzzr')");
    refused(dir, json, "\"merges\":[", "\"merges\":[17,", DV_EFORMAT, "merge 0 is neither");
    refused(dir, json, "\"truncation\":null", "\"truncation\":{\"max_length\":8}", DV_EUNSUPPORTED, "'truncation'");
    refused(dir, json, "\"vocab\":{", "\"vocab\":{\"zz\":-4,", DV_EFORMAT, "'zz'");
    refused(dir, json, "\"model\":{", "\"model\":{,", DV_EFORMAT, "malformed JSON");
    refused(dir, json, "\"added_tokens\":[{", "\"added_tokens\":[{\"content\":7},{", DV_EFORMAT, "added token 0");
    // truncated file
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fwrite(json, 1, strlen(json) / 2, f);
        fclose(f);
    }
    dv_tokenizer *t = NULL;
    DV_CHECK(dv_tokenizer_open(dir, &t) == DV_EFORMAT && !t && strstr(dv_error_message(), path));
    printf("truncated: %s\n", dv_error_message());
    unlink(path);
    // vocab.json + merges.txt of a class that needs its tokenizer.json; a bad merges line
    char vocab[512], merges[512], cfg[512];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    write_file(vocab, "{\"a\": 0, \"b\": 1, \"ab\": 2}");
    write_file(merges, "#version: 0.2\na b\n");
    write_file(cfg, "{\"tokenizer_class\": \"Qwen2Tokenizer\"}");
    DV_CHECK(dv_tokenizer_open(dir, &t) == DV_EUNSUPPORTED && !t && strstr(dv_error_message(), "'Qwen2Tokenizer'"));
    printf("pair: %s\n", dv_error_message());
    unlink(cfg);
    write_file(merges, "#version: 0.2\na b c\n");
    DV_CHECK(dv_tokenizer_open(dir, &t) == DV_EFORMAT && !t && strstr(dv_error_message(), "merges.txt: line 2"));
    // a tiny pair: unknown bytes are dropped (no unk token), "ab" merges
    write_file(merges, "#version: 0.2\na b\n");
    int32_t ids[8];
    int n = 0;
    DV_CHECK(dv_tokenizer_open(dir, &t) == 0);
    DV_CHECK(t && dv_tokenizer_encode(t, "abzb", 1, ids, 8, &n) == 0 && n == 2 && ids[0] == 2 && ids[1] == 1);
    DV_CHECK(t && dv_tokenizer_bos(t) == -1 && dv_tokenizer_eos(t) == -1 && dv_tokenizer_add_bos(t) == 0);
    dv_tokenizer_free(t);
    unlink(vocab);
    unlink(merges);
    rmdir(dir);
    free(json);
}

// single_word added tokens: which characters next to "[MASK]" (single_word in the gpt2 fixture) stop
// it from matching. HF tokenizers tests the Rust regex crate's \w (Alphabetic, marks, Nd, Pc,
// Join_Control); the expectations were measured with the Python tokenizers package 0.23.3 on this
// fixture (1 = [MASK] still matches on both sides, i.e. not a word character).
static void check_single_word(void) {
    static const struct {
        const char *ch;
        int matches;
    } cases[] = {
        {"\xCC\x81", 0},         // U+0301 combining acute (Mn)
        {"_", 0},                  // Pc
        {"\xE2\x80\xBF", 0},     // U+203F undertie (Pc)
        {"\xC2\xBD", 1},          // U+00BD one half (No)
        {"\xE2\x85\xA0", 0},     // U+2160 roman numeral one (Nl)
        {"\xE0\xA4\x83", 0},     // U+0903 devanagari visarga (Mc)
        {"\xE2\x80\x8D", 0},     // U+200D zero width joiner (Join_Control)
        {"\xE2\x80\x8C", 0},     // U+200C zero width non-joiner (Join_Control)
        {"\xC2\xB2", 1},          // U+00B2 superscript two (No)
        {"\xE3\x80\x87", 0},     // U+3007 ideographic zero (Nl)
        {"!", 1},                  // Po
        {"\xE2\x92\xB6", 0},     // U+24B6 circled capital A (So, Other_Alphabetic)
        {"\xF0\x9F\x84\xB0", 0}, // U+1F130 squared Latin capital A (So, Other_Alphabetic)
        {"\xE2\x83\x9D", 0},     // U+20DD combining enclosing circle (Me)
        {"\xE2\x91\xA0", 1},     // U+2460 circled digit one (No)
        {"\xD9\xA0", 0},          // U+0660 arabic-indic digit zero (Nd)
    };
    dv_tokenizer *t = NULL;
    if (dv_tokenizer_open(dv_test_path("tests/fixtures/bpe/gpt2"), &t)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return;
    }
    const int mask = dv_tokenizer_token_id(t, "[MASK]");
    DV_CHECK(mask >= 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int side = 0; side < 2; side++) {
            char text[32];
            snprintf(text, sizeof text, side ? "[MASK]%s" : "%s[MASK]", cases[i].ch);
            int32_t ids[32];
            int n = 0, found = 0;
            DV_CHECK(dv_tokenizer_encode(t, text, 0, ids, 32, &n) == 0);
            for (int k = 0; k < n; k++) found |= ids[k] == mask;
            DV_CHECK_MSG(found == cases[i].matches, "single_word [MASK] next to case %zu (%s side): %s, HF: %s", i,
                         side ? "right" : "left", found ? "matched" : "not matched",
                         cases[i].matches ? "matched" : "not matched");
        }
    dv_tokenizer_free(t);
}

int main(void) {
    cJSON *corpus = NULL;
    if (dv_json_load(dv_test_path("tests/fixtures/bpe/corpus.json"), &corpus)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return dv_test_finish();
    }
    check_style("qwen2", "qwen2", corpus);
    check_style("gpt2", "gpt2", corpus);
    check_style("gpt2-pair", "gpt2", corpus);
    check_style("smollm2", "smollm2", corpus);
    check_style("llama3", "llama3", corpus);
    check_style("qwen35", "qwen35", corpus);
    check_style("mixed", "mixed", corpus);
    cJSON_Delete(corpus);
    check_single_word();

    // special tokens by text, EOS/BOS from tokenizer_config.json and the post-processor
    dv_tokenizer *t = NULL;
    if (dv_tokenizer_open(dv_test_path("tests/fixtures/bpe/qwen2"), &t) == 0) {
        const int im_end = dv_tokenizer_token_id(t, "<|im_end|>");
        DV_CHECK(dv_tokenizer_token_id(t, "<|endoftext|>") == 0 && dv_tokenizer_token_id(t, "<|im_start|>") == 1 &&
                 im_end == 2 && dv_tokenizer_eos(t) == 0 && dv_tokenizer_bos(t) == -1 && dv_tokenizer_add_bos(t) == 0);
        DV_CHECK(dv_tokenizer_token_id(t, "<nope>") == -1 && !strcmp(dv_tokenizer_piece(t, im_end), "<|im_end|>"));
        // pieces are the vocabulary's spellings: " the" is "Ġthe"
        const int the = dv_tokenizer_token_id(t, "\xC4\xA0the");
        DV_CHECK(the > 0 && !strcmp(dv_tokenizer_piece(t, the), "\xC4\xA0the") && !dv_tokenizer_piece(t, 1 << 20));
        // "€" (E2 82 AC) as three byte tokens: nothing until the last; a cut character -> one U+FFFD
        const int e2 = dv_tokenizer_token_id(t, "\xC3\xA2"), x82 = dv_tokenizer_token_id(t, "\xC4\xA4"),
                  xac = dv_tokenizer_token_id(t, "\xC2\xAC");
        DV_CHECK(e2 >= 0 && x82 >= 0 && xac >= 0);
        dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 1);
        DV_CHECK(!strcmp(dv_tokenizer_stream_push(s, e2), "") && !strcmp(dv_tokenizer_stream_push(s, x82), "") &&
                 !strcmp(dv_tokenizer_stream_push(s, xac), "\xE2\x82\xAC"));
        DV_CHECK(!strcmp(dv_tokenizer_stream_push(s, e2), "") && !strcmp(dv_tokenizer_stream_push(s, im_end), "") &&
                 !strcmp(dv_tokenizer_stream_push(s, x82), "") && !strcmp(dv_tokenizer_stream_flush(s), "\xEF\xBF\xBD"));
        // an invalid byte after a lead byte: one U+FFFD for the subpart, then the byte's character
        DV_CHECK(!strcmp(dv_tokenizer_stream_push(s, e2), "") &&
                 !strcmp(dv_tokenizer_stream_push(s, dv_tokenizer_token_id(t, "A")), "\xEF\xBF\xBD" "A"));
        DV_CHECK(!strcmp(dv_tokenizer_stream_push(s, -1), "") && !strcmp(dv_tokenizer_stream_push(s, 1 << 30), ""));
        dv_tokenizer_stream_free(s);
        int32_t ids[4];
        int n = 0;
        DV_CHECK(dv_tokenizer_encode(t, "hello world", 0, ids, 1, &n) == DV_EINVAL && n > 1);
        dv_tokenizer_free(t);
    } else {
        DV_CHECK_MSG(0, "%s", dv_error_message());
    }
    if (dv_tokenizer_open(dv_test_path("tests/fixtures/bpe/llama3"), &t) == 0) {
        const int bot = dv_tokenizer_token_id(t, "<|begin_of_text|>");
        DV_CHECK(bot >= 0 && dv_tokenizer_bos(t) == bot && dv_tokenizer_add_bos(t) == 1 &&
                 dv_tokenizer_eos(t) == dv_tokenizer_token_id(t, "<|eot_id|>"));
        int32_t ids[8];
        int n = 0;
        DV_CHECK(dv_tokenizer_encode(t, "", 1, ids, 8, &n) == 0 && n == 1 && ids[0] == bot);
        DV_CHECK(dv_tokenizer_encode(t, "", 0, ids, 8, &n) == 0 && n == 0);
        dv_tokenizer_free(t);
    } else {
        DV_CHECK_MSG(0, "%s", dv_error_message());
    }
    // the SentencePiece folder still opens as SentencePiece
    if (dv_tokenizer_open(dv_test_path("assets/tokenizer"), &t) == 0) DV_CHECK(!strcmp(dv_tokenizer_kind(t), "sentencepiece"));
    dv_tokenizer_free(t);
    DV_CHECK(dv_tokenizer_open("/nonexistent/dir", &t) == DV_ENOTFOUND && !t &&
             strstr(dv_error_message(), "tokenizer.json"));
    bad_input();
    return dv_test_finish();
}
