// ir.h — the tensor IR: an SSA graph of primitive ops, one append-only node array kept in
// topological order (a node's inputs always have smaller ids). Builders infer dtype and shape,
// report mistakes through the graph's Diag at the node's spec location, and return IR_NONE
// instead of crashing; an IR_NONE input makes a builder return IR_NONE silently (the error was
// already reported), so callers can chain builders and check once.
// Shapes may hold the dynamic dims B (batch) and T (sequence) as symbols: a Dim is
// coef * Π(symbols), so (B, T, H*D) → (B*T, H*D) stays symbolic; B and T are bound at execution.
// Not here: executing the graph (runtime/cpu), gradients (autodiff.h), the spec language (lower.c).
#ifndef TRLC_IR_H
#define TRLC_IR_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "arena.h"
#include "diag.h"

// ---------------------------------------------------------------------------------------------
// dtypes
typedef enum IrDType {
    IR_F32, IR_F64, IR_BF16, IR_F16, IR_I32,
    IR_U8,           // raw bytes: packed 4-bit / 8-bit quantized codes (dequant_nf4, dequant_map8)
    IR_DTYPE_COUNT
} IrDType;

const char *ir_dtype_name(IrDType t);   // "f32", "f64", "bf16", "f16", "i32", "u8"
static inline bool ir_dtype_is_float(IrDType t) {
    return t == IR_F32 || t == IR_F64 || t == IR_BF16 || t == IR_F16;
}

// ---------------------------------------------------------------------------------------------
// shapes with symbolic dims
#define IR_MAX_RANK 8
enum { IR_SYM_B = 0, IR_SYM_T = 1, IR_NSYMS = 2 };   // bit i of IrDim.syms = symbol i
const char *ir_sym_name(int sym);                     // "B", "T"

typedef struct IrDim {
    int64_t coef;    // constant factor (>= 0); in reshape targets -1 means "infer this dim"
    uint8_t syms;    // bit set of symbols multiplied in (each at most once)
} IrDim;

typedef struct IrShape {
    int rank;                    // 0 = scalar
    IrDim d[IR_MAX_RANK];
} IrShape;

static inline IrDim ir_dim(int64_t n) { IrDim d = {n, 0}; return d; }
static inline IrDim ir_dim_sym(int sym) { IrDim d = {1, (uint8_t)(1u << sym)}; return d; }
static inline IrDim ir_dim_b(void) { return ir_dim_sym(IR_SYM_B); }
static inline IrDim ir_dim_t(void) { return ir_dim_sym(IR_SYM_T); }
static inline bool ir_dim_eq(IrDim a, IrDim b) { return a.coef == b.coef && a.syms == b.syms; }
static inline bool ir_dim_is_one(IrDim a) { return a.coef == 1 && a.syms == 0; }

IrShape ir_shape0(void);                                   // scalar
IrShape ir_shape_of(int rank, const IrDim *dims);
IrShape ir_shape1(IrDim a);
IrShape ir_shape2(IrDim a, IrDim b);
IrShape ir_shape3(IrDim a, IrDim b, IrDim c);
IrShape ir_shape4(IrDim a, IrDim b, IrDim c, IrDim d);
bool ir_shape_eq(const IrShape *a, const IrShape *b);
// Product of all dims as one Dim; false when a symbol would be squared or the constant overflows.
bool ir_shape_numel_dim(const IrShape *s, IrDim *out);
// Concrete element count with symbol values bound (sym_vals[IR_NSYMS]); -1 on overflow.
int64_t ir_shape_numel(const IrShape *s, const int64_t *sym_vals);
int64_t ir_dim_value(IrDim d, const int64_t *sym_vals);       // -1 on overflow
// "[B,T,3072]"-style text (also "[B*T,16]", "[]"); returns buf.
char *ir_shape_str(const IrShape *s, char *buf, size_t n);

