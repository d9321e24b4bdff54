// embed.cu — token embedding lookup and its backward (scatter-add into the table's gradient).
// An id outside [0, V) writes a zero row and records the first bad position in *bad (position + 1,
// 0 = none) so the host can report it at the embed node's spec location after the step.
// C reference: the interpreter's embed / embed_bwd (plain row copies). Launch: grid (N), 128 threads.
__device__ __forceinline__ float embed_widen(float x) { return x; }
__device__ __forceinline__ float embed_widen(unsigned short bits) {   // bf16 → fp32 (exact)
    return __uint_as_float((unsigned)bits << 16);
}

template <typename T>
__device__ __forceinline__ void embed_rows(float *out, int *bad, const int *ids, const T *table, long long N,
                                           long long H, long long V) {
    for (long long r = blockIdx.x; r < N; r += gridDim.x) {
        const int id = ids[r];
        const bool ok = id >= 0 && id < V;
        if (!ok && threadIdx.x == 0) atomicCAS(bad, 0, (int)(r + 1));
        for (long long h = threadIdx.x; h < H; h += blockDim.x)
            out[r * H + h] = ok ? embed_widen(table[(long long)id * H + h]) : 0.0f;
    }
}

extern "C" __global__ void __launch_bounds__(128) trlc_embed_forward(
    float *out,                // (N, H)
    int *bad,                  // (1)
    const int *ids,            // (N)
    const float *table,        // (V, H)
    long long N, long long H, long long V)
{
    embed_rows(out, bad, ids, table, N, H, V);
}

// A table stored in bf16 (mixed precision's frozen tables): rows widened to fp32.
extern "C" __global__ void __launch_bounds__(128) trlc_embed_forward_bf16(
    float *out,                // (N, H)
    int *bad,                  // (1)
    const int *ids,            // (N)
    const unsigned short *table,   // (V, H) bf16 bits
    long long N, long long H, long long V)
{
    embed_rows(out, bad, ids, table, N, H, V);
}

// dtable must be zeroed first (or hold the gradient to accumulate into, e.g. a tied lm_head's).
extern "C" __global__ void __launch_bounds__(128) trlc_embed_backward(
    float *dtable,             // (V, H)
    const int *ids,            // (N)
    const float *grad,         // (N, H)
    long long N, long long H, long long V)
{
    for (long long r = blockIdx.x; r < N; r += gridDim.x) {
        const int id = ids[r];
        if (id < 0 || id >= V) continue;
        for (long long h = threadIdx.x; h < H; h += blockDim.x) atomicAdd(&dtable[(long long)id * H + h], grad[r * H + h]);
    }
}
