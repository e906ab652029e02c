// test_cuda_host_emulation.c: the GPU code paths of the encoder and the LLM (weights uploaded once,
// host-side steps through host mirrors, feature gathering by device copies, projector output
// downloaded, synthetic in-memory weights) run on the CPU with a CPU backend that reports itself
// as a device: no GPU needed, so the plumbing is tested here and in CI; the kernels themselves are
// tested in test_cuda_backend_ops. Results must equal the plain CPU path's (the same ops run).
#include "core/dv_error.h"
#include "encoder/dv_encoder.h"
#include "kernels/dv_backend.h"
#include "llm/dv_llm.h"
#include "llm/dv_llm_synth.h"
#include "tests/dv_test.h"
#include "tests/test_encoder_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t seed = 11;

// The encoder's device path (uploads, strided gathers, host pooling) on a CPU backend posing as a
// device: the same features as the CPU path, to rounding.
static void test_encoder(dv_backend *cpu, dv_backend *fake, const char *name) {
    enc_compare_backends(name, cpu, fake, "device path", 1e-7, seed++);
}

// A synthetic tiny model (in memory) through the device path with DuoAttention: the same logits as
// the CPU path and as the synth-model checkpoint of the same seed read from files; then a synthetic
// KV fill followed by decode.
static void test_llm(dv_backend *cpu, dv_backend *fake) {
    dv_llm_config cfg;
    DV_CHECK(dv_llm_synth_preset("tiny", &cfg) == 0);
    dv_duo_pattern *pat = NULL;
    dv_duo_pattern_full(cfg.n_layers, cfg.n_kv_heads, &pat);
    pat->alpha[1] = pat->alpha[2] = 0.0;
    dv_duo_pattern_set_threshold(pat, 0.5);
    pat->sink = 2;
    pat->recent = 5;
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = 3 + (i * 37) % 500;
    float *lg[2] = {NULL, NULL};
    const int V = cfg.vocab_size;
    for (int b = 0; b < 2; b++) {
        dv_llm_params lp = dv_llm_default_params();
        lp.backend = b ? fake : cpu;
        lp.n_ctx = 4096;
        lp.n_batch = 16;
        lp.pattern = pat;
        lp.duo_prefill = DV_DUO_PREFILL_STRICT;
        dv_llm *m = NULL;
        if (dv_llm_open_synthetic(&cfg, DV_DTYPE_BF16, 1, 0.02, &lp, &m)) {
            DV_CHECK_MSG(0, "%s", dv_error_message());
            break;
        }
        lg[b] = malloc((size_t)41 * V * 4);
        DV_CHECK(dv_llm_prefill(m, ids, NULL, 40, lg[b], 1) == 0);
        DV_CHECK(dv_llm_decode(m, 7, lg[b] + (size_t)40 * V) == 0);
        // synthetic fill, then decode at the filled context
        DV_CHECK(dv_llm_fill_kv_synthetic(m, 3000, 5) == 0);
        DV_CHECK(dv_llm_n_past(m) == 3000);
        float *l2 = malloc((size_t)V * 4);
        DV_CHECK(dv_llm_decode(m, 9, l2) == 0);
        int finite = 1;
        for (int i = 0; i < V; i++) finite &= isfinite(l2[i]) != 0;
        DV_CHECK_MSG(finite, "decode after a synthetic fill gives non-finite logits");
        free(l2);
        dv_llm_free(m);
    }
    // the same weights written to files (dv_llm_synth_write) and opened as a checkpoint
    char dir[] = "/tmp/duovid-test-synth-XXXXXX";
    if (lg[0] && mkdtemp(dir)) {
        dv_llm *m = NULL;
        dv_llm_params lp = dv_llm_default_params();
        lp.backend = cpu;
        lp.n_ctx = 4096;
        lp.n_batch = 16;
        lp.pattern = pat;
        lp.duo_prefill = DV_DUO_PREFILL_STRICT;
        float *lf = malloc((size_t)41 * V * 4);
        DV_CHECK(dv_llm_synth_write(dir, &cfg, DV_DTYPE_BF16, 1, 0.02) == 0);
        DV_CHECK(dv_llm_open(dir, &lp, &m) == 0);
        DV_CHECK(m && dv_llm_prefill(m, ids, NULL, 40, lf, 1) == 0 && dv_llm_decode(m, 7, lf + (size_t)40 * V) == 0);
        dv_test_close("synthetic tiny LLM: in memory == synth-model files", lf, lg[0], (size_t)41 * V, 1e-7);
        dv_llm_free(m);
        free(lf);
        char path[128];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/config.json", dir);
        unlink(path);
        rmdir(dir);
    }
    if (lg[0] && lg[1]) dv_test_close("synthetic tiny LLM (duo strict): device path == CPU path", lg[1], lg[0], (size_t)41 * V, 1e-7);
    free(lg[0]);
    free(lg[1]);
    dv_duo_pattern_free(pat);
}

int main(void) {
    dv_backend *cpu = dv_backend_cpu_init(2), *fake = dv_backend_cpu_init(2);
    DV_CHECK(cpu && fake);
    fake->device = DV_DEVICE_CUDA; // host memory and CPU ops, but every caller takes its device path
    test_encoder(cpu, fake, "tiny-llava");
    test_encoder(cpu, fake, "tiny-llava-siglip");
    test_encoder(cpu, fake, "tiny-llava-next-video");
    test_llm(cpu, fake);
    fake->device = DV_DEVICE_CPU;
    dv_backend_free(fake);
    dv_backend_free(cpu);
    return dv_test_finish();
}
