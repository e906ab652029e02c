// video.c: dv_video_open/free and stream info: demuxer + best video stream + threaded decoder.
#include "video/video_internal.h"

#include "core/dv_error.h"
#include "core/dv_log.h"

#include <errno.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- libav's log -> our debug level ----

static void libav_log_cb(void *avcl, int level, const char *fmt, va_list vl) {
    if (level > AV_LOG_INFO || !dv_log_enabled(DV_LOG_LEVEL_DEBUG)) return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
    dv_log_write(DV_LOG_LEVEL_DEBUG, "libav", "%s", line);
}

static pthread_once_t libav_once = PTHREAD_ONCE_INIT;
static void libav_install(void) { av_log_set_callback(libav_log_cb); }
void dv_video_quiet_libav(void) { pthread_once(&libav_once, libav_install); }

// ---- open ----

dv_video_open_params dv_video_open_params_default(void) {
    return (dv_video_open_params){.n_threads = 0, .max_dimension = 16384, .max_pixels = (int64_t)8192 * 8192};
}

// Clockwise display rotation from the stream's display matrix, snapped to a multiple of 90.
static int stream_rotation(const AVStream *st) {
    const uint8_t *m = NULL;
#if LIBAVFORMAT_VERSION_MAJOR >= 61
    const AVPacketSideData *sd = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                         st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    if (sd && sd->size >= 9 * sizeof(int32_t)) m = sd->data;
#else
    size_t size = 0;
    m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (size < 9 * sizeof(int32_t)) m = NULL;
#endif
    if (!m) return 0;
    // av_display_rotation_get is counter-clockwise; players turn the picture the other way.
    double ccw = av_display_rotation_get((const int32_t *)m);
    if (!isfinite(ccw)) return 0;
    long r = lround(-ccw / 90.0) * 90 % 360;
    return (int)(r < 0 ? r + 360 : r);
}

static void fill_info(dv_video *v) {
    dv_video_info *in = &v->info;
    AVStream *st = v->st;
    AVCodecParameters *par = st->codecpar;
    memset(in, 0, sizeof *in);
    snprintf(in->codec, sizeof in->codec, "%s", avcodec_get_name(par->codec_id));
    snprintf(in->container, sizeof in->container, "%s", v->fmt->iformat->name);
    const char *pf = av_get_pix_fmt_name((enum AVPixelFormat)par->format);
    snprintf(in->pix_fmt, sizeof in->pix_fmt, "%s", pf ? pf : "unknown");
    in->width = par->width;
    in->height = par->height;
    AVRational sar = av_guess_sample_aspect_ratio(v->fmt, st, NULL);
    if (sar.num <= 0 || sar.den <= 0) sar = (AVRational){1, 1};
    av_reduce(&in->sar_num, &in->sar_den, sar.num, sar.den, 1 << 20);
    in->rotation = stream_rotation(st);
    int dw = (int)lround((double)par->width * sar.num / sar.den), dh = par->height;
    if (dw < 1) dw = 1;
    if (dw > 65536) dw = 65536; // an absurd SAR must not make absurd output frames
    in->display_width = in->rotation % 180 ? dh : dw;
    in->display_height = in->rotation % 180 ? dw : dh;
    AVRational fr = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate : st->r_frame_rate;
    if (fr.num <= 0 || fr.den <= 0) fr = (AVRational){0, 1};
    in->fps_num = fr.num;
    in->fps_den = fr.den;
    in->fps = fr.num ? av_q2d(fr) : 0.0;
    // The demuxer's r_frame_rate is the rate that fits every timestamp; it differs from the average
    // rate exactly when frame durations vary.
    in->vfr = !fr.num || (st->r_frame_rate.num > 0 && st->avg_frame_rate.num > 0 &&
                          av_cmp_q(st->r_frame_rate, st->avg_frame_rate) != 0);
    in->tb_num = st->time_base.num;
    in->tb_den = st->time_base.den;
    in->first_pts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        in->duration_sec = (double)st->duration * av_q2d(st->time_base);
    else if (v->fmt->duration != AV_NOPTS_VALUE && v->fmt->duration > 0)
        in->duration_sec = (double)v->fmt->duration / AV_TIME_BASE;
    else
        in->duration_sec = -1.0;
    in->n_frames = st->nb_frames > 0 ? st->nb_frames : -1;
    in->bit_rate = par->bit_rate > 0 ? par->bit_rate : (v->fmt->bit_rate > 0 ? v->fmt->bit_rate : 0);
}

