// sampler.c: the frame iterator: walks the plan's target times, reaches each by seeking to the
// keyframe before it (sparse) or by decoding forward (dense), picks the frame shown at that time,
// converts it to RGB24. Holds at most three decoded frames (prev / ahead / scratch) at any time.
#include "video/video_internal.h"

#include "core/dv_error.h"
#include "core/dv_log.h"
#include "video/frame_convert.h"

#include <libavutil/mathematics.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef AV_FRAME_FLAG_KEY
#define DV_FRAME_IS_KEY(f) (((f)->flags & AV_FRAME_FLAG_KEY) != 0)
#else
#define DV_FRAME_IS_KEY(f) ((f)->key_frame)
#endif

struct dv_video_sampler {
    dv_video *v;
    dv_plan_times plan;
    dv_sample_mode mode;
    int out_w, out_h;
    uint8_t *rgb;              // (out_h, out_w, 3) RGB24, handed out in dv_frame, reused
    dv_frame_convert *conv;
    AVPacket *pkt;             // reused for every read
    AVFrame *tmp;              // scratch: the frame being received
    AVFrame *prev;             // latest decoded frame with pts <= the current target (valid if has_prev)
    AVFrame *ahead;            // decoded frame past the current target, not consumed yet (if has_ahead)
    int has_prev, has_ahead;
    int64_t prev_idx, ahead_idx, tmp_idx; // counted frame indices (-1 when not counting)
    int pkt_pending;           // pkt holds a packet the decoder refused with EAGAIN
    int draining, eof;         // sent the NULL packet / decoder returned EOF
    int counting;              // decoding from the first packet: frame count == presentation index
    int64_t n_counted;
    int64_t last_pts;          // effective pts of the last decoded frame (to fill missing pts)
    int64_t frame_dur;         // ticks per frame at the average rate (>= 1)
    int64_t last_key_pts, max_gop; // keyframe spacing seen so far (for streams without an index)
    int64_t k;                 // next plan target
    int64_t last_emitted_pts;
    int64_t end_pts;           // the plan's range ends here (ticks; INT64_MAX: the end of the stream)
    int emitted_any;
    int off_grid;              // a CFR-flagged stream produced a pts off its frame grid: treat as VFR
    int warned;
    int every_frame;           // the range has no more frames than the plan asks: return each in turn
    int registered;            // this sampler set v->has_sampler
    dv_video_sampler_stats stats;
};

static int64_t ticks_of_sec(const dv_video_info *in, double sec) {
    // The 1e-4 tick slack absorbs the rounding of t = k / fps so a planned time equal to a frame's
    // time selects that frame, not its predecessor.
    double t = floor(sec * (double)in->tb_den / (double)in->tb_num + 1e-4);
    if (t > 4e18) t = 4e18;
    if (t < -4e18) t = -4e18;
    return in->first_pts + (int64_t)t;
}

// The first tick at or past `sec`: a frame is inside a range ending at `sec` iff its pts is below this
// (1e-4 tick slack, as above: a frame exactly at the end is outside).
static int64_t end_ticks_of_sec(const dv_video_info *in, double sec) {
    double t = ceil(sec * (double)in->tb_den / (double)in->tb_num - 1e-4);
    if (t > 4e18) t = 4e18;
    return in->first_pts + (int64_t)t;
}

static void warn_once(dv_video_sampler *s, const char *what, int err) {
    s->stats.bad_packets++;
    if (s->warned) return;
    s->warned = 1;
    const dv_video_info *in = &s->v->info;
    double t = (double)(s->last_pts - in->first_pts) * in->tb_num / in->tb_den;
    DV_LOG_WARN("%s: %s near %.3f s (%s): skipped; later errors in this file are skipped silently", s->v->path, what,
                t < 0 ? 0.0 : t, av_err2str(err));
}

// ---- decoding ----

