// cpu_internal.h — what the interpreter (cpu.c) and the kernels (cpu_ops.inc, compiled once per
// real type in cpu_ops_f32.c / cpu_ops_f64.c) share. Not a public header.
#ifndef TRLC_CPU_INTERNAL_H
#define TRLC_CPU_INTERNAL_H
#include <string.h>
#include "cpu.h"

// One node's execution: out is allocated (shape and data) by the interpreter before the call;
// kernels initialise every element they do not write. On a runtime error a kernel writes a
// message into err and returns -1.
// cpu_ops.inc's default limits (cpu_program_new reads the overrides from the environment)
#define CPU_SDPA_BLOCK_MAX_BYTES ((int64_t)64 << 20)   // a thread's two attention score buffers
#define CPU_LCE_CHUNK_BYTES ((int64_t)32 << 20)        // linear_ce's logits at a time

typedef struct CpuExec {
    const IrNode *n;
    CpuTensor *out;
    const CpuTensor *const *in;    // n->nin inputs
    uint64_t step;
    int64_t off;                   // slice/pad: the offset along the axis, bound
    void *sdpa_grads[3];           // sdpa_bwd_q/k/v: the outputs of the group's other members
                                   // (dQ, dK, dV), computed in the same call; NULL when alone
    bool bf16_operands;            // sdpa / linear_ce (and their backward) with bf16 operands
                                   // (q, k, v; x, w): mixed precision's rounding points (ir.h)
    int64_t sdpa_block_max;        // bytes: attention's block path while its buffers fit
    int64_t lce_chunk_bytes;       // bytes of logits linear_ce computes at a time
    char err[256];
} CpuExec;

int cpu_exec_f32(CpuExec *e);
int cpu_exec_f64(CpuExec *e);
#ifdef TRLC_CPU_ISA_CLONES   // x86-64 builds: the float kernels for wider ISAs
int cpu_exec_f32_avx2(CpuExec *e);
int cpu_exec_f32_avx512(CpuExec *e);
#endif

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

// exp(x) in float without a library call, so that loops over it vectorize: x = n ln2 + r with
// |r| <= ln2/2, e^r by its degree-7 Taylor polynomial (error < 1e-8 relative), 2^n built in the
// exponent bits in two halves (so results down to the subnormals are right). Within 1 ulp of
// expf (checked over [-110, 95]); 0 and +inf at the ends as expf; NaN stays NaN. No branch: the
// clamps are min/max. No float-to-int conversion (NaN would make it
// undefined): n's bits are read from the rounding constant's mantissa.
static inline float cpu_vexpf(float x) {
    float c = x < -105.0f ? -105.0f : x > 89.0f ? 89.0f : x;
    const float magic = 12582912.0f;   // 1.5 * 2^23: adding it rounds to an integer
    float nm = c * 1.44269504088896341f + magic;
    float n = nm - magic;
    float r = c - n * 0.693145751953125f - n * 1.42860682030941723e-6f;
    float q = 1.0f / 5040 + r * (1.0f / 40320);
    q = 1.0f / 720 + r * q;
    q = 1.0f / 120 + r * q;
    q = 1.0f / 24 + r * q;
    q = 1.0f / 6 + r * q;
    q = 0.5f + r * q;
    q = 1.0f + r * q;
    q = 1.0f + r * q;
    uint32_t nb, mb;
    memcpy(&nb, &nm, 4);
    memcpy(&mb, &magic, 4);
    // n as an integer, in [-152, 129] (any bits for a NaN x: unsigned arithmetic, no overflow)
    int32_t k = (int32_t)(nb - mb);
    int32_t k1 = k / 2, k2 = k - k1;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return q * s1 * s2;   // past expf's range (x > 88.72) this overflows to +inf, as expf does
}

// Rounds x to a float format with `bits` significant bits (incl. the implicit one), minimum
// normal exponent emin (value 2^emin) and largest finite value maxv: bf16 (8, -126, 3.3895e38),
// f16 (11, -14, 65504). Round to nearest even; overflow gives ±inf.
double cpu_round_float(double x, int bits, int emin, double maxv);

// x rounded to bf16 (nearest even), kept a float; inf and NaN stay.
static inline float cpu_bf16f(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

#endif
