// cuemu_shim.h — what CUDA C needs to compile as plain C++17 for the CPU emulator (cuemu.c): the
// qualifiers (__global__, __device__, __shared__ = static: one block runs at a time per process),
// threadIdx / blockIdx / blockDim / gridDim (read through the emulator's state, switched per
// emulated thread), __syncthreads, warp shuffles and __syncwarp (calls into the scheduler),
// atomics (plain read-modify-write: one OS thread runs every emulated thread), bit casts, the
// fast-math intrinsics and min / max. Only what trlc's kernels use and their near relatives.
// The top part (CuemuState, the ABI between the emulator and a compiled module) is C and is also
// included by cuemu.c with CUEMU_ABI_ONLY defined. Not here: textures, cooperative groups, warp
// votes, half / __nv_bfloat16 types.
#ifndef TRLC_CUEMU_SHIM_H
#define TRLC_CUEMU_SHIM_H

#define CUEMU_ABI_VERSION 2

typedef struct CuemuDim {
    unsigned x, y, z;
} CuemuDim;

// shuffle modes for CuemuState.shfl
enum { CUEMU_SHFL_IDX = 0, CUEMU_SHFL_UP = 1, CUEMU_SHFL_DOWN = 2, CUEMU_SHFL_XOR = 3 };

typedef struct CuemuState {
    const CuemuDim *thread;   // the running emulated thread's threadIdx
    CuemuDim block, block_dim, grid_dim;
    // line: the kernel source line of the call (barrier sites must agree; messages name it)
    void (*syncthreads)(int line);
    void (*syncwarp)(int line);
    unsigned long long (*shfl)(int line, int mode, unsigned long long v, int arg, int width);
    void (*trap)(int line, const char *what);
    // a pointer argument: 0 when NULL or inside a device allocation, else -1 (reported)
    int (*check_ptr)(int index, const void *p);
} CuemuState;

#ifndef CUEMU_ABI_ONLY
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

static CuemuState *cuemu_state;   // set by cuemu_module_init (one module = one translation unit)

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// shared memory: statics in their own section, which the emulator fills with 0xff bytes (NaN as
// floats) before every block, as a real block finds garbage there
#define __shared__ static __attribute__((section("cuemu_shared")))
#define __constant__ static
// `extern __shared__ T a[];` is rewritten by the emulator to `CUEMU_DYNAMIC_SHARED T a[MAX];`: each
// declaration gets an array of its own (on a GPU they all alias one buffer)
#define CUEMU_DYNAMIC_SHARED static __attribute__((section("cuemu_shared"), aligned(16)))
#define CUEMU_DYNAMIC_SHARED_MAX (48 * 1024)

typedef CuemuDim uint3;
#define threadIdx (*cuemu_state->thread)
#define blockIdx (cuemu_state->block)
#define blockDim (cuemu_state->block_dim)
#define gridDim (cuemu_state->grid_dim)
#define warpSize 32

#define __syncthreads() (cuemu_state->syncthreads(__LINE__))
#define __syncwarp(...) (cuemu_state->syncwarp(__LINE__))
#define __trap() (cuemu_state->trap(__LINE__, "__trap()"))

template <class T> static inline T cuemu_shfl(int line, int mode, T v, int arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a value over 8 bytes");
    unsigned long long u = 0;
    memcpy(&u, &v, sizeof v);
    u = cuemu_state->shfl(line, mode, u, arg, width);
    memcpy(&v, &u, sizeof v);
    return v;
}
#define __shfl_sync(mask, v, src, ...) cuemu_shfl(__LINE__, CUEMU_SHFL_IDX, (v), (src), cuemu_width(__VA_ARGS__ + 0))
#define __shfl_up_sync(mask, v, d, ...) cuemu_shfl(__LINE__, CUEMU_SHFL_UP, (v), (d), cuemu_width(__VA_ARGS__ + 0))
#define __shfl_down_sync(mask, v, d, ...) cuemu_shfl(__LINE__, CUEMU_SHFL_DOWN, (v), (d), cuemu_width(__VA_ARGS__ + 0))
#define __shfl_xor_sync(mask, v, m, ...) cuemu_shfl(__LINE__, CUEMU_SHFL_XOR, (v), (m), cuemu_width(__VA_ARGS__ + 0))
static inline int cuemu_width(int w) { return w > 0 ? w : 32; }   // width omitted: 32

