// kernels_ref.c — the C references of kernels/*.cu (see kernels_ref.h). One loop nest per kernel,
// in the kernel's order of operations (the thread / warp / tile structure flattened away).
#include "kernels_ref.h"
#include <math.h>

void trlc_rope_inv_freq(double *inv_freq, int64_t D, double theta, double factor, double low_freq_factor,
                        double high_freq_factor, double original_max_pos) {
    for (int64_t i = 0; i < D / 2; i++) {
        double f = pow(theta, -2.0 * (double)i / (double)D);
        if (factor != 0) {
            double L = original_max_pos, wl = 2.0 * M_PI / f;
            double low_wl = L / low_freq_factor, high_wl = L / high_freq_factor;
            if (wl > low_wl) f = f / factor;
            else if (wl >= high_wl) {
                double s = (L / wl - low_freq_factor) / (high_freq_factor - low_freq_factor);
                f = (1 - s) * f / factor + s * f;
            }
        }
        inv_freq[i] = f;
    }
}

void trlc_rope_ref(float *y, const float *x, const int32_t *pos, const double *inv_freq, int64_t B, int64_t H,
                   int64_t T, int64_t D, int pos_batched, int inverse) {
    int64_t half = D / 2;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t i = 0; i < half; i++) {
                    double p = (double)pos[(pos_batched ? b * T : 0) + t];
                    float c = (float)cos(p * inv_freq[i]), s = (float)(inverse ? -sin(p * inv_freq[i]) : sin(p * inv_freq[i]));
                    int64_t row = ((b * H + h) * T + t) * D;
                    float x1 = x[row + i], x2 = x[row + i + half];
                    y[row + i] = x1 * c - x2 * s;
                    y[row + i + half] = x2 * c + x1 * s;
                }
}

static void lse_merge(float *m, float *s, float m2, float s2) {
    if (m2 > *m) {
        *s = *s * expf(*m - m2) + s2;
        *m = m2;
    } else if (m2 > -INFINITY) {
        *s += s2 * expf(m2 - *m);
    }
}

void trlc_cross_entropy_ref(float *loss, float *lse, const float *logits, const int32_t *labels, int64_t N,
                            int64_t V, int ignore_index, float eps) {
    for (int64_t r = 0; r < N; r++) {
        const float *x = logits + r * V;
        float m = -INFINITY, s = 0, sx = 0;
        for (int64_t j = 0; j < V; j++) {
            lse_merge(&m, &s, x[j], 1.0f);
            sx += x[j];
        }
        float l = m + logf(s);
        lse[r] = l;
        int32_t lab = labels[r];
        if (lab == ignore_index || lab < 0 || lab >= V) loss[r] = 0;
        else loss[r] = (1 - eps) * (l - x[lab]) + eps * (l - sx / (float)V);
    }
}

void trlc_cross_entropy_bwd_ref(float *dlogits, const float *logits, const float *lse, const int32_t *labels,
                                const float *gloss, int64_t N, int64_t V, int ignore_index, float eps) {
    for (int64_t r = 0; r < N; r++) {
        int32_t lab = labels[r];
        int ignored = lab == ignore_index || lab < 0 || lab >= V;
        float g = ignored ? 0.0f : gloss[r];
        for (int64_t j = 0; j < V; j++) {
            float p = expf(logits[r * V + j] - lse[r]);
            dlogits[r * V + j] = g * (p - (j == lab ? 1 - eps : 0) - eps / (float)V);
        }
    }
}

void trlc_adamw_ref(float *p, float *m, float *v, const float *g, int64_t n, float lr, float b1, float b2,
                    float eps, float wd, float bc1, float bc2, float grad_scale) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] = p[i] - lr * (wd * p[i] + (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps));
    }
}

void trlc_adamw_setup(TrlcAdamw *s, double lr, double weight_decay, double beta1, double beta2, double eps,
                      int64_t step) {
    s->decay = weight_decay != 0 ? (float)(1 - lr * weight_decay) : 1.0f;
    s->w1 = (float)(1 - beta1), s->b2 = (float)beta2, s->w2 = (float)(1 - beta2);
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    s->neg_step = (float)(-(lr / bc1));
    s->bc2_sqrt = (float)sqrt(bc2), s->eps = (float)eps;
}

void trlc_sgd_setup(TrlcSgd *s, double lr, double weight_decay, double momentum, double dampening, int nesterov,
                    int first) {
    s->wd = (float)weight_decay, s->mom = (float)momentum, s->damp = (float)(1 - dampening);
    s->neg_lr = (float)(-lr);
    s->use_buf = momentum != 0, s->nesterov = nesterov, s->first = first;
}

