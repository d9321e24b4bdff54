// memplan.h — the static memory plan of a training step on the GPU: which buffers exist, where
// each lives in one activation arena (liveness over the plan's steps, then first-fit offsets, the
// larger and longer-lived first), and the peak per category, for concrete B and T — known before
// anything runs (`trlc check --memory`).
// Categories: weights (every parameter at its dtype: fp32, or bf16 for a frozen weight that mixed
// precision stores in bf16; trainable params stay fp32 — they are the master weights), grads
// (fp32, trainable params), optimizer (AdamW: two fp32 moments per trainable element),
// activations (the arena: every value a step writes at its dtype, reused once dead — the bf16
// copies mixed precision makes for products included; views alias their input, gradients stay
// until the step's end), workspace (cuBLASLt's, a fixed MP_GEMM_WORKSPACE).
// Not here: recomputation (activation checkpointing: an IR pass before fusion), multi-GPU
// sharding, allocating anything.
#ifndef TRLC_MEMPLAN_H
#define TRLC_MEMPLAN_H
#include <stdint.h>
#include <stdio.h>
#include "diag.h"
#include "fuse.h"
#include "ir.h"

#define MP_GEMM_WORKSPACE ((int64_t)32 << 20)

// What a buffer holds: a node's value, or state a library step keeps for another (fuse.h's
// lib_fwd / lib_leader): attention's and cross-entropy's log-sum-exp rows (fp32, from the forward
// to the last backward that reads them), attention's delta rows (fp32, inside its backward step),
// and the forward's output (bf16 with bf16 q, k, v) and log-sum-exp recomputed by a backward
// whose forward is not in the plan (scratch inside that step).
// An attention backward without a dq (or without one of dk, dv) still computes it: scratch too.
// linear_ce's steps (ir.h) hold a chunk of rows: fp32 logits, their bf16 gradient (backward with
// bf16 operands), and log-sum-exp / loss rows.
typedef enum MpWhat {
    MP_VALUE, MP_LSE, MP_DELTA, MP_SCRATCH_OUT, MP_SCRATCH_LSE, MP_SCRATCH_DQ, MP_SCRATCH_DKV,
    MP_CHUNK, MP_CHUNK_LOWP, MP_CHUNK_ROWS, MP_NWHAT
} MpWhat;

// linear_ce's chunk, which the plan and the executor agree on: rows of fp32 logits of at most
// MP_LCE_CHUNK_BYTES, at least one row, at most all N.
#define MP_LCE_CHUNK_BYTES ((int64_t)128 << 20)
static inline int64_t mp_lce_chunk_rows(int64_t V, int64_t N) {
    int64_t r = V > 0 ? MP_LCE_CHUNK_BYTES / (V * 4) : N;
    return r < 1 ? 1 : r > N ? N : r;
}

typedef struct MpBuffer {
    IrId node;              // the value (a step's output), or the node the state belongs to
    MpWhat what;
    int first, last;        // steps that write it and read it last (gradients: the last step)
    IrId alias;             // IR_NONE, or the node whose value buffer this one overwrites in place
                            // (cross-entropy's backward over logits nothing reads afterwards)
    int64_t bytes;
    int64_t offset;         // in the activation arena
} MpBuffer;

typedef struct MpPlan {
    int64_t weights, grads, optimizer, activations, workspace;   // bytes
    int64_t total;
    int64_t sym[IR_NSYMS];  // the B and T planned for
    int act_bytes;          // 2 when planned for bf16/fp16 precision (the label), else 4
    MpBuffer *bufs;         // malloc'd
    int nbufs;
    int64_t naive;          // the arena without reuse (sum of every buffer), for comparison
} MpPlan;

// Plans the step of g (with its fusion plan fp) for B = sym[IR_SYM_B], T = sym[IR_SYM_T]. A
// buffer, category or total that overflows 64 bits is an error (reported), never a wrapped value.
// precision: "fp32", "bf16" or "fp16" (NULL = fp32): only labels the plan — sizes come from the
// graph's dtypes (run the mixed-precision pass on g first for bf16: memplan_spec.c does).
int mp_plan(const IrGraph *g, const FusePlan *fp, const int64_t *sym, const char *precision, MpPlan *out,
            Diag *d);
void mp_plan_free(MpPlan *p);
// The buffer of (node, what) in p, or NULL.
const MpBuffer *mp_find(const MpPlan *p, IrId node, MpWhat what);

// "1.19 GiB", "32.0 MiB", "160.0 KiB": b bytes as the plan prints them.
void mp_bytes_str(char *buf, size_t n, int64_t b);
// "weights   1.19 GiB" ... one line per category and the total.
void mp_print(FILE *f, const MpPlan *p);

// What the arena holds at its fullest: the step (0..nsteps; nsteps = after the last, where only the
// step's outputs remain) where the most bytes are live, those bytes (at most the arena: first fit
// may leave gaps), and the live buffers grouped by kind (the same op, dtype, shape, size and spec
// location: typically one per layer), the largest group first. Tells a user what fills memory.
typedef struct MpPeakGroup {
    IrId node;              // a representative buffer's node
    MpWhat what;
    int count;
    int64_t bytes;          // of the group's count buffers
} MpPeakGroup;
typedef struct MpPeak {
    int step;
    int64_t bytes;
    MpPeakGroup *groups;    // malloc'd; bytes add up to .bytes
    int ngroups;
} MpPeak;
int mp_peak(const MpPlan *p, const IrGraph *g, int nsteps, MpPeak *out);   // 0, or -1 out of memory
void mp_peak_free(MpPeak *pk);
// "  peak: step S of N (in the backward), X live in K kinds of buffer; the largest:" and the top
// groups, one line each ("  1.31 GiB    28 x matmul bf16[B,T,3072]  # nn.trl:16:29"). 0, or -1.
int mp_print_peak(FILE *f, const MpPlan *p, const IrGraph *g, const FusePlan *fp, const Diag *d, int top);

#endif