// codegen_cuda.h — CUDA C for the fused kernels of a plan (fuse.h): one readable, self-contained
// source per unique kernel (no #include: NVRTC compiles it as it is), with a header comment naming
// the IR nodes it fuses and their spec locations, and every instance that launches it.
// Storage types: f32 → float, bf16 → trlc_bf16 (raw bits, converted with round-to-nearest-even),
// i32 → int; all math in f32. B and T are kernel arguments, so a new batch shape needs no
// recompilation. Launch: elementwise kernels use a grid-stride loop (256 threads per block);
// reduction kernels one block per reduced element (a multiple of 32 threads, up to 256).
// Not here: compiling (runtime/cuda/nvrtc.h), library kernels (kernels/*.cuh, cg_library_source).
#ifndef TRLC_CODEGEN_CUDA_H
#define TRLC_CODEGEN_CUDA_H
#include <stddef.h>
#include "diag.h"
#include "fuse.h"

// The source of unique kernel k of p, malloc'd (the caller frees it); NULL when out of memory.
// d (may be NULL) turns node locations into file:line:col in the header comment.
char *cg_cuda_kernel(const FusePlan *p, int k, const Diag *d);
// An elementwise kernel runs its loop with 32-bit indexes when its element count fits; this is
// the test that picks that loop, as it appears in the source (a test swaps it to run the other).
#define CG_INDEX32_TEST "if (n <= 2147483647LL)"

// How group `group` is launched, in words: "grid-stride over B*T*1024 elements, 256 threads" or
// "one block per B*T outputs (1024 elements each), up to 256 threads".
void cg_launch_shape(const FusePlan *p, int group, char *buf, size_t n);

// The launch of group `group` for B = sym[0], T = sym[1]: grid and block (y, z = 1). Elementwise:
// 256 threads, ceil(n / 256) blocks (at most 2^20, the loop strides); reduction: one block per
// output (at most 2^20), threads = the reduced count rounded up to 32, at most 256.
void cg_launch_dims(const FusePlan *p, int group, const int64_t *sym, unsigned grid[3], unsigned block[3]);

// The kernel's parameter list for a group in launch order, in words (for the index file):
// "out0 %33 f32[B,T,32], in0 %26 f32[B,T,32], B, T, step".
void cg_kernel_args(const FusePlan *p, int group, char *buf, size_t n);

// ---- library kernels (kernels/*.cu, embedded at build time) ----
// The hand-written kernel that runs a LIBRARY step's node: its function name, and in *file the
// kernels/ file holding it ("attention.cu"); NULL when the op has no GPU kernel yet.
const char *cg_library_kernel(const IrGraph *g, IrId id, const char **file);
// The embedded kernels/ files: count, names, and the text of one by name (NULL if unknown).
int cg_library_count(void);
const char *cg_library_name(int i);
const char *cg_library_source(const char *file);

#endif
