// video_context.c: "get a video's context from the cache or build it" (dv_vlm_load_video): open
// the video, plan the frames that fit, load the .dvctx file whose key matches, else decode, encode
// and prefill, and save the result for the next run.
#include "vlm/vlm_internal.h"

#include "core/dv_error.h"
#include "core/dv_log.h"
#include "core/dv_progress.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

// The cache file's info text: the frames' times, so a cached context reports what it holds.
static char *context_info(dv_vlm *v, const dv_vlm_video *vc) {
    cJSON *j = cJSON_CreateObject(), *t = cJSON_CreateArray();
    int64_t n;
    const double *ft = dv_vlm_frame_times(v, &n);
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(t, cJSON_CreateNumber(ft[i]));
    cJSON_AddItemToObject(j, "frame_times", t);
    cJSON_AddNumberToObject(j, "video_tokens", (double)dv_vlm_video_tokens(v));
    cJSON_AddNumberToObject(j, "text_position", dv_vlm_video_position(v));
    cJSON_AddNumberToObject(j, "build_seconds", vc->stats.t_total);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

// Restores the frame list from a cache file's info text; 0 when it is not what we wrote.
static int restore_info(dv_vlm *v, const char *info, int64_t n_past, dv_vlm_video *vc) {
    cJSON *j = cJSON_Parse(info);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "frame_times");
    const cJSON *vt = cJSON_GetObjectItemCaseSensitive(j, "video_tokens");
    int ok = cJSON_IsArray(t) && cJSON_IsNumber(vt) && (int64_t)vt->valuedouble == n_past;
    int64_t n = ok ? cJSON_GetArraySize(t) : 0;
    double *ft = ok ? malloc((size_t)(n ? n : 1) * sizeof *ft) : NULL;
    ok = ok && ft;
    for (int64_t i = 0; ok && i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(t, (int)i);
        ok = cJSON_IsNumber(e);
        if (ok) ft[i] = e->valuedouble;
    }
    if (ok) {
        ok = dv_vlm_set_video_context(v, n_past, ft, n) == 0;
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(j, "text_position");
        dv_vlm_set_video_position(v, cJSON_IsNumber(tp) ? (int)tp->valuedouble : (int)n_past);
        vc->stats.frames = n;
        vc->stats.context_tokens = n_past;
        const cJSON *bs = cJSON_GetObjectItemCaseSensitive(j, "build_seconds");
        if (cJSON_IsNumber(bs)) DV_LOG_DEBUG("cached context was built in %.2f s", bs->valuedouble);
    }
    free(ft);
    cJSON_Delete(j);
    return ok;
}

int dv_vlm_load_video(dv_vlm *v, const char *video_path, const dv_vlm_video_opts *o, const dv_vlm_callbacks *cb,
                      dv_vlm_video *out) {
    memset(out, 0, sizeof *out);
    dv_video *video = NULL;
    dv_llm *llm = dv_vlm_llm(v);
    const int cache_on = dv_vlm_cache_on(v);
    int rc;
    if ((rc = dv_video_open(video_path, NULL, &video))) return rc;
    out->info = *dv_video_get_info(video);
    if ((rc = dv_vlm_plan_video(v, &out->info, o, &out->plan))) {
        dv_error_prefix(rc, "%s", video_path);
        goto done;
    }
    if (cb && cb->on_plan) {
        char text[1024];
        dv_vlm_plan_text(v, &out->plan, text, sizeof text);
        cb->on_plan(cb->user, &out->plan, text);
    }

    dv_ctx_key key;
    memset(&key, 0, sizeof key);
    if (cache_on) {
        if ((rc = dv_vlm_cache_key(v, video_path, &out->plan, o->timestamps, &key)) ||
            (rc = dv_ctx_cache_path(dv_vlm_cache_dir(v), &key, out->cache_path, sizeof out->cache_path)))
            goto done;
        char *info = NULL;
        double t0 = dv_time_now();
        int r = dv_ctx_cache_load(out->cache_path, &key, llm, &info);
        if (r < 0) {
            rc = r;
            goto done;
        }
        if (r == 1 && restore_info(v, info, dv_llm_n_past(llm), out)) {
            out->cache_hit = 1;
            out->t_cache = dv_time_now() - t0;
            DV_LOG_INFO("context cache hit: %s (%lld tokens, %lld frames) in %.2f s", out->cache_path,
                        (long long)dv_llm_n_past(llm), (long long)out->stats.frames, out->t_cache);
            free(info);
            goto done;
        }
        if (r == 1) {
            DV_LOG_WARN("%s: context cache file has no usable frame list; ignored, rebuilding", out->cache_path);
            dv_llm_rewind(llm, 0);
        }
        free(info);
    }
    if ((rc = dv_vlm_prefill_video(v, video, &out->plan, o->timestamps, cb, &out->stats))) {
        dv_error_prefix(rc, "%s", video_path);
        goto done;
    }
    DV_LOG_INFO("video context: %lld frames, %lld tokens in %.2f s (decode %.2f s, encode %.2f s, prefill %.2f s)",
                (long long)out->stats.frames, (long long)out->stats.context_tokens, out->stats.t_total,
                out->stats.t_decode, out->stats.t_encode, out->stats.t_prefill);
    if (cache_on) {
        char *info = context_info(v, out);
        double t0 = dv_time_now();
        int r = info ? dv_ctx_cache_save(out->cache_path, &key, info, llm) : DV_ENOMEM;
        out->t_cache = dv_time_now() - t0;
        free(info);
        // a cache that cannot be written costs the next run time, not this answer
        if (r) DV_LOG_WARN("context cache not written: %s", dv_error_message());
        else DV_LOG_DEBUG("context cache written: %s in %.2f s", out->cache_path, out->t_cache);
    }
done:
    dv_video_free(video);
    return rc;
}
