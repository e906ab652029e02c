// dv_test.h: the tiny test harness every tests/test_*.c uses.
// A test program calls DV_CHECK(...) / dv_test_close(...) and returns dv_test_finish(): it prints
// "N passed, M failed" and exits 1 on any failure. DV_TEST_SKIP(reason) exits 77 (ctest "skipped").
#ifndef DV_TEST_H
#define DV_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int dv_test_passed, dv_test_failed;

#define DV_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (cond) {                                                                      \
            dv_test_passed++;                                                            \
        } else {                                                                         \
            dv_test_failed++;                                                            \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
        }                                                                                \
    } while (0)

#define DV_CHECK_MSG(cond, ...)                                                          \
    do {                                                                                 \
        if (cond) {                                                                      \
            dv_test_passed++;                                                            \
        } else {                                                                         \
            dv_test_failed++;                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
        }                                                                                \
    } while (0)

#define DV_TEST_SKIP(...)                                                                \
    do {                                                                                 \
        printf("SKIPPED: ");                                                             \
        printf(__VA_ARGS__);                                                             \
        printf("\n");                                                                    \
        return 77;                                                                       \
    } while (0)

// Relative L2 error ||a - b|| / ||b|| (b is the reference), in double; maxdiff = max |a - b|.
// NaN/Inf in `a` gives +inf.
double dv_test_rel_l2(const float *a, const float *b, size_t n, double *maxdiff);
// Checks rel_l2(a, ref) < tol, prints "label: rel_l2 = .., maxdiff = .." and counts pass/fail.
int dv_test_close(const char *label, const float *a, const float *ref, size_t n, double tol);
// Same for a float64 reference.
int dv_test_close_f64(const char *label, const float *a, const double *ref, size_t n, double tol);
// Deterministic uniform floats in [lo, hi) (xorshift; seed per test).
void dv_test_rand(float *x, size_t n, float lo, float hi, uint64_t *seed);
// Absolute path of a file under the source tree ("assets/x" -> "/src/assets/x"), static buffer.
const char *dv_test_path(const char *rel);
// The folder scripts/fetch_smollm2.sh writes SmolLM2-135M-Instruct to:
// ${XDG_CACHE_HOME:-$HOME/.cache}/duovid/models/SmolLM2-135M-Instruct (the real-model tests).
void dv_test_smollm2_dir(char *buf, size_t cap);
// The same folder, or a skip (exit 77, saying why) when its config.json is not there.
void dv_test_require_smollm2(char *buf, size_t cap);
// Prints the summary line and returns the exit code.
int dv_test_finish(void);

#endif
