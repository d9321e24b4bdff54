// kernels_ref.h — plain C references of the hand-written GPU kernels in kernels/*.cu, computing
// with the same algorithms (single-pass online max / sum-exp, tile-free online softmax per query,
// per-key backward), so that the tests can check the algorithms against the unfused CPU
// interpreter without a GPU (gather, dequantization: the same loops, bit-identical to it). Also the
// host-side helper the launcher needs: rope's inv_freq.
// Not here: launching anything (runtime/cuda), the generated kernels (compiler/codegen_cuda.c).
#ifndef TRLC_KERNELS_REF_H
#define TRLC_KERNELS_REF_H
#include <stdint.h>

// inv_freq[i] = theta^(-2i/D), with Llama-3 scaling when factor != 0 (as the IR's rope defines).
void trlc_rope_inv_freq(double *inv_freq /* (D/2) */, int64_t D, double theta, double factor,
                        double low_freq_factor, double high_freq_factor, double original_max_pos);
// rope.cu trlc_rope_forward
void trlc_rope_ref(float *y /* (B,H,T,D) */, const float *x /* (B,H,T,D) */, const int32_t *pos /* (B,T) or (T) */,
                   const double *inv_freq, int64_t B, int64_t H, int64_t T, int64_t D, int pos_batched, int inverse);
// cross_entropy.cu
void trlc_cross_entropy_ref(float *loss /* (N) */, float *lse /* (N) */, const float *logits /* (N,V) */,
                            const int32_t *labels /* (N) */, int64_t N, int64_t V, int ignore_index, float eps);
void trlc_cross_entropy_bwd_ref(float *dlogits /* (N,V) */, const float *logits, const float *lse,
                                const int32_t *labels, const float *gloss /* (N) */, int64_t N, int64_t V,
                                int ignore_index, float eps);
// adamw.cu trlc_adamw_update
void trlc_adamw_ref(float *p, float *m, float *v, const float *g, int64_t n, float lr, float b1, float b2,
                    float eps, float wd, float bc1, float bc2, float grad_scale);
// adamw.cu's multi-tensor step (the trainer's optimizer on the device): per element the float
// operations of runtime/train/optim.c's opt_adamw_update / opt_sgd_update, in their order, on the
// float scalars these setups derive from the double settings as optim.c does (step: the 1-based
// update number; first: sgd's momentum buffer does not exist yet). The gradient read is
// g * scale, then * coef when clip; decay: weight decay applies to this parameter.
typedef struct TrlcAdamw {   // as adamw.cu
    float decay, w1, b2, w2, neg_step, bc2_sqrt, eps;
} TrlcAdamw;
typedef struct TrlcSgd {     // as adamw.cu
    float wd, mom, damp, neg_lr;
    int use_buf, nesterov, first;
} TrlcSgd;
void trlc_adamw_setup(TrlcAdamw *s, double lr, double weight_decay, double beta1, double beta2, double eps,
                      int64_t step);
void trlc_sgd_setup(TrlcSgd *s, double lr, double weight_decay, double momentum, double dampening, int nesterov,
                    int first);
void trlc_adamw_multi_ref(float *p, const float *g, float *m, float *v /* all (n) */, int64_t n, float scale,
                          float coef, int clip, int decay, const TrlcAdamw *s);
void trlc_sgd_multi_ref(float *p, const float *g, float *buf /* all (n); buf may be NULL */, int64_t n,
                        float scale, float coef, int clip, int decay, const TrlcSgd *s);
// attention.cu; seg (B,T) segment ids of packed rows or NULL: query i sees key j iff seg[i] == seg[j];
// key_mask (B,T) or NULL: key j is skipped where key_mask[j] == 0. A query seeing no key gets
// output 0, lse = +inf and zero gradients.
void trlc_attention_fwd_ref(float *out /* (B,Hq,T,D) */, float *lse /* (B,Hq,T) */, const float *q,
                            const float *k /* (B,Hkv,T,D) */, const float *v, const int32_t *seg,
                            const float *key_mask, int64_t B, int64_t Hq, int64_t Hkv, int64_t T, int64_t D,
                            float scale, int causal);
