// adamw.cu — the AdamW update (decoupled weight decay, Loshchilov & Hutter), fp32 master weights
// and states, gradients in fp32 or bf16 (bits), optionally scaled (clipping, loss scaling):
//     g' = g * grad_scale
//     m = b1 m + (1 - b1) g'          v = b2 v + (1 - b2) g'^2
//     p = p - lr * (wd * p + (m / bc1) / (sqrt(v / bc2) + eps))    bc = 1 - b^step
// C reference: kernels_ref.c trlc_adamw_ref. Launch: grid-stride, 256 threads.
// Below: the multi-tensor kernels of the trainer's optimizer step on the device (accumulation,
// global norm, AdamW / SGD exactly as runtime/train/optim.c).
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

// *out (thread 0) = the sum of every thread's s over the block (a power of two threads, at most
// 256; sh: 256 entries of shared memory), in a fixed tree order: the same bits every run.
template <typename F>
__device__ __forceinline__ void trlc_block_sum(F *sh, F s, F *out)
{
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = sh[0];
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
    trlc_block_sum(sh, s, &partial[blockIdx.x]);
}

// ---- the trainer's optimizer step on the device (runtime/cuda/optim_cuda.c) ----
// Multi-tensor: one launch walks a table of chunks (a slice of one parameter each: at most
// 64K elements), a block per chunk, grid-stride over the chunks. Per element the exact float
// operations of runtime/train/optim.c's opt_adamw_update / opt_sgd_update in their order, with
// the float scalars it derives from its double settings (kernels_ref.c trlc_adamw_setup /
// trlc_sgd_setup); TRLC_MUL / ADD / SUB are not contracted into fused multiply-adds on the GPU, so
// a device step rounds as the host's. The gradient is the accumulated sum, multiplied by scale
// (1 / targets) and then, when clip, by the clipping coefficient: two roundings, as the host's
// two in-place scalings. C references: kernels_ref.c trlc_adamw_multi_ref, trlc_sgd_multi_ref.
#ifdef __CUDA_ARCH__
#define TRLC_MUL(a, b) __fmul_rn((a), (b))
#define TRLC_ADD(a, b) __fadd_rn((a), (b))
#define TRLC_SUB(a, b) __fsub_rn((a), (b))
#else   // the CPU emulator: plain operations, never contracted there
#define TRLC_MUL(a, b) ((a) * (b))
#define TRLC_ADD(a, b) ((a) + (b))
#define TRLC_SUB(a, b) ((a) - (b))
#endif

struct TrlcOptChunk {      // 48 bytes, as optim_cuda.c's OcChunk
    float *p;              // (n) master weights (fp32)
    const float *g;        // (n) accumulated gradient
    float *m;              // (n) adamw exp_avg / sgd momentum buffer (NULL without momentum)
    float *v;              // (n) adamw exp_avg_sq (NULL for sgd)
    long long n;
    int decay;             // weight decay applies to this parameter
    int pad;
};

struct TrlcAccChunk {      // 24 bytes, as optim_cuda.c's OcAcc
    float *dst;            // (n) the accumulated gradient
    const float *src;      // (n) this micro-step's gradient
    long long n;
};

struct TrlcAdamw {         // as kernels_ref.h
    float decay, w1, b2, w2, neg_step, bc2_sqrt, eps;
};

struct TrlcSgd {           // as kernels_ref.h
    float wd, mom, damp, neg_lr;
    int use_buf, nesterov, first;
};

// dst = src (first) or dst + src: the gradients of grad_accum micro-steps summed in order.
extern "C" __global__ void __launch_bounds__(256) trlc_accumulate_multi(
    const TrlcAccChunk *chunks, int nchunks, int first)
{
    for (int c = blockIdx.x; c < nchunks; c += gridDim.x) {
        float *dst = chunks[c].dst;
        const float *src = chunks[c].src;
        const long long n = chunks[c].n;
        for (long long i = threadIdx.x; i < n; i += blockDim.x) dst[i] = first ? src[i] : TRLC_ADD(dst[i], src[i]);
    }
}

