// trainer_int.h — the Trainer's insides, shared by trainer.c (compile, weights, one step) and
// trainer_loop.c (data, the loop, evaluation, checkpoints, export). Not a public API.
#ifndef TRLC_TRAINER_INT_H
#define TRLC_TRAINER_INT_H
#include "cpu.h"
#include "lora.h"
#include "lower.h"
#include "recompute.h"
#include "autocast.h"
#include "gemm_acc.h"
#include "rng.h"
#include "schedule.h"
#include "trainer.h"

// A program on the CPU interpreter (cpu) or on the GPU executor (cuda, `--device cuda`: the
// training program, and the evaluation, teacher and reference programs beside it).
typedef struct TrProg {
    CpuProgram *cpu;
    struct CudaProgram *cuda;
} TrProg;

typedef struct TrParam {
    const char *name;          // HF path ("model.norm.weight", "...q_proj.lora_A.weight")
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t numel;
    float *data;               // (numel) fp32 master values; for a u8 param (NF4 codes) the bytes
    size_t bytes;              // size of data in bytes (numel floats, or numel bytes for u8)
    float *grad;               // (numel) accumulated gradient (trainable only)
    bool trainable;
    int grad_out;              // index of its gradient among the train program's outputs, or -1
    int lora;                  // index into lora.mods when a LoRA A or B, else -1
    int quant;                 // index into lora.quant for an NF4 weight's codes or absmax, else -1
    int oi;                    // index among the optimizer's params (trainable), else -1
} TrParam;

// What the objective needs from a second, frozen model, run before the policy on each batch.
typedef enum TrAuxKind {
    TR_AUX_NONE,
    TR_AUX_TEACHER,            // kd: the teacher's logits → the policy's `teacher_logits` input
    TR_AUX_REFERENCE,          // dpo: the reference's sequence log-probs → `ref_logp`
} TrAuxKind;

enum { TR_OMET = 6 };          // stdlib orpo_metrics' values

struct Trainer {
    Diag *d;
    Arena *a;
    const CheckedSpec *cs;
    const CheckedModel *m;
    IrGraph g, ge;             // training graph (with backward), evaluation graph (forward only)
    LowerResult res, rese;
    bool has_lora;
    LoraResult lora;
    RecomputeStats recompute;  // train.recompute: what the pass did to the training graph
    AutocastStats autocast;    // precision = bf16: what the mixed-precision pass did to it
    GemmAccStats gemm_acc;     // the products that accumulate into their sums (gemm_acc.h)
    TrProg prog, eprog;
    struct RtCudaDevice *dev;  // --device cuda: device 0, and the kernel cache
    struct RtCudaCache *cache;
    int loss_out, eloss_out, elogits_out, epred_out;
    TrParam *ps;
    int np;
    Optimizer opt;
    bool opt_ok;
    // --device cuda: the optimizer on the device (runtime/cuda/optim_cuda.h; NULL: on the host over
    // downloaded gradients, as on the CPU). Then the device holds the trainable values, the
    // gradient sum and the state; the host copies (ps[].data, ps[].grad, opt's m / v) are fetched
    // on demand: host_stale says ps[].data is older than the device's values.
    struct CudaOptim *copt;
    bool host_stale;
    Schedule sched;
    double base_lr, clip;
    int64_t step;              // optimizer updates done
    Rng rng;                   // the run's generator (saved in checkpoints)
    // the objective
    bool per_pair;             // the loss sums over preference pairs (dpo, orpo), else target tokens
    TrAuxKind aux;
    const CheckedModel *am;    // the teacher / reference model (the policy itself for a dpo
                               // reference without `ref`)
    IrGraph ga;                // its forward graph (logits)
    LowerResult resa;
    TrProg aprog;
    int alogits_out;
    int aref_out;              // dpo: the reference's "ref_logp" output (B, 1) computed in its graph, or -1
    TrParam *aps;              // its parameters; data owned unless shared with the policy
    int nap;
    bool *ashared;             // (nap) the buffer is the policy's (a frozen base weight)
    float *ref_logp;           // (rows) dpo: the reference's sequence log-probs
    size_t ref_cap;
    int32_t *nll_labels;       // (rows, T) orpo: the `nll_labels` input (bind_nll_labels)
    size_t nll_cap;
    int omet_out, eomet_out;   // orpo: the training / evaluation graph's "orpo_metrics" output
                               // (1, TR_OMET), or -1
    double omet[2][TR_OMET];   // their sums over the runs since tr_objective_metrics: [0] training
                               // micro-steps, [1] evaluation batches
    int64_t omet_pairs[2];     // the pairs of those runs
};

// One line on the device and the kernel cache when the training program runs on a GPU.
void tr_describe_device(const Trainer *t, FILE *f);
void tr_describe_memory(const Trainer *t, FILE *f);   // the closing summary's memory line
// (Re)builds the schedule for total_steps optimizer steps. Returns 0 or -1 (reported).
int tr_set_schedule(Trainer *t, int64_t total_steps);
// The global gradient norm of the micro-steps so far divided by n_targets (the loop's check for a
// non-finite update). 0 or -1 (reported).
int tr_grad_norm(Trainer *t, int64_t n_targets, double *norm);
// With the optimizer on the device: brings the host copies up to date — the trainable values
// (tr_sync_host: export, evaluation by generation), and also the optimizer's state (tr_sync_state:
// checkpoints); tr_state_loaded sends what a checkpoint loaded into the host copies back to the
// device. No-ops otherwise. 0 or -1 (reported).
int tr_sync_host(Trainer *t);
int tr_sync_state(Trainer *t);
int tr_state_loaded(Trainer *t);
// Host<->device bytes moved so far by the programs on the GPU (0 on the CPU).
int64_t tr_transfer_bytes(const Trainer *t);

#endif
