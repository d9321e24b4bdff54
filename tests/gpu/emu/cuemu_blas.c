// cuemu_blas.c — the cuBLASLt subset trlc's executor uses, in the emulator's shared object under
// the real names and signatures (so the executor can dlopen it as cuBLASLt: $TRLC_CUBLASLT_LIB):
// D = alpha op(A) op(B) + beta C, column-major, strided batches (stride 0: a broadcast operand,
// as is a batch count of 1), fp32 compute and scale, fp32 or bf16 storage (bf16 read exactly and
// written rounded to nearest even), host-pointer alpha / beta, C may alias D. Validated like the
// real library (ld >= rows, op(A) m x k / op(B) k x n / C, D m x n, batch counts, types, every
// operand inside one device allocation): CUBLAS_STATUS_INVALID_VALUE otherwise, which is what
// shows an executor's row-major / column-major mix-up. On a capturing stream a product is recorded
// (cuemu.c runs it at each graph launch). Epilogues: CUBLASLT_EPILOGUE_DEFAULT and _BIAS (a
// vector of m, CUBLASLT_MATMUL_DESC_BIAS_POINTER, of D's type — fp32, or bf16 for a bf16 D: the
// default of CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, which cublasLt.h gives as D's type but for the
// integer and fp8 kernels; the attribute itself is not emulated — added in fp32 to every column
// after alpha and beta, before D is rounded, the same for every batch: the default batch stride
// 0); others CUBLAS_STATUS_NOT_SUPPORTED.
// Alignment as the real library has it: the heuristic assumes every operand's address (and batch
// stride) is a multiple of CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (default 256) and
// answers with an algorithm that may use vector loads of that width (here: up to 16 bytes); a
// product run with that algorithm on a less aligned operand fails (CUBLAS_STATUS_NOT_SUPPORTED,
// printed) where the real one fails or faults.
// Not here: other epilogues, compute or data types, device-pointer alpha / beta, algorithm choice
// (one "heuristic" result), speed.
#include <cublasLt.h>
#include <cuda.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

#include "cuemu_internal.h"

typedef struct EmuLt {
    int magic;
} EmuLt;

typedef struct EmuDesc {
    cublasComputeType_t compute;
    int32_t transa, transb;
    int32_t epilogue;   // CUBLASLT_EPILOGUE_DEFAULT or _BIAS
    const void *bias;   // _BIAS: m values of D's type
} EmuDesc;

typedef struct EmuLayout {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch;
    int64_t stride;
} EmuLayout;

typedef struct EmuPref {
    uint64_t max_workspace;
    uint32_t min_align[4];   // A, B, C, D: bytes (0: unset, the default 256)
} EmuPref;

EXPORT const char *cublasLtGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_UNKNOWN (emulator)";
    }
}

EXPORT size_t cublasLtGetVersion(void) { return CUBLAS_VERSION; }