static float opt_grad(const float *g, int64_t i, float scale, float coef, int clip) {
    float gi = g[i] * scale;
    return clip ? gi * coef : gi;
}

void trlc_adamw_multi_ref(float *p, const float *g, float *m, float *v, int64_t n, float scale, float coef, int clip,
                          int decay, const TrlcAdamw *s) {
    float dc = decay ? s->decay : 1.0f;
    for (int64_t i = 0; i < n; i++) {
        float gi = opt_grad(g, i, scale, coef, clip), pi = p[i] * dc;
        float mi = m[i] + s->w1 * (gi - m[i]);
        float vi = v[i] * s->b2 + s->w2 * (gi * gi);
        float denom = sqrtf(vi) / s->bc2_sqrt + s->eps;
        p[i] = pi + s->neg_step * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

void trlc_sgd_multi_ref(float *p, const float *g, float *buf, int64_t n, float scale, float coef, int clip, int decay,
                        const TrlcSgd *s) {
    float wd = decay ? s->wd : 0.0f;
    int use_buf = s->use_buf && buf;
    for (int64_t i = 0; i < n; i++) {
        float gi = opt_grad(g, i, scale, coef, clip);
        if (wd != 0) gi = gi + wd * p[i];
        if (use_buf) {
            float b = s->first ? gi : buf[i] * s->mom + s->damp * gi;
            buf[i] = b;
            gi = s->nesterov ? gi + s->mom * b : b;
        }
        p[i] = p[i] + s->neg_lr * gi;
    }
}

static float dot(const float *a, const float *b, int64_t D) {
    float s = 0;
    for (int64_t d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}

void trlc_attention_fwd_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                            const int32_t *seg, const float *key_mask, int64_t B, int64_t Hq, int64_t Hkv, int64_t T,
                            int64_t D, float scale, int causal) {
    float acc[256];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            int64_t hk = h / (Hq / Hkv);
            for (int64_t i = 0; i < T; i++) {
                const float *qi = q + ((b * Hq + h) * T + i) * D;
                float m = -INFINITY, l = 0;
                for (int64_t d = 0; d < D && d < 256; d++) acc[d] = 0;
                for (int64_t j = 0; j < (causal ? i + 1 : T); j++) {
                    if (seg && seg[b * T + j] != seg[b * T + i]) continue;
                    if (key_mask && key_mask[b * T + j] == 0) continue;
                    const float *kj = k + ((b * Hkv + hk) * T + j) * D, *vj = v + ((b * Hkv + hk) * T + j) * D;
                    float s = scale * dot(qi, kj, D), mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
                    l = l * corr + p;
                    for (int64_t d = 0; d < D && d < 256; d++) acc[d] = acc[d] * corr + p * vj[d];
                    m = mn;
                }
                float *oi = out + ((b * Hq + h) * T + i) * D;
                for (int64_t d = 0; d < D && d < 256; d++) oi[d] = l > 0 ? acc[d] / l : 0;   // no key seen: 0
                lse[(b * Hq + h) * T + i] = l > 0 ? m + logf(l) : INFINITY;
            }
        }
}

void trlc_attention_bwd_dq_ref(float *dq, float *delta, const float *q, const float *k, const float *v,
                               const float *out, const float *dout, const float *lse, const int32_t *seg,
                               const float *key_mask, int64_t B, int64_t Hq, int64_t Hkv, int64_t T, int64_t D, float scale,
                               int causal) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            int64_t hk = h / (Hq / Hkv);
            for (int64_t i = 0; i < T; i++) {
                int64_t ro = ((b * Hq + h) * T + i) * D;
                float dl = dot(dout + ro, out + ro, D), li = lse[(b * Hq + h) * T + i];
                for (int64_t d = 0; d < D; d++) dq[ro + d] = 0;
                for (int64_t j = 0; j < (causal ? i + 1 : T); j++) {
                    if (seg && seg[b * T + j] != seg[b * T + i]) continue;
                    if (key_mask && key_mask[b * T + j] == 0) continue;
                    const float *kj = k + ((b * Hkv + hk) * T + j) * D, *vj = v + ((b * Hkv + hk) * T + j) * D;
                    float p = expf(scale * dot(q + ro, kj, D) - li);
                    float ds = p * (dot(dout + ro, vj, D) - dl);
                    for (int64_t d = 0; d < D; d++) dq[ro + d] += ds * scale * kj[d];
                }
                delta[(b * Hq + h) * T + i] = dl;
            }
        }
}

