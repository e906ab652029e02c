// test_encoder_llava_next_video.c: the LLaVA-NeXT-Video encoder path against Hugging Face.
//
// Fixture (tests/fixtures/encoder/make_encoder_fixtures.py): a tiny random
// LlavaNextVideoForConditionalGeneration (CLIP tower 2 x 32, image 168, patch 14 -> 12x12 patches,
// layer -2, 'default', 2x2 average pooling -> 36 tokens, gelu projector to 16, BF16 weights in the
// Hub's tensor layout), its video processor (shortest_edge 180, crop 168), three decoded testsrc2
// frames, and what the HF video processor and get_video_features produce from them.
#include "tests/test_encoder_util.h"

int main(void) {
    enc_frames fr;
    if (enc_frames_load(&fr)) {
        DV_CHECK_MSG(0, "cannot load the fixture frames");
        return dv_test_finish();
    }
    enc_check_model("tiny-llava-next-video", 36, 16, &fr);
    enc_frames_free(&fr);
    return dv_test_finish();
}
