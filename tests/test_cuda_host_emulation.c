// test_cuda_host_emulation.c: the GPU code paths of the encoder and the LLM (weights uploaded once,
// feature gathering by device copies, pooling on the backend, synthetic in-memory weights) and the
// video pipeline's device-resident hand-off (encoder output -> feeder -> prefill, text embeddings
// gathered on the device) run on the CPU with a CPU backend that reports itself as a device: no GPU
// needed, so the plumbing is tested here and in CI; the kernels themselves are tested in
// test_cuda_backend_ops. Results must equal the plain CPU path's (the same ops run), and the counted
// host <-> device bytes must be exactly what the design lets cross: pixels and ids/positions up,
// logits down, never an embedding.
#include "vlm/dv_vlm.h"
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

// The Qwen3.5 MoE model on the device path: every expert's weight view uploaded once, the routing on
// the downloaded router logits, the combine on the backend; equal to the CPU path.
static void test_moe(dv_backend *cpu, dv_backend *fake) {
    int32_t ids[23];
    for (int i = 0; i < 23; i++) ids[i] = 3 + (i * 41) % 500;
    float *lg[2] = {NULL, NULL};
    int V = 0;
    for (int b = 0; b < 2; b++) {
        dv_llm_params lp = dv_llm_default_params();
        lp.backend = b ? fake : cpu;
        lp.n_ctx = 64;
        lp.n_batch = 5;
        dv_llm *m = NULL;
        if (dv_llm_open(dv_test_path("tests/fixtures/llm/tiny-qwen35-moe"), &lp, &m)) {
            DV_CHECK_MSG(0, "%s", dv_error_message());
            break;
        }
        V = dv_llm_get_config(m)->vocab_size;
        lg[b] = malloc((size_t)24 * V * 4);
        DV_CHECK(dv_llm_prefill(m, ids, NULL, 23, lg[b], 1) == 0);
        DV_CHECK(dv_llm_decode(m, 7, lg[b] + (size_t)23 * V) == 0);
        dv_llm_free(m);
    }
    if (lg[0] && lg[1]) dv_test_close("tiny Qwen3.5 MoE: device path == CPU path", lg[1], lg[0], (size_t)24 * V, 1e-7);
    free(lg[0]);
    free(lg[1]);
}

