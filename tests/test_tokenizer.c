// test_tokenizer.c: SentencePiece + added tokens against Python sentencepiece
// (tests/fixtures/tokenizer/make_tokenizer_fixture.py): exact ids, decode, streaming decode == batch
// decode (one token at a time, multi-byte characters split over byte-fallback tokens), bad input.
#include "core/dv_error.h"
#include "core/dv_json.h"
#include "llm/dv_tokenizer.h"
#include "tests/dv_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check_cases(dv_tokenizer *t, const cJSON *cases) {
    int n = 0, ids_ok = 0, dec_ok = 0, n_dec = 0, stream_ok = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *text = cJSON_GetObjectItem(c, "text"), *ids = cJSON_GetObjectItem(c, "ids"),
                    *dec = cJSON_GetObjectItem(c, "decoded");
        const int n_ref = cJSON_GetArraySize(ids);
        int32_t ref[512], got[512];
        for (int i = 0; i < n_ref; i++) ref[i] = cJSON_GetArrayItem(ids, i)->valueint;
        n++;
        if (cJSON_IsString(text)) {
            int n_got = 0;
            int rc = dv_tokenizer_encode(t, text->valuestring, 1, got, 512, &n_got);
            int ok = rc == 0 && n_got == n_ref && !memcmp(got, ref, (size_t)n_ref * sizeof *ref);
            if (!ok) {
                fprintf(stderr, "ids differ for \"%s\": got", text->valuestring);
                for (int i = 0; i < n_got && i < 40; i++) fprintf(stderr, " %d", got[i]);
                fprintf(stderr, "\n");
            }
            DV_CHECK(ok);
            ids_ok += ok;
            // too small an output buffer: error plus the needed count
            if (n_ref > 1) {
                int need = 0;
                DV_CHECK(dv_tokenizer_encode(t, text->valuestring, 1, got, n_ref - 1, &need) == DV_EINVAL && need == n_ref);
            }
        }
        // decode (skip_special = 0: added tokens come back as their text) and streaming, one id at a
        // time (the stream skips special tokens, so it is compared with skip_special = 1)
        char buf[4096], sbuf[4096] = "", full[4096];
        size_t len = 0, sl = 0, flen = 0;
        DV_CHECK(dv_tokenizer_decode(t, ref, n_ref, 1, buf, sizeof buf, &len) == 0);
        DV_CHECK(dv_tokenizer_decode(t, ref, n_ref, 0, full, sizeof full, &flen) == 0);
        if (cJSON_IsString(text) && strstr(text->valuestring, "<video>")) DV_CHECK(strstr(full, "<video>") != NULL);
        if (cJSON_IsString(text) && !strstr(text->valuestring, "<video>")) DV_CHECK(!strstr(full, "<video>"));
        dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 1);
        for (int i = 0; i <= n_ref; i++) {
            const char *piece = i < n_ref ? dv_tokenizer_stream_push(s, ref[i]) : dv_tokenizer_stream_flush(s);
            // never a partial UTF-8 character in a streamed piece
            size_t pl = strlen(piece);
            if (pl) {
                unsigned char last = (unsigned char)piece[pl - 1];
                DV_CHECK(last < 0x80 || (last & 0xC0) == 0x80);
            }
            memcpy(sbuf + sl, piece, pl + 1);
            sl += pl;
        }
        dv_tokenizer_stream_free(s);
        int sok = sl == len && !strcmp(sbuf, buf);
        DV_CHECK_MSG(sok, "stream \"%s\" != batch \"%s\"", sbuf, buf);
        stream_ok += sok;
        if (cJSON_IsString(dec)) {
            n_dec++;
            int ok = !strcmp(buf, dec->valuestring);
            DV_CHECK_MSG(ok, "decode \"%s\", sentencepiece \"%s\"", buf, dec->valuestring);
            dec_ok += ok;
        }
    }
    printf("tokenizer: %d/%d encodings identical to sentencepiece, %d/%d decodes identical, %d/%d streams == batch\n",
           ids_ok, n - 1, dec_ok, n_dec, stream_ok, n);
}

static void bad_input(void) {
    dv_tokenizer *t = NULL;
    DV_CHECK(dv_tokenizer_open("/nonexistent/dir", &t) == DV_ENOTFOUND && !t);
    DV_CHECK(strstr(dv_error_message(), "/nonexistent/dir/tokenizer.model") != NULL);
    char dir[] = "/tmp/dv_tok_XXXXXX", path[256];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    FILE *f = fopen(path, "w");
    fputs("this is not a sentencepiece model", f);
    fclose(f);
    DV_CHECK(dv_tokenizer_open(dir, &t) == DV_EFORMAT && !t);
    DV_CHECK(strstr(dv_error_message(), "tokenizer.model") && !strchr(dv_error_message(), '\n'));
    printf("garbage model: %s\n", dv_error_message());
    unlink(path);
    rmdir(dir);
}

int main(void) {
    dv_tokenizer *t = NULL;
    if (dv_tokenizer_open(dv_test_path("assets/tokenizer"), &t)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return dv_test_finish();
    }
    DV_CHECK(dv_tokenizer_vocab_size(t) == 514);
    DV_CHECK(dv_tokenizer_bos(t) == 1 && dv_tokenizer_eos(t) == 2);
    DV_CHECK(dv_tokenizer_token_id(t, "<video>") == 513 && dv_tokenizer_token_id(t, "<image>") == 512);
    DV_CHECK(dv_tokenizer_token_id(t, "<nope>") == -1);
    cJSON *j = NULL;
    if (dv_json_load(dv_test_path("tests/fixtures/tokenizer/cases.json"), &j) == 0) {
        check_cases(t, cJSON_GetObjectItem(j, "cases"));
        cJSON_Delete(j);
    } else {
        DV_CHECK_MSG(0, "%s", dv_error_message());
    }
    // invalid ids: decode rejects them, the stream ignores them
    int32_t bad[2] = {5, 9999};
    char buf[64];
    size_t len;
    DV_CHECK(dv_tokenizer_decode(t, bad, 2, 0, buf, sizeof buf, &len) == DV_EINVAL);
    dv_tokenizer_stream *s = dv_tokenizer_stream_init(t, 0);
    DV_CHECK(!strcmp(dv_tokenizer_stream_push(s, -3), ""));
    // continuing a sequence keeps the leading space; <video> is skipped when streaming
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
    bad_input();
    return dv_test_finish();
}
