#!/usr/bin/env bash
# qwenvl_eval.sh: `eval vniah` and `identify` on the tiny Qwen2.5-VL and Qwen3-VL checkpoints
# (tests/fixtures/qwenvl; random weights: the plumbing, not accuracy). vniah: the needle replaces the
# planned frame at each depth of the processor's plan (8 frames at 2 fps / 7 at Qwen3-VL's rule),
# it reaches the model (an answer other than the plain video's) and the same run repeats exactly;
# Qwen2.5-VL: the video's own last frame as the needle at depth 1 gives the plain video's answer
# (same pixels, same place); --expect counts an answer holding the text. identify --method deviation
# scores the language model's KV heads on text and its pattern drives a vniah run with --duo.
#   bash tests/cli/qwenvl_eval.sh build/duovid
set -u
bin=${1:?usage: qwenvl_eval.sh path/to/duovid}
clip=tests/fixtures/vlm/clip.mp4
needle=tests/fixtures/encoder/frame0.png
q="What is shown in the frame that does not belong to the video?"
for m in tiny-qwen2_5-vl tiny-qwen3-vl; do
  [ -f tests/fixtures/qwenvl/$m/model.safetensors ] || { echo "SKIPPED: tests/fixtures/qwenvl/$m missing"; exit 77; }
done
[ -f "$clip" ] || { echo "SKIPPED: $clip missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh"
export DUOVID_LOG=warn
common=(-n 16 --kv-type f32 --no-cache -t 1)
answer() { # JSON_FILE INDEX [N]: that depth's answer (its first N characters)
  python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["answer"]
print(a[:int(sys.argv[3])] if len(sys.argv) > 3 else a)' "$@"
}

# m frames mid last: the fixture, its plan's frame count, the frames at depths 0.5 and 1
for spec in "tiny-qwen2_5-vl 8 4 7" "tiny-qwen3-vl 7 3 6"; do
  read -r name n mid last <<<"$spec"
  model=tests/fixtures/qwenvl/$name
  plain=$("$bin" ask -m $model -v $clip "${common[@]}" --temp 0 "$q" 2>"$tmp/err"); rc=$?
  [ $rc = 0 ] && [ -n "$plain" ]; check "$name: ask answers" $?
  [ $rc = 0 ] || sed 's/^/     | /' "$tmp/err"

  "$bin" eval vniah -m $model -v $clip --needle $needle --depths 0,0.5,1 "${common[@]}" --question "$q" --json \
    >"$tmp/v1" 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && grep -q "\"results\":\[{\"depth\":0,\"frame\":0,\"frames\":$n,.*{\"depth\":0.5,\"frame\":$mid,\"frames\":$n,.*{\"depth\":1,\"frame\":$last,\"frames\":$n," "$tmp/v1"
  check "$name: vniah --json, the needle as frame 0, $mid and $last of $n" $?
  [ $rc = 0 ] || sed 's/^/     | /' "$tmp/err"
  differs=1
  for i in 0 1 2; do [ "$(answer "$tmp/v1" $i 2>/dev/null)" != "$plain" ] && differs=0; done
  check "$name: the needle changes the answer at some depth" $differs
  "$bin" eval vniah -m $model -v $clip --needle $needle --depths 0,0.5,1 "${common[@]}" --question "$q" --json \
    >"$tmp/v2" 2>/dev/null
  cmp -s "$tmp/v1" "$tmp/v2"; check "$name: vniah repeats exactly" $?

  first=$(answer "$tmp/v1" 0 3)
  "$bin" eval vniah -m $model -v $clip --needle $needle --depths 0 "${common[@]}" --question "$q" --expect "$first" \
    >"$tmp/t" 2>/dev/null
  grep -q "^depth 0.00: needle as frame 0 of $n: .*\[found\]$" "$tmp/t" && grep -q "^accuracy 100.0% (1 of 1 depths)" "$tmp/t"
  ok=$?; check "$name: vniah --expect counts the answer holding it" $ok
  [ $ok = 0 ] || sed 's/^/     | /' "$tmp/t"

  "$bin" identify -m $model -o "$tmp/pat-$name" --method deviation --length 64 --passkeys 2 --passkey-words 3 \
    --sink 4 --recent 8 -t 1 >"$tmp/id" 2>"$tmp/err"; rc=$?
  layers=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' $model/config.json 2>/dev/null ||
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text_config"]["num_hidden_layers"])' $model/config.json)
  [ $rc = 0 ] && grep -q "$layers layers x 2 KV heads (deviation)" "$tmp/id" &&
    [ "$(grep -cv '^#' "$tmp/pat-$name/full_attention_heads.tsv")" = "$layers" ]
  check "$name: identify --method deviation writes a $layers-layer pattern" $?
  [ $rc = 0 ] || sed 's/^/     | /' "$tmp/err"
  DUOVID_LOG=info "$bin" eval vniah -m $model -v $clip --needle $needle --depths 0.5 "${common[@]}" \
    --duo "$tmp/pat-$name" --duo-sparsity 0.5 --sink 4 --recent 8 --json >"$tmp/d" 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && grep -q "DuoAttention: $layers of $((2 * layers)) KV heads streaming" "$tmp/err" &&
    grep -q "\"frame\":$mid,\"frames\":$n," "$tmp/d"
  check "$name: vniah --duo with the identified pattern" $?
  [ $rc = 0 ] || sed 's/^/     | /' "$tmp/err"
done

# Qwen2.5-VL samples 2 fps from 0 s, as `frames --fps 2`: its own last frame as the needle changes nothing
model=tests/fixtures/qwenvl/tiny-qwen2_5-vl
plain=$("$bin" ask -m $model -v $clip "${common[@]}" --temp 0 "$q" 2>/dev/null)
"$bin" frames $clip --fps 2 -o "$tmp/fr" >/dev/null 2>&1
own=$(ls "$tmp"/fr/frame_000008_*.png 2>/dev/null)
"$bin" eval vniah -m $model -v $clip --needle "$own" --depths 1 "${common[@]}" --question "$q" --json >"$tmp/o" 2>/dev/null
"$bin" eval vniah -m $model -v $clip --needle $needle --depths 1 "${common[@]}" --question "$q" --json >"$tmp/f" 2>/dev/null
[ -n "$own" ] && [ "$(answer "$tmp/o" 0)" = "$plain" ] && [ "$(answer "$tmp/f" 0)" != "$plain" ]
check "tiny-qwen2_5-vl: its own last frame as the needle keeps the answer, another image changes it" $?

one_error "vniah needle depth past the end" "--depths: 1.5 is out of range" -- eval vniah -m $model -v $clip \
  --needle $needle --depths 1.5

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
