// app_common.h: helpers shared by the subcommands (backend selection, resource figures).
#ifndef DV_APP_COMMON_H
#define DV_APP_COMMON_H

#include "kernels/dv_backend.h"
#include "llm/dv_llm.h"

#include <stddef.h>
#include <stdint.h>

// device: "auto" (CUDA when available, else CPU), "cpu" or "cuda"; n_threads <= 0: all cores.
// Prints a one-line error and returns NULL on failure.
dv_backend *dv_app_backend_init(const char *device, int n_threads);
// 0 when `dir` is a folder; else prints "duovid: error: DIR: no such model folder" and returns -1.
int dv_app_check_model_dir(const char *dir);
// Peak resident set size of this process so far, in MiB.
double dv_app_peak_rss_mib(void);
// CPU seconds (user + system, every thread) this process has used so far: with one thread, a
// benchmark's work even on a shared machine (the wall time there measures the other jobs too).
double dv_app_cpu_seconds(void);
// Device memory in use now (GiB) on a GPU backend; 0 on the CPU backend.
double dv_app_device_used_gib(dv_backend *be);
// The memory floor of decode, measured in the calling run: read bandwidth in GB/s (CPU: a parallel
// streaming read over 256 MiB with the backend's threads; a device: its copy bandwidth), and the
// bytes one decode step reads at a context of ctx_tokens (every weight byte once but an untied
// embedding table's, of which one row: dv_llm_decode_weight_bytes; the retrieval
// heads' K/V rows of the context, the streaming heads' sink + ring). floor tok/s = GB/s * 1e9 / bytes.
double dv_app_read_gb_s(dv_backend *be);
double dv_app_decode_read_bytes(const dv_llm *m, double ctx_tokens);
// Device copy bandwidth in GB/s ((read + write) bytes / time, the best of 5 copies of 1 GiB); 0 on
// the CPU backend or when the buffers do not fit.
double dv_app_copy_gb_s(dv_backend *be);

// Finds a file duovid ships (REL, e.g. "assets/text/filler.txt") relative to the executable
// (/proc/self/exe), so a moved or installed binary finds its data: EXE_DIR/REL, EXE_DIR/../REL (a
// build folder inside the source tree), EXE_DIR/../share/duovid/REL (an install prefix). 0 and the
// path in out, or -1 after printing an error that lists where it looked and names `flag`.
int dv_app_find_data(const char *rel, const char *flag, char *out, size_t cap);
// The whole of a text file ('-' = stdin), NUL-terminated, malloc'd; *len (when not NULL) gets its
// length (the text may hold NUL bytes). NULL with the message set when it cannot be read.
char *dv_app_read_text(const char *path, size_t *len);

struct dv_duo_pattern;
// A DuoAttention pattern for benchmarks: random gates binarized at `sparsity` (the fraction of
// streaming heads); speed and memory depend on how many heads stream, not on which.
// --verbose's KV report on stderr: for a hybrid model first the Gated DeltaNet layers and their
// fixed-size state, then the KV cache's per-layer lines (its layers are the attention layers).
void dv_app_print_kv_report(const dv_llm *m);
int dv_app_random_pattern(int n_layers, int n_kv_heads, double sparsity, int sink, int recent,
                          struct dv_duo_pattern **out);

// A colour for a value in [0, 1] (clamped) for heat maps: dark blue 0 -> teal -> yellow 1 (perceptually
// ordered). c gets RGB.
void dv_app_ramp(double a, uint8_t c[3]);

#endif
