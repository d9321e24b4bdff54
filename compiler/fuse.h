// fuse.h — the fusion pass: groups the nodes of an IrGraph into the steps the GPU executes.
// Chains of elementwise ops and the reductions they feed become one generated kernel each
// (rmsnorm forward = one kernel; its backward = one or two); matrix products become GEMM steps
// (cuBLASLt), attention, cross-entropy, rope, embed/gather and layout copies become library steps
// (kernels/), reshapes become views (no work: the same bytes under another shape).
// A permute whose input comes from memory joins a group as a load at permuted indexes (the
// transposes around attention then cost no copy of their own).
// A fused group computes over one iteration domain D (a shape); with a reduction, over D and its
// reduced shape R: phase 1 walks D computing the "prologue" nodes and accumulating the
// reductions, phase 2 computes the "epilogue" nodes at R once per reduced element, phase 3 walks
// D again for the "post" nodes that use reduced values (prologue values are recomputed there, not
// stored). Intermediates stay in registers; only values used outside the group are written.
// Identical groups (same op structure, dtypes and shapes: one per layer) share one kernel,
// found by hashing the group's canonical form.
// Across views: a reshape is a view of contiguous data (the same linear index), so a member
// over D may be read through reshapes by an elementwise member of another shape S with as many
// elements (numel S = numel D): both are computed at the same linear index i, the value stays in
// registers. Members over S (a "space" of the group: at most FUSE_MAX_SPACES shapes, D first)
// index their memory inputs by i's coordinates in S (broadcasts included). Reductions read D
// only (a reshape that moves the reduced axes stops the group), reduced values are read over D
// only, and a permute only defines D.
// Not here: the CUDA source (codegen_cuda.h), running anything (runtime/cuda), memory planning.
#ifndef TRLC_FUSE_H
#define TRLC_FUSE_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "arena.h"
#include "diag.h"
#include "ir.h"

typedef enum FuseStepKind {
    FUSE_KERNEL,    // a generated kernel (one FuseGroup)
    FUSE_GEMM,      // one matmul node → cuBLASLt
    FUSE_LIBRARY,   // one node run by a hand-written kernel in kernels/ (sdpa, cross_entropy, ...)
    FUSE_VIEW,      // a reshape: aliases its input, no work
} FuseStepKind;

// Where a member of a fused group is computed (see the phases above).
typedef enum FuseLevel {
    FUSE_LV_NONE = 0,
    FUSE_LV_PRO,    // over D, no reduced value in its inputs (phase 1; recomputed in phase 3)
    FUSE_LV_RED,    // a reduction: its value lives at R
    FUSE_LV_EPI,    // elementwise over R (phase 2)
    FUSE_LV_POST,   // over D, uses reduced values (phase 3)
    FUSE_LV_CONST,  // a FULL constant inlined into its users (not a member)
} FuseLevel;

enum { FUSE_MAX_MEMBERS = 96,   // nodes in one group
       FUSE_MAX_REDUCE = 8,     // reductions in one group
       FUSE_MAX_INS = 32,       // external inputs of one group (a node that would add more
                                // starts a new group)
       FUSE_MAX_ARGS = FUSE_MAX_INS + FUSE_MAX_MEMBERS,     // inputs + outputs of one group
       FUSE_MAX_SPACES = 4 };   // shapes of the members over D's elements (D and views of it)

typedef struct FuseGroup {
    IrId *nodes;            // members, topological order
    int nnodes;
    IrShape dom;            // D
    bool has_reduce;
    uint32_t axes;          // reduced axes of D (bit i = axis i of D)
    IrShape rshape;         // the reductions' output shape (R, possibly of lower rank: sum_to)
    IrId *ins;              // external inputs (not members, not inlined constants), first use order
    int nins;
    IrId *outs;             // members read outside the group (or graph outputs), member order
    int nouts;
    int step;               // its step index
    int kernel;             // index into FusePlan.kernels
    IrShape *spaces;        // the shapes members over D's elements have: spaces[0] = D, then views
    int nspaces;            // of it (same element count, same linear index), first use order
    uint8_t *space;         // per member: its index in spaces (0 for reduced-level members)
} FuseGroup;

typedef struct FuseStep {
    FuseStepKind kind;
    IrId node;              // GEMM / LIBRARY / VIEW: the node; KERNEL: its last member
    int group;              // KERNEL: index into FusePlan.groups, else -1
} FuseStep;

