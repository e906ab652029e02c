// context_cache.c: the video context cache file (.dvctx): key, metadata and an LLM state, written
// atomically, checksummed, and ignored with a warning when it does not fit.
//
// File format, version 2 (every integer little-endian, fixed width; docs/FORMATS.md):
//   offset  size  field
//        0     8  magic "DUOVIDCX"
//        8     4  u32 format version (2)
//       12     4  u32 reserved (0)
//       16     8  u64 file size in bytes, checksum included (a truncated file is caught at once)
//       24     8  u64 model_hash
//       32     8  u64 video_hash
//       40     8  u64 pattern_hash
//       48     8  i64 n_tokens (the context's n_past)
//       56     4  u32 plan length P   (<= 511)
//       60     4  u32 model id length M (<= 255)
//       64     4  u32 info length I   (<= 64 MiB)
//       68     4  u32 reserved (0)
//       72     P  plan text (no NUL)
//     72+P     M  model id text ("LlamaForCausalLM L2 Hq4 Hkv2 D16 H64 F176 V514")
//   72+P+M     I  info JSON text, as given by the caller
//        .     S  LLM state: dv_llm_state_write (llm/kv_cache_io.c: model shape, n_past, KV layout,
//                 K / V row types, head kinds, KV data)
//   size-8     8  u64 XXH3-64 (seed 0) of bytes [0, size - 8)
#include "vlm/dv_context_cache.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"

#include <dirent.h>
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define CX_MAGIC "DUOVIDCX"
#define CX_VERSION 2u // 1: before the KV cache stream stored its K / V types (an old file is rebuilt)
#define CX_HEADER 72
#define CX_MAX_PLAN (sizeof(((dv_ctx_key *)0)->plan) - 1)
#define CX_MAX_MODEL_ID 255
#define CX_MAX_INFO (64u << 20)

// ---- content hashes ----

#define HF_EDGE (1u << 20)  // bytes hashed at the start and at the end of a large file
#define HF_BLOCK (64u << 10) // bytes of each sampled block in between
#define HF_NBLOCKS 62
#define HF_WHOLE ((uint64_t)2 * HF_EDGE + (uint64_t)HF_NBLOCKS * HF_BLOCK) // hashed whole up to this size

// Hashes [off, off + n) of fd into h, reading through buf (HF_EDGE bytes).
static int hash_range(int fd, const char *path, uint64_t off, uint64_t n, uint8_t *buf, XXH3_state_t *h) {
    while (n) {
        const size_t want = n < HF_EDGE ? (size_t)n : HF_EDGE;
        const ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
            return dv_error_set(DV_EIO, "%s: read failed (%s)", path, got < 0 ? strerror(errno) : "file shrank");
        XXH3_64bits_update(h, buf, (size_t)got);
        off += (uint64_t)got;
        n -= (uint64_t)got;
    }
    return 0;
}

int dv_ctx_hash_file(const char *path, uint64_t *out) {
    *out = 0;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dv_error_set(errno == ENOENT ? DV_ENOTFOUND : DV_EIO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    uint8_t *buf = NULL;
    XXH3_state_t *h = NULL;
    int rc = 0;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        rc = dv_error_set(DV_EIO, "%s: not a regular file", path);
        goto done;
    }
    if (!(buf = malloc(HF_EDGE)) || !(h = XXH3_createState())) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto done;
    }
    XXH3_64bits_reset(h);
    const uint64_t size = (uint64_t)st.st_size;
    uint8_t sz[8];
    dv_io_put_le(sz, size, 8);
    XXH3_64bits_update(h, sz, 8);
    if (size <= HF_WHOLE) {
        rc = hash_range(fd, path, 0, size, buf, h);
    } else {
        // blocks evenly spaced over [HF_EDGE, size - HF_EDGE): the first starts there, the last ends there
        const uint64_t span = size - 2 * (uint64_t)HF_EDGE - HF_BLOCK;
        rc = hash_range(fd, path, 0, HF_EDGE, buf, h);
        for (int i = 0; !rc && i < HF_NBLOCKS; i++)
            rc = hash_range(fd, path, HF_EDGE + span / (HF_NBLOCKS - 1) * (uint64_t)i +
                                          span % (HF_NBLOCKS - 1) * (uint64_t)i / (HF_NBLOCKS - 1),
                            HF_BLOCK, buf, h);
        if (!rc) rc = hash_range(fd, path, size - HF_EDGE, HF_EDGE, buf, h);
    }
    if (!rc) *out = XXH3_64bits_digest(h);
