// test_emu.c — the CUDA emulator (tests/gpu/emu) itself, through trlc's device layer with
// TRLC_CUDA_DRIVER pointing at it, and its driver / cuBLASLt entry points directly: block sums of
// a kernel with shared memory, __syncthreads and warp shuffles (2-D blocks, a partial last warp);
// a divergent __syncthreads, a barrier/shuffle deadlock and a shuffle from an exited lane fail the
// launch (no hang); launch bounds; out-of-bounds copies, sets and frees rejected; cublasLtMatmul
// for every transpose combination, strided batches (stride 0 = broadcast), beta != 0 with C
// aliasing D, and bf16 operands, against OpenBLAS cblas_sgemm (the same column-major problem);
// malformed problems (ld < rows, shapes that disagree) rejected; WMMA (m16n16k16 bf16 -> f32, every
// layout) against a double product, bf16 round-to-nearest-even, and WMMA calls breaking the
// hardware's rules (misaligned pointer, bad ldm, half a warp, lanes disagreeing, a partial warp)
// failing the launch. Usage: test_gpu_emu LIBCUEMU.
#include "gpu_test_util.h"
#include "rt_cuda.h"
#include "test.h"
#include <cblas.h>
#include <cublasLt.h>
#include <cuda.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

CUresult trlcEmuModuleLoadSource(CUmodule *mod, const char *source);   // the emulator's own entry point
unsigned long trlcEmuGraphLaunches(void);                               // graphs launched so far

static uint64_t rng = 7;
static float frand(void) { return gpu_test_frand(&rng); }

static const char *kernels_src =
    "// block sums: warp shuffles, then one value per warp through shared memory\n"
    "#define NW 32\n"
    "extern \"C\" __global__ void __launch_bounds__(256) block_sum(\n"
    "    float *out,            // (blocks)\n"
    "    const float *x, int n) // (n)\n"
    "{\n"
    "    __shared__ float sh[NW];\n"
    "    const int t = threadIdx.y * blockDim.x + threadIdx.x, nt = blockDim.x * blockDim.y;\n"
    "    const int i = blockIdx.x * nt + t;\n"
    "    float v = i < n ? x[i] : 0.0f;\n"
    "    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
    "    if ((t & 31) == 0) sh[t >> 5] = v;\n"
    "    __syncthreads();\n"
    "    if (t < 32) {\n"
    "        v = t < (nt + 31) / 32 ? sh[t] : 0.0f;\n"
    "        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);\n"
    "        if (t == 0) out[blockIdx.x] = v;\n"
    "    }\n"
    "}\n"
    "/* a comment naming __global__ void not_a_kernel( must not make a launcher */\n"
    "extern \"C\" __global__ void divergent_sync(float *out) {\n"
    "    if (threadIdx.x < 16) __syncthreads();\n"
    "    else __syncthreads();\n"
    "    out[threadIdx.x] = 1.0f;\n"
    "}\n"
    "extern \"C\" __global__ void deadlock(float *out) {\n"
    "    float v = (float)threadIdx.x;\n"
    "    if (threadIdx.x < 16) __syncthreads();\n"
    "    v += __shfl_xor_sync(0xffffffffu, v, 16);\n"
    "    out[threadIdx.x] = v;\n"
    "}\n"
    "extern \"C\" __global__ void shuffles(int *out) {   // 64 threads: 4 results per thread\n"
    "    const int v = 100 + (int)threadIdx.x;\n"
    "    out[threadIdx.x * 4 + 0] = __shfl_sync(0xffffffffu, v, 3);\n"
    "    out[threadIdx.x * 4 + 1] = __shfl_up_sync(0xffffffffu, v, 1, 16);\n"
    "    out[threadIdx.x * 4 + 2] = __shfl_down_sync(0xffffffffu, v, 2, 8);\n"
    "    __syncwarp();\n"
    "    out[threadIdx.x * 4 + 3] = __shfl_xor_sync(0xffffffffu, v, 5);\n"
    "}\n"
    "extern \"C\" __global__ void reverse(float *x) {   // dynamic shared memory: blockDim floats\n"
    "    extern __shared__ float buf[];\n"
    "    buf[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];\n"
    "    __syncthreads();\n"
    "    x[blockIdx.x * blockDim.x + threadIdx.x] = buf[blockDim.x - 1 - threadIdx.x];\n"
    "}\n"
    "extern \"C\" __global__ void stale_shared(float *out) {   // block 1 reads what it never wrote\n"
    "    __shared__ float s[4];\n"
    "    if (blockIdx.x == 0) s[threadIdx.x] = 1.0f;\n"
    "    __syncthreads();\n"
    "    out[blockIdx.x * 4 + threadIdx.x] = s[threadIdx.x];\n"
    "}\n"
    "extern \"C\" __global__ void exited_lane(float *out) {\n"
    "    if (threadIdx.x >= 16) return;\n"
    "    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 16);\n"
    "}\n";

