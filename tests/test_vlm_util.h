// test_vlm_util.h: what the end-to-end VLM parity tests share (test_vlm_parity.c, test_vlm_onevision.c):
// opening a model, reading the HF reference tensors of a fixture, and a greedy answer checked step by
// step against HF.
#ifndef DV_TEST_VLM_UTIL_H
#define DV_TEST_VLM_UTIL_H

#include "core/dv_error.h"
#include "core/dv_safetensors.h"
#include "kernels/dv_kv_type.h"
#include "tests/dv_test.h"
#include "vlm/dv_vlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

// The KV cache's row type the tests open models with, and the logits tolerance that goes with it.
// f32: the pipeline's own arithmetic (rel L2 < 1e-4 vs HF). bf16: every cached key and value is
// rounded once to bf16, a relative error of at most 2^-9 each (8 stored mantissa bits, round to
// nearest), so the logits may move by up to that relative amount: tolerance 2^-9 = 1.95e-3.
static dv_kv_type vlm_test_kv = DV_KV_F32;
static double vlm_test_tol = 1e-4;
static inline void vlm_test_use_kv(dv_kv_type t) {
    vlm_test_kv = t;
    vlm_test_tol = t == DV_KV_F32 ? 1e-4 : ldexp(1.0, -9);
    printf("-- KV cache %s (logits tolerance %.3g)\n", dv_kv_type_name(t), vlm_test_tol);
}

// The F32 tensor `name` of the given shape, NULL (and a FAIL line) when absent or different.
static inline const float *vlm_ref_f32(const dv_safetensors *st, const char *name, int nd, const int64_t *shape) {
    const dv_st_tensor *t = NULL;
    if (dv_safetensors_get(st, name, nd, shape, &t) || t->dtype != DV_DTYPE_F32) {
        fprintf(stderr, "FAIL fixture tensor %s: %s\n", name, dv_error_message());
        return NULL;
    }
    return t->data;
}

// The 1-D I32 tensor `name` (*n its length), NULL (and a FAIL line) when absent.
static inline const int32_t *vlm_ref_i32(const dv_safetensors *st, const char *name, int64_t *n) {
    const dv_st_tensor *t = dv_safetensors_find(st, name);
    if (!t || t->dtype != DV_DTYPE_I32 || t->n_dims != 1) {
        fprintf(stderr, "FAIL fixture tensor %s missing or not I32 (n)\n", name);
        return NULL;
    }
    *n = t->shape[0];
    return t->data;
}

// Opens the VLM in DIR (relative to the source folder) on be: n_batch-token chunks, a DuoAttention
// pattern and a context cache folder when not NULL; NULL (and a FAIL line) on error.
static inline dv_vlm *vlm_test_open(const char *dir, dv_backend *be, int n_batch, const dv_duo_pattern *pat,
                                    const char *cache_dir) {
    dv_vlm_params p = dv_vlm_default_params();
    p.backend = be;
    p.kv_type_k = p.kv_type_v = (int)vlm_test_kv;
    p.n_batch = n_batch;
    p.pattern = pat;
    p.cache_dir = cache_dir;
    dv_vlm *v = NULL;
    if (dv_vlm_open(dv_test_path(dir), &p, &v)) fprintf(stderr, "FAIL open %s: %s\n", dir, dv_error_message());
    return v;
}

// Greedy answer of n tokens (EOS ignored) over a vocabulary of vocab: the logits of every step
// (want_logits (n, vocab), rel L2 < vlm_test_tol) and the tokens (want_ids (n), exactly) as HF's.
static inline void vlm_check_answer(dv_vlm *v, int vocab, const char *q, int first, int n, const int32_t *want_ids,
                                    const float *want_logits, const char *label) {
    float *trace = malloc((size_t)n * vocab * sizeof(float));
    dv_vlm_gen g = {.sampler = dv_sampler_default_params(), .max_new = n, .ignore_eos = 1, .logits_trace = trace};
    g.sampler.temperature = 0;
    dv_vlm_answer a;
    int rc = dv_vlm_ask(v, q, first, &g, NULL, &a);
    DV_CHECK_MSG(rc == 0, "%s: %s", label, dv_error_message());
    if (!rc) {
        char what[96];
        snprintf(what, sizeof what, "%s: logits after the prompt", label);
        dv_test_close(what, trace, want_logits, (size_t)vocab, vlm_test_tol);
        snprintf(what, sizeof what, "%s: logits of all %d greedy steps", label, n);
        dv_test_close(what, trace, want_logits, (size_t)n * vocab, vlm_test_tol);
        DV_CHECK(a.n_tokens == n);
        int same = a.n_tokens == n;
        for (int i = 0; same && i < n; i++) same = a.ids[i] == want_ids[i];
        DV_CHECK_MSG(same, "%s: greedy tokens differ from HF", label);
        printf("%s: %d greedy tokens %s\n", label, n, same ? "identical to HF" : "DIFFER");
    }
    free(trace);
}

#endif
