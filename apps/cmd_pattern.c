// cmd_pattern.c: `duovid pattern`: inspect a DuoAttention pattern: per-layer retrieval-head counts,
// the total, the KV fraction it gives at a context length, and a layers x heads heat map PNG.
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/cli.h"

#include "core/dv_error.h"
#include "llm/dv_duo_pattern.h"
#include "llm/dv_llm_config.h"
#include "video/dv_png.h"
#include "video/dv_sheet.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: duovid pattern PATTERN_DIR|TSV [--duo-sparsity S | --duo-threshold T] [--png FILE.png]\n\n"
            "Prints retrieval heads per layer, the total as `retrieval heads: K/N` and the KV cache\n"
            "fraction (DuoAttention bytes / full-attention bytes) at a context length; --png draws the\n"
            "gates as a layers x KV-heads heat map (dark blue 0 ... yellow 1), retrieval heads boxed.\n\n"
            "  --duo-sparsity S   fraction of streaming heads (default 0.5)\n"
            "  --duo-threshold T  instead: heads with gate >= T are retrieval heads\n"
            "  --sink N, --recent N   streaming window (default 64, 256)\n"
            "  --context N        context length for the KV fraction (default 131072)\n"
            "  --png FILE         write the heat map (written atomically)\n"
            "  -m, --model DIR    check the pattern against this model and name its layers (a hybrid\n"
            "                     model's pattern covers its attention layers; the linear ones are listed)\n"
            "  -h, --help         this help\n");
}

static int draw(const dv_duo_pattern *p, const char *path) {
    const int L = p->n_layers, H = p->n_kv_heads, cell = H <= 8 ? 20 : 10, left = 40, top = 30;
    const int w = left + H * cell + 10, h = top + L * cell + 10;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb) return dv_error_set(DV_ENOMEM, "out of memory");
    memset(rgb, 255, (size_t)w * h * 3);
    const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255};
    // the font has digits only: KV-head numbers across the top, layer numbers down the left
    for (int g = 0; g < H; g += cell >= 20 ? 1 : 4) {
        char lab[16];
        snprintf(lab, sizeof lab, "%d", g);
        dv_font_draw(rgb, w, h, left + g * cell + 2, top - 12, lab, 1, black);
    }
    for (int l = 0; l < L; l++) {
        if (l % (cell >= 20 ? 1 : 4) == 0) {
            char lab[16];
            snprintf(lab, sizeof lab, "%d", l);
            dv_font_draw(rgb, w, h, 4, top + l * cell + (cell - 7) / 2, lab, 1, black);
        }
        for (int g = 0; g < H; g++) {
            uint8_t c[3];
            dv_app_ramp(p->alpha[l * H + g], c);
            const int ret = p->retrieval[l * H + g];
            for (int y = 0; y < cell; y++)
                for (int x = 0; x < cell; x++) {
                    uint8_t *px = rgb + ((size_t)(top + l * cell + y) * w + (size_t)(left + g * cell + x)) * 3;
                    const int border = y == 0 || x == 0 || y == cell - 1 || x == cell - 1;
                    const int inner = ret && (y == 2 || x == 2 || y == cell - 3 || x == cell - 3) && y >= 2 &&
                                      x >= 2 && y <= cell - 3 && x <= cell - 3;
                    memcpy(px, border ? white : inner ? black : c, 3);
                }
        }
    }
    int rc = dv_png_write_rgb(path, rgb, w, h);
    free(rgb);
    return rc;
}

int dv_cmd_pattern(int argc, char **argv) {
    double sparsity = -1, threshold = -1;
    int sink = -1, recent = -1;
    int64_t ctx = 131072;
    const char *png = NULL, *model = NULL;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"duo-sparsity", required_argument, 0, 1}, {"duo-threshold", required_argument, 0, 2},
        {"sink", required_argument, 0, 3},         {"recent", required_argument, 0, 4},
        {"context", required_argument, 0, 5},      {"png", required_argument, 0, 6},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":hm:", opts, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 1: bad = dv_arg_double("--duo-sparsity", optarg, 0, 1, &sparsity); break;
        case 2: bad = dv_arg_double("--duo-threshold", optarg, 0, 1, &threshold); break;
        case 3: bad = dv_arg_int("--sink", optarg, 0, 1 << 20, &sink); break;
        case 4: bad = dv_arg_int("--recent", optarg, 1, 1 << 24, &recent); break;
        case 5: bad = dv_arg_i64("--context", optarg, 1, 1ll << 32, &ctx); break;
        case 6: png = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("pattern", "%s needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("pattern", "unknown option '%s'", argv[optind - 1]); return 1;
        }
        if (bad) return 1;
    }
    if (optind != argc - 1) {
        dv_app_usage_error("pattern", "expected one PATTERN_DIR or .tsv file");
        return 1;
    }
    if (sparsity >= 0 && threshold >= 0) {
        dv_app_usage_error("pattern", "give either --duo-sparsity or --duo-threshold, not both");
        return 1;
    }
    dv_duo_pattern *p = NULL;
    if (dv_duo_pattern_load(argv[optind], &p)) {
        dv_app_error();
        return 1;
    }
    if (threshold >= 0) dv_duo_pattern_set_threshold(p, threshold);
    else dv_duo_pattern_set_sparsity(p, sparsity >= 0 ? sparsity : 0.5);
    if (sink >= 0) p->sink = sink;
    if (recent >= 0) p->recent = recent;
    const int L = p->n_layers, H = p->n_kv_heads, N = L * H;
    static dv_llm_config mc; // (large: the layer map) static, read once
    if (model && (dv_llm_config_load(model, &mc) || dv_duo_pattern_check(p, argv[optind], mc.n_attn_layers, mc.n_kv_heads))) {
        dv_app_error();
        dv_duo_pattern_free(p);
        return 1;
    }
    printf("pattern: %s (%d layers x %d KV heads), threshold %.6g\n", argv[optind], L, H, p->threshold);
    if (model && mc.n_linear_layers) {
        char lin[1024];
        printf("model: %s, hybrid: the pattern's layers are its attention layers; %d Gated DeltaNet layers (%s) are "
               "linear (no KV heads)\n",
               model, mc.n_linear_layers, dv_llm_config_layers_str(&mc, 1, lin, sizeof lin));
    }
    for (int l = 0; l < L; l++) {
        int k = 0;
        for (int g = 0; g < H; g++) k += p->retrieval[l * H + g];
        if (model && mc.n_linear_layers) printf("layer %3d (model layer %3d): %2d/%d retrieval  ", l,
                                                dv_llm_config_attn_layer(&mc, l), k, H);
        else printf("layer %3d: %2d/%d retrieval  ", l, k, H);
        for (int g = 0; g < H; g++) printf("%c", p->retrieval[l * H + g] ? '#' : '.');
        printf("\n");
    }
    const double win = (double)(p->sink + p->recent) < (double)ctx ? (double)(p->sink + p->recent) : (double)ctx;
    const double frac = ((double)p->n_retrieval * (double)ctx + (double)(N - p->n_retrieval) * win) / ((double)N * ctx);
    printf("retrieval heads: %d/%d\n", p->n_retrieval, N);
    printf("KV fraction at %lld tokens (sink %d, recent %d): %.4f of full attention\n", (long long)ctx, p->sink,
           p->recent, frac);
    int rc = png ? draw(p, png) : 0;
    if (rc) dv_app_error();
    else if (png) fprintf(stderr, "duovid: wrote %s\n", png);
    dv_duo_pattern_free(p);
    return rc ? 1 : 0;
}
