// attention.cu — causal (or full) scaled-dot-product attention with grouped KV heads, forward and
// backward, flash-style: scores are computed tile by tile with an online softmax and never stored
// (no T x T matrix). Query head h reads KV head h / (Hq / Hkv). One warp per row: each lane holds
// D / 32 elements of the row (D <= 128, a multiple of 32 or less than 32 with idle lanes), dot
// products are warp reductions; key/value tiles of 32 rows are staged in shared memory.
//   forward:  o_i = sum_j softmax_j(s_ij) v_j,  s_ij = scale q_i.k_j (j <= i when causal);
//             lse_i = log sum_j exp(s_ij) is kept for the backward.
//   backward: delta_i = dO_i.o_i; p_ij = exp(s_ij - lse_i); ds_ij = p_ij (dO_i.v_j - delta_i)
//             dq_i = scale sum_j ds_ij k_j         (trlc_attention_backward_dq, one warp per query)
//             dk_j = scale sum_i ds_ij q_i, dv_j = sum_i p_ij dO_i   summed over the query heads of
//             the group (trlc_attention_backward_dkdv, one warp per key; no atomics)
// Packed rows: seg (B, T) segment ids, or NULL; query i sees key j only where seg[j] == seg[i]
// (several sequences in one row never attend to each other; the CPU sdpa's `segmented` input).
// Key mask: key_mask (B, T) floats, or NULL; key j with key_mask[j] == 0 is a padding key nobody
// attends to (the CPU sdpa's key-mask input; an i32 mask must be converted to f32 first). A query
// that sees no key at all (a left-padded row under the causal mask) gets output 0, lse = +inf (so
// that every p = exp(s - lse) of the backward is 0) and zero gradients, as the interpreter gives.
// C reference: kernels_ref.c (the same loops). Launch: forward and dq grid (ceil(T/4), Hq, B),
// dkdv grid (ceil(T/4), Hkv, B); 128 threads (4 warps) per block.
#define ATT_TILE 32
#define ATT_MAXD 128
#define ATT_WARPS 4

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// dot of a row held in registers (elements lane, lane + 32, ...) with a shared-memory row
__device__ __forceinline__ float row_dot(const float *r, const float *sm, int D, int lane) {
    float s = 0.0f;
    for (int k = 0; k < ATT_MAXD / 32; k++) {
        const int d = lane + 32 * k;
        if (d < D) s += r[k] * sm[d];
    }
    return warp_sum(s);
}

