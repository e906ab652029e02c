// dv_linear_state.h: the recurrent state of a hybrid model's Gated DeltaNet layers (Qwen3.5), held
// apart from the KV cache, which serves the attention layers only. Per linear layer: the causal conv's
// last K-1 inputs (K-1, C) and the delta rule's state (Hv, dk, dv), both F32 (the config's
// mamba_ssm_dtype) in one backend allocation made at open. Its size is fixed whatever the context
// length. A recurrent state cannot be rewound to an earlier position: callers keep snapshots
// (dv_llm_state_write) where they need to go back; clearing (position 0) is always possible.
#ifndef DV_LINEAR_STATE_H
#define DV_LINEAR_STATE_H

#include "kernels/dv_backend.h"
#include "llm/dv_kv_cache.h"
#include "llm/dv_llm_config.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_linear_state dv_linear_state;

// States for the cfg->n_linear_layers layers, zeroed. 0 or <0 (message set).
int dv_linear_state_init(dv_backend *be, const dv_llm_config *cfg, dv_linear_state **out);
void dv_linear_state_free(dv_linear_state *s);
// Views of linear layer i's conv state (K-1, C) and delta state (Hv, dk, dv) on the backend.
void dv_linear_state_views(dv_linear_state *s, int i, dv_tensor *conv, dv_tensor *delta);
// Zeroes every state (a new sequence).
int dv_linear_state_clear(dv_linear_state *s);
// Bytes on the backend (constant).
size_t dv_linear_state_bytes(const dv_linear_state *s);
// Serialization: a small header (layers, K-1, C, Hv, dk, dv) then every layer's states, through one
// host staging buffer of one layer's largest state. read: another shape -> DV_EFORMAT naming `what`;
// on any error the states are cleared.
int dv_linear_state_write(dv_linear_state *s, dv_io_write_fn w, void *ctx);
int64_t dv_linear_state_stream_bytes(const dv_linear_state *s);
int dv_linear_state_read(dv_linear_state *s, dv_io_read_fn r, void *ctx, const char *what);

#ifdef __cplusplus
}
#endif
#endif
