#!/usr/bin/python3
"""attn_torch.py — PyTorch's attention at the shape test_gpu_attention_tc --bench times trlc's at.

Qwen3-0.6B's attention (Hq 16, Hkv 8, D 128, causal), bf16 q, k, v of B x T, through
torch.nn.functional.scaled_dot_product_attention (PyTorch picks its kernel: flash attention on
Hopper for bf16 and D 128) on k, v already expanded to 16 heads (what transformers' sdpa path does
with repeat_kv before the call; the expansion is not timed). Forward, and forward + backward
(backward = the difference), CUDA events, the mean of 10 after 3 warm-ups — as the C bench — and
TFLOP/s counted the same way: the causal half of 4 B Hq T^2 D (forward), 2.5 times that (backward).
PyTorch's backward is flash attention 2's: delta, then one kernel over key blocks with dQ added by
atomics (5 products) -- what trlc's fused backward (trlc_attention_tc_backward_fused, the default)
does; run_all.sh's attn_bench sets this line's backward against both trlc's fused and split
(TRLC_ATTN_BWD=split: 7 products) backwards, which test_gpu_attention_tc --bench times.
Prints one line bench/gpu_train/run_all.sh's attn_bench reads:
    torch sdpa: forward 0.123 ms (45.6 TFLOP/s), backward 0.456 ms (78.9 TFLOP/s) [flash]
Usage: attn_torch.py [B T]   (default 4 1024). Exit 77 when PyTorch has no CUDA device.
"""
import sys

import torch
import torch.nn.functional as F


def main():
    B = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    T = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    if not torch.cuda.is_available():
        print("torch sdpa: no CUDA device")
        return 77
    Hq, Hkv, D = 16, 8, 128
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(0)
    q = (4 * torch.rand(B, Hq, T, D, device=dev, generator=g) - 2).to(torch.bfloat16).requires_grad_()
    k = (4 * torch.rand(B, Hkv, T, D, device=dev, generator=g) - 2).to(torch.bfloat16)
    v = (4 * torch.rand(B, Hkv, T, D, device=dev, generator=g) - 2).to(torch.bfloat16)
    k = k.repeat_interleave(Hq // Hkv, dim=1).requires_grad_()
    v = v.repeat_interleave(Hq // Hkv, dim=1).requires_grad_()
    go = torch.rand(B, Hq, T, D, device=dev, generator=g).to(torch.bfloat16)

    def fwd():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def fwd_bwd():
        o = fwd()
        o.backward(go)

    def timed(fn):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(10):
            fn()
        b.record()
        torch.cuda.synchronize()
        return a.elapsed_time(b) / 10

    with torch.no_grad():
        tf = timed(fwd)
    tfb = timed(fwd_bwd)
    tb = max(tfb - tf, 1e-9)
    fl = 4.0 * B * Hq * T * T * D / 2
    kernel = "?"
    try:   # which kernel PyTorch chose, from the profiler's kernel names
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fwd_bwd()
            torch.cuda.synchronize()
        names = " ".join(e.name for e in prof.events()).lower()
        kernel = "flash" if "flash" in names else "efficient" if "mem_eff" in names or "fmha" in names else "math?"
    except Exception as e:   # the profiler is optional here
        kernel = f"unknown: {type(e).__name__}"
    print(f"torch sdpa: forward {tf:.3f} ms ({fl / (tf * 1e-3) * 1e-12:.1f} TFLOP/s), "
          f"backward {tb:.3f} ms ({2.5 * fl / (tb * 1e-3) * 1e-12:.1f} TFLOP/s) [{kernel}] "
          f"(B={B}, T={T}, Hq={Hq}, Hkv={Hkv} expanded, D={D}, causal, torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