// rows r0 .. r0 + ATT_TILE - 1 of one head's (T, D) matrices in x and y (the head's first row:
// row h of x viewed as (rows, D)) into xs and ys, zeros past T (block-wide; the caller synchronizes)
__device__ __forceinline__ void att_stage2(float (*xs)[ATT_MAXD], float (*ys)[ATT_MAXD], const float *x, const float *y,
                                           long long h, int r0, int T, int D) {
    for (int e = threadIdx.x; e < ATT_TILE * D; e += blockDim.x) {
        const int r = e / D, d = e % D, i = r0 + r;
        const long long off = (h + i) * (long long)D + d;
        xs[r][d] = i < T ? x[off] : 0.0f;
        ys[r][d] = i < T ? y[off] : 0.0f;
    }
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_forward(
    float *out,                 // (B, Hq, T, D)
    float *lse,                 // (B, Hq, T)
    const float *q,             // (B, Hq, T, D)
    const float *k,             // (B, Hkv, T, D)
    const float *v,             // (B, Hkv, T, D)
    const int *seg,             // (B, T) segment ids, or NULL
    const float *key_mask,      // (B, T) 0 = padding key, or NULL
    int T, int D, int Hq, int Hkv, float scale, int causal)
{
    __shared__ float ks[ATT_TILE][ATT_MAXD], vs[ATT_TILE][ATT_MAXD];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv);
    const int i = blockIdx.x * ATT_WARPS + warp;           // this warp's query row
    const int *sg = seg ? seg + b * T : 0;                 // (T) this row's segments
    const float *km = key_mask ? key_mask + b * T : 0;     // (T) this row's key mask
    const int si = sg && i < T ? sg[i] : 0;
    const int row_last = min(T - 1, (int)(blockIdx.x * ATT_WARPS + ATT_WARPS - 1));
    const float *qi = q + ((b * Hq + h) * T + (i < T ? i : 0)) * (long long)D;
    float qr[ATT_MAXD / 32], acc[ATT_MAXD / 32];
    for (int c = 0; c < ATT_MAXD / 32; c++) {
        const int d = lane + 32 * c;
        qr[c] = (i < T && d < D) ? qi[d] : 0.0f;
        acc[c] = 0.0f;
    }
    float m = -__int_as_float(0x7f800000), l = 0.0f;
    const int jend = causal ? row_last + 1 : T;
    for (int j0 = 0; j0 < jend; j0 += ATT_TILE) {
        __syncthreads();
        att_stage2(ks, vs, k, v, (b * Hkv + hk) * T, j0, T, D);
        __syncthreads();
        if (i >= T) continue;
        const int jn = min(ATT_TILE, (causal ? i + 1 : T) - j0);
        for (int r = 0; r < jn; r++) {
            if ((sg && sg[j0 + r] != si) || (km && km[j0 + r] == 0.0f)) continue;   // warp-uniform
            const float s = scale * row_dot(qr, ks[r], D, lane);
            const float mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
            l = l * corr + p;
            for (int c = 0; c < ATT_MAXD / 32; c++) {
                const int d = lane + 32 * c;
                if (d < D) acc[c] = acc[c] * corr + p * vs[r][d];
            }
            m = mn;
        }
    }
    if (i >= T) return;
    float *oi = out + ((b * Hq + h) * T + i) * (long long)D;
    for (int c = 0; c < ATT_MAXD / 32; c++) {
        const int d = lane + 32 * c;
        if (d < D) oi[d] = l > 0.0f ? acc[c] / l : 0.0f;   // no key seen: 0
    }
    if (lane == 0) lse[(b * Hq + h) * T + i] = l > 0.0f ? m + logf(l) : __int_as_float(0x7f800000);
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_backward_dq(
    float *dq,                  // (B, Hq, T, D)
    float *delta,               // (B, Hq, T): dO_i . o_i, written for the dkdv kernel
    const float *q, const float *k, const float *v,
    const float *out, const float *dout,   // (B, Hq, T, D)
    const float *lse,           // (B, Hq, T)
    const int *seg,             // (B, T) segment ids, or NULL
    const float *key_mask,      // (B, T) 0 = padding key, or NULL
    int T, int D, int Hq, int Hkv, float scale, int causal)
{
    __shared__ float ks[ATT_TILE][ATT_MAXD], vs[ATT_TILE][ATT_MAXD];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv);
    const int i = blockIdx.x * ATT_WARPS + warp;
    const int *sg = seg ? seg + b * T : 0;                 // (T) this row's segments
    const float *km = key_mask ? key_mask + b * T : 0;     // (T) this row's key mask
    const int si = sg && i < T ? sg[i] : 0;
    const int row_last = min(T - 1, (int)(blockIdx.x * ATT_WARPS + ATT_WARPS - 1));
    const long long ro = ((b * Hq + h) * T + (i < T ? i : 0)) * (long long)D;
    float qr[ATT_MAXD / 32], dor[ATT_MAXD / 32], dqr[ATT_MAXD / 32];
    float dl = 0.0f;
    for (int c = 0; c < ATT_MAXD / 32; c++) {
        const int d = lane + 32 * c;
        const bool ok = i < T && d < D;
        qr[c] = ok ? q[ro + d] : 0.0f;
        dor[c] = ok ? dout[ro + d] : 0.0f;
        dl += ok ? dor[c] * out[ro + d] : 0.0f;
        dqr[c] = 0.0f;
    }
    dl = warp_sum(dl);
    const float li = i < T ? lse[(b * Hq + h) * T + i] : 0.0f;
    const int jend = causal ? row_last + 1 : T;
    for (int j0 = 0; j0 < jend; j0 += ATT_TILE) {
        __syncthreads();
        att_stage2(ks, vs, k, v, (b * Hkv + hk) * T, j0, T, D);
        __syncthreads();
        if (i >= T) continue;
        const int jn = min(ATT_TILE, (causal ? i + 1 : T) - j0);
        for (int r = 0; r < jn; r++) {
            if ((sg && sg[j0 + r] != si) || (km && km[j0 + r] == 0.0f)) continue;   // warp-uniform
            const float p = expf(scale * row_dot(qr, ks[r], D, lane) - li);
            const float ds = p * (row_dot(dor, vs[r], D, lane) - dl);
            for (int c = 0; c < ATT_MAXD / 32; c++) {
                const int d = lane + 32 * c;
                if (d < D) dqr[c] += ds * scale * ks[r][d];
            }
        }
    }
    if (i >= T) return;
    for (int c = 0; c < ATT_MAXD / 32; c++) {
        const int d = lane + 32 * c;
        if (d < D) dq[ro + d] = dqr[c];
    }
    if (lane == 0) delta[(b * Hq + h) * T + i] = dl;
}

