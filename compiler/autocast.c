// autocast.c — bf16 mixed precision (see autocast.h). A backward pass over the graph finds what
// each value is read as; then one pass in order maps each f32 product's operands to bf16 values (a
// retyped leaf or dequantized weight, a cast emitted right after the value it casts, or a reshape of
// such a value) and rebuilds the product with an f32 result (attention: a bf16 one, read as f32
// through a cast where something other than a product reads it). Linear outputs (autocast.h) are
// found before that pass (the LoRA sums, the forward products non-products read) and written in
// bf16, each non-product reader reading a widening cast emitted before its phase's first reader.
#include "autocast.h"
#include "ir_internal.h"
#include <stdlib.h>
#include <string.h>

static bool is_product(const IrNode *n) { return n->op == IR_MATMUL && n->dtype == IR_F32 && n->nin == 2; }
// The forward's rounding rules (autocast.h, linear outputs) apply to x: a forward node, or a
// backward one that recomputes a forward value (ir.h, recomputed), so the backward reads the
// values the forward had. Where a node is placed (which phase's widening cast, deferral) still
// follows x->backward.
static bool forward_rules(const IrNode *x) { return !x->backward || x->recomputed; }
// The inputs a node reads as bf16 operands (ir_lowp_operands), for a node with an fp32 result (or
// linear_argmax's i32) not rewritten yet.
static int lowp_inputs(const IrNode *n) {
    bool open = n->op == IR_LINEAR_ARGMAX || (n->dtype == IR_F32 && (n->op != IR_MATMUL || n->nin == 2));
    return open ? ir_lowp_operands(n->op) : 0;
}

// How many leading inputs of x become bf16 operands: lowp_inputs(x), or none when one of them is
// not f32 (the node is left as it is).
static int operand_inputs(const IrGraph *g, const IrNode *x) {
    int nl = lowp_inputs(x);
    for (int k = 0; k < nl; k++)
        if (g->nodes[x->in[k]].dtype != IR_F32) return 0;
    return nl;
}

// Attention on q, k, v that become bf16 operands: it writes its output in bf16 (lowp_sdpa below).
static bool lowp_attention(const IrGraph *g, const IrNode *x) {
    return x->op == IR_SDPA && x->dtype == IR_F32 && operand_inputs(g, x) > 0;
}

// A forward f32 product on operands that become bf16 (a linear layer's x Wᵀ, LoRA's factors).
static bool forward_product(const IrGraph *g, IrId id) {
    const IrNode *x = &g->nodes[id];
    return is_product(x) && forward_rules(x) && operand_inputs(g, x) == 2;
}

// Marks the values a forward add adds a bias to (f32 (N) / (1, ..., 1, N) of their last dim,
// ir_bias_shape): none of them is a linear output itself; where the add is a biased linear layer
// (biased_linear below) the add is, else the value keeps its fp32 result (autocast.h).
static void mark_bias_adds(const IrGraph *g, bool *biased) {
    for (int i = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        if (x->op != IR_ADD || x->nin != 2 || !forward_rules(x)) continue;
        for (int s = 0; s < 2; s++) {
            const IrNode *b = &g->nodes[x->in[1 - s]];
            const IrShape *v = &g->nodes[x->in[s]].shape;
            if (b->dtype == IR_F32 && ir_bias_shape(&b->shape, v) && !ir_shape_eq(&b->shape, v)) biased[x->in[s]] = true;
        }
    }
}

