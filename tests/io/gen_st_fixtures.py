#!/usr/bin/env python3
"""Writes the safetensors / config fixtures of tests/io (CI never runs this):

  fixtures/dtypes.safetensors           every dtype trlc reads, a scalar, zero-size dims, metadata,
                                        written by the python `safetensors` library from torch
  fixtures/dtypes_expected.safetensors  the same tensors converted to F64 by torch (the reference
                                        for st_to_f32), + bit patterns of torch's f32→bf16/f16
  bad/...                               malformed safetensors, config.json and index files;
  bad/EXPECTED                          one line per case: `kind<TAB>path<TAB>expected message part`
                                        (kind: st = st_open, cfg = hf_config_load,
                                        ck = st_checkpoint_open, shape = config vs checkpoint check)

Run from the repo root: python3 tests/io/gen_st_fixtures.py [--dtypes]
(--dtypes rewrites the dtypes files too; then refresh fixtures/dtypes.trlc.safetensors, see
check_trlc_written.py.)
"""
import json
import os
import shutil
import struct

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")
BAD = os.path.join(HERE, "bad")


def dtypes():
    g = torch.Generator().manual_seed(0)
    t = {
        "f32": torch.randn(2, 3, generator=g),
        "f16": torch.randn(5, generator=g).to(torch.float16),
        "bf16": torch.randn(2, 2, 2, generator=g).to(torch.bfloat16),
        "f64": torch.tensor([1.0 / 3.0, -1e300, 2.5e-8], dtype=torch.float64),
        "i8": torch.tensor([-128, -1, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 1, 200, 255], dtype=torch.uint8),
        "i16": torch.tensor([-32768, -7, 32767], dtype=torch.int16),
        "u16": torch.tensor([0, 65535, 1234], dtype=torch.uint16),
        "i32": torch.tensor([[-2147483648, 5], [16777217, 2147483647]], dtype=torch.int32),
        "u32": torch.tensor([0, 4294967295, 7], dtype=torch.uint32),
        "i64": torch.tensor([-(2 ** 63), 3, 2 ** 40 + 1], dtype=torch.int64),
        "u64": torch.tensor([0, 2 ** 64 - 1, 9], dtype=torch.uint64),
        "bool": torch.tensor([True, False, True, True, False]),
        "f8_e4m3": torch.tensor([0.0, 1.0, -2.5, 448.0, 0.001953125, -0.0137, 100.0, 3.3]).to(torch.float8_e4m3fn),
        "f8_e5m2": torch.tensor([0.0, 1.0, -2.5, 57344.0, 1.52587890625e-05, -0.0137, 100.0, 3.3]).to(torch.float8_e5m2),
        "scalar": torch.tensor(3.25, dtype=torch.float32),
        "empty_f32": torch.zeros(0, 4, dtype=torch.float32),
        "empty_i64": torch.zeros(3, 0, dtype=torch.int64),
    }
    # f32 → bf16 / f16 rounding edge cases: ties, subnormals, overflow, inf, nan.
    edge = [0.0, -0.0, 1.0, 1.00390625, 1.01171875, 1.0078125, 3.14159265, -65504.0, 65519.0, 65520.0,
            1e6, -1e-8, 5.96e-8, 2.98e-8, 6.1e-5, 1e-40, 3.0e38, 3.4e38, float("inf"), float("-inf"),
            float("nan"), 0.1, -0.2, 1234.5678]
    edge += torch.randn(40, generator=g).mul(100).tolist()
    src = torch.tensor(edge, dtype=torch.float32)
    t["conv_src"] = src
    t["conv_bf16"] = src.to(torch.bfloat16)
    t["conv_f16"] = src.to(torch.float16)
    meta = {"format": "pt", "author": "trlc tests", "unicode": "é✓ 你好"}
    save_file(t, os.path.join(FIX, "dtypes.safetensors"), metadata=meta)
    exp = {k: v.to(torch.float64) if v.dtype != torch.uint64 else torch.tensor([float(x) for x in v.tolist()],
           dtype=torch.float64) for k, v in t.items() if not k.startswith("conv_")}
    exp["u32"] = torch.tensor([float(x) for x in t["u32"].tolist()], dtype=torch.float64)
    save_file(exp, os.path.join(FIX, "dtypes_expected.safetensors"))


