// rt_cuda.h — run-time compilation of CUDA C with NVRTC (nvrtc.c), and the on-disk kernel cache.
// Sources compile to a cubin for one architecture (sm_80, sm_90, ...: the device's own when a
// GPU is present), optionally also to PTX, several programs at once on worker threads. Every
// NVRTC call is checked; a failed compile reports the kernel name, the options, NVRTC's log and
// the numbered source. The cache lives in $TRLC_CACHE_DIR, else $XDG_CACHE_HOME/trlc, else
// ~/.cache/trlc; an entry's key hashes the source, the options, the arch, the NVRTC version and
// RT_CUDA_CACHE_VERSION; entries are written to a temporary file and renamed into place; an
// entry that fails its checks (magic, length, checksum) is ignored and rebuilt.
// TRLC_PRINT_KERNELS=1 prints every source before it is compiled (or found in the cache).
// Registers and static shared memory per kernel are read from the cubin's ELF sections
// (.nv.info EIATTR_REGCOUNT, .nv.shared.<kernel>), so no GPU and no cuobjdump are needed.
// Also the device (device.c): memory, modules, launches through the driver API, which is
// libcuda.so.1 or $TRLC_CUDA_DRIVER (the CPU emulator of tests/gpu/emu for the tests).
// Not here: deciding what to launch (the executor, exec.c), cuBLASLt (blas.c).
#ifndef TRLC_RT_CUDA_H
#define TRLC_RT_CUDA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "diag.h"

#define RT_CUDA_CACHE_VERSION 1

typedef struct RtCudaCache {
    char dir[4096];         // "" = caching disabled (no usable directory)
    int hits, misses;       // programs found in / compiled into the cache
    int corrupt;            // entries ignored because they failed their checks
} RtCudaCache;

// Resolves the cache directory from the environment and creates it. A directory that cannot be
// created disables caching with a warning (compiling still works). Returns 0.
int rt_cuda_cache_init(RtCudaCache *c, Diag *d);

typedef struct RtCudaProgram {
    // in
    const char *name;       // the kernel's name (for messages, the cache file name, resources)
    const char *source;     // complete CUDA C (NUL-terminated)
    bool no_fma;            // --fmad=false: a * b + c rounds twice, as the CPU interpreter (built
                            // with -ffp-contract=off) and the emulator compute it (generated kernels)
    // out
    unsigned char *cubin;   // malloc'd
    size_t cubin_size;
    char *ptx;              // malloc'd, NUL-terminated, when asked for
    size_t ptx_size;
    bool cached;            // the cubin came from the cache
    int regs;               // registers per thread, -1 unknown
    int64_t shared_bytes;   // static shared memory, -1 unknown
    int status;             // 0 ok, -1 failed (reported)
} RtCudaProgram;

// Compiles progs[0..n) for arch ("sm_90"; NULL = the device's own, else sm_90) with nthreads
// workers (<= 0: 2). Returns the number of programs that failed (each reported through d).
int rt_cuda_compile(RtCudaCache *c, RtCudaProgram *progs, int n, const char *arch, bool want_ptx,
                    int nthreads, Diag *d);
void rt_cuda_program_free(RtCudaProgram *p);

// NVRTC's version; false when unavailable.
bool rt_nvrtc_version(int *major, int *minor);
// The architectures NVRTC can target ("sm_75 sm_80 ..."), into buf.
void rt_nvrtc_archs(char *buf, size_t n);

// The driver library both device.c and the device queries dlopen: libcuda.so.1, or
// $TRLC_CUDA_DRIVER when set (a test hook: a fake driver, e.g. the test emulator
// tests/gpu/emu/libtrlc_cuemu.so, which runs the kernels' CUDA C on the CPU).
const char *rt_cuda_driver_path(void);

// Number of CUDA devices through the driver (loaded with dlopen: a machine without a driver gets
// 0, never a load failure), and device 0's architecture as "sm_XY". Both -1 / false on no device.
int rt_cuda_device_count(void);
bool rt_cuda_device_arch(int dev, char *buf, size_t n);