// WMMA (m16n16k16, bf16 a / b, float accumulator): warp w of the block computes tile w of
// D (16, 32) = A (16, 32) B (32, 32) + C with A / B / C / D in the layouts the flags name
// (bit 0: A col-major, 1: B col-major, 2: C col-major, 3: D col-major); ld 40 (bf16) / 36 (float).
// `bad` breaks a rule: 1 a misaligned pointer, 2 ldm 12, 3 lanes >= 16 skip the mma, 4 lanes
// pass different pointers.
static const char *wmma_src =
    "using namespace nvcuda;\n"
    "extern \"C\" __global__ void wmma_mm(float *d, const unsigned short *a_, const unsigned short *b_,\n"
    "                                     const float *c, int flags, int bad) {\n"
    "    __shared__ __align__(32) __nv_bfloat16 sa[32 * 40], sb[32 * 40];\n"
    "    const __nv_bfloat16 *a = (const __nv_bfloat16 *)a_, *b = (const __nv_bfloat16 *)b_;\n"
    "    for (int i = threadIdx.x; i < 32 * 40; i += blockDim.x) sa[i] = a[i], sb[i] = b[i];\n"
    "    __syncthreads();\n"
    "    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;\n"
    "    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;\n"
    "    const wmma::layout_t lc = flags & 4 ? wmma::mem_col_major : wmma::mem_row_major;\n"
    "    const wmma::layout_t ld = flags & 8 ? wmma::mem_col_major : wmma::mem_row_major;\n"
    "    wmma::load_matrix_sync(acc, c + (flags & 4 ? w * 16 * 36 : w * 16), 36, lc);\n"
    "    for (int k = 0; k < 32; k += 16) {\n"
    "        const __nv_bfloat16 *pa = sa + (flags & 1 ? k * 40 : k), *pb = sb + (flags & 2 ? w * 16 * 40 + k : k * 40 + w * 16);\n"
    "        if (bad == 1) pa += 1;\n"
    "        if (bad == 4 && lane == 7) pa += 16;\n"
    "        const unsigned lda = bad == 2 ? 12 : 40;\n"
    "        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ar;\n"
    "        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> ac;\n"
    "        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> br;\n"
    "        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bc;\n"
    "        if (flags & 1) wmma::load_matrix_sync(ac, pa, lda); else wmma::load_matrix_sync(ar, pa, lda);\n"
    "        if (flags & 2) wmma::load_matrix_sync(bc, pb, 40); else wmma::load_matrix_sync(br, pb, 40);\n"
    "        if (bad == 3 && lane >= 16) return;\n"
    "        if (flags & 1) { if (flags & 2) wmma::mma_sync(acc, ac, bc, acc); else wmma::mma_sync(acc, ac, br, acc); }\n"
    "        else { if (flags & 2) wmma::mma_sync(acc, ar, bc, acc); else wmma::mma_sync(acc, ar, br, acc); }\n"
    "    }\n"
    "    wmma::store_matrix_sync(d + (flags & 8 ? w * 16 * 36 : w * 16), acc, 36, ld);\n"
    "    if (threadIdx.x == 0) d[36 * 32] = __bfloat162float(__float2bfloat16(1.00390625f)) +\n"
    "                                      __bfloat162float(__float2bfloat16(1.01171875f));   // ties to even\n"
    "}\n";

static void test_kernels(RtCudaDevice *dev) {
    void *sum = NULL, *div = NULL, *dead = NULL, *exited = NULL;
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "block_sum", &sum) == 0);
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "divergent_sync", &div) == 0);
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "deadlock", &dead) == 0);
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "exited_lane", &exited) == 0);
    void *none = NULL;
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "not_a_kernel", &none) != 0);
    // a source the host compiler rejects fails the load (CUDA_ERROR_INVALID_SOURCE, its output printed)
    CHECK(rt_cuda_load_source(dev, NULL, "extern \"C\" __global__ void broken(float *x) { x[0] = y; }\n", "broken",
                              &none) != 0);
    CUmodule m = NULL;
    CHECK(trlcEmuModuleLoadSource(&m, "extern \"C\" __global__ void broken(float *x) { x[0] = y; }\n") ==
          CUDA_ERROR_INVALID_SOURCE);
    CHECK(trlcEmuModuleLoadSource(&m, "// no kernel here\n") == CUDA_ERROR_INVALID_SOURCE);
    if (!sum || !div || !dead || !exited) return;
    enum { N = 1000 };
    float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i % 17) - 8.0f;   // small integers: exact sums
    RtCudaPtr px = 0, pout = 0;
    CHECK(rt_cuda_alloc(dev, sizeof x, &px) == 0 && rt_cuda_upload(dev, px, x, sizeof x) == 0);
    CHECK(rt_cuda_alloc(dev, 64 * sizeof(float), &pout) == 0);
    // 1-D blocks of 256, 2-D blocks of 32 x 4, and 1-D blocks of 80 (a partial last warp)
    const unsigned shapes[3][2] = {{256, 1}, {32, 4}, {80, 1}};
    for (int s = 0; s < 3; s++) {
        unsigned nt = shapes[s][0] * shapes[s][1], nb = (N + nt - 1) / nt;
        unsigned grid[3] = {nb, 1, 1}, block[3] = {shapes[s][0], shapes[s][1], 1};
        int n = N;
        void *args[] = {&pout, &px, &n};
        if (s == 2) {   // a partial warp: the full-mask shuffles of the last warp read missing lanes
            CHECK_MSG(rt_cuda_launch(dev, sum, grid, block, 0, args, "block_sum (partial warp)") != 0,
                      "a shuffle reading a lane of a partial warp must fail");
            continue;
        }
        CHECK(rt_cuda_launch(dev, sum, grid, block, 0, args, "block_sum") == 0);
        float got[64];
        CHECK(rt_cuda_download(dev, got, pout, nb * sizeof(float)) == 0);
        int bad = 0;
        for (unsigned b = 0; b < nb; b++) {
            float want = 0;
            for (unsigned i = b * nt; i < (b + 1) * nt && i < N; i++) want += x[i];
            bad += got[b] != want;
        }
        CHECK_MSG(bad == 0, "block %ux%u: %d of %u block sums wrong", shapes[s][0], shapes[s][1], bad, nb);
        printf("block_sum, blocks of %ux%u: %u block sums exact\n", shapes[s][0], shapes[s][1], nb);
    }
    // bugs the emulator must report instead of hanging
    unsigned g1[3] = {1, 1, 1}, b32[3] = {32, 1, 1}, b512[3] = {512, 1, 1};
    void *a1[] = {&pout};
    time_t t0 = time(NULL);
    CHECK_MSG(rt_cuda_launch(dev, div, g1, b32, 0, a1, "divergent_sync") != 0, "a divergent __syncthreads must fail");
    CHECK_MSG(rt_cuda_launch(dev, dead, g1, b32, 0, a1, "deadlock") != 0, "a deadlock must fail");
    CHECK_MSG(rt_cuda_launch(dev, exited, g1, b32, 0, a1, "exited_lane") != 0, "a shuffle from an exited lane must fail");
    CHECK(time(NULL) - t0 < 10);
    int n = N;
    void *a2[] = {&pout, &px, &n};
    CHECK_MSG(rt_cuda_launch(dev, sum, g1, b512, 0, a2, "block_sum, 512 threads") != 0, "over __launch_bounds__(256)");
    unsigned gbig[3] = {1, 70000, 1};
    CHECK_MSG(rt_cuda_launch(dev, sum, gbig, b32, 0, a2, "block_sum, grid y 70000") != 0, "grid y over 65535");
    // arguments the driver would take and the kernel would crash on: a host pointer, a freed
    // buffer, no argument array
    RtCudaPtr freed = 0, host_ptr = (RtCudaPtr)(uintptr_t)x;
    CHECK(rt_cuda_alloc(dev, 64, &freed) == 0);
    rt_cuda_free(dev, freed);
    void *a3[] = {&pout, &host_ptr, &n};
    CHECK_MSG(rt_cuda_launch(dev, sum, g1, b32, 0, a3, "block_sum, host pointer") != 0, "a host pointer argument");
    void *a4[] = {&pout, &freed, &n};
    CHECK_MSG(rt_cuda_launch(dev, sum, g1, b32, 0, a4, "block_sum, freed buffer") != 0, "a freed buffer argument");
    CHECK_MSG(rt_cuda_launch(dev, sum, g1, b32, 0, NULL, "block_sum, no arguments") != 0, "no argument array");
    // shuffle semantics (CUDA's): idx broadcasts a lane, up / down stay inside their width's
    // segment (out of range: the own value), xor pairs lanes
    void *shf = NULL;
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "shuffles", &shf) == 0);
    if (shf) {
        RtCudaPtr pi = 0;
        int got[256], wrong = 0;
        CHECK(rt_cuda_alloc(dev, sizeof got, &pi) == 0);
        unsigned b64[3] = {64, 1, 1};
        void *a5[] = {&pi};
        CHECK(rt_cuda_launch(dev, shf, g1, b64, 0, a5, "shuffles") == 0);
        CHECK(rt_cuda_download(dev, got, pi, sizeof got) == 0);
        for (int t = 0; t < 64; t++) {
            int lane = t % 32, base = t - lane, v = 100 + t;
            int want[4] = {100 + base + 3, lane % 16 >= 1 ? v - 1 : v, lane % 8 + 2 < 8 ? v + 2 : v, 100 + base + (lane ^ 5)};
            for (int k = 0; k < 4; k++) wrong += got[t * 4 + k] != want[k];
        }
        CHECK_MSG(wrong == 0, "%d shuffle results wrong", wrong);
        rt_cuda_free(dev, pi);
    }
    // dynamic shared memory (extern __shared__): each block reverses its part; over 48 KiB fails
    void *rev = NULL;
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "reverse", &rev) == 0);
    if (rev) {
        float v[192], w[192];
        for (int i = 0; i < 192; i++) v[i] = (float)i;
        RtCudaPtr pv = 0;
        CHECK(rt_cuda_alloc(dev, sizeof v, &pv) == 0 && rt_cuda_upload(dev, pv, v, sizeof v) == 0);
        unsigned g3[3] = {3, 1, 1}, b64[3] = {64, 1, 1};
        void *a6[] = {&pv};
        CHECK(rt_cuda_launch(dev, rev, g3, b64, 64 * sizeof(float), a6, "reverse") == 0);
        CHECK(rt_cuda_download(dev, w, pv, sizeof w) == 0);
        int wrong = 0;
        for (int i = 0; i < 192; i++) wrong += w[i] != v[i / 64 * 64 + 63 - i % 64];
        CHECK_MSG(wrong == 0, "dynamic shared memory: %d wrong", wrong);
        CHECK(rt_cuda_launch(dev, rev, g3, b64, 64 * 1024, a6, "reverse, 64 KiB") != 0);
        rt_cuda_free(dev, pv);
    }
    // shared memory does not survive from one block to the next: block 1 reads garbage (NaN)
    void *stale = NULL;
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "stale_shared", &stale) == 0);
    if (stale) {
        unsigned g2[3] = {2, 1, 1}, b4[3] = {4, 1, 1};
        float got[8];
        CHECK(rt_cuda_launch(dev, stale, g2, b4, 0, a1, "stale_shared") == 0);
        CHECK(rt_cuda_download(dev, got, pout, sizeof got) == 0);
        CHECK(got[0] == 1.0f && got[3] == 1.0f && isnan(got[4]) && isnan(got[7]));
    }
    // the device still works after the failures
    unsigned grid[3] = {4, 1, 1}, block[3] = {256, 1, 1};
    CHECK(rt_cuda_launch(dev, sum, grid, block, 0, a2, "block_sum again") == 0);
    rt_cuda_free(dev, px);
    rt_cuda_free(dev, pout);
}