done:
    XXH3_freeState(h);
    free(buf);
    close(fd);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int model_file(const struct dirent *e) {
    return e->d_name[0] != '.' &&
           (ends_with(e->d_name, ".json") || ends_with(e->d_name, ".safetensors") || ends_with(e->d_name, ".model"));
}

// Byte order, not the locale's collation: the hash must not depend on LC_COLLATE.
static int name_cmp(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

int dv_ctx_hash_model(const char *model_dir, uint64_t *out) {
    *out = 0;
    struct dirent **ents = NULL;
    const int n = scandir(model_dir, &ents, model_file, name_cmp);
    if (n < 0)
        return dv_error_set(errno == ENOENT ? DV_ENOTFOUND : DV_EIO, "%s: cannot list the model folder (%s)",
                            model_dir, strerror(errno));
    XXH3_state_t *h = XXH3_createState();
    int rc = h ? 0 : dv_error_set(DV_ENOMEM, "out of memory"), has_config = 0, n_weights = 0;
    if (h) XXH3_64bits_reset(h);
    for (int i = 0; !rc && i < n; i++) {
        const char *name = ents[i]->d_name;
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", model_dir, name) >= sizeof path) {
            rc = dv_error_set(DV_EINVAL, "%s/%s: path too long", model_dir, name);
            break;
        }
        uint64_t fh;
        if ((rc = dv_ctx_hash_file(path, &fh))) break;
        uint8_t le[8];
        dv_io_put_le(le, fh, 8);
        XXH3_64bits_update(h, name, strlen(name) + 1); // the NUL separates the name from the hash
        XXH3_64bits_update(h, le, 8);
        has_config |= !strcmp(name, "config.json");
        n_weights += ends_with(name, ".safetensors");
    }
    if (!rc && (!has_config || !n_weights))
        rc = dv_error_set(DV_ENOTFOUND, "%s: no %s in the model folder", model_dir,
                          has_config ? "*.safetensors file" : "config.json");
    if (!rc) *out = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    for (int i = 0; i < n; i++) free(ents[i]);
    free(ents);
    return rc;
}

uint64_t dv_ctx_hash_pattern(const dv_duo_pattern *p, dv_duo_prefill prefill) {
    uint8_t b[40]; // tag, prefill, shape, sink, recent; the heads (0/1 bytes) are hashed seeded with it
    memcpy(b, p ? "duo-attn" : "full-att", 8);
    dv_io_put_le(b + 8, (uint64_t)prefill, 8);
    dv_io_put_le(b + 16, p ? (uint64_t)p->n_layers : 0, 4);
    dv_io_put_le(b + 20, p ? (uint64_t)p->n_kv_heads : 0, 4);
    dv_io_put_le(b + 24, p ? (uint64_t)(int64_t)p->sink : 0, 8);
    dv_io_put_le(b + 32, p ? (uint64_t)(int64_t)p->recent : 0, 8);
    const uint64_t h = XXH3_64bits(b, sizeof b);
    return p ? XXH3_64bits_withSeed(p->retrieval, (size_t)p->n_layers * (size_t)p->n_kv_heads, h) : h;
}

// ---- paths ----

int dv_ctx_cache_dir_default(char *out, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(out, cap, "%s/duovid", xdg); // the XDG spec ignores relative paths
    else if (home && home[0]) n = snprintf(out, cap, "%s/.cache/duovid", home);
    else return dv_error_set(DV_ENOTFOUND, "no cache directory: neither XDG_CACHE_HOME nor HOME is set (use --cache-dir)");
    if (n < 0 || (size_t)n >= cap) return dv_error_set(DV_EINVAL, "cache directory path too long");
    return 0;
}

static size_t plan_len(const dv_ctx_key *k) { return strnlen(k->plan, sizeof k->plan); }

