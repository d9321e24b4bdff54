// layout.cu — data movement: permute, slice, pad and concat as one strided copy. The output is
// walked in row-major order; each output index is split into coordinates with the output dims
// and mapped to a source offset with per-dim source strides (a permute's strides are permuted;
// a slice's offset is folded into src_base). Pad = zero fill + strided copy into the window;
// concat = one strided copy per input into its window of the output.
// C reference: the interpreter's permute / slice / pad / concat. Launch: grid-stride, 256 threads.
#define LAYOUT_MAX_RANK 8
struct trlc_layout {
    int rank;
    long long dims[LAYOUT_MAX_RANK];        // the copied window's dims (row-major walk)
    long long src_stride[LAYOUT_MAX_RANK];  // elements per step along each dim, in the source
    long long dst_stride[LAYOUT_MAX_RANK];  // the same in the destination
    long long src_base, dst_base;           // first element of the window in each
};

extern "C" __global__ void __launch_bounds__(256) trlc_strided_copy(
    float *dst, const float *src, long long n /* elements in the window */, trlc_layout L)
{
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        long long t = e, so = L.src_base, dof = L.dst_base;
        for (int k = L.rank - 1; k >= 0; k--) {
            const long long c = t % L.dims[k];
            t /= L.dims[k];
            so += c * L.src_stride[k];
            dof += c * L.dst_stride[k];
        }
        dst[dof] = src[so];
    }
}

extern "C" __global__ void __launch_bounds__(256) trlc_fill(float *dst, long long n, float value)
{
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x)
        dst[e] = value;
}

extern "C" __global__ void __launch_bounds__(256) trlc_arange(int *dst, long long n)
{
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x)
        dst[e] = (int)e;
}
