#!/usr/bin/env python3
"""synth_to_gguf.py: a Llama checkpoint written by `duovid synth-model` (config.json +
model.safetensors, no tokenizer) -> a bf16 or f16 GGUF file llama.cpp loads, for bench/llamacpp_compare.sh.

The weight matrices are copied bit for bit (bf16 stays bf16), or rounded to f16 with --type f16 (the
type llama.cpp's CPU matrix-vector path converts natively with F16C, where a host without AVX-512 BF16
widens bf16 in software); norm vectors become f32, as convert_hf_to_gguf.py writes them; q_proj /
k_proj rows are permuted as llama.cpp's convert_hf_to_gguf.py does (HF's rotate-half rotary layout -> GGML's interleaved one), so both engines
compute the same model. A synthetic checkpoint has no tokenizer, which convert_hf_to_gguf.py
requires, so the vocabulary written here is a placeholder SentencePiece-style list of vocab_size
tokens (<unk>, <s>, </s>, the 256 byte tokens, then t<i>): benchmarks feed token ids, never text.

usage: synth_to_gguf.py [--type bf16|f16] MODEL_DIR OUT.gguf   (needs the gguf and numpy packages)
"""
import json
import struct
import sys


def read_safetensors(path, np):
    """name -> (dtype string, shape, raw little-endian bytes as a numpy array of that dtype's bits)."""
    kinds = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in head.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in kinds:
            raise ValueError(f"tensor {name}: dtype {info['dtype']} not handled")
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=kinds[info["dtype"]]).reshape(info["shape"])
        out[name] = (info["dtype"], arr)
    return out


def main() -> int:
    args = sys.argv[1:]
    wtype = "bf16"
    if len(args) >= 2 and args[0] == "--type":
        wtype, args = args[1], args[2:]
        if wtype not in ("bf16", "f16"):
            print(f"synth_to_gguf: --type: {wtype!r} is not bf16 or f16", file=sys.stderr)
            return 1
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 1
    src, out = args
    try:
        import gguf
        import numpy as np
    except ImportError as e:
        print(f"synth_to_gguf: missing python package: {e.name}", file=sys.stderr)
        return 1
    try:
        cfg = json.load(open(f"{src}/config.json"))
        w = read_safetensors(f"{src}/model.safetensors", np)
    except (OSError, ValueError, KeyError, struct.error) as e:
        print(f"synth_to_gguf: {src}: {e}", file=sys.stderr)
        return 1
    if cfg.get("model_type") != "llama":
        print(f"synth_to_gguf: {src}/config.json: model_type {cfg.get('model_type')!r}, only llama", file=sys.stderr)
        return 1
    H, Hkv, L = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    E, V = cfg["hidden_size"], cfg["vocab_size"]
    D = cfg.get("head_dim") or E // H

    def permute(t, n_head):  # convert_hf_to_gguf.py's LlamaModel.permute
        return t.reshape(n_head, 2, t.shape[0] // n_head // 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)

    def bf16_f32(t):  # bf16 bits -> the f32 values they are
        return (t.astype(np.uint32) << 16).view(np.float32)

    def raw(dt, t):  # bf16 matrix -> its bits (or f16); norms (1-D) and others as f32, as convert_hf_to_gguf.py
        if dt == "BF16" and t.ndim > 1 and wtype == "f16":
            return bf16_f32(t).astype(np.float16), None
        if dt == "BF16" and t.ndim > 1:
            return t, gguf.GGMLQuantizationType.BF16
        if dt == "BF16":
            return bf16_f32(t), None
        return t.astype(np.float32), None

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for i in range(L):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"

    wr = gguf.GGUFWriter(out, "llama")
    wr.add_name("duovid synthetic " + src.rstrip("/").split("/")[-1])
    wr.add_context_length(cfg["max_position_embeddings"])
    wr.add_embedding_length(E)
    wr.add_block_count(L)
    wr.add_feed_forward_length(cfg["intermediate_size"])
    wr.add_head_count(H)
    wr.add_head_count_kv(Hkv)
    wr.add_rope_dimension_count(D)
    wr.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    wr.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    wr.add_vocab_size(V)
    wr.add_file_type(gguf.LlamaFileType.MOSTLY_BF16 if wtype == "bf16" else gguf.LlamaFileType.MOSTLY_F16)
    toks = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{b:02X}>".encode() for b in range(256)]
    toks += [f"t{i}".encode() for i in range(len(toks), V)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    types += [gguf.TokenType.NORMAL] * (V - len(types))
    wr.add_tokenizer_model("llama")
    wr.add_token_list(toks[:V])
    wr.add_token_scores([-float(i) for i in range(V)])
    wr.add_token_types(types[:V])
    wr.add_bos_token_id(cfg.get("bos_token_id", 1))
    wr.add_eos_token_id(cfg.get("eos_token_id", 2))
    wr.add_unk_token_id(0)
    if cfg.get("tie_word_embeddings") and "lm_head.weight" not in w:
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
    for hf, gg in names.items():
        if hf not in w:
            print(f"synth_to_gguf: {src}/model.safetensors: no tensor {hf}", file=sys.stderr)
            return 1
        dt, t = w[hf]
        if hf.endswith("q_proj.weight"):
            t = permute(t, H)
        elif hf.endswith("k_proj.weight"):
            t = permute(t, Hkv)
        arr, qt = raw(dt, t)
        wr.add_tensor(gg, np.ascontiguousarray(arr), raw_dtype=qt)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    print(f"synth_to_gguf: wrote {out} ({len(names)} tensors, {wtype} matrices, f32 norms)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