// The LoRA sum of a linear layer (autocast.h, "linear outputs"): a forward f32 add of two forward
// products of its shape, or of one and a product scaled by a constant (mul(p, c) / mul(c, p)),
// each read by nothing else. Returns the LoRA side's product (the scaled one; of two unscaled ones
// the later, as gemm_acc.c chooses), which keeps its f32 result, or IR_NONE.
static IrId lora_sum(const IrGraph *g, const int *readers, const IrNode *x) {
    if (x->op != IR_ADD || x->nin != 2 || x->dtype != IR_F32 || !forward_rules(x) || x->in[0] == x->in[1]) return IR_NONE;
    IrId prod[2] = {IR_NONE, IR_NONE};
    bool scaled[2] = {false, false};
    for (int s = 0; s < 2; s++) {
        IrId y = x->in[s];
        const IrNode *n = &g->nodes[y];
        if (readers[y] != 1 || n->dtype != IR_F32 || !ir_shape_eq(&n->shape, &x->shape)) return IR_NONE;
        if (forward_product(g, y)) {
            prod[s] = y;
            continue;
        }
        if (n->op != IR_MUL || n->nin != 2) return IR_NONE;
        for (int k = 0; k < 2 && prod[s] == IR_NONE; k++) {
            IrId m = n->in[k];
            const IrNode *c = &g->nodes[n->in[1 - k]];
            bool scalar = c->op == IR_FULL && c->nin == 0 && c->dtype == IR_F32;
            for (int d = 0; scalar && d < c->shape.rank; d++) scalar = ir_dim_is_one(c->shape.d[d]);
            if (scalar && readers[m] == 1 && forward_product(g, m) && ir_shape_eq(&g->nodes[m].shape, &x->shape))
                prod[s] = m, scaled[s] = true;
        }
        if (prod[s] == IR_NONE) return IR_NONE;
    }
    if (scaled[0] && scaled[1]) return IR_NONE;   // no base product
    if (scaled[0] != scaled[1]) return scaled[0] ? prod[0] : prod[1];
    return prod[0] > prod[1] ? prod[0] : prod[1];
}

// A biased linear layer (autocast.h): a forward f32 add(z, b) (or add(b, z)), not an output nor
// the loss, of a bias b (f32 (N) / (1, ..., 1, N), ir_bias_shape) to z of its shape read there
// alone: a forward product (Qwen2's x Wᵀ + b) or a LoRA sum (lora_sum; LoRA's add(add(x Wᵀ,
// s·lora), b)). Returns b (*z: the other input), or IR_NONE.
static IrId biased_linear(const IrGraph *g, const int *readers, IrId i, IrId *z) {
    const IrNode *x = &g->nodes[i];
    if (x->op != IR_ADD || x->nin != 2 || x->dtype != IR_F32 || !forward_rules(x) || readers[i] < 1 || x->in[0] == x->in[1])
        return IR_NONE;
    for (int s = 0; s < 2; s++) {
        IrId y = x->in[s], b = x->in[1 - s];
        const IrNode *yn = &g->nodes[y], *bn = &g->nodes[b];
        if (bn->dtype != IR_F32 || !ir_bias_shape(&bn->shape, &x->shape) || ir_shape_eq(&bn->shape, &x->shape)) continue;
        if (yn->dtype != IR_F32 || !ir_shape_eq(&yn->shape, &x->shape) || readers[y] != 1) continue;
        if (forward_product(g, y) || lora_sum(g, readers, yn) != IR_NONE) {
            *z = y;
            return b;
        }
    }
    return IR_NONE;
}

void ac_round_bf16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) == 0x7f800000u) continue;   // inf and NaN stay
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        memcpy(&x[i], &u, 4);
    }
}

// Appends the cast to dt (bf16; f32 for a bf16 result read as f32) of new node `src` (made from
// old node x) and returns its id, or IR_NONE when out of memory.
static IrId emit_cast_to(IrGraph *g, IrNode *nodes, int *m, const IrNode *x, IrId src, IrDType dt) {
    IrNode cast;
    memset(&cast, 0, sizeof cast);
    cast.op = IR_CAST, cast.dtype = dt, cast.shape = x->shape, cast.nin = 1;
    cast.in = arena_alloc(&g->arena, sizeof *cast.in);
    if (!cast.in) return IR_NONE;
    cast.in[0] = src;
    cast.loc = x->loc, cast.backward = x->backward, cast.recomputed = x->recomputed;
    nodes[*m] = cast;
    return (*m)++;
}
static IrId emit_cast(IrGraph *g, IrNode *nodes, int *m, const IrNode *x, IrId src) {
    return emit_cast_to(g, nodes, m, x, src, IR_BF16);
}