// ---------------------------------------------------------------------------------------------
// ops
typedef enum IrOp {
    // leaves
    IR_INPUT,          // a runtime input (token ids, labels, positions, masks): name
    IR_PARAM,          // a model parameter: name (HF path), trainable
    IR_FULL,           // a.value broadcast to a.shape (scalars: rank 0)
    IR_ARANGE,         // i32 (n): 0, 1, ..., n-1 where n = a.shape.d[0] (may be symbolic)
    // elementwise unary: in[0]
    IR_NEG, IR_EXP, IR_LOG, IR_SQRT, IR_RSQRT, IR_TANH, IR_SIGMOID, IR_SILU,
    IR_GELU,           // tanh approximation
    IR_RELU, IR_ABS, IR_SQUARE,
    IR_POW,            // x ^ a.value (constant exponent)
    IR_LOG_SIGMOID,    // stable: min(x,0) - log1p(exp(-|x|))
    IR_SOFTPLUS,       // stable: max(x,0) + log1p(exp(-|x|))
    IR_CAST,           // to the node's dtype (float→bf16/f16 rounds the value; float→i32 truncates)
    IR_STOP_GRAD,      // identity; blocks gradients
    IR_DROPOUT,        // x * keep / (1-p), keep from hash(a.seed, a.salt, step, element index);
                       // a.value = p. Its own backward (the same mask regenerated).
    // elementwise binary with numpy broadcasting: in[0], in[1]
    IR_ADD, IR_SUB, IR_MUL, IR_DIV, IR_MAXIMUM, IR_MINIMUM,
    IR_EQ, IR_NE, IR_LT, IR_LE, IR_GT, IR_GE,   // masks 0/1 in a float dtype, no gradient
    // elementwise ternary
    IR_WHERE,          // in[0] mask (nonzero = true), in[1] a, in[2] b; broadcast all three
    // reductions over the axes in a.axes (bit i = axis i), reduced dims kept as size 1
    IR_SUM, IR_MEAN, IR_MAX,
    IR_SUM_TO,         // sum in[0] down to the broadcast-compatible a.shape (broadcast gradients)
    IR_BROADCAST,      // expand in[0] to a.shape (numpy rules)
    // linear algebra: in[0] (..., M, K) @ in[1] (..., K, N) → (..., M, N); batch dims broadcast;
    // a.trans_a / a.trans_b transpose the last two dims of the operand first.
    // Optional in[2]: an addend C, f32 of exactly the result's shape (no broadcasting), with an
    // f32 result — or bf16 C with a bf16 result (bf16 operands: a LoRA sum, autocast.h; D =
    // bf16(a.scale · acc + C) in fp32, rounded once) —
    // D = a.scale · op(a) op(b) + C (cuBLASLt's alpha and beta = 1; the backends
    // write D into the node's own buffer, never over C). With two inputs a.scale is unused (0)
    // and alpha is 1 (ir_matmul_alpha). Only ir_fuse_gemm_accumulate (gemm_acc.h) makes them,
    // after autodiff, which rejects them. Numerics: D is rounded once (alpha·acc + C in fp32)
    // where mul(matmul, alpha) + C rounded three times: ~1 ulp apart.
    // Or in[2] is a bias: f32 of shape (N) or (1, ..., 1, N) (rank <= the result's, N the
    // result's last dim) with an f32 result, or bf16 with a bf16 result (a biased linear output,
    // autocast.h: D = bf16(a.scale · acc + bias) in fp32, rounded once), added to every row:
    // D = a.scale · op(a) op(b) + bias (cuBLASLt's beta 0
    // and CUBLASLT_EPILOGUE_BIAS; the CPU copies it into each row, then beta 1). One addend per
    // product: full or bias (ir_matmul_bias tells which; a (1, N) result's (1, N) addend is full)
    IR_MATMUL,
    // softmax family over the last axis
    IR_SOFTMAX, IR_LOG_SOFTMAX,
    // model primitives
    IR_EMBED,          // in[0] ids i32 (...), in[1] table (V, H) → (..., H); a bf16 table gives f32
    IR_EMBED_BWD,      // in[0] ids i32 (...), in[1] grad (..., H) → (V, H) in a.shape (scatter-add)
    IR_ROPE,           // in[0] x (B, H, T, D), in[1] pos i32 (B, T) or (T); a.rope; a.inverse
                       // rotates by -angle (the backward). The result is x's dtype, or bf16 over
                       // an f32 x (mixed precision: the f32 rotation rounded to bf16, as a cast of it)
    IR_SDPA,           // in[0] q (B,Hq,Tq,D), in[1] k (B,Hkv,Tk,D), in[2] v (B,Hkv,Tk,D) → (B,Hq,Tq,D);
                       // a.causal (aligned at the end: query i sees keys j <= i + Tk - Tq, as with
                       // a KV cache), a.scale; optional in[3] key mask (B, Tk), 0 = padding key;
                       // a.segmented: the LAST input is segment ids (B, Tk) i32 (packed rows):
                       // query i (key index i + Tk - Tq) sees key j only if seg[j] == seg[i].
                       // bf16 q, k, v (mixed precision) give an f32 result and change the
                       // arithmetic: S = scale q·k accumulated in fp32, P = softmax(S) in fp32,
                       // out = bf16(P) v (P rounded to bf16 before the product, fp32 sums); or a
                       // bf16 result (ir_sdpa_to; autocast makes it): that f32 out rounded to
                       // bf16, as a cast of it (PyTorch's flash attention returns bf16 O)
    IR_SDPA_BWD_Q,     // in: q, k, v, gout (B,Hq,T,D) [, key mask] [, seg] → dq (like q)
    IR_SDPA_BWD_K,     // in: q, k, v, gout [, key mask] [, seg] → dk (like k)
    IR_SDPA_BWD_V,     // in: q, k, v, gout [, key mask] [, seg] → dv (like v)
                       // bf16 q, k, v: gout and the results are f32; with P recomputed as in
                       // the forward, o = bf16(bf16(P) v) (O as a bf16 forward stores it, whether
                       // or not the forward node is bf16), delta = gout·o (fp32), dV = bf16(P)ᵀ bf16(gout),
                       // dP = bf16(gout) vᵀ, dS = P (dP - delta), dQ = scale bf16(dS) k,
                       // dK = scale bf16(dS)ᵀ q — the rounding points of flash attention's kernels
    IR_CROSS_ENTROPY,  // in[0] logits (..., V), in[1] labels i32 (...) → loss (...), 0 where
                       // label == a.ignore_index; a.value = label smoothing
    IR_CROSS_ENTROPY_BWD, // in: logits, labels, gloss (...) → dlogits (..., V)
    IR_LINEAR_CE,      // in[0] x (..., H), in[1] w (V, H), in[2] labels i32 (...) → loss (...):
                       // cross_entropy(x wᵀ, labels) (a.ignore_index, a.value as there) without the
                       // logits (..., V) in memory: backends compute them a chunk of rows at a time.
                       // bf16 x, w (mixed precision): bf16 operands, fp32 logits and loss
    IR_LINEAR_CE_BWD_X, // in: x, w, labels, gloss (...) → dx (like x; f32 for bf16 x): recomputes
                       // the logits chunk by chunk; with bf16 x, w the logits' gradient is rounded
                       // to bf16 before its product (as the unfused graph's operand cast does)
    IR_LINEAR_CE_BWD_W, // in: x, w, labels, gloss → dw (like w; f32 for bf16 w), the same way
    IR_LINEAR_ARGMAX,  // in[0] x (..., H), in[1] w (V, H) → i32 (...): the index of the largest of
                       // x wᵀ over V (the first on ties; NaN never the largest; all NaN: 0), the
                       // logits a chunk of rows at a time as linear_ce's. No gradient
    IR_GATHER,         // torch.gather: in[0] x, in[1] idx i32 (same rank; out = idx's shape),
                       // along a.axis; other dims must equal x's
    IR_GATHER_BWD,     // in[0] idx, in[1] grad (idx's shape) → zeros of a.shape, scatter-added
    // layout
    IR_RESHAPE,        // to a.shape (same element count)
    IR_PERMUTE,        // out dim i = in dim a.perm[i]
    IR_CONCAT,         // in[0..nin) along a.axis
    IR_SLICE,          // [a.off, a.off + out dim) along a.axis
    IR_PAD,            // in[0] placed at a.off along a.axis inside zeros of a.shape (slice bwd)
    // quantized weights (QLoRA), no gradient
    IR_DEQUANT_NF4,    // in[0] packed u8 (ceil(n/2)), two 4-bit codes per byte, first element in the
                       // high nibble; in[1] absmax (ceil(n/a.block)) → nf4[code] * absmax, a.shape
    IR_DEQUANT_MAP8,   // in[0] codes u8 (n), in[1] code map (256), in[2] scales (ceil(n/a.block))
                       // → map[code] * scale + a.value, shape (n): bitsandbytes' nested absmax
    IR_OP_COUNT
} IrOp;

