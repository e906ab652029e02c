// test_tokenizer.c: SentencePiece + added tokens against Python (sentencepiece and transformers'
// legacy Llama tokenizer, tests/fixtures/tokenizer/make_tokenizer_fixture.py): exact ids, decode with
// and without special tokens, streaming decode == batch decode one token at a time (multi-byte
// characters split over byte-fallback tokens), lstrip/rstrip added tokens, bad input.
#include "core/dv_error.h"
#include "core/dv_json.h"
#include "llm/dv_tokenizer.h"
#include "tests/dv_test.h"
#include "tests/test_tokenizer_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_IDS 512


static int json_ids(const cJSON *arr, int32_t *ids) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (n < MAX_IDS) ids[n] = (int32_t)e->valueint;
        n++;
    }
    DV_CHECK(n <= MAX_IDS);
    return n < MAX_IDS ? n : MAX_IDS;
}

static void check_cases(dv_tokenizer *t, const cJSON *cases, const char *label) {
    int n = 0, n_text = 0, ids_ok = 0, dec_ok = 0, skip_ok = 0, stream_ok = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *text = cJSON_GetObjectItem(c, "text"), *dec = cJSON_GetObjectItem(c, "decoded"),
                    *dec_skip = cJSON_GetObjectItem(c, "decoded_skip");
        int32_t ref[MAX_IDS], got[MAX_IDS];
        const int n_ref = json_ids(cJSON_GetObjectItem(c, "ids"), ref);
        const char *what = cJSON_IsString(text) ? text->valuestring : "(ids only)";
        n++;
        if (cJSON_IsString(text)) {
            n_text++;
            int n_got = 0;
            int rc = dv_tokenizer_encode(t, text->valuestring, 1, got, MAX_IDS, &n_got);
            int ok = rc == 0 && n_got == n_ref && !memcmp(got, ref, (size_t)n_ref * sizeof *ref);
            if (!ok) {
                fprintf(stderr, "%s: ids differ for \"%s\": got", label, what);
                for (int i = 0; i < n_got && i < 40; i++) fprintf(stderr, " %d", got[i]);
                fprintf(stderr, "\n");
            }
            DV_CHECK(ok);
            ids_ok += ok;
            // too small an output buffer: an error plus the needed count, nothing written past it
            if (n_ref > 1) {
                int need = 0;
                got[n_ref - 1] = -7;
                rc = dv_tokenizer_encode(t, text->valuestring, 1, got, n_ref - 1, &need);
                DV_CHECK(rc == DV_EINVAL && need == n_ref && got[n_ref - 1] == -7);
            }
            // without BOS: the same ids less the first
            rc = dv_tokenizer_encode(t, text->valuestring, 0, got, MAX_IDS, &n_got);
            DV_CHECK(rc == 0 && n_got == n_ref - 1 && !memcmp(got, ref + 1, (size_t)n_got * sizeof *ref));
        }
        char buf[4096], skip[4096], sbuf[4096] = "";
        size_t len = 0, slen = 0, sl = 0;
        DV_CHECK(dv_tokenizer_decode(t, ref, n_ref, 0, buf, sizeof buf, &len) == 0 && len == strlen(buf));
        DV_CHECK(dv_tokenizer_decode(t, ref, n_ref, 1, skip, sizeof skip, &slen) == 0 && slen == strlen(skip));
        int ok = !strcmp(buf, dec->valuestring);
        DV_CHECK_MSG(ok, "%s: decode of \"%s\" = \"%s\", reference \"%s\"", label, what, buf, dec->valuestring);
        dec_ok += ok;
        ok = !strcmp(skip, dec_skip->valuestring);
        DV_CHECK_MSG(ok, "%s: decode(skip_special) of \"%s\" = \"%s\", reference \"%s\"", label, what, skip,
                     dec_skip->valuestring);
        skip_ok += ok;
        if (len > 0) { // a buffer one byte short: error, and the length needed
            size_t need = 0;
            DV_CHECK(dv_tokenizer_decode(t, ref, n_ref, 0, buf, len, &need) == DV_EINVAL && need == len);
        }
        // one token at a time: every piece is whole characters; all pieces == decode(skip_special)
        int whole = 1;
        sl = stream_all(t, ref, n_ref, sbuf, sizeof sbuf, &whole);
        DV_CHECK_MSG(whole, "%s: a streamed piece of \"%s\" is not whole UTF-8", label, what);
        ok = whole && sl == slen && !strcmp(sbuf, skip);
        DV_CHECK_MSG(ok, "%s: stream \"%s\" != batch \"%s\"", label, sbuf, skip);
        stream_ok += ok;
    }
    printf("%s: %d/%d encodings identical to the reference, decodes %d/%d, decodes skipping specials %d/%d, "
           "streams == batch %d/%d\n",
           label, ids_ok, n_text, dec_ok, n, skip_ok, n, stream_ok, n);
    DV_CHECK(n >= 8);
}