#if defined(__SANITIZE_ADDRESS__)
#include <sys/wait.h>
#include <unistd.h>
// the sanitizer build compiles kernels with AddressSanitizer: a kernel writing one element past
// its buffer kills the process (in a child here) with a report naming the kernel's line
static void test_kernel_overflow(RtCudaDevice *dev) {
    const char *src = "extern \"C\" __global__ void overflow(float *x) {   // 33 threads, 32 floats\n"
                      "    x[threadIdx.x] = 1.0f;\n"
                      "}\n";
    void *fn = NULL;
    CHECK(rt_cuda_load_source(dev, NULL, src, "overflow", &fn) == 0);
    if (!fn) return;
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        RtCudaPtr p = 0;
        unsigned g[3] = {1, 1, 1}, b[3] = {33, 1, 1};
        void *args[] = {&p};
        if (rt_cuda_alloc(dev, 32 * sizeof(float), &p) == 0) rt_cuda_launch(dev, fn, g, b, 0, args, "overflow");
        _exit(0);   // not reached when the overflow is seen
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK_MSG(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "a kernel writing past its buffer went unnoticed");
    printf("sanitizer build: a kernel writing past its buffer is reported (child status %d)\n", st);
}
#endif

static void test_memory(void) {
    CUdeviceptr p = 0;
    char host[256] = {0};
    CHECK(cuMemAlloc(&p, 100) == CUDA_SUCCESS);
    CHECK(cuMemcpyHtoD(p, host, 100) == CUDA_SUCCESS);
    CHECK(cuMemcpyHtoD(p + 50, host, 50) == CUDA_SUCCESS);
    CHECK(cuMemcpyHtoD(p, host, 101) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemcpyHtoD(p + 50, host, 60) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemcpyDtoH(host, p + 99, 2) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemcpyDtoH(host, p - 1, 1) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemsetD8(p, 0, 101) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemsetD32(p, 0, 26) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemsetD32(p, 7, 25) == CUDA_SUCCESS);
    CHECK(cuMemcpyDtoD(p, p + 4, 96) == CUDA_SUCCESS);
    CHECK(cuMemcpyDtoD(p, p + 4, 97) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemFree(p + 4) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemFree(p) == CUDA_SUCCESS);
    CHECK(cuMemFree(p) == CUDA_ERROR_INVALID_VALUE);   // double free
    CHECK(cuMemcpyHtoD(p, host, 4) == CUDA_ERROR_INVALID_VALUE);   // after free
    CUmodule m = NULL;
    CHECK(cuModuleLoadData(&m, host) != CUDA_SUCCESS);   // no cubins
}

// ---- cuBLASLt

