// test_qwen25vl_parity.c: Qwen2.5-VL end to end against Hugging Face at the library level
// (tests/fixtures/qwenvl/make_qwen25vl_fixture.py): duovid decodes clip.mp4 (video/), samples the frames
// the processor samples, preprocesses and encodes them (encoder/qwen_prep.c, qwen_vit.c), tokenizes the
// ChatML prompt (BPE), splices the video features at the <|video_pad|> run, computes the 3 x N M-RoPE
// positions (equal to HF's get_rope_index), prefills the Qwen2 text model with them (llm/, M-RoPE) and
// must give HF's logits after the prompt (rel L2 < 1e-4) and its 16 greedy tokens, then a second chat
// turn in the same KV cache (text positions after the largest one, as HF's rope_deltas): logits and 8
// greedy tokens. Also: chunked prefill (16 cells a chunk) gives the same, a DuoAttention pattern at
// sparsity 0 gives identical logits, and at 0.5 (sink 4, recent 16 cells) runs deterministically.
#include "llm/dv_tokenizer.h"
#include "tests/test_qwenvl_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/qwenvl/"
#define MODEL FIX "tiny-qwen2_5-vl"
#define V 1207
#define VIDEO_PAD 1206
#define D_MODEL 64
#define MAXN 512

typedef struct ctx {
    int n;                       // prompt length
    int32_t ids[MAXN];           // prompt ids, <|video_pad|> expanded
    int32_t pos[3 * MAXN];       // (3, n)
    float emb[MAXN * D_MODEL];   // (n, D_MODEL) input embeddings, video rows spliced
} ctx;

static dv_llm *open_llm(dv_backend *be, int n_batch, const dv_duo_pattern *pat) { return qv_open_llm(MODEL, be, n_batch, pat); }

// Prefill the prompt (c) or the text tail, then n greedy tokens: ids / logits (n, V).
static int run_turn(dv_llm *m, const ctx *c, const int32_t *tail, int n_tail, int n, int32_t *ids, float *logits) {
    const qv_turn t = c ? (qv_turn){.emb = c->emb, .pos = c->pos, .n = c->n, .hidden = D_MODEL}
                        : (qv_turn){.tail = tail, .n = n_tail, .hidden = D_MODEL};
    return qv_run_turn(m, &t, V, n, ids, logits);
}

