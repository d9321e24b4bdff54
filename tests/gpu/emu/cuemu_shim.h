// cuemu_shim.h — what CUDA C needs to compile as plain C++17 for the CPU emulator (cuemu.c): the
// qualifiers (__global__, __device__, __shared__ = static: one block runs at a time per process),
// threadIdx / blockIdx / blockDim / gridDim (read through the emulator's state, switched per
// emulated thread), __syncthreads, warp shuffles and __syncwarp (calls into the scheduler),
// atomics (plain read-modify-write: one OS thread runs every emulated thread), bit casts, the
// fast-math intrinsics and min / max. Only what trlc's kernels use and their near relatives.
// The top part (CuemuState, the ABI between the emulator and a compiled module) is C and is also
// included by cuemu.c with CUEMU_ABI_ONLY defined. Also __nv_bfloat16 (storage, RNE conversions)
// and nvcuda::wmma for m16n16k16 with bf16 a/b and float accumulators: a fragment holds the whole
// tile in every lane (each lane computes the full product; lanes with equal operands reuse the
// warp's last result), and load / store / mma trap where the hardware's rules are broken: a
// pointer not 32-byte aligned, ldm not a multiple of 8 (bf16) / 4 (float), a partial warp,
// lanes at different calls (the shuffle machinery catches divergence and exited lanes) or with
// different pointers / ldm. Not here: textures, cooperative groups, warp votes, half, bf16
// arithmetic operators, other WMMA shapes and types, per-lane fragment element layouts.
#ifndef TRLC_CUEMU_SHIM_H
#define TRLC_CUEMU_SHIM_H

#define CUEMU_ABI_VERSION 3

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
    // every atomic's address, before it updates (the race check: cuemu.c, $TRLC_CUEMU_RACECHECK)
    void (*atomic_note)(const void *p);
} CuemuState;

#ifndef CUEMU_ABI_ONLY
#include <cmath>
#include <cstdint>
#include <cstdio>
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
#define __align__(n) __attribute__((aligned(n)))
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

// atomics: every emulated thread runs on one OS thread, so a plain update is atomic; each tells
// the emulator its address (a plain `+=` where an atomic belongs shows in the race check only)
#define CUEMU_ATOMIC(p) cuemu_state->atomic_note((const void *)(p))
template <class T> static inline T atomicAdd(T *p, T v) { CUEMU_ATOMIC(p); T o = *p; *p = o + v; return o; }
template <class T> static inline T atomicSub(T *p, T v) { CUEMU_ATOMIC(p); T o = *p; *p = o - v; return o; }
template <class T> static inline T atomicExch(T *p, T v) { CUEMU_ATOMIC(p); T o = *p; *p = v; return o; }
template <class T> static inline T atomicMax(T *p, T v) { CUEMU_ATOMIC(p); T o = *p; *p = o < v ? v : o; return o; }
template <class T> static inline T atomicMin(T *p, T v) { CUEMU_ATOMIC(p); T o = *p; *p = v < o ? v : o; return o; }
template <class T> static inline T atomicCAS(T *p, T cmp, T v) { CUEMU_ATOMIC(p); T o = *p; if (o == cmp) *p = v; return o; }
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

// __nv_bfloat16: storage and the conversions (round to nearest even; NaN stays NaN)
struct __nv_bfloat16 {
    unsigned short __x;
};
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) r.__x = (unsigned short)((u >> 16) | 0x40u);   // quiet NaN
    else r.__x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline float __bfloat162float(__nv_bfloat16 b) {
    unsigned u = (unsigned)b.__x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { __nv_bfloat16 r; r.__x = x; return r; }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }

// nvcuda::wmma, m16n16k16 only. Fragment contents in logical order: a (m, k), b (k, n) and the
// accumulator (m, n), row by row, whatever the layout they were loaded with.
namespace nvcuda {
namespace wmma {
struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "cuemu: only the m16n16k16 WMMA shape");
    static_assert(std::is_same<Use, accumulator>::value ? std::is_same<T, float>::value
                                                        : std::is_same<T, __nv_bfloat16>::value,
                  "cuemu: WMMA a / b fragments of __nv_bfloat16 and float accumulators only");
    static_assert(std::is_same<Use, accumulator>::value == std::is_same<Layout, void>::value,
                  "cuemu: a / b fragments take row_major or col_major, accumulators no layout");
    enum { num_elements = 256 };
    T x[256];
};

// the hardware's rules for a warp-wide WMMA call, then every lane's presence at the same call
// (a shuffle reading the next lane: an exited lane, a partial warp or a lane elsewhere fails)
static inline void cuemu_wmma_enter(int line, const char *op, const void *p, unsigned ldm, unsigned ldm_mult) {
    char msg[160];
    if (p && ((uintptr_t)p & 31u)) {
        snprintf(msg, sizeof msg, "wmma::%s: pointer %p not 32-byte aligned", op, p);
        cuemu_state->trap(line, msg);
    }
    if (p && (ldm == 0 || ldm % ldm_mult)) {
        snprintf(msg, sizeof msg, "wmma::%s: ldm %u not a positive multiple of %u elements", op, ldm, ldm_mult);
        cuemu_state->trap(line, msg);
    }
    const unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    if ((t | 31u) >= nt) {
        snprintf(msg, sizeof msg, "wmma::%s in a partial warp (%u threads per block)", op, nt);
        cuemu_state->trap(line, msg);
    }
    const unsigned long long key = (unsigned long long)(uintptr_t)p * 1000003ull + ldm;
    const unsigned long long next = cuemu_state->shfl(line, CUEMU_SHFL_IDX, key, (int)((t + 1) & 31u), 32);
    if (next != key) {
        snprintf(msg, sizeof msg, "wmma::%s: the lanes of a warp pass different pointers or ldm", op);
        cuemu_state->trap(line, msg);
    }
}

