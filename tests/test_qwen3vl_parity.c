// test_qwen3vl_parity.c: Qwen3-VL end to end against Hugging Face at the library level
// (tests/fixtures/qwenvl/make_qwen3vl_fixture.py): duovid decodes clip.mp4 (video/), samples the frames
// Qwen3VLVideoProcessor samples (linspace, an odd count padded), preprocesses them (video-volume
// smart_resize, patch 16) and encodes them (encoder/qwen_vit.c: the interpolated position table,
// LayerNorm/GELU blocks, the merger and two DeepStack mergers); builds the prompt as Qwen3VLProcessor
// does ("<t seconds>" before each frame's <|vision_start|> <|video_pad|>... <|vision_end|>), computes
// the 3 x N positions (Qwen3-VL get_rope_index: each frame its own grid), prefills the Qwen3 text
// model (q/k norm, interleaved M-RoPE) with the DeepStack features added after its first two layers
// at the video rows, and must give HF's pixels, grid, features, ids, positions, the logits after the
// prompt (rel L2 < 1e-4) and 16 greedy tokens, then a second chat turn in the same KV cache. Also:
// without the DeepStack rows the logits differ (they are used), chunked prefill (16 cells a chunk,
// splitting frames) gives the same, a DuoAttention pattern at sparsity 0 gives identical logits, and
// at 0.5 (sink 4, recent 16 cells) runs deterministically.
#include "llm/dv_tokenizer.h"
#include "tests/test_qwenvl_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/qwenvl/"
#define MODEL FIX "tiny-qwen3-vl"
#define V 1207
#define VISION_START 1203
#define VISION_END 1204
#define VIDEO_PAD 1206
#define D_MODEL 64
#define N_DEEP 2
#define NT 48 // merged tokens: 4 temporal patches x 3 x 4
#define MAXN 512

typedef struct ctx {
    int n;                              // prompt length
    int32_t ids[MAXN];                  // prompt ids, the video expanded frame by frame
    int32_t pos[3 * MAXN];              // (3, n)
    float emb[MAXN * D_MODEL];          // (n, D_MODEL) input embeddings, video rows spliced
    float add[N_DEEP * MAXN * D_MODEL]; // (N_DEEP, n, D_MODEL) DeepStack rows (zeros at text rows)
} ctx;

static dv_llm *open_llm(dv_backend *be, int n_batch, const dv_duo_pattern *pat) { return qv_open_llm(MODEL, be, n_batch, pat); }

// Prefill the prompt (c; DeepStack rows unless no_deep) or the text tail, then n greedy tokens.
static int run_turn(dv_llm *m, const ctx *c, int no_deep, const int32_t *tail, int n_tail, int n, int32_t *ids,
                    float *logits) {
    const qv_turn t = c ? (qv_turn){.emb = c->emb, .pos = c->pos, .add = no_deep ? NULL : c->add, .n_add = N_DEEP,
                                    .n = c->n, .hidden = D_MODEL}
                        : (qv_turn){.tail = tail, .n = n_tail, .hidden = D_MODEL};
    return qv_run_turn(m, &t, V, n, ids, logits);
}

// The prompt as Qwen3VLProcessor expands it: raw ids with one <|video_pad|>, which becomes, per temporal
// patch k, the tokens of "<t_k seconds>", <|vision_start|>, per_frame pads, <|vision_end|>; positions
// text-by-text and frame-by-frame (dv_qwen3_video_positions). Returns 0 and the first video row.
static int build_prompt(dv_tokenizer *tok, const int32_t *raw, int n_raw, const double *ts, int gt, int gh, int gw,
                        ctx *c, int *n_text_before) {
    const int per_frame = (gh / 2) * (gw / 2);
    int video_at = -1, n_frame_tok[QV_MAX_FRAMES];
    int32_t ts_ids[QV_MAX_FRAMES][16];
    c->n = 0;
    for (int i = 0; i < n_raw; i++) {
        if (raw[i] != VIDEO_PAD) {
            c->ids[c->n++] = raw[i];
            continue;
        }
        DV_CHECK(video_at < 0);
        video_at = c->n;
        for (int k = 0; k < gt; k++) {
            char text[64];
            dv_qwen_timestamp_text(ts[k], text, sizeof text);
            if (dv_tokenizer_encode(tok, text, 0, ts_ids[k], 16, &n_frame_tok[k])) return -1;
            memcpy(c->ids + c->n, ts_ids[k], (size_t)n_frame_tok[k] * sizeof(int32_t));
            c->n += n_frame_tok[k];
            c->ids[c->n++] = VISION_START;
            for (int j = 0; j < per_frame; j++) c->ids[c->n++] = VIDEO_PAD;
            c->ids[c->n++] = VISION_END;
            n_text_before[k] = n_frame_tok[k] + 1;
        }
    }
    if (video_at < 0) return -1;
    // positions: text, the video frame by frame, text after the largest
    const int64_t n = c->n;
    for (int i = 0; i < video_at; i++) c->pos[i] = c->pos[n + i] = c->pos[2 * n + i] = i;
    int next = dv_qwen3_video_positions(video_at, gt, gh, gw, 2, n_text_before, 1, c->pos + video_at, n);
    int i = video_at;
    for (int k = 0; k < gt; k++) i += n_text_before[k] + per_frame + 1;
    for (; i < c->n; i++, next++) c->pos[i] = c->pos[n + i] = c->pos[2 * n + i] = next;
    return 0;
}

