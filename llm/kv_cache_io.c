// kv_cache_io.c: serialization of an LLM context: the DuoAttention hybrid KV cache's layout and
// contents, and the llm's header (model shape, n_past) around it, as a byte stream through
// caller-supplied callbacks (a file, a tmpfile snapshot; the caller may checksum what passes).
//
// Stream layout (every integer little-endian; rows as kernels/dv_kv_type.h lays them out, floats
// IEEE-754 little-endian; docs/FORMATS.md):
//   llm state   = magic "DVLLMST1" (8 bytes), u32 version (2), u32 field count (7),
//                 i64 n_layers, n_heads, hidden_size, vocab_size, n_past, n_linear_layers, mrope (0/1),
//                 then the KV cache stream (attention layers only),
//                 then, when n_linear_layers > 0, the Gated DeltaNet states (llm/linear_state.c),
//                 then, when mrope, n_past i32: per cell the position text after it resumes at
//   KV cache    = magic "DVKVCAC1" (8 bytes), u32 version (2), u32 field count (10),
//                 i64 n_layers L, n_kv_heads Hkv, head_dim D, page_size P, sink S, recent R,
//                     prefill (0 reference, 1 strict), K type, V type (dv_kv_type: 0 f32, 1 bf16,
//                     2 f16, 3 q8, 4 q4), n_tokens N,
//                 u8 kind[L * Hkv] (layer-major; 1 retrieval, 0 streaming),
//                 then per layer l:
//                   retrieval: for page i < ceil(N / P), n = min(P, N - i*P) rows:
//                              K rows of each retrieval head (head order), then V rows likewise,
//                              n rows of dv_kv_row_bytes(type, D) bytes per head;
//                   streaming: for each streaming head (head order): K slots [0, min(N, S + R)),
//                              then V slots likewise, one row each. Slots are the cache's raw
//                              sink + ring slots (position q >= S sits at slot S + (q - S) % R), so
//                              a load restores the ring exactly as it was.
// Data moves through the backend's download/upload ops with one host staging buffer of at most one
// retrieval page (n_ret, P) rows (at least P rows): the cache may be on a GPU and far larger
// than host memory.
#include "llm/dv_kv_cache.h"
#include "llm/kv_cache_internal.h"
#include "llm/llm_internal.h"

#include "core/dv_error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kv_cache_io.c writes float data in host order, which the format defines as little-endian"
#endif

#define KV_MAGIC "DVKVCAC1"
#define KV_VERSION 2u // 1: F32 only (a dtype field), no K / V types
#define LLM_MAGIC "DVLLMST1"
#define LLM_VERSION 2u // 2: n_linear_layers and the Gated DeltaNet states, M-RoPE positions

enum { KV_L, KV_HKV, KV_D, KV_P, KV_SINK, KV_RECENT, KV_PREFILL, KV_KTYPE, KV_VTYPE, KV_NTOK, KV_NFIELDS };
static const char *const kv_field_names[KV_NFIELDS] = {"n_layers", "n_kv_heads", "head_dim", "page_size", "sink",
                                                       "recent", "prefill semantics", "K type", "V type", "n_tokens"};
enum { LLM_L, LLM_HQ, LLM_HID, LLM_VOCAB, LLM_NPAST, LLM_NLIN, LLM_MROPE, LLM_NFIELDS };
static const char *const llm_field_names[LLM_NFIELDS] = {"n_layers", "n_heads", "hidden_size", "vocab_size",
                                                         "n_past", "n_linear_layers", "M-RoPE positions"};

// ---- stdio callbacks ----

int dv_io_write_stdio(void *file, const void *buf, size_t n) {
    if (n && fwrite(buf, 1, n, (FILE *)file) != n) return dv_error_set(DV_EIO, "write failed (%s)", strerror(errno));
    return 0;
}

int dv_io_read_stdio(void *file, void *buf, size_t n) {
    FILE *f = file;
    if (!n || fread(buf, 1, n, f) == n) return 0;
    if (ferror(f)) return dv_error_set(DV_EIO, "read failed (%s)", strerror(errno));
    return dv_error_set(DV_EFORMAT, "truncated (unexpected end of file)");
}

// ---- headers: magic, version, field count, i64 fields ----