const char *ir_op_name(IrOp op);            // "silu", "matmul", ...
bool ir_op_is_elementwise(IrOp op);         // unary/binary/ternary elementwise (fusable)

// Llama-3 rope scaling: factor == 0 means none.
typedef struct IrRope {
    double theta;                 // base, e.g. 1e6; inv_freq[i] = theta^(-2i/D)
    double factor, low_freq_factor, high_freq_factor;
    double original_max_pos;      // original_max_position_embeddings
} IrRope;

// Op-specific attributes; unused fields are zero.
typedef struct IrAttrs {
    double value;         // full: the constant; pow: exponent; dropout: p; cross_entropy: smoothing
    double scale;         // sdpa: the score scale; matmul with an addend (3 inputs): alpha
    uint32_t axes;        // reductions
    int axis;             // concat, slice, pad, gather (normalised, >= 0)
    IrDim off;            // slice: first element along axis (length = the node's dim); pad: offset
    int64_t ignore_index; // cross_entropy (default -100)
    int perm[IR_MAX_RANK];// permute
    bool trans_a, trans_b;// matmul
    bool causal;          // sdpa
    bool segmented;       // sdpa (+ bwd): the last input holds segment ids (B, Tk) i32
    bool inverse;         // rope backward
    uint64_t seed;        // dropout: user seed
    uint32_t salt;        // dropout: distinguishes dropout sites sharing a seed
    IrRope rope;
    IrShape shape;        // full, arange, reshape, broadcast, sum_to, pad, embed_bwd, gather_bwd,
                          // dequant_nf4
    int64_t block;        // dequant: elements per scale
} IrAttrs;

