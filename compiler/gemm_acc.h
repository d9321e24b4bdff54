// gemm_acc.h — products that accumulate: rewrites add(p, q), where one side is a matrix product
// m = matmul(a, b) (or its scaling mul(m, c) / mul(c, m) by a scalar constant c) read by that add
// alone, into one matmul(a, b, other side) with alpha = c (ir.h, IR_MATMUL's addend): cuBLASLt
// computes alpha·op(a)op(b) + C in its epilogue, so the elementwise pass over the (..., M, N)
// result that only added it to something is gone — the LoRA branch's add to the base product in
// the forward, the gradient sums over the products that read a value in the backward. A chain
// add(add(m1, m2), m3) becomes m3 accumulating into (m2 accumulating into m1).
// bf16 (precision = bf16, autocast.h's linear outputs): a LoRA sum autocast leaves as
// cast_bf16(add(cast_f32(P), Y)), P the base product's bf16 result and Y the (scaled) LoRA
// product, becomes one matmul with bf16 C = P and a bf16 result: cuBLASLt's A/B bf16, C/D bf16,
// compute and scale fp32, D = bf16(alpha·acc + C). Rounding: the base output once (its own
// GEMM), then the sum once (fp32 alpha·acc + C rounded as D is stored) — PyTorch/peft rounds
// three times (base, lora, then scale and sum in bf16); the unfused graph (TRLC_GEMM_ACC=0) rounds
// as ours does, through the cast. A biased linear layer's bf16 output (autocast.h:
// cast_bf16(add(P, cast_f32(bb))), bb the bf16 bias) becomes one GEMM with a bf16 bias and a bf16
// D: cuBLASLt's bias epilogue (the bias of D's type, cublasLt.h), D = bf16(acc + bb), rounded
// once as the cast did; with LoRA its LoRA product then accumulates into that bf16 result as
// above (base + bias rounded, then the sum rounded: two roundings, the unfused graph's too).
// Otherwise only f32: the add, both sides and the product's result f32 of one shape (no broadcasting), or
// the other side a bias: f32 of shape (N) or (1, ..., 1, N) with N the product's last dim (a
// linear layer's bias, ir_linear_bias: Qwen2's q, k, v), which the product adds to every row
// (cuBLASLt's bias epilogue; one addend per product, so a product already holding one is not
// rewritten again). In LoRA + bias (lowered as add(add(x Wᵀ, b), s·(xA)Bᵀ)) the base product
// takes the bias and the LoRA product accumulates into it. The product and the mul not a graph
// output nor the loss. The add keeps its id; the product and the
// mul become dead and ir_dce removes them (node ids change: outputs, the loss and ir_renumbered
// follow). Runs after autodiff (which rejects an accumulating matmul), recompute and autocast.
// TRLC_GEMM_ACC=0 in the environment turns the pass off (A/B comparisons of plans and runs);
// TRLC_GEMM_ACC=nobias leaves the biases out (full addends only); 1 or unset: on; any other value
// is an error reported through g->diag (-1).
// Not here: executing the products (runtime/cpu exec_matmul, runtime/cuda run_gemm).
#ifndef TRLC_GEMM_ACC_H
#define TRLC_GEMM_ACC_H
#include "ir.h"

typedef struct GemmAccStats {
    int rewritten;   // adds now accumulating products
    int scaled;      // of them, the product scaled by a constant (alpha != 1: the LoRA branch)
    int bias;        // of them, the addend a bias (broadcast over rows: CUBLASLT_EPILOGUE_BIAS)
    int lowp;        // of them, bf16 results: LoRA sums (bf16 C and D) and biased linear layers
                     // (bf16 bias and D) (autocast.h's linear outputs)
    int removed;     // nodes ir_dce removed after the rewrite
} GemmAccStats;

// Rewrites g in place. Returns the number of adds rewritten (>= 0), or -1 after reporting (out of
// memory). st may be NULL.
int ir_fuse_gemm_accumulate(IrGraph *g, GemmAccStats *st);

#endif
