// cuemu_graph.c — the CUDA emulator's streams, stream capture and graphs (the rest of the fake
// driver: cuemu.c). Work runs synchronously whatever the stream; a stream made by cuStreamCreate
// can capture (cuStreamBeginCapture): kernel launches, memsets, device-to-device copies and
// cuBLASLt products on it are then recorded into a graph, not executed. An instance
// (cuGraphInstantiateWithFlags) holds copies of the recorded nodes and runs them in capture order
// at each cuGraphLaunch (one stream: that order satisfies every dependency);
// cuGraphExecKernelNodeSetParams gives a kernel node new arguments. The checks a real driver
// makes: the legacy stream (NULL) used while a blocking stream captures fails with
// CUDA_ERROR_STREAM_CAPTURE_IMPLICIT; a synchronous or allocating call while a capture in global
// (or this thread's thread-local) mode is under way fails with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
// copies from / to host memory (pageable here: no pinned memory) cannot be captured; each of these
// invalidates the capture, whose cuStreamEndCapture then fails with
// CUDA_ERROR_STREAM_CAPTURE_INVALIDATED and no graph.
// Not here: events, stream priorities, child graphs, graph editing (nodes added by hand), graph
// updates (cuGraphExecUpdate), concurrency between streams.
#define _GNU_SOURCE
#include <cuda.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuemu_internal.h"

#define EXPORT __attribute__((visibility("default")))

#define STREAM_MAGIC 0x5354524d
#define GRAPH_MAGIC 0x47525048
#define EXEC_MAGIC 0x47455843

static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;   // streams, graphs; taken before mu

enum { NODE_KERNEL, NODE_MEMSET, NODE_COPY, NODE_HOST };

typedef struct EmuGraph EmuGraph;

typedef struct EmuNode {
    int kind;
    EmuGraph *owner;              // the graph it was captured into (NULL in an instance)
    int index;                    // its place in the graph (and in every instance)
    void *k;                      // NODE_KERNEL: the kernel (a CUfunction), arguments copied
    unsigned grid[3], block[3], shared;
    int nargs;
    unsigned char *argbuf;
    void **argv;
    uintptr_t dst, src;           // NODE_MEMSET / NODE_COPY
    size_t bytes;
    unsigned char value;
    int (*host)(const void *blob);   // NODE_HOST (a cuBLASLt product): host(blob), 0 = ok
    unsigned char *blob;
    size_t blob_size;
} EmuNode;

struct EmuGraph {
    int magic;
    uint64_t id;
    EmuNode **nodes;              // node handles stay put
    int n, cap;
    EmuGraph *next;
};

typedef struct EmuExec {
    int magic;
    uint64_t graph_id;            // the graph it was instantiated from
    EmuNode *nodes;               // copies
    int n;
    struct EmuExec *next;
} EmuExec;

typedef struct EmuStream {
    int magic;
    unsigned flags;               // CU_STREAM_NON_BLOCKING or 0
    CUstreamCaptureStatus capture;
    CUstreamCaptureMode mode;
    pthread_t thread;             // the capturing thread
    uint64_t capture_id;
    EmuGraph *graph;              // being captured into
    EmuNode *last;                // the last node captured: the dependency set of the next one
    struct EmuStream *next;
} EmuStream;

static EmuStream *streams;
static EmuGraph *graphs;
static EmuExec *execs;
static uint64_t next_capture_id = 1, next_graph_id = 1;

static EmuStream *find_stream(CUstream s) {
    for (EmuStream *t = streams; t; t = t->next)
        if ((CUstream)(void *)t == s) return t;
    return NULL;
}

static bool is_legacy(CUstream s) { return s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD; }

static void invalidate(EmuStream *t, const char *call, const char *why) {
    fprintf(stderr, "cuemu: %s: %s; the capture on stream %p is invalidated\n", call, why, (void *)t);
    if (t->capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) t->capture = CU_STREAM_CAPTURE_STATUS_INVALIDATED;
}