typedef int32_t IrId;            // node index in IrGraph.nodes
#define IR_NONE ((IrId)-1)       // "error, already reported" (and "no node")

typedef struct IrNode {
    IrOp op;
    IrDType dtype;
    IrShape shape;
    int nin;
    IrId *in;             // nin inputs (graph arena)
    IrAttrs a;
    Loc loc;              // where in the spec this came from (backward nodes: the forward node's)
    const char *name;     // inputs and params: the name (params: HF path); others: optional
                          // label, e.g. a linear's module path (ir_set_name); else NULL
    bool trainable;       // params only
    bool backward;        // created by autodiff
    bool recomputed;      // (backward too) a forward value recomputed for the backward pass
                          // (recompute.h): scheduled and planned as a backward node, but the
                          // forward's precision rules (rounding points) apply to it (autocast.h)
} IrNode;

typedef struct IrOutput {
    IrId id;
    const char *name;     // "loss", "logits", or "grad:<param name>" for gradients
    IrId grad_of;         // for gradients: the param (or input) node; else IR_NONE
} IrOutput;

typedef struct IrGraph {
    Arena arena;          // names, input arrays, outputs
    Diag *diag;           // where builders report
    IrDType float_dtype;  // dtype of masks from integer comparisons and of untyped constants
    IrNode *nodes;        // n nodes in topological order (malloc'd, grows)
    int n, cap;
    IrOutput *outs;       // nouts outputs (malloc'd)
    int nouts, capouts;
    IrId loss;            // the scalar the autodiff pass differentiates; IR_NONE if unset
    int errors;           // errors reported by builders on this graph
    bool in_backward;     // set by autodiff: new nodes are marked backward
    uint32_t next_salt;   // for dropout sites
    IrId *renum;          // map from the ids before the first renumbering (nrenum of them) to now
    int nrenum;
    struct IrNameIndex *names;   // ir_find's index of leaf names (ir.c; a cache, NULL until used)
} IrGraph;

