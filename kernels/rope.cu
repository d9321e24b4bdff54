// rope.cu — rotary position embedding, HF's rotate_half convention, forward and inverse (the
// backward rotates by -angle): for d < D/2, with angle = pos[b, t] * inv_freq[d]
//     y[d]       = x[d] cos - x[d + D/2] sin
//     y[d + D/2] = x[d + D/2] cos + x[d] sin
// inv_freq (D/2) is computed on the host (theta^(-2i/D), with Llama-3 scaling applied), so one
// kernel serves every rope variant. The angle is formed and rotated in double precision: positions
// reach 10^5 and a float angle would be off by ~1e-2 there. C reference: kernels_ref.c trlc_rope_ref.
// Two kernels, one body: trlc_rope_forward writes y in f32; trlc_rope_forward_bf16 writes the same
// f32 values rounded to bf16 (nearest even, as the fused cast rounds: mixed precision's q and k,
// read only by attention, ir.h IR_ROPE), bit for bit cast(trlc_rope_forward(x)).
// Launch: grid (ceil(T*D/2 / 256), H, B), 256 threads. In place (y == x) is allowed (f32 only).
#include "prelude.cuh"   // trlc_bf16, trlc_st (round to nearest even; NaN stays NaN)

template <typename T>
__device__ __forceinline__ void rope_forward(T *y, const float *x, const int *pos, const double *inv_freq, int Tn,
                                             int D, int H, int pos_batched, int inverse) {
    const int half = D / 2;
    const long long b = blockIdx.z, h = blockIdx.y;
    const long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;   // over (T, half)
    if (e >= (long long)Tn * half) return;
    const int t = (int)(e / half), i = (int)(e % half);
    const double p = (double)pos[(pos_batched ? b * Tn : 0) + t];
    double sd, cd;
    sincos(p * inv_freq[i], &sd, &cd);
    const float c = (float)cd, s = inverse ? (float)-sd : (float)sd;
    const long long row = ((b * H + h) * Tn + t) * (long long)D;
    const float x1 = x[row + i], x2 = x[row + i + half];
    const float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
    trlc_st(&y[row + i], y1);
    trlc_st(&y[row + i + half], y2);
}

extern "C" __global__ void __launch_bounds__(256) trlc_rope_forward(
    float *y,                  // (B, H, T, D)
    const float *x,            // (B, H, T, D)
    const int *pos,            // (B, T), or (T) when pos_batched == 0
    const double *inv_freq,    // (D / 2)
    int T, int D, int H, int pos_batched, int inverse)
{
    rope_forward(y, x, pos, inv_freq, T, D, H, pos_batched, inverse);
}

extern "C" __global__ void __launch_bounds__(256) trlc_rope_forward_bf16(
    trlc_bf16 *y,              // (B, H, T, D)
    const float *x,            // (B, H, T, D)
    const int *pos,            // (B, T), or (T) when pos_batched == 0
    const double *inv_freq,    // (D / 2)
    int T, int D, int H, int pos_batched, int inverse)
{
    rope_forward(y, x, pos, inv_freq, T, D, H, pos_batched, inverse);
}