int main(void) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-qwen3-vl.ref.safetensors"), &st)) {
        fprintf(stderr, "FAIL fixture: %s\n", dv_error_message());
        return 1;
    }
    int64_t n_ids = 0, n_ids2 = 0, n_g = 0, n_g2 = 0, n_idx = 0;
    const int32_t *want_ids = qv_ref_ids(st, "input_ids", &n_ids), *want_ids2 = qv_ref_ids(st, "input_ids_turn2", &n_ids2);
    const int32_t *want_g = qv_ref_ids(st, "greedy_ids", &n_g), *want_g2 = qv_ref_ids(st, "greedy_ids_turn2", &n_g2);
    const int32_t *want_idx = qv_ref_ids(st, "frame_indices", &n_idx);
    const char *prompt = dv_safetensors_metadata(st, "prompt");
    if (!want_ids || !want_ids2 || !want_g || !want_g2 || !want_idx || !prompt || n_ids > MAXN || n_g != 16 ||
        n_g2 != 8 || n_idx != 7) {
        fprintf(stderr, "FAIL fixture tensors\n");
        return 1;
    }
    const int32_t *want_pos = qv_ref(st, "position_ids", DV_DTYPE_I32, 2, (int64_t[]){3, n_ids});
    const int32_t *want_pos2 = qv_ref(st, "position_ids_turn2", DV_DTYPE_I32, 2, (int64_t[]){3, n_ids2});
    const int32_t *want_grid = qv_ref(st, "video_grid_thw", DV_DTYPE_I32, 1, (int64_t[]){3});
    const char *ts_text = dv_safetensors_metadata(st, "timestamps"); // Python reprs: exact doubles
    const float *want_pv = qv_ref(st, "pixel_values_videos", DV_DTYPE_F32, 2, (int64_t[]){4 * NT, 1536});
    const float *want_logits = qv_ref(st, "greedy_logits", DV_DTYPE_F32, 2, (int64_t[]){16, V});
    const float *want_logits2 = qv_ref(st, "greedy_logits_turn2", DV_DTYPE_F32, 2, (int64_t[]){8, V});
    const float *want_feat = qv_ref(st, "video_features", DV_DTYPE_F32, 2, (int64_t[]){NT, D_MODEL});
    const float *want_deep = qv_ref(st, "deepstack_features", DV_DTYPE_F32, 3, (int64_t[]){N_DEEP, NT, D_MODEL});
    if (!want_pos || !want_pos2 || !want_grid || !ts_text || !want_pv || !want_logits || !want_logits2 || !want_feat ||
        !want_deep)
        return 1;

    // ---- the video: our frames, our preprocessing, our tower ----
    static float feat[NT * D_MODEL], deep[N_DEEP * NT * D_MODEL];
    qv_clip clip;
    if (qv_encode_clip(MODEL, &clip, feat, deep)) return 1;
    const int gt = clip.gt, gh = clip.gh, gw = clip.gw;
    DV_CHECK(clip.c.kind == DV_QWEN_PREP_QWEN3_VL && clip.n == 7 && !memcmp(clip.idx, want_idx, 7 * sizeof(int32_t)));
    DV_CHECK(gt == want_grid[0] && gh == want_grid[1] && gw == want_grid[2]);
    double ts[QV_MAX_FRAMES];
    dv_qwen_frame_timestamps(&clip.c, clip.idx, clip.n, clip.video_fps, ts);
    char *end = (char *)ts_text;
    for (int k = 0; k < 4; k++) {
        const double want = strtod(end, &end);
        DV_CHECK_MSG(ts[k] == want, "timestamp %d: %.17g, HF %.17g", k, ts[k], want);
    }
    // pixel values: every value the processor's (0/255 apart: the same uint8 pixels, the same arithmetic)
    double max_pv = 0;
    for (size_t i = 0; i < (size_t)4 * NT * 1536; i++) max_pv = fmax(max_pv, fabs(clip.patches[i] - want_pv[i]));
    printf("     pixel values: max |duovid - HF| %.3g\n", max_pv);
    DV_CHECK(max_pv == 0);
    qv_clip_free(&clip);
    dv_test_close("video features (duovid frames)", feat, want_feat, (size_t)NT * D_MODEL, 1e-4);
    dv_test_close("deepstack features", deep, want_deep, (size_t)N_DEEP * NT * D_MODEL, 1e-4);

    // ---- the prompt: BPE ids, the video expanded with its timestamps, the positions ----
    static ctx c;
    dv_tokenizer *tok = NULL;
    DV_CHECK_MSG(dv_tokenizer_open(dv_test_path(MODEL), &tok) == 0, "%s", dv_error_message());
    int32_t raw[MAXN];
    int n_raw = 0, n_before[QV_MAX_FRAMES];
    DV_CHECK(tok && dv_tokenizer_encode(tok, prompt, 0, raw, MAXN, &n_raw) == 0);
    DV_CHECK(build_prompt(tok, raw, n_raw, ts, gt, gh, gw, &c, n_before) == 0);
    DV_CHECK(c.n == n_ids && !memcmp(c.ids, want_ids, (size_t)c.n * sizeof(int32_t)));
    DV_CHECK(!memcmp(c.pos, want_pos, (size_t)(3 * n_ids) * sizeof(int32_t)));

    dv_backend *be = dv_backend_cpu_init(2);
    dv_llm *m = open_llm(be, 256, NULL);
    if (!m) return 1;
    // input embeddings: the token table's rows, the video rows replaced in order; DeepStack rows there
    DV_CHECK(qv_embed_ids(m, be, c.ids, c.n, D_MODEL, c.emb) == 0);
    for (int i = 0, r = 0; i < c.n; i++) {
        if (c.ids[i] != VIDEO_PAD) continue;
        memcpy(c.emb + (size_t)i * D_MODEL, feat + (size_t)r * D_MODEL, D_MODEL * sizeof(float));
        for (int l = 0; l < N_DEEP; l++)
            memcpy(c.add + ((size_t)l * c.n + i) * D_MODEL, deep + ((size_t)l * NT + r) * D_MODEL, D_MODEL * sizeof(float));
        r++;
    }

    // ---- turn 1 and turn 2 in one cache ----
    static int32_t g[16], g2[8];
    static float lg[16 * V], lg2[8 * V], ref_lg[16 * V];
    DV_CHECK(run_turn(m, &c, 0, NULL, 0, 16, g, lg) == 0);
    dv_test_close("logits after the prompt", lg, want_logits, V, 1e-4);
    dv_test_close("greedy logits (16 steps)", lg, want_logits, 16 * (size_t)V, 1e-4);
    DV_CHECK(!memcmp(g, want_g, sizeof g));
    const int n_tail = (int)(n_ids2 - n_ids - 16);
    DV_CHECK(n_tail > 0 && !memcmp(want_ids2, want_ids, (size_t)n_ids * 4) && !memcmp(want_ids2 + n_ids, g, sizeof g));
    // the tail continues at HF's turn-2 position (text after the largest one, as its rope_deltas)
    DV_CHECK(dv_llm_next_position(m) == want_pos2[n_ids + 16]);
    DV_CHECK(run_turn(m, NULL, 0, want_ids2 + n_ids + 16, n_tail, 8, g2, lg2) == 0);
    dv_test_close("turn 2 logits (same cache)", lg2, want_logits2, 8 * (size_t)V, 1e-4);
    DV_CHECK(!memcmp(g2, want_g2, sizeof g2));
    memcpy(ref_lg, lg, sizeof lg);
    dv_llm_free(m);

    // ---- DeepStack is used: without its rows the logits after the prompt move ----
    m = open_llm(be, 256, NULL);
    if (m && run_turn(m, &c, 1, NULL, 0, 1, g, lg) == 0) {
        double num = 0, den = 0;
        for (int i = 0; i < V; i++) num += (lg[i] - want_logits[i]) * (lg[i] - want_logits[i]), den += want_logits[i] * want_logits[i];
        printf("     without DeepStack: rel L2 of the prompt logits %.3g\n", sqrt(num / den));
        DV_CHECK(sqrt(num / den) > 1e-2);
    }
    dv_llm_free(m);

    // ---- chunked prefill: 16 cells per chunk (chunks split frames and their DeepStack rows) ----
    m = open_llm(be, 16, NULL);
    if (m && run_turn(m, &c, 0, NULL, 0, 16, g, lg) == 0) {
        dv_test_close("chunked prefill logits", lg, want_logits, 16 * (size_t)V, 1e-4);
        DV_CHECK(!memcmp(g, want_g, sizeof g));
    }
    dv_llm_free(m);

    // ---- DuoAttention: sparsity 0 is full attention; 0.5 runs and repeats itself ----
    const qv_turn prompt_turn = (qv_turn){.emb = c.emb, .pos = c.pos, .add = c.add, .n_add = N_DEEP, .n = c.n, .hidden = D_MODEL};
    qv_check_duo(be, MODEL, 3, 2, &prompt_turn, V, ref_lg, want_g);
    dv_tokenizer_free(tok);
    dv_backend_free(be);
    dv_safetensors_free(st);
    return dv_test_finish();
}