#define HDR_MAX_FIELDS 16

static int64_t header_bytes(int n_fields) { return 16 + 8 * (int64_t)n_fields; }

static int header_write(dv_io_write_fn w, void *ctx, const char *magic, uint32_t version, const int64_t *f, int n) {
    uint8_t b[16 + 8 * HDR_MAX_FIELDS]; // magic (8), version (4), count (4), fields (n x 8)
    DV_ASSERT(n <= HDR_MAX_FIELDS);
    memcpy(b, magic, 8);
    dv_io_put_le(b + 8, version, 4);
    dv_io_put_le(b + 12, (uint32_t)n, 4);
    for (int i = 0; i < n; i++) dv_io_put_le(b + 16 + 8 * i, (uint64_t)f[i], 8);
    return w(ctx, b, (size_t)header_bytes(n));
}

// Reads a header into f (n fields) and checks magic, version and count. `kind` names the stream.
static int header_read(dv_io_read_fn r, void *ctx, const char *what, const char *kind, const char *magic,
                       uint32_t version, int64_t *f, int n) {
    uint8_t b[16 + 8 * HDR_MAX_FIELDS];
    int rc = r(ctx, b, 16);
    if (rc) return dv_error_prefix(rc, "%s: %s header", what, kind);
    if (memcmp(b, magic, 8)) return dv_error_set(DV_EFORMAT, "%s: not a duovid %s stream (bad magic)", what, kind);
    const uint32_t v = (uint32_t)dv_io_get_le(b + 8, 4), cnt = (uint32_t)dv_io_get_le(b + 12, 4);
    if (v != version)
        return dv_error_set(DV_EFORMAT, "%s: %s stream version %" PRIu32 ", this build reads version %" PRIu32, what,
                            kind, v, version);
    if (cnt != (uint32_t)n)
        return dv_error_set(DV_EFORMAT, "%s: %s header has %" PRIu32 " fields, expected %d", what, kind, cnt, n);
    if ((rc = r(ctx, b + 16, 8 * (size_t)n))) return dv_error_prefix(rc, "%s: %s header", what, kind);
    for (int i = 0; i < n; i++) f[i] = (int64_t)dv_io_get_le(b + 16 + 8 * i, 8);
    return 0;
}

// Fields [0, n) of `got` must equal `want`: the first difference is named.
static int header_match(const char *what, const char *kind, const char *const *names, const int64_t *got,
                        const int64_t *want, int n) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i])
            return dv_error_set(DV_EFORMAT, "%s: %s %s is %lld in the file, %lld here", what, kind, names[i],
                                (long long)got[i], (long long)want[i]);
    return 0;
}

// ---- KV cache ----

static void kv_fields(const dv_kv_cache *c, int64_t *f) {
    f[KV_L] = c->L;
    f[KV_HKV] = c->Hkv;
    f[KV_D] = c->D;
    f[KV_P] = c->P;
    f[KV_SINK] = c->sink;
    f[KV_RECENT] = c->recent;
    f[KV_PREFILL] = c->prefill == DV_DUO_PREFILL_STRICT;
    f[KV_KTYPE] = c->kt;
    f[KV_VTYPE] = c->vt;
    f[KV_NTOK] = c->len;
}

// Valid streaming slots with n tokens cached: sink slots fill first, then the ring, so they are
// always the prefix [0, min(n, S + R)).
static int64_t str_rows(const dv_kv_cache *c, int64_t n) { return n < c->sink + c->recent ? n : c->sink + c->recent; }

int64_t dv_kv_cache_state_bytes(const dv_kv_cache *c) {
    int64_t rows = 0; // K (and as many V) rows over all heads
    for (int l = 0; l < c->L; l++)
        rows += (int64_t)c->layers[l].n_ret * c->len + (int64_t)c->layers[l].n_str * str_rows(c, c->len);
    return header_bytes(KV_NFIELDS) + (int64_t)c->L * c->Hkv + rows * (c->rk + c->rv);
}

// One transfer direction over the cache's data: write (download, then w) or read (r, then upload).
typedef struct kv_io {
    const dv_kv_cache *c;
    dv_io_write_fn w; // exactly one of w, r is set
    dv_io_read_fn r;
    void *ctx;
    char *stage;      // (cap) host staging buffer, owned
    size_t cap;       // bytes: max(max_l n_ret, 1) * P rows of the larger of the K and V rows
} kv_io;