int main(void) {
    dv_safetensors *st = NULL;
    if (dv_safetensors_open(dv_test_path(FIX "tiny-qwen2_5-vl.ref.safetensors"), &st)) {
        fprintf(stderr, "FAIL fixture: %s\n", dv_error_message());
        return 1;
    }
    int64_t n_ids = 0, n_ids2 = 0, n_g = 0, n_g2 = 0;
    const int32_t *want_ids = qv_ref_ids(st, "input_ids", &n_ids), *want_ids2 = qv_ref_ids(st, "input_ids_turn2", &n_ids2);
    const int32_t *want_g = qv_ref_ids(st, "greedy_ids", &n_g), *want_g2 = qv_ref_ids(st, "greedy_ids_turn2", &n_g2);
    const char *prompt = dv_safetensors_metadata(st, "prompt");
    if (!want_ids || !want_ids2 || !want_g || !want_g2 || !prompt || n_ids > MAXN || n_g != 16 || n_g2 != 8) {
        fprintf(stderr, "FAIL fixture tensors\n");
        return 1;
    }
    const int32_t *want_pos = qv_ref(st, "position_ids", DV_DTYPE_I32, 2, (int64_t[]){3, n_ids});
    const float *want_logits = qv_ref(st, "greedy_logits", DV_DTYPE_F32, 2, (int64_t[]){16, V});
    const float *want_logits2 = qv_ref(st, "greedy_logits_turn2", DV_DTYPE_F32, 2, (int64_t[]){8, V});
    const float *want_feat = qv_ref(st, "video_features", DV_DTYPE_F32, 2, (int64_t[]){60, D_MODEL});
    if (!want_pos || !want_logits || !want_logits2 || !want_feat) return 1;

    // ---- the video: our frames, our tower ----
    static float feat[MAXN * D_MODEL];
    qv_clip clip;
    if (qv_encode_clip(MODEL, &clip, feat, NULL)) return 1;
    const int gt = clip.gt, gh = clip.gh, gw = clip.gw;
    const double spg = clip.c.temporal_patch / clip.c.fps; // HF: temporal_patch_size / sampled fps
    qv_clip_free(&clip);
    const int n_video = gt * (gh / 2) * (gw / 2);
    DV_CHECK(n_video == 60);
    dv_test_close("video features (duovid frames)", feat, want_feat, (size_t)n_video * D_MODEL, 1e-4);

    // ---- the prompt: BPE ids with <|video_pad|> expanded where the processor puts the video ----
    static ctx c;
    dv_tokenizer *tok = NULL;
    DV_CHECK_MSG(dv_tokenizer_open(dv_test_path(MODEL), &tok) == 0, "%s", dv_error_message());
    int32_t raw[MAXN];
    int n_raw = 0;
    DV_CHECK(tok && dv_tokenizer_encode(tok, prompt, 0, raw, MAXN, &n_raw) == 0);
    int vstart = -1;
    for (int i = 0; i < n_raw; i++) {
        if (raw[i] == VIDEO_PAD && vstart < 0) {
            vstart = c.n;
            for (int k = 0; k < n_video; k++) c.ids[c.n++] = VIDEO_PAD;
        } else {
            c.ids[c.n++] = raw[i];
        }
    }
    DV_CHECK(vstart > 0 && c.n == n_ids && !memcmp(c.ids, want_ids, (size_t)c.n * sizeof(int32_t)));
    // positions: text 0 .. vstart-1, the video (t scaled by tokens_per_second x seconds per grid), text
    const double tps = 2.0; // the fixture's vision_config.tokens_per_second
    for (int i = 0; i < vstart; i++) c.pos[i] = c.pos[n_ids + i] = c.pos[2 * n_ids + i] = i;
    int next = dv_qwen_video_positions(vstart, gt, gh, gw, 2, tps * spg, c.pos + vstart, n_ids);
    for (int i = vstart + n_video; i < c.n; i++, next++) c.pos[i] = c.pos[n_ids + i] = c.pos[2 * n_ids + i] = next;
    DV_CHECK(!memcmp(c.pos, want_pos, (size_t)(3 * n_ids) * sizeof(int32_t)));

    dv_backend *be = dv_backend_cpu_init(2);
    dv_llm *m = open_llm(be, 256, NULL);
    if (!m) return 1;
    // input embeddings: the token table's rows, the video's rows replaced
    DV_CHECK(qv_embed_ids(m, be, c.ids, c.n, D_MODEL, c.emb) == 0);
    memcpy(c.emb + (size_t)vstart * D_MODEL, feat, (size_t)n_video * D_MODEL * sizeof(float));

    // ---- turn 1 and turn 2 in one cache ----
    static int32_t g[16], g2[8];
    static float lg[16 * V], lg2[8 * V], ref_lg[16 * V];
    DV_CHECK(run_turn(m, &c, NULL, 0, 16, g, lg) == 0);
    dv_test_close("logits after the prompt", lg, want_logits, V, 1e-4);
    dv_test_close("greedy logits (16 steps)", lg, want_logits, 16 * (size_t)V, 1e-4);
    DV_CHECK(!memcmp(g, want_g, sizeof g));
    DV_CHECK(dv_llm_next_position(m) == c.pos[n_ids - 1] + 1 + 16);
    const int n_tail = (int)(n_ids2 - n_ids - 16);
    DV_CHECK(n_tail > 0 && !memcmp(want_ids2, want_ids, (size_t)n_ids * 4) && !memcmp(want_ids2 + n_ids, g, sizeof g));
    DV_CHECK(run_turn(m, NULL, want_ids2 + n_ids + 16, n_tail, 8, g2, lg2) == 0);
    dv_test_close("turn 2 logits (same cache)", lg2, want_logits2, 8 * (size_t)V, 1e-4);
    DV_CHECK(!memcmp(g2, want_g2, sizeof g2));
    memcpy(ref_lg, lg, sizeof lg);
    dv_llm_free(m);

    // ---- chunked prefill: 16 cells per chunk ----
    m = open_llm(be, 16, NULL);
    if (m && run_turn(m, &c, NULL, 0, 16, g, lg) == 0) {
        dv_test_close("chunked prefill logits", lg, want_logits, 16 * (size_t)V, 1e-4);
        DV_CHECK(!memcmp(g, want_g, sizeof g));
        // a rewind to the prompt resumes text at the same position
        DV_CHECK(dv_llm_rewind(m, c.n) == 0 && dv_llm_next_position(m) == c.pos[n_ids - 1] + 1);
        // the state stream carries the positions: a loaded context continues exactly as the original
        FILE *f = tmpfile();
        dv_llm *m2 = open_llm(be, 16, NULL);
        DV_CHECK(f && m2 && dv_llm_state_write(m, dv_io_write_stdio, f) == 0 && ftell(f) == dv_llm_state_bytes(m));
        if (f) rewind(f);
        DV_CHECK(f && m2 && dv_llm_state_read(m2, dv_io_read_stdio, f, "tmpfile") == 0);
        static int32_t ga[8], gb[8];
        static float la[8 * V], lb[8 * V];
        if (m2 && dv_llm_next_position(m2) == dv_llm_next_position(m) && run_turn(m, NULL, g, 1, 8, ga, la) == 0 &&
            run_turn(m2, NULL, g, 1, 8, gb, lb) == 0) {
            DV_CHECK_MSG(!memcmp(la, lb, sizeof la) && !memcmp(ga, gb, sizeof ga), "decode after a state load differs");
            dv_test_close("greedy logits after a state load", lb, want_logits + V, 8 * (size_t)V, 1e-4);
        } else {
            DV_CHECK_MSG(0, "state round trip: %s", dv_error_message());
        }
        if (f) fclose(f);
        dv_llm_free(m2);
    }
    dv_llm_free(m);

    // ---- DuoAttention: sparsity 0 is full attention; 0.5 runs and repeats itself ----
    const qv_turn prompt_turn = (qv_turn){.emb = c.emb, .pos = c.pos, .n = c.n, .hidden = D_MODEL};
    qv_check_duo(be, MODEL, 2, 2, &prompt_turn, V, ref_lg, want_g);
    dv_tokenizer_free(tok);
    dv_backend_free(be);
    dv_safetensors_free(st);
    return dv_test_finish();
}
