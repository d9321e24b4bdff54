// trainer.h — the trainer behind `trlc run`: compiles a checked spec's policy (lower → LoRA →
// autodiff on the CPU backend), loads or initialises its weights, and trains it: micro-batches,
// gradient accumulation normalised by the target-token count of the whole accumulated batch,
// clipping, AdamW/SGD with schedules, evaluation, early stopping, checkpoints, resume, metrics,
// TensorBoard and the final export (a PEFT adapter for LoRA runs, an HF model directory otherwise).
// Two levels: Trainer (tr_*) — one compiled model with its parameters, gradients and optimizer,
// driven batch by batch (tests use it directly); trainer_run — the whole loop over the spec's data.
// Not here: the objectives' math (stdlib .trl via lower), GPU execution, DPO/GRPO loops.
#ifndef TRLC_TRAINER_H
#define TRLC_TRAINER_H
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "arena.h"
#include "check.h"
#include "diag.h"
#include "load.h"
#include "optim.h"

// Status codes (the CLI turns them into exit codes 0 / 1 / 3).
enum { TR_OK = 0, TR_SPEC_ERROR = 1, TR_RUNTIME_ERROR = 3, TR_INTERRUPTED = 4 };

typedef struct TrainerOptions {
    const char *out_dir;       // overrides train.out (NULL: the spec's)
    const char *resume_dir;    // a run directory to resume from its latest complete checkpoint
    const char *device;        // "cpu" (NULL = cpu) or "cuda": the training program on GPU 0
    FILE *log;                 // progress and summary (NULL = stderr)
    bool nan_skip;             // a non-finite loss skips the update instead of stopping
    // The evaluation program also returns the logits (B, T, V) for tr_eval_logits (tests); else
    // only each position's predicted token (tr_eval_predictions), and neither its loss nor its
    // predictions hold the batch's logits (compiler/linear_ce.h)
    bool eval_logits;
    // Set (e.g. by a SIGINT handler) to stop after the current step: a checkpoint is saved and
    // trainer_run returns TR_INTERRUPTED. May be NULL.
    volatile sig_atomic_t *interrupt;
} TrainerOptions;

typedef struct TrainerSummary {
    int64_t steps;             // optimizer steps done
    double final_loss;         // mean per-token loss of the last step
    double eval_loss;          // last evaluation (NaN when none)
    double eval_accuracy;      // its exact-match accuracy (greedy decoding), NaN when none
    double eval_accuracy_tf;   // the same from one teacher-forced pass (a cross-check; NaN when none)
    double tokens_per_s;
    char run_dir[4096];
    char export_dir[4096];
} TrainerSummary;

typedef struct Trainer Trainer;

// Compiles the policy of cs (spec was checked into cs), initialises its weights (from the
// checkpoint directory, or seeded from the declared inits; LoRA A/B as PEFT) and the optimizer;
// for kd the teacher and for dpo the reference (`ref`, else the policy as it starts: the base
// without adapters, or a frozen copy of the initial weights) are compiled forward-only and run
// before the policy on every batch.
// NULL after reporting; *status gets TR_SPEC_ERROR or TR_RUNTIME_ERROR.
Trainer *tr_new(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, const TrainerOptions *o,
                int *status);
void tr_free(Trainer *t);

// Forward + backward on one micro-batch; the gradients are ADDED to the accumulation buffers
// (sums over target tokens). *loss_sum gets the batch's summed loss. tokens, pos, labels:
// (B, T) int32, labels already shifted (-100 = ignored). step feeds dropout. Returns 0 or -1.
int tr_micro_step(Trainer *t, const int32_t *tokens, const int32_t *pos, const int32_t *labels,
                  int B, int T, uint64_t step, double *loss_sum);
// The same with segment ids seq (B, T) (DsBatch.seq_id) for packed rows: when the spec packs, every
// causal self-attention lets a token see only earlier tokens of its own sequence. seq NULL: one
// sequence per row (tr_micro_step passes NULL). Ignored by graphs without packing.
int tr_micro_step_seq(Trainer *t, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                      const int32_t *labels, int B, int T, uint64_t step, double *loss_sum);
// Divides the accumulated gradients by n_targets, clips (train.clip_norm), updates every trainable
// parameter with lr = base lr * schedule(step), and zeroes the accumulators. *grad_norm gets the
// pre-clip norm. Returns 0.
int tr_apply(Trainer *t, int64_t n_targets, double *grad_norm, double *lr);
// Forward only (no dropout) through the evaluation graph: summed loss of the batch.
int tr_eval_batch(Trainer *t, const int32_t *tokens, const int32_t *pos, const int32_t *labels,
                  int B, int T, double *loss_sum);
// The same with segment ids (see tr_micro_step_seq).
int tr_eval_batch_seq(Trainer *t, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                      const int32_t *labels, int B, int T, double *loss_sum);
// The logits (B, T, V) of the last tr_eval_batch, or NULL (always without TrainerOptions.eval_logits).
const float *tr_eval_logits(const Trainer *t, int64_t *numel);
// The predicted token (argmax of the logits; the first on ties) at each position (B, T) of the last
// tr_eval_batch, or NULL.
const int32_t *tr_eval_predictions(const Trainer *t, int64_t *numel);
// Zeroes the gradient accumulators.
void tr_zero_grad(Trainer *t);

// A parameter's values / accumulated gradient (NULL for a frozen param's gradient or an unknown
// name); *numel gets its size.
float *tr_param(Trainer *t, const char *name, int64_t *numel);
float *tr_grad(Trainer *t, const char *name, int64_t *numel);
int tr_nparams(const Trainer *t);
const char *tr_param_name(const Trainer *t, int i);
bool tr_param_trainable(const Trainer *t, int i);
// Peak bytes of intermediates the last training micro-step held at once (CPU backend), or 0.
int64_t tr_peak_bytes(const Trainer *t);
Optimizer *tr_optimizer(Trainer *t);
// True when the loss sums over preference pairs (dpo, orpo: divide by the pairs, DsBatch.n_examples),
// false when over target tokens (sft, pretrain, kd).
bool tr_loss_per_pair(const Trainer *t);
// The objective's own metrics, averaged per pair over the training micro-steps (eval: the
// tr_eval_batch calls) since the last call, which resets them: for orpo TRL's rewards/chosen,
// rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected, nll_loss,
// log_odds_ratio, log_odds_chosen (names[i] static strings, without TRL's "eval_" prefix).
// Returns how many (0: none, or cap < 9).
int tr_objective_metrics(Trainer *t, bool eval, const char **names, double *values, int cap);

// The whole run: tr_new, data, the loop, evaluation, checkpoints, export, summary. Returns a
// TR_* status; *sum (may be NULL) is filled as far as the run got.
int trainer_run(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, const TrainerOptions *o,
                TrainerSummary *sum);

#endif