// Receives the next decoded frame into s->tmp (effective pts in tmp->pts, counted index in tmp_idx).
// Returns 1, 0 at the end of the stream, < 0 on a fatal error.
static int decode_one(dv_video_sampler *s) {
    dv_video *v = s->v;
    for (;;) {
        int ret = avcodec_receive_frame(v->dec, s->tmp);
        if (ret == 0) {
            int64_t pts = s->tmp->best_effort_timestamp;
            if (pts == AV_NOPTS_VALUE) pts = s->tmp->pts;
            if (pts == AV_NOPTS_VALUE) pts = s->stats.frames_decoded ? s->last_pts + s->frame_dur : v->info.first_pts;
            s->tmp->pts = pts;
            s->last_pts = pts;
            s->stats.frames_decoded++;
            s->tmp_idx = s->counting ? s->n_counted++ : -1;
            if (DV_FRAME_IS_KEY(s->tmp)) {
                if (s->last_key_pts != AV_NOPTS_VALUE && pts - s->last_key_pts > s->max_gop)
                    s->max_gop = pts - s->last_key_pts;
                s->last_key_pts = pts;
            }
            return 1;
        }
        if (ret == AVERROR_EOF) return 0;
        if (ret == AVERROR(ENOMEM)) return dv_error_set(DV_ENOMEM, "%s: out of memory while decoding", v->path);
        if (ret != AVERROR(EAGAIN)) warn_once(s, "undecodable frame", ret);
        // The decoder wants input (or failed on the last one: move on to the next packet).
        if (s->draining) return 0;
        if (!s->pkt_pending) {
            for (;;) {
                ret = av_read_frame(v->fmt, s->pkt);
                if (ret < 0) break;
                if (s->pkt->stream_index == v->stream_index) break;
                av_packet_unref(s->pkt);
            }
            if (ret < 0) {
                // A read error mid-file (truncated, unreadable) ends the stream like EOF does.
                if (ret != AVERROR_EOF) warn_once(s, "unreadable data", ret);
                s->draining = 1;
                avcodec_send_packet(v->dec, NULL);
                continue;
            }
        }
        ret = avcodec_send_packet(v->dec, s->pkt);
        if (ret == AVERROR(EAGAIN)) {
            s->pkt_pending = 1; // output first, then resend this packet
            continue;
        }
        s->pkt_pending = 0;
        av_packet_unref(s->pkt);
        if (ret == AVERROR(ENOMEM)) return dv_error_set(DV_ENOMEM, "%s: out of memory while decoding", v->path);
        if (ret < 0 && ret != AVERROR_EOF) warn_once(s, "corrupt packet", ret);
    }
}

// Repositions the demuxer at the keyframe at or before `target` (ticks). Returns 0 or -1 (could not
// seek: the caller decodes forward from where it is).
static int do_seek(dv_video_sampler *s, int64_t target) {
    dv_video *v = s->v;
    int ret = av_seek_frame(v->fmt, v->stream_index, target, AVSEEK_FLAG_BACKWARD);
    if (ret < 0) {
        DV_LOG_DEBUG("%s: seek to pts %lld failed (%s)", v->path, (long long)target, av_err2str(ret));
        return -1;
    }
    avcodec_flush_buffers(v->dec);
    av_packet_unref(s->pkt);
    s->pkt_pending = s->draining = s->eof = 0;
    s->has_prev = s->has_ahead = 0;
    s->stats.seeks++;
    // Back at the very start the frame count is the index again.
    s->counting = target <= v->info.first_pts;
    s->n_counted = 0;
    s->last_key_pts = AV_NOPTS_VALUE;
    return 0;
}

// AUTO mode: is seeking to the keyframe before `target` cheaper than decoding forward?
static int seek_pays(dv_video_sampler *s, int64_t target, int64_t cur) {
    AVStream *st = s->v->st;
    if (avformat_index_get_entries_count(st) > 0) {
        int i = av_index_search_timestamp(st, target, AVSEEK_FLAG_BACKWARD);
        if (i < 0) return 0; // before the first indexed keyframe: we are at the start anyway
        const AVIndexEntry *e = avformat_index_get_entry(st, i);
        // Seeking restarts the decoder (threads refill); worth it only when it skips a few frames.
        return e && e->timestamp > cur + 4 * s->frame_dur;
    }
    // No index: guess from the keyframe spacing seen so far (at least 2 s).
    int64_t two_sec = av_rescale_q(2, (AVRational){1, 1}, st->time_base);
    int64_t gap = s->max_gop * 2 > two_sec ? s->max_gop * 2 : two_sec;
    return target - cur > gap;
}

static int need_seek(dv_video_sampler *s, int64_t target) {
    if (s->mode == DV_SAMPLE_MODE_SEQUENTIAL || s->eof) return 0;
    if (s->has_ahead && s->ahead->pts > target) return 0; // the answer is already decoded
    int64_t cur = s->has_ahead ? s->ahead->pts : s->has_prev ? s->prev->pts : s->v->info.first_pts;
    if (s->mode == DV_SAMPLE_MODE_SEEK) return target > cur || !s->has_prev;
    return seek_pays(s, target, cur);
}

