#!/usr/bin/env bash
# demo.sh: set up (scripts/setup.sh) and run duovid's main job on the embedded default.
# Today that is a text generation with the tiny random model in assets/models/tiny-llama (its
# output is meaningless: the weights are random); extra arguments go to `duovid generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "note: assets/models/tiny-llama has random weights, so its text is meaningless; see README for real models." >&2
exec build/duovid generate -m assets/models/tiny-llama -p "Once upon a time" -n 32 --seed 1 "$@"
