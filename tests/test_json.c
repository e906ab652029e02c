// test_json.c: dv_json_load / dv_json_parse error reporting (byte offset of the first bad byte,
// missing files) and the typed getters' type and range checks, on files generated in a mkdtemp folder.
#include "core/dv_error.h"
#include "core/dv_json.h"
#include "tests/dv_test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static const char *tpath(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

static const char *write_file(const char *name, const char *text, size_t n) {
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    DV_CHECK(f != NULL);
    if (f) {
        DV_CHECK(fwrite(text, 1, n, f) == n);
        fclose(f);
    }
    return p;
}

// Loading `text` from a file must fail with DV_EFORMAT at byte `offset` (line, column).
static void expect_malformed(const char *label, const char *text, size_t n, size_t offset, int line, int col) {
    const char *p = write_file("bad.json", text, n);
    cJSON *j = (cJSON *)1;
    int rc = dv_json_load(p, &j);
    char want[128];
    snprintf(want, sizeof want, "bad.json: malformed JSON at byte %zu (line %d, column %d)", offset, line, col);
    printf("%-22s rc=%d: %s\n", label, rc, dv_error_message());
    DV_CHECK_MSG(rc == DV_EFORMAT && j == NULL, "%s: rc %d", label, rc);
    DV_CHECK_MSG(strstr(dv_error_message(), want) != NULL, "%s: expected '%s'", label, want);
    // the same bytes from memory, in an exact-size heap buffer (no NUL: ASan catches over-reads)
    char *m = malloc(n ? n : 1);
    memcpy(m, text, n);
    rc = dv_json_parse(m, n, "mem", &j);
    snprintf(want, sizeof want, "mem: malformed JSON at byte %zu", offset);
    if (n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) // only files skip a BOM
        DV_CHECK(rc == DV_EFORMAT);
    else
        DV_CHECK_MSG(rc == DV_EFORMAT && strstr(dv_error_message(), want), "%s (memory): %s", label,
                     dv_error_message());
    free(m);
}

#define TEXT(s) s, sizeof(s) - 1

static void test_malformed(void) {
    const char *t1 = "{\"a\": 1,\n \"b\": tru}";
    expect_malformed("bad literal", TEXT("{\"a\": 1,\n \"b\": tru}"), (size_t)(strstr(t1, "tru") - t1), 2, 7);
    const char *t2 = "{\"a\": 1 \"b\": 2}";
    expect_malformed("missing comma", TEXT("{\"a\": 1 \"b\": 2}"), (size_t)(strstr(t2, "\"b\"") - t2), 1, 9);
    expect_malformed("trailing garbage", TEXT("{\"a\": 1}\n\n  x"), 12, 3, 3);
    expect_malformed("embedded NUL", "{\"a\": 1}\0 ", 10, 8, 1, 9);
    expect_malformed("empty file", "", 0, 0, 1, 1);
    expect_malformed("only spaces", TEXT("   \n"), 3, 1, 4);
    // a UTF-8 BOM is skipped, but offsets still count it (3 bytes) so they match the file
    expect_malformed("BOM + bad value", TEXT("\xEF\xBB\xBF{\"a\": @}"), 9, 1, 10);

    // valid with a BOM, and valid from a non-terminated buffer followed by whitespace
    cJSON *j = NULL;
    const char *p = write_file("bom.json", TEXT("\xEF\xBB\xBF{\"a\": 5}\r\n"));
    DV_CHECK_MSG(dv_json_load(p, &j) == 0, "%s", dv_error_message());
    int64_t a = 0;
    DV_CHECK(dv_json_get_int(j, "a", "bom.json", &a) == 0 && a == 5);
    cJSON_Delete(j);
    char *m = malloc(8);
    memcpy(m, "[1, 2] \t", 8);
    DV_CHECK(dv_json_parse(m, 8, "mem", &j) == 0 && cJSON_GetArraySize(j) == 2);
    cJSON_Delete(j);
    free(m);
}

static void test_files(void) {
    cJSON *j = (cJSON *)1;
    int rc = dv_json_load(tpath("absent.json"), &j);
    printf("missing file: %s\n", dv_error_message());
    DV_CHECK(rc == DV_ENOTFOUND && j == NULL && strstr(dv_error_message(), "absent.json"));
    rc = dv_json_load(tpath("no_dir/config.json"), &j);
    DV_CHECK(rc == DV_ENOTFOUND && strstr(dv_error_message(), "no_dir/config.json"));
    rc = dv_json_load(g_dir, &j);
    printf("a folder: %s\n", dv_error_message());
    DV_CHECK(rc == DV_EIO && strstr(dv_error_message(), g_dir));
}