// ---- a device (device.c): the driver API through dlopen, every call checked (CU_CHECK names the
// call, the driver's error string, file and line). Used by the executor and the GPU tests.
typedef struct RtCudaDevice RtCudaDevice;
typedef uint64_t RtCudaPtr;               // a device address (CUdeviceptr)
// Opens device dev (its primary context) and makes it current. NULL when there is no driver or
// no such device (reported through d only when quiet is false).
RtCudaDevice *rt_cuda_open(int dev, bool quiet, Diag *d);
void rt_cuda_close(RtCudaDevice *g);
int rt_cuda_alloc(RtCudaDevice *g, size_t bytes, RtCudaPtr *p);
// Free and total device memory (cuMemGetInfo); false when the driver cannot say.
bool rt_cuda_mem_info(RtCudaDevice *g, size_t *free_bytes, size_t *total_bytes);
void rt_cuda_free(RtCudaDevice *g, RtCudaPtr p);
int rt_cuda_upload(RtCudaDevice *g, RtCudaPtr dst, const void *src, size_t bytes);
int rt_cuda_download(RtCudaDevice *g, void *dst, RtCudaPtr src, size_t bytes);
int rt_cuda_zero(RtCudaDevice *g, RtCudaPtr p, size_t bytes);
// Loads a cubin; *fn receives the kernel `name` (a CUfunction). The module lives until close.
int rt_cuda_load(RtCudaDevice *g, const void *cubin, const char *name, void **fn);
// The same, given also the CUDA C the cubin was compiled from: a driver that exports
// trlcEmuModuleLoadSource (the emulator) loads the source, a real one the cubin. Use this one
// wherever the source is at hand (the executor, the GPU tests), so they run under the emulator.
int rt_cuda_load_source(RtCudaDevice *g, const void *cubin, const char *source, const char *name, void **fn);
// True when the driver is the emulator (no cubins, no real registers or timing).
bool rt_cuda_is_emulated(const RtCudaDevice *g);
// Launches fn with the kernel parameters args (pointers to each argument's value).
int rt_cuda_launch(RtCudaDevice *g, void *fn, const unsigned grid[3], const unsigned block[3],
                   unsigned shared_bytes, void **args, const char *what);
int rt_cuda_sync(RtCudaDevice *g, const char *what);

// ---- streams (device.c): a CUstream; NULL is the legacy default stream. A stream made here
// blocks with the legacy stream (CU_STREAM_DEFAULT), so the synchronous copies above stay ordered
// with it outside a capture.
typedef void *RtCudaStream;
int rt_cuda_stream_new(RtCudaDevice *g, RtCudaStream *s);
void rt_cuda_stream_free(RtCudaDevice *g, RtCudaStream s);
int rt_cuda_stream_sync(RtCudaDevice *g, RtCudaStream s, const char *what);
int rt_cuda_launch_on(RtCudaDevice *g, RtCudaStream s, void *fn, const unsigned grid[3], const unsigned block[3],
                      unsigned shared_bytes, void **args, const char *what);
// Stream-ordered copies and sets. An upload from pageable host memory has consumed src when it
// returns (the driver stages it), so src may change at once; it may not be captured in a graph.
int rt_cuda_upload_async(RtCudaDevice *g, RtCudaStream s, RtCudaPtr dst, const void *src, size_t bytes);
int rt_cuda_zero_async(RtCudaDevice *g, RtCudaStream s, RtCudaPtr p, size_t bytes);
// A device-to-device copy (cuMemcpyDtoDAsync), ordered on s; the ranges must not overlap.
int rt_cuda_copy_async(RtCudaDevice *g, RtCudaStream s, RtCudaPtr dst, RtCudaPtr src, size_t bytes);

// ---- CUDA graphs (device.c): stream capture (global mode) into a graph, instantiated once and
// launched many times. Optional: false when the driver lacks an entry point (then nothing is
// captured and the callers launch step by step).
typedef struct RtCudaGraph RtCudaGraph;
bool rt_cuda_graphs_supported(const RtCudaDevice *g);
int rt_cuda_capture_begin(RtCudaDevice *g, RtCudaStream s);
// The node the last operation captured on s made (cuStreamGetCaptureInfo's dependency set of
// one): a handle for rt_cuda_graph_set_kernel.
int rt_cuda_capture_last_node(RtCudaDevice *g, RtCudaStream s, void **node);
// Ends the capture and instantiates the graph (*out NULL on failure, reported). With abandon the
// capture is ended after an earlier failure: the graph is dropped, nothing reported, *out NULL.
int rt_cuda_capture_end(RtCudaDevice *g, RtCudaStream s, bool abandon, RtCudaGraph **out);
int rt_cuda_graph_launch(RtCudaDevice *g, RtCudaGraph *gr, RtCudaStream s, const char *what);
// New arguments (and launch shape) for a captured kernel node of gr's instance
// (cuGraphExecKernelNodeSetParams); fn must be the node's kernel. args are copied.
int rt_cuda_graph_set_kernel(RtCudaDevice *g, RtCudaGraph *gr, void *node, void *fn, const unsigned grid[3],
                             const unsigned block[3], unsigned shared_bytes, void **args, const char *what);
void rt_cuda_graph_free(RtCudaDevice *g, RtCudaGraph *gr);
// The Diag the device reports to (rt_cuda_open's).
Diag *rt_cuda_device_diag(const RtCudaDevice *g);
// Registers and static shared memory of a loaded kernel (cuFuncGetAttribute).
int rt_cuda_func_resources(RtCudaDevice *g, void *fn, int *regs, int *shared_bytes);

// Registers and static shared memory of kernel `name` in a cubin (ELF); -1 when not found.
void rt_cuda_cubin_resources(const unsigned char *cubin, size_t size, const char *name, int *regs,
                             int64_t *shared_bytes);

#endif