template <class T, class L>
static inline void cuemu_load_ab(int line, fragment<matrix_a, 16, 16, 16, T, L> &f, const T *p, unsigned ldm) {
    cuemu_wmma_enter(line, "load_matrix_sync", p, ldm, 8);
    for (int m = 0; m < 16; m++)
        for (int k = 0; k < 16; k++) f.x[m * 16 + k] = std::is_same<L, row_major>::value ? p[m * ldm + k] : p[k * ldm + m];
}
template <class T, class L>
static inline void cuemu_load_ab(int line, fragment<matrix_b, 16, 16, 16, T, L> &f, const T *p, unsigned ldm) {
    cuemu_wmma_enter(line, "load_matrix_sync", p, ldm, 8);
    for (int k = 0; k < 16; k++)
        for (int n = 0; n < 16; n++) f.x[k * 16 + n] = std::is_same<L, row_major>::value ? p[k * ldm + n] : p[n * ldm + k];
}
static inline void cuemu_load_c(int line, fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm,
                                layout_t l) {
    cuemu_wmma_enter(line, "load_matrix_sync", p, ldm, 4);
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) f.x[m * 16 + n] = l == mem_row_major ? p[m * ldm + n] : p[n * ldm + m];
}
static inline void cuemu_store_c(int line, float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm,
                                 layout_t l) {
    cuemu_wmma_enter(line, "store_matrix_sync", p, ldm, 4);
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) (l == mem_row_major ? p[m * ldm + n] : p[n * ldm + m]) = f.x[m * 16 + n];
}
template <class Use, class T, class L> static inline void fill_fragment(fragment<Use, 16, 16, 16, T, L> &f, T v) {
    for (int i = 0; i < 256; i++) f.x[i] = v;
}
static inline void fill_fragment(fragment<accumulator, 16, 16, 16, float> &f, float v) {
    for (int i = 0; i < 256; i++) f.x[i] = v;
}

// d = a b + c, fp32 accumulation over k in order (products of bf16 values are exact in fp32).
// The lanes of a warp normally hold equal operands: the warp's last operands and result are kept
// (by thread index / 32) and a lane with the same operands copies the result.
struct CuemuMmaMemo {
    __nv_bfloat16 a[256], b[256];
    float c[256], d[256];
    bool valid;
};
static CuemuMmaMemo cuemu_mma_memo[32];
template <class LA, class LB>
static inline void cuemu_mma(int line, fragment<accumulator, 16, 16, 16, float> &d,
                             const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                             const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                             const fragment<accumulator, 16, 16, 16, float> &c) {
    cuemu_wmma_enter(line, "mma_sync", nullptr, 0, 1);
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    CuemuMmaMemo *mo = &cuemu_mma_memo[(t / 32) % 32];
    if (mo->valid && !memcmp(mo->a, a.x, sizeof a.x) && !memcmp(mo->b, b.x, sizeof b.x) &&
        !memcmp(mo->c, c.x, sizeof c.x)) {
        memcpy(d.x, mo->d, sizeof d.x);
        return;
    }
    float bf[256], r[256];
    for (int i = 0; i < 256; i++) bf[i] = __bfloat162float(b.x[i]);
    for (int m = 0; m < 16; m++) {
        float af[16];
        for (int k = 0; k < 16; k++) af[k] = __bfloat162float(a.x[m * 16 + k]);
        for (int n = 0; n < 16; n++) {
            float s = c.x[m * 16 + n];
            for (int k = 0; k < 16; k++) s += af[k] * bf[k * 16 + n];
            r[m * 16 + n] = s;
        }
    }
    memcpy(mo->a, a.x, sizeof a.x), memcpy(mo->b, b.x, sizeof b.x), memcpy(mo->c, c.x, sizeof c.x);
    memcpy(mo->d, r, sizeof r);
    mo->valid = true;
    memcpy(d.x, r, sizeof r);
}
}   // namespace wmma
}   // namespace nvcuda
// the warp-wide calls carry their kernel line (barrier sites must agree; traps name it)
#define load_matrix_sync(...) cuemu_load_dispatch(__LINE__, __VA_ARGS__)
#define store_matrix_sync(...) cuemu_store_c(__LINE__, __VA_ARGS__)
#define mma_sync(...) cuemu_mma(__LINE__, __VA_ARGS__)
namespace nvcuda {
namespace wmma {
template <class F, class T> static inline void cuemu_load_dispatch(int line, F &f, const T *p, unsigned ldm) {
    cuemu_load_ab(line, f, p, ldm);
}
template <class F> static inline void cuemu_load_dispatch(int line, F &f, const float *p, unsigned ldm, layout_t l) {
    cuemu_load_c(line, f, p, ldm, l);
}
}   // namespace wmma
}   // namespace nvcuda

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
