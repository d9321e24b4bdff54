// checkpoint.h — training checkpoints that survive a SIGKILL at any moment.
// A checkpoint is the directory RUN/checkpoint-<step>/ holding
//   model.safetensors      the trained tensors (F32, the names the caller gives)
//   optimizer.safetensors  per parameter `<name>.exp_avg` and `<name>.exp_avg_sq` (AdamW) or
//                          `<name>.momentum_buffer` (SGD with momentum); absent when there is none
//   state.json             {"format": "trlc-checkpoint", "version": 1, "step", "epoch", "data_pos",
//                          "samples_seen", "tokens_seen", "seed", "rng": [4 hex words],
//                          "schedule": {...}, "optimizer": {...}, "best_metric" (null when none),
//                          "evals_since_best", "spec_hash", "files": {name: size}}
// Saving writes everything into RUN/.tmp-checkpoint-<step>-<pid>/, fsyncs every file and the
// directory, renames it to checkpoint-<step> and fsyncs RUN; only then are older checkpoints beyond
// the newest `keep` deleted. A checkpoint is complete when its state.json parses, names the step of
// its directory and every file it lists has the recorded size; discovery ignores the rest.
// Does not: write PEFT adapters or HF model directories (export does), or shard huge models.
#ifndef TRLC_CHECKPOINT_H
#define TRLC_CHECKPOINT_H
#include "diag.h"
#include "optim.h"
#include "rng.h"
#include "safetensors.h"
#include "schedule.h"
#include <stddef.h>
#include <stdint.h>

#define CKPT_STATE_MAX_BYTES (1u << 20)   // a state.json larger than this is refused

typedef struct CkptTensor {
    const char *name;
    float *data;                 // (numel): read when saving, filled when loading
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} CkptTensor;

typedef struct CkptState {
    int64_t step;                // optimizer updates done
    int64_t epoch;               // current epoch (0-based)
    int64_t data_pos;            // position of the next example in the epoch's order
    int64_t samples_seen;
    int64_t tokens_seen;
    uint64_t seed;               // the run's seed
    Rng rng;                     // generator state after `step`
    Schedule sched;
    double best_metric;          // early stopping: best eval metric so far (NaN when none)
    int64_t evals_since_best;    // early stopping: evaluations without improvement
    char spec_hash[80];          // hex digest of the spec and its inputs ("" when unknown)
} CkptState;

// Saves checkpoint-<st->step> under run_dir (created if missing). model: n_model tensors (may be 0);
// opt may be NULL. keep > 0 deletes all but the newest `keep` checkpoints afterwards; keep <= 0
// keeps all. On success returns 0 and, when out_dir is given, its path. -1 after reporting; the
// previous checkpoints are then untouched.
int ckpt_save(Diag *d, const char *run_dir, const CkptState *st, const CkptTensor *model,
              size_t n_model, const Optimizer *opt, int keep, char *out_dir, size_t out_cap);

// The complete checkpoint with the highest step in run_dir: 1 and its path (and step) when found,
// 0 when there is none (or run_dir does not exist), -1 after reporting an unreadable run_dir.
int ckpt_find_latest(Diag *d, const char *run_dir, char *out_dir, size_t out_cap, int64_t *step);

// Reads ckpt_dir/state.json into st. -1 after reporting `.../state.json:line:col: error: ...`.
int ckpt_read_state(Diag *d, const char *ckpt_dir, CkptState *st);

// Reads state.json, then fills each model tensor (by name; dtype F32 and shape must match) and the
// optimizer's state and step (opt may be NULL; its parameters must already be added, with the
// same names and sizes). -1 after reporting the file and tensor at fault.
int ckpt_load(Diag *d, const char *ckpt_dir, CkptState *st, const CkptTensor *model,
              size_t n_model, Optimizer *opt);

// Deletes all but the newest `keep` checkpoint-<step> directories of run_dir and stale
// .tmp-checkpoint-* directories of processes that no longer run. Returns how many were deleted,
// or -1 after reporting.
int ckpt_rotate(Diag *d, const char *run_dir, int keep);

#endif
