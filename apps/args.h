// args.h: strict parsing of option values for the CLI (whole string must parse, range-checked).
// Each returns 0 or prints "duovid: error: --flag: ..." and returns -1.
#ifndef DV_ARGS_H
#define DV_ARGS_H

#include <stdint.h>

int dv_arg_int(const char *flag, const char *val, long long lo, long long hi, int *out);
int dv_arg_i64(const char *flag, const char *val, long long lo, long long hi, int64_t *out);
int dv_arg_u64(const char *flag, const char *val, uint64_t *out);
int dv_arg_float(const char *flag, const char *val, double lo, double hi, float *out);
int dv_arg_double(const char *flag, const char *val, double lo, double hi, double *out);
// Prints the one-line error for a failed library call: "duovid: error: <message>".
void dv_app_error(void);
// Prints "duovid: error: <fmt>" for CLI mistakes, with a hint to see `duovid CMD --help`.
void dv_app_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Parses a comma-separated list of at most `max` numbers in [lo, hi] ("0.5,0.75"; a value may end in k
// for x1024: "1k,2k"). Returns the count, or -1 after printing the error.
int dv_arg_list(const char *flag, const char *s, double *out, int max, double lo, double hi);
// Parses --threads: 0/unset = all cores.
int dv_arg_threads(const char *val, int *out);

#include <stdio.h>
// Parses `info`'s arguments (one PATH and an optional --json): returns 0 with *path/*json set, 1 when
// --help was printed (exit 0), -1 after a usage error (exit 1). `what` names PATH in messages.
int dv_arg_info(int argc, char **argv, void (*usage)(FILE *), const char *what, const char **path, int *json);

#endif