// float_dtype: IR_F32 normally, IR_F64 for gradient checks.
void ir_graph_init(IrGraph *g, Diag *d, IrDType float_dtype);
void ir_graph_free(IrGraph *g);

static inline const IrNode *ir_node(const IrGraph *g, IrId id) {
    return (id >= 0 && id < g->n) ? &g->nodes[id] : NULL;
}
// Mixed precision: how many leading inputs op reads as bf16 operands when autocast.h casts them
// (a product's two; linear_ce's and linear_argmax's x and w; attention's q, k, v), else 0. Their
// results stay fp32; the backends use the count to know which inputs may be bf16.
int ir_lowp_operands(IrOp op);
// Inputs and params: the leaves a program binds to buffers.
static inline bool ir_is_leaf(const IrNode *n) { return n->op == IR_INPUT || n->op == IR_PARAM; }
// The decoder layer of a parameter named `model.layers.N` or `model.layers.N.<...>` (LoRA and NF4
// parts included): N; -1 for any other name (embeddings, the final norm, the head).
int ir_layer_of(const char *param_name);
// The input or param with this name, or IR_NONE.
IrId ir_find(const IrGraph *g, const char *name);
// Marks id as an output under name (copied). Returns its output index, or -1.
int ir_add_output(IrGraph *g, IrId id, const char *name);
// The same for a gradient: grad_of names the node it is the gradient of (autodiff uses it).
int ir_add_grad_output(IrGraph *g, IrId id, const char *name, IrId grad_of);
void ir_set_loss(IrGraph *g, IrId id);      // also an output named "loss"; must be a scalar
                                            // (rank 0 or all dims 1), else an error
// Labels a non-leaf node (e.g. the matmul of `model.layers.0.self_attn.q_proj`) so that rewrites
// (LoRA, quantization) can find it; printed by ir_print. Leaves keep their own names.
void ir_set_name(IrGraph *g, IrId id, const char *name);
// Number of trainable params.
int ir_count_trainable(const IrGraph *g);
// How many times each node is read: as an input (once per use), as an output, as the loss. A
// calloc'd array of g->n + 1 counts (the caller frees it), or NULL when out of memory (reported:
// `pass` names the pass in the message).
int *ir_count_readers(IrGraph *g, const char *pass);

// ---------------------------------------------------------------------------------------------
// builders. All take the spec location to report at and to keep on the node. Names are copied.

// leaves
IrId ir_input(IrGraph *g, const char *name, IrDType dt, IrShape shape, Loc loc);
IrId ir_param(IrGraph *g, const char *name, IrDType dt, IrShape shape, bool trainable, Loc loc);
IrId ir_full(IrGraph *g, double value, IrDType dt, IrShape shape, Loc loc);
IrId ir_scalar(IrGraph *g, double value, Loc loc);   // rank 0, g->float_dtype (adopts the
                                                     // other operand's float dtype in binary ops)
IrId ir_zeros_like(IrGraph *g, IrId x, Loc loc);
IrId ir_arange(IrGraph *g, IrDim n, Loc loc);        // i32 (n)

// elementwise
IrId ir_unary(IrGraph *g, IrOp op, IrId x, Loc loc);           // IR_NEG .. IR_SOFTPLUS, STOP_GRAD
IrId ir_pow(IrGraph *g, IrId x, double exponent, Loc loc);
IrId ir_cast(IrGraph *g, IrId x, IrDType dt, Loc loc);
IrId ir_stop_gradient(IrGraph *g, IrId x, Loc loc);
IrId ir_dropout(IrGraph *g, IrId x, double p, uint64_t seed, Loc loc);  // p in [0, 1)
IrId ir_binary(IrGraph *g, IrOp op, IrId a, IrId b, Loc loc);  // IR_ADD .. IR_GE, broadcasting
IrId ir_add(IrGraph *g, IrId a, IrId b, Loc loc);
IrId ir_sub(IrGraph *g, IrId a, IrId b, Loc loc);
IrId ir_mul(IrGraph *g, IrId a, IrId b, Loc loc);
IrId ir_div(IrGraph *g, IrId a, IrId b, Loc loc);
IrId ir_where(IrGraph *g, IrId mask, IrId a, IrId b, Loc loc);
// The broadcast of two shapes, or false (no report) when incompatible.
bool ir_broadcast_shapes(const IrShape *a, const IrShape *b, IrShape *out);

