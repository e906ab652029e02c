// app_backend.c: --device / --threads handling and the text-file reader shared by the subcommands.
#include "apps/app_common.h"

#include "apps/args.h"
#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"
#include "llm/dv_duo_pattern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

dv_backend *dv_app_backend_init(const char *device, int n_threads) {
    int is_auto = !device || !strcmp(device, "auto");
    // a module named in $DUOVID_CUDA_MODULE is always tried: the user pointed at it
    const char *named = getenv("DUOVID_CUDA_MODULE");
    if (is_auto && !(named && *named) && !dv_backend_cuda_driver_visible()) {
        DV_LOG_DEBUG("no NVIDIA driver on this machine; using the CPU");
    } else if (is_auto || !strcmp(device, "cuda")) {
        int st = 0;
        dv_backend *be = dv_backend_cuda_init(0, &st);
        if (be) return be;
        if (!is_auto) {
            dv_app_error();
            return NULL;
        }
        // a CPU-only build, or a machine without a GPU, is the normal case for auto (quiet, as before);
        // a missing or broken module is an installation problem worth one line
        if (st == DV_EUNSUPPORTED || st == DV_EDEVICE)
            DV_LOG_DEBUG("no CUDA backend (%s); using the CPU", dv_error_message());
        else
            DV_LOG_WARN("CUDA backend unavailable: %s; using the CPU", dv_error_message());
    } else if (strcmp(device, "cpu")) {
        fprintf(stderr, "duovid: error: --device: '%s' is not one of auto, cpu, cuda\n", device);
        return NULL;
    }
    dv_backend *be = dv_backend_cpu_init(n_threads);
    if (!be) dv_app_error();
    return be;
}

double dv_app_peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0;
    return (double)ru.ru_maxrss / 1024.0; // ru_maxrss is in KiB on Linux
}

double dv_app_cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int dv_app_check_model_dir(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return 0;
    fprintf(stderr, "duovid: error: %s: no such model folder (expected a Hugging Face model folder)\n", dir);
    return -1;
}

double dv_app_device_used_gib(dv_backend *be) {
    size_t used = 0, total = 0;
    if (!be->ops->mem_info || be->ops->mem_info(be, &used, &total)) return 0;
    return (double)used / (1 << 30);
}

double dv_app_copy_gb_s(dv_backend *be) {
    if (be->device == DV_DEVICE_CPU) return 0;
    const size_t n = (size_t)1 << 30;
    void *a = be->ops->alloc(be, n), *b = a ? be->ops->alloc(be, n) : NULL;
    double best = 1e30;
    for (int i = 0; b && i < 6; i++) {
        double t0 = dv_time_now();
        if (be->ops->copy(be, b, a, n) || be->ops->synchronize(be)) break;
        double t = dv_time_now() - t0;
        if (i && t < best) best = t; // the first copy warms up
    }
    if (a) be->ops->free(be, a);
    if (b) be->ops->free(be, b);
    return best < 1e30 ? 2.0 * (double)n / best / 1e9 : 0;
}

// Host read bandwidth in GB/s with nt threads: the best of 5 parallel sums over 256 MiB, 8x this
// machine's last-level cache (the floor of CPU decode, which reads the weights and the KV cache once
// per token).
static double host_read_gb_s(int nt) {
    const size_t n = (size_t)64 << 20; // floats
    float *a = malloc(n * sizeof *a);
    if (!a) return 0;
#pragma omp parallel for num_threads(nt)
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 7); // first touch by the threads that read it
    double best = 1e30;
    volatile float keep = 0;
    for (int r = 0; r < 6; r++) {
        double t0 = dv_time_now();
        float sum = 0;
#pragma omp parallel for simd reduction(+ : sum) num_threads(nt)
        for (size_t i = 0; i < n; i++) sum += a[i];
        keep = sum;
        double t = dv_time_now() - t0;
        if (r && t < best) best = t; // the first pass warms up
    }
    (void)keep;
    free(a);
    return (double)n * sizeof *a / best / 1e9;
}

double dv_app_read_gb_s(dv_backend *be) {
    return be->device == DV_DEVICE_CPU ? host_read_gb_s(be->n_threads) : dv_app_copy_gb_s(be);
}

double dv_app_decode_read_bytes(const dv_llm *m, double ctx_tokens) {
    dv_kv_memory km;
    dv_kv_cache_memory(dv_llm_kv_cache(m), &km);
    return (double)dv_llm_decode_weight_bytes(m) + (double)km.bytes_per_token * ctx_tokens + (double)km.streaming_bytes;
}

int dv_app_find_data(const char *rel, const char *flag, char *out, size_t cap) {
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "duovid: error: cannot locate the executable to find %s (give %s FILE)\n", rel, flag);
        return -1;
    }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    static const char *const where[] = {"%s/%s", "%s/../%s", "%s/../share/duovid/%s"};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        if (snprintf(out, cap, where[i], exe, rel) >= (int)cap) continue;
        if (access(out, R_OK) == 0) return 0;
    }
    fprintf(stderr, "duovid: error: %s not found next to the executable (%s/, %s/.., %s/../share/duovid); give %s FILE\n",
            rel, exe, exe, exe, flag);
    return -1;
}

void dv_app_print_kv_report(const dv_llm *m) {
    const dv_llm_config *c = dv_llm_get_config(m);
    const dv_linear_state *ls = dv_llm_linear_state(m);
    if (ls) {
        char lin[1024], att[1024];
        fprintf(stderr, "linear layers %s: Gated DeltaNet, no KV cache; recurrent state %.2f MiB in all (constant)\n",
                dv_llm_config_layers_str(c, 1, lin, sizeof lin), (double)dv_linear_state_bytes(ls) / (1 << 20));
        fprintf(stderr, "KV cache layers 0..%d below are the attention layers %s\n", c->n_attn_layers - 1,
                dv_llm_config_layers_str(c, 0, att, sizeof att));
    }
    dv_kv_cache_print_report(dv_llm_kv_cache(m), stderr);
}

int dv_app_random_pattern(int n_layers, int n_kv_heads, double sparsity, int sink, int recent, dv_duo_pattern **out) {
    dv_duo_pattern *pat = NULL;
    int rc = dv_duo_pattern_full(n_layers, n_kv_heads, &pat);
    uint64_t s = 42;
    for (int i = 0; !rc && i < n_layers * n_kv_heads; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        pat->alpha[i] = (double)(s >> 11) / 9007199254740992.0;
    }
    if (!rc) rc = dv_duo_pattern_set_sparsity(pat, sparsity);
    if (!rc) {
        pat->sink = sink;
        pat->recent = recent;
    }
    if (rc) {
        dv_duo_pattern_free(pat);
        pat = NULL;
    }
    *out = pat;
    return rc;
}

char *dv_app_read_text(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        dv_error_set(DV_ENOTFOUND, "%s: cannot open", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    if (f != stdin) fclose(f);
    if (!buf) dv_error_set(DV_ENOMEM, "%s: out of memory reading it", path);
    else buf[n] = 0;
    if (buf && len) *len = n;
    return buf;
}

// dark blue -> teal -> yellow, a perceptually ordered ramp for gates in [0, 1]
void dv_app_ramp(double a, uint8_t c[3]) {
    static const double stops[3][3] = {{30, 30, 120}, {30, 150, 140}, {250, 230, 40}};
    double t = a < 0 ? 0 : a > 1 ? 2 : 2 * a;
    int i = t >= 1 ? 1 : 0;
    double f = t - i;
    for (int k = 0; k < 3; k++) c[k] = (uint8_t)(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]) + 0.5);
}
