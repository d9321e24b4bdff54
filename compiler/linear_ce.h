// linear_ce.h — the head and its loss as one op: rewrites cross_entropy(matmul(x, w, trans_b),
// labels) whose logits nothing else reads (a training graph: the trainer drops the logits output)
// into linear_ce(x, w, labels) (ir.h, IR_LINEAR_CE), whose backends never hold the (..., V) logits
// of the whole batch: a chunk of rows at a time, recomputed in the backward (one more head
// product per backward op; for a 150K vocabulary at 1024 tokens the full fp32 logits are 620 MB).
// Run it before autodiff. Node ids do not change (the caller may hold ids of the lowered graph):
// the matmul, now read by nothing, becomes a dead scalar constant that dce removes.
// Not here: a head with LoRA or a bias (an add after the product: left as it is), KD's and
// GRPO's losses (log_softmax / scaled logits, not cross_entropy).
#ifndef TRLC_LINEAR_CE_H
#define TRLC_LINEAR_CE_H
#include "ir.h"

// Whether node id is a head's product matmul(x, w, trans_b): w (V, H) with a constant V, x
// (..., H) of w's dtype; *x and *w get them.
bool ir_head_product(const IrGraph *g, IrId id, IrId *x, IrId *w);

// Returns how many cross-entropies were rewritten (0 or more), or -1 after reporting.
int ir_fuse_linear_ce(IrGraph *g);

// After autodiff: for each linear_ce whose backward ops' upstream gradient does not depend on its
// loss (a constant: sft's and pretrain's summed loss), moves the nodes that gradient needs from
// after the linear_ce to just before it, so that the fuser can pair the backward ops with the
// forward (fuse.h FusePlan.lib_leader: one logits product per chunk for all of them). Node ids
// change (renumbered as ir_install_nodes does). Returns how many nodes moved, or -1 after reporting.
int ir_linear_ce_hoist_grads(IrGraph *g);
// Whether b is a backward op (linear_ce_bwd_x / _bwd_w) of linear_ce f: the same x, w, labels,
// label smoothing and ignored label.
bool ir_linear_ce_backward_of(const IrNode *f, const IrNode *b);

// For an evaluation graph: when its output "logits" is matmul(x, w, trans_b), adds the output
// "predictions" = linear_argmax(x, w) (i32, the predicted token per position) and, unless
// keep_logits, drops "logits" — so that ir_fuse_linear_ce can then take the loss too and the
// (..., V) logits never exist. Node ids do not change (one node is appended). Returns 1 when
// done, 0 when the graph has no such output, -1 after reporting.
int ir_head_predictions(IrGraph *g, bool keep_logits);

#endif
