// test_safetensors.c: the safetensors reader and writer.
//  1. dv_safetensors_write -> dv_safetensors_open round trip (F32, F16, BF16, I32, a scalar, an empty
//     tensor, a 2.4 MB tensor streamed through `fill`, metadata): names, dtypes, shapes, bytes.
//  2. The same file read by the Python `safetensors` Rust core (when python3 + safetensors exist):
//     names, dtypes, shapes and a CRC-32 of every tensor's bytes must match what we wrote.
//  3. tests/fixtures/st/py_written.safetensors (written by safetensors.numpy, see make_py_written.py):
//     values recomputed here from the closed forms the script uses.
//  4. Sharded checkpoints and folders.
//  5. Corrupt files, generated in a mkdtemp folder: each must fail with the right code and a message
//     naming the file (the test also runs under ASan/LeakSanitizer, so error paths must not leak).
#include "core/dv_error.h"
#include "core/dv_safetensors.h"
#include "tests/dv_test.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char g_dir[64]; // the mkdtemp folder every generated file lives in

// "<g_dir>/<name>" in one of 4 rotating buffers (so a call can take two paths).
static const char *tpath(const char *name) {
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, name);
    return b;
}

static void write_bytes(const char *name, const void *p, size_t n) {
    FILE *f = fopen(tpath(name), "wb");
    DV_CHECK(f != NULL);
    if (!f) return;
    DV_CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

// A raw safetensors file: u64 header length `hlen` (as given, may lie), the header, `data_len` data bytes.
static void write_st_raw(const char *name, uint64_t hlen, const char *header, size_t data_len) {
    size_t n = strlen(header);
    unsigned char *b = calloc(8 + n + data_len, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_len; i++) b[8 + n + i] = (unsigned char)i;
    write_bytes(name, b, 8 + n + data_len);
    free(b);
}

static void write_st(const char *name, const char *header, size_t data_len) {
    write_st_raw(name, strlen(header), header, data_len);
}

// Opening `path` must fail with `code`, a message naming `file` and containing `what`.
static void expect_open_fail(const char *label, const char *path, int code, const char *file, const char *what) {
    dv_safetensors *st = (dv_safetensors *)1;
    dv_error_clear();
    int rc = dv_safetensors_open(path, &st);
    const char *msg = dv_error_message();
    printf("%-28s rc=%d (%s): %s\n", label, rc, dv_error_name(rc), msg);
    DV_CHECK_MSG(rc == code, "%s: rc %d, expected %d", label, rc, code);
    DV_CHECK_MSG(st == NULL, "%s: handle not NULL on failure", label);
    DV_CHECK_MSG(strstr(msg, file) != NULL, "%s: message does not name '%s'", label, file);
    DV_CHECK_MSG(strstr(msg, what) != NULL, "%s: message lacks '%s'", label, what);
    DV_CHECK_MSG(strchr(msg, '\n') == NULL, "%s: message is not one line", label);
    if (rc == 0) dv_safetensors_free(st);
}

static int shape_is(const dv_st_tensor *t, int n_dims, const int64_t *shape) {
    if (!t || t->n_dims != n_dims) return 0;
    for (int i = 0; i < n_dims; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

// Bitwise CRC-32 (the zlib polynomial), to compare bytes with what Python reports.
static uint32_t crc32_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= b[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

// ---- 1 + 2: writer round trip ----

#define BIG_N 600000 // F32 elements streamed through fill: 2.4 MB, three 1 MiB chunks

static float big_value(size_t i) { return (float)((double)(i % 1000) * 0.001 - 0.5) + (float)(i / 1000); }

static void big_fill(void *buf, size_t n, size_t first, void *ctx) {
    int *calls = ctx;
    (*calls)++;
    float *f = buf;
    for (size_t i = 0; i < n; i++) f[i] = big_value(first + i);
}

typedef struct expect_tensor {
    const char *name, *dtype;
    int n_dims;
    int64_t shape[4];
    const void *bytes;
    size_t nbytes;
} expect_tensor;

static void check_with_python(const char *path, const expect_tensor *ex, int n) {
    if (system("python3 -c 'import safetensors' >/dev/null 2>&1") != 0) {
        printf("python cross-check: SKIPPED (no python3 with safetensors)\n");
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, zlib\n"
             "from safetensors import deserialize\n"
             "for k, v in deserialize(open(sys.argv[1], \"rb\").read()):\n"
             "    print(k.encode().hex(), v[\"dtype\"], \",\".join(map(str, v[\"shape\"])), len(v[\"data\"]), zlib.crc32(bytes(v[\"data\"])))\n"
             "' '%s' 2>&1",
             path);
    FILE *p = popen(cmd, "r");
    DV_CHECK(p != NULL);
    if (!p) return;
    char line[512];
    int seen = 0, matched = 0;
    while (fgets(line, sizeof line, p)) {
        char name[256], dtype[16], shape[128];
        unsigned long long len, crc;
        if (sscanf(line, "%255s %15s %127s %llu %llu", name, dtype, shape, &len, &crc) != 5) {
            // a 0-d tensor prints an empty shape field
            if (sscanf(line, "%255s %15s %llu %llu", name, dtype, &len, &crc) != 4) {
                printf("python: %s", line);
                DV_CHECK_MSG(0, "unexpected python output");
                continue;
            }
            shape[0] = 0;
        }
        seen++;
        for (int i = 0; i < n; i++) {
            char hex[256] = ""; // python prints names hex-encoded (they may hold tabs and quotes)
            for (size_t j = 0; ex[i].name[j] && 2 * j + 2 < sizeof hex; j++)
                snprintf(hex + 2 * j, 3, "%02x", (unsigned char)ex[i].name[j]);
            if (strcmp(hex, name) != 0) continue;
            char want[128] = "";
            size_t o = 0;
            for (int d = 0; d < ex[i].n_dims; d++)
                o += (size_t)snprintf(want + o, sizeof want - o, "%s%lld", d ? "," : "", (long long)ex[i].shape[d]);
            uint32_t c = crc32_bytes(ex[i].bytes, ex[i].nbytes);
            int ok = strcmp(dtype, ex[i].dtype) == 0 && strcmp(shape, want) == 0 && len == ex[i].nbytes &&
                     crc == c;
            DV_CHECK_MSG(ok, "python sees %s %s (%s) %llu bytes crc %llu; wrote %s (%s) %zu bytes crc %u", name,
                         dtype, shape, len, crc, ex[i].dtype, want, ex[i].nbytes, c);
            matched += ok;
        }
    }
    int st = pclose(p);
    DV_CHECK_MSG(st == 0, "python exited with status %d", st);
    DV_CHECK_MSG(seen == n && matched == n, "python saw %d tensors, %d matched, expected %d", seen, matched, n);
    printf("python cross-check: %d/%d tensors match (dtype, shape, CRC-32 of bytes)\n", matched, n);
}

static void test_round_trip(void) {
    uint64_t seed = 42;
    float a[3 * 4]; // (3, 4) F32
    dv_test_rand(a, 12, -2, 2, &seed);
    float hf[5];
    uint16_t h[5]; // (5) F16
    dv_test_rand(hf, 5, -100, 100, &seed);
    for (int i = 0; i < 5; i++) h[i] = dv_f32_to_f16(hf[i]);
    float bf[12];
    uint16_t b[2 * 2 * 3]; // (2, 2, 3) BF16
    dv_test_rand(bf, 12, -1e3f, 1e3f, &seed);
    for (int i = 0; i < 12; i++) b[i] = dv_f32_to_bf16(bf[i]);
    int32_t ids[7] = {0, -1, 2147483647, -2147483647 - 1, 5, 6, 7}; // (7) I32
    float scalar = 0.125f;                                          // () F32
    int fill_calls = 0;
    dv_st_write_tensor ts[] = {
        {.name = "model.layers.0.w", .dtype = DV_DTYPE_F32, .n_dims = 2, .shape = {3, 4}, .data = a},
        {.name = "half", .dtype = DV_DTYPE_F16, .n_dims = 1, .shape = {5}, .data = h},
        {.name = "brain", .dtype = DV_DTYPE_BF16, .n_dims = 3, .shape = {2, 2, 3}, .data = b},
        {.name = "ids", .dtype = DV_DTYPE_I32, .n_dims = 1, .shape = {7}, .data = ids},
        {.name = "scalar", .dtype = DV_DTYPE_F32, .n_dims = 0, .data = &scalar},
        {.name = "empty", .dtype = DV_DTYPE_F32, .n_dims = 2, .shape = {0, 3}},
        {.name = "big", .dtype = DV_DTYPE_F32, .n_dims = 2, .shape = {600, 1000}, .fill = big_fill,
         .fill_ctx = &fill_calls},
        {.name = "we\"ird\\name\t", .dtype = DV_DTYPE_I32, .n_dims = 1, .shape = {1}, .data = ids + 2},
    };
    int n = (int)(sizeof ts / sizeof ts[0]);
    const char *mk[] = {"format", "note"};
    const char *mv[] = {"pt", "quotes \" and \\ and\nnewline"};
    const char *path = tpath("rt.safetensors");
    int rc = dv_safetensors_write(path, ts, n, mk, mv, 2);
    DV_CHECK_MSG(rc == 0, "write: %s", dv_error_message());
    DV_CHECK_MSG(fill_calls == 3, "fill called %d times, expected 3 chunks", fill_calls);

    float *big = malloc(BIG_N * sizeof *big); // (600, 1000) reference for the streamed tensor
    for (size_t i = 0; i < BIG_N; i++) big[i] = big_value(i);
    const void *src[] = {a, h, b, ids, &scalar, NULL, big, ids + 2};
    const char *dts[] = {"F32", "F16", "BF16", "I32", "F32", "F32", "F32", "I32"};

    // the header length keeps the data block 8-byte aligned
    FILE *f = fopen(path, "rb");
    unsigned char len8[8] = {0};
    DV_CHECK(f && fread(len8, 1, 8, f) == 8);
    if (f) fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    printf("round trip: header %llu bytes, %s\n", (unsigned long long)hlen, hlen % 8 == 0 ? "8-aligned" : "NOT aligned");
    DV_CHECK(hlen % 8 == 0);

    dv_safetensors *st = NULL;
    rc = dv_safetensors_open(path, &st);
    DV_CHECK_MSG(rc == 0, "open: %s", dv_error_message());
    if (rc == 0) {
        DV_CHECK(dv_safetensors_count(st) == n);
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            const dv_st_tensor *t = dv_safetensors_find(st, ts[i].name);
            DV_CHECK_MSG(t != NULL, "tensor '%s' not found", ts[i].name);
            if (!t) continue;
            size_t nb = dv_dtype_size(ts[i].dtype);
            for (int d = 0; d < ts[i].n_dims; d++) nb *= (size_t)ts[i].shape[d];
            total += nb;
            DV_CHECK_MSG(t->dtype == ts[i].dtype && shape_is(t, ts[i].n_dims, ts[i].shape) && t->nbytes == nb,
                         "tensor '%s': dtype/shape/size differ", ts[i].name);
            DV_CHECK_MSG(nb == 0 || memcmp(t->data, src[i], nb) == 0, "tensor '%s': bytes differ", ts[i].name);
            DV_CHECK(strcmp(t->file, path) == 0);
        }
        DV_CHECK(dv_safetensors_total_bytes(st) == total);
        // at() visits every tensor exactly once
        int found = 0;
        for (int i = 0; i < dv_safetensors_count(st); i++) found += dv_safetensors_find(st, dv_safetensors_at(st, i)->name) == dv_safetensors_at(st, i);
        DV_CHECK(found == n);
        const char *m0 = dv_safetensors_metadata(st, "format"), *m1 = dv_safetensors_metadata(st, "note");
        DV_CHECK(m0 && strcmp(m0, "pt") == 0);
        DV_CHECK(m1 && strcmp(m1, mv[1]) == 0);
        DV_CHECK(dv_safetensors_metadata(st, "absent") == NULL);
        DV_CHECK(dv_safetensors_find(st, "nope") == NULL);
        DV_CHECK(dv_safetensors_find(st, "") == NULL);

        // get: exact shape, wildcard, wrong shape, wrong rank, missing
        const dv_st_tensor *t = NULL;
        DV_CHECK(dv_safetensors_get(st, "model.layers.0.w", 2, (int64_t[]){3, 4}, &t) == 0 && t);
        DV_CHECK(dv_safetensors_get(st, "model.layers.0.w", 2, (int64_t[]){-1, 4}, &t) == 0 && t);
        rc = dv_safetensors_get(st, "model.layers.0.w", 2, (int64_t[]){4, 3}, &t);
        printf("get wrong shape: %s\n", dv_error_message());
        DV_CHECK(rc == DV_ESHAPE && t == NULL);
        DV_CHECK(strstr(dv_error_message(), "rt.safetensors") && strstr(dv_error_message(), "'model.layers.0.w'") &&
                 strstr(dv_error_message(), "(3, 4)") && strstr(dv_error_message(), "(4, 3)"));
        DV_CHECK(dv_safetensors_get(st, "model.layers.0.w", 1, (int64_t[]){12}, &t) == DV_ESHAPE);
        rc = dv_safetensors_get(st, "lm_head.weight", 2, (int64_t[]){3, 4}, &t);
        printf("get missing: %s\n", dv_error_message());
        DV_CHECK(rc == DV_ENOTFOUND && t == NULL);
        DV_CHECK(strstr(dv_error_message(), "rt.safetensors") && strstr(dv_error_message(), "'lm_head.weight'"));
        dv_safetensors_free(st);
    }

    expect_tensor ex[8];
    for (int i = 0; i < n; i++) {
        size_t nb = dv_dtype_size(ts[i].dtype);
        for (int d = 0; d < ts[i].n_dims; d++) nb *= (size_t)ts[i].shape[d];
        ex[i] = (expect_tensor){.name = ts[i].name, .dtype = dts[i], .n_dims = ts[i].n_dims, .bytes = src[i], .nbytes = nb};
        memcpy(ex[i].shape, ts[i].shape, sizeof ex[i].shape);
    }
    check_with_python(path, ex, n);
    free(big);
}

// ---- 3: a file written by Python's safetensors ----

static void test_python_fixture(void) {
    const char *path = dv_test_path("tests/fixtures/st/py_written.safetensors");
    dv_safetensors *st = NULL;
    int rc = dv_safetensors_open(path, &st);
    DV_CHECK_MSG(rc == 0, "open fixture: %s", dv_error_message());
    if (rc) return;
    DV_CHECK(dv_safetensors_count(st) == 8);
    const dv_st_tensor *t;
    double md = 0;
    int bad = 0;

    DV_CHECK(dv_safetensors_get(st, "a.f32", 2, (int64_t[]){2, 3}, &t) == 0 && t->dtype == DV_DTYPE_F32);
    for (int i = 0; i < 6; i++) md = fmax(md, fabs(((const float *)t->data)[i] - (i * 0.25 - 0.5)));
    DV_CHECK(dv_safetensors_get(st, "b.f16", 1, (int64_t[]){4}, &t) == 0 && t->dtype == DV_DTYPE_F16);
    for (int i = 0; i < 4; i++) md = fmax(md, fabs(dv_f16_to_f32(((const uint16_t *)t->data)[i]) - (i * 0.5 - 1.0)));
    DV_CHECK(dv_safetensors_get(st, "c.i32", 2, (int64_t[]){3, 2}, &t) == 0 && t->dtype == DV_DTYPE_I32);
    for (int i = 0; i < 6; i++) bad += ((const int32_t *)t->data)[i] != i * 7 - 10;
    DV_CHECK(dv_safetensors_get(st, "d.i64", 1, (int64_t[]){2}, &t) == 0 && t->dtype == DV_DTYPE_I64);
    int64_t d[2];
    memcpy(d, t->data, sizeof d); // the data block is not guaranteed 8-aligned
    bad += d[0] != -(INT64_C(1) << 40) || d[1] != (INT64_C(1) << 40) + 5;
    DV_CHECK(dv_safetensors_get(st, "e.u8", 1, (int64_t[]){5}, &t) == 0 && t->dtype == DV_DTYPE_U8);
    for (int i = 0; i < 5; i++) bad += ((const uint8_t *)t->data)[i] != i * 50;
    DV_CHECK(dv_safetensors_get(st, "f.scalar", 0, NULL, &t) == 0 && t->nbytes == 4);
    md = fmax(md, fabs(*(const float *)t->data - 3.5));
    DV_CHECK(dv_safetensors_get(st, "g.empty", 2, (int64_t[]){0, 4}, &t) == 0 && t->nbytes == 0);
    DV_CHECK(dv_safetensors_get(st, "h.f32.3d", 3, (int64_t[]){2, 3, 4}, &t) == 0 && t->nbytes == 96);
    for (int i = 0; i < 24; i++) md = fmax(md, fabs(((const float *)t->data)[i] - (i / 8.0 - 1.0)));
    printf("python fixture: %d tensors, maxdiff = %.3e, integer mismatches = %d\n", dv_safetensors_count(st), md, bad);
    DV_CHECK(md == 0 && bad == 0); // every value is exact in its dtype
    const char *fmt = dv_safetensors_metadata(st, "format"), *src = dv_safetensors_metadata(st, "source");
    DV_CHECK(fmt && strcmp(fmt, "np") == 0);
    DV_CHECK(src && strcmp(src, "make_py_written.py") == 0);
    DV_CHECK(dv_safetensors_total_bytes(st) == 16 + 24 + 4 + 0 + 96 + 24 + 8 + 5);
    dv_safetensors_free(st);
}

// ---- 4: shards and folders ----

static void write_small(const char *name, const char *const *names, int n, const char *meta_value) {
    float v[4] = {1, 2, 3, 4};
    dv_st_write_tensor ts[4];
    for (int i = 0; i < n; i++)
        ts[i] = (dv_st_write_tensor){.name = names[i], .dtype = DV_DTYPE_F32, .n_dims = 1, .shape = {4}, .data = v};
    const char *mk[] = {"shard"};
    int rc = dv_safetensors_write(tpath(name), ts, n, mk, &meta_value, meta_value ? 1 : 0);
    DV_CHECK_MSG(rc == 0, "%s", dv_error_message());
}

static void test_sharded(void) {
    mkdir(tpath("sharded"), 0755);
    write_small("sharded/model-00001-of-00002.safetensors", (const char *[]){"a", "b"}, 2, "one");
    write_small("sharded/model-00002-of-00002.safetensors", (const char *[]){"c"}, 1, "two");
    const char *good = "{\"metadata\": {\"total_size\": 48}, \"weight_map\": {"
                       "\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
                       "\"c\": \"model-00002-of-00002.safetensors\"}}";
    write_bytes("sharded/model.safetensors.index.json", good, strlen(good));
    const char *paths[] = {tpath("sharded/model.safetensors.index.json"), tpath("sharded")};
    for (int k = 0; k < 2; k++) {
        dv_safetensors *st = NULL;
        int rc = dv_safetensors_open(paths[k], &st);
        DV_CHECK_MSG(rc == 0, "sharded open: %s", dv_error_message());
        if (rc) continue;
        DV_CHECK(dv_safetensors_count(st) == 3);
        const dv_st_tensor *a = dv_safetensors_find(st, "a"), *c = dv_safetensors_find(st, "c");
        DV_CHECK(a && strstr(a->file, "model-00001-of-00002.safetensors"));
        DV_CHECK(c && strstr(c->file, "model-00002-of-00002.safetensors"));
        DV_CHECK(c && c->nbytes == 16 && ((const float *)c->data)[3] == 4.0f);
        DV_CHECK(dv_safetensors_total_bytes(st) == 48);
        const char *m = dv_safetensors_metadata(st, "shard");
        DV_CHECK(m && strcmp(m, "one") == 0); // first shard that has the key
        dv_safetensors_free(st);
    }
    printf("sharded: index file and folder both open, 3 tensors in 2 shards\n");

    // a folder with only model.safetensors
    mkdir(tpath("single"), 0755);
    write_small("single/model.safetensors", (const char *[]){"x"}, 1, NULL);
    dv_safetensors *st = NULL;
    DV_CHECK(dv_safetensors_open(tpath("single"), &st) == 0 && dv_safetensors_count(st) == 1);
    dv_safetensors_free(st);

    // index naming a shard that does not exist
    const char *missing_shard = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\","
                                "\"c\": \"model-00003-of-00003.safetensors\"}}";
    write_bytes("sharded/missing_shard.index.json", missing_shard, strlen(missing_shard));
    expect_open_fail("index: missing shard", tpath("sharded/missing_shard.index.json"), DV_ENOTFOUND,
                     "model-00003-of-00003.safetensors", "missing_shard.index.json");
    // index pointing a tensor at the wrong shard
    const char *wrong = "{\"weight_map\": {\"a\": \"model-00002-of-00002.safetensors\","
                        "\"b\": \"model-00001-of-00002.safetensors\", \"c\": \"model-00002-of-00002.safetensors\"}}";
    write_bytes("sharded/wrong.index.json", wrong, strlen(wrong));
    expect_open_fail("index: wrong shard", tpath("sharded/wrong.index.json"), DV_EFORMAT, "wrong.index.json",
                     "tensor 'a'");
    // index naming a tensor that is in no shard
    const char *ghost = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\","
                        "\"ghost\": \"model-00002-of-00002.safetensors\", \"zzz\": \"model-00002-of-00002.safetensors\"}}";
    write_bytes("sharded/ghost.index.json", ghost, strlen(ghost));
    expect_open_fail("index: tensor in no shard", tpath("sharded/ghost.index.json"), DV_EFORMAT, "ghost.index.json",
                     "tensor 'ghost'");
    // the same tensor in two shards
    write_small("sharded/dup.safetensors", (const char *[]){"a"}, 1, NULL);
    const char *dup = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"z\": \"dup.safetensors\"}}";
    write_bytes("sharded/dup.index.json", dup, strlen(dup));
    expect_open_fail("index: tensor in two shards", tpath("sharded/dup.index.json"), DV_EFORMAT, "dup.index.json",
                     "'a' is in both");
    const char *no_map = "{\"metadata\": {}}";
    write_bytes("sharded/nomap.index.json", no_map, strlen(no_map));
    expect_open_fail("index: no weight_map", tpath("sharded/nomap.index.json"), DV_EFORMAT, "nomap.index.json",
                     "weight_map");
    // cJSON reports a truncated document at its last byte
    write_bytes("sharded/bad.index.json", "{\"weight_map\": {", 16);
    expect_open_fail("index: malformed JSON", tpath("sharded/bad.index.json"), DV_EFORMAT, "bad.index.json",
                     "malformed JSON at byte 15");

    // folders
    expect_open_fail("missing folder", tpath("no_such_dir/"), DV_ENOTFOUND, "no_such_dir", "No such file");
    mkdir(tpath("emptydir"), 0755);
    expect_open_fail("empty folder", tpath("emptydir"), DV_ENOTFOUND, "emptydir",
                     "no model.safetensors or model.safetensors.index.json");
}

// ---- 5: corrupt single files ----

static void test_corrupt(void) {
    write_bytes("zero.safetensors", "", 0);
    expect_open_fail("zero-byte file", tpath("zero.safetensors"), DV_EFORMAT, "zero.safetensors", "too short");
    write_bytes("five.safetensors", "\x10\0\0\0\0", 5);
    expect_open_fail("5-byte file", tpath("five.safetensors"), DV_EFORMAT, "five.safetensors", "too short");

    const char *ok1 = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    write_st_raw("hlen_eof.safetensors", 1000, ok1, 8);
    expect_open_fail("header length past EOF", tpath("hlen_eof.safetensors"), DV_EFORMAT, "hlen_eof.safetensors",
                     "past the end");
    write_st_raw("hlen0.safetensors", 0, ok1, 8);
    expect_open_fail("header length 0", tpath("hlen0.safetensors"), DV_EFORMAT, "hlen0.safetensors", "length is 0");
    write_st_raw("hlen_huge.safetensors", (uint64_t)1 << 40, ok1, 8);
    expect_open_fail("header length huge", tpath("hlen_huge.safetensors"), DV_EFORMAT, "hlen_huge.safetensors",
                     "absurdly large");

    write_st("notjson.safetensors", "{\"x\": nope}", 0);
    expect_open_fail("header not JSON", tpath("notjson.safetensors"), DV_EFORMAT, "notjson.safetensors",
                     "malformed JSON at byte 6");
    write_st("trailing.safetensors", "{}  x", 0);
    expect_open_fail("header trailing garbage", tpath("trailing.safetensors"), DV_EFORMAT, "trailing.safetensors",
                     "malformed JSON at byte 4");
    write_st("array.safetensors", "[1, 2]", 0);
    expect_open_fail("header is an array", tpath("array.safetensors"), DV_EFORMAT, "array.safetensors",
                     "not a JSON object");

    write_st("past_end.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);
    expect_open_fail("data_offsets past end", tpath("past_end.safetensors"), DV_EFORMAT, "past_end.safetensors",
                     "beyond the data block (4 bytes) (tensor 'x')");
    write_st("len.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("bytes != shape*dtype", tpath("len.safetensors"), DV_EFORMAT, "len.safetensors",
                     "needs 12 (tensor 'x')");
    write_st("overlap.safetensors",
             "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             12);
    expect_open_fail("overlapping tensors", tpath("overlap.safetensors"), DV_EFORMAT, "overlap.safetensors",
                     "overlaps that of tensor 'x' (tensor 'y')");
    // a tensor nested inside a longer one overlaps even though the next begin passes the previous end
    write_st("nested.safetensors",
             "{\"big\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
             "\"mid\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
             "\"late\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]}}",
             16);
    expect_open_fail("nested tensors", tpath("nested.safetensors"), DV_EFORMAT, "nested.safetensors",
                     "(tensor 'mid')");
    write_st("unknown.safetensors", "{\"x\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("unknown dtype", tpath("unknown.safetensors"), DV_EFORMAT, "unknown.safetensors",
                     "unknown dtype 'Q4' (tensor 'x')");
    write_st("f64.safetensors", "{\"x\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("unsupported dtype", tpath("f64.safetensors"), DV_EUNSUPPORTED, "f64.safetensors",
                     "unsupported dtype 'F64'");
    write_st("nooff.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);
    expect_open_fail("missing data_offsets", tpath("nooff.safetensors"), DV_EFORMAT, "nooff.safetensors",
                     "missing 'data_offsets' (tensor 'x')");
    write_st("shapestr.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("shape of wrong type", tpath("shapestr.safetensors"), DV_EFORMAT, "shapestr.safetensors",
                     "'shape' is not an array");
    write_st("neg.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("negative dim", tpath("neg.safetensors"), DV_EFORMAT, "neg.safetensors", "negative dimension");
    write_st("fracdim.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("fractional dim", tpath("fracdim.safetensors"), DV_EFORMAT, "fracdim.safetensors",
                     "dimension 1.5 is not a whole number");
    write_st("frac.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,7.5]}}", 8);
    expect_open_fail("fractional offset", tpath("frac.safetensors"), DV_EFORMAT, "frac.safetensors",
                     "non-negative integers");
    write_st("dims9.safetensors",
             "{\"x\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1);
    expect_open_fail("9 dims", tpath("dims9.safetensors"), DV_EUNSUPPORTED, "dims9.safetensors", "9 dimensions");
    write_st("ovf.safetensors",
             "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("shape overflow", tpath("ovf.safetensors"), DV_EFORMAT, "ovf.safetensors", "overflows");
    write_st("rev.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
    expect_open_fail("begin > end", tpath("rev.safetensors"), DV_EFORMAT, "rev.safetensors", "begin 8 > end 0");
    write_st("dupname.safetensors",
             "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             8);
    expect_open_fail("duplicate names", tpath("dupname.safetensors"), DV_EFORMAT, "dupname.safetensors",
                     "duplicate tensor name (tensor 'x')");
    write_st("meta.safetensors", "{\"__metadata__\":{\"n\":3}}", 0);
    expect_open_fail("non-string metadata", tpath("meta.safetensors"), DV_EFORMAT, "meta.safetensors",
                     "not a string");
    expect_open_fail("missing file", tpath("absent.safetensors"), DV_ENOTFOUND, "absent.safetensors",
                     "No such file");

    // header-only file with no tensors is valid (and empty)
    write_st("notensors.safetensors", "{\"__metadata__\":{\"k\":\"v\"}}", 0);
    dv_safetensors *st = NULL;
    DV_CHECK(dv_safetensors_open(tpath("notensors.safetensors"), &st) == 0 && dv_safetensors_count(st) == 0);
    DV_CHECK(st && dv_safetensors_find(st, "x") == NULL);
    dv_safetensors_free(st);
}

// ---- writer failures, lookup speed ----

static int dir_has_temp(void) {
    DIR *d = opendir(g_dir);
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d));) found |= strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return found;
}

static void test_writer_errors(void) {
    float v = 1;
    dv_st_write_tensor ts[2] = {{.name = "a", .dtype = DV_DTYPE_F32, .n_dims = 1, .shape = {1}, .data = &v},
                                {.name = "a", .dtype = DV_DTYPE_F32, .n_dims = 1, .shape = {1}, .data = &v}};
    int rc = dv_safetensors_write(tpath("dup_w.safetensors"), ts, 2, NULL, NULL, 0);
    printf("write duplicate names: %s\n", dv_error_message());
    DV_CHECK(rc == DV_EINVAL && strstr(dv_error_message(), "dup_w.safetensors"));
    DV_CHECK(access(tpath("dup_w.safetensors"), F_OK) != 0);
    rc = dv_safetensors_write(tpath("no_dir/x.safetensors"), ts, 1, NULL, NULL, 0);
    printf("write into missing folder: %s\n", dv_error_message());
    DV_CHECK(rc == DV_EIO && strstr(dv_error_message(), "no_dir/x.safetensors"));
    ts[1].data = NULL; // neither data nor fill
    ts[1].name = "b";
    rc = dv_safetensors_write(tpath("nodata.safetensors"), ts, 2, NULL, NULL, 0);
    DV_CHECK(rc == DV_EINVAL && access(tpath("nodata.safetensors"), F_OK) != 0);
    // rename failure: the target is a non-empty folder, so the temp file must be removed
    mkdir(tpath("taken"), 0755);
    write_bytes("taken/f", "x", 1);
    rc = dv_safetensors_write(tpath("taken"), ts, 1, NULL, NULL, 0);
    printf("write over a folder: %s\n", dv_error_message());
    DV_CHECK(rc == DV_EIO && strstr(dv_error_message(), "taken"));
    DV_CHECK_MSG(!dir_has_temp(), "a temp file was left behind");
}

static void test_lookup_speed(void) {
    enum { N = 1000 };
    static char names[N][48];
    static dv_st_write_tensor ts[N];
    static const uint8_t byte = 7;
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "model.layers.%d.self_attn.q_proj.weight", i);
        ts[i] = (dv_st_write_tensor){.name = names[i], .dtype = DV_DTYPE_U8, .n_dims = 1, .shape = {1}, .data = &byte};
    }
    DV_CHECK(dv_safetensors_write(tpath("many.safetensors"), ts, N, NULL, NULL, 0) == 0);
    dv_safetensors *st = NULL;
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = dv_safetensors_open(tpath("many.safetensors"), &st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    DV_CHECK(rc == 0);
    if (rc) return;
    int found = 0;
    for (int r = 0; r < 100; r++)
        for (int i = 0; i < N; i++) found += dv_safetensors_find(st, names[i]) != NULL;
    clock_gettime(CLOCK_MONOTONIC, &t2);
    double open_ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6;
    double ns = ((t2.tv_sec - t1.tv_sec) * 1e9 + (t2.tv_nsec - t1.tv_nsec)) / (100.0 * N);
    printf("lookup: %d tensors, open %.2f ms, find %.0f ns/lookup\n", N, open_ms, ns);
    DV_CHECK(found == 100 * N);
    dv_safetensors_free(st);
}

// Removes g_dir and everything in it (two levels are all the test creates).
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/dv_st_XXXXXX");
    if (!mkdtemp(g_dir)) DV_TEST_SKIP("mkdtemp failed");
    test_round_trip();
    test_python_fixture();
    test_sharded();
    test_corrupt();
    test_writer_errors();
    test_lookup_speed();
    remove_tree(g_dir);
    return dv_test_finish();
}
