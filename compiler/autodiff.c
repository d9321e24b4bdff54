// autodiff.c — reverse-mode differentiation: walks the forward graph from the loss backwards and
// appends, for every node on a path to a trainable param (or a requested input), the nodes that
// compute its inputs' gradients, built from the same primitives (plus the few dedicated backward
// ops: sdpa_bwd_*, cross_entropy_bwd, embed_bwd, gather_bwd, pad). Gradients of broadcast operands
// are summed back to the operand's shape and cast to its dtype. Also the named pass pipeline.
// Not here: second derivatives of the dedicated backward ops; optimizer updates.
#include "autodiff.h"
#include <stdlib.h>
#include <string.h>

typedef struct Ad {
    IrGraph *g;
    int n0;          // forward node count when the pass started
    bool *needs;     // (n0) does a gradient have to flow into this node?
    IrId *grad;      // (n0) accumulated gradient, IR_NONE while none
    bool failed;
} Ad;

static const IrNode *nd(const Ad *ad, IrId id) { return &ad->g->nodes[id]; }

// Adds contribution c (of a broadcast-compatible shape) to the gradient of node x.
static void acc(Ad *ad, IrId x, IrId c, Loc loc) {
    IrGraph *g = ad->g;
    if (c == IR_NONE) {
        ad->failed = true;
        return;
    }
    if (x < 0 || x >= ad->n0 || !ad->needs[x]) return;
    const IrShape xs = nd(ad, x)->shape;
    IrDType xt = nd(ad, x)->dtype;
    if (!ir_shape_eq(&nd(ad, c)->shape, &xs)) c = ir_sum_to(g, c, xs, loc);
    if (c != IR_NONE && nd(ad, c)->dtype != xt) c = ir_cast(g, c, xt, loc);
    if (c == IR_NONE) {
        ad->failed = true;
        return;
    }
    ad->grad[x] = ad->grad[x] == IR_NONE ? c : ir_add(g, ad->grad[x], c, loc);
    if (ad->grad[x] == IR_NONE) ad->failed = true;
}

static IrId sc(Ad *ad, double v, Loc loc) { return ir_scalar(ad->g, v, loc); }

// d/dx of gelu_tanh: 0.5(1+t) + 0.5 x (1 - t²) c (1 + 3k x²), t = tanh(c (x + k x³)).
static IrId gelu_grad(Ad *ad, IrId x, Loc loc) {
    IrGraph *g = ad->g;
    const double c = 0.7978845608028654, k = 0.044715;
    IrId x2 = ir_mul(g, x, x, loc);
    // One node-creating call per argument list: C leaves the order of arguments unspecified, and
    // the graph's node order must not depend on the compiler (scripts/compare_compilers.sh).
    IrId x3 = ir_mul(g, x2, x, loc);
    IrId kx3 = ir_mul(g, sc(ad, k, loc), x3, loc);
    IrId inner_sum = ir_add(g, x, kx3, loc);
    IrId inner = ir_mul(g, sc(ad, c, loc), inner_sum, loc);
    IrId t = ir_unary(g, IR_TANH, inner, loc);
    IrId one_t = ir_add(g, sc(ad, 1.0, loc), t, loc);
    IrId left = ir_mul(g, sc(ad, 0.5, loc), one_t, loc);
    IrId t2 = ir_mul(g, t, t, loc);
    IrId one_t2 = ir_sub(g, sc(ad, 1.0, loc), t2, loc);
    IrId kx2 = ir_mul(g, sc(ad, 3 * k, loc), x2, loc);
    IrId poly = ir_add(g, sc(ad, 1.0, loc), kx2, loc);
    IrId tp = ir_mul(g, one_t2, poly, loc);
    IrId cx = ir_mul(g, sc(ad, 0.5 * c, loc), x, loc);
    IrId right = ir_mul(g, cx, tp, loc);
    return ir_add(g, left, right, loc);
}

