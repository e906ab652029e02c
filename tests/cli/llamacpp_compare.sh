#!/usr/bin/env bash
# llamacpp_compare.sh: bench/llamacpp_compare.sh's flags without building anything (--help; bad
# numbers, unknown flags, a cache folder inside the repository, $CI set: one error line, exit 1), and
# bench/synth_to_gguf.py on a tiny synthetic checkpoint (every tensor there, bf16 matrices bit for bit,
# q/k rows permuted as llama.cpp's converter does) when the developer python has gguf and numpy.
#   bash tests/cli/llamacpp_compare.sh build/duovid
set -u
duovid=${1:?usage: llamacpp_compare.sh path/to/duovid}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error
bin=$repo/bench/llamacpp_compare.sh

"$bin" --help >"$tmp/h" 2>&1
[ $? = 0 ] && grep -q -- "--ctx N" "$tmp/h" && grep -q -- "--cache-dir DIR" "$tmp/h" && grep -q -- "--threads N" "$tmp/h" &&
    grep -q -- "--build-only" "$tmp/h"
check "--help lists --ctx, --threads, --cache-dir, --build-only" $?
one_error "--ctx abc" "--ctx wants a positive integer" -- --ctx abc --duovid "$duovid"
one_error "--ctx 10 (too small)" "--ctx must be in" -- --ctx 10 --duovid "$duovid"
one_error "--threads 0" "--threads wants a positive integer" -- --threads 0 --duovid "$duovid"
one_error "--gen without a value" "--gen needs a value" -- --gen
one_error "--gguf-type q4" "--gguf-type wants bf16 or f16" -- --gguf-type q4 --duovid "$duovid"
one_error "unknown flag" "unknown argument '--bogus'" -- --bogus
# CI itself sets $CI; the script refuses then, before the checks below: they run as on a desk
unset CI
one_error "missing duovid binary" "no duovid binary" -- --duovid "$tmp/none" --cache-dir "$tmp/c"
one_error "cache folder inside the repository" "must be outside the repository" -- --duovid "$duovid" \
    --cache-dir "$repo/build-llamacpp-test"
[ ! -e "$repo/build-llamacpp-test" ] || rmdir "$repo/build-llamacpp-test"
CI=1 one_error "refuses in CI" "not run in CI" -- --duovid "$duovid" --cache-dir "$tmp/c"
[ ! -e "$tmp/c/llama_cpp_python-0.3.36.tar.gz" ]; check "nothing downloaded by the error paths" $?

py=${PYTHON:-/work/venv/bin/python}
if [ -x "$py" ] && "$py" -c "import gguf, numpy" 2>/dev/null; then
    "$duovid" synth-model --shape tiny -o "$tmp/m" --dtype bf16 >/dev/null 2>&1
    "$py" "$repo/bench/synth_to_gguf.py" "$tmp/m" "$tmp/m.gguf" 2>/dev/null
    check "synth_to_gguf.py writes the tiny checkpoint" $?
    "$py" - "$tmp/m" "$tmp/m.gguf" "$repo/bench" <<'EOF'
import json, sys
import gguf, numpy as np
sys.path.insert(0, sys.argv[3])
from synth_to_gguf import read_safetensors
cfg = json.load(open(sys.argv[1] + "/config.json"))
w = read_safetensors(sys.argv[1] + "/model.safetensors", np)
r = gguf.GGUFReader(sys.argv[2])
t = {x.name: x for x in r.tensors}
L, H, Hkv = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
assert len(t) == 3 + 9 * L, len(t)
def bits(name):  # the GGUF tensor's bf16 bits in HF's (out, in) shape
    return np.asarray(t[name].data).view(np.uint16).reshape(tuple(int(n) for n in reversed(t[name].shape)))
hf = lambda n: w[n][1]  # (bf16 bits)
assert (bits("blk.0.ffn_down.weight") == hf("model.layers.0.mlp.down_proj.weight")).all()
q = hf("model.layers.0.self_attn.q_proj.weight")
d = q.shape[0] // H
perm = q.reshape(H, 2, d // 2, -1).swapaxes(1, 2).reshape(q.shape)
assert (bits("blk.0.attn_q.weight") == perm).all() and not (perm == q).all()
assert t["output_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
EOF
    check "GGUF tensors: bf16 bits kept, q rows permuted, norms f32" $?
    "$py" "$repo/bench/synth_to_gguf.py" --type f16 "$tmp/m" "$tmp/m16.gguf" 2>/dev/null &&
    "$py" - "$tmp/m" "$tmp/m16.gguf" "$repo/bench" <<'EOF'
import sys
import gguf, numpy as np
sys.path.insert(0, sys.argv[3])
from synth_to_gguf import read_safetensors
w = read_safetensors(sys.argv[1] + "/model.safetensors", np)
t = {x.name: x for x in gguf.GGUFReader(sys.argv[2]).tensors}
x = t["blk.0.ffn_down.weight"]
assert x.tensor_type == gguf.GGMLQuantizationType.F16, x.tensor_type
want = (w["model.layers.0.mlp.down_proj.weight"][1].astype(np.uint32) << 16).view(np.float32)
got = np.asarray(x.data).view(np.float16).reshape(want.shape).astype(np.float32)
assert np.abs(got - want).max() <= np.abs(want).max() * 2.0**-10, "f16 rounding error too large"
assert t["output_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
EOF
    check "--type f16: matrices f16 (within f16 rounding of the bf16 values), norms f32" $?
    "$py" "$repo/bench/synth_to_gguf.py" --type q4 "$tmp/m" "$tmp/mq.gguf" 2>"$tmp/e"
    [ $? = 1 ] && [ "$(wc -l <"$tmp/e")" = 1 ] && grep -q "is not bf16 or f16" "$tmp/e" && [ ! -e "$tmp/mq.gguf" ]
    check "synth_to_gguf.py --type q4: one error line, no file" $?
else
    echo "skip synth_to_gguf.py checks: $py lacks gguf / numpy"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