// The stream an operation targets (*st = NULL: the legacy stream), under cap_mu. A legacy-stream
// use while a blocking stream captures joins that capture implicitly: an error that invalidates
// it. An invalidated capture refuses further work until it is ended.
static CUresult stream_target(CUstream s, const char *call, EmuStream **st) {
    *st = NULL;
    if (is_legacy(s)) {
        CUresult r = CUDA_SUCCESS;
        for (EmuStream *t = streams; t; t = t->next)
            if (t->capture != CU_STREAM_CAPTURE_STATUS_NONE && !(t->flags & CU_STREAM_NON_BLOCKING)) {
                invalidate(t, call, "the legacy stream used while a blocking stream captures");
                r = CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
            }
        return r;
    }
    EmuStream *t = find_stream(s);
    if (!t) {
        fprintf(stderr, "cuemu: %s: stream %p is not a live stream\n", call, (void *)s);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (t->capture == CU_STREAM_CAPTURE_STATUS_INVALIDATED) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    *st = t;
    return CUDA_SUCCESS;
}

// A potentially unsafe call (synchronous or allocating) while a capture forbids it: a capture in
// global mode, or one in thread-local mode on this thread. Under cap_mu.
static CUresult unsafe_locked(const char *call) {
    CUresult r = CUDA_SUCCESS;
    for (EmuStream *t = streams; t; t = t->next) {
        if (t->capture != CU_STREAM_CAPTURE_STATUS_ACTIVE || t->mode == CU_STREAM_CAPTURE_MODE_RELAXED) continue;
        if (t->mode == CU_STREAM_CAPTURE_MODE_THREAD_LOCAL && !pthread_equal(t->thread, pthread_self())) continue;
        invalidate(t, call, "a synchronous or allocating call during stream capture");
        r = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    return r;
}

CUresult cuemu_unsafe_call(const char *call) {
    pthread_mutex_lock(&cap_mu);
    CUresult r = unsafe_locked(call);
    pthread_mutex_unlock(&cap_mu);
    return r;
}

// a synchronous call on the legacy stream (copies, sets): both checks
CUresult cuemu_legacy_sync(const char *call) {
    EmuStream *st;
    pthread_mutex_lock(&cap_mu);
    CUresult r = stream_target(NULL, call, &st);
    if (r == CUDA_SUCCESS) r = unsafe_locked(call);
    pthread_mutex_unlock(&cap_mu);
    return r;
}

// a new node at the end of t's capture (under cap_mu); NULL when out of memory (invalidated)
static EmuNode *capture_node(EmuStream *t, int kind, const char *call) {
    EmuGraph *g = t->graph;
    // test hook: $TRLC_CUEMU_CAPTURE_LIMIT=N refuses a capture's node N + 1 (a capture that fails
    // where running the same work would not: the executor's fallback)
    const char *lim = getenv("TRLC_CUEMU_CAPTURE_LIMIT");
    if (lim && *lim && g->n >= atoi(lim)) {
        invalidate(t, call, "more nodes than $TRLC_CUEMU_CAPTURE_LIMIT (a test hook)");
        return NULL;
    }
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        EmuNode **nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) {
            invalidate(t, call, "out of memory");
            return NULL;
        }
        g->nodes = nn, g->cap = cap;
    }
    EmuNode *n = calloc(1, sizeof *n);
    if (!n) {
        invalidate(t, call, "out of memory");
        return NULL;
    }
    n->kind = kind, n->owner = g, n->index = g->n;
    g->nodes[g->n++] = n;
    t->last = n;
    return n;
}

static void node_clear(EmuNode *n) {
    free(n->argbuf);
    free(n->argv);
    free(n->blob);
    n->argbuf = NULL, n->argv = NULL, n->blob = NULL;
}

static void graph_free(EmuGraph *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) {
        node_clear(g->nodes[i]);
        free(g->nodes[i]);
    }
    free(g->nodes);
    g->magic = 0;
    free(g);
}

