// cpu.h — the CPU backend: an interpreter of IR programs. It binds the dynamic dims (B, T) and
// the input/param buffers, places intermediates in one arena planned per (B, T) (space reused
// after each value's last use; reshapes are views), runs the nodes in order (matrix products
// through OpenBLAS, the rest in plain C threaded with OpenMP), and hands back the outputs
// (losses, logits, gradients).
// Every float tensor is computed and stored at one precision per program, `real`: IR_F32 for
// training, IR_F64 for gradient checks; bf16/f16 nodes hold values rounded to that precision.
// Runtime errors (an id out of range, a size overflow, out of memory) are reported through the
// Diag at the node's spec location and returned as a status. Not here: fusion, code generation.
#ifndef TRLC_CPU_H
#define TRLC_CPU_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ir.h"

typedef struct CpuTensor {
    IrDType dtype;                 // storage: IR_I32 (int32_t), IR_U8 (uint8_t), else the real type
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t numel;
    void *data;                    // float/double (real), int32_t or uint8_t
} CpuTensor;

typedef struct CpuProgram CpuProgram;

// For a program's main(), first thing: when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set,
// sets one and re-executes the program (/proc/self/exe, same argv) so that libgomp, which reads
// them once at load, sees it. On an idle machine GOMP_SPINCOUNT = CPU_SPIN_COUNT: idle OpenMP
// threads spin briefly (long enough to catch the next kernel of a step: threading small
// elementwise ops pays) and then sleep; libgomp's default spins ~10x longer. When other runnable
// work would leave the team fewer cores than threads (/proc/loadavg's runnable count, less this
// process's own running threads, above the cores: machine_busy in cpu.c), OMP_WAIT_POLICY = PASSIVE: a spinning
// thread then holds the core its teammate needs, and every kernel's barrier waits for a time
// slice. Measured on 2 shared cores at load ~15 (100 steps of the quickstart's model): spinning
// 45-64 s wall and 13 CPU-s, passive 4-10 s and 3.1 CPU-s (the same work: one thread needs 3.2
// CPU-s). Set either variable yourself to choose. Returns only when it did not re-execute.
#define CPU_SPIN_COUNT "10000"
void cpu_prefer_short_spin(char **argv);

// The graph must outlive the program and stay unchanged. real: IR_F32 or IR_F64.
// Returns NULL after reporting when the graph cannot be executed.
CpuProgram *cpu_program_new(const IrGraph *g, IrDType real, Diag *d);
void cpu_program_free(CpuProgram *p);

// Binds an input or param node to a caller-owned buffer of nbytes bytes: real-typed for float
// nodes (whatever their IR dtype), int32_t for i32 nodes. Checked against the node's shape at run
// time. The buffer must stay valid through cpu_run. Returns 0 or -1 (reported).
int cpu_bind(CpuProgram *p, IrId leaf, const void *data, size_t nbytes);
int cpu_bind_name(CpuProgram *p, const char *name, const void *data, size_t nbytes);

// Executes the graph with B = sym_vals[IR_SYM_B], T = sym_vals[IR_SYM_T]; step feeds the dropout
// RNG. Returns 0, or -1 after reporting a runtime error (naming the node and its spec location).
int cpu_run(CpuProgram *p, const int64_t *sym_vals, uint64_t step);

// With on, every float result is scanned after its node runs; the first NaN or infinity is a
// runtime error naming the node and its spec location (off by default: it costs a pass over
// every intermediate).
void cpu_set_check_finite(CpuProgram *p, bool on);

// Outputs of the last successful run, in the graph's output order; valid until the next run.
const CpuTensor *cpu_output(const CpuProgram *p, int i);
const CpuTensor *cpu_output_named(const CpuProgram *p, const char *name);
// The value of node id after the last run when it is still held: outputs (e.g. the gradient node
// ad_grad_of gives) and bound leaves; NULL otherwise.
const CpuTensor *cpu_value(const CpuProgram *p, IrId id);
// Peak bytes of intermediates held at once during the last run (bindings not counted).
int64_t cpu_peak_bytes(const CpuProgram *p);
// The same peak, computed before running for given B and T (the allocation order is static);
// -1 when a size overflows.
int64_t cpu_plan_peak_bytes(const CpuProgram *p, const int64_t *sym_vals);
// Bytes of the arena the last run's plan laid out (intermediates, with reuse and alignment).
int64_t cpu_arena_bytes(const CpuProgram *p);
// The instruction set the float kernels use on this CPU: "avx512", "avx2" or "base".
const char *cpu_isa_name(void);
// Size in bytes of one element of a tensor of IR dtype t in a program computing in real.
size_t cpu_elem_size(IrDType t, IrDType real);

#endif
