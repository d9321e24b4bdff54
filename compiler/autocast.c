// autocast.c — bf16 mixed precision (see autocast.h). A backward pass over the graph finds what
// each value is read as; then one pass in order maps each f32 product's operands to bf16 values (a
// retyped leaf or dequantized weight, a cast emitted right after the value it casts, or a reshape of
// such a value) and rebuilds the product with an f32 result (attention: a bf16 one, read as f32
// through a cast where something other than a product reads it).
#include "autocast.h"
#include "ir_internal.h"
#include <stdlib.h>
#include <string.h>

static bool is_product(const IrNode *n) { return n->op == IR_MATMUL && n->dtype == IR_F32 && n->nin == 2; }
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
    cast.loc = x->loc, cast.backward = x->backward;
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
    IrNode *nodes = malloc(2 * sz * sizeof *nodes);
    int rc = -1;
    if (!operand || !table || !other || !retype || !via || !permute || !map || !lowp || !nodes) {
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the mixed-precision pass");
        goto out;
    }
    for (int o = 0; o < g->nouts; o++)
        if (ir_valid(g, g->outs[o].id)) other[g->outs[o].id] = true;
    if (ir_valid(g, g->loss)) other[g->loss] = true;
    // last reader first, so a node's flags are final when its own inputs are marked: an f32
    // reshape of an f32 value that products read (the backward reads the forward's activations
    // as (B*T, H) for the weight gradients) passes the operand mark on to its source, so the
    // forward's cast serves the backward too and the f32 value need not be kept for it
    for (int i = n - 1; i >= 0; i--) {
        const IrNode *x = &g->nodes[i];
        for (int k = 0; k < x->nin; k++)
            if (x->in[k] < 0 || x->in[k] >= i) {
                ir_report(g, x->loc, "internal: autocast: node %%%d reads %%%d out of order", i, x->in[k]);
                goto out;
            }
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
            if (k < nl) operand[x->in[k]] = true;
            else if (x->op == IR_EMBED && k == 1) table[x->in[k]] = true;
            else other[x->in[k]] = true;
        }
    }
    for (int i = 0; i < n; i++) {
        const IrNode *x = &g->nodes[i];
        bool frozen = x->op == IR_PARAM && !x->trainable;
        retype[i] = !other[i] && x->dtype == IR_F32 &&
                    ((operand[i] && (frozen || x->op == IR_DEQUANT_NF4)) || (table[i] && frozen));
        lowp[i] = IR_NONE;
    }
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
        for (int k = 0; k < (via[i] ? 1 : nl); k++) {   // a leaf's cast where it is first read
            IrId in = x->in[k];
            if (!ir_is_leaf(&g->nodes[in]) || lowp[in] != IR_NONE) continue;
            if ((lowp[in] = emit_cast(g, nodes, &m, &g->nodes[in], map[in])) == IR_NONE) break;
            st.casts++;
        }
        if (ir_is_leaf(x)) continue;   // placed above
        IrNode c = *x;
        c.in = c.nin ? arena_alloc(&g->arena, (size_t)c.nin * sizeof *c.in) : NULL;
        if (c.nin && !c.in) {
            ir_report(g, x->loc, "out of memory in the mixed-precision pass");
            goto out;
        }
        for (int k = 0; k < c.nin; k++) c.in[k] = k < nl ? lowp[x->in[k]] : map[x->in[k]];
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
    return rc;
}