void trlc_attention_bwd_dq_ref(float *dq, float *delta /* (B,Hq,T) */, const float *q, const float *k,
                               const float *v, const float *out, const float *dout, const float *lse,
                               const int32_t *seg, const float *key_mask, int64_t B,
                               int64_t Hq, int64_t Hkv, int64_t T, int64_t D, float scale, int causal);
void trlc_attention_bwd_dkdv_ref(float *dk, float *dv /* (B,Hkv,T,D) */, const float *q, const float *k,
                                 const float *v, const float *dout, const float *lse, const float *delta,
                                 const int32_t *seg, const float *key_mask, int64_t B, int64_t Hq, int64_t Hkv,
                                 int64_t T, int64_t D, float scale, int causal);

// attention_tc.cu (tensor cores): q (B,Hq,T,D), k / v (B,Hkv,T,D) as bf16 bits, the numerics of
// attention_tc.cu's header (fp32 scores and sums, P / dS / dO rounded to bf16 before their
// products); seg / key_mask and the no-key convention as attention.cu's. The backward writes dq
// and delta (B,Hq,T) like the dq kernel and dk / dv (B,Hkv,T,D) like the dkdv kernel (and the
// fused kernel: the same, dq up to its fp32 summation order; tests/gpu/test_attn_bwd.c); it reads
// out as the bf16 forward stores it (delta = dout . bf16(out): fp32 out is rounded, a bf16
// forward's values stay). The bf16 forward's out is this forward's rounded to bf16.
void trlc_attention_tc_forward_ref(float *out /* (B,Hq,T,D) */, float *lse /* (B,Hq,T) */, const uint16_t *q,
                                   const uint16_t *k /* (B,Hkv,T,D) */, const uint16_t *v, const int32_t *seg,
                                   const float *key_mask, int64_t B, int64_t Hq, int64_t Hkv, int64_t T, int64_t D,
                                   float scale, int causal);
void trlc_attention_tc_backward_ref(float *dq /* (B,Hq,T,D) */, float *dk /* (B,Hkv,T,D) */, float *dv,
                                    float *delta /* (B,Hq,T) */, const uint16_t *q, const uint16_t *k,
                                    const uint16_t *v, const float *out, const float *dout, const float *lse,
                                    const int32_t *seg, const float *key_mask, int64_t B, int64_t Hq, int64_t Hkv,
                                    int64_t T, int64_t D, float scale, int causal);

// gather.cu: x (outer, Lx, inner), idx and out (outer, Li, inner) around the gather axis. An index
// outside [0, Lx) gives 0 (forward) or nothing (backward) and sets *bad to a bad flat position + 1
// when *bad is 0. The backward writes every dx element: the sum over a of g where idx == l.
void trlc_gather_ref(float *out /* (outer,Li,inner) */, int *bad /* (1) */, const float *x /* (outer,Lx,inner) */,
                     const int32_t *idx /* (outer,Li,inner) */, int64_t outer, int64_t Li, int64_t Lx, int64_t inner);
void trlc_gather_bwd_ref(float *dx /* (outer,Lx,inner) */, int *bad /* (1) */,
                         const int32_t *idx /* (outer,Li,inner) */,
                         const float *g /* (outer,Li,inner) */, int64_t outer, int64_t Li, int64_t Lx, int64_t inner);
// quant.cu: NF4 codes packed two per byte (element 2m in the high nibble of byte m), absmax per block
// of `block` elements; map8: out[i] = map[q[i]] * scale[i / block] + offset.
void trlc_dequant_nf4_ref(float *out /* (n) */, const uint8_t *packed /* (ceil(n/2)) */,
                          const float *absmax /* (ceil(n/block)) */, int64_t n, int64_t block);
void trlc_dequant_map8_ref(float *out /* (n) */, const uint8_t *q /* (n) */, const float *map /* (256) */,
                           const float *scale /* (ceil(n/block)) */, int64_t n, int64_t block, float offset);

#endif