// Getter call must fail with DV_EFORMAT and a message holding `file`, `key` and `what`.
#define EXPECT_TYPE_ERR(call, key, what)                                                                  \
    do {                                                                                                  \
        dv_error_clear();                                                                                 \
        int rc_ = (call);                                                                                 \
        printf("%-44s -> %s\n", #call, dv_error_message());                                               \
        DV_CHECK_MSG(rc_ == DV_EFORMAT && strstr(dv_error_message(), "config.json: ") &&                  \
                         strstr(dv_error_message(), "'" key "'") && strstr(dv_error_message(), what),     \
                     "%s: rc %d, message '%s'", #call, rc_, dv_error_message());                          \
    } while (0)

static void test_getters(void) {
    const char *text = "{\"hidden_size\": 4096, \"rms_norm_eps\": 1e-05, \"neg\": -3, \"sci\": 1e3,"
                       "\"frac\": 2.5, \"str_int\": \"12\", \"nul\": null, \"huge\": 1e16, \"tie\": true,"
                       "\"untie\": false, \"name\": \"llama\", \"arr\": [1], \"obj\": {\"inner\": 5}}";
    const char *p = write_file("config.json", text, strlen(text));
    cJSON *c = NULL;
    DV_CHECK(dv_json_load(p, &c) == 0);
    if (!c) return;
    const char *W = "config.json";
    int64_t i = -1;
    double d = -1;
    int b = -1;

    DV_CHECK(dv_json_get_int(c, "hidden_size", W, &i) == 0 && i == 4096);
    DV_CHECK(dv_json_get_int(c, "neg", W, &i) == 0 && i == -3);
    DV_CHECK(dv_json_get_int(c, "sci", W, &i) == 0 && i == 1000);
    DV_CHECK(dv_json_get_double(c, "rms_norm_eps", W, &d) == 0 && d == 1e-5);
    DV_CHECK(dv_json_get_double(c, "hidden_size", W, &d) == 0 && d == 4096.0); // ints are numbers too
    DV_CHECK(dv_json_get_bool_opt(c, "tie", W, &b) == 0 && b == 1);
    DV_CHECK(dv_json_get_bool_opt(c, "untie", W, &b) == 0 && b == 0);
    DV_CHECK(strcmp(dv_json_get_string(c, "name") ? dv_json_get_string(c, "name") : "", "llama") == 0);
    DV_CHECK(dv_json_get_string(c, "hidden_size") == NULL && dv_json_get_string(c, "absent") == NULL);
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(c, "obj");
    DV_CHECK(dv_json_get_int(obj, "inner", W, &i) == 0 && i == 5);

    // absent (or null) keys: *_opt keep the default, plain forms fail
    i = 77;
    d = 0.5;
    b = 9;
    DV_CHECK(dv_json_get_int_opt(c, "absent", W, &i) == 0 && i == 77);
    DV_CHECK(dv_json_get_int_opt(c, "nul", W, &i) == 0 && i == 77);
    DV_CHECK(dv_json_get_double_opt(c, "absent", W, &d) == 0 && d == 0.5);
    DV_CHECK(dv_json_get_double_opt(c, "nul", W, &d) == 0 && d == 0.5);
    DV_CHECK(dv_json_get_bool_opt(c, "absent", W, &b) == 0 && b == 9);
    DV_CHECK(dv_json_get_bool_opt(c, "nul", W, &b) == 0 && b == 9);
    DV_CHECK(dv_json_get_int_opt(NULL, "absent", W, &i) == 0 && i == 77);
    EXPECT_TYPE_ERR(dv_json_get_int(c, "absent", W, &i), "absent", "missing");
    EXPECT_TYPE_ERR(dv_json_get_double(c, "absent", W, &d), "absent", "missing");
    EXPECT_TYPE_ERR(dv_json_get_int(c, "nul", W, &i), "nul", "null");

    // wrong types and ranges: errors even for the *_opt forms, and *out untouched
    EXPECT_TYPE_ERR(dv_json_get_int(c, "frac", W, &i), "frac", "expected an integer");
    EXPECT_TYPE_ERR(dv_json_get_int_opt(c, "frac", W, &i), "frac", "2.5");
    EXPECT_TYPE_ERR(dv_json_get_int(c, "str_int", W, &i), "str_int", "is a string");
    EXPECT_TYPE_ERR(dv_json_get_int(c, "huge", W, &i), "huge", "out of range");
    EXPECT_TYPE_ERR(dv_json_get_int(c, "tie", W, &i), "tie", "is a boolean");
    EXPECT_TYPE_ERR(dv_json_get_int(c, "obj", W, &i), "obj", "is an object");
    EXPECT_TYPE_ERR(dv_json_get_double(c, "name", W, &d), "name", "is a string");
    EXPECT_TYPE_ERR(dv_json_get_double_opt(c, "arr", W, &d), "arr", "is an array");
    EXPECT_TYPE_ERR(dv_json_get_bool_opt(c, "hidden_size", W, &b), "hidden_size", "expected true or false");
    EXPECT_TYPE_ERR(dv_json_get_bool_opt(c, "name", W, &b), "name", "is a string");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(c, "arr");
    EXPECT_TYPE_ERR(dv_json_get_int_opt(arr, "x", W, &i), "x", "expected an object");
    DV_CHECK(i == 77 && d == 0.5 && b == 9);
    cJSON_Delete(c);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/dv_json_XXXXXX");
    if (!mkdtemp(g_dir)) DV_TEST_SKIP("mkdtemp failed");
    test_malformed();
    test_files();
    test_getters();
    unlink(tpath("bad.json"));
    unlink(tpath("bom.json"));
    unlink(tpath("config.json"));
    rmdir(g_dir);
    return dv_test_finish();
}
