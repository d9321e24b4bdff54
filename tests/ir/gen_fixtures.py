#!/usr/bin/env python3
"""gen_fixtures.py — reference values for tests/ir/test_fixtures.c, from the peer implementations:
torch (softmax, log_softmax, scaled_dot_product_attention with GQA, cross_entropy with ignore_index
and label smoothing, and their autograd gradients), transformers (LlamaRotaryEmbedding incl.
llama-3 rope_scaling, apply_rotary_pos_emb) and bitsandbytes (NF4 quantize/dequantize, with
double-quantized absmax; `pip install bitsandbytes` — its CPU backend suffices). Writes tests/ir/fixtures/ir_ref.txt; CI only reads it.

Format, one tensor per two lines:
    tensor NAME DTYPE RANK D0 D1 ...
    v0 v1 v2 ...
Run: /usr/bin/python3 tests/ir/gen_fixtures.py   (torch 2.x, transformers 4.5x)
"""
import os
import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

torch.manual_seed(1234)
out = []


def put(name, t):
    t = t.detach()
    dt = "i32" if t.dtype in (torch.int32, torch.int64) else "f64"
    shape = " ".join(str(d) for d in t.shape)
    out.append(f"tensor {name} {dt} {t.dim()} {shape}".rstrip())
    flat = t.reshape(-1).tolist()
    out.append(" ".join(str(int(v)) if dt == "i32" else repr(float(v)) for v in flat))


# softmax / log_softmax over the last axis
x = torch.randn(2, 3, 7, dtype=torch.float64) * 3
put("softmax.x", x)
put("softmax.y", torch.softmax(x, -1))
put("log_softmax.y", torch.log_softmax(x, -1))

# rope (HF Llama rotary embedding, rotate-half), with and without llama-3 scaling
for tag, scaling, theta, D in (("rope", None, 10000.0, 8),
                                ("rope_llama3", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 64}, 500000.0, 16)):
    H = 3
    cfg = LlamaConfig(hidden_size=H * D, num_attention_heads=H, num_key_value_heads=H,
                      rope_theta=theta, rope_scaling=scaling, max_position_embeddings=2048)
    emb = LlamaRotaryEmbedding(cfg)
    xq = torch.randn(2, H, 5, D, dtype=torch.float64)
    pos = torch.randint(0, 40, (2, 5), dtype=torch.int64)
    cos, sin = emb(xq, pos)
    yq, _ = apply_rotary_pos_emb(xq, xq, cos, sin)
    put(f"{tag}.x", xq)
    put(f"{tag}.pos", pos)
    put(f"{tag}.y", yq)

# sdpa with grouped KV heads (query head h uses kv head h // (Hq // Hkv)), causal and not
for causal in (True, False):
    tag = "sdpa_causal" if causal else "sdpa_full"
    q = torch.randn(2, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 2, 6, 8, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 2, 6, 8, dtype=torch.float64, requires_grad=True)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    gy = torch.randn_like(y)
    y.backward(gy)
    for n, t in (("q", q), ("k", k), ("v", v), ("y", y), ("gy", gy), ("dq", q.grad), ("dk", k.grad),
                 ("dv", v.grad)):
        put(f"{tag}.{n}", t)

# sdpa with a key-padding mask (0 = padding key) on top of the causal mask; no row fully masked
q = torch.randn(2, 4, 6, 8, dtype=torch.float64, requires_grad=True)
k = torch.randn(2, 2, 6, 8, dtype=torch.float64, requires_grad=True)
v = torch.randn(2, 2, 6, 8, dtype=torch.float64, requires_grad=True)
km = torch.tensor([[1, 1, 0, 1, 0, 1], [1, 0, 1, 1, 1, 0]], dtype=torch.int64)
allow = torch.tril(torch.ones(6, 6, dtype=torch.bool))[None, None] & km.bool()[:, None, None, :]
y = F.scaled_dot_product_attention(q, k, v, attn_mask=allow, enable_gqa=True)
gy = torch.randn_like(y)
y.backward(gy)
put("sdpa_masked.mask", km)
for n, t in (("q", q), ("k", k), ("v", v), ("y", y), ("gy", gy), ("dq", q.grad), ("dk", k.grad),
             ("dv", v.grad)):
    put(f"sdpa_masked.{n}", t)

# a 3-query block against 7 cached keys (GQA): causal aligned at the end, query i sees j <= i + 4
q = torch.randn(2, 4, 3, 8, dtype=torch.float64, requires_grad=True)
k = torch.randn(2, 2, 7, 8, dtype=torch.float64, requires_grad=True)
v = torch.randn(2, 2, 7, 8, dtype=torch.float64, requires_grad=True)
allow = torch.ones(3, 7, dtype=torch.bool).tril(diagonal=7 - 3)[None, None]
y = F.scaled_dot_product_attention(q, k, v, attn_mask=allow, enable_gqa=True)
gy = torch.randn_like(y)
y.backward(gy)
for n, t in (("q", q), ("k", k), ("v", v), ("y", y), ("gy", gy), ("dq", q.grad), ("dk", k.grad),
             ("dv", v.grad)):
    put(f"sdpa_cache.{n}", t)

# cross entropy per position (reduction none), ignore_index -100, label smoothing 0 and 0.1
logits = torch.randn(2, 5, 11, dtype=torch.float64) * 2
labels = torch.randint(0, 11, (2, 5), dtype=torch.int64)
labels[0, 1] = -100
labels[1, 4] = -100
put("ce.logits", logits)
put("ce.labels", labels)
for tag, ls in (("ce0", 0.0), ("ce1", 0.1)):
    lg = logits.clone().requires_grad_(True)
    loss = F.cross_entropy(lg.reshape(-1, 11), labels.reshape(-1), ignore_index=-100,
                           label_smoothing=ls, reduction="none").reshape(2, 5)
    gl = torch.randn_like(loss)
    loss.backward(gl)
    put(f"{tag}.loss", loss)
    put(f"{tag}.gloss", gl)
    put(f"{tag}.dlogits", lg.grad)

# bitsandbytes NF4 (blocks of 64), plain and double-quantized absmax (8-bit, blocks of 256).
# Row length a multiple of 64 as in real checkpoints: bitsandbytes 0.50's CPU dequantize_4bit
# indexes absmax per row when rows are not (e.g. (4, 160)), disagreeing with its own flat-block
# quantization; trlc follows the flat layout of the format.
try:
    import bitsandbytes.functional as bnbf
    w = torch.randn(6, 128, dtype=torch.float32) * 2   # rows a multiple of the block (see below)
    for tag, nested in (("nf4", False), ("nf4dq", True)):
        q, st = bnbf.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=nested)
        put(f"{tag}.packed", q.reshape(-1).to(torch.int32))
        if nested:
            put(f"{tag}.absmax_q", st.absmax.reshape(-1).to(torch.int32))
            put(f"{tag}.code", st.state2.code.double())
            put(f"{tag}.absmax2", st.state2.absmax.double())
            put(f"{tag}.offset", st.offset.reshape(1).double())
        else:
            put(f"{tag}.absmax", st.absmax.double())
        put(f"{tag}.w", bnbf.dequantize_4bit(q, st).double())
except ImportError:
    print("bitsandbytes not installed: no NF4 fixtures")

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "fixtures"), exist_ok=True)
with open(os.path.join(here, "fixtures", "ir_ref.txt"), "w") as f:
    f.write("# generated by tests/ir/gen_fixtures.py (torch %s) — do not edit\n" % torch.__version__)
    f.write("\n".join(out) + "\n")
print("wrote", len(out) // 2, "tensors")
