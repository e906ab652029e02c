// conversation.c: a conversation's whole context saved to host memory and restored (dv_vlm_state_*
// in dv_vlm.h), so one model can serve many conversations in turn. The KV cache goes through the same
// byte stream as the context cache file (dv_llm_state_write/read), into an open_memstream buffer.
#include "vlm/vlm_internal.h"

#include "core/dv_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dv_vlm_state {
    char *kv;             // (kv_len) the dv_llm_state_write stream, owned
    size_t kv_len;
    int64_t video_tokens; // the context length right after the video
    int video_position;   // M-RoPE: the first question's text position
    double *frame_t;      // (n_frames) times of the frames in the context, owned
    int64_t n_frames;
};

int dv_vlm_state_save(dv_vlm *v, dv_vlm_state **out) {
    *out = NULL;
    dv_vlm_state *s = calloc(1, sizeof *s);
    if (!s) return dv_error_set(DV_ENOMEM, "conversation state: out of memory");
    const double *ft = dv_vlm_frame_times(v, &s->n_frames);
    s->video_tokens = dv_vlm_video_tokens(v);
    s->video_position = dv_vlm_video_position(v);
    s->frame_t = malloc((size_t)(s->n_frames ? s->n_frames : 1) * sizeof *s->frame_t);
    FILE *f = s->frame_t ? open_memstream(&s->kv, &s->kv_len) : NULL;
    if (!f) {
        dv_vlm_state_free(s);
        return dv_error_set(DV_ENOMEM, "conversation state: out of memory");
    }
    if (s->n_frames) memcpy(s->frame_t, ft, (size_t)s->n_frames * sizeof *ft);
    int rc = dv_llm_state_write(dv_vlm_llm(v), dv_io_write_stdio, f);
    if (fclose(f) && !rc) rc = dv_error_set(DV_ENOMEM, "conversation state: out of memory");
    if (rc) {
        dv_vlm_state_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int dv_vlm_state_restore(dv_vlm *v, const dv_vlm_state *s) {
    FILE *f = fmemopen(s->kv, s->kv_len, "rb");
    if (!f) return dv_error_set(DV_ENOMEM, "conversation state: cannot read it back");
    int rc = dv_llm_state_read(dv_vlm_llm(v), dv_io_read_stdio, f, "conversation state");
    fclose(f);
    if (!rc) rc = dv_vlm_set_video_context(v, s->video_tokens, s->frame_t, s->n_frames);
    if (!rc) dv_vlm_set_video_position(v, s->video_position);
    if (rc) dv_llm_rewind(dv_vlm_llm(v), 0);
    return rc;
}

size_t dv_vlm_state_bytes(const dv_vlm_state *s) {
    return s ? sizeof *s + s->kv_len + (size_t)s->n_frames * sizeof *s->frame_t : 0;
}

void dv_vlm_state_free(dv_vlm_state *s) {
    if (!s) return;
    free(s->kv);
    free(s->frame_t);
    free(s);
}