int dv_ctx_cache_path(const char *dir, const dv_ctx_key *k, char *out, size_t cap) {
    const size_t pl = plan_len(k);
    if (pl > CX_MAX_PLAN) return dv_error_set(DV_EINVAL, "context cache key: plan is not NUL-terminated");
    uint8_t b[32 + CX_MAX_PLAN];
    memcpy(b, "dvctxkey", 8);
    dv_io_put_le(b + 8, k->model_hash, 8);
    dv_io_put_le(b + 16, k->video_hash, 8);
    dv_io_put_le(b + 24, k->pattern_hash, 8);
    memcpy(b + 32, k->plan, pl);
    const XXH128_hash_t hh = XXH3_128bits(b, 32 + pl);
    const int n = snprintf(out, cap, "%s/%016llx%016llx.dvctx", dir, (unsigned long long)hh.high64,
                           (unsigned long long)hh.low64);
    if (n < 0 || (size_t)n >= cap) return dv_error_set(DV_EINVAL, "%s: context cache path too long", dir);
    return 0;
}

static void model_id(const dv_llm *m, char *out, size_t cap) {
    const dv_llm_config *c = dv_llm_get_config(m);
    snprintf(out, cap, "%s L%d Hq%d Hkv%d D%d H%d F%d V%d", c->arch_name, c->n_layers, c->n_heads, c->n_kv_heads,
             c->head_dim, c->hidden_size, c->intermediate_size, c->vocab_size);
}

// ---- streams: every byte goes through the checksum and the progress bar ----

typedef struct cx_stream {
    FILE *f;
    XXH3_state_t *h;
    uint64_t pos;      // bytes so far
    dv_progress *prog; // counts MiB
} cx_stream;

static void cx_advance(cx_stream *s, const void *buf, size_t n) {
    XXH3_64bits_update(s->h, buf, n);
    s->pos += n;
    dv_progress_update(s->prog, (int64_t)(s->pos >> 20));
}

static int cx_write(void *ctx, const void *buf, size_t n) {
    cx_stream *s = ctx;
    int rc = dv_io_write_stdio(s->f, buf, n);
    if (!rc) cx_advance(s, buf, n);
    return rc;
}

static int cx_read(void *ctx, void *buf, size_t n) {
    cx_stream *s = ctx;
    int rc = dv_io_read_stdio(s->f, buf, n);
    if (!rc) cx_advance(s, buf, n);
    return rc;
}

static void header_pack(uint8_t *b, uint64_t size, const dv_ctx_key *k, int64_t n_tokens, uint32_t pl, uint32_t ml,
                        uint32_t il) {
    memset(b, 0, CX_HEADER);
    memcpy(b, CX_MAGIC, 8);
    dv_io_put_le(b + 8, CX_VERSION, 4);
    dv_io_put_le(b + 16, size, 8);
    dv_io_put_le(b + 24, k->model_hash, 8);
    dv_io_put_le(b + 32, k->video_hash, 8);
    dv_io_put_le(b + 40, k->pattern_hash, 8);
    dv_io_put_le(b + 48, (uint64_t)n_tokens, 8);
    dv_io_put_le(b + 56, pl, 4);
    dv_io_put_le(b + 60, ml, 4);
    dv_io_put_le(b + 64, il, 4);
}

// ---- save ----

