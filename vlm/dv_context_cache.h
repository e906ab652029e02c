// dv_context_cache.h: the video context cache. After the pipeline prefills a video into the LLM, the
// hybrid DuoAttention KV cache and its metadata are saved to DIR/<key hash>.dvctx; a later ask /
// chat / summarize with the same inputs loads it and skips decode, encode and prefill.
//
//   dv_ctx_key k = {0};
//   dv_ctx_hash_model(model_dir, &k.model_hash);
//   dv_ctx_hash_file(video_path, &k.video_hash);
//   k.pattern_hash = dv_ctx_hash_pattern(pattern, prefill);
//   snprintf(k.plan, sizeof k.plan, "frames=...;template=...;...");
//   dv_ctx_cache_dir_default(dir, sizeof dir);            // or --cache-dir
//   dv_ctx_cache_path(dir, &k, path, sizeof path);
//   char *info = NULL;
//   int rc = dv_ctx_cache_load(path, &k, m, &info);       // 1: context ready, 0: rebuild, <0: error
//   if (rc == 0) { ...prefill...; dv_ctx_cache_save(path, &k, info_json, m); }
//
// A file is used only when its key, the model's shape and KV layout, its size and its checksum all
// match; anything else is ignored with one warning and rebuilt. The format: context_cache.c (top)
// and docs/FORMATS.md.
#ifndef DV_CONTEXT_CACHE_H
#define DV_CONTEXT_CACHE_H

#include "llm/dv_duo_pattern.h"
#include "llm/dv_kv_cache.h"
#include "llm/dv_llm.h"

#include <stddef.h>
#include <stdint.h>

// Everything that determines the context. Two runs with equal keys produce the same KV cache.
typedef struct dv_ctx_key {
    uint64_t model_hash;   // dv_ctx_hash_model(model_dir)
    uint64_t video_hash;   // dv_ctx_hash_file(video_path)
    uint64_t pattern_hash; // dv_ctx_hash_pattern(pattern or NULL, prefill semantics)
    char plan[512];        // canonical text of everything else that changes the context (sampling plan,
                           // prompt prefix, template, timestamps), NUL-terminated; built by the pipeline
} dv_ctx_key;

// Content hash of a file, fast for multi-GB files: XXH3-64 of the size and of sampled blocks (the
// first and last 1 MiB and 62 evenly spaced 64 KiB blocks between them; files up to 2 MiB + 62 x
// 64 KiB are hashed whole). Errors name the path (missing: DV_ENOTFOUND, unreadable: DV_EIO).
int dv_ctx_hash_file(const char *path, uint64_t *out);
// Hash of a model folder: the name and dv_ctx_hash_file of every *.json, *.safetensors and *.model
// file in it (config, weights, tokenizer, processor config), in byte order of the names. Requires
// config.json and at least one *.safetensors file (DV_ENOTFOUND otherwise).
int dv_ctx_hash_model(const char *model_dir, uint64_t *out);
// Hash of the attention layout: binarized heads (layers x KV heads), sink, recent and the prefill
// semantics; pattern NULL (full attention) hashes to a distinct value (still per prefill semantics).
uint64_t dv_ctx_hash_pattern(const dv_duo_pattern *p, dv_duo_prefill prefill);

// $XDG_CACHE_HOME/duovid when XDG_CACHE_HOME is an absolute path, else $HOME/.cache/duovid.
// DV_ENOTFOUND when neither is set, DV_EINVAL when `cap` is too small.
int dv_ctx_cache_dir_default(char *out, size_t cap);
// DIR/<32 hex digits of the XXH3-128 of the key>.dvctx. DV_EINVAL when the plan is not
// NUL-terminated or `cap` is too small.
int dv_ctx_cache_path(const char *dir, const dv_ctx_key *k, char *out, size_t cap);

// Saves m's context with the key, n_tokens, a model id string and `info_json` (any text the caller
// wants back on load; NULL = ""). Atomic: the directory is created (mkdir -p), the file is written to
// a temporary in the same directory, fsync'ed and renamed over `path`, so readers see the old file or
// the new one, never a partial one. On any error the temporary is removed and <0 is returned with a
// message naming the path. Progress (MiB) on stderr for large contexts.
int dv_ctx_cache_save(const char *path, const dv_ctx_key *k, const char *info_json, dv_llm *m);
// Loads a saved context into m.
//  1: loaded: m's context replaced (n_past restored); *info_json = malloc'ed copy of the saved info
//     text (the caller frees; info_json may be NULL when not wanted).
//  0: no usable file: absent (silent), or unreadable / truncated / bad magic / other version / size or
//     checksum mismatch / key mismatch / model or KV layout mismatch: one warning "PATH: REASON;
//     ignored, rebuilding"; m has an empty context.
//  <0: a real error (out of memory, device failure); m has an empty context.
// The checksum is verified while the state streams in (one pass); on mismatch the llm is cleared.
int dv_ctx_cache_load(const char *path, const dv_ctx_key *k, dv_llm *m, char **info_json);

#endif
