// pipeline.h — the one compile pipeline of a spec's policy, from the checked spec to the graph the
// trainer runs: lower → LoRA (when the model has a lora block) → [training: no logits output →
// linear_ce fusion → autodiff + cse + dce → train.recompute → cheap recomputation → the head's
// gradients beside its forward] → [precision = bf16: mixed precision] → products accumulating into
// their sums. `trlc run` (runtime/train/trainer.c) and `trlc check --memory` / `trlc kernels`
// (memplan_spec.h) both call it with the same options, so the program trained is the one planned
// (tests/run/test_same_graph.c), and a new pass is added once, here.
// Not here: the passes themselves (lower.h, lora.h, autodiff.h, linear_ce.h, recompute.h,
// autocast.h, gemm_acc.h); the evaluation graph's head (predictions) and the teacher / reference
// graphs, which the trainer lowers itself and finishes with pl_finish_graph.
#ifndef TRLC_PIPELINE_H
#define TRLC_PIPELINE_H
#include <stdbool.h>
#include "arena.h"
#include "autocast.h"
#include "check.h"
#include "diag.h"
#include "gemm_acc.h"
#include "ir.h"
#include "load.h"
#include "lora.h"
#include "lower.h"
#include "recompute.h"

// What differs between the callers (all false / NULL: the evaluation graph, nothing kept).
typedef struct PlOptions {
    bool train;                  // the training graph: LoRA dropout, no `logits` output, the backward
                                 // and the passes after it; false: the forward only (evaluation)
    bool need_loss;              // an objective that lowers without a loss is an error (the trainer)
    LoraResult *lora;            // out, training graph: what LoRA made (NULL: not kept)
    RecomputeStats *recompute;   // out, training graph: what train.recompute did (NULL: not kept)
} PlOptions;

// Lowers the policy of cs into g (initialised by the caller, f32) and res, applies LoRA when the
// policy has a lora block and, with o->train, the training passes above. cse + dce renumber the
// graph: the ids in res and o->lora are mapped to the new numbering (an id of a node dce dropped
// becomes IR_NONE). Stops before mixed precision (pl_finish_graph). Returns 0, or -1 after
// reporting.
int pl_compile_policy(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, const PlOptions *o, IrGraph *g,
                      LowerResult *res);

// The last passes, on every graph the trainer runs (training, evaluation, teacher / reference):
// mixed precision when precision is "bf16" (ac: its stats, may be NULL), then products that
// accumulate into their sums (ga: its stats, may be NULL). Returns 0, or -1 after reporting (a
// caller that needs the graph clean checks g->errors).
int pl_finish_graph(IrGraph *g, const char *precision, AutocastStats *ac, GemmAccStats *ga);

#endif