int dv_ctx_cache_save(const char *path, const dv_ctx_key *k, const char *info_json, dv_llm *m) {
    char dir[4096], mid[CX_MAX_MODEL_ID + 1];
    if (!info_json) info_json = "";
    const size_t pl = plan_len(k), il = strlen(info_json);
    if (pl > CX_MAX_PLAN) return dv_error_set(DV_EINVAL, "%s: context cache key: plan is not NUL-terminated", path);
    if (il > CX_MAX_INFO) return dv_error_set(DV_EINVAL, "%s: context info text of %zu bytes is too long", path, il);
    model_id(m, mid, sizeof mid);
    const size_t ml = strlen(mid);
    const char *slash = strrchr(path, '/');
    if (!*(slash ? slash + 1 : path)) return dv_error_set(DV_EINVAL, "%s: not a file path", path);
    const int dn = !slash ? snprintf(dir, sizeof dir, ".")
                   : slash == path ? snprintf(dir, sizeof dir, "/")
                                   : snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (dn >= (int)sizeof dir) return dv_error_set(DV_EINVAL, "%s: path too long", path);
    int rc = dv_fs_mkdirs(dir);
    if (rc) return dv_error_prefix(rc, "%s: cannot save the video context", path);

    // a temporary beside the target, published whole (core/dv_fs.h)
    dv_fs_atomic *out = NULL;
    if ((rc = dv_fs_atomic_open(path, &out))) return rc;
    cx_stream s = {.f = dv_fs_atomic_file(out), .h = XXH3_createState()};
    const uint64_t size = CX_HEADER + pl + ml + il + (uint64_t)dv_llm_state_bytes(m) + 8;
    if (!s.h) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto fail;
    }
    XXH3_64bits_reset(s.h);
    s.prog = size >= (64u << 20) ? dv_progress_init("saving context", (int64_t)(size >> 20), "MiB") : NULL;
    uint8_t hdr[CX_HEADER], sum[8];
    header_pack(hdr, size, k, dv_llm_n_past(m), (uint32_t)pl, (uint32_t)ml, (uint32_t)il);
    if ((rc = cx_write(&s, hdr, CX_HEADER)) || (rc = cx_write(&s, k->plan, pl)) || (rc = cx_write(&s, mid, ml)) ||
        (rc = cx_write(&s, info_json, il)) || (rc = dv_llm_state_write(m, cx_write, &s)))
        goto fail;
    DV_ASSERT(s.pos == size - 8);
    dv_io_put_le(sum, XXH3_64bits_digest(s.h), 8);
    if ((rc = dv_io_write_stdio(s.f, sum, 8))) goto fail;
    rc = dv_fs_atomic_commit(out);
    out = NULL;
    if (rc) goto fail;
    dv_progress_finish(s.prog);
    XXH3_freeState(s.h);
    DV_LOG_DEBUG("%s: saved the video context (%d tokens, %.1f MiB)", path, dv_llm_n_past(m),
                 (double)size / (1 << 20));
    return 0;
fail:
    dv_progress_free(s.prog);
    dv_fs_atomic_abort(out);
    XXH3_freeState(s.h);
    return dv_error_prefix(rc, "%s: cannot save the video context", path);
}

// ---- load ----

// Codes that mean "this machine failed", not "this file is unusable".
static int is_real_error(int rc) { return rc == DV_ENOMEM || rc == DV_EDEVICE || rc == DV_EINTR; }

static int read_text(cx_stream *s, const char *path, const char *what, size_t n, char **out) {
    if (!(*out = malloc(n + 1))) return dv_error_set(DV_ENOMEM, "out of memory");
    int rc = cx_read(s, *out, n);
    if (rc) return dv_error_prefix(rc, "%s: %s", path, what);
    (*out)[n] = '\0';
    if (strlen(*out) != n) return dv_error_set(DV_EFORMAT, "%s: %s contains a NUL byte", path, what);
    return 0;
}

