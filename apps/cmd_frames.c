// cmd_frames.c: `duovid frames VIDEO ...`: sample frames from a video and write numbered PNGs named
// with their timestamps (-o DIR), a labelled contact sheet (--sheet FILE.png), or nothing (--null,
// for benchmarks). Every flag is validated before anything is decoded or written; PNGs are encoded on
// worker threads beside the decoder (video/dv_png.h) and written atomically, so an error never
// leaves a partial image behind.
#include "apps/args.h"
#include "apps/cli.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"
#include "video/dv_png.h"
#include "video/dv_sheet.h"
#include "video/dv_video.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DV_SHEET_MAX_FRAMES 1024

static void usage(FILE *f) {
    fprintf(f,
            "usage: duovid frames VIDEO [--fps F | --frames N] [--start S] [--end E] [--max-frames N]\n"
            "                     (-o DIR | --sheet FILE.png | --null) [options]\n\n"
            "Samples frames from any video FFmpeg can read. Sparse plans seek to the keyframe before each\n"
            "frame; dense plans decode sequentially. A planned time takes the frame shown at that time.\n\n"
            "what to sample:\n"
            "  --fps F          F frames per second of video (default 1; fractions allowed: 0.1 = one every 10 s)\n"
            "  --frames N       N frames spread uniformly over the range (the middle of N equal slices)\n"
            "  --start S        start at S seconds (default 0)\n"
            "  --end E          stop before E seconds (default: the end of the video)\n"
            "  --max-frames N   at most N frames: an --fps plan that would give more becomes N uniform frames\n"
            "output (at least one):\n"
            "  -o, --out DIR    one PNG per frame, DIR/frame_000001_t000083.450s.png (number, time in seconds);\n"
            "                   DIR is created if missing\n"
            "  --sheet FILE.png one contact sheet: a grid of thumbnails labelled with their timestamps\n"
            "                   (at most %d frames)\n"
            "  --null           decode and convert every sampled frame but write nothing (benchmarks)\n"
            "options:\n"
            "  --size WxH       frame size for -o/--null (default: the display size; 0 for W or H keeps the\n"
            "                   aspect ratio, e.g. 320x0)\n"
            "  --thumb W        contact sheet thumbnail width in pixels (default 192)\n"
            "  --mode M         auto (default), seek (always seek) or sequential (never seek)\n"
            "  --threads N      decoder threads (default 0 = all cores)\n"
            "  -h, --help       this help\n",
            DV_SHEET_MAX_FRAMES);
}

static int parse_size(const char *val, int *w, int *h) {
    char *x = strchr(val, 'x');
    char wbuf[32];
    if (!x || (size_t)(x - val) >= sizeof wbuf) {
        fprintf(stderr, "duovid: error: --size: '%s' is not WxH (e.g. 640x360 or 320x0)\n", val);
        return -1;
    }
    memcpy(wbuf, val, (size_t)(x - val));
    wbuf[x - val] = 0;
    if (dv_arg_int("--size", wbuf, 0, 16384, w) || dv_arg_int("--size", x + 1, 0, 16384, h)) return -1;
    return 0;
}

