// dv_duo_pattern.h: DuoAttention head patterns: which KV heads keep a full cache ("retrieval") and
// which keep only attention sinks + a recent window ("streaming").
//
// A pattern folder holds full_attention_heads.tsv (one line per layer, one tab-separated gate value
// alpha per KV head; the reference writes them with numpy's %.18e) and config.json (sink_size,
// recent_size, ...), exactly as mit-han-lab/duo-attention publishes them. Gates are clipped to
// [0, 1]. Binarization follows the reference: for a target sparsity s, threshold = numpy's linear
// s-quantile of all gates (layers x KV heads, one global threshold), and a head is a retrieval head
// when alpha >= threshold. The reference breaks ties with unseeded noise; we break them
// deterministically: among equal gates, the later head (layer-major, then head) ranks higher.
#ifndef DV_DUO_PATTERN_H
#define DV_DUO_PATTERN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_duo_pattern {
    int n_layers, n_kv_heads;
    double *alpha;       // (n_layers, n_kv_heads) gates clipped to [0, 1], owned
    uint8_t *retrieval;  // (n_layers, n_kv_heads) 1 = retrieval (full KV) head, owned
    int sink, recent;    // tokens kept by streaming heads: the reference's deployed 64 / 256 unless set
    int cfg_sink, cfg_recent; // sink_size / recent_size of the folder's config.json (the values the
                              // gates were trained with; the reference deploys 64 / 256), 0 if absent
    double threshold;    // the gate threshold of the last binarization
    int n_retrieval;     // retrieval heads in total
} dv_duo_pattern;

// `path` is a pattern folder (full_attention_heads.tsv [+ config.json]) or a .tsv file. The pattern
// starts binarized at threshold 0.5 (all heads with alpha >= 0.5 are retrieval heads).
int dv_duo_pattern_load(const char *path, dv_duo_pattern **out);
// A pattern where every head is a retrieval head (plain full attention).
int dv_duo_pattern_full(int n_layers, int n_kv_heads, dv_duo_pattern **out);
void dv_duo_pattern_free(dv_duo_pattern *p);

// Binarize for a sparsity s in [0, 1] (fraction of streaming heads), or with a gate threshold.
int dv_duo_pattern_set_sparsity(dv_duo_pattern *p, double sparsity);
int dv_duo_pattern_set_threshold(dv_duo_pattern *p, double threshold);
// Checks the pattern fits a model: "PATTERN: 28 layers x 8 KV heads, the model has 32 x 8".
int dv_duo_pattern_check(const dv_duo_pattern *p, const char *what, int n_layers, int n_kv_heads);
int dv_duo_pattern_is_retrieval(const dv_duo_pattern *p, int layer, int kv_head);

#ifdef __cplusplus
}
#endif
#endif
