// recompute.h — activation recomputation (`train.recompute = true`, gradient checkpointing):
// rewrites a differentiated graph so that the backward pass recomputes each decoder layer's
// internal values from the layer's input instead of keeping them from the forward pass.
// A forward value belongs to layer N when it is computed from layer N's parameters (ir_layer_of:
// a param named `model.layers.N....`, LoRA and NF4 parts included) or from values of layer N;
// values computed from layer-less parameters (embeddings, the final norm, the head) or only from
// inputs belong to no layer. Kept: leaves, values of no layer, graph outputs, and every value a forward node of
// another layer reads (the residual stream between layers). Every other forward value a backward
// node reads is recomputed: a copy of its computation (back to kept values) is placed just before
// the first backward node that reads it, so the forward pass frees it after its last forward use
// and the backward pass holds one layer's values at a time. Dropout recomputes the same mask (its
// RNG is a hash of seed, site, step and element). Each copy is flagged `backward` and `recomputed`
// (ir.h; the cheap pass's rebuild keeps the flag), so under precision = bf16 autocast rounds it as
// the forward's value (autocast.h). Gradients are bit-identical to the plain graph (fp32 and bf16).
// Not here: choosing which layers to checkpoint (all are), offloading, fusion or memory planning
// (they run on the rewritten graph as on any other).
#ifndef TRLC_RECOMPUTE_H
#define TRLC_RECOMPUTE_H
#include "ir.h"

typedef struct RecomputeStats {
    int layers;        // decoder layers found (0: nothing to do)
    int recomputed;    // forward values now recomputed in the backward pass
    int kept;          // forward values of a layer that stay (read across layers, outputs)
} RecomputeStats;

// Rewrites g (after ad_backward; before or after cse/dce) in place. Forward node ids do not change;
// backward nodes are renumbered (outputs, the loss and ir_renumbered follow). Returns 0, or -1
// after reporting (out of memory, a graph whose backward nodes do not all follow the forward
// ones). stats may be NULL.
int ir_recompute(IrGraph *g, RecomputeStats *stats);

// Always on (every training graph, after ir_recompute when that runs): a forward value the
// backward reads is recomputed in the backward instead of kept when it is a short chain of cheap
// ops over values the backward has anyway. Cheap: every elementwise op (ir.h: unary and binary
// arithmetic, comparisons, where, cast, dropout — the same mask regenerated), reshape and
// permute; never a reduction, product or attention. Had anyway: leaves, graph outputs, constants
// (full, arange: recomputed), a value a backward node reads itself (and that is not recomputed),
// and the output of an attention whose backward reads its saved state (fuse.c pairs them: the same
// q, k, v, or copies of them: fuse.c compares its inputs as values). At most RECOMPUTE_MAX_CHAIN ops on any path down to those. So nothing new is held: the
// backward only reads what it read before, or less; and a copy that would read kept values after
// the backward's last read of them is made only when they are no larger than the value it
// replaces (they are held where that value was), so no step holds more bytes than before.
// What this recomputes in a decoder layer:
// LoRA's dropout(rmsnorm(x)) for q, k, v, gate and up (from x and the norm's rstd, which the
// norm's backward reads), w * (x * rstd) itself where full fine-tuning's products read it, and
// x * rstd; dropout(silu(gate) * up) for down (or silu(gate) * up without dropout) from gate and
// up; dropout(merge_heads(attention output)) for o (from the attention's saved output).
// An input a library op's backward shares with its forward is never recomputed (attention's q, k,
// v; the head's linear_ce x): the backward would read a copy, no longer pair with the forward
// (fuse.c) and redo its work; so q and k after rope stay (TRLC_RECOMPUTE_ROPE=1 recomputes rope
// too: attention's backward reads the copies and still pairs with its forward, since fuse.c
// compares q, k, v as values; off by default, each layer's two rope copies cost two library calls
// and two kernels: docs/kernels.md). A small value a larger copy reads
// (the norm's rstd, B x T x 1) is read from the forward there (its own readers get a copy).
// Each copy is placed before its first backward reader (its recomputed inputs first) and flagged
// `backward` + `recomputed`: autocast rounds it as the forward's value, so the gradients are
// bit-identical (fp32 and bf16). The fuser puts the copies into the backward kernels that read
// them. A copy made before a product or a library op (a step no generated kernel computes) is made
// again for an elementwise or reduction reader after that step (its copied inputs too, those that
// are ops a kernel computes): SwiGLU's silu(gate), copied for the down projection's LoRA gradient
// before its GEMMs and again for up's gradient after them, so the fuser computes it in the
// gradient's kernel instead of writing the first copy out and reading it back (fuse.c). TRLC_RECOMPUTE_CHAINS=0 in the environment restricts the pass to its first version (a
// one-input elementwise op of a kept value: silu(gate) beside gate), to compare; any value but 0
// or 1 is an error. Returns 0 or -1 (reported); *recomputed (may be NULL): how many values.
int ir_recompute_cheap(IrGraph *g, int *recomputed);

enum { RECOMPUTE_MAX_CHAIN = 6 };   // the default bound on a recomputed chain (ops)

typedef struct RecomputeCheapOptions {
    bool chains;       // chains of elementwise ops, views (and rope) as above; false: one-input ops
    bool rope;         // rope too (and so attention's q, k: its backward reads copies, still paired)
    int max_chain;     // ops on the longest recomputed path
} RecomputeCheapOptions;

// ir_recompute_cheap with explicit options (no environment).
int ir_recompute_cheap_opts(IrGraph *g, const RecomputeCheapOptions *o, int *recomputed);

#endif
