// test_duo_pattern.c: DuoAttention pattern loading and binarization against numpy's quantile rule
// (fixture: tests/fixtures/duo/make_pattern_fixture.py), plus malformed-file errors. The official
// patterns in ../shared/duo_patterns are checked when that folder exists (reported as skipped if not).
#include "core/dv_error.h"
#include "core/dv_json.h"
#include "llm/dv_duo_pattern.h"
#include "tests/dv_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run_cases(const cJSON *cases, const char *dir, const char *label) {
    int n_ok = 0, n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
        double s = cJSON_GetObjectItem(c, "sparsity")->valuedouble;
        int L = cJSON_GetObjectItem(c, "layers")->valueint, H = cJSON_GetObjectItem(c, "kv_heads")->valueint;
        const cJSON *exp = cJSON_GetObjectItem(c, "expected");
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        dv_duo_pattern *p = NULL;
        n++;
        if (dv_duo_pattern_load(path, &p)) {
            DV_CHECK_MSG(0, "%s", dv_error_message());
            continue;
        }
        int ok = p->n_layers == L && p->n_kv_heads == H && dv_duo_pattern_set_sparsity(p, s) == 0 &&
                 cJSON_GetArraySize(exp) == L * H;
        int n_exp = 0;
        for (int i = 0; ok && i < L * H; i++) {
            int e = cJSON_GetArrayItem(exp, i)->valueint;
            n_exp += e;
            if (p->retrieval[i] != e) {
                fprintf(stderr, "%s s=%.2f: head %d (layer %d, kv %d) alpha %.6g: got %d, numpy %d\n", file, s, i,
                        i / H, i % H, p->alpha[i], p->retrieval[i], e);
                ok = 0;
            }
        }
        ok = ok && p->n_retrieval == n_exp && dv_duo_pattern_check(p, file, L, H) == 0;
        DV_CHECK_MSG(ok, "%s sparsity %.2f", file, s);
        n_ok += ok;
        dv_duo_pattern_free(p);
    }
    printf("%s: %d/%d binarizations equal numpy's\n", label, n_ok, n);
    return n;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void bad_inputs(void) {
    char dir[] = "/tmp/dv_duo_XXXXXX", path[256], cfg[256];
    if (!mkdtemp(dir)) return;
    dv_duo_pattern *p = NULL;
    snprintf(path, sizeof path, "%s/full_attention_heads.tsv", dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);

    DV_CHECK(dv_duo_pattern_load("/nonexistent/pattern", &p) == DV_ENOTFOUND && !p);
    DV_CHECK(strstr(dv_error_message(), "/nonexistent/pattern") != NULL);
    write_file(path, "0.1\t0.2\n0.3\n");
    DV_CHECK(dv_duo_pattern_load(dir, &p) == DV_EFORMAT && strstr(dv_error_message(), "line 2"));
    write_file(path, "0.1\tabc\n");
    DV_CHECK(dv_duo_pattern_load(dir, &p) == DV_EFORMAT && strstr(dv_error_message(), "not a number"));
    write_file(path, "\n\n");
    DV_CHECK(dv_duo_pattern_load(dir, &p) == DV_EFORMAT && strstr(dv_error_message(), "no gate values"));
    write_file(path, "0.1\tnan\n");
    DV_CHECK(dv_duo_pattern_load(dir, &p) == DV_EFORMAT);

    // a good file with config.json sink/recent, then the model check
    write_file(path, "1\t0\n0.5\t0.25\n-0.01\t2\n");
    write_file(cfg, "{\"sink_size\": 128, \"recent_size\": 512, \"lr\": 0.02}");
    DV_CHECK(dv_duo_pattern_load(dir, &p) == 0);
    if (p) {
        DV_CHECK(p->cfg_sink == 128 && p->cfg_recent == 512 && p->sink == 64 && p->recent == 256);
        DV_CHECK(p->alpha[4] == 0.0 && p->alpha[5] == 1.0); // clipped
        DV_CHECK(p->n_retrieval == 3);                      // default threshold 0.5: 1, 0.5, 2->1
        DV_CHECK(dv_duo_pattern_check(p, "pat", 3, 2) == 0);
        DV_CHECK(dv_duo_pattern_check(p, "pat", 32, 8) == DV_ESHAPE && strstr(dv_error_message(), "32 x 8"));
        DV_CHECK(dv_duo_pattern_set_sparsity(p, 1.5) == DV_EINVAL);
        DV_CHECK(dv_duo_pattern_set_sparsity(p, 0) == 0 && p->n_retrieval == 6);
        DV_CHECK(dv_duo_pattern_set_sparsity(p, 1) == 0 && p->n_retrieval == 1);
        DV_CHECK(dv_duo_pattern_set_threshold(p, 0.3) == 0 && p->n_retrieval == 3);
        dv_duo_pattern_free(p);
        p = NULL;
    }
    write_file(cfg, "{\"sink_size\": -3}");
    DV_CHECK(dv_duo_pattern_load(dir, &p) == DV_EFORMAT && strstr(dv_error_message(), "config.json"));
    write_file(cfg, "{\"sink_size\": ");
    DV_CHECK(dv_duo_pattern_load(dir, &p) == DV_EFORMAT && strstr(dv_error_message(), "config.json"));
    unlink(cfg);

    DV_CHECK(dv_duo_pattern_full(4, 2, &p) == 0 && p->n_retrieval == 8);
    dv_duo_pattern_free(p);
    dv_duo_pattern_free(NULL);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    char fix[4096];
    snprintf(fix, sizeof fix, "%s", dv_test_path("tests/fixtures/duo"));
    char cases_path[4200];
    snprintf(cases_path, sizeof cases_path, "%s/cases.json", fix);
    cJSON *j = NULL;
    if (dv_json_load(cases_path, &j)) {
        DV_CHECK_MSG(0, "%s", dv_error_message());
        return dv_test_finish();
    }
    run_cases(cJSON_GetObjectItem(j, "cases"), fix, "generated TSVs");
    bad_inputs();

    // The official patterns live in ../shared (beside the checkout); skip that part without it.
    char shared[4200];
    snprintf(shared, sizeof shared, "%s/../shared/duo_patterns", DUOVID_SOURCE_DIR);
    int skipped = access(shared, R_OK) != 0;
    if (skipped)
        printf("SKIPPED official patterns: %s is absent\n", shared);
    else
        run_cases(cJSON_GetObjectItem(j, "official"), shared, "official patterns");
    cJSON_Delete(j);
    return dv_test_finish();
}