// One unique kernel: every group with the same canonical form shares it.
typedef struct FuseKernel {
    char name[40];          // "fk_r3_1a2b3c4d5e6f7a8b": kind letter, member count, hash
    uint64_t hash;          // of the canonical form
    const char *canon;      // the canonical form (arena)
    int first_group;        // the group codegen instantiates
    int ngroups;            // how many groups launch it
} FuseKernel;

typedef struct FusePlan {
    Arena arena;
    const IrGraph *g;
    FuseStep *steps;
    int nsteps, capsteps;
    FuseGroup *groups;
    int ngroups, capgroups;
    FuseKernel *kernels;
    int nkernels, capkernels;
    int *group_of;          // per node: its group, or -1
    uint8_t *level;         // per node: FuseLevel
    int *step_of;           // per node: the step that computes it (-1 for leaves and constants)
    // Library steps that share work (fuse_pair_library): attention's dq, dk and dv of one
    // attention (same inputs and attributes) are computed together by the first of their steps,
    // the `leader` (dk and dv come from one kernel, and dq's pass computes the delta rows both
    // need); the other members' steps do nothing. A backward step reads the state its forward
    // saved (attention: the output and the log-sum-exp rows; cross-entropy: the log-sum-exp)
    // when the plan computes that forward: `fwd`; otherwise it recomputes it. Attention's inputs
    // match as values: a backward reading recomputed copies of q, k (recompute.h: the same ops
    // and attributes over the same values, bit-identical) pairs with the forward that read the
    // originals.
    int *lib_leader;        // per step: the step that computes this step's node, or -1 (not shared)
    int *lib_members;       // the steps each leader leads (not itself), by leader, in step order:
    int *lib_member_start;  // per step + 1: step s's are lib_members[start[s] .. start[s + 1])
                            // (fuse_led_steps; empty for a step that leads none)
    IrId *lib_fwd;          // per step: the matching forward node, or IR_NONE
    int nsteps_kind[4];     // steps per FuseStepKind
    int nsunk;              // groups sunk (moved later) so that a reader could join them
    int nmerged;            // groups merged into an earlier reduction group (their steps gone)
    bool sink;              // while planning: whether groups may sink
    bool merge;             // while planning: whether groups may merge into an earlier reduction
    bool views;             // while planning: whether members may read members through reshapes
    IrId *last_reader;      // while planning: per node the last node reading it (g->n: a graph output)
    // Widening casts read through their source: a cast of a bf16 value to f32 that only nodes a
    // kernel computes read (no product, library op, view or graph output) is read by a kernel
    // it is not a member of as its bf16 source (loads widen exactly: the same values), so the
    // f32 copy is never written: read_as[x] = the source, else IR_NONE (fuse_read_src).
    IrId *read_as;
} FusePlan;

// The pass's choices (fuse_plan: all false).
typedef struct FuseOptions {
    bool no_sink;           // steps in node order only: no group moves later (to compare plans)
    bool no_merge;          // no group merges into an earlier reduction group (to compare plans)
    bool no_views;          // no member reads a member through a reshape (to compare plans)
} FuseOptions;

// The node a reshape chain views (id itself when id is no reshape): the value whose buffer, and
// whose element at each linear index, id has.
static inline IrId fuse_view_src(const IrGraph *g, IrId id) {
    while (id >= 0 && id < g->n && g->nodes[id].op == IR_RESHAPE && g->nodes[id].nin == 1 &&
           g->nodes[id].in[0] >= 0 && g->nodes[id].in[0] < id)   // topological: ends
        id = g->nodes[id].in[0];
    return id;
}

// The member of group gi an input x of one of its members reads: x itself when x is a member, the
// member a reshape chain x views when that member is over D's elements (pro or post level; fuse.h
// top), else IR_NONE (x comes from memory, or is an inlined constant).
static inline IrId fuse_member_src(const FusePlan *p, int gi, IrId x) {
    if (p->group_of[x] == gi) return x;
    IrId r = fuse_view_src(p->g, x);
    if (r == x || p->group_of[r] != gi) return IR_NONE;
    return p->level[r] == FUSE_LV_PRO || p->level[r] == FUSE_LV_POST ? r : IR_NONE;
}