extern "C" __global__ void __launch_bounds__(128) trlc_attention_backward_dkdv(
    float *dk, float *dv,       // (B, Hkv, T, D)
    const float *q, const float *k, const float *v,
    const float *dout,          // (B, Hq, T, D)
    const float *lse, const float *delta,   // (B, Hq, T)
    const int *seg,             // (B, T) segment ids, or NULL
    const float *key_mask,      // (B, T) 0 = padding key, or NULL
    int T, int D, int Hq, int Hkv, float scale, int causal)
{
    __shared__ float qs[ATT_TILE][ATT_MAXD], dos[ATT_TILE][ATT_MAXD];
    __shared__ float ls[ATT_TILE], dls[ATT_TILE];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long b = blockIdx.z, hk = blockIdx.y;
    const int group = Hq / Hkv;
    const int j = blockIdx.x * ATT_WARPS + warp;           // this warp's key row
    const int row_first = blockIdx.x * ATT_WARPS;
    const int *sg = seg ? seg + b * T : 0;                 // (T) this row's segments
    const float *km = key_mask ? key_mask + b * T : 0;     // (T) this row's key mask
    const int sj = sg && j < T ? sg[j] : 0;
    const long long ro = ((b * Hkv + hk) * T + (j < T ? j : 0)) * (long long)D;
    float kr[ATT_MAXD / 32], vr[ATT_MAXD / 32], dkr[ATT_MAXD / 32], dvr[ATT_MAXD / 32];
    for (int c = 0; c < ATT_MAXD / 32; c++) {
        const int d = lane + 32 * c;
        const bool ok = j < T && d < D;
        kr[c] = ok ? k[ro + d] : 0.0f;
        vr[c] = ok ? v[ro + d] : 0.0f;
        dkr[c] = dvr[c] = 0.0f;
    }
    const int istart = causal ? row_first - row_first % ATT_TILE : 0;
    for (int g = 0; g < group; g++) {
        const long long h = hk * group + g;
        for (int i0 = istart; i0 < T; i0 += ATT_TILE) {
            __syncthreads();
            att_stage2(qs, dos, q, dout, (b * Hq + h) * T, i0, T, D);
            for (int r = threadIdx.x; r < ATT_TILE; r += blockDim.x) {
                const int i = i0 + r;
                ls[r] = i < T ? lse[(b * Hq + h) * T + i] : 0.0f;
                dls[r] = i < T ? delta[(b * Hq + h) * T + i] : 0.0f;
            }
            __syncthreads();
            if (j >= T || (km && km[j] == 0.0f)) continue;   // a padding key: dk = dv = 0
            for (int r = 0; r < ATT_TILE; r++) {
                const int i = i0 + r;
                if (i >= T || (causal && i < j) || (sg && sg[i] != sj)) continue;
                // s needs q_i . k_j: q_i in shared memory, k_j in registers (same layout as row_dot)
                float s = 0.0f, dp = 0.0f;
                for (int c = 0; c < ATT_MAXD / 32; c++) {
                    const int d = lane + 32 * c;
                    if (d < D) { s += kr[c] * qs[r][d]; dp += vr[c] * dos[r][d]; }
                }
                s = warp_sum(s);
                dp = warp_sum(dp);
                const float p = expf(scale * s - ls[r]);
                const float ds = p * (dp - dls[r]);
                for (int c = 0; c < ATT_MAXD / 32; c++) {
                    const int d = lane + 32 * c;
                    if (d < D) { dvr[c] += p * dos[r][d]; dkr[c] += ds * scale * qs[r][d]; }
                }
            }
        }
    }
    if (j >= T) return;
    for (int c = 0; c < ATT_MAXD / 32; c++) {
        const int d = lane + 32 * c;
        if (d < D) { dk[ro + d] = dkr[c]; dv[ro + d] = dvr[c]; }
    }
}
