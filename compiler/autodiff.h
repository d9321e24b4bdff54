// autodiff.h — reverse-mode differentiation of an IrGraph, appending the backward nodes to the
// same graph; and the named IR pass pipeline ("lower" → "autodiff" → "cse" → "dce") that
// `trlc ir --after` uses.
// Gradients flow only toward trainable params (and inputs asked for); stop_gradient, integer
// tensors and comparisons block them. Not here: optimizer updates, fusion, memory planning.
#ifndef TRLC_AUTODIFF_H
#define TRLC_AUTODIFF_H
#include "ir.h"

// Differentiates g->loss (set with ir_set_loss). For every trainable param, appends one gradient
// node of the param's shape and dtype and registers it as an output named "grad:<param name>"
// with grad_of = the param (zeros when the loss does not depend on it). wrt lists extra nodes
// (inputs, or non-trainable params) to differentiate toward as well (may be NULL, n_wrt 0).
// Backward nodes keep the Loc of the forward node they come from. Returns 0, or -1 after
// reporting (no loss set, loss not scalar, an op without a backward rule).
int ad_backward(IrGraph *g, const IrId *wrt, int n_wrt);

// The gradient output registered for node x (a param or wrt input), or IR_NONE.
IrId ad_grad_of(const IrGraph *g, IrId x);

// Runs the passes in order up to and including `after` (one of ad_pass_names; NULL = all):
// "lower" (nothing: the graph as lowered), "autodiff" (ad_backward when a loss is set), "cse"
// (uses of duplicate nodes redirected to the first; the duplicates stay, unused), "dce".
// An unknown name is reported with a did-you-mean. Returns 0, or -1 on error.
int ad_run_passes(IrGraph *g, const char *after);
const char *const *ad_pass_names(int *n);

#endif