// reductions (axis may be negative; reduced dims kept as 1)
IrId ir_reduce(IrGraph *g, IrOp op, IrId x, int axis, Loc loc);     // IR_SUM, IR_MEAN, IR_MAX
IrId ir_reduce_all(IrGraph *g, IrOp op, IrId x, Loc loc);           // every axis → all dims 1
IrId ir_reduce_axes(IrGraph *g, IrOp op, IrId x, uint32_t axes, Loc loc);
IrId ir_sum_to(IrGraph *g, IrId x, IrShape shape, Loc loc);         // inverse of broadcasting
IrId ir_broadcast_to(IrGraph *g, IrId x, IrShape shape, Loc loc);

// linear algebra
IrId ir_matmul(IrGraph *g, IrId a, IrId b, bool trans_a, bool trans_b, Loc loc);
// The same with the result's dtype: the operands' (IR_DTYPE_COUNT = that default), or f32 over bf16
// or f16 operands (mixed precision: products of low-precision values accumulated and kept in fp32).
IrId ir_matmul_to(IrGraph *g, IrId a, IrId b, bool trans_a, bool trans_b, IrDType out, Loc loc);
// alpha · op(a) op(b) + c as one matmul (3 inputs, see IR_MATMUL): c f32 of exactly the result's
// shape, or a bias (f32, (N) or (1, ..., 1, N): added to every row); the result f32 (out as in
// ir_matmul_to) — or c bf16 (the result's shape or a bias) with a bf16 result; alpha finite.
IrId ir_matmul_acc(IrGraph *g, IrId a, IrId b, bool trans_a, bool trans_b, IrDType out, IrId c, double alpha,
                   Loc loc);
// A matmul node's alpha: a.scale with an addend, else 1.
static inline double ir_matmul_alpha(const IrNode *n) { return n->nin == 3 ? n->a.scale : 1.0; }
// Whether shape c is a bias for a product of shape s: (N) or (1, ..., 1, N), rank <= s's, N s's
// last dim (a full addend has exactly s; a (1, N) result's (1, N) addend is both).
static inline bool ir_bias_shape(const IrShape *c, const IrShape *s) {
    if (c->rank < 1 || s->rank < 1 || c->rank > s->rank || !ir_dim_eq(c->d[c->rank - 1], s->d[s->rank - 1])) return false;
    for (int k = 0; k < c->rank - 1; k++)
        if (!ir_dim_is_one(c->d[k])) return false;
    return true;
}
// Whether a matmul node's addend is a bias (a vector of the result's last dim, broadcast over
// rows) rather than a full C of the result's shape. n must be a node of g.
static inline bool ir_matmul_bias(const IrGraph *g, const IrNode *n) {
    return n->op == IR_MATMUL && n->nin == 3 && !ir_shape_eq(&g->nodes[n->in[2]].shape, &n->shape);
}
// x (..., K) @ w(N, K)ᵀ → (..., N): HF [out, in] layout. With bias b (N) added.
IrId ir_linear(IrGraph *g, IrId x, IrId w, Loc loc);
IrId ir_linear_bias(IrGraph *g, IrId x, IrId w, IrId b, Loc loc);

// softmax family (last axis)
IrId ir_softmax(IrGraph *g, IrId x, Loc loc);
IrId ir_log_softmax(IrGraph *g, IrId x, Loc loc);