// Moves n bytes at device address dev through the stage, in chunks of at most cap bytes.
static int io_span(kv_io *io, char *dev, size_t n) {
    dv_backend *be = io->c->be;
    for (size_t done = 0; done < n;) {
        const size_t k = n - done < io->cap ? n - done : io->cap, bytes = k;
        int rc;
        if (io->w) {
            if ((rc = dv_backend_download(be, io->stage, dev + done, bytes)) || (rc = io->w(io->ctx, io->stage, bytes)))
                return rc;
        } else {
            if ((rc = io->r(io->ctx, io->stage, bytes)) || (rc = dv_backend_upload(be, dev + done, io->stage, bytes)))
                return rc;
        }
        done += k;
    }
    return 0;
}

// Moves the first n rows of every head of one retrieval page (n_ret, P) of `row`-byte rows: a full
// page in one transfer, a partial (last) page head by head so unused rows are never touched.
static int io_page(kv_io *io, const kv_layer *ly, char *page, int64_t n, int64_t row) {
    const dv_kv_cache *c = io->c;
    const size_t head = (size_t)c->P * (size_t)row, bytes = (size_t)n * (size_t)row;
    int rc = 0;
    if (io->w) {
        if (n == c->P) rc = dv_backend_download(c->be, io->stage, page, dv_kv_page_bytes(c, ly, row));
        for (int s = 0; !rc && s < ly->n_ret; s++) {
            if (n != c->P) rc = dv_backend_download(c->be, io->stage + s * head, page + s * head, bytes);
            if (!rc) rc = io->w(io->ctx, io->stage + s * head, bytes);
        }
    } else {
        for (int s = 0; !rc && s < ly->n_ret; s++) {
            rc = io->r(io->ctx, io->stage + s * head, bytes);
            if (!rc && n != c->P) rc = dv_backend_upload(c->be, page + s * head, io->stage + s * head, bytes);
        }
        if (!rc && n == c->P) rc = dv_backend_upload(c->be, page, io->stage, dv_kv_page_bytes(c, ly, row));
    }
    return rc;
}

// The data section, in the order the top of this file documents.
static int io_data(kv_io *io) {
    const dv_kv_cache *c = io->c;
    const int64_t N = c->len, P = c->P, W = c->sink + c->recent, nv = str_rows(c, N);
    const size_t row = (size_t)(c->rk > c->rv ? c->rk : c->rv);
    size_t cap = (size_t)P * row;
    for (int l = 0; l < c->L; l++)
        if ((size_t)c->layers[l].n_ret * P * row > cap) cap = (size_t)c->layers[l].n_ret * P * row;
    io->cap = cap;
    if (!(io->stage = malloc(cap))) return dv_error_set(DV_ENOMEM, "out of memory (KV staging buffer)");
    int rc = 0;
    for (int l = 0; !rc && l < c->L; l++) {
        const kv_layer *ly = &c->layers[l];
        for (int64_t i = 0; ly->n_ret && !rc && i * P < N; i++) {
            const int64_t n = N - i * P < P ? N - i * P : P;
            rc = io_page(io, ly, ly->k_pages[i], n, c->rk);
            if (!rc) rc = io_page(io, ly, ly->v_pages[i], n, c->rv);
        }
        for (int s = 0; !rc && s < ly->n_str; s++) {
            rc = io_span(io, ly->k_str + (size_t)(s * W * c->rk), (size_t)(nv * c->rk));
            if (!rc) rc = io_span(io, ly->v_str + (size_t)(s * W * c->rv), (size_t)(nv * c->rv));
        }
    }
    free(io->stage);
    io->stage = NULL;
    return rc;
}

static int kinds_io(const dv_kv_cache *c, uint8_t *kind, int to_stream) {
    for (int l = 0; l < c->L; l++)
        for (int h = 0; h < c->Hkv; h++) {
            uint8_t *k = &kind[(size_t)l * c->Hkv + h];
            if (to_stream) *k = c->layers[l].is_ret[h];
            else if (*k != c->layers[l].is_ret[h]) return -1 - (l * c->Hkv + h);
        }
    return 0;
}

