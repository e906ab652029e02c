// args.c: strict option-value parsing and one-line error printing shared by the subcommands.
#include "apps/args.h"

#include "core/dv_error.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dv_arg_i64(const char *flag, const char *val, long long lo, long long hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val || *end) {
        fprintf(stderr, "duovid: error: %s: '%s' is not an integer\n", flag, val);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "duovid: error: %s: %lld is out of range [%lld, %lld]\n", flag, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int dv_arg_int(const char *flag, const char *val, long long lo, long long hi, int *out) {
    int64_t v;
    if (dv_arg_i64(flag, val, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

int dv_arg_u64(const char *flag, const char *val, uint64_t *out) {
    char *end;
    errno = 0;
    if (*val == '-') {
        fprintf(stderr, "duovid: error: %s: '%s' must not be negative\n", flag, val);
        return -1;
    }
    unsigned long long v = strtoull(val, &end, 10);
    if (errno || end == val || *end) {
        fprintf(stderr, "duovid: error: %s: '%s' is not a non-negative integer\n", flag, val);
        return -1;
    }
    *out = v;
    return 0;
}

int dv_arg_double(const char *flag, const char *val, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !isfinite(v)) {
        fprintf(stderr, "duovid: error: %s: '%s' is not a number\n", flag, val);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "duovid: error: %s: %g is out of range [%g, %g]\n", flag, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int dv_arg_float(const char *flag, const char *val, double lo, double hi, float *out) {
    double v;
    if (dv_arg_double(flag, val, lo, hi, &v)) return -1;
    *out = (float)v;
    return 0;
}

int dv_arg_list(const char *flag, const char *s, double *out, int max, double lo, double hi) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max) {
            fprintf(stderr, "duovid: error: %s: at most %d values\n", flag, max);
            return -1;
        }
        const size_t k = strlen(tok);
        const int kilo = k > 1 && (tok[k - 1] == 'k' || tok[k - 1] == 'K');
        if (kilo) tok[k - 1] = 0;
        if (dv_arg_double(flag, tok, kilo ? lo / 1024 : lo, kilo ? hi / 1024 : hi, &out[n])) return -1;
        if (kilo) out[n] *= 1024;
        n++;
    }
    if (!n) fprintf(stderr, "duovid: error: %s: empty list\n", flag);
    return n ? n : -1;
}

int dv_arg_threads(const char *val, int *out) { return dv_arg_int("--threads", val, 0, 1024, out); }

void dv_app_error(void) {
    const char *m = dv_error_message();
    fprintf(stderr, "duovid: error: %s\n", m && *m ? m : "unknown error");
}

void dv_app_usage_error(const char *cmd, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "duovid: error: %s (see duovid %s --help)\n", msg, cmd);
}

int dv_arg_info(int argc, char **argv, void (*usage)(FILE *), const char *what, const char **path, int *json) {
    static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *json = 0;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        if (c == 'j') {
            *json = 1;
        } else if (c == 'h') {
            usage(stdout);
            return 1;
        } else {
            dv_app_usage_error("info", "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    if (optind != argc - 1) {
        dv_app_usage_error("info", "expected one %s", what);
        return -1;
    }
    *path = argv[optind];
    return 0;
}