static void swap_frames(AVFrame **a, AVFrame **b, int64_t *ia, int64_t *ib) {
    AVFrame *t = *a;
    *a = *b;
    *b = t;
    int64_t i = *ia;
    *ia = *ib;
    *ib = i;
}

// Decodes forward until a frame lies past `target` (ticks): then s->prev is the last frame at or
// before it (if any since the last seek) and s->ahead the first one after it (unless the stream
// ended). Returns 0 or < 0 on a fatal error.
static int decode_past(dv_video_sampler *s, int64_t target) {
    while (!(s->has_ahead && s->ahead->pts > target)) {
        if (s->has_ahead) {
            // ahead is at or before the target: it becomes the candidate (never move backwards in
            // time on a broken file with non-monotonic pts).
            if (!s->has_prev || s->ahead->pts >= s->prev->pts) {
                swap_frames(&s->prev, &s->ahead, &s->prev_idx, &s->ahead_idx);
                s->has_prev = 1;
            }
            av_frame_unref(s->ahead);
            s->has_ahead = 0;
        }
        if (s->eof) break;
        int r = decode_one(s);
        if (r < 0) return r;
        if (r == 0) {
            s->eof = 1;
            break;
        }
        av_frame_unref(s->ahead);
        swap_frames(&s->ahead, &s->tmp, &s->ahead_idx, &s->tmp_idx);
        s->has_ahead = 1;
    }
    return 0;
}

// Finds the frame shown at `target` (ticks). Returns 1 with *out = s->prev or s->ahead, 0 when the
// stream has no frame at all, < 0 on error.
static int resolve(dv_video_sampler *s, int64_t target, AVFrame **out) {
    const dv_video_info *in = &s->v->info;
    int seeked = 0;
    int64_t seek_to = target;
    if (need_seek(s, target) && do_seek(s, target) == 0) seeked = 1;
    int64_t step = av_rescale_q(1, (AVRational){1, 1}, s->v->st->time_base);
    if (step < 16 * s->frame_dur) step = 16 * s->frame_dur;
    for (int attempt = 0;; attempt++) {
        int r = decode_past(s, target);
        if (r < 0) return r;
        if (s->has_prev) {
            *out = s->prev;
            return 1;
        }
        // Nothing at or before the target since the seek: the seek landed on a keyframe shown after
        // the target (B-frame reordering, an imprecise index). Seek further back, doubling the step.
        if (seeked && seek_to > in->first_pts && attempt < 40) {
            seek_to = target - step;
            if (seek_to < in->first_pts) seek_to = in->first_pts;
            step *= 2;
            if (do_seek(s, seek_to) == 0) continue;
        }
        // The target precedes every frame we can reach: the first one is what is shown.
        if (s->has_ahead) {
            *out = s->ahead;
            return 1;
        }
        return 0;
    }
}

// Counts the packets of the stream that start inside the plan's range [start_pts, end_pts), plus the
// frame shown at the start when it begins before it, reading from the keyframe before start_pts; stops
// once the count passes `limit`. A packet without a time counts (a frame too many only makes the
// sampler take its usual path). Leaves the demuxer anywhere: the caller rewinds.
static int64_t count_range_packets(dv_video_sampler *s, int64_t start_pts, int64_t limit) {
    dv_video *v = s->v;
    if (start_pts > v->info.first_pts) av_seek_frame(v->fmt, v->stream_index, start_pts, AVSEEK_FLAG_BACKWARD);
    int64_t n = 0, past = 0;
    int before = 0, at_start = 0;
    // Decode order is not presentation order: a few packets past the end may precede one inside it.
    while (n <= limit && past < 32 && av_read_frame(v->fmt, s->pkt) >= 0) {
        if (s->pkt->stream_index == v->stream_index) {
            int64_t t = s->pkt->pts != AV_NOPTS_VALUE ? s->pkt->pts : s->pkt->dts;
            if (t == AV_NOPTS_VALUE) n++;
            else if (t < start_pts) before = 1;
            else if (t < s->end_pts) n++, at_start |= t == start_pts;
            else past++;
        }
        av_packet_unref(s->pkt);
    }
    return n + (before && !at_start);
}

// ---- public ----

