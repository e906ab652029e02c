// dv_progress.h: a progress bar on stderr for long work (count, rate, ETA).
// On a TTY it redraws one line at most ~10 times a second; otherwise (CI, pipes, log files) it prints
// a plain line every few seconds, so logs stay readable. Nothing is printed when the log level is
// above info (DUOVID_LOG=warn) or for work that finishes in under half a second.
#ifndef DV_PROGRESS_H
#define DV_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_progress dv_progress;

// total <= 0 means unknown (no percentage or ETA). `unit` names what is counted ("tok", "frames");
// unit "B" counts bytes and prints them scaled ("12.3 MiB/40.0 MiB, 5.1 MiB/s").
// Returns NULL only when out of memory; every function accepts NULL and then does nothing.
dv_progress *dv_progress_init(const char *label, int64_t total, const char *unit);
void dv_progress_update(dv_progress *p, int64_t done);
// Text shown after the rate on every line (e.g. per-stage counts of a pipeline); "" or NULL clears.
void dv_progress_set_note(dv_progress *p, const char *note);
// Prints the final line (count, elapsed, average rate) and frees.
void dv_progress_finish(dv_progress *p);
// Frees without a final line (on errors).
void dv_progress_free(dv_progress *p);

// A byte count scaled for people: "812 B", "12.3 MiB", "4.0 GiB" (buf of n >= 16 chars).
void dv_format_bytes(char *buf, size_t n, double bytes);

// Monotonic seconds, for timings.
double dv_time_now(void);

#ifdef __cplusplus
}
#endif
#endif