void trlc_attention_bwd_dkdv_ref(float *dk, float *dv, const float *q, const float *k, const float *v,
                                 const float *dout, const float *lse, const float *delta, const int32_t *seg,
                                 const float *key_mask, int64_t B, int64_t Hq, int64_t Hkv, int64_t T, int64_t D, float scale,
                                 int causal) {
    int64_t group = Hq / Hkv;
    for (int64_t b = 0; b < B; b++)
        for (int64_t hk = 0; hk < Hkv; hk++)
            for (int64_t j = 0; j < T; j++) {
                int64_t ro = ((b * Hkv + hk) * T + j) * D;
                for (int64_t d = 0; d < D; d++) dk[ro + d] = dv[ro + d] = 0;
                if (key_mask && key_mask[b * T + j] == 0) continue;   // a padding key: no gradient
                for (int64_t g = 0; g < group; g++) {
                    int64_t h = hk * group + g;
                    for (int64_t i = causal ? j : 0; i < T; i++) {
                        if (seg && seg[b * T + i] != seg[b * T + j]) continue;
                        const float *qi = q + ((b * Hq + h) * T + i) * D, *doi = dout + ((b * Hq + h) * T + i) * D;
                        float p = expf(scale * dot(qi, k + ro, D) - lse[(b * Hq + h) * T + i]);
                        float ds = p * (dot(doi, v + ro, D) - delta[(b * Hq + h) * T + i]);
                        for (int64_t d = 0; d < D; d++) {
                            dv[ro + d] += p * doi[d];
                            dk[ro + d] += ds * scale * qi[d];
                        }
                    }
                }
            }
}

static void flag_bad(int *bad, int64_t k) {
    if (*bad == 0) *bad = (int)(k + 1 < 0x7fffffff ? k + 1 : 0x7fffffff);
}

void trlc_gather_ref(float *out, int *bad, const float *x, const int32_t *idx, int64_t outer, int64_t Li,
                     int64_t Lx, int64_t inner) {
    for (int64_t k = 0; k < outer * Li * inner; k++) {
        int64_t r = k % inner, o = k / inner / Li;
        int32_t l = idx[k];
        if (l < 0 || l >= Lx) {
            flag_bad(bad, k);
            out[k] = 0;
        } else {
            out[k] = x[(o * Lx + l) * inner + r];
        }
    }
}

void trlc_gather_bwd_ref(float *dx, int *bad, const int32_t *idx, const float *g, int64_t outer, int64_t Li,
                         int64_t Lx, int64_t inner) {
    for (int64_t e = 0; e < outer * Lx * inner; e++) {
        int64_t r = e % inner, l = e / inner % Lx, o = e / inner / Lx;
        float s = 0;
        for (int64_t a = 0; a < Li; a++) {
            int64_t k = (o * Li + a) * inner + r;
            int32_t i = idx[k];
            if (i == l) s += g[k];
            else if ((i < 0 || i >= Lx) && l == 0) flag_bad(bad, k);
        }
        dx[e] = s;
    }
}

