#!/usr/bin/python3
"""bf16 mixed-precision reference for tests/run (run with /usr/bin/python3 tests/run/gen_bf16_fixture.py;
torch, transformers and peft as gen_run_fixtures.py uses, whose model, adapters and batch it reuses).

trlc's `precision = bf16` (compiler/autocast.h): every matrix product takes bf16 operands and
accumulates and keeps its result in fp32 — forward and backward products alike; attention, norms,
the loss and everything else stay fp32. Here the same scheme, written independently in PyTorch:
every nn.Linear (the base projections, LoRA's A and B, the tied lm_head) goes through a function
that rounds both operands to bf16 (round to nearest even) and multiplies in fp32, and whose
backward rounds the incoming gradient and the saved operands the same way before its two
products. Eager attention's matmuls are not linears: they stay fp32, as trlc's attention does.
As in trlc, the backward starts from the *summed* loss over the target tokens (the gradients are
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


def mixed_linear(x, w, b=None):
    y = MixedLinear.apply(x, w)
    return y if b is None else y + b


def sum_loss(model, tokens, pos, labels):
    logits = model(input_ids=tokens, position_ids=pos).logits.float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100, reduction="sum")


def main():
    torch.nn.functional.linear = mixed_linear   # nn.Linear.forward looks it up at each call
    gen = torch.Generator().manual_seed(1234)
    tokens, pos, labels = G.batch(gen, G.B)     # the first batch gen_run_fixtures.py draws
    t = {}
    count = (labels != -100).sum().item()
    pm = G.lora_model(False)
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
