// cuemu.c — a fake CUDA driver for the tests: runs the kernels' CUDA C source on the CPU so that
// gpu.exec and the GPU executor run where there is no GPU (selected with $TRLC_CUDA_DRIVER, see
// rt_cuda.h). Device memory is host memory (a CUdeviceptr is the host address); allocations are
// tracked and every copy, set and free is checked against them (CUDA_ERROR_INVALID_VALUE), so an
// executor's wrong size or stale pointer fails like a real bug. Fresh allocations hold 0xff bytes
// (NaN as floats) so that reading memory nobody wrote shows. Modules come from CUDA C source
// (trlcEmuModuleLoadSource): the source plus a launcher per __global__ function is compiled with
// the host C++ compiler into a shared object (cached by a hash of what was compiled) and dlopen'd.
// Launches run synchronously: blocks one after another (backwards in every other launch of a
// kernel), the threads of a block as coroutines (started with makecontext, switched with __builtin_setjmp /
// longjmp: no system call) that run in thread order (reversed in odd blocks) until they finish or
// wait at a barrier; __syncthreads waits for every live thread of the block, a warp shuffle for
// every live lane of the warp. A barrier nobody can complete (deadlock), waiters at different
// __syncthreads / shuffle lines, or a shuffle reading a lane that has exited fails the launch with
// a message naming the kernel, the block and the threads. __shared__ memory holds 0xff bytes when
// a block starts; dynamic shared memory (`extern __shared__ T a[];`, at most 48 KiB: no opt-in
// attribute here) is a static array of its own per declaration. Pointer arguments must be NULL or
// device memory.
// Streams: work runs synchronously whatever the stream; streams, capture into graphs and graph
// launches are cuemu_graph.c's (a launch on a capturing stream is recorded there).
// Not here: timing, concurrency (one block at a time: races only show as order effects, or in the
// race check, $TRLC_CUEMU_RACECHECK=1: bytes two blocks write, not both atomically), cubins
// (cuModuleLoadData fails), events, child graphs, memory checks inside kernels (the
// sanitizer build compiles modules with -fsanitize=address,undefined), cuBLASLt (cuemu_blas.c).
#define _GNU_SOURCE
#include <cuda.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>
#define CUEMU_ABI_ONLY
#include "cuemu_shim.h"
#include "cuemu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUEMU_ASAN 1
#else
#define CUEMU_ASAN 0
#endif

#ifndef CUEMU_SRC_DIR
#define CUEMU_SRC_DIR "."
#endif

#define EXPORT __attribute__((visibility("default")))
#define STACK_BYTES (64 * 1024)
#define MAX_THREADS 1024

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;   // allocations, modules, launches
static int inited;

// ---------------------------------------------------------------------------------------------
// device memory: host memory, every allocation tracked

typedef struct Alloc {
    uintptr_t p;
    size_t n;
} Alloc;

static Alloc *allocs;
static size_t nallocs, capallocs, bytes_in_use;

// the allocation holding [p, p + n), or -1
static long find_alloc(uintptr_t p, size_t n) {
    for (size_t i = 0; i < nallocs; i++)
        if (p >= allocs[i].p && p - allocs[i].p <= allocs[i].n && n <= allocs[i].n - (p - allocs[i].p)) return (long)i;
    return -1;
}

static bool in_alloc(uintptr_t p, size_t n, const char *call) {
    pthread_mutex_lock(&mu);
    bool ok = find_alloc(p, n) >= 0;
    pthread_mutex_unlock(&mu);
    if (!ok) fprintf(stderr, "cuemu: %s: [0x%" PRIxPTR ", +%zu) is not inside one allocation\n", call, p, n);
    return ok;
}

// ---------------------------------------------------------------------------------------------
// errors

static const char *err_name(CUresult r) {
    switch (r) {
    case CUDA_SUCCESS: return "CUDA_SUCCESS";
    case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case CUDA_ERROR_INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
    case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case CUDA_ERROR_INVALID_SOURCE: return "CUDA_ERROR_INVALID_SOURCE";
    case CUDA_ERROR_INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
    case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    case CUDA_ERROR_LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case CUDA_ERROR_NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
    case CUDA_ERROR_ILLEGAL_STATE: return "CUDA_ERROR_ILLEGAL_STATE";
    case CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED: return "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED";
    case CUDA_ERROR_STREAM_CAPTURE_INVALIDATED: return "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED";
    case CUDA_ERROR_STREAM_CAPTURE_IMPLICIT: return "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT";
    case CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD: return "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD";
    default: return NULL;
    }
}