int dv_video_sampler_init(dv_video *v, const dv_sample_plan *plan, int out_w, int out_h, dv_video_sampler **out) {
    DV_ASSERT(v && plan && out);
    *out = NULL;
    if (v->has_sampler) return dv_error_set(DV_EINVAL, "%s: a sampler is already open on this video", v->path);
    const dv_video_info *in = &v->info;
    dv_plan_times pt;
    int rc = dv_sample_plan_resolve(plan, in->duration_sec, &pt);
    if (rc) return dv_error_prefix(rc, "%s", v->path);
    if (out_w < 0 || out_h < 0 || out_w > 16384 || out_h > 16384)
        return dv_error_set(DV_EINVAL, "%s: output size %dx%d is out of range (0..16384 a side)", v->path, out_w, out_h);
    if (!out_w && !out_h) {
        out_w = in->display_width;
        out_h = in->display_height;
    } else if (!out_w) {
        out_w = (int)lround((double)out_h * in->display_width / in->display_height);
    } else if (!out_h) {
        out_h = (int)lround((double)out_w * in->display_height / in->display_width);
    }
    if (out_w < 1) out_w = 1;
    if (out_h < 1) out_h = 1;
    if (out_w > 16384 || out_h > 16384)
        return dv_error_set(DV_EINVAL, "%s: output size %dx%d is out of range (16384 a side)", v->path, out_w, out_h);

    dv_video_sampler *s = calloc(1, sizeof *s);
    if (!s) return dv_error_set(DV_ENOMEM, "%s: out of memory", v->path);
    s->v = v;
    s->plan = pt;
    s->mode = plan->mode;
    s->out_w = out_w;
    s->out_h = out_h;
    s->prev_idx = s->ahead_idx = s->tmp_idx = -1;
    s->last_key_pts = AV_NOPTS_VALUE;
    s->last_pts = in->first_pts;
    s->frame_dur = in->fps_num ? av_rescale_q(1, (AVRational){in->fps_den, in->fps_num}, v->st->time_base) : 1;
    if (s->frame_dur < 1) s->frame_dur = 1;
    s->counting = 1;
    s->end_pts = pt.end_sec >= 0 ? end_ticks_of_sec(in, pt.end_sec) : INT64_MAX;
    s->rgb = malloc((size_t)out_w * (size_t)out_h * 3);
    s->pkt = av_packet_alloc();
    s->tmp = av_frame_alloc();
    s->prev = av_frame_alloc();
    s->ahead = av_frame_alloc();
    if (!s->rgb || !s->pkt || !s->tmp || !s->prev || !s->ahead) {
        rc = dv_error_set(DV_ENOMEM, "%s: out of memory for %dx%d frames", v->path, out_w, out_h);
        goto fail;
    }
    if ((rc = dv_frame_convert_init(out_w, out_h, in->rotation, &s->conv))) goto fail;
    if (s->plan.count > 0 && v->fmt->pb && (v->fmt->pb->seekable & AVIO_SEEKABLE_NORMAL)) {
        // Does the range hold more frames than the plan asks? If not, the plan takes every one.
        int64_t start_pts = ticks_of_sec(in, pt.start_sec);
        s->every_frame = count_range_packets(s, start_pts, s->plan.count + 1) <= s->plan.count;
        v->touched = 1; // rewind below
    }
    if (v->touched) {
        // Packets were read (an earlier sampler, the count above): go back to the first one.
        if (do_seek(s, in->first_pts) != 0 &&
            av_seek_frame(v->fmt, v->stream_index, 0, AVSEEK_FLAG_BYTE | AVSEEK_FLAG_BACKWARD) < 0) {
            rc = dv_error_set(DV_EIO, "%s: cannot rewind to the start for a second pass", v->path);
            goto fail;
        }
        avcodec_flush_buffers(v->dec);
        s->counting = 1;
        s->stats.seeks = 0;
    }
    v->has_sampler = 1;
    s->registered = 1;
    v->touched = 1;
    *out = s;
    return DV_OK;
fail:
    dv_video_sampler_free(s);
    return rc;
}

const dv_plan_times *dv_video_sampler_plan(const dv_video_sampler *s) {
    DV_ASSERT(s);
    return &s->plan;
}

// Fills src_index / index_exact for a frame with pts `pts` and counted index `counted` (-1: none).
static void frame_index(dv_video_sampler *s, int64_t pts, int64_t counted, dv_frame *f) {
    const dv_video_info *in = &s->v->info;
    f->src_index = counted;
    f->index_exact = counted >= 0;
    if (!in->fps_num) return;
    AVRational per_frame = {in->fps_den, in->fps_num};
    AVRational tb = s->v->st->time_base;
    int64_t rel = pts - in->first_pts;
    int64_t est = av_rescale_q(rel, tb, per_frame);
    if (!in->vfr && !s->off_grid) {
        // CFR: the index follows from the pts; check the pts really sits on the grid (1 tick slack for
        // rates the time base cannot represent, e.g. 30000/1001 in 1/1000).
        int64_t back = av_rescale_q(est, per_frame, tb);
        if (llabs(back - rel) <= 1) {
            f->src_index = est;
            f->index_exact = 1;
            return;
        }
        s->off_grid = 1;
        DV_LOG_DEBUG("%s: pts %lld is off the %d/%d fps grid: treating the stream as variable-rate", s->v->path,
                     (long long)pts, in->fps_num, in->fps_den);
    }
    if (counted < 0) {
        f->src_index = est < 0 ? 0 : est;
        f->index_exact = 0;
    }
}

