// linear_state.c: the Gated DeltaNet layers' conv and delta-rule states (dv_linear_state.h): one
// backend allocation, zeroed and streamed through one host staging buffer.
#include "llm/dv_linear_state.h"

#include "core/dv_error.h"

#include <stdlib.h>
#include <string.h>

#define DV_LIN_MAGIC 0x4e494c44u // "DLIN"

struct dv_linear_state {
    dv_backend *be; // not owned
    int n;          // linear layers
    int64_t km1, C, Hv, dk, dv;
    size_t conv_floats, delta_floats; // per layer
    float *data;    // (n, conv_floats + delta_floats) on the backend, owned
    float *host;    // (max(conv_floats, delta_floats)) staging, owned
};

static size_t per_layer(const dv_linear_state *s) { return s->conv_floats + s->delta_floats; }

int dv_linear_state_init(dv_backend *be, const dv_llm_config *c, dv_linear_state **out) {
    *out = NULL;
    dv_linear_state *s = calloc(1, sizeof *s);
    if (!s) return dv_error_set(DV_ENOMEM, "out of memory");
    const dv_llm_linear_config *l = &c->lin;
    s->be = be;
    s->n = c->n_linear_layers;
    s->km1 = l->conv_kernel - 1;
    s->C = 2 * (int64_t)l->n_k_heads * l->k_head_dim + (int64_t)l->n_v_heads * l->v_head_dim;
    s->Hv = l->n_v_heads, s->dk = l->k_head_dim, s->dv = l->v_head_dim;
    s->conv_floats = (size_t)(s->km1 * s->C);
    s->delta_floats = (size_t)(s->Hv * s->dk * s->dv);
    const size_t host = s->conv_floats > s->delta_floats ? s->conv_floats : s->delta_floats;
    s->data = be->ops->alloc(be, (size_t)s->n * per_layer(s) * sizeof(float) + 64);
    s->host = calloc(host ? host : 1, sizeof(float));
    if (!s->data || !s->host) {
        dv_linear_state_free(s);
        return dv_error_set(DV_ENOMEM, "out of memory allocating the Gated DeltaNet states");
    }
    int rc = dv_linear_state_clear(s);
    if (rc) {
        dv_linear_state_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void dv_linear_state_free(dv_linear_state *s) {
    if (!s) return;
    if (s->data) s->be->ops->free(s->be, s->data);
    free(s->host);
    free(s);
}

void dv_linear_state_views(dv_linear_state *s, int i, dv_tensor *conv, dv_tensor *delta) {
    DV_ASSERT(i >= 0 && i < s->n);
    float *base = s->data + (size_t)i * per_layer(s);
    *conv = dv_tensor_2d(DV_DTYPE_F32, base, s->km1, s->C);
    *delta = dv_tensor_3d(DV_DTYPE_F32, base + s->conv_floats, s->Hv, s->dk, s->dv);
    conv->device = delta->device = s->be->device;
}

// Each layer's two states go up from (or down to) the staging buffer: the one copy rule for clear,
// write and read. dir: 0 upload, 1 download.
static int each_state(dv_linear_state *s, int dir, int (*fn)(dv_linear_state *, size_t, void *), void *ctx) {
    int rc = 0;
    for (int i = 0; !rc && i < s->n; i++)
        for (int part = 0; !rc && part < 2; part++) {
            float *d = s->data + (size_t)i * per_layer(s) + (part ? s->conv_floats : 0);
            const size_t n = part ? s->delta_floats : s->conv_floats;
            if (dir == 0 && fn && (rc = fn(s, n, ctx))) break;
            rc = dir == 0 ? dv_backend_upload(s->be, d, s->host, n * sizeof(float))
                          : dv_backend_download(s->be, s->host, d, n * sizeof(float));
            if (!rc && dir == 1 && fn) rc = fn(s, n, ctx);
        }
    return rc;
}

int dv_linear_state_clear(dv_linear_state *s) {
    memset(s->host, 0, (s->conv_floats > s->delta_floats ? s->conv_floats : s->delta_floats) * sizeof(float));
    return each_state(s, 0, NULL, NULL);
}

size_t dv_linear_state_bytes(const dv_linear_state *s) { return (size_t)s->n * per_layer(s) * sizeof(float); }

enum { DV_LIN_HEADER = 4 * 7 };

int64_t dv_linear_state_stream_bytes(const dv_linear_state *s) {
    return DV_LIN_HEADER + (int64_t)dv_linear_state_bytes(s);
}

static void header(const dv_linear_state *s, uint8_t *h) {
    const uint64_t f[7] = {DV_LIN_MAGIC, (uint64_t)s->n, (uint64_t)s->km1, (uint64_t)s->C,
                           (uint64_t)s->Hv, (uint64_t)s->dk, (uint64_t)s->dv};
    for (int i = 0; i < 7; i++) dv_io_put_le(h + 4 * i, f[i], 4);
}

typedef struct io_ctx {
    dv_io_write_fn w;
    dv_io_read_fn r;
    void *ctx;
} io_ctx;

static int put(dv_linear_state *s, size_t n, void *c) {
    io_ctx *io = c;
    return io->w(io->ctx, s->host, n * sizeof(float));
}

static int get(dv_linear_state *s, size_t n, void *c) {
    io_ctx *io = c;
    return io->r(io->ctx, s->host, n * sizeof(float));
}

int dv_linear_state_write(dv_linear_state *s, dv_io_write_fn w, void *ctx) {
    uint8_t h[DV_LIN_HEADER];
    header(s, h);
    int rc = w(ctx, h, sizeof h);
    io_ctx io = {.w = w, .ctx = ctx};
    return rc ? rc : each_state(s, 1, put, &io);
}

int dv_linear_state_read(dv_linear_state *s, dv_io_read_fn r, void *ctx, const char *what) {
    uint8_t h[DV_LIN_HEADER], want[DV_LIN_HEADER];
    header(s, want);
    int rc = r(ctx, h, sizeof h);
    static const char *names[7] = {"magic", "linear layers", "conv state rows", "conv channels", "value heads",
                                   "key head dim", "value head dim"};
    for (int i = 0; !rc && i < 7; i++)
        if (dv_io_get_le(h + 4 * i, 4) != dv_io_get_le(want + 4 * i, 4))
            rc = dv_error_set(DV_EFORMAT, "%s: Gated DeltaNet state %s is %llu in the stream, %llu here", what, names[i],
                              (unsigned long long)dv_io_get_le(h + 4 * i, 4),
                              (unsigned long long)dv_io_get_le(want + 4 * i, 4));
    io_ctx io = {.r = r, .ctx = ctx};
    if (!rc) rc = each_state(s, 0, get, &io);
    if (rc) dv_linear_state_clear(s); // never half-loaded
    return rc;
}