// model primitives
IrId ir_embed(IrGraph *g, IrId ids, IrId table, Loc loc);
IrId ir_rope(IrGraph *g, IrId x, IrId pos, IrRope rope, Loc loc);
// out: IR_DTYPE_COUNT (x's dtype), or IR_BF16 over an f32 x (the rotation rounded once, as
// cast(rope(x)) would); inverse as ir_rope_inverse.
IrId ir_rope_to(IrGraph *g, IrId x, IrId pos, IrRope rope, bool inverse, IrDType out, Loc loc);
// scale <= 0 means 1/sqrt(D). q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D): Tq == Tk in training;
// Tq = 1 against a cache of Tk keys when generating.
IrId ir_sdpa(IrGraph *g, IrId q, IrId k, IrId v, bool causal, double scale, Loc loc);
// With a key-padding mask (B, Tk) (float or i32; 0 = a padding key nobody attends to), e.g. left-
// padded prompts in GRPO/DPO batches. A query row with no key left gets output 0 and no gradient.
IrId ir_sdpa_masked(IrGraph *g, IrId q, IrId k, IrId v, IrId key_mask, bool causal, double scale,
                    Loc loc);
// With segment ids seg (B, Tk) i32 too (packed rows: several sequences per row): query i sees key
// j only where seg[b, j] == seg[b, i + Tk - Tq] (and the causal / key masks allow it). key_mask
// and seg may each be IR_NONE; with both IR_NONE this is ir_sdpa.
IrId ir_sdpa_seg(IrGraph *g, IrId q, IrId k, IrId v, IrId key_mask, IrId seg, bool causal, double scale,
                 Loc loc);
// out: IR_DTYPE_COUNT (q's dtype; f32 over bf16 q, k, v), or IR_BF16 over bf16 q, k, v (mixed
// precision: the f32 result rounded to bf16, as cast(sdpa) would; IR_SDPA). Masks as ir_sdpa_seg.
IrId ir_sdpa_to(IrGraph *g, IrId q, IrId k, IrId v, IrId key_mask, IrId seg, bool causal, double scale,
                IrDType out, Loc loc);
IrId ir_cross_entropy(IrGraph *g, IrId logits, IrId labels, int64_t ignore_index,
                      double label_smoothing, Loc loc);
IrId ir_gather(IrGraph *g, IrId x, IrId idx, int axis, Loc loc);
// cross_entropy(matmul(x, w, trans_b), labels) as one op (IR_LINEAR_CE): w (V, H), x (..., H).
IrId ir_linear_ce(IrGraph *g, IrId x, IrId w, IrId labels, int64_t ignore_index, double label_smoothing,
                  Loc loc);
// argmax(matmul(x, w, trans_b), -1) as one op (IR_LINEAR_ARGMAX): the predicted token per position.
IrId ir_linear_argmax(IrGraph *g, IrId x, IrId w, Loc loc);

// layout
// dims with coef -1 (at most one) are inferred; the element counts must match.
IrId ir_reshape(IrGraph *g, IrId x, IrShape shape, Loc loc);
IrId ir_permute(IrGraph *g, IrId x, const int *perm, Loc loc);    // perm has x's rank entries
IrId ir_transpose(IrGraph *g, IrId x, int axis0, int axis1, Loc loc);
IrId ir_concat(IrGraph *g, const IrId *xs, int n, int axis, Loc loc);
// start/end may be negative (from the end, python-style); the axis must be a constant dim.
IrId ir_slice(IrGraph *g, IrId x, int axis, int64_t start, int64_t end, Loc loc);
// Symbolic slice [start, start + len), e.g. the second half (B, B) of a (2B, ...) batch.
IrId ir_slice_dim(IrGraph *g, IrId x, int axis, IrDim start, IrDim len, Loc loc);

// Quantized weights as bitsandbytes stores them: w = nf4[code] * absmax[i / block] as a float
// tensor of `shape` (row-major; ceil(n/2) packed bytes, ceil(n/block) absmax); and the 8-bit
// blockwise dequantization map[q] * scale[i / block] + offset that double quantization uses for
// absmax (ceil(n/block) scales). Neither has a gradient.
IrId ir_dequant_nf4(IrGraph *g, IrId packed, IrId absmax, int64_t block, IrShape shape, Loc loc);
// The same stored in dtype out (IR_DTYPE_COUNT = absmax's; bf16 under mixed precision: rounded once).
IrId ir_dequant_nf4_to(IrGraph *g, IrId packed, IrId absmax, int64_t block, IrShape shape, IrDType out, Loc loc);
IrId ir_dequant_map8(IrGraph *g, IrId q, IrId map, IrId scale, int64_t block, double offset, Loc loc);
// The 16 NF4 code values (bitsandbytes), index 0..15.
double ir_nf4_value(int code);

