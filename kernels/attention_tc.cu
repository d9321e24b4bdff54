// attention_tc.cu — scaled-dot-product attention on tensor cores: bf16 q / k / v, fp32 accumulation
// (WMMA m16n16k16), forward and backward, grouped KV heads (query head h reads KV head
// h / (Hq / Hkv)), causal or full, packed rows (seg) and padding keys (key_mask) exactly as
// attention.cu (the fp32 CUDA-core version). No T x T matrix is stored.
// The numerics (the CPU interpreter and kernels_ref.c's trlc_attention_tc_*_ref implement the same):
//   S_ij = scale * sum_d q_id k_jd (bf16 values, fp32 accumulation); masked entries (causal j > i,
//          another segment, key_mask == 0) are left out;
//   lse_i = log sum_j exp(S_ij), P_ij = exp(S_ij - lse_i) (fp32); a query that sees no key gets
//          out = 0, lse = +inf (every P of the backward is then 0) and zero gradients;
//   out_i = sum_j bf16(P_ij) v_j                        (P rounded to nearest even, fp32 sums),
//          written in fp32, or rounded to bf16 (nearest even, NaN stays NaN: as a cast of it);
//   delta_i = sum_d dO_id bf16(O_id) (fp32; O as the bf16 forward stores it, as PyTorch's flash
//          attention under autocast: the fp32 O's values are rounded as they are read);
//   dP_ij = sum_d bf16(dO_id) v_jd;
//   dS_ij = P_ij (dP_ij - delta_i);     dQ_i = scale * sum_j bf16(dS_ij) k_j;
//   dV_j = sum_i bf16(P_ij) bf16(dO_i); dK_j = scale * sum_i bf16(dS_ij) q_i  (summed over the
//          query heads of the group).
// The forward makes two passes over the key blocks: the first finds each row's max and sum of
// exponentials, the second recomputes S, forms the normalized bf16 P in shared memory and adds
// P V into accumulator fragments (no rescaling, so the rounding points above are exact).
// Kernels, one body each for the two dtypes of O: trlc_attention_tc_forward writes fp32 O,
// trlc_attention_tc_forward_bf16 bf16 O (mixed precision's attention output, ir.h IR_SDPA);
// trlc_attention_tc_backward_dq and _backward_delta read fp32 O, their _bf16 twins bf16 O.
// Two backwards, the same numbers but for dQ's fp32 summation order:
//   fused (the executor's default; flash-attention 2's schedule, 5 GEMM-sized products S, dP,
//     dV, dK, dQ): dQ zeroed (the launcher's memset), trlc_attention_tc_backward_delta(_bf16)
//     writes delta, then trlc_attention_tc_backward_fused, one block per 64 keys of a KV head:
//     per step of 16 queries (of each query head of the group) S^T and dP^T once, dV and dK in
//     the warps' fragments, and the block's share of dQ = scale bf16(dS) K (dS^T of all 64 keys
//     and K in shared memory) added into dQ with one fp32 atomicAdd an element: dQ's last bits
//     depend on the order the blocks run in; delta, dK and dV are the split kernels' bits;
//   split (TRLC_ATTN_BWD=split; 7 products: S and dP twice): trlc_attention_tc_backward_dq(_bf16)
//     over query blocks (writes dQ and delta), then trlc_attention_tc_backward_dkdv over key
//     blocks; dQ bit-reproducible. A backward needing only dQ runs the dq kernel alone.
// Launch (all: 128 threads = 4 warps, static shared memory under 48 KB, no dynamic):
//   trlc_attention_tc_forward(_bf16), trlc_attention_tc_backward_dq(_bf16),
//   trlc_attention_tc_backward_delta(_bf16):                  grid (ceil(T/64), Hq, B);
//   trlc_attention_tc_backward_dkdv, _backward_fused:          grid (ceil(T/64), Hkv, B),
//   the dq kernel before the dkdv kernel; the memset and the delta kernel before the fused one.
//   Any T >= 1, D in 1..128 (padded to a multiple of 16 with zeros in shared memory), Hq a
//   multiple of Hkv. bf16 arrays are passed as their raw bits (unsigned short) (out too in the
//   _bf16 kernels), fp32 for out / dout / lse / delta and the gradients.
// Each warp owns 16 rows (queries; keys in dkdv and fused); key (or query) tiles of 32 rows (16
// queries in fused) are staged in shared memory, 16-byte loads when D % 8 == 0 and the row base
// is aligned (then the forward and dq kernels load the next K / V tile into registers while
// computing on the current one).
// NVRTC has no mma.h / cuda_bf16.h without the toolkit's include path, so under NVRTC this file
// declares the WMMA subset it uses on the compiler's builtins (the calls mma.h makes); the CUDA
// emulator's shim (tests/gpu/emu/cuemu_shim.h) provides nvcuda::wmma and __nv_bfloat16 itself.
// Not here: dropout, attention bias, D > 128, fp16. Not tuned (no GPU has run these): the fused
// kernel makes one atomic an element of dQ per 64 keys (flash-attention 2: per 128) with scalar
// atomics (sm_90 has float2 / float4 ones) and 3 barriers a 16-query step.
#define TC_ROWS 64     // rows (queries, or keys in dkdv) per block: 16 per warp
#define TC_KB 32       // keys (or queries in dkdv) per inner step
#define TC_LD 136      // bf16 row stride of the staged tiles: 128 + 8 (a multiple of 8; rows 4 banks apart)
#define TC_SLD 36      // float row stride of the per-warp score tiles (32 + 4)
#define TC_PLD 40      // bf16 row stride of the per-warp P / dS tiles (32 + 8)
#define TC_MAXF 8      // D / 16 fragments at most (D <= 128)

