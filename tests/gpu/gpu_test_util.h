// gpu_test_util.h — helpers the GPU tests (tests/gpu/test_*.c) share instead of each keeping its
// own copy: the tests' seeded random numbers, bf16 rounding, the relative error they compare
// with; on targets that link trlc_cuda, opening device 0 for a test and uploading a buffer, and
// compiling + loading one kernel; on targets that compile specs, a spec compiled as trlc runs it,
// random parameters and batches for a graph (as the executor tests bind them), the random fusion
// graphs' inputs and the hand-built graph of every fusable op.
// It asserts nothing: test.h's counters are per file, so every CHECK stays in the test itself
// (the helpers return values and statuses). Each part is declared (and compiled in
// gpu_test_util.c) only where its headers are on the target's include path (__has_include):
// a test target links the libraries of the parts it can see (rt_cuda.h: trlc_cuda; lower.h and
// hfconfig.h: trlc_ir, trlc_io), so the one source serves every test executable.
#ifndef TRLC_GPU_TEST_UTIL_H
#define TRLC_GPU_TEST_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---- plain C (every target)

// The tests' generator: a 64-bit LCG on *state, a float in [-0.5, 0.5).
float gpu_test_frand(uint64_t *state);

// bf16 bits of v, rounded to nearest even (as the kernels store), and a bf16's value.
uint16_t gpu_test_bf16_bits(float v);
float gpu_test_bf16_value(uint16_t b);

// max |got - want| / (1e-3 + |want|) over n entries (a NaN anywhere: NaN).
double gpu_test_relerr(const float *got, const float *want, int64_t n);
// The same, with equal entries (equal infinities too) counting 0.
double gpu_test_relerr_eq(const float *got, const float *want, int64_t n);

// ---- with trlc_cuda
#if __has_include("rt_cuda.h")
#include "rt_cuda.h"

// A test's device: device 0 (opened quietly), its architecture and the kernel cache.
typedef struct GpuTestDevice {
    Diag d;              // where the device, the cache and the test's compiles report (stderr)
    RtCudaCache cache;
    char arch[32];       // sm_90 where the driver does not say
    RtCudaDevice *dev;
} GpuTestDevice;

// Opens t for test `name`; without a device prints "<name>: no CUDA device<without>" and
// returns false (nothing left to close).
bool gpu_test_open(GpuTestDevice *t, const char *name, const char *without);
void gpu_test_close(GpuTestDevice *t);

// A fresh device buffer of `bytes`, data uploaded into it when given; 0 where the allocation fails.
RtCudaPtr gpu_test_upload(RtCudaDevice *dev, const void *data, size_t bytes);

// src (the program `file`) compiled for arch with NVRTC and its kernel `name` loaded; NULL on
// any failure (reported to d).
void *gpu_test_kernel(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, const char *file, const char *src,
                      const char *name, Diag *d);
#endif

// ---- with the IR and lower.h (trlc_ir; lower.h's includes reach runtime/io)
#if __has_include("lower.h") && __has_include("hfconfig.h")
#include "ir.h"
#include "memplan_spec.h"

// A spec compiled to its training graph as trlc runs it (memplan_spec.h: mp_compile_spec_file),
// with the Diag (stderr) and arena it lives in. static inline: only the tests that call it link
// trlc_memplan.
typedef struct GpuTestSpec {
    Diag d;
    Arena a;
    LoadedSpec spec;
    CheckedSpec *cs;
    IrGraph g;
} GpuTestSpec;

// 0, or -1 where the spec does not compile (reported on stderr); gpu_test_spec_free either way.
static inline int gpu_test_spec_open(GpuTestSpec *s, const char *path) {
    diag_init(&s->d, stderr);
    return mp_open_spec_file(&s->d, &s->a, path, &s->spec, &s->cs, &s->g);
}

static inline void gpu_test_spec_free(GpuTestSpec *s) {
    ir_graph_free(&s->g);
    arena_free(&s->a);
    diag_free(&s->d);
}