# ---------------------------------------------------------------- malformed files

cases = []


def raw(name, header_bytes, data=b"", hlen=None):
    p = os.path.join(BAD, name)
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes) if hlen is None else hlen))
        f.write(header_bytes)
        f.write(data)
    return p


def st(name, header, data=b"", expect="", hlen=None):
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw(name, hb, data, hlen)
    cases.append(("st", name, expect))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())


def good_file(path, tensors):
    """A valid safetensors file from {name: (dtype, shape, bytes)}."""
    hdr, off, data = {"__metadata__": {"format": "pt"}}, 0, b""
    for k, (dt, shape, b) in tensors.items():
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        off += len(b)
        data += b
    hb = json.dumps(hdr).encode()
    hb += b" " * (-len(hb) % 8)
    write(path, struct.pack("<Q", len(hb)) + hb + data)


def bad_corpus():
    # Every `st` case is rejected by the python safetensors library too, except two that trlc refuses
    # on purpose: nul_in_name (\u0000 in a name) and too_many_dims (more than 8 dimensions).
    shutil.rmtree(BAD, ignore_errors=True)
    os.makedirs(BAD)
    f8 = b"\0" * 8
    # --- safetensors ---
    write(os.path.join(BAD, "empty.safetensors"), b"")
    cases.append(("st", "empty.safetensors", "too short for a safetensors file"))
    write(os.path.join(BAD, "short.safetensors"), b"\x10\0\0\0\0")
    cases.append(("st", "short.safetensors", "too short for a safetensors file"))
    st("header_too_large.safetensors", b"{}", hlen=200_000_000, expect="exceeds the limit of 100000000")
    st("header_past_eof.safetensors", b"{}", hlen=1000, expect="header length 1000 runs past the end of the file")
    st("not_json.safetensors", b"{not json}", expect="invalid header JSON")
    st("header_array.safetensors", b"[1, 2]", expect="must be a JSON object starting with `{`")
    st("header_trailing.safetensors", b"{} xyz", expect="invalid header JSON")
    st("invalid_utf8.safetensors", b'{"a\xff": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}', f8[:4],
       expect="invalid header JSON")
    st("nul_in_name.safetensors", b'{"a\\u0000b": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}', f8[:4],
       expect="contains \\u0000 (NUL), which trlc does not support")
    st("duplicate_name.safetensors",
       b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
       b'"w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}', b"\0\0", expect="duplicate")
    st("bad_dtype.safetensors", {"w": {"dtype": "F17", "shape": [1], "data_offsets": [0, 4]}}, f8[:4],
       expect="tensor `w`: unknown dtype `F17`")
    st("dtype_not_string.safetensors", {"w": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}}, f8[:4],
       expect="tensor `w`: `dtype` must be a string")
    st("missing_shape.safetensors", {"w": {"dtype": "F32", "data_offsets": [0, 4]}}, f8[:4],
       expect="tensor `w`: missing `shape`")
    st("missing_offsets.safetensors", {"w": {"dtype": "F32", "shape": [1]}}, f8[:4],
       expect="tensor `w`: missing `data_offsets`")
    st("entry_not_object.safetensors", {"w": 5}, expect="tensor `w`: header entry must be an object")
    st("negative_dim.safetensors", {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, f8[:4],
       expect="tensor `w`: shape[0] must be a non-negative integer")
    st("real_dim.safetensors", {"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, f8,
       expect="tensor `w`: shape[0] must be a non-negative integer")
    st("shape_overflow.safetensors",
       {"w": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40], "data_offsets": [0, 4]}}, f8[:4],
       expect="tensor `w`: the shape's element count overflows")
    st("bytes_overflow.safetensors",
       {"w": {"dtype": "F64", "shape": [2 ** 31, 2 ** 31], "data_offsets": [0, 4]}}, f8[:4],
       expect="tensor `w`: the shape's byte size overflows")
    st("too_many_dims.safetensors", {"w": {"dtype": "U8", "shape": [1] * 9, "data_offsets": [0, 1]}}, b"\0",
       expect="tensor `w`: 9 dimensions, at most 8")
    st("f4_odd.safetensors", {"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0\0",
       expect="do not fill a whole number of bytes")
    st("offsets_not_pair.safetensors", {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, f8[:4],
       expect="tensor `w`: `data_offsets` must be [begin, end]")
    st("end_before_begin.safetensors", {"w": {"dtype": "U8", "shape": [0], "data_offsets": [8, 4]}}, f8,
       expect="tensor `w`: data_offsets [8, 4] end before they begin")
    st("size_mismatch.safetensors", {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, f8[:4],
       expect="tensor `w`: data_offsets [0, 4] span 4 bytes, but F32 shape of 2 elements needs 8")
    st("not_start_zero.safetensors", {"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f8 + f8[:4],
       expect="tensor `w`: data starts at offset 4, but the first tensor must start at 0")
    st("gap.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                           "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}, f8 * 3,
       expect="tensor `b`: gap of 4 bytes")
    st("overlap.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f8 * 2,
       expect="tensor `b`: data_offsets [4, 12] overlap tensor `a`")
    st("truncated.safetensors", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, f8,
       expect="truncated: the tensors need 16 bytes of data, the file has 8")
    st("trailing_bytes.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, f8 * 2,
       expect="8 trailing bytes after the last tensor")
    st("metadata_nonstring.safetensors", {"__metadata__": {"format": "pt", "step": 3}},
       expect="`__metadata__`: value of `step` must be a string")
    st("metadata_not_object.safetensors", {"__metadata__": ["format", "pt"]},
       expect="`__metadata__` must be an object of strings")
    # --- config.json ---
    def cfg(name, obj_or_text, expect):
        p = os.path.join(BAD, name)
        write(p, obj_or_text if isinstance(obj_or_text, (str, bytes)) else json.dumps(obj_or_text, indent=2))
        cases.append(("cfg", name, expect))
    base = {"model_type": "qwen3", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8}
    cfg("cfg_bad_json.json", '{\n  "model_type": "qwen3",\n  "hidden_size": 16,\n}\n', "cfg_bad_json.json:4:1: error: invalid JSON")
    cfg("cfg_array.json", "[]", "config.json must hold a JSON object, found an array")
    cfg("cfg_unknown_type.json", dict(base, model_type="mistral"),
        "unsupported model_type `mistral`; supported: llama, qwen2, qwen3")
    cfg("cfg_typo_type.json", dict(base, model_type="lama"), "did you mean `llama`?")
    cfg("cfg_missing_type.json", {k: v for k, v in base.items() if k != "model_type"}, "missing `model_type`")
    cfg("cfg_hidden_string.json", dict(base, hidden_size="16"), "`hidden_size` must be an integer, found a string")
    cfg("cfg_negative_vocab.json", dict(base, vocab_size=-1), "`vocab_size` = -1 is out of range")
    cfg("cfg_heads.json", dict(base, num_attention_heads=3, num_key_value_heads=2),
        "num_attention_heads (3) is not a multiple of num_key_value_heads (2)")
    cfg("cfg_odd_head_dim.json", dict(base, head_dim=7), "head_dim (7) must be even")
    cfg("cfg_rope_yarn.json", dict(base, rope_scaling={"rope_type": "yarn", "factor": 4.0}),
        "unsupported `rope_scaling.rope_type` `yarn`")
    cfg("cfg_llama3_missing.json", dict(base, model_type="llama", rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
        "`rope_scaling` of type `llama3` needs `low_freq_factor`")
    cfg("cfg_rope_params_bad.json", dict(base, rope_parameters={"rope_type": "default", "rope_theta": -1}),
        "`rope_theta` must be a positive number")
    cfg("cfg_act.json", dict(base, hidden_act="gelu"), "unsupported `hidden_act` `gelu`; supported: silu")
    cfg("cfg_dtype.json", dict(base, torch_dtype="int4"), "unsupported torch_dtype `int4`")
    cfg("cfg_tie_string.json", dict(base, tie_word_embeddings="yes"), "`tie_word_embeddings` must be true or false")
    cfg("cfg_eos_list.json", dict(base, eos_token_id=[1, "x"]), "`eos_token_id[1]` must be a non-negative integer")
    cfg("cfg_duplicate_key.json", '{"model_type": "qwen3", "model_type": "llama"}', "duplicate")
    # --- checkpoints (directories and index files) ---
    def ck(name, expect, kind="ck"):
        cases.append((kind, name, expect))
    d = os.path.join(BAD, "ck_missing_shard")
    good_file(os.path.join(d, "model-00001-of-00002.safetensors"), {"a": ("U8", [2], b"\1\2")})
    write(os.path.join(d, "model.safetensors.index.json"), json.dumps(
        {"metadata": {"total_size": 3}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                                       "b": "model-00002-of-00002.safetensors"}}))
    ck("ck_missing_shard", "tensor `b` is in shard `")
    d = os.path.join(BAD, "ck_not_in_shard")
    good_file(os.path.join(d, "model-00001-of-00001.safetensors"), {"a": ("U8", [2], b"\1\2")})
    write(os.path.join(d, "model.safetensors.index.json"), json.dumps(
        {"weight_map": {"a": "model-00001-of-00001.safetensors", "zz": "model-00001-of-00001.safetensors"}}))
    ck("ck_not_in_shard", "tensor `zz` is listed in shard `model-00001-of-00001.safetensors`, but that shard does not")
    d = os.path.join(BAD, "ck_no_weight_map")
    write(os.path.join(d, "model.safetensors.index.json"), json.dumps({"metadata": {}}))
    ck("ck_no_weight_map", "missing `weight_map` object")
    d = os.path.join(BAD, "ck_escape")
    write(os.path.join(d, "model.safetensors.index.json"), json.dumps({"weight_map": {"a": "../empty.safetensors"}}))
    ck("ck_escape", "shard `../empty.safetensors` must be a file name in the same directory")
    d = os.path.join(BAD, "ck_weight_map_type")
    write(os.path.join(d, "model.safetensors.index.json"), json.dumps({"weight_map": {"a": 3}}))
    ck("ck_weight_map_type", "weight_map: tensor `a` maps to an integer")
    d = os.path.join(BAD, "ck_bad_index_json")
    write(os.path.join(d, "model.safetensors.index.json"), '{"weight_map": {"a": "x.safetensors",}}')
    ck("ck_bad_index_json", "model.safetensors.index.json:1:")
    d = os.path.join(BAD, "ck_corrupt_shard")
    good_file(os.path.join(d, "model-00001-of-00001.safetensors"), {"a": ("F32", [2], f8)})
    with open(os.path.join(d, "model-00001-of-00001.safetensors"), "r+b") as f:
        f.truncate(os.path.getsize(os.path.join(d, "model-00001-of-00001.safetensors")) - 3)
    write(os.path.join(d, "model.safetensors.index.json"), json.dumps({"weight_map": {"a": "model-00001-of-00001.safetensors"}}))
    ck("ck_corrupt_shard", "model-00001-of-00001.safetensors: error: truncated")
    os.makedirs(os.path.join(BAD, "ck_empty_dir"))
    write(os.path.join(BAD, "ck_empty_dir", ".keep"), "")
    ck("ck_empty_dir", "no model.safetensors or model.safetensors.index.json in this directory")
    ck("does_not_exist", "no such file or directory")
    # --- config vs checkpoint: a 1-layer qwen3 (H=8, I=16, V=16, 2 heads, 1 kv head, hd=4) ---
    def qwen3_tensors(H=8, I=16, V=16, hd=4, nh=2, nkv=1, drop=None, lm_head=False):
        sh = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H]}
        p = "model.layers.0."
        sh.update({p + "input_layernorm.weight": [H], p + "post_attention_layernorm.weight": [H],
                   p + "self_attn.q_proj.weight": [nh * hd, H], p + "self_attn.k_proj.weight": [nkv * hd, H],
                   p + "self_attn.v_proj.weight": [nkv * hd, H], p + "self_attn.o_proj.weight": [H, nh * hd],
                   p + "self_attn.q_norm.weight": [hd], p + "self_attn.k_norm.weight": [hd],
                   p + "mlp.gate_proj.weight": [I, H], p + "mlp.up_proj.weight": [I, H],
                   p + "mlp.down_proj.weight": [H, I]})
        if lm_head:
            sh["lm_head.weight"] = [V, H]
        if drop:
            del sh[drop]
        out = {}
        for k, s in sorted(sh.items()):
            n = 1
            for x in s:
                n *= x
            out[k] = ("BF16", s, b"\0\0" * n)
        return out
    qcfg = {"model_type": "qwen3", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
            "tie_word_embeddings": True, "torch_dtype": "bfloat16"}
    def shape_case(name, cfgobj, tensors, expect):
        d = os.path.join(BAD, name)
        write(os.path.join(d, "config.json"), json.dumps(cfgobj, indent=2))
        good_file(os.path.join(d, "model.safetensors"), tensors)
        ck(name, expect, "shape")
    shape_case("shape_ffn", dict(qcfg, intermediate_size=12), qwen3_tensors(),
               "tensor `model.layers.0.mlp.gate_proj.weight` has shape [16, 8], expected [12, 8] from")
    shape_case("shape_untied", dict(qcfg, tie_word_embeddings=False), qwen3_tensors(),
               "missing tensor `lm_head.weight` [16, 8] (config.json has tie_word_embeddings false)")
    shape_case("shape_missing_qnorm", qcfg, qwen3_tensors(drop="model.layers.0.self_attn.q_norm.weight"),
               "missing tensor `model.layers.0.self_attn.q_norm.weight` [4] expected from")
    shape_case("shape_head_dim", dict(qcfg, head_dim=2), qwen3_tensors(),
               "tensor `model.layers.0.self_attn.q_norm.weight` has shape [4], expected [2]")
    shape_case("shape_qwen2_bias", dict(qcfg, model_type="qwen2"), qwen3_tensors(),
               "missing tensor `model.layers.0.self_attn.q_proj.bias` [8] expected from")
    shape_case("shape_many_layers", dict(qcfg, num_hidden_layers=1000), qwen3_tensors(),
               "error: ... and 10969 more problems (10989 in all)")
    t = qwen3_tensors()
    t["model.layers.0.mlp.up_proj.weight"] = ("U8", [64, 1], b"\0" * 64)
    shape_case("shape_prequantized", dict(qcfg, quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True}),
               t, "hint: config.json has a quantization_config (bitsandbytes): this is a pre-quantized checkpoint")
    t = qwen3_tensors()
    t["model.norm.weight"] = ("I8", [8], b"\0" * 8)
    shape_case("shape_dtype", qcfg, t, "tensor `model.norm.weight` has dtype I8; a model weight must be F32, BF16 or F16")
    # --- PEFT adapter directories ---
    lcfg = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj"],
            "bias": "none", "use_dora": False, "use_rslora": False, "base_model_name_or_path": "x"}
    def peft_case(name, cfgobj, tensors, expect):
        d = os.path.join(BAD, name)
        write(os.path.join(d, "adapter_config.json"), cfgobj if isinstance(cfgobj, str) else json.dumps(cfgobj))
        if tensors is not None:
            good_file(os.path.join(d, "adapter_model.safetensors"), tensors)
        cases.append(("peft", name, expect))
    qa = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    qb = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
    pair = {qa: ("F32", [4, 8], b"\0" * 128), qb: ("F32", [16, 4], b"\0" * 256)}
    peft_case("peft_prefix", dict(lcfg, peft_type="PREFIX_TUNING"), pair, "unsupported peft_type `PREFIX_TUNING`")
    peft_case("peft_dora", dict(lcfg, use_dora=True), pair, "`use_dora` adapters are not supported")
    peft_case("peft_rank_pattern", dict(lcfg, rank_pattern={"q_proj": 8}), pair,
              "`rank_pattern` (per-module ranks or alphas) is not supported")
    peft_case("peft_modules_to_save", dict(lcfg, modules_to_save=["lm_head"]), pair,
              "`modules_to_save` (fully trained extra modules) is not supported")
    peft_case("peft_bias", dict(lcfg, bias="lora_only"), pair, "`bias` must be \"none\"")
    peft_case("peft_r_string", dict(lcfg, r="4"), pair, "`r` must be an integer")
    peft_case("peft_bad_json", '{"peft_type": "LORA",\n "r": 4 4}', pair, "adapter_config.json:2:")
    peft_case("peft_no_weights", lcfg, None, "no adapter_model.safetensors in this directory")
    peft_case("peft_rank", lcfg, {qa: ("F32", [3, 8], b"\0" * 96), qb: ("F32", [16, 3], b"\0" * 192)},
              "lora_A must be [r, in] and lora_B [out, r] with r = 4")
    peft_case("peft_no_partner", lcfg, {qa: ("F32", [4, 8], b"\0" * 128),
                                        qa.replace("q_proj", "k_proj"): ("F32", [4, 8], b"\0" * 128)},
              "has no lora_B partner")
    peft_case("peft_foreign_tensor", lcfg, dict(pair, **{"base_model.model.lm_head.weight": ("F32", [2, 2], b"\0" * 16),
                                                       "base_model.model.x.lora_A.weight": ("F32", [4, 1], b"\0" * 16)}),
              "tensor `base_model.model.lm_head.weight` is not a LoRA matrix")
    peft_case("peft_int_tensor", lcfg, {qa: ("I32", [4, 8], b"\0" * 128), qb: ("F32", [16, 4], b"\0" * 256)},
              "tensor `%s` has dtype I32; LoRA matrices must be F32, BF16 or F16" % qa)
    os.makedirs(os.path.join(BAD, "peft_empty_dir"), exist_ok=True)
    write(os.path.join(BAD, "peft_empty_dir", ".keep"), "")
    cases.append(("peft", "peft_empty_dir", "not a PEFT adapter directory: no adapter_config.json in it"))
    # The positive control: the same files are consistent.
    d = os.path.join(FIX, "tiny-qwen3-h8")
    shutil.rmtree(d, ignore_errors=True)
    write(os.path.join(d, "config.json"), json.dumps(qcfg, indent=2))
    good_file(os.path.join(d, "model.safetensors"), qwen3_tensors())
    with open(os.path.join(BAD, "EXPECTED"), "w") as f:
        for kind, name, expect in cases:
            f.write("%s\t%s\t%s\n" % (kind, name, expect))
    print(len(cases), "malformed cases")


if __name__ == "__main__":
    import sys
    os.makedirs(FIX, exist_ok=True)
    # The python writer orders the header's keys at random (a hash map), so regenerating the dtypes
    # files changes their bytes and the golden trlc-written file with them: only on request.
    if "--dtypes" in sys.argv:
        dtypes()
    bad_corpus()