// The runtime element count of the reduced axes of x: a scalar constant when they are all
// constant, else (constant) * sum(ones) over a tensor holding just their symbolic factors.
static IrId reduced_count(Ad *ad, const IrShape *xs, uint32_t axes, Loc loc) {
    int64_t c = 1;
    bool sym = false;
    IrShape part = *xs;
    for (int i = 0; i < xs->rank; i++) {
        part.d[i] = ir_dim(1);
        if (!(axes & (1u << i))) continue;
        if (xs->d[i].syms) {
            sym = true;
            part.d[i].syms = xs->d[i].syms;
        }
        c *= xs->d[i].coef;
    }
    if (!sym) return sc(ad, (double)c, loc);
    IrId ones = ir_full(ad->g, 1.0, ad->g->float_dtype, part, loc);
    IrId n = ir_reduce_axes(ad->g, IR_SUM, ones, axes, loc);
    return c == 1 ? n : ir_mul(ad->g, n, sc(ad, (double)c, loc), loc);
}

// matmul backward: C = op(A) op(B).
static void matmul_bwd(Ad *ad, const IrNode *n, IrId gy, Loc loc) {
    IrGraph *g = ad->g;
    IrId A = n->in[0], B = n->in[1];
    bool ta = n->a.trans_a, tb = n->a.trans_b;
    if (ad->needs[A]) {
        IrId dA;
        if (!ta && !tb) dA = ir_matmul(g, gy, B, false, true, loc);
        else if (!ta && tb) dA = ir_matmul(g, gy, B, false, false, loc);
        else if (ta && !tb) dA = ir_matmul(g, B, gy, false, true, loc);
        else dA = ir_matmul(g, B, gy, true, true, loc);
        acc(ad, A, dA, loc);
    }
    if (ad->needs[B]) {
        const IrShape as = nd(ad, A)->shape, gs = nd(ad, gy)->shape;
        IrId dB;
        if (nd(ad, B)->shape.rank == 2 && as.rank > 2 && !ta) {
            // linear: fold A's batch dims into its rows so that dB is one 2-D product
            IrShape a2 = ir_shape2(ir_dim(-1), as.d[as.rank - 1]);
            IrShape g2 = ir_shape2(ir_dim(-1), gs.d[gs.rank - 1]);
            IrId A2 = ir_reshape(g, A, a2, loc), G2 = ir_reshape(g, gy, g2, loc);
            dB = tb ? ir_matmul(g, G2, A2, true, false, loc) : ir_matmul(g, A2, G2, true, false, loc);
        } else if (!ta && !tb) dB = ir_matmul(g, A, gy, true, false, loc);
        else if (!ta && tb) dB = ir_matmul(g, gy, A, true, false, loc);
        else if (ta && !tb) dB = ir_matmul(g, A, gy, false, false, loc);
        else dB = ir_matmul(g, gy, A, true, true, loc);
        acc(ad, B, dB, loc);
    }
}