// A trainable param small enough that its bf16 copy is made at the start of the step, with every
// other of its shape in one kernel (LoRA's factors: 14 casts a layer otherwise), instead of next
// to its first product. Larger ones (full fine-tuning's weights) are cast where first read, so an
// evaluation pass does not hold every layer's copy at once.
enum { AC_EARLY_CAST_MAX = 1 << 20 };   // elements
static bool early_cast(const IrNode *x) {
    int64_t one[IR_NSYMS] = {1, 1};
    int64_t n = ir_shape_numel(&x->shape, one);
    return x->op == IR_PARAM && x->trainable && n >= 0 && n <= AC_EARLY_CAST_MAX;
}

// Early casts ordered by shape (rank, then dims, then node), so that the fuser puts each shape's
// into one group.
typedef struct EarlyCast {
    IrShape shape;
    IrId id;
} EarlyCast;
static int by_shape(const void *pa, const void *pb) {
    const EarlyCast *a = pa, *b = pb;
    if (a->shape.rank != b->shape.rank) return a->shape.rank - b->shape.rank;
    for (int k = 0; k < a->shape.rank; k++) {
        if (a->shape.d[k].coef != b->shape.d[k].coef) return a->shape.d[k].coef < b->shape.d[k].coef ? -1 : 1;
        if (a->shape.d[k].syms != b->shape.d[k].syms) return a->shape.d[k].syms < b->shape.d[k].syms ? -1 : 1;
    }
    return a->id - b->id;
}