// Backward-only builders (used by autodiff; exposed for tests and other passes).
IrId ir_pad(IrGraph *g, IrId x, int axis, IrDim off, IrShape shape, Loc loc);
IrId ir_rope_inverse(IrGraph *g, IrId x, IrId pos, IrRope rope, Loc loc);
IrId ir_sdpa_bwd(IrGraph *g, IrOp which, IrId q, IrId k, IrId v, IrId gout, bool causal,
                 double scale, Loc loc);                   // which: IR_SDPA_BWD_Q/K/V
// key_mask may be IR_NONE here (no mask).
IrId ir_sdpa_bwd_masked(IrGraph *g, IrOp which, IrId q, IrId k, IrId v, IrId gout, IrId key_mask,
                        bool causal, double scale, Loc loc);
// key_mask and seg may be IR_NONE.
IrId ir_sdpa_bwd_seg(IrGraph *g, IrOp which, IrId q, IrId k, IrId v, IrId gout, IrId key_mask, IrId seg,
                     bool causal, double scale, Loc loc);
IrId ir_cross_entropy_bwd(IrGraph *g, IrId logits, IrId labels, IrId gloss,
                          int64_t ignore_index, double label_smoothing, Loc loc);
IrId ir_embed_bwd(IrGraph *g, IrId ids, IrId gout, IrShape table_shape, Loc loc);
// which: IR_LINEAR_CE_BWD_X or _W.
IrId ir_linear_ce_bwd(IrGraph *g, IrOp which, IrId x, IrId w, IrId labels, IrId gloss, int64_t ignore_index,
                      double label_smoothing, Loc loc);
IrId ir_gather_bwd(IrGraph *g, IrId idx, IrId gout, int axis, IrShape x_shape, Loc loc);
// A generic append with explicit dtype/shape/attrs, no checking (for passes that copy nodes).
IrId ir_append(IrGraph *g, IrOp op, IrDType dt, IrShape shape, const IrId *in, int nin,
               const IrAttrs *a, Loc loc);

// ---------------------------------------------------------------------------------------------
// passes
// Dead-code elimination: keeps outputs, their ancestors, and every input and param; renumbers the
// nodes, updating the outputs, the loss and grad_of. Ids held elsewhere go stale: look leaves up
// again with ir_find and gradients with ad_grad_of, or map them with ir_renumbered. Returns the
// number of nodes removed.
int ir_dce(IrGraph *g);
// The current id of a node numbered `id` before the first pass that renumbered the graph (ir_dce
// or a rewriting pass; IR_NONE if it was removed); id itself when none has run.
IrId ir_renumbered(const IrGraph *g, IrId id);
// Common-subexpression elimination: a node computing the same op on the same inputs with the same
// attributes as an earlier one is replaced by it (leaves and named nodes are kept). Leaves the
// duplicates dead for ir_dce. Returns the number of nodes replaced.
int ir_cse(IrGraph *g);
// Checks invariants (inputs precede uses, shapes valid); reports and returns false on a broken graph.
bool ir_verify(IrGraph *g);
// Stronger (ir_validate.c): every node is exactly what the builders make of its inputs and
// attributes (op arity, dtypes, shapes), checked by replaying the graph through them. Reports the
// first malformed node (as an internal error at its location) and returns false. Backends call it
// before trusting a graph that passes may have edited with ir_append.
bool ir_validate(const IrGraph *g, Diag *d);

// ---------------------------------------------------------------------------------------------
// printing (ir_print.c)
// Sections: inputs, parameters (name, shape, trainable), forward, backward, outputs; one node
// per line: `%12 = silu(%11) : f32[B,T,3072]  # qwen3.trl:14:22`. d may be NULL (no locations).
void ir_print(FILE *f, const IrGraph *g, const Diag *d);
// The same with a heading naming the pass the graph is shown after ("lower", "autodiff", "dce").
void ir_print_after(FILE *f, const IrGraph *g, const Diag *d, const char *pass);

#endif