static void bad_input(void) {
    dv_tokenizer *t = NULL;
    DV_CHECK(dv_tokenizer_open("/nonexistent/dir", &t) == DV_ENOTFOUND && !t);
    DV_CHECK(strstr(dv_error_message(), "/nonexistent/dir/tokenizer.model: not found") != NULL);
    printf("missing dir: %s\n", dv_error_message());
    char dir[] = "/tmp/dv_tok_XXXXXX", model[256], cfg[256];
    if (!mkdtemp(dir)) return;
    snprintf(model, sizeof model, "%s/tokenizer.model", dir);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    write_file(model, "this is not a sentencepiece model");
    DV_CHECK(dv_tokenizer_open(dir, &t) == DV_EFORMAT && !t);
    DV_CHECK(strstr(dv_error_message(), model) && strstr(dv_error_message(), "not a valid SentencePiece model") &&
             !strchr(dv_error_message(), '\n'));
    printf("garbage model: %s\n", dv_error_message());
    // a real model next to a broken config: the error names the config
    unlink(model);
    DV_CHECK(symlink(dv_test_path("assets/tokenizer/tokenizer.model"), model) == 0);
    write_file(cfg, "{\"added_tokens_decoder\": {\"512\": {\"content\": \"<x>\"},}");
    DV_CHECK(dv_tokenizer_open(dir, &t) == DV_EFORMAT && !t && strstr(dv_error_message(), cfg));
    printf("broken config: %s\n", dv_error_message());
    write_file(cfg, "{\"added_tokens_decoder\": {\"abc\": {\"content\": \"<x>\"}}}");
    DV_CHECK(dv_tokenizer_open(dir, &t) == DV_EFORMAT && !t && strstr(dv_error_message(), "'abc'"));
    // an older config naming the specials without an added_tokens_decoder: a literal "<s>" in the
    // text is still BOS (as HF splits at every named special token), and add_bos_token is read
    write_file(cfg, "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\", \"add_bos_token\": false}");
    int32_t ids[16];
    int n = 0;
    DV_CHECK(dv_tokenizer_open(dir, &t) == 0);
    DV_CHECK(t && dv_tokenizer_add_bos(t) == 0 && dv_tokenizer_vocab_size(t) == 512);
    DV_CHECK(t && dv_tokenizer_encode(t, "<s>a</s>", 0, ids, 16, &n) == 0 && n == 3 && ids[0] == 1 && ids[1] == 261 &&
             ids[2] == 2);
    dv_tokenizer_free(t);
    // no config at all: SentencePiece alone, BOS/EOS from the model
    unlink(cfg);
    DV_CHECK(dv_tokenizer_open(dir, &t) == 0 && dv_tokenizer_vocab_size(t) == 512 && dv_tokenizer_bos(t) == 1 &&
             dv_tokenizer_eos(t) == 2 && dv_tokenizer_token_id(t, "<video>") == -1);
    dv_tokenizer_free(t);
    unlink(model);
    rmdir(dir);
}

