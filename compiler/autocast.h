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
// cast), the backward's gradients are fp32. Everything else — norms, softmax, the loss, gradients,
// trainable parameters (the fp32 master weights) and the optimizer — stays fp32.
// Not here: fp16 (needs loss scaling), bf16 storage of other activations.
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
} AutocastStats;

// Rewrites g in place (after autodiff, recompute, cse/dce). Node ids change: outputs, the loss and
// ir_renumbered follow. Returns 0, or -1 after reporting. stats may be NULL.
int ir_autocast_bf16(IrGraph *g, AutocastStats *stats);

// Rounds n floats to bf16 values (round to nearest even; the value stays a float), as the cast
// does: for a retyped frozen parameter's data before it is bound.
void ac_round_bf16(float *x, int64_t n);

#endif