// The bitsandbytes NF4 code values as float32 (gpu.library checks them against ir_nf4_value).
static const float nf4_table[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

void trlc_dequant_nf4_ref(float *out, const uint8_t *packed, const float *absmax, int64_t n, int64_t block) {
    for (int64_t m = 0; m < n / 2 + n % 2; m++) {
        unsigned byte = packed[m];
        int64_t i = 2 * m, b0 = i / block, b1 = i + 1 - b0 * block == block ? b0 + 1 : b0;
        out[i] = nf4_table[byte >> 4] * absmax[b0];
        if (i + 1 < n) out[i + 1] = nf4_table[byte & 15u] * absmax[b1];
    }
}

void trlc_dequant_map8_ref(float *out, const uint8_t *q, const float *map, const float *scale, int64_t n,
                           int64_t block, float offset) {
    for (int64_t i = 0; i < n; i++) out[i] = map[q[i]] * scale[i / block] + offset;
}

// ---- attention_tc.cu: bf16 operands, fp32 accumulation, bf16(P) / bf16(dS) / bf16(dO) in the products

static float tc_bf16_val(uint16_t b) {
    union { uint32_t u; float f; } x = {(uint32_t)b << 16};
    return x.f;
}
static float tc_round_bf16(float v) {   // round to nearest even, as the kernels; NaN stays a (quiet) NaN
    union { float f; uint32_t u; } x = {v};
    if ((x.u & 0x7fffffffu) > 0x7f800000u) x.u = (x.u | 0x00400000u) & 0xffff0000u;
    else x.u = (x.u + 0x7fffu + ((x.u >> 16) & 1u)) & 0xffff0000u;
    return x.f;
}
// S_ij (fp32: the dot of the bf16 values, then times scale)
static float tc_score(const uint16_t *qi, const uint16_t *kj, int64_t D, float scale) {
    float s = 0.0f;
    for (int64_t d = 0; d < D; d++) s += tc_bf16_val(qi[d]) * tc_bf16_val(kj[d]);
    return scale * s;
}
static int tc_visible(int64_t i, int64_t j, int causal, const int32_t *sg, const float *km) {
    return (!causal || j <= i) && (!sg || sg[j] == sg[i]) && (!km || km[j] != 0.0f);
}

void trlc_attention_tc_forward_ref(float *out, float *lse, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                   const int32_t *seg, const float *key_mask, int64_t B, int64_t Hq, int64_t Hkv,
                                   int64_t T, int64_t D, float scale, int causal) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t hk = h / (Hq / Hkv);
            const uint16_t *kh = k + (b * Hkv + hk) * T * D, *vh = v + (b * Hkv + hk) * T * D;
            const int32_t *sg = seg ? seg + b * T : 0;
            const float *km = key_mask ? key_mask + b * T : 0;
            for (int64_t i = 0; i < T; i++) {
                const uint16_t *qi = q + ((b * Hq + h) * T + i) * D;
                float *oi = out + ((b * Hq + h) * T + i) * D;
                float m = -INFINITY, l = 0.0f;
                for (int64_t j = 0; j < T; j++)
                    if (tc_visible(i, j, causal, sg, km)) m = fmaxf(m, tc_score(qi, kh + j * D, D, scale));
                for (int64_t j = 0; j < T; j++)
                    if (tc_visible(i, j, causal, sg, km)) l += expf(tc_score(qi, kh + j * D, D, scale) - m);
                const float li = l > 0.0f ? m + logf(l) : INFINITY;   // no key seen: +inf, out 0
                lse[(b * Hq + h) * T + i] = li;
                for (int64_t d = 0; d < D; d++) oi[d] = 0.0f;
                for (int64_t j = 0; j < T; j++) {
                    if (!tc_visible(i, j, causal, sg, km)) continue;
                    const float p = tc_round_bf16(expf(tc_score(qi, kh + j * D, D, scale) - li));
                    for (int64_t d = 0; d < D; d++) oi[d] += p * tc_bf16_val(vh[j * D + d]);
                }
            }
        }
}

void trlc_attention_tc_backward_ref(float *dq, float *dk, float *dv, float *delta, const uint16_t *q, const uint16_t *k,
                                    const uint16_t *v, const float *out, const float *dout, const float *lse,
                                    const int32_t *seg, const float *key_mask, int64_t B, int64_t Hq, int64_t Hkv,
                                    int64_t T, int64_t D, float scale, int causal) {
    for (int64_t e = 0; e < B * Hkv * T * D; e++) dk[e] = dv[e] = 0.0f;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t hk = h / (Hq / Hkv);
            const uint16_t *kh = k + (b * Hkv + hk) * T * D, *vh = v + (b * Hkv + hk) * T * D;
            float *dkh = dk + (b * Hkv + hk) * T * D, *dvh = dv + (b * Hkv + hk) * T * D;
            const int32_t *sg = seg ? seg + b * T : 0;
            const float *km = key_mask ? key_mask + b * T : 0;
            for (int64_t i = 0; i < T; i++) {
                const int64_t ro = ((b * Hq + h) * T + i) * D;
                float dl = 0.0f;
                for (int64_t d = 0; d < D; d++) dl += dout[ro + d] * tc_round_bf16(out[ro + d]);   // bf16 O
                delta[(b * Hq + h) * T + i] = dl;
                const float li = lse[(b * Hq + h) * T + i];
                for (int64_t d = 0; d < D; d++) dq[ro + d] = 0.0f;
                for (int64_t j = 0; j < T; j++) {
                    if (!tc_visible(i, j, causal, sg, km)) continue;
                    const float p = expf(tc_score(q + ro, kh + j * D, D, scale) - li);
                    float dp = 0.0f;
                    for (int64_t d = 0; d < D; d++) dp += tc_round_bf16(dout[ro + d]) * tc_bf16_val(vh[j * D + d]);
                    const float ds = tc_round_bf16(p * (dp - dl)), pb = tc_round_bf16(p);
                    for (int64_t d = 0; d < D; d++) {
                        dq[ro + d] += ds * tc_bf16_val(kh[j * D + d]);
                        dkh[j * D + d] += ds * tc_bf16_val(q[ro + d]);
                        dvh[j * D + d] += pb * tc_round_bf16(dout[ro + d]);
                    }
                }
                for (int64_t d = 0; d < D; d++) dq[ro + d] *= scale;
            }
        }
    for (int64_t e = 0; e < B * Hkv * T * D; e++) dk[e] *= scale;
}
