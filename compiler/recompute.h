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
// backward reads that is a one-input elementwise op (silu, sigmoid, exp, dropout ...) of a value
// the backward has anyway (a leaf, or a value it reads itself) is recomputed in the backward
// instead of kept: SwiGLU's silu(gate) beside gate, for one. The fuser puts the copy into the
// backward kernel that reads it. Bit-identical gradients (the same op on the same value). Returns
// 0 or -1 (reported); *recomputed (may be NULL): how many values.
int ir_recompute_cheap(IrGraph *g, int *recomputed);

#endif
