#!/usr/bin/python3
# make_regress.py — writes the hand-made hostile inputs of tests/fuzz/regress/<kind>/hostile_*:
# nesting 100k deep (spec, config.json, tokenizer.json, a dataset row), shapes of 2^62 elements,
# header lengths and offsets past any file, ids near 2^31. Each must be refused with an error,
# quickly (fuzz.<kind> replays them; the harness asserts the status matches the errors).
# Run: /usr/bin/python3 tests/fuzz/make_regress.py   (from anywhere; writes next to this file)
# Not here: a 100 MB dataset line (too big to commit; checked by hand, see the report in git log).
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
DEEP = 100000   # the depth asked for; the other nestings use 20000 (past every limit: bison 10000,
SOME = 20000    # the loader 1000, jansson 2048) to keep the folder small


def put(kind, name, data):
    d = os.path.join(HERE, "regress", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hostile_" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def st(header, data=b""):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def main():
    # spec: expressions, lists and blocks nested 100k deep (unterminated: the depth is hit first)
    put("spec", "deep_parens.trl", "trl 1;\ntrain { seed = " + "(" * DEEP + "1;\n")
    put("spec", "deep_lists.trl", "trl 1;\narch a { param w: " + "[" * SOME + "\n")
    put("spec", "deep_unary.trl", "trl 1;\ntrain { seed = " + "-" * SOME + "1; }\n")
    put("spec", "huge_numbers.trl", "trl 1;\nmodel m { arch = llama; config { vocab = 4611686018427387904; "
        "hidden = 4611686018427387904; layers = 1048576; heads = 1; } tokenizer = bytes; }\n"
        "train { batch = 9223372036854775807; steps = 99999999999999999999999; }\n")
    # JSON nested 100k deep
    put("hfconfig", "deep.json", "[" * DEEP)
    put("hfconfig", "deep_object.json", '{"a":' * SOME)
    put("tokenizer", "deep.json", '{"model":' + "[" * SOME)
    put("dataset", "deep.jsonl", bytes([0, 0x02, 16]) + b'{"text": ' + b"[" * DEEP + b"\n")
    # a JSON / CSV row larger than the row limit (4 KiB with flag 0x80; 64 MiB by default, as a JSONL
    # line): it was accepted and tokenized whole (a 100 MB CSV row took 21 s and 1 GB per open)
    put("dataset", "row_over_limit.csv", bytes([2 + 3 * 0, 0x80 | 0x02, 0]) + b"text\n" + b"a" * 5000 + b"\n")
    put("dataset", "row_over_limit.json", bytes([1 + 3 * 1, 0x80 | 0x02, 0]) +
        json.dumps([{"prompt": "p" * 3000, "response": "r" * 3000}]).encode())
    put("chat", "deep_config.json", b"\x00" + b'{"chat_template": ' + b"[" * SOME)
    # safetensors: 2^62-element shapes, numel overflow, offsets and header lengths past the file
    put("safetensors", "shape_2p62.safetensors",
        st({"t": {"dtype": "F32", "shape": [1 << 62], "data_offsets": [0, 16]}}, b"\0" * 16))
    put("safetensors", "shape_2p62_bytes.safetensors",
        st({"t": {"dtype": "F32", "shape": [1 << 62, 4], "data_offsets": [0, (1 << 64) - 1]}}))
    put("safetensors", "numel_overflow.safetensors",
        st({"t": {"dtype": "BF16", "shape": [1 << 32, 1 << 32, 1 << 32], "data_offsets": [0, 0]}}))
    put("safetensors", "header_len_2p63.safetensors", struct.pack("<Q", 1 << 63) + b"{}")
    put("safetensors", "header_len_max.safetensors", struct.pack("<Q", 100000000) + b"{}")
    put("safetensors", "offset_2p64.safetensors",
        st({"t": {"dtype": "U8", "shape": [4], "data_offsets": [(1 << 64) - 4, (1 << 64)]}}, b"\0" * 4))
    put("safetensors", "many_dims.safetensors",
        st({"t": {"dtype": "U8", "shape": [1] * 1000, "data_offsets": [0, 1]}}, b"\0"))
    # tokenizer ids near 2^31 (a table that large must not be allocated)
    tok = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 2147483647}, "merges": []},
           "added_tokens": [{"id": 2147483646, "content": "<x>", "special": True}]}
    put("tokenizer", "ids_2p31.json", json.dumps(tok))
    # checkpoint: step 2^63-1, files of absurd sizes
    state = {"format": "trlc-checkpoint", "version": 1, "step": (1 << 63) - 1, "epoch": 0, "data_pos": 0,
             "samples_seen": 0, "tokens_seen": 0, "seed": "18446744073709551616",
             "rng": ["ffffffffffffffff"] * 4, "files": {"model.safetensors": (1 << 63) - 1}}
    put("checkpoint", "huge_numbers", json.dumps(state))
    # adapter: rank 2^31-1
    cfg = {"peft_type": "LORA", "r": 2147483647, "lora_alpha": 16, "target_modules": ["q_proj"], "bias": "none"}
    put("adapter", "rank_2p31", json.dumps(cfg).encode() + b"\n@@FILE@@\n" +
        st({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight":
            {"dtype": "F32", "shape": [2147483647, 1 << 30], "data_offsets": [0, 4]}}, b"\0" * 4))


if __name__ == "__main__":
    main()
