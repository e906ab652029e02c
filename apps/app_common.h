// app_common.h: helpers shared by the subcommands (backend selection, resource figures).
#ifndef DV_APP_COMMON_H
#define DV_APP_COMMON_H

#include "kernels/dv_backend.h"

// device: "auto" (CUDA when available, else CPU), "cpu" or "cuda"; n_threads <= 0: all cores.
// Prints a one-line error and returns NULL on failure.
dv_backend *dv_app_backend_init(const char *device, int n_threads);
// 0 when `dir` is a folder; else prints "duovid: error: DIR: no such model folder" and returns -1.
int dv_app_check_model_dir(const char *dir);
// Peak resident set size of this process so far, in MiB.
double dv_app_peak_rss_mib(void);

#endif
