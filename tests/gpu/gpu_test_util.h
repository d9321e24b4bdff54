// gpu_test_util.h — helpers the GPU tests (tests/gpu/test_*.c) share instead of each keeping its
// own copy: the tests' seeded random numbers, bf16 rounding, the relative error they compare
// with; on targets that link trlc_cuda, opening device 0 for a test and uploading a buffer, and
// compiling + loading one kernel; on targets that compile specs, a spec compiled as trlc runs it,
// random parameters and batches for a graph (as the executor tests bind them), the random fusion
// graphs' inputs and the hand-built graph of every fusable op; the attention tests' inputs, masks,
// buffers, launches and (with the executor) their hand-built graph.
// The functions assert nothing: test.h's counters are per file, so every CHECK stays in the test
// itself (they return values and statuses); the few static inline helpers here that CHECK count
// in the test that calls them. Each part is declared (and compiled in
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

// The attention tests' measure: ||got - want||_2 / max(||want||_2, 1e-2 sqrt(n)) over the finite
// entries (relative to the RMS of the expected values, or to an RMS of 1e-2 where they are
// smaller). Equal entries (infinities too) count 0; an infinity or NaN on one side only: 1e30.
double gpu_test_normdiff(const float *got, const float *want, int64_t n);

// An attention test's random inputs from *rng, drawn in this order: per i < nq, q[i] = bf16(4 u)
// then go[i] = u; then per i < nkv, k[i] = bf16(4 u) then v[i] = bf16(2 u) (u: gpu_test_frand;
// q, k, v bf16 bits).
void gpu_test_attn_inputs(uint16_t *q, uint16_t *k, uint16_t *v, float *go, int64_t nq, int64_t nkv, uint64_t *rng);

// The key mask and packed segments of a batch of 2 rows of T positions: row 0 has every key with
// j % 5 == 2 masked and segments 0 | 1 split at T / 2; row 1 its first T / 5 keys masked (left
// padding; segment -1 there: those queries see no key), then segments 0 | 1 split at 2 T / 3.
// km and seg: (2, T).
void gpu_test_attn_masks(float *km, int32_t *seg, int T);

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

// A fresh device buffer of `bytes` holding data, or zeros where data is NULL; 0 where the
// allocation fails.
RtCudaPtr gpu_test_buffer(RtCudaDevice *dev, const void *data, size_t bytes);

// n bf16 values `off` elements into a fresh zeroed buffer of n + off (off 1: rows not 16-byte
// aligned); *at = the device address of the values. Returns the buffer (to free), or 0.
RtCudaPtr gpu_test_buffer_at(RtCudaDevice *dev, const uint16_t *data, int64_t n, int off, RtCudaPtr *at);

// fn launched on grid with 128 threads a block (the attention kernels' launch), then waited for:
// 0, or -1 (fn NULL, the launch or the wait failed).
int gpu_test_launch128(RtCudaDevice *dev, void *fn, const unsigned grid[3], void **args, const char *what);

// n kernels of src (the program `file`) loaded into fns[i] for names[i], each CHECKed ("<name>
// does not load"): n checks in the calling test. src NULL: every fns[i] NULL.
#include "test.h"
static inline void gpu_test_kernels(GpuTestDevice *t, const char *file, const char *src, const char *const *names,
                                    void **fns, int n) {
    for (int i = 0; i < n; i++) {
        fns[i] = src ? gpu_test_kernel(t->dev, &t->cache, t->arch, file, src, names[i], &t->d) : NULL;
        CHECK_MSG(fns[i] != NULL, "%s does not load", names[i]);
    }
}
#endif

// ---- with the CUDA executor and the CPU interpreter (trlc_cuda_exec, trlc_cpu): static inline,
// only the tests that call it link them
#if __has_include("exec.h") && __has_include("cpu.h") && __has_include("rt_cuda.h")
#include "cpu.h"
#include "exec.h"
#include "ir.h"
#include <stdlib.h>

// The executor tests' attention graph (hand-built; B, Hq, Hkv, T, D fixed, causal): q, k, v
// frozen bf16 params ((B, Hq | Hkv, T, D)), dO the input "go", the forward's bf16 O as output "o"
// (with_o), then the gradients "dq", "dk", "dv" (the first ngrads of them) as outputs; in[] the
// values of q, k, v, go (gpu_test_attn_inputs from *rng, as bf16-valued floats; malloc'd).
typedef struct GpuTestAttnGraph {
    IrGraph g;
    IrId ids[4];      // q, k, v, go
    float *in[4];     // their values
    size_t bytes[4];
} GpuTestAttnGraph;