#if defined(__CUDACC_RTC__)
struct __align__(2) __nv_bfloat16 {
    unsigned short __x;
};
__device__ __forceinline__ __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) {
    __nv_bfloat16 r;
    r.__x = x;
    return r;
}
namespace nvcuda {
namespace wmma {
struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
template <class L> struct tc_is_col { enum { v = 0 }; };
template <> struct tc_is_col<col_major> { enum { v = 1 }; };
template <class Use, int M, int N, int K, class T, class L = void> struct fragment;
template <class Use, class L> struct fragment<Use, 16, 16, 16, __nv_bfloat16, L> { int r[4]; };
template <> struct fragment<accumulator, 16, 16, 16, float, void> { float x[8]; };
template <class L>
__device__ __forceinline__ void load_matrix_sync(fragment<matrix_a, 16, 16, 16, __nv_bfloat16, L> &f,
                                                 const __nv_bfloat16 *p, unsigned ldm) {
    __mma_bf16_m16n16k16_ld_a(f.r, (const int *)p, ldm, tc_is_col<L>::v);
}
template <class L>
__device__ __forceinline__ void load_matrix_sync(fragment<matrix_b, 16, 16, 16, __nv_bfloat16, L> &f,
                                                 const __nv_bfloat16 *p, unsigned ldm) {
    __mma_bf16_m16n16k16_ld_b(f.r, (const int *)p, ldm, tc_is_col<L>::v);
}
__device__ __forceinline__ void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f,
                                                  unsigned ldm, layout_t l) {
    if (l == mem_row_major) __hmma_m16n16k16_st_c_f32(p, (float *)f.x, ldm, 0);
    else __hmma_m16n16k16_st_c_f32(p, (float *)f.x, ldm, 1);
}
__device__ __forceinline__ void fill_fragment(fragment<accumulator, 16, 16, 16, float> &f, float v) {
    for (int i = 0; i < 8; i++) f.x[i] = v;
}
template <class LA, class LB>
__device__ __forceinline__ void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                                         const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                                         const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                                         const fragment<accumulator, 16, 16, 16, float> &c) {
    __mma_bf16_m16n16k16_mma_f32(d.x, a.r, b.r, c.x, tc_is_col<LA>::v * 2 + tc_is_col<LB>::v, 0);
}
}   // namespace wmma
}   // namespace nvcuda
#elif defined(__CUDACC__)   // nvcc: the toolkit's headers
#include <cuda_bf16.h>
#include <mma.h>
#endif

namespace wmma = nvcuda::wmma;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> tc_frag_a;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> tc_frag_b;    // (k, n) = p[k][n]
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> tc_frag_bt;   // (k, n) = p[n][k]
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> tc_frag_c;

struct alignas(16) tc_u4 {
    unsigned a, b, c, d;
};

