// memplan_spec.h — the GPU pipeline's front half for a checked spec: the training graph as
// `trlc run` compiles it (pipeline.h: lower → LoRA → autodiff → ... ), and the memory
// report `trlc check --memory` prints (fusion plan + memory plan for the spec's batch size and
// sequence length, or given ones).
// Not here: the passes or their order (pipeline.h, fuse.h, memplan.h).
#ifndef TRLC_MEMPLAN_SPEC_H
#define TRLC_MEMPLAN_SPEC_H
#include <stdint.h>
#include <stdio.h>
#include "arena.h"
#include "check.h"
#include "diag.h"
#include "ir.h"
#include "load.h"

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

#endif
