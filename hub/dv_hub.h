// dv_hub.h: a Hugging Face Hub client over libcurl for `duovid pull`: lists a model repository's files
// through the Hub API, picks the ones duovid reads, and downloads them resumably (FILE.part + an HTTP
// Range request, size and sha256 checks, atomic rename, bounded retries with backoff).
//
// URL layout (the Hub's, also served by tests/fixtures/hub/serve.py):
//   {endpoint}/api/models/{repo}/revision/{revision}?blobs=true   JSON: "siblings": [{"rfilename",
//                                                                  "size", "lfs": {"sha256"}}]
//   {endpoint}/{repo}/resolve/{revision}/{file}                    the file (redirects followed)
#ifndef DV_HUB_H
#define DV_HUB_H

#include "core/dv_progress.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dv_hub dv_hub;

typedef struct dv_hub_params {
    const char *endpoint;                // "https://huggingface.co" (a trailing '/' is ignored)
    const char *revision;                // branch, tag or commit ("main")
    const char *token;                   // NULL/"": anonymous; else "Authorization: Bearer" (never printed)
    int max_retries;                     // transient failures (connection errors, 5xx, 429) retried
    double retry_base_s;                 // first backoff; doubles per retry, capped at 30 s
    int (*cancel)(void *user);           // NULL, or polled during transfers: nonzero stops with DV_EINTR
    void *user;                          // cancel's argument
} dv_hub_params;

typedef struct dv_hub_file {
    char *name;       // path inside the repository ("model.safetensors", "sub/x.json")
    int64_t size;     // bytes; -1 when the API did not say
    char sha256[65];  // lowercase hex of an LFS file's content; "" when the API gave none
} dv_hub_file;

// What one dv_hub_download did.
enum dv_hub_outcome { DV_HUB_DOWNLOADED = 0, DV_HUB_RESUMED, DV_HUB_PRESENT };

dv_hub_params dv_hub_default_params(void);

// repo: "ORG/NAME" (or a legacy "NAME"). Strings in p are copied.
int dv_hub_open(const char *repo, const dv_hub_params *p, dv_hub **out);
void dv_hub_free(dv_hub *h);

// Lists the repository at the revision. *files (*n entries) belong to the caller (dv_hub_files_free).
// Entries whose names are unsafe as local paths (absolute, "..", backslashes) are left out.
// 401/403 -> DV_EIO "REPO: access denied ... set HF_TOKEN"; 404 -> DV_ENOTFOUND
// "REPO: no such model repository (or revision REV)".
int dv_hub_list(dv_hub *h, dv_hub_file **files, int *n);
void dv_hub_files_free(dv_hub_file *files, int n);

// Fetches a small repository file (at most max_bytes) into memory: *data (NUL-terminated, *len bytes)
// is the caller's to free().
int dv_hub_get(dv_hub *h, const char *name, size_t max_bytes, char **data, size_t *len);

// Downloads f into dir/f->name: a complete file already there (same size, same sha256 when known) is
// kept; else the bytes go to dir/f->name.part (resumed with a Range request when it exists; a server
// ignoring the Range restarts it), are checked against f's size (or Content-Length) and sha256, and the
// .part is renamed over the final name. An interruption or failure leaves at most the .part.
// label: the progress label ("(2/5) model.safetensors"). *outcome and *fetched (bytes transferred in
// this call) may be NULL.
int dv_hub_download(dv_hub *h, const dv_hub_file *f, const char *dir, const char *label,
                    enum dv_hub_outcome *outcome, int64_t *fetched);

// Chooses the files duovid reads from a listing: configs, tokenizer and processor files, and the
// safetensors weights: exactly the shards that index_json (the text of model.safetensors.index.json,
// NULL when the repo has none) names, else every top-level *.safetensors. include: extra fnmatch(3)
// globs matched against the whole name. pick[i] is set to 1 for a chosen file, else 0.
// No safetensors weights -> DV_EUNSUPPORTED "no safetensors weights (duovid reads only safetensors)";
// an index naming a file the repo lacks -> DV_ENOTFOUND; a malformed index -> DV_EFORMAT.
int dv_hub_select(const dv_hub_file *files, int n, const char *index_json, const char *const *include,
                  int n_include, unsigned char *pick);

// 1 when name is safe as a relative local path (no leading '/', no "." or ".." part, no '\\' or
// control characters, no empty part), else 0.
int dv_hub_name_ok(const char *name);

#endif