// One node's backward rule: gy is the gradient of node id.
static void backward_node(Ad *ad, IrId id, IrId gy) {
    IrGraph *g = ad->g;
    const IrNode n = *nd(ad, id);   // by value: building appends (and may move) nodes
    const Loc loc = n.loc;
    IrId x = n.nin > 0 ? n.in[0] : IR_NONE;
    IrId b = n.nin > 1 ? n.in[1] : IR_NONE;
    switch (n.op) {
    case IR_INPUT: case IR_PARAM: case IR_FULL: case IR_ARANGE: case IR_STOP_GRAD:
    case IR_EQ: case IR_NE: case IR_LT: case IR_LE: case IR_GT: case IR_GE:
        return;
    case IR_NEG: acc(ad, x, ir_unary(g, IR_NEG, gy, loc), loc); return;
    case IR_EXP: acc(ad, x, ir_mul(g, gy, id, loc), loc); return;
    case IR_LOG: acc(ad, x, ir_div(g, gy, x, loc), loc); return;
    case IR_SQRT: acc(ad, x, ir_div(g, ir_mul(g, gy, sc(ad, 0.5, loc), loc), id, loc), loc); return;
    // Below, at most one argument of a call creates a node (see gelu_grad).
    case IR_RSQRT: {
        IrId r = ir_div(g, id, x, loc);
        acc(ad, x, ir_mul(g, gy, ir_mul(g, sc(ad, -0.5, loc), r, loc), loc), loc);
        return;
    }
    case IR_TANH: {
        IrId y2 = ir_mul(g, id, id, loc);
        acc(ad, x, ir_mul(g, gy, ir_sub(g, sc(ad, 1, loc), y2, loc), loc), loc);
        return;
    }
    case IR_SIGMOID:
        acc(ad, x, ir_mul(g, gy, ir_mul(g, id, ir_sub(g, sc(ad, 1, loc), id, loc), loc), loc), loc);
        return;
    case IR_SILU: {
        IrId s = ir_unary(g, IR_SIGMOID, x, loc);
        IrId xs = ir_mul(g, x, ir_sub(g, sc(ad, 1, loc), s, loc), loc);
        IrId d = ir_mul(g, s, ir_add(g, sc(ad, 1, loc), xs, loc), loc);
        acc(ad, x, ir_mul(g, gy, d, loc), loc);
        return;
    }
    case IR_GELU: acc(ad, x, ir_mul(g, gy, gelu_grad(ad, x, loc), loc), loc); return;
    case IR_RELU:
        acc(ad, x, ir_mul(g, gy, ir_binary(g, IR_GT, x, sc(ad, 0, loc), loc), loc), loc);
        return;
    case IR_ABS: {
        IrId lt = ir_binary(g, IR_LT, x, sc(ad, 0, loc), loc);
        IrId sign = ir_sub(g, ir_binary(g, IR_GT, x, sc(ad, 0, loc), loc), lt, loc);
        acc(ad, x, ir_mul(g, gy, sign, loc), loc);
        return;
    }
    case IR_SQUARE: acc(ad, x, ir_mul(g, gy, ir_mul(g, sc(ad, 2, loc), x, loc), loc), loc); return;
    case IR_POW: {
        double p = n.a.value;
        IrId d;
        if (p == 1.0) {
            d = sc(ad, 1, loc);
        } else {
            IrId xp = ir_pow(g, x, p - 1.0, loc);
            d = ir_mul(g, sc(ad, p, loc), xp, loc);
        }
        acc(ad, x, ir_mul(g, gy, d, loc), loc);
        return;
    }
    case IR_LOG_SIGMOID:
        acc(ad, x, ir_mul(g, gy, ir_unary(g, IR_SIGMOID, ir_unary(g, IR_NEG, x, loc), loc), loc), loc);
        return;
    case IR_SOFTPLUS: acc(ad, x, ir_mul(g, gy, ir_unary(g, IR_SIGMOID, x, loc), loc), loc); return;
    case IR_CAST: acc(ad, x, gy, loc); return;
    case IR_DROPOUT: {
        IrId in[1] = {gy};
        acc(ad, x, ir_append(g, IR_DROPOUT, nd(ad, gy)->dtype, nd(ad, gy)->shape, in, 1, &n.a, loc), loc);
        return;
    }
    case IR_ADD: acc(ad, x, gy, loc); acc(ad, b, gy, loc); return;
    case IR_SUB: acc(ad, x, gy, loc); acc(ad, b, ir_unary(g, IR_NEG, gy, loc), loc); return;
    case IR_MUL:
        if (ad->needs[x]) acc(ad, x, ir_mul(g, gy, b, loc), loc);
        if (ad->needs[b]) acc(ad, b, ir_mul(g, gy, x, loc), loc);
        return;
    case IR_DIV:
        if (ad->needs[x]) acc(ad, x, ir_div(g, gy, b, loc), loc);
        if (ad->needs[b]) acc(ad, b, ir_unary(g, IR_NEG, ir_div(g, ir_mul(g, gy, id, loc), b, loc), loc), loc);
        return;
    case IR_MAXIMUM: case IR_MINIMUM: {
        IrOp first = n.op == IR_MAXIMUM ? IR_GE : IR_LE;   // ties go to the first operand
        IrOp second = n.op == IR_MAXIMUM ? IR_LT : IR_GT;
        if (ad->needs[x]) acc(ad, x, ir_mul(g, gy, ir_binary(g, first, x, b, loc), loc), loc);
        if (ad->needs[b]) acc(ad, b, ir_mul(g, gy, ir_binary(g, second, x, b, loc), loc), loc);
        return;
    }
    case IR_WHERE: {
        IrId a1 = n.in[1], a2 = n.in[2];
        if (ad->needs[a1]) acc(ad, a1, ir_where(g, x, gy, sc(ad, 0, loc), loc), loc);
        if (ad->needs[a2]) acc(ad, a2, ir_where(g, x, sc(ad, 0, loc), gy, loc), loc);
        return;
    }
    case IR_SUM: acc(ad, x, ir_broadcast_to(g, gy, nd(ad, x)->shape, loc), loc); return;
    case IR_MEAN: {
        IrShape xs = nd(ad, x)->shape;
        IrId cnt = reduced_count(ad, &xs, n.a.axes, loc);
        acc(ad, x, ir_broadcast_to(g, ir_div(g, gy, cnt, loc), xs, loc), loc);
        return;
    }
    case IR_MAX: {
        IrId mask = ir_binary(g, IR_EQ, x, id, loc);   // ties: every maximal element gets gy
        acc(ad, x, ir_mul(g, mask, gy, loc), loc);
        return;
    }
    case IR_SUM_TO: acc(ad, x, ir_broadcast_to(g, gy, nd(ad, x)->shape, loc), loc); return;
    case IR_BROADCAST: acc(ad, x, gy, loc); return;   // acc sums back to x's shape
    case IR_MATMUL:
        if (n.nin == 2) {
            matmul_bwd(ad, &n, gy, loc);
            return;
        }
        // an accumulating product (3 inputs) exists only after autodiff (gemm_acc.h)
        if (g->diag) diag_error(g->diag, loc, "autodiff (internal): an accumulating matmul has no gradient rule");
        g->errors++;
        ad->failed = true;
        return;
    case IR_SOFTMAX: {
        IrId dot = ir_reduce(g, IR_SUM, ir_mul(g, gy, id, loc), -1, loc);
        acc(ad, x, ir_mul(g, id, ir_sub(g, gy, dot, loc), loc), loc);
        return;
    }
    case IR_LOG_SOFTMAX: {
        IrId s = ir_reduce(g, IR_SUM, gy, -1, loc);
        acc(ad, x, ir_sub(g, gy, ir_mul(g, ir_unary(g, IR_EXP, id, loc), s, loc), loc), loc);
        return;
    }
    case IR_EMBED: acc(ad, b, ir_embed_bwd(g, x, gy, nd(ad, b)->shape, loc), loc); return;
    case IR_EMBED_BWD: acc(ad, b, ir_embed(g, x, gy, loc), loc); return;
    case IR_ROPE: {
        IrId in[2] = {gy, b};
        IrAttrs a = n.a;
        a.inverse = !a.inverse;
        acc(ad, x, ir_append(g, IR_ROPE, nd(ad, gy)->dtype, nd(ad, gy)->shape, in, 2, &a, loc), loc);
        return;
    }
    case IR_SDPA: {
        // the backward sees the same key mask and segment ids as the forward
        IrId q = n.in[0], k = n.in[1], v = n.in[2];
        IrId sg = n.a.segmented ? n.in[n.nin - 1] : IR_NONE;
        IrId m = n.nin - (n.a.segmented ? 1 : 0) > 3 ? n.in[3] : IR_NONE;
        static const IrOp bw[3] = {IR_SDPA_BWD_Q, IR_SDPA_BWD_K, IR_SDPA_BWD_V};
        for (int i = 0; i < 3; i++)
            if (ad->needs[n.in[i]])
                acc(ad, n.in[i], ir_sdpa_bwd_seg(g, bw[i], q, k, v, gy, m, sg, n.a.causal, n.a.scale, loc),
                    loc);
        return;
    }
    case IR_CROSS_ENTROPY:
        acc(ad, x, ir_cross_entropy_bwd(g, x, b, gy, n.a.ignore_index, n.a.value, loc), loc);
        return;
    case IR_LINEAR_CE:   // x, w, labels
        if (ad->needs[x])
            acc(ad, x, ir_linear_ce_bwd(g, IR_LINEAR_CE_BWD_X, x, b, n.in[2], gy, n.a.ignore_index, n.a.value, loc), loc);
        if (ad->needs[b])
            acc(ad, b, ir_linear_ce_bwd(g, IR_LINEAR_CE_BWD_W, x, b, n.in[2], gy, n.a.ignore_index, n.a.value, loc), loc);
        return;
    case IR_GATHER: acc(ad, x, ir_gather_bwd(g, b, gy, n.a.axis, nd(ad, x)->shape, loc), loc); return;
    case IR_GATHER_BWD: acc(ad, b, ir_gather(g, gy, x, n.a.axis, loc), loc); return;
    case IR_RESHAPE: acc(ad, x, ir_reshape(g, gy, nd(ad, x)->shape, loc), loc); return;
    case IR_PERMUTE: {
        int inv[IR_MAX_RANK];
        for (int i = 0; i < n.shape.rank; i++) inv[n.a.perm[i]] = i;
        acc(ad, x, ir_permute(g, gy, inv, loc), loc);
        return;
    }
    case IR_CONCAT: {
        IrDim off = ir_dim(0);
        int ax = n.a.axis;
        for (int i = 0; i < n.nin; i++) {
            IrDim len = nd(ad, n.in[i])->shape.d[ax];
            if (ad->needs[n.in[i]]) acc(ad, n.in[i], ir_slice_dim(g, gy, ax, off, len, loc), loc);
            if (off.coef == 0) off = len;
            else off.coef += len.coef;   // same symbols: checked when the concat was built
        }
        return;
    }
    case IR_SLICE: acc(ad, x, ir_pad(g, gy, n.a.axis, n.a.off, nd(ad, x)->shape, loc), loc); return;
    case IR_PAD:
        acc(ad, x, ir_slice_dim(g, gy, n.a.axis, n.a.off, nd(ad, x)->shape.d[n.a.axis], loc), loc);
        return;
    case IR_DEQUANT_NF4: case IR_DEQUANT_MAP8:   // frozen quantized weights
        return;
    case IR_SDPA_BWD_Q: case IR_SDPA_BWD_K: case IR_SDPA_BWD_V: case IR_CROSS_ENTROPY_BWD:
    case IR_LINEAR_CE_BWD_X: case IR_LINEAR_CE_BWD_W: case IR_LINEAR_ARGMAX: case IR_OP_COUNT:
        break;
    }
    if (g->diag) diag_error(g->diag, loc, "no gradient rule for %s", ir_op_name(n.op));
    g->errors++;
    ad->failed = true;
}