// Builds a (its graph reports to d), CHECKing that the graph has no error (1 check).
static inline void gpu_test_attn_graph(GpuTestAttnGraph *a, Diag *d, int B, int Hq, int Hkv, int T, int D, bool with_o,
                                       int ngrads, uint64_t *rng) {
    IrGraph *g = &a->g;
    ir_graph_init(g, d, IR_F32);
    Loc L = {0, 0, 0};
    IrShape sq = ir_shape4(ir_dim(B), ir_dim(Hq), ir_dim(T), ir_dim(D));
    IrShape sk = ir_shape4(ir_dim(B), ir_dim(Hkv), ir_dim(T), ir_dim(D));
    IrId q = ir_param(g, "q", IR_BF16, sq, false, L), k = ir_param(g, "k", IR_BF16, sk, false, L);
    IrId v = ir_param(g, "v", IR_BF16, sk, false, L), go = ir_input(g, "go", IR_F32, sq, L);
    if (with_o) ir_add_output(g, ir_sdpa_to(g, q, k, v, IR_NONE, IR_NONE, true, 0, IR_BF16, L), "o");
    const char *gn[3] = {"dq", "dk", "dv"};
    for (int w = 0; w < ngrads; w++)
        ir_add_output(g, ir_sdpa_bwd(g, (IrOp)(IR_SDPA_BWD_Q + w), q, k, v, go, true, 0, L), gn[w]);
    CHECK(g->errors == 0);
    const int64_t nq = (int64_t)B * Hq * T * D, nkv = (int64_t)B * Hkv * T * D, n[4] = {nq, nkv, nkv, nq};
    uint16_t *bits[3];
    for (int i = 0; i < 3; i++) bits[i] = malloc((size_t)n[i] * 2);
    for (int i = 0; i < 4; i++) a->ids[i] = i == 0 ? q : i == 1 ? k : i == 2 ? v : go, a->in[i] = malloc((size_t)n[i] * 4);
    for (int i = 0; i < 4; i++) a->bytes[i] = a->in[i] ? (size_t)n[i] * 4 : 0;
    if (bits[0] && bits[1] && bits[2] && a->in[0] && a->in[1] && a->in[2] && a->in[3]) {
        gpu_test_attn_inputs(bits[0], bits[1], bits[2], a->in[3], nq, nkv, rng);
        for (int i = 0; i < 3; i++)
            for (int64_t e = 0; e < n[i]; e++) a->in[i][e] = gpu_test_bf16_value(bits[i][e]);
    }
    for (int i = 0; i < 3; i++) free(bits[i]);
}

// a's inputs bound into the interpreter's and the executor's programs (4 checks).
static inline void gpu_test_attn_bind(const GpuTestAttnGraph *a, CpuProgram *c, CudaProgram *x) {
    for (int i = 0; i < 4; i++)
        CHECK(a->in[i] && cpu_bind(c, a->ids[i], a->in[i], a->bytes[i]) == 0 &&
              cuda_bind(x, a->ids[i], a->in[i], a->bytes[i]) == 0);
}

// Frees a and the two programs made from its graph (either may be NULL).
static inline void gpu_test_attn_graph_free(GpuTestAttnGraph *a, CpuProgram *c, CudaProgram *x) {
    if (x) cuda_program_free(x);
    if (c) cpu_program_free(c);
    for (int i = 0; i < 4; i++) free(a->in[i]);
    ir_graph_free(&a->g);
}
#endif

// ---- with the IR and lower.h (trlc_ir; lower.h's includes reach runtime/io)
#if __has_include("lower.h") && __has_include("hfconfig.h")
#include "fuse.h"
#include "ir.h"
#include "memplan_spec.h"
#include <string.h>

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

// A fusion rewrite's spec test (sinking, merging): the spec at path opened into S
// (gpu_test_spec_open) and fused twice, with the default options into *with and with `off` (the
// rewrite off) into *plain. True when all three succeed; either way gpu_test_spec_plans_free after.
static inline bool gpu_test_spec_plans(GpuTestSpec *S, const char *path, const FuseOptions *off, FusePlan *with,
                                       FusePlan *plain) {
    memset(with, 0, sizeof *with);
    memset(plain, 0, sizeof *plain);
    return gpu_test_spec_open(S, path) == 0 && fuse_plan_with(&S->g, NULL, &S->d, with) == 0 &&
           fuse_plan_with(&S->g, off, &S->d, plain) == 0;
}

static inline void gpu_test_spec_plans_free(GpuTestSpec *S, FusePlan *with, FusePlan *plain) {
    fuse_plan_free(with);
    fuse_plan_free(plain);
    gpu_test_spec_free(S);
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

// A random graph across reshapes (fuse.h, fusing across views): chains over four views of the
// same elements ([B,T,H,W], [B,T,H*W], [B*T,H*W], [B,T*H,W]; H = 2 + it % 3, W = 3 + it % 4):
// reshapes, elementwise ops, products with a weight of each view's last dim (inputs x0..x3,
// weights w0..w3), dropout, bf16 round trips, reductions along a view's last axis broadcast
// back, permutes; outputs o<k>: the last three values. rnd() gives numbers in [0, 1).
void gpu_test_view_graph(IrGraph *g, int it, double (*rnd)(void));
#endif

#endif