int dv_kv_cache_write(const dv_kv_cache *c, dv_io_write_fn w, void *ctx) {
    int64_t f[KV_NFIELDS];
    kv_fields(c, f);
    int rc = header_write(w, ctx, KV_MAGIC, KV_VERSION, f, KV_NFIELDS);
    if (rc) return rc;
    const size_t nk = (size_t)c->L * (size_t)c->Hkv;
    uint8_t *kind = malloc(nk);
    if (!kind) return dv_error_set(DV_ENOMEM, "out of memory");
    kinds_io(c, kind, 1);
    rc = w(ctx, kind, nk);
    free(kind);
    if (rc) return rc;
    kv_io io = {.c = c, .w = w, .ctx = ctx};
    return io_data(&io);
}

int dv_kv_cache_read(dv_kv_cache *c, dv_io_read_fn r, void *ctx, const char *what) {
    c->len = 0; // empty until every byte has arrived: a failed read never leaves half a context
    int64_t f[KV_NFIELDS], want[KV_NFIELDS];
    kv_fields(c, want);
    int rc = header_read(r, ctx, what, "KV cache", KV_MAGIC, KV_VERSION, f, KV_NFIELDS);
    if (rc) return rc;
    for (int i = KV_KTYPE; i <= KV_VTYPE; i++) // named, not numbered
        if (f[i] != want[i])
            return dv_error_set(DV_EFORMAT, "%s: KV cache %s is %s in the file, %s here", what, kv_field_names[i],
                                f[i] >= 0 && f[i] < DV_KV_TYPE_COUNT ? dv_kv_type_name((dv_kv_type)f[i]) : "unknown",
                                dv_kv_type_name((dv_kv_type)want[i]));
    if ((rc = header_match(what, "KV cache", kv_field_names, f, want, KV_NTOK))) return rc;
    const int64_t N = f[KV_NTOK];
    if (N < 0 || N > c->n_ctx)
        return dv_error_set(DV_EFORMAT, "%s: KV cache holds %lld tokens, the context holds at most %lld", what,
                            (long long)N, (long long)c->n_ctx);
    const size_t nk = (size_t)c->L * (size_t)c->Hkv;
    uint8_t *kind = malloc(nk);
    if (!kind) return dv_error_set(DV_ENOMEM, "out of memory");
    if ((rc = r(ctx, kind, nk))) {
        free(kind);
        return dv_error_prefix(rc, "%s: KV cache head kinds", what);
    }
    const int bad = kinds_io(c, kind, 0);
    free(kind);
    if (bad) {
        const int i = -1 - bad, l = i / c->Hkv, h = i % c->Hkv;
        return dv_error_set(DV_EFORMAT, "%s: KV cache head kind of layer %d KV head %d is %s in the file, %s here "
                                        "(another DuoAttention pattern)", what, l, h,
                            c->layers[l].is_ret[h] ? "streaming" : "retrieval",
                            c->layers[l].is_ret[h] ? "retrieval" : "streaming");
    }
    if ((rc = dv_kv_cache_reserve(c, N))) return rc;
    c->len = N; // io_data walks the N tokens' rows; reset below unless every byte arrived
    kv_io io = {.c = c, .r = r, .ctx = ctx};
    if ((rc = io_data(&io))) {
        c->len = 0;
        return dv_error_prefix(rc, "%s: KV cache data", what);
    }
    return 0;
}

// ---- the llm's context ----

static void llm_fields(const dv_llm *m, int64_t *f) {
    f[LLM_L] = m->cfg.n_layers;
    f[LLM_HQ] = m->cfg.n_heads;
    f[LLM_HID] = m->cfg.hidden_size;
    f[LLM_VOCAB] = m->cfg.vocab_size;
    f[LLM_NPAST] = m->n_past;
    f[LLM_NLIN] = m->cfg.n_linear_layers;
    f[LLM_MROPE] = m->cell_next != NULL;
}

int64_t dv_llm_state_bytes(const dv_llm *m) {
    return header_bytes(LLM_NFIELDS) + dv_kv_cache_state_bytes(m->kv) +
           (m->lin ? dv_linear_state_stream_bytes(m->lin) : 0) + (m->cell_next ? 4 * (int64_t)m->n_past : 0);
}