int main(void) {
    dv_tokenizer *t = NULL, *ts = NULL;
    if (dv_tokenizer_open(dv_test_path("assets/tokenizer"), &t)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return dv_test_finish();
    }
    DV_CHECK(dv_tokenizer_vocab_size(t) == 514);
    DV_CHECK(dv_tokenizer_bos(t) == 1 && dv_tokenizer_eos(t) == 2 && dv_tokenizer_add_bos(t) == 1);
    DV_CHECK(dv_tokenizer_token_id(t, "<video>") == 513 && dv_tokenizer_token_id(t, "<image>") == 512);
    DV_CHECK(dv_tokenizer_token_id(t, "<nope>") == -1 && dv_tokenizer_token_id(t, "<0x41>") == 68);
    cJSON *j = NULL;
    if (dv_json_load(dv_test_path("tests/fixtures/tokenizer/cases.json"), &j) == 0) {
        check_cases(t, cJSON_GetObjectItem(j, "cases"), "tokenizer");
        if (dv_tokenizer_open(dv_test_path("tests/fixtures/tokenizer/strip"), &ts) == 0)
            check_cases(ts, cJSON_GetObjectItem(j, "strip_cases"), "lstrip/rstrip tokens");
        else
            DV_CHECK_MSG(0, "%s", dv_error_message());
        dv_tokenizer_free(ts);
        cJSON_Delete(j);
    } else {
        DV_CHECK_MSG(0, "%s", dv_error_message());
    }

    // invalid ids: decode rejects them, the stream ignores them
    int32_t bad[2] = {5, 514};
    char buf[64];
    size_t len;
    DV_CHECK(dv_tokenizer_decode(t, bad, 2, 0, buf, sizeof buf, &len) == DV_EINVAL &&
             strstr(dv_error_message(), "514"));
    dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 0);
    DV_CHECK(!strcmp(dv_tokenizer_stream_push(s, -3), "") && !strcmp(dv_tokenizer_stream_push(s, 1 << 30), ""));
    // "€" over three byte-fallback tokens: nothing until the last one
    const int e2 = dv_tokenizer_token_id(t, "<0xE2>"), x82 = dv_tokenizer_token_id(t, "<0x82>"),
              xac = dv_tokenizer_token_id(t, "<0xAC>");
    DV_CHECK(!strcmp(dv_tokenizer_stream_push(s, e2), "") && !strcmp(dv_tokenizer_stream_push(s, x82), "") &&
             !strcmp(dv_tokenizer_stream_push(s, xac), "\xE2\x82\xAC"));
    // a character cut short by the end of the stream: flush gives U+FFFD per byte
    dv_tokenizer_stream_push(s, e2);
    dv_tokenizer_stream_push(s, x82);
    DV_CHECK(!strcmp(dv_tokenizer_stream_flush(s), "\xEF\xBF\xBD\xEF\xBF\xBD"));
    DV_CHECK(!strcmp(dv_tokenizer_stream_flush(s), ""));
    dv_tokenizer_stream_free(s);
    // continuing after a prompt (at_start = 0) keeps the leading space; <video> is skipped
    s = dv_tokenizer_stream_init(t, 0);
    int32_t ids[8];
    int n;
    DV_CHECK(dv_tokenizer_encode(t, "river", 0, ids, 8, &n) == 0 && n >= 1);
    char acc[64] = "";
    for (int i = 0; i < n; i++) strcat(acc, dv_tokenizer_stream_push(s, ids[i]));
    strcat(acc, dv_tokenizer_stream_push(s, 513));
    DV_CHECK_MSG(!strcmp(acc, " river"), "got \"%s\"", acc);
    dv_tokenizer_stream_free(s);
    dv_tokenizer_free(t);
    dv_tokenizer_free(NULL);
    dv_tokenizer_stream_free(NULL);
    bad_input();
    return dv_test_finish();
}
