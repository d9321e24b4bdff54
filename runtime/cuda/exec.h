// exec.h — the GPU backend: runs an IR program on a CUDA device, with the same contract as the
// CPU interpreter (cpu.h) so that the trainer drives either. At creation the graph is fused
// (compiler/fuse.h), every unique kernel generated (codegen_cuda.h) and compiled by NVRTC through
// the kernel cache, and the hand-written library kernels (kernels/*.cu) compiled once each. Per
// (B, T) the static memory plan (compiler/memplan.h) lays out one device arena for every
// activation and the state library steps keep (attention / cross-entropy log-sum-exp rows);
// parameters and gradients have their own buffers. A run uploads what changed on the host (bound
// inputs every run, or copies them on the device from another program's output: cuda_bind_output;
// trainable params every run unless the device owns them, cuda_params_resident;
// frozen params once), launches the plan's steps in
// order (fused kernels; matrix products through cuBLASLt, blas.c; library kernels) on the
// program's own stream — from a shape's second run on as one CUDA graph, see below — waits, and
// downloads the outputs when asked.
// Every driver / NVRTC / cuBLASLt failure is reported naming the call and the step's node and spec
// location.
// Dtypes: fp32, and bf16 where mixed precision puts it (compiler/autocast.h: product operands,
// attention's q, k, v — the tensor-core kernels of kernels/attention_tc.cu — frozen weights,
// casts); anything else (fp16) is refused at creation with the node's spec line.
// Not here: the optimizer (runtime/cuda/optim_cuda.c, over the buffers this file hands out),
// several devices.
#ifndef TRLC_EXEC_H
#define TRLC_EXEC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cpu.h"
#include "ir.h"
#include "rt_cuda.h"

// ---- cuBLASLt (blas.c) ----
typedef struct RtBlas RtBlas;
// One column-major strided-batched product: D = alpha op(A) op(B) + beta C, op(A) m x k,
// op(B) k x n, C and D m x n with one layout (ldc, stride_c); a stride of 0 repeats an operand for
// every batch. fp32 accumulation. d == 0 writes over C (D = C). Zero-initialise, then set alpha
// (the struct is a cache key: the pointers aside, alpha and beta are part of it). bias != 0: an
// fp32 vector of m added to every column of D, the same for every batch element
// (CUBLASLT_EPILOGUE_BIAS; type_c must be IR_F32; with beta 0 C is not read).
typedef struct RtGemm {
    bool ta, tb;
    int64_t m, n, k;
    RtCudaPtr a, b, c;
    RtCudaPtr d;               // the result, or 0: into c
    RtCudaPtr bias;            // (m) of type_c (D's type), or 0: no epilogue
    int64_t lda, ldb, ldc;
    int64_t stride_a, stride_b, stride_c;
    int batch;
    float alpha, beta;
    IrDType type_ab, type_c;   // IR_F32 or IR_BF16
} RtGemm;
// Loads cuBLASLt ($TRLC_CUBLASLT_LIB, else libcublasLt.so.13/.12/.so) and makes a handle; the
// workspace (device memory) is offered to every product. NULL after reporting.
RtBlas *rt_blas_open(RtCudaPtr workspace, size_t workspace_bytes, Diag *d);
void rt_blas_close(RtBlas *b);
// The stream every later product is issued on (NULL: the legacy stream).
void rt_blas_set_stream(RtBlas *b, RtCudaStream s);
// Returns 0, or -1 after reporting (`what` names the product in the message).
int rt_blas_gemm(RtBlas *b, const RtGemm *g, const char *what);

