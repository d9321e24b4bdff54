// device.c — one CUDA device through the driver API, loaded with dlopen so that trlc starts (and
// its CPU path runs) on machines without a driver: memory, cubin modules, launches, streams,
// stream capture into CUDA graphs (instantiate, launch, kernel-node updates; optional entry points:
// rt_cuda_graphs_supported), and the CU_CHECK macro that names the failing call, the driver's
// error string, file and line.
// The driver library is libcuda.so.1, or $TRLC_CUDA_DRIVER (a test hook: the CPU emulator in
// tests/gpu/emu, which loads modules from CUDA C source: rt_cuda_load_source).
// Not here: compiling (nvrtc.c), deciding what to launch (the executor).
#include "rt_cuda.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUmodule;
typedef void *CUfunction;
typedef uint64_t CUdeviceptr;
typedef void *CUstream;
typedef void *CUgraph;
typedef void *CUgraphNode;
typedef void *CUgraphExec;

// CUDA_KERNEL_NODE_PARAMS_v2 (cuda.h); the v1 entry point reads its first ten fields
typedef struct KernelNodeParams {
    CUfunction func;
    unsigned grid_x, grid_y, grid_z, block_x, block_y, block_z, shared_bytes;
    void **params;
    void **extra;
    void *kern;
    CUcontext ctx;
} KernelNodeParams;

struct RtCudaGraph {
    CUgraph graph;          // kept: its node handles name the instance's nodes
    CUgraphExec exec;
};

struct RtCudaDevice {
    void *lib;
    Diag *d;
    CUdevice dev;
    CUcontext ctx;
    CUmodule *mods;         // every module loaded (unloaded at close), grows
    int nmods, capmods;
    CUresult (*Init)(unsigned);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*PrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*PrimaryCtxRelease)(CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*CtxSynchronize)(void);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*MemsetD8)(CUdeviceptr, unsigned char, size_t);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleUnload)(CUmodule);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             void *, void **, void **);
    CUresult (*FuncGetAttribute)(int *, int, CUfunction);
    CUresult (*GetErrorString)(CUresult, const char **);
    CUresult (*EmuLoadSource)(CUmodule *, const char *);   // only in the emulator, else NULL
    CUresult (*MemGetInfo)(size_t *, size_t *);            // optional (rt_cuda_mem_info)
    // streams
    CUresult (*StreamCreate)(CUstream *, unsigned);
    CUresult (*StreamDestroy)(CUstream);
    CUresult (*StreamSynchronize)(CUstream);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*MemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
    CUresult (*MemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
    // graphs: optional (graphs_ok when all are there)
    bool graphs_ok;
    CUresult (*BeginCapture)(CUstream, int);
    CUresult (*EndCapture)(CUstream, CUgraph *);
    CUresult (*CaptureInfo3)(CUstream, int *, uint64_t *, CUgraph *, const CUgraphNode **, const void **, size_t *);
    CUresult (*CaptureInfo2)(CUstream, int *, uint64_t *, CUgraph *, const CUgraphNode **, size_t *);
    CUresult (*Instantiate)(CUgraphExec *, CUgraph, unsigned long long);
    CUresult (*GraphLaunch)(CUgraphExec, CUstream);
    CUresult (*SetKernelParams)(CUgraphExec, CUgraphNode, const KernelNodeParams *);
    CUresult (*GraphDestroy)(CUgraph);
    CUresult (*ExecDestroy)(CUgraphExec);
};

static int cu_fail(RtCudaDevice *g, CUresult r, const char *call, const char *file, int line) {
    const char *msg = NULL;
    if (g->GetErrorString) g->GetErrorString(r, &msg);
    diag_plain_error(g->d, "CUDA: %s failed: %s (error %d) at %s:%d", call, msg ? msg : "unknown error", r, file, line);
    return -1;
}