__device__ __forceinline__ unsigned short tc_bf16_bits(float v) {   // round to nearest even (no NaN here)
    const unsigned u = __float_as_uint(v);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
__device__ __forceinline__ __nv_bfloat16 tc_bf16(float v) { return __ushort_as_bfloat16(tc_bf16_bits(v)); }

// O as stored (fp32, or bf16 bits: rounded to nearest even, NaN stays NaN, as the fused cast) and
// as the dq kernel reads it for delta: its bf16 value either way
__device__ __forceinline__ void tc_st(float *p, float v) { *p = v; }
__device__ __forceinline__ void tc_st(unsigned short *p, float v) {
    const unsigned u = __float_as_uint(v);
    *p = (u & 0x7fffffffu) > 0x7f800000u ? (unsigned short)((u >> 16) | 0x40u) : tc_bf16_bits(v);
}
__device__ __forceinline__ float tc_o(const unsigned short *p) { return __uint_as_float((unsigned)*p << 16); }
__device__ __forceinline__ float tc_o(const float *p) {
    unsigned short b;
    tc_st(&b, *p);
    return tc_o(&b);
}

// rows r0 .. r0 + nrows - 1 of a (T, D) bf16 matrix into dst (nrows, TC_LD), columns padded to Dp
// and rows past T with zeros (block-wide; the caller synchronizes)
__device__ __forceinline__ void tc_stage(__nv_bfloat16 *dst, const unsigned short *src, int r0, int nrows, int T,
                                         int D, int Dp) {
    if ((D & 7) == 0 && ((unsigned long long)src & 15) == 0) {
        const int cpr = Dp / 8;   // 16-byte chunks per padded row
        for (int e = threadIdx.x; e < nrows * cpr; e += blockDim.x) {
            const int r = e / cpr, c = (e % cpr) * 8, i = r0 + r;
            tc_u4 v = {0u, 0u, 0u, 0u};
            if (i < T && c < D) v = *(const tc_u4 *)(src + (long long)i * D + c);
            *(tc_u4 *)(dst + r * TC_LD + c) = v;
        }
    } else {
        for (int e = threadIdx.x; e < nrows * Dp; e += blockDim.x) {
            const int r = e / Dp, c = e % Dp, i = r0 + r;
            dst[r * TC_LD + c] = __ushort_as_bfloat16(i < T && c < D ? src[(long long)i * D + c] : (unsigned short)0);
        }
    }
}

// the same for a (T, D) fp32 matrix, each value rounded to bf16
__device__ __forceinline__ void tc_stage_f32(__nv_bfloat16 *dst, const float *src, int r0, int nrows, int T, int D,
                                             int Dp) {
    for (int e = threadIdx.x; e < nrows * Dp; e += blockDim.x) {
        const int r = e / Dp, c = e % Dp, i = r0 + r;
        dst[r * TC_LD + c] = tc_bf16(i < T && c < D ? src[(long long)i * D + c] : 0.0f);
    }
}

// A 32-row tile of a (T, D) bf16 matrix in flight: this thread's 16-byte chunks (4 with 128
// threads and Dp <= 128), loaded from global memory while the block computes on the previous
// tile, then stored into shared memory. Only where tc_vec_ok (D % 8 == 0, 16-byte aligned rows).
struct TcPrefetch {
    tc_u4 v[TC_KB * 16 / 128];
};
__device__ __forceinline__ bool tc_vec_ok(const unsigned short *src, int D) {
    return (D & 7) == 0 && ((unsigned long long)src & 15) == 0;
}
__device__ __forceinline__ void tc_fetch(TcPrefetch &f, const unsigned short *src, int r0, int T, int D, int Dp) {
    const int cpr = Dp / 8;
    for (int k = 0; k < TC_KB * 16 / 128; k++) {
        const int e = threadIdx.x + k * 128, r = e / cpr, c = (e % cpr) * 8, i = r0 + r;
        tc_u4 v = {0u, 0u, 0u, 0u};
        if (r < TC_KB && i < T && c < D) v = *(const tc_u4 *)(src + (long long)i * D + c);
        f.v[k] = v;
    }
}
__device__ __forceinline__ void tc_put(__nv_bfloat16 *dst, const TcPrefetch &f, int Dp) {
    const int cpr = Dp / 8;
    for (int k = 0; k < TC_KB * 16 / 128; k++) {
        const int e = threadIdx.x + k * 128, r = e / cpr, c = (e % cpr) * 8;
        if (r < TC_KB) *(tc_u4 *)(dst + r * TC_LD + c) = f.v[k];
    }
}

// The K and V tiles of keys [j0, j0 + TC_KB) into kv (K rows, then V rows) — from the prefetch
// registers, which then fetch the next tiles, when vec; else staged from memory directly.
__device__ __forceinline__ void tc_kv_tile(__nv_bfloat16 *kv, TcPrefetch &fk, TcPrefetch &fv, const unsigned short *kh,
                                           const unsigned short *vh, int j0, int jend, int T, int D, int Dp, bool vec) {
    if (vec) {
        tc_put(kv, fk, Dp), tc_put(kv + TC_KB * TC_LD, fv, Dp);
        if (j0 + TC_KB < jend) tc_fetch(fk, kh, j0 + TC_KB, T, D, Dp), tc_fetch(fv, vh, j0 + TC_KB, T, D, Dp);
    } else {
        tc_stage(kv, kh, j0, TC_KB, T, D, Dp);
        tc_stage(kv + TC_KB * TC_LD, vh, j0, TC_KB, T, D, Dp);
    }
}

// the warp's 16 rows of a staged (64, Dp) tile (ld TC_LD) as A fragments f[0 .. nf)
__device__ __forceinline__ void tc_frags(tc_frag_a *f, const __nv_bfloat16 *tile, int warp, int nf) {
    for (int c = 0; c < TC_MAXF; c++)
        if (c < nf) wmma::load_matrix_sync(f[c], tile + warp * 16 * TC_LD + c * 16, TC_LD);
}

// a backward step's queries i0 .. i0 + n - 1 of one head (q, dout: (T, D); lse, delta: (T)): bf16 Q
// into qd's first n rows, bf16 dO into the n rows after them (padded as tc_stage), lse and delta into
// ls / dls (0 past T). Block-wide; the caller synchronizes.
__device__ __forceinline__ void tc_stage_step(__nv_bfloat16 *qd, float *ls, float *dls, const unsigned short *q,
                                              const float *dout, const float *lse, const float *delta, int i0,
                                              int n, int T, int D, int Dp) {
    tc_stage(qd, q, i0, n, T, D, Dp);
    tc_stage_f32(qd + n * TC_LD, dout, i0, n, T, D, Dp);
    for (int x = threadIdx.x; x < n; x += blockDim.x) {
        const int i = i0 + x;
        ls[x] = i < T ? lse[i] : 0.0f;
        dls[x] = i < T ? delta[i] : 0.0f;
    }
}

// out (16, 32) fp32, ld TC_SLD = A (16, Dp) (fragments) times rows (32, Dp) of shared memory, transposed
__device__ __forceinline__ void tc_abt(float *out, const tc_frag_a *a, const __nv_bfloat16 *rows, int nf) {
    for (int n = 0; n < 2; n++) {
        tc_frag_c acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int c = 0; c < TC_MAXF; c++) {
            if (c >= nf) break;
            tc_frag_bt b;
            wmma::load_matrix_sync(b, rows + n * 16 * TC_LD + c * 16, TC_LD);
            wmma::mma_sync(acc, a[c], b, acc);
        }
        wmma::store_matrix_sync(out + n * 16, acc, TC_SLD, wmma::mem_row_major);
    }
}

// acc[n] += P (16, 32) bf16 in shared memory (ld TC_PLD) times rows (32, Dp) of shared memory
__device__ __forceinline__ void tc_pv(tc_frag_c *acc, const __nv_bfloat16 *p, const __nv_bfloat16 *rows, int nf) {
    for (int kk = 0; kk < 2; kk++) {
        tc_frag_a a;
        wmma::load_matrix_sync(a, p + kk * 16, TC_PLD);
        for (int n = 0; n < TC_MAXF; n++) {
            if (n >= nf) break;
            tc_frag_b b;
            wmma::load_matrix_sync(b, rows + kk * 16 * TC_LD + n * 16, TC_LD);
            wmma::mma_sync(acc[n], a, b, acc[n]);
        }
    }
}

// the warp's 16 rows of acc (16, Dp) times mul into dst (T, D) rows row0 .. (rows past T and
// columns past D dropped; fp32, or bf16 bits: tc_st), through the warp's score tile
// (tile: 16 rows of ld floats, ld >= 16)
template <typename OT>
__device__ __forceinline__ void tc_write(OT *dst, const tc_frag_c *acc, float *tile, int ld, float mul, int row0,
                                         int T, int D, int nf, int lane) {
    const int r = lane >> 1, half = lane & 1, i = row0 + r;
    for (int n = 0; n < TC_MAXF; n++) {
        if (n >= nf) break;
        wmma::store_matrix_sync(tile, acc[n], ld, wmma::mem_row_major);
        __syncwarp();
        for (int c = 0; c < 8; c++) {
            const int d = n * 16 + half * 8 + c;
            if (i < T && d < D) tc_st(&dst[(long long)i * D + d], mul * tile[r * ld + half * 8 + c]);
        }
        __syncwarp();
    }
}

// shapes (and the launch's 128 threads) these kernels handle (whole blocks return otherwise,
// before any barrier)
__device__ __forceinline__ bool tc_shape_ok(int T, int D, int Hq, int Hkv) {
    return T >= 1 && D >= 1 && D <= 16 * TC_MAXF && Hkv >= 1 && Hq >= Hkv && Hq % Hkv == 0 && blockDim.x == 128 &&
           blockDim.y == 1 && blockDim.z == 1;
}

