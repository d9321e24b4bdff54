// blas.c — matrix products on the GPU through cuBLASLt, loaded with dlopen (like the driver:
// trlc starts without it). One call = one strided-batched column-major product
// D = alpha op(A) op(B) + beta C (D is C unless given apart; optionally + a bias of m added to
// every column: CUBLASLT_EPILOGUE_BIAS, the bias of D's type — fp32, or bf16 for a bf16 D, the
// default of CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE (cublasLt.h: "the same type as the elements of
// output matrix (Dtype)" but for the integer and fp8 kernels), added in fp32 before D is
// rounded) with fp32 accumulation (CUBLAS_COMPUTE_32F: no TF32 shortcut) and
// fp32 or bf16 storage; the algorithm cuBLASLt's heuristic picks for a shape is kept, so a
// training step asks once per distinct product. Products go on the stream set with
// rt_blas_set_stream with the workspace given at open and no host synchronization, so they can be
// captured into a CUDA graph. Every call is checked and reported with the
// product's description and cuBLASLt's status string.
// The library: $TRLC_CUBLASLT_LIB when set (tests point it at the emulator), else
// libcublasLt.so.13, .so.12, .so.
// Not here: the row-major IR matmul → column-major mapping (exec.c), launching kernels.
#include "exec.h"
#include <cublasLt.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

enum { BLAS_MAX_ALGOS = 512 };

typedef struct BlasAlgo {
    RtGemm key;                     // pointers zeroed
    cublasLtMatmulAlgo_t algo;
    bool found;
} BlasAlgo;

struct RtBlas {
    void *lib;
    Diag *d;
    cublasLtHandle_t h;
    RtCudaPtr workspace;
    size_t workspace_bytes;
    RtCudaStream stream;            // every product goes here (NULL: the legacy stream)
    BlasAlgo algos[BLAS_MAX_ALGOS];
    int nalgos;
    __typeof__(cublasLtCreate) *Create;
    __typeof__(cublasLtDestroy) *Destroy;
    __typeof__(cublasLtMatmulDescCreate) *DescCreate;
    __typeof__(cublasLtMatmulDescDestroy) *DescDestroy;
    __typeof__(cublasLtMatmulDescSetAttribute) *DescSet;
    __typeof__(cublasLtMatrixLayoutCreate) *LayoutCreate;
    __typeof__(cublasLtMatrixLayoutDestroy) *LayoutDestroy;
    __typeof__(cublasLtMatrixLayoutSetAttribute) *LayoutSet;
    __typeof__(cublasLtMatmulPreferenceCreate) *PrefCreate;
    __typeof__(cublasLtMatmulPreferenceDestroy) *PrefDestroy;
    __typeof__(cublasLtMatmulPreferenceSetAttribute) *PrefSet;
    __typeof__(cublasLtMatmulAlgoGetHeuristic) *Heuristic;
    __typeof__(cublasLtMatmul) *Matmul;
    const char *(*StatusString)(cublasStatus_t);
};

static int blas_fail(RtBlas *b, cublasStatus_t st, const char *call, const char *what) {
    const char *msg = b->StatusString ? b->StatusString(st) : NULL;
    diag_plain_error(b->d, "cuBLASLt: %s failed for %s: %s (status %d)", call, what, msg ? msg : "unknown", (int)st);
    return -1;
}

// name: the cuBLASLt function the call makes (the message names it, not the C expression)
#define LT_CHECK(b, name, call, what)                                          \
    do {                                                                       \
        cublasStatus_t st_ = (call);                                           \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                    \
            rc = blas_fail((b), st_, (name), (what));                          \
            goto done;                                                         \
        }                                                                      \
    } while (0)

#define LT_SYM(b, field, name) ((b)->field = (__typeof__((b)->field))(uintptr_t)dlsym((b)->lib, name))

