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
under autocast rounds lora_B's output and the scaled sum too: trlc rounds the sum once). A biased
projection (Qwen2's q, k, v) rounds x W^T + bf16(b) once: the bias rounded to bf16 (as autocast
casts it with the weight; its gradient flows to the fp32 bias unchanged), added to the fp32
product, the sum rounded (cuBLASLt's bias epilogue with a bf16 output); with LoRA that rounded
base output is the base of the LoRA sum above (peft adds lora to the base layer's output). The tied
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
  qwen2.batch.tokens / pos / labels   I32 (2, 10) a batch for tests/fixtures/tiny-qwen2 (vocab 256)
  qwen2.lora.<module>.lora_{A,B}.weight  F32 the adapter values (r=4, alpha=8, the seven projections)
  qwen2.full.loss, qwen2.full.grad.<param>  the biased tiny Qwen2 (q, k, v with biases), full FT
  qwen2.lora.loss, qwen2.lora.grad.<module>.lora_{A,B}.weight  the same with LoRA
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
    """A base projection (nn.Linear): x W^T (+ bf16(b) in fp32) rounded to bf16 once."""
    y = MixedLinear.apply(x, layer.weight)
    return Round.apply(y if layer.bias is None else y + Round.apply(layer.bias))


def decoder_linear(self, x):   # nn.Linear.forward of a decoder layer's projection
    return base_output(self, x)


def lora_linear(self, x, *args, **kwargs):   # peft's LoRA Linear.forward (one adapter, no dropout)
    a = self.active_adapters[0]
    base = base_output(self.base_layer, x)
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


QWEN2 = os.path.join(G.HERE, "..", "fixtures", "tiny-qwen2")
QWEN2_V = 256


def qwen2_batch(gen, rows):   # gen_run_fixtures.py's batch for a vocabulary of 256
    tokens = torch.randint(0, QWEN2_V, (rows, G.T), generator=gen)
    pos = torch.arange(G.T).unsqueeze(0).expand(rows, G.T).contiguous()
    labels = torch.full((rows, G.T), -100, dtype=torch.long)
    labels[:, :-1] = tokens[:, 1:]
    for r in range(rows):
        labels[r, : 1 + 2 * r] = -100
    return tokens, pos, labels


def qwen2_load():
    import transformers
    m = transformers.AutoModelForCausalLM.from_pretrained(QWEN2, torch_dtype=torch.float32,
                                                          attn_implementation="eager")
    return m.train()


def qwen2_lora():
    import peft
    cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=G.TARGETS, bias="none",
                          task_type="CAUSAL_LM")
    pm = peft.get_peft_model(qwen2_load(), cfg)
    g2 = torch.Generator().manual_seed(77)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g2))
    return pm


def adapter_name(n):
    return n.replace("base_model.model.", "", 1).replace(".default", "")


def sum_loss(model, tokens, pos, labels):
    logits = model(input_ids=tokens, position_ids=pos).logits.float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100, reduction="sum")


def main():
    torch.nn.functional.linear = mixed_linear   # nn.Linear.forward looks it up at each call
    import transformers.models.qwen3.modeling_qwen3 as Q
    import transformers.models.qwen2.modeling_qwen2 as Q2
    Q.eager_attention_forward = mixed_attention  # Qwen3Attention.forward looks it up at each call
    Q2.eager_attention_forward = mixed_attention
    import peft.tuners.lora.layer as L
    L.Linear.forward = lora_linear
    for cls in (Q.Qwen3Attention, Q.Qwen3MLP, Q2.Qwen2Attention, Q2.Qwen2MLP):   # not the head
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
    # the biased tiny Qwen2: LoRA (frozen embedding table in bf16, as above), then full FT
    gen = torch.Generator().manual_seed(4321)
    tokens, pos, labels = qwen2_batch(gen, G.B)
    t["qwen2.batch.tokens"], t["qwen2.batch.pos"], t["qwen2.batch.labels"] = tokens.int(), pos.int(), labels.int()
    count = (labels != -100).sum().item()
    pm = qwen2_lora()
    emb = pm.get_input_embeddings()
    emb.weight.data = bf16(emb.weight.data)
    for n, p in pm.named_parameters():
        if "lora_" in n:
            t["qwen2.lora." + adapter_name(n)] = p.detach().float().contiguous()
    loss = sum_loss(pm, tokens, pos, labels)
    loss.backward()
    t["qwen2.lora.loss"] = (loss.detach().double() / count).reshape(1)
    for n, p in pm.named_parameters():
        if "lora_" in n:
            t["qwen2.lora.grad." + adapter_name(n)] = (p.grad.detach() / count).float().contiguous()
    m = qwen2_load()
    loss = sum_loss(m, tokens, pos, labels)
    loss.backward()
    t["qwen2.full.loss"] = (loss.detach().double() / count).reshape(1)
    for n, p in m.named_parameters():
        if p.grad is not None:
            t["qwen2.full.grad." + n] = (p.grad.detach() / count).float().contiguous()
    out = os.path.join(G.OUT, "bf16.safetensors")
    save_file(t, out)
    print("wrote", out, "lora loss", t["lora.loss"].item(), "full loss", t["full.loss"].item(),
          "qwen2 lora loss", t["qwen2.lora.loss"].item(), "qwen2 full loss", t["qwen2.full.loss"].item())


if __name__ == "__main__":
    main()