int ir_autocast_bf16(IrGraph *g, AutocastStats *stats) {
    AutocastStats st = {0};
    int n = g->n;
    size_t sz = (size_t)(n ? n : 1);
    bool *operand = calloc(sz, 1);     // read as an operand of an f32 product
    bool *table = calloc(sz, 1);       // read as an embedding table
    bool *other = calloc(sz, 1);       // read by anything else (or a graph output)
    bool *retype = calloc(sz, 1);
    bool *via = calloc(sz, 1);         // a reshape read as an operand: its bf16 value is the reshape
                                       // of its source's (one cast serves both shapes)
    bool *permute = calloc(sz, 1);     // a permute of attention's bf16 output: it permutes the bf16
                                       // values (and is read as f32 through a cast where needed)
    IrId *map = malloc(sz * sizeof *map);     // old id → new id
    IrId *lowp = malloc(sz * sizeof *lowp);   // old id → its bf16 value in the new graph
    // linear outputs (autocast.h): written in bf16, read by non-products through an f32 cast, one
    // for the forward's readers and one for the backward's (so no f32 copy is kept for the latter)
    bool *lin = calloc(sz, 1);         // a linear output: its bf16 value is lowp[]
    bool *lin_sum = calloc(sz, 1);     // a LoRA sum: the f32 add, then its cast to bf16
    bool *lora_y = calloc(sz, 1);      // the LoRA product of a sum: keeps its f32 result
    bool *is_out = calloc(sz, 1);      // a graph output or the loss
    IrId *widen[2] = {malloc(sz * sizeof(IrId)), malloc(sz * sizeof(IrId))};   // forward's, backward's
    int *readers = NULL;
    bool *biased = calloc(sz, 1);      // a bias is added to it (mark_bias_adds)
    bool *deferred = calloc(sz, 1);    // emitted before its first reader, not in place (below)
    bool *first_fwd = calloc(sz, 1);   // its first reader is a forward node
    // biased linear layers (biased_linear): the add's bias, read as a bf16 operand (bias_add); for
    // a LoRA sum under the add, the sum's bias and base product (bias_sum, bias_base), the add
    // then the sum's bf16 value (bias_alias)
    IrId *bias_add = malloc(sz * sizeof *bias_add), *bias_sum = malloc(sz * sizeof *bias_sum);
    IrId *bias_base = malloc(sz * sizeof *bias_base);
    bool *bias_alias = calloc(sz, 1);
    // each old node: itself, its cast to bf16, and at most two widening casts (2 for a via
    // reshape); a biased LoRA sum emits six (its add's none)
    IrNode *nodes = malloc(6 * sz * sizeof *nodes);
    int rc = -1;
    if (!operand || !table || !other || !retype || !via || !permute || !map || !lowp || !nodes || !lin ||
        !lin_sum || !lora_y || !is_out || !widen[0] || !widen[1] || !biased || !deferred || !first_fwd || !bias_add ||
        !bias_sum || !bias_base || !bias_alias) {
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the mixed-precision pass");
        goto out;
    }
    for (int o = 0; o < g->nouts; o++)
        if (ir_valid(g, g->outs[o].id)) other[g->outs[o].id] = is_out[g->outs[o].id] = true;
    if (ir_valid(g, g->loss)) other[g->loss] = is_out[g->loss] = true;
    for (int i = 0; i < n; i++) {
        const IrNode *x = &g->nodes[i];
        for (int k = 0; k < x->nin; k++)
            if (x->in[k] < 0 || x->in[k] >= i) {
                ir_report(g, x->loc, "internal: autocast: node %%%d reads %%%d out of order", i, x->in[k]);
                goto out;
            }
        bias_add[i] = bias_sum[i] = bias_base[i] = IR_NONE;
    }
    if (!(readers = ir_count_readers(g, "mixed-precision"))) goto out;
    for (int i = 0; i < n; i++) {
        IrId z;
        if (is_out[i] || (bias_add[i] = biased_linear(g, readers, i, &z)) == IR_NONE || forward_product(g, z)) continue;
        // add(z, b) of a LoRA sum z = add(P, s·Y): z emits bf16(bf16(P + b) + s·Y), the add is it
        IrId y = lora_sum(g, readers, &g->nodes[z]), z0 = g->nodes[z].in[0];
        bias_sum[z] = bias_add[i], bias_alias[i] = true;
        bias_base[z] = z0 != y && forward_product(g, z0) ? z0 : g->nodes[z].in[1];
    }
    // last reader first, so a node's flags are final when its own inputs are marked: an f32
    // reshape of an f32 value that products read (the backward reads the forward's activations
    // as (B*T, H) for the weight gradients) passes the operand mark on to its source, so the
    // forward's cast serves the backward too and the f32 value need not be kept for it; a biased
    // linear layer's bias is read as a bf16 operand (cuBLASLt's bias of a bf16 D is bf16)
    for (int i = n - 1; i >= 0; i--) {
        const IrNode *x = &g->nodes[i];
        if (x->op == IR_RESHAPE && x->dtype == IR_F32 && g->nodes[x->in[0]].dtype == IR_F32 && operand[i]) {
            via[i] = true;
            operand[x->in[0]] = true;
            if (other[i]) other[x->in[0]] = true;
            continue;
        }
        if (x->op == IR_PERMUTE && x->dtype == IR_F32 && lowp_attention(g, &g->nodes[x->in[0]])) {
            permute[i] = true;   // the output projection's (B, T, H, D): no f32 copy of the output
            continue;
        }
        int nl = operand_inputs(g, x);
        for (int k = 0; k < x->nin; k++) {
            if (k < nl || x->in[k] == bias_add[i]) operand[x->in[k]] = true;
            else if (x->op == IR_EMBED && k == 1) table[x->in[k]] = true;
            else other[x->in[k]] = true;
        }
    }
    for (int i = 0; i < n; i++) {
        const IrNode *x = &g->nodes[i];
        bool frozen = x->op == IR_PARAM && !x->trainable;
        retype[i] = !other[i] && x->dtype == IR_F32 &&
                    ((operand[i] && (frozen || x->op == IR_DEQUANT_NF4)) || (table[i] && frozen));
        lowp[i] = widen[0][i] = widen[1][i] = IR_NONE;
    }
    // linear outputs: the LoRA sums first (their LoRA products stay f32), then every forward
    // product some non-product reads (the base products of the sums among them)
    mark_bias_adds(g, biased);
    for (int i = n - 1; i >= 0; i--)   // the last assignment is the first reader's
        for (int k = 0; k < g->nodes[i].nin; k++) first_fwd[g->nodes[i].in[k]] = !g->nodes[i].backward;
    for (int i = 0; i < n; i++) {
        IrId y = is_out[i] || biased[i] ? IR_NONE : lora_sum(g, readers, &g->nodes[i]);
        if (y != IR_NONE) lin_sum[i] = lora_y[y] = true;
        if (bias_sum[i] != IR_NONE) {   // a biased LoRA sum: both products keep their f32 results
            lora_y[lora_sum(g, readers, &g->nodes[i])] = true;
            biased[bias_base[i]] = true;
        }
    }
    for (int i = 0; i < n; i++)
        lin[i] = forward_product(g, i) && other[i] && !is_out[i] && !lora_y[i] && !biased[i];
    // the leaves first (they read nothing), then the early casts by shape, then the rest in order
    int m = 0, nearly = 0;
    EarlyCast *early = malloc(sz * sizeof *early);
    if (!early) {
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the mixed-precision pass");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const IrNode *x = &g->nodes[i];
        if (!ir_is_leaf(x)) continue;
        IrNode c = *x;
        if (retype[i]) {
            c.dtype = IR_BF16;
            st.retyped++;
            lowp[i] = m;
        } else if (operand[i] && early_cast(x)) {
            early[nearly++] = (EarlyCast){x->shape, i};
        }
        map[i] = m;
        nodes[m++] = c;
    }
    qsort(early, (size_t)nearly, sizeof *early, by_shape);
    for (int e = 0; e < nearly; e++) {
        IrId i = early[e].id;
        if ((lowp[i] = emit_cast(g, nodes, &m, &g->nodes[i], map[i])) == IR_NONE) break;
        st.casts++;
    }
    free(early);
    for (int i = 0; i < n; i++) {
        const IrNode *x = &g->nodes[i];
        int nl = operand_inputs(g, x);
        // a deferred input (below): its widening cast and itself now, just before this reader
        for (int k = 0; k < x->nin; k++) {
            IrId in = x->in[k];
            if (!deferred[in] || map[in] != IR_NONE) continue;
            IrId src = g->nodes[in].in[0];
            IrNode d = g->nodes[in];
            d.in = arena_alloc(&g->arena, sizeof *d.in);
            if (!d.in) {
                ir_report(g, x->loc, "out of memory in the mixed-precision pass");
                goto out;
            }
            if (widen[0][src] == IR_NONE) {
                if ((widen[0][src] = emit_cast_to(g, nodes, &m, &g->nodes[src], lowp[src], IR_F32)) == IR_NONE) {
                    ir_report(g, x->loc, "out of memory in the mixed-precision pass");
                    goto out;
                }
                nodes[widen[0][src]].backward = false;
                st.widened++;
            }
            d.in[0] = widen[0][src];
            map[in] = m;
            nodes[m++] = d;
            st.deferred++;
        }
        // a forward elementwise op on one linear output (SwiGLU's silu(gate)), read first in the
        // forward, waits for that reader: its widening cast and it then sit after the products
        // between them (up's), so that the fuser puts them into the reader's kernel (the mul with
        // up's widening cast) instead of a kernel of their own
        if (x->nin == 1 && ir_op_is_elementwise(x->op) && x->op != IR_CAST && x->dtype == IR_F32 && !x->backward &&
            lin[x->in[0]] && !is_out[i] && !operand[i] && !retype[i] && first_fwd[i] && readers[i] > 0) {
            deferred[i] = true;
            map[i] = IR_NONE;
            continue;
        }
        for (int k = 0; k < (via[i] ? 1 : nl); k++) {   // a leaf's cast where it is first read
            IrId in = x->in[k];
            if (!ir_is_leaf(&g->nodes[in]) || lowp[in] != IR_NONE) continue;
            if ((lowp[in] = emit_cast(g, nodes, &m, &g->nodes[in], map[in])) == IR_NONE) break;
            st.casts++;
        }
        if (ir_is_leaf(x)) continue;   // placed above
        if (bias_alias[i]) {   // the bias add over a biased LoRA sum: the sum's bf16 value (below)
            IrId z = x->in[0] == bias_add[i] ? x->in[1] : x->in[0];
            lowp[i] = map[i] = lowp[z];
            lin[i] = true;
            continue;
        }
        IrNode c = *x;
        c.in = c.nin ? arena_alloc(&g->arena, (size_t)c.nin * sizeof *c.in) : NULL;
        if (c.nin && !c.in) {
            ir_report(g, x->loc, "out of memory in the mixed-precision pass");
            goto out;
        }
        // a reshape or permute of a linear output is the view of its bf16 value, itself one
        // (q, k, v's (B, T, H, D) and (B, H, T, D) before their norms and attention)
        bool lin_view = (x->op == IR_RESHAPE || x->op == IR_PERMUTE) && x->dtype == IR_F32 && lin[x->in[0]] && !is_out[i];
        for (int k = 0; k < c.nin; k++) {
            IrId in = x->in[k];
            if (k < nl || !lin[in] || lin_view) {
                c.in[k] = k < nl ? lowp[in] : map[in];
                continue;
            }
            // a linear output read as f32: its widening cast in this reader's phase, emitted just
            // before the first reader there (the fuser folds it into the reader's kernel)
            IrId *w = &widen[x->backward ? 1 : 0][in];
            if (*w == IR_NONE) {
                if ((*w = emit_cast_to(g, nodes, &m, &g->nodes[in], lowp[in], IR_F32)) == IR_NONE) {
                    ir_report(g, x->loc, "out of memory in the mixed-precision pass");
                    goto out;
                }
                nodes[*w].backward = x->backward;
                st.widened++;
            }
            c.in[k] = *w;
        }
        for (int k = 0; k < nl; k++)
            if (c.in[k] == IR_NONE) {
                ir_report(g, x->loc, "out of memory in the mixed-precision pass");
                goto out;
            }
        if (retype[i]) {
            c.dtype = IR_BF16;
            st.retyped++;
        }
        if (nl && (is_product(x) || x->op == IR_LINEAR_CE)) st.products++;
        if (nl && x->op == IR_SDPA) st.attention++;
        // a biased linear layer (autocast.h): the product's f32 result plus the bias's bf16 value
        // (widened), rounded by a cast — bf16(x Wᵀ + bf16(b)), cuBLASLt's bias epilogue with a
        // bf16 D; over a LoRA sum, that base output widened plus s·lora, rounded again by a cast
        IrId bias = bias_sum[i] != IR_NONE ? bias_sum[i] : bias_add[i];
        if (bias != IR_NONE) {
            const IrNode *bn = &g->nodes[bias];
            if (lowp[bias] == IR_NONE) {   // a large trainable bias not cast yet: its cast here
                if ((lowp[bias] = emit_cast(g, nodes, &m, bn, map[bias])) == IR_NONE) goto oom;
                st.casts++;
            }
            IrId wb = emit_cast_to(g, nodes, &m, bn, lowp[bias], IR_F32);
            if (wb == IR_NONE) goto oom;
            nodes[wb].loc = x->loc, nodes[wb].backward = x->backward, nodes[wb].recomputed = x->recomputed;
            IrId *in2 = arena_alloc(&g->arena, 2 * sizeof *in2);
            if (!in2) goto oom;
            IrId sum = m;
            if (bias_sum[i] == IR_NONE) {   // add(x Wᵀ, b)
                for (int k = 0; k < 2; k++) in2[k] = x->in[k] == bias ? wb : c.in[k];
                c.in = in2;
                nodes[m++] = c;
            } else {                        // add(bf16(x Wᵀ + b), s·lora)
                IrNode s1 = c;
                s1.in = in2, in2[0] = map[bias_base[i]], in2[1] = wb;
                nodes[m++] = s1;
                IrId base = emit_cast(g, nodes, &m, x, sum), wbase;
                if (base == IR_NONE || (wbase = emit_cast_to(g, nodes, &m, x, base, IR_F32)) == IR_NONE) goto oom;
                for (int k = 0; k < 2; k++)
                    if (x->in[k] == bias_base[i]) c.in[k] = wbase;
                sum = m;
                nodes[m++] = c;
                st.lowp_sums++;
            }
            if ((lowp[i] = map[i] = emit_cast(g, nodes, &m, x, sum)) == IR_NONE) goto oom;
            lin[i] = true;
            st.lowp_biased++;
            continue;
        }
        // a linear output (autocast.h): a product writes its result in bf16; a LoRA sum is the f32
        // add rounded by a cast; a view of one views its bf16 value, each read through widening casts
        lin[i] = lin[i] || lin_view;
        if (lin[i] || lin_sum[i]) {
            if (lin_view) c.in[0] = lowp[x->in[0]];
            if (!lin_sum[i]) c.dtype = IR_BF16;
            IrId sum = m;
            lowp[i] = map[i] = m;
            nodes[m++] = c;
            if (lin_sum[i]) {
                lin[i] = true;
                if ((lowp[i] = map[i] = emit_cast(g, nodes, &m, x, sum)) == IR_NONE) {
                    ir_report(g, x->loc, "out of memory in the mixed-precision pass");
                    goto out;
                }
                st.lowp_sums++;
            } else if (x->op == IR_MATMUL) {
                st.lowp_linear++;
            }
            continue;
        }
        if (via[i]) {   // the bf16 reshape; the f32 one only when something else reads it
            IrNode r = c;
            r.dtype = IR_BF16;
            r.in = arena_alloc(&g->arena, sizeof *r.in);
            if (!r.in) {
                ir_report(g, x->loc, "out of memory in the mixed-precision pass");
                goto out;
            }
            r.in[0] = lowp[x->in[0]];
            if (r.in[0] == IR_NONE) {
                ir_report(g, x->loc, "out of memory in the mixed-precision pass");
                goto out;
            }
            map[i] = IR_NONE;
            if (other[i]) map[i] = m, nodes[m++] = c;
            lowp[i] = m;
            nodes[m++] = r;
            st.reshaped++;
            continue;
        }
        // a product read only as an operand writes its result in bf16 itself: cuBLASLt rounds its
        // fp32 sums once on the way out, as the cast would (LoRA's (B, T, r) intermediates); so
        // does a rope read only by attention (q and k: the fp32 rotation rounded as it is stored)
        bool lowp_rope = x->op == IR_ROPE && x->dtype == IR_F32;
        bool lowp_out = operand[i] && !other[i] && (is_product(x) || lowp_rope);
        if (lowp_out) {
            c.dtype = IR_BF16;
            if (lowp_rope) st.lowp_ropes++;
            else st.lowp_results++;
        }
        // attention on bf16 q, k, v writes its output in bf16 whoever reads it (as PyTorch's flash
        // attention does under autocast: the f32 result rounded once; the backward's delta reads
        // that bf16 O, ir.h IR_SDPA), and so does a permute of it (the output projection's (B, T,
        // H, D) layout: a copy of the bf16 values): products read them as they are, anything else
        // (dropout, an output) through a cast back to f32, which the fuser folds into a kernel
        bool lowp_sdpa = lowp_attention(g, x);
        if (lowp_sdpa || permute[i]) {
            c.dtype = IR_BF16;
            if (permute[i]) c.in[0] = lowp[x->in[0]];
            else st.lowp_attention++;
            lowp[i] = m;
            nodes[m++] = c;
            map[i] = lowp[i];
            if (other[i] && (map[i] = emit_cast_to(g, nodes, &m, x, lowp[i], IR_F32)) == IR_NONE) {
                ir_report(g, x->loc, "out of memory in the mixed-precision pass");
                goto out;
            }
            continue;
        }
        map[i] = m;
        nodes[m++] = c;
        if (retype[i] || lowp_out) lowp[i] = map[i];
        else if (operand[i]) {   // the bf16 copy every product reading this value shares
            if ((lowp[i] = emit_cast(g, nodes, &m, x, map[i])) == IR_NONE) {
                ir_report(g, x->loc, "out of memory in the mixed-precision pass");
                goto out;
            }
            st.casts++;
        }
    }
    ir_install_nodes(g, nodes, m, &map);
    nodes = NULL;
    rc = 0;
    if (0) {
    oom:
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the mixed-precision pass");
    }
out:
    if (stats) *stats = st;
    free(operand);
    free(table);
    free(other);
    free(retype);
    free(via);
    free(permute);
    free(map);
    free(lowp);
    free(nodes);
    free(lin);
    free(lin_sum);
    free(lora_y);
    free(is_out);
    free(widen[0]);
    free(widen[1]);
    free(readers);
    free(biased);
    free(deferred);
    free(first_fwd);
    free(bias_add);
    free(bias_sum);
    free(bias_base);
    free(bias_alias);
    return rc;
}
