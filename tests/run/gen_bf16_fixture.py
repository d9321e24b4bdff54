#!/usr/bin/python3
"""bf16 mixed-precision reference for tests/run (run with /usr/bin/python3 tests/run/gen_bf16_fixture.py;
torch, transformers and peft as gen_run_fixtures.py uses, whose model, adapters and batch it reuses).

trlc's `precision = bf16` (compiler/autocast.h): every matrix product takes bf16 operands and
accumulates in fp32 — forward and backward products alike; a forward linear layer's output is
stored in bf16 (as PyTorch autocast holds it), gradients and the backward products' results stay
fp32; attention, norms, the loss and everything else compute in fp32. Here the same scheme,
written independently in PyTorch: every nn.Linear (the base projections, LoRA's A and B) goes
through a function that rounds both operands to bf16 (round to nearest even) and multiplies in
fp32, and whose backward rounds the incoming gradient and the saved operands the same way before
its two products. Linear outputs (trlc's rule, autocast.h): a base projection's output is rounded
to bf16 (the rounding's gradient is the identity: the backward reads the rounded value where it
reads the output — the q/k norms, SwiGLU); with LoRA, base + scaling * lora_B(lora_A(x)) is
computed in fp32 from the rounded base and the fp32 lora_B product and rounded to bf16 once (peft
under autocast rounds lora_B's output and the scaled sum too: trlc rounds the sum once). The tied
head's logits stay fp32 (trlc's linear_ce: bf16 operands, fp32 logits and loss). Attention reads bf16 q, k, v with flash attention's rounding points and returns its
output rounded to bf16, as PyTorch's flash attention does under autocast (trlc's compiler/ir.h,
IR_SDPA): a custom autograd function below, written from that contract with torch ops, replaces
transformers' eager attention.
The frozen embedding table of the LoRA case is stored in bf16 (its rows are bf16 values), as
trlc stores a frozen table. As in trlc, the backward starts from the *summed* loss over the target tokens (the gradients are
divided by their count afterwards): under bf16 rounding that is not the same as differentiating
the mean (bf16(g / n) != bf16(g) / n unless n is a power of two).

fixtures/bf16.safetensors
  lora.loss                F64 (1,) the LoRA case of step.safetensors (same adapters, same batch:
                           its batch.tokens / pos / labels) under bf16 mixed precision
  lora.grad.<module>.lora_{A,B}.weight   F32 gradients of the summed loss / the target count
  full.loss                F64 (1,) full fine-tuning of the same model and batch
  full.grad.<param>        F32
"""
import os
import sys
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_run_fixtures as G  # noqa: E402


def bf16(x):
    return x.to(torch.bfloat16).to(torch.float32)


class Round(torch.autograd.Function):
    """A linear output stored in bf16: rounded forward, the identity backward (trlc rounds the
    forward value; its gradient flows through unchanged)."""

    @staticmethod
    def forward(ctx, x):
        return bf16(x)

    @staticmethod
    def backward(ctx, g):
        return g


class MixedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        xr, wr = bf16(x), bf16(w)
        ctx.save_for_backward(xr, wr)
        return xr @ wr.t()

    @staticmethod
    def backward(ctx, gy):
        xr, wr = ctx.saved_tensors
        g = bf16(gy)
        gx = g @ wr if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            gw = g.reshape(-1, g.shape[-1]).t() @ xr.reshape(-1, xr.shape[-1])
        return gx, gw