// Sum of squares of the scaled gradients (float g * scale, squared and summed in double, as
// optim.c's norm of the scaled gradients): one partial per block.
extern "C" __global__ void __launch_bounds__(256) trlc_sumsq_multi(
    double *partial,                       // (gridDim.x)
    const TrlcOptChunk *chunks, int nchunks, float scale)
{
    __shared__ double sh[256];
    double s = 0.0;
    for (int c = blockIdx.x; c < nchunks; c += gridDim.x) {
        const float *g = chunks[c].g;
        const long long n = chunks[c].n;
        for (long long i = threadIdx.x; i < n; i += blockDim.x) {
            const double gi = (double)TRLC_MUL(g[i], scale);
            s += gi * gi;
        }
    }
    trlc_block_sum(sh, s, &partial[blockIdx.x]);
}

// out[0] = the sum of n partials, in a fixed order (one block of 256 threads).
extern "C" __global__ void __launch_bounds__(256) trlc_sum_partials(
    double *out,                           // (1)
    const double *partial, int n)          // (n)
{
    __shared__ double sh[256];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
    trlc_block_sum(sh, s, &out[0]);
}

// The gradient of element i as the update reads it.
__device__ __forceinline__ float trlc_opt_grad(const float *g, long long i, float scale, float coef, int clip)
{
    float gi = TRLC_MUL(g[i], scale);
    return clip ? TRLC_MUL(gi, coef) : gi;
}

// AdamW (torch.optim.AdamW: decoupled decay, bias correction, eps added to sqrt(v_hat)).
extern "C" __global__ void __launch_bounds__(256) trlc_adamw_multi(
    const TrlcOptChunk *chunks, int nchunks, float scale, float coef, int clip, TrlcAdamw s)
{
    for (int c = blockIdx.x; c < nchunks; c += gridDim.x) {
        const TrlcOptChunk ch = chunks[c];
        const float decay = ch.decay ? s.decay : 1.0f;
        for (long long i = threadIdx.x; i < ch.n; i += blockDim.x) {
            const float gi = trlc_opt_grad(ch.g, i, scale, coef, clip);
            const float pi = TRLC_MUL(ch.p[i], decay);
            const float m0 = ch.m[i];
            const float mi = TRLC_ADD(m0, TRLC_MUL(s.w1, TRLC_SUB(gi, m0)));                // lerp_
            const float vi = TRLC_ADD(TRLC_MUL(ch.v[i], s.b2), TRLC_MUL(s.w2, TRLC_MUL(gi, gi)));
            const float denom = TRLC_ADD(sqrtf(vi) / s.bc2_sqrt, s.eps);
            ch.p[i] = TRLC_ADD(pi, TRLC_MUL(s.neg_step, mi / denom));
            ch.m[i] = mi;
            ch.v[i] = vi;
        }
    }
}

// SGD (torch.optim.SGD: L2 decay in the gradient, momentum / dampening / Nesterov).
extern "C" __global__ void __launch_bounds__(256) trlc_sgd_multi(
    const TrlcOptChunk *chunks, int nchunks, float scale, float coef, int clip, TrlcSgd s)
{
    for (int c = blockIdx.x; c < nchunks; c += gridDim.x) {
        const TrlcOptChunk ch = chunks[c];
        const float wd = ch.decay ? s.wd : 0.0f;
        const bool use_buf = s.use_buf && ch.m;
        for (long long i = threadIdx.x; i < ch.n; i += blockDim.x) {
            float gi = trlc_opt_grad(ch.g, i, scale, coef, clip);
            if (wd != 0.0f) gi = TRLC_ADD(gi, TRLC_MUL(wd, ch.p[i]));
            if (use_buf) {
                const float b = s.first ? gi : TRLC_ADD(TRLC_MUL(ch.m[i], s.mom), TRLC_MUL(s.damp, gi));
                ch.m[i] = b;
                gi = s.nesterov ? TRLC_ADD(gi, TRLC_MUL(s.mom, b)) : b;
            }
            ch.p[i] = TRLC_ADD(ch.p[i], TRLC_MUL(s.neg_lr, gi));
        }
    }
}
