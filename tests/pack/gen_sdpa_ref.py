# gen_sdpa_ref.py — PyTorch reference for segment-masked attention (packed rows), written to
# sdpa_seg_ref.txt for test_sdpa_ref.c. Run with the Debian Python that has torch:
#   /usr/bin/python3 tests/pack/gen_sdpa_ref.py
# torch SDPA with an explicit boolean mask: query i sees key j iff j <= i and seg[i] == seg[j]
# (block-diagonal causal). GQA: k/v heads repeated (Hq / Hkv). Gradients of sum(out * w).
# Each line: name, count, values (float64, %.17g).
import os
import torch

torch.manual_seed(0)
B, HQ, HK, T, D = 2, 4, 2, 6, 5
q = torch.randn(B, HQ, T, D, dtype=torch.float64, requires_grad=True)
k = torch.randn(B, HK, T, D, dtype=torch.float64, requires_grad=True)
v = torch.randn(B, HK, T, D, dtype=torch.float64, requires_grad=True)
w = torch.randn(B, HQ, T, D, dtype=torch.float64)
seg = torch.tensor([[0, 0, 0, 1, 1, 2], [0, 1, 1, 1, 1, -1]], dtype=torch.int32)
causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
mask = (seg[:, :, None] == seg[:, None, :]) & causal        # (B, Tq, Tk)
rep = HQ // HK
kk, vv = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
out = torch.nn.functional.scaled_dot_product_attention(q, kk, vv, attn_mask=mask[:, None])
(out * w).sum().backward()
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdpa_seg_ref.txt")
with open(path, "w") as f:
    f.write("# torch %s scaled_dot_product_attention, block-diagonal causal mask; B=%d Hq=%d Hkv=%d T=%d D=%d\n"
            % (torch.__version__, B, HQ, HK, T, D))
    def put(name, t):
        vals = t.detach().reshape(-1).tolist()
        f.write("%s %d %s\n" % (name, len(vals), " ".join("%.17g" % x for x in vals)))
    put("seg", seg.double())
    for name, t in (("q", q), ("k", k), ("v", v), ("w", w), ("out", out), ("dq", q.grad), ("dk", k.grad),
                    ("dv", v.grad)):
        put(name, t)
