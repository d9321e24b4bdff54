// softmax.cu — softmax and log-softmax over the last axis, one block per row: a single pass
// for the online max / sum-exp, a second pass to write. Backward (softmax: dy - sum(dy y);
// log-softmax: dy - exp(y) sum(dy)) is expressed in the IR by autodiff and fused by the
// generator, so only the forward lives here. C reference: the interpreter's softmax.
// Launch: grid (rows), 256 threads (a multiple of 32).
__device__ __forceinline__ void sm_merge(float &m, float &s, float m2, float s2) {
    if (m2 > m) { s = s * expf(m - m2) + s2; m = m2; }
    else if (m2 > -__int_as_float(0x7f800000)) s += s2 * expf(m2 - m);
}

extern "C" __global__ void __launch_bounds__(256) trlc_softmax_forward(
    float *y,                  // (rows, n)
    const float *x,            // (rows, n)
    long long rows, long long n, int log_softmax)
{
    __shared__ float shm[32], shs[32];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * n;
        float m = -__int_as_float(0x7f800000), s = 0.0f;
        for (long long j = threadIdx.x; j < n; j += blockDim.x) sm_merge(m, s, xr[j], 1.0f);
        for (int o = 16; o > 0; o >>= 1) {
            const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
            sm_merge(m, s, m2, s2);
        }
        const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
        __syncthreads();
        if (lane == 0) { shm[w] = m; shs[w] = s; }
        __syncthreads();
        m = shm[0];
        s = shs[0];
        for (int k = 1; k < nw; k++) sm_merge(m, s, shm[k], shs[k]);
        const float lse = m + logf(s);
        for (long long j = threadIdx.x; j < n; j += blockDim.x)
            y[r * n + j] = log_softmax ? xr[j] - lse : expf(xr[j] - lse);
    }
}
