// lower.h — lowering: the graph language (stdlib/*.trl and user defs) → an IrGraph.
// Evaluates config expressions, runs an arch's body to declare its parameters (HF checkpoint
// names: `model.layers.3.mlp.up_proj.weight`), inlines defs (depth-limited), unrolls `for` over
// constant ranges and `if` on config values, maps calls to IR builders, and adds the objective's
// loss (a SUM over target tokens) as the graph's loss. Errors are reported at the spec or stdlib
// location through the Diag, with notes naming the calls that led there.
// Not here: parsing (load.h), spec validation (check.h), autodiff and later passes (autodiff.h),
// LoRA / quantization rewriting (a later pass; every linear node carries its module path in
// IrNode.name so that the rewrite can find it).
#ifndef TRLC_LOWER_H
#define TRLC_LOWER_H
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "check.h"
#include "diag.h"
#include "hfconfig.h"
#include "ir.h"
#include "load.h"

// The graph inputs lowering creates (all i32):
//   tokens (B, T)  token ids
//   pos    (B, T)  position ids (restart at 0 for each packed sequence; DsBatch.positions)
//   labels (B, T)  next-token targets, ALREADY SHIFTED: labels[b, t] is the token to predict from
//                  position t (DsBatch.targets), -100 where nothing is learned (prompt, padding)
#define LOWER_INPUT_TOKENS "tokens"
#define LOWER_INPUT_POS "pos"
#define LOWER_INPUT_LABELS "labels"
// With LowerOptions.pack only:
//   seq    (B, T)  segment ids (DsBatch.seq_id): every causal self-attention lets query i see key j
//                  only where seq[b, i] == seq[b, j], so packed sequences never attend to each other
#define LOWER_INPUT_SEQ "seq"
#define LOWER_IGNORE_INDEX (-100)

// How a parameter is initialised for a model trained from scratch (`= normal(std)`, `= ones`,
// `= zeros` in its declaration). Models loaded `from` a checkpoint ignore it.
typedef enum LowerInit { LOWER_INIT_NONE = 0, LOWER_INIT_NORMAL, LOWER_INIT_ONES, LOWER_INIT_ZEROS } LowerInit;

typedef struct LowerParam {
    IrId id;                  // the IR_PARAM node
    const char *name;         // HF path, e.g. "model.layers.0.self_attn.q_proj.weight"
    LowerInit init;
    double std;               // LOWER_INIT_NORMAL
    int layer;                // N of "model.layers.N." or -1
    bool trainable;
    Loc loc;                  // the `param` declaration
} LowerParam;

// What to lower: an architecture and its configuration. lower_model() fills this from a checked
// spec; tests and tools may fill it directly.
typedef struct LowerModel {
    const char *name;         // the model block's label ("policy"), for messages; may be NULL
    const char *arch;         // arch name: defined in a loaded module, or a stdlib module of that name
    CheckedConfig cfg;        // cfg.vocab, cfg.hidden ... as the stdlib reads them
    const HfConfig *hf;       // config.json when the model comes `from` a checkpoint, else NULL:
                              // adds attention_bias, mlp_bias and rope scaling to cfg
    const Ast *config_block;  // the spec's `config { }` (extra keys for custom archs), or NULL
    int freeze_lo, freeze_hi; // layers [lo, hi) are not trainable (lo == hi: none)
    bool frozen;              // no parameter is trainable (a teacher or reference model)
    Loc loc;                  // where model-level errors point (the model block's label)
} LowerModel;