// The value whose buffer group gi reads for operand x of a member, when x is neither a member
// (fuse_member_src) nor an inlined constant: x, or the bf16 value a widening cast x reads
// (FusePlan.read_as).
static inline IrId fuse_read_src(const FusePlan *p, int gi, IrId x) {
    if (!p->read_as || p->read_as[x] == IR_NONE || p->group_of[x] == gi) return x;
    return p->read_as[x];
}

// Builds the plan of g (which must outlive it). The graph's float dtype must be f32; f64 and f16
// nodes are left to library steps. Returns 0, or -1 after reporting through d.
// Steps follow the nodes' order, except that a group may sink: be placed later, past steps that
// read none of its values, when a node whose other inputs those steps compute joins it (an
// elementwise value then stays in registers instead of a pass over memory each way). No step
// moves past a reader; a group sinks only when every value it reads is read that late anyway,
// and past at most 16 steps. TRLC_FUSE_SINK=0 / TRLC_FUSE_MERGE=0 / TRLC_FUSE_VIEWS=0 in the
// environment turn sinking / merging / fusing across reshapes off (A/B; other values than 0 and
// 1 are an error).
// The group a node joins (place_fused in fuse.c): a producer's, else a producer's sunk, else the
// group made last when no step that does work follows it (the "open" group: the node runs where a
// group of its own would, so nothing lives longer), else a new one. A node reading no member may
// also join the last group past such steps, as before, except a value recomputed for the
// backward (recompute.h) that would be held across them without freeing as many bytes; and such
// a value prefers the open group to a producer's group past such steps (SwiGLU's backward: the
// gradients of gate and up, silu's copy among them, are one kernel after the down projection's
// GEMMs). Widening casts are read through their bf16 source (FusePlan.read_as).
// After the walk, a kernel group next to a reduction group (only views between) may merge into
// it when every member takes a level there (RMSNorm's backward: its [B,T,1] terms and the
// [B,T,H] input gradient join the row's sum_to kernel); see merge_groups in fuse.c.
int fuse_plan(const IrGraph *g, Diag *d, FusePlan *p);
int fuse_plan_with(const IrGraph *g, const FuseOptions *o, Diag *d, FusePlan *p);
void fuse_plan_free(FusePlan *p);

// Checks the plan's invariants: every non-leaf node is computed by exactly one step (inlined
// constants by none); every value a step reads is a leaf, an inlined constant, or written by an
// earlier step (a view: its input's step); every value read outside its group is an output of
// it; every graph output is computed. Returns the number of violations (reported through d as
// internal errors); fuse_plan runs it on every plan.
int fuse_verify(const FusePlan *p, Diag *d);

// The steps that step s leads (FusePlan.lib_leader[t] == s, t != s), in step order: returns the
// first of *n (0 when s leads none, or the plan has no shared steps).
static inline const int *fuse_led_steps(const FusePlan *p, int s, int *n) {
    *n = 0;
    if (!p->lib_member_start || s < 0 || s >= p->nsteps) return NULL;
    *n = p->lib_member_start[s + 1] - p->lib_member_start[s];
    return p->lib_members + p->lib_member_start[s];
}

// Whether step s does work (not a view, not a non-leader member of a shared library step).
bool fuse_step_runs(const FusePlan *p, int s);
// The library op name of a LIBRARY/GEMM step ("sdpa", "cross_entropy", "gemm", ...).
const char *fuse_step_op(const FusePlan *p, int step);

// Prints the plan: one line per step; kernels with their members and spec locations (d may be NULL).
void fuse_print(FILE *f, const FusePlan *p, const Diag *d);

// "file.trl:line:col" (the file's base name) of a node location, or "?"; returns buf.
const char *fuse_loc_str(const Diag *d, Loc loc, char *buf, size_t n);

// 64-bit FNV-1a of a byte string (the canonical-form hash; also used by the kernel cache).
uint64_t fuse_hash(const void *data, size_t n, uint64_t seed);

// Evaluates one fused group on the CPU with the same phases and index arithmetic the generated
// kernel uses (fuse_eval.c), for tests against the interpreter. ins[k] is group->ins[k]'s data
// (float for float dtypes, int32_t for i32), outs[k] receives group->outs[k] (float; bf16 outputs
// rounded as the GPU stores them, i32 outputs as int32_t). sym holds B and T. Returns 0, or -1
// after reporting (a size overflow).
int fuse_eval_group(const FusePlan *p, int group, const int64_t *sym, uint64_t step,
                    const void *const *ins, void *const *outs, Diag *d);

#endif
