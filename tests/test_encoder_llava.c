// test_encoder_llava.c: the llava-1.5 encoder path (LlavaForConditionalGeneration) against Hugging
// Face, with a CLIP tower and with a SigLIP tower.
//
// Fixtures (tests/fixtures/encoder/make_encoder_fixtures.py), three decoded testsrc2 frames each:
//   tiny-llava         CLIP 2 x 32, image 84 / patch 14 -> 36 tokens, layer -2, 'default', F16 weights
//                      in the Hub's layout; CLIPImageProcessor shortest_edge 84 + crop 84 (a 2.9x
//                      antialiased downscale)
//   tiny-llava-siglip  SigLIP 2 x 16 (no class token, patch bias, gelu_pytorch_tanh), image 28 /
//                      patch 7 -> 16 tokens, layers [-2, -1] concatenated, 'full', F32 weights in
//                      transformers 5's layout; SiglipImageProcessor 28x28, no crop
#include "tests/test_encoder_util.h"

int main(void) {
    enc_frames fr;
    if (enc_frames_load(&fr)) {
        DV_CHECK_MSG(0, "cannot load the fixture frames");
        return dv_test_finish();
    }
    enc_check_model("tiny-llava", 36, 16, &fr);
    enc_check_model("tiny-llava-siglip", 16, 16, &fr);
    enc_frames_free(&fr);
    return dv_test_finish();
}