typedef struct LowerOptions {
    // The objective whose loss becomes the graph's loss:
    //   "sft", "pretrain"  sum over target tokens of the cross-entropy (stdlib sft_loss / pretrain_loss)
    //   "dpo"              preference pairs: the batch holds 2B rows, chosen rows [0, B) then the
    //                      rejected [B, 2B) (DsBatch order); an extra input `ref_logp` (2B, 1) holds
    //                      the reference model's sequence log-probs; the loss is the SUM over pairs
    //                      (stdlib dpo_loss)
    //   "orpo"             odds-ratio preference optimisation (stdlib orpo_loss): the batch as for
    //                      dpo, no reference; an extra input `nll_labels` (2B, T): the chosen rows
    //                      with every next token a target (prompt too, as TRL's NLL), the rejected
    //                      rows as `labels`; the loss is the SUM over pairs (B * TRL's batch loss);
    //                      the output "orpo_metrics" (1, 6): TRL's metrics summed over the pairs
    //                      (stdlib orpo_metrics)
    //   "grpo"             policy-gradient on B sampled completions (stdlib grpo_loss): extra
    //                      inputs `advantages` (B, 1), `old_logp` and `ref_logp` (B, T) per-token
    //                      log-probs of the labels under the sampling policy and the reference
    //                      model, `weight` (B, T) per-token weights; the loss is
    //                      SUM(weight * per-token loss) over target tokens. The trainer picks the
    //                      weights and divisor by loss kind: grpo 1/len_i and the number of
    //                      sequences; dr_grpo 1 and B * max_new; dapo 1 and the target tokens.
    //   "kd"               distillation (Hinton): extra input `teacher_logits` (B, T, vocab);
    //                      loss = alpha T^2 KL(teacher_T || student_T) + (1 - alpha) CE, summed
    //                      over target tokens (stdlib kd_loss)
    //   "logp"             no loss: the output "logp" (B, 1) = sequence log-probs of the labels
    //                      (what a reference model computes for dpo)
    //   "token_logp"       no loss: the output "token_logp" (B, T) = per-token log-probs of the
    //                      labels, 0 where ignored (old_logp / ref_logp for grpo)
    //   NULL / "none"      the forward only (the output "logits")
    const char *objective;
    double label_smoothing;   // sft, pretrain, dpo
    double beta;              // dpo, orpo (default 0.1), grpo (KL coefficient)
    double clip;              // grpo: ratio clipped to [1 - clip, 1 + clip] (default 0.2)
    double temperature;       // grpo, token_logp, kd: logits are divided by it (default 1)
    double alpha;             // kd: weight of the distillation term (default 0.5)
    const char *dpo_loss;     // dpo: "sigmoid" (default) | "hinge" | "ipo" (length-normalised)
    int max_def_depth;        // nested def calls allowed (0 → 64)
    bool pack;                // rows hold packed sequences: add the input `seq` (above) and mask
                              // every causal self-attention by it (set from the spec's data blocks)
} LowerOptions;

void lower_options_init(LowerOptions *o);
// The options a checked spec asks for: its objective (sft, pretrain, dpo, orpo, grpo, kd; others → "none").
void lower_options_from_spec(const CheckedSpec *cs, LowerOptions *o);

#define LOWER_INPUT_REF_LOGP "ref_logp"
#define LOWER_INPUT_OLD_LOGP "old_logp"
#define LOWER_INPUT_ADVANTAGES "advantages"
#define LOWER_INPUT_WEIGHT "weight"
#define LOWER_INPUT_TEACHER_LOGITS "teacher_logits"
#define LOWER_INPUT_NLL_LABELS "nll_labels"
#define LOWER_OUTPUT_ORPO_METRICS "orpo_metrics"

typedef struct LowerResult {
    IrId tokens, pos, labels; // inputs (labels is IR_NONE without an objective)
    IrId seq;                 // the input `seq` with LowerOptions.pack, else IR_NONE
    IrId logits;              // (B, T, vocab), also the output "logits"
    IrId loss;                // the scalar loss, or IR_NONE
    IrId ref_logp;            // dpo: the input (2B, 1); grpo: (B, T); else IR_NONE
    IrId old_logp, advantages, weight;   // grpo inputs; else IR_NONE
    IrId teacher_logits;      // kd input (B, T, vocab); else IR_NONE
    IrId nll_labels;          // orpo input (2B, T) i32; else IR_NONE
    IrId logp;                // "logp": the output (B, 1); "token_logp": (B, T); else IR_NONE
    const char *loss_per;     // what the loss sums over, i.e. what the trainer divides it by:
                              // "token" (sft, pretrain, kd: target tokens), "pair" (dpo, orpo),
                              // "weight" (grpo: see above), NULL
    LowerParam *params;       // every declared parameter, in declaration order (arena memory)
    int nparams;
} LowerResult;

// Lowers `m` into g, which the caller has set up with ir_graph_init (its float dtype is the
// dtype of params and activations: IR_F32, or IR_F64 for gradient checks). May add stdlib
// modules to spec (the arch's module, "objectives"). Returns 0, or -1 after reporting.
int lower_graph(Diag *d, Arena *a, LoadedSpec *spec, const LowerModel *m, const LowerOptions *opt,
                IrGraph *g, LowerResult *res);

// The same for model number `model` of a checked spec (-1: the policy; any other model — a
// teacher or reference — is lowered frozen, forward only), with the spec's
// objective when it is sft or pretrain; otherwise the forward only, with a warning (what the
// trainer runs today).
int lower_model(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, int model,
                IrGraph *g, LowerResult *res);
// The same with explicit options (e.g. from lower_options_from_spec, dpo included).
int lower_model_opts(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, int model,
                     const LowerOptions *opt, IrGraph *g, LowerResult *res);

#endif