EXPORT CUresult cuGetErrorName(CUresult r, const char **s) {
    *s = err_name(r);
    return *s ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuGetErrorString(CUresult r, const char **s) {
    switch (r) {
    case CUDA_SUCCESS: *s = "no error"; break;
    case CUDA_ERROR_INVALID_VALUE: *s = "invalid argument"; break;
    case CUDA_ERROR_OUT_OF_MEMORY: *s = "out of memory"; break;
    case CUDA_ERROR_NOT_INITIALIZED: *s = "initialization error"; break;
    case CUDA_ERROR_INVALID_DEVICE: *s = "invalid device ordinal"; break;
    case CUDA_ERROR_INVALID_IMAGE: *s = "device kernel image is invalid (the emulator runs CUDA C source, not cubins)"; break;
    case CUDA_ERROR_INVALID_CONTEXT: *s = "invalid device context"; break;
    case CUDA_ERROR_INVALID_SOURCE: *s = "device kernel source is invalid (the host compiler failed: see its output)"; break;
    case CUDA_ERROR_INVALID_HANDLE: *s = "invalid resource handle"; break;
    case CUDA_ERROR_NOT_FOUND: *s = "named symbol not found"; break;
    case CUDA_ERROR_LAUNCH_FAILED: *s = "unspecified launch failure (emulator: see the message above)"; break;
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: *s = "too many resources requested for launch"; break;
    case CUDA_ERROR_NOT_SUPPORTED: *s = "operation not supported (by the emulator)"; break;
    case CUDA_ERROR_ILLEGAL_STATE: *s = "the operation is not permitted in the current state (e.g. no capture to end)"; break;
    case CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED: *s = "operation not permitted when stream is capturing"; break;
    case CUDA_ERROR_STREAM_CAPTURE_INVALIDATED: *s = "operation failed due to a previous error during capture"; break;
    case CUDA_ERROR_STREAM_CAPTURE_IMPLICIT:
        *s = "operation would make the legacy stream depend on a capturing blocking stream";
        break;
    case CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD: *s = "attempt to terminate a thread-local capture sequence from another thread"; break;
    default: *s = NULL; return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// device, context, memory

#define EMU_TOTAL_MEM ((size_t)16 << 30)

EXPORT CUresult cuInit(unsigned flags) {
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    inited = 1;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDriverGetVersion(int *v) {
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    *v = CUDA_VERSION;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetCount(int *n) {
    if (!inited) return CUDA_ERROR_NOT_INITIALIZED;
    if (!n) return CUDA_ERROR_INVALID_VALUE;
    *n = 1;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice *d, int ordinal) {
    if (!inited) return CUDA_ERROR_NOT_INITIALIZED;
    if (!d) return CUDA_ERROR_INVALID_VALUE;
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *d = 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
    if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    snprintf(name, (size_t)len, "trlc CUDA emulator (CPU)");
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceTotalMem(size_t *bytes, CUdevice d) {
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = EMU_TOTAL_MEM;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice d) {
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    switch (a) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = MAX_THREADS; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *v = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *v = 2147483647; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *v = 65535; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *v = 32; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *v = 48 * 1024; break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

static int the_context;   // the primary context: any non-NULL address

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) {
    if (!inited) return CUDA_ERROR_NOT_INITIALIZED;
    if (!c) return CUDA_ERROR_INVALID_VALUE;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *c = (CUcontext)(void *)&the_context;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice d) { return d == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE; }

EXPORT CUresult cuCtxSetCurrent(CUcontext c) {
    return !c || c == (CUcontext)(void *)&the_context ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

EXPORT CUresult cuMemGetInfo(size_t *free_bytes, size_t *total) {
    if (!free_bytes || !total) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mu);
    *total = EMU_TOTAL_MEM;
    *free_bytes = bytes_in_use < EMU_TOTAL_MEM ? EMU_TOTAL_MEM - bytes_in_use : 0;
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAlloc(CUdeviceptr *p, size_t n) {
    if (!p || n == 0) return CUDA_ERROR_INVALID_VALUE;   // as the real driver: no empty allocations
    CUresult r = cuemu_unsafe_call("cuMemAlloc");
    if (r != CUDA_SUCCESS) return r;
    if (n > EMU_TOTAL_MEM) return CUDA_ERROR_OUT_OF_MEMORY;
    void *m = NULL;   // exactly n bytes: the sanitizer build sees a kernel reading past the end
    if (posix_memalign(&m, 256, n) != 0 || !m) return CUDA_ERROR_OUT_OF_MEMORY;
    memset(m, 0xff, n);   // NaN as floats, -1 as ints: never-written memory shows
    pthread_mutex_lock(&mu);
    if (nallocs == capallocs) {
        size_t cap = capallocs ? 2 * capallocs : 256;
        Alloc *na = realloc(allocs, cap * sizeof *na);
        if (!na) {
            pthread_mutex_unlock(&mu);
            free(m);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        allocs = na, capallocs = cap;
    }
    allocs[nallocs++] = (Alloc){(uintptr_t)m, n};
    bytes_in_use += n;
    pthread_mutex_unlock(&mu);
    *p = (CUdeviceptr)(uintptr_t)m;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemFree(CUdeviceptr p) {
    CUresult r = cuemu_unsafe_call("cuMemFree");
    if (r != CUDA_SUCCESS) return r;
    pthread_mutex_lock(&mu);
    long i = -1;
    for (size_t k = 0; k < nallocs; k++)
        if (allocs[k].p == (uintptr_t)p) i = (long)k;
    if (i < 0) {
        pthread_mutex_unlock(&mu);
        fprintf(stderr, "cuemu: cuMemFree: 0x%" PRIx64 " is not an allocation's start (double free?)\n", (uint64_t)p);
        return CUDA_ERROR_INVALID_VALUE;
    }
    bytes_in_use -= allocs[i].n;
    allocs[i] = allocs[--nallocs];
    pthread_mutex_unlock(&mu);
    free((void *)(uintptr_t)p);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyHtoD(CUdeviceptr dst, const void *src, size_t n) {
    CUresult r = cuemu_legacy_sync("cuMemcpyHtoD");
    if (r != CUDA_SUCCESS) return r;
    if (!src || !in_alloc((uintptr_t)dst, n, "cuMemcpyHtoD")) return CUDA_ERROR_INVALID_VALUE;
    if (n) memcpy((void *)(uintptr_t)dst, src, n);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyDtoH(void *dst, CUdeviceptr src, size_t n) {
    CUresult r = cuemu_legacy_sync("cuMemcpyDtoH");
    if (r != CUDA_SUCCESS) return r;
    if (!dst || !in_alloc((uintptr_t)src, n, "cuMemcpyDtoH")) return CUDA_ERROR_INVALID_VALUE;
    if (n) memcpy(dst, (const void *)(uintptr_t)src, n);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyDtoD(CUdeviceptr dst, CUdeviceptr src, size_t n) {
    CUresult r = cuemu_legacy_sync("cuMemcpyDtoD");
    if (r != CUDA_SUCCESS) return r;
    if (!in_alloc((uintptr_t)dst, n, "cuMemcpyDtoD (destination)") || !in_alloc((uintptr_t)src, n, "cuMemcpyDtoD (source)"))
        return CUDA_ERROR_INVALID_VALUE;
    if (n) memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemsetD8(CUdeviceptr p, unsigned char v, size_t n) {
    CUresult r = cuemu_legacy_sync("cuMemsetD8");
    if (r != CUDA_SUCCESS) return r;
    if (!in_alloc((uintptr_t)p, n, "cuMemsetD8")) return CUDA_ERROR_INVALID_VALUE;
    if (n) memset((void *)(uintptr_t)p, v, n);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemsetD32(CUdeviceptr p, unsigned v, size_t n) {
    CUresult r = cuemu_legacy_sync("cuMemsetD32");
    if (r != CUDA_SUCCESS) return r;
    if (p % 4 || n > SIZE_MAX / 4 || !in_alloc((uintptr_t)p, n * 4, "cuMemsetD32")) return CUDA_ERROR_INVALID_VALUE;
    unsigned *q = (unsigned *)(uintptr_t)p;
    for (size_t i = 0; i < n; i++) q[i] = v;
    return CUDA_SUCCESS;
}

// for cuemu_blas.c and cuemu_graph.c: is [p, p + n) device memory?
bool cuemu_check_range(const void *p, size_t n, const char *what) { return in_alloc((uintptr_t)p, n, what); }

// ---------------------------------------------------------------------------------------------
// modules: CUDA C compiled by the host C++ compiler

typedef struct Module Module;
typedef struct Kernel {
    char name[128];
    void (*launch)(void **args);
    int (*check)(void **args);   // the arguments before a launch: the number of bad ones
    int (*sizes)(unsigned long *out, int max);   // the parameters' sizes (to copy them into a graph)
    int max_threads;          // __launch_bounds__'s first argument, else 1024
    unsigned long launches;   // its launches so far (odd ones walk the blocks backwards)
    Module *mod;
} Kernel;

struct Module {
    void *dl;
    char *shared, *shared_end;   // the module's __shared__ variables (section cuemu_shared)
    int nk;
    Kernel *k;
    Module *next;
};

static Module *modules;
static CuemuState state;

static void emu_syncthreads(int line);
static void emu_syncwarp(int line);
static unsigned long long emu_shfl(int line, int mode, unsigned long long v, int arg, int width);
static void emu_trap(int line, const char *what);

static uint64_t fnv(const void *data, size_t n, uint64_t h) {
    const unsigned char *s = data;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

// a whole file into a malloc'd string (NULL when unreadable)
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    while (s) {
        if (n + 1024 > cap) {
            char *t = realloc(s, cap * 2);
            if (!t) { free(s); s = NULL; break; }
            s = t, cap *= 2;
        }
        size_t k = fread(s + n, 1, cap - n - 1, f);
        if (!k) break;
        n += k;
    }
    fclose(f);
    if (s) s[n] = 0;
    return s;
}

// growable text
typedef struct Buf {
    char *s;
    size_t n, cap;
    bool oom;
} Buf;

static void put(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        if (b->oom) return;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = true; return; }
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->n + (size_t)k) cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) { b->oom = true; return; }
        b->s = t, b->cap = cap;
    }
}

// the source with comments, string and character literals blanked (same length), for scanning
static char *blank_comments(const char *src) {
    size_t n = strlen(src);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, src, n + 1);
    for (size_t i = 0; i < n;) {
        if (s[i] == '/' && s[i + 1] == '/') {
            while (i < n && s[i] != '\n') s[i++] = ' ';
        } else if (s[i] == '/' && s[i + 1] == '*') {
            s[i] = s[i + 1] = ' ', i += 2;
            while (i < n && !(s[i] == '*' && s[i + 1] == '/')) { if (s[i] != '\n') s[i] = ' '; i++; }
            if (i < n) s[i] = s[i + 1] = ' ', i += 2;
        } else if (s[i] == '"' || s[i] == '\'') {
            char q = s[i++];
            while (i < n && s[i] != q && s[i] != '\n') {
                if (s[i] == '\\' && i + 1 < n) s[i++] = ' ';
                s[i++] = ' ';
            }
            i++;
        } else i++;
    }
    return s;
}

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static bool is_ident(char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// scans `__global__ void [__launch_bounds__(...)] NAME(` and writes one launcher per kernel;
// returns the number of kernels, -1 on a malformed kernel head
static int write_launchers(const char *src, Buf *out, Buf *names) {
    char *s = blank_comments(src);
    if (!s) return -1;
    int nk = 0;
    char seen[64][128];
    for (const char *p = strstr(s, "__global__"); p; p = strstr(p + 1, "__global__")) {
        if ((p > s && is_ident(p[-1])) || is_ident(p[10])) continue;
        const char *q = skip_ws(p + 10);
        if (strncmp(q, "void", 4) || is_ident(q[4])) continue;
        q = skip_ws(q + 4);
        const char *lb = NULL;
        size_t lblen = 0;
        if (!strncmp(q, "__launch_bounds__", 17)) {
            q = skip_ws(q + 17);
            if (*q != '(') break;
            int depth = 0;
            const char *a = q + 1;
            for (; *q; q++) {
                if (*q == '(') depth++;
                else if (*q == ')' && --depth == 0) break;
                else if (*q == ',' && depth == 1 && !lb) lb = a, lblen = (size_t)(q - a);
            }
            if (!*q) break;
            if (!lb) lb = a, lblen = (size_t)(q - a);
            q = skip_ws(q + 1);
        }
        const char *name = q;
        while (is_ident(*q)) q++;
        size_t nlen = (size_t)(q - name);
        if (!nlen || nlen >= 128 || *skip_ws(q) != '(') continue;
        bool dup = false;
        for (int i = 0; i < nk; i++) dup |= strlen(seen[i]) == nlen && !strncmp(seen[i], name, nlen);
        if (dup) continue;
        if (nk == 64) { free(s); return -1; }
        memcpy(seen[nk], name, nlen);
        seen[nk][nlen] = 0;
        put(out, "extern \"C\" void cuemu_launch_%s(void **a) { cuemu_call(%s, a); }\n", seen[nk], seen[nk]);
        put(out, "extern \"C\" int cuemu_check_%s(void **a) { return cuemu_check(%s, a); }\n", seen[nk], seen[nk]);
        put(out, "extern \"C\" int cuemu_sizes_%s(unsigned long *o, int m) { return cuemu_arg_sizes(%s, o, m); }\n",
            seen[nk], seen[nk]);
        put(out, "extern \"C\" const int cuemu_bounds_%s = (int)(%.*s);\n", seen[nk], lb ? (int)lblen : 4,
            lb ? lb : "1024");
        put(names, "\"%s\", ", seen[nk]);
        nk++;
    }
    free(s);
    return nk;
}

// `extern __shared__ T name[];` (dynamic shared memory) becomes a static array of
// CUEMU_DYNAMIC_SHARED_MAX elements in the shared section (see cuemu_shim.h); a malloc'd copy of
// src, NULL when out of memory
static char *rewrite_extern_shared(const char *src) {
    char *blank = blank_comments(src);
    Buf out = {0};
    if (!blank) return NULL;
    size_t done = 0;
    for (const char *p = strstr(blank, "extern"); p; p = strstr(p + 1, "extern")) {
        size_t at = (size_t)(p - blank);
        if ((at > 0 && is_ident(p[-1])) || is_ident(p[6])) continue;
        const char *q = skip_ws(p + 6);
        if (strncmp(q, "__shared__", 10) || is_ident(q[10])) continue;
        const char *semi = strchr(q, ';'), *open = strchr(q, '[');
        if (!semi || !open || open > semi) continue;
        const char *close = skip_ws(open + 1);
        if (*close != ']') continue;
        // text before, the macro for `extern __shared__`, the declaration up to `[`, the size
        put(&out, "%.*sCUEMU_DYNAMIC_SHARED%.*s[CUEMU_DYNAMIC_SHARED_MAX]", (int)(at - done), src + done,
            (int)(open - (q + 10)), src + (q + 10 - blank));
        done = (size_t)(close + 1 - blank);
        p = close;
    }
    put(&out, "%s", src + done);
    free(blank);
    if (out.oom) {
        free(out.s);
        return NULL;
    }
    return out.s;
}

static const char *cache_dir(char *buf, size_t n) {
    const char *env = getenv("TRLC_CACHE_DIR"), *tmp = getenv("TMPDIR");
    if (env && *env) snprintf(buf, n, "%s/cuemu", env);
    else snprintf(buf, n, "%s/trlc-cuemu-%ld", tmp && *tmp ? tmp : "/tmp", (long)getuid());
    // mkdir -p of the last two levels is enough for these paths
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", buf);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) { *slash = 0; mkdir(parent, 0755); }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return NULL;
    return buf;
}

static const char *cxx_flags(void) {
#if CUEMU_ASAN
    // the sanitizer build checks the kernels' own memory accesses and undefined behaviour too
    return "-std=c++17 -O1 -g -fPIC -shared -fsanitize=address,undefined -fno-sanitize-recover=undefined "
           "-fno-omit-frame-pointer";
#else
    return "-std=c++17 -O1 -g -fPIC -shared";
#endif
}

// compiles text into so_path (through a temporary file renamed into place); 0 on success
static int compile_module(const char *dir, const char *cpp_path, const char *so_path, const char *text) {
    FILE *f = fopen(cpp_path, "wb");
    if (!f) return -1;
    bool ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok) return -1;
    const char *cxx = getenv("TRLC_CUEMU_CXX");
    if (!cxx || !*cxx) cxx = "c++";
    char tmp[4500], cmd[14000];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", so_path, (long)getpid());
    snprintf(cmd, sizeof cmd, "%s %s -I'%s' -o '%s' '%s' 2>&1", cxx, cxx_flags(), dir, tmp, cpp_path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[1024];
    Buf log = {0};
    while (fgets(line, sizeof line, p)) put(&log, "%s", line);
    int rc = pclose(p);
    if (rc != 0) {
        fprintf(stderr, "cuemu: compiling a module failed: %s\n%s", cmd, log.s ? log.s : "");
        free(log.s);
        remove(tmp);
        return -1;
    }
    free(log.s);
    if (rename(tmp, so_path) != 0) { remove(tmp); return -1; }
    return 0;
}

EXPORT CUresult trlcEmuModuleLoadSource(CUmodule *mod, const char *source) {
    if (!mod || !source) return CUDA_ERROR_INVALID_VALUE;
    Buf text = {0}, launchers = {0}, names = {0};
    char *rewritten = rewrite_extern_shared(source);
    if (!rewritten) return CUDA_ERROR_OUT_OF_MEMORY;
    put(&text, "#include \"cuemu_shim.h\"\n#line 1 \"kernel.cu\"\n%s\n", rewritten);
    free(rewritten);
    put(&launchers, "// ---- cuemu launchers ----\n"
                    "template <class... A> static inline int cuemu_arg_sizes(void (*)(A...), unsigned long *o, int m) {\n"
                    "    const unsigned long s[] = {sizeof(typename std::remove_cv<A>::type)..., 0ul};\n"
                    "    for (int i = 0; i < (int)sizeof...(A) && i < m; i++) o[i] = s[i];\n"
                    "    return (int)sizeof...(A);\n"
                    "}\n");
    int nk = write_launchers(source, &launchers, &names);
    if (nk <= 0) {
        fprintf(stderr, "cuemu: no __global__ kernel found in the module source (or more than 64)\n");
        free(text.s), free(launchers.s), free(names.s);
        return CUDA_ERROR_INVALID_SOURCE;
    }
    put(&text, "%s", launchers.s);
    put(&text, "extern \"C\" const char *const cuemu_kernels[] = {%s0};\n", names.s);
    put(&text, "extern \"C\" int cuemu_module_init(CuemuState *s) { cuemu_state = s; return CUEMU_ABI_VERSION; }\n");
    put(&text, "extern \"C\" char __start_cuemu_shared[] __attribute__((weak)), __stop_cuemu_shared[] __attribute__((weak));\n"
               "extern \"C\" void cuemu_shared_range(char **b, char **e) { *b = __start_cuemu_shared; *e = __stop_cuemu_shared; }\n");
    free(launchers.s), free(names.s);
    if (text.oom) { free(text.s); return CUDA_ERROR_OUT_OF_MEMORY; }
    // the cache key: the module text, the shim, the compiler and its flags
    char *shim = slurp(CUEMU_SRC_DIR "/cuemu_shim.h");
    const char *cxx = getenv("TRLC_CUEMU_CXX");
    uint64_t h = fnv(text.s, text.n, 0xcbf29ce484222325ull);
    h = fnv(shim ? shim : "", shim ? strlen(shim) : 0, h);
    h = fnv(cxx ? cxx : "c++", strlen(cxx ? cxx : "c++"), h);
    h = fnv(cxx_flags(), strlen(cxx_flags()), h);
    free(shim);
    char dir[4096], cpp[4400], so[4400];
    if (!cache_dir(dir, sizeof dir)) { free(text.s); return CUDA_ERROR_INVALID_VALUE; }
    snprintf(cpp, sizeof cpp, "%s/m%016" PRIx64 ".%ld.cpp", dir, h, (long)getpid());
    snprintf(so, sizeof so, "%s/m%016" PRIx64 ".so", dir, h);
    void *dl = NULL;
    struct stat st;
    if (stat(so, &st) == 0) dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);   // a corrupt entry: rebuilt
    if (!dl) {
        // the shim is included from the source directory
        if (compile_module(CUEMU_SRC_DIR, cpp, so, text.s) != 0) {
            remove(cpp);
            free(text.s);
            return CUDA_ERROR_INVALID_SOURCE;
        }
        remove(cpp);
        dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    }
    free(text.s);
    if (!dl) {
        fprintf(stderr, "cuemu: cannot load the compiled module %s: %s\n", so, dlerror());
        return CUDA_ERROR_INVALID_IMAGE;
    }
    int (*init)(CuemuState *) = (int (*)(CuemuState *))(uintptr_t)dlsym(dl, "cuemu_module_init");
    void (*shared_range)(char **, char **) = (void (*)(char **, char **))(uintptr_t)dlsym(dl, "cuemu_shared_range");
    const char *const *kn = (const char *const *)dlsym(dl, "cuemu_kernels");
    Module *m = calloc(1, sizeof *m);
    if (m) m->k = calloc((size_t)nk, sizeof *m->k);
    if (!init || !kn || !shared_range || !m || !m->k || init(&state) != CUEMU_ABI_VERSION) {
        if (m) free(m->k);
        free(m);
        dlclose(dl);
        return CUDA_ERROR_INVALID_IMAGE;
    }
    m->dl = dl;
    shared_range(&m->shared, &m->shared_end);
    if (!m->shared || m->shared_end < m->shared) m->shared = m->shared_end = NULL;
    for (int i = 0; i < nk && kn[i]; i++) {
        char sym[200];
        Kernel *k = &m->k[m->nk];
        snprintf(k->name, sizeof k->name, "%s", kn[i]);
        snprintf(sym, sizeof sym, "cuemu_launch_%s", kn[i]);
        k->launch = (void (*)(void **))(uintptr_t)dlsym(dl, sym);
        snprintf(sym, sizeof sym, "cuemu_check_%s", kn[i]);
        k->check = (int (*)(void **))(uintptr_t)dlsym(dl, sym);
        snprintf(sym, sizeof sym, "cuemu_sizes_%s", kn[i]);
        k->sizes = (int (*)(unsigned long *, int))(uintptr_t)dlsym(dl, sym);
        snprintf(sym, sizeof sym, "cuemu_bounds_%s", kn[i]);
        const int *b = dlsym(dl, sym);
        k->max_threads = b && *b > 0 && *b < MAX_THREADS ? *b : MAX_THREADS;
        k->mod = m;
        if (k->launch && k->check) m->nk++;
    }
    pthread_mutex_lock(&mu);
    m->next = modules;
    modules = m;
    pthread_mutex_unlock(&mu);
    *mod = (CUmodule)(void *)m;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleLoadData(CUmodule *mod, const void *image) {
    (void)mod, (void)image;
    fprintf(stderr, "cuemu: cuModuleLoadData: the emulator cannot run cubins (load the source: rt_cuda_load_source)\n");
    return CUDA_ERROR_INVALID_IMAGE;
}

static bool known_module(Module *m) {
    for (Module *p = modules; p; p = p->next)
        if (p == m) return true;
    return false;
}

static bool known_kernel(Kernel *k) {
    for (Module *p = modules; p; p = p->next)
        if (k >= p->k && k < p->k + p->nk) return true;
    return false;
}

EXPORT CUresult cuModuleUnload(CUmodule mod) {
    Module *m = (Module *)(void *)mod;
    pthread_mutex_lock(&mu);
    if (!known_module(m)) {
        pthread_mutex_unlock(&mu);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    for (Module **p = &modules; *p; p = &(*p)->next)
        if (*p == m) { *p = m->next; break; }
    pthread_mutex_unlock(&mu);
    dlclose(m->dl);
    free(m->k);
    free(m);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleGetFunction(CUfunction *f, CUmodule mod, const char *name) {
    Module *m = (Module *)(void *)mod;
    if (!f || !name) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mu);
    bool ok = known_module(m);
    pthread_mutex_unlock(&mu);
    if (!ok) return CUDA_ERROR_INVALID_HANDLE;
    for (int i = 0; i < m->nk; i++)
        if (!strcmp(m->k[i].name, name)) {
            *f = (CUfunction)(void *)&m->k[i];
            return CUDA_SUCCESS;
        }
    return CUDA_ERROR_NOT_FOUND;
}

EXPORT CUresult cuFuncGetAttribute(int *v, CUfunction_attribute a, CUfunction f) {
    Kernel *k = (Kernel *)(void *)f;
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mu);
    bool ok = known_kernel(k);
    pthread_mutex_unlock(&mu);
    if (!ok) return CUDA_ERROR_INVALID_HANDLE;
    switch (a) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = k->max_threads; break;
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *v = 32; break;   // no registers here: a plausible number
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *v = 0; break;   // unknown (statics of the module)
    case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: *v = 0; break;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION: case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *v = 90; break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// the block scheduler: the threads of a block are coroutines

enum { T_NEW, T_RUN, T_WAIT_BLOCK, T_WAIT_WARP, T_DONE };

typedef struct EmuThread {
    CuemuDim tid;
    int state;
    int line;                    // where it waits
    unsigned long long slot;     // its value in a shuffle
    void *jb[5];                 // __builtin_setjmp's buffer
    ucontext_t uc;
    char *stack;                 // STACK_BYTES
    void *fake;                  // ASan's fake stack while switched away
} EmuThread;

static struct {
    EmuThread *th;
    int cap;                       // threads with stacks
    int n, live, block_waiting;
    int warp_live[MAX_THREADS / 32], warp_waiting[MAX_THREADS / 32];
    int cur;
    void *sched[5];                // the scheduler's __builtin_setjmp buffer
    Kernel *k;
    void **args;
    bool failed;
    char err[2048];
    const void *main_bottom;       // ASan: the scheduler's stack
    size_t main_size;
    void *main_fake;
} E;

static void asan_start(void **fake, const void *bottom, size_t size) {
#if CUEMU_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

static void asan_finish(void *fake, const void **bottom, size_t *size) {
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

// the GCC builtins, not _setjmp / _longjmp: they save only what the switch needs and are not
// intercepted by the sanitizers (whose longjmp hook costs a system call per switch); a function
// may not both __builtin_setjmp and __builtin_longjmp, hence jump(). The switching functions are
// not instrumented: the sanitizer would precede each jump with __asan_handle_no_return (a system
// call per switch); the fiber annotations already tell it about the stacks.
__attribute__((noinline, no_sanitize_address)) static void jump(void **buf) { __builtin_longjmp(buf, 1); }

// from the running emulated thread back to the scheduler; returns when resumed
__attribute__((noinline, no_sanitize_address)) static void to_sched(EmuThread *t) {
    if (!__builtin_setjmp(t->jb)) {
        asan_start(&t->fake, E.main_bottom, E.main_size);
        jump(E.sched);
    }
    asan_finish(t->fake, NULL, NULL);
}

// fails the launch from inside an emulated thread (which is abandoned)
__attribute__((no_sanitize_address)) static void fail_here(void) {
    E.failed = true;
    asan_start(NULL, E.main_bottom, E.main_size);
    jump(E.sched);
}

static void release_block(void) {
    int line = -1;
    bool divergent = false;
    for (int i = 0; i < E.n; i++)
        if (E.th[i].state == T_WAIT_BLOCK) {
            if (line >= 0 && E.th[i].line != line) divergent = true;
            line = E.th[i].line;
        }
    if (divergent) {
        int len = snprintf(E.err, sizeof E.err, "divergent __syncthreads: threads wait at different barriers:");
        int shown = 0;
        for (int i = 0; i < E.n && shown < 8 && len < (int)sizeof E.err - 80; i++)
            if (E.th[i].state == T_WAIT_BLOCK && (i == 0 || E.th[i - 1].state != T_WAIT_BLOCK || E.th[i - 1].line != E.th[i].line)) {
                len += snprintf(E.err + len, sizeof E.err - (size_t)len, " thread %d at line %d;", i, E.th[i].line);
                shown++;
            }
        fail_here();
    }
    for (int i = 0; i < E.n; i++)
        if (E.th[i].state == T_WAIT_BLOCK) E.th[i].state = T_RUN;
    E.block_waiting = 0;
}

static void release_warp(int w) {
    int line = -1;
    int end = (w + 1) * 32 < E.n ? (w + 1) * 32 : E.n;
    for (int i = w * 32; i < end; i++)
        if (E.th[i].state == T_WAIT_WARP) {
            if (line >= 0 && E.th[i].line != line) {
                snprintf(E.err, sizeof E.err, "divergent warp operation: lanes of warp %d wait at lines %d and %d", w,
                         line, E.th[i].line);
                fail_here();
            }
            line = E.th[i].line;
        }
    for (int i = w * 32; i < end; i++)
        if (E.th[i].state == T_WAIT_WARP) E.th[i].state = T_RUN;
    E.warp_waiting[w] = 0;
}

static void emu_syncthreads(int line) {
    EmuThread *t = &E.th[E.cur];
    t->state = T_WAIT_BLOCK, t->line = line;
    if (++E.block_waiting == E.live) release_block();
    if (t->state != T_RUN) to_sched(t);
}

static void warp_barrier(int line) {
    EmuThread *t = &E.th[E.cur];
    int w = E.cur / 32;
    t->state = T_WAIT_WARP, t->line = line;
    if (++E.warp_waiting[w] == E.warp_live[w]) release_warp(w);
    if (t->state != T_RUN) to_sched(t);
}

static void emu_syncwarp(int line) { warp_barrier(line); }

static unsigned long long emu_shfl(int line, int mode, unsigned long long v, int arg, int width) {
    int me = E.cur, lane = me % 32;
    if (width <= 0 || width > 32 || (width & (width - 1))) {
        snprintf(E.err, sizeof E.err, "thread %d: a shuffle of width %d (line %d): not a power of two <= 32", me, width, line);
        fail_here();
    }
    E.th[me].slot = v;
    warp_barrier(line);
    int base = lane & ~(width - 1), src = lane;
    switch (mode) {
    case CUEMU_SHFL_IDX: src = base + (arg & (width - 1)); break;
    case CUEMU_SHFL_UP: src = lane - arg >= base ? lane - arg : lane; break;
    case CUEMU_SHFL_DOWN: src = lane + arg < base + width ? lane + arg : lane; break;
    default: src = (lane ^ arg) < base + width ? lane ^ arg : lane; break;
    }
    int s = me - lane + src;
    if (s >= E.n || E.th[s].state == T_DONE) {
        snprintf(E.err, sizeof E.err, "thread %d: a warp shuffle at line %d reads lane %d, which %s", me, line, src,
                 s >= E.n ? "does not exist (a partial warp)" : "has exited");
        fail_here();
    }
    unsigned long long r = E.th[s].slot;
    warp_barrier(line);
    return r;
}

static const Kernel *checking;   // the kernel whose arguments emu_check_ptr sees (under mu)

// The race check ($TRLC_CUEMU_RACECHECK=1, a test hook). Blocks run one at a time here, so two
// blocks' plain read-modify-writes of one word give the sum a GPU may lose. With the hook set,
// each launch snapshots the allocations its pointer arguments point into and, after every
// block, finds the bytes the block changed or updated through an atomic (the shim's atomics
// report their addresses; an atomic covers the 4 bytes there): a byte that two blocks touch, not
// both through atomics, fails the launch naming it and the two blocks. Bytes, not words: two
// blocks storing the two bf16 halves of one word (rows of odd length) do not race on a GPU.
// (Plain writes of the value already there are invisible; fine for the tests' accumulations.)
#define RACE_MAX 32
typedef struct RaceBuf {
    uintptr_t p;
    size_t bytes;
    unsigned char *snap;  // the bytes as the last block left them
    uint32_t *owner;      // per byte: 1 + the linear block that touched it first, 0 none
    uint32_t *atomic;     // per byte: 1 + the last block that updated it through an atomic
    unsigned char *plain; // per byte: the first toucher changed it without an atomic
    size_t alo, ahi;      // the byte range the running block updated through atomics (alo >= ahi: none)
} RaceBuf;
static struct {
    bool on;
    int n;
    RaceBuf b[RACE_MAX];
    uint32_t block;       // 1 + the running block's linear index
} R;

static void race_note_ptr(const void *p) {   // a pointer argument (under mu, from emu_check_ptr)
    long a = p ? find_alloc((uintptr_t)p, 0) : -1;
    if (a < 0) return;
    for (int i = 0; i < R.n; i++)
        if (R.b[i].p == allocs[a].p) return;
    if (R.n < RACE_MAX) R.b[R.n++] = (RaceBuf){.p = allocs[a].p, .bytes = allocs[a].n};
}

static void race_free(void) {
    for (int i = 0; i < R.n; i++) free(R.b[i].snap), free(R.b[i].owner), free(R.b[i].atomic), free(R.b[i].plain);
    R.n = 0, R.on = false;
}

static bool race_begin(void) {   // after the arguments were checked: the snapshots
    for (int i = 0; i < R.n; i++) {
        RaceBuf *b = &R.b[i];
        size_t w = b->bytes ? b->bytes : 1;
        b->snap = malloc(w), b->owner = calloc(w, 4), b->atomic = calloc(w, 4), b->plain = calloc(w, 1);
        if (!b->snap || !b->owner || !b->atomic || !b->plain) return false;
        memcpy(b->snap, (const void *)b->p, b->bytes);
        b->alo = SIZE_MAX, b->ahi = 0;
    }
    return true;
}

static void emu_atomic_note(const void *p) {
    if (!R.on) return;
    for (int i = 0; i < R.n; i++) {
        RaceBuf *b = &R.b[i];
        if ((uintptr_t)p < b->p || (uintptr_t)p - b->p >= b->bytes) continue;
        size_t k = (uintptr_t)p - b->p, e = k + 4 < b->bytes ? k + 4 : b->bytes;
        if (k < b->alo) b->alo = k;
        if (e > b->ahi) b->ahi = e;
        for (; k < e; k++) b->atomic[k] = R.block;
    }
}

// after block R.block: 0, or -1 with the first race in E.err (gx, gy: the grid, for the message)
static int race_after_block(unsigned gx, unsigned gy) {
    for (int i = 0; i < R.n; i++) {
        RaceBuf *b = &R.b[i];
        const unsigned char *cur = (const unsigned char *)b->p;
        const size_t alo = b->alo, ahi = b->ahi;
        b->alo = SIZE_MAX, b->ahi = 0;
        for (size_t w = 0; w < b->bytes; w++) {
            if (w % 256 == 0 && (w + 256 <= alo || w >= ahi)) {   // a chunk no atomic touched: skip it if unchanged
                const size_t n = b->bytes - w < 256 ? b->bytes - w : 256;
                if (memcmp(cur + w, b->snap + w, n) == 0) {
                    w += n - 1;
                    continue;
                }
            }
            const bool changed = cur[w] != b->snap[w], atomic = b->atomic[w] == R.block;
            if (!changed && !atomic) continue;
            b->snap[w] = cur[w];
            if (!b->owner[w]) {
                b->owner[w] = R.block, b->plain[w] = !atomic;
                continue;
            }
            if (b->owner[w] == R.block || (atomic && !b->plain[w])) continue;
            const unsigned o = b->owner[w] - 1, m = R.block - 1;
            snprintf(E.err, sizeof E.err, "race: byte offset %zu (word %zu) of the allocation at 0x%" PRIxPTR " is "
                     "written by block (%u,%u,%u) and block (%u,%u,%u), not both through atomics", w, w / 4, b->p,
                     o % gx, o / gx % gy, o / gx / gy, m % gx, m / gx % gy, m / gx / gy);
            return -1;
        }
    }
    return 0;
}

static int emu_check_ptr(int index, const void *p) {
    if (index < 0) {
        fprintf(stderr, "cuemu: cuLaunchKernel %s: argument %d missing (kernelParams NULL or a NULL entry)\n",
                checking->name, -1 - index);
        return -1;
    }
    if (!p || find_alloc((uintptr_t)p, 0) >= 0) {
        race_note_ptr(p);
        return 0;
    }
    fprintf(stderr, "cuemu: cuLaunchKernel %s: pointer argument %d (%p) is not device memory (a host pointer, a freed "
            "buffer or past an allocation's end)\n", checking->name, index, p);
    return -1;
}

static void emu_trap(int line, const char *what) {
    snprintf(E.err, sizeof E.err, "thread %d: %s at line %d", E.cur, what, line);
    fail_here();
}

__attribute__((no_sanitize_address)) static void thread_main(void) {
    EmuThread *t = &E.th[E.cur];
    asan_finish(NULL, &E.main_bottom, &E.main_size);
    E.k->launch(E.args);
    t = &E.th[E.cur];
    t->state = T_DONE;
    E.live--;
    int w = E.cur / 32;
    E.warp_live[w]--;
    if (E.warp_waiting[w] && E.warp_waiting[w] == E.warp_live[w]) release_warp(w);
    if (E.block_waiting && E.block_waiting == E.live) release_block();
    asan_start(NULL, E.main_bottom, E.main_size);
    jump(E.sched);
}

static bool ensure_threads(int n) {
    if (n <= E.cap) return true;
    EmuThread *th = realloc(E.th, (size_t)n * sizeof *th);
    if (!th) return false;
    E.th = th;
    for (int i = E.cap; i < n; i++) {
        memset(&th[i], 0, sizeof th[i]);
        if (!(th[i].stack = malloc(STACK_BYTES))) {
            E.cap = i;
            return false;
        }
    }
    E.cap = n;
    return true;
}

// noinline: the setjmp stays in a frame of its own (no locals of the caller to clobber)
// a new thread starts on its own stack, a waiting one continues after its __builtin_setjmp
__attribute__((noinline, no_sanitize_address)) static void resume(EmuThread *t) {
    if (t->state == T_NEW) {
        t->state = T_RUN;
        setcontext(&t->uc);
    }
    jump(t->jb);
}

__attribute__((noinline, no_sanitize_address)) static void run_thread(int i) {
    E.cur = i;
    state.thread = &E.th[i].tid;
    if (!__builtin_setjmp(E.sched)) {
        asan_start(&E.main_fake, E.th[i].stack, STACK_BYTES);
        resume(&E.th[i]);
    }
    asan_finish(E.main_fake, NULL, NULL);
}

// the waiting threads, grouped by what they wait at, into E.err after its current text
static void describe_waiters(void) {
    size_t len = strlen(E.err);
    int shown = 0;
    for (int i = 0; i < E.n && shown < 8; i++) {
        const EmuThread *t = &E.th[i];
        if (t->state != T_WAIT_BLOCK && t->state != T_WAIT_WARP) continue;
        if (i > 0 && E.th[i - 1].state == t->state && E.th[i - 1].line == t->line) continue;
        int j = i;
        while (j + 1 < E.n && E.th[j + 1].state == t->state && E.th[j + 1].line == t->line) j++;
        if (len + 100 < sizeof E.err)
            len += (size_t)snprintf(E.err + len, sizeof E.err - len, " threads %d-%d wait at %s (line %d);", i, j,
                                    t->state == T_WAIT_BLOCK ? "__syncthreads" : "a warp shuffle / __syncwarp", t->line);
        shown++;
    }
    int done = 0;
    for (int i = 0; i < E.n; i++) done += E.th[i].state == T_DONE;
    if (len + 60 < sizeof E.err) snprintf(E.err + len, sizeof E.err - len, " %d threads have exited", done);
}

// a fresh context entering thread_main on t's stack (noinline: getcontext returns twice)
__attribute__((noinline)) static int start_context(EmuThread *t) {
    if (getcontext(&t->uc) != 0) return -1;
    t->uc.uc_stack.ss_sp = t->stack;
    t->uc.uc_stack.ss_size = STACK_BYTES;
    t->uc.uc_link = NULL;
    makecontext(&t->uc, thread_main, 0);
    return 0;
}

static int run_block(unsigned bx, unsigned by, unsigned bz) {
    const int n = E.n;
    E.live = n, E.block_waiting = 0;
    for (int w = 0; w < (n + 31) / 32; w++) {
        E.warp_waiting[w] = 0;
        E.warp_live[w] = n - w * 32 < 32 ? n - w * 32 : 32;
    }
    for (int i = 0; i < n; i++) {
        EmuThread *t = &E.th[i];
        t->tid.x = (unsigned)i % bx, t->tid.y = ((unsigned)i / bx) % by, t->tid.z = (unsigned)i / (bx * by);
        t->state = T_NEW, t->line = 0, t->fake = NULL;
#if CUEMU_ASAN
        __asan_unpoison_memory_region(t->stack, STACK_BYTES);   // frames abandoned by an earlier block
#endif
        if (start_context(t) != 0) return -1;
    }
    (void)bz;
    Module *m = E.k->mod;
    if (m->shared) memset(m->shared, 0xff, (size_t)(m->shared_end - m->shared));   // garbage, as on a GPU
    // odd blocks run their threads in the reverse order: a race on shared memory (a read before
    // the barrier that orders it) gives different results in the two orders
    const bool reverse = (state.block.x + state.block.y + state.block.z) & 1;
    while (E.live > 0 && !E.failed) {
        bool ran = false;
        for (int k = 0; k < n && !E.failed; k++) {
            int i = reverse ? n - 1 - k : k;
            if (E.th[i].state == T_NEW || E.th[i].state == T_RUN) {
                run_thread(i);
                ran = true;
            }
        }
        if (!ran && !E.failed) {
            snprintf(E.err, sizeof E.err, "deadlock: no thread can run;");
            describe_waiters();
            E.failed = true;
        }
    }
    return E.failed ? -1 : 0;
}

// checks a launch (under mu): CUDA_SUCCESS, or the error (printed)
static CUresult check_launch(Kernel *k, const unsigned g[3], const unsigned b[3], unsigned shared_bytes, void **params,
                             void **extra) {
    if (!known_kernel(k)) return CUDA_ERROR_INVALID_HANDLE;
    if (extra) {
        fprintf(stderr, "cuemu: cuLaunchKernel %s: `extra` parameters are not supported\n", k->name);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    if (!g[0] || !g[1] || !g[2] || !b[0] || !b[1] || !b[2] || g[0] > 2147483647u || g[1] > 65535 || g[2] > 65535 ||
        b[0] > 1024 || b[1] > 1024 || b[2] > 64 || (uint64_t)b[0] * b[1] * b[2] > MAX_THREADS || shared_bytes > 48 * 1024) {
        fprintf(stderr, "cuemu: cuLaunchKernel %s: invalid grid (%u,%u,%u) / block (%u,%u,%u) / shared %u\n", k->name,
                g[0], g[1], g[2], b[0], b[1], b[2], shared_bytes);
        return CUDA_ERROR_INVALID_VALUE;
    }
    int n = (int)(b[0] * b[1] * b[2]);
    if (n > k->max_threads) {
        fprintf(stderr, "cuemu: cuLaunchKernel %s: %d threads per block over its __launch_bounds__ (%d)\n", k->name, n,
                k->max_threads);
        return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
    }
    checking = k;
    race_free();   // the pointer arguments' allocations, collected by emu_check_ptr
    return k->check(params) ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

// runs a checked launch (under mu)
static CUresult run_launch(Kernel *k, const unsigned g[3], const unsigned b[3], void **params) {
    unsigned gx = g[0], gy = g[1], gz = g[2], bx = b[0], by = b[1], bz = b[2];
    int n = (int)(bx * by * bz);
    if (!ensure_threads(n)) return CUDA_ERROR_OUT_OF_MEMORY;
    E.k = k, E.args = params, E.n = n, E.failed = false, E.err[0] = 0;
    state.block_dim = (CuemuDim){bx, by, bz};
    state.grid_dim = (CuemuDim){gx, gy, gz};
    CUresult r = CUDA_SUCCESS;
    // every other launch of a kernel walks the blocks backwards: a block depending on another's
    // writes (no such order exists on a GPU) gives different results from one launch to the next.
    // Counted per kernel (per loaded module), not globally: two programs making the same launches
    // (say graphs on and off) see the same orders, whatever else ran between
    const bool backwards = k->launches++ & 1;
    const char *rc = getenv("TRLC_CUEMU_RACECHECK");
    if (rc && !strcmp(rc, "1")) {
        R.on = race_begin();
        if (!R.on) {
            race_free();
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    for (unsigned zi = 0; zi < gz && r == CUDA_SUCCESS; zi++)
        for (unsigned yi = 0; yi < gy && r == CUDA_SUCCESS; yi++)
            for (unsigned xi = 0; xi < gx && r == CUDA_SUCCESS; xi++) {
                unsigned x = backwards ? gx - 1 - xi : xi, y = backwards ? gy - 1 - yi : yi;
                unsigned z = backwards ? gz - 1 - zi : zi;
                state.block = (CuemuDim){x, y, z};
                R.block = 1 + x + gx * (y + gy * z);
                if (run_block(bx, by, bz) != 0 || (R.on && race_after_block(gx, gy) != 0)) {
                    fprintf(stderr, "cuemu: kernel %s, block (%u,%u,%u) of (%u,%u,%u), %u threads: %s\n", k->name, x,
                            y, z, gx, gy, gz, n, E.err[0] ? E.err : "cannot start the threads");
                    r = CUDA_ERROR_LAUNCH_FAILED;
                }
            }
    race_free();
    return r;
}

EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               unsigned shared_bytes, CUstream stream, void **params, void **extra) {
    const unsigned g[3] = {gx, gy, gz}, b[3] = {bx, by, bz};
    bool captured = false;   // a capturing stream records the launch (cuemu_graph.c)
    CUresult r = cuemu_capture_launch(stream, f, g, b, shared_bytes, params, extra, &captured);
    if (r != CUDA_SUCCESS || captured) return r;
    return cuemu_launch_now(f, g, b, shared_bytes, params, extra);
}

// for cuemu_graph.c (cuemu_internal.h): a launch checked, or checked and run now
CUresult cuemu_check_launch(void *f, const unsigned g[3], const unsigned b[3], unsigned shared_bytes, void **params,
                            void **extra) {
    pthread_mutex_lock(&mu);
    CUresult r = check_launch((Kernel *)f, g, b, shared_bytes, params, extra);
    pthread_mutex_unlock(&mu);
    return r;
}

CUresult cuemu_launch_now(void *f, const unsigned g[3], const unsigned b[3], unsigned shared_bytes, void **params,
                          void **extra) {
    pthread_mutex_lock(&mu);
    CUresult r = check_launch((Kernel *)f, g, b, shared_bytes, params, extra);
    if (r == CUDA_SUCCESS) r = run_launch((Kernel *)f, g, b, params);
    pthread_mutex_unlock(&mu);
    return r;
}

// copies of the values params point at, sized by the kernel's own parameter types, 16-byte
// aligned in *buf; (*argv)[i] points at argument i. false when out of memory or sizes unknown.
bool cuemu_copy_args(void *f, void **params, int *nargs, unsigned char **buf, void ***argv) {
    Kernel *k = (Kernel *)f;
    unsigned long sz[256];
    int na = k->sizes ? k->sizes(sz, 256) : -1;
    if (na < 0 || na > 256) return false;
    size_t total = 0;
    for (int i = 0; i < na; i++) total += (sz[i] + 15) & ~(size_t)15;
    unsigned char *b = NULL;
    if (posix_memalign((void **)&b, 16, total ? total : 16) != 0) return false;
    void **v = calloc((size_t)na + 1, sizeof *v);
    if (!v) {
        free(b);
        return false;
    }
    size_t off = 0;
    for (int i = 0; i < na; i++) {
        memcpy(b + off, params[i], sz[i]);
        v[i] = b + off;
        off += (sz[i] + 15) & ~(size_t)15;
    }
    *nargs = na, *buf = b, *argv = v;
    return true;
}


static CuemuState state = {NULL, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, emu_syncthreads, emu_syncwarp, emu_shfl, emu_trap,
                           emu_check_ptr, emu_atomic_note};
