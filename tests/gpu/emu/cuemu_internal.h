// cuemu_internal.h — what the CUDA emulator's files (cuemu.c: memory, modules, launches;
// cuemu_graph.c: streams, capture, graphs; cuemu_blas.c: cuBLASLt) call in each other. Not an
// interface for anything outside tests/gpu/emu.
#ifndef TRLC_CUEMU_INTERNAL_H
#define TRLC_CUEMU_INTERNAL_H
#include <cuda.h>
#include <stdbool.h>
#include <stddef.h>

// cuemu.c
bool cuemu_check_range(const void *p, size_t n, const char *what);   // [p, p + n) in one allocation (else printed)
// a launch of kernel f (a CUfunction) checked as cuLaunchKernel does (printed when wrong); or
// checked and run now
CUresult cuemu_check_launch(void *f, const unsigned g[3], const unsigned b[3], unsigned shared_bytes, void **params,
                            void **extra);
CUresult cuemu_launch_now(void *f, const unsigned g[3], const unsigned b[3], unsigned shared_bytes, void **params,
                          void **extra);
// copies of a launch's argument values, by f's parameter sizes (malloc'd *buf, *argv[i] into it)
bool cuemu_copy_args(void *f, void **params, int *nargs, unsigned char **buf, void ***argv);

// cuemu_graph.c
// a synchronous or allocating call: refused (and the capture invalidated) while a capture forbids it
CUresult cuemu_unsafe_call(const char *call);
// a synchronous call on the legacy stream (copies, sets): the legacy-stream and unsafe-call checks
CUresult cuemu_legacy_sync(const char *call);
// cuLaunchKernel on a capturing stream is recorded (*captured true); else *captured false
CUresult cuemu_capture_launch(CUstream stream, void *f, const unsigned g[3], const unsigned b[3], unsigned shared_bytes,
                              void **params, void **extra, bool *captured);
// a cuBLASLt product on stream s: recorded when s captures (host(blob) at each launch, blob
// copied; *captured true), else to run now
CUresult cuemu_stream_host_op(CUstream s, const char *call, int (*host)(const void *), const void *blob, size_t size,
                              bool *captured);
#endif
