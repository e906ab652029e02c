// cmd_video_info.c: `duovid info VIDEO [--json]`: the stream info of a video file (codec, size,
// rotation, frame rate, duration, frame count). main routes `info` here when its path is a file.
#include "apps/args.h"
#include "apps/cli.h"

#include "core/dv_error.h"
#include "video/dv_sheet.h"
#include "video/dv_video.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *f) {
    fprintf(f, "usage: duovid info VIDEO [--json]\n\n"
               "Describes the video stream of any file FFmpeg can read: container, codec, size (and the size\n"
               "frames are displayed at, after pixel aspect ratio and rotation), frame rate, duration, frames.\n"
               "Nothing is decoded.\n\n"
               "  --json     one JSON object on stdout instead of aligned lines\n"
               "  -h, --help this help\n");
}

static int print_json(const char *path, const dv_video_info *in) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return -1;
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddStringToObject(o, "container", in->container);
    cJSON_AddStringToObject(o, "codec", in->codec);
    cJSON_AddStringToObject(o, "pix_fmt", in->pix_fmt);
    cJSON_AddNumberToObject(o, "width", in->width);
    cJSON_AddNumberToObject(o, "height", in->height);
    cJSON_AddNumberToObject(o, "display_width", in->display_width);
    cJSON_AddNumberToObject(o, "display_height", in->display_height);
    cJSON_AddNumberToObject(o, "sar_num", in->sar_num);
    cJSON_AddNumberToObject(o, "sar_den", in->sar_den);
    cJSON_AddNumberToObject(o, "rotation", in->rotation);
    cJSON_AddNumberToObject(o, "fps", in->fps);
    cJSON_AddNumberToObject(o, "fps_num", in->fps_num);
    cJSON_AddNumberToObject(o, "fps_den", in->fps_den);
    cJSON_AddBoolToObject(o, "vfr", in->vfr);
    if (in->duration_sec >= 0) cJSON_AddNumberToObject(o, "duration_sec", in->duration_sec);
    else cJSON_AddNullToObject(o, "duration_sec");
    if (in->n_frames >= 0) cJSON_AddNumberToObject(o, "frames", (double)in->n_frames);
    else cJSON_AddNullToObject(o, "frames");
    cJSON_AddNumberToObject(o, "bit_rate", (double)in->bit_rate);
    cJSON_AddNumberToObject(o, "time_base_num", in->tb_num);
    cJSON_AddNumberToObject(o, "time_base_den", in->tb_den);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return -1;
    printf("%s\n", s);
    free(s);
    return 0;
}

int dv_cmd_info_video(int argc, char **argv) {
    int json;
    const char *path;
    int a = dv_arg_info(argc, argv, usage, "VIDEO file", &path, &json);
    if (a) return a < 0;
    dv_video *v = NULL;
    if (dv_video_open(path, NULL, &v)) {
        dv_app_error();
        return 1;
    }
    const dv_video_info *in = dv_video_get_info(v);
    int rc = 0;
    if (json) {
        rc = print_json(path, in);
    } else {
        char dur[400] = "unknown";
        if (in->duration_sec >= 0) {
            char hms[64];
            dv_sheet_format_time(in->duration_sec, hms, sizeof hms);
            snprintf(dur, sizeof dur, "%.3f s (%s)", in->duration_sec, hms);
        }
        printf("file:        %s\n", path);
        printf("container:   %s\n", in->container);
        printf("codec:       %s (%s)\n", in->codec, in->pix_fmt);
        printf("size:        %dx%d (displayed %dx%d: pixel aspect %d:%d, rotation %d)\n", in->width, in->height,
               in->display_width, in->display_height, in->sar_num, in->sar_den, in->rotation);
        if (in->fps_num)
            printf("frame rate:  %.3f fps (%d/%d, %s)\n", in->fps, in->fps_num, in->fps_den,
                   in->vfr ? "variable: this is the average" : "constant");
        else
            printf("frame rate:  unknown\n");
        printf("duration:    %s\n", dur);
        if (in->n_frames >= 0) printf("frames:      %lld\n", (long long)in->n_frames);
        else printf("frames:      unknown (the container does not say)\n");
        if (in->bit_rate > 0) printf("bit rate:    %.0f kb/s\n", (double)in->bit_rate / 1000.0);
        printf("time base:   %d/%d s\n", in->tb_num, in->tb_den);
    }
    dv_video_free(v);
    if (rc) fprintf(stderr, "duovid: error: out of memory\n");
    return rc ? 1 : 0;
}