__device__ __forceinline__ bool tc_visible(int i, int j, int T, int causal, const int *sg, int si, const float *km) {
    return i < T && j < T && (!causal || j <= i) && (!sg || sg[j] == si) && (!km || km[j] != 0.0f);
}

// The backward's P^T and dS^T of this lane's key row j (row r of the warp's tiles) for its half
// (the lane pair splits the step's N queries from i0: N / 2 each): P = exp(scale S - lse) where
// query i sees key j (0 elsewhere), pt = bf16(P), dst = bf16(P (dP - delta)). st / dpt hold S^T and
// dP^T (row stride SLD), pt / dst row stride PLD; ls / dls the step's lse and delta. The dkdv
// kernel's steps are TC_KB queries, the fused kernel's TC_QB.
template <int N, int SLD, int PLD>
__device__ __forceinline__ void tc_pds_t(__nv_bfloat16 *pt, __nv_bfloat16 *dst, const float *st, const float *dpt,
                                         const float *ls, const float *dls, int i0, int j, int r, int half, int T,
                                         int causal, const int *sg, const float *km, float scale) {
    const int il = i0 + half * (N / 2);   // this lane's first query
    const bool all = !sg && !km && j < T && il + N / 2 - 1 < T && (!causal || j <= il);
    for (int c = 0; c < N / 2; c++) {
        const int x = half * (N / 2) + c, i = i0 + x, e = r * SLD + x;
        const int si = sg && i < T ? sg[i] : 0;
        const float p = all || tc_visible(i, j, T, causal, sg, si, km) ? expf(scale * st[e] - ls[x]) : 0.0f;
        pt[r * PLD + x] = tc_bf16(p);
        dst[r * PLD + x] = tc_bf16(p * (dpt[e] - dls[x]));
    }
}