RtBlas *rt_blas_open(RtCudaPtr workspace, size_t workspace_bytes, Diag *d) {
    const char *env = getenv("TRLC_CUBLASLT_LIB");
    const char *names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
    void *lib = NULL;
    if (env && *env) lib = dlopen(env, RTLD_NOW | RTLD_LOCAL);
    for (size_t i = 0; !lib && !(env && *env) && i < sizeof names / sizeof *names; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        diag_plain_error(d, "cuBLASLt: cannot load %s: %s", env && *env ? env : "libcublasLt.so", dlerror());
        return NULL;
    }
    RtBlas *b = calloc(1, sizeof *b);
    if (!b) {
        dlclose(lib);
        diag_plain_error(d, "cuBLASLt: out of memory");
        return NULL;
    }
    b->lib = lib, b->d = d, b->workspace = workspace, b->workspace_bytes = workspace_bytes;
    bool ok = LT_SYM(b, Create, "cublasLtCreate") && LT_SYM(b, Destroy, "cublasLtDestroy") &&
              LT_SYM(b, DescCreate, "cublasLtMatmulDescCreate") && LT_SYM(b, DescDestroy, "cublasLtMatmulDescDestroy") &&
              LT_SYM(b, DescSet, "cublasLtMatmulDescSetAttribute") &&
              LT_SYM(b, LayoutCreate, "cublasLtMatrixLayoutCreate") &&
              LT_SYM(b, LayoutDestroy, "cublasLtMatrixLayoutDestroy") &&
              LT_SYM(b, LayoutSet, "cublasLtMatrixLayoutSetAttribute") &&
              LT_SYM(b, PrefCreate, "cublasLtMatmulPreferenceCreate") &&
              LT_SYM(b, PrefDestroy, "cublasLtMatmulPreferenceDestroy") &&
              LT_SYM(b, PrefSet, "cublasLtMatmulPreferenceSetAttribute") &&
              LT_SYM(b, Heuristic, "cublasLtMatmulAlgoGetHeuristic") && LT_SYM(b, Matmul, "cublasLtMatmul");
    LT_SYM(b, StatusString, "cublasLtGetStatusString");   // optional
    if (!ok) {
        diag_plain_error(d, "cuBLASLt: %s lacks a function trlc needs", env && *env ? env : "libcublasLt.so");
        rt_blas_close(b);
        return NULL;
    }
    cublasStatus_t st = b->Create(&b->h);
    if (st != CUBLAS_STATUS_SUCCESS) {
        blas_fail(b, st, "cublasLtCreate", "the handle");
        rt_blas_close(b);
        return NULL;
    }
    return b;
}

void rt_blas_set_stream(RtBlas *b, RtCudaStream s) { b->stream = s; }

void rt_blas_close(RtBlas *b) {
    if (!b) return;
    if (b->h && b->Destroy) b->Destroy(b->h);
    if (b->lib) dlclose(b->lib);
    free(b);
}

