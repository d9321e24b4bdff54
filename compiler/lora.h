// lora.h — the LoRA pass: after lowering and before autodiff, rewrites every linear layer whose
// module path ends in a target name (PEFT's matching: `q_proj` matches
// `model.layers.0.self_attn.q_proj`; all_linear = every linear but lm_head) into
//     y = linear(x, W) + scale * linear(linear(dropout(x), A), B)      scale = alpha / r
// (rsLoRA: alpha / sqrt(r)), adds the params `<module>.lora_A.weight` [r, in] and
// `<module>.lora_B.weight` [out, r] (trainable) and freezes every other parameter.
// The graph is rebuilt node by node (it is append-only and topologically ordered), so every IrId
// held elsewhere must be remapped: lora_apply updates the LowerResult it is given.
// With nf4 (QLoRA) the frozen linear weights are also replaced by NF4 codes + absmax params and a
// dequant_nf4 node (lora_quantize_nf4 fills them as bitsandbytes does).
// Not here: initialising A and B (lora_init_values), fp4/int8, double quantization, DoRA, merging.
#ifndef TRLC_LORA_H
#define TRLC_LORA_H
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "diag.h"
#include "ir.h"
#include "lower.h"

typedef struct LoraOptions {
    int rank;
    double alpha;
    double dropout;          // probability on the LoRA branch's input
    bool train_dropout;      // false: no dropout node (evaluation graphs)
    bool rslora;
    bool all_linear;         // every linear except lm_head
    const char *const *targets;   // last path components to match (unless all_linear)
    int ntargets;
    uint64_t seed;           // dropout seed
    // QLoRA: every linear weight but the output layer is stored as NF4 (bitsandbytes' layout:
    // blocks of quant_block elements over the flattened weight, one fp32 absmax per block, two
    // codes per byte, the first in the high nibble) and dequantized where it is used.
    bool nf4;
    int64_t quant_block;
} LoraOptions;

typedef struct LoraModule {
    const char *module;      // "model.layers.0.self_attn.q_proj" (arena memory)
    int64_t in, out;
    IrId A, B;               // the new params: A [r, in], B [out, r]
    int pA, pB;              // their indexes in LowerResult.params
} LoraModule;

// A weight stored as NF4: the checkpoint tensor `weight` ([rows, cols]) becomes the frozen params
// `<weight>:nf4` (u8, ceil(n/2)) and `<weight>:absmax` (f32, ceil(n/block)).
typedef struct LoraQuant {
    const char *weight;      // "model.layers.0.mlp.up_proj.weight"
    int64_t shape[2], numel, block;
    int pq, pa;              // indexes of the packed codes and the absmax in LowerResult.params
} LoraQuant;

typedef struct LoraResult {
    LoraModule *mods;        // arena memory, in graph order
    int nmods;
    double scale;            // alpha / r or alpha / sqrt(r)
    LoraQuant *quant;        // nf4: the quantized weights (arena memory)
    int nquant;
} LoraResult;

// The options a model's lora block gives (check.h CheckedModel: rank, alpha, dropout, rsLoRA,
// the targets); the rest (train_dropout, seed, nf4, quant_block) zero, for the caller to set. The
// trainer's pipeline (pipeline.c) and generation (gen.c) both start from it.
static inline LoraOptions lora_options_of(const CheckedModel *m) {
    LoraOptions o = {0};
    o.rank = m->lora_rank;
    o.alpha = m->lora_alpha;
    o.dropout = m->lora_dropout;
    o.rslora = m->lora_rslora;
    o.all_linear = m->lora_all_linear;
    o.targets = m->lora_targets;
    o.ntargets = m->lora_ntargets;
    return o;
}

// True when `module`'s last path component is one of the options' targets (or, with all_linear,
// when it is not lm_head).
bool lora_matches(const LoraOptions *o, const char *module);

// Rewrites g (must have no backward nodes yet) and res (ids remapped; the A/B params appended,
// every other param made non-trainable). `a` holds the result's arrays. Returns 0, or -1 after
// reporting (no linear matched a target, bad rank, a graph error).
int lora_apply(Diag *d, Arena *a, IrGraph *g, LowerResult *res, const LoraOptions *o, LoraResult *out);

// PEFT's initial values: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)) drawn with
// `uniform` (a caller-supplied generator returning [0, 1)), B = 0.
void lora_init_values(float *A /* (r, in) */, float *B /* (out, r) */, int64_t r, int64_t in, int64_t out,
                      double (*uniform)(void *ctx), void *ctx);

// bitsandbytes' quantize_4bit (nf4): per block of `block` elements absmax = max |w|, each w scaled
// by 1/absmax (clamped to [-1, 1]) gets the NF4 code whose interval (between midpoints of the
// sorted table, upper bound inclusive) holds it. packed: ceil(n/2) bytes, absmax: ceil(n/block).
void lora_quantize_nf4(const float *w /* (n) */, int64_t n, int64_t block, uint8_t *packed, float *absmax);
// Its dequantization: w = nf4[code] * absmax[i / block] (for a reference model sharing the weights).
void lora_dequantize_nf4(const uint8_t *packed, const float *absmax, int64_t n, int64_t block, float *w /* (n) */);

#endif