// The best video stream that is a real video (cover art in an audio file is an attached picture).
static int pick_stream(AVFormatContext *fmt) {
    int best = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (best >= 0 && !(fmt->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC)) return best;
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
            !(fmt->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC))
            return (int)i;
    return -1;
}

int dv_video_open(const char *path, const dv_video_open_params *params, dv_video **out) {
    DV_ASSERT(path && out);
    *out = NULL;
    dv_video_open_params p = params ? *params : dv_video_open_params_default();
    dv_video_quiet_libav();
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dv_error_set(errno == ENOENT ? DV_ENOTFOUND : DV_EIO, "%s: cannot open (%s)", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return dv_error_set(DV_EINVAL, "%s: is a directory, not a video file", path);
    if (S_ISREG(sb.st_mode) && sb.st_size == 0) return dv_error_set(DV_EFORMAT, "%s: empty file (0 bytes)", path);
    if (access(path, R_OK) != 0) return dv_error_set(DV_EIO, "%s: cannot open (%s)", path, strerror(errno));

    int rc = DV_OK, ret;
    dv_video *v = calloc(1, sizeof *v);
    if (!v || !(v->path = strdup(path))) {
        rc = dv_error_set(DV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((ret = avformat_open_input(&v->fmt, path, NULL, NULL)) < 0) {
        rc = dv_error_set(ret == AVERROR(ENOMEM) ? DV_ENOMEM : DV_EFORMAT, "%s: not a video file FFmpeg can read (%s)",
                          path, av_err2str(ret));
        goto fail;
    }
    if ((ret = avformat_find_stream_info(v->fmt, NULL)) < 0) {
        rc = dv_error_set(DV_EFORMAT, "%s: cannot read stream information (%s)", path, av_err2str(ret));
        goto fail;
    }
    v->stream_index = pick_stream(v->fmt);
    if (v->stream_index < 0) {
        rc = dv_error_set(DV_EFORMAT, "%s: no video stream (%s)", path,
                          v->fmt->nb_streams ? "audio or data only" : "no streams at all");
        goto fail;
    }
    v->st = v->fmt->streams[v->stream_index];
    AVCodecParameters *par = v->st->codecpar;
    if (par->width <= 0 || par->height <= 0) {
        rc = dv_error_set(DV_EFORMAT, "%s: the video stream has no frame size (%dx%d)", path, par->width, par->height);
        goto fail;
    }
    if (par->width > p.max_dimension || par->height > p.max_dimension ||
        (int64_t)par->width * par->height > p.max_pixels) {
        rc = dv_error_set(DV_EFORMAT, "%s: absurd frame size %dx%d (limit %d pixels a side, %lld pixels)", path,
                          par->width, par->height, p.max_dimension, (long long)p.max_pixels);
        goto fail;
    }
    if (v->st->time_base.num <= 0 || v->st->time_base.den <= 0) {
        rc = dv_error_set(DV_EFORMAT, "%s: the video stream has no time base", path);
        goto fail;
    }
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec) {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: no decoder for codec '%s'", path, avcodec_get_name(par->codec_id));
        goto fail;
    }
    if (!(v->dec = avcodec_alloc_context3(codec))) {
        rc = dv_error_set(DV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((ret = avcodec_parameters_to_context(v->dec, par)) < 0) {
        rc = dv_error_set(DV_EFORMAT, "%s: bad codec parameters (%s)", path, av_err2str(ret));
        goto fail;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = p.n_threads > 0 ? p.n_threads : (int)(ncpu > 16 ? 16 : ncpu < 1 ? 1 : ncpu);
    v->dec->thread_count = threads;
    v->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    v->dec->pkt_timebase = v->st->time_base;
    // The decoder refuses frames larger than the open-time limit even if the size changes mid-stream.
    v->dec->max_pixels = p.max_pixels;
    if ((ret = avcodec_open2(v->dec, codec, NULL)) < 0) {
        rc = dv_error_set(DV_EUNSUPPORTED, "%s: cannot open the %s decoder (%s)", path, codec->name, av_err2str(ret));
        goto fail;
    }
    fill_info(v);
    *out = v;
    return DV_OK;
fail:
    dv_video_free(v);
    return rc;
}

const dv_video_info *dv_video_get_info(const dv_video *v) {
    DV_ASSERT(v);
    return &v->info;
}

void dv_video_free(dv_video *v) {
    if (!v) return;
    DV_ASSERT(!v->has_sampler);
    avcodec_free_context(&v->dec);
    avformat_close_input(&v->fmt);
    free(v->path);
    free(v);
}