// The video pipeline on the CPU backend and on the emulated device: the same context (bitwise), the
// same answer logits (bitwise), and the bytes that crossed: per frame its pixels (im2col patches, 3 *
// S * S floats) up; per context token its position up (4 bytes), per text token also its id;
// nothing down while the context is built (the embeddings of frames and text never leave the
// device); per answer step one row of logits down. On the plain CPU backend nothing is counted.
#define VLM_MODEL "tests/fixtures/vlm/tiny-llava-next-video"
#define VLM_CLIP "tests/fixtures/vlm/clip.mp4"
static void test_vlm_handoff(dv_backend *cpu, dv_backend *fake) {
    enum { N_FRAMES = 5, N_ANSWER = 4 };
    float *trace[2] = {NULL, NULL};
    int64_t ctx[2] = {0, 0};
    size_t V = 0;
    for (int b = 0; b < 2; b++) {
        dv_backend *be = b ? fake : cpu;
        dv_vlm_params p = dv_vlm_default_params();
        p.backend = be;
        p.n_batch = 37; // chunks cut frames and timestamps mid-way
        p.encode_batch = 2; // batches of 2, 2 and 1 frames
        dv_vlm *v = NULL;
        dv_video *video = NULL;
        if (dv_vlm_open(dv_test_path(VLM_MODEL), &p, &v) || dv_video_open(dv_test_path(VLM_CLIP), NULL, &video)) {
            DV_CHECK_MSG(0, "vlm hand-off: %s", dv_error_message());
            dv_vlm_free(v);
            break;
        }
        V = (size_t)dv_llm_get_config(dv_vlm_llm(v))->vocab_size;
        const int S = dv_encoder_image_size(dv_vlm_encoder(v)), tpf = dv_encoder_tokens_per_frame(dv_vlm_encoder(v));
        dv_vlm_video_opts o = {.plan = dv_sample_plan_default(), .timestamps = 1, .reserve = 64};
        o.plan.n_frames = N_FRAMES;
        dv_vlm_plan plan;
        dv_vlm_stats st;
        int rc = dv_vlm_plan_video(v, dv_video_get_info(video), &o, &plan);
        if (!rc) rc = dv_vlm_prefill_video(v, video, &plan, 1, NULL, &st);
        DV_CHECK_MSG(rc == 0, "vlm hand-off prefill: %s", dv_error_message());
        if (!rc) {
            ctx[b] = st.context_tokens;
            const uint64_t text = (uint64_t)(st.context_tokens - st.frames * tpf);
            const uint64_t want_up = b ? (uint64_t)st.frames * 3 * S * S * 4 + (uint64_t)st.context_tokens * 4 + text * 4 : 0;
            printf("vlm hand-off (%s): %lld frames, %lld tokens (%llu text): %llu bytes up (want %llu), %llu down\n",
                   b ? "emulated device" : "cpu", (long long)st.frames, (long long)st.context_tokens,
                   (unsigned long long)text, (unsigned long long)st.h2d_bytes, (unsigned long long)want_up,
                   (unsigned long long)st.d2h_bytes);
            DV_CHECK(st.frames == N_FRAMES);
            DV_CHECK_MSG(st.h2d_bytes == want_up, "host->device bytes of the video context: %llu, the design says %llu",
                         (unsigned long long)st.h2d_bytes, (unsigned long long)want_up);
            DV_CHECK_MSG(st.d2h_bytes == 0, "device->host bytes of the video context: %llu (want 0)",
                         (unsigned long long)st.d2h_bytes);
            // the answer: ids and positions of the question up, one row of logits per step down
            trace[b] = malloc((size_t)N_ANSWER * V * sizeof(float));
            dv_vlm_gen g = {.sampler = dv_sampler_default_params(), .max_new = N_ANSWER, .ignore_eos = 1,
                            .logits_trace = trace[b]};
            g.sampler.temperature = 0;
            dv_vlm_answer a;
            const dv_xfer_stats x0 = be->xfer;
            rc = dv_vlm_ask(v, "What happens?", 1, &g, NULL, &a);
            DV_CHECK_MSG(rc == 0, "vlm hand-off ask: %s", dv_error_message());
            if (!rc) {
                // the question's prefill, then one decode per answer token: each gives one row of logits;
                // each token's id and position go up
                const uint64_t want_down = b ? (uint64_t)(1 + a.n_tokens) * V * 4 : 0;
                const uint64_t want_q_up = b ? (uint64_t)(a.n_prompt + a.n_tokens) * 8 : 0;
                DV_CHECK(a.n_tokens == N_ANSWER);
                DV_CHECK_MSG(be->xfer.d2h_bytes - x0.d2h_bytes == want_down,
                             "answer: %llu bytes down, want %llu", (unsigned long long)(be->xfer.d2h_bytes - x0.d2h_bytes),
                             (unsigned long long)want_down);
                DV_CHECK_MSG(be->xfer.h2d_bytes - x0.h2d_bytes == want_q_up, "answer: %llu bytes up, want %llu",
                             (unsigned long long)(be->xfer.h2d_bytes - x0.h2d_bytes), (unsigned long long)want_q_up);
            }
        }
        dv_video_free(video);
        dv_vlm_free(v);
    }
    DV_CHECK(ctx[0] == ctx[1] && ctx[0] > 0);
    if (trace[0] && trace[1])
        DV_CHECK_MSG(!memcmp(trace[0], trace[1], (size_t)N_ANSWER * V * sizeof(float)),
                     "vlm hand-off: the emulated device's answer logits differ from the CPU path's");
    free(trace[0]);
    free(trace[1]);
}

int main(void) {
    dv_backend *cpu = dv_backend_cpu_init(2), *fake = dv_backend_cpu_init(2);
    DV_CHECK(cpu && fake);
    fake->device = DV_DEVICE_CUDA; // host memory and CPU ops, but every caller takes its device path
    test_encoder(cpu, fake, "tiny-llava");
    test_encoder(cpu, fake, "tiny-llava-siglip");
    test_encoder(cpu, fake, "tiny-llava-next-video");
    test_encoder(cpu, fake, "../vlm/tiny-llava-onevision"); // projector, then bilinear pooling on the device path
    test_llm(cpu, fake);
    test_moe(cpu, fake);
    test_vlm_handoff(cpu, fake);
    fake->device = DV_DEVICE_CPU;
    dv_backend_free(fake);
    dv_backend_free(cpu);
    return dv_test_finish();
}
