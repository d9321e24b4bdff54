// memplan_spec.h — the GPU pipeline's front half for a checked spec: the training graph as
// `trlc run` compiles it (pipeline.h: lower → LoRA → autodiff → ... ), and the memory
// report `trlc check --memory` prints (fusion plan + memory plan for the spec's batch size and
// sequence length, or given ones), and the programs `trlc run` runs beside the step, each in an
// arena of its own (mp_sides_compile: the evaluation's forward, the reference's or teacher's).
// Not here: the passes or their order (pipeline.h, fuse.h, memplan.h).
#ifndef TRLC_MEMPLAN_SPEC_H
#define TRLC_MEMPLAN_SPEC_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "arena.h"
#include "fuse.h"
#include "check.h"
#include "diag.h"
#include "ir.h"
#include "load.h"
#include "memplan.h"

// Compiles the policy of a checked spec into g (initialised by the caller, f32) through
// pipeline.h as the trainer does (LoRA, the backward, recomputation, mixed precision, products
// accumulating into their sums), with common subexpressions and dead code removed after the
// backward. Returns 0, or -1 after reporting.
int mp_compile_training_graph(Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, IrGraph *g);
// Loads and checks the spec file at path (into spec and cs, which the caller provides) and then
// compiles its training graph into g as above: where `trlc kernels` and the GPU tests start.
int mp_compile_spec_file(Diag *d, Arena *a, const char *path, LoadedSpec *spec, CheckedSpec *cs, IrGraph *g);
// The same with nothing set up: a (an empty arena), spec, *cs (in a) and g (f32, reporting to d)
// are initialised here, so that a caller that inspects the graph (trlc kernels, tests) declares
// them and calls this. Returns 0 or -1 (reported); free with ir_graph_free(g), arena_free(a) either way.
int mp_open_spec_file(Diag *d, Arena *a, const char *path, LoadedSpec *spec, CheckedSpec **cs, IrGraph *g);

// Compiles the spec, fuses it and prints the memory plan to out for B (<= 0: the spec's batch)
// and T (<= 0: the train data's max_len, else 2048). Returns 0, or -1 after reporting.
int mp_report_spec(FILE *out, Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, int64_t B, int64_t T);

// A program the trainer runs beside the training step (runtime/train/trainer.c: new_side_programs),
// compiled as it compiles it (pipeline.h: pl_eval_head, pl_aux_graph) and fused. On the GPU it has
// its own activation arena and cuBLASLt workspace; it shares the training step's buffer of a param
// with the same name, dtype and size (the same host data): only its other params are its own.
typedef struct MpSide {
    const char *what;       // "evaluation", "reference" or "teacher"
    IrGraph g;              // its graph, finished (mixed precision ...)
    FusePlan fp;
    int64_t weights;        // bytes of its params not shared with the training step's
    int64_t rows;           // its B per train.batch: 2 for the reference of per-pair objectives, else 1
    int64_t T;              // the T it is planned (and reserved) at
    const char *t_from;     // where T comes from, for the report
    bool idle;              // made but never run (the evaluation without data eval): its workspace only
} MpSide;
typedef struct MpSides {
    MpSide p[2];
    int n;
} MpSides;

// The side programs of a checked spec whose training graph (finished: mp_compile_training_graph)
// is train, planned at T (the step's): the evaluation with data eval at its max_len (else T; without
// data eval the trainer still makes its program, which never runs: idle), the
// reference (dpo) or teacher (kd) at the longer of T and the eval max_len, as the trainer reserves
// them. None for objectives the trainer does not run. Returns 0 (s->n programs, possibly 0), or -1
// after reporting; free with mp_sides_free either way.
int mp_sides_compile(Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, const IrGraph *train, int64_t T,
                     MpSides *s);
// The plan of side program p for B = train.batch (its rows: B * p->rows) into *out (free with
// mp_plan_free); its total on the device is out->activations + out->workspace + p->weights (the
// returned value; -1 when it cannot be planned, reported through d). An idle program: only its
// workspace, *out zeroed but for that.
int64_t mp_side_plan(const MpSide *p, int64_t B, const char *precision, MpPlan *out, Diag *d);
void mp_sides_free(MpSides *s);

#endif