EXPORT CUresult cuStreamCreate(CUstream *s, unsigned flags) {
    if (!s || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING)) return CUDA_ERROR_INVALID_VALUE;
    EmuStream *t = calloc(1, sizeof *t);
    if (!t) return CUDA_ERROR_OUT_OF_MEMORY;
    t->magic = STREAM_MAGIC, t->flags = flags, t->capture = CU_STREAM_CAPTURE_STATUS_NONE;
    pthread_mutex_lock(&cap_mu);
    t->next = streams;
    streams = t;
    pthread_mutex_unlock(&cap_mu);
    *s = (CUstream)(void *)t;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamDestroy(CUstream s) {
    pthread_mutex_lock(&cap_mu);
    EmuStream **pp = &streams;
    while (*pp && (CUstream)(void *)*pp != s) pp = &(*pp)->next;
    EmuStream *t = *pp;
    if (t) *pp = t->next;
    pthread_mutex_unlock(&cap_mu);
    if (!t) return CUDA_ERROR_INVALID_HANDLE;
    graph_free(t->graph);   // a capture never ended
    t->magic = 0;
    free(t);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamSynchronize(CUstream s) {
    EmuStream *t;
    pthread_mutex_lock(&cap_mu);
    CUresult r = stream_target(s, "cuStreamSynchronize", &t);
    if (r == CUDA_SUCCESS && t && t->capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
        invalidate(t, "cuStreamSynchronize", "synchronizing a capturing stream");
        r = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    if (r == CUDA_SUCCESS) r = unsafe_locked("cuStreamSynchronize");
    pthread_mutex_unlock(&cap_mu);
    return r;
}

EXPORT CUresult cuCtxSynchronize(void) { return cuemu_unsafe_call("cuCtxSynchronize"); }

EXPORT CUresult cuStreamBeginCapture(CUstream s, CUstreamCaptureMode mode) {
    if (mode != CU_STREAM_CAPTURE_MODE_GLOBAL && mode != CU_STREAM_CAPTURE_MODE_THREAD_LOCAL &&
        mode != CU_STREAM_CAPTURE_MODE_RELAXED)
        return CUDA_ERROR_INVALID_VALUE;
    if (is_legacy(s)) {
        fprintf(stderr, "cuemu: cuStreamBeginCapture: the legacy stream cannot capture\n");
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    pthread_mutex_lock(&cap_mu);
    EmuStream *t = find_stream(s);
    CUresult r = !t ? CUDA_ERROR_INVALID_HANDLE : t->capture != CU_STREAM_CAPTURE_STATUS_NONE ? CUDA_ERROR_ILLEGAL_STATE
                                                                                              : CUDA_SUCCESS;
    EmuGraph *g = r == CUDA_SUCCESS ? calloc(1, sizeof *g) : NULL;
    if (r == CUDA_SUCCESS && !g) r = CUDA_ERROR_OUT_OF_MEMORY;
    if (r == CUDA_SUCCESS) {
        g->magic = GRAPH_MAGIC, g->id = next_graph_id++;
        t->graph = g, t->last = NULL, t->mode = mode, t->thread = pthread_self();
        t->capture = CU_STREAM_CAPTURE_STATUS_ACTIVE, t->capture_id = next_capture_id++;
    }
    pthread_mutex_unlock(&cap_mu);
    if (r == CUDA_ERROR_ILLEGAL_STATE) fprintf(stderr, "cuemu: cuStreamBeginCapture: the stream is capturing already\n");
    return r;
}

EXPORT CUresult cuStreamEndCapture(CUstream s, CUgraph *out) {
    if (!out) return CUDA_ERROR_INVALID_VALUE;
    *out = NULL;
    pthread_mutex_lock(&cap_mu);
    EmuStream *t = is_legacy(s) ? NULL : find_stream(s);
    CUresult r = CUDA_SUCCESS;
    if (!t) r = is_legacy(s) ? CUDA_ERROR_ILLEGAL_STATE : CUDA_ERROR_INVALID_HANDLE;
    else if (t->capture == CU_STREAM_CAPTURE_STATUS_NONE) r = CUDA_ERROR_ILLEGAL_STATE;
    else if (t->mode != CU_STREAM_CAPTURE_MODE_RELAXED && !pthread_equal(t->thread, pthread_self()))
        r = CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD;
    if (r == CUDA_SUCCESS) {
        if (t->capture == CU_STREAM_CAPTURE_STATUS_INVALIDATED) {
            graph_free(t->graph);
            r = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
        } else {
            t->graph->next = graphs;
            graphs = t->graph;
            *out = (CUgraph)(void *)t->graph;
        }
        t->graph = NULL, t->last = NULL, t->capture = CU_STREAM_CAPTURE_STATUS_NONE;
    }
    pthread_mutex_unlock(&cap_mu);
    if (r == CUDA_ERROR_ILLEGAL_STATE) fprintf(stderr, "cuemu: cuStreamEndCapture: the stream is not capturing\n");
    return r;
}

EXPORT CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus *status) {
    if (!status) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&cap_mu);
    CUresult r = CUDA_SUCCESS;
    if (is_legacy(s)) {   // the legacy stream next to a blocking capture: an error, nothing invalidated
        *status = CU_STREAM_CAPTURE_STATUS_NONE;
        for (EmuStream *t = streams; t; t = t->next)
            if (t->capture != CU_STREAM_CAPTURE_STATUS_NONE && !(t->flags & CU_STREAM_NON_BLOCKING))
                r = CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
    } else {
        EmuStream *t = find_stream(s);
        if (t) *status = t->capture;
        else r = CUDA_ERROR_INVALID_HANDLE;
    }
    pthread_mutex_unlock(&cap_mu);
    return r;
}

EXPORT CUresult cuStreamGetCaptureInfo(CUstream s, CUstreamCaptureStatus *status, cuuint64_t *id, CUgraph *graph,
                                       const CUgraphNode **deps, const CUgraphEdgeData **edges, size_t *ndeps) {
    if (!status || (edges && !deps)) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = cuStreamIsCapturing(s, status);
    if (r != CUDA_SUCCESS || *status != CU_STREAM_CAPTURE_STATUS_ACTIVE) return r;
    pthread_mutex_lock(&cap_mu);
    EmuStream *t = find_stream(s);
    if (id) *id = t->capture_id;
    if (graph) *graph = (CUgraph)(void *)t->graph;
    if (deps) *deps = t->last ? (const CUgraphNode *)(void *)&t->last : NULL;
    if (edges) *edges = NULL;   // no edge data: every edge is a plain dependency
    if (ndeps) *ndeps = t->last ? 1 : 0;
    pthread_mutex_unlock(&cap_mu);
    return CUDA_SUCCESS;
}

// for cuemu_blas.c: a cuBLASLt product on stream s. When s captures, the product is recorded
// (host(blob) runs at every launch of the graph; blob is copied) and *captured is true; otherwise
// it is to run now. An error when s cannot be used (printed; a capture it breaks is invalidated).
CUresult cuemu_stream_host_op(CUstream s, const char *call, int (*host)(const void *), const void *blob, size_t size,
                              bool *captured) {
    *captured = false;
    EmuStream *t;
    pthread_mutex_lock(&cap_mu);
    CUresult r = stream_target(s, call, &t);
    if (r == CUDA_SUCCESS && t && t->capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
        unsigned char *copy = malloc(size ? size : 1);
        EmuNode *n = copy ? capture_node(t, NODE_HOST, call) : NULL;
        if (n) {
            memcpy(copy, blob, size);
            n->host = host, n->blob = copy, n->blob_size = size;
            *captured = true;
        } else {
            if (copy) r = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;   // capture_node said why
            else invalidate(t, call, "out of memory"), r = CUDA_ERROR_OUT_OF_MEMORY;
            free(copy);
        }
    }
    pthread_mutex_unlock(&cap_mu);
    return r;
}

// stream-ordered copies and sets: run now, or recorded when the stream captures (a copy from or to
// host memory cannot be: the host memory here is pageable)
static CUresult host_copy_async(CUstream s, const char *call) {
    EmuStream *t;
    pthread_mutex_lock(&cap_mu);
    CUresult r = stream_target(s, call, &t);
    if (r == CUDA_SUCCESS && t && t->capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
        invalidate(t, call, "a copy from or to pageable host memory cannot be captured");
        r = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    pthread_mutex_unlock(&cap_mu);
    return r;
}

EXPORT CUresult cuMemcpyHtoDAsync(CUdeviceptr dst, const void *src, size_t n, CUstream s) {
    CUresult r = host_copy_async(s, "cuMemcpyHtoDAsync");
    if (r != CUDA_SUCCESS) return r;
    if (!src || !cuemu_check_range((const void *)(uintptr_t)dst, n, "cuMemcpyHtoDAsync")) return CUDA_ERROR_INVALID_VALUE;
    if (n) memcpy((void *)(uintptr_t)dst, src, n);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyDtoHAsync(void *dst, CUdeviceptr src, size_t n, CUstream s) {
    CUresult r = host_copy_async(s, "cuMemcpyDtoHAsync");
    if (r != CUDA_SUCCESS) return r;
    if (!dst || !cuemu_check_range((const void *)(uintptr_t)src, n, "cuMemcpyDtoHAsync")) return CUDA_ERROR_INVALID_VALUE;
    if (n) memcpy(dst, (const void *)(uintptr_t)src, n);
    return CUDA_SUCCESS;
}

// a memset (kind NODE_MEMSET) or device copy (NODE_COPY): checked, then run or recorded
static CUresult device_op_async(CUstream s, const char *call, int kind, uintptr_t dst, uintptr_t src, unsigned char v,
                                size_t n) {
    EmuStream *t;
    pthread_mutex_lock(&cap_mu);
    CUresult r = stream_target(s, call, &t);
    bool ok = r == CUDA_SUCCESS && cuemu_check_range((const void *)dst, n, call) &&
              (kind != NODE_COPY || cuemu_check_range((const void *)src, n, call));
    if (r == CUDA_SUCCESS && !ok) r = CUDA_ERROR_INVALID_VALUE;
    if (r == CUDA_SUCCESS && t && t->capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
        EmuNode *nd = capture_node(t, kind, call);
        if (nd) nd->dst = dst, nd->src = src, nd->value = v, nd->bytes = n;
        pthread_mutex_unlock(&cap_mu);
        return nd ? CUDA_SUCCESS : CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;   // capture_node said why
    }
    pthread_mutex_unlock(&cap_mu);
    if (r != CUDA_SUCCESS || !n) return r;
    if (kind == NODE_COPY) memmove((void *)dst, (const void *)src, n);
    else memset((void *)dst, v, n);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
    return device_op_async(s, "cuMemcpyDtoDAsync", NODE_COPY, (uintptr_t)dst, (uintptr_t)src, 0, n);
}

EXPORT CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, CUstream s) {
    return device_op_async(s, "cuMemsetD8Async", NODE_MEMSET, (uintptr_t)p, 0, v, n);
}

// the node's copies of a launch's arguments (replacing what it held); false when they cannot be made
static bool node_args(EmuNode *n, void *k, void **params) {
    int na = 0;
    unsigned char *buf = NULL;
    void **argv = NULL;
    if (!cuemu_copy_args(k, params, &na, &buf, &argv)) return false;
    free(n->argbuf);
    free(n->argv);
    n->k = k, n->nargs = na, n->argbuf = buf, n->argv = argv;
    return true;
}

// cuLaunchKernel on a capturing stream: checked as a launch is, then recorded (*captured); a launch
// that cannot be made invalidates the capture. Any other stream: *captured false, to run now.
CUresult cuemu_capture_launch(CUstream stream, void *f, const unsigned g[3], const unsigned b[3], unsigned shared_bytes,
                              void **params, void **extra, bool *captured) {
    *captured = false;
    EmuStream *t;
    pthread_mutex_lock(&cap_mu);
    CUresult r = stream_target(stream, "cuLaunchKernel", &t);
    if (r != CUDA_SUCCESS || !t || t->capture != CU_STREAM_CAPTURE_STATUS_ACTIVE) {
        pthread_mutex_unlock(&cap_mu);
        return r;
    }
    *captured = true;
    r = cuemu_check_launch(f, g, b, shared_bytes, params, extra);
    EmuNode *n = r == CUDA_SUCCESS ? capture_node(t, NODE_KERNEL, "cuLaunchKernel") : NULL;
    if (n) {
        memcpy(n->grid, g, 3 * sizeof *g), memcpy(n->block, b, 3 * sizeof *b), n->shared = shared_bytes;
        if (!node_args(n, f, params)) {
            invalidate(t, "cuLaunchKernel", "the kernel's arguments cannot be copied");
            r = CUDA_ERROR_OUT_OF_MEMORY;
        }
    } else if (r == CUDA_SUCCESS) {   // no node: capture_node invalidated the capture, saying why
        r = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    } else {
        invalidate(t, "cuLaunchKernel", "an invalid launch");
    }
    pthread_mutex_unlock(&cap_mu);
    return r;
}

// ---------------------------------------------------------------------------------------------
// graphs: an instance holds copies of the captured nodes and runs them in capture order (one
// stream: that order satisfies every dependency)

static EmuGraph *find_graph(CUgraph h) {
    for (EmuGraph *g = graphs; g; g = g->next)
        if ((CUgraph)(void *)g == h) return g;
    return NULL;
}

static EmuExec *find_exec(CUgraphExec h) {
    for (EmuExec *e = execs; e; e = e->next)
        if ((CUgraphExec)(void *)e == h) return e;
    return NULL;
}

static void exec_free(EmuExec *e) {
    for (int i = 0; i < e->n; i++) node_clear(&e->nodes[i]);
    free(e->nodes);
    e->magic = 0;
    free(e);
}

EXPORT CUresult cuGraphDestroy(CUgraph h) {
    pthread_mutex_lock(&cap_mu);
    EmuGraph **pp = &graphs;
    while (*pp && (CUgraph)(void *)*pp != h) pp = &(*pp)->next;
    EmuGraph *g = *pp;
    if (g) *pp = g->next;
    pthread_mutex_unlock(&cap_mu);
    if (!g) return CUDA_ERROR_INVALID_VALUE;
    graph_free(g);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *out, CUgraph h, unsigned long long flags) {
    if (!out) return CUDA_ERROR_INVALID_VALUE;
    if (flags) {
        fprintf(stderr, "cuemu: cuGraphInstantiateWithFlags: flags %llu are not emulated\n", flags);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    pthread_mutex_lock(&cap_mu);
    EmuGraph *g = find_graph(h);
    EmuExec *e = g ? calloc(1, sizeof *e) : NULL;
    CUresult r = !g ? CUDA_ERROR_INVALID_VALUE : !e ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
    if (e) {
        e->magic = EXEC_MAGIC, e->graph_id = g->id, e->n = g->n;
        e->nodes = calloc((size_t)g->n + 1, sizeof *e->nodes);
        for (int i = 0; e->nodes && i < g->n && r == CUDA_SUCCESS; i++) {
            const EmuNode *src = g->nodes[i];
            EmuNode *d = &e->nodes[i];
            *d = *src;
            d->owner = NULL, d->argbuf = NULL, d->argv = NULL, d->blob = NULL;
            if (src->kind == NODE_KERNEL) {
                if (!node_args(d, src->k, src->argv)) r = CUDA_ERROR_OUT_OF_MEMORY;
            } else if (src->kind == NODE_HOST) {
                d->blob = malloc(src->blob_size ? src->blob_size : 1);
                if (d->blob) memcpy(d->blob, src->blob, src->blob_size);
                else r = CUDA_ERROR_OUT_OF_MEMORY;
            }
        }
        if (!e->nodes) r = CUDA_ERROR_OUT_OF_MEMORY;
        if (r == CUDA_SUCCESS) {
            e->next = execs;
            execs = e;
            *out = (CUgraphExec)(void *)e;
        } else {
            exec_free(e);
        }
    }
    pthread_mutex_unlock(&cap_mu);
    return r;
}

EXPORT CUresult cuGraphExecDestroy(CUgraphExec h) {
    pthread_mutex_lock(&cap_mu);
    EmuExec **pp = &execs;
    while (*pp && (CUgraphExec)(void *)*pp != h) pp = &(*pp)->next;
    EmuExec *e = *pp;
    if (e) *pp = e->next;
    pthread_mutex_unlock(&cap_mu);
    if (!e) return CUDA_ERROR_INVALID_VALUE;
    exec_free(e);
    return CUDA_SUCCESS;
}

// new parameters for a kernel node of an instance: the node (a handle from the graph the instance
// was made from) must be a kernel node, the function the same, the launch valid
EXPORT CUresult cuGraphExecKernelNodeSetParams(CUgraphExec h, CUgraphNode node, const CUDA_KERNEL_NODE_PARAMS *kp) {
    if (!kp) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&cap_mu);
    EmuExec *e = find_exec(h);
    EmuGraph *g = NULL;
    for (EmuGraph *x = graphs; e && x && !g; x = x->next)
        if (x->id == e->graph_id) g = x;
    const EmuNode *gn = NULL;
    for (int i = 0; g && i < g->n && !gn; i++)
        if ((CUgraphNode)(void *)g->nodes[i] == node) gn = g->nodes[i];
    CUresult r = !e ? CUDA_ERROR_INVALID_VALUE : !gn ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
    if (r == CUDA_SUCCESS && (gn->kind != NODE_KERNEL || (void *)kp->func != gn->k)) {
        fprintf(stderr, "cuemu: cuGraphExecKernelNodeSetParams: %s\n",
                gn->kind != NODE_KERNEL ? "not a kernel node" : "the function differs from the captured one");
        r = CUDA_ERROR_INVALID_VALUE;
    }
    if (r == CUDA_SUCCESS) {
        EmuNode *d = &e->nodes[gn->index];
        const unsigned gd[3] = {kp->gridDimX, kp->gridDimY, kp->gridDimZ};
        const unsigned bd[3] = {kp->blockDimX, kp->blockDimY, kp->blockDimZ};
        r = cuemu_check_launch(d->k, gd, bd, kp->sharedMemBytes, kp->kernelParams, kp->extra);
        if (r == CUDA_SUCCESS && !node_args(d, d->k, kp->kernelParams)) r = CUDA_ERROR_OUT_OF_MEMORY;
        if (r == CUDA_SUCCESS) memcpy(d->grid, gd, sizeof gd), memcpy(d->block, bd, sizeof bd), d->shared = kp->sharedMemBytes;
    } else if (!gn && e) {
        fprintf(stderr, "cuemu: cuGraphExecKernelNodeSetParams: the node is not in the graph the instance was made from\n");
    }
    pthread_mutex_unlock(&cap_mu);
    return r;
}

static unsigned long graph_launches;

EXPORT CUresult cuGraphLaunch(CUgraphExec h, CUstream s) {
    EmuStream *t;
    pthread_mutex_lock(&cap_mu);
    CUresult r = stream_target(s, "cuGraphLaunch", &t);
    EmuExec *e = r == CUDA_SUCCESS ? find_exec(h) : NULL;
    if (r == CUDA_SUCCESS && !e) r = CUDA_ERROR_INVALID_VALUE;
    if (r == CUDA_SUCCESS && t && t->capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
        invalidate(t, "cuGraphLaunch", "a graph launched into a capture (child graphs are not emulated)");
        r = CUDA_ERROR_NOT_SUPPORTED;
    }
    // the nodes run under cap_mu: a graph cannot be destroyed or changed while it runs
    for (int i = 0; r == CUDA_SUCCESS && i < e->n; i++) {
        EmuNode *n = &e->nodes[i];
        switch (n->kind) {
        case NODE_KERNEL:
            r = cuemu_launch_now(n->k, n->grid, n->block, n->shared, n->argv, NULL);
            break;
        case NODE_MEMSET: case NODE_COPY:
            if (!cuemu_check_range((const void *)n->dst, n->bytes, "cuGraphLaunch (a memset / copy node)") ||
                (n->kind == NODE_COPY && !cuemu_check_range((const void *)n->src, n->bytes, "cuGraphLaunch (a copy node)")))
                r = CUDA_ERROR_LAUNCH_FAILED;
            else if (n->kind == NODE_COPY && n->bytes) memmove((void *)n->dst, (const void *)n->src, n->bytes);
            else if (n->bytes) memset((void *)n->dst, n->value, n->bytes);
            break;
        default:
            if (n->host(n->blob) != 0) r = CUDA_ERROR_LAUNCH_FAILED;
            break;
        }
        if (r != CUDA_SUCCESS) fprintf(stderr, "cuemu: cuGraphLaunch: node %d of %d failed\n", i, e->n);
    }
    if (r == CUDA_SUCCESS) graph_launches++;
    pthread_mutex_unlock(&cap_mu);
    return r;
}

// $TRLC_CUEMU_STATS=1: the count at exit, on stderr (scripts check that a run replayed graphs)
__attribute__((destructor)) static void print_stats(void) {
    const char *env = getenv("TRLC_CUEMU_STATS");
    if (env && !strcmp(env, "1")) fprintf(stderr, "cuemu: %lu graph launches\n", graph_launches);
}

// graphs launched so far (tests)
EXPORT unsigned long trlcEmuGraphLaunches(void) {
    pthread_mutex_lock(&cap_mu);
    unsigned long n = graph_launches;
    pthread_mutex_unlock(&cap_mu);
    return n;
}
