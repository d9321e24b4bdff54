// pipeline.h — the one compile pipeline of a spec's policy, from the checked spec to the graph the
// trainer runs: lower → LoRA (when the model has a lora block) → [training: no logits output →
// linear_ce fusion → autodiff + cse + dce → train.recompute → cheap recomputation → the head's
// gradients beside its forward] → [precision = bf16: mixed precision] → products accumulating into
// their sums. `trlc run` (runtime/train/trainer.c) and `trlc check --memory` / `trlc kernels`
// (memplan_spec.h) both call it with the same options, so the program trained is the one planned
// (tests/run/test_same_graph.c), and a new pass is added once, here.
// Not here: the passes themselves (lower.h, lora.h, autodiff.h, linear_ce.h, recompute.h,
// autocast.h, gemm_acc.h); loading weights. The evaluation graph's head (pl_eval_head) and the
// teacher / reference graph (pl_aux_graph) are here too, so that `trlc check --memory` plans the
// programs the trainer runs beside the step.
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

// The evaluation graph's head, on pl_compile_policy's forward (train = false) before
// pl_finish_graph: per-pair objectives (dpo, orpo: per_pair) drop the "logits" output unless
// keep_logits; token objectives return "predictions" (the argmax, ir_head_predictions) instead of
// the (B, T, V) logits unless keep_logits; the loss becomes linear_ce. Returns 0, or -1 (reported
// through g's Diag).
int pl_eval_head(IrGraph *g, bool per_pair, bool keep_logits);

// The second model the trainer runs beside the policy: kd's teacher, dpo's reference (its `ref`
// model, or the policy itself: a frozen copy of its initial weights).
typedef enum PlAux { PL_AUX_NONE, PL_AUX_TEACHER, PL_AUX_REFERENCE } PlAux;
// Which one cs needs: *kind, and *model its index in cs->models (-1 for PL_AUX_NONE). Returns 0, or
// -1 after reporting (kd without a teacher).
int pl_aux_model(Diag *d, const CheckedSpec *cs, PlAux *kind, int *model);
// Lowers that model forward-only into g (initialised by the caller, f32) and res: objective none,
// packed as the spec packs, every param frozen; a reference whose head is a product returns each
// row's summed target log-prob "ref_logp" (B, 1) in place of "logits". *logits_out and *ref_out:
// the outputs' indexes (-1: absent; one of them is set). Stops before pl_finish_graph. Returns 0, or
// -1 after reporting.
int pl_aux_graph(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, PlAux kind, int model, IrGraph *g,
                 LowerResult *res, int *logits_out, int *ref_out);

#endif
