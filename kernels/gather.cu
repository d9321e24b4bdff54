// gather.cu — torch.gather along one axis and its backward (scatter-add into zeros), f32 or bf16
// storage, f32 math. Both index tensors and x are viewed as (outer, L, inner) around the axis:
//   forward:  out[o, a, r] = x[o, idx[o, a, r], r]           out and idx (outer, Li, inner),
//                                                             x (outer, Lx, inner)
//   backward: dx[o, l, r]  = sum over a of g[o, a, r] where idx[o, a, r] == l   (zeros elsewhere)
// The backward is deterministic without atomics: one thread per dx element loops over the index
// axis in order (a = 0, 1, ...), so duplicated indexes sum in the interpreter's order and each
// dx element is written once (no zero fill first). Its cost is numel(dx) * Li index reads: made
// for small Li (the usual gather of one label per row, Li = 1); a large Li costs Li times more.
// An index outside [0, Lx) gives 0 in the forward and contributes nothing in the backward, and
// records a bad position in *bad (flat index into idx + 1; 0 = none; whichever thread is first)
// for the host to report at the node's spec location, as embed.cu does; the interpreter fails.
// C reference: kernels_ref.c trlc_gather_ref / trlc_gather_bwd_ref (same loops).
// Launch (all four kernels): grid-stride, 256 threads per block, grid (min(ceil(n / 256), 2^20))
// with n = numel(out) forward, numel(dx) backward; no dynamic shared memory.
#include "prelude.cuh"   // trlc_bf16, trlc_ld, trlc_st

__device__ __forceinline__ void ga_flag(int *bad, long long k) {
    atomicCAS(bad, 0, (int)(k + 1 < 0x7fffffffLL ? k + 1 : 0x7fffffffLL));
}

template <typename T>
__device__ void gather_forward(T *out, int *bad, const T *x, const int *idx, long long outer, long long Li,
                               long long Lx, long long inner) {
    const long long n = outer * Li * inner;
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < n;
         k += (long long)gridDim.x * blockDim.x) {
        const long long r = k % inner, o = k / inner / Li;
        const int l = idx[k];
        if (l < 0 || l >= Lx) {
            ga_flag(bad, k);
            trlc_st(&out[k], 0.0f);
        } else {
            out[k] = x[(o * Lx + l) * inner + r];   // same storage type: a plain copy
        }
    }
}

template <typename T>
__device__ void gather_backward(T *dx, int *bad, const int *idx, const T *g, long long outer, long long Li,
                                long long Lx, long long inner) {
    const long long n = outer * Lx * inner;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        const long long r = e % inner, l = e / inner % Lx, o = e / inner / Lx;
        float s = 0.0f;
        for (long long a = 0; a < Li; a++) {
            const long long k = (o * Li + a) * inner + r;
            const int i = idx[k];
            if (i == l) s += trlc_ld(g[k]);
            else if ((i < 0 || i >= Lx) && l == 0) ga_flag(bad, k);   // flagged once, by the l = 0 thread
        }
        trlc_st(&dx[e], s);
    }
}

extern "C" __global__ void __launch_bounds__(256) trlc_gather_forward_f32(
    float *out,                // (outer, Li, inner): idx's shape
    int *bad,                  // (1)
    const float *x,            // (outer, Lx, inner)
    const int *idx,            // (outer, Li, inner)
    long long outer, long long Li, long long Lx, long long inner)
{ gather_forward(out, bad, x, idx, outer, Li, Lx, inner); }

extern "C" __global__ void __launch_bounds__(256) trlc_gather_forward_bf16(
    trlc_bf16 *out, int *bad, const trlc_bf16 *x, const int *idx, long long outer, long long Li, long long Lx,
    long long inner)
{ gather_forward(out, bad, x, idx, outer, Li, Lx, inner); }

extern "C" __global__ void __launch_bounds__(256) trlc_gather_backward_f32(
    float *dx,                 // (outer, Lx, inner): x's shape, every element written
    int *bad,                  // (1)
    const int *idx,            // (outer, Li, inner)
    const float *g,            // (outer, Li, inner): the gradient of the gather's output
    long long outer, long long Li, long long Lx, long long inner)
{ gather_backward(dx, bad, idx, g, outer, Li, Lx, inner); }

extern "C" __global__ void __launch_bounds__(256) trlc_gather_backward_bf16(
    trlc_bf16 *dx, int *bad, const int *idx, const trlc_bf16 *g, long long outer, long long Li, long long Lx,
    long long inner)
{ gather_backward(dx, bad, idx, g, outer, Li, Lx, inner); }