// bit casts
static inline float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
static inline int __float_as_int(float f) { int x; memcpy(&x, &f, 4); return x; }
static inline float __uint_as_float(unsigned x) { float f; memcpy(&f, &x, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned x; memcpy(&x, &f, 4); return x; }
static inline double __longlong_as_double(long long x) { double f; memcpy(&f, &x, 8); return f; }
static inline long long __double_as_longlong(double f) { long long x; memcpy(&x, &f, 8); return x; }

// intrinsics: the accurate functions stand in for the fast ones
// (macros: glibc's math.h declares functions of these names)
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __powf(x, y) powf(x, y)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
template <class T> static inline T __ldg(const T *p) { return *p; }

// min / max with the usual arithmetic conversions; floating point ones as fminf / fmaxf
template <class A, class B> static inline auto min(A a, B b) -> decltype(a + b) {
    typedef decltype(a + b) C;
    if constexpr (std::is_floating_point<C>::value) return std::fmin((C)a, (C)b);
    else return (C)b < (C)a ? (C)b : (C)a;
}
template <class A, class B> static inline auto max(A a, B b) -> decltype(a + b) {
    typedef decltype(a + b) C;
    if constexpr (std::is_floating_point<C>::value) return std::fmax((C)a, (C)b);
    else return (C)a < (C)b ? (C)b : (C)a;
}

// atomics: every emulated thread runs on one OS thread, so a plain update is atomic
template <class T> static inline T atomicAdd(T *p, T v) { T o = *p; *p = o + v; return o; }
template <class T> static inline T atomicSub(T *p, T v) { T o = *p; *p = o - v; return o; }
template <class T> static inline T atomicExch(T *p, T v) { T o = *p; *p = v; return o; }
template <class T> static inline T atomicMax(T *p, T v) { T o = *p; *p = o < v ? v : o; return o; }
template <class T> static inline T atomicMin(T *p, T v) { T o = *p; *p = v < o ? v : o; return o; }
template <class T> static inline T atomicCAS(T *p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

// cuLaunchKernel's args (a pointer to each parameter's value) unpacked by the kernel's own
// parameter types, deduced from the function pointer: no signature parsing
template <class... A, std::size_t... I>
static inline void cuemu_call_at(void (*f)(A...), void **args, std::index_sequence<I...>) {
    f(*static_cast<typename std::remove_cv<A>::type *>(args[I])...);
}
template <class... A> static inline void cuemu_call(void (*f)(A...), void **args) {
    cuemu_call_at(f, args, std::index_sequence_for<A...>{});
}

// before a launch: every argument present, every pointer argument NULL or device memory (a host
// pointer or a freed buffer is an executor bug); returns the number of bad arguments
template <class T> static inline int cuemu_check_arg(int i, void *arg) {
    if (!arg) return cuemu_state->check_ptr(-1 - i, nullptr) != 0;   // a missing argument
    if constexpr (std::is_pointer<T>::value) return cuemu_state->check_ptr(i, (const void *)*static_cast<T *>(arg)) != 0;
    else return 0;
}
template <class... A, std::size_t... I>
static inline int cuemu_check_at(void (*)(A...), void **args, std::index_sequence<I...>) {
    return (0 + ... + cuemu_check_arg<typename std::remove_cv<A>::type>((int)I, args ? args[I] : nullptr));
}
template <class... A> static inline int cuemu_check(void (*f)(A...), void **args) {
    return cuemu_check_at(f, args, std::index_sequence_for<A...>{});
}
#endif
#endif
