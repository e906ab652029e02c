// duo_pattern.c: load DuoAttention gate files (full_attention_heads.tsv + config.json) and binarize
// them with the reference's global-quantile rule (see dv_duo_pattern.h).
#include "llm/dv_duo_pattern.h"

#include "core/dv_error.h"
#include "core/dv_json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DV_DUO_DEFAULT_SINK 64
#define DV_DUO_DEFAULT_RECENT 256

static int alloc_pattern(int L, int H, dv_duo_pattern **out) {
    dv_duo_pattern *p = calloc(1, sizeof *p);
    if (p) {
        p->alpha = calloc((size_t)L * (size_t)H, sizeof *p->alpha);
        p->retrieval = calloc((size_t)L * (size_t)H, 1);
    }
    if (!p || !p->alpha || !p->retrieval) {
        dv_duo_pattern_free(p);
        return dv_error_set(DV_ENOMEM, "out of memory");
    }
    p->n_layers = L;
    p->n_kv_heads = H;
    p->sink = DV_DUO_DEFAULT_SINK;
    p->recent = DV_DUO_DEFAULT_RECENT;
    *out = p;
    return 0;
}

void dv_duo_pattern_free(dv_duo_pattern *p) {
    if (!p) return;
    free(p->alpha);
    free(p->retrieval);
    free(p);
}

int dv_duo_pattern_full(int n_layers, int n_kv_heads, dv_duo_pattern **out) {
    DV_ASSERT(n_layers > 0 && n_kv_heads > 0);
    int rc = alloc_pattern(n_layers, n_kv_heads, out);
    if (rc) return rc;
    for (int i = 0; i < n_layers * n_kv_heads; i++) (*out)->alpha[i] = 1.0;
    return dv_duo_pattern_set_threshold(*out, 0.0);
}

// Parses the TSV: rows of whitespace/tab-separated floats, all rows the same length.
static int parse_tsv(const char *path, dv_duo_pattern **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return dv_error_set(errno == ENOENT ? DV_ENOTFOUND : DV_EIO, "%s: cannot open (%s)", path, strerror(errno));
    int rc = 0, L = 0, H = -1, cap = 0;
    double *vals = NULL;
    char line[1 << 16];
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = dv_error_set(DV_EFORMAT, "%s: line %d is too long", path, L + 1);
            goto done;
        }
        char *s = line, *end;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
        if (!*s) continue; // blank line
        int n = 0;
        for (;;) {
            while (*s == ' ' || *s == '\t') s++;
            if (!*s || *s == '\n' || *s == '\r') break;
            errno = 0;
            double v = strtod(s, &end);
            if (end == s || !isfinite(v) || (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')) {
                rc = dv_error_set(DV_EFORMAT, "%s: line %d, value %d is not a number", path, L + 1, n + 1);
                goto done;
            }
            size_t idx = (size_t)L * (size_t)(H > 0 ? H : 0) + (size_t)n;
            while (idx + 1 > (size_t)cap) {
                cap = cap ? 2 * cap : 1024;
                double *nv = realloc(vals, (size_t)cap * sizeof *nv);
                if (!nv) {
                    rc = dv_error_set(DV_ENOMEM, "out of memory");
                    goto done;
                }
                vals = nv;
            }
            if (cap > (1 << 24)) {
                rc = dv_error_set(DV_EFORMAT, "%s: too many gate values", path);
                goto done;
            }
            // clip to [0, 1] as the reference loader does (trained gates can end slightly negative)
            vals[idx] = (v < 0 ? 0 : v > 1 ? 1 : v);
            n++;
            s = end;
        }
        if (H < 0) {
            H = n;
        } else if (n != H) {
            rc = dv_error_set(DV_EFORMAT, "%s: line %d has %d values, line 1 has %d", path, L + 1, n, H);
            goto done;
        }
        L++;
    }
    if (ferror(f)) {
        rc = dv_error_set(DV_EIO, "%s: read error", path);
        goto done;
    }
    if (L == 0 || H <= 0) {
        rc = dv_error_set(DV_EFORMAT, "%s: no gate values", path);
        goto done;
    }
    if ((rc = alloc_pattern(L, H, out))) goto done;
    memcpy((*out)->alpha, vals, (size_t)L * (size_t)H * sizeof *vals);
done:
    free(vals);
    fclose(f);
    return rc;
}

