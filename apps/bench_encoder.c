// bench_encoder.c: `duovid bench encoder`: vision-encoder throughput (frames/s and GFLOP/s of the
// tower + pooling + projector, preprocessing included) next to the machine's sgemm GFLOP/s measured
// through the same CPU backend, on a model folder or on a synthetic checkpoint (--synth vit-b16).
#include "apps/app_common.h"
#include "apps/args.h"

#include "core/dv_error.h"
#include "core/dv_progress.h"
#include "encoder/dv_encoder.h"
#include "encoder/dv_encoder_synth.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dv_bench_encoder(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: duovid bench encoder (-m MODEL_DIR | --synth NAME) [options]\n\n"
            "Encodes synthetic 640x360 RGB frames (preprocessing included) and reports frames/s and the\n"
            "GFLOP/s of the encoder, next to the sgemm GFLOP/s of the CPU backend on 1024^3 F32.\n\n"
            "  -m, --model DIR    a LLaVA-family folder (llava, llava_next_video, llava_onevision: CLIP or\n"
            "                     SigLIP tower; the Qwen-VL towers are not benchmarked here)\n"
            "  --synth NAME       random weights with a real tower's shape: vit-b16 (ViT-B/16, 224 px,\n"
            "                     49 tokens) or clip-l336 (CLIP ViT-L/14-336, 144 tokens); written to a\n"
            "                     temporary folder and removed afterwards\n"
            "  --frames N         frames per timed run (default 32)\n"
            "  --batch N          frames per forward pass (default 8)\n"
            "  --repeat N         timed runs, the best is kept (default 2)\n"
            "  -t, --threads N    CPU threads (default: all cores)\n"
            "  --synthetic NAME   the same as --synth\n"
            "  --device D         cpu (default) | cuda | auto\n"
            "  --json             print one JSON object\n"
            "  -h, --help         this help\n");
}