static void test_wmma(RtCudaDevice *dev) {
    void *fn = NULL;
    CHECK(rt_cuda_load_source(dev, NULL, wmma_src, "wmma_mm", &fn) == 0);
    if (!fn) return;
    uint16_t a[32 * 40], b[32 * 40];
    float af[32 * 40], bf[32 * 40], c[32 * 36], d[32 * 36 + 1];
    for (int i = 0; i < 32 * 40; i++) {
        a[i] = gpu_test_bf16_bits(4 * frand());
        b[i] = gpu_test_bf16_bits(4 * frand());
    }
    for (int i = 0; i < 32 * 40; i++) af[i] = gpu_test_bf16_value(a[i]), bf[i] = gpu_test_bf16_value(b[i]);
    for (int i = 0; i < 32 * 36; i++) c[i] = frand();
    RtCudaPtr pa = 0, pb = 0, pc = 0, pd = 0;
    CHECK(rt_cuda_alloc(dev, sizeof a, &pa) == 0 && rt_cuda_upload(dev, pa, a, sizeof a) == 0);
    CHECK(rt_cuda_alloc(dev, sizeof b, &pb) == 0 && rt_cuda_upload(dev, pb, b, sizeof b) == 0);
    CHECK(rt_cuda_alloc(dev, sizeof c, &pc) == 0 && rt_cuda_upload(dev, pc, c, sizeof c) == 0);
    CHECK(rt_cuda_alloc(dev, sizeof d, &pd) == 0);
    unsigned g1[3] = {1, 1, 1}, b64[3] = {64, 1, 1}, b48[3] = {48, 1, 1};
    double worst = 0;
    for (int flags = 0; flags < 16; flags++) {
        int bad = 0;
        void *args[] = {&pd, &pa, &pb, &pc, &flags, &bad};
        CHECK(rt_cuda_launch(dev, fn, g1, b64, 0, args, "wmma_mm") == 0);
        CHECK(rt_cuda_download(dev, d, pd, sizeof d) == 0);
        for (int m = 0; m < 16; m++)
            for (int n = 0; n < 32; n++) {
                double want = c[flags & 4 ? n * 36 + m : m * 36 + n];
                for (int k = 0; k < 32; k++)
                    want += (double)af[flags & 1 ? k * 40 + m : m * 40 + k] * bf[flags & 2 ? n * 40 + k : k * 40 + n];
                double got = d[flags & 8 ? n * 36 + m : m * 36 + n], e = fabs(got - want) / (1 + fabs(want));
                if (!(e <= worst)) worst = e;
            }
        CHECK_MSG(d[32 * 36] == 2.015625f, "bf16 rounding: %g", d[32 * 36]);
    }
    printf("wmma m16n16k16 bf16 -> f32, 16 layout combinations of A / B / C / D, 2 warps: max error %.2g vs double\n",
           worst);
    CHECK(worst < 1e-5);
    // the hardware's rules: each broken one fails the launch
    const char *what[] = {"", "a pointer not 32-byte aligned", "ldm 12", "half the warp skipping mma_sync",
                          "lanes passing different pointers"};
    for (int bad = 1; bad <= 4; bad++) {
        int flags = 0;
        void *args[] = {&pd, &pa, &pb, &pc, &flags, &bad};
        CHECK_MSG(rt_cuda_launch(dev, fn, g1, b64, 0, args, what[bad]) != 0, "%s must fail", what[bad]);
    }
    int flags = 0, bad = 0;
    void *args[] = {&pd, &pa, &pb, &pc, &flags, &bad};
    CHECK_MSG(rt_cuda_launch(dev, fn, g1, b48, 0, args, "wmma in a partial warp") != 0, "a partial warp must fail");
    CHECK(rt_cuda_launch(dev, fn, g1, b64, 0, args, "wmma_mm again") == 0);
    rt_cuda_free(dev, pa), rt_cuda_free(dev, pb), rt_cuda_free(dev, pc), rt_cuda_free(dev, pd);
}

// n random values in x and their bf16 bits in x16; with bf16 set, x holds the bf16 values
static void fill(float *x, uint16_t *x16, size_t n, bool bf16) {
    for (size_t i = 0; i < n; i++) {
        x[i] = frand(), x16[i] = gpu_test_bf16_bits(x[i]);
        if (bf16) x[i] = gpu_test_bf16_value(x16[i]);
    }
}

static CUdeviceptr dev_copy(const void *h, size_t n) {
    CUdeviceptr p = 0;
    if (cuMemAlloc(&p, n) == CUDA_SUCCESS) cuMemcpyHtoD(p, h, n);
    return p;
}

static cublasLtMatrixLayout_t layout(cudaDataType t, int rows, int cols, int ld, int batch, long long stride) {
    cublasLtMatrixLayout_t l = NULL;
    CHECK(cublasLtMatrixLayoutCreate(&l, t, (uint64_t)rows, (uint64_t)cols, ld) == CUBLAS_STATUS_SUCCESS);
    int32_t b = batch;
    int64_t s = stride;
    CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof b) == CUBLAS_STATUS_SUCCESS);
    CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s, sizeof s) ==
          CUBLAS_STATUS_SUCCESS);
    return l;
}

