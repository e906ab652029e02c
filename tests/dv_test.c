// dv_test.c: shared helpers for the C tests (relative L2, random inputs, summary line).
#include "tests/dv_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dv_test_passed, dv_test_failed;

double dv_test_rel_l2(const float *a, const float *b, size_t n, double *maxdiff) {
    double num = 0, den = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) {
            if (maxdiff) *maxdiff = INFINITY;
            return INFINITY;
        }
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
        if (fabs(d) > md) md = fabs(d);
    }
    if (maxdiff) *maxdiff = md;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int report(const char *label, double rel, double md, double tol) {
    int ok = rel < tol;
    printf("%s %s: rel_l2 = %.3e, maxdiff = %.3e (tol %.0e)\n", ok ? "OK  " : "FAIL", label, rel, md, tol);
    if (ok)
        dv_test_passed++;
    else
        dv_test_failed++;
    return ok;
}

int dv_test_close(const char *label, const float *a, const float *ref, size_t n, double tol) {
    double md;
    double rel = dv_test_rel_l2(a, ref, n, &md);
    return report(label, rel, md, tol);
}

int dv_test_close_f64(const char *label, const float *a, const double *ref, size_t n, double tol) {
    double num = 0, den = 0, md = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) bad = 1;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
        if (fabs(d) > md) md = fabs(d);
    }
    double rel = bad ? INFINITY : (den > 0 ? sqrt(num / den) : sqrt(num));
    return report(label, rel, bad ? INFINITY : md, tol);
}

void dv_test_rand(float *x, size_t n, float lo, float hi, uint64_t *seed) {
    uint64_t s = *seed ? *seed : 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
    *seed = s;
}

const char *dv_test_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", DUOVID_SOURCE_DIR, rel);
    return buf;
}

void dv_test_smollm2_dir(char *buf, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) snprintf(buf, cap, "%s/duovid/models/SmolLM2-135M-Instruct", xdg);
    else snprintf(buf, cap, "%s/.cache/duovid/models/SmolLM2-135M-Instruct", home ? home : ".");
}

void dv_test_require_smollm2(char *buf, size_t cap) {
    dv_test_smollm2_dir(buf, cap);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", buf);
    FILE *probe = fopen(path, "r");
    if (!probe) { // as DV_TEST_SKIP, from a helper: ctest reads exit code 77 as skipped
        printf("SKIPPED: SmolLM2-135M-Instruct is not in %s (run scripts/fetch_smollm2.sh)\n", buf);
        exit(77);
    }
    fclose(probe);
}

int dv_test_finish(void) {
    printf("%d passed, %d failed\n", dv_test_passed, dv_test_failed);
    return dv_test_failed ? 1 : 0;
}