// Best GFLOP/s of y (1024, 1024) = x (1024, 1024) @ w^T through the backend's matmul, F32 weights.
static double sgemm_gflops(dv_backend *be) {
    const int n = 1024;
    float *x = be->ops->alloc(be, sizeof(float) * n * n), *w = be->ops->alloc(be, sizeof(float) * n * n);
    float *y = be->ops->alloc(be, sizeof(float) * n * n);
    double best = 0;
    if (x && w && y) {
        for (size_t i = 0; i < (size_t)n * n; i++) {
            x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
            w[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        }
        dv_tensor tx = dv_tensor_2d(DV_DTYPE_F32, x, n, n), tw = dv_tensor_2d(DV_DTYPE_F32, w, n, n);
        dv_tensor ty = dv_tensor_2d(DV_DTYPE_F32, y, n, n);
        for (int r = 0; r < 4; r++) { // the first run warms up the threads and caches
            const double t0 = dv_time_now();
            be->ops->matmul(be, &ty, &tx, &tw, NULL);
            be->ops->synchronize(be);
            const double g = 2.0 * n * n * n / (dv_time_now() - t0) / 1e9;
            if (r > 0 && g > best) best = g;
        }
    }
    if (x) be->ops->free(be, x);
    if (w) be->ops->free(be, w);
    if (y) be->ops->free(be, y);
    return best;
}

int dv_bench_encoder(int argc, char **argv) {
    const char *model_dir = NULL, *synth = NULL, *device = "cpu";
    int n_frames = 32, batch = 8, threads = 0, json = 0, repeat = 2;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"synth", required_argument, 0, 1},
        {"frames", required_argument, 0, 2},  {"batch", required_argument, 0, 3},
        {"repeat", required_argument, 0, 4},  {"threads", required_argument, 0, 't'},
        {"json", no_argument, 0, 5},          {"help", no_argument, 0, 'h'},
        {"synthetic", required_argument, 0, 1}, {"device", required_argument, 0, 6},
        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:t:h", opts, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 1: synth = optarg; break;
        case 2: bad = dv_arg_int("--frames", optarg, 1, 1 << 20, &n_frames); break;
        case 3: bad = dv_arg_int("--batch", optarg, 1, 1024, &batch); break;
        case 4: bad = dv_arg_int("--repeat", optarg, 1, 100, &repeat); break;
        case 't': bad = dv_arg_threads(optarg, &threads); break;
        case 5: json = 1; break;
        case 6: device = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("bench encoder", "%s needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("bench encoder", "unknown option '%s'", argv[optind - 1]); return 1;
        }
        if (bad) return 1;
    }
    if (!!model_dir == !!synth || optind != argc) {
        dv_app_usage_error("bench encoder", "give exactly one of -m MODEL_DIR and --synth NAME");
        return 1;
    }
    int ret = 1;
    char tmp[] = "/tmp/duovid-bench-encoder-XXXXXX";
    int made_tmp = 0;
    dv_backend *be = NULL;
    dv_encoder *enc = NULL;
    uint8_t *rgb = NULL;
    dv_image *frames = NULL;
    float *out = NULL;
    if (synth) {
        dv_encoder_synth_params sp;
        if (dv_encoder_synth_preset(synth, &sp)) goto fail_msg;
        if (!mkdtemp(tmp)) {
            dv_error_set(DV_EIO, "cannot create a temporary folder under /tmp");
            goto fail_msg;
        }
        made_tmp = 1;
        if (dv_encoder_synth_write(tmp, &sp)) goto fail_msg;
        model_dir = tmp;
    } else if (dv_app_check_model_dir(model_dir)) {
        return 1;
    }
    if (!(be = dv_app_backend_init(device, threads))) goto done;
    const double sgemm = sgemm_gflops(be);
    dv_encoder_params ep = dv_encoder_default_params();
    ep.backend = be;
    ep.max_batch = batch;
    if (dv_encoder_open(model_dir, &ep, &enc)) goto fail_msg;
    // one frame's worth of test pattern, shared by all frames (the encoder reads, never writes)
    const int fw = 640, fh = 360;
    rgb = malloc((size_t)fw * fh * 3);
    frames = malloc(sizeof *frames * (size_t)n_frames);
    out = malloc(sizeof(float) * (size_t)n_frames * dv_encoder_tokens_per_frame(enc) * dv_encoder_d_model(enc));
    if (!rgb || !frames || !out) {
        dv_error_set(DV_ENOMEM, "out of memory");
        goto fail_msg;
    }
    for (int y = 0; y < fh; y++)
        for (int x = 0; x < fw; x++)
            for (int c = 0; c < 3; c++) rgb[((size_t)y * fw + x) * 3 + c] = (uint8_t)((x * (c + 1) + y * (3 - c)) & 255);
    for (int i = 0; i < n_frames; i++) frames[i] = (dv_image){.rgb = rgb, .w = fw, .h = fh, .stride = fw * 3};
    const int warm = n_frames < batch ? n_frames : batch;
    if (dv_encoder_encode(enc, frames, warm, out)) goto fail_msg;
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        const double t0 = dv_time_now();
        if (dv_encoder_encode(enc, frames, n_frames, out)) goto fail_msg;
        const double t = dv_time_now() - t0;
        best = t < best ? t : best;
    }
    // preprocessing alone (resize + crop of one frame), for its share of the time
    uint8_t *u8 = malloc((size_t)dv_encoder_image_size(enc) * dv_encoder_image_size(enc) * 3);
    double t_prep = 0;
    if (u8) {
        const double t0 = dv_time_now();
        for (int i = 0; i < n_frames; i++)
            if (dv_encoder_preprocess(enc, &frames[i], u8)) break;
        t_prep = (dv_time_now() - t0) / n_frames;
        free(u8);
    }
    const double fps = n_frames / best, gflops = dv_encoder_flops_per_frame(enc) * fps / 1e9;
    const char *name = synth ? synth : model_dir;
    if (json)
        printf("{\"model\":\"%s\",\"encoder\":\"%s\",\"threads\":%d,\"batch\":%d,\"frames\":%d,"
               "\"tokens_per_frame\":%d,\"d_model\":%d,\"gflop_per_frame\":%.3f,\"frames_per_s\":%.3f,"
               "\"gflops\":%.2f,\"sgemm_gflops\":%.2f,\"preprocess_ms_per_frame\":%.3f,\"peak_rss_mib\":%.1f}\n",
               name, dv_encoder_describe(enc), be->n_threads, batch, n_frames, dv_encoder_tokens_per_frame(enc),
               dv_encoder_d_model(enc), dv_encoder_flops_per_frame(enc) / 1e9, fps, gflops, sgemm, t_prep * 1e3,
               dv_app_peak_rss_mib());
    else
        printf("%s: %s\n%s x%d threads, batch %d: %.2f frames/s (%.1f ms/frame, %.2f GFLOP/frame) = %.1f GFLOP/s, "
               "%.0f%% of sgemm %.1f GFLOP/s; preprocessing %.2f ms/frame; peak RSS %.0f MiB\n",
               name, dv_encoder_describe(enc), be->ops->name, be->n_threads, batch, fps, 1e3 / fps,
               dv_encoder_flops_per_frame(enc) / 1e9, gflops, sgemm > 0 ? 100.0 * gflops / sgemm : 0, sgemm,
               t_prep * 1e3, dv_app_peak_rss_mib());
    ret = 0;
    goto done;
fail_msg:
    dv_app_error();
done:
    free(rgb);
    free(frames);
    free(out);
    dv_encoder_free(enc);
    dv_backend_free(be);
    if (made_tmp) {
        static const char *files[] = {"config.json", "video_preprocessor_config.json", "model.safetensors"};
        for (int i = 0; i < 3; i++) {
            char path[256];
            snprintf(path, sizeof path, "%s/%s", tmp, files[i]);
            unlink(path);
        }
        rmdir(tmp);
    }
    return ret;
}