// one batched problem: D = alpha op(A) op(B) + beta C with C aliasing D; returns the max rel. error
static double gemm_case(cublasLtHandle_t lt, int ta, int tb, int m, int n, int k, int batch, bool bcast_a, bool bcast_b,
                        float beta, bool bf16) {
    const int lda = (ta ? k : m) + 3, ldb = (tb ? n : k) + 1, ldc = m + 2;
    const long long sa = bcast_a ? 0 : (long long)lda * (ta ? m : k) + 5, sb = bcast_b ? 0 : (long long)ldb * (tb ? k : n);
    const long long sc = (long long)ldc * n + 7;
    const size_t na = (size_t)(sa * (batch - 1) + (long long)lda * (ta ? m : k));
    const size_t nb = (size_t)(sb * (batch - 1) + (long long)ldb * (tb ? k : n));
    const size_t nc = (size_t)(sc * (batch - 1) + (long long)ldc * n);
    float *a = malloc(na * 4), *b = malloc(nb * 4), *c = malloc(nc * 4), *want = malloc(nc * 4), *got = malloc(nc * 4);
    uint16_t *a16 = malloc(na * 2), *b16 = malloc(nb * 2), *c16 = malloc(nc * 2);
    fill(a, a16, na, bf16);
    fill(b, b16, nb, bf16);
    fill(c, c16, nc, bf16);
    const float alpha = 0.75f;
    // the reference: the same column-major problem, one cblas_sgemm per batch
    memcpy(want, c, nc * 4);
    for (int q = 0; q < batch; q++)
        cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                    a + q * sa, lda, b + q * sb, ldb, beta, want + q * sc, ldc);
    cudaDataType t = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    size_t es = bf16 ? 2 : 4;
    CUdeviceptr pa = dev_copy(bf16 ? (void *)a16 : (void *)a, na * es), pb = dev_copy(bf16 ? (void *)b16 : (void *)b, nb * es);
    CUdeviceptr pc = dev_copy(bf16 ? (void *)c16 : (void *)c, nc * es);
    cublasLtMatmulDesc_t op = NULL;
    CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    int32_t ota = ta ? CUBLAS_OP_T : CUBLAS_OP_N, otb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ota, sizeof ota) == CUBLAS_STATUS_SUCCESS);
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &otb, sizeof otb) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatrixLayout_t la = layout(t, ta ? k : m, ta ? m : k, lda, batch, sa);
    cublasLtMatrixLayout_t lb = layout(t, tb ? n : k, tb ? k : n, ldb, batch, sb);
    cublasLtMatrixLayout_t lc = layout(t, m, n, ldc, batch, sc);
    cublasLtMatmulPreference_t pref = NULL;
    uint64_t ws = 0;
    CHECK(cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS);
    CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) ==
          CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    // the odd strides leave batches 2 or 4 bytes aligned: an algorithm found for the default
    // (256-byte) alignment refuses them; one found for the operands' real alignment runs
    uint64_t at[3] = {pa | (uint64_t)(batch > 1 ? sa : 0) * es, pb | (uint64_t)(batch > 1 ? sb : 0) * es,
                      pc | (uint64_t)(batch > 1 ? sc : 0) * es};
    bool misaligned = false;
    for (int q = 0; q < 3; q++) misaligned = misaligned || (at[q] | 256) % 16 != 0;
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &nres) == CUBLAS_STATUS_SUCCESS &&
          nres == 1);
    if (misaligned)
        CHECK(cublasLtMatmul(lt, op, &alpha, (void *)(uintptr_t)pa, la, (void *)(uintptr_t)pb, lb, &beta,
                             (void *)(uintptr_t)pc, lc, (void *)(uintptr_t)pc, lc, &res.algo, NULL, 0, 0) ==
              CUBLAS_STATUS_NOT_SUPPORTED);
    for (int q = 0; q < 4; q++) {
        uint64_t x = at[q < 3 ? q : 2] | 256;
        uint32_t align = (uint32_t)(x & (~x + 1));
        CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + q, &align,
                                                   sizeof align) == CUBLAS_STATUS_SUCCESS);
    }
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &nres) == CUBLAS_STATUS_SUCCESS &&
          nres == 1);
    CHECK(cublasLtMatmul(lt, op, &alpha, (void *)(uintptr_t)pa, la, (void *)(uintptr_t)pb, lb, &beta,
                         (void *)(uintptr_t)pc, lc, (void *)(uintptr_t)pc, lc, &res.algo, NULL, 0, 0) ==
          CUBLAS_STATUS_SUCCESS);
    double worst = 0;
    if (bf16) {
        CHECK(cuMemcpyDtoH(c16, pc, nc * 2) == CUDA_SUCCESS);
        for (size_t i = 0; i < nc; i++) got[i] = gpu_test_bf16_value(c16[i]);
    } else CHECK(cuMemcpyDtoH(got, pc, nc * 4) == CUDA_SUCCESS);
    for (int q = 0; q < batch; q++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                size_t at = (size_t)(q * sc) + (size_t)j * ldc + i;
                double e = fabs((double)got[at] - want[at]) / (1e-2 + fabs((double)want[at]));
                if (!(e <= worst)) worst = e;
            }
    // the padding between columns and batches is untouched
    int touched = 0;
    for (int q = 0; q < batch; q++)
        for (int j = 0; j < n; j++)
            for (int i = m; i < ldc && (size_t)(q * sc) + (size_t)j * ldc + i < nc; i++) {
                size_t at = (size_t)(q * sc) + (size_t)j * ldc + i;
                touched += got[at] != c[at];
            }
    CHECK_MSG(touched == 0, "%d padding elements written", touched);
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
    cublasLtMatmulPreferenceDestroy(pref);
    cuMemFree(pa), cuMemFree(pb), cuMemFree(pc);
    free(a), free(b), free(c), free(want), free(got), free(a16), free(b16), free(c16);
    return worst;
}

