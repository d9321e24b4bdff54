// cpu_internal.h — what the interpreter (cpu.c) and the kernels (cpu_ops.inc, compiled once per
// real type in cpu_ops_f32.c / cpu_ops_f64.c) share. Not a public header.
#ifndef TRLC_CPU_INTERNAL_H
#define TRLC_CPU_INTERNAL_H
#include "cpu.h"

// One node's execution: out is allocated (shape and data) by the interpreter before the call;
// kernels initialise every element they do not write. On a runtime error a kernel writes a
// message into err and returns -1.
typedef struct CpuExec {
    const IrNode *n;
    CpuTensor *out;
    const CpuTensor *const *in;    // n->nin inputs
    uint64_t step;
    int64_t off;                   // slice/pad: the offset along the axis, bound
    char err[256];
} CpuExec;

int cpu_exec_f32(CpuExec *e);
int cpu_exec_f64(CpuExec *e);

// Dropout keep decision: hash of (seed, salt, step, index) → uniform in [0, 1).
static inline double cpu_dropout_uniform(uint64_t seed, uint32_t salt, uint64_t step, uint64_t i) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)salt << 32 | salt) ^
                 step * 0xD1B54A32D192ED03ull ^ i * 0xBF58476D1CE4E5B9ull;
    // splitmix64 finaliser, twice for good mixing of the combined words
    for (int r = 0; r < 2; r++) {
        z += 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
    }
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

// Rounds x to a float format with `bits` significant bits (incl. the implicit one), minimum
// normal exponent emin (value 2^emin) and largest finite value maxv: bf16 (8, -126, 3.3895e38),
// f16 (11, -14, 65504). Round to nearest even; overflow gives ±inf.
double cpu_round_float(double x, int bits, int emin, double maxv);

#endif