// The plan is over: if it asked for more frames than the range has distinct ones, say so once (unless
// the corrupt-data warning already did: one warning per sampler, and lost frames are its news; or no
// frame came at all, which callers report as their error).
static int finish(dv_video_sampler *s) {
    if (s->plan.count < 0 || s->stats.frames_returned >= s->plan.count || s->stats.frames_missing) return 0;
    s->stats.frames_missing = s->plan.count - s->stats.frames_returned;
    if (!s->warned && s->stats.frames_returned > 0)
        DV_LOG_WARN("%s: %lld frames asked, but only %lld distinct frames lie in %.3f..%.3f s: returned them all",
                    s->v->path, (long long)s->plan.count, (long long)s->stats.frames_returned, s->plan.start_sec,
                    s->plan.end_sec);
    return 0;
}

// The frame after the last one returned (the nearest one not returned yet, as frames go out in time
// order), if it starts before the end of the range: *out = s->ahead, 1; else 0 (none left).
static int next_distinct(dv_video_sampler *s, AVFrame **out) {
    int r = decode_past(s, s->last_emitted_pts);
    if (r < 0) return r;
    if (!s->has_ahead || s->ahead->pts >= s->end_pts) return 0;
    *out = s->ahead;
    return 1;
}

int dv_video_sampler_next(dv_video_sampler *s, dv_frame *frame) {
    DV_ASSERT(s && frame);
    const dv_video_info *in = &s->v->info;
    if (s->plan.count >= 0 && s->k >= s->plan.count) return finish(s);
    // Past the end of the stream every target selects the last frame: stop once it was returned.
    if (s->eof && !s->has_ahead && (!s->has_prev || (s->emitted_any && s->prev->pts == s->last_emitted_pts)))
        return finish(s);
    int64_t k = s->k++;
    AVFrame *f = NULL;
    int r;
    if (s->every_frame && s->emitted_any) {
        // Every frame of the range in turn, whatever the targets: there are no more than asked.
        if ((r = next_distinct(s, &f)) <= 0) return r < 0 ? r : finish(s);
    } else {
        int64_t target = ticks_of_sec(in, s->every_frame ? s->plan.start_sec : dv_plan_times_at(&s->plan, k));
        if ((r = resolve(s, target, &f)) < 0) return r;
        if (r == 0) return finish(s);
    }
    if (s->emitted_any && f->pts <= s->last_emitted_pts) {
        // This target selects a frame already returned (a timestamp gap, a frame rate below the
        // plan's): it takes the next frame instead. None left in the range: neither has any later
        // target (they select frames at or before this one), so the plan is over.
        if ((r = next_distinct(s, &f)) <= 0) return r < 0 ? r : finish(s);
    }
    int rc = dv_frame_convert_run(s->conv, f, s->rgb);
    if (rc) return dv_error_prefix(rc, "%s", s->v->path);
    s->emitted_any = 1;
    s->last_emitted_pts = f->pts;
    s->stats.frames_returned++;
    frame->rgb = s->rgb;
    frame->w = s->out_w;
    frame->h = s->out_h;
    frame->pts = f->pts;
    frame->t_sec = (double)(f->pts - in->first_pts) * in->tb_num / in->tb_den;
    frame->target = k;
    frame_index(s, f->pts, f == s->prev ? s->prev_idx : s->ahead_idx, frame);
    return 1;
}

void dv_video_sampler_get_stats(const dv_video_sampler *s, dv_video_sampler_stats *stats) {
    DV_ASSERT(s && stats);
    *stats = s->stats;
}

void dv_video_sampler_free(dv_video_sampler *s) {
    if (!s) return;
    if (s->registered) s->v->has_sampler = 0;
    dv_frame_convert_free(s->conv);
    av_packet_free(&s->pkt);
    av_frame_free(&s->tmp);
    av_frame_free(&s->prev);
    av_frame_free(&s->ahead);
    free(s->rgb);
    free(s);
}
