// video_internal.h: the dv_video handle's fields, shared by video.c (open/info) and sampler.c.
// Not a public header: only video/*.c include it.
#ifndef DV_VIDEO_INTERNAL_H
#define DV_VIDEO_INTERNAL_H

#include "video/dv_video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

struct dv_video {
    char *path;               // owned copy, for messages
    AVFormatContext *fmt;     // demuxer, owned
    AVCodecContext *dec;      // decoder of stream `stream_index`, owned
    AVStream *st;             // fmt->streams[stream_index] (not owned)
    int stream_index;
    int has_sampler;          // a sampler is alive (they share fmt and dec)
    int touched;              // packets were read: a new sampler must rewind first
    dv_video_info info;
};

// Installs (once per process) an av_log callback that sends libav's own messages to DV_LOG_DEBUG, so
// a corrupt file prints our single warning instead of hundreds of decoder lines.
void dv_video_quiet_libav(void);

#endif