// A fusion rewrite's memory check (sinking, merging): g planned at B = 8, T = 1024 in bf16 with
// `with` (the rewrite on) and `without`; prints both, and checks (tests/test.h) that the
// activations do not grow and the sum of all buffers shrinks (the values only the moved groups
// read are no longer written).
#include "memplan.h"
#include "test.h"
#include <stdio.h>
#include <string.h>
static inline void gpu_test_check_plan_leaner(const IrGraph *g, const FusePlan *with, const FusePlan *without,
                                              const char *path, Diag *d) {
    int64_t sym[IR_NSYMS] = {8, 1024};
    MpPlan mw, mo;
    memset(&mw, 0, sizeof mw);
    memset(&mo, 0, sizeof mo);
    bool ok = mp_plan(g, with, sym, "bf16", &mw, d) == 0 && mp_plan(g, without, sym, "bf16", &mo, d) == 0;
    CHECK_MSG(ok, "%s: the memory plans", path);
    if (ok) {
        printf("%s at B=8 T=1024: activations %.4f -> %.4f GiB (without reuse %.2f -> %.2f GiB)\n", path,
               mo.activations / 1073741824.0, mw.activations / 1073741824.0, mo.naive / 1073741824.0,
               mw.naive / 1073741824.0);
        CHECK_MSG(mw.activations <= mo.activations, "%s: activations %lld > %lld", path, (long long)mw.activations,
                  (long long)mo.activations);
        CHECK_MSG(mw.naive < mo.naive, "%s: the sum of all buffers %lld, not below %lld", path, (long long)mw.naive,
                  (long long)mo.naive);
    }
    mp_plan_free(&mw);
    mp_plan_free(&mo);
}

// The vocabulary: the smallest first dimension of a parameter named *embed_tokens* (1 << 30 if none).
int64_t gpu_test_vocab(const IrGraph *g);

// The bytes of parameter n at B = T = 1 as the tests bind it (NF4 codes: 1 a value, else 4).
size_t gpu_test_param_bytes(const IrNode *n);

// host[i] = a fresh buffer for every parameter i of g, filled from *rng: NF4 codes random bytes,
// *norm* weights 1 + 0.4 u, the rest 0.2 u (u in [-0.5, 0.5)), bf16-stored ones rounded to bf16.
void gpu_test_random_params(const IrGraph *g, void **host, uint64_t *rng);

// in[i] = a fresh buffer (the old one freed) for every input i of g at (B, T), filled from *rng:
// positions 0..T-1 a row, labels random tokens below V with every 7th (k % 7 == 3) ignored,
// packed sequence ids a new one every 12 positions, other i32 inputs random tokens, floats u.
// Each input's bytes: ir_shape_numel(shape, {B, T}) * 4.
void gpu_test_random_batch(const IrGraph *g, void **in, int64_t B, int64_t T, int64_t V, uint64_t *rng);

// The hand-built graph of fusable ops (test_fuse_eval and test_exec): rmsnorm, a written-out
// softmax, every unary op, comparisons, where, pow, a bf16 cast, dropout, reductions over the
// leading axes (sum_to), the middle axis and everything, a reduced value broadcast back, an
// integer input through a comparison into a mask; inputs x, y (B, T, 24), ids (B, T).
// The random graphs' first nodes (test_fuse_eval, test_exec): inputs in0..in4 of the shapes
// (B, T, H), (B, T, 1), (H), (T, H), (1, T, 1), in shapes[] and v[]; H = 1 for every 7th graph
// (it % 7 == 0), else 3 + it % 4. Returns 5, the nodes in v.
int gpu_test_fuzz_inputs(IrGraph *g, int it, IrShape shapes[5], IrId *v);

typedef struct GpuTestHandbuilt {
    IrId ms, r, nx;   // rmsnorm: the mean of squares, its rsqrt, the product (output "rmsnorm")
    IrId sm;          // the softmax (output "softmax")
} GpuTestHandbuilt;
void gpu_test_handbuilt_graph(IrGraph *g, GpuTestHandbuilt *ids);   // ids may be NULL
#endif

#endif
