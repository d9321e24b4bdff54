// adamw.cu — the AdamW update (decoupled weight decay, Loshchilov & Hutter), fp32 master weights
// and states, gradients in fp32 or bf16 (bits), optionally scaled (clipping, loss scaling):
//     g' = g * grad_scale
//     m = b1 m + (1 - b1) g'          v = b2 v + (1 - b2) g'^2
//     p = p - lr * (wd * p + (m / bc1) / (sqrt(v / bc2) + eps))    bc = 1 - b^step
// C reference: kernels_ref.c trlc_adamw_ref. Launch: grid-stride, 256 threads.
extern "C" __global__ void __launch_bounds__(256) trlc_adamw_update(
    float *p, float *m, float *v,          // (n) master weights, first and second moments
    const float *g,                        // (n) gradient (fp32)
    long long n, float lr, float b1, float b2, float eps, float wd, float bc1, float bc2,
    float grad_scale)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float gi = g[i] * grad_scale;
        const float mi = b1 * m[i] + (1.0f - b1) * gi;
        const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float pi = p[i];
        p[i] = pi - lr * (wd * pi + (mi / bc1) / (sqrtf(vi / bc2) + eps));
    }
}

// Sum of squares of a gradient (for the global norm of clip_norm): one partial per block,
// summed by the host or a second launch over the partials.
extern "C" __global__ void __launch_bounds__(256) trlc_sumsq_partial(
    float *partial,                        // (gridDim.x)
    const float *g, long long n)           // (n)
{
    __shared__ float sh[256];
    float s = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        s += g[i] * g[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}
