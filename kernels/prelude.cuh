// prelude.cuh — what the library kernel files share: bf16 storage (trlc_bf16: the bits only; math
// is f32) and its one load and one store. The store rounds to nearest even; a NaN stays a (quiet)
// NaN and never rounds to infinity; infinities stay infinities: the CPU's bf16 cast, bit for bit.
// Every generated kernel starts with these definitions too (compiler/codegen_cuda.c, from the
// text between the include guard's #define and #endif that kernels_embed.cmake embeds).
// A library file takes it with `#include "prelude.cuh"` (so it compiles beside this file with
// nvcc); kernels_embed.cmake replaces that line with this text, so every embedded source — what
// NVRTC, the emulator and `trlc kernels -o` see — stands alone and the kernel cache's key (a hash
// of the source) covers this file too.
// Not here: attention_tc.cu's __nv_bfloat16 path (its own conversion), anything host-side.
#ifndef TRLC_PRELUDE_CUH
#define TRLC_PRELUDE_CUH

struct trlc_bf16 { unsigned short bits; };

__device__ __forceinline__ float trlc_ld(float x) { return x; }
__device__ __forceinline__ float trlc_ld(trlc_bf16 x) { return __uint_as_float((unsigned)x.bits << 16); }

// f32 -> bf16, round to nearest even; NaN stays NaN (quieted), +-inf stays +-inf
__device__ __forceinline__ trlc_bf16 trlc_to_bf16(float v) {
    unsigned u = __float_as_uint(v);
    trlc_bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = (unsigned short)((u >> 16) | 0x40u);
        return r;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.bits = (unsigned short)(u >> 16);
    return r;
}

__device__ __forceinline__ void trlc_st(float *p, float v) { *p = v; }
__device__ __forceinline__ void trlc_st(trlc_bf16 *p, float v) { *p = trlc_to_bf16(v); }

#endif