// M-RoPE models: positions are not cells, so the stream carries cell_next[0, n_past) (i32 each: the
// position text after that cell resumes at), which is what prefill and rewind read back.
static int positions_write(const dv_llm *m, dv_io_write_fn w, void *ctx) {
    uint8_t buf[4 * 256];
    for (int i = 0; i < m->n_past;) {
        int n = m->n_past - i < 256 ? m->n_past - i : 256;
        for (int k = 0; k < n; k++) dv_io_put_le(buf + 4 * k, (uint32_t)m->cell_next[i + k], 4);
        int rc = w(ctx, buf, (size_t)n * 4);
        if (rc) return rc;
        i += n;
    }
    return 0;
}

static int positions_read(dv_llm *m, int n_past, dv_io_read_fn r, void *ctx, const char *what) {
    uint8_t buf[4 * 256];
    for (int i = 0; i < n_past;) {
        int n = n_past - i < 256 ? n_past - i : 256;
        int rc = r(ctx, buf, (size_t)n * 4);
        if (rc) return dv_error_prefix(rc, "%s: M-RoPE positions", what);
        for (int k = 0; k < n; k++) {
            int32_t v = (int32_t)dv_io_get_le(buf + 4 * k, 4);
            if (v < 0 || (i + k && v < m->cell_next[i + k - 1]))
                return dv_error_set(DV_EFORMAT, "%s: M-RoPE position %d of cell %d is not valid", what, v, i + k);
            m->cell_next[i + k] = v;
        }
        i += n;
    }
    return 0;
}

int dv_llm_state_write(dv_llm *m, dv_io_write_fn w, void *ctx) {
    DV_ASSERT(m->n_past == m->kv->len);
    int64_t f[LLM_NFIELDS];
    llm_fields(m, f);
    int rc = header_write(w, ctx, LLM_MAGIC, LLM_VERSION, f, LLM_NFIELDS);
    if (!rc) rc = dv_kv_cache_write(m->kv, w, ctx);
    if (!rc && m->lin) rc = dv_linear_state_write(m->lin, w, ctx);
    if (!rc && m->cell_next) rc = positions_write(m, w, ctx);
    return rc;
}

int dv_llm_state_read(dv_llm *m, dv_io_read_fn r, void *ctx, const char *what) {
    m->n_past = 0;
    m->kv->len = 0;
    int64_t f[LLM_NFIELDS], want[LLM_NFIELDS];
    llm_fields(m, want);
    int rc = header_read(r, ctx, what, "LLM state", LLM_MAGIC, LLM_VERSION, f, LLM_NFIELDS);
    if (!rc && f[LLM_NLIN] != want[LLM_NLIN])
        rc = dv_error_set(DV_EFORMAT, "%s: model n_linear_layers is %lld in the file, %lld here", what,
                          (long long)f[LLM_NLIN], (long long)want[LLM_NLIN]);
    if (!rc && f[LLM_MROPE] != want[LLM_MROPE])
        rc = dv_error_set(DV_EFORMAT, "%s: the file %s M-RoPE positions, this model %s", what,
                          f[LLM_MROPE] ? "has" : "has no", want[LLM_MROPE] ? "needs them" : "has none");
    if (rc || (rc = header_match(what, "model", llm_field_names, f, want, LLM_NPAST))) return rc;
    if ((rc = dv_kv_cache_read(m->kv, r, ctx, what))) return rc;
    if (m->lin && (rc = dv_linear_state_read(m->lin, r, ctx, what))) {
        m->kv->len = 0;
        return rc;
    }
    if (f[LLM_NPAST] != m->kv->len) {
        rc = dv_error_set(DV_EFORMAT, "%s: n_past %lld differs from the KV cache's %lld tokens", what,
                          (long long)f[LLM_NPAST], (long long)m->kv->len);
        m->kv->len = 0;
        return rc;
    }
    if (m->cell_next && (rc = positions_read(m, (int)m->kv->len, r, ctx, what))) {
        m->kv->len = 0;
        return rc;
    }
    m->n_past = (int)m->kv->len;
    return 0;
}
