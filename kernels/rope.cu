// rope.cu — rotary position embedding, HF's rotate_half convention, forward and inverse (the
// backward rotates by -angle): for d < D/2, with angle = pos[b, t] * inv_freq[d]
//     y[d]       = x[d] cos - x[d + D/2] sin
//     y[d + D/2] = x[d + D/2] cos + x[d] sin
// inv_freq (D/2) is computed on the host (theta^(-2i/D), with Llama-3 scaling applied), so one
// kernel serves every rope variant. The angle is formed and rotated in double precision: positions
// reach 10^5 and a float angle would be off by ~1e-2 there. C reference: kernels_ref.c trlc_rope_ref.
// Launch: grid (ceil(T*D/2 / 256), H, B), 256 threads. In place (y == x) is allowed.
extern "C" __global__ void __launch_bounds__(256) trlc_rope_forward(
    float *y,                  // (B, H, T, D)
    const float *x,            // (B, H, T, D)
    const int *pos,            // (B, T), or (T) when pos_batched == 0
    const double *inv_freq,    // (D / 2)
    int T, int D, int H, int pos_batched, int inverse)
{
    const int half = D / 2;
    const long long b = blockIdx.z, h = blockIdx.y;
    const long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;   // over (T, half)
    if (e >= (long long)T * half) return;
    const int t = (int)(e / half), i = (int)(e % half);
    const double p = (double)pos[(pos_batched ? b * T : 0) + t];
    double sd, cd;
    sincos(p * inv_freq[i], &sd, &cd);
    const float c = (float)cd, s = inverse ? (float)-sd : (float)sd;
    const long long row = ((b * H + h) * T + t) * (long long)D;
    const float x1 = x[row + i], x2 = x[row + i + half];
    y[row + i] = x1 * c - x2 * s;
    y[row + i + half] = x2 * c + x1 * s;
}