static cudaDataType_t lt_type(IrDType t) { return t == IR_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

// A stored column-major matrix of rows x cols (leading dimension ld), batched.
static cublasStatus_t layout(RtBlas *b, cublasLtMatrixLayout_t *l, IrDType t, int64_t rows, int64_t cols, int64_t ld,
                             int batch, int64_t stride) {
    cublasStatus_t st = b->LayoutCreate(l, lt_type(t), (uint64_t)rows, (uint64_t)cols, ld);
    if (st != CUBLAS_STATUS_SUCCESS || batch == 1) return st;
    int32_t bc = batch;
    st = b->LayoutSet(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    return b->LayoutSet(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
}

// The alignment every batch of an operand starts at: the largest power of two dividing its address
// and (batched) its stride in bytes, at most 256. cuBLASLt's heuristic assumes 256 unless told
// (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES) and may answer with an algorithm whose vector loads
// fault on less: a view into a buffer (the general broadcast path below the executor) or an odd
// batch stride is told.
static uint32_t operand_align(RtCudaPtr p, int batch, int64_t stride, IrDType t) {
    uint64_t x = (uint64_t)p | (batch > 1 ? (uint64_t)stride * (t == IR_BF16 ? 2u : 4u) : 0) | 256u;
    return (uint32_t)(x & (~x + 1));
}

int rt_blas_gemm(RtBlas *b, const RtGemm *g, const char *what) {
    int rc = 0;
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    if (g->m <= 0 || g->n <= 0 || g->batch <= 0) return 0;   // nothing to compute
    LT_CHECK(b, "cublasLtMatmulDescCreate", b->DescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), what);
    cublasOperation_t ta = g->ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(b, "cublasLtMatmulDescSetAttribute", b->DescSet(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), what);
    LT_CHECK(b, "cublasLtMatmulDescSetAttribute", b->DescSet(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), what);
    if (g->bias) {   // set before the heuristic: its choice depends on the epilogue (and the pointer's alignment)
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        const void *bp = (const void *)(uintptr_t)g->bias;   // D's type (the bias type's default)
        LT_CHECK(b, "cublasLtMatmulDescSetAttribute", b->DescSet(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), what);
        LT_CHECK(b, "cublasLtMatmulDescSetAttribute", b->DescSet(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp), what);
    }
    // stored shapes: op(A) is m x k, op(B) k x n
    const char *lay = "cublasLtMatrixLayoutCreate / SetAttribute";
    LT_CHECK(b, lay, layout(b, &la, g->type_ab, g->ta ? g->k : g->m, g->ta ? g->m : g->k, g->lda, g->batch, g->stride_a), what);
    LT_CHECK(b, lay, layout(b, &lb, g->type_ab, g->tb ? g->n : g->k, g->tb ? g->k : g->n, g->ldb, g->batch, g->stride_b), what);
    LT_CHECK(b, lay, layout(b, &lc, g->type_c, g->m, g->n, g->ldc, g->batch, g->stride_c), what);
    // the algorithm: found once per shape, epilogue and alignment (the key holds those in place
    // of the pointers)
    uint32_t align[4] = {operand_align(g->a, g->batch, g->stride_a, g->type_ab),
                         operand_align(g->b, g->batch, g->stride_b, g->type_ab),
                         operand_align(g->c, g->batch, g->stride_c, g->type_c),
                         operand_align(g->d ? g->d : g->c, g->batch, g->stride_c, g->type_c)};
    RtGemm key;
    memset(&key, 0, sizeof key);   // padding too: the key is compared with memcmp
    key.ta = g->ta, key.tb = g->tb, key.m = g->m, key.n = g->n, key.k = g->k;
    key.lda = g->lda, key.ldb = g->ldb, key.ldc = g->ldc;
    key.stride_a = g->stride_a, key.stride_b = g->stride_b, key.stride_c = g->stride_c, key.batch = g->batch;
    key.alpha = g->alpha, key.beta = g->beta, key.type_ab = g->type_ab, key.type_c = g->type_c;
    key.a = align[0], key.b = align[1], key.c = align[2], key.d = align[3];
    // the epilogue and the bias's alignment (the heuristic reads the pointer for it, cublasLt.h)
    // are part of the key, not the pointer; its type is D's (type_c)
    key.bias = g->bias ? operand_align(g->bias, 1, 0, g->type_c) : 0;
    BlasAlgo *al = NULL;
    for (int i = 0; i < b->nalgos && !al; i++)
        if (!memcmp(&b->algos[i].key, &key, sizeof key)) al = &b->algos[i];
    cublasLtMatmulAlgo_t algo_local;
    const cublasLtMatmulAlgo_t *algo = NULL;
    if (al && al->found) algo = &al->algo;
    if (!algo) {
        LT_CHECK(b, "cublasLtMatmulPreferenceCreate", b->PrefCreate(&pref), what);
        uint64_t ws = b->workspace_bytes;
        LT_CHECK(b, "cublasLtMatmulPreferenceSetAttribute",
                 b->PrefSet(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), what);
        static const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
        for (int q = 0; q < 4; q++)
            if (align[q] < 256)   // 256 is the default
                LT_CHECK(b, "cublasLtMatmulPreferenceSetAttribute",
                         b->PrefSet(pref, align_attr[q], &align[q], sizeof align[q]), what);
        cublasLtMatmulHeuristicResult_t res;
        int nres = 0;
        memset(&res, 0, sizeof res);
        LT_CHECK(b, "cublasLtMatmulAlgoGetHeuristic", b->Heuristic(b->h, desc, la, lb, lc, lc, pref, 1, &res, &nres), what);
        if (nres < 1) {
            diag_plain_error(b->d, "cuBLASLt: no algorithm for %s", what);
            rc = -1;
            goto done;
        }
        algo_local = res.algo;
        algo = &algo_local;
        if (b->nalgos < BLAS_MAX_ALGOS) {
            BlasAlgo *n = &b->algos[b->nalgos++];
            n->key = key, n->algo = res.algo, n->found = true;
        }
    }
    float alpha = g->alpha, beta = g->beta;
    RtCudaPtr dst = g->d ? g->d : g->c;   // D has C's layout (lc describes both)
    LT_CHECK(b, "cublasLtMatmul",
             b->Matmul(b->h, desc, &alpha, (const void *)(uintptr_t)g->a, la, (const void *)(uintptr_t)g->b, lb, &beta,
                       (const void *)(uintptr_t)g->c, lc, (void *)(uintptr_t)dst, lc, algo, (void *)(uintptr_t)b->workspace,
                       b->workspace_bytes, (cudaStream_t)b->stream),
             what);
done:
    if (pref) b->PrefDestroy(pref);
    if (la) b->LayoutDestroy(la);
    if (lb) b->LayoutDestroy(lb);
    if (lc) b->LayoutDestroy(lc);
    if (desc) b->DescDestroy(desc);
    return rc;
}
