// quant.cu — dequantization of QLoRA's frozen weights as bitsandbytes stores them (FORMATS.md):
//   NF4:  w[i] = nf4[code(i)] * absmax[i / block]; codes packed two per byte, element 2m in the
//         HIGH nibble of byte m, element 2m + 1 in the low nibble (an odd n leaves the last low
//         nibble unused); absmax f32 (ceil(n / block)); out f32 or bf16 (row-major, n elements).
//   map8: out[i] = map[q[i]] * scale[i / block] + offset — the 8-bit blockwise dequantization that
//         double quantization uses for the NF4 absmax (map: the 256-entry signed dynamic map).
// Math in f32 (bf16 outputs rounded to nearest even once). No gradient (frozen weights).
// The NF4 table below is the exact bitsandbytes float32 values; gpu.library checks this copy
// (parsed from the embedded source) and the C reference's against the interpreter's
// (ir_nf4_value). Tables live in shared memory: the codes are data-dependent, and divergent
// reads of __constant__ memory would serialise.
// C reference: kernels_ref.c trlc_dequant_nf4_ref / trlc_dequant_map8_ref (same loops).
// Launch: grid-stride, 256 threads per block, grid (min(ceil(m / 256), 2^20)) with m = ceil(n / 2)
// packed bytes for NF4 (one thread per byte, two outputs) and m = n for map8; static shared
// memory only (64 bytes NF4, 1 KiB map8).
#include "prelude.cuh"   // trlc_bf16, trlc_st

__device__ const float trlc_nf4_table[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

template <typename T>
__device__ void dequant_nf4(T *out, const unsigned char *packed, const float *absmax, long long n, long long block) {
    __shared__ float lut[16];
    for (int c = threadIdx.x; c < 16; c += blockDim.x) lut[c] = trlc_nf4_table[c];
    __syncthreads();
    const long long nbytes = n / 2 + n % 2;
    for (long long m = blockIdx.x * (long long)blockDim.x + threadIdx.x; m < nbytes;
         m += (long long)gridDim.x * blockDim.x) {
        const unsigned byte = packed[m];
        const long long i = 2 * m, b0 = i / block;
        const long long b1 = i + 1 - b0 * block == block ? b0 + 1 : b0;   // element i + 1's block
        trlc_st(&out[i], lut[byte >> 4] * absmax[b0]);
        if (i + 1 < n) trlc_st(&out[i + 1], lut[byte & 15u] * absmax[b1]);
    }
}

template <typename T>
__device__ void dequant_map8(T *out, const unsigned char *q, const float *map, const float *scale, long long n,
                             long long block, float offset) {
    __shared__ float mp[256];
    for (int c = threadIdx.x; c < 256; c += blockDim.x) mp[c] = map[c];
    __syncthreads();
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        trlc_st(&out[i], mp[q[i]] * scale[i / block] + offset);
}

extern "C" __global__ void __launch_bounds__(256) trlc_dequant_nf4_f32(
    float *out,                    // (n): the weight, row-major
    const unsigned char *packed,   // (ceil(n / 2))
    const float *absmax,           // (ceil(n / block))
    long long n, long long block)
{ dequant_nf4(out, packed, absmax, n, block); }

extern "C" __global__ void __launch_bounds__(256) trlc_dequant_nf4_bf16(
    trlc_bf16 *out, const unsigned char *packed, const float *absmax, long long n, long long block)
{ dequant_nf4(out, packed, absmax, n, block); }

extern "C" __global__ void __launch_bounds__(256) trlc_dequant_map8_f32(
    float *out,                    // (n)
    const unsigned char *q,        // (n) codes
    const float *map,              // (256) code values
    const float *scale,            // (ceil(n / block))
    long long n, long long block, float offset)
{ dequant_map8(out, q, map, scale, n, block, offset); }

extern "C" __global__ void __launch_bounds__(256) trlc_dequant_map8_bf16(
    trlc_bf16 *out, const unsigned char *q, const float *map, const float *scale, long long n, long long block,
    float offset)
{ dequant_map8(out, q, map, scale, n, block, offset); }