static bool blocks_gradient(const IrNode *n) {
    switch (n->op) {
    case IR_STOP_GRAD: case IR_FULL: case IR_ARANGE: case IR_INPUT: case IR_PARAM:
    case IR_DEQUANT_NF4: case IR_DEQUANT_MAP8:
    case IR_EQ: case IR_NE: case IR_LT: case IR_LE: case IR_GT: case IR_GE:
        return true;
    default:
        return !ir_dtype_is_float(n->dtype);
    }
}

int ad_backward(IrGraph *g, const IrId *wrt, int n_wrt) {
    if (g->loss == IR_NONE || g->loss >= g->n) {
        if (g->diag) diag_plain_error(g->diag, "autodiff: the graph has no loss");
        g->errors++;
        return -1;
    }
    for (int i = 0; i < g->nouts; i++)
        if (g->outs[i].grad_of != IR_NONE) {
            if (g->diag) diag_plain_error(g->diag, "autodiff: the graph is already differentiated");
            g->errors++;
            return -1;
        }
    Ad ad = {.g = g, .n0 = g->n};
    ad.needs = calloc((size_t)g->n, sizeof *ad.needs);
    ad.grad = malloc((size_t)g->n * sizeof *ad.grad);
    if (!ad.needs || !ad.grad) {
        free(ad.needs);
        free(ad.grad);
        if (g->diag) diag_plain_error(g->diag, "autodiff: out of memory");
        return -1;
    }
    for (int i = 0; i < g->n; i++) ad.grad[i] = IR_NONE;
    for (int i = 0; i < n_wrt; i++)
        if (wrt[i] >= 0 && wrt[i] < g->n && ir_dtype_is_float(g->nodes[wrt[i]].dtype))
            ad.needs[wrt[i]] = true;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == IR_PARAM && n->trainable) ad.needs[i] = true;
        if (ad.needs[i] || blocks_gradient(n)) continue;
        for (int k = 0; k < n->nin; k++)
            if (ad.needs[n->in[k]]) ad.needs[i] = true;
    }

    g->in_backward = true;
    IrId loss = g->loss;
    const IrNode *ln = &g->nodes[loss];
    ad.grad[loss] = ir_full(g, 1.0, ln->dtype, ln->shape, ln->loc);
    for (int i = loss; i >= 0 && !ad.failed; i--)
        if (ad.needs[i] && ad.grad[i] != IR_NONE) backward_node(&ad, i, ad.grad[i]);

    int rc = ad.failed ? -1 : 0;
    if (!ad.failed) {
        for (int i = 0; i < ad.n0; i++) {
            const IrNode *n = &g->nodes[i];
            bool want = (n->op == IR_PARAM && n->trainable);
            for (int k = 0; k < n_wrt && !want; k++) want = wrt[k] == i;
            if (!want) continue;
            IrId gr = ad.grad[i];
            if (gr == IR_NONE) gr = ir_zeros_like(g, i, n->loc);
            char name[512];
            snprintf(name, sizeof name, "grad:%s", g->nodes[i].name ? g->nodes[i].name : "?");
            if (gr == IR_NONE || ir_add_grad_output(g, gr, name, i) < 0) rc = -1;
        }
    }
    g->in_backward = false;
    free(ad.needs);
    free(ad.grad);
    return rc;
}

IrId ad_grad_of(const IrGraph *g, IrId x) {
    for (int i = 0; i < g->nouts; i++)
        if (g->outs[i].grad_of == x && x != IR_NONE) return g->outs[i].id;
    return IR_NONE;
}

static const char *const pass_names[] = {"lower", "autodiff", "cse", "dce"};

const char *const *ad_pass_names(int *n) {
    if (n) *n = 4;
    return pass_names;
}

int ad_run_passes(IrGraph *g, const char *after) {
    int stop = 3;
    if (after) {
        stop = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(after, pass_names[i]) == 0) stop = i;
        if (stop < 0) {
            if (g->diag) {
                diag_plain_error(g->diag, "unknown IR pass `%s` (passes: lower, autodiff, cse, dce)",
                                 after);
                const char *s = suggest_word(after, pass_names, 4);
                if (s) diag_hint(g->diag, "did you mean `%s`?", s);
            }
            return -1;
        }
    }
    if (stop >= 1 && g->loss != IR_NONE && ad_backward(g, NULL, 0) != 0) return -1;
    if (stop >= 2) ir_cse(g);   // the replaced duplicates stay (unused) until dce
    if (stop >= 3) ir_dce(g);
    return ir_verify(g) ? 0 : -1;
}