static void test_blas(void) {
    cublasLtHandle_t lt = NULL;
    CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS);
    double worst32 = 0, worst16 = 0;
    int cases = 0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int v = 0; v < 4; v++) {
                // plain; batched; batched with A broadcast (stride 0) and beta != 0; B broadcast
                int batch = v == 0 ? 1 : 3;
                float beta = v >= 2 ? 0.5f : 0.0f;
                double e = gemm_case(lt, ta, tb, 13, 9, 21, batch, v == 2, v == 3, beta, false);
                CHECK_MSG(e < 1e-5, "f32 ta %d tb %d variant %d: %.3g", ta, tb, v, e);
                if (!(e <= worst32)) worst32 = e;
                e = gemm_case(lt, ta, tb, 13, 9, 21, batch, v == 2, v == 3, beta, true);
                CHECK_MSG(e < 8e-3, "bf16 ta %d tb %d variant %d: %.3g", ta, tb, v, e);   // one bf16 rounding of D
                if (!(e <= worst16)) worst16 = e;
                cases += 2;
            }
    printf("cublasLtMatmul: %d cases (N/T x N/T, batched, stride-0 broadcast, beta != 0 with C = D, f32 and bf16) vs "
           "cblas_sgemm: max rel. error f32 %.2g, bf16 %.2g\n", cases, worst32, worst16);
    // malformed problems are rejected like the real library does
    cublasLtMatmulDesc_t op = NULL;
    CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    CUdeviceptr p = 0;
    CHECK(cuMemAlloc(&p, 4096) == CUDA_SUCCESS);
    void *d = (void *)(uintptr_t)p;
    float one = 1, zero = 0;
    cublasLtMatrixLayout_t a = layout(CUDA_R_32F, 8, 4, 8, 1, 0), b = layout(CUDA_R_32F, 4, 6, 4, 1, 0);
    cublasLtMatrixLayout_t c = layout(CUDA_R_32F, 8, 6, 8, 1, 0), bad_ld = layout(CUDA_R_32F, 8, 4, 4, 1, 0);
    cublasLtMatrixLayout_t bad_k = layout(CUDA_R_32F, 5, 6, 5, 1, 0), bad_batch = layout(CUDA_R_32F, 8, 6, 8, 2, 48);
    cublasLtMatrixLayout_t b3 = layout(CUDA_R_32F, 4, 6, 4, 3, 24);
    CHECK(cublasLtMatmul(lt, op, &one, d, a, d, b, &zero, d, c, d, c, NULL, NULL, 0, 0) == CUBLAS_STATUS_SUCCESS);
    CHECK(cublasLtMatmul(lt, op, &one, d, bad_ld, d, b, &zero, d, c, d, c, NULL, NULL, 0, 0) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasLtMatmul(lt, op, &one, d, a, d, bad_k, &zero, d, c, d, c, NULL, NULL, 0, 0) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasLtMatmul(lt, op, &one, d, a, d, b3, &zero, d, c, d, bad_batch, NULL, NULL, 0, 0) ==
          CUBLAS_STATUS_INVALID_VALUE);   // 3 vs 2 batches
    int32_t tr = CUBLAS_OP_T;
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tr, sizeof tr) == CUBLAS_STATUS_SUCCESS);
    CHECK(cublasLtMatmul(lt, op, &one, d, a, d, b, &zero, d, c, d, c, NULL, NULL, 0, 0) == CUBLAS_STATUS_INVALID_VALUE);
    int32_t epi = CUBLASLT_EPILOGUE_RELU;   // an epilogue the emulator does not implement (DEFAULT and BIAS it does)
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == CUBLAS_STATUS_NOT_SUPPORTED);
    // D outside its allocation
    cublasLtMatrixLayout_t big = layout(CUDA_R_32F, 8, 6, 8, 30, 48);
    cublasLtMatrixLayout_t a30 = layout(CUDA_R_32F, 8, 4, 8, 30, 0), b30 = layout(CUDA_R_32F, 4, 6, 4, 30, 0);
    tr = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tr, sizeof tr);
    CHECK(cublasLtMatmul(lt, op, &one, d, a30, d, b30, &zero, d, big, d, big, NULL, NULL, 0, 0) == CUBLAS_STATUS_INVALID_VALUE);
    cublasLtMatrixLayout_t all[] = {a, b, c, bad_ld, bad_k, bad_batch, b3, big, a30, b30};
    for (int i = 0; i < 10; i++) cublasLtMatrixLayoutDestroy(all[i]);
    cublasLtMatmulDescDestroy(op);
    cuMemFree(p);
    CHECK(cublasLtDestroy(lt) == CUBLAS_STATUS_SUCCESS);
}

