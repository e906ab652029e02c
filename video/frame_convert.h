// frame_convert.h: decoded AVFrame (any pixel format, any size) -> packed RGB24 at the output size,
// with the stream's rotation applied. Internal to video/.
#ifndef DV_FRAME_CONVERT_H
#define DV_FRAME_CONVERT_H

#include <libavutil/frame.h>
#include <stdint.h>

typedef struct dv_frame_convert dv_frame_convert;

// out_w x out_h is the final (rotated) size; rotation is clockwise degrees (0/90/180/270).
int dv_frame_convert_init(int out_w, int out_h, int rotation, dv_frame_convert **out);
// Converts `src` into `rgb` (out_h, out_w, 3), rows packed; libswscale never writes `rgb` itself (see
// frame_convert.c), so it needs no padding. The swscale context is rebuilt only when the input
// size, format or colour description changes (mid-stream resolution changes are handled).
int dv_frame_convert_run(dv_frame_convert *c, const AVFrame *src, uint8_t *rgb);
void dv_frame_convert_free(dv_frame_convert *c);

#endif
