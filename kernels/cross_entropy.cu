// cross_entropy.cu — cross-entropy over a large vocabulary without fp32 logits for the whole
// batch: the caller runs the lm_head GEMM for a chunk of rows (bf16 or f32 logits), then these
// kernels on that chunk, then the chunk's backward GEMMs, so that at most rows_per_chunk x V
// logits exist at a time. One block per row; the row is read in a single pass with an online
// max / sum-exp (never two passes over V for the forward).
//     loss = (1 - eps) (lse - x[label]) + eps (lse - mean(x)),   0 where label == ignore_index
//     dlogits = gloss * (softmax(x) - (1 - eps) onehot(label) - eps / V)
// The backward may write over the logits (dlogits == logits) to save the chunk's memory.
// C reference: kernels_ref.c trlc_cross_entropy_ref. Launch: grid (rows), 256 threads.
#include "prelude.cuh"   // trlc_bf16, trlc_ld, trlc_st

// (max, sum of exp(x - max)) pairs, merged
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    if (m2 > m) { s = s * expf(m - m2) + s2; m = m2; }
    else if (m2 > -__int_as_float(0x7f800000)) s += s2 * expf(m2 - m);
}

template <typename T>
__device__ void ce_forward_row(float *loss, float *lse_out, const T *logits, const int *labels,
                               long long V, int ignore_index, float eps) {
    const long long r = blockIdx.x;
    const T *x = logits + r * V;
    float m = -__int_as_float(0x7f800000), s = 0.0f, sx = 0.0f;
    for (long long j = threadIdx.x; j < V; j += blockDim.x) {
        const float v = trlc_ld(x[j]);
        lse_merge(m, s, v, 1.0f);
        sx += v;
    }
    __shared__ float shm[32], shs[32], shx[32];
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
        sx += __shfl_xor_sync(0xffffffffu, sx, o);
    }
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) { shm[w] = m; shs[w] = s; shx[w] = sx; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < nw; k++) { lse_merge(m, s, shm[k], shs[k]); sx += shx[k]; }
        const float lse = m + logf(s);
        const int lab = labels[r];
        lse_out[r] = lse;
        if (lab == ignore_index || lab < 0 || lab >= V) loss[r] = 0.0f;
        else loss[r] = (1.0f - eps) * (lse - trlc_ld(x[lab])) + eps * (lse - sx / (float)V);
    }
}

template <typename TO, typename T>
__device__ void ce_backward_row(TO *dlogits, const T *logits, const float *lse, const int *labels,
                                const float *gloss, long long V, int ignore_index, float eps) {
    const long long r = blockIdx.x;
    const int lab = labels[r];
    const bool ignored = lab == ignore_index || lab < 0 || lab >= V;
    const float g = ignored ? 0.0f : gloss[r], l = lse[r];
    for (long long j = threadIdx.x; j < V; j += blockDim.x) {
        const float p = expf(trlc_ld(logits[r * V + j]) - l);
        const float d = g * (p - (j == lab ? 1.0f - eps : 0.0f) - eps / (float)V);
        trlc_st(&dlogits[r * V + j], d);
    }
}

extern "C" __global__ void __launch_bounds__(256) trlc_cross_entropy_forward_f32(
    float *loss, float *lse,               // (rows), (rows)
    const float *logits,                   // (rows, V)
    const int *labels,                     // (rows)
    long long V, int ignore_index, float eps)
{ ce_forward_row(loss, lse, logits, labels, V, ignore_index, eps); }

extern "C" __global__ void __launch_bounds__(256) trlc_cross_entropy_forward_bf16(
    float *loss, float *lse, const trlc_bf16 *logits, const int *labels, long long V, int ignore_index, float eps)
{ ce_forward_row(loss, lse, logits, labels, V, ignore_index, eps); }

extern "C" __global__ void __launch_bounds__(256) trlc_cross_entropy_backward_f32(
    float *dlogits,                        // (rows, V), may alias logits
    const float *logits, const float *lse, const int *labels,
    const float *gloss,                    // (rows)
    long long V, int ignore_index, float eps)
{ ce_backward_row(dlogits, logits, lse, labels, gloss, V, ignore_index, eps); }

extern "C" __global__ void __launch_bounds__(256) trlc_cross_entropy_backward_bf16(
    trlc_bf16 *dlogits, const trlc_bf16 *logits, const float *lse, const int *labels, const float *gloss,
    long long V, int ignore_index, float eps)
{ ce_backward_row(dlogits, logits, lse, labels, gloss, V, ignore_index, eps); }

// linear_argmax's rows (ir.h): out[r] = the index of the largest logits[r, :] (the first on ties;
// NaN never the largest; all NaN: 0). One block per row, as the kernels above.
extern "C" __global__ void __launch_bounds__(256) trlc_row_argmax_f32(
    int *out,                              // (rows)
    const float *logits,                   // (rows, V)
    long long V)
{
    const long long r = blockIdx.x;
    const float *x = logits + r * V;
    float bv = 0.0f;
    long long bi = -1;   // this thread's first largest so far (-1: none)
    for (long long j = threadIdx.x; j < V; j += blockDim.x) {
        const float v = x[j];
        if (v == v && (bi < 0 || v > bv)) { bv = v; bi = j; }
    }
    // (value, index) pairs merged: the larger value, or on a tie the smaller index; none loses
    for (int o = 16; o > 0; o >>= 1) {
        const float v2 = __shfl_xor_sync(0xffffffffu, bv, o);
        const long long i2 = __shfl_xor_sync(0xffffffffu, bi, o);
        if (i2 >= 0 && (bi < 0 || v2 > bv || (v2 == bv && i2 < bi))) { bv = v2; bi = i2; }
    }
    __shared__ float shv[32];
    __shared__ long long shi[32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) { shv[w] = bv; shi[w] = bi; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < nw; k++)
            if (shi[k] >= 0 && (bi < 0 || shv[k] > bv || (shv[k] == bv && shi[k] < bi))) { bv = shv[k]; bi = shi[k]; }
        out[r] = bi < 0 ? 0 : (int)bi;
    }
}

// fp32 logits, their gradient stored in bf16 (linear_ce's chunks with bf16 operands: the operand
// of the next product, rounded as mixed precision's cast rounds it).
extern "C" __global__ void __launch_bounds__(256) trlc_cross_entropy_backward_f32_bf16(
    trlc_bf16 *dlogits, const float *logits, const float *lse, const int *labels, const float *gloss,
    long long V, int ignore_index, float eps)
{ ce_backward_row(dlogits, logits, lse, labels, gloss, V, ignore_index, eps); }