#define CU_CHECK(g, call)                                                  \
    do {                                                                   \
        CUresult r_ = (call);                                              \
        if (r_ != 0) return cu_fail((g), r_, #call, __FILE__, __LINE__);   \
    } while (0)

#define SYM(g, field, name) ((g)->field = (__typeof__((g)->field))(uintptr_t)dlsym((g)->lib, name))

const char *rt_cuda_driver_path(void) {
    const char *env = getenv("TRLC_CUDA_DRIVER");
    return env && *env ? env : "libcuda.so.1";
}

RtCudaDevice *rt_cuda_open(int dev, bool quiet, Diag *d) {
    RtCudaDevice *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->d = d;
    const char *path = rt_cuda_driver_path();
    g->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!g->lib) {
        if (!quiet) diag_plain_error(d, "CUDA: no driver (%s cannot be loaded: %s)", path, dlerror());
        free(g);
        return NULL;
    }
    bool ok = SYM(g, Init, "cuInit") && SYM(g, DeviceGet, "cuDeviceGet") && SYM(g, DeviceGetCount, "cuDeviceGetCount") &&
              SYM(g, PrimaryCtxRetain, "cuDevicePrimaryCtxRetain") &&
              SYM(g, PrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2") && SYM(g, CtxSetCurrent, "cuCtxSetCurrent") &&
              SYM(g, CtxSynchronize, "cuCtxSynchronize") && SYM(g, MemAlloc, "cuMemAlloc_v2") &&
              SYM(g, MemFree, "cuMemFree_v2") && SYM(g, MemcpyHtoD, "cuMemcpyHtoD_v2") &&
              SYM(g, MemcpyDtoH, "cuMemcpyDtoH_v2") && SYM(g, MemsetD8, "cuMemsetD8_v2") &&
              SYM(g, ModuleLoadData, "cuModuleLoadData") && SYM(g, ModuleUnload, "cuModuleUnload") &&
              SYM(g, ModuleGetFunction, "cuModuleGetFunction") && SYM(g, LaunchKernel, "cuLaunchKernel") &&
              SYM(g, FuncGetAttribute, "cuFuncGetAttribute") && SYM(g, GetErrorString, "cuGetErrorString") &&
              SYM(g, StreamCreate, "cuStreamCreate") && SYM(g, StreamDestroy, "cuStreamDestroy_v2") &&
              SYM(g, StreamSynchronize, "cuStreamSynchronize") && SYM(g, MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2") &&
              SYM(g, MemsetD8Async, "cuMemsetD8Async") && SYM(g, MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    SYM(g, EmuLoadSource, "trlcEmuModuleLoadSource");
    // graphs (CUDA 12.0+ names; the v1 node-parameter and v2 capture-info entry points of older
    // drivers take the same arguments for what trlc passes)
    if (!SYM(g, SetKernelParams, "cuGraphExecKernelNodeSetParams_v2")) SYM(g, SetKernelParams, "cuGraphExecKernelNodeSetParams");
    if (!SYM(g, CaptureInfo3, "cuStreamGetCaptureInfo_v3")) SYM(g, CaptureInfo2, "cuStreamGetCaptureInfo_v2");
    g->graphs_ok = SYM(g, BeginCapture, "cuStreamBeginCapture_v2") && SYM(g, EndCapture, "cuStreamEndCapture") &&
                   SYM(g, Instantiate, "cuGraphInstantiateWithFlags") && SYM(g, GraphLaunch, "cuGraphLaunch") &&
                   SYM(g, GraphDestroy, "cuGraphDestroy") && SYM(g, ExecDestroy, "cuGraphExecDestroy") &&
                   g->SetKernelParams && (g->CaptureInfo3 || g->CaptureInfo2);
    int n = 0;
    if (!ok || g->Init(0) != 0 || g->DeviceGetCount(&n) != 0 || dev < 0 || dev >= n) {
        if (!quiet) diag_plain_error(d, "CUDA: no device %d (%d found)", dev, n);
        dlclose(g->lib);
        free(g);
        return NULL;
    }
    if (g->DeviceGet(&g->dev, dev) != 0 || g->PrimaryCtxRetain(&g->ctx, g->dev) != 0 || g->CtxSetCurrent(g->ctx) != 0) {
        diag_plain_error(d, "CUDA: cannot create a context on device %d", dev);
        dlclose(g->lib);
        free(g);
        return NULL;
    }
    return g;
}

void rt_cuda_close(RtCudaDevice *g) {
    if (!g) return;
    for (int i = 0; i < g->nmods; i++) g->ModuleUnload(g->mods[i]);
    free(g->mods);
    g->PrimaryCtxRelease(g->dev);
    dlclose(g->lib);
    free(g);
}

bool rt_cuda_mem_info(RtCudaDevice *g, size_t *free_bytes, size_t *total_bytes) {
    if (!g->MemGetInfo) SYM(g, MemGetInfo, "cuMemGetInfo_v2");
    return g->MemGetInfo && g->MemGetInfo(free_bytes, total_bytes) == 0;
}

int rt_cuda_alloc(RtCudaDevice *g, size_t bytes, RtCudaPtr *p) {
    CUdeviceptr x = 0;
    CU_CHECK(g, g->MemAlloc(&x, bytes ? bytes : 1));
    *p = x;
    return 0;
}

void rt_cuda_free(RtCudaDevice *g, RtCudaPtr p) {
    if (p) g->MemFree(p);
}

int rt_cuda_upload(RtCudaDevice *g, RtCudaPtr dst, const void *src, size_t bytes) {
    if (bytes) CU_CHECK(g, g->MemcpyHtoD(dst, src, bytes));
    return 0;
}

int rt_cuda_download(RtCudaDevice *g, void *dst, RtCudaPtr src, size_t bytes) {
    if (bytes) CU_CHECK(g, g->MemcpyDtoH(dst, src, bytes));
    return 0;
}

int rt_cuda_zero(RtCudaDevice *g, RtCudaPtr p, size_t bytes) {
    if (bytes) CU_CHECK(g, g->MemsetD8(p, 0, bytes));
    return 0;
}

bool rt_cuda_is_emulated(const RtCudaDevice *g) { return g && g->EmuLoadSource; }

int rt_cuda_load(RtCudaDevice *g, const void *cubin, const char *name, void **fn) {
    return rt_cuda_load_source(g, cubin, NULL, name, fn);
}

int rt_cuda_load_source(RtCudaDevice *g, const void *cubin, const char *source, const char *name, void **fn) {
    if (g->nmods == g->capmods) {
        int cap = g->capmods ? 2 * g->capmods : 64;
        CUmodule *nm = cap > g->capmods ? realloc(g->mods, (size_t)cap * sizeof *nm) : NULL;
        if (!nm) {
            diag_plain_error(g->d, "CUDA: out of memory for module %d", g->nmods);
            return -1;
        }
        g->mods = nm, g->capmods = cap;
    }
    CUmodule m = NULL;
    if (g->EmuLoadSource && source) {
        CUresult r = g->EmuLoadSource(&m, source);
        if (r != 0) {
            cu_fail(g, r, "trlcEmuModuleLoadSource", __FILE__, __LINE__);
            diag_hint(g->d, "the module holds kernel `%s`", name);
            return -1;
        }
    } else {
        if (!cubin) {
            diag_plain_error(g->d, "CUDA: no cubin for kernel `%s`", name);
            return -1;
        }
        CU_CHECK(g, g->ModuleLoadData(&m, cubin));
    }
    g->mods[g->nmods++] = m;
    CUfunction f = NULL;
    CUresult r = g->ModuleGetFunction(&f, m, name);
    if (r != 0) {
        cu_fail(g, r, "cuModuleGetFunction", __FILE__, __LINE__);
        diag_hint(g->d, "the kernel is `%s`", name);
        return -1;
    }
    *fn = f;
    return 0;
}

int rt_cuda_launch(RtCudaDevice *g, void *fn, const unsigned grid[3], const unsigned block[3], unsigned shared_bytes,
                   void **args, const char *what) {
    return rt_cuda_launch_on(g, NULL, fn, grid, block, shared_bytes, args, what);
}

int rt_cuda_launch_on(RtCudaDevice *g, RtCudaStream s, void *fn, const unsigned grid[3], const unsigned block[3],
                      unsigned shared_bytes, void **args, const char *what) {
    CUresult r = g->LaunchKernel(fn, grid[0], grid[1], grid[2], block[0], block[1], block[2], shared_bytes, s, args, NULL);
    if (r != 0) {
        cu_fail(g, r, "cuLaunchKernel", __FILE__, __LINE__);
        diag_hint(g->d, "launching %s (grid %u,%u,%u, block %u,%u,%u)", what, grid[0], grid[1], grid[2], block[0],
                  block[1], block[2]);
        return -1;
    }
    return 0;
}

int rt_cuda_sync(RtCudaDevice *g, const char *what) {
    CUresult r = g->CtxSynchronize();
    if (r != 0) {
        cu_fail(g, r, "cuCtxSynchronize", __FILE__, __LINE__);
        diag_hint(g->d, "after %s", what);
        return -1;
    }
    return 0;
}

int rt_cuda_func_resources(RtCudaDevice *g, void *fn, int *regs, int *shared_bytes) {
    CU_CHECK(g, g->FuncGetAttribute(regs, 4 /* CU_FUNC_ATTRIBUTE_NUM_REGS */, fn));
    CU_CHECK(g, g->FuncGetAttribute(shared_bytes, 1 /* CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES */, fn));
    return 0;
}

// ---- streams

int rt_cuda_stream_new(RtCudaDevice *g, RtCudaStream *s) {
    CUstream x = NULL;
    CU_CHECK(g, g->StreamCreate(&x, 0 /* CU_STREAM_DEFAULT: blocks with the legacy stream */));
    *s = x;
    return 0;
}

void rt_cuda_stream_free(RtCudaDevice *g, RtCudaStream s) {
    if (s) g->StreamDestroy(s);
}

int rt_cuda_stream_sync(RtCudaDevice *g, RtCudaStream s, const char *what) {
    CUresult r = g->StreamSynchronize(s);
    if (r != 0) {
        cu_fail(g, r, "cuStreamSynchronize", __FILE__, __LINE__);
        diag_hint(g->d, "after %s", what);
        return -1;
    }
    return 0;
}

int rt_cuda_upload_async(RtCudaDevice *g, RtCudaStream s, RtCudaPtr dst, const void *src, size_t bytes) {
    if (bytes) CU_CHECK(g, g->MemcpyHtoDAsync(dst, src, bytes, s));
    return 0;
}

int rt_cuda_copy_async(RtCudaDevice *g, RtCudaStream s, RtCudaPtr dst, RtCudaPtr src, size_t bytes) {
    if (bytes) CU_CHECK(g, g->MemcpyDtoDAsync(dst, src, bytes, s));
    return 0;
}

int rt_cuda_zero_async(RtCudaDevice *g, RtCudaStream s, RtCudaPtr p, size_t bytes) {
    if (bytes) CU_CHECK(g, g->MemsetD8Async(p, 0, bytes, s));
    return 0;
}

// ---- graphs

bool rt_cuda_graphs_supported(const RtCudaDevice *g) { return g && g->graphs_ok; }

Diag *rt_cuda_device_diag(const RtCudaDevice *g) { return g->d; }

int rt_cuda_capture_begin(RtCudaDevice *g, RtCudaStream s) {
    if (!g->graphs_ok) {
        diag_plain_error(g->d, "CUDA: the driver has no stream capture (CUDA graphs)");
        return -1;
    }
    CU_CHECK(g, g->BeginCapture(s, 0 /* CU_STREAM_CAPTURE_MODE_GLOBAL */));
    return 0;
}

int rt_cuda_capture_last_node(RtCudaDevice *g, RtCudaStream s, void **node) {
    int status = 0;
    const CUgraphNode *deps = NULL;
    size_t n = 0;
    if (g->CaptureInfo3) CU_CHECK(g, g->CaptureInfo3(s, &status, NULL, NULL, &deps, NULL, &n));
    else CU_CHECK(g, g->CaptureInfo2(s, &status, NULL, NULL, &deps, &n));
    if (status != 1 /* CU_STREAM_CAPTURE_STATUS_ACTIVE */ || n != 1 || !deps) {
        diag_plain_error(g->d, "CUDA: cuStreamGetCaptureInfo: capture status %d with %zu dependencies where one "
                         "captured node was expected", status, n);
        return -1;
    }
    *node = deps[0];
    return 0;
}

int rt_cuda_capture_end(RtCudaDevice *g, RtCudaStream s, bool abandon, RtCudaGraph **out) {
    *out = NULL;
    CUgraph graph = NULL;
    CUresult r = g->EndCapture(s, &graph);
    if (abandon || r != 0) {
        if (graph) g->GraphDestroy(graph);
        return abandon ? 0 : cu_fail(g, r, "cuStreamEndCapture", __FILE__, __LINE__);
    }
    RtCudaGraph *gr = calloc(1, sizeof *gr);
    if (!gr) {
        g->GraphDestroy(graph);
        diag_plain_error(g->d, "CUDA: out of memory for a graph");
        return -1;
    }
    gr->graph = graph;
    r = g->Instantiate(&gr->exec, graph, 0);
    if (r != 0) {
        g->GraphDestroy(graph);
        free(gr);
        return cu_fail(g, r, "cuGraphInstantiateWithFlags", __FILE__, __LINE__);
    }
    *out = gr;
    return 0;
}

int rt_cuda_graph_launch(RtCudaDevice *g, RtCudaGraph *gr, RtCudaStream s, const char *what) {
    CUresult r = g->GraphLaunch(gr->exec, s);
    if (r != 0) {
        cu_fail(g, r, "cuGraphLaunch", __FILE__, __LINE__);
        diag_hint(g->d, "launching the graph of %s", what);
        return -1;
    }
    return 0;
}

int rt_cuda_graph_set_kernel(RtCudaDevice *g, RtCudaGraph *gr, void *node, void *fn, const unsigned grid[3],
                             const unsigned block[3], unsigned shared_bytes, void **args, const char *what) {
    KernelNodeParams kp;
    memset(&kp, 0, sizeof kp);
    kp.func = fn, kp.grid_x = grid[0], kp.grid_y = grid[1], kp.grid_z = grid[2];
    kp.block_x = block[0], kp.block_y = block[1], kp.block_z = block[2], kp.shared_bytes = shared_bytes;
    kp.params = args;
    CUresult r = g->SetKernelParams(gr->exec, node, &kp);
    if (r != 0) {
        cu_fail(g, r, "cuGraphExecKernelNodeSetParams", __FILE__, __LINE__);
        diag_hint(g->d, "updating the graph node of %s", what);
        return -1;
    }
    return 0;
}

void rt_cuda_graph_free(RtCudaDevice *g, RtCudaGraph *gr) {
    if (!gr) return;
    if (gr->exec) g->ExecDestroy(gr->exec);
    if (gr->graph) g->GraphDestroy(gr->graph);
    free(gr);
}