// Stream capture and graphs (the executor's CUDA graphs): work on a capturing stream is recorded,
// not run; the instance replays it in order, reading the buffers at launch; a kernel node takes
// new arguments; the driver's capture errors (legacy stream, synchronous / allocating calls, host
// copies) fail and invalidate the capture, whose end then returns no graph.
static void test_capture(RtCudaDevice *dev) {
    void *sum_fn = NULL;
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "block_sum", &sum_fn) == 0);
    CUfunction sum = (CUfunction)sum_fn;
    enum { N = 256 };
    float x[N], y[N], got[2];
    for (int i = 0; i < N; i++) x[i] = (float)(i % 13), y[i] = 1.0f;
    CUdeviceptr px = 0, py = 0, pout = 0, pout2 = 0, tmp = 0;
    CHECK(cuMemAlloc(&px, sizeof x) == CUDA_SUCCESS && cuMemAlloc(&py, sizeof y) == CUDA_SUCCESS);
    CHECK(cuMemAlloc(&pout, 2 * sizeof(float)) == CUDA_SUCCESS && cuMemAlloc(&pout2, 2 * sizeof(float)) == CUDA_SUCCESS);
    CHECK(cuMemcpyHtoD(px, x, sizeof x) == CUDA_SUCCESS && cuMemcpyHtoD(py, y, sizeof y) == CUDA_SUCCESS);
    CUstream s = NULL, nb = NULL;
    CHECK(cuStreamCreate(&s, CU_STREAM_DEFAULT) == CUDA_SUCCESS);
    CHECK(cuStreamCreate(&nb, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS);
    CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_ACTIVE;
    CHECK(cuStreamIsCapturing(s, &st) == CUDA_SUCCESS && st == CU_STREAM_CAPTURE_STATUS_NONE);
    CHECK(cuStreamBeginCapture(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    CUgraph gr = NULL;
    CHECK(cuStreamEndCapture(s, &gr) == CUDA_ERROR_ILLEGAL_STATE && !gr);   // not capturing

    // capture: a memset and two launches (sums of x into pout: 2 blocks of 128)
    CHECK(cuMemsetD8(pout, 0x7f, 2 * sizeof(float)) == CUDA_SUCCESS);
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_SUCCESS);
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_ERROR_ILLEGAL_STATE);
    CHECK(cuStreamIsCapturing(s, &st) == CUDA_SUCCESS && st == CU_STREAM_CAPTURE_STATUS_ACTIVE);
    const CUgraphNode *deps = NULL;
    size_t ndeps = 9;
    cuuint64_t id = 0;
    CHECK(cuStreamGetCaptureInfo(s, &st, &id, NULL, &deps, NULL, &ndeps) == CUDA_SUCCESS && ndeps == 0 && id > 0);
    CHECK(cuMemsetD8Async(pout2, 0, 2 * sizeof(float), s) == CUDA_SUCCESS);
    int n = N;
    void *args[] = {&pout, &px, &n};
    CHECK(cuLaunchKernel(sum, 2, 1, 1, 128, 1, 1, 0, s, args, NULL) == CUDA_SUCCESS);
    CHECK(cuStreamGetCaptureInfo(s, &st, NULL, NULL, &deps, NULL, &ndeps) == CUDA_SUCCESS && ndeps == 1);
    CUgraphNode node = deps[0];
    n = 5;   // the launch copied its arguments: this change is not seen
    CHECK(cuMemcpyDtoH(got, pout, sizeof got) == CUDA_ERROR_STREAM_CAPTURE_IMPLICIT);   // the legacy stream: invalidates
    CHECK(cuStreamIsCapturing(s, &st) == CUDA_SUCCESS && st == CU_STREAM_CAPTURE_STATUS_INVALIDATED);
    CHECK(cuLaunchKernel(sum, 2, 1, 1, 128, 1, 1, 0, s, args, NULL) == CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    CHECK(cuStreamEndCapture(s, &gr) == CUDA_ERROR_STREAM_CAPTURE_INVALIDATED && !gr);
    CHECK(cuStreamIsCapturing(s, &st) == CUDA_SUCCESS && st == CU_STREAM_CAPTURE_STATUS_NONE);

    // again, without the mistake
    n = N;
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_SUCCESS);
    CHECK(cuMemsetD8Async(pout2, 0, 2 * sizeof(float), s) == CUDA_SUCCESS);
    CHECK(cuLaunchKernel(sum, 2, 1, 1, 128, 1, 1, 0, s, args, NULL) == CUDA_SUCCESS);
    CHECK(cuStreamGetCaptureInfo(s, &st, NULL, NULL, &deps, NULL, &ndeps) == CUDA_SUCCESS && ndeps == 1);
    node = deps[0];
    CHECK(cuMemcpyDtoDAsync(pout2, pout, sizeof(float), s) == CUDA_SUCCESS);   // pout2[0] = pout[0]
    n = 5;
    CHECK(cuStreamEndCapture(s, &gr) == CUDA_SUCCESS && gr);
    CHECK(cuMemcpyDtoH(got, pout, sizeof got) == CUDA_SUCCESS);
    CHECK(got[0] != got[0] || got[0] > 1e30f);   // nothing ran: still the 0x7f pattern
    CUgraphExec ex = NULL;
    CHECK(cuGraphInstantiate(&ex, gr, 0) == CUDA_SUCCESS && ex);
    unsigned long before = trlcEmuGraphLaunches();
    CHECK(cuGraphLaunch(ex, s) == CUDA_SUCCESS && cuStreamSynchronize(s) == CUDA_SUCCESS);
    CHECK(trlcEmuGraphLaunches() == before + 1);
    float want0 = 0, want1 = 0;
    for (int i = 0; i < N; i++) *(i < 128 ? &want0 : &want1) += x[i];
    float g2[2];
    CHECK(cuMemcpyDtoH(got, pout, sizeof got) == CUDA_SUCCESS && cuMemcpyDtoH(g2, pout2, sizeof g2) == CUDA_SUCCESS);
    CHECK(got[0] == want0 && got[1] == want1 && g2[0] == want0 && g2[1] == 0.0f);
    // the graph reads the buffers when launched: new data, new sums
    for (int i = 0; i < N; i++) x[i] = 2.0f;
    CHECK(cuMemcpyHtoDAsync(px, x, sizeof x, s) == CUDA_SUCCESS && cuGraphLaunch(ex, s) == CUDA_SUCCESS);
    CHECK(cuMemcpyDtoH(got, pout, sizeof got) == CUDA_SUCCESS && got[0] == 256.0f && got[1] == 256.0f);
    // a kernel node's new arguments: the first 64 of y summed in one block (pout[1] keeps 256)
    int n64 = 64;
    void *args2[] = {&pout, &py, &n64};
    CUDA_KERNEL_NODE_PARAMS kp;
    memset(&kp, 0, sizeof kp);
    kp.func = sum, kp.gridDimX = 1, kp.gridDimY = kp.gridDimZ = 1, kp.blockDimX = 128, kp.blockDimY = kp.blockDimZ = 1;
    kp.kernelParams = args2;
    CHECK(cuGraphExecKernelNodeSetParams(ex, node, &kp) == CUDA_SUCCESS);
    CHECK(cuGraphLaunch(ex, s) == CUDA_SUCCESS);
    CHECK(cuMemcpyDtoH(got, pout, sizeof got) == CUDA_SUCCESS && cuMemcpyDtoH(g2, pout2, sizeof g2) == CUDA_SUCCESS);
    CHECK(got[0] == 64.0f && got[1] == 256.0f && g2[0] == 64.0f && g2[1] == 0.0f);
    // a bad update: another function, a missing argument, a node of no graph of this instance
    void *other = NULL;
    CHECK(rt_cuda_load_source(dev, NULL, kernels_src, "stale_shared", &other) == 0);
    kp.func = (CUfunction)other;
    CHECK(cuGraphExecKernelNodeSetParams(ex, node, &kp) == CUDA_ERROR_INVALID_VALUE);
    kp.func = sum, kp.kernelParams = NULL;
    CHECK(cuGraphExecKernelNodeSetParams(ex, node, &kp) == CUDA_ERROR_INVALID_VALUE);
    kp.kernelParams = args2;
    CHECK(cuGraphExecKernelNodeSetParams(ex, (CUgraphNode)(void *)&kp, &kp) == CUDA_ERROR_INVALID_VALUE);

    // what else invalidates a capture: a synchronization, an allocation, a copy from host memory,
    // a stream synchronization; relaxed mode allows the allocation; a non-blocking stream's capture
    // ignores the legacy stream's synchronous copies except in global mode
    struct { int what; CUstream on; CUstreamCaptureMode mode; CUresult want; } cases[] = {
        {0, s, CU_STREAM_CAPTURE_MODE_GLOBAL, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED},          // cuCtxSynchronize
        {1, s, CU_STREAM_CAPTURE_MODE_GLOBAL, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED},          // cuMemAlloc
        {2, s, CU_STREAM_CAPTURE_MODE_GLOBAL, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED},          // cuMemcpyHtoDAsync
        {3, s, CU_STREAM_CAPTURE_MODE_GLOBAL, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED},          // cuStreamSynchronize
        {4, s, CU_STREAM_CAPTURE_MODE_GLOBAL, CUDA_ERROR_STREAM_CAPTURE_IMPLICIT},             // launch on NULL
        {4, nb, CU_STREAM_CAPTURE_MODE_GLOBAL, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED},         // ... sync, global
        {1, s, CU_STREAM_CAPTURE_MODE_RELAXED, CUDA_SUCCESS},
        {5, nb, CU_STREAM_CAPTURE_MODE_RELAXED, CUDA_SUCCESS},                                 // cuMemsetD8, relaxed
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        CUstream on = cases[c].on;
        CHECK(cuStreamBeginCapture(on, cases[c].mode) == CUDA_SUCCESS);
        CUresult r = CUDA_SUCCESS;
        switch (cases[c].what) {
        case 0: r = cuCtxSynchronize(); break;
        case 1: r = cuMemAlloc(&tmp, 64); break;
        case 2: r = cuMemcpyHtoDAsync(px, x, 16, on); break;
        case 3: r = cuStreamSynchronize(on); break;
        case 4: r = on == nb ? cuMemcpyHtoD(px, x, 16) : cuLaunchKernel(sum, 1, 1, 1, 128, 1, 1, 0, NULL, args, NULL); break;
        default: r = cuMemsetD8(pout2, 0, 4); break;
        }
        CHECK_MSG(r == cases[c].want, "capture case %zu: %d, want %d", c, (int)r, (int)cases[c].want);
        CUgraph g3 = NULL;
        CUresult e = cuStreamEndCapture(on, &g3);
        if (cases[c].want == CUDA_SUCCESS) CHECK_MSG(e == CUDA_SUCCESS && g3, "capture case %zu ends with a graph", c);
        else CHECK_MSG(e == CUDA_ERROR_STREAM_CAPTURE_INVALIDATED && !g3, "capture case %zu: the capture is invalidated", c);
        if (g3) CHECK(cuGraphDestroy(g3) == CUDA_SUCCESS);
        if (tmp) {
            CHECK(cuMemFree(tmp) == CUDA_SUCCESS);
            tmp = 0;
        }
    }

    // a cuBLASLt product on a capturing stream is recorded and runs at each launch
    {
        cublasLtHandle_t lt = NULL;
        cublasLtMatmulDesc_t op = NULL;
        CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS);
        CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
        float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, dd[4] = {-1, -1, -1, -1}, one = 1, zero = 0;
        CUdeviceptr pa = dev_copy(a, sizeof a), pb = dev_copy(b, sizeof b), pd = dev_copy(dd, sizeof dd);
        cublasLtMatrixLayout_t l2 = layout(CUDA_R_32F, 2, 2, 2, 1, 0);
        CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_SUCCESS);
        CHECK(cublasLtMatmul(lt, op, &one, (void *)(uintptr_t)pa, l2, (void *)(uintptr_t)pb, l2, &zero,
                             (void *)(uintptr_t)pd, l2, (void *)(uintptr_t)pd, l2, NULL, NULL, 0,
                             (cudaStream_t)s) == CUBLAS_STATUS_SUCCESS);
        CUgraph g4 = NULL;
        CUgraphExec e4 = NULL;
        CHECK(cuStreamEndCapture(s, &g4) == CUDA_SUCCESS && cuGraphInstantiate(&e4, g4, 0) == CUDA_SUCCESS);
        CHECK(cuGraphDestroy(g4) == CUDA_SUCCESS);   // the instance stands alone
        CHECK(cuMemcpyDtoH(dd, pd, sizeof dd) == CUDA_SUCCESS && dd[0] == -1.0f);   // recorded, not run
        CHECK(cuGraphLaunch(e4, s) == CUDA_SUCCESS && cuMemcpyDtoH(dd, pd, sizeof dd) == CUDA_SUCCESS);
        // column-major: D = A B, A = [1 3; 2 4], B = [5 7; 6 8]
        CHECK(dd[0] == 23 && dd[1] == 34 && dd[2] == 31 && dd[3] == 46);
        CHECK(cuGraphExecDestroy(e4) == CUDA_SUCCESS && cuGraphExecDestroy(e4) == CUDA_ERROR_INVALID_VALUE);
        cublasLtMatrixLayoutDestroy(l2);
        cublasLtMatmulDescDestroy(op);
        cublasLtDestroy(lt);
        cuMemFree(pa), cuMemFree(pb), cuMemFree(pd);
    }

    // through the device layer: a synchronizing call inside a capture fails naming the call
    {
        Diag d2;
        diag_init(&d2, stderr);
        RtCudaDevice *dv = rt_cuda_open(0, false, &d2);
        RtCudaStream rs = NULL;
        CHECK(dv && rt_cuda_graphs_supported(dv) && rt_cuda_stream_new(dv, &rs) == 0);
        CHECK(rt_cuda_capture_begin(dv, rs) == 0);
        CHECK(rt_cuda_launch_on(dv, rs, sum_fn, (const unsigned[3]){2, 1, 1}, (const unsigned[3]){128, 1, 1}, 0, args,
                                "block_sum") == 0);
        void *nd = NULL;
        CHECK(rt_cuda_capture_last_node(dv, rs, &nd) == 0 && nd);
        int errs = d2.errors;
        CHECK(rt_cuda_sync(dv, "a step") != 0 && d2.errors > errs);
        RtCudaGraph *g5 = NULL;
        CHECK(rt_cuda_capture_end(dv, rs, false, &g5) != 0 && !g5);
        CHECK(rt_cuda_capture_begin(dv, rs) == 0 && rt_cuda_zero_async(dv, rs, pout, 8) == 0);
        CHECK(rt_cuda_capture_end(dv, rs, false, &g5) == 0 && g5);
        CHECK(rt_cuda_graph_launch(dv, g5, rs, "a memset") == 0 && rt_cuda_stream_sync(dv, rs, "a memset") == 0);
        CHECK(cuMemcpyDtoH(got, pout, sizeof got) == CUDA_SUCCESS && got[0] == 0.0f && got[1] == 0.0f);
        rt_cuda_graph_free(dv, g5);
        rt_cuda_stream_free(dv, rs);
        rt_cuda_close(dv);
        diag_free(&d2);
    }
    CHECK(cuGraphExecDestroy(ex) == CUDA_SUCCESS && cuGraphDestroy(gr) == CUDA_SUCCESS);
    CHECK(cuGraphDestroy(gr) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuStreamDestroy(s) == CUDA_SUCCESS && cuStreamDestroy(nb) == CUDA_SUCCESS);
    CHECK(cuStreamDestroy(s) == CUDA_ERROR_INVALID_HANDLE);
    cuMemFree(px), cuMemFree(py), cuMemFree(pout), cuMemFree(pout2);
    printf("stream capture: recorded launches / memsets / copies / products replayed, node updates, 8 capture "
           "error cases\n");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_gpu_emu LIBCUEMU\n");
        return 2;
    }
    setenv("TRLC_CUDA_DRIVER", argv[1], 1);
    Diag d;
    diag_init(&d, stderr);
    CHECK(rt_cuda_device_count() == 1);
    char arch[32] = "";
    CHECK(rt_cuda_device_arch(0, arch, sizeof arch) && !strcmp(arch, "sm_90"));
    RtCudaDevice *dev = rt_cuda_open(0, false, &d);
    CHECK(dev != NULL);
    if (dev) {
        CHECK(rt_cuda_is_emulated(dev));
        test_kernels(dev);
        test_wmma(dev);
        test_capture(dev);
#if defined(__SANITIZE_ADDRESS__)
        test_kernel_overflow(dev);
#endif
    }
    test_memory();
    test_blas();
    rt_cuda_close(dev);
    diag_free(&d);
    return test_done("gpu.emu");
}