int dv_duo_pattern_load(const char *path, dv_duo_pattern **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb)) return dv_error_set(DV_ENOTFOUND, "%s: no such pattern file or folder", path);
    char tsv[4096], cfg[4096];
    int is_dir = S_ISDIR(sb.st_mode);
    snprintf(tsv, sizeof tsv, is_dir ? "%s/full_attention_heads.tsv" : "%s", path);
    int rc = parse_tsv(tsv, out);
    if (rc) return rc;
    dv_duo_pattern *p = *out;
    if (is_dir) {
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        cJSON *j = NULL;
        if (stat(cfg, &sb) == 0) {
            int64_t sink = 0, recent = 1;
            if ((rc = dv_json_load(cfg, &j)) || (rc = dv_json_get_int_opt(j, "sink_size", cfg, &sink)) ||
                (rc = dv_json_get_int_opt(j, "recent_size", cfg, &recent)))
                goto fail;
            if (sink < 0 || recent < 1 || sink > (1 << 24) || recent > (1 << 24)) {
                rc = dv_error_set(DV_EFORMAT, "%s: sink_size %lld / recent_size %lld out of range", cfg,
                                  (long long)sink, (long long)recent);
                goto fail;
            }
            p->cfg_sink = (int)sink;
            p->cfg_recent = (int)recent;
        }
    fail:
        cJSON_Delete(j);
        if (rc) {
            dv_duo_pattern_free(p);
            *out = NULL;
            return rc;
        }
    }
    return dv_duo_pattern_set_threshold(p, 0.5);
}

int dv_duo_pattern_set_threshold(dv_duo_pattern *p, double threshold) {
    if (!isfinite(threshold)) return dv_error_set(DV_EINVAL, "duo threshold must be a finite number");
    int n = p->n_layers * p->n_kv_heads;
    p->n_retrieval = 0;
    for (int i = 0; i < n; i++) {
        p->retrieval[i] = p->alpha[i] >= threshold;
        p->n_retrieval += p->retrieval[i];
    }
    p->threshold = threshold;
    return 0;
}

// Order by gate, ties by flat index (the deterministic stand-in for the reference's noise).
static const double *dv_sort_alpha;
static int cmp_rank(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    double x = dv_sort_alpha[i], y = dv_sort_alpha[j];
    if (x != y) return x < y ? -1 : 1;
    return (i > j) - (i < j);
}

int dv_duo_pattern_set_sparsity(dv_duo_pattern *p, double s) {
    if (!(s >= 0 && s <= 1)) return dv_error_set(DV_EINVAL, "duo sparsity %g is outside [0, 1]", s);
    const int n = p->n_layers * p->n_kv_heads;
    int *order = malloc((size_t)n * sizeof *order);
    if (!order) return dv_error_set(DV_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) order[i] = i;
    dv_sort_alpha = p->alpha; // qsort has no context argument; binarization is not a hot path
    qsort(order, (size_t)n, sizeof *order, cmp_rank);
    // numpy's default ("linear") quantile sits at position s * (n - 1) of the sorted values; with
    // all values distinct (ties broken by rank), alpha >= quantile holds exactly for ranks >= ceil(pos).
    double pos = s * (double)(n - 1);
    int first = (int)ceil(pos);
    int lo = (int)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    double frac = pos - lo;
    p->threshold = p->alpha[order[lo]] + frac * (p->alpha[order[hi]] - p->alpha[order[lo]]);
    p->n_retrieval = 0;
    for (int r = 0; r < n; r++) {
        p->retrieval[order[r]] = r >= first;
        p->n_retrieval += r >= first;
    }
    free(order);
    return 0;
}

int dv_duo_pattern_check(const dv_duo_pattern *p, const char *what, int n_layers, int n_kv_heads) {
    if (p->n_layers != n_layers || p->n_kv_heads != n_kv_heads)
        return dv_error_set(DV_ESHAPE, "%s: pattern has %d layers x %d KV heads, the model has %d x %d", what,
                            p->n_layers, p->n_kv_heads, n_layers, n_kv_heads);
    return 0;
}

int dv_duo_pattern_is_retrieval(const dv_duo_pattern *p, int layer, int kv_head) {
    DV_ASSERT(layer >= 0 && layer < p->n_layers && kv_head >= 0 && kv_head < p->n_kv_heads);
    return p->retrieval[layer * p->n_kv_heads + kv_head];
}