int dv_cmd_frames(int argc, char **argv) {
    enum { O_FPS = 1000, O_FRAMES, O_START, O_END, O_MAX, O_SHEET, O_NULL, O_SIZE, O_THUMB, O_MODE, O_THREADS };
    static const struct option opts[] = {
        {"fps", required_argument, 0, O_FPS},       {"frames", required_argument, 0, O_FRAMES},
        {"start", required_argument, 0, O_START},   {"end", required_argument, 0, O_END},
        {"max-frames", required_argument, 0, O_MAX}, {"out", required_argument, 0, 'o'},
        {"sheet", required_argument, 0, O_SHEET},   {"null", no_argument, 0, O_NULL},
        {"size", required_argument, 0, O_SIZE},     {"thumb", required_argument, 0, O_THUMB},
        {"mode", required_argument, 0, O_MODE},     {"threads", required_argument, 0, O_THREADS},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    dv_sample_plan plan = dv_sample_plan_default();
    dv_video_open_params vp = dv_video_open_params_default();
    const char *out_dir = NULL, *sheet_path = NULL;
    int null_out = 0, have_fps = 0, have_end = 0, out_w = 0, out_h = 0, thumb_w = 192;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case O_FPS: bad = dv_arg_double("--fps", optarg, 1e-6, 1e4, &plan.fps); have_fps = 1; break;
        case O_FRAMES: bad = dv_arg_i64("--frames", optarg, 1, 100000000, &plan.n_frames); break;
        case O_START: bad = dv_arg_double("--start", optarg, 0, 1e9, &plan.start_sec); break;
        case O_END: bad = dv_arg_double("--end", optarg, 0, 1e9, &plan.end_sec); have_end = 1; break;
        case O_MAX: bad = dv_arg_i64("--max-frames", optarg, 1, 100000000, &plan.max_frames); break;
        case 'o': out_dir = optarg; break;
        case O_SHEET: sheet_path = optarg; break;
        case O_NULL: null_out = 1; break;
        case O_SIZE: bad = parse_size(optarg, &out_w, &out_h); break;
        case O_THUMB: bad = dv_arg_int("--thumb", optarg, 16, 1024, &thumb_w); break;
        case O_THREADS: bad = dv_arg_int("--threads", optarg, 0, 64, &vp.n_threads); break;
        case O_MODE:
            if (!strcmp(optarg, "auto")) plan.mode = DV_SAMPLE_MODE_AUTO;
            else if (!strcmp(optarg, "seek")) plan.mode = DV_SAMPLE_MODE_SEEK;
            else if (!strcmp(optarg, "sequential")) plan.mode = DV_SAMPLE_MODE_SEQUENTIAL;
            else {
                dv_app_usage_error("frames", "--mode: '%s' is not auto, seek or sequential", optarg);
                return 1;
            }
            break;
        case 'h': usage(stdout); return 0;
        case ':': dv_app_usage_error("frames", "option '%s' needs a value", argv[optind - 1]); return 1;
        default: dv_app_usage_error("frames", "unknown option '%s'", argv[optind - 1]); return 1;
        }
        if (bad) return 1;
    }
    if (optind != argc - 1) {
        dv_app_usage_error("frames", optind >= argc ? "expected a VIDEO file" : "expected one VIDEO file");
        return 1;
    }
    if (have_fps && plan.n_frames) {
        dv_app_usage_error("frames", "--fps and --frames are exclusive (one sampling plan)");
        return 1;
    }
    if (have_end && plan.end_sec <= plan.start_sec) {
        dv_app_usage_error("frames", "--start (%g) must be before --end (%g)", plan.start_sec, plan.end_sec);
        return 1;
    }
    if (!out_dir && !sheet_path && !null_out) {
        dv_app_usage_error("frames", "nothing to write: give -o DIR, --sheet FILE.png or --null");
        return 1;
    }
    if (sheet_path && (strlen(sheet_path) < 5 || strcasecmp(sheet_path + strlen(sheet_path) - 4, ".png"))) {
        dv_app_usage_error("frames", "--sheet: '%s' must end in .png", sheet_path);
        return 1;
    }
    const char *path = argv[optind];

    int rc = 1;
    dv_video *v = NULL;
    dv_video_sampler *s = NULL;
    dv_sheet *sheet = NULL;
    dv_progress *prog = NULL;
    dv_png_writer *pngs = NULL;
    char *name = NULL;
    if (dv_video_open(path, &vp, &v)) goto fail;
    const dv_video_info *in = dv_video_get_info(v);
    // Only a sheet: decode straight to thumbnail width (much less conversion work).
    int thumb_h = (int)lround((double)thumb_w * in->display_height / in->display_width);
    if (thumb_h < 16) thumb_h = 16;
    if (thumb_h > 4 * thumb_w) thumb_h = 4 * thumb_w;
    int sw = out_w, sh = out_h;
    if (sheet_path && !out_dir && !null_out) sw = thumb_w, sh = 0;
    if (dv_video_sampler_init(v, &plan, sw, sh, &s)) goto fail;
    int64_t count = dv_video_sampler_plan(s)->count;
    if (sheet_path) {
        if (count < 0 || count > DV_SHEET_MAX_FRAMES) {
            dv_error_set(DV_EINVAL, "--sheet: the plan has %s frames (at most %d on a sheet); use --frames N or "
                         "--max-frames N", count < 0 ? "an unknown number of" : "too many", DV_SHEET_MAX_FRAMES);
            goto fail;
        }
        if (dv_sheet_init((int)count, 0, thumb_w, thumb_h, &sheet)) goto fail;
    }
    if (out_dir && dv_fs_mkdirs(out_dir)) goto fail;
    size_t name_cap = strlen(out_dir ? out_dir : "") + 64;
    name = malloc(name_cap);
    if (!name) {
        dv_error_set(DV_ENOMEM, "out of memory");
        goto fail;
    }
    prog = dv_progress_init("sampling", count, "frames");
    double t0 = dv_time_now();
    dv_frame f;
    int r, n = 0;
    while ((r = dv_video_sampler_next(s, &f)) == 1) {
        n++;
        if (out_dir) {
            // Frames have the sampler's one output size: the writer is made for it at the first one.
            if (!pngs && dv_png_writer_init(vp.n_threads, f.w, f.h, name_cap, &pngs)) goto fail;
            snprintf(name, name_cap, "%s/frame_%06d_t%010.3fs.png", out_dir, n, f.t_sec);
            if (dv_png_writer_submit(pngs, name, f.rgb)) goto fail;
        }
        if (sheet) {
            char label[32];
            dv_sheet_format_time(f.t_sec, label, sizeof label);
            if (dv_sheet_add(sheet, f.rgb, f.w, f.h, label)) goto fail;
        }
        dv_progress_update(prog, (int64_t)f.target + 1);
    }
    if (r < 0) goto fail;
    if (pngs && dv_png_writer_finish(pngs)) goto fail;
    if (sheet && dv_sheet_write(sheet, sheet_path)) goto fail;
    dv_progress_free(prog);
    prog = NULL;
    dv_video_sampler_stats st;
    dv_video_sampler_get_stats(s, &st);
    double el = dv_time_now() - t0;
    DV_LOG_INFO("%d frames in %.2f s (%d x %d; decoded %lld frames, %lld seeks%s)%s%s%s%s", n, el, f.w, f.h,
                (long long)st.frames_decoded, (long long)st.seeks,
                st.bad_packets ? ", some corrupt data skipped" : "", out_dir ? " -> " : "", out_dir ? out_dir : "",
                sheet_path ? " sheet -> " : "", sheet_path ? sheet_path : "");
    rc = 0;
fail:
    if (rc) dv_app_error();
    dv_png_writer_free(pngs);
    dv_progress_free(prog);
    free(name);
    dv_sheet_free(sheet);
    dv_video_sampler_free(s);
    dv_video_free(v);
    return rc;
}
