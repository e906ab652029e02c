#!/usr/bin/env bash
# demo.sh: set up (scripts/setup.sh) and run duovid's main job on the embedded default: answer a
# question about assets/video/demo.mp4 (10 s, a box moving over a test pattern) with the tiny
# LLaVA-NeXT-Video model in assets/models/tiny-llava-next-video, with DuoAttention: the pattern in
# assets/patterns/tiny-llava-next-video (written by `duovid identify` for that model; the plan line
# says how many KV heads stream). That model has random weights, so its answer is meaningless; it
# proves the whole path (FFmpeg decode, vision encoder, DuoAttention LLM, context cache) runs. Extra
# arguments go to `duovid ask` (e.g. --json, --timestamps).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cat >&2 <<'NOTE'
note: assets/models/tiny-llava-next-video has random weights: its answer is meaningless.
      With a real model (about 14 GB):
        build/duovid pull llava-hf/LLaVA-NeXT-Video-7B-hf -o models/LLaVA-NeXT-Video-7B-hf
        build/duovid ask -m models/LLaVA-NeXT-Video-7B-hf -v YOUR_VIDEO.mp4 "What happens in this video?"
NOTE
exec build/duovid ask -m assets/models/tiny-llava-next-video -v assets/video/demo.mp4 --fps 1 -n 32 \
  --duo assets/patterns/tiny-llava-next-video \
  "$@" "What is moving in this video?"