template <typename OT>   // float, or unsigned short (bf16 bits)
__device__ __forceinline__ void tc_forward(OT *out, float *lse, const unsigned short *q, const unsigned short *k,
                                           const unsigned short *v, const int *seg, const float *key_mask, int T,
                                           int D, int Hq, int Hkv, float scale, int causal) {
    if (!tc_shape_ok(T, D, Hq, Hkv)) return;   // the launcher checks; never out of bounds
    __shared__ __align__(32) __nv_bfloat16 kv[2 * TC_KB * TC_LD];    // Q staging (64 rows), then K (32) and V (32)
    __shared__ __align__(32) float sbuf[4][16 * TC_SLD];             // per warp: S (16, 32)
    __shared__ __align__(32) __nv_bfloat16 pbuf[4][16 * TC_PLD];     // per warp: bf16 P (16, 32)
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r = lane >> 1, half = lane & 1;
    const long long b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv);
    const int q0 = blockIdx.x * TC_ROWS, w0 = q0 + warp * 16, i = w0 + r;   // this lane's query row
    const int Dp = (D + 15) & ~15, nf = Dp / 16;
    const unsigned short *kh = k + (b * Hkv + hk) * T * (long long)D, *vh = v + (b * Hkv + hk) * T * (long long)D;
    const int *sg = seg ? seg + b * T : 0;                 // (T) this row's segments
    const float *km = key_mask ? key_mask + b * T : 0;     // (T) this row's key mask
    const int si = sg && i < T ? sg[i] : 0;
    tc_stage(kv, q + (b * Hq + h) * T * (long long)D, q0, TC_ROWS, T, D, Dp);
    __syncthreads();
    tc_frag_a qf[TC_MAXF];
    tc_frags(qf, kv, warp, nf);
    const int jend = causal ? min(T, q0 + TC_ROWS) : T;
    float *st = sbuf[warp];
    // pass 1: row max and sum of exponentials (online)
    float m = -__int_as_float(0x7f800000), l = 0.0f;
    const bool vec = tc_vec_ok(kh, D) && tc_vec_ok(vh, D);   // K / V tiles prefetched
    TcPrefetch fk, fv;
    if (vec) tc_fetch(fk, kh, 0, T, D, Dp);
    for (int j0 = 0; j0 < jend; j0 += TC_KB) {
        __syncthreads();
        if (vec) {
            tc_put(kv, fk, Dp);
            if (j0 + TC_KB < jend) tc_fetch(fk, kh, j0 + TC_KB, T, D, Dp);
        } else tc_stage(kv, kh, j0, TC_KB, T, D, Dp);
        __syncthreads();
        if (causal && j0 > w0 + 15) continue;   // every key after the warp's rows (warp-uniform)
        tc_abt(st, qf, kv, nf);
        __syncwarp();
        const int jl = j0 + half * 16 + 15;   // this lane's last key
        const bool all = !sg && !km && i < T && jl < T && (!causal || jl <= i);   // no check per key
        float bm = -__int_as_float(0x7f800000);
        for (int c = 0; c < 16; c++) {
            const int j = j0 + half * 16 + c;
            if (all || tc_visible(i, j, T, causal, sg, si, km)) bm = fmaxf(bm, scale * st[r * TC_SLD + half * 16 + c]);
        }
        bm = fmaxf(bm, __shfl_xor_sync(0xffffffffu, bm, 1));
        const float mn = fmaxf(m, bm);
        float add = 0.0f;
        if (mn > -__int_as_float(0x7f800000))
            for (int c = 0; c < 16; c++) {
                const int j = j0 + half * 16 + c;
                if (all || tc_visible(i, j, T, causal, sg, si, km))
                    add += expf(scale * st[r * TC_SLD + half * 16 + c] - mn);
            }
        add += __shfl_xor_sync(0xffffffffu, add, 1);
        if (mn > -__int_as_float(0x7f800000)) l = l * expf(m - mn) + add;
        m = mn;
        __syncwarp();
    }
    const float li = l > 0.0f ? m + logf(l) : __int_as_float(0x7f800000);   // no key seen: +inf
    if (half == 0 && i < T) lse[(b * Hq + h) * T + i] = li;
    // pass 2: P = exp(S - lse) rounded to bf16, out += P V
    tc_frag_c acc[TC_MAXF];
    for (int c = 0; c < TC_MAXF; c++) wmma::fill_fragment(acc[c], 0.0f);
    __nv_bfloat16 *pt = pbuf[warp];
    if (vec) tc_fetch(fk, kh, 0, T, D, Dp), tc_fetch(fv, vh, 0, T, D, Dp);
    for (int j0 = 0; j0 < jend; j0 += TC_KB) {
        __syncthreads();
        tc_kv_tile(kv, fk, fv, kh, vh, j0, jend, T, D, Dp, vec);
        __syncthreads();
        if (causal && j0 > w0 + 15) continue;
        tc_abt(st, qf, kv, nf);
        __syncwarp();
        const int jl = j0 + half * 16 + 15;
        const bool all = !sg && !km && i < T && jl < T && (!causal || jl <= i);
        for (int c = 0; c < 16; c++) {
            const int j = j0 + half * 16 + c;
            const float s_ = scale * st[r * TC_SLD + half * 16 + c];
            const float p = all || tc_visible(i, j, T, causal, sg, si, km) ? expf(s_ - li) : 0.0f;
            pt[r * TC_PLD + half * 16 + c] = tc_bf16(p);
        }
        __syncwarp();
        tc_pv(acc, pt, kv + TC_KB * TC_LD, nf);
    }
    tc_write(out + (b * Hq + h) * T * (long long)D, acc, st, TC_SLD, 1.0f, w0, T, D, nf, lane);
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_tc_forward(
    float *out,                 // (B, Hq, T, D)
    float *lse,                 // (B, Hq, T)
    const unsigned short *q,    // (B, Hq, T, D) bf16
    const unsigned short *k,    // (B, Hkv, T, D) bf16
    const unsigned short *v,    // (B, Hkv, T, D) bf16
    const int *seg,             // (B, T) segment ids, or NULL
    const float *key_mask,      // (B, T) 0 = padding key, or NULL
    int T, int D, int Hq, int Hkv, float scale, int causal)
{
    tc_forward(out, lse, q, k, v, seg, key_mask, T, D, Hq, Hkv, scale, causal);
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_tc_forward_bf16(
    unsigned short *out,        // (B, Hq, T, D) bf16
    float *lse,                 // (B, Hq, T)
    const unsigned short *q,    // (B, Hq, T, D) bf16
    const unsigned short *k,    // (B, Hkv, T, D) bf16
    const unsigned short *v,    // (B, Hkv, T, D) bf16
    const int *seg,             // (B, T) segment ids, or NULL
    const float *key_mask,      // (B, T) 0 = padding key, or NULL
    int T, int D, int Hq, int Hkv, float scale, int causal)
{
    tc_forward(out, lse, q, k, v, seg, key_mask, T, D, Hq, Hkv, scale, causal);
}

// delta_i = dO_i . bf16(O_i) (fp32) of row i of a (T, D) head, the lane pair (half 0 / 1) splitting
// the columns by parity, then their two sums added (both lanes get it; 0 past T). The dq kernel and
// the delta kernel both compute it so: the split and fused backwards see the same delta bits.
template <typename OT>
__device__ __forceinline__ float tc_delta_row(const OT *out, const float *dout, int i, int T, int D, int half) {
    float dl = 0.0f;
    if (i < T)
        for (int d = half; d < D; d += 2) dl += dout[(long long)i * D + d] * tc_o(&out[(long long)i * D + d]);
    return dl + __shfl_xor_sync(0xffffffffu, dl, 1);
}

template <typename OT>   // O: float, or unsigned short (bf16 bits)
__device__ __forceinline__ void tc_backward_dq(float *dq, float *delta, const unsigned short *q,
                                               const unsigned short *k, const unsigned short *v, const OT *out,
                                               const float *dout, const float *lse, const int *seg,
                                               const float *key_mask, int T, int D, int Hq, int Hkv, float scale,
                                               int causal) {
    if (!tc_shape_ok(T, D, Hq, Hkv)) return;   // the launcher checks; never out of bounds
    __shared__ __align__(32) __nv_bfloat16 kv[2 * TC_KB * TC_LD];    // Q / dO staging, then K (32) and V (32)
    __shared__ __align__(32) float sbuf[4][16 * TC_SLD];             // per warp: S (16, 32)
    __shared__ __align__(32) float dpbuf[4][16 * TC_SLD];            // per warp: dP (16, 32)
    __shared__ __align__(32) __nv_bfloat16 pbuf[4][16 * TC_PLD];     // per warp: bf16 dS (16, 32)
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r = lane >> 1, half = lane & 1;
    const long long b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv);
    const int q0 = blockIdx.x * TC_ROWS, w0 = q0 + warp * 16, i = w0 + r;
    const int Dp = (D + 15) & ~15, nf = Dp / 16;
    const long long ho = (b * Hq + h) * T * (long long)D;   // this query head's (T, D) matrices
    const unsigned short *kh = k + (b * Hkv + hk) * T * (long long)D, *vh = v + (b * Hkv + hk) * T * (long long)D;
    const int *sg = seg ? seg + b * T : 0;
    const float *km = key_mask ? key_mask + b * T : 0;
    const int si = sg && i < T ? sg[i] : 0;
    // delta_i = dO_i . bf16(O_i) (fp32): the lane pair of row i splits the columns
    const float dl = tc_delta_row(out + ho, dout + ho, i, T, D, half);
    if (half == 0 && i < T) delta[(b * Hq + h) * T + i] = dl;
    const float li = i < T ? lse[(b * Hq + h) * T + i] : 0.0f;
    tc_frag_a qf[TC_MAXF], of[TC_MAXF];
    tc_stage(kv, q + ho, q0, TC_ROWS, T, D, Dp);
    __syncthreads();
    tc_frags(qf, kv, warp, nf);
    __syncthreads();
    tc_stage_f32(kv, dout + ho, q0, TC_ROWS, T, D, Dp);
    __syncthreads();
    tc_frags(of, kv, warp, nf);
    tc_frag_c acc[TC_MAXF];
    for (int c = 0; c < TC_MAXF; c++) wmma::fill_fragment(acc[c], 0.0f);
    const int jend = causal ? min(T, q0 + TC_ROWS) : T;
    float *st = sbuf[warp], *dpt = dpbuf[warp];
    __nv_bfloat16 *pt = pbuf[warp];
    const bool vec = tc_vec_ok(kh, D) && tc_vec_ok(vh, D);   // K / V tiles prefetched
    TcPrefetch fk, fv;
    if (vec) tc_fetch(fk, kh, 0, T, D, Dp), tc_fetch(fv, vh, 0, T, D, Dp);
    for (int j0 = 0; j0 < jend; j0 += TC_KB) {
        __syncthreads();
        tc_kv_tile(kv, fk, fv, kh, vh, j0, jend, T, D, Dp, vec);
        __syncthreads();
        if (causal && j0 > w0 + 15) continue;
        tc_abt(st, qf, kv, nf);                   // S = Q K^T
        tc_abt(dpt, of, kv + TC_KB * TC_LD, nf);  // dP = bf16(dO) V^T
        __syncwarp();
        const int jl = j0 + half * 16 + 15;
        const bool all = !sg && !km && i < T && jl < T && (!causal || jl <= i);
        for (int c = 0; c < 16; c++) {
            const int j = j0 + half * 16 + c, e = r * TC_SLD + half * 16 + c;
            const float p = all || tc_visible(i, j, T, causal, sg, si, km) ? expf(scale * st[e] - li) : 0.0f;
            pt[r * TC_PLD + half * 16 + c] = tc_bf16(p * (dpt[e] - dl));
        }
        __syncwarp();
        tc_pv(acc, pt, kv, nf);                   // dQ += bf16(dS) K
    }
    tc_write(dq + ho, acc, st, TC_SLD, scale, w0, T, D, nf, lane);
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_tc_backward_dq(
    float *dq,                  // (B, Hq, T, D)
    float *delta,               // (B, Hq, T): dO_i . bf16(O_i), written for the dkdv kernel
    const unsigned short *q,    // (B, Hq, T, D) bf16
    const unsigned short *k,    // (B, Hkv, T, D) bf16
    const unsigned short *v,    // (B, Hkv, T, D) bf16
    const float *out, const float *dout,   // (B, Hq, T, D)
    const float *lse,           // (B, Hq, T)
    const int *seg,             // (B, T) segment ids, or NULL
    const float *key_mask,      // (B, T) 0 = padding key, or NULL
    int T, int D, int Hq, int Hkv, float scale, int causal)
{
    tc_backward_dq(dq, delta, q, k, v, out, dout, lse, seg, key_mask, T, D, Hq, Hkv, scale, causal);
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_tc_backward_dq_bf16(
    float *dq,                  // (B, Hq, T, D)
    float *delta,               // (B, Hq, T): dO_i . O_i, written for the dkdv kernel
    const unsigned short *q,    // (B, Hq, T, D) bf16
    const unsigned short *k,    // (B, Hkv, T, D) bf16
    const unsigned short *v,    // (B, Hkv, T, D) bf16
    const unsigned short *out,  // (B, Hq, T, D) bf16 (trlc_attention_tc_forward_bf16's)
    const float *dout,          // (B, Hq, T, D)
    const float *lse,           // (B, Hq, T)
    const int *seg,             // (B, T) segment ids, or NULL
    const float *key_mask,      // (B, T) 0 = padding key, or NULL
    int T, int D, int Hq, int Hkv, float scale, int causal)
{
    tc_backward_dq(dq, delta, q, k, v, out, dout, lse, seg, key_mask, T, D, Hq, Hkv, scale, causal);
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_tc_backward_dkdv(
    float *dk, float *dv,       // (B, Hkv, T, D), summed over the group's query heads
    const unsigned short *q,    // (B, Hq, T, D) bf16
    const unsigned short *k,    // (B, Hkv, T, D) bf16
    const unsigned short *v,    // (B, Hkv, T, D) bf16
    const float *dout,          // (B, Hq, T, D)
    const float *lse, const float *delta,   // (B, Hq, T)
    const int *seg,             // (B, T) segment ids, or NULL
    const float *key_mask,      // (B, T) 0 = padding key, or NULL
    int T, int D, int Hq, int Hkv, float scale, int causal)
{
    if (!tc_shape_ok(T, D, Hq, Hkv)) return;   // the launcher checks; never out of bounds
    __shared__ __align__(32) __nv_bfloat16 qd[2 * TC_KB * TC_LD];    // K / V staging, then Q (32) and bf16 dO (32)
    __shared__ __align__(32) float sbuf[4][16 * TC_SLD];             // per warp: S^T (16 keys, 32 queries)
    __shared__ __align__(32) float dpbuf[4][16 * TC_SLD];            // per warp: dP^T
    __shared__ __align__(32) __nv_bfloat16 pbuf[4][16 * TC_PLD];     // per warp: bf16 P^T
    __shared__ __align__(32) __nv_bfloat16 dsbuf[4][16 * TC_PLD];    // per warp: bf16 dS^T
    __shared__ float ls[TC_KB], dls[TC_KB];                         // lse, delta of the query tile
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r = lane >> 1, half = lane & 1;
    const long long b = blockIdx.z, hk = blockIdx.y;
    const int group = Hq / Hkv;
    const int k0 = blockIdx.x * TC_ROWS, w0 = k0 + warp * 16, j = w0 + r;   // this lane's key row
    const int Dp = (D + 15) & ~15, nf = Dp / 16;
    const long long ko = (b * Hkv + hk) * T * (long long)D;
    const int *sg = seg ? seg + b * T : 0;
    const float *km = key_mask ? key_mask + b * T : 0;
    tc_frag_a kf[TC_MAXF], vf[TC_MAXF];
    tc_stage(qd, k + ko, k0, TC_ROWS, T, D, Dp);
    __syncthreads();
    tc_frags(kf, qd, warp, nf);
    __syncthreads();
    tc_stage(qd, v + ko, k0, TC_ROWS, T, D, Dp);
    __syncthreads();
    tc_frags(vf, qd, warp, nf);
    tc_frag_c dka[TC_MAXF], dva[TC_MAXF];
    for (int c = 0; c < TC_MAXF; c++) wmma::fill_fragment(dka[c], 0.0f), wmma::fill_fragment(dva[c], 0.0f);
    float *st = sbuf[warp], *dpt = dpbuf[warp];
    __nv_bfloat16 *pt = pbuf[warp], *dst = dsbuf[warp];
    const int istart = causal ? k0 - k0 % TC_KB : 0;
    for (int g = 0; g < group; g++) {
        const long long h = hk * group + g, ho = (b * Hq + h) * T * (long long)D;
        for (int i0 = istart; i0 < T; i0 += TC_KB) {
            __syncthreads();
            tc_stage_step(qd, ls, dls, q + ho, dout + ho, lse + (b * Hq + h) * T, delta + (b * Hq + h) * T,
                          i0, TC_KB, T, D, Dp);
            __syncthreads();
            if (causal && i0 + TC_KB - 1 < w0) continue;   // every query before the warp's keys
            tc_abt(st, kf, qd, nf);                    // S^T = K Q^T
            tc_abt(dpt, vf, qd + TC_KB * TC_LD, nf);   // dP^T = V bf16(dO)^T
            __syncwarp();
            tc_pds_t<TC_KB, TC_SLD, TC_PLD>(pt, dst, st, dpt, ls, dls, i0, j, r, half, T, causal, sg, km, scale);
            __syncwarp();
            tc_pv(dva, pt, qd + TC_KB * TC_LD, nf);   // dV += bf16(P)^T bf16(dO)
            tc_pv(dka, dst, qd, nf);                  // dK += bf16(dS)^T Q
        }
    }
    tc_write(dk + ko, dka, st, TC_SLD, scale, w0, T, D, nf, lane);
    tc_write(dv + ko, dva, st, TC_SLD, 1.0f, w0, T, D, nf, lane);
}

// ---- the fused backward (flash-attention 2's schedule): delta first, then one kernel over key
// blocks that recomputes S and dP once and makes dV, dK and each key block's share of dQ
// (5 products in all instead of the split path's 7), dQ added with fp32 atomics.

template <typename OT>   // O: float, or unsigned short (bf16 bits)
__device__ __forceinline__ void tc_backward_delta(float *delta, const OT *out, const float *dout, int T, int D,
                                                  int Hq) {
    if (T < 1 || D < 1 || Hq < 1 || blockDim.x != 128 || blockDim.y != 1 || blockDim.z != 1) return;
    const int lane = threadIdx.x & 31, half = lane & 1;
    const int i = blockIdx.x * TC_ROWS + (int)threadIdx.x / 2;   // this lane pair's row
    const long long bh = (long long)blockIdx.z * Hq + blockIdx.y, ho = bh * T * (long long)D;
    const float dl = tc_delta_row(out + ho, dout + ho, i, T, D, half);
    if (half == 0 && i < T) delta[bh * T + i] = dl;
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_tc_backward_delta(
    float *delta,               // (B, Hq, T): dO_i . bf16(O_i)
    const float *out,           // (B, Hq, T, D)
    const float *dout,          // (B, Hq, T, D)
    int T, int D, int Hq)
{
    tc_backward_delta(delta, out, dout, T, D, Hq);
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_tc_backward_delta_bf16(
    float *delta,               // (B, Hq, T): dO_i . O_i
    const unsigned short *out,  // (B, Hq, T, D) bf16 (trlc_attention_tc_forward_bf16's)
    const float *dout,          // (B, Hq, T, D)
    int T, int D, int Hq)
{
    tc_backward_delta(delta, out, dout, T, D, Hq);
}

#define TC_QB 16     // queries per step of the fused kernel
#define TC_FLD 20    // float row stride of its per-warp (16, 16) tiles
#define TC_BLD 24    // bf16 row stride of its per-warp P^T / dS^T tiles (a multiple of 8)

// whether warp rows (keys) from kw0 see none of the queries i0 .. i0 + TC_QB - 1 (causal): the
// warp skips the step and its dS^T tile is left out of dQ (the same test at both places)
__device__ __forceinline__ bool tc_fused_skip(int causal, int i0, int kw0) { return causal && i0 + TC_QB - 1 < kw0; }

extern "C" __global__ void __launch_bounds__(128) trlc_attention_tc_backward_fused(
    float *dq,                  // (B, Hq, T, D): zeroed before; each key block adds its share (atomics)
    float *dk, float *dv,       // (B, Hkv, T, D), summed over the group's query heads
    const unsigned short *q,    // (B, Hq, T, D) bf16
    const unsigned short *k,    // (B, Hkv, T, D) bf16
    const unsigned short *v,    // (B, Hkv, T, D) bf16
    const float *dout,          // (B, Hq, T, D)
    const float *lse, const float *delta,   // (B, Hq, T); delta from trlc_attention_tc_backward_delta(_bf16)
    const int *seg,             // (B, T) segment ids, or NULL
    const float *key_mask,      // (B, T) 0 = padding key, or NULL
    int T, int D, int Hq, int Hkv, float scale, int causal)
{
    if (!tc_shape_ok(T, D, Hq, Hkv)) return;   // the launcher checks; never out of bounds
    __shared__ __align__(32) __nv_bfloat16 ks[TC_ROWS * TC_LD];      // V staging, then the block's K (64 keys)
    __shared__ __align__(32) __nv_bfloat16 qd[2 * TC_QB * TC_LD];    // Q (16 queries), bf16 dO (16)
    __shared__ __align__(32) float sbuf[4][16 * TC_FLD];             // per warp: S^T (16 keys, 16 queries); dQ tile
    __shared__ __align__(32) float dpbuf[4][16 * TC_FLD];            // per warp: dP^T
    __shared__ __align__(32) __nv_bfloat16 pbuf[4][16 * TC_BLD];     // per warp: bf16 P^T
    __shared__ __align__(32) __nv_bfloat16 dsbuf[4][16 * TC_BLD];    // per warp: bf16 dS^T (all warps read it)
    __shared__ float ls[TC_QB], dls[TC_QB];                         // lse, delta of the query tile
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r = lane >> 1, half = lane & 1;
    const long long b = blockIdx.z, hk = blockIdx.y;
    const int group = Hq / Hkv;
    const int k0 = blockIdx.x * TC_ROWS, w0 = k0 + warp * 16, j = w0 + r;   // this lane's key row
    const int Dp = (D + 15) & ~15, nf = Dp / 16;
    const long long ko = (b * Hkv + hk) * T * (long long)D;
    const int *sg = seg ? seg + b * T : 0;
    const float *km = key_mask ? key_mask + b * T : 0;
    tc_frag_a vf[TC_MAXF];
    tc_stage(ks, v + ko, k0, TC_ROWS, T, D, Dp);
    __syncthreads();
    tc_frags(vf, ks, warp, nf);
    __syncthreads();
    tc_stage(ks, k + ko, k0, TC_ROWS, T, D, Dp);   // stays: the A operand of S^T, the B operand of dQ
    tc_frag_c dka[TC_MAXF], dva[TC_MAXF];
    for (int c = 0; c < TC_MAXF; c++) wmma::fill_fragment(dka[c], 0.0f), wmma::fill_fragment(dva[c], 0.0f);
    float *st = sbuf[warp], *dpt = dpbuf[warp];
    __nv_bfloat16 *pt = pbuf[warp], *dst = dsbuf[warp];
    const __nv_bfloat16 *kw = ks + warp * 16 * TC_LD, *qt = qd, *ot = qd + TC_QB * TC_LD;
    const int istart = causal ? k0 : 0;   // queries before the block's first key see none of its keys
    for (int g = 0; g < group; g++) {
        const long long h = hk * group + g, ho = (b * Hq + h) * T * (long long)D;
        for (int i0 = istart; i0 < T; i0 += TC_QB) {
            __syncthreads();   // the last step's readers of qd, dsbuf (and the K staging) are done
            tc_stage_step(qd, ls, dls, q + ho, dout + ho, lse + (b * Hq + h) * T, delta + (b * Hq + h) * T,
                          i0, TC_QB, T, D, Dp);
            __syncthreads();
            if (!tc_fused_skip(causal, i0, w0)) {
                tc_frag_c sacc, dpacc;   // S^T = K Q^T, dP^T = V bf16(dO)^T
                wmma::fill_fragment(sacc, 0.0f), wmma::fill_fragment(dpacc, 0.0f);
                for (int c = 0; c < TC_MAXF; c++) {
                    if (c >= nf) break;
                    tc_frag_a a;
                    tc_frag_bt bq, bo;
                    wmma::load_matrix_sync(a, kw + c * 16, TC_LD);
                    wmma::load_matrix_sync(bq, qt + c * 16, TC_LD);
                    wmma::mma_sync(sacc, a, bq, sacc);
                    wmma::load_matrix_sync(bo, ot + c * 16, TC_LD);
                    wmma::mma_sync(dpacc, vf[c], bo, dpacc);
                }
                wmma::store_matrix_sync(st, sacc, TC_FLD, wmma::mem_row_major);
                wmma::store_matrix_sync(dpt, dpacc, TC_FLD, wmma::mem_row_major);
                __syncwarp();
                tc_pds_t<TC_QB, TC_FLD, TC_BLD>(pt, dst, st, dpt, ls, dls, i0, j, r, half, T, causal, sg, km, scale);
                __syncwarp();
                tc_frag_a ap, as;
                wmma::load_matrix_sync(ap, pt, TC_BLD);
                wmma::load_matrix_sync(as, dst, TC_BLD);
                for (int n = 0; n < TC_MAXF; n++) {
                    if (n >= nf) break;
                    tc_frag_b bo, bq;
                    wmma::load_matrix_sync(bo, ot + n * 16, TC_LD);
                    wmma::mma_sync(dva[n], ap, bo, dva[n]);   // dV += bf16(P)^T bf16(dO)
                    wmma::load_matrix_sync(bq, qt + n * 16, TC_LD);
                    wmma::mma_sync(dka[n], as, bq, dka[n]);   // dK += bf16(dS)^T Q
                }
            }
            __syncthreads();   // every warp's dS^T is in dsbuf
            // dQ (16 queries, Dp) += bf16(dS) K over the block's 64 keys: warp w makes the column
            // tiles w, w + 4, each summed over the (non-skipped) warps' 16-key chunks in order,
            // then scale times it added into dq (fp32 atomics: other key blocks add to these rows)
            float *dqh = dq + ho;
            for (int n = warp; n < nf; n += 4) {
                tc_frag_c acc;
                wmma::fill_fragment(acc, 0.0f);
                for (int kc = 0; kc < 4; kc++) {
                    if (tc_fused_skip(causal, i0, k0 + kc * 16)) continue;   // block-uniform
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> a;   // (q, key) = dS^T[key][q]
                    tc_frag_b bk;
                    wmma::load_matrix_sync(a, dsbuf[kc], TC_BLD);
                    wmma::load_matrix_sync(bk, ks + kc * 16 * TC_LD + n * 16, TC_LD);
                    wmma::mma_sync(acc, a, bk, acc);
                }
                wmma::store_matrix_sync(st, acc, TC_FLD, wmma::mem_row_major);
                __syncwarp();
                const int i = i0 + r;
                for (int c = 0; c < 8; c++) {
                    const int d = n * 16 + half * 8 + c;
                    if (i < T && d < D) atomicAdd(&dqh[(long long)i * D + d], scale * st[r * TC_FLD + half * 8 + c]);
                }
                __syncwarp();
            }
        }
    }
    tc_write(dk + ko, dka, st, TC_FLD, scale, w0, T, D, nf, lane);
    tc_write(dv + ko, dva, st, TC_FLD, 1.0f, w0, T, D, nf, lane);
}
