#!/usr/bin/env bash
# llm_chat.sh: `generate --chat` wraps the prompt in the model's chat format (ChatML detected from
# the chat_template of the tiny Qwen2 / SmolLM2 fixtures, with their default system prompts) and
# prints only the answer: it equals a plain `generate` of the same prompt text written by hand;
# --system replaces the default; --template forces a format; bad flags are one-line errors.
#   bash tests/cli/llm_chat.sh build/duovid
set -u
bin=${1:?usage: llm_chat.sh path/to/duovid}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error
nl=$'\n'
q="What is a river?"
for m in tiny-qwen2 tiny-smollm2; do
  model=tests/fixtures/llm/$m
  case $m in
    tiny-qwen2) sys="You are Qwen, created by Alibaba Cloud. You are a helpful assistant." ;;
    tiny-smollm2) sys="You are a helpful AI assistant named SmolLM, trained by Hugging Face" ;;
  esac
  text="<|im_start|>system${nl}${sys}<|im_end|>${nl}<|im_start|>user${nl}${q}<|im_end|>${nl}<|im_start|>assistant${nl}"
  "$bin" generate -m $model -p "$q" --chat -n 10 --temp 0 >"$tmp/chat" 2>"$tmp/e"; check "$m: generate --chat runs" $?
  "$bin" generate -m $model -p "$text" --no-bos -n 10 --temp 0 >"$tmp/plain" 2>/dev/null
  # the plain run echoes the prompt first; what follows it is the answer --chat printed
  python3 - "$tmp/plain" "$tmp/chat" "$text" <<'PY'
import sys
plain, chat, text = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3]
sys.exit(0 if plain.startswith(text) and plain[len(text):] == chat and chat.strip() else 1)
PY
  check "$m: --chat answer == plain generate of the ChatML text with the default system prompt" $?
  "$bin" generate -m $model -p "$q" --chat --system "Be brief." -n 10 --temp 0 >"$tmp/sys" 2>/dev/null
  text2="<|im_start|>system${nl}Be brief.<|im_end|>${nl}<|im_start|>user${nl}${q}<|im_end|>${nl}<|im_start|>assistant${nl}"
  "$bin" generate -m $model -p "$text2" --no-bos -n 10 --temp 0 >"$tmp/plain2" 2>/dev/null
  [ "$(cat "$tmp/plain2")" = "${text2}$(cat "$tmp/sys")" ]; check "$m: --system replaces the default system prompt" $?
done
# forcing a format on a model without a chat template (the tiny Llama has none)
"$bin" generate -m assets/models/tiny-llama -p "$q" --chat --template chatml -n 4 --temp 0 -v >/dev/null 2>"$tmp/v"
grep -q "chat format chatml (set by --template)" "$tmp/v"; check "--template chatml forces ChatML" $?
"$bin" generate -m tests/fixtures/llm/tiny-qwen2 -p x --chat --template nope >"$tmp/o" 2>"$tmp/e"
[ $? = 1 ] && [ ! -s "$tmp/o" ] && [ "$(wc -l <"$tmp/e")" = 1 ] && grep -q "chatml" "$tmp/e"; check "unknown --template: one-line error listing the formats" $?
"$bin" generate -m tests/fixtures/llm/tiny-qwen2 -p x --system s >"$tmp/o" 2>"$tmp/e"
[ $? = 1 ] && grep -q "need --chat" "$tmp/e"; check "--system without --chat is refused" $?
"$bin" generate --help | grep -q -- "--chat"; check "generate --help documents --chat" $?
echo "$pass passed, $fail failed"
[ $fail = 0 ]