// ---- the program ----
typedef struct CudaProgram CudaProgram;
// Fuses, generates and compiles g's kernels for the device's architecture (cache: the kernel
// cache, may be NULL = no caching) and loads them. g must outlive the program, unchanged.
// NULL after reporting.
CudaProgram *cuda_program_new(const IrGraph *g, RtCudaDevice *dev, RtCudaCache *cache, Diag *d);
void cuda_program_free(CudaProgram *p);
// Binds a leaf to a host buffer (float for float nodes, int32_t for i32, uint8_t for u8), read
// at every run (inputs and trainable params are uploaded each run; a frozen param once, until it
// is bound to another buffer). Checked against the node's shape at run time. Returns 0 or -1.
int cuda_bind(CudaProgram *p, IrId leaf, const void *data, size_t nbytes);
int cuda_bind_name(CudaProgram *p, const char *name, const void *data, size_t nbytes);
// Binds input `input` of p to output out_index of another program src on the same device (kd: the
// teacher's logits): at every later cuda_run of p it is copied device to device from src's
// output buffer of src's last run, on p's stream before the step's launches (outside any CUDA
// graph, like the host uploads); nothing crosses to the host. Checked here: input names an input
// of p (not a param), src is another program on p's device, out_index one of its outputs with a
// value, of the input's dtype and element count (as a function of B and T). At each run src must
// have run since it last planned, and the output's element count at src's (B, T) must equal the
// input's at p's (checked then). Every error names the input at its spec location. Contract:
// the output lives in src's arena, valid until src runs or plans (cuda_reserve) again, so src's
// next run must come after p's (cuda_run waits for its copies: run src, then p, step by step).
// A later cuda_bind / cuda_bind_name of the input goes back to host uploads. src must outlive the
// binding. Returns 0 or -1 (reported).
int cuda_bind_output(CudaProgram *p, const char *input, CudaProgram *src, int out_index);
// Lets p use owner's device buffer for every param both bind to the same host buffer with the
// same dtype and size (the evaluation and reference programs of a training run: the weights are
// on the device once). owner must outlive p. A trainable param is still uploaded by whichever
// program runs (the host holds the current values) unless the owner's is resident
// (cuda_params_resident), a frozen one once.
void cuda_share_params(CudaProgram *p, CudaProgram *owner);
// Lays out and allocates the activation arena for the largest step to come (B, T) now, so that a
// device too small fails at the start (with the plan's numbers) rather than when a long batch
// arrives; smaller steps reuse it. Returns 0 or -1 (reported).
int cuda_reserve(CudaProgram *p, const int64_t *sym);
// Runs the step for B = sym[IR_SYM_B], T = sym[IR_SYM_T]; step feeds dropout. Returns 0 or -1.
int cuda_run(CudaProgram *p, const int64_t *sym, uint64_t step);
// Output i of the last run, downloaded on first use (host memory valid until the next run).
const CpuTensor *cuda_output(CudaProgram *p, int i);
const CpuTensor *cuda_output_named(CudaProgram *p, const char *name);
// Bytes of device memory the program holds: the arena of the last run's plan, params, grads,
// saved library state, workspace.
int64_t cuda_device_bytes(const CudaProgram *p);
// Counts for messages and tests: unique fused kernels, steps launched by the last run.
int cuda_kernel_count(const CudaProgram *p);
const char *cuda_arch(const CudaProgram *p);   // "sm_90"...
int cuda_launch_count(const CudaProgram *p);
// The program's stream: every launch, product and copy of a run goes there (work others add to a
// step, e.g. an optimizer's kernels, should too: rt_cuda_launch_on(dev, cuda_stream(p), ...)).
RtCudaStream cuda_stream(const CudaProgram *p);

// ---- CUDA graphs (cuda_run) ----
// A shape's first run launches step by step (the warm-up); its second is captured into a CUDA
// graph and later ones replay it (one cuGraphLaunch; the dropout step reaches the captured kernels
// through node-parameter updates; bound host data is uploaded before the launch, outside the
// graph). Graphs of the EXEC_GRAPH_SHAPES most recently run shapes are kept (least recently used
// replaced); a changed buffer layout (arena reallocated, params rebound) captures again.
// $TRLC_CUDA_GRAPHS=0 (read when the program is made), or a driver without graph entry points,
// runs every step by step.
enum { EXEC_GRAPH_SHAPES = 8 };
bool cuda_graphs_enabled(const CudaProgram *p);
// Runs that launched a captured graph since the program was made.
int cuda_graph_launches(const CudaProgram *p);

// ---- the trainer's optimizer on the device (runtime/cuda/optim_cuda.c) ----
// From now on p's trainable params are the device's: uploaded from their bound host buffers once
// (at the next run), then never again; the optimizer updates them in place and the programs
// sharing them (cuda_share_params) read the current values. cuda_params_changed: the host values
// changed (a resumed run): uploaded again at the next run.
void cuda_params_resident(CudaProgram *p);
void cuda_params_changed(CudaProgram *p);
// The device buffer of param leaf (allocated by the first run; 0 before) and its bytes.
RtCudaPtr cuda_param_ptr(const CudaProgram *p, IrId leaf, size_t *bytes);
// The device buffer holding output i after the last run (valid until the next run), 0 when none.
RtCudaPtr cuda_output_ptr(const CudaProgram *p, int i);
// Copies between the host and the device, counted in cuda_transfer_bytes; a launch of a loaded
// kernel fn (blocks x threads) in order with the program's own. Return 0 or -1 (reported).
int cuda_upload(CudaProgram *p, RtCudaPtr dst, const void *src, size_t bytes);
int cuda_download(CudaProgram *p, void *dst, RtCudaPtr src, size_t bytes);
int cuda_launch_fn(CudaProgram *p, void *fn, unsigned blocks, unsigned threads, void **args, const char *what);
// Host<->device bytes the program moved since it was made (inputs, params, outputs read, flags).
int64_t cuda_transfer_bytes(const CudaProgram *p);

#endif