EXPORT cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    if (!h) return CUBLAS_STATUS_INVALID_VALUE;
    EmuLt *lt = calloc(1, sizeof *lt);
    if (!lt) return CUBLAS_STATUS_ALLOC_FAILED;
    lt->magic = 0x4c54;
    *h = (cublasLtHandle_t)(void *)lt;
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    EmuLt *lt = (EmuLt *)(void *)h;
    if (!lt || lt->magic != 0x4c54) return CUBLAS_STATUS_NOT_INITIALIZED;
    lt->magic = 0;
    free(lt);
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale) {
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) {
        fprintf(stderr, "cuemu: cublasLtMatmulDescCreate: only CUBLAS_COMPUTE_32F with CUDA_R_32F scale (got %d, %d)\n",
                (int)compute, (int)scale);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    EmuDesc *e = calloc(1, sizeof *e);
    if (!e) return CUBLAS_STATUS_ALLOC_FAILED;
    e->compute = compute, e->transa = e->transb = CUBLAS_OP_N, e->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    *d = (cublasLtMatmulDesc_t)(void *)e;
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                                     const void *buf, size_t size) {
    EmuDesc *e = (EmuDesc *)(void *)d;
    if (!e || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_DESC_EPILOGUE) {
        int32_t v;
        if (size != sizeof v) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&v, buf, sizeof v);
        if (v != CUBLASLT_EPILOGUE_DEFAULT && v != CUBLASLT_EPILOGUE_BIAS) {
            fprintf(stderr, "cuemu: cublasLtMatmulDescSetAttribute: epilogue %d is not emulated\n", (int)v);
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
        e->epilogue = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr == CUBLASLT_MATMUL_DESC_BIAS_POINTER) {
        if (size != sizeof e->bias) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&e->bias, buf, sizeof e->bias);
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr != CUBLASLT_MATMUL_DESC_TRANSA && attr != CUBLASLT_MATMUL_DESC_TRANSB) {
        fprintf(stderr, "cuemu: cublasLtMatmulDescSetAttribute: attribute %d is not emulated\n", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
    int32_t v;
    memcpy(&v, buf, sizeof v);
    if (v != CUBLAS_OP_N && v != CUBLAS_OP_T) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_DESC_TRANSA) e->transa = v;
    else e->transb = v;
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows,
                                                 uint64_t cols, int64_t ld) {
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    if (type != CUDA_R_32F && type != CUDA_R_16BF) {
        fprintf(stderr, "cuemu: cublasLtMatrixLayoutCreate: only CUDA_R_32F and CUDA_R_16BF (got %d)\n", (int)type);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    EmuLayout *e = calloc(1, sizeof *e);
    if (!e) return CUBLAS_STATUS_ALLOC_FAILED;
    e->type = type, e->rows = rows, e->cols = cols, e->ld = ld, e->batch = 1, e->stride = 0;
    *l = (cublasLtMatrixLayout_t)(void *)e;
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                       const void *buf, size_t size) {
    EmuLayout *e = (EmuLayout *)(void *)l;
    if (!e || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT) {
        if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&e->batch, buf, sizeof e->batch);
        return e->batch >= 1 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
    }
    if (attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET) {
        if (size != sizeof(int64_t)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&e->stride, buf, sizeof e->stride);
        return CUBLAS_STATUS_SUCCESS;
    }
    fprintf(stderr, "cuemu: cublasLtMatrixLayoutSetAttribute: attribute %d is not emulated\n", (int)attr);
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

EXPORT cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    if (!p) return CUBLAS_STATUS_INVALID_VALUE;
    EmuPref *e = calloc(1, sizeof *e);
    if (!e) return CUBLAS_STATUS_ALLOC_FAILED;
    *p = (cublasLtMatmulPreference_t)(void *)e;
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                           cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                           size_t size) {
    EmuPref *e = (EmuPref *)(void *)p;
    if (!e || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
        uint32_t v;
        if (size != sizeof v) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&v, buf, sizeof v);
        if (!v || (v & (v - 1))) return CUBLAS_STATUS_INVALID_VALUE;   // a power of two
        e->min_align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        fprintf(stderr, "cuemu: cublasLtMatmulPreferenceSetAttribute: attribute %d is not emulated\n", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (size != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(&e->max_workspace, buf, sizeof e->max_workspace);
    return CUBLAS_STATUS_SUCCESS;
}

// the widest vector access an emulated algorithm makes (bytes)
enum { EMU_ALGO_ALIGN = 16 };

// the problem's shape: m, n, k and the batch count, or an error (printed, naming what is wrong)
typedef struct Problem {
    uint64_t m, n, k;
    int32_t batch;
} Problem;

static cublasStatus_t bad(const char *what) {
    fprintf(stderr, "cuemu: cublasLtMatmul: %s\n", what);
    return CUBLAS_STATUS_INVALID_VALUE;
}

static cublasStatus_t check_layout(const EmuLayout *l, const char *name) {
    char msg[200];
    if (l->rows > 0 && (l->ld < 1 || (uint64_t)l->ld < l->rows)) {
        snprintf(msg, sizeof msg, "%s: ld %lld < rows %llu (column-major: ld >= rows)", name, (long long)l->ld,
                 (unsigned long long)l->rows);
        return bad(msg);
    }
    if (l->stride < 0) {
        snprintf(msg, sizeof msg, "%s: negative batch stride %lld", name, (long long)l->stride);
        return bad(msg);
    }
    return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t validate(const EmuDesc *d, const EmuLayout *a, const EmuLayout *b, const EmuLayout *c,
                               const EmuLayout *dd, Problem *p) {
    if (!d || !a || !b || !c || !dd) return bad("a NULL descriptor");
    cublasStatus_t s;
    if ((s = check_layout(a, "A")) || (s = check_layout(b, "B")) || (s = check_layout(c, "C")) ||
        (s = check_layout(dd, "D")))
        return s;
    if (a->type != b->type || c->type != dd->type || (a->type == CUDA_R_32F && c->type != CUDA_R_32F)) {
        fprintf(stderr, "cuemu: cublasLtMatmul: type combination A %d B %d C %d D %d not supported\n", (int)a->type,
                (int)b->type, (int)c->type, (int)dd->type);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    uint64_t m = d->transa == CUBLAS_OP_N ? a->rows : a->cols, ka = d->transa == CUBLAS_OP_N ? a->cols : a->rows;
    uint64_t kb = d->transb == CUBLAS_OP_N ? b->rows : b->cols, n = d->transb == CUBLAS_OP_N ? b->cols : b->rows;
    char msg[300];
    if (ka != kb || c->rows != m || c->cols != n || dd->rows != m || dd->cols != n) {
        snprintf(msg, sizeof msg,
                 "shapes disagree: op(A) %llux%llu (trans %d), op(B) %llux%llu (trans %d), C %llux%llu, D %llux%llu",
                 (unsigned long long)m, (unsigned long long)ka, d->transa, (unsigned long long)kb,
                 (unsigned long long)n, d->transb, (unsigned long long)c->rows, (unsigned long long)c->cols,
                 (unsigned long long)dd->rows, (unsigned long long)dd->cols);
        return bad(msg);
    }
    if (d->epilogue == CUBLASLT_EPILOGUE_BIAS && !d->bias) return bad("the bias epilogue needs a bias pointer");
    int32_t batch = dd->batch;
    if ((a->batch != batch && a->batch != 1) || (b->batch != batch && b->batch != 1) ||
        (c->batch != batch && c->batch != 1)) {
        snprintf(msg, sizeof msg, "batch counts disagree: A %d B %d C %d D %d", a->batch, b->batch, c->batch, dd->batch);
        return bad(msg);
    }
    p->m = m, p->n = n, p->k = ka, p->batch = batch;
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                                     cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                                     cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref,
                                                     int requested, cublasLtMatmulHeuristicResult_t results[],
                                                     int *returned) {
    if (!h || !pref || requested < 1 || !results || !returned) return CUBLAS_STATUS_INVALID_VALUE;
    Problem p;
    cublasStatus_t s = validate((EmuDesc *)(void *)op, (EmuLayout *)(void *)a, (EmuLayout *)(void *)b,
                                (EmuLayout *)(void *)c, (EmuLayout *)(void *)d, &p);
    if (s) return s;
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = 0x656d75;   // "emu"
    const EmuPref *e = (const EmuPref *)(void *)pref;
    for (int x = 0; x < 4; x++) {   // the alignment the algorithm's loads and stores need
        uint32_t want = e->min_align[x] ? e->min_align[x] : 256;
        results[0].algo.data[1 + x] = want < EMU_ALGO_ALIGN ? want : EMU_ALGO_ALIGN;
    }
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

static float ld_elem(const void *base, cudaDataType t, uint64_t i) {
    if (t == CUDA_R_32F) return ((const float *)base)[i];
    uint32_t u = (uint32_t)((const uint16_t *)base)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void st_elem(void *base, cudaDataType t, uint64_t i, float v) {
    if (t == CUDA_R_32F) {
        ((float *)base)[i] = v;
        return;
    }
    uint32_t u;
    memcpy(&u, &v, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u;   // NaN stays a (quiet) NaN
    else u += 0x7fffu + ((u >> 16) & 1u);
    ((uint16_t *)base)[i] = (uint16_t)(u >> 16);
}

// the elements a layout spans over its batches (0 for an empty matrix), for the range check
static uint64_t span(const EmuLayout *l, int32_t batch) {
    if (!l->rows || !l->cols) return 0;
    int32_t nb = l->batch == 1 ? 1 : batch;
    return (uint64_t)(nb - 1) * (uint64_t)l->stride + (l->cols - 1) * (uint64_t)l->ld + l->rows;
}

static size_t elem_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

static bool in_device(const void *p, const EmuLayout *l, int32_t batch, const char *what) {
    uint64_t n = span(l, batch);
    size_t es = elem_size(l->type);
    return !n || (p && cuemu_check_range(p, (size_t)(n * es), what));
}

// one product, everything it needs by value (a captured product is a copy of this)
typedef struct Product {
    EmuDesc d;
    EmuLayout a, b, c, dd;
    Problem p;
    float al, be;
    const void *A, *B, *C;
    void *D, *workspace;
    size_t workspace_bytes;
} Product;

static int run_product(const void *blob) {
    const Product *x = blob;
    const EmuDesc *d = &x->d;
    const EmuLayout *a = &x->a, *b = &x->b, *c = &x->c, *dd = &x->dd;
    const Problem p = x->p;
    const void *A = x->A, *B = x->B, *C = x->C;
    void *D = x->D;
    const float al = x->al, be = x->be;
    if (!in_device(A, a, p.batch, "cublasLtMatmul A") || !in_device(B, b, p.batch, "cublasLtMatmul B") ||
        !in_device(D, dd, p.batch, "cublasLtMatmul D") || (be != 0.0f && !in_device(C, c, p.batch, "cublasLtMatmul C")) ||
        (x->workspace_bytes && !cuemu_check_range(x->workspace, x->workspace_bytes, "cublasLtMatmul workspace")) ||
        (d->epilogue == CUBLASLT_EPILOGUE_BIAS && !cuemu_check_range(d->bias, p.m * elem_size(dd->type), "cublasLtMatmul bias")))
        return CUBLAS_STATUS_INVALID_VALUE;
    float *col = malloc((p.m ? p.m : 1) * sizeof *col);   // one column of D, so C may alias D
    if (!col) return CUBLAS_STATUS_ALLOC_FAILED;
    for (int32_t q = 0; q < p.batch; q++) {
        uint64_t oa = a->batch == 1 ? 0 : (uint64_t)q * (uint64_t)a->stride;
        uint64_t ob = b->batch == 1 ? 0 : (uint64_t)q * (uint64_t)b->stride;
        uint64_t oc = c->batch == 1 ? 0 : (uint64_t)q * (uint64_t)c->stride;
        uint64_t od = (uint64_t)q * (uint64_t)dd->stride;
        for (uint64_t j = 0; j < p.n; j++) {
            for (uint64_t i = 0; i < p.m; i++) {
                float acc = 0.0f;
                for (uint64_t l = 0; l < p.k; l++) {
                    uint64_t ia = d->transa == CUBLAS_OP_N ? i + l * (uint64_t)a->ld : l + i * (uint64_t)a->ld;
                    uint64_t ib = d->transb == CUBLAS_OP_N ? l + j * (uint64_t)b->ld : j + l * (uint64_t)b->ld;
                    acc += ld_elem(A, a->type, oa + ia) * ld_elem(B, b->type, ob + ib);
                }
                float v = al * acc;
                if (be != 0.0f) v += be * ld_elem(C, c->type, oc + i + j * (uint64_t)c->ld);
                if (d->epilogue == CUBLASLT_EPILOGUE_BIAS) v += ld_elem(d->bias, dd->type, i);   // D's type
                col[i] = v;
            }
            for (uint64_t i = 0; i < p.m; i++) st_elem(D, dd->type, od + i + j * (uint64_t)dd->ld, col[i]);
        }
    }
    free(col);
    return CUBLAS_STATUS_SUCCESS;
}

// runs now, or is recorded when the stream captures (operands checked now and at every launch)
EXPORT cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha, const void *A,
                                     cublasLtMatrixLayout_t adesc, const void *B, cublasLtMatrixLayout_t bdesc,
                                     const void *beta, const void *C, cublasLtMatrixLayout_t cdesc, void *D,
                                     cublasLtMatrixLayout_t ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
                                     size_t workspace_bytes, cudaStream_t stream) {
    EmuLt *lt = (EmuLt *)(void *)h;
    if (!lt || lt->magic != 0x4c54) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!alpha || !beta) return bad("alpha / beta NULL");
    Product x;
    memset(&x, 0, sizeof x);
    const EmuDesc *d = (EmuDesc *)(void *)op;
    const EmuLayout *a = (EmuLayout *)(void *)adesc, *b = (EmuLayout *)(void *)bdesc;
    const EmuLayout *c = (EmuLayout *)(void *)cdesc, *dd = (EmuLayout *)(void *)ddesc;
    cublasStatus_t s = validate(d, a, b, c, dd, &x.p);
    if (s) return s;
    x.d = *d, x.a = *a, x.b = *b, x.c = *c, x.dd = *dd;
    memcpy(&x.al, alpha, 4);   // host-pointer scalars: read at the call, as cuBLASLt does
    memcpy(&x.be, beta, 4);
    x.A = A, x.B = B, x.C = C, x.D = D, x.workspace = workspace, x.workspace_bytes = workspace_bytes;
    if (!in_device(A, a, x.p.batch, "cublasLtMatmul A") || !in_device(B, b, x.p.batch, "cublasLtMatmul B") ||
        !in_device(D, dd, x.p.batch, "cublasLtMatmul D") ||
        (x.be != 0.0f && !in_device(C, c, x.p.batch, "cublasLtMatmul C")) ||
        (workspace_bytes && !cuemu_check_range(workspace, workspace_bytes, "cublasLtMatmul workspace")) ||
        (d->epilogue == CUBLASLT_EPILOGUE_BIAS &&
         !cuemu_check_range(d->bias, x.p.m * elem_size(dd->type), "cublasLtMatmul bias")))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (algo && algo->data[0] == 0x656d75) {
        const void *ptr[4] = {A, B, C, D};
        const EmuLayout *lay[4] = {a, b, c, dd};
        for (int q = 0; q < 4; q++) {
            if (q == 2 && x.be == 0.0f) continue;   // C is not read
            uint64_t need = algo->data[1 + q], es = lay[q]->type == CUDA_R_32F ? 4 : 2;
            uint64_t at = (uint64_t)(uintptr_t)ptr[q] | (x.p.batch > 1 && lay[q]->batch > 1 ? (uint64_t)lay[q]->stride * es : 0);
            if (need && at % need) {
                fprintf(stderr,
                        "cuemu: cublasLtMatmul: %c at %p (batch stride %lld elements) is not %llu-byte aligned, as the "
                        "algorithm from the heuristic needs (set CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%c_BYTES)\n",
                        "ABCD"[q], ptr[q], (long long)lay[q]->stride, (unsigned long long)need, "ABCD"[q]);
                return CUBLAS_STATUS_NOT_SUPPORTED;
            }
        }
    }
    bool captured = false;
    CUresult r = cuemu_stream_host_op((CUstream)stream, "cublasLtMatmul", run_product, &x, sizeof x, &captured);
    if (r != CUDA_SUCCESS) return r == CUDA_ERROR_INVALID_HANDLE ? CUBLAS_STATUS_INVALID_VALUE : CUBLAS_STATUS_EXECUTION_FAILED;
    return captured ? CUBLAS_STATUS_SUCCESS : (cublasStatus_t)run_product(&x);
}