int dv_ctx_cache_load(const char *path, const dv_ctx_key *k, dv_llm *m, char **info_json) {
    if (info_json) *info_json = NULL;
    dv_llm_rewind(m, 0);
    cx_stream s = {.f = fopen(path, "rb")};
    if (!s.f && errno == ENOENT) return 0;
    char *plan = NULL, *mid = NULL, *info = NULL, want_mid[CX_MAX_MODEL_ID + 1];
    int rc = 0;
    struct stat st;
    if (!s.f || fstat(fileno(s.f), &st)) {
        rc = dv_error_set(DV_EIO, "%s: cannot open (%s)", path, strerror(errno));
        goto bad;
    }
    if (!(s.h = XXH3_createState())) {
        rc = dv_error_set(DV_ENOMEM, "out of memory");
        goto bad;
    }
    XXH3_64bits_reset(s.h);
    uint8_t hdr[CX_HEADER];
    if ((rc = cx_read(&s, hdr, CX_HEADER))) {
        dv_error_prefix(rc, "%s: header", path);
        goto bad;
    }
    rc = DV_EFORMAT;
    const uint32_t version = (uint32_t)dv_io_get_le(hdr + 8, 4), pl = (uint32_t)dv_io_get_le(hdr + 56, 4),
                   ml = (uint32_t)dv_io_get_le(hdr + 60, 4), il = (uint32_t)dv_io_get_le(hdr + 64, 4);
    const uint64_t size = dv_io_get_le(hdr + 16, 8);
    if (memcmp(hdr, CX_MAGIC, 8)) {
        dv_error_set(rc, "%s: not a duovid context cache file (bad magic)", path);
        goto bad;
    }
    if (version != CX_VERSION) {
        dv_error_set(rc, "%s: format version %u, this build reads version %u", path, version, CX_VERSION);
        goto bad;
    }
    if (size != (uint64_t)st.st_size) {
        dv_error_set(rc, "%s: %s (%llu bytes, the header says %llu)", path,
                     (uint64_t)st.st_size < size ? "truncated" : "size mismatch", (unsigned long long)st.st_size,
                     (unsigned long long)size);
        goto bad;
    }
    if (pl > CX_MAX_PLAN || ml > CX_MAX_MODEL_ID || il > CX_MAX_INFO || CX_HEADER + (uint64_t)pl + ml + il + 8 > size) {
        dv_error_set(rc, "%s: corrupt header (text lengths %u, %u, %u)", path, pl, ml, il);
        goto bad;
    }
    if ((rc = read_text(&s, path, "plan", pl, &plan)) || (rc = read_text(&s, path, "model id", ml, &mid)) ||
        (rc = read_text(&s, path, "info", il, &info)))
        goto bad;
    rc = DV_EFORMAT;
    const char *diff = dv_io_get_le(hdr + 24, 8) != k->model_hash     ? "model hash"
                       : dv_io_get_le(hdr + 32, 8) != k->video_hash   ? "video hash"
                       : dv_io_get_le(hdr + 40, 8) != k->pattern_hash ? "DuoAttention pattern hash"
                       : strcmp(plan, k->plan)                  ? "sampling plan"
                                                                : NULL;
    if (diff) {
        dv_error_set(rc, "%s: saved for another context (%s differs)", path, diff);
        goto bad;
    }
    model_id(m, want_mid, sizeof want_mid);
    if (strcmp(mid, want_mid)) {
        dv_error_set(rc, "%s: saved for model \"%s\", this one is \"%s\"", path, mid, want_mid);
        goto bad;
    }
    s.prog = size >= (64u << 20) ? dv_progress_init("loading context", (int64_t)(size >> 20), "MiB") : NULL;
    if ((rc = dv_llm_state_read(m, cx_read, &s, path))) goto bad;
    const uint64_t digest = XXH3_64bits_digest(s.h);
    uint8_t sum[8];
    rc = dv_io_read_stdio(s.f, sum, 8);
    if (rc) {
        dv_error_prefix(rc, "%s: checksum", path);
        goto bad;
    }
    rc = DV_EFORMAT;
    if (s.pos + 8 != size) {
        dv_error_set(rc, "%s: %llu unexpected bytes after the context", path, (unsigned long long)(size - s.pos - 8));
        goto bad;
    }
    if (dv_io_get_le(sum, 8) != digest) {
        dv_error_set(rc, "%s: checksum mismatch", path);
        goto bad;
    }
    if ((int64_t)dv_io_get_le(hdr + 48, 8) != dv_llm_n_past(m)) {
        dv_error_set(rc, "%s: the header says %lld tokens, the context holds %d", path,
                     (long long)dv_io_get_le(hdr + 48, 8), dv_llm_n_past(m));
        goto bad;
    }
    dv_progress_finish(s.prog);
    fclose(s.f);
    XXH3_freeState(s.h);
    free(plan);
    free(mid);
    if (info_json) *info_json = info;
    else free(info);
    DV_LOG_DEBUG("%s: loaded the video context (%d tokens)", path, dv_llm_n_past(m));
    return 1;
bad:
    dv_llm_rewind(m, 0);
    dv_progress_free(s.prog);
    if (s.f) fclose(s.f);
    XXH3_freeState(s.h);
    free(plan);
    free(mid);
    free(info);
    if (is_real_error(rc)) return rc;
    DV_LOG_WARN("%s; ignored, rebuilding", dv_error_message());
    return 0;
}