class MixedAttention(torch.autograd.Function):
    """q (B, Hq, T, D), k / v (B, Hkv, T, D) fp32 in, attention out (B, Hq, T, D) bf16 values.
    S = scale q k^T (bf16 q, k; fp32 sums), P = softmax(S), out = bf16(bf16(P) v). Backward:
    o = bf16(bf16(P) v) (the output as stored), delta = dO . o, dV = bf16(P)^T bf16(dO),
    dP = bf16(dO) v^T, dS = P (dP - delta),
    dQ = scale bf16(dS) k, dK = scale bf16(dS)^T q."""

    @staticmethod
    def forward(ctx, q, k, v, visible, scale):
        grp = q.shape[1] // k.shape[1]
        qr = bf16(q)
        kr = bf16(k).repeat_interleave(grp, dim=1)
        vr = bf16(v).repeat_interleave(grp, dim=1)
        s = (qr @ kr.transpose(-1, -2)) * scale
        s = s.masked_fill(~visible, float("-inf"))
        p = torch.softmax(s, dim=-1)
        ctx.save_for_backward(qr, kr, vr, p)
        ctx.scale, ctx.grp = scale, grp
        return bf16(bf16(p) @ vr)

    @staticmethod
    def backward(ctx, g):
        qr, kr, vr, p = ctx.saved_tensors
        scale, grp = ctx.scale, ctx.grp
        pr, gr = bf16(p), bf16(g)
        delta = (g * bf16(pr @ vr)).sum(-1, keepdim=True)
        dv = pr.transpose(-1, -2) @ gr
        ds = bf16(p * (gr @ vr.transpose(-1, -2) - delta))
        dq = scale * (ds @ kr)
        dk = scale * (ds.transpose(-1, -2) @ qr)

        def per_kv_head(x):   # (B, Hq, T, D) -> (B, Hkv, T, D): sum over each group's query heads
            b, h, t, d = x.shape
            return x.reshape(b, h // grp, grp, t, d).sum(2)
        return dq, per_kv_head(dk), per_kv_head(dv), None, None


def mixed_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    t = key.shape[-2]
    visible = attention_mask[:, :, :, :t] == 0 if attention_mask is not None else \
        torch.ones(query.shape[-2], t, dtype=torch.bool).tril()
    out = MixedAttention.apply(query, key, value, visible, scaling)
    return out.transpose(1, 2).contiguous(), None


def mixed_linear(x, w, b=None):   # the head's logits: fp32 (unrounded), as trlc's linear_ce
    y = MixedLinear.apply(x, w)
    return y if b is None else y + b


def base_output(layer, x):
    """A base projection (nn.Linear): its output rounded to bf16, then its bias (fp32) added."""
    y = Round.apply(MixedLinear.apply(x, layer.weight))
    return y if layer.bias is None else y + layer.bias


def decoder_linear(self, x):   # nn.Linear.forward of a decoder layer's projection
    return base_output(self, x)


def lora_linear(self, x, *args, **kwargs):   # peft's LoRA Linear.forward (one adapter, no dropout)
    a = self.active_adapters[0]
    base = Round.apply(MixedLinear.apply(x, self.base_layer.weight))
    h = MixedLinear.apply(self.lora_dropout[a](x), self.lora_A[a].weight)   # rounded as lora_B's operand
    y = MixedLinear.apply(h, self.lora_B[a].weight)                          # fp32
    return Round.apply(base + y * self.scaling[a])


def wrap_init(init):
    """After a Qwen3 attention / MLP block is built, its nn.Linear children return bf16 outputs."""
    def wrapped(self, *a, **k):
        init(self, *a, **k)
        for m in self.children():
            if isinstance(m, torch.nn.Linear):
                m.forward = decoder_linear.__get__(m)
    return wrapped


def sum_loss(model, tokens, pos, labels):
    logits = model(input_ids=tokens, position_ids=pos).logits.float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100, reduction="sum")


def main():
    torch.nn.functional.linear = mixed_linear   # nn.Linear.forward looks it up at each call
    import transformers.models.qwen3.modeling_qwen3 as Q
    Q.eager_attention_forward = mixed_attention  # Qwen3Attention.forward looks it up at each call
    import peft.tuners.lora.layer as L
    L.Linear.forward = lora_linear
    for cls in (Q.Qwen3Attention, Q.Qwen3MLP):    # the decoder layers' projections (not the head)
        cls.__init__ = wrap_init(cls.__init__)
    gen = torch.Generator().manual_seed(1234)
    tokens, pos, labels = G.batch(gen, G.B)     # the first batch gen_run_fixtures.py draws
    t = {}
    count = (labels != -100).sum().item()
    pm = G.lora_model(False)
    emb = pm.get_input_embeddings()   # a frozen table is stored in bf16 (the tied head reads it too)
    emb.weight.data = bf16(emb.weight.data)
    loss = sum_loss(pm, tokens, pos, labels)
    loss.backward()
    t["lora.loss"] = (loss.detach().double() / count).reshape(1)
    for n, p in pm.named_parameters():
        if "lora_" in n:
            name = n.replace("base_model.model.", "", 1).replace(".default", "")
            t["lora.grad." + name] = (p.grad.detach() / count).float().contiguous()
    m = G.load()
    loss = sum_loss(m, tokens, pos, labels)
    loss.backward()
    t["full.loss"] = (loss.detach().double() / count).reshape(1)
    for n, p in m.named_parameters():
        if p.grad is not None:
            t["full.grad." + n] = (p.grad.detach() / count).float().contiguous()
    out = os.path.join(G.OUT, "bf16.safetensors")
    save_file(t, out)
    print("wrote", out, "lora loss", t["lora.loss"].item(), "full loss", t["full.loss"].item())


if __name__ == "__main__":
    main()
