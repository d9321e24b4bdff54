// autocast.h — bf16 mixed precision (`train.precision = bf16`): rewrites a differentiated graph
// so that every matrix product takes bf16 operands and accumulates and keeps its result in fp32
// (cuBLASLt's bf16 tensor-core path; PyTorch autocast rounds operands the same way). An f32
// operand becomes a cast to bf16 (one per value, shared by every product that reads it: the
// forward's and the backward's — also through a reshape, which becomes a reshape of the cast; a
// product, or a rope, read only by products or attention writes its result in bf16 instead of being cast), except that a frozen parameter or a dequantized (NF4) weight read
// only by products is itself retyped to bf16: it is stored in bf16 (half the memory) and the
// caller rounds a frozen parameter's values once (ac_round_bf16). A frozen embedding table (read
// by products too when tied to the head, or not) is stored in bf16 the same way: the rows it
// gives are the bf16 values, widened to fp32 (as a model loaded in bf16 gives them). Attention (forward and
// backward) reads q, k, v the same way, as bf16 casts, with flash attention's rounding points
// (ir.h, IR_SDPA): the forward writes its output in bf16 (the fp32 result rounded, as PyTorch's
// flash attention returns it; a reader other than a product gets it back in fp32 through a
// cast), the backward's gradients are fp32.
// Linear outputs are bf16, as PyTorch autocast holds them (a bf16 model's F.linear, peft's LoRA
// sum): in the forward pass (not a backward node, not a graph output or the loss), (1) a product
// that something other than a product reads (a linear layer's x Wᵀ: q, k, v, o, gate, up, down,
// and a head's logits when they are a product) writes its result in bf16 (cuBLASLt's fp32 sums
// rounded once as they are stored); (2) a LoRA sum — add(base, s·lora) or add(base, lora) with
// both products read there alone — is bf16: the base product rounds its result as in (1), the
// LoRA product keeps its fp32 result, the add runs in fp32 and a cast rounds the sum, so the sum
// is rounded once, not twice as in PyTorch (lora rounded to bf16, then scaled and added in bf16:
// within ~1 bf16 ulp); ir_fuse_gemm_accumulate (gemm_acc.h) then folds the LoRA product and the
// add into one GEMM with bf16 C and D (base + s·lora in fp32, rounded once: the same numbers); a
// reshape of a linear output is the reshape of its bf16 value (q, k, v's (B, T, H, D) view).
// A non-product reader of a linear output (the q/k norms, SwiGLU's silu and mul, the residual
// add, a bias add) reads it as bf16 and computes in fp32: through a cast to f32 emitted just
// before its first reader in its own phase — one for the forward's readers, another for the
// backward's — which the fuser folds into the reader's kernel, so only the bf16 value is kept for
// the backward (SwiGLU's and the q/k norms' backward read gate, up, q, k). A forward elementwise
// op on one linear output whose first reader is in the forward (SwiGLU's silu(gate)) is emitted
// just before that reader, with its widening cast (after up's products: one kernel for silu, the
// mul and both casts, with no fusion rewrite needed).
// A linear layer with a bias (Qwen2's q, k, v: add(z, b), b f32 (N) or (1, ..., 1, N), z a forward
// product or a LoRA sum read by that add alone; not an output) writes bf16 too: the bias is read
// as a bf16 operand (a frozen bias retyped to bf16 and rounded once by the caller, a trainable
// one cast each step from its fp32 master like LoRA's factors; its gradient, the row sum of the
// output's, stays fp32), and (3) without LoRA the output is bf16(x Wᵀ + bf16(b)): the fp32
// product plus the widened bf16 bias, rounded once by a cast — cuBLASLt's bias epilogue with a
// bf16 D, whose bias is of D's type (cublasLt.h, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: the bias
// has D's type but for the integer and fp8 kernels), added in fp32 before D is rounded; and as
// PyTorch autocast's F.linear (the bias cast to bf16 with the weight; cuBLASLt's epilogue, or
// addmm's beta = 1 over the bias rows, rounds acc + b once); (4) with LoRA, base = bf16(x Wᵀ +
// bf16(b)) as in (3), then bf16(base + s·lora) in fp32 as the unbiased LoRA sum (2): two
// roundings, peft's base output being that same bf16 base (peft rounds lora's and the scaled sum
// as in (2)). gemm_acc folds (3) into one GEMM with a bf16 bias and a bf16 D, and (4)'s LoRA
// product accumulates into that as in (2). The residual stream stays fp32 (our contract: the residual adds read the bf16 o
// and down outputs widened and write fp32), and so does everything else — norms, softmax, the
// loss, gradients (a backward product's result is fp32 unless only products read it), trainable
// parameters (the fp32 master weights) and the optimizer.
// Recomputed values (train.recompute, recompute.h): a backward node flagged `recomputed` (ir.h) is
// a copy of a forward value and follows the forward's rules above (linear outputs, LoRA sums,
// biased linear layers), as PyTorch's checkpointing re-runs the forward under the same autocast:
// the backward reads bit for bit the values the forward had. Where its casts go (the backward's
// widening casts, no deferral) still follows its `backward` flag.
// Not here: fp16 (needs loss scaling), bf16 storage of other activations (a norm's or SwiGLU's
// output, the residual stream).
#ifndef TRLC_AUTOCAST_H
#define TRLC_AUTOCAST_H
#include <stdint.h>
#include "ir.h"

typedef struct AutocastStats {
    int products;      // matrix products now on bf16 operands
    int casts;         // casts to bf16 inserted
    int retyped;       // frozen params / dequantized weights now stored in bf16
    int attention;     // attention forwards now on bf16 q, k, v
    int reshaped;      // operands that are reshapes of a cast value (no cast of their own)
    int lowp_results;  // products read only by products: their result is written in bf16
    int lowp_ropes;    // ropes read only by attention (q, k): their result is written in bf16
    int lowp_attention; // attention forwards on bf16 q, k, v writing their output in bf16
    int lowp_linear;   // linear outputs: forward products read by non-products, written in bf16
    int lowp_sums;     // linear outputs: LoRA sums (base + s·lora) rounded to bf16 by a cast
    int lowp_biased;   // linear outputs: biased linear layers (x Wᵀ + b, with LoRA or not) in bf16
    int widened;       // casts of linear outputs back to f32 for their non-product readers
    int deferred;      // forward elementwise ops on one linear output moved to their first reader
} AutocastStats;

// Rewrites g in place (after autodiff, recompute, cse/dce). Node ids change: outputs, the loss and
// ir_renumbered follow. Returns 0, or -1 after reporting. stats may be NULL.
int ir_autocast_bf16(IrGraph *g, AutocastStats *stats);

// Rounds n floats to bf16 values (round to nearest even; the value stays a float), as the cast
// does: for a retyped frozen parameter's data before it is bound.
void ac_round_bf16(float *x, int64_t n);

#endif
